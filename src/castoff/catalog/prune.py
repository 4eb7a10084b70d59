"""Forgetting old jobs' per-file history (``castoff jobs prune``), so the catalog stays bounded.

A pruned job keeps its ``jobs`` row (with its file count and bytes); its ``files``, ``outcomes``,
``file_meta``, ``meta_sidecars``, ``folders`` and ``events`` rows go, except what a later run still asks for:

* ``landed``, ``uploads``, ``parts`` and ``partials`` are not per-job history: never touched;
* for every source (path, size, mtime), the row ``Catalog.prior_read`` / ``known_hash`` answer
  (the newest read) with its ``file_meta``, and the row ``Catalog.file_hashes_known`` would take
  (the newest with hashes, xxh128 first): a re-run then reads, skips and reports as before;
* every row of a job an ASC MHL memo names (``reports.mhl_job._remembered_job``): the next
  generation compares with it;
* every row of a running job.

Rows go in small transactions (another job may be writing the same catalog); the space is given
back to the file system by ``VACUUM`` at the end, only when no job is running.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from castoff import errors
from castoff.catalog import running
from castoff.catalog.db import BUSY_TIMEOUT_MS, Catalog

#: files rows per transaction: each holds the catalog for a few milliseconds
BATCH = 500
#: the per-file tables, in the order a batch deletes from them
TABLES = ("outcomes", "meta_sidecars", "file_meta", "files", "folders", "events")

#: ``r`` (a row of ``files``) is what a later lookup of its source answers: the newest read
#: (``prior_read``, ``known_hash``), or the newest row with hashes, xxh128 first
#: (``file_hashes_known``). Rows of running jobs are left out of the comparison: their status and
#: hashes may still change, so a row they supersede is kept until they are done.
_KEEPER = """(
 (r.status='read' AND r.blake3 IS NOT NULL AND NOT EXISTS (SELECT 1 FROM files p
   WHERE p.abs_path=r.abs_path AND p.size=r.size AND p.mtime_ns=r.mtime_ns AND p.status='read'
   AND p.blake3 IS NOT NULL AND p.id>r.id AND p.job_id NOT IN (SELECT id FROM jobs WHERE status='running')))
 OR (r.status<>'failed' AND r.blake3 IS NOT NULL AND NOT EXISTS (SELECT 1 FROM files p
   WHERE p.abs_path=r.abs_path AND p.size=r.size AND p.mtime_ns=r.mtime_ns AND p.status<>'failed'
   AND p.blake3 IS NOT NULL AND p.job_id NOT IN (SELECT id FROM jobs WHERE status='running')
   AND ((p.xxh128 IS NULL) < (r.xxh128 IS NULL)
        OR ((p.xxh128 IS NULL) = (r.xxh128 IS NULL) AND p.id>r.id))))
)"""

MHL_MEMO = "mhl-history:"


@dataclass(frozen=True)
class Rules:
    """Which jobs may go: not among the ``keep`` newest, and started more than ``older_than``
    seconds ago; a rule left None allows every job."""

    keep: int | None = None
    older_than: float | None = None

    def check(self) -> None:
        if self.keep is None and self.older_than is None:
            raise errors.UsageError(
                "say which jobs' history to prune: --keep N (keep the N newest jobs), "
                "--older-than AGE (e.g. 30d), or both",
                hint="e.g. castoff jobs prune --keep 30   (add --dry-run to see what would go)",
            )
        if self.keep is not None and self.keep < 0:
            raise errors.UsageError(f"--keep {self.keep}: give a number of jobs, 0 or more")
        if self.older_than is not None and self.older_than < 0:
            raise errors.UsageError("--older-than: give a positive age, e.g. 30d or 12h")


@dataclass(frozen=True)
class JobPlan:
    id: str
    started_at: float
    status: str


@dataclass
class Plan:
    """The jobs to prune (oldest first), and those the rules allowed but that must stay, with why."""

    jobs: list[JobPlan]
    spared: dict[str, str]
    others_running: bool
    #: jobs the rules allow whose history an earlier prune took (their reports may still be there)
    earlier: list[str] = field(default_factory=list)


@dataclass
class Outcome:
    plan: Plan
    rows: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TABLES, 0))
    kept_reads: int = 0  # files rows of pruned jobs kept because a later lookup answers with them
    size_before: int = 0
    size_after: int = 0
    estimate: int | None = None  # bytes the dry run expects back
    vacuum: str = ""  # what happened to the free space


def catalog_size(path: Path) -> int:
    """The catalog's bytes on disk: the database and its write-ahead log."""
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(str(path), isolation_level=None)
    db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    db.execute("PRAGMA foreign_keys=ON")
    return db


@contextmanager
def _tx(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def spared_jobs(db: sqlite3.Connection) -> dict[str, str]:
    """Jobs whose rows stay whatever the rules say: running ones, and those an ASC MHL memo names."""
    out = {str(r[0]): "running" for r in db.execute("SELECT id FROM jobs WHERE status='running'")}
    for (value,) in db.execute("SELECT value FROM meta WHERE key LIKE ?", (MHL_MEMO + "%",)):
        job = str(value).partition(" ")[2]
        if job and job not in out:
            out[job] = "a destination's ASC MHL history was last written by it"
    return out


def make_plan(db: sqlite3.Connection, rules: Rules, now: float) -> Plan:
    rows = db.execute("SELECT id, started_at, status, pruned_at FROM jobs ORDER BY started_at DESC, id DESC")
    spared = spared_jobs(db)
    cutoff = None if rules.older_than is None else now - rules.older_than
    chosen: list[JobPlan] = []
    kept: dict[str, str] = {}
    earlier: list[str] = []
    for rank, (job_id, started_at, status, pruned_at) in enumerate(rows.fetchall()):
        if rules.keep is not None and rank < rules.keep:
            continue
        if cutoff is not None and started_at >= cutoff:
            continue
        if pruned_at is not None:
            earlier.append(str(job_id))
            continue
        if job_id in spared:
            kept[job_id] = spared[job_id]
            continue
        chosen.append(JobPlan(str(job_id), float(started_at), str(status)))
    running = any(why == "running" for why in spared.values())
    return Plan(chosen[::-1], kept, running, earlier[::-1])


def _delete_in(db: sqlite3.Connection, table: str, column: str, ids: Sequence[int]) -> int:
    """Delete the rows of ``table`` whose ``column`` is one of ``ids``; how many went."""
    marks = ",".join("?" * len(ids))
    return db.execute(f"DELETE FROM {table} WHERE {column} IN ({marks})", ids).rowcount  # noqa: S608


def _count(db: sqlite3.Connection, sql: str, args: Sequence[object]) -> int:
    return int(db.execute(sql, args).fetchone()[0])


def _keepers(db: sqlite3.Connection, ids: Sequence[int]) -> set[int]:
    marks = ",".join("?" * len(ids))
    sql = f"SELECT id FROM files r WHERE id IN ({marks}) AND {_KEEPER}"  # noqa: S608
    return {int(r[0]) for r in db.execute(sql, ids)}


def _prune_batch(db: sqlite3.Connection, job_id: str, after: str, out: Outcome) -> str | None:
    """One transaction: the next ``BATCH`` files of the job (by path) and what hangs on them.
    Returns the last path done, or None when the job has no files left after ``after``."""
    with _tx(db):
        rows = db.execute(
            "SELECT id, rel_path FROM files WHERE job_id=? AND rel_path>? ORDER BY rel_path LIMIT ?",
            (job_id, after, BATCH),
        ).fetchall()
        if not rows:
            return None
        ids = [int(r[0]) for r in rows]
        out.rows["outcomes"] += _delete_in(db, "outcomes", "file_id", ids)
        out.rows["meta_sidecars"] += _delete_in(db, "meta_sidecars", "file_id", ids)
        keep = _keepers(db, ids)
        out.kept_reads += len(keep)
        drop = [i for i in ids if i not in keep]
        if drop:
            out.rows["file_meta"] += _delete_in(db, "file_meta", "file_id", drop)
            out.rows["files"] += _delete_in(db, "files", "id", drop)
        return str(rows[-1][1])


def _prune_by_job(db: sqlite3.Connection, table: str, job_id: str, out: Outcome) -> None:
    """The job's rows of ``table`` (``events``, ``folders``: none a later run asks for)."""
    while True:
        with _tx(db):
            n = db.execute(
                f"DELETE FROM {table} WHERE rowid IN (SELECT rowid FROM {table} WHERE job_id=? LIMIT ?)",  # noqa: S608
                (job_id, BATCH),
            ).rowcount
        out.rows[table] += n
        if n < BATCH:
            return


def prune_job(db: sqlite3.Connection, job_id: str, out: Outcome, pause: Callable[[float], None]) -> None:
    """Drop one job's per-file history, a batch at a time; the job's counts are stored first, and
    ``pruned_at`` set last, so an interrupted prune is finished by the next one."""
    with _tx(db):
        db.execute(
            "UPDATE jobs SET"
            " pruned_files=(SELECT COUNT(*) FROM files WHERE job_id=jobs.id AND status != 'skipped'),"
            " pruned_bytes=(SELECT COALESCE(SUM(size), 0) FROM files WHERE job_id=jobs.id)"
            " WHERE id=? AND pruned_files IS NULL",
            (job_id,),
        )
    after: str | None = ""
    while after is not None:
        started = time.monotonic()
        after = _prune_batch(db, job_id, after, out)
        pause(time.monotonic() - started)
    _prune_by_job(db, "folders", job_id, out)
    _prune_by_job(db, "events", job_id, out)
    with _tx(db):
        db.execute("UPDATE jobs SET pruned_at=? WHERE id=?", (time.time(), job_id))


# every piece is a constant of this module: nothing a user typed goes into the SQL
_KEEPERS_OF_JOB = "SELECT id FROM files r WHERE r.job_id=? AND " + _KEEPER  # noqa: S608
_OF_JOB = "file_id IN (SELECT id FROM files WHERE job_id=?)"
_COUNTS = {
    "outcomes": "SELECT COUNT(*) FROM outcomes WHERE " + _OF_JOB,  # noqa: S608
    "meta_sidecars": "SELECT COUNT(*) FROM meta_sidecars WHERE " + _OF_JOB,  # noqa: S608
    "file_meta": f"SELECT COUNT(*) FROM file_meta WHERE job_id=? AND file_id NOT IN ({_KEEPERS_OF_JOB})",  # noqa: S608
    "files": "SELECT COUNT(*) FROM files WHERE job_id=?",
    "folders": "SELECT COUNT(*) FROM folders WHERE job_id=?",
    "events": "SELECT COUNT(*) FROM events WHERE job_id=?",
}


def count_rows(db: sqlite3.Connection, job_id: str, out: Outcome) -> None:
    """What ``prune_job`` would delete of this job (for a dry run), without deleting."""
    kept = _count(db, f"SELECT COUNT(*) FROM ({_KEEPERS_OF_JOB})", (job_id,))  # noqa: S608
    out.kept_reads += kept
    for table, sql in _COUNTS.items():
        out.rows[table] += _count(db, sql, (job_id,) * sql.count("?"))
    out.rows["files"] -= kept


def estimate_bytes(db: sqlite3.Connection, rows: Mapping[str, int], size: int) -> int:
    """About how many bytes deleting ``rows`` (per table) gives back: each table's share of the
    pages (with its indexes; from ``dbstat`` when SQLite has it, else the file's size by rows)."""
    counts = {t: int(db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]) for t in TABLES}  # noqa: S608
    try:
        pages = dict(
            db.execute(
                "SELECT tbl_name, SUM(pgsize) FROM dbstat"
                " JOIN sqlite_schema ON dbstat.name=sqlite_schema.name GROUP BY tbl_name"
            ).fetchall()
        )
    except sqlite3.OperationalError:  # SQLite built without dbstat
        everything = sum(counts.values()) or 1
        return int(size * sum(rows.values()) / everything)
    return int(sum(pages.get(t, 0) * rows[t] / counts[t] for t in TABLES if counts[t]))


def vacuum(db: sqlite3.Connection) -> str:
    """Give the freed pages back to the file system, unless a job is running (VACUUM would hold
    the whole catalog while it rewrites it)."""
    running = [str(r[0]) for r in db.execute("SELECT id FROM jobs WHERE status='running'")]
    if running:
        return (
            f"space not given back: job {', '.join(running)} is running (VACUUM would hold the catalog);"
            " the freed pages are reused by later jobs, or run 'castoff jobs prune' again when no job runs"
        )
    try:
        db.execute("VACUUM")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    except sqlite3.OperationalError as exc:
        return f"space not given back: {exc} (run 'castoff jobs prune' again when no job runs)"
    return "space given back (VACUUM)"


def _pause_for(others_running: bool) -> Callable[[float], None]:
    """Between batches, while another job writes the catalog: as long again as the batch took,
    so its writes are not starved by ours."""
    if not others_running:
        return lambda _took: None
    return lambda took: time.sleep(min(max(took, 0.005), 0.5))


def prune(
    path: Path,
    rules: Rules,
    *,
    dry_run: bool,
    alive: Callable[[running.JobRow], bool],
    compact: bool = True,
) -> Outcome:
    """Prune the catalog at ``path`` as ``rules`` say (``alive``: ``running.row_alive``, to tell
    running jobs from ones a killed process left marked running)."""
    rules.check()
    catalog = Catalog(path)  # adds the pruned_* columns to an older catalog
    try:
        catalog.end_dead_jobs(alive)
    finally:
        catalog.close()
    db = _connect(path)
    try:
        out = Outcome(make_plan(db, rules, time.time()), size_before=catalog_size(path))
        if dry_run:
            for job in out.plan.jobs:
                count_rows(db, job.id, out)
            out.estimate = estimate_bytes(db, out.rows, out.size_before)
        else:
            pause = _pause_for(out.plan.others_running)
            for job in out.plan.jobs:
                prune_job(db, job.id, out, pause)
            if not out.plan.jobs:
                out.vacuum = "nothing to give back"
            else:
                out.vacuum = vacuum(db) if compact else "space not given back (--no-vacuum)"
        out.size_after = catalog_size(path)
        return out
    except sqlite3.OperationalError as exc:
        raise errors.CastoffError(
            f"the catalog is busy: {exc}",
            hint="run 'castoff jobs prune' again: it continues where it stopped",
        ) from exc
    finally:
        db.close()
