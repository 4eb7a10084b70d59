"""Re-runs decided by the catalog: what they skip, what they notice, what they record, and the
group commit that makes them cheap."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path

import blake3
import pytest

from castoff.catalog.db import Catalog
from castoff.catalog.group import WriteGroup
from castoff.destinations.local import LocalDestination
from castoff.engine.job import mtime_kept
from castoff.layout.planner import LayoutOptions, Planner
from castoff.layout.template import layout_template
from castoff.samples import make_sample_card
from engine_runner import Runner, touch_newer, write


def _card(tmp_path: Path, n: int = 6) -> Path:
    src = tmp_path / "src" / "card"
    for i in range(n):
        write(src / f"DCIM/{i % 2}/IMG_{i}.JPG", os.urandom(2000 + i))
    return src


def _statuses(runner: Runner) -> dict[tuple[str, str], str]:
    return {k: str(v["status"]) for k, v in runner.outcomes().items()}


def test_rerun_records_every_file_at_every_destination_with_why(tmp_path: Path, runner: Runner) -> None:
    src = _card(tmp_path)
    d1, d2 = LocalDestination(tmp_path / "d1"), LocalDestination(tmp_path / "d2")
    assert runner([src], [d1, d2]).exit_code == 0
    first = {str(f["rel_path"]): f for f in runner.catalog.job_files(runner.job_id)}
    assert runner([src], [d1, d2]).exit_code == 0
    out = runner.outcomes()
    assert len(out) == 12
    assert {str(o["status"]) for o in out.values()} == {"skipped"}
    assert all(str(o["detail"]).startswith(f"verified at {o['dest_name']} on ") for o in out.values())
    # the hashes of the earlier read are the re-run's too (the report and ASC MHL show them)
    for f in runner.catalog.job_files(runner.job_id):
        before = first[str(f["rel_path"])]
        assert (f["blake3"], f["xxh128"]) == (before["blake3"], before["xxh128"])
        assert f["blake3"] is not None


def test_rerun_recopies_a_file_deleted_at_one_destination_only(tmp_path: Path, runner: Runner) -> None:
    src = _card(tmp_path)
    d1, d2 = LocalDestination(tmp_path / "d1"), LocalDestination(tmp_path / "d2")
    assert runner([src], [d1, d2]).exit_code == 0
    gone = tmp_path / "d2" / "card" / "DCIM" / "1" / "IMG_3.JPG"
    gone.unlink()
    assert runner([src], [d1, d2]).exit_code == 0
    statuses = _statuses(runner)
    assert statuses.pop(("card/DCIM/1/IMG_3.JPG", str(tmp_path / "d2"))) == "verified"
    assert set(statuses.values()) == {"skipped"}
    assert gone.read_bytes() == (src / "DCIM/1/IMG_3.JPG").read_bytes()


def test_rerun_recopies_a_file_whose_size_changed_at_a_destination(tmp_path: Path, runner: Runner) -> None:
    src = _card(tmp_path)
    dest = LocalDestination(tmp_path / "d")
    assert runner([src], [dest]).exit_code == 0
    damaged = tmp_path / "d" / "card" / "DCIM" / "0" / "IMG_2.JPG"
    damaged.write_bytes(b"truncated")
    assert runner([src], [dest]).exit_code == 1  # delivered, but a copy on the drive is damaged
    out = runner.outcomes()[("card/DCIM/0/IMG_2.JPG", str(tmp_path / "d"))]
    # not skipped: sent again, and the damaged file is kept beside it (never overwritten silently)
    assert out["status"] == "verified"
    assert out["damaged"] == str(damaged)
    assert Path(out["target"]).read_bytes() == (src / "DCIM/0/IMG_2.JPG").read_bytes()
    assert damaged.read_bytes() == b"truncated"
    said = [m for m in runner.logs() if "IMG_2.JPG" in m and not m.startswith("skip:")]
    assert len(said) == 1 and "is DAMAGED or was changed" in said[0], said


HOUR_NS = 3600 * 10**9


def _card_of_last_hour(tmp_path: Path) -> Path:
    """A card whose files are an hour old (a copy rewritten now has another time on any filesystem)."""
    src = _card(tmp_path)
    for p in src.rglob("*.JPG"):
        st = p.stat()
        os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns - HOUR_NS))
    return src


def test_rerun_reads_a_copy_rewritten_with_the_same_size_and_names_it_damaged(
    tmp_path: Path, runner: Runner
) -> None:
    """Before: a copy rewritten with other bytes of the same size was "skipped" (verified) on a
    re-run, as long as the catalog had it: the mtime castoff gave it was never looked at."""
    src = _card_of_last_hour(tmp_path)
    dest = LocalDestination(tmp_path / "d")
    assert runner([src], [dest]).exit_code == 0
    rewritten = tmp_path / "d" / "card" / "DCIM" / "0" / "IMG_2.JPG"
    rewritten.write_bytes(os.urandom(rewritten.stat().st_size))
    assert runner([src], [dest]).exit_code == 1
    out = runner.outcomes()[("card/DCIM/0/IMG_2.JPG", dest.name)]
    assert out["status"] == "verified", dict(out)
    assert out["target"].endswith("IMG_2 (2).JPG")
    assert "is DAMAGED or was changed" in out["detail"]
    assert Path(out["target"]).read_bytes() == (src / "DCIM/0/IMG_2.JPG").read_bytes()
    statuses = _statuses(runner)
    del statuses[("card/DCIM/0/IMG_2.JPG", dest.name)]
    assert set(statuses.values()) == {"skipped"}


def test_rerun_reads_back_a_copy_whose_mtime_was_touched_and_counts_it_there(
    tmp_path: Path, runner: Runner
) -> None:
    src = _card_of_last_hour(tmp_path)
    dest = LocalDestination(tmp_path / "d")
    assert runner([src], [dest]).exit_code == 0
    touched = tmp_path / "d" / "card" / "DCIM" / "1" / "IMG_3.JPG"
    os.utime(touched)  # now: the bytes are castoff's, the time is not
    assert runner([src], [dest]).exit_code == 0
    out = runner.outcomes()[("card/DCIM/1/IMG_3.JPG", dest.name)]
    assert out["status"] == "already", dict(out)
    assert out["verify_method"] == "existing copy read back: blake3 match"
    assert sorted(p.name for p in touched.parent.iterdir()) == ["IMG_1.JPG", "IMG_3.JPG", "IMG_5.JPG"]


def test_a_source_touched_since_gives_its_copies_its_new_time_once_they_are_found_the_same(
    tmp_path: Path, runner: Runner
) -> None:
    """QA N #2: a source file touched (new mtime, same bytes: a checkout, a build, a re-save) was
    read and found already at the folder; its copy kept the old time, so every later run found the
    copy's time other than the source's, warned, and read source and copy again, night after
    night. The copy found the same now takes the source's time: the next run reads nothing."""
    src = _card_of_last_hour(tmp_path)
    dest = LocalDestination(tmp_path / "d")
    assert runner([src], [dest]).exit_code == 0
    touched = src / "DCIM" / "1" / "IMG_3.JPG"
    os.utime(touched)  # now: the bytes are the same, the time is not
    copy = tmp_path / "d" / "card" / "DCIM" / "1" / "IMG_3.JPG"
    first = runner([src], [dest])
    assert first.exit_code == 0 and first.bytes_read == touched.stat().st_size
    assert _statuses(runner)[("card/DCIM/1/IMG_3.JPG", dest.name)] == "already"
    assert copy.stat().st_mtime_ns == touched.stat().st_mtime_ns
    for _night in range(2):
        again = runner([src], [dest])
        assert again.exit_code == 0 and again.bytes_read == 0, runner.logs()
        assert set(_statuses(runner).values()) == {"skipped"}
        assert not [m for m in runner.logs() if "another modification time" in m], runner.logs()


def test_files_that_swapped_names_keeping_size_and_time_are_read_again_and_said(
    tmp_path: Path, runner: Runner
) -> None:
    """QA N #3: two frames of a sequence (one size, one time) swapped names between two nightly
    runs. The re-run trusted the catalog (path, size, mtime) and skipped both, and each name's
    backup held the other frame's bytes. A rename moves a file's change time: both are read again,
    found to hold other bytes than their copies, said so, sent nowhere (the copies stay), and the
    source is not called safe to release; --rehash then keeps both."""
    src = tmp_path / "src" / "seq"
    frames = {f"F_{i}.dpx": bytes([65 + i]) * 4000 for i in range(3)}
    for name, data in frames.items():
        write(src / name, data)
        os.utime(src / name, ns=(1_700_000_000 * 10**9, 1_700_000_000 * 10**9))
    dest = LocalDestination(tmp_path / "d")
    assert runner([src], [dest]).exit_code == 0
    (src / "F_0.dpx").rename(src / "tmp")
    (src / "F_1.dpx").rename(src / "F_0.dpx")
    (src / "tmp").rename(src / "F_1.dpx")
    for _night in range(2):  # the same command meets them again: never skipped as they were
        res = runner([src], [dest])
        assert res.exit_code == 1 and not res.released, runner.logs()
        assert res.bytes_read == 2 * 4000  # the two that moved, not the third
        files = {str(f["rel_path"]): f for f in runner.catalog.job_files(runner.job_id)}
        assert (
            files["seq/F_0.dpx"]["error_code"]
            == files["seq/F_1.dpx"]["error_code"]
            == "source-changed-in-place"
        )
        said = "\n".join(runner.logs())
        assert "seq/F_0.dpx: changed at the source since an earlier job copied it" in said, said
        for name, data in frames.items():  # the copies as they were, nothing over them
            assert (tmp_path / "d" / "seq" / name).read_bytes() == data
    assert runner([src], [dest], rehash=True).exit_code == 0, runner.logs()
    assert (tmp_path / "d" / "seq" / "F_0 (2).dpx").read_bytes() == frames["F_1.dpx"]
    assert (tmp_path / "d" / "seq" / "F_1 (2).dpx").read_bytes() == frames["F_0.dpx"]


def test_a_file_whose_change_time_alone_moved_is_read_once_and_then_trusted_again(
    tmp_path: Path, runner: Runner
) -> None:
    """The change time moves for new permissions too: such a file is read once (its copies are
    not), found the same, said once for the job, and the next run trusts the catalog again."""
    src = _card(tmp_path)
    dest = LocalDestination(tmp_path / "d")
    assert runner([src], [dest]).exit_code == 0
    changed = [src / "DCIM/0/IMG_0.JPG", src / "DCIM/1/IMG_3.JPG"]
    for path in changed:
        path.chmod(0o600)
    res = runner([src], [dest])
    assert res.exit_code == 0 and res.released, runner.logs()
    assert res.bytes_read == sum(p.stat().st_size for p in changed)
    assert set(_statuses(runner).values()) == {"skipped"}
    assert sum("its change time says" in m for m in runner.logs()) == 1, runner.logs()
    again = runner([src], [dest])
    assert again.exit_code == 0 and again.bytes_read == 0, runner.logs()


def test_rerun_says_once_a_destination_that_copies_were_found_with_other_times(
    tmp_path: Path, runner: Runner
) -> None:
    """QA: fusefat gave each file the time of its rename, and every re-run read every copy back
    without a word: said once for the destination, whatever the number of copies."""
    src = _card_of_last_hour(tmp_path)
    dest = LocalDestination(tmp_path / "d")
    assert runner([src], [dest]).exit_code == 0
    for p in (tmp_path / "d").rglob("*.JPG"):
        os.utime(p)  # now, as fusefat set them
    assert runner([src], [dest]).exit_code == 0
    assert set(_statuses(runner).values()) == {"already"}
    said = [m for m in runner.logs() if "another modification time" in m]
    assert len(said) == 1, said
    assert "such copies are checked again (read back and compared)" in said[0]


def test_rerun_skips_a_copy_whose_mtime_its_filesystem_rounded(tmp_path: Path, runner: Runner) -> None:
    """FAT keeps times in 2-second steps: a copy's mtime there is the source's, rounded down to an
    even second. That is the time castoff set, as the filesystem kept it: skipped."""
    src = _card(tmp_path, n=1)
    img = src / "DCIM" / "0" / "IMG_0.JPG"
    os.utime(img, ns=(1_700_000_001_500_000_000, 1_700_000_001_500_000_000))
    dest = LocalDestination(tmp_path / "d")
    assert runner([src], [dest]).exit_code == 0
    copy = tmp_path / "d" / "card" / "DCIM" / "0" / "IMG_0.JPG"
    os.utime(copy, ns=(1_700_000_000_000_000_000, 1_700_000_000_000_000_000))
    assert runner([src], [dest]).exit_code == 0
    assert _statuses(runner) == {("card/DCIM/0/IMG_0.JPG", dest.name): "skipped"}


@pytest.mark.parametrize(
    ("found", "kept"),
    [
        (1_700_000_001_123_456_789, True),  # ext4, XFS, btrfs, tmpfs: exactly the time set
        (1_700_000_001_123_456_700, True),  # NTFS, SMB: 100 ns steps
        (1_700_000_001_120_000_000, True),  # exFAT: 10 ms steps
        (1_700_000_001_000_000_000, True),  # HFS+: whole seconds
        (1_700_000_000_000_000_000, True),  # FAT: even seconds
        (1_700_000_001_123_456_788, False),  # written since, a nanosecond apart
        (1_700_000_001_140_000_000, False),  # 10 ms steps, more than one step off
        (1_700_000_004_000_000_000, False),  # whole seconds, more than FAT's step off
        (1_700_003_601_123_456_789, False),  # touched an hour later
    ],
)
def test_mtime_kept_allows_the_filesystems_own_rounding_only(found: int, kept: bool) -> None:
    assert mtime_kept(found, 1_700_000_001_123_456_789) is kept


def test_rehash_names_a_copy_that_rotted_in_place_damaged(tmp_path: Path, runner: Runner) -> None:
    """A byte flipped at the destination, size and mtime kept: only --rehash reads it, and then
    says "damaged" (castoff verified other bytes there), not "exists with other content"."""
    src = _card(tmp_path)
    dest = LocalDestination(tmp_path / "d")
    assert runner([src], [dest]).exit_code == 0
    rotted = tmp_path / "d" / "card" / "DCIM" / "1" / "IMG_3.JPG"
    st = rotted.stat()
    data = bytearray(rotted.read_bytes())
    data[100] ^= 0x01
    rotted.write_bytes(bytes(data))
    os.utime(rotted, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert runner([src], [dest]).exit_code == 0
    assert _statuses(runner)[("card/DCIM/1/IMG_3.JPG", dest.name)] == "skipped"  # the catalog's word
    result = runner([src], [dest], rehash=True)
    assert (result.exit_code, result.status) == (1, "done")  # every file delivered: attention needed
    assert result.lanes[dest.name]["damaged"] == 1
    out = runner.outcomes()[("card/DCIM/1/IMG_3.JPG", dest.name)]
    assert out["status"] == "verified"
    assert out["damaged"] == str(rotted)
    assert out["target"].endswith("IMG_3 (2).JPG")
    assert "is DAMAGED or was changed" in out["detail"]
    said = [m for m in runner.logs() if "IMG_3.JPG" in m and not m.startswith("skip:")]
    assert len(said) == 1, said
    assert "no longer holds what castoff verified there on" in said[0]
    assert "the good copy is" in said[0] and said[0].endswith("compare them, then replace the damaged one")
    assert rotted.read_bytes() == bytes(data)  # kept: castoff never overwrites silently


def _rot(path: Path) -> bytes:
    """Flip a bit of ``path`` in place, its size and mtime kept (what only --rehash finds)."""
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[100] ^= 0x01
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    return bytes(data)


def test_every_later_run_still_names_a_damaged_copy_until_it_is_fixed(tmp_path: Path, runner: Runner) -> None:
    """Before: the --rehash that found the damage exited 0, and the next runs said nothing of the
    damaged copy still on the drive (the good "(2)" was simply "already" there, or "skipped")."""
    src = _card(tmp_path)
    dest = LocalDestination(tmp_path / "d")
    assert runner([src], [dest]).exit_code == 0
    rotted = tmp_path / "d" / "card" / "DCIM" / "1" / "IMG_3.JPG"
    good = rotted.with_name("IMG_3 (2).JPG")
    _rot(rotted)
    assert runner([src], [dest], rehash=True).exit_code == 1
    for rehash, status in ((True, "already"), (False, "skipped")):
        before = len(runner.logs())
        result = runner([src], [dest], rehash=rehash)
        assert (result.exit_code, result.lanes[dest.name]["damaged"]) == (1, 1), rehash
        out = runner.outcomes()[("card/DCIM/1/IMG_3.JPG", dest.name)]
        assert (out["status"], out["target"], out["damaged"]) == (status, str(good), str(rotted))
        assert "is still DAMAGED or changed (found on " in out["detail"]
        said = [m for m in runner.logs()[before:] if "IMG_3" in m and not m.startswith("skip:")]
        assert len(said) == 1 and "is still DAMAGED" in said[0], said
        assert said[0].endswith(
            f"the good copy is {good} (verified before): compare them, then replace the damaged one"
        )
        # no third copy, nothing sent again
        assert sorted(p.name for p in rotted.parent.iterdir()) == [
            "IMG_1.JPG",
            "IMG_3 (2).JPG",
            "IMG_3.JPG",
            "IMG_5.JPG",
        ]
        assert result.bytes_read == (sum(p.stat().st_size for p in src.rglob("*.JPG")) if rehash else 0)
    # the user puts the good copy in its place: proven good there, and the damage is forgotten
    good.replace(rotted)
    result = runner([src], [dest])
    assert (result.exit_code, result.lanes[dest.name]["damaged"]) == (0, 0)
    assert runner.outcomes()[("card/DCIM/1/IMG_3.JPG", dest.name)]["status"] == "already"
    assert runner([src], [dest], rehash=True).exit_code == 0
    assert runner.catalog.damaged_copies([dest.ident]) == []


def _damaged_then_found(tmp_path: Path, runner: Runner) -> tuple[Path, LocalDestination, Path]:
    """A card copied, one copy damaged since, and a ``--rehash`` that found it (exit 1)."""
    src = _card(tmp_path)
    dest = LocalDestination(tmp_path / "d")
    assert runner([src], [dest]).exit_code == 0
    rotted = tmp_path / "d" / "card" / "DCIM" / "1" / "IMG_3.JPG"
    _rot(rotted)
    assert runner([src], [dest], rehash=True).exit_code == 1
    return src, dest, rotted


def test_a_damaged_copy_deleted_by_the_user_is_forgotten(tmp_path: Path, runner: Runner) -> None:
    src, dest, rotted = _damaged_then_found(tmp_path, runner)
    rotted.unlink()
    result = runner([src], [dest])
    assert (result.exit_code, result.lanes[dest.name]["damaged"]) == (0, 0)
    out = runner.outcomes()[("card/DCIM/1/IMG_3.JPG", dest.name)]
    assert (out["status"], out["damaged"]) == ("skipped", None)
    assert runner.catalog.damaged_copies([dest.ident]) == []


def test_a_damaged_copy_the_user_repaired_in_place_is_read_back_and_forgotten(
    tmp_path: Path, runner: Runner
) -> None:
    """Repaired in place (the good bytes copied over it): another mtime than when it was found, so
    even a plain re-run reads it back, and finds it good."""
    src, dest, rotted = _damaged_then_found(tmp_path, runner)
    rotted.write_bytes((src / "DCIM/1/IMG_3.JPG").read_bytes())
    result = runner([src], [dest])
    assert (result.exit_code, result.lanes[dest.name]["damaged"]) == (0, 0)
    assert runner.catalog.damaged_copies([dest.ident]) == []


def test_rerun_reads_a_changed_source_file_again(tmp_path: Path, runner: Runner) -> None:
    src = _card(tmp_path)
    d1, d2 = LocalDestination(tmp_path / "d1"), LocalDestination(tmp_path / "d2")
    assert runner([src], [d1, d2]).exit_code == 0
    changed = src / "DCIM/1/IMG_1.JPG"
    changed.write_bytes(b"edited in place")
    touch_newer(src / "DCIM/0/IMG_0.JPG")
    assert runner([src], [d1, d2]).exit_code == 0
    out = runner.outcomes()
    for d in (d1, d2):
        edited = out[("card/DCIM/1/IMG_1.JPG", d.name)]
        assert edited["status"] == "verified"
        assert Path(edited["target"]).read_bytes() == b"edited in place"
        assert "DAMAGED" not in (edited["detail"] or "")  # a new version, not a damaged copy
        # a newer mtime alone: read again, found identical at the destination by read-back
        assert out[("card/DCIM/0/IMG_0.JPG", d.name)]["status"] == "already"
    files = {str(f["rel_path"]): f for f in runner.catalog.job_files(runner.job_id)}
    assert files["card/DCIM/1/IMG_1.JPG"]["status"] == "read"
    assert files["card/DCIM/1/IMG_1.JPG"]["blake3"] == blake3.blake3(b"edited in place").hexdigest()


def _device_planner() -> Planner:
    return Planner(LayoutOptions(template=layout_template("device", None)))


def test_rerun_plans_from_the_catalog_without_reading_headers(tmp_path: Path, runner: Runner) -> None:
    card = make_sample_card(tmp_path / "src" / "card")
    cr3 = card / "DCIM" / "100CANON" / "IMG_0001.CR3"
    dest = LocalDestination(tmp_path / "out")
    assert runner([card], [dest], planner=_device_planner()).exit_code == 0
    # Wipe the header but keep size and mtime: only a read of the file could notice (on a card:
    # exFAT's change time is its mtime; here the catalog is given the new one, as if it had not moved)
    st = cr3.stat()
    with open(cr3, "r+b") as fh:
        fh.write(bytes(4096))
    os.utime(cr3, ns=(st.st_atime_ns, st.st_mtime_ns))
    with sqlite3.connect(runner.catalog.path) as db:
        db.execute("UPDATE files SET ctime_ns=? WHERE abs_path=?", (cr3.stat().st_ctime_ns, str(cr3)))

    def cr3_meta() -> dict[str, object]:
        meta = runner.catalog.job_file_meta(runner.job_id)
        return next(m for m in meta.values() if m["original_path"] == "card/DCIM/100CANON/IMG_0001.CR3")

    assert runner([card], [dest], planner=_device_planner()).exit_code == 0
    assert (cr3_meta()["capture_source"], cr3_meta()["device"]) == ("exif", "Canon EOS R5")
    assert runner.outcomes()[("card/DCIM/100CANON/IMG_0001.CR3", dest.name)]["status"] == "skipped"
    # --rehash reads it all again, the header included
    assert runner([card], [dest], planner=_device_planner(), rehash=True).exit_code == 0
    assert cr3_meta()["capture_source"] != "exif"


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    cat = Catalog(tmp_path / "catalog.sqlite")
    cat.start_job("j", argv=[], sources=[], destinations=[], options={}, pid=os.getpid())
    return cat


def _paths(cat: Catalog) -> list[str]:
    return [str(r["rel_path"]) for r in cat.job_files("j")]


def test_a_write_group_commits_every_max_files_and_on_flush(catalog: Catalog) -> None:
    other = Catalog(catalog.path)  # another connection sees only what was committed
    with WriteGroup(catalog, max_files=2, max_age=3600) as group:
        for i in range(3):
            group.next_file()
            catalog.add_file("j", rel_path=f"f{i}", abs_path=f"/f{i}", size=1, mtime_ns=1)
        assert _paths(other) == ["f0", "f1"]
        group.flush()
        assert _paths(other) == ["f0", "f1", "f2"]


def test_a_write_group_rolls_back_a_half_written_group_on_error(catalog: Catalog) -> None:
    def half_a_file() -> None:
        with WriteGroup(catalog) as group:
            group.next_file()
            catalog.add_file("j", rel_path="half", abs_path="/half", size=1, mtime_ns=1)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        half_a_file()
    assert _paths(catalog) == []
    catalog.add_file("j", rel_path="after", abs_path="/after", size=1, mtime_ns=1)  # not left locked
    assert _paths(catalog) == ["after"]


def test_other_threads_wait_for_an_open_group_and_then_write(catalog: Catalog) -> None:
    done = threading.Event()

    def writer() -> None:
        catalog.add_file("j", rel_path="other", abs_path="/other", size=1, mtime_ns=1)
        done.set()

    with WriteGroup(catalog) as group:
        group.next_file()
        catalog.add_file("j", rel_path="mine", abs_path="/mine", size=1, mtime_ns=1)
        t = threading.Thread(target=writer)
        t.start()
        assert not done.wait(0.2)  # held back by the open group (the other order could not fail)
        group.flush()
        t.join(10)
    assert done.is_set()
    assert _paths(catalog) == ["mine", "other"]


def test_a_new_upload_waiting_to_be_recorded_ends_the_group_at_its_next_file(catalog: Catalog) -> None:
    """Until a multipart upload the server has just created is in the catalog, a kill leaves an
    upload nobody can find (soak: SIGKILL at a random moment, iteration 51): the reader's group
    commits at its next file for it, instead of holding it for its whole age."""
    recorded = threading.Event()
    other = Catalog(catalog.path)

    def lane() -> None:
        catalog.open_upload(
            dest_ident="s3:x/b/", dest_name="b", target="raw/C0001.MP4", src_path="/c/C0001.MP4",
            size=3, mtime_ns=1, part_size=1, token={"upload_id": "u1"}, blake3=None, job_id="j",
        )  # fmt: skip
        recorded.set()

    with WriteGroup(catalog, max_files=10_000, max_age=3600) as group:
        group.next_file()
        catalog.add_file("j", rel_path="f0", abs_path="/f0", size=1, mtime_ns=1)
        t = threading.Thread(target=lane)
        t.start()
        for _ in range(500):  # until the lane waits for the catalog (its count is up)
            if catalog.urgent:
                break
            time.sleep(0.01)
        assert catalog.urgent == 1
        group.next_file()  # the next file: the group commits and lets the lane in
        assert recorded.wait(10), "the upload waited for the group's age (an hour here)"
        assert [u.target for u in other.open_uploads()] == ["raw/C0001.MP4"]
        catalog.add_file("j", rel_path="f1", abs_path="/f1", size=1, mtime_ns=1)
        t.join(10)
    assert catalog.urgent == 0
    assert _paths(other) == ["f0", "f1"]
