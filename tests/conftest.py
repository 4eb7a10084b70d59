"""Shared fixtures: sample trees, a job runner over the engine, and (from server_fixtures) real S3 servers."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from castoff.catalog.db import Catalog, new_job_id
from castoff.destinations.base import Destination
from castoff.engine.events import Event
from castoff.engine.job import Engine, JobOptions, JobResult

pytest_plugins = ["server_fixtures", "faults.plugin"]


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture
def make_tree(tmp_path: Path) -> Callable[[dict[str, bytes]], Path]:
    def make(files: dict[str, bytes], name: str = "card") -> Path:
        root = tmp_path / "src" / name
        root.mkdir(parents=True, exist_ok=True)
        for rel, data in files.items():
            write(root / rel, data)
        return root

    return make


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


@pytest.fixture
def runner(tmp_path: Path) -> Runner:
    return Runner(tmp_path / "state")
