"""A job runner over the engine, for tests that drive it without the CLI, and a file writer.

A module of its own (not conftest.py): every test folder may have a conftest, and they all
share that module name, so importing helpers from "conftest" finds whichever came first.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from castoff.catalog.db import Catalog, new_job_id
from castoff.destinations.base import Destination
from castoff.destinations.s3 import S3Destination, S3Options
from castoff.engine.events import Event
from castoff.engine.job import Engine, JobOptions, JobResult


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


class Runner:
    def __init__(self, state: Path) -> None:
        self.catalog = Catalog(state / "catalog.sqlite")
        self.events: list[Event] = []

    def __call__(self, sources: Sequence[Path], dests: Sequence[Destination], **opts: Any) -> JobResult:
        job_id = new_job_id()
        self.job_id = job_id
        self.catalog.start_job(
            job_id,
            argv=["test"],
            sources=[str(s) for s in sources],
            destinations=[{"name": d.name, "ident": d.ident, "kind": d.caps.kind} for d in dests],
            options={},
            pid=os.getpid(),
        )
        engine = Engine(self.catalog, job_id, dests, JobOptions(**opts), sink=self.events.append)
        self.engine = engine
        result = engine.run([str(s) for s in sources])
        self.catalog.end_job(job_id, status=result.status, exit_code=result.exit_code)
        return result

    def outcomes(self) -> dict[tuple[str, str], Any]:
        return {(r["rel_path"], r["dest_name"]): r for r in self.catalog.job_outcomes(self.job_id)}

    def logs(self) -> list[str]:
        return [str(e.data["message"]) for e in self.events if e.kind == "log"]


def s3dest(url: str, bucket: str, key: str, secret: str, **kw: Any) -> S3Destination:
    """A bucket on one of the test servers: path addressing, us-east-1, the given keys."""
    return S3Destination(
        S3Options(
            bucket=bucket,
            prefix=kw.pop("prefix", "raw-shoots/"),
            endpoint_url=url,
            region="us-east-1",
            addressing_style="path",
            access_key=key,
            secret_key=secret,
            **kw,
        )
    )
