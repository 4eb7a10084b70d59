"""A state folder castoff cannot write (a backup on a read-only mount, a DIT's archive drive, a
colleague's catalog opened without write permission). QA: even 'castoff jobs' refused it ("cannot
open the catalog … (attempt to write a readonly database)"). The commands that only read it read it
as it is, saying so in one line on stderr; the commands that write it say the folder is read-only
and what to do (exit 2, no traceback), and leave it as it was."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from test_cli_lane_down import as_a_user, run_as  # noqa: F401 (a fixture, and its runner)

from castoff_cli import Castoff
from engine_runner import write

NOTE = "is opened read-only (castoff cannot write it)"


def _files(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir() if p.is_file()}


@pytest.fixture(params=["closed", "copied-open"])
def read_only_state(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    as_a_user: list[str],  # noqa: F811 (the fixture imported above)
) -> tuple[Castoff, list[str]]:
    """Two jobs in a catalog whose state folder and files are read-only: closed cleanly (no -wal,
    no -shm: a reader cannot make its -shm there), or copied while another process had it open
    (its -wal and -shm beside it, the second job perhaps only in the -wal)."""
    card = tmp_path / "CARD"
    write(card / "a.jpg", b"a" * 1000)
    made = Castoff(tmp_path / "made")
    assert made("copy", str(card), "--to", str(tmp_path / "d1"), "-q").returncode == 0
    held = None
    if request.param == "copied-open":
        held = sqlite3.connect(made.state / "catalog.sqlite")
        held.execute("PRAGMA wal_autocheckpoint=0")
        held.execute("SELECT count(*) FROM jobs").fetchone()
    assert made("copy", str(card), "--to", str(tmp_path / "d2"), "-q").returncode == 0
    castoff = Castoff(tmp_path / "user")
    castoff.state.mkdir(parents=True)
    for p in made.state.glob("catalog.sqlite*"):
        shutil.copy(p, castoff.state / p.name)
    if held is not None:
        held.close()
    names = sorted(p.name for p in castoff.state.iterdir())
    if request.param == "closed":
        assert names == ["catalog.sqlite"], names
    else:
        assert names == ["catalog.sqlite", "catalog.sqlite-shm", "catalog.sqlite-wal"], names
    for p in castoff.state.iterdir():
        p.chmod(0o444)
    castoff.state.chmod(0o555)
    return castoff, as_a_user


def _said_once(stderr: str) -> None:
    assert "Traceback" not in stderr, stderr
    assert " ".join(stderr.split()).count(NOTE) == 1, stderr


def test_listings_read_a_catalog_castoff_cannot_write(read_only_state: tuple[Castoff, list[str]]) -> None:
    castoff, prefix = read_only_state
    before = _files(castoff.state)
    r = run_as(prefix, castoff, "jobs", "--json")
    assert r.returncode == 0, r.stderr
    _said_once(r.stderr)
    jobs = json.loads(r.stdout)
    assert [j["status"] for j in jobs] == ["done", "done"], jobs
    r = run_as(prefix, castoff, "jobs")
    assert r.returncode == 0, r.stderr
    _said_once(r.stderr)
    assert jobs[0]["id"] in r.stdout
    r = run_as(prefix, castoff, "uploads", "--json")
    assert r.returncode == 0, r.stderr
    _said_once(r.stderr)
    assert json.loads(r.stdout) == []
    r = run_as(prefix, castoff, "uploads")
    assert r.returncode == 0, r.stderr
    assert "no unfinished uploads" in r.stdout
    assert _files(castoff.state) == before


def test_jobs_show_reads_a_catalog_castoff_cannot_write(read_only_state: tuple[Castoff, list[str]]) -> None:
    castoff, prefix = read_only_state
    before = _files(castoff.state)
    ids = [j["id"] for j in json.loads(run_as(prefix, castoff, "jobs", "--json").stdout)]
    for job_id in ids:  # the newer job too: from the -wal where it is only there
        r = run_as(prefix, castoff, "jobs", "show", job_id, "--json")
        assert r.returncode == 0, r.stderr
        _said_once(r.stderr)
        rep = json.loads(r.stdout)
        assert rep["job"]["id"] == job_id
        assert [f["path"] for f in rep["files"]] == ["CARD/a.jpg"], rep["files"]
        r = run_as(prefix, castoff, "jobs", "show", job_id)
        assert r.returncode == 0, r.stderr
        _said_once(r.stderr)
        assert "a.jpg" in r.stdout
    assert _files(castoff.state) == before


@pytest.mark.parametrize(
    "args", [("copy", "CARD", "--to", "d3"), ("jobs", "prune", "--keep", "1"), ("uploads", "abort", "--all")]
)
def test_commands_that_write_say_the_state_folder_is_read_only(
    read_only_state: tuple[Castoff, list[str]], args: tuple[str, ...]
) -> None:
    castoff, prefix = read_only_state
    before = _files(castoff.state)
    args = tuple(str(castoff.root.parent / a) if a in ("CARD", "d3") else a for a in args)
    r = run_as(prefix, castoff, *args)
    said = " ".join(r.stderr.split())
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    assert f"the state folder {castoff.state} is read-only: castoff cannot write the catalog" in said, said
    assert f"make {castoff.state} writable" in said, said
    assert NOTE not in said
    assert _files(castoff.state) == before
    assert not (castoff.root.parent / "d3").exists()


def test_listings_of_a_read_only_state_folder_without_a_catalog_are_empty(
    tmp_path: Path,
    as_a_user: list[str],  # noqa: F811 (the fixture imported above)
) -> None:
    """A state folder castoff cannot write that holds no catalog yet (a fresh archive drive): the
    listings are empty, with a note, not the "cannot write the catalog" error; nothing is made."""
    castoff = Castoff(tmp_path / "user")
    castoff.state.mkdir(parents=True)
    castoff.state.chmod(0o555)
    for args in (("jobs",), ("jobs", "--json"), ("uploads",), ("uploads", "--json")):
        r = run_as(as_a_user, castoff, *args)
        assert r.returncode == 0, (args, r.stderr)
        said = " ".join(r.stderr.split())
        assert f"there is no catalog in {castoff.state}, which castoff cannot write" in said, said
        assert "Traceback" not in said
        assert r.stdout.strip() in ("[]", "no unfinished uploads") or r.stdout.startswith("no jobs yet"), (
            r.stdout
        )
    r = run_as(as_a_user, castoff, "jobs", "show", "20261122-000000-abcd")
    assert r.returncode == 2 and "no job '20261122-000000-abcd'" in r.stderr, r.stderr
    assert list(castoff.state.iterdir()) == []
