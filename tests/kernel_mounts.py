"""Real ext4, xfs and btrfs drives for a test: an image on a loop device, mounted by the kernel,
that the test can make fail as a drive does (xfs shut down, ext4 turned read-only after an
error), or a skip saying why.

What a filesystem answers once its drive failed (a folder's fsync answering 0, a file's EIO) is
the kernel's own: no folder on the test machine's disk, nor a wrapper, shows it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

#: kind → the command that formats an image
MKFS: dict[str, tuple[str, ...]] = {
    "ext4": ("mkfs.ext4", "-q", "-F"),
    "xfs": ("mkfs.xfs", "-q", "-f"),
    "btrfs": ("mkfs.btrfs", "-q", "-f"),
}


def _run(*cmd: str) -> subprocess.CompletedProcess[str] | None:
    """The finished command, or None when it could not be run."""
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None


def _ok(*cmd: str) -> bool:
    done = _run(*cmd)
    return done is not None and done.returncode == 0


@dataclass
class KernelDrive:
    kind: str
    image: Path
    path: Path  # where it is mounted
    options: str  # its mount options beyond loop

    def mounted(self) -> bool:
        return any(
            line.split()[1] == str(self.path) for line in Path("/proc/mounts").read_text().splitlines()
        )

    def device(self) -> str:
        """The loop device it is mounted from (``loop3``)."""
        for line in Path("/proc/mounts").read_text().splitlines():
            fields = line.split()
            if fields[1] == str(self.path):
                return os.path.basename(os.path.realpath(fields[0]))
        raise AssertionError(f"{self.path} is not mounted")

    def fail(self) -> None:
        """The drive fails as a failing or pulled drive makes its filesystem do: xfs shuts down
        (every call EIO from then on), ext4 (mounted errors=remount-ro) turns read-only."""
        if self.kind == "xfs":
            done = _run("xfs_io", "-x", "-c", "shutdown", str(self.path))
            assert done is not None and done.returncode == 0, done and done.stderr
        elif self.kind == "ext4":
            Path(f"/sys/fs/ext4/{self.device()}/trigger_fs_error").write_text("1")
        else:
            raise AssertionError(f"no way to make {self.kind} fail here")

    def remount(self, options: str | None = None) -> None:
        """Unmounted (a failed filesystem's log replayed, ext4's checked) and mounted again, with
        ``options`` from now on where given."""
        assert _ok("umount", str(self.path)), f"cannot unmount {self.path}"
        if self.kind == "ext4":
            _run("e2fsck", "-fy", str(self.image))  # (exit 1: it fixed something)
        self.options = options or self.options
        assert _ok("mount", "-o", f"loop,{self.options}", str(self.image), str(self.path))


@contextmanager
def kernel_drive(
    where: Path, kind: str = "xfs", size: str = "300M", options: str = "rw", label: str = "DRIVE"
) -> Iterator[KernelDrive]:
    """A ``kind`` drive of ``size``, mounted at ``where``/``label`` with ``options``; unmounted
    afterwards, whatever the test did to it. Skips the test where the machine cannot make one:
    not root, no formatter, no loop device or the kernel lacks the filesystem."""
    if os.geteuid() != 0:
        pytest.skip(f"a real {kind} drive needs root (a loop device and a kernel mount)")
    mkfs = MKFS[kind]
    missing = [tool for tool in (mkfs[0], "mount", "umount") if shutil.which(tool) is None]
    if kind == "xfs" and shutil.which("xfs_io") is None:
        missing.append("xfs_io")
    if missing:
        pytest.skip(f"a real {kind} drive needs {', '.join(missing)} (scripts/bootstrap.sh installs them)")
    image = where / f"{label}.img"
    point = where / label
    point.mkdir(parents=True)
    _ok("truncate", "-s", size, str(image))
    if not _ok(*mkfs, str(image)):
        pytest.skip(f"{mkfs[0]} could not format an image here")
    drive = KernelDrive(kind, image, point, options)
    done = _run("mount", "-o", f"loop,{options}", str(image), str(point))
    if done is None or done.returncode != 0 or not drive.mounted():
        pytest.skip(f"the kernel could not mount a {kind} image here: {done and done.stderr.strip()}")
    try:
        yield drive
    finally:
        if drive.mounted() and not _ok("umount", str(point)):
            _ok("umount", "-l", str(point))
