"""A saved destination on a share or drive that is not mounted: its mount point is an empty folder
of the system disk, which a job must not fill with copies that only look delivered (QA L #2).

The share is a tmpfs mounted for the test (root needed: skipped otherwise), unmounted as a share
that dropped or was never mounted after a reboot."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from castoff_cli import Castoff
from engine_runner import write


def _mounted(point: Path) -> bool:
    return any(line.split()[1] == str(point) for line in Path("/proc/mounts").read_text().splitlines())


@pytest.fixture
def share(tmp_path: Path) -> Iterator[Path]:
    """An empty folder with a filesystem of its own mounted on it (a tmpfs), unmounted after."""
    if os.geteuid() != 0:
        pytest.skip("mounting a filesystem for the test needs root")
    point = tmp_path / "nas"
    point.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield point
    finally:
        if _mounted(point):
            subprocess.run(["umount", "-l", str(point)], check=False)


def test_a_saved_destination_whose_share_is_not_mounted_is_refused_not_filled(
    share: Path, tmp_path: Path
) -> None:
    """``dest add`` saves the mount the folder is on; the share unmounted, ``dest test`` says it
    is not mounted (not 'writable'), and a job refuses that destination, the other filled, and
    writes nothing into the empty mount point."""
    card = tmp_path / "card"
    write(card / "DCIM" / "100CANON" / "IMG_0001.JPG", b"one" * 100)
    castoff = Castoff(tmp_path / "user")
    added = castoff("dest", "add", "nas", "local", str(share / "shoots"))
    assert added.returncode == 0, added.stderr
    assert 'filesystem = "tmpfs"' in castoff.config.read_text()
    subprocess.run(["umount", str(share)], check=True)
    tested = castoff("dest", "test", "nas")
    assert tested.returncode != 0
    assert f"{share} is not mounted (it was tmpfs when @nas was saved)" in tested.stdout + tested.stderr
    assert "writable" not in tested.stdout + tested.stderr
    other = tmp_path / "ssd"
    done = castoff("copy", str(card), "--to", "@nas", "--to", str(other), "--no-mhl")
    assert done.returncode != 0
    assert f"@nas: cannot be used: {share} is not mounted (it was tmpfs when @nas was saved)" in done.stderr
    assert "mount it and re-run" in done.stderr
    assert (other / "card" / "DCIM" / "100CANON" / "IMG_0001.JPG").read_bytes() == b"one" * 100
    assert os.listdir(share) == []  # nothing on the system disk beneath


def test_a_folder_to_make_in_an_empty_mount_point_is_refused(tmp_path: Path) -> None:
    """``--to /mnt/nas/shoots`` with nothing mounted at /mnt/nas (an empty folder of the system
    disk): castoff would make the folder there and fill the system disk; it refuses, saying how
    to go on if that folder is meant. (/mnt as the machine has it: skipped where /mnt is a
    mount of its own.)"""
    from castoff.destinations.mounts import mount_of

    if not os.path.isdir("/mnt") or not os.access("/mnt", os.W_OK):
        pytest.skip("needs a writable /mnt")
    found = mount_of("/mnt")
    if found is None or found[0] != "/":
        pytest.skip("/mnt is not a folder of the root filesystem here")
    point = Path("/mnt") / f"castoff-test-{os.getpid()}"
    point.mkdir()
    try:
        card = tmp_path / "card"
        write(card / "IMG_0001.JPG", b"one")
        castoff = Castoff(tmp_path / "user")
        done = castoff("copy", str(card), "--to", str(point / "shoots"), "--no-mhl")
        assert done.returncode != 0
        assert f"{point} is an empty folder on the system disk" in done.stderr, done.stderr
        assert f"mkdir -p {point / 'shoots'}" in done.stderr
        assert os.listdir(point) == []
    finally:
        for sub in sorted(point.rglob("*"), reverse=True):
            sub.unlink() if sub.is_file() else sub.rmdir()
        point.rmdir()
