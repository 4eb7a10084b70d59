"""What every report says first: per destination, how many files and bytes, how they ended, how fast.

Counted by SQLite from the catalog, so it costs the same memory for 20 or 200,000 files.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict, dataclass, field

from castoff.catalog.db import NOT_REACHED_CODE, Catalog
from castoff.destinations.base import ident_location

#: outcomes that mean the file is at the destination, proven
OK = frozenset({"verified", "already", "skipped"})
#: a file some destination does not have, proven (SQL on ``files f``)
NOT_THERE_SQL = (
    "EXISTS (SELECT 1 FROM outcomes x WHERE x.file_id=f.id"
    " AND x.status NOT IN ('verified', 'already', 'skipped'))"
)
#: a file not read: it failed to, or the job never got to it (pending, no outcome)
UNREAD_SQL = (
    "(f.status='failed'"
    " OR (f.status='pending' AND NOT EXISTS (SELECT 1 FROM outcomes x WHERE x.file_id=f.id)))"
)
#: a file some destination has, proven, beside castoff's earlier copy there found damaged (kept)
DAMAGED_SQL = "EXISTS (SELECT 1 FROM outcomes x WHERE x.file_id=f.id AND x.damaged IS NOT NULL)"
#: a file that did not reach every destination, or was not read
MISSING_FILES_SQL = f"({UNREAD_SQL} OR {NOT_THERE_SQL})"
#: a file with a problem, as the summary counts them (and both reports list first): one missing
#: somewhere, or one with a damaged copy somewhere, which needs the user's attention as much
PROBLEM_FILES_SQL = f"({UNREAD_SQL} OR {NOT_THERE_SQL} OR {DAMAGED_SQL})"
#: a file read (or not yet) that has no outcome at some of the job's ``n`` destinations: the job
#: ended before it got there (``_add_not_reached``)
NOT_REACHED_SQL = (
    "(f.status IN ('read', 'pending') AND (SELECT COUNT(*) FROM outcomes x WHERE x.file_id=f.id) < {n:d})"
)
STATUSES = ("verified", "already", "skipped", "conflict", "failed", "incomplete")
#: the error codes of failures that the same command, run again, meets again: they need another
#: option or destination first (a failure to write, a destination down or full, a source that
#: changed as it was read, an interrupted job... a re-run retries), or the file renamed on the
#: source (a name that is not UTF-8)
NOT_BY_RERUN = frozenset(
    {
        "conflict",
        "history-conflict",
        "key-rejected",
        "file-too-big",
        "source-name",
        "source-time",
        "source-changed-in-place",
        "source-damaged",
    }
)
_NOT_BY_RERUN_SQL = ", ".join(f"'{c}'" for c in sorted(NOT_BY_RERUN))
#: a file that the same command, run again, may yet deliver where it is missing (``--on-conflict
#: skip`` kept it out: ``conflict``, which a re-run does again)
RERUN_HELPS_SQL = (
    f"((({UNREAD_SQL}) AND COALESCE(f.error_code, '') NOT IN ({_NOT_BY_RERUN_SQL}))"  # noqa: S608
    " OR EXISTS (SELECT 1 FROM outcomes x WHERE x.file_id=f.id AND (x.status='incomplete'"
    f" OR (x.status='failed' AND COALESCE(x.error_code, '') NOT IN ({_NOT_BY_RERUN_SQL})))))"
)


@dataclass
class DestinationSummary:
    name: str
    kind: str | None
    #: where it is, whatever it was called (``ident_location``): a folder's absolute path, a
    #: bucket's ``s3://bucket/prefix (endpoint)``; None for a kind without one
    location: str | None = None
    files: int = 0
    bytes: int = 0
    verified: int = 0
    already: int = 0
    skipped: int = 0
    #: another file at the target, kept (--on-conflict skip): this one is not there
    conflict: int = 0
    failed: int = 0
    incomplete: int = 0
    #: files there (counted above as verified, already or skipped) beside castoff's earlier copy
    #: there, found damaged and kept
    damaged: int = 0
    #: of ``incomplete``: the job's files that have no outcome there at all, because the job
    #: ended (killed, a power cut) before they got there
    not_reached: int = 0
    #: bytes this job sent there, of files it verified there (``verified`` outcomes only): the
    #: parts of an upload an earlier job had sent, and this one resumed, are not counted
    bytes_sent: int = 0
    #: bytes of files verified there in this job that an earlier job had sent (resumed uploads)
    bytes_resumed: int = 0
    #: from the job's start to the last file verified there; None when nothing was
    duration_s: float | None = None
    #: ``bytes_sent / duration_s``
    bytes_per_s: float | None = None

    @property
    def problems(self) -> int:
        return self.failed + self.incomplete + self.conflict

    def as_json(self) -> dict[str, object]:
        return asdict(self)


def is_problem(row: sqlite3.Row) -> bool:
    """A file at a destination that did not end at the destination, proven, or whose earlier copy
    there is damaged; or a file never read."""
    if row["file_status"] == "failed" or row["damaged"] is not None:
        return True
    if row["status"] is None:
        return bool(row["file_status"] == "pending")
    return str(row["status"]) not in OK


def files_complete(job: sqlite3.Row) -> bool | None:
    """Whether the job's list of files is whole: its scan found every file of its sources (a job
    stopped or killed before can only list those it had found). None: a catalog read as it is,
    from before castoff kept it."""
    if "scanned" not in job.keys():  # noqa: SIM118 (a Row)
        return None
    return bool(job["scanned"])


def job_origin(job: sqlite3.Row) -> dict[str, str | None]:
    """The castoff that ran the job and the machine it ran on (``castoff_version``, ``host``),
    None each for a job of a castoff that did not keep them."""
    keys = job.keys()
    return {name: job[name] if name in keys else None for name in ("castoff_version", "host")}


def files_partial(job: sqlite3.Row) -> bool:
    """An ended job whose list of files is not whole (``files_complete``)."""
    return job["status"] != "running" and files_complete(job) is False


#: what a report says of a job whose list is not whole
PARTIAL_LIST = (
    "The job ended before it had found every file of its sources: the files it never found are in no"
    " list of this report. A re-run of the same command finds and copies them."
)


@dataclass
class Tally:
    """The summary by destination, how many files have a problem, and what was left out on purpose."""

    destinations: dict[str, DestinationSummary]
    #: files with a problem (``PROBLEM_FILES_SQL``): missing somewhere or damaged somewhere
    problem_files: int = 0
    #: of those, files that did not reach every destination (or were not read)
    missing_files: int = 0
    #: of those, files with a damaged earlier copy at some destination
    damaged_files: int = 0
    #: of the missing files, those the same command, run again, may deliver (``RERUN_HELPS_SQL``)
    rerun_files: int = 0
    left_out: list[tuple[str, str | None]] = field(default_factory=list)


def tally(catalog: Catalog, job: sqlite3.Row) -> Tally:
    """Counted by SQLite (a few grouped queries, not a pass over every row in Python); destinations
    in the job's order."""
    out = {
        d["name"]: DestinationSummary(
            d["name"], d.get("kind"), ident_location(d.get("ident", ""), d.get("region"))
        )
        for d in json.loads(job["destinations"])
    }
    job_id = str(job["id"])
    result = Tally(out)
    rows = catalog.stream(
        "SELECT o.dest_name, o.status, COUNT(*) AS n, SUM(f.size) AS bytes,"
        " MAX(CASE WHEN o.status IN ('verified', 'already') THEN o.verified_at END) AS last,"
        " SUM(o.damaged IS NOT NULL) AS damaged, SUM(o.resumed) AS resumed,"
        " SUM(o.error_code=?) AS not_reached"
        " FROM files f JOIN outcomes o ON o.file_id=f.id"
        " WHERE f.job_id=? AND f.status<>'skipped' GROUP BY o.dest_name, o.status",
        (NOT_REACHED_CODE, job_id),
    )
    last: dict[str, float] = {}
    all_there = True
    any_damaged = False
    for r in rows:
        _add(out, r, last)
        all_there = all_there and r["status"] in OK
        any_damaged = any_damaged or bool(r["damaged"])
    not_reached = "0"
    if job["status"] != "running" and _add_not_reached(catalog, job_id, out):
        # a file without an outcome at some destination (the job was killed before it got there)
        not_reached = NOT_REACHED_SQL.format(n=len(out))
        all_there = False
    # Every outcome proves its file there (the usual case): only a file not read can have a
    # problem, and SQLite need not look up each file's outcomes (a fifth of a second for 200,000).
    missing = UNREAD_SQL if all_there else f"({MISSING_FILES_SQL} OR {not_reached})"
    result.missing_files = _count_files(catalog, job_id, missing)
    result.problem_files = result.missing_files
    if result.missing_files:
        result.rerun_files = _count_files(catalog, job_id, f"({RERUN_HELPS_SQL} OR {not_reached})")
    if any_damaged:
        result.damaged_files = _count_files(catalog, job_id, DAMAGED_SQL)
        result.problem_files = _count_files(catalog, job_id, f"({PROBLEM_FILES_SQL} OR {not_reached})")
    left_out = catalog.stream(
        "SELECT rel_path, error FROM files WHERE job_id=? AND status='skipped' ORDER BY rel_path", (job_id,)
    )
    result.left_out = [(str(r["rel_path"]), r["error"]) for r in left_out]
    started = float(job["started_at"])
    for name, s in out.items():
        if name in last:
            s.duration_s = round(max(last[name] - started, 0.0), 3)
            s.bytes_per_s = round(s.bytes_sent / s.duration_s, 1) if s.duration_s > 0 else None
    return result


def damaged_files(catalog: Catalog, job_id: str) -> int:
    """The job's files with a damaged copy at one destination or more."""
    return _count_files(catalog, job_id, DAMAGED_SQL)


def _count_files(catalog: Catalog, job_id: str, which: str) -> int:
    """The job's files (not those left out) for which the SQL condition ``which`` on ``f`` holds."""
    rows = catalog.stream(
        f"SELECT COUNT(*) AS n FROM files f WHERE f.job_id=? AND f.status<>'skipped' AND {which}",  # noqa: S608
        (job_id,),
    )
    return sum(int(r["n"]) for r in rows)


def _add_not_reached(catalog: Catalog, job_id: str, out: dict[str, DestinationSummary]) -> bool:
    """An ended job's files that have no outcome at a destination never got there (the job was
    killed, or the machine stopped, before they did): not delivered, counted as incomplete there
    (a re-run sends them), so that such a job never looks complete. (A file that could not be
    read is the source's failure, counted as the file's own.) Whether there was any. (A job
    ended since castoff fills these in, ``Catalog.fill_not_reached``: this counts them in a
    catalog read as it is, or one an older castoff left.)"""
    rows = catalog.stream("SELECT COUNT(*) AS n FROM files WHERE job_id=? AND status<>'skipped'", (job_id,))
    total = sum(int(r["n"]) for r in rows)
    if all(s.files >= total for s in out.values()):
        return False  # every file has an outcome everywhere (one a file and destination at most)
    rows = catalog.stream(
        "SELECT COUNT(*) AS n, SUM(size) AS bytes FROM files"
        " WHERE job_id=? AND status IN ('read', 'pending')",
        (job_id,),
    )
    meant, meant_bytes = 0, 0
    for r in rows:
        meant, meant_bytes = int(r["n"]), int(r["bytes"] or 0)
    there = {
        str(r["dest_name"]): (int(r["n"]), int(r["bytes"] or 0))
        for r in catalog.stream(
            "SELECT o.dest_name, COUNT(*) AS n, SUM(f.size) AS bytes FROM files f JOIN outcomes o"
            " ON o.file_id=f.id WHERE f.job_id=? AND f.status IN ('read', 'pending') GROUP BY o.dest_name",
            (job_id,),
        )
    }
    short = False
    for name, s in out.items():
        n, size = there.get(name, (0, 0))
        if n < meant:
            short = True
            s.not_reached = meant - n
            s.incomplete += s.not_reached
            s.files += s.not_reached
            s.bytes += meant_bytes - size
    return short


def _add(out: dict[str, DestinationSummary], r: sqlite3.Row, last: dict[str, float]) -> None:
    """One (destination, status) group of outcomes."""
    name = str(r["dest_name"])
    s = out.setdefault(name, DestinationSummary(name, None))
    n, size = int(r["n"]), int(r["bytes"] or 0)
    s.files += n
    s.bytes += size
    status = str(r["status"])
    if status in STATUSES:
        setattr(s, status, getattr(s, status) + n)
    if status == "verified":
        resumed = int(r["resumed"] or 0)
        s.bytes_sent += size - resumed
        s.bytes_resumed += resumed
    s.damaged += int(r["damaged"] or 0)
    s.not_reached += int(r["not_reached"] or 0)  # (filled in: ``Catalog.fill_not_reached``)
    if r["last"] is not None:
        last[name] = max(last.get(name, 0.0), float(r["last"]))
