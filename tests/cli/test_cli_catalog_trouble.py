"""The catalog failing under a command that had opened it: damaged pages, a state folder that
cannot grow, a catalog another process holds. Each is said plainly (which catalog, what to do),
with its exit code and no traceback; what a job delivered stays delivered."""

from __future__ import annotations

import json
import os
import resource
import sqlite3
import subprocess
from pathlib import Path

import pytest

from castoff.catalog import db as catalog_db
from castoff.catalog.db import Catalog
from castoff.errors import CatalogBusy
from castoff_cli import CASTOFF, run_castoff
from engine_runner import write


def _card(root: Path, n: int = 200) -> Path:
    card = root / "CARD"
    for i in range(n):
        write(card / f"f{i:03d}.jpg", os.urandom(2000))
    return card


def _two_runs(tmp_path: Path) -> tuple[Path, Path]:
    """A card copied twice: a catalog of some 500 KB, most of it file rows."""
    card, state = _card(tmp_path), tmp_path / "state"
    for _ in range(2):
        r = run_castoff("copy", str(card), "--to", str(tmp_path / "d1"), "-q", state=state)
        assert r.returncode == 0, r.stderr
    return card, state


def test_a_catalog_whose_pages_are_damaged_stops_the_job_saying_so(tmp_path: Path) -> None:
    """Before: ``sqlite3.DatabaseError: database disk image is malformed`` as a traceback, exit 1."""
    card, state = _two_runs(tmp_path)
    catalog = state / "catalog.sqlite"
    size = catalog.stat().st_size
    with catalog.open("r+b") as f:  # three runs of bytes over pages, as a bad disk leaves them
        for at in (size // 5, size * 9 // 20, size * 9 // 10):
            f.seek(at)
            f.write(bytes(range(256)) * 12)
    r = run_castoff("copy", str(card), "--to", str(tmp_path / "d2"), state=state)
    said = " ".join(r.stderr.split())
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    assert f"the catalog {catalog} is damaged (database disk image is malformed)" in said, said
    assert f"move it aside (mv {catalog} {catalog}.damaged" in said
    assert "the unfinished multipart uploads it could resume" in said


def test_a_truncated_catalog_is_called_damaged_not_someone_elses(tmp_path: Path) -> None:
    """Before: "is not a castoff catalog (database disk image is malformed)"."""
    card, state = _two_runs(tmp_path)
    catalog = state / "catalog.sqlite"
    os.truncate(catalog, catalog.stat().st_size // 3)
    r = run_castoff("copy", str(card), "--to", str(tmp_path / "d2"), state=state)
    said = " ".join(r.stderr.split())
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    assert f"the catalog {catalog} is damaged (database disk image is malformed)" in said, said
    assert "not a castoff catalog" not in said
    assert "the unfinished multipart uploads it could resume" in said
    assert not (tmp_path / "d2").exists()


def test_a_state_folder_that_cannot_grow_stops_the_job_saying_so_and_the_copies_stay(
    tmp_path: Path,
) -> None:
    """Before: ``sqlite3.OperationalError: disk I/O error`` from ``release`` as a traceback, exit 1,
    no report, the job left "running" (then "interrupted")."""
    card, state = _two_runs(tmp_path)
    limit = state.joinpath("catalog.sqlite").stat().st_size // 4  # its WAL cannot grow past it

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    r = subprocess.run(
        [*CASTOFF, "--state-dir", str(state), "copy", str(card), "--to", str(tmp_path / "d4")],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
        preexec_fn=small_files,  # only the limit, before exec
    )
    said = " ".join(r.stderr.split())
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert f"the catalog {state / 'catalog.sqlite'} cannot be written" in said, said
    assert f"the state folder {state} is full, or a file size limit (ulimit -f) stops it growing" in said
    assert "then run the same command again" in said
    for f in (tmp_path / "d4" / "CARD").iterdir():  # whatever landed is whole
        assert f.read_bytes() == (card / f.name).read_bytes()
    r = run_castoff("jobs", "--json", state=state)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)[0]["status"] in ("failed", "interrupted")
    r = run_castoff("copy", str(card), "--to", str(tmp_path / "d4"), state=state)  # the advice
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (tmp_path / "d4" / "CARD").iterdir()) == sorted(
        p.name for p in card.iterdir()
    )


def test_a_catalog_held_past_the_timeout_is_catalog_busy_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every write of an open catalog that meets another process's lock for too long: a
    ``CatalogBusy`` naming the catalog, never an ``sqlite3.OperationalError`` (which a job's lane
    showed as "internal error" with a traceback)."""
    monkeypatch.setattr(catalog_db, "BUSY_TIMEOUT_MS", 100)
    path = tmp_path / "catalog.sqlite"
    cat = Catalog(path)
    holder = sqlite3.connect(str(path), isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        with pytest.raises(CatalogBusy) as caught:
            cat.log("j1", "info", "hello")
    finally:
        holder.close()
        cat.close()
    assert f"the catalog is busy: another process held {path} for more than" in caught.value.message
    assert caught.value.hint is not None and "run the same command again" in caught.value.hint
