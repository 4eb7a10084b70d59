"""A local folder as a destination, on any filesystem: naming a file without replacing one (where
the filesystem has neither RENAME_NOREPLACE nor hard links too), partial files of their own,
preallocation without glibc's emulation, files too big, names refused, times lost at a rename.

The filesystems themselves (exFAT and FAT through FUSE) are in test_local_fuse.py."""

from __future__ import annotations

import ctypes
import errno
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import blake3
import pytest

from castoff import errors
from castoff.destinations import local
from castoff.destinations.base import ObjectMeta, PartReceipt, TargetExists
from castoff.destinations.local import LocalDestination, LocalUpload
from castoff.layout import names

WHEN = 1_714_564_800 * 10**9  # 2024-05-01 12:00 UTC: far enough from now to tell a time kept


def meta(data: bytes | int, rel: str = "card/IMG_0001.JPG") -> ObjectMeta:
    size = data if isinstance(data, int) else len(data)
    return ObjectMeta(rel_path=rel, size=size, mtime_ns=WHEN, atime_ns=WHEN)


def send(dest: LocalDestination, target: str, data: bytes) -> tuple[LocalUpload, list[PartReceipt]]:
    """An upload of ``data`` to ``target``, every byte written, not committed."""
    upload = dest.start(target, meta=meta(data), part_size=len(data) or 1)
    return upload, [upload.put_part(0, 0, memoryview(data), None)]


def b3(data: bytes) -> str:
    return blake3.blake3(data).hexdigest()


@pytest.fixture
def no_atomic_naming(monkeypatch: pytest.MonkeyPatch) -> None:
    """The filesystem of a FUSE exFAT or FAT drive, as castoff meets it: no O_TMPFILE (partial
    files), no RENAME_NOREPLACE, no hard links (EPERM): naming falls back to check-then-rename."""
    monkeypatch.setattr(local, "_O_TMPFILE", None)
    monkeypatch.setattr(local, "_renameat2", None)

    def no_link(src: str, dst: str, **kw: Any) -> None:
        raise PermissionError(errno.EPERM, "Operation not permitted", src)

    monkeypatch.setattr(os, "link", no_link)


@pytest.fixture
def dest(tmp_path: Path) -> LocalDestination:
    d = LocalDestination(tmp_path / "ssd")
    d.preflight()
    return d


@pytest.mark.parametrize("namers", ["threads", "processes"])
def test_check_then_rename_never_replaces_a_file_another_names_at_once(
    dest: LocalDestination, no_atomic_naming: None, monkeypatch: pytest.MonkeyPatch, namers: str
) -> None:
    """Two committers name two files at one name at once (two cards' IMG_0001.JPG, or two names a
    drive that ignores case takes for one): two threads of one job, or two jobs copying to one
    drive (each with a destination of its own: only their flock of the root is shared). Each
    existence check is held until the other's has run too, where they can both run: without one
    lock for both, each finds the name free and the second rename replaces the first file. With
    it, one file lands and the other is told the name is taken (the engine then keeps both)."""
    both_looked = threading.Barrier(2)
    real_lexists = os.path.lexists

    def lexists(path: str) -> bool:
        found = real_lexists(path)
        if os.path.basename(path) == "IMG_0001.JPG":
            try:
                both_looked.wait(timeout=2)  # the other thread's look, if it can look now
            except threading.BrokenBarrierError:
                pass  # it cannot (it waits for the lock): named one after the other
        return found

    monkeypatch.setattr(os.path, "lexists", lexists)
    target = f"{dest.root}/card/IMG_0001.JPG"
    data = {1: b"first card " * 100, 2: b"second card " * 100}
    other = dest if namers == "threads" else LocalDestination(dest.root)
    uploads = {1: send(dest, target, data[1]), 2: send(other, target, data[2])}
    landed: dict[int, str] = {}
    refused: list[int] = []

    def commit(n: int) -> None:
        upload, receipts = uploads[n]
        try:
            landed[n] = upload.commit(receipts, source_blake3=b3(data[n])).target
        except TargetExists:
            refused.append(n)

    threads = [threading.Thread(target=commit, args=(n,)) for n in data]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(landed) == 1 and len(refused) == 1, (landed, refused)
    (winner,) = landed
    assert Path(target).read_bytes() == data[winner]  # never replaced by the other file
    (loser,) = refused
    upload, receipts = uploads[loser]
    alt = f"{dest.root}/card/IMG_0001 (2).JPG"
    assert upload.commit(receipts, source_blake3=b3(data[loser]), target=alt).target == alt
    assert Path(alt).read_bytes() == data[loser]


def test_two_uploads_to_one_name_write_partial_files_of_their_own(
    dest: LocalDestination, no_atomic_naming: None
) -> None:
    """Both written before either is named (a slow drive's committers): each has its own partial
    file, so the first one read back is its own bytes, not the second's written over them."""
    target = f"{dest.root}/card/IMG_0001.JPG"
    one, one_receipts = send(dest, target, b"1" * 5000)
    two, two_receipts = send(dest, target, b"2" * 5000)
    assert one.partial_path != two.partial_path
    assert one.commit(one_receipts, source_blake3=b3(b"1" * 5000)).target == target
    with pytest.raises(TargetExists):
        two.commit(two_receipts, source_blake3=b3(b"2" * 5000))
    alt = f"{dest.root}/card/IMG_0001 (2).JPG"
    two.commit(two_receipts, source_blake3=b3(b"2" * 5000), target=alt)
    assert Path(target).read_bytes() == b"1" * 5000
    assert Path(alt).read_bytes() == b"2" * 5000
    assert not list(Path(dest.root).rglob(".castoff.*"))


def fake_fallocate(answer: int, calls: list[int]) -> Callable[..., int]:
    """fallocate(2) as a filesystem answers it: ``answer`` as its errno (0: done)."""

    def fallocate(fd: int, mode: int, offset: int, length: int) -> int:
        calls.append(length)
        if answer == 0:
            os.ftruncate(fd, length)
            return 0
        ctypes.set_errno(answer)
        return -1

    return fallocate


def test_a_filesystem_that_cannot_preallocate_is_asked_once(
    dest: LocalDestination, monkeypatch: pytest.MonkeyPatch
) -> None:
    """EOPNOTSUPP (FUSE exFAT, FAT): remembered for the destination; the next file is written
    without asking, and nothing is written to reserve room (glibc's posix_fallocate would write
    a byte in every 4 KiB block instead: thousands of FUSE round trips)."""
    calls: list[int] = []
    monkeypatch.setattr(local, "_fallocate", fake_fallocate(errno.EOPNOTSUPP, calls))
    monkeypatch.setattr(os, "posix_fallocate", lambda *a: pytest.fail("glibc's emulation called"))
    size = local.PREALLOCATE_MIN * 3
    for n in (1, 2):
        upload = dest.start(f"{dest.root}/card/C000{n}.MP4", meta=meta(size), part_size=size)
        assert os.path.getsize(upload.data_path) == 0  # nothing written to reserve room
        upload.abort()
    assert calls == [size]
    assert dest.preallocates is False


def test_preallocating_where_the_filesystem_can(
    dest: LocalDestination, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    monkeypatch.setattr(local, "_fallocate", fake_fallocate(0, calls))
    size = local.PREALLOCATE_MIN * 2
    for n in (1, 2):
        dest.start(f"{dest.root}/card/C000{n}.MP4", meta=meta(size), part_size=size).abort()
    assert calls == [size, size]
    assert dest.preallocates is True


def test_a_file_too_big_for_the_filesystem_fails_at_once_and_leaves_nothing(
    dest: LocalDestination, monkeypatch: pytest.MonkeyPatch
) -> None:
    """EFBIG from the preallocation: that file's failure, said as such (not 're-run': the same
    command meets it again), before a byte is written; the destination stays in use."""
    monkeypatch.setattr(local, "_fallocate", fake_fallocate(errno.EFBIG, []))
    with pytest.raises(errors.FileTooBig) as caught:
        dest.start(f"{dest.root}/card/C0001.MP4", meta=meta(5 * local.PREALLOCATE_MIN), part_size=1024)
    assert "File too large" in caught.value.message
    assert "takes no file this big" in (caught.value.hint or "")
    assert not list(Path(dest.root).rglob(".castoff.*"))
    assert dest.preallocates is True


def test_efbig_when_writing_is_a_file_too_big_not_a_destination_error() -> None:
    exc = local.translate_os_error(OSError(errno.EFBIG, "File too large"), "cannot write x", fat=True)
    assert isinstance(exc, errors.FileTooBig)
    assert exc.code == "file-too-big" and not exc.retryable
    assert "FAT32 holds files of at most 4 GiB - 1 byte" in (exc.hint or "")


def test_a_fat_drive_refuses_a_file_of_4_gib_before_writing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(names, "filesystem_type", lambda path: "vfat")
    monkeypatch.setattr(local, "_fallocate", fake_fallocate(errno.EOPNOTSUPP, []))  # vfat's is real
    fat = LocalDestination(tmp_path / "card")
    fat.preflight()
    assert fat.fs_type == "vfat" and fat.max_file_size == 4 * 1024**3 - 1
    fat.start(f"{fat.root}/A.MP4", meta=meta(4 * 1024**3 - 1), part_size=8 << 20).abort()  # the most it holds
    with pytest.raises(errors.FileTooBig, match="holds files of at most 4,294,967,295 bytes"):
        fat.start(f"{fat.root}/C0001.MP4", meta=meta(4 * 1024**3), part_size=8 << 20)
    assert os.listdir(fat.root) == []


@pytest.fixture
def times_lost_at_rename(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Naming as fusefat does it: the file gets the time of its rename, not the one it had."""
    renamed: list[str] = []
    real = local.rename_no_replace

    def rename(src: str, dst: str, **kw: Any) -> None:
        real(src, dst, **kw)
        os.utime(dst)  # now
        renamed.append(dst)

    monkeypatch.setattr(local, "_O_TMPFILE", None)
    monkeypatch.setattr(local, "rename_no_replace", rename)
    return renamed


def test_times_lost_at_the_rename_are_set_again(
    dest: LocalDestination, times_lost_at_rename: list[str]
) -> None:
    for n in (1, 2, 3):
        upload, receipts = send(dest, f"{dest.root}/card/IMG_000{n}.JPG", b"x" * n)
        landed = upload.commit(receipts, source_blake3=b3(b"x" * n))
        assert os.stat(landed.target).st_mtime_ns == WHEN
    assert dest.times_kept is False
    assert len(times_lost_at_rename) == 3


def test_times_kept_at_the_rename_are_looked_at_once(
    dest: LocalDestination, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local, "_O_TMPFILE", None)
    looked: list[str] = []
    real_stat = os.stat

    def stat(path: Any, **kw: Any) -> os.stat_result:
        if isinstance(path, str) and "/card/IMG_" in path:
            looked.append(path)
        return real_stat(path, **kw)

    monkeypatch.setattr(os, "stat", stat)
    for n in (1, 2, 3):
        upload, receipts = send(dest, f"{dest.root}/card/IMG_000{n}.JPG", b"x" * n)
        upload.commit(receipts, source_blake3=b3(b"x" * n))
    assert dest.times_kept is True
    assert looked == [f"{dest.root}/card/IMG_0001.JPG"]


def test_a_name_the_filesystem_refuses_in_a_folder_castoff_may_write_in_is_a_name_problem(
    dest: LocalDestination, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fusefat answers EPERM to a name FAT cannot hold: said as that name, for that file alone,
    not as permissions to change (the folder is writable)."""
    monkeypatch.setattr(local, "_O_TMPFILE", None)

    def refuse(src: str, dst: str, **kw: Any) -> None:
        raise PermissionError(errno.EPERM, "Operation not permitted", dst)

    monkeypatch.setattr(local, "rename_no_replace", refuse)
    for folder in ("card/", ""):  # in a folder below the root, and in the root itself
        upload, receipts = send(dest, f"{dest.root}/{folder}what?.jpg", b"x")
        with pytest.raises(errors.KeyRejected) as caught:
            upload.commit(receipts, source_blake3=b3(b"x"))
        assert "the filesystem refused the name 'what?.jpg' (Operation not permitted)" in caught.value.message
        assert "rename it on the source" in (caught.value.hint or "")
        upload.abort()


def test_permission_denied_in_a_folder_castoff_may_not_write_in_is_still_said_so(
    dest: LocalDestination, monkeypatch: pytest.MonkeyPatch
) -> None:
    os.mkdir(f"{dest.root}/card")
    monkeypatch.setattr(os, "access", lambda path, mode: os.path.normpath(path) == dest.root)
    exc = dest.os_error(
        PermissionError(errno.EPERM, "Operation not permitted"),
        "cannot move x into place",
        f"{dest.root}/card",
        naming=f"{dest.root}/card/x.jpg",
    )
    assert isinstance(exc, errors.PermissionDenied)


def test_a_full_btrfs_drive_says_its_metadata_may_be_what_is_full(dest: LocalDestination) -> None:
    """QA M #3: btrfs out of room for its metadata (many small files) while df showed 103 MiB free
    said only "free space on the destination"."""
    full = OSError(errno.ENOSPC, "No space left on device")
    assert dest.translate(full, "no room for x").hint == "free space on the destination, then re-run"
    dest.fs_type = "btrfs"
    said = dest.translate(full, "no room for x")
    assert isinstance(said, errors.DestinationFull)
    assert "btrfs can run out of room for its metadata while df still shows free space" in (said.hint or "")


def test_an_eio_at_a_share_without_room_for_the_file_says_it_is_full(tmp_path: Path) -> None:
    """QA L 6: a full sshfs share answered EIO (SFTP has no "disk full"), said as "the drive or
    mount may have been removed". Where the filesystem has less room than the file needs, it
    is said full, with the figures; with room, or for another error, it is not."""
    st = os.statvfs(tmp_path)
    free = st.f_bavail * st.f_frsize
    eio = OSError(errno.EIO, os.strerror(errno.EIO))
    full = local.full_share_error(eio, "cannot write clip.mov", str(tmp_path), free + 1)
    assert isinstance(full, errors.DestinationFull)
    assert full.message.startswith(f"cannot write clip.mov: {os.strerror(errno.EIO)}: the share is full (")
    assert "more needed)" in full.message and full.hint == "free space on the destination, then re-run"
    assert local.full_share_error(eio, "cannot write clip.mov", str(tmp_path), 1) is None
    gone = OSError(errno.ENOTCONN, os.strerror(errno.ENOTCONN))
    assert local.full_share_error(gone, "cannot write clip.mov", str(tmp_path), free + 1) is None
    assert local.full_share_error(eio, "cannot write clip.mov", str(tmp_path / "nowhere"), free + 1) is None
