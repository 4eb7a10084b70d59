"""A job runner over the engine, for tests that drive it without the CLI, and a file writer.

A module of its own (not conftest.py): every test folder may have a conftest, and they all
share that module name, so importing helpers from "conftest" finds whichever came first.
"""

from __future__ import annotations

import os
import sys
import threading
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from castoff.catalog.db import Catalog, new_job_id
from castoff.destinations.base import Destination
from castoff.destinations.s3 import S3Destination, S3Options
from castoff.engine.events import Event
from castoff.engine.job import Engine, JobOptions, JobResult


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def touch_newer(path: Path) -> Path:
    """The same bytes with an mtime one second later: a re-run must look at the file again."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    return path


class Runner:
    def __init__(self, state: Path) -> None:
        self.catalog = Catalog(state / "catalog.sqlite")
        self.events: list[Event] = []
        #: called with each event as the engine emits it, in the emitting thread (a test's hand
        #: on the files at a known point of the job)
        self.hook: Callable[[Event], None] | None = None

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
        engine = Engine(self.catalog, job_id, dests, JobOptions(**opts), sink=self._sink)
        self.engine = engine
        result = engine.run([str(s) for s in sources])
        self.catalog.end_job(job_id, status=result.status, exit_code=result.exit_code)
        return result

    def _sink(self, event: Event) -> None:
        self.events.append(event)
        if self.hook is not None:
            self.hook(event)

    def bounded(
        self, sources: Sequence[Path], dests: Sequence[Destination], *, timeout: float = 120.0, **opts: Any
    ) -> JobResult:
        """``self(...)`` with a deadline: a job that does not end in ``timeout`` seconds is
        cancelled and fails the test with every thread's stack, instead of stalling the session."""
        done: list[JobResult] = []
        worker = threading.Thread(target=lambda: done.append(self(sources, dests, **opts)), daemon=True)
        worker.start()
        worker.join(timeout)
        if worker.is_alive():
            stacks = all_stacks()
            self.engine.cancel.set()
            worker.join(30)
            pytest.fail(f"the job did not end within {timeout:.0f} s\n{stacks}", pytrace=False)
        return done[0]

    def outcomes(self) -> dict[tuple[str, str], Any]:
        return {(r["rel_path"], r["dest_name"]): r for r in self.catalog.job_outcomes(self.job_id)}

    def logs(self) -> list[str]:
        return [str(e.data["message"]) for e in self.events if e.kind == "log"]


def all_stacks() -> str:
    """Where every thread of this process is, as a traceback each."""
    names = {t.ident: t.name for t in threading.enumerate()}
    return "\n".join(
        f"--- thread {names.get(ident, ident)} ---\n" + "".join(traceback.format_stack(frame))
        for ident, frame in sys._current_frames().items()
    )


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
