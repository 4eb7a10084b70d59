"""Re-runs that look the catalog up a batch of files at a time: the same decisions as one file at a
time, whatever the batch boundaries, and the same answers as the catalog's point queries."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from castoff.catalog import prefetch
from castoff.catalog.db import Catalog, LandedRow
from castoff.catalog.prefetch import Prefetch
from castoff.destinations.local import LocalDestination
from castoff.scan import Filters, SourceFile, scan
from engine_runner import Runner, touch_newer, write


def _card(tmp_path: Path, folders: int = 5, per_folder: int = 7) -> Path:
    src = tmp_path / "src" / "card"
    for f in range(folders):
        for i in range(per_folder):
            write(src / f"DCIM/{f}/IMG_{i}.JPG", os.urandom(1000 + 37 * i + f))
    return src


def _statuses(runner: Runner) -> dict[tuple[str, str], str]:
    return {k: str(v["status"]) for k, v in runner.outcomes().items()}


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> int:
    """Batches of 4 files: folders of 7 put a boundary in the middle of every folder."""
    monkeypatch.setattr(prefetch, "BATCH", 4)
    return 4


def test_a_rerun_in_batches_skips_exactly_the_verified_files(
    tmp_path: Path, runner: Runner, small_batches: int
) -> None:
    src = _card(tmp_path)
    d1, d2 = LocalDestination(tmp_path / "d1"), LocalDestination(tmp_path / "d2")
    assert runner([src], [d1, d2]).exit_code == 0
    assert runner.engine._prefetch.batches == 0  # a first run reads no further ahead than before
    # ... and asks the catalog once a folder, not once a file
    assert runner.engine._prefetch.asked_alone == 0
    assert runner.engine._prefetch.folders == 5

    deleted = tmp_path / "d2" / "card" / "DCIM" / "1" / "IMG_5.JPG"  # mid-folder, mid-batch
    deleted.unlink()
    resized = src / "DCIM/2/IMG_3.JPG"
    resized.write_bytes(b"edited: another size")
    touch_newer(src / "DCIM/3/IMG_4.JPG")

    assert runner([src], [d1, d2]).exit_code == 0
    statuses = _statuses(runner)
    assert len(statuses) == 35 * 2
    assert statuses.pop(("card/DCIM/1/IMG_5.JPG", d2.name)) == "verified"
    assert statuses.pop(("card/DCIM/1/IMG_5.JPG", d1.name)) == "skipped"
    for d in (d1, d2):
        assert statuses.pop(("card/DCIM/2/IMG_3.JPG", d.name)) == "verified"
        assert statuses.pop(("card/DCIM/3/IMG_4.JPG", d.name)) == "already"  # read back: same bytes
    assert set(statuses.values()) == {"skipped"}
    assert deleted.read_bytes() == (src / "DCIM/1/IMG_5.JPG").read_bytes()
    edited = runner.outcomes()[("card/DCIM/2/IMG_3.JPG", d1.name)]
    assert Path(edited["target"]).read_bytes() == b"edited: another size"
    # the decisions were taken from batches, and the catalog was asked alone only for what they
    # could not settle (the first file, and the files whose copy wrote to the catalog meanwhile)
    assert runner.engine._prefetch.batches >= 35 // small_batches - 1
    assert runner.engine._prefetch.asked_alone < 35


def test_a_batched_rerun_records_what_a_rerun_one_file_at_a_time_records(
    tmp_path: Path, runner: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = _card(tmp_path, folders=3, per_folder=5)
    d1, d2 = LocalDestination(tmp_path / "d1"), LocalDestination(tmp_path / "d2")
    assert runner([src], [d1, d2]).exit_code == 0

    def rerun() -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
        assert runner([src], [d1, d2]).exit_code == 0
        files = [
            tuple(
                f[k]
                for k in ("rel_path", "abs_path", "size", "mtime_ns", "status", "blake3", "md5", "xxh128")
            )
            for f in runner.catalog.job_files(runner.job_id)
        ]
        outcomes = [
            tuple(
                o[k] for k in ("rel_path", "dest_name", "target", "status", "verify_method", "etag", "detail")
            )
            for o in runner.catalog.job_outcomes(runner.job_id)
        ]
        return files, outcomes

    monkeypatch.setattr(prefetch, "BATCH", 3)
    batched = rerun()
    assert runner.engine._prefetch.batches > 0
    monkeypatch.setattr(Prefetch, "ahead", lambda self, items: iter(items))  # never warm: one at a time
    alone = rerun()
    assert runner.engine._prefetch.batches == 0
    assert batched == alone


def test_a_rehash_rerun_looks_nothing_up_and_reads_every_file(
    tmp_path: Path, runner: Runner, small_batches: int
) -> None:
    src = _card(tmp_path, folders=2, per_folder=5)
    d1, d2 = LocalDestination(tmp_path / "d1"), LocalDestination(tmp_path / "d2")
    assert runner([src], [d1, d2]).exit_code == 0
    assert runner([src], [d1, d2], rehash=True).exit_code == 0
    assert set(_statuses(runner).values()) == {"already"}
    assert runner.engine._prefetch.batches == 0
    assert runner.engine._prefetch.asked_alone == 0
    assert {str(f["status"]) for f in runner.catalog.job_files(runner.job_id)} == {"read"}


# -- the answers themselves, against the catalog's point queries -------------------------------


def _job(cat: Catalog, job_id: str) -> None:
    cat.start_job(job_id, argv=[], sources=[], destinations=[], options={}, pid=os.getpid())


def _read(cat: Catalog, job_id: str, src: SourceFile, digest: str) -> int:
    file_id = cat.add_file(
        job_id, rel_path=src.rel_path, abs_path=src.abs_path, size=src.size, mtime_ns=src.mtime_ns
    )
    cat.file_read(file_id, blake3=digest, md5=None)
    return file_id


def _landed(src: SourceFile, dest: str, planned: str, job_id: str) -> LandedRow:
    return LandedRow(
        dest_ident=dest,
        planned=planned,
        target=planned,
        src_path=src.abs_path,
        size=src.size,
        mtime_ns=src.mtime_ns,
        blake3="b" * 64,
        etag=None,
        verify_method="read back: blake3 match",
        verified_at=1.0,
        job_id=job_id,
    )


def _from(row: LandedRow | None, src: SourceFile) -> LandedRow | None:
    """``Prefetch.landed_at``'s answer: what landed there from this source, not from another."""
    return row if row is not None and row.src_path == src.abs_path else None


def test_batch_answers_are_the_point_queries_answers(tmp_path: Path) -> None:
    src = _card(tmp_path, folders=2, per_folder=5)
    files = [i for i in scan([str(src)], Filters()) if isinstance(i, SourceFile)]
    cat = Catalog(tmp_path / "state" / "catalog.sqlite")
    _job(cat, "j1")
    _job(cat, "j2")
    for n, f in enumerate(files[:-2]):  # the last two were never read
        _read(cat, "j1", f, f"{n:064x}")
    _read(cat, "j2", files[0], "e" * 64)  # read again later: the last read is the answer
    other = files[3]
    cat.file_read(
        cat.add_file("j2", rel_path="x", abs_path=other.abs_path, size=other.size + 1, mtime_ns=1),
        blake3="f" * 64,
        md5=None,
    )  # another size and mtime: not this file's read
    for f in files[:6]:
        cat.record_landed(_landed(f, "d1", "/d1/" + f.rel_path, "j1"))
    # a target that another source landed at: found, though no file of the batch is its source
    cat.record_landed(_landed(files[-1], "d1", "/d1/elsewhere", "j1"))

    pre = Prefetch(cat, ["d1"], batch=4)
    pre._warm = True  # a re-run's state: reading ahead from the first file
    seen = list(pre.ahead(iter(files)))
    assert seen == files
    assert pre.batches == 3

    pre = Prefetch(cat, ["d1"], batch=len(files))
    pre._warm = True
    for f in pre.ahead(iter(files)):
        assert pre.prior_read(f) == cat.prior_read(f.abs_path, f.size, f.mtime_ns)
        for target in ("/d1/" + f.rel_path, "/d1/elsewhere", "/d1/nothing-there"):
            assert pre.landed_at("d1", target, f.abs_path) == _from(cat.landed_at("d1", target), f)
    assert pre.asked_alone == 0
    assert pre.prior_read(files[0]) is not None and pre.prior_read(files[0]).blake3 == "e" * 64  # type: ignore[union-attr]
    assert pre.prior_read(files[-1]) is None


def test_a_catalog_write_after_the_batch_sends_the_questions_to_the_catalog(tmp_path: Path) -> None:
    src = _card(tmp_path, folders=1, per_folder=4)
    files = [i for i in scan([str(src)], Filters()) if isinstance(i, SourceFile)]
    cat = Catalog(tmp_path / "state" / "catalog.sqlite")
    _job(cat, "j1")
    pre = Prefetch(cat, ["d1"], batch=10)
    pre._warm = True
    it = pre.ahead(iter(files))
    first = next(it)
    assert pre.batches == 1
    asked = pre.asked_alone
    assert pre.prior_read(first) is None
    assert pre.landed_at("d1", "/d1/a", first.abs_path) is None  # a miss: settled by the batch
    assert pre.asked_alone == asked
    # this job lands a file, and reads one: the batch's answers may be out of date now
    cat.record_landed(_landed(first, "d1", "/d1/a", "j1"))
    _read(cat, "j1", first, "a" * 64)
    row = pre.landed_at("d1", "/d1/a", first.abs_path)
    assert row is not None and row.planned == "/d1/a"
    prior = pre.prior_read(first)
    assert prior is not None and prior.blake3 == "a" * 64
    assert pre.asked_alone == asked + 2


def test_folder_answers_are_the_point_queries_answers(tmp_path: Path) -> None:
    """Outside batches, a folder whose files the catalog knows nothing of is answered without a
    query a file; a folder it knows something of is asked one file at a time."""
    src = _card(tmp_path, folders=3, per_folder=4)
    files = [i for i in scan([str(src)], Filters()) if isinstance(i, SourceFile)]
    cat = Catalog(tmp_path / "state" / "catalog.sqlite")
    _job(cat, "j1")
    known = [f for f in files if "/DCIM/1/" in f.abs_path]
    _read(cat, "j1", known[0], "a" * 64)
    cat.record_landed(_landed(known[1], "d1", "/d1/" + known[1].rel_path, "j1"))
    # what landed from a file of a folder below another is not a file of that folder
    deeper = tmp_path / "src" / "card" / "DCIM" / "0" / "sub" / "x.jpg"
    cat.record_landed(_landed(SourceFile(str(deeper), "card/x", 1, 1, 1, 1, 1), "d1", "/d1/x", "j1"))

    pre = Prefetch(cat, ["d1", "d2"])
    for f in pre.ahead(iter(files)):
        assert pre.prior_read(f) == cat.prior_read(f.abs_path, f.size, f.mtime_ns)
        for dest in ("d1", "d2"):
            target = f"/{dest}/" + f.rel_path
            assert pre.landed_at(dest, target, f.abs_path) == _from(cat.landed_at(dest, target), f)
    # the first file of the folder known is asked alone; found read, the rest come in a batch
    assert (pre.folders, pre.batches, pre.asked_alone) == (2, 1, 3)


def test_a_file_given_again_or_landed_meanwhile_is_asked_alone(tmp_path: Path) -> None:
    """Nested sources give a file twice; another thread lands a file after the folder's look-up:
    the look-up's "nothing" does not answer for them."""
    src = _card(tmp_path, folders=1, per_folder=3)
    files = [i for i in scan([str(src)], Filters()) if isinstance(i, SourceFile)]
    cat = Catalog(tmp_path / "state" / "catalog.sqlite")
    _job(cat, "j1")
    pre = Prefetch(cat, ["d1"])
    it = pre.ahead(iter([files[0], files[1], files[0], files[2]]))
    first = next(it)
    assert pre.prior_read(first) is None and pre.asked_alone == 0
    _read(cat, "j1", first, "a" * 64)  # this job read it
    assert pre.prior_read(first) is not None  # asked again: asked alone
    assert pre.asked_alone == 1
    # (found read: the rest comes in a batch, looked up after that read)
    second = next(it)
    assert pre.batches == 1
    assert pre.landed_at("d1", "/d1/b", second.abs_path) is None
    assert pre.asked_alone == 1
    cat.record_landed(_landed(second, "d1", "/d1/b", "j1"))  # landed since the look-up
    assert pre.landed_at("d1", "/d1/b", second.abs_path) is not None
    assert pre.asked_alone == 2
    again = next(it)
    assert again is first
    assert pre.prior_read(again) == cat.prior_read(first.abs_path, first.size, first.mtime_ns)


def test_a_folder_file_given_again_is_asked_alone(tmp_path: Path) -> None:
    src = _card(tmp_path, folders=1, per_folder=3)
    files = [i for i in scan([str(src)], Filters()) if isinstance(i, SourceFile)]
    cat = Catalog(tmp_path / "state" / "catalog.sqlite")
    _job(cat, "j1")
    pre = Prefetch(cat, ["d1"])
    it = pre.ahead(iter([files[0], files[1], files[0]]))
    first = next(it)
    assert pre.prior_read(first) is None
    cat.record_landed(_landed(first, "d1", "/d1/a", "j1"))
    next(it)
    again = next(it)
    assert again is first and pre.folders == 1
    assert pre.landed_at("d1", "/d1/a", again.abs_path) is not None
    assert pre.prior_read(again) is None
    assert pre.asked_alone == 2
