"""Every JSON report castoff writes validates against the schema it ships (castoff.report/2)."""

from __future__ import annotations

import json
import socket
import sqlite3
from pathlib import Path

import jsonschema
import pytest
import xxhash

import castoff
from reports.kit import XSS, Cli, last_report, reports, schema, validate


def test_schema_is_valid_json_schema_and_shipped_in_the_package() -> None:
    jsonschema.Draft202012Validator.check_schema(schema())


def test_reports_of_success_failure_and_rerun_all_validate(
    tmp_path: Path, card: Path, cli: Cli, state: Path
) -> None:
    ok = cli("copy", str(card), "--to", str(tmp_path / "a"), "--to", str(tmp_path / "b"), "--quiet")
    assert ok.returncode == 0, ok.stderr
    again = cli("copy", str(card), "--to", str(tmp_path / "a"), "--quiet")
    assert again.returncode == 0, again.stderr
    gone = tmp_path / "no-such-drive" / "shoots"
    bad = cli("copy", str(card), "--to", str(tmp_path / "a"), "--to", str(gone), "--quiet")
    assert bad.returncode == 1, bad.stderr
    written = reports(state)
    assert len(written) == 3
    docs = [json.loads(p.read_text(encoding="utf-8")) for p in written]
    for doc in docs:
        validate(doc)
    first, rerun, failed = docs
    assert first["summary"][str(tmp_path / "a")]["verified"] == 5
    assert rerun["summary"][str(tmp_path / "a")]["skipped"] == 5
    by_dest = failed["summary"][str(gone)]
    assert by_dest["failed"] == 5 and by_dest["duration_s"] is None
    # Files with a problem come first.
    assert failed["files"][0]["destinations"][-1]["status"] == "failed" or any(
        d["status"] == "failed" for d in failed["files"][0]["destinations"]
    )
    # xxh128 comes from the one read, and a re-run that read nothing still knows it.
    for doc in (first, rerun):
        by_path = {f["path"]: f for f in doc["files"]}
        xss = by_path[f"{card.name}/DCIM/100CANON/{XSS}"]
        assert xss["xxh128"] == xxhash.xxh3_128((card / "DCIM" / "100CANON" / XSS).read_bytes()).hexdigest()
    assert [x["code"] for x in first["left_out"]] == ["junk"]


def test_a_report_that_breaks_the_schema_is_refused(
    tmp_path: Path, card: Path, cli: Cli, state: Path
) -> None:
    r = cli("copy", str(card), "--to", str(tmp_path / "a"), "--quiet")
    assert r.returncode == 0, r.stderr
    doc = last_report(state)
    validate(doc)
    broken = json.loads(json.dumps(doc))
    broken["files"][0]["blake3"] = "not-a-hash"
    with pytest.raises(jsonschema.ValidationError):
        validate(broken)
    broken = json.loads(json.dumps(doc))
    broken["files"][0]["destinations"][0]["status"] = "probably fine"
    with pytest.raises(jsonschema.ValidationError):
        validate(broken)


def test_the_empty_folders_made_are_in_the_report_per_destination(
    tmp_path: Path, card: Path, cli: Cli, state: Path
) -> None:
    """A script can tell which of the card's empty folders each destination has, and which not."""
    (card / "PRIVATE" / "M4ROOT" / "THMBNL").mkdir()
    (card / "MISC").mkdir()
    (card / "MISC" / ".DS_Store").write_bytes(b"junk")
    a, b = tmp_path / "a", tmp_path / "b"
    (b / card.name).mkdir(parents=True)
    (b / card.name / "MISC").write_bytes(b"a file where the folder goes")
    r = cli("copy", str(card), "--to", str(a), "--to", str(b), "--quiet")
    assert r.returncode == 1, r.stderr
    assert f"{b}: empty folder {card.name}/MISC not made at {b}/{card.name}/MISC" in r.stderr
    doc = last_report(state)
    validate(doc)
    assert [f["path"] for f in doc["empty_folders"]] == [
        f"{card.name}/MISC",
        f"{card.name}/PRIVATE/M4ROOT/THMBNL",
    ]
    misc, thmbnl = doc["empty_folders"]
    assert misc["source"] == str(card / "MISC")
    assert [(d["destination"], d["status"]) for d in misc["destinations"]] == [
        (str(a), "made"),
        (str(b), "failed"),
    ]
    assert misc["destinations"][0]["target"] == f"{a}/{card.name}/MISC"
    assert "is a file, where a folder is needed" in misc["destinations"][1]["error"]
    assert [d["status"] for d in thmbnl["destinations"]] == ["made", "made"]
    assert all(f["destinations"][-1]["status"] != "failed" for f in doc["files"])  # every file delivered
    html = reports(state, ".html")[-1].read_text(encoding="utf-8")
    assert 'id="empty-folders"' in html and f"{card.name}/PRIVATE/M4ROOT/THMBNL" in html
    # Reports of castoff versions before it have no "empty_folders": they still validate.
    del doc["empty_folders"]
    validate(doc)


def test_the_reports_name_the_castoff_and_the_machine_that_ran_the_job(
    tmp_path: Path, card: Path, cli: Cli, state: Path
) -> None:
    """An offload's report is evidence: it says which castoff made the copies, and where. Both come
    from the job's record, not from the castoff that writes a report later (``jobs show``)."""
    r = cli("copy", str(card), "--to", str(tmp_path / "a"), "--quiet")
    assert r.returncode == 0, r.stderr
    doc = last_report(state)
    validate(doc)
    assert (doc["job"]["castoff_version"], doc["job"]["host"]) == (castoff.__version__, socket.gethostname())
    page = reports(state, ".html")[-1].read_text(encoding="utf-8")
    assert f"castoff {castoff.__version__} on <code>{socket.gethostname()}</code>" in page
    job_id = doc["job"]["id"]
    db = sqlite3.connect(state / "catalog.sqlite")
    with db:  # the job as another castoff on another machine ran it
        db.execute("UPDATE jobs SET castoff_version='0.0.9', host='studio-mac' WHERE id=?", (job_id,))
    db.close()
    shown = cli("jobs", "show", job_id, "--json")
    assert shown.returncode == 0, shown.stderr
    job = json.loads(shown.stdout)["job"]
    assert (job["castoff_version"], job["host"]) == ("0.0.9", "studio-mac")
    text = cli("jobs", "show", job_id)
    assert "ran castoff 0.0.9 on studio-mac" in text.stdout
