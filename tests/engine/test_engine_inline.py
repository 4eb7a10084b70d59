"""Small files to local folders: written by the reader in its catalog group, into unnamed files.

The reader writes, reads back and names a small file itself, and records it in the catalog
transaction it shares with the files before it (``Engine._inline``); the bytes go to a file with no
name (``O_TMPFILE``) until they are verified, or to a hidden partial file the catalog knows before
anything else happens where the filesystem cannot make one.
"""

from __future__ import annotations

import errno
import functools
import os
import sqlite3
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from castoff.catalog.group import WriteGroup
from castoff.destinations import local
from castoff.destinations.faulty import FaultPlan, FaultyDestination
from castoff.destinations.local import LocalDestination
from castoff.engine import job
from castoff.engine.job import Engine
from castoff.engine.lanes import INLINE_COMMIT_MAX
from engine_runner import Runner, touch_newer, write
from kernel_mounts import kernel_drive

FILES = {
    "card/DCIM/A.JPG": b"a" * 10_000,
    "card/DCIM/B.JPG": b"b" * INLINE_COMMIT_MAX,  # the largest file written inline
    "card/DCIM/empty.txt": b"",
    "card/CLIP/C.MOV": os.urandom(INLINE_COMMIT_MAX + 1),  # through the lane's writer
}


def make_card(root: Path) -> Path:
    for rel, data in FILES.items():
        write(root / rel, data)
    return root / "card"


def names_in(folder: Path) -> set[str]:
    return set(os.listdir(folder)) if folder.exists() else set()


def test_a_file_has_no_name_at_the_destination_until_it_is_verified(tmp_path: Path, runner: Runner) -> None:
    seen: dict[str, set[str]] = {}

    def before_commit(target: str) -> None:
        seen[os.path.basename(target)] = names_in(Path(target).parent)

    dest = FaultyDestination(LocalDestination(tmp_path / "ssd"), FaultPlan(on_commit=before_commit))
    result = runner([make_card(tmp_path / "src")], [dest], chunk_size=INLINE_COMMIT_MAX)
    assert result.exit_code == 0
    assert set(seen) == {"A.JPG", "B.JPG", "empty.txt", "C.MOV"}
    for name, present in seen.items():
        assert name not in present and not any(n.startswith(".castoff.") for n in present), (name, present)
    for rel, data in FILES.items():
        assert (tmp_path / "ssd" / rel).read_bytes() == data
    assert runner.catalog.partials(dest.ident) == []


def test_without_unnamed_files_the_catalog_knows_the_partial_before_the_commit(
    tmp_path: Path, runner: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Inside the reader's group too: the partial's row is committed (another connection sees
    it) while the file waits for its read-back, so a crash at that moment leaves nothing the next
    run cannot find and remove."""
    monkeypatch.setattr(local, "_O_TMPFILE", None)
    db_path = runner.catalog.path
    rows: dict[str, list[str]] = {}

    def before_commit(target: str) -> None:
        other = sqlite3.connect(db_path)
        try:
            rows[os.path.basename(target)] = [r[0] for r in other.execute("SELECT path FROM partials")]
        finally:
            other.close()

    dest = FaultyDestination(LocalDestination(tmp_path / "ssd"), FaultPlan(on_commit=before_commit))
    assert runner([make_card(tmp_path / "src")], [dest], chunk_size=INLINE_COMMIT_MAX).exit_code == 0

    def partial_of(target: Path) -> str:
        """The start of the partial file names of ``target`` (each upload adds a number of its own)."""
        return local.partial_path_for(str(target)).rsplit(".", 2)[0] + "."

    for name, committed in rows.items():
        assert any(
            path.startswith(partial_of(tmp_path / "ssd" / "card" / folder / name))
            for path in committed
            for folder in ("DCIM", "CLIP")
        ), (name, committed)
    assert not list((tmp_path / "ssd").rglob(".castoff.*"))
    assert runner.catalog.partials(dest.ident) == []


def _committed(db_path: Path, sql: str, *args: object) -> set[str]:
    """The first column of ``sql``'s rows in what the catalog has committed, seen from another
    connection."""
    other = sqlite3.connect(db_path)
    try:
        return {r[0] for r in other.execute(sql, args)}
    finally:
        other.close()


def _partials_known(db_path: Path) -> set[str]:
    return _committed(db_path, "SELECT path FROM partials")


@pytest.mark.parametrize("how", ["no-unnamed-files", "overwrite"])
def test_the_catalog_knows_a_partial_file_before_it_exists(
    tmp_path: Path, runner: Runner, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """A kill between the partial file's creation and its catalog row would leave a hidden file
    no run removes: the row is committed first. Partial files appear where the filesystem cannot
    make unnamed files, and where ``overwrite`` names a verified file hidden before it replaces
    the target."""
    src = make_card(tmp_path / "src")
    dest = LocalDestination(tmp_path / "ssd")
    if how == "overwrite":
        assert runner([src], [dest], chunk_size=INLINE_COMMIT_MAX).exit_code == 0
        for rel in FILES:
            path = tmp_path / "src" / rel
            path.write_bytes(path.read_bytes() + b"+")  # other bytes: each target is replaced
            touch_newer(path)
    else:
        monkeypatch.setattr(local, "_O_TMPFILE", None)
    made: list[str] = []

    def check(path: str) -> None:
        if os.path.basename(path).startswith(local.PARTIAL_PREFIX):
            assert not os.path.lexists(path) and path in _partials_known(runner.catalog.path), path
            made.append(path)

    real_open, real_link = os.open, local.link_unnamed

    def checked_open(path: Any, flags: int, *args: Any, **kw: Any) -> int:
        if flags & os.O_CREAT:
            check(os.fsdecode(path))
        return real_open(path, flags, *args, **kw)

    def checked_link(fd: int, path: str, *, sync: bool = True) -> None:
        check(path)
        real_link(fd, path, sync=sync)

    monkeypatch.setattr(local.os, "open", checked_open)
    monkeypatch.setattr(local, "link_unnamed", checked_link)
    result = runner([src], [dest], chunk_size=INLINE_COMMIT_MAX, on_conflict="overwrite")
    assert result.exit_code == 0
    assert len(made) == len(FILES)  # every file went through a partial file here
    for rel in FILES:
        assert (tmp_path / "ssd" / rel).read_bytes() == (tmp_path / "src" / rel).read_bytes()
    assert not list((tmp_path / "ssd").rglob(".castoff.*"))
    assert runner.catalog.partials(dest.ident) == []


def test_a_filesystem_that_cannot_make_unnamed_files_gets_partial_files(
    tmp_path: Path, runner: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    tmpfile = local._O_TMPFILE
    if tmpfile is None:
        pytest.skip("this system has no O_TMPFILE: partial files are the only way here")
    real_open = os.open
    refused: list[str] = []

    def no_tmpfile(path: Any, flags: int, *args: Any, **kw: Any) -> int:
        if flags & tmpfile == tmpfile:
            refused.append(str(path))
            raise OSError(errno.EOPNOTSUPP, "Operation not supported", path)
        return real_open(path, flags, *args, **kw)

    monkeypatch.setattr(local.os, "open", no_tmpfile)
    dest = LocalDestination(tmp_path / "nas")
    assert runner([make_card(tmp_path / "src")], [dest], chunk_size=INLINE_COMMIT_MAX).exit_code == 0
    assert len(refused) == 1 and dest.unnamed_files is False  # asked once, then partial files
    for rel, data in FILES.items():
        assert (tmp_path / "nas" / rel).read_bytes() == data
    assert not list((tmp_path / "nas").rglob(".castoff.*"))


def test_files_named_before_their_group_was_committed_count_as_already_there(
    tmp_path: Path, runner: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash loses the catalog group's writes, not the files it had landed: the next run
    reads those back, finds each identical, and records them once, without a second copy."""
    src = tmp_path / "src" / "card"
    for i in range(6):
        write(src / f"IMG_{i}.JPG", bytes([i]) * 5000)
    real = Engine._one_file
    seen: list[str] = []

    def crash_at_the_fifth(self: Engine, item: Any, group: Any) -> None:
        seen.append(item.rel_path)
        if len(seen) == 5:
            raise KeyboardInterrupt  # as a kill would: the group's transaction never commits
        real(self, item, group)

    monkeypatch.setattr(Engine, "_one_file", crash_at_the_fifth)
    # one group for the whole run, however slow the machine (it commits after 0.2 s otherwise)
    monkeypatch.setattr(job, "WriteGroup", functools.partial(WriteGroup, max_age=3600.0))
    dest = LocalDestination(tmp_path / "ssd")
    with pytest.raises(KeyboardInterrupt):
        runner([src], [dest])
    runner.engine.cancel.set()
    for lane in runner.engine.lanes:
        lane.stop(timeout=5)
    landed = sorted(p.name for p in (tmp_path / "ssd" / "card").iterdir())
    assert landed == [f"IMG_{i}.JPG" for i in range(4)]
    assert runner.catalog.landed_for_source(dest.ident, str(src / "IMG_0.JPG")) == []  # rolled back

    monkeypatch.setattr(Engine, "_one_file", real)
    assert runner([src], [dest]).exit_code == 0
    status = {rel: row["status"] for (rel, _), row in runner.outcomes().items()}
    assert status == {
        **{f"card/IMG_{i}.JPG": "already" for i in range(4)},
        **{f"card/IMG_{i}.JPG": "verified" for i in (4, 5)},
    }
    assert sorted(p.name for p in (tmp_path / "ssd" / "card").iterdir()) == [f"IMG_{i}.JPG" for i in range(6)]
    for i in range(6):
        assert (tmp_path / "ssd" / "card" / f"IMG_{i}.JPG").read_bytes() == bytes([i]) * 5000


def test_a_second_ctrl_c_while_the_reader_writes_quits_at_once(
    tmp_path: Path, runner: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI's second Ctrl-C raises KeyboardInterrupt in the reader; while the reader writes
    a small file itself, that must end the job at once, not be recorded as the file's error."""
    src = tmp_path / "src" / "card"
    for i in range(3):
        write(src / f"IMG_{i}.JPG", bytes([i]) * 5000)
    real = local.LocalUpload.put_part

    def ctrl_c_at_the_second(self: local.LocalUpload, *args: Any, **kw: Any) -> Any:
        if self.target.endswith("IMG_1.JPG"):
            raise KeyboardInterrupt
        return real(self, *args, **kw)

    monkeypatch.setattr(local.LocalUpload, "put_part", ctrl_c_at_the_second)
    with pytest.raises(KeyboardInterrupt):
        runner([src], [LocalDestination(tmp_path / "ssd")])
    runner.engine.cancel.set()
    for lane in runner.engine.lanes:
        lane.stop(timeout=5)
    assert not (tmp_path / "ssd" / "card" / "IMG_2.JPG").exists()


def _committed_targets(db_path: Path, dest_ident: str) -> set[str]:
    return _committed(db_path, "SELECT target FROM landed WHERE dest_ident = ?", dest_ident)


def small_files(root: Path, folders: int = 2, per_folder: int = 20) -> Path:
    for f in range(folders):
        for i in range(per_folder):
            write(root / "card" / f"DCIM{f}" / f"IMG_{i:04}.JPG", os.urandom(4096 + i))
    write(root / "card" / "CLIP" / "C.MOV", os.urandom(INLINE_COMMIT_MAX + 1))  # the lane's
    return root / "card"


@pytest.mark.parametrize("how", ["unnamed-files", "partial-files"])
def test_the_reader_syncs_each_folder_once_for_many_files_and_records_them_after(
    tmp_path: Path, runner: Runner, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """A folder fsync is a journal commit: the small files the reader lands share one per folder
    and catalog group. None of them is in the catalog before its folder is synced (seen from a
    second connection at every naming and every sync; with partial files, each file's partial
    row commits the group's transaction mid-way): a crash in between loses only names the next
    run makes again."""
    if how == "partial-files":
        monkeypatch.setattr(local, "_O_TMPFILE", None)
    named: list[str] = []
    synced: set[str] = set()
    syncs: list[str] = []
    db_path = runner.catalog.path
    ssd = LocalDestination(tmp_path / "ssd")
    ident = ssd.ident

    def check() -> None:
        early = _committed_targets(db_path, ident) - synced
        assert not any("/DCIM" in t for t in early), early

    real_link, real_rename, real_fsync_dir = local.link_unnamed, local.rename_no_replace, local.fsync_dir

    def watched_link(fd: int, path: str, *, sync: bool = True) -> None:
        check()
        real_link(fd, path, sync=sync)
        named.append(path)
        if sync:
            synced.add(path)

    def watched_rename(src: str, dst: str, **kw: Any) -> None:
        check()
        real_rename(src, dst, **kw)
        named.append(dst)

    def watched_fsync_dir(folder: str) -> None:
        real_fsync_dir(folder)
        synced.update(p for p in named if os.path.dirname(p) == folder)

    def on_sync(folder: str) -> None:
        check()
        syncs.append(folder)
        synced.update(p for p in named if os.path.dirname(p) == folder)

    monkeypatch.setattr(local, "rename_no_replace", watched_rename)
    monkeypatch.setattr(local, "fsync_dir", watched_fsync_dir)
    monkeypatch.setattr(local, "link_unnamed", watched_link)
    dest = FaultyDestination(ssd, FaultPlan(on_folder_sync=on_sync))
    src = small_files(tmp_path / "src")
    result = runner([src], [dest], chunk_size=INLINE_COMMIT_MAX)
    assert result.exit_code == 0
    assert {os.path.basename(f) for f in syncs} == {"DCIM0", "DCIM1"}  # the clip's own commit syncs
    assert len(syncs) < len(named) - 1  # far fewer syncs than files: 40 small ones
    assert _committed_targets(db_path, ident) == set(named)
    for rel in ("DCIM0/IMG_0000.JPG", "DCIM1/IMG_0019.JPG", "CLIP/C.MOV"):
        assert (tmp_path / "ssd" / "card" / rel).read_bytes() == (src / rel).read_bytes()


def _one_folder_sync_fails(
    tmp_path: Path, runner: Runner, ssd: LocalDestination, on_sync: Callable[[str], None]
) -> tuple[FaultyDestination, LocalDestination, Path, dict[tuple[str, str], Any]]:
    """Small files to ``ssd`` (its folder syncs told to ``on_sync``) and a NAS folder: the job
    ends with exit 1. The faulty SSD, the NAS, the card and the outcomes."""
    flaky = FaultyDestination(ssd, FaultPlan(on_folder_sync=on_sync))
    other = LocalDestination(tmp_path / "nas")
    src = small_files(tmp_path / "src")
    result = runner([src], [flaky, other], chunk_size=INLINE_COMMIT_MAX)
    assert result.exit_code == 1
    return flaky, other, src, runner.outcomes()


def test_a_folder_that_cannot_be_synced_fails_its_files_there_and_the_rerun_finds_them(
    tmp_path: Path, runner: Runner
) -> None:
    def on_sync(folder: str) -> None:
        if folder.endswith("DCIM1"):
            raise OSError(errno.EIO, "Input/output error")

    ssd = LocalDestination(tmp_path / "ssd")
    flaky, other, src, out = _one_folder_sync_fails(tmp_path, runner, ssd, on_sync)
    for i in range(20):
        assert out[(f"card/DCIM0/IMG_{i:04}.JPG", flaky.name)]["status"] == "verified"
        bad = out[(f"card/DCIM1/IMG_{i:04}.JPG", flaky.name)]
        assert bad["status"] == "failed" and "Input/output error" in bad["error"], bad
        assert bad["error_code"] == "destination" and "durable" in bad["error"], bad
        for d in ("DCIM0", "DCIM1"):
            assert out[(f"card/{d}/IMG_{i:04}.JPG", other.name)]["status"] == "verified"
    assert out[("card/CLIP/C.MOV", flaky.name)]["status"] == "verified"
    assert runner.catalog.partials(ssd.ident) == []
    # The names may stay: the next run reads them back and counts them as there.
    again = runner([src], [LocalDestination(tmp_path / "ssd"), LocalDestination(tmp_path / "nas")])
    assert again.exit_code == 0
    out = runner.outcomes()
    assert {out[(f"card/DCIM1/IMG_{i:04}.JPG", ssd.name)]["status"] for i in range(20)} <= {
        "already",
        "verified",
    }
    assert (tmp_path / "ssd" / "card" / "DCIM1" / "IMG_0007.JPG").read_bytes() == (
        src / "DCIM1" / "IMG_0007.JPG"
    ).read_bytes()


def _path_of(fd: int) -> str:
    return os.readlink(f"/proc/self/fd/{fd}")


def test_a_folder_sync_the_failed_drive_did_not_keep_fails_its_files_there(
    tmp_path: Path, runner: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """QA M #1, the kernel's answers injected: once the drive fails (as DCIM1's folder is to be
    synced), a folder's fsync answers 0 and a file's EIO, as on xfs shut down. Those files are
    not recorded verified: they fail there as a failed drive's, and the destination stops."""
    ssd_root = str(tmp_path / "ssd")
    failed = False
    real_fsync = os.fsync

    def kernel_fsync(fd: int) -> None:
        if failed and stat.S_ISREG(os.fstat(fd).st_mode) and _path_of(fd).startswith(ssd_root + "/"):
            raise OSError(errno.EIO, "Input/output error")
        real_fsync(fd)  # a folder's: answered 0, as the shut-down filesystem does

    def on_sync(folder: str) -> None:
        nonlocal failed
        failed = failed or folder.endswith("DCIM1")

    monkeypatch.setattr(os, "fsync", kernel_fsync)
    flaky, other, _, out = _one_folder_sync_fails(tmp_path, runner, LocalDestination(ssd_root), on_sync)
    for i in range(20):
        bad = out[(f"card/DCIM1/IMG_{i:04}.JPG", flaky.name)]
        assert bad["status"] == "failed" and bad["error_code"] == "drive-failed", bad
        assert out[(f"card/DCIM1/IMG_{i:04}.JPG", other.name)]["status"] == "verified"
        # (DCIM0's, synced in the same group, are confirmed with it: failed too, or before it)
        before = out[(f"card/DCIM0/IMG_{i:04}.JPG", flaky.name)]
        assert before["status"] == "verified" or before["error_code"] == "drive-failed", before
    assert any(f"{flaky.name}: stopped: " in line for line in runner.logs()), runner.logs()


def test_no_file_is_recorded_verified_that_a_failed_xfs_drive_did_not_keep(
    tmp_path: Path, runner: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """QA M #1 on a real xfs drive: it shuts down (as a failing drive makes it) between the
    naming of DCIM1's files and their folder's fsync, which answers 0. After a remount, every
    file the catalog calls verified there is there, with its bytes."""
    src = small_files(tmp_path / "src")
    with kernel_drive(tmp_path / "mnt", "xfs") as drive:
        real = local.fsync_dir_fd

        def failing(fd: int) -> None:
            if drive.mounted() and _path_of(fd).endswith("/DCIM1") and not failing.done:  # type: ignore[attr-defined]
                failing.done = True  # type: ignore[attr-defined]
                drive.fail()
            real(fd)

        failing.done = False  # type: ignore[attr-defined]
        monkeypatch.setattr(local, "fsync_dir_fd", failing)
        ssd = LocalDestination(drive.path / "shoot")
        result = runner([src], [ssd, LocalDestination(tmp_path / "nas")], chunk_size=INLINE_COMMIT_MAX)
        assert failing.done  # type: ignore[attr-defined]
        assert result.exit_code == 1
        drive.remount()
        verified = [r for r in runner.catalog.job_outcomes(runner.job_id) if r["dest_name"] == ssd.name]
        assert {r["status"] for r in verified if "/DCIM1/" in r["rel_path"]} == {"failed"}
        for r in verified:
            if r["status"] == "verified":
                rel = r["rel_path"].removeprefix("card/")
                assert Path(r["target"]).read_bytes() == (src / rel).read_bytes(), r["target"]
