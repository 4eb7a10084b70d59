"""Real exFAT and FAT32 drives for a test: an image on a loop device, mounted through FUSE (as a
card or a shuttle drive reaches a Linux machine without its kernel driver), or a skip saying why.

exFAT and FAT have no hard links (``link`` answers EPERM) and FUSE mounts have their own failures
(a drive pulled: ENOTCONN), which no folder on the test machine's own filesystem shows.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

#: kind → the command that formats an image, and the FUSE command that mounts a device at a folder
KINDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "exfat": (("mkfs.exfat",), ("mount.exfat-fuse",)),
    "fat32": (("mkfs.vfat", "-F", "32"), ("fusefat", "-o", "rw+")),
}


def _run(*cmd: str) -> str | None:
    """The command's stdout, or None when it failed."""
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    except OSError:
        return None
    return done.stdout if done.returncode == 0 else None


@dataclass(frozen=True)
class Drive:
    kind: str
    path: Path  # where it is mounted
    device: str  # its loop device

    def mounted(self) -> bool:
        return any(
            line.split()[1] == str(self.path) for line in Path("/proc/mounts").read_text().splitlines()
        )

    def daemon(self) -> int | None:
        """The process id of the FUSE daemon serving this drive (its command line names the
        device and the mount point), or None."""
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if os.fsencode(self.device) in argv and os.fsencode(str(self.path)) in argv:
                return int(entry.name)
        return None

    def pull(self) -> None:
        """The drive pulled: its FUSE daemon killed, so every call there fails (ENOTCONN)."""
        pid = self.daemon()
        assert pid is not None, f"no FUSE daemon serves {self.path}"
        os.kill(pid, signal.SIGKILL)


@contextmanager
def fat_drive(where: Path, kind: str = "exfat", size: str = "64M", label: str = "DRIVE") -> Iterator[Drive]:
    """A ``kind`` drive of ``size``, mounted at ``where``/``label``; unmounted and its loop
    device let go afterwards, whatever the test did (pulled it too). Skips the test where the
    machine cannot make one: not root, no loop devices, no formatter or FUSE driver."""
    mkfs, mount = KINDS[kind]
    if os.geteuid() != 0:
        pytest.skip(f"a real {kind} drive needs root (a loop device and a FUSE mount)")
    missing = [tool for tool in ("losetup", "umount", mkfs[0], mount[0]) if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"a real {kind} drive needs {', '.join(missing)} (scripts/bootstrap.sh installs them)")
    image = where / f"{label}.img"
    point = where / label
    point.mkdir(parents=True)
    with open(image, "wb") as fh:
        fh.truncate(_bytes(size))
    if _run(*mkfs, str(image)) is None:
        pytest.skip(f"{mkfs[0]} could not format an image here")
    device = (_run("losetup", "-f", "--show", str(image)) or "").strip()
    if not device:
        pytest.skip("no loop device is free here (losetup -f failed)")
    drive = Drive(kind, point, device)
    try:
        if _run(*mount, device, str(point)) is None or not drive.mounted():
            pytest.skip(f"{mount[0]} could not mount {device} here (no /dev/fuse?)")
        yield drive
    finally:
        if drive.mounted() and _run("umount", str(point)) is None:
            _run("umount", "-l", str(point))  # a pulled drive's mount: detached
        _run("losetup", "-d", device)


def _bytes(size: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(size[:-1]) * units[size[-1]] if size[-1] in units else int(size)
