"""The JSON report is streamed from the catalog: the file holds what ``build`` says, one file a line."""

from __future__ import annotations

import json
import os
from pathlib import Path

from castoff.destinations.faulty import FaultPlan, FaultyDestination
from castoff.destinations.local import LocalDestination
from castoff.engine.retry import RetryPolicy
from castoff.reports import json_report
from engine_runner import Runner, write


def test_streamed_report_equals_the_built_one_problems_first(tmp_path: Path, runner: Runner) -> None:
    src = tmp_path / "src" / "card"
    for name in ("a.jpg", "b.jpg", "c.jpg", ".DS_Store"):
        write(src / name, os.urandom(100))
    rotten = FaultyDestination(LocalDestination(tmp_path / "rot"), FaultPlan(corrupt_before_commit=["b.jpg"]))
    fast = RetryPolicy(attempts=1, base=0.01, cap=0.05)
    assert (
        runner([src], [rotten, LocalDestination(tmp_path / "ok")], retry=fast, lane_pause=0.05).exit_code == 1
    )
    path = json_report.write(runner.catalog, runner.job_id, tmp_path / "reports")
    text = path.read_text(encoding="utf-8")
    doc = json.loads(text)
    assert doc == json_report.build(runner.catalog, runner.job_id)
    assert [f["path"] for f in doc["files"]] == ["card/b.jpg", "card/a.jpg", "card/c.jpg"]
    assert [d["status"] for d in doc["files"][0]["destinations"]] == ["verified", "failed"]
    assert [x["path"] for x in doc["left_out"]] == ["card/.DS_Store"]
    # one file a line, so a reader can stream it too
    lines = [ln for ln in text.splitlines() if ln.startswith('    {"path": ')]
    assert [json.loads(ln.rstrip(",")) for ln in lines] == doc["files"] + doc["left_out"]
