"""The HTML job report: one self-contained file (inline CSS, no script, no network) a person can read.

Built from the catalog and streamed to disk as it renders: the summary per destination, the problems,
then every file at every destination. Every name goes through Jinja's autoescaping.
"""

from __future__ import annotations

import functools
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path

import jinja2

from castoff import __version__
from castoff.catalog.db import Catalog
from castoff.reports.summary import OK, Tally, is_problem, tally
from castoff.units import format_bytes


@dataclass(frozen=True)
class FileGroup:
    """One file and its rows, one per destination (one row with ``dest_name`` None when it has none)."""

    file: sqlite3.Row
    rows: list[sqlite3.Row]


def _when(t: float | None) -> str:
    if t is None:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {sec:02d} s"


def _rate(bps: float | None) -> str:
    return "–" if bps is None else f"{format_bytes(bps)}/s"


@functools.cache
def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("castoff.reports", "templates"),
        autoescape=True,  # every value is escaped unless a template says otherwise (none does)
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters.update(bytes=format_bytes, when=_when, duration=_duration, rate=_rate)
    env.tests["ok"] = lambda status: status in OK
    return env


def _groups(catalog: Catalog, job_id: str, *, problems: bool) -> Iterator[FileGroup]:
    rows = catalog.iter_job_rows(job_id)
    for _file_id, group in groupby(rows, key=lambda r: int(r["file_id"])):
        items = list(group)
        if items[0]["file_status"] == "skipped":
            continue  # left out on purpose (junk, filters, specials): listed on their own
        if problems:
            items = [r for r in items if is_problem(r)]
            if not items:
                continue
        yield FileGroup(items[0], items)


def render(catalog: Catalog, job_id: str, out: Path, counts: Tally | None = None) -> None:
    """Write the report for ``job_id`` to ``out``, streaming: memory does not grow with the job."""
    job = catalog.job(job_id)
    if job is None:
        raise KeyError(job_id)
    job_id = str(job["id"])
    counts = counts or tally(catalog, job)
    stream = (
        _env()
        .get_template("report.html.j2")
        .stream(
            job=job,
            sources=json.loads(job["sources"]),
            command=" ".join(json.loads(job["argv"])),
            duration=(job["ended_at"] - job["started_at"]) if job["ended_at"] else None,
            summary=list(counts.destinations.values()),
            problem_count=counts.problem_files,
            problems=_groups(catalog, job_id, problems=True),
            files=_groups(catalog, job_id, problems=False),
            left_out=counts.left_out,
            version=__version__,
            generated=_when(time.time()),
        )
    )
    stream.enable_buffering(200)
    with open(out, "w", encoding="utf-8") as fh:
        for piece in stream:
            fh.write(piece)
        fh.flush()
        os.fsync(fh.fileno())


def write(catalog: Catalog, job_id: str, folder: Path, counts: Tally | None = None) -> Path:
    """``<folder>/<job id>.html``, beside the JSON report; it appears only complete. ``counts``:
    the job's tally when the caller has it already."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{job_id}.html"
    tmp = path.with_suffix(".html.tmp")
    try:
        render(catalog, job_id, tmp, counts)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
