"""The catalog: castoff's memory across runs, in one SQLite database (WAL).

Jobs, the source files each job saw with their hashes, the outcome of every file at every
destination, what is known to be verified where, and every unfinished multipart upload with its parts.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from castoff import __version__, errors
from castoff.catalog import running
from castoff.destinations.base import PartReceipt

#: the catalog's format: raised with every change of its tables (a migration in ``_open``;
#: tests/catalog/test_schema_version.py holds the schema each version has). A castoff refuses a
#: catalog whose version is above its own (``CatalogTooNew``): an older castoff would trust rows
#: it cannot fully read. Up to 1: castoff before it checked (it wrote 1 whatever its tables).
SCHEMA_VERSION = 5  # 3: jobs.scanned, an index of landed by target; 4: jobs.castoff_version, host;
#   5: files.ctime_ns

#: landed: what is verified where, one row per destination, planned name and source. Two sources
#: may plan one name (two cards' IMG_0001.JPG in one folder): each keeps its own row, the second's
#: with the name it got after the conflict ("IMG_0001 (2).JPG"), so a re-run skips both
_LANDED_TABLE = """CREATE TABLE IF NOT EXISTS {name} (
    dest_ident TEXT NOT NULL,
    planned TEXT NOT NULL,           -- where the file was meant to land
    target TEXT NOT NULL,            -- where it did (differs after a conflict rename)
    src_path TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    blake3 TEXT NOT NULL,
    etag TEXT,
    verify_method TEXT NOT NULL,
    verified_at REAL NOT NULL,
    job_id TEXT NOT NULL,
    PRIMARY KEY (dest_ident, planned, src_path)
);
"""
_LANDED_INDEX = "CREATE INDEX IF NOT EXISTS landed_by_src ON landed (dest_ident, src_path);\n"
#: a local destination's copy read later as a source (``castoff copy SSD_FOLDER --to bucket``) is
#: found by its path: what castoff verified there is what that read must find
_LANDED_TARGET_INDEX = "CREATE INDEX IF NOT EXISTS landed_by_target ON landed (target);\n"
# a copy proven at a target now is no longer a damaged one there (the user put the good one back):
# in the insert's own statement, not one more per landed file
_LANDED_TRIGGER = """CREATE TRIGGER IF NOT EXISTS landed_clears_damaged AFTER INSERT ON landed BEGIN
    DELETE FROM damaged WHERE dest_ident=NEW.dest_ident AND target=NEW.target;
END;
"""

#: how long a write waits for another castoff process that holds the catalog (a job's group
#: commit, a prune's VACUUM) before it gives up with ``CatalogBusy``
BUSY_TIMEOUT_MS = 10_000
#: how long a job that has started waits instead (``Catalog.wait_longer``): stopping it half way
#: costs more than a wait (a 'castoff jobs prune' compacting a large catalog, a backup tool)
JOB_BUSY_TIMEOUT_MS = 120_000

_SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    started_at REAL NOT NULL,
    ended_at REAL,
    status TEXT NOT NULL,            -- running, done, failed, interrupted
    exit_code INTEGER,
    argv TEXT NOT NULL,
    sources TEXT NOT NULL,           -- JSON list
    destinations TEXT NOT NULL,      -- JSON list of {name, ident, kind}
    options TEXT NOT NULL,           -- JSON object
    report_path TEXT,
    pid INTEGER,
    proc_start TEXT,                 -- tells the pid's process from a later one (catalog.running)
    pruned_at REAL,                  -- per-file history dropped (castoff.catalog.prune)
    pruned_files INTEGER,            -- the job's file count and bytes, kept when its rows go
    pruned_bytes INTEGER,
    scanned INTEGER,                 -- 1: its scan found every file of its sources (the list is whole)
    castoff_version TEXT,            -- the castoff that ran it, and the machine it ran on (the
    host TEXT                        --   reports say them; NULL: a job of a castoff before them)
);
CREATE TABLE IF NOT EXISTS files (
    id INTEGER PRIMARY KEY,
    job_id TEXT NOT NULL REFERENCES jobs(id),
    rel_path TEXT NOT NULL,
    abs_path TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    status TEXT NOT NULL,            -- pending, read, failed, skipped (junk/special/symlink)
    blake3 TEXT,
    md5 TEXT,
    error TEXT,
    error_code TEXT,
    xxh128 TEXT,                     -- for ASC MHL, from the same read as blake3
    stat_unknown INTEGER,            -- 1: castoff could not look at it (the scan's failure): its
                                     --   size and mtime_ns (0 here) are unknown (reports/rows.py)
    ctime_ns INTEGER,                -- its change time as the scan found it: a read is trusted
                                     --   again only while it is the same (NULL: not known)
    UNIQUE (job_id, rel_path)
);
-- known_hash and file_hashes_known look a source up by path, size and mtime on every run
CREATE INDEX IF NOT EXISTS files_by_source ON files (abs_path, size, mtime_ns);
-- prior_read: the reads alone, so the lookup does not grow with the number of re-runs
CREATE INDEX IF NOT EXISTS files_read_by_source ON files (abs_path, size, mtime_ns) WHERE status='read';
CREATE TABLE IF NOT EXISTS outcomes (
    job_id TEXT NOT NULL,
    file_id INTEGER NOT NULL REFERENCES files(id),
    dest_ident TEXT NOT NULL,
    dest_name TEXT NOT NULL,
    target TEXT NOT NULL,
    status TEXT NOT NULL,            -- pending, verified, already, skipped, conflict, failed, incomplete
    verify_method TEXT,
    verified_at REAL,
    etag TEXT,
    error TEXT,
    error_code TEXT,
    detail TEXT,
    damaged TEXT,                    -- castoff's earlier copy of this file there, found damaged (kept)
    resumed INTEGER,                 -- bytes of it an earlier job had sent there (a resumed upload)
    PRIMARY KEY (file_id, dest_ident)
);
CREATE INDEX IF NOT EXISTS outcomes_by_job ON outcomes (job_id);
"""
    + _LANDED_TABLE.format(name="landed")
    + _LANDED_INDEX
    + _LANDED_TARGET_INDEX
    + """-- damaged: copies castoff verified that later no longer held those bytes (bit rot, an edit in
-- place). Kept where they are, never overwritten; every job that meets the file says so again,
-- until the copy is gone or holds the verified bytes again
CREATE TABLE IF NOT EXISTS damaged (
    dest_ident TEXT NOT NULL,
    target TEXT NOT NULL,            -- the damaged copy
    planned TEXT NOT NULL,           -- the name the layout gives the file (landed.planned)
    blake3 TEXT NOT NULL,            -- what castoff had verified there
    verified_at REAL NOT NULL,       -- when
    size INTEGER,                    -- the damaged copy as found: another size or mtime since,
    mtime_ns INTEGER,                --   and a re-run reads it back again
    found_at REAL NOT NULL,
    job_id TEXT NOT NULL,            -- the job that found it
    PRIMARY KEY (dest_ident, target)
);
"""
    + _LANDED_TRIGGER
    + """-- objects: every key castoff made visible at a bucket that cannot refuse to replace one itself
-- (no conditional writes): the catalog is then what keeps a later file from replacing it unsaid
CREATE TABLE IF NOT EXISTS objects (
    dest_ident TEXT NOT NULL,
    target TEXT NOT NULL,
    blake3 TEXT NOT NULL,
    size INTEGER NOT NULL,
    job_id TEXT NOT NULL,
    put_at REAL NOT NULL,
    PRIMARY KEY (dest_ident, target)
) WITHOUT ROWID;
-- claims: a target (a folder's path, a bucket's key) that a running job is about to put a file
-- at. Two jobs that land different sources on one name (two cards, one layout) would each find it
-- free, and at a bucket without conditional writes the later upload would replace the earlier;
-- at two destinations, each job could win the name at one of them (card 1's photo under the name
-- at the drive, card 2's at the NAS). A file's name is claimed at every destination of its job in
-- one write transaction with the look, so only one job has it, everywhere (``claim_names``).
-- Gone when the file is there (``let_go``, ``objects``), when its job ends, and when its job is
-- found dead.
CREATE TABLE IF NOT EXISTS claims (
    dest_ident TEXT NOT NULL,
    target TEXT NOT NULL,
    job_id TEXT NOT NULL,
    PRIMARY KEY (dest_ident, target)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS claims_by_job ON claims (job_id);
-- chains: the generations each ASC MHL chain file castoff put at a bucket names, by the file's BLAKE3
-- (with ``objects``, the chain castoff put at a key): a write-only key cannot read the chain there,
-- and a card's history that grew must replace it, not land beside it (engine/histories.py)
CREATE TABLE IF NOT EXISTS chains (
    blake3 TEXT PRIMARY KEY,
    generations TEXT NOT NULL        -- JSON [[number, manifest name, C4], ...], in the chain's order
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS uploads (
    id INTEGER PRIMARY KEY,
    dest_ident TEXT NOT NULL,
    dest_name TEXT NOT NULL,
    target TEXT NOT NULL,
    src_path TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    part_size INTEGER NOT NULL,
    token TEXT NOT NULL,             -- JSON
    blake3 TEXT,
    created_at REAL NOT NULL,
    job_id TEXT NOT NULL,
    state TEXT NOT NULL              -- open (finished and aborted uploads are deleted)
);
CREATE INDEX IF NOT EXISTS uploads_by_target ON uploads (dest_ident, target);
-- upload_intents: a multipart upload about to be created. The server answers with its id, and the
-- uploads row that records it commits after that answer: a job killed in between leaves an upload
-- no row names. The intent, committed before the request, lets the next job look for it (where
-- the key may list uploads) and abort it, or say that one may be left. Gone once the uploads row is in.
CREATE TABLE IF NOT EXISTS upload_intents (
    id INTEGER PRIMARY KEY,
    dest_ident TEXT NOT NULL,
    dest_name TEXT NOT NULL,
    target TEXT NOT NULL,
    job_id TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS parts (
    upload_id INTEGER NOT NULL REFERENCES uploads(id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    size INTEGER NOT NULL,
    md5 TEXT,
    etag TEXT,
    PRIMARY KEY (upload_id, idx)
);
CREATE TABLE IF NOT EXISTS partials (
    dest_ident TEXT NOT NULL,
    path TEXT NOT NULL,
    job_id TEXT NOT NULL,
    PRIMARY KEY (dest_ident, path)
);
CREATE TABLE IF NOT EXISTS file_meta (   -- what the layout planner learnt (castoff.layout)
    file_id INTEGER PRIMARY KEY REFERENCES files(id),
    job_id TEXT NOT NULL,
    capture_time TEXT,               -- ISO 8601, with the offset when known
    capture_source TEXT,             -- exif, quicktime, mtime
    device TEXT,
    device_source TEXT,              -- exif, quicktime, card, none
    file_type TEXT,                  -- Photos, RAW, Video, Audio, Sidecars, Other
    sidecar_of TEXT,                 -- the original's name when this file travels with it
    layout_path TEXT NOT NULL,       -- where the layout put it, under each destination's prefix
    original_path TEXT NOT NULL,
    make TEXT,                       -- as the header said: a re-run plans from these, unread
    model TEXT,
    counter INTEGER                  -- its {counter}: a re-run gives the file the same number
);
CREATE INDEX IF NOT EXISTS file_meta_by_job ON file_meta (job_id);
CREATE TABLE IF NOT EXISTS meta_sidecars (   -- JSON sidecar objects (<key>.castoff.json)
    job_id TEXT NOT NULL,
    file_id INTEGER NOT NULL,
    dest_ident TEXT NOT NULL,
    key TEXT NOT NULL,
    status TEXT NOT NULL,            -- verified, already, exists, failed
    error TEXT,
    PRIMARY KEY (file_id, dest_ident)
);
-- folders: source folders that hold no file (scan.EmptyFolder), as each local destination got them
CREATE TABLE IF NOT EXISTS folders (
    job_id TEXT NOT NULL,
    rel_path TEXT NOT NULL,          -- as files.rel_path: under the source's label
    abs_path TEXT NOT NULL,
    dest_ident TEXT NOT NULL,
    dest_name TEXT NOT NULL,
    target TEXT NOT NULL,            -- the folder at the destination
    status TEXT NOT NULL,            -- made, already (there before), failed
    error TEXT,
    error_code TEXT,
    PRIMARY KEY (job_id, rel_path, dest_ident)
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    job_id TEXT NOT NULL,
    at REAL NOT NULL,
    level TEXT NOT NULL,
    message TEXT NOT NULL
);
"""
)


_LANDED_COLUMNS = (
    "SELECT dest_ident, planned, target, src_path, size, mtime_ns, blake3, etag, verify_method,"
    " verified_at, job_id FROM landed"
)
_LANDED_AT = _LANDED_COLUMNS + " WHERE dest_ident=? AND planned=? ORDER BY verified_at DESC LIMIT 1"
_LANDED_AT_FROM = _LANDED_COLUMNS + " WHERE dest_ident=? AND planned=? AND src_path=?"
#: prior_read's columns; ``prior_reads`` adds the key and the row's id
_PRIOR_READ = (
    "SELECT f.rel_path, f.blake3, f.md5, f.xxh128, m.capture_time, m.capture_source,"
    " m.device_source, m.make, m.model, m.device, m.counter, f.ctime_ns{more} FROM files f"
    " LEFT JOIN file_meta m ON m.file_id=f.id"
    " WHERE {where} AND f.status='read' AND f.blake3 IS NOT NULL"
)

#: ``prior_read``'s query, built once: a first run asks it for every file
_PRIOR_READ_ONE = (
    _PRIOR_READ.format(more="", where="f.abs_path=? AND f.size=? AND f.mtime_ns=?")
    + " ORDER BY f.id DESC LIMIT 1"
)

#: ``knows_folder``'s look-ups: a folder's own files (the range holds those below it too)
_READ_IN_FOLDER = (
    "SELECT 1 FROM files WHERE abs_path>=? AND abs_path<? AND status='read'"
    " AND instr(substr(abs_path, ?), '/')=0 LIMIT 1"
)
_LANDED_IN_FOLDER = (
    "SELECT 1 FROM landed WHERE dest_ident IN ({marks}) AND src_path>=? AND src_path<?"
    " AND instr(substr(src_path, ?), '/')=0 LIMIT 1"
)

#: the key in ``meta`` of the highest ``{counter}`` given in a scope (``Catalog.next_counter``)
COUNTER_MEMO = "counter:"

#: what the layout planner learnt of a file, as ``Catalog.set_file_meta`` takes it
FILE_META_COLUMNS = (
    "layout_path",
    "original_path",
    "capture_time",
    "capture_source",
    "device",
    "device_source",
    "file_type",
    "sidecar_of",
    "make",
    "model",
    "counter",
)
_SET_FILE_META = (  # file_id, job_id, then FILE_META_COLUMNS
    "INSERT OR REPLACE INTO file_meta(file_id, job_id, layout_path, original_path, capture_time,"
    " capture_source, device, device_source, file_type, sidecar_of, make, model, counter)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


#: what an outcome filled in for a file the job never got to at a destination says
NOT_REACHED = "the job ended before this file got here (it was stopped or killed first)"
NOT_REACHED_CODE = "not-reached"


def _fill_not_reached(db: sqlite3.Connection, job_id: str) -> None:
    """``Catalog.fill_not_reached``, in the caller's transaction."""
    db.execute(
        "INSERT OR IGNORE INTO outcomes(job_id, file_id, dest_ident, dest_name, target, status, error,"
        " error_code) SELECT f.job_id, f.id, json_extract(d.value, '$.ident'),"
        " json_extract(d.value, '$.name'), '', 'incomplete', ?, ?"
        " FROM jobs j JOIN files f ON f.job_id=j.id, json_each(j.destinations) d"
        " WHERE j.id=? AND f.status IN ('read', 'pending') AND json_extract(d.value, '$.ident') IS NOT NULL",
        (NOT_REACHED, NOT_REACHED_CODE, job_id),
    )


_SET_OUTCOME = (
    "INSERT INTO outcomes(job_id, file_id, dest_ident, dest_name, target, status,"
    " verify_method, verified_at, etag, error, error_code, detail, damaged, resumed)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT(file_id, dest_ident) DO UPDATE SET target=excluded.target,"
    " status=excluded.status, verify_method=excluded.verify_method,"
    " verified_at=excluded.verified_at, etag=excluded.etag, error=excluded.error,"
    " error_code=excluded.error_code, detail=excluded.detail, damaged=excluded.damaged,"
    " resumed=excluded.resumed"
)
_ADD_FILE = (
    "INSERT INTO files(job_id, rel_path, abs_path, size, mtime_ns, status, blake3, md5, xxh128,"
    " stat_unknown, ctime_ns) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?)"
)
_FILE_READ = (
    "UPDATE files SET status='read', blake3=?, md5=COALESCE(?, md5), xxh128=COALESCE(?, xxh128) WHERE id=?"
)
#: a name claimed (``Catalog.claim_names``): a job that no longer runs loses its claim to it
_CLAIM = "INSERT OR REPLACE INTO claims(dest_ident, target, job_id) VALUES (?, ?, ?)"
_LET_GO = "DELETE FROM claims WHERE dest_ident=? AND target=? AND job_id=?"
_RECORD_LANDED = (
    "INSERT OR REPLACE INTO landed(dest_ident, planned, target, src_path, size, mtime_ns,"
    " blake3, etag, verify_method, verified_at, job_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
#: the columns of ``jobs`` that hold JSON text
JOB_JSON_COLUMNS = ("argv", "sources", "destinations", "options")


#: columns of ``jobs`` that are castoff's own bookkeeping (is its process still alive), not for JSON
JOB_INTERNAL_COLUMNS = ("pid", "proc_start")
#: columns of ``jobs`` that hold a time (epoch seconds): JSON shows them as the reports do
JOB_TIME_COLUMNS = ("started_at", "ended_at", "pruned_at")


def iso_time(t: float | None) -> str | None:
    """``t`` (epoch seconds) as the JSON report writes a time: local, ISO 8601, with its offset."""
    from castoff.reports.json_report import ISO

    return None if t is None else time.strftime(ISO, time.localtime(t))


def job_as_json(row: sqlite3.Row) -> dict[str, Any]:
    """A row of ``jobs`` as ``castoff jobs --json`` shows it: its JSON columns as values, not as
    text, its times as the reports write them, without castoff's own bookkeeping (pid), whether
    its list of files is whole as the reports say it (``files_complete``), and its command line
    and destination URLs as the reports show them (secret-looking options ``***``,
    ``shown_argv``)."""
    from castoff.destinations.spec import shown, shown_argv

    out = dict(row)
    for column in JOB_INTERNAL_COLUMNS:
        out.pop(column, None)
    for column in JOB_TIME_COLUMNS:
        if column in out:
            out[column] = iso_time(out[column])
    for column in JOB_JSON_COLUMNS:
        if isinstance(out.get(column), str):
            out[column] = json.loads(out[column])
    if "scanned" in out:  # as the report says it: whether the job's list of files is whole
        out["files_complete"] = bool(out.pop("scanned"))
    if isinstance(out.get("argv"), list):
        out["argv"] = shown_argv(out["argv"])
    for d in out.get("destinations") or []:
        if isinstance(d.get("s3"), str):  # the S3 defaults a destination was opened with
            d["s3"] = json.loads(d["s3"])
        if isinstance(d.get("spec"), str):
            d["spec"] = shown(d["spec"])
    return out


class LandedRow(NamedTuple):  # a re-run makes one a file: a tuple is built five times faster
    dest_ident: str
    planned: str
    target: str
    src_path: str
    size: int
    mtime_ns: int
    blake3: str
    etag: str | None
    verify_method: str
    verified_at: float
    job_id: str


#: a row of ``_LANDED_COLUMNS`` as a LandedRow: the tuple made from it without a Python call
#: (a re-run makes one a file and destination; the query's columns are the row's, in order)
_as_landed_row = functools.partial(tuple.__new__, LandedRow)


class DamagedCopy(NamedTuple):
    """A copy castoff verified that no longer holds those bytes (``damaged``)."""

    dest_ident: str
    target: str
    planned: str
    blake3: str
    verified_at: float
    size: int | None
    mtime_ns: int | None
    found_at: float
    job_id: str


class KnownObject(NamedTuple):
    """An object castoff put at a bucket that cannot refuse to replace one (``objects``)."""

    blake3: str
    size: int
    job_id: str
    put_at: float


class PriorCapture(NamedTuple):
    """What an earlier read's header said (``castoff.layout.capture.Capture``, as recorded)."""

    when: str  # ISO 8601
    when_source: str
    make: str | None
    model: str | None
    device_source: str


class PriorRead(NamedTuple):
    """The last read of a source file with the same path, size and mtime."""

    rel_path: str
    blake3: str
    md5: str | None
    xxh128: str | None
    capture: PriorCapture | None
    #: the ``{counter}`` the file had (None from a castoff before it was kept)
    counter: int | None = None
    #: the file's change time when it was read (None: not known, a castoff before it was kept)
    ctime_ns: int | None = None


@dataclass(frozen=True)
class UploadRow:
    id: int
    dest_ident: str
    dest_name: str
    target: str
    src_path: str
    size: int
    mtime_ns: int
    part_size: int
    token: Mapping[str, Any]
    created_at: float
    job_id: str
    parts: tuple[PartReceipt, ...]
    #: the BLAKE3 of the file the upload was begun for (its object's metadata says it), when known
    blake3: str | None = None


@dataclass(frozen=True)
class IntentRow:
    """A multipart upload a job was about to create (``Catalog.intend_upload``)."""

    id: int
    dest_ident: str
    dest_name: str
    target: str
    job_id: str
    created_at: float


def prior_from_row(r: Sequence[Any]) -> PriorRead:
    """A row of ``_PRIOR_READ``, by column number (a re-run makes one a file), as the planner and
    the engine take it."""
    capture = None
    # A row of an older castoff has no make and model: its device cannot be rebuilt.
    if r[4] is not None and (r[9] is None or r[7] or r[8]):
        capture = PriorCapture(str(r[4]), str(r[5]), r[7], r[8], str(r[6]))
    counter = None if r[10] is None else int(r[10])
    return PriorRead(
        str(r[0]), str(r[1]), r[2], r[3], capture, counter, None if r[11] is None else int(r[11])
    )


def new_job_id() -> str:
    """Sortable, short, unique: ``20261121-235901-3f2a``. The suffix is the millisecond times 64
    plus a random 0-63, so two jobs started in the same second still sort in order."""
    import secrets

    now = time.time()
    ms = int(now * 1000) % 1000
    suffix = ms * 64 + secrets.randbelow(64)
    return time.strftime("%Y%m%d-%H%M%S", time.localtime(now)) + f"-{suffix:04x}"


class _Tx:
    """One write transaction under the catalog's lock; inside ``batch`` (or a held group) the
    outer transaction's commit covers it. A class, not a generator: a re-run makes a million.
    The rows a held group deferred (``Catalog._write``) go in first, unless ``apart``: the
    statements that follow touch none of their tables."""

    __slots__ = ("_apart", "_cat", "_db", "_lock", "_outer")

    def __init__(self, cat: Catalog, apart: bool = False) -> None:
        self._cat = cat
        self._lock = cat._lock
        self._db = cat._db
        self._outer = False
        self._apart = apart

    def __enter__(self) -> sqlite3.Connection:
        self._lock.acquire()
        self._outer = self._db.in_transaction
        if not self._outer:
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except BaseException as exc:
                self._lock.release()
                raise self._cat._error(exc) from exc
        elif self._cat._deferred and not self._apart:
            try:
                self._cat._apply_deferred()
            except BaseException as exc:
                self._lock.release()
                raise self._cat._error(exc) from exc
        return self._db

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        try:
            if not self._outer:
                if exc_type is None:
                    try:
                        self._db.execute("COMMIT")
                    except sqlite3.Error as failed:
                        if self._db.in_transaction:
                            with contextlib.suppress(sqlite3.Error):
                                self._db.execute("ROLLBACK")
                        raise self._cat._error(failed) from failed
                elif self._db.in_transaction:  # (SQLite may have rolled back itself: a full disk)
                    with contextlib.suppress(sqlite3.Error):  # the first error is the one to say
                        self._db.execute("ROLLBACK")
        finally:
            self._lock.release()
        if isinstance(exc, sqlite3.Error):
            raise self._cat._error(exc) from exc


#: how to get past a state folder or catalog castoff cannot use
_ANOTHER = "give another --state-dir (or CASTOFF_HOME)"


def _move_aside(path: Path) -> str:
    """What to do with a damaged catalog, and what is lost by it."""
    return (
        f"move it aside (mv {path} {path}.damaged, with its -wal and -shm files) and run the command"
        " again, or give another --state-dir (or CASTOFF_HOME). A new catalog starts empty: the next"
        " copy reads every file again and finds the copies already at the destinations, but castoff"
        " forgets the earlier jobs ('castoff jobs'; their reports stay in the reports folder), the"
        " unfinished multipart uploads it could resume (they stay at their buckets until aborted there),"
        " the keys it put at buckets without conditional writes, and the damaged copies it knew"
    )


def _damaged(exc: sqlite3.Error) -> bool:
    """SQLite found the file's pages damaged (or truncated): not a catalog castoff cannot open."""
    return "malformed" in str(exc)


def _drive_failing(folder: Path) -> str | None:
    """What the drive of ``folder`` answers when it failed or went read-only (EIO, EROFS), which
    SQLite says as "disk I/O error" or "unable to open database file" as it says a file size
    limit; None when it answers well. (ext4 turned read-only after an error tells it only to the
    calls it refuses, such as the folder's fsync; xfs shut down refuses even its open.)"""
    try:
        if os.statvfs(folder).f_flag & os.ST_RDONLY:
            return os.strerror(errno.EROFS)
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        if exc.errno in (errno.EIO, errno.EROFS):
            return exc.strerror
    return None


def _drive_failed(
    path: Path, folder: Path, text: str, why: str, *, done: str = "written"
) -> errors.CatalogError:
    """The catalog cannot be ``done`` because its drive failed (``_drive_failing``: ``why``)."""
    return errors.CatalogError(
        f"the catalog {path} cannot be {done} ({text}): the drive of the state folder {folder}"
        f" reported an I/O error or went read-only ({why})",
        hint="check that drive (fsck) and remount it, then run the same command again: it goes on"
        " from what the catalog recorded",
    )


def catalog_error(path: Path, exc: sqlite3.Error, busy_ms: int | None = None) -> errors.CatalogError | None:
    """What a failure of the catalog at ``path`` under a command that had opened it means, as the
    error that says so and what to do; None for one that is castoff's own bug (a constraint, a
    statement SQLite refuses), which stays itself."""
    text = str(exc)
    folder = path.parent
    if isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text):
        return errors.CatalogBusy(
            f"the catalog is busy: another process held {path} for more than"
            f" {(busy_ms or BUSY_TIMEOUT_MS) // 1000} s (a 'castoff jobs prune' compacting it, or a job)",
            hint="wait for it to finish ('castoff jobs' lists the jobs running), then run the same"
            " command again: it goes on from what the catalog recorded",
        )
    if _damaged(exc) or "not a database" in text:
        return errors.CatalogDamaged(f"the catalog {path} is damaged ({text})", hint=_move_aside(path))
    if "full" in text or "disk I/O" in text:
        why = _drive_failing(folder) if "disk I/O" in text else None
        return (
            _drive_failed(path, folder, text, why)
            if why is not None
            else errors.CatalogFull(
                f"the catalog {path} cannot be written ({text}): the state folder {folder} is full,"
                " or a file size limit (ulimit -f) stops it growing",
                hint=f"free space where {folder} is (df {folder}) or lift the limit, then run the same"
                " command again: it goes on from what the catalog recorded",
            )
        )
    if "readonly" in text or "read-only" in text:
        return errors.CatalogError(
            f"the catalog {path} cannot be written ({text})",
            hint=f"make {folder} and the files in it writable, or {_ANOTHER}",
        )
    if isinstance(exc, sqlite3.OperationalError):
        return errors.CatalogError(f"the catalog {path} failed ({text})", hint="run the same command again")
    return None


def _unusable(path: Path, exc: OSError | sqlite3.Error) -> errors.UsageError:
    """Why the catalog at ``path`` cannot be opened, naming the path that is wrong."""
    folder = path.parent
    if isinstance(exc, FileExistsError | NotADirectoryError):
        for p in (*reversed(folder.parents), folder):
            if p.exists() and not p.is_dir():
                return errors.UsageError(
                    f"the state folder {folder} cannot be made: {p} is a file, where a folder is needed",
                    hint=f"move the file aside, or {_ANOTHER}",
                )
    if isinstance(exc, OSError):
        return errors.UsageError(f"cannot make the state folder {folder}: {exc.strerror}", hint=_ANOTHER)
    if path.is_dir():
        return errors.UsageError(
            f"the catalog {path} is a folder, not a file", hint=f"move it aside, or {_ANOTHER}"
        )
    if _damaged(exc) or not isinstance(exc, sqlite3.OperationalError):  # or: file is not a database
        if _damaged(exc):  # castoff's, its pages damaged (a truncated file, a bad disk)
            what, hint = "is damaged", _move_aside(path)
        else:
            what, hint = "is not a castoff catalog", f"move it aside, or {_ANOTHER}"
        return errors.UsageError(f"the catalog {path} {what} ({exc})", hint=hint)
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        shut = folder if not os.access(folder, os.W_OK) else path
        what = f"the state folder {folder}" if shut == folder else f"the catalog {path}"
        return errors.UsageError(
            f"{what} is read-only: castoff cannot write the catalog {path} ({exc})",
            hint=f"make {shut} writable (or copy the state folder somewhere writable),"
            f" or {_ANOTHER}; 'castoff jobs', 'castoff jobs show' and 'castoff uploads' read it as it is",
        )
    why = _drive_failing(folder)
    failed = None if why is None else _drive_failed(path, folder, str(exc), why, done="opened")
    return errors.UsageError(
        failed.message if failed else f"cannot open the catalog {path} ({exc})",
        hint=failed.hint if failed else _ANOTHER,
    )


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


class Catalog:
    """Thread-safe access to the catalog database. One connection, one lock; writes are short."""

    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        """Open (or make) the catalog at ``path``; a state folder or a file that cannot be one is a
        ``UsageError`` naming it (a catalog another process holds is ``CatalogBusy``). Once open,
        a failure of the catalog (damaged, its folder full, busy) is a ``CatalogError`` naming it
        (``catalog_error``), whatever the call: the caller never meets an ``sqlite3`` error.

        ``read_only``: only read the catalog, as it is (a state folder castoff cannot write: a
        backup on a read-only mount, someone else's): nothing made, migrated or marked; a write
        is a ``CatalogError`` saying the catalog cannot be written (``catalog_error``)."""
        self.read_only = read_only
        self.wal_unread = False
        #: the URI query of the read-only connections beside the main one (``stream``, ``snapshot``)
        self._ro_query = "mode=ro"
        try:
            if read_only:
                self._open_read_only(path)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._open(path)
        except (OSError, sqlite3.DatabaseError, errors.CatalogError) as exc:
            if getattr(self, "_db", None) is not None:
                self._db.close()
            if isinstance(exc, errors.CatalogBusy | errors.CatalogTooNew):
                raise
            cause = exc.__cause__ if isinstance(exc, errors.CatalogError) else exc
            assert isinstance(cause, OSError | sqlite3.Error)
            if isinstance(cause, sqlite3.OperationalError) and (
                "locked" in str(cause) or "busy" in str(cause)
            ):
                raise catalog_error(path, cause) or exc from cause
            raise _unusable(path, cause) from cause

    def _open(self, path: Path) -> None:
        self._start(path)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.execute(f"PRAGMA busy_timeout={self._busy_ms}")
        self._refuse_newer()
        self._db.executescript(_SCHEMA)
        self._add_missing_columns()
        self._key_landed_by_source()
        with self._tx() as db:
            # (the version after the migrations: a castoff that stops between them leaves the old
            # one, and the next open migrates what is left)
            db.execute(
                "INSERT INTO meta(key, value) VALUES ('schema_version', ?)"
                " ON CONFLICT(key) DO UPDATE SET value=excluded.value"
                " WHERE CAST(value AS INTEGER) < CAST(excluded.value AS INTEGER)",
                (str(SCHEMA_VERSION),),
            )
            self._fill_objects(db)

    def _refuse_newer(self) -> None:
        """``CatalogTooNew`` for a catalog a newer castoff wrote (``SCHEMA_VERSION``)."""
        try:
            row = self._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return  # a new catalog
            raise
        try:
            version = int(row[0]) if row is not None else 0
        except ValueError:
            version = SCHEMA_VERSION + 1  # not a number this castoff ever wrote
        if version > SCHEMA_VERSION:
            raise errors.CatalogTooNew(
                f"the catalog {self.path} was written by a newer castoff (catalog format {row[0]};"
                f" this castoff reads up to {SCHEMA_VERSION}): it is left as it is",
                hint="use that castoff again (pip install -U castoff), or give another --state-dir"
                " (or CASTOFF_HOME) for this one",
            )

    def _open_read_only(self, path: Path) -> None:
        """The catalog as it is, read only. A WAL catalog's reader needs its -shm file: one left
        beside it (a catalog copied while open) is used, with the -wal's latest changes; a catalog
        closed cleanly has neither, and one that cannot be made there is read as immutable (the
        file alone: nothing else writes a catalog in a folder nobody may write)."""
        self._start(path)
        uri = path.resolve().as_uri()
        for query in ("mode=ro", "mode=ro&immutable=1"):
            db = sqlite3.connect(f"{uri}?{query}", uri=True, check_same_thread=False, isolation_level=None)
            try:
                db.execute("SELECT count(*) FROM sqlite_master").fetchone()
            except sqlite3.OperationalError as exc:
                db.close()
                if "immutable" in query or "locked" in str(exc) or "busy" in str(exc):
                    raise
                continue
            break
        self._db, self._ro_query = db, query
        #: read as immutable while a -wal file lies beside it: the changes it holds are not seen
        self.wal_unread = "immutable" in query and _size(Path(f"{path}-wal")) > 0
        self._db.row_factory = sqlite3.Row
        self._db.execute(f"PRAGMA busy_timeout={self._busy_ms}")
        self._refuse_newer()

    def _start(self, path: Path) -> None:
        self.path = path
        self._lock = threading.RLock()
        self._urgent_done = threading.Condition(threading.Lock())
        self._held = False  # a group's transaction is open (``hold``)
        #: threads waiting to record an upload the server has just created: until it is in the
        #: catalog, a kill leaves an upload nobody can find (write-only keys cannot list them),
        #: so an open group commits at its next file instead of at its age (``WriteGroup``)
        self.urgent = 0
        #: bumped by every write that can change what ``prior_read`` or ``landed_at`` answer for a
        #: file the job has not asked about yet, so answers looked up in bulk beforehand
        #: (``castoff.catalog.prefetch``) know they still hold. A job's own reads and copies do not
        #: bump it: they answer for files already asked about, and ``landed_sources`` names those
        #: copies' sources
        self.generation = 0
        #: the sources of the copies recorded since ``watch_landed`` (for ``castoff.catalog.prefetch``)
        self.landed_sources: set[str] = set()
        self._watching = False
        #: rows of the held group's writes that wait for one ``executemany`` each (``_write``);
        #: the claims (``_CLAIM``) by their place, so that a let-go cancels them (``let_go``)
        self._deferred: dict[str, list[Sequence[object]] | dict[tuple[str, str], Sequence[object]]] = {}
        #: no other job runs, as the held group found when it first claimed a name (None: not
        #: looked yet); none can start before the group commits (``claim_names``)
        self._alone: bool | None = None
        self._busy_ms = BUSY_TIMEOUT_MS
        #: the first failure ``_error`` said (damaged, full, busy): what it rolled back can make
        #: later writes fail otherwise (a file's row gone: a foreign key), which say it again
        self.failed: errors.CatalogError | None = None

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _error(self, exc: BaseException) -> BaseException:
        """``exc`` as the ``CatalogError`` that says what it means (``catalog_error``), or itself."""
        if isinstance(exc, sqlite3.Error):
            said = catalog_error(self.path, exc, self._busy_ms)
            if said is not None:
                if self.failed is None:
                    self.failed = said
                return said
            if self.failed is not None:  # a consequence of that failure, not a bug of its own
                return type(self.failed)(self.failed.message, hint=self.failed.hint)
        return exc

    def wait_longer(self, ms: int = JOB_BUSY_TIMEOUT_MS) -> None:
        """From now on wait up to ``ms`` for a catalog another process holds (a job under way)."""
        with self._lock:
            self._db.execute(f"PRAGMA busy_timeout={int(ms)}")
            self._busy_ms = ms

    @staticmethod
    def _fill_objects(db: sqlite3.Connection) -> None:
        """A catalog from before the ``objects`` table: what landed at buckets is what castoff put
        there (once; the rows a job adds from then on keep it whole)."""
        if db.execute("SELECT 1 FROM meta WHERE key='objects_filled'").fetchone():
            return
        db.execute(
            "INSERT OR IGNORE INTO objects(dest_ident, target, blake3, size, job_id, put_at)"
            " SELECT dest_ident, target, blake3, size, job_id, verified_at FROM landed"
            " WHERE dest_ident LIKE 's3:%'"
        )
        db.execute("INSERT INTO meta(key, value) VALUES ('objects_filled', '1')")

    def _key_landed_by_source(self) -> None:
        """A catalog from before ``landed`` kept a row per source: its rows move to a table whose
        key has the source (SQLite cannot change a table's key in place). One transaction, so a
        castoff opening the catalog beside this one finds it before or after, never between."""

        def keyed() -> bool:
            return any(
                r["name"] == "src_path" and r["pk"] for r in self._db.execute("PRAGMA table_info(landed)")
            )

        if keyed():
            return
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                if not keyed():
                    self._db.execute(_LANDED_TABLE.format(name="landed_by_source"))
                    self._db.execute("INSERT INTO landed_by_source SELECT * FROM landed")
                    self._db.execute("DROP TABLE landed")  # and its index and trigger
                    self._db.execute("ALTER TABLE landed_by_source RENAME TO landed")
                    self._db.execute(_LANDED_INDEX)
                    self._db.execute(_LANDED_TARGET_INDEX)
                    self._db.execute(_LANDED_TRIGGER)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _add_missing_columns(self) -> None:
        """Catalogs made by an earlier castoff lack columns added since; add them (NULL for old rows)."""
        have = {r["name"] for r in self._db.execute("PRAGMA table_info(files)")}
        if "xxh128" not in have:
            self._db.execute("ALTER TABLE files ADD COLUMN xxh128 TEXT")
        if "stat_unknown" not in have:
            self._db.execute("ALTER TABLE files ADD COLUMN stat_unknown INTEGER")
        if "ctime_ns" not in have:
            self._db.execute("ALTER TABLE files ADD COLUMN ctime_ns INTEGER")
        have = {r["name"] for r in self._db.execute("PRAGMA table_info(outcomes)")}
        if "damaged" not in have:
            self._db.execute("ALTER TABLE outcomes ADD COLUMN damaged TEXT")
        if "resumed" not in have:
            self._db.execute("ALTER TABLE outcomes ADD COLUMN resumed INTEGER")
        have = {r["name"] for r in self._db.execute("PRAGMA table_info(file_meta)")}
        for column in ("make", "model"):
            if column not in have:
                self._db.execute(f"ALTER TABLE file_meta ADD COLUMN {column} TEXT")
        if "counter" not in have:
            self._db.execute("ALTER TABLE file_meta ADD COLUMN counter INTEGER")
        have = {r["name"] for r in self._db.execute("PRAGMA table_info(jobs)")}
        for column, kind in (
            ("pruned_at", "REAL"),
            ("pruned_files", "INTEGER"),
            ("pruned_bytes", "INTEGER"),
            ("proc_start", "TEXT"),
            ("scanned", "INTEGER"),
            ("castoff_version", "TEXT"),
            ("host", "TEXT"),
        ):
            if column not in have:
                self._db.execute(f"ALTER TABLE jobs ADD COLUMN {column} {kind}")
                if column == "scanned":  # an older castoff's job that ran to its end found every file
                    self._db.execute("UPDATE jobs SET scanned=1 WHERE status IN ('done', 'failed')")

    @contextlib.contextmanager
    def _urgent(self) -> Iterator[None]:
        """A write that should not wait for an open group's age: it commits at its next file."""
        with self._urgent_done:
            self.urgent += 1
        try:
            yield
        finally:
            with self._urgent_done:
                self.urgent -= 1
                self._urgent_done.notify_all()

    def let_urgent_in(self, timeout: float = 5.0) -> None:
        """Wait (outside any group) until the urgent writes waiting now are done: a lock is not
        fair, and a group that opened again at once would keep them out."""
        with self._urgent_done:
            self._urgent_done.wait_for(lambda: not self.urgent, timeout)

    def _tx(self) -> _Tx:
        return _Tx(self)

    def _tx_apart(self) -> _Tx:
        """A write transaction whose statements touch no table of the deferred rows (``_write``):
        ``files``, ``events``, ``partials``."""
        return _Tx(self, apart=True)

    def _run_apart(self, sql: str, args: Sequence[object]) -> sqlite3.Cursor:
        """One statement of ``_tx_apart``'s kind: in the transaction open (the held group's, or an
        outer ``batch``), whose commit covers it, else in one of its own."""
        with self._lock:
            if self._db.in_transaction:
                try:
                    return self._db.execute(sql, args)
                except sqlite3.Error as exc:
                    raise self._error(exc) from exc
            with self._tx_apart() as db:
                return db.execute(sql, args)

    def _write(self, sql: str, args: Sequence[object]) -> None:
        """One row of a ``_DEFERRED`` statement. Inside a held group, kept: the rows of each go in
        with one ``executemany`` before the group commits, or before any other statement that
        could see or touch their tables (``_Tx``, the read queries). Those statements write
        distinct tables (the trigger on ``landed`` only deletes from ``damaged``, which no other
        of them touches): applied a statement at a time, each in its calls' order, they leave
        what the calls in their order would. But for ``claims``, which two of them write: a
        group's first claim (``_CLAIM``) comes with its first file, before any file of it lands
        and lets go of one (``_LET_GO``), so a name claimed and let go in one group is gone; a
        name let go and then claimed again by another file of the job may lose that claim, one
        it cannot use: the file that landed there holds the name."""
        with self._lock:
            if self._held:  # only the thread holding the group gets here (the lock is its)
                rows = self._deferred.get(sql)
                if rows is None:
                    self._deferred[sql] = [args]
                elif isinstance(rows, list):
                    rows.append(args)
                else:
                    rows[(str(args[0]), str(args[1]))] = args
                return
            with self._tx() as db:
                db.execute(sql, args)

    def _apply_deferred(self, *, but_claims: bool = False) -> None:
        """The deferred rows, into the open transaction (the catalog's lock held). ``but_claims``:
        those of ``claims`` wait (for a statement that does not read that table), so that a claim
        and its let-go can still cancel (``let_go``)."""
        deferred, self._deferred = self._deferred, {}
        for sql, rows in deferred.items():
            if but_claims and sql in (_CLAIM, _LET_GO):
                self._deferred[sql] = rows
            else:
                self._db.executemany(sql, rows if isinstance(rows, list) else rows.values())

    def batch(self) -> AbstractContextManager[object]:
        """Several writes in one transaction: all of them land, or none. Other threads wait for
        the catalog meanwhile, so keep the block short and free of I/O. (Its statements apply the
        deferred rows themselves when they need to.)"""
        return self._tx_apart()

    def hold(self) -> None:
        """Open a transaction that every write of this thread joins until ``release``; other
        threads wait for the catalog meanwhile (see ``castoff.catalog.group``)."""
        self._lock.acquire()
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except BaseException as exc:
            self._lock.release()
            raise self._error(exc) from exc
        self._held = True
        self._alone = None

    def release(self, *, commit: bool = True) -> None:
        self._held = False
        self._alone = None
        try:
            if not commit:
                self._deferred = {}
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                return
            try:
                if self._deferred:
                    self._apply_deferred()
                self._db.execute("COMMIT")
            except BaseException:  # the group is all or nothing: never half of it committed
                self._deferred = {}
                if self._db.in_transaction:  # (SQLite may have rolled back itself: a full disk)
                    with contextlib.suppress(sqlite3.Error):
                        self._db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise self._error(exc) from exc
        finally:
            self._lock.release()

    def _query(self, sql: str, args: Sequence[object] = ()) -> list[sqlite3.Row]:
        with self._lock:
            try:
                if self._deferred:
                    self._apply_deferred()
                return list(self._db.execute(sql, args))
            except sqlite3.Error as exc:
                raise self._error(exc) from exc

    # -- jobs ------------------------------------------------------------------------------

    def start_job(
        self,
        job_id: str,
        *,
        argv: Sequence[str],
        sources: Sequence[str],
        destinations: Sequence[Mapping[str, str]],
        options: Mapping[str, object],
        pid: int,
        proc_start: str | None = None,
        alive: Callable[[running.JobRow], bool] | None = None,
    ) -> None:
        """Record the job as running. With ``alive`` (whether a row of ``jobs`` that says running
        is a job that still runs: ``castoff.catalog.running.row_alive``), first refuse it with
        ``JobRunning`` when a live job copies an overlapping source to one of its destinations: in
        the same write transaction (BEGIN IMMEDIATE) as the insert, so of two jobs started in the
        same instant one sees the other."""
        with self._tx() as db:
            if alive is not None:
                for row in db.execute("SELECT * FROM jobs WHERE status='running' ORDER BY started_at"):
                    theirs = json.loads(row["destinations"])
                    source = running.sources_overlap(sources, json.loads(row["sources"]))
                    dest = running.dests_overlap(destinations, theirs) if source else None
                    if source and dest and alive(row):
                        raise running.JobRunning(row, source[0], dest)
            db.execute(
                "INSERT INTO jobs(id, started_at, status, argv, sources, destinations, options, pid,"
                " proc_start, castoff_version, host) VALUES (?, ?, 'running', ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    job_id,
                    time.time(),
                    json.dumps(list(argv)),
                    json.dumps(list(sources)),
                    json.dumps([dict(d) for d in destinations]),
                    json.dumps(dict(options), default=str),
                    pid,
                    proc_start,
                    __version__,
                    socket.gethostname() or None,
                ),
            )

    def end_job(self, job_id: str, *, status: str, exit_code: int) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE jobs SET ended_at=?, status=?, exit_code=? WHERE id=?",
                (time.time(), status, exit_code, job_id),
            )
            db.execute("DELETE FROM claims WHERE job_id=?", (job_id,))

    def set_report_path(self, job_id: str, path: str) -> None:
        with self._tx() as db:
            db.execute("UPDATE jobs SET report_path=? WHERE id=?", (path, job_id))

    def jobs(self, limit: int | None = 50) -> list[sqlite3.Row]:
        """The ``limit`` newest jobs (None: all), with their file count and bytes (kept on the job
        when pruned)."""
        return self._query(
            "SELECT j.*,"
            " COALESCE(j.pruned_files,"
            " (SELECT COUNT(*) FROM files f WHERE f.job_id=j.id AND f.status != 'skipped')) AS n_files,"
            " COALESCE(j.pruned_bytes, (SELECT COALESCE(SUM(size),0) FROM files f WHERE f.job_id=j.id))"
            " AS n_bytes"
            " FROM jobs j ORDER BY started_at DESC LIMIT ?",
            (-1 if limit is None else limit,),
        )

    def count_jobs(self) -> int:
        return int(self._query("SELECT COUNT(*) FROM jobs")[0][0])

    def job_ids(self, given: str) -> list[str]:
        """The ids ``given`` names: itself, or every id it begins, newest first."""
        if self._query("SELECT 1 FROM jobs WHERE id=?", (given,)):
            return [given]
        rows = self._query(
            "SELECT id FROM jobs WHERE substr(id, 1, length(?1))=?1 ORDER BY started_at DESC", (given,)
        )
        return [str(r["id"]) for r in rows]

    def job(self, job_id: str) -> sqlite3.Row | None:
        """The job of this id, or of the one id it begins."""
        ids = self.job_ids(job_id)
        return self._query("SELECT * FROM jobs WHERE id=?", (ids[0],))[0] if len(ids) == 1 else None

    def end_dead_jobs(self, alive: Callable[[running.JobRow], bool]) -> None:
        """Jobs marked running whose process is gone (``alive``: ``running.row_alive``, which also
        tells a process id given to another process since) were interrupted: a re-run resumes them.
        Their exit code stays unknown (NULL): the process ended without one (SIGKILL, a crash, the
        machine stopped). A read-only catalog is left as it is."""
        if self.read_only:
            return
        for row in self._query("SELECT * FROM jobs WHERE status='running'"):
            if not alive(row):
                with self._tx() as db:  # unless it ended meanwhile
                    db.execute(
                        "UPDATE jobs SET ended_at=?, status='interrupted', exit_code=NULL"
                        " WHERE id=? AND status='running'",
                        (time.time(), row["id"]),
                    )
                    db.execute("DELETE FROM claims WHERE job_id=?", (row["id"],))
                    _fill_not_reached(db, row["id"])

    def scan_finished(self, job_id: str) -> None:
        """The job's scan found every file of its sources: its list of files is whole (a job
        stopped before can only list those it had found)."""
        with self._tx() as db:
            db.execute("UPDATE jobs SET scanned=1 WHERE id=?", (job_id,))

    def fill_not_reached(self, job_id: str) -> None:
        """A job that ended before every file got everywhere (stopped, killed): each of its files
        without an outcome at one of its destinations gets one there, ``incomplete`` with the code
        ``not-reached`` and no target (it was never planned there), so that the reports and ``jobs
        show`` name every file at every destination."""
        with self._tx() as db:
            _fill_not_reached(db, job_id)

    def running_job(self, job_id: str) -> sqlite3.Row | None:
        """The job of this id when its row says running (``running.row_alive`` tells if it is)."""
        rows = self._query("SELECT * FROM jobs WHERE id=? AND status='running'", (job_id,))
        return rows[0] if rows else None

    def memo(self, key: str) -> str | None:
        """A value castoff remembers between jobs (in the ``meta`` table), or None."""
        rows = self._query("SELECT value FROM meta WHERE key=?", (key,))
        return str(rows[0]["value"]) if rows else None

    def set_memo(self, key: str, value: str) -> None:
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    def log(self, job_id: str, level: str, message: str) -> None:
        with self._tx_apart() as db:
            db.execute(
                "INSERT INTO events(job_id, at, level, message) VALUES (?, ?, ?, ?)",
                (job_id, time.time(), level, message),
            )

    def record_folder(
        self,
        job_id: str,
        *,
        rel_path: str,
        abs_path: str,
        dest_ident: str,
        dest_name: str,
        target: str,
        status: str,
        error: errors.CastoffError | None = None,
    ) -> None:
        """How an empty source folder (``scan.EmptyFolder``) ended at a local destination."""
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO folders(job_id, rel_path, abs_path, dest_ident, dest_name,"
                " target, status, error, error_code) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    job_id,
                    rel_path,
                    abs_path,
                    dest_ident,
                    dest_name,
                    target,
                    status,
                    None if error is None else str(error),
                    None if error is None else error.code,
                ),
            )

    def job_folders(self, job_id: str) -> Iterator[sqlite3.Row]:
        """The job's empty folders, by path, each destination's row in the job's order of them."""
        return self.stream(
            "SELECT rel_path, abs_path, dest_name, target, status, error, error_code FROM folders"
            " WHERE job_id=? ORDER BY rel_path, rowid",
            (job_id,),
        )

    def job_events(self, job_id: str) -> list[sqlite3.Row]:
        return self._query("SELECT * FROM events WHERE job_id=? ORDER BY id", (job_id,))

    # -- files and outcomes ----------------------------------------------------------------

    def add_file(
        self,
        job_id: str,
        *,
        rel_path: str,
        abs_path: str,
        size: int | None,
        mtime_ns: int | None,
        known: PriorRead | None = None,
        ctime_ns: int | None = None,
    ) -> int:
        """A file of the job, pending; with the hashes of ``known`` (an earlier read) when given,
        and its change time as the scan found it (a later job trusts its read while it holds).
        ``size`` and ``mtime_ns`` None: unknown (a file castoff could not look at), kept as 0 (the
        job's byte totals and the lookups by path, size and mtime need a number) with
        ``stat_unknown`` set, which the reports' queries turn into NULL (``reports.rows``)."""
        unknown = 1 if size is None or mtime_ns is None else None
        stat = (0, 0) if size is None or mtime_ns is None else (size, mtime_ns)
        hashes = (None, None, None) if known is None else (known.blake3, known.md5, known.xxh128)
        args = (job_id, rel_path, abs_path, *stat, *hashes, unknown, ctime_ns)
        return int(self._run_apart(_ADD_FILE, args).lastrowid or 0)

    def add_skipped_file(self, job_id: str, *, rel_path: str, abs_path: str, reason: str, code: str) -> None:
        with self._tx_apart() as db:
            db.execute(
                "INSERT OR IGNORE INTO files(job_id, rel_path, abs_path, size, mtime_ns, status,"
                " error, error_code) VALUES (?, ?, ?, 0, 0, 'skipped', ?, ?)",
                (job_id, rel_path, abs_path, reason, code),
            )

    def leave_out(self, file_id: int, *, reason: str, code: str) -> list[sqlite3.Row]:
        """A file of the job left out after it was added (deleted before its read): recorded as
        the scan's skips are (``add_skipped_file``), without the outcomes said of it as it was
        planned (verified there by an earlier job, say); those are returned (``dest_ident``,
        ``status``, ``damaged``), for the job to take them off its counts."""
        with self._tx() as db:
            dropped = db.execute(
                "DELETE FROM outcomes WHERE file_id=? RETURNING dest_ident, status, damaged", (file_id,)
            ).fetchall()
            db.execute(
                "UPDATE files SET status='skipped', size=0, mtime_ns=0, blake3=NULL, md5=NULL,"
                " xxh128=NULL, error=?, error_code=? WHERE id=?",
                (reason, code, file_id),
            )
        return dropped

    def file_read(self, file_id: int, *, blake3: str, md5: str | None, xxh128: str | None = None) -> None:
        self._run_apart(_FILE_READ, (blake3, md5, xxh128, file_id))

    def file_hashes_known(self, file_id: int, *, xxh128: str | None = None) -> None:
        """A file this job did not read (or read only from a copy): take the hashes an earlier
        read of the same source (path, size, mtime) recorded, and ``xxh128`` when given."""
        with self._tx_apart() as db:
            db.execute(
                "UPDATE files SET"
                " blake3=COALESCE(files.blake3, k.blake3), md5=COALESCE(files.md5, k.md5),"
                " xxh128=COALESCE(?, files.xxh128, k.xxh128)"
                " FROM (SELECT p.blake3, p.md5, p.xxh128 FROM files p, files f"
                "       WHERE f.id=? AND p.abs_path=f.abs_path AND p.size=f.size"
                "       AND p.mtime_ns=f.mtime_ns AND p.id<>f.id AND p.blake3 IS NOT NULL"
                "       AND p.status<>'failed'"
                "       ORDER BY (p.xxh128 IS NULL), p.id DESC LIMIT 1) AS k"
                " WHERE files.id=?",
                (xxh128, file_id, file_id),
            )
            db.execute(
                "UPDATE files SET xxh128=COALESCE(xxh128, ?) WHERE id=?",
                (xxh128, file_id),
            )

    def file_failed(self, file_id: int, *, error: str, code: str) -> None:
        with self._tx_apart() as db:
            db.execute(
                "UPDATE files SET status='failed', error=?, error_code=? WHERE id=?",
                (error, code, file_id),
            )

    def set_outcome(
        self,
        job_id: str,
        file_id: int,
        *,
        dest_ident: str,
        dest_name: str,
        target: str,
        status: str,
        verify_method: str | None = None,
        etag: str | None = None,
        error: str | None = None,
        error_code: str | None = None,
        detail: str | None = None,
        verified_at: float | None = None,
        damaged: str | None = None,
        resumed: int | None = None,
    ) -> None:
        """``damaged``: the path of castoff's earlier copy of this file at this destination, found
        damaged (``record_damaged``), whatever became of the file itself. ``resumed``: the bytes
        of it an earlier job had sent there (parts of the upload this job resumed), not sent by
        this one. Inside a held group, written with the group's other outcomes (``_write``)."""
        self._write(
            _SET_OUTCOME,
            (
                job_id,
                file_id,
                dest_ident,
                dest_name,
                target,
                status,
                verify_method,
                verified_at,
                etag,
                error,
                error_code,
                detail,
                damaged,
                resumed,
            ),
        )

    def any_source_failed(self, job_id: str) -> bool:
        """Whether some source file of the job could not be read (changed, vanished, unreadable)."""
        return bool(self._query("SELECT 1 FROM files WHERE job_id=? AND status='failed' LIMIT 1", (job_id,)))

    def job_files(self, job_id: str) -> list[sqlite3.Row]:
        return self._query("SELECT * FROM files WHERE job_id=? ORDER BY rel_path", (job_id,))

    def job_outcomes(self, job_id: str) -> list[sqlite3.Row]:
        return self._query(
            "SELECT o.*, f.rel_path FROM outcomes o JOIN files f ON f.id=o.file_id"
            " WHERE o.job_id=? ORDER BY f.rel_path, o.dest_name",
            (job_id,),
        )

    def iter_job_rows(self, job_id: str) -> Iterator[sqlite3.Row]:
        """Every file of a job with each of its outcomes (``dest_*`` NULL when it has none), in path
        order, streamed from a read-only connection of its own (WAL lets it read beside the writer)
        so a report of 200,000 files never holds them all."""
        return self.stream(
            "SELECT f.id AS file_id, f.rel_path, f.abs_path, f.size, f.mtime_ns,"
            " f.status AS file_status, f.blake3, f.md5, f.xxh128, f.error AS file_error,"
            " f.error_code AS file_error_code, o.dest_ident, o.dest_name, o.target, o.status,"
            " o.verify_method, o.verified_at, o.etag, o.error, o.error_code, o.detail"
            " FROM files f LEFT JOIN outcomes o ON o.file_id=f.id"
            " WHERE f.job_id=? ORDER BY f.rel_path, o.dest_name",
            (job_id,),
        )

    def stream(self, sql: str, args: Sequence[object] = ()) -> Iterator[sqlite3.Row]:
        """The rows of a read-only query, streamed from a connection of its own (WAL lets it read
        beside the writer): for the reports, whose queries live beside them."""
        try:
            db = sqlite3.connect(f"{self.path.resolve().as_uri()}?{self._ro_query}", uri=True)
        except sqlite3.Error as exc:
            raise self._error(exc) from exc
        db.row_factory = sqlite3.Row
        try:
            cur = db.execute(sql, args)
            while rows := cur.fetchmany(1000):
                yield from rows
        except sqlite3.Error as exc:
            raise self._error(exc) from exc
        finally:
            db.close()

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[sqlite3.Connection]:
        """A read-only connection of its own (rows as plain tuples) inside one read transaction:
        every query on it sees the catalog as the first one did, whatever commits meanwhile (for
        the reports, which read a job's files and their outcomes with queries that must agree)."""
        try:
            db = sqlite3.connect(
                f"{self.path.resolve().as_uri()}?{self._ro_query}", uri=True, isolation_level=None
            )
        except sqlite3.Error as exc:
            raise self._error(exc) from exc
        try:
            db.execute("BEGIN")
            yield db
        except sqlite3.Error as exc:
            raise self._error(exc) from exc
        finally:
            db.close()

    # -- what is verified where ------------------------------------------------------------

    def record_landed(self, row: LandedRow) -> None:
        """Inside a held group, written with the group's other rows (``_write``); the damaged copy
        recorded at its target goes with it (trigger ``landed_clears_damaged``)."""
        with self._lock:
            if self._watching:
                self.landed_sources.add(row.src_path)
            self._write(_RECORD_LANDED, row)  # a LandedRow is a tuple of its columns, in order

    def record_damaged(self, copy: DamagedCopy) -> None:
        """A copy castoff verified that no longer holds those bytes: remembered until it is gone or
        proven good again, so that every later job that meets the file says so."""
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO damaged(dest_ident, target, planned, blake3, verified_at, size,"
                " mtime_ns, found_at, job_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                copy,
            )

    def damaged_at(self, dest_ident: str, target: str) -> DamagedCopy | None:
        rows = self._query("SELECT * FROM damaged WHERE dest_ident=? AND target=?", (dest_ident, target))
        return DamagedCopy(*rows[0]) if rows else None

    def damaged_copies(self, dest_idents: Sequence[str] | None) -> list[DamagedCopy]:
        """Every damaged copy known at these destinations (None: at any); few, if any."""
        if dest_idents is None:
            return [DamagedCopy(*r) for r in self._query("SELECT * FROM damaged")]
        marks = ", ".join("?" * len(dest_idents))
        rows = self._query(f"SELECT * FROM damaged WHERE dest_ident IN ({marks})", tuple(dest_idents))  # noqa: S608
        return [DamagedCopy(*r) for r in rows]

    def forget_damaged(self, dest_ident: str, target: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM damaged WHERE dest_ident=? AND target=?", (dest_ident, target))

    def record_object(self, dest_ident: str, target: str, *, blake3: str, size: int, job_id: str) -> None:
        """castoff made ``target`` visible at a bucket without conditional writes (``objects``)."""
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO objects(dest_ident, target, blake3, size, job_id, put_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (dest_ident, target, blake3, size, job_id, time.time()),
            )
            db.execute("DELETE FROM claims WHERE dest_ident=? AND target=?", (dest_ident, target))

    def claim_key(
        self, dest_ident: str, target: str, job_id: str, alive: Callable[[running.JobRow], bool]
    ) -> str | None:
        """Claim ``target`` of a bucket that cannot refuse to replace an object (``claims``) for
        ``job_id``, about to put a file there, unless another job holds it: that job's id is
        returned when it still runs (``alive``: ``running.row_alive``), and its claim is taken over
        when it does not. The look and the claim are one write transaction, so of two jobs
        claiming one key in the same instant, one sees the other's claim. An object another job
        put there since the caller's ``object_at`` (whose claim went with it) is the key taken too:
        that job's id is returned, whatever became of it."""
        with self._tx() as db:
            put = db.execute(
                "SELECT job_id FROM objects WHERE dest_ident=? AND target=?", (dest_ident, target)
            ).fetchone()
            if put is not None and str(put[0]) != job_id:
                return str(put[0])
            row = db.execute(
                "SELECT c.job_id, j.* FROM claims c LEFT JOIN jobs j ON j.id = c.job_id"
                " WHERE c.dest_ident=? AND c.target=?",
                (dest_ident, target),
            ).fetchone()
            holder = None if row is None else str(row[0])
            if holder is not None and holder != job_id and row["id"] is not None and alive(row):
                return holder
            if holder != job_id:
                db.execute(
                    "INSERT OR REPLACE INTO claims(dest_ident, target, job_id) VALUES (?, ?, ?)",
                    (dest_ident, target, job_id),
                )
        return None

    def claim_names(
        self, names: Sequence[tuple[str, str]], job_id: str, alive: Callable[[running.JobRow], bool]
    ) -> tuple[str, str] | None:
        """Claim each (destination identity, target) of ``names``, the places of one file, for
        ``job_id``, about to put it there: all of them, or none when another job that still runs
        (``alive``: ``running.row_alive``) holds one of them; then that job's id and that
        destination are returned. A claim of a job that no longer runs is taken over. The looks
        and the claims are one write transaction (the held group's, or one of its own): of two
        jobs claiming one name in the same instant, one sees the other's claim, at every
        destination. A held group where no other job runs claims without a look (a row each,
        written with the group's others): no job can start before it commits, its start being a
        write, so nothing can hold the names but itself or a job that ended."""
        with self._lock:
            if self._held:
                if self._alone is None:
                    self._alone = (
                        self._db.execute(
                            "SELECT 1 FROM jobs WHERE status='running' AND id<>? LIMIT 1", (job_id,)
                        ).fetchone()
                        is None
                    )
                if self._alone:
                    claims = self._deferred.get(_CLAIM)
                    if not isinstance(claims, dict):
                        claims = self._deferred[_CLAIM] = {}
                    for dest_ident, target in names:
                        claims[(dest_ident, target)] = (dest_ident, target, job_id)
                    return None
            with self._tx() as db:  # (the held group's claims deferred so far go in first)
                made: list[tuple[str, str]] = []
                for dest_ident, target in names:
                    if db.execute(
                        "INSERT OR IGNORE INTO claims(dest_ident, target, job_id) VALUES (?, ?, ?)",
                        (dest_ident, target, job_id),
                    ).rowcount:
                        made.append((dest_ident, target))
                        continue
                    row = db.execute(
                        "SELECT c.job_id, j.* FROM claims c LEFT JOIN jobs j ON j.id = c.job_id"
                        " WHERE c.dest_ident=? AND c.target=?",
                        (dest_ident, target),
                    ).fetchone()
                    holder = str(row[0])
                    if holder == job_id:
                        continue
                    if row["id"] is not None and alive(row):  # none of them, then
                        db.executemany("DELETE FROM claims WHERE dest_ident=? AND target=?", made)
                        return holder, dest_ident
                    db.execute(_CLAIM, (dest_ident, target, job_id))
                    made.append((dest_ident, target))
        return None

    def let_go(self, dest_ident: str, targets: Sequence[str], job_id: str) -> None:
        """The job's file is at one of ``targets`` of that destination, or goes to none of them:
        its claims on them (``claim_names``) are done. Inside a held group, written with the
        group's other rows (``_write``); a claim the group made and has not written yet is
        dropped instead: a small file claims its names and lands in one group, and when no other
        job runs, neither its claims nor their let-go cost a row."""
        with self._lock:
            claims = self._deferred.get(_CLAIM) if self._held else None
            for target in targets:
                if isinstance(claims, dict):
                    row = claims.get((dest_ident, target))
                    if row is not None and row[2] == job_id:
                        del claims[(dest_ident, target)]
                        continue
                self._write(_LET_GO, (dest_ident, target, job_id))

    def landed_count(self, dest_ident: str) -> int:
        """How many copies the catalog knows verified at this destination (any job)."""
        return int(self._query("SELECT COUNT(*) FROM landed WHERE dest_ident=?", (dest_ident,))[0][0])

    def bucket_idents(self) -> list[str]:
        """Every bucket destination the catalog remembers keys, copies or uploads of."""
        rows = self._query(
            "SELECT dest_ident FROM objects WHERE dest_ident LIKE 's3:%'"
            " UNION SELECT dest_ident FROM landed WHERE dest_ident LIKE 's3:%'"
            " UNION SELECT dest_ident FROM uploads WHERE dest_ident LIKE 's3:%'"
        )
        return [str(r[0]) for r in rows]

    def object_at(self, dest_ident: str, target: str) -> KnownObject | None:
        """What castoff put at ``target`` (``record_object``), if it put anything there."""
        rows = self._query(
            "SELECT blake3, size, job_id, put_at FROM objects WHERE dest_ident=? AND target=?",
            (dest_ident, target),
        )
        return KnownObject(*rows[0]) if rows else None

    def record_chain(self, blake3: str, generations: Sequence[tuple[int, str, str]]) -> None:
        """The ASC MHL chain file whose bytes have this BLAKE3 names these generations (``chains``)."""
        text = json.dumps([list(g) for g in generations])
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO chains(blake3, generations) VALUES (?, ?)", (blake3, text))

    def chain_sent(self, dest_ident: str, target: str) -> list[tuple[int, str, str]] | None:
        """The generations of the chain file castoff put at ``target`` of a bucket: None when it
        put nothing there, or something whose generations it did not record (``record_chain``)."""
        rows = self._query(
            "SELECT c.generations FROM objects o JOIN chains c ON c.blake3 = o.blake3"
            " WHERE o.dest_ident=? AND o.target=?",
            (dest_ident, target),
        )
        if not rows:
            return None
        return [(int(n), str(name), str(c4)) for n, name, c4 in json.loads(rows[0][0])]

    def landed_at(self, dest_ident: str, planned: str, src_path: str | None = None) -> LandedRow | None:
        """What landed where the layout put ``planned``: from ``src_path``, or the latest from any."""
        with self._lock:
            try:
                if self._deferred:
                    self._apply_deferred()
                if src_path is None:
                    row = self._db.execute(_LANDED_AT, (dest_ident, planned)).fetchone()
                else:
                    row = self._db.execute(_LANDED_AT_FROM, (dest_ident, planned, src_path)).fetchone()
            except sqlite3.Error as exc:
                raise self._error(exc) from exc
        return None if row is None else LandedRow(*row)  # the columns in the dataclass's order

    def landed_hashes_at(self, dest_ident: str, target: str, src_path: str) -> set[str]:
        """The BLAKE3 of every copy castoff verified at ``target``: the latest of each source
        (``landed``), and every one from ``src_path`` (the jobs' outcomes: ``landed`` keeps only
        its latest copy, and an edited file's earlier versions are what lands beside it)."""
        rows = self._query(
            "SELECT blake3 FROM landed WHERE target=? AND dest_ident=?"
            " UNION SELECT f.blake3 FROM files f JOIN outcomes o ON o.file_id=f.id AND o.dest_ident=?"
            " WHERE f.abs_path=? AND o.target=? AND o.status IN ('verified', 'already', 'skipped')"
            " AND f.blake3 IS NOT NULL",
            (target, dest_ident, dest_ident, src_path, target),
        )
        return {str(r[0]) for r in rows}

    def landed_for_source(self, dest_ident: str, src_path: str) -> list[LandedRow]:
        rows = self._query(
            "SELECT * FROM landed WHERE dest_ident=? AND src_path=? ORDER BY verified_at DESC",
            (dest_ident, src_path),
        )
        return [LandedRow(**{k: r[k] for k in r.keys()}) for r in rows]  # noqa: SIM118

    def verified_copy_at(self, paths: Sequence[str]) -> LandedRow | None:
        """The latest copy castoff verified at one of ``paths`` (absolute: a local destination's
        target), None when castoff never verified a copy there."""
        marks = ", ".join("?" * len(paths))
        rows = self._query(
            f"SELECT * FROM landed WHERE target IN ({marks}) ORDER BY verified_at DESC LIMIT 1",  # noqa: S608
            tuple(paths),
        )
        return LandedRow(**{k: rows[0][k] for k in rows[0].keys()}) if rows else None  # noqa: SIM118

    def holds_verified_copies(self, folders: Sequence[str]) -> bool:
        """Whether castoff verified a copy anywhere under one of ``folders`` (absolute paths)."""
        for folder in folders:
            below = folder.rstrip("/") + "/"
            if self._query(
                "SELECT 1 FROM landed WHERE target >= ? AND target < ? LIMIT 1", (below, below[:-1] + "0")
            ):
                return True
        return False

    def forget_landed_from(self, dest_ident: str, planned: str, src_path: str) -> None:
        """The copy of ``src_path`` at ``planned`` no longer counts there (found gone)."""
        with self._tx() as db:
            self.generation += 1
            db.execute(
                "DELETE FROM landed WHERE dest_ident=? AND planned=? AND src_path=?",
                (dest_ident, planned, src_path),
            )

    def forget_landed(self, dest_ident: str, planned: str) -> None:
        with self._tx() as db:
            self.generation += 1
            db.execute("DELETE FROM landed WHERE dest_ident=? AND planned=?", (dest_ident, planned))

    def delivered_anywhere(self, src_path: str, blake3: str) -> bool:
        """Whether any job delivered these bytes of this source somewhere (a copy verified, or
        found there already): else a read of them reached no destination."""
        rows = self._query(
            "SELECT 1 FROM files f JOIN outcomes o ON o.file_id=f.id WHERE f.abs_path=? AND f.blake3=?"
            " AND o.status IN ('verified', 'already', 'skipped') LIMIT 1",
            (src_path, blake3),
        )
        return bool(rows)

    def known_hash(self, src_path: str, size: int, mtime_ns: int) -> tuple[str, str | None] | None:
        """BLAKE3 (and MD5 when known) of a source file read before with the same size and mtime."""
        rows = self._query(
            "SELECT blake3, md5 FROM files WHERE abs_path=? AND size=? AND mtime_ns=?"
            " AND status='read' AND blake3 IS NOT NULL ORDER BY id DESC LIMIT 1",
            (src_path, size, mtime_ns),
        )
        if not rows:
            return None
        return str(rows[0]["blake3"]), rows[0]["md5"]

    def prior_read(self, src_path: str, size: int, mtime_ns: int) -> PriorRead | None:
        """What the last read of this source (same path, size and mtime) learnt: its hashes and,
        when a layout planned it, what its header said. One indexed lookup, for a re-run."""
        with self._lock:
            try:
                if self._deferred:
                    self._apply_deferred()
                row = self._db.execute(_PRIOR_READ_ONE, (src_path, size, mtime_ns)).fetchone()
            except sqlite3.Error as exc:
                raise self._error(exc) from exc
        return None if row is None else prior_from_row(row)

    def prior_reads(self, src_paths: Sequence[str]) -> list[tuple[str, int, int, int, PriorRead]]:
        """Every read of these sources, whatever their size and mtime: (path, size, mtime, row
        id, what ``prior_read`` makes of it); one query for many files (``catalog.prefetch``)."""
        where = f"f.abs_path IN ({','.join('?' * len(src_paths))})"
        rows = self._query(
            _PRIOR_READ.format(more=", f.abs_path, f.size, f.mtime_ns, f.id", where=where), src_paths
        )
        return [(r[12], r[13], r[14], r[15], prior_from_row(r)) for r in rows]

    def watch_landed(self) -> None:
        """From now on, until the next call, ``landed_sources`` names the source of every copy
        recorded (``record_landed``)."""
        with self._lock:
            self._watching = True
            self.landed_sources = set()

    def knows_folder(self, folder: str, dest_idents: Sequence[str]) -> bool:
        """Whether the catalog knows anything of the files right in ``folder`` (not below it): a
        read of one, or a copy landed from one at these destinations. Two indexed range look-ups;
        ``watch_landed`` first, in the same hold of the catalog."""
        start, end, cut = folder + "/", folder + "0", len(folder) + 2  # '0' sorts right after '/'
        marks = ",".join("?" * len(dest_idents))
        with self._lock:
            self._watching = True
            self.landed_sources = set()
            try:
                if self._deferred:
                    self._apply_deferred(but_claims=True)  # (it reads ``files`` and ``landed``)
                if self._db.execute(_READ_IN_FOLDER, (start, end, cut)).fetchone() is not None:
                    return True
                if not dest_idents:
                    return False
                sql = _LANDED_IN_FOLDER.format(marks=marks)
                return self._db.execute(sql, (*dest_idents, start, end, cut)).fetchone() is not None
            except sqlite3.Error as exc:
                raise self._error(exc) from exc

    def landed_from(self, dest_ident: str, src_paths: Sequence[str]) -> list[LandedRow]:
        """What landed at this destination from these sources; one query for many files."""
        where = f" WHERE dest_ident=? AND src_path IN ({','.join('?' * len(src_paths))})"
        with self._lock:
            try:
                if self._deferred:
                    self._apply_deferred()
                rows = self._db.execute(_LANDED_COLUMNS + where, (dest_ident, *src_paths)).fetchall()
            except sqlite3.Error as exc:
                raise self._error(exc) from exc
        return list(map(_as_landed_row, rows))

    # -- multipart uploads -----------------------------------------------------------------

    def open_upload(
        self,
        *,
        dest_ident: str,
        dest_name: str,
        target: str,
        src_path: str,
        size: int,
        mtime_ns: int,
        part_size: int,
        token: Mapping[str, object],
        blake3: str | None,
        job_id: str,
        intent: int | None = None,
    ) -> int:
        """Record a created multipart upload; its ``intent`` (``intend_upload``) goes in the same
        transaction."""
        with self._urgent(), self._tx() as db:
            if intent is not None:
                db.execute("DELETE FROM upload_intents WHERE id=?", (intent,))
            # the upload an earlier job left there is replaced; one a job still running sends is not
            # this job's to drop (``Engine._find_resumable`` did not take it either)
            db.execute(
                "DELETE FROM uploads WHERE dest_ident=? AND target=? AND (job_id=? OR job_id NOT IN"
                " (SELECT id FROM jobs WHERE status='running'))",
                (dest_ident, target, job_id),
            )
            cur = db.execute(
                "INSERT INTO uploads(dest_ident, dest_name, target, src_path, size, mtime_ns,"
                " part_size, token, blake3, created_at, job_id, state)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'open')",
                (
                    dest_ident,
                    dest_name,
                    target,
                    src_path,
                    size,
                    mtime_ns,
                    part_size,
                    json.dumps(dict(token)),
                    blake3,
                    time.time(),
                    job_id,
                ),
            )
            return int(cur.lastrowid or 0)

    def add_part(self, upload_id: int, receipt: PartReceipt) -> None:
        with self._tx_apart() as db:
            db.execute(
                "INSERT OR REPLACE INTO parts(upload_id, idx, offset, size, md5, etag)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    upload_id,
                    receipt.index,
                    receipt.offset,
                    receipt.size,
                    receipt.md5,
                    receipt.etag,
                ),
            )

    def intend_upload(self, *, dest_ident: str, dest_name: str, target: str, job_id: str) -> int:
        """Durable before it returns: a multipart upload of ``target`` is about to be created."""
        with self._urgent(), self._tx() as db:
            cur = db.execute(
                "INSERT INTO upload_intents(dest_ident, dest_name, target, job_id, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (dest_ident, dest_name, target, job_id, time.time()),
            )
            if self._held:  # only the thread holding the group gets here (the lock is its)
                db.execute("COMMIT")
                db.execute("BEGIN IMMEDIATE")
            return int(cur.lastrowid or 0)

    def upload_intents(self, dest_ident: str | None = None) -> list[IntentRow]:
        """The intents no uploads row replaced (at ``dest_ident``, or everywhere), oldest first."""
        where, args = ("WHERE dest_ident=?", (dest_ident,)) if dest_ident is not None else ("", ())
        rows = self._query(f"SELECT * FROM upload_intents {where} ORDER BY created_at, id", args)  # noqa: S608
        return [
            IntentRow(
                id=int(r["id"]),
                dest_ident=str(r["dest_ident"]),
                dest_name=str(r["dest_name"]),
                target=str(r["target"]),
                job_id=str(r["job_id"]),
                created_at=float(r["created_at"]),
            )
            for r in rows
        ]

    def drop_intent(self, intent: int) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM upload_intents WHERE id=?", (intent,))

    def known_upload_ids(self, dest_ident: str, target: str) -> set[str]:
        """The upload ids the catalog records for ``target``, open or not yet closed."""
        rows = self._query("SELECT token FROM uploads WHERE dest_ident=? AND target=?", (dest_ident, target))
        return {str(json.loads(r["token"]).get("upload_id")) for r in rows}

    def close_upload(self, upload_id: int) -> None:
        """The upload was completed or aborted: nothing is left to resume or to clean up."""
        with self._tx_apart() as db:
            db.execute("DELETE FROM uploads WHERE id=?", (upload_id,))

    def _upload_rows(self, where: str, args: Sequence[object]) -> list[UploadRow]:
        rows = self._query(f"SELECT * FROM uploads WHERE state='open' {where}", args)  # noqa: S608
        out: list[UploadRow] = []
        for r in rows:
            parts = self._query("SELECT * FROM parts WHERE upload_id=? ORDER BY idx", (int(r["id"]),))
            out.append(
                UploadRow(
                    id=int(r["id"]),
                    dest_ident=str(r["dest_ident"]),
                    dest_name=str(r["dest_name"]),
                    target=str(r["target"]),
                    src_path=str(r["src_path"]),
                    size=int(r["size"]),
                    mtime_ns=int(r["mtime_ns"]),
                    part_size=int(r["part_size"]),
                    token=json.loads(r["token"]),
                    created_at=float(r["created_at"]),
                    job_id=str(r["job_id"]),
                    parts=tuple(
                        PartReceipt(
                            index=int(p["idx"]),
                            offset=int(p["offset"]),
                            size=int(p["size"]),
                            md5=p["md5"],
                            etag=p["etag"],
                        )
                        for p in parts
                    ),
                    blake3=r["blake3"],
                )
            )
        return out

    def find_upload(self, dest_ident: str, target: str) -> UploadRow | None:
        rows = self.find_uploads(dest_ident, target)
        return rows[0] if rows else None

    def find_uploads(self, dest_ident: str, target: str) -> list[UploadRow]:
        """The open uploads to ``target``, newest first: one, unless a job still running sends one
        beside an earlier job's (``open_upload``)."""
        return self._upload_rows(
            "AND dest_ident=? AND target=? ORDER BY created_at DESC, id DESC", (dest_ident, target)
        )

    def open_uploads(self) -> list[UploadRow]:
        return self._upload_rows("ORDER BY created_at", ())

    # -- hidden partial files of local destinations ----------------------------------------

    def add_partial(self, dest_ident: str, path: str, job_id: str) -> None:
        """Durable before it returns, even inside a held group (whose writes so far it commits
        too): the partial file is made next, and a crash must leave the catalog knowing it."""
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO partials(dest_ident, path, job_id) VALUES (?, ?, ?)",
                (dest_ident, path, job_id),
            )
            if self._held:  # only the thread holding the group gets here (the lock is its)
                db.execute("COMMIT")
                db.execute("BEGIN IMMEDIATE")

    def drop_partial(self, dest_ident: str, path: str) -> None:
        with self._tx_apart() as db:
            db.execute("DELETE FROM partials WHERE dest_ident=? AND path=?", (dest_ident, path))

    def partials(self, dest_ident: str) -> list[str]:
        return [path for path, _job in self.partials_by_job(dest_ident)]

    def partials_by_job(self, dest_ident: str) -> list[tuple[str, str]]:
        """(path, the job that made it) of each hidden partial file the catalog knows there."""
        rows = self._query("SELECT path, job_id FROM partials WHERE dest_ident=?", (dest_ident,))
        return [(str(r["path"]), str(r["job_id"])) for r in rows]

    # -- what the layout planner learnt, and metadata sidecar objects -----------------------

    def set_file_meta(self, job_id: str, file_id: int, values: Sequence[str | int | None]) -> None:
        """What the layout planner learnt of a file: ``values`` as ``FILE_META_COLUMNS`` names them."""
        self._write(_SET_FILE_META, (file_id, job_id, *values))

    def last_counter(self, roots: Sequence[str]) -> int:
        """The highest ``{counter}`` an earlier job gave a file under these source folders: a
        re-run numbers files it has not seen after it, so none takes a number already given."""
        top = 0
        for root in roots:
            base = root.rstrip("/") + "/"
            rows = self._query(
                "SELECT MAX(m.counter) FROM file_meta m JOIN files f ON f.id=m.file_id"
                " WHERE substr(f.abs_path, 1, ?)=? OR f.abs_path=?",
                (len(base), base, root),
            )
            if rows and rows[0][0] is not None:
                top = max(top, int(rows[0][0]))
        return top

    def next_counter(self, scope: str, after: int) -> int:
        """The next ``{counter}`` of ``scope`` (``Planner.counter_scope``: a template, and the shoot
        it names): one more than the highest any job took there, or than ``after`` if that is
        higher. Taken in a write transaction (the held group's, whose commit covers it), so two
        jobs at once (two readers) never give one number twice; kept in ``meta``."""
        key = COUNTER_MEMO + scope
        with self._tx_apart() as db:
            db.execute(
                "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key)"
                " DO UPDATE SET value=MAX(CAST(value AS INTEGER), ?) + 1",
                (key, str(after + 1), after),
            )
            return int(db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()[0])

    def job_file_meta(self, job_id: str) -> dict[int, dict[str, Any]]:
        rows = self._query("SELECT * FROM file_meta WHERE job_id=?", (job_id,))
        return {int(r["file_id"]): dict(r) for r in rows}

    def record_meta_sidecar(
        self, job_id: str, file_id: int, dest_ident: str, key: str, status: str, error: str | None
    ) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO meta_sidecars(job_id, file_id, dest_ident, key, status, error)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (job_id, file_id, dest_ident, key, status, error),
            )

    def job_meta_sidecars(self, job_id: str) -> dict[tuple[int, str], dict[str, Any]]:
        rows = self._query("SELECT * FROM meta_sidecars WHERE job_id=?", (job_id,))
        return {(int(r["file_id"]), str(r["dest_ident"])): dict(r) for r in rows}
