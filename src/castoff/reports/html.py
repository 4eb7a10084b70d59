"""The HTML job report: one self-contained file (inline CSS, no script, no network) a person can read.

Built from the catalog and streamed to disk as it renders: the summary per destination, the problems,
then every file at every destination. Every name goes through Jinja's autoescaping.
"""

from __future__ import annotations

import functools
import html as _html
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path

import jinja2
from markupsafe import Markup

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


def _bytecode_cache(folder: Path) -> jinja2.BytecodeCache | None:
    """The compiled template, kept beside the catalog: compiling it again costs every job 40 ms."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return jinja2.FileSystemBytecodeCache(str(folder), f"castoff-{__version__}-%s.cache")


def _esc(value: object) -> str:
    return _html.escape(str(value))


@functools.cache
def _env(cache_folder: Path) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("castoff.reports", "templates"),
        bytecode_cache=_bytecode_cache(cache_folder),
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


def _file_rows(group: FileGroup) -> str:
    """One file of the full list as HTML: the template's rows, written here because the list has a
    line per file and destination, and Jinja's per-value machinery made 200,000 files take
    seconds. Every value goes through ``_esc`` (``html.escape``: the
    same five characters as the template's autoescaping, without its Markup object per value)."""
    f = group.file
    n = len(group.rows)
    out = [
        f'  <tbody class="file">\n  <tr>\n    <td class="path" rowspan="{n}">{_esc(f["rel_path"])}</td>\n'
        f'    <td class="num" rowspan="{n}">{_esc(format_bytes(f["size"]))}</td>\n'
        f'    <td rowspan="{n}"><code class="hash">{_esc(f["blake3"] or "")}</code></td>\n'
    ]
    for i, r in enumerate(group.rows):
        if i:
            out.append("  <tr>\n")
        if r["dest_name"] is None:
            pill = "source-failed" if f["file_status"] == "failed" else "pending"
            out.append(
                f'    <td class="muted">–</td><td><span class="pill {pill}">'
                f"{_esc(f['file_status'])}</span></td>\n"
                f'    <td class="err" colspan="4">{_esc(f["file_error"] or "")}</td>\n  </tr>\n'
            )
            continue
        error = f'<div class="err">{_esc(r["error"])}</div>' if r["error"] else ""
        detail = f'<div class="muted">{_esc(r["detail"])}</div>' if r["detail"] else ""
        status = _esc(r["status"])
        out.append(
            f"    <td>{_esc(r['dest_name'])}</td>\n"
            f'    <td><span class="pill {status}">{status}</span></td>\n'
            f'    <td class="target"><code>{_esc(r["target"])}</code>{error}{detail}</td>\n'
            f"    <td><code>{_esc(r['etag'] or '')}</code></td>\n"
            f"    <td>{_esc(r['verify_method'] or '')}</td>\n"
            f'    <td class="num">{_esc(_when(r["verified_at"]))}</td>\n  </tr>\n'
        )
    out.append("  </tbody>\n")
    return "".join(out)


def _file_chunks(groups: Iterator[FileGroup], per_chunk: int = 20) -> Iterator[Markup]:
    """The full list in pieces of ``per_chunk`` files, already escaped, for the template to emit."""
    chunk: list[str] = []
    for group in groups:
        chunk.append(_file_rows(group))
        if len(chunk) >= per_chunk:
            yield Markup("".join(chunk))  # noqa: S704 (every value in it went through escape)
            chunk = []
    if chunk:
        yield Markup("".join(chunk))  # noqa: S704


def render(catalog: Catalog, job_id: str, out: Path, counts: Tally | None = None) -> None:
    """Write the report for ``job_id`` to ``out``, streaming: memory does not grow with the job."""
    job = catalog.job(job_id)
    if job is None:
        raise KeyError(job_id)
    job_id = str(job["id"])
    counts = counts or tally(catalog, job)
    stream = (
        _env(catalog.path.parent / "cache")
        .get_template("report.html.j2")
        .stream(
            job=job,
            sources=json.loads(job["sources"]),
            command=" ".join(json.loads(job["argv"])),
            duration=(job["ended_at"] - job["started_at"]) if job["ended_at"] else None,
            summary=list(counts.destinations.values()),
            problem_count=counts.problem_files,
            problems=_groups(catalog, job_id, problems=True),
            files=_file_chunks(_groups(catalog, job_id, problems=False)),
            left_out=counts.left_out,
            version=__version__,
            generated=_when(time.time()),
        )
    )
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
