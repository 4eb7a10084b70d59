"""The files castoff could not even look at (a name that is not UTF-8, a file in a folder it may not
list, a modification time it cannot record) have an unknown size and time: the reports and ``jobs
show`` say so (null, "unknown"), not ``size 0`` and ``1970-01-01`` as if they were facts (QA); the
sums and a re-run are as before."""

from __future__ import annotations

import json
import os
import re
import sqlite3
from pathlib import Path
from typing import Any

from test_cli_lane_down import as_a_user, run_as

from castoff_cli import Castoff
from engine_runner import write
from reports.kit import validate

__all__ = ["as_a_user"]  # the fixture, used by name

UNLOOKED = ("CARD/DCIM/LOCKED", "CARD/DCIM/bad\\xff.jpg", "CARD/DCIM/future.jpg")


def _card(tmp_path: Path) -> Path:
    card = tmp_path / "CARD"
    write(card / "DCIM" / "ok.jpg", b"fine")
    write(card / "DCIM" / "LOCKED" / "x.jpg", b"locked away")
    (card / "DCIM" / "LOCKED").chmod(0o000)
    with open(os.fsencode(card / "DCIM") + b"/bad\xff.jpg", "wb") as fh:
        fh.write(b"bad name")
    write(card / "DCIM" / "future.jpg", b"later")
    os.utime(card / "DCIM" / "future.jpg", ns=(0, 10**10 * 10**9))  # the year 2286
    return card


def _report(castoff: Castoff, seen: set[Path] | None = None) -> tuple[dict[str, Any], str]:
    """The one report not in ``seen``, and its HTML page."""
    (found,) = set((castoff.state / "reports").glob("*.json")) - (seen or set())
    doc: dict[str, Any] = json.loads(found.read_text(encoding="utf-8"))
    return doc, found.with_suffix(".html").read_text(encoding="utf-8")


def test_files_castoff_could_not_look_at_have_an_unknown_size_and_time(
    tmp_path: Path, as_a_user: list[str]
) -> None:
    card = _card(tmp_path)
    castoff = Castoff(tmp_path / "user")
    dest = tmp_path / "d1"
    r = run_as(as_a_user, castoff, "copy", str(card), "--to", str(dest))
    assert r.returncode == 1, r.stdout + r.stderr
    doc, page = _report(castoff)
    validate(doc)
    files = {f["path"]: f for f in doc["files"]}
    for path in UNLOOKED:
        f = files[path]
        assert f["status"] == "failed", f
        assert (f["size"], f["mtime"], f["mtime_ns"]) == (None, None, None), f
    ok = files["CARD/DCIM/ok.jpg"]
    assert ok["size"] == 4 and ok["mtime_ns"] > 0 and ok["mtime"]
    assert doc["summary"][str(dest)]["bytes"] == 4  # the sums as before
    # the HTML: "unknown", three times (in the problems and in the list of every file)
    sizes = re.findall(r'<td class="num" rowspan="\d+">([^<]*)</td>', page)
    assert sizes.count("unknown") == 6 and "0 B" not in sizes, sizes
    job_id = doc["job"]["id"]
    shown = castoff("jobs", "show", job_id)
    rows = [line for line in shown.stdout.splitlines() if line.startswith("│ CARD/DCIM/")]
    assert len(rows) == 4, shown.stdout
    for line in rows:
        assert ("unknown" in line) == ("ok.jpg" not in line) and " 0 B " not in line, line
    as_json = json.loads(castoff("jobs", "show", job_id, "--json").stdout)
    assert [f["size"] for f in as_json["files"] if f["path"] in UNLOOKED] == [None, None, None]

    # a re-run: the same three fail again, still unknown; the copy is not sent again
    seen = set((castoff.state / "reports").glob("*.json"))
    r = run_as(as_a_user, castoff, "copy", str(card), "--to", str(dest))
    assert r.returncode == 1, r.stdout + r.stderr
    doc, _ = _report(castoff, seen)
    validate(doc)
    files = {f["path"]: f for f in doc["files"]}
    assert [files[p]["size"] for p in UNLOOKED] == [None, None, None]
    assert [d["status"] for d in files["CARD/DCIM/ok.jpg"]["destinations"]] == ["skipped"]


def test_a_catalog_from_before_the_marker_still_opens_and_reports(tmp_path: Path) -> None:
    """A catalog whose ``files`` table has no ``stat_unknown`` column (an earlier castoff) gets it;
    its rows' sizes are shown as they were recorded."""
    card = tmp_path / "CARD"
    write(card / "a.jpg", b"abc")
    castoff = Castoff(tmp_path / "user")
    assert castoff("copy", str(card), "--to", str(tmp_path / "d1")).returncode == 0
    db_path = castoff.state / "catalog.sqlite"
    with sqlite3.connect(db_path) as db:
        db.execute("ALTER TABLE files DROP COLUMN stat_unknown")
    db.close()
    write(card / "b.jpg", b"defg")
    seen = set((castoff.state / "reports").glob("*.json"))
    r = castoff("copy", str(card), "--to", str(tmp_path / "d1"))
    assert r.returncode == 0, r.stdout + r.stderr
    doc, _ = _report(castoff, seen)
    validate(doc)
    assert sorted((f["path"], f["size"]) for f in doc["files"]) == [("CARD/a.jpg", 3), ("CARD/b.jpg", 4)]
