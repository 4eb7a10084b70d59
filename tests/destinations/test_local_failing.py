"""A local destination whose drive fails, goes read-only or is mounted read-only, on real xfs and
ext4 images mounted by the kernel (root, the tools and a loop device needed: skipped otherwise,
saying which is missing).

After a filesystem shut itself down (xfs on a failing drive) a folder's fsync answers 0 without
writing anything: a file named just before is gone after a remount. Only a file's fsync says so
(EIO), and a file counts as landed only once one has.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import blake3
import pytest

from castoff import errors
from castoff.destinations import local
from castoff.destinations.base import ObjectMeta, PartReceipt
from castoff.destinations.local import LocalDestination, LocalUpload
from kernel_mounts import KernelDrive, kernel_drive

WHEN = 1_714_564_800 * 10**9


def send(dest: LocalDestination, rel: str, data: bytes) -> tuple[LocalUpload, list[PartReceipt]]:
    meta = ObjectMeta(rel_path=rel, size=len(data), mtime_ns=WHEN, atime_ns=WHEN)
    upload = dest.start(dest.target_for(rel), meta=meta, part_size=len(data))
    return upload, [upload.put_part(0, 0, memoryview(data), None)]


def fails_at_the_folder_sync(monkeypatch: pytest.MonkeyPatch, drive: KernelDrive) -> None:
    """The drive fails right before the next folder fsync: after the names are given, before
    they are made durable (the window QA's jobs met, one in fifteen)."""
    real = local.fsync_dir_fd

    def failing(fd: int) -> None:
        if drive.mounted() and not getattr(failing, "done", False):
            failing.done = True  # type: ignore[attr-defined]
            drive.fail()
        real(fd)

    monkeypatch.setattr(local, "fsync_dir_fd", failing)


@pytest.mark.parametrize("how", ["unnamed-files", "partial-files"])
def test_a_file_named_as_the_drive_fails_is_not_landed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """QA M #1: commit returned "read-back blake3" (recorded verified) though the name it gave
    was not kept: the folder's fsync answered 0 on the shut-down filesystem."""
    if how == "partial-files":
        monkeypatch.setattr(local, "_O_TMPFILE", None)
    with kernel_drive(tmp_path, "xfs") as drive:
        dest = LocalDestination(drive.path / "shoot")
        dest.preflight()
        data = os.urandom(300_000)
        upload, parts = send(dest, "card/IMG_0001.JPG", data)
        fails_at_the_folder_sync(monkeypatch, drive)
        with pytest.raises(errors.DriveFailed) as said:
            upload.commit(parts, source_blake3=blake3.blake3(data).hexdigest())
        upload.abort()
        assert "Input/output error" in said.value.message, said.value
        assert "check it (fsck) and remount it" in (said.value.hint or ""), said.value
        drive.remount()
        assert not (drive.path / "shoot" / "card" / "IMG_0001.JPG").exists()  # not kept indeed


def test_files_named_as_the_drive_fails_fail_at_their_folder_sync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same for the small files the reader lands and syncs a folder at a time: the folder's
    sync answers 0, the confirmation (one file's fsync for the group's folders) fails, so none
    of them is recorded."""
    with kernel_drive(tmp_path, "xfs") as drive:
        dest = LocalDestination(drive.path / "shoot")
        dest.preflight()
        dest.defer_folder_syncs(True)
        landed = []
        for i in range(3):
            data = os.urandom(10_000 + i)
            upload, parts = send(dest, f"card/DCIM/IMG_{i:04}.JPG", data)
            landed.append(upload.commit(parts, source_blake3=blake3.blake3(data).hexdigest()))
        (folder,) = {x.sync_later for x in landed}
        assert folder == str(drive.path / "shoot" / "card" / "DCIM")
        fails_at_the_folder_sync(monkeypatch, drive)
        dest.sync_folder(folder)  # answers 0, having written nothing
        with pytest.raises(errors.DriveFailed):
            dest.confirm_folders({folder: landed[-1].target})
        drive.remount()  # (the names before the last one went to disk with the next file's fsync)
        assert not (drive.path / "shoot" / "card" / "DCIM" / "IMG_0002.JPG").exists()


def test_a_drive_that_fails_mid_job_is_said_to_fail_not_to_be_removed(tmp_path: Path) -> None:
    """QA M #4: EIO from a shut-down filesystem said "the drive or mount may have been removed;
    reconnect it", where the drive is there and needs a check; ext4 turned read-only after an
    error said "mounted read-only"."""
    for kind, options, code, said in (
        ("xfs", "rw", errors.DriveFailed, "the drive reported an I/O error: check it (fsck)"),
        ("ext4", "errors=remount-ro", errors.DestinationReadOnly, "the drive went read-only, as a"),
    ):
        with kernel_drive(tmp_path / kind, kind, options=options) as drive:
            dest = LocalDestination(drive.path / "shoot")
            dest.preflight()
            data = os.urandom(100_000)
            upload, parts = send(dest, "card/A.JPG", data)
            upload.commit(parts, source_blake3=blake3.blake3(data).hexdigest())
            drive.fail()
            with pytest.raises(errors.DestinationError) as caught:
                send(dest, "card/B.JPG", data)
            assert type(caught.value) is code, (kind, caught.value)
            assert said in (caught.value.hint or ""), (kind, caught.value)
            assert "removed" not in str(caught.value), (kind, caught.value)


def test_a_drive_mounted_read_only_is_said_so_whether_the_folder_is_there_or_not(tmp_path: Path) -> None:
    """QA M #6: an existing folder on a read-only mount said "cannot write to …: check permissions
    and the mount", a new one "cannot create …: Read-only file system"."""
    with kernel_drive(tmp_path, "ext4", size="64M") as drive:
        (drive.path / "shoot").mkdir()
        drive.remount("ro")
        for folder in ("shoot", "shoot2"):
            with pytest.raises(errors.DestinationReadOnly) as caught:
                LocalDestination(drive.path / folder).preflight()
            assert (
                caught.value.message
                == f"cannot write to {drive.path / folder}: the drive is mounted read-only"
            )
            assert caught.value.hint == "remount it read-write (or choose another drive), then re-run"


def test_threads_share_a_confirmation_only_when_it_began_after_their_folder_sync() -> None:
    """``Confirmations``: the sync committers of a slow drive share the fsync that confirms their
    folder fsyncs, but never one that began before theirs returned (it may have passed before
    the filesystem shut down), nor take another's failure for theirs."""
    confirmations = local.Confirmations()
    first_began, release = threading.Event(), threading.Event()
    calls: list[str] = []

    def slow_first() -> None:
        calls.append("first")
        first_began.set()
        assert release.wait(60)

    def mine(name: str, fail: bool = False) -> Callable[[], None]:
        def fsync() -> None:
            calls.append(name)
            if fail:
                raise OSError(5, "Input/output error")

        return fsync

    first = threading.Thread(target=confirmations.confirm, args=(slow_first,))
    first.start()
    assert first_began.wait(60)
    # two folder fsyncs return while the first confirmation is under way: neither may take it
    later = [threading.Thread(target=confirmations.confirm, args=(mine(n),)) for n in ("b", "c")]
    for t in later:
        t.start()
    while confirmations._synced < 3:  # both numbered, waiting for the first to end
        threading.Event().wait(0.001)
    release.set()
    for t in (first, *later):
        t.join(60)
    assert calls[0] == "first" and calls[1:] in (["b"], ["c"])  # one more fsync confirmed both
    # a confirmation that fails is that thread's: the next one tries its own
    with pytest.raises(OSError):
        confirmations.confirm(mine("d", fail=True))
    confirmations.confirm(mine("e"))
    assert calls[-2:] == ["d", "e"]


def test_a_drive_failed_before_the_job_is_said_so_at_its_start(tmp_path: Path) -> None:
    """QA M (its loops): an xfs drive shut down before the job began: preflight's look at the
    folder raised EIO, a traceback."""
    with kernel_drive(tmp_path, "xfs") as drive:
        (drive.path / "shoot").mkdir()
        drive.fail()
        with pytest.raises(errors.DriveFailed) as caught:
            LocalDestination(drive.path / "shoot").preflight()
        assert "Input/output error" in caught.value.message, caught.value
