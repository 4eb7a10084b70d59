#!/usr/bin/env bash
# Create the project's virtualenv and install castoff with its test tools (pinned in pyproject.toml).
set -euo pipefail
PY="${1:-python3}"
VENV="${2:-.venv}"
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "castoff needs Python 3.11 or newer ($PY is $("$PY" --version 2>&1))." >&2
    exit 2
fi
if [ ! -x "$VENV/bin/python" ]; then
    if ! "$PY" -m venv "$VENV" 2>/dev/null; then
        # Debian's python3 ships venv separately.
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            echo "installing python3-venv (Debian)…" >&2
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
            rm -rf "$VENV"
            "$PY" -m venv "$VENV"
        else
            echo "cannot create a virtualenv: install python3-venv (Debian/Ubuntu) and retry." >&2
            exit 2
        fi
    fi
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -e '.[test]'

# The report tests open the HTML report in Debian's chromium (driven by Playwright; never
# `playwright install`, which downloads a browser) and check ASC MHL with the reference tool.
if ! command -v chromium >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "installing chromium (Debian) for the HTML report tests…" >&2
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
    else
        echo "note: chromium is missing; the HTML report tests need it (apt-get install chromium)." >&2
    fi
fi
# The local destination tests mount exFAT and FAT32 drive images through FUSE, as a shuttle drive is
# mounted without the kernel's drivers (exfat-fuse, fusefat); as root, with a free loop device.
if ! command -v mount.exfat-fuse >/dev/null || ! command -v fusefat >/dev/null \
    || ! command -v mkfs.exfat >/dev/null || ! command -v mkfs.vfat >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "installing exfat-fuse, fusefat, exfatprogs and dosfstools (Debian) for the exFAT/FAT tests…" >&2
        apt-get update -qq \
            && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq exfat-fuse fusefat exfatprogs dosfstools \
            || echo "note: could not install them; the exFAT/FAT drive tests are skipped." >&2
    else
        echo "note: exfat-fuse, fusefat, exfatprogs or dosfstools is missing; the exFAT/FAT drive tests" \
            "are skipped (apt-get install exfat-fuse fusefat exfatprogs dosfstools, as root)." >&2
    fi
fi
# The tests of a drive that fails mid-job shut down a real xfs image, mounted by the kernel (as root).
if ! command -v mkfs.xfs >/dev/null || ! command -v xfs_io >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "installing xfsprogs (Debian) for the failing-drive tests…" >&2
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq xfsprogs \
            || echo "note: could not install xfsprogs; the failing-drive tests are skipped." >&2
    else
        echo "note: xfsprogs is missing; the failing-drive tests are skipped (apt-get install xfsprogs," \
            "as root)." >&2
    fi
fi
# The reference ASC MHL tool pins an older Click, so it lives in a virtualenv of its own.
ASCMHL_VENV="$(dirname "$VENV")/.venv-ascmhl"
if [ ! -x "$ASCMHL_VENV/bin/ascmhl-debug" ]; then
    "$PY" -m venv "$ASCMHL_VENV"
    "$ASCMHL_VENV/bin/python" -m pip install -q 'ascmhl==1.2'
fi
