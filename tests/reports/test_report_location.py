"""Where a destination is, as the reports say it: from the identity the catalog keeps for every
job (so the report of a job recorded before this says it too), never with a URL option or a key."""

from __future__ import annotations

from pathlib import Path

import pytest

from castoff.catalog.db import Catalog
from castoff.destinations.base import ident_location
from castoff.destinations.spec import shown_argv
from castoff.reports import json_report
from castoff.reports.summary import tally
from reports.kit import validate


@pytest.mark.parametrize(
    ("ident", "region", "location"),
    [
        ("local:/mnt/ssd", None, "/mnt/ssd"),
        ("s3:http://127.0.0.1:19100/bkt1/raw/", None, "s3://bkt1/raw (http://127.0.0.1:19100)"),
        ("s3:https://s3.example.com/bkt1/", "eu-west-1", "s3://bkt1 (https://s3.example.com)"),
        ("s3:https://s3.example.com/bkt1/a b/#1/", None, "s3://bkt1/a b/#1 (https://s3.example.com)"),
        ("s3:aws/archive/2026/", "eu-west-1", "s3://archive/2026 (AWS eu-west-1)"),
        ("s3:aws/archive/", None, "s3://archive (AWS)"),
        # refused when given, so no catalog holds one; never shown all the same
        ("s3:https://user:pass@s3.example.com/b/p/", None, "s3://b/p (https://s3.example.com)"),
        ("memory:ssd:1234", None, None),
    ],
)
def test_ident_location(ident: str, region: str | None, location: str | None) -> None:
    assert ident_location(ident, region) == location


def test_an_old_job_gets_its_locations_from_its_idents(tmp_path: Path) -> None:
    """A job recorded with {name, ident, kind} only (before the region was kept): its report,
    rebuilt, says where each destination is; a region kept with the job names AWS's."""
    cat = Catalog(tmp_path / "catalog.sqlite")
    job_id = "20261121-000000-0001"
    dests = [
        {"name": "@arch", "ident": "s3:http://127.0.0.1:19100/bkt1/raw/", "kind": "s3"},
        {"name": "@cold", "ident": "s3:aws/archive/2026/", "kind": "s3"},
        {"name": "@deep", "ident": "s3:aws/deep/", "kind": "s3", "region": "eu-central-1"},
        {"name": "ssd", "ident": "local:/mnt/ssd", "kind": "local"},
        {"name": "mem", "ident": "memory:mem:1", "kind": "memory"},
    ]
    cat.start_job(job_id, argv=["x"], sources=["/card"], destinations=dests, options={}, pid=1)
    cat.end_job(job_id, status="done", exit_code=0)
    job = cat.job(job_id)
    assert job is not None
    expected = {
        "@arch": "s3://bkt1/raw (http://127.0.0.1:19100)",
        "@cold": "s3://archive/2026 (AWS)",
        "@deep": "s3://deep (AWS eu-central-1)",
        "ssd": "/mnt/ssd",
        "mem": None,
    }
    assert {n: s.location for n, s in tally(cat, job).destinations.items()} == expected
    report = json_report.build(cat, job_id)
    validate(report)
    assert {n: s["location"] for n, s in report["summary"].items()} == expected
    cat.close()


def test_a_command_line_in_a_report_hides_what_a_message_hides() -> None:
    argv = [
        "castoff", "copy", "/card?key=1", "--to", "s3://b/p/?sse=aws:kms&sse_kms_key_id=K1",
        "--to=s3://b/q/?secret_access_key=K2&region=eu-west-1", "--to", "/ssd",
    ]  # fmt: skip
    assert shown_argv(argv) == [
        "castoff", "copy", "/card?key=1", "--to", "s3://b/p/?sse=aws:kms&sse_kms_key_id=***",
        "--to=s3://b/q/?secret_access_key=***&region=eu-west-1", "--to", "/ssd",
    ]  # fmt: skip
