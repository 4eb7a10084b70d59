"""What a first-time user meets on the README's path: failures that say what failed, numbers that
exist, names that were meant, and tables whose ids and paths can be read and copied."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from castoff.catalog.db import Catalog
from castoff_cli import Castoff, run_castoff
from engine_runner import write


def test_quiet_still_says_which_file_failed_where(tmp_path: Path) -> None:
    card = tmp_path / "CARD"
    write(card / "a.jpg", b"from the card")
    write(card / "b.jpg", b"also from the card")
    ssd = tmp_path / "ssd"
    write(ssd / "CARD" / "a.jpg", b"something else")
    r = run_castoff(
        "copy", str(card), "--to", str(ssd), "--on-conflict", "fail", "--quiet", state=tmp_path / "s"
    )
    assert r.returncode == 1
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr  # the one file that failed, nothing else
    assert "CARD/a.jpg" in lines[0] and "exists with other content" in lines[0]
    ok = run_castoff("copy", str(card), "--to", str(tmp_path / "nas"), "--quiet", state=tmp_path / "s")
    assert (ok.returncode, ok.stdout, ok.stderr) == (0, "", "")


def test_dest_test_of_a_misspelt_name_creates_nothing(tmp_path: Path) -> None:
    castoff = Castoff(tmp_path / "user")
    assert castoff("dest", "add", "ssd", "local", str(tmp_path / "ssd")).returncode == 0
    typo = castoff("dest", "test", "sdd")  # meant ssd: not a folder to create and call writable
    assert typo.returncode == 2
    assert "no saved destination 'sdd', and no folder 'sdd' here" in typo.stderr
    assert "./sdd" in typo.stderr
    assert not (castoff.root / "sdd").exists()
    new = castoff("dest", "test", "./later", str(tmp_path / "also-later"))
    assert new.returncode == 0, new.stdout + new.stderr
    assert "the first job creates it" in new.stdout
    assert not (castoff.root / "later").exists() and not (tmp_path / "also-later").exists()
    assert castoff("dest", "test", "ssd").returncode == 0


def test_jobs_tables_in_a_narrow_terminal_cut_no_id_and_no_path(tmp_path: Path) -> None:
    card = tmp_path / "EOS_DIGITAL"
    write(card / "DCIM" / "100CANON" / "IMG_0001.CR3", b"raw")
    state = tmp_path / "state"
    assert (
        run_castoff("copy", str(card), "--to", str(tmp_path / "ssd"), "--quiet", state=state).returncode == 0
    )
    narrow = {"COLUMNS": "80"}
    listed = run_castoff("jobs", state=state, env=narrow)
    assert listed.returncode == 0
    (job_id,) = (p.stem for p in (state / "reports").glob("*.json"))
    assert job_id in listed.stdout  # whole, on one line: it is what 'jobs show' takes
    shown = run_castoff("jobs", "show", job_id, state=state, env=narrow)
    assert shown.returncode == 0
    assert "…" not in shown.stdout  # a cut path names no file; a wrapped one does
    cells = "".join(line.split("│")[1].strip() for line in shown.stdout.splitlines() if line.startswith("│"))
    assert cells == "EOS_DIGITAL/DCIM/100CANON/IMG_0001.CR3"


def test_a_conflict_kept_as_both_is_said_not_only_in_the_report(tmp_path: Path) -> None:
    card = tmp_path / "CARD"
    write(card / "a.jpg", b"from the card")
    ssd = tmp_path / "ssd"
    write(ssd / "CARD" / "a.jpg", b"something else")
    r = run_castoff("copy", str(card), "--to", str(ssd), state=tmp_path / "s")
    assert r.returncode == 0, r.stderr
    said = " ".join(r.stderr.split())
    assert f"{ssd / 'CARD' / 'a.jpg'} exists with other content: kept both" in said
    assert f"this copy is {ssd / 'CARD' / 'a (2).jpg'}" in said
    assert (ssd / "CARD" / "a (2).jpg").read_bytes() == b"from the card"


def test_a_destination_under_a_file_says_the_file_is_in_the_way(tmp_path: Path) -> None:
    card = tmp_path / "CARD"
    write(card / "a.jpg", b"from the card")
    write(tmp_path / "ssd", b"a file where a folder was meant")
    r = run_castoff("copy", str(card), "--to", str(tmp_path / "ssd" / "shoots"), state=tmp_path / "s")
    assert r.returncode == 2  # its only destination: nothing could be written (README)
    said = " ".join(r.stderr.split())
    assert f"{tmp_path / 'ssd'} is a file, not a folder" in said
    assert "does not exist" not in said  # it does exist; it is in the way


def test_rotating_keys_unattended_says_which_flags_to_give(tmp_path: Path) -> None:
    castoff = Castoff(tmp_path / "user")
    added = castoff(
        "dest", "add", "archive", "s3", "--bucket", "raw", "--endpoint", "http://127.0.0.1:9",
        "--access-key-id", "AKIAOLD", "--secret-stdin", "--no-test", input="old-secret\n",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    r = castoff("dest", "credentials", "archive", "--secret-stdin", input="new-secret\n")
    assert r.returncode == 2
    said = " ".join(r.stderr.split())
    assert "--secret-stdin needs --access-key-id" in said
    assert "--access-key-id ID" in said and "--secret-stdin" in said
    assert "castoff dest credentials NAME" not in said  # the command being run is no way out


def test_jobs_says_interrupted_for_a_job_whose_process_is_gone(tmp_path: Path) -> None:
    """A second Ctrl-C or a kill leaves the job marked running; 'castoff jobs' must not say it
    still runs."""
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    state = tmp_path / "state"
    state.mkdir()
    catalog = Catalog(state / "catalog.sqlite")
    catalog.start_job(
        "20261122-101959-b369", argv=["castoff"], sources=[str(tmp_path)], destinations=[], options={},
        pid=int(gone.stdout),
    )  # fmt: skip
    catalog.close()
    listed = run_castoff("jobs", "--json", state=state)
    assert listed.returncode == 0, listed.stderr
    assert [j["status"] for j in json.loads(listed.stdout)] == ["interrupted"]


def test_an_empty_source_is_not_called_released(tmp_path: Path) -> None:
    """A card that is not mounted leaves an empty mount point: copying it must not read as an
    offload that let the card go."""
    mount_point = tmp_path / "EOS_DIGITAL"
    mount_point.mkdir()
    write(mount_point / ".DS_Store", b"junk only")
    r = run_castoff("copy", str(mount_point), "--to", str(tmp_path / "ssd"), state=tmp_path / "s")
    assert r.returncode == 2
    said = " ".join(r.stderr.split())
    assert f"no file to copy in {mount_point}: is the card mounted" in said
    assert "can be released" not in said
