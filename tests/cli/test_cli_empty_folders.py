"""``castoff copy`` recreates the source's empty folders: what the user sees and a script reads."""

from __future__ import annotations

import json
from pathlib import Path

from castoff_cli import run_castoff as run
from engine_runner import write


def card(root: Path) -> Path:
    src = root / "card"
    write(src / "DCIM" / "100CANON" / "a.jpg", b"hi")
    (src / "PRIVATE" / "M4ROOT" / "THMBNL").mkdir(parents=True)
    write(src / "MISC" / ".DS_Store", b"junk")
    (src / "SKIPME" / "deeper").mkdir(parents=True)
    (src / "$RECYCLE.BIN").mkdir()
    return src


def test_the_summary_says_how_many_were_made_and_a_rerun_says_nothing(tmp_path: Path) -> None:
    src, state = card(tmp_path / "src"), tmp_path / "state"
    args = ("copy", str(src), "--to", str(tmp_path / "a"), "--to", str(tmp_path / "b"), "--exclude", "SKIPME")
    r = run(*args, state=state)
    assert r.returncode == 0, r.stderr
    assert "2 empty folders made at each local destination" in r.stderr
    for d in ("a", "b"):
        assert (tmp_path / d / "card" / "PRIVATE" / "M4ROOT" / "THMBNL").is_dir()
        assert (tmp_path / d / "card" / "MISC").is_dir()
        assert not (tmp_path / d / "card" / "SKIPME").exists()  # excluded
        assert not (tmp_path / d / "card" / "$RECYCLE.BIN").exists()  # junk
    again = run(*args, state=state)
    assert again.returncode == 0, again.stderr
    assert "empty folder" not in again.stderr


def test_json_events_name_each_folder_and_the_job_end_counts_them(tmp_path: Path) -> None:
    src, state = card(tmp_path / "src"), tmp_path / "state"
    r = run("copy", str(src), "--to", str(tmp_path / "a"), "--json", state=state)
    assert r.returncode == 0, r.stderr
    events = [json.loads(line) for line in r.stdout.splitlines()]
    made = sorted(e["path"] for e in events if e["event"] == "folder-done" and e["status"] == "made")
    assert made == ["card/MISC", "card/PRIVATE/M4ROOT/THMBNL", "card/SKIPME/deeper"]
    (end,) = [e for e in events if e["event"] == "job-end"]
    assert end["empty_folders_made"] == {str(tmp_path / "a"): 3}
    assert end["empty_folders_failed"] == 0


def test_a_file_in_the_way_fails_the_job_after_every_file_is_delivered(tmp_path: Path) -> None:
    src, state = card(tmp_path / "src"), tmp_path / "state"
    write(tmp_path / "a" / "card" / "MISC", b"a file, not a folder")
    r = run("copy", str(src), "--to", str(tmp_path / "a"), state=state)
    assert r.returncode == 1
    assert f"empty folder card/MISC not made at {tmp_path}/a/card/MISC" in r.stderr
    assert "Every file reached every destination, verified; 1 empty folder was not made" in r.stderr
    assert "Some files did not reach" not in r.stderr
    assert (tmp_path / "a" / "card" / "DCIM" / "100CANON" / "a.jpg").read_bytes() == b"hi"


def test_a_layout_by_type_says_once_why_it_makes_none(tmp_path: Path) -> None:
    src, state = card(tmp_path / "src"), tmp_path / "state"
    r = run("copy", str(src), "--to", str(tmp_path / "a"), "--layout", "type", state=state)
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("3 empty folders of the source not made: the layout ({type}/{name})") == 1
    assert not (tmp_path / "a" / "card").exists()
