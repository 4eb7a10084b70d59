"""Every report says where each destination is, beside the name it was given (QA: a saved bucket's
reports said only ``@arch``, so once it was renamed or re-pointed nobody could tell where the
objects were), and never a secret."""

from __future__ import annotations

import html
import json
import random
from pathlib import Path

import pytest

from castoff_cli import Castoff, files_containing
from engine_runner import write
from reports.kit import validate
from server_fixtures import MotoBucket

SECRET = "QASECRETQASECRET"
KEY_ID = "QAKEYQAKEY"
KMS_KEY = "KMSKEYINURL1"  # an option whose name says "key": never shown


@pytest.fixture
def castoff(tmp_path: Path) -> Castoff:
    return Castoff(tmp_path / "home")


@pytest.fixture
def card(tmp_path: Path) -> Path:
    src = tmp_path / "EOS_DIGITAL"
    rng = random.Random(7)
    for i in range(3):
        write(src / "DCIM" / f"IMG_{i:04}.CR3", rng.randbytes(50_000 + i))
    return src


def words(done: object) -> str:
    return " ".join((getattr(done, "stdout", "") + getattr(done, "stderr", "")).replace("│", " ").split())


def test_reports_and_jobs_show_say_where_each_destination_is(
    castoff: Castoff, tmp_path: Path, card: Path, moto: MotoBucket
) -> None:
    ssd = tmp_path / "d1"
    r = castoff(
        "dest", "add", "arch", "s3", "--bucket", moto.bucket, "--prefix", "raw/", "--endpoint-url", moto.url,
        "--access-key-id", KEY_ID, "--secret-stdin", input=SECRET + "\n",
    )  # fmt: skip
    assert r.returncode == 0, words(r)
    assert castoff("dest", "add", "ssd", "local", str(ssd)).returncode == 0
    url = f"s3://{moto.bucket}/url/?endpoint={moto.url}&sse=aws:kms&sse_kms_key_id={KMS_KEY}"
    r = castoff(
        "copy", str(card), "--to", "@ssd", "--to", "@arch", "--to", url,
        env={"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"},
    )  # fmt: skip
    assert r.returncode == 0, words(r)
    endpoint = moto.url.lower()
    arch = f"s3://{moto.bucket}/raw ({endpoint})"
    by_url = f"s3://{moto.bucket}/url ({endpoint})"

    (json_path,) = (castoff.state / "reports").glob("*.json")
    (html_path,) = (castoff.state / "reports").glob("*.html")
    report = json.loads(json_path.read_text(encoding="utf-8"))
    validate(report)
    where = {name: s["location"] for name, s in report["summary"].items()}
    assert where == {"@ssd": str(ssd), "@arch": arch, f"s3://{moto.bucket}/url": by_url}, where
    assert "sse_kms_key_id=***" in " ".join(report["job"]["command"])
    (listed,) = json.loads(castoff("jobs", "--json").stdout)  # as the reports show it, not raw
    assert KMS_KEY not in json.dumps(listed) and "sse_kms_key_id=***" in " ".join(listed["argv"])
    assert [d["spec"] for d in listed["destinations"]][2].endswith("sse_kms_key_id=***"), listed

    page = html_path.read_text(encoding="utf-8")
    for location in (arch, by_url, str(ssd)):
        assert html.escape(location) in page, location

    # the saved bucket re-pointed and renamed: the job's reports still say where its objects are
    assert castoff("dest", "remove", "arch").returncode == 0
    r = castoff("dest", "add", "arch", "local", str(tmp_path / "elsewhere"))
    assert r.returncode == 0, words(r)
    job_id = report["job"]["id"]
    shown = castoff("jobs", "show", job_id)
    assert shown.returncode == 0, words(shown)
    said = words(shown)
    assert f"destination @arch: {arch}" in said and f"destination @ssd: {ssd}" in said, said
    assert f"destination s3://{moto.bucket}/url: {by_url}" in said, said
    as_json = json.loads(castoff("jobs", "show", job_id, "--json").stdout)
    assert {n: s["location"] for n, s in as_json["summary"].items()} == where
    assert as_json["job"]["command"] == report["job"]["command"]

    jobs = json.loads(castoff("jobs", "--json").stdout)
    regions = {d["name"]: d.get("region") for d in jobs[0]["destinations"]}
    assert regions["@ssd"] is None and isinstance(regions["@arch"], str), regions  # AWS's endpoint names it

    assert files_containing(SECRET, [castoff.state / "reports"]) == []
    assert files_containing(KMS_KEY, [castoff.state / "reports"]) == []
    for text in (said, json.dumps(as_json)):
        assert SECRET not in text and KMS_KEY not in text


def test_the_summary_table_says_where_a_saved_destination_is(
    castoff: Castoff, tmp_path: Path, card: Path
) -> None:
    """QA: the end-of-job summary named ``@ssd`` alone, where the reports and ``jobs show`` say
    where it is: its location is a second line of its cell; a folder named as it is keeps one."""
    ssd, plain = tmp_path / "d1", tmp_path / "d2"
    assert castoff("dest", "add", "ssd", "local", str(ssd)).returncode == 0
    r = castoff("copy", str(card), "--to", "@ssd", "--to", str(plain))
    assert r.returncode == 0, words(r)
    summary = r.stderr.split("castoff: summary", 1)[1]
    names: list[list[str]] = []  # each destination's cell, by line (the counts on its first only)
    counts: list[list[str]] = []
    for line in summary.splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if not cells:
            continue
        if cells[1]:
            names.append([cells[0]])
            counts.append(cells[1:4])
        else:  # the cell goes on: its location, or a long path folded
            assert not any(cells[1:]), line
            names[-1].append(cells[0])
    assert names[0][0] == "@ssd" and "".join(names[0][1:]) == str(ssd), summary
    assert "".join(names[1]) == str(plain), summary  # one line, or the path folded: never a location
    assert counts == [["3", "146.5 KiB", "3"]] * 2, summary
