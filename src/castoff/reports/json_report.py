"""The JSON job report, built from the catalog alone so a resumed job's report is whole.

Schema ``castoff.report/2`` (``report.schema.json`` beside this module, docs/report.md): the job, a
summary per destination, then every file with its outcome at every destination (target, status, how
and when it was verified, ETag, error), then what was left out. /2 adds to each file ``capture``
(time, source: exif|quicktime|mxf|mtime, device, device_source, type, sidecar_of, layout_path; null when
the job had no planner) and to each destination entry ``metadata_sidecar`` (key, status, error of
its ``.castoff.json`` object; null when none was written) and ``damaged`` (castoff's earlier copy
there, found damaged and kept; null when none; absent from reports of earlier versions), and to
each destination's summary ``damaged`` and ``location`` (where it is: a folder's path, a bucket's
``s3://bucket/prefix (endpoint)``, from its ident); and ``empty_folders``: the source's folders that hold no
file, as each local destination got them (absent from reports of earlier versions).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

from castoff.catalog.db import Catalog
from castoff.destinations.spec import shown_argv
from castoff.reports.rows import file_groups
from castoff.reports.staged import staged
from castoff.reports.summary import PROBLEM_FILES_SQL, Tally, files_complete, job_origin, tally
from castoff.units import TimeText

SCHEMA = "castoff.report/2"
ISO = "%Y-%m-%dT%H:%M:%S%z"
_string = json.encoder.encode_basestring  # as json.dumps(ensure_ascii=False) writes text


def _iso(t: float | None) -> str | None:
    if t is None:
        return None
    return time.strftime(ISO, time.localtime(t))


def _capture(r: Sequence[Any]) -> dict[str, Any] | None:
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


def _destination(o: Sequence[Any], iso: TimeText) -> dict[str, Any]:
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
        "damaged": o[29],
        "metadata_sidecar": sidecar,
    }


def _file(rows: Sequence[Sequence[Any]], iso: TimeText) -> dict[str, Any]:
    """The file as a dict (``build``); by column number, in ``rows.ROWS_SQL``'s order."""
    f = rows[0]
    return {
        "path": f[1],
        "source": f[2],
        "size": f[3],
        "mtime": None if f[4] is None else iso(f[4] / 1e9),  # None: unknown (castoff could not look)
        "mtime_ns": f[4],
        "blake3": f[6],
        "md5": f[7],
        "xxh128": f[8],
        "status": f[5],
        "error": f[9],
        "capture": _capture(f),
        "destinations": [_destination(o, iso) for o in rows if o[17] is not None],
    }


def _value(v: object) -> str:
    """One value as ``json.dumps(v, ensure_ascii=False)`` writes it: a catalog value is text, a
    number or NULL."""
    if v is None:
        return "null"
    if type(v) is str:
        return _string(v)
    if type(v) is int:
        return int.__repr__(v)
    return json.dumps(v, ensure_ascii=False)


def _capture_text(r: Sequence[Any]) -> str:
    if r[16] is None:
        return "null"
    s = _string
    # text columns: a str or NULL, as ``_value`` writes them, without a call for each NULL
    return (
        f'{{"time": {"null" if r[10] is None else s(r[10])},'
        f' "source": {"null" if r[11] is None else s(r[11])},'
        f' "device": {"null" if r[12] is None else s(r[12])},'
        f' "device_source": {"null" if r[13] is None else s(r[13])},'
        f' "type": {"null" if r[14] is None else s(r[14])},'
        f' "sidecar_of": {"null" if r[15] is None else s(r[15])}, "layout_path": {s(r[16])}}}'
    )


def _destination_text(o: Sequence[Any], iso: TimeText) -> str:
    s = _string
    sidecar = (
        "null"
        if o[26] is None
        else f'{{"key": {s(o[26])}, "status": {s(o[27])}, "error": {"null" if o[28] is None else s(o[28])}}}'
    )
    # every column here is text (a str or NULL) but verified_at, whose text ``iso`` makes
    return (
        f'{{"destination": {s(o[17])}, "target": {s(o[18])}, "status": {s(o[19])},'
        f' "verify_method": {"null" if o[20] is None else s(o[20])},'
        f' "verified_at": {"null" if o[21] is None else s(iso(o[21]))},'
        f' "etag": {"null" if o[22] is None else s(o[22])},'
        f' "error": {"null" if o[23] is None else s(o[23])},'
        f' "error_code": {"null" if o[24] is None else s(o[24])},'
        f' "detail": {"null" if o[25] is None else s(o[25])},'
        f' "damaged": {"null" if o[29] is None else s(o[29])},'
        f' "metadata_sidecar": {sidecar}}}'
    )


def file_line(rows: Sequence[Sequence[Any]], iso: TimeText) -> str:
    """``json.dumps(_file(rows, iso), ensure_ascii=False)``, byte for byte, written directly: building
    the dict and encoding it cost more than twice as much (tests/reports/test_report_onepass.py
    holds the two equal). A text column (TEXT affinity: SQLite keeps a str or NULL there) is
    written inline, a number through ``_value``."""
    f = rows[0]
    v, s = _value, _string  # s: a column that is text, never NULL
    if len(rows) == 1:
        dests = "" if f[17] is None else _destination_text(f, iso)
    else:
        dests = ", ".join([_destination_text(o, iso) for o in rows if o[17] is not None])
    return (
        f'{{"path": {s(f[1])}, "source": {s(f[2])}, "size": {v(f[3])},'
        f' "mtime": {"null" if f[4] is None else s(iso(f[4] / 1e9))},'
        f' "mtime_ns": {v(f[4])}, "blake3": {"null" if f[6] is None else s(f[6])},'
        f' "md5": {"null" if f[7] is None else s(f[7])}, "xxh128": {"null" if f[8] is None else s(f[8])},'
        f' "status": {s(f[5])}, "error": {"null" if f[9] is None else s(f[9])},'
        f' "capture": {_capture_text(f)}, "destinations": [{dests}]}}'
    )


def _passes(problems: bool) -> tuple[str, ...]:
    """The files with a problem first, then the others; one pass when there is none."""
    return (PROBLEM_FILES_SQL, f"NOT {PROBLEM_FILES_SQL}") if problems else ("1",)


def iter_files(catalog: Catalog, job_id: str, *, problems: bool = True) -> Iterator[dict[str, Any]]:
    """Every file the job meant to copy, those with a problem first, each group in path order;
    streamed from the catalog, one file in memory at a time. ``problems=False``: the caller knows
    there is none (one pass instead of two)."""
    for which in _passes(problems):
        iso = TimeText(ISO)
        for rows in file_groups(catalog, job_id, which):
            yield _file(rows, iso)


def iter_left_out(catalog: Catalog, job_id: str) -> Iterator[dict[str, Any]]:
    rows = catalog.stream(
        "SELECT rel_path, error, error_code FROM files WHERE job_id=? AND status='skipped' ORDER BY rel_path",
        (job_id,),
    )
    for r in rows:
        yield {"path": r["rel_path"], "reason": r["error"], "code": r["error_code"]}


def iter_empty_folders(catalog: Catalog, job_id: str) -> Iterator[dict[str, Any]]:
    """Each empty source folder the job made (or found) at its local destinations, by path."""
    folder: dict[str, Any] | None = None
    for r in catalog.job_folders(job_id):
        if folder is None or folder["path"] != r["rel_path"]:
            if folder is not None:
                yield folder
            folder = {"path": r["rel_path"], "source": r["abs_path"], "destinations": []}
        folder["destinations"].append(
            {
                "destination": r["dest_name"],
                "target": r["target"],
                "status": r["status"],
                "error": r["error"],
                "error_code": r["error_code"],
            }
        )
    if folder is not None:
        yield folder


def _head(catalog: Catalog, job_id: str, counts: Tally | None) -> dict[str, Any]:
    job = catalog.job(job_id)
    if job is None:
        raise KeyError(job_id)
    counts = counts or tally(catalog, job)
    return {
        "schema": SCHEMA,
        "job": job_fields(job),
        "summary": {name: s.as_json() for name, s in counts.destinations.items()},
    }


def job_fields(job: sqlite3.Row) -> dict[str, Any]:
    """The report's ``job`` object (also that of a pruned job's ``jobs show --json``)."""
    return {
        "id": job["id"],
        "status": job["status"],
        "exit_code": job["exit_code"],
        "started_at": _iso(job["started_at"]),
        "ended_at": _iso(job["ended_at"]),
        "duration_s": (job["ended_at"] - job["started_at"]) if job["ended_at"] else None,
        "sources": json.loads(job["sources"]),
        "command": shown_argv(json.loads(job["argv"])),
        "files_complete": files_complete(job),
        **job_origin(job),
    }


def build(catalog: Catalog, job_id: str) -> dict[str, Any]:
    """The whole report as one object (for ``castoff jobs show``; ``write`` streams it instead)."""
    head = _head(catalog, job_id, None)
    return {
        **head,
        "files": list(iter_files(catalog, job_id)),
        "left_out": list(iter_left_out(catalog, job_id)),
        "empty_folders": list(iter_empty_folders(catalog, job_id)),
    }


class ListWriter:
    """One list of the report, one item a line, written as the items come (a few dozen at a time:
    a write per line cost a third more)."""

    def __init__(self, fh: TextIO, name: str) -> None:
        self._fh = fh
        self._lines: list[str] = []
        self._sep = "\n"
        fh.write(f'  "{name}": [')

    def add(self, text: str) -> None:
        """One item, already JSON."""
        self._lines.append(f"{self._sep}    {text}")
        self._sep = ",\n"
        if len(self._lines) >= 64:
            self._fh.write("".join(self._lines))
            self._lines.clear()

    def close(self, *, last: bool) -> None:
        self._lines.append("\n  ]" if self._sep != "\n" else "]")
        self._lines.append("\n" if last else ",\n")
        self._fh.write("".join(self._lines))
        self._lines.clear()


def dump_head(catalog: Catalog, job_id: str, fh: TextIO, counts: Tally | None = None) -> ListWriter:
    """The job and its summary, then the opening of the list of files, for the caller to fill."""
    head = json.dumps(_head(catalog, job_id, counts), indent=2, ensure_ascii=False)
    fh.write(head[: head.rindex("}")].rstrip() + ",\n")
    return ListWriter(fh, "files")


def dump_tail(catalog: Catalog, job_id: str, fh: TextIO, files: ListWriter) -> None:
    """The end of the list of files, what was left out, and the empty folders."""
    files.close(last=False)
    left_out = ListWriter(fh, "left_out")
    for item in iter_left_out(catalog, job_id):
        left_out.add(json.dumps(item, ensure_ascii=False))
    left_out.close(last=False)
    folders = ListWriter(fh, "empty_folders")
    for item in iter_empty_folders(catalog, job_id):
        folders.add(json.dumps(item, ensure_ascii=False))
    folders.close(last=True)
    fh.write("}\n")


def dump(catalog: Catalog, job_id: str, fh: TextIO, counts: Tally | None = None) -> None:
    """Write the report to ``fh`` without holding it: memory does not grow with the job."""
    files = dump_head(catalog, job_id, fh, counts)
    for which in _passes(counts is None or counts.problem_files > 0):
        iso = TimeText(ISO)
        for rows in file_groups(catalog, job_id, which):
            files.add(file_line(rows, iso))
    dump_tail(catalog, job_id, fh, files)


def write(catalog: Catalog, job_id: str, folder: Path, counts: Tally | None = None) -> Path:
    """``counts``: the job's tally when the caller has it already (the HTML report needs it too)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{job_id}.json"
    with staged(path) as (fh,):
        dump(catalog, job_id, fh, counts)
    catalog.set_report_path(job_id, str(path))
    return path
