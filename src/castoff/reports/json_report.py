"""The JSON job report, built from the catalog alone so a resumed job's report is whole.

Schema ``castoff.report/2`` (``report.schema.json`` beside this module, docs/report.md): the job, a
summary per destination, then every file with its outcome at every destination (target, status, how
and when it was verified, ETag, error), then what was left out. /2 adds to each file ``capture``
(time, source: exif|quicktime|mxf|mtime, device, device_source, type, sidecar_of, layout_path; null when
the job had no planner) and to each destination entry ``metadata_sidecar`` (key, status, error of
its ``.castoff.json`` object; null when none was written).
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterator
from itertools import groupby
from pathlib import Path
from typing import Any, TextIO

from castoff.catalog.db import Catalog
from castoff.reports.summary import Tally, tally

SCHEMA = "castoff.report/2"


def _iso(t: float | None) -> str | None:
    if t is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(t))


class _IsoCache:
    """``_iso`` by whole second, remembered: a job's times crowd into few seconds, and the report
    has three a file."""

    def __init__(self) -> None:
        self._known: dict[int, str] = {}

    def __call__(self, t: float | None) -> str | None:
        if t is None:
            return None
        second = int(t // 1)
        text = self._known.get(second)
        if text is None:
            if len(self._known) > 100_000:
                self._known.clear()
            text = self._known[second] = time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(second))
        return text


#: a file with a problem: it failed to read, or some destination does not have it, proven
#: (``summary.OK`` lists the statuses that prove it)
_PROBLEM_SQL = (
    "(f.status='failed' OR EXISTS (SELECT 1 FROM outcomes x WHERE x.file_id=f.id"
    " AND x.status NOT IN ('verified', 'already', 'skipped')))"
)
_ROWS_SQL = (
    "SELECT f.id AS file_id, f.rel_path, f.abs_path, f.size, f.mtime_ns, f.status AS file_status,"
    " f.blake3, f.md5, f.xxh128, f.error AS file_error, m.capture_time, m.capture_source, m.device,"
    " m.device_source, m.file_type, m.sidecar_of, m.layout_path, o.dest_name, o.target, o.status,"
    " o.verify_method, o.verified_at, o.etag, o.error, o.error_code, o.detail,"
    " s.key AS sidecar_key, s.status AS sidecar_status, s.error AS sidecar_error"
    " FROM files f LEFT JOIN file_meta m ON m.file_id=f.id"
    " LEFT JOIN outcomes o ON o.file_id=f.id"
    " LEFT JOIN meta_sidecars s ON s.file_id=f.id AND s.dest_ident=o.dest_ident"
    " WHERE f.job_id=? AND f.status<>'skipped' AND {which} ORDER BY f.rel_path, o.dest_name"
)


def _capture(r: sqlite3.Row) -> dict[str, Any] | None:
    if r[16] is None:  # no layout path: the job had no planner
        return None
    return {
        "time": r[10],
        "source": r[11],
        "device": r[12],
        "device_source": r[13],
        "type": r[14],
        "sidecar_of": r[15],
        "layout_path": r[16],
    }


def _destination(o: sqlite3.Row, iso: _IsoCache) -> dict[str, Any]:
    sidecar = None if o[26] is None else {"key": o[26], "status": o[27], "error": o[28]}
    return {
        "destination": o[17],
        "target": o[18],
        "status": o[19],
        "verify_method": o[20],
        "verified_at": iso(o[21]),
        "etag": o[22],
        "error": o[23],
        "error_code": o[24],
        "detail": o[25],
        "metadata_sidecar": sidecar,
    }


def _file(rows: list[sqlite3.Row], iso: _IsoCache) -> dict[str, Any]:
    """By column number (``_ROWS_SQL``'s order): by name, sqlite3.Row compares every name before."""
    f = rows[0]
    return {
        "path": f[1],
        "source": f[2],
        "size": f[3],
        "mtime": iso(f[4] / 1e9),
        "mtime_ns": f[4],
        "blake3": f[6],
        "md5": f[7],
        "xxh128": f[8],
        "status": f[5],
        "error": f[9],
        "capture": _capture(f),
        "destinations": [_destination(o, iso) for o in rows if o[17] is not None],
    }


def iter_files(catalog: Catalog, job_id: str, *, problems: bool = True) -> Iterator[dict[str, Any]]:
    """Every file the job meant to copy, those with a problem first, each group in path order;
    streamed from the catalog, one file in memory at a time. ``problems=False``: the caller knows
    there is none (one pass instead of two)."""
    for which in (_PROBLEM_SQL, f"NOT {_PROBLEM_SQL}") if problems else ("1",):
        rows = catalog.stream(_ROWS_SQL.format(which=which), (job_id,))
        iso = _IsoCache()
        for _, group in groupby(rows, key=lambda r: r[0]):
            yield _file(list(group), iso)


def iter_left_out(catalog: Catalog, job_id: str) -> Iterator[dict[str, Any]]:
    rows = catalog.stream(
        "SELECT rel_path, error, error_code FROM files WHERE job_id=? AND status='skipped' ORDER BY rel_path",
        (job_id,),
    )
    for r in rows:
        yield {"path": r["rel_path"], "reason": r["error"], "code": r["error_code"]}


def _head(catalog: Catalog, job_id: str, counts: Tally | None) -> dict[str, Any]:
    job = catalog.job(job_id)
    if job is None:
        raise KeyError(job_id)
    counts = counts or tally(catalog, job)
    return {
        "schema": SCHEMA,
        "job": {
            "id": job_id,
            "status": job["status"],
            "exit_code": job["exit_code"],
            "started_at": _iso(job["started_at"]),
            "ended_at": _iso(job["ended_at"]),
            "duration_s": (job["ended_at"] - job["started_at"]) if job["ended_at"] else None,
            "sources": json.loads(job["sources"]),
            "command": json.loads(job["argv"]),
        },
        "summary": {name: s.as_json() for name, s in counts.destinations.items()},
    }


def build(catalog: Catalog, job_id: str) -> dict[str, Any]:
    """The whole report as one object (for ``castoff jobs show``; ``write`` streams it instead)."""
    head = _head(catalog, job_id, None)
    return {
        **head,
        "files": list(iter_files(catalog, job_id)),
        "left_out": list(iter_left_out(catalog, job_id)),
    }


def _write_list(fh: TextIO, name: str, items: Iterator[dict[str, Any]], *, last: bool) -> None:
    """One item a line, encoded by the C encoder: the indented encoder is Python, 10 times slower."""
    fh.write(f'  "{name}": [')
    sep = "\n"
    for item in items:
        fh.write(sep)
        fh.write("    ")
        fh.write(json.dumps(item, ensure_ascii=False))
        sep = ",\n"
    fh.write("\n  ]" if sep != "\n" else "]")
    fh.write("\n" if last else ",\n")


def dump(catalog: Catalog, job_id: str, fh: TextIO, counts: Tally | None = None) -> None:
    """Write the report to ``fh`` without holding it: memory does not grow with the job."""
    head = json.dumps(_head(catalog, job_id, counts), indent=2, ensure_ascii=False)
    fh.write(head[: head.rindex("}")].rstrip() + ",\n")
    problems = counts is None or counts.problem_files > 0
    _write_list(fh, "files", iter_files(catalog, job_id, problems=problems), last=False)
    _write_list(fh, "left_out", iter_left_out(catalog, job_id), last=True)
    fh.write("}\n")


def write(catalog: Catalog, job_id: str, folder: Path, counts: Tally | None = None) -> Path:
    """``counts``: the job's tally when the caller has it already (the HTML report needs it too)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{job_id}.json"
    tmp = path.with_suffix(".json.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        dump(catalog, job_id, fh, counts)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    catalog.set_report_path(job_id, str(path))
    return path
