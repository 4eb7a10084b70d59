"""The catalog rows both reports list: every file the job meant to copy with its outcome at each
destination, streamed in path order and grouped by file, one file in memory at a time."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from itertools import groupby
from operator import itemgetter
from typing import Any

from castoff.catalog.db import Catalog
from castoff.reports.summary import OK

#: one row a file and destination (one row with ``dest_name`` NULL for a file without outcomes);
#: the reports read them by column number, in this order (by name, sqlite3.Row compares every name
#: before): 0 file_id, 1 rel_path, 2 abs_path, 3 size, 4 mtime_ns, 5 file_status, 6 blake3, 7 md5,
#: 8 xxh128, 9 file_error, 10-16 capture, 17 dest_name, 18 target, 19 status, 20 verify_method,
#: 21 verified_at, 22 etag, 23 error, 24 error_code, 25 detail, 26-28 sidecar, 29 damaged;
#: size and mtime_ns NULL when unknown (``stat_unknown``: a file castoff could not look at, whose
#: row keeps 0 for the sums and lookups, ``Catalog.add_file``)
ROWS_SQL = (
    "SELECT f.id AS file_id, f.rel_path, f.abs_path, CASE WHEN f.stat_unknown THEN NULL ELSE f.size END"
    " AS size, CASE WHEN f.stat_unknown THEN NULL ELSE f.mtime_ns END AS mtime_ns, f.status AS file_status,"
    " f.blake3, f.md5, f.xxh128, f.error AS file_error, m.capture_time, m.capture_source, m.device,"
    " m.device_source, m.file_type, m.sidecar_of, m.layout_path, o.dest_name, o.target, o.status,"
    " o.verify_method, o.verified_at, o.etag, o.error, o.error_code, o.detail,"
    " s.key AS sidecar_key, s.status AS sidecar_status, s.error AS sidecar_error, o.damaged"
    " FROM files f LEFT JOIN file_meta m ON m.file_id=f.id"
    " LEFT JOIN outcomes o ON o.file_id=f.id"
    " LEFT JOIN meta_sidecars s ON s.file_id=f.id AND s.dest_ident=o.dest_ident"
    " WHERE f.job_id=? AND f.status<>'skipped' AND {which} ORDER BY f.rel_path"
)
#: ``ROWS_SQL`` in two: each file once (columns 0-16), and its outcomes (columns 17-29, then the
#: file's id, which the rows joined keep as a column 30 nobody reads: cheaper than cutting it off)
FILES_SQL = (
    "SELECT f.id, f.rel_path, f.abs_path, CASE WHEN f.stat_unknown THEN NULL ELSE f.size END,"
    " CASE WHEN f.stat_unknown THEN NULL ELSE f.mtime_ns END, f.status, f.blake3, f.md5, f.xxh128,"
    " f.error, m.capture_time, m.capture_source, m.device, m.device_source, m.file_type, m.sidecar_of,"
    " m.layout_path FROM files f LEFT JOIN file_meta m ON m.file_id=f.id"
    " WHERE f.job_id=? AND f.status<>'skipped' AND {which} ORDER BY f.rel_path"
)
OUTCOMES_SQL = (
    "SELECT o.dest_name, o.target, o.status, o.verify_method, o.verified_at, o.etag, o.error,"
    " o.error_code, o.detail, s.key, s.status, s.error, o.damaged, f.id"
    " FROM files f LEFT JOIN outcomes o ON o.file_id=f.id"
    " LEFT JOIN meta_sidecars s ON s.file_id=f.id AND s.dest_ident=o.dest_ident"
    " WHERE f.job_id=? AND f.status<>'skipped' AND {which} ORDER BY f.rel_path"
)

_file_id = itemgetter(0)
_outcome_file_id = itemgetter(13)
_dest_name = itemgetter(17)


def _fetch(cur: sqlite3.Cursor) -> Iterator[tuple[Any, ...]]:
    while rows := cur.fetchmany(1000):
        yield from rows


def file_groups(catalog: Catalog, job_id: str, which: str = "1") -> Iterator[list[tuple[Any, ...]]]:
    """Each file's rows (tuples in ``ROWS_SQL``'s columns, and one more), files in path order, its
    destinations in name order; ``which``: an SQL condition on ``f`` (default all).

    Read as two queries in one snapshot, each file's columns once and its outcomes apart, joined
    here: ``ROWS_SQL`` repeats a file's 17 columns at each destination, and making them Python
    values again took a third of the query's time. The destinations are sorted here, not by
    SQLite: ``ORDER BY f.rel_path, o.dest_name`` sorts every file's rows apart and took a fifth of
    the query's time (Python orders text as SQLite's BINARY collation does: by code point, as
    UTF-8 bytes)."""
    with catalog.snapshot() as db:
        files = _fetch(db.execute(FILES_SQL.format(which=which), (job_id,)))
        outcomes = groupby(
            _fetch(db.execute(OUTCOMES_SQL.format(which=which), (job_id,))), key=_outcome_file_id
        )
        for f, (file_id, group) in zip(files, outcomes, strict=True):
            if file_id != f[0]:  # the same files in the same order: never, unless SQLite changed
                raise RuntimeError(f"report rows out of step: file {f[0]} beside outcomes of {file_id}")
            items = [f + o for o in group]
            if len(items) > 1:  # a file with no outcome has one row, its dest_name NULL
                items.sort(key=_dest_name)
            yield items


def named_groups(catalog: Catalog, job_id: str, which: str = "1") -> Iterator[list[sqlite3.Row]]:
    """``file_groups`` as ``sqlite3.Row`` (by name too), from ``ROWS_SQL``: for the template's few."""
    rows = catalog.stream(ROWS_SQL.format(which=which), (job_id,))
    for _, group in groupby(rows, key=_file_id):
        items = list(group)
        if len(items) > 1:
            items.sort(key=_dest_name)
        yield items


def has_problem(rows: Sequence[Sequence[Any]]) -> bool:
    """``summary.PROBLEM_FILES_SQL`` of one file's rows (a file the job never got to has one row,
    its dest_name NULL): it failed to read, the job never got to it, or some destination does not
    have it, proven, or has a damaged earlier copy of it."""
    first = rows[0]
    if first[5] == "failed" or (first[5] == "pending" and first[17] is None):
        return True
    return any(r[17] is not None and (r[19] not in OK or r[29] is not None) for r in rows)
