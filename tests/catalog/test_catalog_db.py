"""The catalog's own bookkeeping, below the engine."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from castoff import errors
from castoff.catalog.db import FILE_META_COLUMNS, Catalog, DamagedCopy, KnownObject, LandedRow
from castoff.catalog.group import WriteGroup
from castoff.layout.capture import Capture
from castoff.layout.planner import FilePlan
from engine_runner import write
from kernel_mounts import kernel_drive


def test_a_plan_is_kept_column_by_column_and_read_back_as_planned(tmp_path: Path) -> None:
    cat = Catalog(tmp_path / "catalog.sqlite")
    cat.start_job("j1", argv=["castoff"], sources=["/card"], destinations=[], options={}, pid=1)
    file_id = cat.add_file("j1", rel_path="card/A001.MOV", abs_path="/card/A001.MOV", size=9, mtime_ns=1)
    when = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
    plan = FilePlan(
        layout_path="2026-11-02/A001.MOV",
        capture=Capture(when, "quicktime", "Sony", "FX6", "exif"),
        file_type="Video",
        sidecar_of="A001.XML",
        original_path="card/A001.MOV",
        counter=7,
    )
    record = plan.catalog_record()
    assert len(record) == len(FILE_META_COLUMNS)
    cat.set_file_meta("j1", file_id, record)
    row = cat.job_file_meta("j1")[file_id]
    assert {c: row[c] for c in FILE_META_COLUMNS} == {
        "layout_path": "2026-11-02/A001.MOV",
        "original_path": "card/A001.MOV",
        "capture_time": when.isoformat(),
        "capture_source": "quicktime",
        "device": plan.capture.device,
        "device_source": "exif",
        "file_type": "Video",
        "sidecar_of": "A001.XML",
        "make": "Sony",
        "model": "FX6",
        "counter": 7,
    }
    # and what a re-run plans from: the same capture, rebuilt from those columns
    cat.file_read(file_id, blake3="b" * 64, md5=None)
    prior = cat.prior_read("/card/A001.MOV", 9, 1)
    assert prior is not None and prior.capture is not None
    assert (prior.capture.when, prior.capture.make, prior.capture.model) == (when.isoformat(), "Sony", "FX6")
    assert prior.counter == 7  # the re-run gives the file its number again


def test_a_catalog_from_before_the_objects_table_learns_its_keys_from_what_landed(tmp_path: Path) -> None:
    """The keys castoff put at buckets before it kept ``objects`` are taken from ``landed``, once,
    when the catalog is opened; local destinations' rows are not keys."""
    path = tmp_path / "catalog.sqlite"
    cat = Catalog(path)
    for ident, target in (
        ("s3:127.0.0.1:9000/b/raw/", "raw/a (2).jpg"),
        ("local:/mnt/ssd", "/mnt/ssd/a.jpg"),
    ):
        cat.record_landed(
            LandedRow(
                ident, target.replace(" (2)", ""), target, "/card/a.jpg", 5, 1, "b3", None, "md5", 1.0, "j1"
            )
        )
    cat.close()
    with contextlib.closing(sqlite3.connect(path)) as db, db:  # as an older castoff left it
        db.execute("DELETE FROM objects")
        db.execute("DELETE FROM meta WHERE key='objects_filled'")
    cat = Catalog(path)
    assert cat.object_at("s3:127.0.0.1:9000/b/raw/", "raw/a (2).jpg") == KnownObject("b3", 5, "j1", 1.0)
    assert cat.object_at("s3:127.0.0.1:9000/b/raw/", "raw/a.jpg") is None
    assert cat.object_at("local:/mnt/ssd", "/mnt/ssd/a.jpg") is None
    cat.record_object("s3:127.0.0.1:9000/b/raw/", "raw/a.jpg", blake3="b4", size=6, job_id="j2")
    known = cat.object_at("s3:127.0.0.1:9000/b/raw/", "raw/a.jpg")
    assert known is not None and known[:3] == ("b4", 6, "j2")
    cat.close()


@pytest.mark.parametrize(
    ("make", "state", "said"),
    [
        (
            lambda t: t.joinpath("home").write_text("x"),
            "home",
            "{t}/home is a file, where a folder is needed",
        ),
        (
            lambda t: t.joinpath("home").write_text("x"),
            "home/sub",
            "{t}/home is a file, where a folder is needed",
        ),
        (
            lambda t: write(t / "home" / "catalog.sqlite", b"garbage " * 512),
            "home",
            "the catalog {t}/home/catalog.sqlite is not a castoff catalog (file is not a database)",
        ),
        (
            lambda t: t.joinpath("home", "catalog.sqlite").mkdir(parents=True),
            "home",
            "is a folder, not a file",
        ),
    ],
    ids=["file-for-folder", "folder-under-file", "garbage", "folder-for-file"],
)
def test_a_catalog_that_cannot_be_opened_is_a_usage_error_naming_the_path(
    tmp_path: Path, make: Callable[[Path], object], state: str, said: str
) -> None:
    """Before: FileExistsError, NotADirectoryError or sqlite3.DatabaseError, as a traceback."""
    make(tmp_path)
    with pytest.raises(errors.UsageError) as caught:
        Catalog(tmp_path / state / "catalog.sqlite")
    assert said.format(t=tmp_path) in caught.value.message
    assert "--state-dir" in (caught.value.hint or "")


def _landed_row(target: str, src: str = "/card/a.jpg") -> LandedRow:
    return LandedRow("local:/d", target, target, src, 5, 1, "b3", None, "read back", 1.0, "j1")


def _damaged(target: str) -> DamagedCopy:
    return DamagedCopy("local:/d", target, target, "b3", 1.0, 5, 1, 2.0, "j1")


def test_a_copy_landed_at_a_damaged_copys_target_forgets_it_even_in_an_older_catalog(tmp_path: Path) -> None:
    path = tmp_path / "catalog.sqlite"
    cat = Catalog(path)
    cat.close()
    with contextlib.closing(sqlite3.connect(path)) as db, db:  # as an older castoff left it
        db.execute("DROP TRIGGER landed_clears_damaged")
    cat = Catalog(path)
    cat.record_damaged(_damaged("/d/a.jpg"))
    cat.record_damaged(_damaged("/d/b.jpg"))
    cat.record_landed(_landed_row("/d/a.jpg"))
    assert cat.damaged_at("local:/d", "/d/a.jpg") is None
    assert cat.damaged_at("local:/d", "/d/b.jpg") == _damaged("/d/b.jpg")
    # in a group, in the order written: damaged again after it landed stays damaged
    with WriteGroup(cat) as group:
        group.next_file()
        cat.record_landed(_landed_row("/d/b.jpg"))
        cat.record_damaged(_damaged("/d/b.jpg"))
        cat.record_landed(_landed_row("/d/c.jpg"))
    assert cat.damaged_at("local:/d", "/d/b.jpg") == _damaged("/d/b.jpg")
    cat.close()


_OLD_LANDED = """CREATE TABLE landed (
    dest_ident TEXT NOT NULL, planned TEXT NOT NULL, target TEXT NOT NULL, src_path TEXT NOT NULL,
    size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, blake3 TEXT NOT NULL, etag TEXT,
    verify_method TEXT NOT NULL, verified_at REAL NOT NULL, job_id TEXT NOT NULL,
    PRIMARY KEY (dest_ident, planned))"""


def test_two_sources_that_plan_one_name_keep_a_copy_each_even_in_an_older_catalog(tmp_path: Path) -> None:
    """Before: one row per planned name, so the second card's IMG_0001.JPG, landed as
    "IMG_0001 (2).JPG", replaced the first's row (or the first's replaced it) and a re-run read
    one of them again."""
    path = tmp_path / "catalog.sqlite"
    Catalog(path).close()
    with contextlib.closing(sqlite3.connect(path)) as db, db:  # as an older castoff left it
        db.execute("DROP TABLE landed")
        db.execute(_OLD_LANDED)
        db.execute(
            "INSERT INTO landed VALUES ('local:/d', '/d/IMG.JPG', '/d/IMG.JPG', '/a/IMG.JPG', 5, 1, 'b3',"
            " NULL, 'read back', 1.0, 'j0')"
        )
    cat = Catalog(path)
    first = cat.landed_at("local:/d", "/d/IMG.JPG", "/a/IMG.JPG")  # kept through the change of key
    assert first is not None and first.target == "/d/IMG.JPG"
    second = LandedRow(
        "local:/d", "/d/IMG.JPG", "/d/IMG (2).JPG", "/b/IMG.JPG", 5, 1, "b4", None, "rb", 2.0, "j1"
    )
    cat.record_landed(second)
    assert cat.landed_at("local:/d", "/d/IMG.JPG", "/a/IMG.JPG") == first
    assert cat.landed_at("local:/d", "/d/IMG.JPG", "/b/IMG.JPG") == second
    assert cat.landed_at("local:/d", "/d/IMG.JPG") == second  # from any source: the latest
    cat.record_damaged(_damaged("/d/IMG (2).JPG"))
    cat.record_landed(second)  # the trigger was made again with the table
    assert cat.damaged_at("local:/d", "/d/IMG (2).JPG") is None
    cat.close()
    assert Catalog(path).landed_for_source("local:/d", "/b/IMG.JPG") == [second]  # opened again: as it was


def test_a_groups_rows_are_seen_before_its_commit_and_go_with_its_rollback(tmp_path: Path) -> None:
    """The outcomes, copies and plans a held group keeps for one statement each are there for
    every question asked meanwhile, in the group's transaction: committed with it, or not at all."""
    path = tmp_path / "catalog.sqlite"
    cat = Catalog(path)
    cat.start_job("j1", argv=[], sources=[], destinations=[], options={}, pid=1)
    record = FilePlan(
        layout_path="x/a.jpg",
        capture=Capture(datetime(2026, 11, 2, tzinfo=UTC), "exif", "Sony", "A7", "exif"),
        file_type="Photos",
        sidecar_of=None,
        original_path="card/a.jpg",
    )

    def write_file(name: str) -> None:
        file_id = cat.add_file("j1", rel_path=f"card/{name}", abs_path=f"/card/{name}", size=5, mtime_ns=1)
        cat.set_file_meta("j1", file_id, record.catalog_record())
        cat.set_outcome("j1", file_id, dest_ident="local:/d", dest_name="d", target="/d/t", status="pending")
        cat.set_outcome(
            "j1", file_id, dest_ident="local:/d", dest_name="d", target="/d/" + name, status="verified"
        )
        cat.record_landed(_landed_row("/d/" + name, "/card/" + name))
        cat.file_read(file_id, blake3="b" * 64, md5=None)

    def fail_in_a_group() -> None:
        with WriteGroup(cat) as group:
            group.next_file()
            write_file("gone.jpg")
            assert cat.landed_at("local:/d", "/d/gone.jpg") is not None
            raise RuntimeError("the group goes")

    with pytest.raises(RuntimeError):
        fail_in_a_group()
    assert cat.landed_at("local:/d", "/d/gone.jpg") is None
    assert cat.job_outcomes("j1") == []

    with WriteGroup(cat) as group:
        group.next_file()
        write_file("a.jpg")
        prior = cat.prior_read("/card/a.jpg", 5, 1)
        assert prior is not None and prior.blake3 == "b" * 64
        assert [(o["target"], o["status"]) for o in cat.job_outcomes("j1")] == [("/d/a.jpg", "verified")]
        with contextlib.closing(sqlite3.connect(path)) as other:  # not committed yet
            assert other.execute("SELECT COUNT(*) FROM landed").fetchone() == (0,)
    with contextlib.closing(sqlite3.connect(path)) as other:
        assert other.execute("SELECT COUNT(*) FROM landed").fetchone() == (1,)
        assert other.execute("SELECT COUNT(*) FROM outcomes").fetchone() == (1,)
        assert other.execute("SELECT layout_path FROM file_meta").fetchall() == [("x/a.jpg",)]
    cat.close()


def test_a_state_folder_whose_drive_failed_is_said_so_not_full(tmp_path: Path) -> None:
    """QA M #2: the state folder's ext4 turned read-only after an error (errors=remount-ro) mid-job:
    SQLite's "disk I/O error" was said as "the state folder … is full, or a file size limit
    (ulimit -f) stops it growing", with plenty free. A real ext4 image, made to fail."""
    with kernel_drive(tmp_path, "ext4", size="64M", options="errors=remount-ro") as drive:
        path = drive.path / "home" / "catalog.sqlite"
        path.parent.mkdir()
        cat = Catalog(path)
        cat.log("j1", "info", "before")
        drive.fail()
        with pytest.raises(errors.CatalogError) as caught:
            _write_until_refused(cat)
        with contextlib.suppress(errors.CatalogError):
            cat.close()
        for said in (caught.value, _opened(path)):
            assert f"the drive of the state folder {path.parent} reported an I/O error or went read-only" in (
                said.message
            ), said
            assert "full" not in said.message, said
            assert said.hint is not None and said.hint.startswith("check that drive (fsck) and remount it"), (
                said
            )


def _opened(path: Path) -> errors.CastoffError:
    """What opening the catalog at ``path`` raises."""
    with pytest.raises(errors.CastoffError) as caught:
        Catalog(path)
    return caught.value


def _write_until_refused(cat: Catalog) -> None:
    for i in range(100):  # (the first writes may land in SQLite's cache)
        cat.log("j1", "info", f"after {i}")
