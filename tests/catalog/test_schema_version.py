"""The catalog's format version (``SCHEMA_VERSION``). QA (upgrade): it stayed 1 through some ten
migrations and no castoff read it, so an older castoff, run again on a catalog a newer one had
written, trusted rows it could not fully read and replaced a bucket object the newer one had kept
(its key claimed by another card). A castoff now refuses a catalog whose version is above its own,
and an older castoff's catalog is migrated to the same tables as a new one, its decisions kept."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from pathlib import Path

import pytest

from castoff import errors
from castoff.catalog.db import SCHEMA_VERSION, Catalog
from castoff_cli import run_castoff
from engine_runner import write

#: what the tables of each format are (``_tables``): a change of the tables without a new
#: SCHEMA_VERSION (and a migration) fails here. Raise SCHEMA_VERSION, pin the new digest.
#: (3: jobs.scanned, an index of landed by target; 4: jobs.castoff_version and host; 5: files.ctime_ns)
PINNED = {2: "f22028a6e3f16ec9", 3: "e85a9dbdacd6aa1f", 4: "89d2e5583a7a018a", 5: "6bff360214e87e21"}

#: a catalog castoff 5c6ed57 (an early version, format "1") wrote: one job, two photos to one
#: folder, paths under @ROOT@
OLD_CATALOG = Path(__file__).parent / "data" / "catalog-5c6ed57.sql"
OLD_MTIME_NS = 1795168800000000000  # 2026-11-20 10:00 UTC, as the dump has it


def _tables(path: Path) -> str:
    """The catalog's tables, columns, indexes and triggers, whatever order migrations added them
    in, as one digest."""
    db = sqlite3.connect(path)
    try:
        shape: dict[str, object] = {}
        for kind, name, table in db.execute("SELECT type, name, tbl_name FROM sqlite_master ORDER BY name"):
            if name.startswith("sqlite_"):
                continue
            if kind == "table":
                cols = db.execute(f'PRAGMA table_info("{name}")').fetchall()
                shape[name] = sorted((c[1], c[2].upper(), c[3], c[5]) for c in cols)
            elif kind == "index":
                cols = db.execute(f'PRAGMA index_info("{name}")').fetchall()
                shape[name] = [table, [c[2] for c in cols]]
            else:
                shape[name] = [kind, table]
    finally:
        db.close()
    return hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()


def _version(path: Path) -> str:
    db = sqlite3.connect(path)
    try:
        return str(db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0])
    finally:
        db.close()


def _fresh(tmp_path: Path) -> Path:
    path = tmp_path / "fresh" / "catalog.sqlite"
    Catalog(path).close()
    return path


def test_a_new_catalog_has_this_castoffs_format(tmp_path: Path) -> None:
    path = _fresh(tmp_path)
    assert _version(path) == str(SCHEMA_VERSION)
    digest = _tables(path)
    assert digest.startswith(PINNED.get(SCHEMA_VERSION, "?")), (
        f"the catalog's tables changed ({digest}): raise SCHEMA_VERSION, migrate older catalogs in"
        " Catalog._open, and pin the new digest in PINNED"
    )


def test_an_older_castoffs_catalog_is_migrated_and_its_decisions_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    db = sqlite3.connect(state / "catalog.sqlite")
    db.executescript(OLD_CATALOG.read_text(encoding="utf-8").replace("@ROOT@", str(tmp_path)))
    db.close()
    assert _version(state / "catalog.sqlite") == "1"
    photos = {"IMG_0001.JPG": b"photo one", "IMG_0002.CR3": b"photo two!"}
    for top in ("card", "ssd/card"):  # the card, and the copies that job verified
        for name, data in photos.items():
            path = write(tmp_path / top / "DCIM" / "100CANON" / name, data)
            os.utime(path, ns=(OLD_MTIME_NS, OLD_MTIME_NS))
    monkeypatch.chdir(tmp_path)  # the old job copied "card", as typed
    r = run_castoff("copy", "card", "--to", str(tmp_path / "ssd"), "--json", state=state)
    assert r.returncode == 0, r.stderr
    done = [json.loads(line) for line in r.stdout.splitlines() if '"file-done"' in line]
    assert sorted(e["status"] for e in done) == ["skipped", "skipped"], done  # verified there before
    # and not read to check them: that castoff kept no change time, its reads are trusted as they were
    assert '"file-read"' not in r.stdout, r.stdout
    assert _version(state / "catalog.sqlite") == str(SCHEMA_VERSION)
    assert _tables(state / "catalog.sqlite") == _tables(_fresh(tmp_path))
    old = run_castoff("jobs", "show", "20261122-231721-3d96", "--json", state=state)
    assert old.returncode == 0, old.stderr
    assert json.loads(old.stdout)["job"]["files_complete"] is True  # it ran to its end
    # which castoff ran it, and where, was not kept then: said unknown, not this castoff's
    assert json.loads(old.stdout)["job"]["castoff_version"] is None
    assert json.loads(old.stdout)["job"]["host"] is None
    files = json.loads(old.stdout)["files"]
    assert [(f["path"], f["destinations"][0]["status"]) for f in files] == [
        ("card/DCIM/100CANON/IMG_0001.JPG", "verified"),
        ("card/DCIM/100CANON/IMG_0002.CR3", "verified"),
    ]


@pytest.mark.parametrize("newer", [str(SCHEMA_VERSION + 1), "a format of its own"])
def test_a_catalog_from_a_newer_castoff_is_refused_and_left_as_it_is(tmp_path: Path, newer: str) -> None:
    card, state = tmp_path / "CARD", tmp_path / "state"
    write(card / "a.jpg", b"a")
    assert run_castoff("copy", str(card), "--to", str(tmp_path / "d1"), "-q", state=state).returncode == 0
    catalog = state / "catalog.sqlite"
    db = sqlite3.connect(catalog)
    db.execute("UPDATE meta SET value=? WHERE key='schema_version'", (newer,))
    db.commit()
    db.close()
    before = {p.name: p.read_bytes() for p in state.glob("catalog.sqlite*")}
    for args in (
        ("copy", str(card), "--to", str(tmp_path / "d2")),
        ("jobs",),
        ("jobs", "--json"),
        ("uploads",),
        ("jobs", "prune", "--keep", "0"),
    ):
        r = run_castoff(*args, state=state)
        said = " ".join(r.stderr.split())
        assert r.returncode == 2, (args, r.stderr)
        assert "Traceback" not in said
        assert f"the catalog {catalog} was written by a newer castoff (catalog format {newer};" in said, said
        assert "use that castoff again" in said, said
    assert not (tmp_path / "d2").exists()
    assert {p.name: p.read_bytes() for p in state.glob("catalog.sqlite*")} == before
    with pytest.raises(errors.CatalogTooNew):
        Catalog(catalog, read_only=True)
