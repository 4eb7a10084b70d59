"""--report-to: the reports go into every destination through its own interface, after its files."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from reports.kit import Cli, reports


def test_reports_land_in_a_folder_and_a_write_only_bucket(
    tmp_path: Path, card: Path, cli: Cli, state: Path, moto: Any
) -> None:
    key, secret = moto.enable_write_only()
    env = {**os.environ, "AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret}
    bucket = f"s3://{moto.bucket}/shoots/?endpoint={moto.url}&region=us-east-1&addressing=path"
    ssd = tmp_path / "ssd"
    r = cli("copy", str(card), "--to", str(ssd), "--to", bucket, "--report-to", "both", "--json", env=env)
    assert r.returncode == 0, r.stderr
    end = [json.loads(line) for line in r.stdout.splitlines() if '"job-end"' in line][-1]
    copies = end["report_copies"]
    assert len(copies) == 4 and end["problems"] == []
    assert any("read-back blake3" in c for c in copies)
    for local in (reports(state, ".json")[0], reports(state, ".html")[0]):
        assert (ssd / "castoff-reports" / local.name).read_bytes() == local.read_bytes()
        obj = moto.client.get_object(Bucket=moto.bucket, Key=f"shoots/castoff-reports/{local.name}")
        assert obj["Body"].read() == local.read_bytes()
    # The folder's history does not count the reports as content.
    assert '">castoff-reports' not in "".join(p.read_text() for p in (ssd / "ascmhl").glob("*.mhl"))


def test_a_destination_that_cannot_take_the_report_fails_the_job(
    tmp_path: Path, card: Path, cli: Cli, state: Path
) -> None:
    ssd = tmp_path / "ssd"
    assert cli("copy", str(card), "--to", str(ssd), "--quiet").returncode == 0
    (ssd / "castoff-reports").write_text("a file where the folder should be")
    r = cli("copy", str(card), "--to", str(ssd), "--report-to", "destination")
    assert r.returncode == 1
    assert "report" in r.stderr and "not written" in r.stderr
    # The report cannot know its own delivery failed; the catalog does.
    jobs = json.loads(cli("jobs", "--json").stdout)
    assert jobs[0]["status"] == "failed" and jobs[0]["exit_code"] == 1


def test_a_destination_that_could_not_be_used_gets_no_report_and_no_history(
    tmp_path: Path, card: Path, cli: Cli, state: Path
) -> None:
    """QA: with ``--report-to both``, a destination whose parent does not exist (a drive not
    mounted) was still sent the reports, refused "… leads outside the destination … (through a
    symlink)", and said "ASC MHL: nothing new to record". It gets neither, said once with why;
    the destination beside it gets both."""
    gone, ssd = tmp_path / "notmounted" / "shoots", tmp_path / "ssd"
    r = cli("copy", str(card), "--to", str(gone), "--to", str(ssd), "--report-to", "both")
    said = " ".join(r.stderr.split())
    assert r.returncode == 1, said
    assert "symlink" not in said and "leads outside" not in said, said
    assert f"{gone}: ASC MHL" not in said, said
    assert f"{gone}: the reports were not copied there: it could not be used in this job" in said, said
    assert said.count("the reports were not copied there") == 1, said
    assert not (tmp_path / "notmounted").exists()
    assert len(list((ssd / "castoff-reports").iterdir())) == 2
    assert list((ssd / "ascmhl").glob("*.mhl"))
