"""Helpers shared by the benchmark commands: room left, emptying, the work folder's lock, signals."""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import re
import shutil
import signal
import stat
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO

#: what a tmpfs run leaves to the rest of the machine (tmpfs pages are RAM)
TMPFS_RAM_MARGIN = 2 << 30


def _existing(path: Path) -> Path:
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return probe


def _mem_available() -> int | None:
    try:
        text = Path("/proc/meminfo").read_text()
    except OSError:
        return None
    m = re.search(r"^MemAvailable:\s*(\d+) kB", text, re.M)
    return int(m.group(1)) * 1024 if m else None


def _on_tmpfs(path: Path) -> bool:
    try:
        mounts = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return False
    target = str(path.resolve())
    best, fstype = "", ""
    for line in mounts:
        fields = line.split()
        if len(fields) < 3:
            continue
        mount = fields[1].replace("\\040", " ")
        inside = target == mount or target.startswith(mount.rstrip("/") + "/")
        if inside and len(mount) >= len(best):
            best, fstype = mount, fields[2]
    return fstype == "tmpfs"


def free_bytes(path: Path) -> int:
    """Room for new files under ``path``: on tmpfs, also bounded by the RAM the machine has left.

    A tmpfs reports its size limit (often half the RAM or more), not what is actually free; filling
    it past MemAvailable would push the machine into swap or the OOM killer.
    """
    probe = _existing(path)
    free = shutil.disk_usage(probe).free
    if _on_tmpfs(probe):
        avail = _mem_available()
        if avail is not None:
            free = min(free, max(0, avail - TMPFS_RAM_MARGIN))
    return free


def warm_up(folder: Path, nbytes: int) -> int:
    """Write ``nbytes`` of zeros to a file in ``folder`` and delete it (not timed): the first tool
    to write after a workload is generated otherwise pays the kernel for the fresh pages it takes
    (on this VM's tmpfs, castoff's first card run took 17.7 s of system time, its next ones 4.5 s;
    cp's first 4.2 s, its next 2.7 s), and the interleaved order made that castoff, every time.
    Bounded by the room ``free_bytes`` leaves; returns the bytes written."""
    folder.mkdir(parents=True, exist_ok=True)
    nbytes = max(0, min(nbytes, free_bytes(folder) - (256 << 20)))
    block = bytes(4 << 20)
    path = folder / ".warm-up"
    written = 0
    try:
        with open(path, "wb") as fh:
            while written < nbytes:
                written += fh.write(block[: min(len(block), nbytes - written)])
            fh.flush()
            os.fsync(fh.fileno())
    finally:
        path.unlink(missing_ok=True)
    return written


def tree_bytes(path: Path) -> int:
    """The bytes of the regular files under ``path`` (0 when it is not there): what a folder takes,
    block rounding aside."""
    total = 0
    for folder, _, names in os.walk(path):
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                st = os.lstat(os.path.join(folder, name))
                if stat.S_ISREG(st.st_mode):
                    total += st.st_size
    return total


def reset_dir(path: Path) -> None:
    """Make ``path`` an empty folder."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)


def lock_workdir(base: Path) -> IO[bytes] | None:
    """An exclusive lock beside the work folder (None: another run holds it); kept until exit."""
    base.parent.mkdir(parents=True, exist_ok=True)
    f = (base.parent / f".{base.name}.lock").open("ab")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.close()
        return None
    return f


def claim_workdir(base: Path, cleanup: Callable[[], None]) -> IO[bytes] | None:
    """Lock ``base`` for this run and clean it up at exit; None (and a message) when another
    run holds it."""
    lock = lock_workdir(base)
    if lock is None:
        print(f"another bench run is using {base}; wait for it or pass --workdir")
        return None
    atexit.register(cleanup)
    return lock


def exit_on_signals() -> None:
    """SIGTERM and SIGHUP end the command as Ctrl-C does: finally blocks and atexit clean-ups run."""

    def on_signal(signum: int, _frame: object) -> None:
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
