#!/bin/bash
# castoff to 2 folders whose every fsync takes DELAY_US microseconds more, as a hard disk's,
# a USB drive's or a NAS's does: the delay is injected with strace (seccomp-filtered, so only
# fsync stops), into castoff alone. Prints wall and CPU; compare two checkouts side by side:
#   bench/slow_device.sh [DELAY_US] [FILES] [SRC_DIR ...]     e.g. bench/slow_device.sh 2000 2000 src /work/old/src
set -euo pipefail
DELAY=${1:-2000}; FILES=${2:-2000}; shift 2 || true
SRCS=("$@"); [ ${#SRCS[@]} -gt 0 ] || SRCS=("$(cd "$(dirname "$0")/.." && pwd)/src")
PY=$(cd "$(dirname "$0")/.." && pwd)/.venv/bin/python
command -v strace >/dev/null || { echo "needs strace (apt install strace)" >&2; exit 2; }
W=$(mktemp -d "${TMPDIR:-/dev/shm}/castoff-slowdev.XXXX"); trap 'rm -rf "$W"' EXIT
"$PY" - "$W/card" "$FILES" <<'PY'
import os, random, sys
root, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(7)
for i in range(n):
    folder = os.path.join(root, f"d{i // 50:03}")
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, f"f{i:05}.bin"), "wb") as fh:
        fh.write(rng.randbytes(rng.randint(4096, 65536)))
PY
for src in "${SRCS[@]}"; do
  rm -rf "$W/d1" "$W/d2" "$W/home"
  CASTOFF_HOME=$W/home CASTOFF_CONFIG=$W/home/config.toml PYTHONPATH=$src \
    /usr/bin/time -o "$W/t" -f "%e s wall, %U s user, %S s sys" \
    strace -f -q --seccomp-bpf -e trace=fsync -e inject=fsync:delay_exit="$DELAY" -o /dev/null \
    "$PY" -m castoff copy "$W/card" --to "$W/d1" --to "$W/d2" --quiet
  echo "$src: $FILES files, fsync +${DELAY} us: $(cat "$W/t")"
done
