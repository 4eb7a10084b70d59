"""The engine with real local destinations: bytes, read-back, conflicts, re-runs, source changes."""

from __future__ import annotations

import os
import shutil
import stat
import time
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

import blake3
import pytest

from castoff import errors
from castoff.destinations import local
from castoff.destinations.base import MiB
from castoff.destinations.faulty import FaultPlan, FaultyDestination, PartFault
from castoff.destinations.local import LocalDestination
from castoff.engine.job import Engine
from castoff.engine.retry import RetryPolicy
from engine_runner import Runner, write

CHUNK = 1 * MiB
FAST = {"retry": RetryPolicy(attempts=3, base=0.01, cap=0.05), "lane_pause": 0.05}


def b3(path: Path) -> str:
    return blake3.blake3(path.read_bytes()).hexdigest()


def visible_files(root: Path) -> set[str]:
    return {
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and not p.name.startswith(".castoff.")
    }


def partials(root: Path) -> list[Path]:
    return list(root.rglob(".castoff.*.partial"))


def land_then_remove_folder(tmp_path: Path, runner: Runner, dest: LocalDestination) -> Path:
    """A job makes ssd/card/DCIM (the destination remembers it); the folder is then removed."""
    write(tmp_path / "one" / "card" / "DCIM" / "A.JPG", b"a" * 1000)
    assert runner([tmp_path / "one" / "card"], [dest]).exit_code == 0
    made = tmp_path / "ssd" / "card" / "DCIM"
    (made / "A.JPG").unlink()
    made.rmdir()
    return made


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 17], ids=lambda s: f"{s}B")
def test_identical_bytes_at_every_destination(tmp_path: Path, runner: Runner, size: int) -> None:
    data = os.urandom(size)
    src = write(tmp_path / "src" / "card" / "clip.bin", data).parent
    d1, d2 = LocalDestination(tmp_path / "d1"), LocalDestination(tmp_path / "d2")
    result = runner([src], [d1, d2], chunk_size=CHUNK, memory_budget=8 * CHUNK)
    assert result.exit_code == 0
    for d in ("d1", "d2"):
        out = tmp_path / d / "card" / "clip.bin"
        assert out.read_bytes() == data
        assert out.stat().st_mtime_ns == (tmp_path / "src" / "card" / "clip.bin").stat().st_mtime_ns
        assert not partials(tmp_path / d)
    outcome = runner.outcomes()[("card/clip.bin", str(tmp_path / "d1"))]
    assert outcome["status"] == "verified"
    assert outcome["verify_method"] == "read-back blake3"


def test_several_hundred_mib_within_budget(tmp_path: Path, runner: Runner) -> None:
    src = tmp_path / "src" / "card"
    big = src / "A001C002.MOV"
    big.parent.mkdir(parents=True)
    with open(big, "wb") as fh:
        for _ in range(20):
            fh.write(os.urandom(16 * MiB))  # 320 MiB
    d1, d2 = LocalDestination(tmp_path / "d1"), LocalDestination(tmp_path / "d2")
    result = runner([src], [d1, d2], chunk_size=8 * MiB, memory_budget=64 * MiB)
    assert result.exit_code == 0
    want = b3(big)
    assert b3(tmp_path / "d1" / "card" / "A001C002.MOV") == want
    assert b3(tmp_path / "d2" / "card" / "A001C002.MOV") == want
    assert result.peak_memory <= 64 * MiB


def test_unicode_and_odd_names_kept_exactly(tmp_path: Path, runner: Runner) -> None:
    nfc = unicodedata.normalize("NFC", "Café Ångström")
    nfd = unicodedata.normalize("NFD", "Café Ångström")
    names = [f"{nfc}.jpg", f"{nfd}.jpg", "a b  c.jpg", "#%?+&=.raw", "-leading-dash.txt", "😀.heic"]
    src = tmp_path / "src" / "card"
    for i, n in enumerate(names):
        write(src / "DCIM" / n, f"photo {i}".encode())
    dest = LocalDestination(tmp_path / "d1")
    assert runner([src], [dest]).exit_code == 0
    got = sorted(os.listdir(tmp_path / "d1" / "card" / "DCIM"))
    assert got == sorted(names)
    for i, n in enumerate(names):
        assert (tmp_path / "d1" / "card" / "DCIM" / n).read_bytes() == f"photo {i}".encode()


def test_corruption_between_write_and_verify_is_caught(tmp_path: Path, runner: Runner) -> None:
    src = tmp_path / "src" / "card"
    write(src / "bad.jpg", os.urandom(5000))
    write(src / "good.jpg", os.urandom(5000))
    rotten = FaultyDestination(
        LocalDestination(tmp_path / "rot"), FaultPlan(corrupt_before_commit=["bad.jpg"])
    )
    healthy = LocalDestination(tmp_path / "ok")
    result = runner([src], [rotten, healthy], **FAST)
    assert result.exit_code == 1
    out = runner.outcomes()
    bad = out[("card/bad.jpg", rotten.name)]
    assert bad["status"] == "failed"
    assert bad["error_code"] == "integrity"
    assert "does not match" in bad["error"]
    # nothing a user could take for the file, and everything else delivered
    assert not (tmp_path / "rot" / "card" / "bad.jpg").exists()
    assert not partials(tmp_path / "rot")
    assert out[("card/good.jpg", rotten.name)]["status"] == "verified"
    assert out[("card/bad.jpg", healthy.name)]["status"] == "verified"
    assert runner.engine.lanes[0].stats.restarts >= 1  # it was sent again before giving up


def test_one_transient_corruption_is_healed_by_sending_again(tmp_path: Path, runner: Runner) -> None:
    src = tmp_path / "src" / "card"
    data = os.urandom(3 * CHUNK)
    write(src / "clip.mp4", data)
    plan = FaultPlan(corrupt_before_commit=["clip.mp4"])
    calls = {"n": 0}

    def once(target: str, index: int) -> None:
        calls["n"] += 1
        if calls["n"] > 3:  # second round: stop corrupting
            plan.corrupt_before_commit.clear()

    plan.on_put = once
    dest = FaultyDestination(LocalDestination(tmp_path / "d"), plan)
    result = runner([src], [dest], chunk_size=CHUNK, **FAST)
    assert result.exit_code == 0
    assert (tmp_path / "d" / "card" / "clip.mp4").read_bytes() == data
    detail = runner.outcomes()[("card/clip.mp4", dest.name)]["detail"]
    assert "sent again" in detail


def test_source_modified_during_read_leaves_nothing(tmp_path: Path, runner: Runner) -> None:
    src = tmp_path / "src" / "card"
    victim = write(src / "growing.mov", os.urandom(4 * CHUNK))
    write(src / "stable.jpg", b"stable")

    def touch_source() -> None:
        with open(victim, "ab") as fh:
            fh.write(b"more")

    row = _changed_during_the_read(tmp_path, runner, victim, touch_source)
    assert row["status"] == "failed"
    assert row["error_code"] == "source-changed"


def _changed_during_the_read(tmp_path: Path, runner: Runner, victim: Path, change: Callable[[], None]) -> Any:
    """Copy the card of ``victim`` (and its stable.jpg) to two folders, calling ``change`` as the
    first folder writes the victim's first part (the read is not done: the budget holds two
    parts): the job fails, the victim lands at neither folder, nothing half-written is left, the
    other file lands. Its file row."""
    src = victim.parent

    def at_first_part(target: str, index: int) -> None:
        if target.endswith(victim.name) and index == 0:
            change()

    d1 = FaultyDestination(LocalDestination(tmp_path / "d1"), FaultPlan(on_put=at_first_part))
    d2 = LocalDestination(tmp_path / "d2")
    result = runner([src], [d1, d2], chunk_size=CHUNK, memory_budget=2 * CHUNK, **FAST)
    assert result.exit_code == 1
    for d in ("d1", "d2"):
        assert not (tmp_path / d / src.name / victim.name).exists()
        assert (tmp_path / d / src.name / "stable.jpg").read_bytes() == b"stable"
        assert not partials(tmp_path / d)
    return next(r for r in runner.catalog.job_files(runner.job_id) if r["rel_path"].endswith(victim.name))


def test_a_source_rewritten_in_place_during_the_read_with_its_mtime_set_back_leaves_nothing(
    tmp_path: Path, runner: Runner
) -> None:
    """QA N #1: a writer rewrites the whole file in place while it is read, then sets its mtime
    back (``touch -r``): same size, same mtime, same inode. The read holds old bytes and new, and
    each copy would read back as those very bytes: only the change time, which no writer can set,
    tells. Nothing lands, the file fails as changed, and the next run copies it whole."""
    src = tmp_path / "src" / "card"
    old, new = os.urandom(4 * CHUNK), os.urandom(4 * CHUNK)
    victim = write(src / "edit.mov", old)
    mtime = victim.stat().st_mtime_ns
    write(src / "stable.jpg", b"stable")

    def rewrite_source() -> None:
        with open(victim, "r+b") as fh:
            fh.write(new)
        os.utime(victim, ns=(mtime, mtime))

    row = _changed_during_the_read(tmp_path, runner, victim, rewrite_source)
    assert (row["status"], row["error_code"]) == ("failed", "source-changed")
    assert "change time" in row["error"]


def _delete_after_the_scan(monkeypatch: pytest.MonkeyPatch, delete: Callable[[str], None]) -> None:
    """The job's scan calls ``delete`` with each file's path as it lists it: gone before its read."""
    from castoff.engine import job as job_module
    from castoff.scan import SourceFile, scan

    def scan_then_delete(sources, filters, destinations, **kw):  # type: ignore[no-untyped-def]
        for item in scan(sources, filters, destinations, **kw):
            if isinstance(item, SourceFile):
                delete(item.abs_path)
            yield item

    monkeypatch.setattr(job_module, "scan", scan_then_delete)


def test_a_file_deleted_after_the_scan_from_its_folder_is_left_out_not_failed(
    tmp_path: Path, runner: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """QA N #8: an editor's lock file in a project folder, listed by the scan and deleted before
    castoff opened it, failed the job (exit 1, "failed 1", a re-run with nothing to retry). Its
    folder is still there: it is left out (code vanished), said once, written nowhere, and the
    job ends as it would without it. Its earlier copy's "verified there before" at one
    destination goes too: nothing is said of the file anywhere."""
    src = tmp_path / "src" / "card"
    write(src / "a.jpg", b"a")
    lock = write(src / "z.~lock.report.odt#", b"lock")
    d1 = LocalDestination(tmp_path / "d1")
    assert runner([src], [d1]).exit_code == 0  # verified at d1: only d2 reads it now
    d2 = LocalDestination(tmp_path / "d2")
    _delete_after_the_scan(monkeypatch, lambda path: os.unlink(path) if path == str(lock) else None)
    result = runner([src], [d1, d2])
    assert result.exit_code == 0, runner.logs()
    assert (result.files, result.vanished, result.bytes) == (1, 1, 1)
    files = {r["rel_path"]: r for r in runner.catalog.job_files(runner.job_id)}
    row = files["card/z.~lock.report.odt#"]
    assert (row["status"], row["error_code"]) == ("skipped", "vanished")
    assert row["error"] == "deleted after the scan, before castoff read it"
    assert {k[0] for k in runner.outcomes()} == {"card/a.jpg"}  # none for the file left out
    said = [
        e.data["message"]
        for e in runner.events
        if e.kind == "log" and e.data["level"] != "debug" and "z.~lock" in str(e.data["message"])
    ]
    assert said == ["skip: card/z.~lock.report.odt#: deleted after the scan, before castoff read it"]
    assert not (tmp_path / "d2" / "card" / "z.~lock.report.odt#").exists()
    assert (tmp_path / "d2" / "card" / "a.jpg").read_bytes() == b"a"
    assert not partials(tmp_path / "d2")
    counts = result.lanes
    assert (counts[d1.name]["files_total"], counts[d1.name]["skipped"], counts[d1.name]["bytes_skipped"]) == (
        1,
        1,
        1,
    )
    assert (counts[d2.name]["files_total"], counts[d2.name]["verified"], counts[d2.name]["failed"]) == (
        1,
        1,
        0,
    )
    assert result.released


@pytest.mark.parametrize("folder", ["stays", "goes"])
def test_a_file_listed_then_gone_as_the_scan_looks_at_it(
    tmp_path: Path, runner: Runner, monkeypatch: pytest.MonkeyPatch, folder: str
) -> None:
    """QA N #8, as QA met it: the scan lists a folder, then looks at each file as the job gets to
    it; an editor's lock file deleted in between is gone at that look. Its folder still there, it
    is left out as one deleted before its read is; gone with its folder, it fails, as before."""
    src = tmp_path / "src" / "card"
    write(src / "DCIM" / "a.jpg", b"a")
    lock = write(src / "DCIM" / "z.~lock.report.odt#", b"lock")
    write(src / "other.jpg", b"o")

    def delete_the_next_one(path: str) -> None:  # listed with a.jpg, looked at after it
        if path.endswith("a.jpg"):
            lock.unlink() if folder == "stays" else shutil.rmtree(lock.parent)

    _delete_after_the_scan(monkeypatch, delete_the_next_one)
    result = runner([src], [LocalDestination(tmp_path / "d")])
    row = {r["rel_path"]: r for r in runner.catalog.job_files(runner.job_id)}["card/DCIM/z.~lock.report.odt#"]
    if folder == "stays":
        assert result.exit_code == 0, runner.logs()
        assert (result.files, result.vanished) == (2, 1)
        assert (row["status"], row["error_code"], row["error"]) == (
            "skipped",
            "vanished",
            "deleted after the scan, before castoff read it",
        )
    else:
        assert result.exit_code == 1 and result.vanished == 0
        assert (row["status"], row["error_code"]) == ("failed", "source-vanished")
    assert (tmp_path / "d" / "card" / "other.jpg").read_bytes() == b"o"


def test_a_file_deleted_with_its_folder_after_the_scan_still_fails(
    tmp_path: Path, runner: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file gone with its folder (a card pulled takes its folders along) is not taken for an
    editor's temp file: it fails, as before, and the job exits 1."""
    src = tmp_path / "src" / "card"
    write(src / "a.jpg", b"a")
    gone = write(src / "DCIM" / "b.jpg", b"b")

    def remove_its_folder(path: str) -> None:
        if path == str(gone):
            shutil.rmtree(gone.parent)

    _delete_after_the_scan(monkeypatch, remove_its_folder)
    dest = LocalDestination(tmp_path / "d")
    result = runner([src], [dest])
    assert result.exit_code == 1
    assert result.vanished == 0
    files = {r["rel_path"]: r for r in runner.catalog.job_files(runner.job_id)}
    assert (files["card/DCIM/b.jpg"]["status"], files["card/DCIM/b.jpg"]["error_code"]) == (
        "failed",
        "source-vanished",
    )
    assert "vanished" in files["card/DCIM/b.jpg"]["error"]
    assert (tmp_path / "d" / "card" / "a.jpg").read_bytes() == b"a"
    assert not (tmp_path / "d" / "card" / "DCIM" / "b.jpg").exists()


def test_rerun_skips_what_is_verified_and_recopies_what_went_missing(tmp_path: Path, runner: Runner) -> None:
    src = tmp_path / "src" / "card"
    for i in range(5):
        write(src / f"IMG_{i}.JPG", os.urandom(1000 + i))
    dest = LocalDestination(tmp_path / "d")
    assert runner([src], [dest]).exit_code == 0
    (tmp_path / "d" / "card" / "IMG_3.JPG").unlink()
    assert runner([src], [dest]).exit_code == 0
    out = runner.outcomes()
    statuses = {k[0]: v["status"] for k, v in out.items()}
    assert statuses.pop("card/IMG_3.JPG") == "verified"
    assert set(statuses.values()) == {"skipped"}
    assert any("skip: card/IMG_0.JPG: verified at" in m for m in runner.logs())
    assert (tmp_path / "d" / "card" / "IMG_3.JPG").read_bytes() == (src / "IMG_3.JPG").read_bytes()


def _conflict_setup(tmp_path: Path) -> tuple[Path, Path]:
    src = tmp_path / "src" / "card"
    write(src / "same.jpg", b"same bytes")
    write(src / "diff.jpg", b"new bytes")
    d = tmp_path / "d" / "card"
    write(d / "same.jpg", b"same bytes")
    write(d / "diff.jpg", b"old bytes")
    return src, tmp_path / "d"


@pytest.mark.parametrize("policy", ["rename", "skip", "overwrite", "fail"])
def test_conflicts_never_overwrite_silently(tmp_path: Path, runner: Runner, policy: str) -> None:
    src, droot = _conflict_setup(tmp_path)
    dest = LocalDestination(droot)
    result = runner([src], [dest], on_conflict=policy)
    out = runner.outcomes()
    # identical bytes already there count as delivered, whatever the policy (overwrite included:
    # nothing to replace)
    assert out[("card/same.jpg", dest.name)]["status"] == "already"
    diff = out[("card/diff.jpg", dest.name)]
    if policy == "rename":
        assert result.exit_code == 0
        assert (droot / "card" / "diff.jpg").read_bytes() == b"old bytes"
        assert (droot / "card" / "diff (2).jpg").read_bytes() == b"new bytes"
        assert diff["target"].endswith("diff (2).jpg")
        assert "kept both" in diff["detail"]
    elif policy == "skip":
        # not delivered, and said so: its own status, exit 1, and the card is not released
        assert result.exit_code == 1
        assert diff["status"] == "conflict"
        assert "NOT copied" in diff["detail"]
        assert not result.released
        assert (droot / "card" / "diff.jpg").read_bytes() == b"old bytes"
    elif policy == "overwrite":
        assert result.exit_code == 0
        assert (droot / "card" / "diff.jpg").read_bytes() == b"new bytes"
        # what it replaced, said in the log and the report (what the user asked for, never unsaid)
        assert diff["detail"].startswith("replaced the file that was there (9 B, modified ")
        assert diff["detail"].endswith(" (--on-conflict overwrite)")
        assert any("card/diff.jpg: replaced the file that was there" in m for m in runner.logs())
    else:
        assert result.exit_code == 1
        assert diff["status"] == "failed"
        assert diff["error_code"] == "conflict"
        assert (droot / "card" / "diff.jpg").read_bytes() == b"old bytes"
    assert not partials(droot)
    # a re-run changes nothing and does not create "diff (3).jpg"
    runner([src], [dest], on_conflict=policy)
    assert not (droot / "card" / "diff (3).jpg").exists()


@pytest.mark.parametrize("first", ["ssd", "nas"])
def test_a_file_kept_beside_others_at_two_drives_takes_one_number_wherever_it_can(
    tmp_path: Path, runner: Runner, first: str
) -> None:
    """QA K 2: the SSD holds earlier cards' photo.jpg and photo (2).jpg, the NAS only photo.jpg.
    Each drive took the first number free there: this photo was photo (3).jpg at the SSD and
    photo (2).jpg at the NAS. The first drive to keep it beside the others decides its number,
    the other takes it too where it is free (the NAS keeps it as photo (3).jpg, not as the (2)
    free there), and says so where it is not (the SSD, after the NAS took (2))."""
    src = tmp_path / "src" / "card"
    write(src / "photo.jpg", b"new bytes")  # small: the reader lands it at each drive in turn
    ssd, nas = tmp_path / "ssd", tmp_path / "nas"
    write(ssd / "card" / "photo.jpg", b"old bytes")
    write(ssd / "card" / "photo (2).jpg", b"older bytes")
    write(nas / "card" / "photo.jpg", b"old bytes")
    drives = {"ssd": LocalDestination(ssd, name="ssd"), "nas": LocalDestination(nas, name="nas")}
    assert runner([src], sorted(drives.values(), key=lambda d: d.name != first)).exit_code == 0
    out = runner.outcomes()
    said = f"{ssd}/card/photo.jpg exists with other content: kept both"
    if first == "ssd":
        assert (nas / "card" / "photo (3).jpg").read_bytes() == b"new bytes"
        assert not (nas / "card" / "photo (2).jpg").exists()
        assert out[("card/photo.jpg", "ssd")]["detail"] == said
    else:
        assert (nas / "card" / "photo (2).jpg").read_bytes() == b"new bytes"
        assert out[("card/photo.jpg", "ssd")]["detail"] == (
            f"{said}, this copy is {ssd}/card/photo (3).jpg; {ssd}/card/photo (2).jpg, its name at nas,"
            " is taken here"
        )
    assert (ssd / "card" / "photo (3).jpg").read_bytes() == b"new bytes"
    assert (ssd / "card" / "photo (2).jpg").read_bytes() == b"older bytes"


def test_a_keep_both_name_deleted_at_the_destination_is_not_given_to_other_bytes(
    tmp_path: Path, runner: Runner
) -> None:
    """QA N #4: edits of a file landed as ``a (2).txt``, ``a (3).txt``; the user deleted
    ``a (2).txt``; the next edit took that name again, though the catalog knows it at that drive
    with another edit's bytes (in the job that landed it: ``landed`` has the file's latest copy
    alone). It takes the next free number; the same bytes again find their own copy."""
    src = tmp_path / "src" / "card"
    ssd = tmp_path / "ssd"
    dest = LocalDestination(ssd)
    for data in (b"v1", b"v2", b"v3"):
        write(src / "a.txt", data)
        assert runner([src], [dest]).exit_code == 0
    (ssd / "card" / "a (2).txt").unlink()
    write(src / "a.txt", b"v4")
    assert runner([src], [dest]).exit_code == 0
    assert not (ssd / "card" / "a (2).txt").exists()
    assert (ssd / "card" / "a (4).txt").read_bytes() == b"v4"
    assert runner([src], [dest], rehash=True).exit_code == 0  # found at (4): nothing new
    assert visible_files(ssd) == {"card/a.txt", "card/a (3).txt", "card/a (4).txt"}
    assert runner.outcomes()[("card/a.txt", str(ssd))]["status"] == "already"


@pytest.mark.parametrize("rehash", [True, False])
@pytest.mark.parametrize("policy", ["skip", "fail", "overwrite"])
def test_a_copy_kept_beside_a_conflict_is_found_whatever_the_policy(
    tmp_path: Path, runner: Runner, policy: str, rehash: bool
) -> None:
    """QA: after a rename landed "diff (2).jpg", ``--rehash --on-conflict skip`` said the file was
    NOT copied (a conflict, exit 1) and ``fail`` failed it, where a plain --rehash finds it there.
    The policy applies only where no copy of this file is there."""
    src, droot = _conflict_setup(tmp_path)
    dest = LocalDestination(droot)
    assert runner([src], [dest]).exit_code == 0
    assert (droot / "card" / "diff (2).jpg").read_bytes() == b"new bytes"
    result = runner([src], [dest], on_conflict=policy, rehash=rehash)
    diff = runner.outcomes()[("card/diff.jpg", dest.name)]
    assert result.exit_code == 0, (diff, runner.logs())
    assert diff["status"] == ("already" if rehash else "skipped"), diff
    assert diff["target"].endswith("diff (2).jpg"), diff
    assert result.released
    assert (droot / "card" / "diff.jpg").read_bytes() == b"old bytes"  # the other file, kept
    assert not (droot / "card" / "diff (3).jpg").exists()
    assert not partials(droot)


def test_overwrite_leaves_a_file_that_holds_these_very_bytes_and_replaces_one_that_does_not(
    tmp_path: Path, runner: Runner
) -> None:
    """QA: ``--rehash --on-conflict overwrite`` wrote a verified copy again and said it "replaced
    the file that was there", the same bytes: it is already there (the issue's rule for a target
    with the same BLAKE3), whatever the policy; other bytes there are replaced, and said."""
    src = write(tmp_path / "src" / "card" / "m.txt", b"the photo").parent
    dest = LocalDestination(tmp_path / "ssd")
    assert runner([src], [dest]).exit_code == 0
    copy = tmp_path / "ssd" / "card" / "m.txt"
    inode = copy.stat().st_ino
    assert runner([src], [dest], on_conflict="overwrite", rehash=True).exit_code == 0
    row = runner.outcomes()[("card/m.txt", dest.name)]
    assert row["status"] == "already", row
    assert copy.stat().st_ino == inode  # not written again
    assert not any("replaced" in m for m in runner.logs()), runner.logs()
    copy.write_bytes(b"someone else's")
    assert runner([src], [dest], on_conflict="overwrite", rehash=True).exit_code == 0
    row = runner.outcomes()[("card/m.txt", dest.name)]
    assert row["status"] == "verified" and "replaced the file that was there" in row["detail"], row
    assert copy.read_bytes() == b"the photo"


def test_destination_failing_mid_job_does_not_stop_the_others(tmp_path: Path, runner: Runner) -> None:
    src = tmp_path / "src" / "card"
    for i in range(6):
        write(src / f"f{i}.bin", os.urandom(CHUNK))
    dying = FaultyDestination(LocalDestination(tmp_path / "usb"), FaultPlan(vanish_after_bytes=2 * CHUNK))
    readonly = FaultyDestination(
        LocalDestination(tmp_path / "ro"),
        FaultPlan(
            part_faults=[
                PartFault("f", lambda: errors.DestinationReadOnly("read-only file system"), times=99)
            ]
        ),
    )
    ok = LocalDestination(tmp_path / "ok")
    result = runner([src], [dying, readonly, ok], chunk_size=CHUNK, **FAST)
    assert result.exit_code == 1
    assert visible_files(tmp_path / "ok") == {f"card/f{i}.bin" for i in range(6)}
    out = runner.outcomes()
    assert {out[(f"card/f{i}.bin", readonly.name)]["status"] for i in range(6)} == {"failed"}
    dying_status = [out[(f"card/f{i}.bin", dying.name)]["status"] for i in range(6)]
    # How many files landed before the drive vanished depends on how far the lane's writer ran
    # ahead of its committer (a file written but not yet read back fails with the drive): what
    # must hold is that the ones that landed are whole and the rest failed plainly.
    n_ok = dying_status.count("verified")
    assert n_ok <= 2
    assert dying_status == ["verified"] * n_ok + ["failed"] * (6 - n_ok)
    assert visible_files(tmp_path / "usb") == {f"card/f{i}.bin" for i in range(n_ok)}
    assert out[("card/f5.bin", dying.name)]["error_code"] == "destination-gone"
    assert not partials(tmp_path / "usb") and not partials(tmp_path / "ro")


@pytest.mark.parametrize("how", ["unlink-fails", "unmounted"])
def test_a_partial_file_whose_removal_failed_is_removed_by_the_next_run(
    tmp_path: Path, runner: Runner, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """A share that drops mid-file (QA L 3): the partial file cannot be removed then, so the
    catalog keeps it, and the next run, the share back, removes it. It used to drop the row
    whatever the unlink said: the partial stayed on the NAS for good, known to no run.
    ``unlink-fails``: the unlink meets an error; ``unmounted``: the share's path now leads into
    the empty mount point, where the unlink finds nothing (that is no proof it is gone)."""
    monkeypatch.setattr(local, "_O_TMPFILE", None)  # a share: named partial files
    src = tmp_path / "src" / "card"
    write(src / "clip.mov", os.urandom(3 * CHUNK))
    nas = tmp_path / "nas"
    away = tmp_path / "away"
    moved: list[Path] = []

    def drop(target: str, index: int) -> None:
        """The share drops at the file's second part."""
        if index != 1:
            return
        (partial,) = partials(nas)
        moved.append(partial)
        if how == "unmounted":
            nas.rename(away)
            nas.mkdir()
        else:  # a folder with a file in it stands at its name: the unlink fails
            away.mkdir()
            partial.rename(away / partial.name)
            write(partial / "in-the-way", b"")
        raise errors.DestinationGone("the share stopped answering (injected)")

    dest = FaultyDestination(LocalDestination(nas), FaultPlan(on_put=drop))
    assert runner([src], [dest], chunk_size=CHUNK, **FAST).exit_code == 1
    (partial,) = moved
    assert runner.catalog.partials(dest.ident) == [str(partial)], "the catalog forgot the partial file"
    # The share is back, with the partial file on it.
    if how == "unmounted":
        nas.rmdir()
        away.rename(nas)
    else:
        (partial / "in-the-way").unlink()
        partial.rmdir()
        (away / partial.name).rename(partial)
    assert partial.is_file()
    assert runner([src], [LocalDestination(nas)], chunk_size=CHUNK).exit_code == 0, runner.logs()
    assert not partial.exists() and partials(nas) == []
    assert runner.catalog.partials(dest.ident) == []
    assert (nas / "card" / "clip.mov").read_bytes() == (src / "clip.mov").read_bytes()


def test_a_slow_destination_does_not_stall_a_fast_one(tmp_path: Path, runner: Runner) -> None:
    src = tmp_path / "src" / "card"
    for i in range(12):
        write(src / f"clip{i:02}.mov", os.urandom(2 * CHUNK))
    order: list[str] = []
    slow = FaultyDestination(LocalDestination(tmp_path / "nas"), FaultPlan(bytes_per_second=20 * CHUNK))
    fast = LocalDestination(tmp_path / "ssd")
    result = runner([src], [slow, fast], chunk_size=CHUNK, memory_budget=8 * CHUNK)
    assert result.exit_code == 0
    for e in runner.events:
        if e.kind == "file-done":
            order.append(str(e.data["dest"]))
    # the SSD finished all of its files before the NAS finished its last
    last_fast = max(i for i, d in enumerate(order) if d == fast.name)
    last_slow = max(i for i, d in enumerate(order) if d == slow.name)
    assert last_fast < last_slow
    assert any("continues from a verified copy" in m for m in runner.logs())
    assert result.peak_memory <= 8 * CHUNK
    for i in range(12):
        name = f"clip{i:02}.mov"
        assert b3(tmp_path / "nas" / "card" / name) == b3(src / name)
        assert b3(tmp_path / "ssd" / "card" / name) == b3(src / name)
    assert result.released


def test_junk_symlinks_and_special_files_are_left_out_and_reported(tmp_path: Path, runner: Runner) -> None:
    src = tmp_path / "src" / "card"
    write(src / "DCIM" / "IMG_1.JPG", b"jpg")
    for junk in (".DS_Store", "._IMG_1.JPG", "Thumbs.db", "desktop.ini"):
        write(src / "DCIM" / junk, b"junk")
    write(src / ".Spotlight-V100" / "store.db", b"junk")
    os.symlink("/etc/hostname", src / "link")
    os.mkfifo(src / "fifo")
    write(src / "notes.txt", b"notes")
    dest = LocalDestination(tmp_path / "d")
    assert runner([src], [dest], **{"filters": _filters(exclude=("*.txt",))}).exit_code == 0
    assert visible_files(tmp_path / "d") == {"card/DCIM/IMG_1.JPG"}
    codes = {
        r["rel_path"]: r["error_code"]
        for r in runner.catalog.job_files(runner.job_id)
        if r["status"] == "skipped"
    }
    assert codes["card/link"] == "symlink"
    assert codes["card/fifo"] == "special"
    assert codes["card/notes.txt"] == "excluded"
    assert codes["card/DCIM/.DS_Store"] == "junk"


def _filters(**kw: object) -> object:
    from castoff.scan import Filters

    return Filters(**kw)  # type: ignore[arg-type]


def test_symlink_in_destination_leading_outside_is_refused(tmp_path: Path, runner: Runner) -> None:
    src = tmp_path / "src" / "card"
    write(src / "DCIM" / "a.jpg", b"a")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (tmp_path / "d" / "card").mkdir(parents=True)
    os.symlink(outside, tmp_path / "d" / "card" / "DCIM")
    dest = LocalDestination(tmp_path / "d")
    assert runner([src], [dest]).exit_code == 1
    assert not list(outside.iterdir())


def test_a_missing_root_is_said_as_missing_not_as_a_symlink(tmp_path: Path) -> None:
    """QA: a folder asked for under a destination whose root does not exist (its parent neither)
    was refused "… leads outside the destination … (through a symlink)": the nearest folder that
    exists is above the root because the root is missing, not because of a link."""
    dest = LocalDestination(tmp_path / "notmounted" / "shoots")
    with pytest.raises(errors.DestinationGone) as said:
        dest.make_folder(dest.target_for("castoff-reports"))
    assert said.value.message == f"destination {tmp_path / 'notmounted' / 'shoots'} does not exist"
    assert not (tmp_path / "notmounted").exists()


def test_files_waiting_for_their_commit_hold_no_descriptors(tmp_path: Path, runner: Runner) -> None:
    """Thousands of small files can be written faster than they are verified: the backlog is
    bounded, and a written file waiting for its commit keeps no file open."""
    src = tmp_path / "src" / "card"
    for i in range(300):
        write(src / f"d{i % 7}" / f"f{i:04}.bin", os.urandom(1024))
    open_fds: list[int] = []

    def slow_commit(target: str) -> None:
        open_fds.append(len(os.listdir("/proc/self/fd")))
        time.sleep(0.005)

    baseline = len(os.listdir("/proc/self/fd"))
    slow = FaultyDestination(LocalDestination(tmp_path / "nas"), FaultPlan(on_commit=slow_commit))
    result = runner([src], [slow], chunk_size=CHUNK)
    assert result.exit_code == 0
    assert len(visible_files(tmp_path / "nas")) == 300
    assert open_fds and max(open_fds) - baseline < 40, max(open_fds) - baseline


def test_a_folder_removed_after_this_destination_made_it_is_made_again(
    tmp_path: Path, runner: Runner
) -> None:
    """The destination remembers the folders it made (and checked) in a job; one removed since
    is made, and checked, again rather than failing the file."""
    dest = LocalDestination(tmp_path / "ssd")
    made = land_then_remove_folder(tmp_path, runner, dest)
    write(tmp_path / "two" / "card" / "DCIM" / "B.JPG", b"b" * 1000)
    result = runner([tmp_path / "two" / "card"], [dest])
    assert result.exit_code == 0, runner.logs()
    assert (made / "B.JPG").read_bytes() == b"b" * 1000


def test_a_folder_made_earlier_and_since_turned_into_a_link_out_is_refused(
    tmp_path: Path, runner: Runner
) -> None:
    dest = LocalDestination(tmp_path / "ssd")
    made = land_then_remove_folder(tmp_path, runner, dest)
    outside = tmp_path / "outside"
    outside.mkdir()
    made.symlink_to(outside)
    write(tmp_path / "two" / "card" / "DCIM" / "B.JPG", b"b" * 1000)
    assert runner([tmp_path / "two" / "card"], [dest]).exit_code == 1
    assert list(outside.iterdir()) == []


def test_a_link_given_the_inode_number_of_a_folder_made_earlier_is_refused(tmp_path: Path) -> None:
    """A freed inode number is soon reused (ext4 does), so a link put where a folder this job made
    was can have that folder's number: what the destination remembers must not let it through.
    The reuse is set up directly here; the test above meets it by chance."""
    dest = LocalDestination(tmp_path / "ssd")
    dest.preflight()
    folder = os.path.join(dest.root, "card", "DCIM")
    dest.make_folder(folder)
    os.rmdir(folder)
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, folder)
    st = os.lstat(folder)
    dest._made[folder] = (st.st_dev, st.st_ino)  # as if the link had taken the folder's number
    with pytest.raises(errors.KeyRejected):
        dest.make_folder(folder)


def test_a_folder_above_one_made_earlier_since_turned_into_a_link_out_is_refused(
    tmp_path: Path, runner: Runner
) -> None:
    """ssd/card becomes a link to a folder outside that holds a DCIM of its own: that DCIM is a
    folder, and a new folder there often takes the removed ssd/card/DCIM's inode number (ext4)."""
    dest = LocalDestination(tmp_path / "ssd")
    made = land_then_remove_folder(tmp_path, runner, dest)
    made.parent.rmdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    made.parent.symlink_to(outside)
    (outside / "DCIM").mkdir()
    write(tmp_path / "two" / "card" / "DCIM" / "B.JPG", b"b" * 1000)
    assert runner([tmp_path / "two" / "card"], [dest]).exit_code == 1
    assert list((outside / "DCIM").iterdir()) == []


def test_a_folder_with_the_number_of_one_made_earlier_behind_a_link_above_is_refused(
    tmp_path: Path,
) -> None:
    """The reuse the test above meets by chance, set up directly: the folder the path now leads
    to, through a link above it, has the number of the folder made there before."""
    dest = LocalDestination(tmp_path / "ssd")
    dest.preflight()
    folder = os.path.join(dest.root, "card", "DCIM")
    dest.make_folder(folder)
    os.rmdir(folder)
    os.rmdir(os.path.dirname(folder))
    outside = tmp_path / "outside"
    (outside / "DCIM").mkdir(parents=True)
    os.symlink(outside, os.path.dirname(folder))
    st = os.lstat(folder)
    dest._made[folder] = (st.st_dev, st.st_ino)  # as if the new folder had taken the old number
    with pytest.raises(errors.KeyRejected):
        dest.make_folder(folder)


def test_a_folder_made_beside_one_made_earlier_is_checked_and_its_name_made_durable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A folder made in a folder this destination knows (card, above card/A) is made with a look
    at that one instead of a resolution of its whole path: a link out planted at its name is
    still refused, a file there still named, and the name of a folder made is still fsynced."""
    dest = LocalDestination(tmp_path / "ssd")
    dest.preflight()
    card = os.path.join(dest.root, "card")
    dest.make_folder(os.path.join(card, "A"))
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, os.path.join(card, "B"))
    with pytest.raises(errors.KeyRejected):
        dest.make_folder(os.path.join(card, "B"))
    write(Path(card) / "C", b"a file")
    with pytest.raises(errors.KeyRejected, match="is a file, where a folder is needed"):
        dest.make_folder(os.path.join(card, "C"))
    synced: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    dest.make_folder(os.path.join(card, "D"))
    assert os.path.isdir(os.path.join(card, "D")) and synced == [card]
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize("in_the_way", ["card", "card/DCIM"])
def test_a_file_where_a_folder_is_needed_is_named(tmp_path: Path, in_the_way: str) -> None:
    """Before: "cannot create folder …/card/DCIM/100CANON: File exists", naming the folder wanted
    and not the file in its way."""
    dest = LocalDestination(tmp_path / "ssd")
    dest.preflight()
    write(tmp_path / "ssd" / in_the_way, b"a file")
    with pytest.raises(errors.KeyRejected) as caught:
        dest.make_folder(os.path.join(dest.root, "card", "DCIM", "100CANON"))
    assert caught.value.message == f"{tmp_path / 'ssd' / in_the_way} is a file, where a folder is needed"


def test_small_files_are_committed_by_the_reader_or_their_writer_and_big_ones_by_the_committer(
    tmp_path: Path, runner: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A small file is written, read back and named at a local folder by the reader itself (no
    thread switch per file), beside a bucket too; when the reader hands it to the lane (a lane
    that lagged), by the local writer that wrote it; a big one by the committer, while the writer
    goes on with the next file."""
    import threading

    from castoff.destinations import local
    from castoff.destinations.memory import MemoryDestination
    from castoff.engine.lanes import INLINE_COMMIT_MAX

    where: dict[tuple[str, str], str] = {}
    real = local.LocalUpload.commit

    def commit(self: local.LocalUpload, *args: object, **kw: object) -> object:
        top = Path(self.target).relative_to(tmp_path).parts[0]
        where[(top, os.path.basename(self.target))] = threading.current_thread().name
        return real(self, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(local.LocalUpload, "commit", commit)
    write(tmp_path / "card" / "small.jpg", b"s" * 10_000)
    write(tmp_path / "card" / "big.mov", b"b" * (INLINE_COMMIT_MAX + 1))
    reader = threading.current_thread().name
    assert runner([tmp_path / "card"], [LocalDestination(tmp_path / "ssd")]).exit_code == 0
    assert where[("ssd", "small.jpg")] == reader, where
    assert where[("ssd", "big.mov")].endswith("-commit"), where
    bucket = MemoryDestination("bucket", is_local=False)
    assert runner([tmp_path / "card"], [LocalDestination(tmp_path / "hdd"), bucket]).exit_code == 0
    assert where[("hdd", "small.jpg")] == reader, where
    assert bucket.objects["card/small.jpg"] == b"s" * 10_000
    monkeypatch.setattr(Engine, "_inline", staticmethod(lambda fs, streams: False))
    assert runner([tmp_path / "card"], [LocalDestination(tmp_path / "nas")]).exit_code == 0
    assert where[("nas", "small.jpg")].endswith("-w0"), where
    for top in ("ssd", "hdd", "nas"):
        assert (tmp_path / top / "card" / "small.jpg").read_bytes() == b"s" * 10_000


def test_the_name_of_every_folder_made_is_made_durable(
    tmp_path: Path, runner: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file is only as durable as the names of the folders above it: the parent of every folder
    the job creates (the destination's own root included) is fsynced, not only the folders that
    hold files."""
    synced: set[str] = set()
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.add(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    (tmp_path / "drive").mkdir()
    root = tmp_path / "drive" / "backup"  # castoff creates the destination's last folder
    write(tmp_path / "card" / "DCIM" / "100CANON" / "A.JPG", b"a" * 1000)
    write(tmp_path / "card" / "PRIVATE" / "M4ROOT" / "CLIP" / "C0001.MP4", b"c" * 3 * MiB)
    result = runner([tmp_path / "card"], [LocalDestination(root)])
    assert result.exit_code == 0, runner.logs()
    made = [root, *(p for p in root.rglob("*") if p.is_dir())]
    assert len(made) >= 7
    assert {str(p.parent) for p in made} <= synced, sorted({str(p.parent) for p in made} - synced)


@pytest.mark.parametrize("policy", ["rename", "skip", "overwrite", "fail"])
def test_a_target_that_is_the_source_file_itself_fails_and_is_never_a_copy(
    tmp_path: Path, runner: Runner, policy: str
) -> None:
    """The destination holds the source where the layout puts its copy (``n/card`` to ``n``; the
    command refuses that up front, a template may still reach it): each target is the source
    file. Before, it was counted "already" there and the source could be released."""
    from castoff.engine.lanes import INLINE_COMMIT_MAX

    src = tmp_path / "n" / "card"
    small = write(src / "DCIM" / "a.jpg", b"a" * 1000)
    big = write(src / "DCIM" / "b.mov", os.urandom(INLINE_COMMIT_MAX + 1))  # the committer's
    before = {p: (p.stat().st_ino, b3(p)) for p in (small, big)}
    result = runner.bounded([src], [LocalDestination(tmp_path / "n")], timeout=60, on_conflict=policy)
    assert result.exit_code == 1
    assert not result.released
    for rel in ("card/DCIM/a.jpg", "card/DCIM/b.mov"):
        out = runner.outcomes()[(rel, str(tmp_path / "n"))]
        assert out["status"] == "failed", dict(out)
        assert "the target is the source file itself" in out["error"]
    assert {p: (p.stat().st_ino, b3(p)) for p in (small, big)} == before
    assert sorted(p.name for p in (src / "DCIM").iterdir()) == ["a.jpg", "b.mov"]


def test_a_folder_that_is_a_destination_by_another_path_is_not_scanned(
    tmp_path: Path, runner: Runner
) -> None:
    """A followed symlink (or a bind mount) inside the source that leads to the destination
    would copy the job's own output into itself: left out, with a warning naming it."""
    src = tmp_path / "card"
    write(src / "DCIM" / "a.jpg", b"a")
    dest_root = tmp_path / "d"
    write(dest_root / "older" / "x.jpg", b"x")
    os.symlink(dest_root, src / "backup")
    dest = LocalDestination(dest_root)
    follow = _filters(follow_symlinks=True)
    assert runner.bounded([src], [dest], timeout=60, filters=follow).exit_code == 0
    assert visible_files(dest_root) == {"older/x.jpg", "card/DCIM/a.jpg"}
    skipped = {r["rel_path"]: r for r in runner.catalog.job_files(runner.job_id) if r["status"] == "skipped"}
    assert skipped["card/backup"]["error_code"] == "destination"
    said = [m for m in runner.logs() if m.startswith("skip: card/backup")]
    assert said == [
        f"skip: card/backup: is the destination {dest.name} (the same folder, by another path):"
        " not copied into itself"
    ], runner.logs()
    # a source that is the destination itself, by another path, is not entered either: nothing
    # is left to copy, which is an error (exit 2), as for an empty card
    os.symlink(dest_root, tmp_path / "same")
    assert runner.bounded([tmp_path / "same"], [dest], timeout=60, filters=follow).exit_code == 2
    assert visible_files(dest_root) == {"older/x.jpg", "card/DCIM/a.jpg"}


def _not_a_file(kind: str, path: Path, points_to: Path) -> None:
    path.unlink()
    if kind == "symlink":
        path.symlink_to(points_to)
    else:
        os.mkfifo(path)


@pytest.mark.parametrize("policy", ["rename", "skip", "overwrite", "fail"])
@pytest.mark.parametrize("kind", ["symlink", "FIFO"])
def test_a_symlink_or_fifo_at_a_target_is_never_a_copy_nor_read(
    tmp_path: Path, runner: Runner, kind: str, policy: str
) -> None:
    """Before: a symlink to the source where a copy was counted "already" (read back through the
    link: "blake3 match"), and a FIFO there held the job for ever in the read-back."""
    src = tmp_path / "card"
    write(src / "DCIM" / "a.CR3", os.urandom(300_000))
    dest_root = tmp_path / "v2"
    dest = LocalDestination(dest_root)
    assert runner.bounded([src], [dest], timeout=60).exit_code == 0
    target = dest_root / "card" / "DCIM" / "a.CR3"
    _not_a_file(kind, target, src / "DCIM" / "a.CR3")
    result = runner.bounded([src], [dest], timeout=60, rehash=True, on_conflict=policy)
    out = runner.outcomes()[("card/DCIM/a.CR3", dest.name)]
    what = f"{target} is a {kind}, not a file"
    if policy == "overwrite":
        assert result.exit_code == 0 and out["status"] == "verified"
        assert target.is_file() and not target.is_symlink() and b3(target) == b3(src / "DCIM" / "a.CR3")
        return
    if policy == "rename":
        assert result.exit_code == 0
        assert out["status"] == "verified", dict(out)
        assert out["target"] == str(target.with_name("a (2).CR3"))
        assert b3(Path(out["target"])) == b3(src / "DCIM" / "a.CR3")
        said = f"{dest.name}: {what}: kept it, this copy is {out['target']}"
        assert said in runner.logs(), runner.logs()
    elif policy == "skip":
        assert result.exit_code == 1  # not copied there: a conflict, not a file verified before
        assert out["status"] == "conflict"
        assert out["detail"] == f"{what}: kept it, this file was NOT copied (--on-conflict skip)"
    else:
        assert result.exit_code == 1
        assert out["status"] == "failed" and what in out["error"]
    assert target.is_symlink() if kind == "symlink" else stat.S_ISFIFO(target.lstat().st_mode)


def test_a_name_over_the_filesystems_own_limit_fails_alone_with_that_limit_named(
    tmp_path: Path, runner: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A folder on eCryptfs holds names of at most 143 bytes, not 255: a 150-byte name failed
    with the OS's bare "File name too long" and a partial file's fate left to the kernel. Now
    the destination's own limit (asked at preflight) refuses it before any byte, naming the limit;
    the card's other files land."""
    import castoff.destinations.local as local_mod

    monkeypatch.setattr(local_mod, "name_max", lambda folder: 143)
    long_name = "x" * 146 + ".jpg"
    card = write(tmp_path / "card" / long_name, b"long").parent
    write(card / "short.jpg", b"short")
    dest = LocalDestination(tmp_path / "crypt")
    result = runner([card], [dest])
    assert result.exit_code == 1
    rows = runner.outcomes()
    assert rows[("card/short.jpg", dest.name)]["status"] == "verified"
    bad = rows[(f"card/{long_name}", dest.name)]
    assert bad["status"] == "failed" and "name longer than 143 bytes" in bad["error"], bad
    assert f"the filesystem of {dest.root} holds names of at most 143 bytes" in bad["error"], bad
    assert visible_files(tmp_path / "crypt") == {"card/short.jpg"} and partials(tmp_path / "crypt") == []


def test_released_is_said_after_what_must_be_written_at_release(tmp_path: Path) -> None:
    """QA: the ``released`` event came before on_released wrote the ASC MHL generations (the
    card's with --mhl-source): a card unmounted at the word had no history, and a job killed at it
    left none on the drives. What on_released writes is done before the word."""
    from castoff.catalog.db import Catalog, new_job_id
    from castoff.engine.events import Event
    from castoff.engine.job import JobOptions

    src = write(tmp_path / "card" / "DCIM" / "A.JPG", os.urandom(5000)).parent.parent
    catalog = Catalog(tmp_path / "state" / "catalog.sqlite")
    job_id = new_job_id()
    dest = LocalDestination(tmp_path / "ssd")
    catalog.start_job(
        job_id,
        argv=["test"],
        sources=[str(src)],
        destinations=[{"name": dest.name, "ident": dest.ident, "kind": "local"}],
        options={},
        pid=os.getpid(),
    )
    events: list[Event] = []
    said_before: list[bool] = []
    engine = Engine(
        catalog,
        job_id,
        [dest],
        JobOptions(),
        sink=events.append,
        on_released=lambda: said_before.append(any(e.kind == "released" for e in events)),
    )
    result = engine.run([str(src)])
    assert result.released
    assert said_before == [False]
    assert [e.kind for e in events].count("released") == 1
