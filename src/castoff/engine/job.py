"""The engine: runs one job from the scan to the last verified byte, and records it all.

It reads each file once and fans its chunks out to every attached lane; a lane that lags is
detached and catches up later from a verified local copy. It owns every thread, the memory budget,
retries, restarts, conflicts and the catalog writes; destinations only do I/O.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import itertools
import os
import re
import shlex
import sqlite3
import stat
import threading
import time
import traceback
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import EllipsisType
from typing import TYPE_CHECKING

import blake3
import xxhash

from castoff import __version__, errors
from castoff.catalog import running
from castoff.catalog.db import Catalog, DamagedCopy, KnownObject, LandedRow
from castoff.catalog.group import WriteGroup
from castoff.catalog.prefetch import Prefetch
from castoff.destinations.base import (
    Destination,
    Landed,
    MiB,
    ObjectMeta,
    ObjectStat,
    PartReceipt,
    TargetExists,
    Upload,
    parts_for,
)
from castoff.destinations.local import UNREADABLE_HINT, unreadable_folder
from castoff.engine.budget import Buffer, Chunk, MemoryBudget
from castoff.engine.conflicts import alt_target, name_room
from castoff.engine.events import Event, EventSink, null_sink
from castoff.engine.histories import (
    CHAIN,
    Histories,
    HistoryCopy,
    compare_histories,
    compare_sent,
    in_history,
)
from castoff.engine.lanes import (
    INLINE_COMMIT_MAX,
    MAX_COMMIT_BACKLOG,
    FileState,
    Lane,
    Stream,
    VerifiedCopy,
)
from castoff.engine.retry import RetryPolicy
from castoff.engine.stall import CallWatch, StallWatch, stalled_error, stalled_message
from castoff.hashing import PartMd5s, SideHashing, Updatable, new_blake3
from castoff.reports import mhl
from castoff.scan import (
    STATE_FOLDER,
    TIME_MAX_NS,
    TIME_MIN_NS,
    EmptyFolder,
    Filters,
    Skipped,
    SourceFile,
    scan,
)
from castoff.units import TimeText, format_bytes, plural

if TYPE_CHECKING:
    from castoff.layout.planner import Planner

ON_CONFLICT = ("rename", "skip", "overwrite", "fail")
#: parts' worth of bytes a remote lane may have waiting beside those its workers are sending
REMOTE_READ_AHEAD = 2
#: how far down its queue the catch-up looks for a group that is ready
CATCHUP_LOOKAHEAD = 257
#: the scan's failures (``scan.Skipped.code``): what each file is recorded failed with
UNREAD_CODES: dict[str, type[errors.SourceError]] = {
    "unreadable": errors.SourceReadError,
    "gone": errors.SourceVanished,
    "not-utf8": errors.SourceNameError,
    "bad-time": errors.SourceTimeError,
}
#: the code and reason of a file deleted after the scan, before its read (``errors.SourceDeleted``):
#: left out, as the scan's skips are (the reports' ``left_out``)
VANISHED = "vanished"
VANISHED_REASON = "deleted after the scan, before castoff read it"
#: the destination is unusable for every file, not just this one: the lane goes down (no more
#: file is tried there in this job). A one-off error of one file (a name the filesystem refuses,
#: a file too big for FAT32, a conflict) is none of these and stays that file's.
LANE_FATAL = (
    errors.DestinationGone,
    errors.DriveFailed,
    errors.DestinationReadOnly,
    errors.DestinationFull,
    errors.AccessDenied,
    errors.NoSuchBucket,
    errors.BadCredentials,
    errors.TlsFailure,
)


def lane_down_error(
    name: str, cause: errors.CastoffError, *, at_start: bool, about: str | None = None
) -> errors.CastoffError:
    """What each file not tried at the destination ``name`` (down because of ``cause``) is
    recorded with: of the cause's kind (its code in the report), saying that the destination,
    not this file, was the problem (the cause's own text may name the file that met it; where it
    names ``about`` in brackets, as a network error names its object, that is left out)."""
    if cause.retryable:  # it stopped answering (``Engine._stopped_answering``): a re-run sends it
        text = cause.message
        if about:
            text = re.sub(rf"\s*\([^()]*{re.escape(about)}\)", "", text, count=1)
        message = f"not sent: {name} stopped answering: {text}"
    else:
        what = "cannot be used" if at_start else "stopped taking files"
        message = f"not copied: {name} {what}: {cause.message}"
    try:
        return type(cause)(message, hint=cause.hint)
    except TypeError:  # an error class with a constructor of its own
        return errors.DestinationError(message, hint=cause.hint)


@dataclass(frozen=True)
class JobOptions:
    chunk_size: int = 16 * MiB
    memory_budget: int = 256 * MiB
    on_conflict: str = "rename"
    rehash: bool = False
    filters: Filters = field(default_factory=Filters)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    #: a destination that keeps failing rests this long (doubling) before the engine tries again
    lane_pause: float = 5.0
    max_pauses: int = 3
    max_restarts: int = 2
    #: a call into a destination (a write, an fsync, a read-back, a rename) under way this long
    #: is said once: a share that stopped answering (``Engine._watch_calls``)
    hung_after: float = 60.0
    #: maps each file to its path under every destination (layout, name rules, metadata);
    #: None keeps the source's relative path
    planner: Planner | None = None


@dataclass(frozen=True)
class Outcome:
    """How one file ended at one destination, as the catalog, the counters and the events see it."""

    status: str  # verified | already | skipped | conflict | failed | incomplete
    error: BaseException | None = None
    verify_method: str | None = None
    etag: str | None = None
    detail: str | None = None
    verified_at: float | None = None
    #: castoff's earlier copy of the file there, found damaged and kept (the file itself may be
    #: there, proven, under another name): the job then needs attention (exit code 1)
    damaged: str | None = None
    #: bytes of the file an earlier job had sent there (the parts of a resumed upload)
    resumed: int = 0


@dataclass
class JobResult:
    job_id: str
    exit_code: int
    status: str
    files: int
    bytes: int
    peak_memory: int
    released: bool
    lanes: dict[str, dict[str, int]]
    #: bytes the job read from its sources, every read (a re-run's skipped files are not read;
    #: a bucket's second read of a file, for its upload, is counted too, unless it reads a copy)
    bytes_read: int = 0
    #: bytes the catch-up reads took from verified local copies instead (uploads that continue
    #: from a drive): not the sources', so not in ``bytes_read``
    bytes_from_copies: int = 0
    #: every destination was unusable before a file landed there (exit 2: nothing was written)
    no_destination: bool = False
    #: files deleted after the scan, before castoff read them: left out, not in ``files``
    vanished: int = 0
    #: empty source folders this job made, by local destination (those there before: not counted)
    folders_made: dict[str, int] = field(default_factory=dict)
    #: empty source folders not made at some local destination (exit 1, said one by one)
    folders_failed: int = 0
    #: some file failed somewhere or was not read (exit 1), not only a folder
    files_failed: bool = False


def read_back_reserve(lanes: Sequence[Lane], memory_budget: int) -> int:
    """The part of the job's memory budget its read-back buffers may fill: one for each
    destination's committer, which verifies its big files, and one more for the small files
    verified by the threads that wrote them; at most an eighth of the budget, so a small
    ``--memory`` still holds parts."""
    sizes = [lane.caps.read_back_buffer for lane in lanes]
    return min(sum(sizes) + max(sizes, default=0), memory_budget // 8)


#: the coarsest step a filesystem keeps times in (FAT's 2 s)
MTIME_STEP_MAX_NS = 2 * 10**9
#: how far from its intent an unrecorded upload may have begun and still be taken for its own:
#: S3 refuses a request whose clock is 15 minutes off, and a start may retry for minutes more
INTENT_WINDOW = 30 * 60
#: seconds a stopped job (Ctrl-C, SIGTERM) gives each destination's threads to finish the write
#: or commit under way (a slow drive's fsync, a part on its way to a bucket): what they finish
#: is recorded before the job says it ended; what they do not, the job records as incomplete and
#: leaves to them, recording nothing after it (``Engine._claim``)
STOP_WAIT_CANCELLED = 10.0


def mtime_kept(found_ns: int, set_ns: int) -> bool:
    """Whether a copy's mtime ``found_ns`` is the ``set_ns`` castoff set, as its filesystem kept
    it. Filesystems keep times in steps (ext4 1 ns, NTFS and SMB 100 ns, exFAT 10 ms, HFS+ 1 s, FAT
    2 s) and round to them, and the step shows in the trailing zeros of what they kept: ``found_ns``
    may be off by less than that. A copy written over since has the time of that write, with
    (almost always) nanoseconds of its own, and so a step too small to reach back."""
    step = 1
    while step < 10**9 and found_ns % (step * 10) == 0:
        step *= 10
    if step == 10**9:
        step = MTIME_STEP_MAX_NS  # whole seconds: FAT's are even ones
    return abs(found_ns - set_ns) < step


#: the longest file path a console line shows whole; a longer one keeps its start and its end
SHOWN_PATH_MAX = 160


def _shown_path(rel_path: str) -> str:
    """``rel_path`` for a console line: whole, or shortened in the middle when it is long (QA: a
    1.2 KB path too long for a bucket's key filled the screen); the report keeps it whole."""
    if len(rel_path) <= SHOWN_PATH_MAX:
        return rel_path
    tail = SHOWN_PATH_MAX // 2
    return f"{rel_path[: SHOWN_PATH_MAX - tail - 1]}…{rel_path[-tail:]}"


def _without_path(rel_path: str, text: str) -> str:
    """An error's text for a line that names the file already (most begin with its path)."""
    return text.removeprefix(f"{rel_path}: ")


#: files and folders left out by --include/--exclude named on the console, one line each; the
#: rest are counted in one line (``--include '*.CR3'`` on a card of 2,000 JPEGs, QA), and the
#: report and the debug log name every one
FILTERED_SAID = 5


class Engine:
    """One job. ``run`` returns when every stream is at an end (or the job was interrupted)."""

    def __init__(
        self,
        catalog: Catalog,
        job_id: str,
        destinations: Sequence[Destination],
        options: JobOptions,
        *,
        sink: EventSink = null_sink,
        cancel: threading.Event | None = None,
        limiters: dict[str, object] | None = None,
        on_released: Callable[[], Mapping[str, object] | None] | None = None,
        notes: Sequence[str] = (),
    ) -> None:
        """``on_released``: called once, from the thread that runs the job and outside its locks,
        when every local destination is verified (the source can be released), while uploads may
        go on: what must not wait for them (the local destinations' ASC MHL generations, the
        source's, while the card is still there). What it returns is added to the ``released``
        event (what it could not do, said in the same breath). ``notes``: warnings of the job's
        caller, said (and logged) as the job starts."""
        if options.on_conflict not in ON_CONFLICT:
            raise errors.UsageError(f"--on-conflict must be one of {', '.join(ON_CONFLICT)}")
        self.catalog = catalog
        self.job_id = job_id
        self.options = options
        self.sink = sink
        #: whether the sink shows debug logs (a re-run logs one a file, so not built when not)
        self._debug: bool = getattr(sink, "wants_debug", True)
        #: whether it wants ``file-done`` and ``progress`` events: one a file (or part) and destination
        self._file_events: bool = getattr(sink, "wants_file_done", True)
        #: when a skipped file was verified, for its outcome's detail (a re-run's files were
        #: verified within few seconds of each other)
        self._minute = TimeText("%Y-%m-%d %H:%M")
        self.cancel = cancel or threading.Event()
        self.lanes: list[Lane] = []
        for dest in destinations:
            limiter = (limiters or {}).get(dest.ident)
            self.lanes.append(
                Lane(
                    dest,
                    put=self._put,
                    close=self._close,
                    cancel=self.cancel,
                    limiter=limiter,  # type: ignore[arg-type]
                )
            )
        # The parts get what the read-back buffers leave; half for the one read, half for catch-up
        # reads, so neither can starve the other.
        parts = options.memory_budget - read_back_reserve(self.lanes, options.memory_budget)
        self.budget = MemoryBudget(parts // 2)
        self.catchup_budget = MemoryBudget(parts - parts // 2)
        self.need_md5 = any(lane.caps.needs_md5 for lane in self.lanes)
        self._plain = self._plain_part_size()
        # A re-run's look-ups, a batch of files at a time (--rehash looks nothing up)
        self._prefetch = Prefetch(catalog, [ln.dest.ident for ln in self.lanes], enabled=not options.rehash)
        #: each source ASC MHL history against the one where it would land (``engine/histories.py``)
        self._histories = Histories()
        #: local copies found damaged, by path: not taken as a good source (a later
        #: ``castoff copy SSD_FOLDER --to bucket``), unless changed since (put right)
        self._damaged_sources = {c.target: c for c in catalog.damaged_copies(None) if os.path.isabs(c.target)}
        for c in list(self._damaged_sources.values()):  # reached by another path (a symlink to the drive)
            self._damaged_sources.setdefault(os.path.realpath(c.target), c)
        #: a source folder holds copies castoff verified at a local destination: each file read
        #: there is looked up (``_verified_here``); usually False, and nothing looked up
        self._sources_hold_copies = False
        #: damaged copies found by earlier jobs, by (destination, planned name): a re-run that
        #: skips the file still says so (usually none: one query)
        self._known_damaged = {
            (c.dest_ident, c.planned): c for c in catalog.damaged_copies([ln.dest.ident for ln in self.lanes])
        }
        self._state = threading.Condition()
        #: the paths each local destination's ASC MHL history records, read at its first
        #: keep-both name that is free there (``_history_has_other``)
        self._history_names: dict[str, dict[str, str | None]] = {}
        self._open_streams = 0
        self._catchup: deque[list[Stream]] = deque()
        self._reading_done = False
        self._released = False
        self._on_released = on_released
        self._notes = tuple(notes)
        self._release_due = False  # released, and on_released not called yet
        #: the ``released`` event's fields, said once on_released has run (``_call_on_released``)
        self._release_said: dict[str, object] = {}
        #: destinations where a verified copy was found with another mtime (``_still_there``)
        self._times_said: set[str] = set()
        self._ctime_said = False  # a file read again for its change time (``_read_to_check``) was said
        self._failed_unsent = 0  # files that failed going nowhere: the source is not to be released
        self._catchup_busy = False  # the catch-up thread is feeding a group
        self._open: set[Stream] = set()
        #: files the reader landed whose folders are not yet synced (``_sync_landed``)
        self._unsynced: list[tuple[Stream, Landed, str]] = []
        self._hashing = SideHashing()
        self.files = 0
        self.bytes = 0
        self.bytes_read = 0  # by the reader thread only
        self.bytes_reread = 0  # by the catch-up thread only: its reads of the sources
        self.bytes_from_copies = 0  # by the catch-up thread only: its reads of verified copies
        #: what the scan left out on purpose, by its code (junk, excluded, symlink, special)
        self.left_out: Counter[str] = Counter()
        #: files deleted after the scan listed them, before castoff read them: left out (under
        #: ``_state``: the reader and the catch-up find them); of them, those found once they were
        #: among the job's files (``_leave_out_deleted``), and their bytes: taken off again
        self.vanished = 0
        self._withdrawn = 0
        self._withdrawn_bytes = 0
        #: each source's device, as the scan found it, by its absolute path (``_deleted_from_folder``)
        self._source_devs: dict[str, int] = {}
        #: the --include/--exclude patterns that matched nothing, when no file was found: said in
        #: the "nothing to copy" error instead of a warning each (``_nothing_to_copy``)
        self._unmatched: list[tuple[str, str]] = []
        #: source folders that hold no file, made at the local destinations once the files are
        #: (``_make_empty_folders``); a folder's name, not its contents: a list holds a card's
        self._empty: list[EmptyFolder] = []
        self.folders_made: Counter[str] = Counter()
        self.folders_failed = 0
        #: the catalog's first failure under the job (``_catalog_failed``): ``run`` raises it
        self._fatal: errors.CatalogError | None = None
        #: each file's name is claimed at its destinations before it goes there (``_claim_names``),
        #: unless whatever is there is to be replaced anyway
        self._claims = options.on_conflict != "overwrite"

    # -- events ------------------------------------------------------------------------------

    def emit(self, kind: str, **data: object) -> None:
        self.sink(Event(kind, data))

    def log(self, message: str, level: str = "info") -> None:
        if level != "debug":  # one a file on a re-run, saying what the outcome's detail says
            try:
                self.catalog.log(self.job_id, level, message)
            except errors.CatalogError as exc:
                self._catalog_failed(exc)
        elif not self._debug:
            return
        self.emit("log", level=level, message=message)

    def _catalog_failed(self, exc: errors.CatalogError) -> None:
        """The catalog failed under the job (damaged, its folder full, held too long by another
        process): nothing more can be recorded, so the job stops as on Ctrl-C, what it delivered
        stays delivered, and ``run`` raises the first such error, which says what to do."""
        if self._fatal is None:
            self._fatal = exc
        self.cancel.set()

    # -- the job ----------------------------------------------------------------------------

    def run(self, sources: Sequence[str]) -> JobResult:
        # the first event of a job, before anything is said of it (a destination unusable at start)
        self.emit(
            "job-start",
            job_id=self.job_id,
            castoff_version=__version__,
            destinations=[{"name": ln.name, "kind": ln.caps.kind} for ln in self.lanes],
        )
        for note in self._notes:
            self.log(note, "warning")
        unusable: list[tuple[Lane, errors.CastoffError]] = []
        for lane in self.lanes:
            gone = False
            try:
                self._not_gone(lane)
                lane.dest.preflight()
                lane.free_bytes = getattr(lane.dest, "free_bytes", None)
            except errors.CastoffError as exc:
                unusable.append((lane, exc))
                gone = isinstance(exc, errors.DestinationGone)
            if not gone:  # (where it is gone, its partial files wait in the catalog for its return)
                self._clean_partials(lane)
            watch = getattr(lane.dest, "watch_partials", None)
            if watch is not None:
                watch(functools.partial(self._partial_made, lane.dest.ident))
        for lane, cause in unusable:
            self._mark_down(lane, cause, at_start=True)
        for lane, cause in unusable:  # said once all are known: "the others carry on" or not
            self._say_down(lane, cause)
        down = {lane.dest.ident for lane, _ in unusable}
        for lane in self.lanes:  # what preflight found to say of a destination (mounts.py)
            if lane.dest.ident not in down:
                for note in getattr(lane.dest, "notes", ()):
                    self.log(f"{lane.name}: {note}", "warning")
        for lane in self.lanes:
            lane.start()
        catchup = threading.Thread(target=self._catchup_loop, name="catch-up", daemon=True)
        catchup.start()
        watch_done = threading.Event()
        watchdog = threading.Thread(
            target=self._watch_calls, args=(watch_done,), name="watchdog", daemon=True
        )
        watchdog.start()
        # The small files the reader lands itself: one folder fsync per folder and catalog group,
        # not one per file (on a journalled filesystem each is a journal commit).
        defer = [d for ln in self.lanes if (d := getattr(ln.dest, "defer_folder_syncs", None))]
        try:
            for d in defer:
                d(True)
            with WriteGroup(self.catalog, before_commit=self._sync_landed) as group:
                self._read_all(sources, group)
        except errors.CatalogError as exc:
            self._catalog_failed(exc)
        finally:
            for d in defer:
                d(False)
            with self._state:
                self._reading_done = True
                self._state.notify_all()
        if self._nothing_found() and not self.cancel.is_set():
            self.log(self._nothing_to_copy(sources), "error")
        self._check_released()
        self._call_on_released()
        self._wait_for_streams()
        if not self.cancel.is_set() and not self._nothing_found():
            self._make_empty_folders()
        catchup.join(5.0)
        for lane in self.lanes:  # (a stopped job's lanes finish what they are doing, no more)
            lane.stop(timeout=STOP_WAIT_CANCELLED if self.cancel.is_set() else 30.0)
        watch_done.set()
        self._leave_hung()
        self._hashing.close()
        if self._fatal is not None:
            # What it can still record: a write group the failure rolled back took its files'
            # rows along, so their outcomes fail too (a foreign key): the error says what to do.
            with contextlib.suppress(errors.CatalogError, sqlite3.Error):
                self._record_interrupted(say=False)
            raise self._fatal
        if self.cancel.is_set():
            self._record_interrupted()
            self.catalog.fill_not_reached(self.job_id)  # the files it never got to, everywhere
        else:
            for lane in self.lanes:
                if lane.dead is None:
                    self._sweep_intents(lane)
            self._say_left_full()
            unused = self.unused()
            for lane in self.lanes:
                remove = getattr(lane.dest, "remove_made_folders", None)
                if lane.dest.ident in unused and remove is not None:
                    remove()
        return self._result()

    def _say_left_full(self) -> None:
        """How much did not go to each destination that was full: what to free there."""
        for lane in self.lanes:
            if lane.files_left_full:
                self.log(
                    f"{lane.name}: full: {plural(lane.files_left_full, 'file')}"
                    f" ({format_bytes(lane.bytes_left_full)}) did not go there; free at least that much"
                    " there, then re-run the same command",
                    "warning",  # (the destination's stop is said once, as an error, when it stops)
                )

    def _wait_for_streams(self) -> None:
        """Until every stream has ended; those nothing can end any more end as failed (stall.py)."""
        watch = StallWatch()
        with self._state:
            while self._open_streams > 0 and not self.cancel.is_set():
                self._state.wait(0.2)
                self._check_released_locked()
                if self._release_due:  # outside the lock: the streams that close need it
                    self._state.release()
                    try:
                        self._call_on_released()
                    finally:
                        self._state.acquire()
                if watch.stalled(self._nothing_moves_locked()):
                    break
            else:
                return
        self._end_stalled()

    def _watch_calls(self, done: threading.Event) -> None:
        """The watchdog: a destination with a call under way for ``hung_after`` seconds (a share
        that stopped answering: an NFS hard mount, an SMB or sshfs server gone quiet, where a
        call waits in the kernel as long as the server does) is said once; its thread cannot
        be stopped, but the other destinations go on, and Ctrl-C ends the job without it."""
        limit = self.options.hung_after
        said: set[str] = set()
        watch = CallWatch(min(1.0, limit / 4))
        while not done.wait(watch.interval):
            now = watch.look()
            for lane in self.lanes:
                if not getattr(lane.dest, "on_network", False):
                    continue  # (a local drive's long call is a slow drive flushing a big clip)
                since = lane.oldest_call()
                if since is None or lane.name in said or lane.dead is not None:
                    continue
                if watch.under_way(since, now) < limit:
                    continue
                said.add(lane.name)
                others = " the other destinations go on;" if len(self.lanes) > 1 else ""
                self.log(
                    f"{lane.name} has not answered for {limit:.0f} s (a share that stopped answering?):"
                    f"{others} castoff waits for it, Ctrl-C ends the job (a re-run sends the rest)",
                    "warning",
                )

    def _leave_hung(self) -> None:
        """After the lanes stopped: a destination whose call still has not returned (its thread
        waits in the kernel, which no signal of castoff's ends) is left to it. It goes down, so
        that nothing more is written there (no report, no ASC MHL), and the job ends: its files
        under way stay incomplete, and a re-run sends them."""
        for lane in self.lanes:
            since = lane.oldest_call()
            if since is None or lane.dead is not None:
                continue
            waited = time.monotonic() - since
            exc = errors.DestinationGone(
                f"a call made there {waited:.0f} s ago has not returned (a share that stopped answering?)",
                hint="check the share: castoff's thread waits in the system there, which no program can"
                " stop, and the process ends once the share answers or its mount is forced off",
            )
            if self._mark_down(lane, exc, at_start=False):
                lane.hung = True
                self.log(
                    f"{lane.name}: left unfinished: {exc}; a re-run sends what did not land there", "error"
                )

    def _call_on_released(self) -> None:
        """``on_released``, once; its failure is said, never the job's."""
        if not self._release_due:
            return
        self._release_due = False
        said = self._release_said
        if self._on_released is not None:
            try:
                said.update(self._on_released() or {})
            except Exception as exc:
                text = "".join(traceback.format_exception(exc))
                self.log(f"internal error once the source could be released:\n{text}", "error")
        if said["remaining_streams"]:
            self.catalog.log(
                self.job_id,
                "info",
                "every local destination is verified: the source can be released;"
                " the remaining uploads read from the verified local copies",
            )
        self.emit("released", **said)

    def _nothing_moves_locked(self) -> bool:
        """Under ``_state``: no read, no catch-up under way or ready, no lane with work queued,
        under way or a pause to wait out."""
        return (
            self._reading_done
            and not self._catchup_busy
            and all(lane.idle() for lane in self.lanes)
            and not any(self._ready(g) for g in itertools.islice(self._catchup, CATCHUP_LOOKAHEAD))
        )

    def _end_stalled(self) -> None:
        with self._state:
            left = list(self._open)
            self._catchup.clear()
        self.log(stalled_message(s.file.src.rel_path for s in left), "error")
        for stream in left:
            self._end(stream, Outcome("failed", error=stalled_error()))

    def _result(self) -> JobResult:
        files_failed = any(ln.stats.failed or ln.stats.incomplete or ln.stats.conflict for ln in self.lanes)
        failed = files_failed or self.folders_failed > 0
        source_failed = self.catalog.any_source_failed(self.job_id)
        if self.cancel.is_set():
            code, status = errors.EXIT_INTERRUPTED, "interrupted"
        elif self.no_destination():  # nothing written: the configuration's fault (README)
            code, status = errors.EXIT_USAGE, "failed"
        elif failed or source_failed:
            code, status = errors.EXIT_FAILED, "failed"
        elif self._nothing_found():  # the input's fault, as a wrong path would be
            code, status = errors.EXIT_USAGE, "failed"
        elif any(ln.stats.damaged for ln in self.lanes):
            # every file is verified everywhere (done), but a copy on a drive is damaged: attention
            code, status = errors.EXIT_FAILED, "done"
        else:
            code, status = errors.EXIT_OK, "done"
        return JobResult(
            job_id=self.job_id,
            exit_code=code,
            status=status,
            files=self.files - self._withdrawn,
            bytes=self.bytes - self._withdrawn_bytes,
            bytes_read=self.bytes_read + self.bytes_reread,
            bytes_from_copies=self.bytes_from_copies,
            peak_memory=self.budget.peak + self.catchup_budget.peak,
            released=self._released,
            lanes={ln.name: dict(vars(ln.stats)) for ln in self.lanes},
            no_destination=self.no_destination(),
            vanished=self.vanished,
            folders_made=dict(self.folders_made),
            folders_failed=self.folders_failed,
            files_failed=files_failed or source_failed,
        )

    def down(self) -> dict[str, bool]:
        """The destinations that went down in this job, by ident: whether each could not be used
        from the start (nothing went there) or hangs (a call there never returned: any other
        would hang too), else it stopped during the job. Neither gets the job's reports
        (``reports/finish.py``); the first gets no ASC MHL history either."""
        return {ln.dest.ident: ln.down_at_start or ln.hung for ln in self.lanes if ln.dead is not None}

    def unused(self) -> set[str]:
        """The local destinations (idents) this job leaves as it found them: no file landed there
        (none verified, found there already or skipped), as they went down or the job found
        nothing to copy. The folders the job made there are removed as it ends; they get no ASC
        MHL generation and no copy of the reports (``reports/finish.py``)."""
        nothing = self._nothing_found()
        return {
            ln.dest.ident
            for ln in self.lanes
            if ln.caps.is_local and ln.stats.files_done == 0 and (ln.dead is not None or nothing)
        }

    def no_destination(self) -> bool:
        """Every destination was unusable before a single file landed there (not mounted, not a
        folder, full): nothing was written anywhere, which README calls a configuration error."""
        return bool(self.lanes) and all(
            ln.dead is not None
            and not ln.dead.retryable
            and ln.stats.files_done == 0
            and ln.stats.bytes_done == 0
            for ln in self.lanes
        )

    def _lane_down(self, lane: Lane, exc: errors.CastoffError, *, at_start: bool = False) -> None:
        """``exc`` makes ``lane`` unusable for every file (``LANE_FATAL``, or a failed preflight):
        no more file is tried there in this job, and the console hears it once, here, with what
        to do. Each file that does not go there is still recorded as failed there (catalog,
        report, events), with a debug line of its own, not an error line (``_tell``)."""
        if self._mark_down(lane, exc, at_start=at_start):
            self._say_down(lane, exc)

    @staticmethod
    def _mark_down(lane: Lane, exc: errors.CastoffError, *, at_start: bool, about: str | None = None) -> bool:
        """Whether this call took ``lane`` down (it was not already)."""
        with lane.cond:
            if lane.dead is not None:
                return False
            lane.dead = lane_down_error(lane.name, exc, at_start=at_start, about=about)
            lane.down_at_start = at_start
            return True

    def _say_down(self, lane: Lane, exc: errors.CastoffError) -> None:
        others = any(ln.dead is None for ln in self.lanes if ln is not lane)
        if lane.down_at_start:
            said = f"{lane.name}: cannot be used: {exc}. No file goes there in this job"
        else:
            said = f"{lane.name}: stopped: {exc}. No more files go there in this job"
        said += "; the other destinations carry on" if others else ""
        said += ". Once it is fixed, a re-run of the same command copies only what is missing."
        self.log(said, "error")

    def _said_by_lane(self, lane: Lane, error: BaseException | None) -> bool:
        """``error`` is the lane's being down, which ``_lane_down`` said once already."""
        return lane.dead is not None and (error is lane.dead or isinstance(error, LANE_FATAL))

    @staticmethod
    def _down_outcome(lane: Lane) -> Outcome:
        """How a file not tried at ``lane``, down, ends there: incomplete where it stopped
        answering (a re-run sends it), failed where it cannot take files."""
        assert lane.dead is not None
        return Outcome("incomplete" if lane.dead.retryable else "failed", error=lane.dead)

    def _stopped_answering(self, lane: Lane, exc: errors.CastoffError, file_id: int) -> bool:
        """A file failed at ``lane`` with ``exc`` after its retries, with every pause spent,
        nothing landed there since the last pause began, and another file failing there too
        since its last answer: the destination, not the file, is out (an endpoint unreachable,
        a server that times out). Each further file would spend its own retries on it (minutes,
        for nothing): the lane goes down for this job, and its files end incomplete. Trouble of
        one file (a 500 for one key) leaves the others landing, and the lane up."""
        if not exc.retryable or lane.landed_at_pause is None or lane.pauses < self.options.max_pauses:
            return False
        with lane.lock:
            lane.failing.add(file_id)
            return lane.stats.bytes_done == lane.landed_at_pause and len(lane.failing) > 1

    def _nothing_found(self) -> bool:
        """No file to copy, not even one that failed to read: an empty mount point, not a card,
        or filters that left every file out. (A re-run's files verified before are files.)"""
        return self.files == self._withdrawn and not self.catalog.any_source_failed(self.job_id)

    def _not_gone(self, lane: Lane) -> None:
        """A folder castoff verified copies in before, missing now, is a drive that is not mounted:
        its mount point is an empty folder of the system disk, where making the destination again
        would fill that disk with copies that only look delivered. Refused (that destination only);
        a folder the user makes again is used, and filled again."""
        root = getattr(lane.dest, "root", None)
        if not lane.caps.is_local or not isinstance(root, str) or os.path.lexists(root):
            return
        unreadable = unreadable_folder(root)
        if unreadable is not None:  # not "does not exist": a share whose connection died
            raise errors.DestinationGone(unreadable, hint=UNREADABLE_HINT)
        known = self.catalog.landed_count(lane.dest.ident)
        if known:
            raise errors.DestinationGone(
                f"destination {root} does not exist, though castoff verified"
                f" {plural(known, 'copy', 'copies')} there before: is the drive mounted?",
                hint="reconnect it and re-run; if you removed that folder on purpose, make it again"
                " (mkdir) and re-run: castoff then copies everything there again",
            )

    def _nothing_to_copy(self, sources: Sequence[str]) -> str:
        where = ", ".join(sources)
        chosen = self.left_out["excluded"]
        if not chosen:
            return f"no file to copy in {where}: is the card mounted, is it the right folder?"
        junk = self.left_out["junk"]
        unmatched = "; ".join(f"{option} {shlex.quote(pattern)}" for option, pattern in self._unmatched)
        return (
            (
                f"the only file or folder in {where} was left out by --include/--exclude"
                if chosen == 1
                else f"all {chosen} files or folders in {where} were left out by --include/--exclude"
            )
            + (f" (and {junk} OS junk files)" if junk else "")
            + (f"; matched nothing: {unmatched}" if unmatched else "")
            + ": check the patterns (a pattern without a '/' matches a name, one with a '/' the path"
            " under the source, one that ends in '/' a folder; "
            + (
                "case is ignored: '*.jpg' matches IMG_0001.JPG)"
                if self.options.filters.ignore_case
                else "with --case-sensitive, case must match: '*.jpg' does not match IMG_0001.JPG)"
            )
        )

    def _matched_nothing(self, option: str, pattern: str, sources: Sequence[str]) -> str:
        what = "chose no file" if option == "--include" else "left nothing out"
        return (
            f"{option} {shlex.quote(pattern)} matched nothing in {', '.join(sources)}: it {what}"
            " (if that is not expected, check it: a glob without a '/' matches a name, one with"
            " a '/' the path under the source, one that ends in '/' a folder"
            + ("; case is ignored)" if self.options.filters.ignore_case else "; case must match)")
        )

    def _partial_made(self, dest_ident: str, path: str) -> None:
        """A destination is about to make a hidden partial file: durable in the catalog first."""
        self.catalog.add_partial(dest_ident, path, self.job_id)

    def _clean_partials(self, lane: Lane) -> None:
        """Hidden partial files an interrupted run left: they were never visible; remove them.
        Not those of a job still running (another card to the same drive): it is writing them."""
        for path, job_id in self.catalog.partials_by_job(lane.dest.ident):
            if self._runs_beside(job_id):
                continue
            try:
                lane.dest.abort_token(path, {"partial": path})
            except errors.CastoffError as exc:  # kept in the catalog: the next run tries again
                self.log(f"{lane.name}: {exc}; the next run here tries again", "warning")
                continue
            self.catalog.drop_partial(lane.dest.ident, path)

    def _sweep_intents(self, lane: Lane) -> None:
        """At the end of a job that was not interrupted: multipart uploads that may have been
        created with no uploads row to name them (``Catalog.intend_upload``), by an earlier job
        killed between the server's answer and the commit, or by this one (a start whose answer
        never came). Where the key may list uploads, one of that key that began then and that
        the catalog does not know is aborted; where it may not, the log says one may be left,
        and what removes it. A job still running beside this one keeps its own."""
        intents = [i for i in self.catalog.upload_intents(lane.dest.ident) if not self._runs_beside(i.job_id)]
        if not intents:
            return
        lister = getattr(lane.dest, "unfinished_uploads", None)
        unlisted: list[str] = []
        for intent in intents:
            if lister is None:  # nothing outlives the process there
                self.catalog.drop_intent(intent.id)
                continue
            try:
                open_now = lister(intent.target)
            except errors.TransientError as exc:
                self.log(
                    f"{lane.name}: cannot look for an unfinished upload of {intent.target} now: {exc}",
                    "debug",
                )
                continue  # the next job looks again
            except errors.CastoffError as exc:
                self.log(f"{lane.name}: cannot list unfinished uploads: {exc}", "debug")
                unlisted.append(intent.target)
                self.catalog.drop_intent(intent.id)
                continue
            except Exception as exc:  # a look that fails never fails a job whose files are done
                self.log(
                    f"{lane.name}: looking for an unfinished upload of {intent.target} failed: {exc!r}",
                    "debug",
                )
                continue  # the next job looks again
            known = self.catalog.known_upload_ids(lane.dest.ident, intent.target)
            for upload_id, began in open_now:
                if upload_id not in known and abs(began - intent.created_at) <= INTENT_WINDOW:
                    self.log(
                        f"{lane.name}: aborting the unfinished upload of {intent.target} that job"
                        f" {intent.job_id} began and could not record ({upload_id})"
                    )
                    self._abort_token(lane, intent.target, {"upload_id": upload_id})
            self.catalog.drop_intent(intent.id)
        if unlisted:
            shown = ", ".join(unlisted[:3]) + (f" and {len(unlisted) - 3} more" if len(unlisted) > 3 else "")
            self.log(
                f"{lane.name}: an unfinished multipart upload of {shown} may be left there (castoff"
                " was stopped, or lost the server's answer, as it began it), and this key may not"
                " list uploads to find it. It holds no visible object; a lifecycle rule that aborts"
                " incomplete multipart uploads removes it (README)",
                "warning",
            )

    # -- empty folders ------------------------------------------------------------------------

    def _make_empty_folders(self) -> None:
        """The source's folders that hold no file (``scan.EmptyFolder``), made at every local
        destination where the layout puts them: a file's copy makes its own folders, these only
        the job can. After the files: a folder is no file's proof, and one made early would not
        be missing after a kill either (the re-run scans again, and makes what is not there).
        Buckets have no folders: nothing is made there."""
        local = [ln for ln in self.lanes if ln.caps.is_local and hasattr(ln.dest, "make_folder")]
        if not self._empty or not local:
            return
        placed = self._place_folders()
        if placed is None:
            n = len(self._empty)
            template = self.options.planner.options.template.text if self.options.planner else ""
            self.log(
                f"{n} empty folder{'s' if n != 1 else ''} of the source not made: the layout"
                f" ({template}) does not keep the source's folders, so it has no place for a folder"
                " that holds no file",
                "warning",
            )
            return
        for lane in local:
            for folder, layout in placed:
                if self.cancel.is_set():
                    return
                self._empty_folder_at(lane, folder, layout)

    def _place_folders(self) -> list[tuple[EmptyFolder, str]] | None:
        """Each empty folder with its layout path, or None when the layout places files by what
        only a file has (a date, the camera, the type: ``Template.keeps_folders``). A folder the
        layout puts at the destination's root itself (the source's own, under ``{path}``) is left
        out: the root is there."""
        planner = self.options.planner
        if planner is None:
            return [(f, f.rel_path) for f in self._empty]
        if not planner.options.template.keeps_folders:
            return None
        return [(f, layout) for f in self._empty if (layout := planner.place_folder(f.rel_path))]

    def _empty_folder_at(self, lane: Lane, folder: EmptyFolder, layout: str) -> None:
        """Make one empty folder at one local destination, through the destination's own checks
        (inside the root, never through a link, the root still the one the job began with); a
        folder already there is quiet. Failed: said and recorded (exit code 1), the files are not
        touched; an error that is the destination's (read-only, gone, full) takes it down once."""
        target, error = layout, lane.dead
        status = "failed" if error is None else self._down_outcome(lane).status
        if error is None:
            try:
                planner = self.options.planner
                rel = layout if planner is None else planner.folder_for_destination(layout, lane.dest)
                target = lane.dest.target_for(rel)
                status = self._make_folder(lane, target)
            except errors.CastoffError as exc:
                error = exc
        self.catalog.record_folder(
            self.job_id,
            rel_path=folder.rel_path,
            abs_path=folder.abs_path,
            dest_ident=lane.dest.ident,
            dest_name=lane.name,
            target=target,
            status=status,
            error=error,
        )
        if self._file_events:
            self.emit(
                "folder-done",
                destination=lane.name,
                path=folder.rel_path,
                target=target,
                status=status,
                error=None if error is None else str(error),
            )
        if error is None:
            if status == "made":
                self.folders_made[lane.name] += 1
            return
        self.folders_failed += 1
        if isinstance(error, LANE_FATAL):
            self._lane_down(lane, error)  # said once; the folders after it fail with it, unsaid
        elif not self._said_by_lane(lane, error):
            self.log(f"{lane.name}: empty folder {folder.rel_path} not made at {target}: {error}", "error")

    @staticmethod
    def _make_folder(lane: Lane, target: str) -> str:
        """``made``, or ``already`` when a folder was there (a re-run: nothing to say)."""
        try:
            already = stat.S_ISDIR(os.lstat(target).st_mode)
        except OSError:
            already = False
        lane.dest.make_folder(target)  # type: ignore[attr-defined]
        return "already" if already else "made"

    # -- planning and the one read ------------------------------------------------------------

    def _plain_part_size(self) -> tuple[int, int | None]:
        """The part size of every file up to a size (the second, None for any size): the one
        ``_part_size`` comes to when no destination's part count makes it grow (the lanes'
        capabilities are fixed: worked out once, not once a file)."""
        ps, up_to = self.options.chunk_size, None
        for lane in self.lanes:
            caps = lane.caps
            if caps.preferred_part_size:
                ps = max(ps, caps.preferred_part_size)
            ps = max(ps, caps.min_part_size)
            fits = ps * caps.max_parts  # the size this lane takes in parts of ps (at this point)
            up_to = fits if up_to is None else min(up_to, fits)
        return ps, up_to

    def _part_size(self, size: int) -> int:
        plain, up_to = self._plain
        if up_to is None or size <= up_to:
            return plain  # what the loop below would come to: no lane grows the part
        ps = self.options.chunk_size
        for lane in self.lanes:
            caps = lane.caps
            if caps.preferred_part_size:
                ps = max(ps, caps.preferred_part_size)
            ps = max(ps, caps.min_part_size)
            if size > ps * caps.max_parts:
                need = -(-size // caps.max_parts)
                ps = max(ps, -(-need // MiB) * MiB)
        return ps

    def _read_all(self, sources: Sequence[str], group: WriteGroup) -> None:
        planner = self.options.planner
        if planner is not None and planner.numbers_files:
            # after this card's numbers (a re-run gives its files theirs again) and the scope's
            after = self.catalog.last_counter([os.path.abspath(s) for s in sources])
            scope = planner.counter_scope
            planner.number_with(lambda: self.catalog.next_counter(scope, after))
        # the destination folders (after preflight, which makes them): never scanned into themselves
        roots = {rid: ln.name for ln in self.lanes if (rid := getattr(ln.dest, "root_id", None)) is not None}
        with contextlib.suppress(OSError):  # nor into castoff's own state (a home folder's backup)
            st = os.stat(self.catalog.path.parent)
            roots.setdefault((st.st_dev, st.st_ino), STATE_FOLDER)
        filters = self.options.filters
        for s in sources:
            with contextlib.suppress(OSError):  # (the scan says why it cannot read one)
                self._source_devs[os.path.abspath(s)] = os.stat(s).st_dev
        folders = {os.path.abspath(s) for s in sources} | {os.path.realpath(s) for s in sources}
        self._sources_hold_copies = self.catalog.holds_verified_copies(sorted(folders))
        matched: set[str] = set()
        for item in self._prefetch.ahead(scan(sources, filters, roots, folders=True, matched=matched)):
            if self.cancel.is_set():
                return
            if isinstance(item, EmptyFolder):
                self._empty.append(item)
                continue
            group.next_file()
            if not isinstance(item, SourceFile):
                code, reason = item.code, item.reason
                if code == "gone" and self._deleted_from_folder(item.abs_path, item.rel_path, None):
                    code, reason = VANISHED, VANISHED_REASON  # listed, then gone as the scan looked
                    with self._state:
                        self.vanished += 1
                elif code in UNREAD_CODES:
                    self._unread(item)
                    continue
                self.left_out[code] += 1
                self.catalog.add_skipped_file(
                    self.job_id, rel_path=item.rel_path, abs_path=item.abs_path, reason=reason, code=code
                )
                if code == "excluded" and self.left_out[code] > FILTERED_SAID:
                    self.log(f"skip: {item.rel_path}: {reason}", "debug")
                elif code != "junk":
                    self.log(f"skip: {item.rel_path}: {reason}", "warning")
                continue
            self._one_file(item, group)
        self.catalog.scan_finished(self.job_id)  # every file of the sources is in the catalog
        more = self.left_out["excluded"] - FILTERED_SAID
        if more > 0:
            self.log(
                f"skip: {plural(more, 'more file or folder', 'more files or folders')} left out by"
                " --include/--exclude (the report names each)",
                "warning",
            )
        unmatched = [(option, pattern) for option, pattern in filters.patterns() if pattern not in matched]
        if unmatched and self._nothing_found():  # said once, in the "nothing to copy" error
            self._unmatched = unmatched
            return
        for option, pattern in unmatched:  # (a re-run of a card without that folder is no error)
            self.log(self._matched_nothing(option, pattern, sources), "warning")

    def _unread(self, item: Skipped) -> None:
        """Something the user expects copied could not even be looked at (the scan's error): a
        failure at every destination, not a skip, so that no destination counts as complete and
        the source is never said to be safe to release."""
        kind = UNREAD_CODES[item.code]
        self._not_read(item.abs_path, item.rel_path, kind(f"{item.rel_path}: {item.reason}"))

    def _not_read(self, abs_path: str, rel_path: str, exc: errors.SourceError) -> None:
        """``_unread``: a file that fails at every destination, never read."""
        file_id = self.catalog.add_file(  # its size and mtime unknown (null in the reports)
            self.job_id, rel_path=rel_path, abs_path=abs_path, size=None, mtime_ns=None
        )
        self.catalog.file_failed(file_id, error=str(exc), code=exc.code)
        self.log(str(exc), "error")
        self.files += 1
        src = SourceFile(abs_path, rel_path, size=0, mtime_ns=0, atime_ns=0, dev=0, ino=0)
        fs = FileState(src=src, file_id=file_id, part_size=0, n_parts=0, status="failed", error=exc)
        fs.read_done = True
        for lane in self.lanes:
            lane.stats.files_total += 1
            self._record(lane, fs, rel_path, Outcome("failed", error=exc))

    def _damaged_source(self, src: SourceFile) -> bool:
        """``src`` is a copy castoff found damaged, as it was found: failed, never sent on as good.
        One that reads back with the BLAKE3 castoff verified there (the good copy moved back over
        it, as the README says) is good again: no longer damaged, and copied."""
        copy = self._damaged_sources.get(src.abs_path) or self._damaged_sources.get(
            os.path.realpath(src.abs_path)
        )
        if copy is None or (copy.size, copy.mtime_ns) != (src.size, src.mtime_ns):
            return False
        try:
            digest = self._hash_file(src.abs_path, src.size)
        except OSError:
            digest = None  # the read of the file says why
        if digest == copy.blake3:
            self.catalog.forget_damaged(copy.dest_ident, copy.target)
            for path in [p for p, c in self._damaged_sources.items() if c is copy]:
                del self._damaged_sources[path]
            self.log(
                f"{src.rel_path}: holds the bytes castoff verified there on {self._minute(copy.verified_at)}"
                " again: no longer damaged"
            )
            return False
        read = f"BLAKE3 {digest[:16]}…" if digest is not None else "it cannot be read"
        exc = errors.SourceDamaged(
            f"{src.rel_path}: castoff found this copy DAMAGED on {self._minute(copy.found_at)}: it no"
            f" longer holds what castoff verified there on {self._minute(copy.verified_at)}"
            f" ({read}, verified {copy.blake3[:16]}…); not copied",
            hint="copy the file from the card or another verified copy instead; or put the good bytes"
            " back in its place (the good copy castoff wrote beside it, for one): this command then"
            " reads it back, finds the verified BLAKE3 and copies it",
        )
        self._not_read(src.abs_path, src.rel_path, exc)
        return True

    @staticmethod
    def _hash_file(path: str, size: int) -> str:
        """The BLAKE3 of a local file, read through (a copy recorded damaged: rare)."""
        hasher = new_blake3(size)
        with open(path, "rb", buffering=0) as fh:
            while chunk := fh.read(8 * MiB):
                hasher.update(chunk)
        return str(hasher.hexdigest())

    def _verified_here(self, src: SourceFile) -> LandedRow | None:
        """The copy castoff verified at a local destination that ``src`` is (its path, or the path
        a symlink leads to), with the size and mtime castoff gave it: what its read must find."""
        paths = list(dict.fromkeys((src.abs_path, os.path.realpath(src.abs_path))))
        copy = self.catalog.verified_copy_at(paths)
        if copy is None or copy.size != src.size:
            return None
        if copy.mtime_ns != src.mtime_ns and not mtime_kept(src.mtime_ns, copy.mtime_ns):
            return None  # changed since, its time says so: another file, not damage
        return copy

    def _check_verified_here(self, fs: FileState, digest: str, *, live: bool) -> None:
        """The source is a copy castoff verified (``_verified_here``) and reads other bytes now, the
        same size and mtime: that copy is damaged (bit rot, an edit in place). Said before the last
        part goes out: nothing of it completes anywhere; remembered, as a catch-up finds one."""
        copy = fs.verified_here
        if copy is None or digest == copy.blake3:
            return
        src = fs.src
        with self._state:
            exc, first = fs.damaged_here, fs.damaged_here is None
            if exc is None:
                exc = fs.damaged_here = errors.SourceDamaged(
                    f"{src.rel_path}: this copy is DAMAGED: castoff verified it at this path on"
                    f" {self._minute(copy.verified_at)} (BLAKE3 {copy.blake3[:16]}…) and reads other bytes"
                    f" there now (BLAKE3 {digest[:16]}…), the same size and modification time; not copied",
                    hint="copy the file from the card or another verified copy instead; or put the good"
                    " bytes back in its place: this command then reads it back and copies it",
                )
        if not first:
            raise exc
        found = DamagedCopy(
            copy.dest_ident,
            copy.target,
            copy.planned,
            copy.blake3,
            copy.verified_at,
            src.size,
            src.mtime_ns,
            time.time(),
            self.job_id,
        )
        self.catalog.record_damaged(found)
        self._damaged_sources[copy.target] = found
        if not live:  # a live read's failure is the file's (``_source_failed``): so is this
            fs.status, fs.error = "failed", exc
            self.catalog.file_failed(fs.file_id, error=str(exc), code=exc.code)
            self.log(f"{src.rel_path}: {_without_path(src.rel_path, str(exc))}", "error")
        raise exc

    def _one_file(self, src: SourceFile, group: WriteGroup) -> None:
        if self._damaged_sources and self._damaged_source(src):
            return
        # The file, its plan and every "already there" outcome in one transaction (the group's,
        # shared with the files before it): a re-run of a verified job is mostly this.
        planner = self.options.planner
        known = None if self.options.rehash else self._prefetch.prior_read(src)
        if self.options.rehash and planner is not None and planner.numbers_files:
            known_name = self._prefetch.prior_read(src)  # its number, even when it is read again
            if known_name is not None:
                planner.reuse(src, known_name, header=False)
        if known is not None and planner is not None:
            planner.reuse(src, known)  # its number, and its header read then: not read again
        with self.catalog.batch():
            file_id = self.catalog.add_file(
                self.job_id,
                rel_path=src.rel_path,
                abs_path=src.abs_path,
                size=src.size,
                mtime_ns=src.mtime_ns,
                known=known,  # the report and ASC MHL want its hashes too
                ctime_ns=src.ctime_ns,
            )
            self.files += 1
            self.bytes += src.size
            part_size = self._part_size(src.size)
            fs = FileState(
                src=src, file_id=file_id, part_size=part_size, n_parts=parts_for(src.size, part_size)
            )
            if known is not None:  # before planning: a copy found there says its hash too (--json)
                fs.digest, fs.md5 = known.blake3, known.md5
                fs.known_blake3 = known.blake3
            if self._sources_hold_copies:
                fs.verified_here = self._verified_here(src)
            streams = [s for lane in self.lanes if (s := self._plan_stream(lane, fs)) is not None]
            if streams and self._claims:
                # (a history's files go where the histories say: ``_chain_conflict``)
                named = [s for s in streams if not (in_history(s.planned) and in_history(src.abs_path))]
                if named:
                    fs.held = self._claim_names(fs, named)
        if not streams:
            if known is not None and known.ctime_ns is not None and known.ctime_ns != src.ctime_ns:
                self._read_to_check(fs)
                return
            fs.status = "read" if known else "skipped"
            fs.read_done = True
            return
        if known is None:
            fs.skipped.clear()  # verified there from another read: nothing to tell again
        inline = self._inline(fs, streams)
        if not inline:
            group.flush()  # what follows may wait for the lanes, and they for the catalog
            self._adopt_resumed_part_size(fs, streams)
        # every local destination verified it before (skipped) and its hashes are known: the
        # uploads read a verified copy, as the source may go once the local destinations are
        # verified (README "Uploads continue from the local copies"); a first run keeps its one read
        from_copy = (
            bool(fs.copies)
            and not any(s.lane.caps.is_local for s in streams)
            and fs.digest is not None
            and (fs.md5 is not None or not self.need_md5)
        )
        live, deferred = [], []
        for s in streams:
            multipart_needs_hash = (
                s.lane.caps.needs_hash_at_start
                and fs.n_parts > 1
                and (fs.digest is None or (self.need_md5 and fs.md5 is None))
            )
            if s.lane.attachable() and not multipart_needs_hash and not s.resume_token and not from_copy:
                live.append(s)
            else:
                deferred.append(s)
        for s in streams:
            if s.lane.caps.is_local:
                fs.pending_local += 1
        with self._state:
            self._open_streams += len(streams)
            self._open.update(streams)
            fs.streams = streams
        if deferred:
            self._defer(deferred)
        if not live and fs.digest is not None and (fs.md5 is not None or not self.need_md5):
            # Every destination catches up later and the catalog knows the hashes: the read
            # those destinations make is the one read, and it is verified against the known hash.
            fs.status = "read"
            self.log(f"hash known from an earlier read: {src.rel_path}", "debug")
            self._read_finished(fs)
            return
        self._feed(fs, live, src.abs_path, live=True, group=group if inline else None)

    def _read_to_check(self, fs: FileState) -> None:
        """Every destination holds a copy of an earlier read of this file (same path, size and
        mtime), and its change time moved since that read: renamed here (two files of a sequence
        that swapped names keep their sizes and times; QA N #3), rewritten with its time set back,
        or only given new permissions. Its bytes are read, to be sent nowhere: the same as then,
        and this read is the one the next job trusts (its change time with it); other bytes, and
        the file changed since it was copied (``_check_same_as_known``: said, the copies said to
        hold it as it was, nothing sent)."""
        rel = fs.src.rel_path
        if not self._ctime_said:
            self._ctime_said = True
            self.log(
                f"{rel}: changed since castoff read it, its change time says (renamed, rewritten with"
                " its time set back, or new permissions): read again to check its bytes, as are"
                " other files like it"
            )
        else:
            self.log(f"{rel}: its change time moved since castoff read it: read again", "debug")
        self._feed(fs, [], fs.src.abs_path, live=True)

    @staticmethod
    def _inline(fs: FileState, streams: list[Stream]) -> bool:
        """A small file is written, verified and recorded at its local folders (that keep up) by
        the reader itself, inside its catalog group: no hand-off to another thread (each costs a
        wake-up, dearer than the file's own I/O) and no transaction of its own. A bucket's copy,
        and a network share's (``Lane.reader_writes``), still goes through its lane. (At a folder
        whose fsyncs wait for a device, the commit goes to the lane's sync committers: while they
        are MAX_COMMIT_BACKLOG files behind, the file goes through the lane's queue, whose writer
        waits for them.)"""
        local = [s for s in streams if s.lane.reader_writes]
        return (
            fs.n_parts == 1
            and fs.src.size <= INLINE_COMMIT_MAX
            and bool(local)
            and all(
                s.lane.attachable()
                and s.lane.limiter is None
                and s.lane.commit_backlog() < MAX_COMMIT_BACKLOG
                for s in local
            )
            and not any(s.resume_token for s in streams)
        )

    def _plan_stream(self, lane: Lane, fs: FileState) -> Stream | None:
        src = fs.src
        dest = lane.dest
        stats = lane.stats
        stats.files_total += 1
        stats.bytes_total += src.size
        try:
            named = self._layout(lane, fs)
            target = dest.target_for(src.rel_path if named is None else named[0])
            limit = lane.caps.max_key_bytes
            # a character is at most 4 bytes: only a long target can be too long
            if len(target) * 4 > limit and len(target.encode("utf-8", "surrogateescape")) > limit:
                raise errors.KeyRejected(
                    f"{src.rel_path}: the target is longer than {lane.caps.max_key_bytes} bytes"
                )
        except errors.CastoffError as exc:
            self._record(lane, fs, src.rel_path, Outcome("failed", error=exc))
            return None
        if lane.dead is not None:
            self._record(lane, fs, target, self._down_outcome(lane))
            return None
        if not self.options.rehash:
            landed = self._prefetch.landed_at(dest.ident, target, src.abs_path)
            known_damaged = self._known_damaged  # usually empty: nothing to ask of it then
            if (
                landed is not None
                and landed.src_path == src.abs_path  # not another source that landed there
                and landed.size == src.size
                and landed.mtime_ns == src.mtime_ns
                and not (known_damaged and self._is_known_damaged(lane, landed))
                and self._still_there(lane, landed.target, src)
            ):
                stats.bytes_skipped += src.size  # nothing to send: off the progress bar's total
                when = self._minute(landed.verified_at)
                detail = f"verified at {dest.name} on {when} ({landed.verify_method})"
                if self._debug:
                    self.log(f"skip: {src.rel_path}: {detail}", "debug")
                damaged = self._still_damaged(lane, landed) if known_damaged else None
                if damaged is not None:
                    detail += "; " + self._say_damaged(lane, damaged, landed.target, already=True)
                if lane.caps.is_local and lane.caps.can_read_back:  # uploads read it, not the source
                    fs.copies.append(VerifiedCopy(lane, target, landed.target, "skipped", landed.verified_at))
                skipped = Outcome(
                    "skipped",
                    verify_method=landed.verify_method,
                    etag=landed.etag,
                    detail=detail,
                    verified_at=landed.verified_at,
                    damaged=damaged.target if damaged is not None else None,
                )
                self._record(lane, fs, landed.target, skipped)
                fs.skipped.append((lane, landed.target, skipped))  # told again if the read differs
                return None
        replaces = None  # the chain castoff put at this bucket's key, replaced by a blind write
        if in_history(target) and in_history(src.abs_path):
            sent = None if lane.caps.is_local else functools.partial(self._sent_chain, lane)
            hist = self._histories.at(dest.ident, src.abs_path, target, sent)
            refused = hist.refusal(target.rpartition("/")[2])
            if refused is not None:
                self._record(lane, fs, target, Outcome("failed", error=refused))
                return None
            if hist.sent and target.rpartition("/")[2] == CHAIN and self._writes_blind(lane):
                if hist.chain_is_there():  # a blind write would replace it: nothing is sent
                    stats.bytes_skipped += src.size
                    out = Outcome("already", verify_method=hist.said(), verified_at=time.time())
                    self._record(lane, fs, target, out)
                    return None
                if hist.chain_replaces():
                    replaces = hist
        dest_plan = None
        planner = self.options.planner
        if named is not None and planner is not None and fs.plan is not None:  # ``_layout``'s plan
            dest_plan = planner.for_destination(fs.plan, dest, named)
        stream = Stream(lane=lane, file=fs, planned=target, target=target, dest_plan=dest_plan)
        if dest_plan is not None:
            stream.notes.extend(dest_plan.notes)
        if replaces is not None:  # the history's word, said before the blind write
            said = replaces.replaced(target)
            self.log(f"{lane.name}: {said}")
            stream.notes.append(said)
            stream.history = "replace"
        if lane.caps.resumable:
            self._find_resumable(stream)
        if lane.free_bytes is not None:
            self._plan_space(lane, src.size)
        return stream

    def _plan_space(self, lane: Lane, size: int) -> None:
        """A file of ``size`` bytes is to go to ``lane``, a local destination: once the files
        planned there (not those found there before) add up to more than it had free at the
        start, that is said, once, as the scan finds it (a warning: a file found there with the
        same content, or space freed meanwhile, may still let them fit)."""
        lane.bytes_planned += size
        free = lane.free_bytes
        if lane.space_said or free is None or lane.bytes_planned <= free:
            return
        lane.space_said = True
        self.log(
            f"{lane.name}: {format_bytes(lane.bytes_planned)} to write there so far, {format_bytes(free)}"
            " free: it will be full before the job ends (free space there now, or stop the job and"
            " use a bigger drive)",
            "warning",
        )

    def _layout(self, lane: Lane, fs: FileState) -> tuple[str, tuple[str, ...]] | None:
        """The layout-relative path of ``fs`` at this lane and the notes its name rules made
        (planned once per file, recorded); None without a planner (the source's relative path).
        The rest of the destination's plan (``Planner.for_destination``) cannot fail: it is made
        only for a file that is sent, not for one a re-run finds there."""
        planner = self.options.planner
        if planner is None:
            return None
        if fs.plan is None:
            fs.plan = planner.plan(fs.src)
            self.catalog.set_file_meta(self.job_id, fs.file_id, fs.plan.catalog_record())
        return planner.dest_path(fs.plan, lane.dest)

    def _is_known_damaged(self, lane: Lane, landed: LandedRow) -> bool:
        """The copy the catalog says landed is the one an earlier job found damaged (its good copy
        never landed, a failure or a kill after the damage was found): not skipped."""
        copy = self._known_damaged.get((lane.dest.ident, landed.planned))
        return copy is not None and copy.target == landed.target

    def _still_damaged(self, lane: Lane, landed: LandedRow) -> DamagedCopy | None:
        """The damaged copy an earlier job found beside this verified one, if it is still there
        as it was found (one stat; changed since: read back, and forgotten if it holds the
        verified bytes again). A bucket cannot look: the catalog's word."""
        key = (lane.dest.ident, landed.planned)
        copy = self._known_damaged.get(key)
        if copy is None or copy.blake3 != landed.blake3:
            return None
        if not lane.caps.can_stat:
            return copy
        try:
            st = lane.dest.stat(copy.target)
        except errors.CastoffError:
            return copy
        if st is not None and st.not_a_file is None:
            if (st.size, st.mtime_ns) == (copy.size, copy.mtime_ns):
                return copy
            if not (lane.caps.can_read_back and self._same_content(lane, copy.target, copy.blake3)):
                return copy
        self.catalog.forget_damaged(lane.dest.ident, copy.target)  # gone, or good again
        del self._known_damaged[key]
        return None

    def _still_there(self, lane: Lane, target: str, src: SourceFile) -> bool:
        """The copy the catalog recorded is still at ``target``: a file of the source's size and,
        in a folder, with the source's mtime that castoff gave it (a copy replaced or rewritten
        since has another: it is read back, not skipped, and that is said once a destination)."""
        if not lane.caps.can_stat:
            return True  # a write-only bucket: the catalog is the only memory there is
        try:
            st = lane.dest.stat(target)
        except errors.CastoffError:
            return False
        if st is None or st.size != src.size or st.not_a_file is not None:
            return False
        if st.file_id == (src.dev, src.ino):
            return False  # the source itself: the conflict handling fails the file
        found = st.mtime_ns
        if (
            not lane.caps.is_local
            or found is None
            or found == src.mtime_ns  # as castoff set it (mtime_kept's answer, without the call)
            or mtime_kept(found, src.mtime_ns)
        ):
            return True
        if lane.dest.ident not in self._times_said:
            self._times_said.add(lane.dest.ident)
            self.log(
                f"{lane.name}: {target}, which castoff verified there, has another modification time"
                " than castoff gave it (changed since, or a drive that did not keep the times set,"
                " as fusefat does at a rename): such copies are checked again (read back and compared),"
                " and kept where they hold the same bytes"
            )
        return False

    def _runs_beside(self, job_id: str) -> bool:
        """Whether ``job_id`` is another job, still running (its process alive): what it has under
        way (uploads, partial files) is its own, never resumed nor cleaned up by this job."""
        if job_id == self.job_id:
            return False
        row = self.catalog.running_job(job_id)
        return row is not None and running.row_alive(row)

    def _find_resumable(self, stream: Stream) -> None:
        row = None
        for found in self.catalog.find_uploads(stream.lane.dest.ident, stream.target):
            if not self._runs_beside(found.job_id):
                row = found
                break
            self.log(
                f"{stream.lane.name}: {stream.target}: job {found.job_id} is uploading it now;"
                " its upload is left to it",
                "warning",
            )
        if row is None:
            return
        src = stream.file.src
        lane = stream.lane
        if (
            row.size == src.size
            and row.mtime_ns == src.mtime_ns
            and not lane.caps.refuses_existing
            and self._remembers_keys(lane)
            and self._held_by_another_job(lane, stream.target)
        ):  # a job that started after this upload's job died: it has the key now
            self.log(f"{lane.name}: {stream.target}: not resuming the unfinished upload there")
            self._abort_token(lane, row.target, row.token)
            self.catalog.close_upload(row.id)
            return
        if row.size == src.size and row.mtime_ns == src.mtime_ns:
            stream.resume_token = row.token
            stream.resume_blake3 = row.blake3
            stream.upload_pk = row.id
            stream.receipts = {p.index: p for p in row.parts}
            stream.resumed_parts = len(row.parts)
            stream.resumed_bytes = sum(p.size for p in row.parts)
            lane.stats.bytes_resumed += stream.resumed_bytes  # not to send: off the progress bar's total
            stream.notes.append(f"resume: upload had {plural(len(row.parts), 'part')} from job {row.job_id}")
            return
        self.log(
            f"{stream.lane.name}: {stream.target}: source changed since the unfinished"
            " upload; aborting it and starting over"
        )
        self._abort_token(stream.lane, row.target, row.token)
        self.catalog.close_upload(row.id)

    def _abort_token(self, lane: Lane, target: str, token: object) -> None:
        try:
            lane.dest.abort_token(target, token)  # type: ignore[arg-type]
        except errors.CastoffError as exc:
            self.log(f"{lane.name}: could not abort the old upload of {target}: {exc}", "warning")

    def _drop_stale_resumes(self, group: list[Stream]) -> None:
        """An upload resumed for other bytes than the file's, as this job read them (a copy or the
        card changed in place since it began: same size, same time), is aborted and sent again
        from the start: its parts hold other bytes, and the object's metadata, written when it
        began, names the other bytes' BLAKE3 and MD5 (QA E #4: completed, 'verified', with
        metadata that did not match its content)."""
        digest = group[0].file.digest
        for s in group:
            if s.resume_token is None or s.resume_blake3 is None or digest is None:
                continue
            if s.resume_blake3 == digest:
                continue
            lane = s.lane
            said = (
                f"resume: {lane.name}: {s.target}: the unfinished upload was begun for other bytes"
                f" (BLAKE3 {s.resume_blake3[:16]}…; the file reads {digest[:16]}… now); started over"
            )
            self.log(said, "warning")
            self._abort_token(lane, s.target, s.resume_token)
            if s.upload_pk is not None:
                self.catalog.close_upload(s.upload_pk)
            self._unsend(s)
            s.reset(keep_parts=False)
            s.notes.append(said)

    def _adopt_resumed_part_size(self, fs: FileState, streams: list[Stream]) -> None:
        for s in streams:
            if s.resume_token is not None:
                ps = s.resume_token.get("part_size")
                if isinstance(ps, int) and ps > 0:
                    fs.part_size = ps
                    fs.n_parts = parts_for(fs.src.size, ps)
                    break
        for s in streams:
            if s.resume_token is not None and s.resume_token.get("part_size") != fs.part_size:
                self._abort_token(s.lane, s.target, s.resume_token)
                if s.upload_pk is not None:
                    self.catalog.close_upload(s.upload_pk)
                s.reset(keep_parts=False)
                s.notes.append("resume: part size differs; started over")

    def _feed(
        self, fs: FileState, streams: list[Stream], path: str, *, live: bool, group: WriteGroup | None = None
    ) -> None:
        """Read ``path`` once, in parts, hashing as it goes, handing each part to ``streams``;
        with the reader's ``group``, writing the parts of local streams and closing those
        streams itself (``_inline``)."""
        src = fs.src
        copy = fs.copies[0] if not live and fs.copies and fs.copies[0].path == path else None
        for s in streams:
            with s.lane.lock:
                s.feeding = True
        try:
            digest, md5, xxh128 = self._read_parts(fs, streams, path, live=live, group=group)
        except errors.Interrupted:
            return
        except errors.SourceError as exc:
            if isinstance(exc, errors.SourceDeleted) and self._leave_out_deleted(fs, streams, live=live):
                return
            if live:
                self._source_failed(fs, exc)
            elif copy is not None:  # the copy's trouble, not the source's: the next copy, or the source
                self._copy_failed(fs, copy, streams, exc)
            else:  # the source read again for these destinations: said, as the first read's trouble is
                if not isinstance(exc, errors.SourceChanged) or self._first_to_say_changed(fs):
                    rel = src.rel_path
                    names = ", ".join(s.lane.name for s in streams)
                    self.log(f"{rel}: {_without_path(rel, str(exc))} (read again for {names})", "error")
                for s in streams:
                    s.lane.fail(s, exc)
            return
        if live:
            fs.digest, fs.md5, fs.xxh128 = digest, md5 or fs.md5, xxh128
            fs.status = "read"
            self.catalog.file_read(fs.file_id, blake3=digest, md5=md5, xxh128=xxh128)
        elif digest == fs.digest:
            if fs.xxh128 is None:
                fs.xxh128 = xxh128
                self.catalog.file_hashes_known(fs.file_id, xxh128=xxh128)
        else:
            source = (fs.digest or "?")[:16]
            why = f"no longer matches the source's BLAKE3 (read {digest[:16]}…, source {source}…)"
            if copy is not None:
                self._copy_failed(fs, copy, streams, errors.SourceChanged(why))
                return
            bad = errors.IntegrityError(
                f"{path} {why}", hint="the copy or the source changed after it was verified"
            )
            for s in streams:
                s.lane.fail(s, bad)
            return
        mine = [
            s for s in streams if s.lane.end_feed(s, close_here=group is not None and s.lane.reader_writes)
        ]
        if live:  # the one read of the source: said before a second read may start (``read_done``)
            self.emit("file-read", rel_path=src.rel_path, size=src.size, blake3=digest)
            self._read_finished(fs)
        else:  # a catch-up's read, for the destinations that could not take the first one
            self.emit("file-reread", rel_path=src.rel_path, size=src.size, path=path)
        for s in mine:
            s.lane.close_one(s)

    def _read_parts(
        self, fs: FileState, streams: list[Stream], path: str, *, live: bool, group: WriteGroup | None
    ) -> tuple[str, str | None, str]:
        """BLAKE3, MD5 (when a destination needs it) and xxh128 (for ASC MHL), all from one read.

        A multipart file that only buckets take is read twice: their objects' metadata needs the
        whole file's hashes before the first part. Its first read also keeps each part's MD5;
        the second then hashes nothing, and sends each part with the MD5 of the first read as
        its Content-MD5, so the server refuses any byte that is not the byte the first read
        hashed with BLAKE3."""
        src = fs.src
        budget = self.budget if live else self.catchup_budget
        check_mtime = path == src.abs_path
        sent_with_known_md5s = (
            not live
            and fs.part_md5s is not None
            and len(fs.part_md5s) == fs.n_parts
            and all(s.lane.caps.needs_md5 for s in streams)
        )
        known_md5s = fs.part_md5s if sent_with_known_md5s else None
        # a verified copy's parts are checked against the first read's as they are read: one that
        # differs is that copy's damage, said at once, never sent for the server to refuse
        check_md5s = known_md5s if not check_mtime else None
        # a catch-up read re-checks BLAKE3 (unless the server checks each part against the first)
        hasher = None if known_md5s is not None else new_blake3(src.size)
        whole_md5 = hashlib.md5(usedforsecurity=False) if (live and self.need_md5) else None
        part_md5s = PartMd5s() if live and fs.n_parts > 1 and self._bucket_reads_again(fs, streams) else None
        # xxh128 only when no read of this job has it yet
        xxh = xxhash.xxh3_128() if (live or fs.xxh128 is None) else None
        side: list[Updatable] = [h for h in (xxh, whole_md5, part_md5s) if h is not None]
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError as exc:
            if check_mtime and self._deleted_from_folder(src.abs_path, src.rel_path, src.dev):
                raise errors.SourceDeleted(f"{src.rel_path}: {VANISHED_REASON}") from exc
            raise errors.SourceVanished(f"{src.rel_path}: vanished before it was read") from exc
        except PermissionError as exc:
            raise errors.SourceReadError(
                f"{src.rel_path}: cannot open: {exc.strerror}",
                hint="castoff may not read it: check its permissions, then re-run",
            ) from exc
        except OSError as exc:
            raise errors.SourceReadError(f"{src.rel_path}: cannot open: {exc.strerror}") from exc
        try:
            st = os.fstat(fd)
            if st.st_size != src.size or (check_mtime and st.st_mtime_ns != src.mtime_ns):
                raise errors.SourceChanged(
                    f"{src.rel_path}: changed between the scan and the read", hint="re-run the job"
                )
            if live:  # (its closing check makes sure that it does not move during the read)
                fs.ctime_ns = st.st_ctime_ns
            if src.size > INLINE_COMMIT_MAX:  # a small file is one read: nothing to read ahead
                with contextlib.suppress(OSError):
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
            offset = 0
            remote = [s for s in streams if not s.lane.caps.is_local]
            for index in range(fs.n_parts):
                size = min(fs.part_size, src.size - offset)
                if remote:  # only a bucket's lane can be too far behind
                    self._wait_for_remote_lanes(budget, streams, group)
                buf = budget.acquire(
                    size,
                    cancelled=self.cancel.is_set,
                    on_blocked=lambda: self._reader_blocked(budget, streams, group),
                )
                if buf is None:
                    raise errors.Interrupted("interrupted")
                view = memoryview(buf)[:size]
                try:
                    self._read_exactly(fd, view, offset, src.rel_path)
                except BaseException:
                    budget.release(buf)
                    raise
                if (
                    check_md5s is not None
                    and hashlib.md5(view, usedforsecurity=False).digest() != check_md5s[index]
                ):
                    budget.release(buf)
                    raise errors.SourceChanged(
                        f"{src.rel_path}: part {index + 1} of {fs.n_parts} no longer holds the bytes the"
                        " source's read had there"
                    )
                self._hashing.update(hasher, side, view)
                if live:
                    self.bytes_read += size
                elif check_mtime:  # a catch-up read of the source itself, not of a verified copy
                    self.bytes_reread += size
                else:
                    self.bytes_from_copies += size
                last = index == fs.n_parts - 1
                if last:
                    try:
                        self._check_unchanged(
                            fd, path, src, size_limit=offset + size, live=check_mtime, ctime_ns=st.st_ctime_ns
                        )
                        if check_mtime and hasher is not None and fs.verified_here is not None:
                            # a verified copy read as a source: damaged, nothing of it completes
                            self._check_verified_here(fs, hasher.hexdigest(), live=live)
                        if check_mtime and hasher is not None and fs.known_blake3 is not None:
                            # before the last part goes out: no destination completes other bytes
                            self._check_same_as_known(fs, hasher.hexdigest(), live=live)
                    except BaseException:
                        budget.release(buf)
                        raise
                    if live and hasher is not None:
                        # known before the last part goes out, so a one-part object's metadata has it
                        fs.digest = hasher.hexdigest()
                        fs.md5 = whole_md5.hexdigest() if whole_md5 else fs.md5
                    if whole_md5 is not None and fs.n_parts == 1:
                        known_md5s = [whole_md5.digest()]  # one part: its MD5 is the file's
                md5 = known_md5s[index] if known_md5s is not None else None
                self._hand_out(budget, streams, buf, size, index, offset, md5, here=group is not None)
                offset += size
        finally:
            os.close(fd)
        if part_md5s is not None:
            fs.part_md5s = part_md5s.digests
        elif live and known_md5s is not None:
            fs.part_md5s = known_md5s
        xxh128 = xxh.hexdigest() if xxh is not None else fs.xxh128
        assert xxh128 is not None
        digest = hasher.hexdigest() if hasher is not None else fs.digest
        assert digest is not None
        return digest, (whole_md5.hexdigest() if whole_md5 else None), xxh128

    def _check_same_as_known(self, fs: FileState, digest: str, *, live: bool) -> None:
        """The source file, read in this job, holds the bytes an earlier job read at the same path,
        size and mtime (the BLAKE3 this job took as its own); else it changed in place, its time
        not showing it (QA E #3: a card's file rewritten, its mtime set back). The copies verified
        then, skipped by this job, hold the file as it was; these other bytes are sent nowhere,
        never under that file's hash (it was once said of both), and a re-run meets them again:
        ``--rehash`` reads them as a file of their own, kept beside the earlier copies."""
        known = fs.known_blake3
        if known is None or digest == known:
            return
        with self._state:
            exc, first = fs.changed_in_place, fs.changed_in_place is None
            if exc is None:
                exc = fs.changed_in_place = self._changed_in_place_error(fs, digest, known)
        if first and fs.skipped:
            self._tell_skipped_changed(fs, digest, known)
        if first and not live:  # a live read's failure is the file's (``_source_failed``): so is this
            fs.status, fs.error = "failed", exc
            self.catalog.file_failed(fs.file_id, error=str(exc), code=exc.code)
            rel = fs.src.rel_path
            self.log(f"{rel}: {_without_path(rel, str(exc))}", "error")
        raise exc

    def _changed_in_place_error(self, fs: FileState, digest: str, known: str) -> errors.SourceChangedInPlace:
        where = list(dict.fromkeys(lane.name for lane, _target, _out in fs.skipped))
        held = f" (at {', '.join(where)})" if where else ""
        if not where and not self.catalog.delivered_anywhere(fs.src.abs_path, known):
            # QA H #6: no copy of the earlier bytes anywhere (an upload of them begun, never
            # finished): there are no "copies verified then"; one of the two reads is not the card's
            # file as it was (a card rewritten in place, its time set back, or a failing reader)
            resumed = [s.lane.name for s in fs.streams if s.resumed_parts or s.resume_token]
            dropped = (
                f" The unfinished upload at {', '.join(resumed)}, begun for the earlier bytes, is"
                " dropped (never completed)."
                if resumed
                else ""
            )
            return errors.SourceChangedInPlace(
                f"{fs.src.rel_path}: other bytes than an earlier job read here (same size and"
                f" modification time; BLAKE3 {digest[:16]}…, then {known[:16]}…), and that job"
                f" delivered them nowhere: no verified copy holds the file as it was; not copied.{dropped}",
                hint="the card was rewritten in place (its time set back), or one of the two reads was"
                " wrong (a failing card or reader): check it. To copy the file as it is now, re-run"
                " with --rehash: it is read again and copied at its own name",
            )
        return errors.SourceChangedInPlace(
            f"{fs.src.rel_path}: changed at the source since an earlier job copied it: same size"
            f" and modification time, other bytes (BLAKE3 {digest[:16]}…, then {known[:16]}…);"
            " not copied",
            hint=f"the copies verified then{held} hold the file as it was. To keep it as it is now as"
            " well, re-run with --rehash: these bytes then land beside the earlier copies as a"
            " conflict ('name (2).ext'), never over them",
        )

    def _tell_skipped_changed(self, fs: FileState, digest: str, known: str) -> None:
        """The destinations skipped for holding the earlier read's copy: their outcome says that
        it is the file as it was then, not the bytes the source holds now."""
        for lane, target, out in fs.skipped:
            said = (
                f"the source file changed since (same size and time, BLAKE3 now {digest[:16]}…):"
                f" this copy holds it as it was then ({known[:16]}…)"
            )
            detail = f"{out.detail}; {said}" if out.detail else said
            self._store(lane, fs, target, replace(out, detail=detail))
            self.log(f"{lane.name}: {target}: {said}", "warning")

    @staticmethod
    def _bucket_reads_again(fs: FileState, live: list[Stream]) -> bool:
        """This live read of a multipart file leaves a bucket to a second read."""
        return fs.n_parts > 1 and any(s.lane.caps.needs_md5 and s not in live for s in fs.streams)

    @staticmethod
    def _read_exactly(fd: int, view: memoryview, offset: int, rel: str) -> None:
        got = 0
        try:
            while got < len(view):
                n = os.preadv(fd, [view[got:]], offset + got)
                if n == 0:
                    raise errors.SourceChanged(f"{rel}: shrank while it was read")
                got += n
        except OSError as exc:
            raise errors.SourceReadError(f"{rel}: read error: {exc.strerror}") from exc

    def _check_unchanged(
        self, fd: int, path: str, src: SourceFile, *, size_limit: int, live: bool, ctime_ns: int
    ) -> None:
        """The file read (``fd``, opened with change time ``ctime_ns``) is still the one at
        ``path``, as the scan saw it. With ``live`` (the source itself, not a verified copy), its
        change time too: a writer that rewrote bytes in place and set the mtime back (``touch -r``)
        moves it all the same, and the read may hold old bytes and new (QA N #1)."""
        try:
            extra = os.pread(fd, 1, size_limit)
            st_fd = os.fstat(fd)
            st_path = os.stat(path)
        except FileNotFoundError as exc:
            raise errors.SourceVanished(f"{src.rel_path}: deleted while it was read") from exc
        except OSError as exc:
            raise errors.SourceReadError(f"{src.rel_path}: {exc.strerror}") from exc
        if extra:
            raise errors.SourceChanged(f"{src.rel_path}: grew while it was read")
        if (st_fd.st_ino, st_fd.st_dev) != (st_path.st_ino, st_path.st_dev):
            raise errors.SourceChanged(f"{src.rel_path}: replaced while it was read")
        if st_fd.st_size != src.size or (
            live and (st_fd.st_mtime_ns != src.mtime_ns or st_fd.st_ctime_ns != ctime_ns)
        ):
            raise errors.SourceChanged(
                f"{src.rel_path}: modified while it was read (its size, mtime or change time moved)",
                hint="let the writer finish, then re-run",
            )

    @staticmethod
    def _hand_out(
        budget: MemoryBudget,
        streams: list[Stream],
        buf: Buffer,
        size: int,
        index: int,
        offset: int,
        md5: bytes | None,
        *,
        here: bool,
    ) -> None:
        takers = [s for s in streams if s.wants(index)]
        if not takers:
            budget.release(buf)
            return
        chunk = Chunk(budget, buf, size, index, offset, refs=len(takers), md5=md5)
        mine = [s for s in takers if here and s.lane.reader_writes]
        for s in takers:  # the lanes' first, so a bucket's upload runs while the reader writes
            if s not in mine and not s.lane.push(s, chunk):
                chunk.release()
        for s in mine:
            s.lane.put_here(s, chunk)

    def _reader_blocked(self, budget: MemoryBudget, feeding: list[Stream], group: WriteGroup | None) -> None:
        """The reader waits for memory: the threads that would free it may wait for the catalog
        the reader's group holds, so it lets go of it first."""
        if group is not None:
            group.flush()
        self._maybe_detach(budget, feeding)

    def _remote_lane_full(self, lane: Lane) -> bool:
        return not lane.caps.is_local and lane.queued_bytes >= REMOTE_READ_AHEAD * self.options.chunk_size

    def _wait_for_remote_lanes(
        self, budget: MemoryBudget, feeding: list[Stream], group: WriteGroup | None = None
    ) -> None:
        """Before reading a part: a bucket needs only a few parts waiting beside those on the
        wire to keep its connections busy, so the reader reads no further ahead of it. Memory
        that would only hold waiting bytes stays free (and out of the process's peak). A lane
        that cannot keep up while another can is let go, as under memory pressure."""
        while True:
            full = [
                s.lane for s in feeding if s.feeding and s.failed is None and self._remote_lane_full(s.lane)
            ]
            if not full:
                return
            if self.cancel.is_set():
                raise errors.Interrupted("interrupted")
            if group is not None:
                group.flush()  # the lane's committer may wait for the catalog the group holds
            lane = full[0]
            self._maybe_detach(budget, feeding, full=lane)
            with lane.cond:
                if self._remote_lane_full(lane):
                    lane.room_waiters += 1
                    try:
                        lane.cond.wait(0.2)
                    finally:
                        lane.room_waiters -= 1

    def _maybe_detach(self, budget: MemoryBudget, feeding: list[Stream], *, full: Lane | None = None) -> None:
        """Called while a reader waits, for memory or for the ``full`` lane: if one lane holds
        most of the memory (or is ``full``) while another lane of the same read keeps up, let
        the laggard go; it catches up later from a copy."""
        if full is not None:
            worst = full
            others = [s.lane for s in feeding if s.lane is not full and s.feeding]
            if not any(not self._remote_lane_full(ln) for ln in others):
                return
            why = "cannot keep up with the read"
        else:
            held = {id(ln): ln.queued_by.get(id(budget), 0) for ln in self.lanes}
            busy = [ln for ln in self.lanes if held[id(ln)] > 0]
            if not busy:
                return
            worst = max(busy, key=lambda ln: held[id(ln)])
            amounts = [held[id(s.lane)] for s in feeding if s.lane is not worst and s.feeding]
            if not amounts:
                return
            if held[id(worst)] < budget.limit // 2 or held[id(worst)] <= 2 * min(amounts):
                return
            why = "is behind by more than half the memory budget"
        streams = worst.detach()
        if streams:
            self.log(
                f"{worst.name} {why}: it continues from a verified copy"
                f" ({plural(len(streams), 'file')} deferred)",
                "info",
            )
            self._defer(streams)

    def _source_failed(self, fs: FileState, exc: errors.SourceError) -> None:
        fs.status = "failed"
        fs.error = exc
        self.catalog.file_failed(fs.file_id, error=str(exc), code=exc.code)
        rel = fs.src.rel_path
        self.log(f"{rel}: {_without_path(rel, str(exc))}", "error")
        for s in fs.streams:
            s.lane.fail(s, exc)
        fs.read_done = True
        with self._state:
            if not fs.streams:  # (no destination's count has it: ``_read_to_check``'s file)
                self._failed_unsent += 1
            self._state.notify_all()

    def _changed_since_read(self, stream: Stream, exc: BaseException) -> BaseException:
        """``exc``, the stream's failure: a bucket refusing a part of the source's second read,
        sent with the first read's MD5 as its Content-MD5 (``BadDigest``: ``_read_parts``), is
        the source's change, not the network's corruption, when the source no longer stats as
        the first read found it (size, mtime, inode, change time: a writer that rewrote bytes in
        place and set the mtime back moves the change time all the same, QA N #9). Said once for
        the file, as the second read's own trouble is. (A part sent from the bytes it was hashed
        from is refused for the network's corruption alone.)"""
        fs = stream.file
        src = fs.src
        if not isinstance(exc, errors.BadDigest) or stream.read_from is not None or fs.ctime_ns is None:
            return exc
        try:
            st = os.stat(src.abs_path)
        except OSError:  # (gone: not a change this can tell)
            return exc
        now = (st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev, st.st_ctime_ns)
        if now == (src.size, src.mtime_ns, src.ino, src.dev, fs.ctime_ns):
            return exc
        changed = errors.SourceChanged(
            f"{src.rel_path}: changed since castoff read it (its size, mtime or change time moved)",
            hint="let the writer finish, then re-run",
        )
        if self._first_to_say_changed(fs):
            rel = src.rel_path
            self.log(
                f"{rel}: {_without_path(rel, str(changed))} (read again for {stream.lane.name})", "error"
            )
        return changed

    def _first_to_say_changed(self, fs: FileState) -> bool:
        """Whether the source's change (found by a second read or by a destination's refusal,
        ``_changed_since_read``) is said here: the first of them says it, once."""
        with self._state:
            first, fs.said_changed = not fs.said_changed, True
        return first

    def _deleted_from_folder(self, abs_path: str, rel_path: str, dev: int | None) -> bool:
        """The file at ``abs_path`` (``rel_path``; on device ``dev`` as the scan found it, None:
        the scan's look at it found it gone), not found as castoff reads it, was deleted from a
        folder that is still there (an editor's lock or swap file, gone between the scan's listing
        and the read): its folder, and the source's own, still stat as the devices the scan found
        them on (its folder, without ``dev``: the source's). Not so for a card pulled (its folders
        gone, or its mount point left empty, on another device), a folder removed with the file,
        or a file named as the source itself: those stay the source's failure."""
        root = abs_path
        for _ in range(rel_path.count("/")):  # (the source's label, then a name a level)
            root = os.path.dirname(root)
        root_dev = self._source_devs.get(os.path.abspath(root))
        if root == abs_path or root_dev is None:
            return False
        try:
            folder, top = os.stat(os.path.dirname(abs_path)), os.stat(root)
        except OSError:
            return False
        return folder.st_dev == (root_dev if dev is None else dev) and top.st_dev == root_dev

    def _leave_out_deleted(self, fs: FileState, streams: list[Stream], *, live: bool) -> bool:
        """``fs`` was deleted after the scan, before this read of ``streams`` opened it
        (``_deleted_from_folder``): left out, as if the scan had not met it (code ``vanished``, in
        the reports' ``left_out``), its streams ended with no outcome and off their destinations'
        counts, an upload begun for it aborted: nothing of it anywhere, and the job's exit code
        is what it would be without it. False (a failure, as before) when a destination has
        already ended the file after a read of it (a bucket's second read, for its upload: the
        others took the first): part of it was delivered."""
        if not live and any(s.ended or s not in streams for s in fs.streams):
            return False
        with self._state:
            fs.status = "vanished"  # the catch-up leaves out the streams it still holds
            self.vanished += 1
            self._withdrawn += 1
            self._withdrawn_bytes += fs.src.size
        for row in self.catalog.leave_out(fs.file_id, reason=VANISHED_REASON, code=VANISHED):
            # what was said of it as it was planned (verified there by an earlier job, say)
            lane = next(ln for ln in self.lanes if ln.dest.ident == row["dest_ident"])
            self._uncount(lane, fs.src.size, str(row["status"]), damaged=row["damaged"] is not None)
        self.log(f"skip: {fs.src.rel_path}: {VANISHED_REASON}", "warning")
        for s in fs.streams:
            self._withdraw(s)
        self._read_finished(fs)
        return True

    def _withdraw(self, stream: Stream) -> None:
        """A stream of a file left out after it was planned (``_leave_out_deleted``): ended with
        no outcome, off its destination's counts; an upload begun or resumed for it aborted."""
        if not self._claim(stream):
            return
        lane = stream.lane
        self._unsend(stream)
        with lane.lock:
            stream.feeding = False
            lane.stats.files_total -= 1
            lane.stats.bytes_total -= stream.file.src.size
        self._abort_for_source(stream)
        self._let_go(stream, stream.target)
        self._stream_closed(stream)

    @staticmethod
    def _uncount(lane: Lane, size: int, status: str, *, damaged: bool) -> None:
        """A file's outcome at ``lane``, recorded as it was planned, taken back off the counts
        (``_plan_stream``'s and ``_tell``'s): the file is left out."""
        st = lane.stats
        with lane.lock:
            st.files_total -= 1
            st.bytes_total -= size
            if status in ("skipped", "already"):  # (planned so: nothing to send)
                st.bytes_skipped -= size
            if status in ("skipped", "verified", "already"):
                st.files_done -= 1
            if status in ("skipped", "verified", "already", "failed", "incomplete", "conflict"):
                setattr(st, status, getattr(st, status) - 1)
            if damaged:
                st.damaged -= 1

    def _read_finished(self, fs: FileState) -> None:
        fs.read_done = True
        with self._state:
            self._wake_waiters_locked()

    def _wake_waiters_locked(self) -> None:
        """Under ``_state``: wake the catch-up thread and the end of ``run`` when they may have
        something to do; every wake-up is a thread switch (a few per small file otherwise), and
        both also look again every 0.2 s."""
        if self._catchup or self._open_streams == 0:
            self._state.notify_all()

    # -- catch-up: lagging destinations continue from a verified copy -------------------------

    def _defer(self, streams: list[Stream]) -> None:
        by_file: dict[int, list[Stream]] = {}
        for s in streams:
            by_file.setdefault(id(s.file), []).append(s)
        with self._state:
            for s in streams:
                with s.lane.cond:
                    s.lane.backlog += 1
            self._catchup.extend(by_file.values())
            self._state.notify_all()

    def _ready(self, group: list[Stream]) -> bool:
        fs = group[0].file
        if not fs.read_done:
            return False
        if fs.status in ("failed", "vanished"):
            return True
        if any(s.lane.paused() for s in group):
            return False
        return fs.local_copy is not None or fs.pending_local == 0 or all(s.lane.caps.is_local for s in group)

    def _next_group(self) -> list[Stream] | None:
        with self._state:
            self._catchup_busy = False  # the group before this call, if any, is done
            while not self.cancel.is_set():
                for i, group in enumerate(itertools.islice(self._catchup, CATCHUP_LOOKAHEAD)):
                    if self._ready(group):
                        del self._catchup[i]
                        self._catchup_busy = True
                        return group
                if self._reading_done and self._open_streams == 0:
                    return None
                self._state.wait(0.2)
        return None

    def _catchup_loop(self) -> None:
        while True:
            group = self._next_group()
            if group is None:
                return
            for s in group:
                with s.lane.cond:
                    s.lane.backlog -= 1
            fs = group[0].file
            if fs.status == "failed":
                for s in group:
                    s.lane.fail(s, fs.error or errors.SourceError("source failed"))
                continue
            if fs.status == "vanished":  # left out (``_leave_out_deleted``)
                for s in group:
                    self._withdraw(s)
                continue
            # a destination that went down meanwhile: its streams end without another read
            for s in group:
                if (dead := s.lane.dead) is not None:
                    s.lane.fail(s, dead)
            group = [s for s in group if s.lane.dead is None and not self._there_by_the_catalog(s)]
            if not group:
                continue
            # Group by file: streams of one file share one read (and one MD5 per part).
            path = fs.local_copy or fs.src.abs_path
            for s in group:
                s.read_from = fs.local_copy
            try:
                self._drop_stale_resumes(group)
                self._feed(fs, group, path, live=False)
            except BaseException as exc:  # a bug must fail these streams, not stall the job
                for s in group:
                    s.lane.fail(s, exc)

    def _copy_failed(
        self, fs: FileState, copy: VerifiedCopy, streams: list[Stream], exc: errors.SourceError
    ) -> None:
        """A catch-up read of the verified local copy ``copy`` failed (gone, or no longer the bytes
        castoff verified there): that copy is named, never the source; one that changed is that
        destination's damage (``_copy_damaged``); the streams start again from the next verified
        copy, or the source."""
        with self._state:
            if copy in fs.copies:
                fs.copies.remove(copy)
        reason = _without_path(fs.src.rel_path, exc.message)
        # (the card pulled after "released": no copy left to read, the re-run needs it again)
        card_there = fs.local_copy is not None or os.path.lexists(fs.src.abs_path)
        if isinstance(exc, errors.SourceVanished):
            said = "is gone (moved, renamed or deleted since castoff verified it)"
            self._copy_gone(fs, copy, card_there=card_there)
        else:
            said = f"is DAMAGED or was changed: {reason}"
            self._copy_damaged(fs, copy, reason, card_there=card_there)
        then = f"the verified copy {nxt}" if (nxt := fs.local_copy) else f"the source {fs.src.abs_path}"
        bad: errors.CastoffError
        if not card_there:
            bad = errors.SourceVanished(  # said once, and not tried again: nothing is left to read
                f"{fs.src.rel_path}: no good copy is left to send: {copy.path} {said}, and the source"
                f" {fs.src.abs_path} is gone (the card was released)",
                hint="mount the card (or give a drive that holds a good copy), then re-run the same command",
            )
            self.log(f"{copy.lane.name}: {bad.message}", "error")
        else:
            if isinstance(exc, errors.SourceVanished):
                self.log(f"{copy.lane.name}: {copy.path} {said}: the uploads read {then} instead", "warning")
            bad = errors.IntegrityError(
                f"the verified copy it was read from, {copy.path}, {said}; read again from {then}"
            )
        for s in streams:
            s.read_from = None  # what lands comes from elsewhere: the detail never names this copy
            s.lane.fail(s, bad)

    def _copy_damaged(
        self, fs: FileState, copy: VerifiedCopy, reason: str, *, card_there: bool = True
    ) -> None:
        """``copy``, verified at its local destination, no longer holds those bytes: as ``--rehash``
        finds it, kept and remembered as damaged (a re-run writes a good copy beside it), and the
        file is failed there in this job (it was counted verified or skipped): never "done" with a
        copy castoff knows is bad."""
        lane = copy.lane
        digest = fs.digest
        assert digest is not None
        size = mtime_ns = None
        with contextlib.suppress(errors.CastoffError):
            st = lane.dest.stat(copy.path) if lane.caps.can_stat else None
            if st is not None:
                size, mtime_ns = st.size, st.mtime_ns
        if mtime_ns is not None and not TIME_MIN_NS <= mtime_ns <= TIME_MAX_NS:
            mtime_ns = None
        found = DamagedCopy(
            lane.dest.ident,
            copy.path,
            copy.planned,
            digest,
            copy.verified_at,
            size,
            mtime_ns,
            time.time(),
            self.job_id,
        )
        self.catalog.record_damaged(found)
        when = self._minute(copy.verified_at)
        keep = (
            "keep the source: the source was said to be releasable, but this copy no longer is a good one;"
            if self._released
            else "keep the source:"
        )
        error = errors.IntegrityError(
            f"{copy.path} is DAMAGED or was changed: it no longer holds what castoff verified there"
            f" on {when} ({reason})",
            hint=f"kept it; {keep} a re-run of the same command writes a good copy beside it"
            + ("" if card_there else " (the source is gone: mount the card first)"),
        )
        self._no_longer_there(fs, copy, Outcome("failed", error=error, damaged=copy.path))

    def _copy_gone(self, fs: FileState, copy: VerifiedCopy, *, card_there: bool = True) -> None:
        """``copy``, verified at its local destination, is gone (moved, renamed, deleted) when a
        catch-up reads it: the file is no longer verified there (failed in this job, its landed
        row forgotten), and a re-run writes it there again."""
        error = errors.IntegrityError(
            f"{copy.path} is gone since castoff verified it there on {self._minute(copy.verified_at)}"
            " (moved, renamed or deleted)",
            hint="keep the source: a re-run of the same command writes the file there again"
            + ("" if card_there else " (the source is gone: mount the card first)"),
        )
        self.catalog.forget_landed_from(copy.lane.dest.ident, copy.planned, fs.src.abs_path)
        self._no_longer_there(fs, copy, Outcome("failed", error=error))

    def _no_longer_there(self, fs: FileState, copy: VerifiedCopy, out: Outcome) -> None:
        """The file's outcome at ``copy``'s destination, counted verified or skipped, is ``out``."""
        lane = copy.lane
        self._store(lane, fs, copy.path, out)
        with lane.lock:  # no longer verified (or skipped) there: ``_tell`` counts it failed
            counts = lane.stats
            counts.files_done -= 1
            setattr(counts, copy.status, getattr(counts, copy.status) - 1)
        self._tell(lane, fs, copy.path, out)

    # -- inside a lane: one part, and the end of a stream -------------------------------------

    def _put(self, stream: Stream, chunk: Chunk) -> None:
        lane = stream.lane
        if stream.failed is not None or self.cancel.is_set():
            return
        if lane.dead is not None:
            raise lane.dead
        if lane.paused_until:  # a lane never paused reads no clock
            while lane.paused() and not self.cancel.is_set():
                self.cancel.wait(min(1.0, lane.paused_until - time.monotonic()))
            if lane.dead is not None:  # it stopped answering for good during the pause
                raise lane.dead
        upload = self._ensure_started(stream)
        caps = lane.caps
        if caps.resumable:  # known to the catalog before any part: a kill leaves no orphan
            self._record_upload(stream)
        if (
            chunk.index == 0
            and stream.resume_token is None
            and stream.history != "replace"  # the history's deliberate replacement (``_chain_conflict``)
            and not caps.is_local
            and self.options.on_conflict != "overwrite"
        ):
            if stream.file.held is not None and stream.target == stream.planned:
                raise TargetExists(stream.target)  # another file goes to its name (``_claim_names``)
            if not caps.refuses_existing:  # the catalog stands in for If-None-Match
                self._refuse_known_key(stream)
            elif self._held_by_another_job(lane, stream.target):
                # a job beside this one sends to the key now: the server would refuse the later
                # of the two, where it honours If-None-Match on every request; this is sooner
                raise TargetExists(stream.target)
            if lane.dead is not None:  # it went down while the catalog was asked: nothing goes out
                raise lane.dead
        md5 = chunk.md5() if caps.needs_md5 else None
        if lane.limiter is not None:
            lane.limiter.take(chunk.size, cancel=self.cancel)  # (a stopped job sends no more)
        try:  # one try, and only a failed one makes what the retries need
            receipt = upload.put_part(chunk.index, chunk.offset, chunk.data, md5)
        except LANE_FATAL as exc:
            self._lane_down(lane, exc)  # at once: the parts other workers hold do not go out to it
            raise
        except errors.CastoffError as exc:
            receipt = self.options.retry.call(
                lambda: upload.put_part(chunk.index, chunk.offset, chunk.data, md5),
                cancel=self.cancel,
                on_retry=self._on_retry(stream, f"{stream.target} part {chunk.index + 1}"),
                failed=exc,
            )
        if lane.troubled or lane.failing:
            self._answered(lane)
        if caps.resumable and stream.upload_pk is not None:
            self.catalog.add_part(stream.upload_pk, receipt)
        with lane.lock:
            stream.receipts[chunk.index] = receipt
            lane.stats.bytes_done += chunk.size
        if self._file_events:
            self.emit("progress", dest=lane.name, bytes=chunk.size)

    def _writes_blind(self, lane: Lane) -> bool:
        """A bucket that neither refuses a taken key nor has the catalog stand in for it
        (``--on-conflict overwrite``): its single PutObject replaces whatever the key held, before
        any conflict is seen, so a history's chain is decided at planning."""
        return not lane.caps.is_local and not lane.caps.refuses_existing and not self._remembers_keys(lane)

    def _remembers_keys(self, lane: Lane) -> bool:
        """The catalog stands in for conditional writes at this destination (``objects``)."""
        return not lane.caps.refuses_existing and self.options.on_conflict != "overwrite"

    def _refuse_known_key(self, stream: Stream) -> None:
        """Before a byte of a new upload goes out, do what ``If-None-Match: *`` would: raise
        ``TargetExists`` when castoff put something at the key before (``_conflict`` then applies
        the conflict policy). With ``--rehash`` too: a key that can read (``--verify-download``)
        has the object read, and what it holds decides (the same bytes: already there; others: a
        damaged or changed copy, kept); a write-only key has the catalog's word for the bytes
        castoff put there, as a bucket with conditional writes has. Never sent again over them:
        whatever the key holds now, castoff cannot see it, so it never replaces it."""
        if self._claimed_by_another(stream.lane, stream.target, stream.file.file_id):
            raise TargetExists(stream.target)  # another file of this job goes there (one name, two files)
        lane = stream.lane
        known = self.catalog.object_at(lane.dest.ident, stream.target)
        if known is None:
            if self._held_by_another_job(lane, stream.target):
                raise TargetExists(stream.target)
            return
        if lane.caps.can_read_back and self._gone(lane, stream.target):
            said = f"{stream.target}: castoff put it there on {self._minute(known.put_at)}, but it is gone"
            self.log(f"{lane.name}: {said}: sending it again", "warning")
            stream.notes.append(f"{said}; sent again")
            return
        raise TargetExists(stream.target)

    @staticmethod
    def _gone(lane: Lane, target: str) -> bool:
        """Nothing at ``target``, where castoff can read (a bucket with ``--verify-download``)."""
        try:
            with lane.dest.open_read(target):
                return False
        except FileNotFoundError:
            return True
        except (OSError, errors.CastoffError):
            return False  # what it is, the conflict handling reads (and says)

    @staticmethod
    def _claimed_by_another(lane: Lane, target: str, file_id: int) -> bool:
        """Claim ``target`` for this file unless another file of the job has: two files of one job
        that land on one name (two cards' IMG_0001.JPG in one date folder) are kept both, before
        either is in the catalog's ``objects``."""
        with lane.lock:
            return lane.claimed.setdefault(target, file_id) != file_id

    def _claim_names(
        self, fs: FileState, streams: Sequence[Stream], n: int | None = None
    ) -> tuple[str | None, str] | None:
        """Claim the file's name at each of ``streams``' destinations at once: its planned
        target there, or with ``n`` its keep-both name ``name (n).ext``. None when the file has
        them all now; else who holds one of them and where (``FileState.held``): another file of
        this job (None; ``Lane.claimed``), or another job that still runs ("job ID"; the
        catalog's ``claims``, which every castoff on this catalog sees), and that destination's
        name. Of two files that want one name (two cards' IMG_0001.CR3, two readers, two jobs),
        the first to claim it has it at every destination: claimed one destination at a time,
        each could win it at one of them, and one name would hold card 1's photo at the drive
        and card 2's at the NAS."""
        file_id = fs.file_id
        names = [(s, s.planned if n is None else self._alt_name(s, n)) for s in streams]
        # Inside a catalog transaction: one claim at a time in this process too (the catalog's
        # lock), and the catalog's lock taken before the lanes', as everywhere.
        with self.catalog.batch():
            for s, target in names:
                with s.lane.lock:
                    if s.lane.claimed.get(target, file_id) != file_id:
                        return None, s.lane.name
            holder = self.catalog.claim_names(
                [(s.lane.dest.ident, target) for s, target in names], self.job_id, running.row_alive
            )
            if holder is not None:
                job, ident = holder
                return f"job {job}", next(s.lane.name for s, _ in names if s.lane.dest.ident == ident)
            for s, target in names:
                with s.lane.lock:
                    s.lane.claimed[target] = file_id
        return None

    def _let_go(self, stream: Stream, target: str) -> None:
        """The stream's file is at ``target`` now (seen there by anyone who looks): its claims
        there on that name and on its planned one (``_claim_names``) are done."""
        lane, file_id = stream.lane, stream.file.file_id
        with lane.lock:
            mine = [t for t in {stream.planned, target} if lane.claimed.get(t) == file_id]
            for t in mine:
                del lane.claimed[t]
        if mine:
            self.catalog.let_go(lane.dest.ident, mine, self.job_id)

    def _busy(self, stream: Stream, existing: str) -> str | None:
        """Why ``existing``, the stream's planned name, is not this file's while nothing is there
        yet: another file goes to it, here or at another destination of the file
        (``FileState.held``); None when something is there (said as what it is)."""
        held = stream.file.held
        if held is None or existing != stream.planned:
            return None
        lane = stream.lane
        if self._stat_at(lane, existing) is not None or (
            not lane.caps.can_stat and self.catalog.object_at(lane.dest.ident, existing) is not None
        ):
            return None
        who, where = held
        there = "there" if where == lane.name else f"at that name at {where}"
        return f"{who} is putting a file {there} now" if who else f"another file of this job goes {there}"

    @staticmethod
    def _alt_name(stream: Stream, n: int) -> str:
        """The stream's keep-both name ``name (n).ext``, shortened to fit where it goes."""
        lane = stream.lane
        room = name_room(
            stream.planned, max_name=getattr(lane.dest, "name_max", None), max_path=lane.caps.max_key_bytes
        )
        return alt_target(stream.planned, n, max_name=room)

    def _held_by_another_job(self, lane: Lane, target: str) -> bool:
        """Claim ``target`` in the catalog for this job unless another job, still running, is
        about to put a file there (``Catalog.claim_key``): two jobs landing two cards' files on one
        key of a bucket without conditional writes keep both, as two files of one job do."""
        holder = self.catalog.claim_key(lane.dest.ident, target, self.job_id, running.row_alive)
        if holder is None:
            return False
        put = self.catalog.object_at(lane.dest.ident, target)
        if put is None or put.job_id != holder:  # still putting it: the conflict handling cannot say
            self.log(f"{lane.name}: {target}: job {holder} is putting a file there now", "warning")
        # (an object it put: the conflict handling says what it holds, the same bytes or others)
        return True

    def _there_by_the_catalog(self, stream: Stream) -> bool:
        """``--rehash``, at a bucket castoff cannot read whose keys the catalog remembers: this
        job's read gave the file's BLAKE3 and the object castoff put at its target has it, so it
        is already there on the catalog's word (README), as its first part would find
        (``_refuse_known_key``, then ``_already_there``). Recorded here, before a catch-up reads a
        verified copy (a whole clip) for an upload that would send nothing."""
        fs, lane = stream.file, stream.lane
        digest = fs.digest
        if (
            not self.options.rehash
            or digest is None
            or lane.caps.is_local
            or lane.caps.can_read_back  # --verify-download: the object is read and compared
            or not self._remembers_keys(lane)
            or stream.resume_token is not None
            or stream.history is not None
            or stream.target != stream.planned
        ):
            return False
        known = self._known_same(lane, stream.target, digest)
        if known is None or self._claimed_by_another(lane, stream.target, fs.file_id):
            return False
        landed = Landed(target=stream.target, size=fs.src.size, verify_method=self._put_there(known))
        self._landed(stream, landed, "already")
        return True

    def _put_there(self, known: KnownObject) -> str:
        """How an object is known to hold a file's bytes, on the catalog's word."""
        when = self._minute(known.put_at)
        return f"same blake3 as the object castoff put there on {when} (job {known.job_id})"

    def _known_same(self, lane: Lane, target: str, digest: str) -> KnownObject | None:
        """The object castoff put at ``target`` of a bucket, when it has these bytes (by BLAKE3):
        with or without conditional writes, a write-only key cannot read it to compare."""
        known = self.catalog.object_at(lane.dest.ident, target)
        if known is None or known.blake3 != digest:
            return None
        # a copy found damaged there since: the catalog's memory of it no longer holds
        return known if self.catalog.damaged_at(lane.dest.ident, target) is None else None

    def _ensure_started(self, stream: Stream) -> Upload:
        with stream.start_lock:
            if stream.upload is None:
                fs = stream.file
                src = fs.src
                plan = stream.dest_plan
                extra = plan.meta if plan else {}
                xattrs = plan.xattrs if plan else {}
                meta = fs.meta
                if (  # the file's streams share one when they would make the same
                    meta is None
                    or meta.blake3 != fs.digest
                    or meta.md5 != fs.md5
                    or meta.extra != extra
                    or meta.xattrs != xattrs
                ):
                    meta = fs.meta = ObjectMeta(
                        rel_path=src.rel_path,
                        size=src.size,
                        mtime_ns=src.mtime_ns,
                        atime_ns=src.atime_ns,
                        blake3=fs.digest,
                        md5=fs.md5,
                        extra=extra,
                        xattrs=xattrs,
                    )
                lane = stream.lane
                if (
                    lane.caps.resumable
                    and stream.resume_token is None
                    and fs.n_parts > 1
                    and stream.intent is None
                ):
                    stream.intent = self.catalog.intend_upload(
                        dest_ident=lane.dest.ident,
                        dest_name=lane.name,
                        target=stream.target,
                        job_id=self.job_id,
                    )
                retried: list[int] = []
                try:
                    try:  # one try, and only a failed one makes what the retries need
                        stream.upload = self._start(stream, meta)
                    except errors.CastoffError as exc:
                        said = self._on_retry(stream, f"{stream.target}: start")

                        def on_retry(n: int, exc: BaseException, wait: float) -> None:
                            retried.append(n)
                            said(n, exc, wait)

                        stream.upload = self.options.retry.call(
                            lambda: self._start(stream, meta),
                            cancel=self.cancel,
                            on_retry=on_retry,
                            failed=exc,
                        )
                except errors.PermanentError:
                    if stream.intent is not None and not retried:  # refused at once: nothing made
                        self.catalog.drop_intent(stream.intent)
                        stream.intent = None
                    raise
                if stream.resumed_parts:
                    where = (
                        f"continuing at part {stream.resumed_parts + 1}/{fs.n_parts}"
                        if stream.resumed_parts < fs.n_parts
                        else f"{'the one part was' if fs.n_parts == 1 else f'all {fs.n_parts} parts were'}"
                        " sent; completing it"
                    )
                    self.log(f"resume: {lane.name}: {stream.target}: {where}")
            return stream.upload

    @staticmethod
    def _start(stream: Stream, meta: ObjectMeta) -> Upload:
        dest, fs = stream.lane.dest, stream.file
        if stream.history == "replace":  # no If-None-Match: it replaces the chain castoff put there
            return dest.start(
                stream.target, meta=meta, part_size=fs.part_size, resume=stream.resume_token, overwrite=True
            )
        return dest.start(stream.target, meta=meta, part_size=fs.part_size, resume=stream.resume_token)

    def _on_retry(self, stream: Stream, what: str) -> Callable[[int, BaseException, float], None]:
        """What a retry says: the first of a lane's trouble goes to the console, once, however
        many files meet it; each attempt is detail (``--debug``, ``--json``). A lane that stopped
        answering meanwhile (``_stopped_answering``) is not tried again."""
        lane, file_id = stream.lane, stream.file.file_id

        def said(n: int, exc: BaseException, wait: float) -> None:
            if lane.dead is not None and lane.dead.retryable:
                raise lane.dead
            with lane.lock:
                lane.failing.add(file_id)
                first, lane.troubled = not lane.troubled, True
            if first:
                self.log(f"{lane.name}: {exc}; retrying (the other destinations carry on)", "warning")
            self.log(f"{lane.name}: {what}: {exc}; retry {n} in {wait:.1f}s", "debug")

        return said

    def _answered(self, lane: Lane) -> None:
        """A call at ``lane`` succeeded: trouble said before is over."""
        if lane.troubled or lane.gave_up or lane.failing:
            with lane.lock:
                ended, lane.troubled, lane.gave_up = lane.troubled, False, False
                lane.failing.clear()
            if ended:
                self.log(f"{lane.name}: answering again")

    def _record_upload(self, stream: Stream) -> None:
        if stream.upload_pk is not None or stream.upload is None:
            return
        with stream.start_lock:
            if stream.upload_pk is not None:
                return
            token = stream.upload.token
            if not token.get("upload_id"):
                return  # a single PUT: nothing to resume
            fs = stream.file
            stream.upload_pk = self.catalog.open_upload(
                dest_ident=stream.lane.dest.ident,
                dest_name=stream.lane.name,
                target=stream.target,
                src_path=fs.src.abs_path,
                size=fs.src.size,
                mtime_ns=fs.src.mtime_ns,
                part_size=fs.part_size,
                token=token,
                blake3=fs.digest,
                job_id=self.job_id,
                intent=stream.intent,
            )
            stream.intent = None

    def _close(self, stream: Stream) -> None:
        """The committer: land a complete stream, or end / retry a failed one. Whatever goes
        wrong here, the stream ends: the job waits for every open stream, so one left open by
        a bug would hold it forever."""
        try:
            self._close_stream(stream)
        except BaseException as exc:
            self._close_broken(stream, exc)

    def _close_broken(self, stream: Stream, exc: BaseException) -> None:
        if isinstance(exc, errors.CatalogError):  # the job stops: nothing more can be recorded
            self._catalog_failed(exc)
            with self._state:
                still_open = stream in self._open
            if still_open:
                self._stream_closed(stream)
            return
        text = "".join(traceback.format_exception(exc))
        self.log(f"{stream.lane.name}: {stream.target}: internal error while closing:\n{text}", "error")
        try:
            if self._claim(stream):  # (not when its outcome was recorded before the failure)
                self._record(
                    stream.lane,
                    stream.file,
                    stream.target,
                    Outcome("failed", error=errors.DestinationError(f"internal error: {exc!r}")),
                )
        finally:
            self._stream_closed(stream)

    def _close_stream(self, stream: Stream) -> None:
        if stream.failed is None:
            if not stream.finished and self.cancel.is_set():
                return
        elif isinstance(stream.failed, TargetExists) and stream.upload is not None:
            assert stream.file.digest is not None
            try:
                self._conflict(
                    stream,
                    stream.upload,
                    stream.failed.target,
                    stream.file.digest,
                    lambda **kw: self._refuse_commit(stream),
                )
            except BaseException as exc:
                stream.failed = None
                self._close_failed(stream, exc)
            return
        else:
            self._close_failed(stream, stream.failed)
            return
        fs = stream.file
        assert fs.digest is not None
        receipts = (
            [*stream.receipts.values()]
            if fs.n_parts == 1
            else [stream.receipts[i] for i in sorted(stream.receipts)]
        )
        try:
            # an upload resumed with every part already sent got no part in this run: reopen it here
            upload = stream.upload or self._ensure_started(stream)
            landed = self._commit(stream, upload, receipts, fs.digest)
        except BaseException as exc:
            self._close_failed(stream, exc)
            return
        if landed is None:
            return  # recorded by the conflict handling
        self._landed(stream, landed, "verified")

    def _commit(
        self, stream: Stream, upload: Upload, receipts: list[PartReceipt], digest: str
    ) -> Landed | None:
        lane = stream.lane

        def commit(target: str | None = None, overwrite: bool = False) -> Landed:
            try:  # one try, and only a failed one makes what the retries need
                landed = upload.commit(receipts, source_blake3=digest, target=target, overwrite=overwrite)
            except errors.CastoffError as exc:
                landed = self.options.retry.call(
                    lambda: upload.commit(receipts, source_blake3=digest, target=target, overwrite=overwrite),
                    cancel=self.cancel,
                    on_retry=self._on_retry(stream, f"{target or stream.target}: completing it"),
                    failed=exc,
                )
            if lane.troubled or lane.failing:
                self._answered(lane)
            return landed

        taken = stream.failed.target if isinstance(stream.failed, TargetExists) else None
        if taken is None and stream.file.held is not None and stream.target == stream.planned:
            # another file goes to its name, here or at another of its destinations: not taken
            # here, even while it is free (``_claim_names``)
            taken = stream.target
        if taken is not None:
            return self._conflict(stream, upload, taken, digest, commit)
        if stream.history == "replace":  # the chain it continues, replaced (``_chain_conflict``)
            return commit(overwrite=True)
        overwrite = self.options.on_conflict == "overwrite"
        replaced = None
        if overwrite:
            replaced = self._replaced_by_overwrite(stream, digest)  # never the source file itself
            # a history's chain file: the histories decide, not --on-conflict (a chain replaced by
            # one that lacks some of its generations would orphan their manifests)
            hist = self._chain_decides(stream, stream.target, found=False)
            if hist is not None and hist.relation != "new":
                return self._chain_conflict(stream, upload, stream.target, hist, commit)
            if replaced is not None and (
                # these very bytes there (--rehash, or a copy made by hand): nothing to replace
                (lane.caps.can_stat and self._already_there(stream, upload, stream.target, digest))
                # an earlier rename's copy of this file: not a second one at the name
                or self._found_beside(stream, upload, stream.target, digest)
            ):
                return None
        try:
            landed = commit(overwrite=overwrite)
        except TargetExists as exc:
            return self._conflict(stream, upload, exc.target, digest, commit)
        if replaced is not None:  # what the user asked for, never unsaid
            note = f"replaced {replaced} (--on-conflict overwrite)"
            self.log(f"{lane.name}: {landed.target}: {note}", "warning")
            stream.notes.append(note)
        return landed

    def _replaced_by_overwrite(self, stream: Stream, digest: str) -> str | None:
        """What ``--on-conflict overwrite`` is about to replace at the stream's target, as far as
        castoff can tell: a folder's entry (one stat), or the object castoff put at a bucket's key
        (the catalog's word: a write-only key cannot look). None when nothing, or the same bytes
        castoff put there. Raises ``ConflictError`` when it is the source file itself."""
        lane = stream.lane
        target = stream.target
        if lane.caps.can_stat:
            st = self._stat_at(lane, target)
            other = self._not_a_copy(stream, target, st)  # never the source file replaced by itself
            if other is not None:
                return other.removeprefix("is ").removesuffix(", not a file")  # "a symlink"
            if st is None:
                return None
            when = "" if st.mtime_ns is None else f", modified {self._minute(st.mtime_ns / 1e9)}"
            return f"the file that was there ({format_bytes(st.size)}{when})"
        known = self.catalog.object_at(lane.dest.ident, target)
        if known is None or known.blake3 == digest:
            return None
        return f"the object castoff put there on {self._minute(known.put_at)} (job {known.job_id})"

    def _conflict(
        self,
        stream: Stream,
        upload: Upload,
        existing: str,
        digest: str,
        do_commit: Callable[..., Landed],
    ) -> Landed | None:
        policy = self.options.on_conflict
        other = self._not_a_copy(stream, existing)
        if other is None and self._already_there(stream, upload, existing, digest):
            return None
        hist = self._chain_decides(stream, existing, found=True) if other is None else None
        if hist is not None:
            return self._chain_conflict(stream, upload, existing, hist, do_commit)
        if policy != "rename" and self._found_beside(stream, upload, existing, digest, other=other):
            return None
        shown = self._as_found(stream.lane, existing)
        busy = None if other is not None else self._busy(stream, existing)
        found = f"{shown}: {busy}" if busy else f"{shown} {other or 'exists with other content'}"
        damaged = None
        if other is None and busy is None and policy in ("skip", "fail"):  # (rename says it as it keeps both)
            damaged = self._damaged_copy(stream, existing, digest)
        if damaged is not None:  # not any other file: castoff's own copy, no longer those bytes
            stream.damaged = existing
            when = self._minute(damaged.verified_at)
            found = f"{existing} is the DAMAGED copy castoff verified there on {when}: no longer those bytes"
        if policy == "skip":
            self._drop_upload(stream, upload)
            # Not delivered: the file at the target is another one. Its own status, never
            # "skipped" (verified there before), so that no report, MHL or release counts it.
            kept = "" if busy else " kept it,"
            said = f"{found}:{kept} this file was NOT copied (--on-conflict skip)"
            self.log(f"{stream.lane.name}: {said}", "warning")
            self._end(stream, Outcome("conflict", detail=said))
            return None
        if policy == "fail":
            self._drop_upload(stream, upload)
            keep = "writes a good copy beside it" if damaged is not None else "keeps both"
            raise errors.ConflictError(found, hint=f"--on-conflict rename {keep}")
        if policy == "overwrite":
            return do_commit(target=existing, overwrite=True)
        return self._keep_both(
            stream, upload, existing, digest, do_commit, other=other, shown=shown, busy=busy
        )

    @staticmethod
    def _as_found(lane: Lane, existing: str, *, name_known: bool = False) -> str:
        """What is at ``existing``, named as the destination spells it (a drive that ignores case
        finds ``CASE.JPG`` at ``case.jpg``): what a message says is there. ``name_known``: castoff
        just put the file there under that name (only its folders may be spelt otherwise)."""
        as_found = getattr(lane.dest, "as_found", None)
        return existing if as_found is None else str(as_found(existing, name_known=name_known))

    def _found_beside(
        self, stream: Stream, upload: Upload, existing: str, digest: str, *, other: str | None = None
    ) -> bool:
        """A copy of this very file at one of the keep-both names of its target (``name (2).ext``,
        landed by an earlier ``--on-conflict rename``), found as rename finds it (``_keep_both``):
        already there, whatever ``--on-conflict`` says now; the policy applies only where no copy
        of this file is there (QA: ``--rehash --on-conflict skip`` said a file delivered beside
        the other one was NOT copied). The names are looked at in order up to the first free one,
        where rename would land it. ``existing``: what is at the target (``other``: what it is
        when no file), said again when castoff verified these bytes there before (damaged)."""
        lane = stream.lane
        if existing != stream.planned:
            return False
        room = name_room(
            stream.planned, max_name=getattr(lane.dest, "name_max", None), max_path=lane.caps.max_key_bytes
        )
        damaged: DamagedCopy | None = None
        for n in range(2, 10_000):
            alt = alt_target(stream.planned, n, max_name=room)
            if lane.caps.can_stat:
                if self._stat_at(lane, alt) is None:
                    if self._history_has_other(stream, alt, digest):
                        continue  # a name rename passes over (``_keep_both``)
                    return False
            elif not self._remembers_keys(lane) or self.catalog.object_at(lane.dest.ident, alt) is None:
                return False
            if n == 2 and other is None:  # a name beside it is taken: the one there may be damaged
                damaged = self._damaged_copy(stream, existing, digest)
            if self._already_there(stream, upload, alt, digest, damaged=damaged):
                return True
        return False

    def _chain_decides(self, stream: Stream, existing: str, *, found: bool) -> HistoryCopy | None:
        """``existing`` is a history's chain file, where a source history's chain file goes: how the
        two histories stand (``engine/histories.py``), which decides, not ``--on-conflict``. At a
        bucket, the chain there is the one the catalog says castoff put at that key; None when it
        knows none (``found``: something is known to be there), and the policy decides, as it did
        before castoff kept chains."""
        lane = stream.lane
        src = stream.file.src.abs_path
        if not (
            existing == stream.planned
            and existing.endswith("/" + CHAIN)
            and in_history(existing)
            and in_history(src)
        ):
            return None
        source_folder, dest_folder = src.rpartition("/")[0], existing.rpartition("/")[0]
        if lane.caps.is_local:
            return compare_histories(source_folder, dest_folder)
        hist = compare_sent(source_folder, dest_folder, self._sent_chain(lane, existing))
        if hist.relation != "unknown":
            return hist
        if found or self.catalog.object_at(lane.dest.ident, existing) is not None:
            self.log(
                f"{lane.name}: {existing}: the catalog has no record of the ASC MHL chain at this key"
                " (put there by an older castoff or another tool), so it cannot compare the source's"
                f" history with it: --on-conflict {self.options.on_conflict} applies",
                "warning",
            )
        return None

    def _sent_chain(self, lane: Lane, target: str) -> list[mhl.Generation] | None:
        """The generations of the chain castoff put at ``target`` of a bucket (the catalog's)."""
        gens = self.catalog.chain_sent(lane.dest.ident, target)
        return None if gens is None else [mhl.Generation(*g) for g in gens]

    def _chain_conflict(
        self,
        stream: Stream,
        upload: Upload,
        existing: str,
        hist: HistoryCopy,
        do_commit: Callable[..., Landed],
    ) -> Landed | None:
        """The source's chain file at a destination that has one: there already when that chain
        holds every generation of the source's; it replaces a chain it continues; two different
        histories are refused (compared now: what landed since planning counts)."""
        lane = stream.lane
        if hist.chain_replaces():
            said = hist.replaced(existing)
            self.log(f"{lane.name}: {said}")
            stream.notes.append(said)
            if not isinstance(stream.failed, TargetExists):
                return do_commit(target=existing, overwrite=True)
            # Refused before its bytes went out (the catalog, or If-None-Match on a small file,
            # stood for the key): sent again, as a deliberate replacement of that key.
            self._drop_upload(stream, upload)
            stream.history = "replace"
            stream.reset(keep_parts=False)
            self._restart(stream)
            return None
        self._drop_upload(stream, upload)
        if not hist.chain_is_there():
            raise hist.refusal(CHAIN) or errors.HistoryConflict(f"{existing} is not a history's chain file")
        stream.history = "kept"  # the key keeps the chain that was there: not what this file holds
        landed = Landed(target=existing, size=stream.file.src.size, verify_method=hist.said())
        self._landed(stream, landed, "already")
        return None

    def _keep_both(
        self,
        stream: Stream,
        upload: Upload,
        existing: str,
        digest: str,
        do_commit: Callable[..., Landed],
        *,
        other: str | None = None,
        shown: str | None = None,
        busy: str | None = None,
    ) -> Landed | None:
        """``--on-conflict rename``: this copy lands as ``name (N).ext``, the first N free, and
        the same N at each of the file's destinations: the first of them to keep it beside its
        name decides (``FileState.alt``), the others take that N too where it is free, and say
        so where they do not (``_same_alt``). A name another file goes to, anywhere the file
        goes, is not free (``_claim_names``). ``other``: what ``existing`` is when it is no file
        ("is a symlink, not a file"); ``shown``: ``existing`` as the destination spells it
        (``_as_found``); ``busy``: nothing is there yet, but another file goes to it (``_busy``)."""
        lane = stream.lane
        fs = stream.file
        shown = shown or existing
        damaged = None if other is not None or busy else self._damaged_copy(stream, existing, digest)
        if damaged is not None:
            stream.damaged = existing
        room = name_room(
            stream.planned, max_name=getattr(lane.dest, "name_max", None), max_path=lane.caps.max_key_bytes
        )
        # its other destinations still on the way, where the N claimed must be free for it too
        siblings = [s for s in fs.streams if s is stream or not s.ended] or [stream]
        first = max(stream.next_alt, fs.alt[0] if fs.alt is not None else 0)
        for n in range(first, 10_000):
            if self._claim_names(fs, siblings, n) is not None:
                continue  # another file goes to that name, here or at another of its destinations
            alt = alt_target(stream.planned, n, max_name=room)
            # a name that " (2)" makes too long there loses the end of its stem: said
            cut = f" (shortened to fit the destination's {room}-byte name limit)"
            shortened = cut if alt != alt_target(stream.planned, n) else ""
            if lane.caps.commit_can_retarget:
                if lane.caps.can_stat and lane.dest.stat(alt) is not None:
                    if self._already_there(stream, upload, alt, digest, damaged=damaged):
                        return None
                    continue
                if self._history_has_other(stream, alt, digest):
                    continue  # free, but the history has other bytes under it: the next one
                try:
                    landed = do_commit(target=alt)
                except TargetExists:
                    continue
                taken = self._same_alt(stream, n, room)
                if other is not None:
                    note = f"{shown} {other}: kept it, this copy is {landed.target}{shortened}{taken}"
                    self.log(f"{lane.name}: {note}", "warning")
                elif busy:
                    note = f"{shown}: {busy}: kept both, this copy is {landed.target}{shortened}{taken}"
                    self.log(f"{lane.name}: {note}", "warning")
                elif damaged is not None:
                    note = self._say_damaged(lane, damaged, landed.target, already=False) + shortened + taken
                elif shortened or taken:
                    note = (
                        f"{shown} exists with other content: kept both, this copy is"
                        f" {landed.target}{shortened}{taken}"
                    )
                    self.log(f"{lane.name}: {note}", "warning")
                else:
                    note = f"{shown} exists with other content: kept both"
                    self.log(f"{lane.name}: {note}, this copy is {landed.target}", "warning")
                stream.notes.append(note)
                return landed
            if self._remembers_keys(lane):
                if self.catalog.object_at(lane.dest.ident, alt) is not None:
                    if self._already_there(stream, upload, alt, digest, damaged=damaged):
                        return None
                    continue
                if self._claimed_by_another(lane, alt, stream.file.file_id):
                    continue
                if self._held_by_another_job(lane, alt):
                    continue
            if self._history_has_other(stream, alt, digest):
                continue
            # The key is fixed when the upload starts: send the file again under the new name
            # (and if that one is taken too, the next conflict tries the name after it).
            stream.next_alt = n + 1
            taken = self._same_alt(stream, n, room)
            self._drop_upload(stream, upload)
            if damaged is not None:
                stream.notes.append(self._say_damaged(lane, damaged, alt, already=False) + shortened + taken)
            elif busy:
                stream.notes.append(f"{shown}: {busy}: sending as {alt}{shortened}{taken}")
                self.log(
                    f"{lane.name}: {shown}: {busy}: sending this copy as {alt}{shortened}{taken}",
                    "warning",
                )
            else:
                stream.notes.append(f"{shown} exists: sending as {alt}{shortened}{taken}")
                self.log(
                    f"{lane.name}: {shown} exists: kept it, sending this copy as {alt}{shortened}{taken}",
                    "warning",
                )
            stream.target = alt
            stream.reset(keep_parts=False)
            self._restart(stream)
            return None
        raise errors.ConflictError(f"no free name for {existing}")

    def _history_has_other(self, stream: Stream, target: str, digest: str) -> bool:
        """Whether the destination's history knows the free name ``target`` with other bytes than
        ``digest``: a copy castoff verified there (the catalog's ``landed``, a bucket's
        ``objects``), or a path its ASC MHL history records, deleted since (a keep-both name
        the user removed). Such a name is not handed out again: the history would say two
        things of it. Asked only for a keep-both name that is free, never for a planned one."""
        lane = stream.lane
        ident = lane.dest.ident
        if self.catalog.landed_hashes_at(ident, target, stream.file.src.abs_path) - {digest}:
            return True
        known = self.catalog.object_at(ident, target)
        if known is not None and known.blake3 != digest:
            return True
        root = getattr(lane.dest, "root", None)
        if not lane.caps.is_local or root is None or not target.startswith(root.rstrip("/") + "/"):
            return False
        with self._state:
            names = self._history_names.get(ident)
        if names is None:
            try:
                names = mhl.recorded_names(Path(root))
            except (errors.HistoryError, OSError):
                names = {}  # a history that does not read: the generation says so, later
            with self._state:
                names = self._history_names.setdefault(ident, names)
        rel = target[len(root.rstrip("/")) + 1 :]
        return rel in names and names[rel] != digest

    def _same_alt(self, stream: Stream, n: int, room: int | None) -> str:
        """The stream's copy is kept as ``name (n).ext``: the file's N (``FileState.alt``) when no
        other destination of it took one before; else what differs, said (its N there is taken
        here, or was taken there while this one is free here)."""
        fs = stream.file
        with self._state:
            decided = fs.alt
            if decided is None or decided[1] == stream.lane.name:  # (a bucket's key taken since)
                fs.alt = (n, stream.lane.name)
                return ""
        first, where = decided
        if first == n:
            return ""
        name = alt_target(stream.planned, first, max_name=room)  # (as it would be here)
        if n > first:
            return f"; {name}, its name at {where}, is taken here"
        return f"; at {where} it is {name.rpartition('/')[2]}"

    def _damaged_copy(self, stream: Stream, existing: str, digest: str) -> DamagedCopy | None:
        """``existing``, which differs from the source, when castoff itself verified these very
        bytes there (bit rot, a bad drive, an edit in place): found now (and remembered, so that
        later jobs say it too), or by an earlier job. Else None, a plain conflict (another file of
        that name, or an older version of this one)."""
        lane = stream.lane
        row = self.catalog.landed_at(lane.dest.ident, stream.planned, stream.file.src.abs_path)
        if row is not None and row.target == existing and row.blake3 == digest:
            size = mtime_ns = None
            with contextlib.suppress(errors.CastoffError):
                st = lane.dest.stat(existing) if lane.caps.can_stat else None
                if st is not None:
                    size, mtime_ns = st.size, st.mtime_ns
            if mtime_ns is not None and not TIME_MIN_NS <= mtime_ns <= TIME_MAX_NS:
                mtime_ns = None  # a time the catalog cannot hold: unknown, so a re-run looks again
            copy = DamagedCopy(
                lane.dest.ident,
                existing,
                stream.planned,
                digest,
                row.verified_at,
                size,
                mtime_ns,
                time.time(),
                self.job_id,
            )
            self.catalog.record_damaged(copy)
            return copy
        known = self.catalog.damaged_at(lane.dest.ident, existing)
        return known if known is not None and known.blake3 == digest else None

    def _say_damaged(self, lane: Lane, copy: DamagedCopy, good: str, *, already: bool) -> str:
        """Warn that ``copy`` is damaged and ``good`` is the good copy; the outcome's detail."""
        when = self._minute(copy.verified_at)
        if copy.job_id == self.job_id:
            what = f"is DAMAGED or was changed: it no longer holds what castoff verified there on {when}"
        else:
            found = self._minute(copy.found_at)
            what = (
                f"is still DAMAGED or changed (found on {found}): it no longer holds what castoff"
                f" verified there on {when}"
            )
        good_is = f"the good copy is {good}" + (" (verified before)" if already else "")
        then = "compare them, then replace the damaged one"
        self.log(f"{lane.name}: {copy.target} {what}. Kept it; {good_is}: {then}", "warning")
        return f"{copy.target} {what}: kept it, {good_is}"

    @staticmethod
    def _stat_at(lane: Lane, target: str) -> ObjectStat | None:
        """What is at ``target`` (one stat): None when nothing is, or the destination cannot say."""
        if not lane.caps.can_stat:
            return None
        try:
            return lane.dest.stat(target)
        except errors.CastoffError:
            return None

    def _not_a_copy(
        self, stream: Stream, existing: str, st: ObjectStat | EllipsisType | None = ...
    ) -> str | None:
        """What ``existing`` is when it is no file, and so no copy ("is a symlink, not a file"),
        else None. ConflictError when it is the source file itself (the destination overlaps the
        source): the file fails there, it is never counted as copied. ``st``: its stat when the
        caller has it (None: nothing there), else it is taken here."""
        if st is ...:
            st = self._stat_at(stream.lane, existing)
        if st is None:
            return None
        src = stream.file.src
        if st.file_id == (src.dev, src.ino):
            raise errors.ConflictError(
                f"{existing}: the target is the source file itself, not a copy",
                hint="the destination overlaps the source: choose a destination outside it",
            )
        return None if st.not_a_file is None else f"is {st.not_a_file}, not a file"

    def _already_there(
        self,
        stream: Stream,
        upload: Upload,
        existing: str,
        digest: str,
        *,
        damaged: DamagedCopy | None = None,
    ) -> bool:
        """``existing`` holds these very bytes: read back or, where castoff cannot read, by the
        catalog's memory of what castoff put there. The upload is dropped and the file counts as
        already delivered. ``damaged``: the copy at the planned name is damaged, and ``existing``
        the good one an earlier job landed beside it: said again."""
        lane = stream.lane
        if self._not_a_copy(stream, existing) is not None:
            return False  # never read: a FIFO would hold the read for ever
        if lane.caps.can_read_back:
            # what was read is the answer: never the catalog's memory of another content there
            if not self._same_content(lane, existing, digest):
                return False
            method = "existing copy read back: blake3 match"
            if lane.caps.is_local:
                self._give_source_times(stream, existing)
        elif (known := self._known_same(lane, existing, digest)) is not None:
            method = self._put_there(known)
        else:
            return False
        self._drop_upload(stream, upload)
        if damaged is not None:
            stream.notes.append(self._say_damaged(lane, damaged, existing, already=True))
        self._landed(
            stream, Landed(target=existing, size=stream.file.src.size, verify_method=method), "already"
        )
        return True

    def _give_source_times(self, stream: Stream, existing: str) -> None:
        """A folder's copy found to hold the file's bytes takes the source's times, as a copy
        castoff writes does: a source touched since (new mtime, same bytes) would else have every
        later run find the copy's time other than the source's, and read both again, night after
        night (QA N #2). A drive that refuses says so in the log; the copy stays as it is."""
        src, lane = stream.file.src, stream.lane
        try:
            st = lane.dest.stat(existing)
            if st is None or st.mtime_ns is None or mtime_kept(st.mtime_ns, src.mtime_ns):
                return
            meta = ObjectMeta(
                rel_path=src.rel_path, size=src.size, mtime_ns=src.mtime_ns, atime_ns=src.atime_ns
            )
            lane.dest.give_times(existing, meta)
        except errors.CastoffError as exc:
            self.log(f"{lane.name}: {existing}: its times stay as they are: {exc.message}", "warning")

    @staticmethod
    def _refuse_commit(stream: Stream) -> Landed:
        raise errors.ConflictError(
            f"{stream.target} exists and this destination cannot replace it in place",
            hint="use --on-conflict rename or skip",
        )

    def _same_content(self, lane: Lane, target: str, digest: str) -> bool:
        try:
            with lane.dest.open_read(target) as fh:
                h = blake3.blake3(max_threads=blake3.blake3.AUTO)
                while block := fh.read(8 * MiB):
                    h.update(block)
            return bool(h.hexdigest() == digest)
        except (OSError, errors.CastoffError):
            return False

    def _restart(self, stream: Stream) -> None:
        with stream.lane.cond:
            stream.closing = False
        self._defer([stream])

    def _close_failed(self, stream: Stream, exc: BaseException) -> None:
        lane = stream.lane
        fs = stream.file
        upload = stream.upload
        if isinstance(exc, errors.CatalogError):  # the job stops: see _catalog_failed
            self._catalog_failed(exc)
        if self.cancel.is_set() or isinstance(exc, errors.Interrupted):
            self._end(stream, Outcome("incomplete", error=errors.Interrupted("interrupted")))
            if upload is not None and not lane.caps.resumable:
                upload.abort()
                self._drop_partial(stream)
            return
        exc = self._changed_since_read(stream, exc)  # (then a source's failure: not sent again)
        if (
            lane.dead is not None
            and isinstance(exc, errors.DestinationError)
            and not isinstance(exc, LANE_FATAL)
        ):
            # the destination went down meanwhile (a failing drive returns other bytes, then
            # refuses): not sent there again; the file ends as the lane's other files do, said once
            exc = lane.dead
        if exc is lane.dead and exc.retryable:  # it stopped answering: not tried again in this job
            self._end_incomplete(stream, exc)
            return
        if isinstance(exc, errors.CastoffError) and exc.left_at is not None:
            self._left_unread(stream, exc.left_at, exc)
        if isinstance(exc, errors.SourceError):
            self._source_failed_stream(stream, exc)
            return
        if not isinstance(exc, errors.CastoffError):
            text = "".join(traceback.format_exception(exc))
            self.log(f"{lane.name}: {stream.target}: internal error:\n{text}", "error")
            exc = errors.DestinationError(f"internal error: {exc!r}")
        can_retry = fs.status == "read" and not isinstance(exc, LANE_FATAL)
        if (
            exc.restartable
            and can_retry
            and stream.restarts < self.options.max_restarts
            and self._abort(stream)
        ):
            stream.restarts += 1
            lane.stats.restarts += 1
            fs.part_md5s = None  # the next read hashes again and re-checks the source's BLAKE3
            self._close_catalog_upload(stream)
            stream.notes.append(f"{exc}; sent again from the start")
            self.log(f"{lane.name}: {stream.target}: {exc}; sending it again", "warning")
            self._unsend(stream)
            stream.reset(keep_parts=False)
            self._restart(stream)
            return
        if exc.retryable and can_retry and lane.pauses < self.options.max_pauses:
            keep = lane.caps.resumable
            if upload is not None and not keep:
                upload.abort()
                self._drop_partial(stream)
            wait = self.options.lane_pause * (2**lane.pauses)
            with lane.cond:
                starts_pause = not lane.paused()
                if starts_pause:
                    lane.pauses += 1
                    lane.paused_until = time.monotonic() + wait
                    lane.landed_at_pause = lane.stats.bytes_done
            if starts_pause:  # the files that meet the same pause wait in it silently
                self.log(
                    f"{lane.name}: {exc}; pausing this destination {wait:.0f}s, then trying"
                    " again (the others carry on; Ctrl-C ends the job, a re-run sends the rest)",
                    "warning",
                )
            else:
                self.log(f"{lane.name}: {stream.target}: {exc}; waits for the pause", "debug")
            if not keep:
                self._unsend(stream)
            stream.reset(keep_parts=keep)
            self._restart(stream)
            return
        if isinstance(exc, LANE_FATAL):
            self._lane_down(lane, exc)
        elif self._stopped_answering(lane, exc, fs.file_id):  # said with this file's end (``_said_gave_up``)
            self._mark_down(lane, exc, at_start=False, about=stream.target)
        if lane.caps.resumable and upload is not None and exc.retryable:
            self._end_incomplete(stream, exc)
            return
        if self._abort(stream):
            self._close_catalog_upload(stream)
        self._end(stream, Outcome("failed", error=exc))

    @staticmethod
    def _unsend(stream: Stream) -> None:
        """The parts ``stream`` sent are thrown away (it starts over): off the progress bar's
        bytes done (QA: 19.0/19.0 MiB while the file was sent a second time), and the parts an
        earlier job sent, resumed, back on what there is to send."""
        lane = stream.lane
        with lane.lock:
            sent = sum(p.size for p in stream.receipts.values())
            lane.stats.bytes_done -= sent - stream.resumed_bytes
            lane.stats.bytes_resumed -= stream.resumed_bytes

    def _left_unread(self, stream: Stream, key: str, exc: errors.CastoffError) -> None:
        """The object at ``key`` was put and proven by its checksums, but the read-back failed
        (a key without s3:GetObject): the file is not verified there, but castoff put these bytes
        at that key, and the catalog says so, so that a later run neither replaces them without a
        word (a changed file keeps both) nor sends them again (the same file: already there)."""
        fs, lane = stream.file, stream.lane
        if fs.digest is None:
            return
        self.catalog.record_object(
            lane.dest.ident, key, blake3=fs.digest, size=fs.src.size, job_id=self.job_id
        )
        stream.notes.append(f"{key}: put, proven by its checksums, but not read back: {exc.message}")
        self._drop_partial(stream)
        self._close_catalog_upload(stream)  # complete: nothing to abort, nothing to resume
        stream.upload = None

    def _end_incomplete(self, stream: Stream, exc: errors.CastoffError) -> None:
        """``stream`` ends for trouble a re-run can outlast: its resumable upload is kept (the
        re-run continues it), any other is aborted and its partial file dropped."""
        upload = stream.upload
        if upload is not None and stream.lane.caps.resumable:
            done, n = len(stream.receipts), stream.file.n_parts
            # (no part out yet: nothing to resume, the re-run simply sends it)
            detail = f"resumable: {done}/{n} parts uploaded; re-run to continue" if done else None
            self._end(stream, Outcome("incomplete", error=exc, detail=detail))
            return
        if upload is not None and self._abort(stream):
            self._close_catalog_upload(stream)
        self._end(stream, Outcome("incomplete", error=exc))

    def _source_failed_stream(self, stream: Stream, exc: errors.SourceError) -> None:
        """A stream failed for its source (changed, unreadable): its upload aborted, a resumed one
        whose next part never went out too (QA H #6: else left at the bucket, listed by nothing;
        one castoff cannot abort stays in the catalog, for 'castoff uploads')."""
        self._abort_for_source(stream)
        self._end(stream, Outcome("failed", error=exc))

    def _abort_for_source(self, stream: Stream) -> None:
        """The stream's upload, begun or resumed (an earlier job's, whose next part never went
        out), aborted and off the catalog: its source is not sent. One castoff cannot abort
        stays in the catalog, for 'castoff uploads'."""
        lane = stream.lane
        if stream.upload is None and stream.resume_token is not None:
            try:
                lane.dest.abort_token(stream.target, stream.resume_token)
            except errors.CastoffError as why:
                self.log(f"{lane.name}: could not abort the old upload of {stream.target}: {why}", "warning")
                return
        if self._abort(stream):
            self._close_catalog_upload(stream)

    def _abort(self, stream: Stream) -> bool:
        """Abort the stream's upload; False when the destination refuses (an expired key, a key
        without s3:AbortMultipartUpload): the catalog then keeps it for 'castoff uploads'."""
        if stream.upload is None:
            return True
        try:
            stream.upload.abort()
        except errors.CastoffError as exc:
            stream.notes.append(
                f"the unfinished upload could not be aborted ({exc}); 'castoff uploads' lists it"
            )
            self.log(f"{stream.lane.name}: {stream.target}: could not abort the upload: {exc}", "warning")
            return False
        self._drop_partial(stream)
        return True

    def _drop_upload(self, stream: Stream, upload: Upload) -> None:
        """The conflict handling's end of an upload that will not land where it was started: aborted,
        its partial file forgotten, and its catalog row closed (else 'castoff uploads' would list an
        upload the server no longer has)."""
        upload.abort()
        self._drop_partial(stream)
        self._close_catalog_upload(stream)

    def _close_catalog_upload(self, stream: Stream) -> None:
        if stream.upload_pk is not None:
            self.catalog.close_upload(stream.upload_pk)
            stream.upload_pk = None

    def _drop_partial(self, stream: Stream) -> None:
        """The stream's partial file is gone (named, or removed): off the catalog. Not one whose
        removal failed (the share dropped): the next run here removes it (``_clean_partials``)."""
        upload = stream.upload
        if upload is None or getattr(upload, "left_behind", False):
            return
        partial = upload.token.get("partial")
        if isinstance(partial, str):
            self.catalog.drop_partial(stream.lane.dest.ident, partial)

    def _landed(self, stream: Stream, landed: Landed, status: str) -> None:
        if landed.sync_later is not None:
            # Named, not yet durable: it counts once its folder is synced, before the group's
            # commit (the reader's, the only thread that defers: nothing else touches the list).
            self._unsynced.append((stream, landed, status))
            return
        self._record_landed(stream, landed, status)

    def _sync_landed(self) -> None:
        """Before the reader's group commits: sync each folder where it landed files, once, then
        confirm those syncs, once for each destination (``confirm_folders``), and only then
        record those files as landed (or, where the sync failed, as failed)."""
        if not self._unsynced:
            return
        waiting, self._unsynced = self._unsynced, []
        synced: dict[tuple[str, str], BaseException | None] = {}
        named: dict[str, tuple[Destination, dict[str, str]]] = {}  # by destination: {folder: a file}
        for stream, landed, _ in waiting:
            folder = landed.sync_later
            assert folder is not None
            dest = stream.lane.dest
            key = (dest.ident, folder)
            if key not in synced:
                synced[key] = self._durable(folder, functools.partial(dest.sync_folder, folder))  # type: ignore[attr-defined]
                if synced[key] is None:
                    named.setdefault(dest.ident, (dest, {}))[1][folder] = landed.target
        for ident, (dest, files) in named.items():
            confirmed = self._durable(", ".join(files), functools.partial(dest.confirm_folders, files))  # type: ignore[attr-defined]
            if confirmed is not None:
                synced.update(dict.fromkeys(((ident, folder) for folder in files), confirmed))
        for stream, landed, status in waiting:
            try:
                failure = synced[(stream.lane.dest.ident, landed.sync_later or "")]
                if failure is None:
                    self._record_landed(stream, landed, status)  # its sync_later is done
                else:
                    self._drop_partial(stream)
                    if isinstance(failure, LANE_FATAL):
                        self._lane_down(stream.lane, failure)
                    self._end(stream, Outcome("failed", error=failure))
            except BaseException as exc:
                self._close_broken(stream, exc)

    @staticmethod
    def _durable(folder: str, sync: Callable[[], None]) -> BaseException | None:
        """``sync()``: a folder's fsync, or the confirmation of those of a destination: None, or
        why it failed (the files named there may not stay so)."""
        try:
            sync()
        except errors.CastoffError as exc:
            return exc
        except Exception as exc:
            return errors.DestinationError(
                f"cannot make the new names in {folder} durable: {exc}",
                hint="a re-run reads back what is there and copies what is not",
            )
        return None

    def _record_landed(self, stream: Stream, landed: Landed, status: str) -> None:
        if not self._claim(stream):  # the job ended first: named, not recorded (a re-run finds it)
            return
        fs = stream.file
        lane = stream.lane
        digest = fs.digest
        assert digest is not None
        src = fs.src
        target = landed.target
        if getattr(lane.dest, "may_fold_case", False):
            # a drive that ignores case keeps the spelling it has (``docs/A.txt`` found, or put,
            # in its ``Docs`` folder, at its ``a.txt``): the catalog and the ASC MHL history say
            # what is there, else both call the file missing there. A file castoff just made
            # there has the name it was given (one it replaced may keep the old one's)
            made = status == "verified" and self._claims
            target = self._as_found(lane, target, name_known=made)
        now = time.time()
        notes = [*stream.notes, landed.detail] if landed.detail else stream.notes
        if status == "verified" and stream.read_from and stream.resumed_bytes < src.size:
            notes = [f"sent from the verified copy {stream.read_from}", *notes]  # (not the source)
        if landed.say_once is not None:
            self.log(f"{lane.name}: {landed.say_once}", "warning")
        out = Outcome(
            status,
            verify_method=landed.verify_method,
            etag=landed.etag,
            detail="; ".join(notes) or None,
            verified_at=now,
            damaged=stream.damaged,
            resumed=stream.resumed_bytes,
        )
        stream.target = target
        chain = self._chain_landed(stream, target, digest)
        # What landed where, and the outcome, in one transaction: a crash keeps both or neither.
        # Only catalog writes inside: other locks are taken after it (never the other way round).
        with self.catalog.batch():
            if stream.upload is not None:
                self._drop_partial(stream)
            if stream.upload_pk is not None:
                self._close_catalog_upload(stream)
            if self._claims:
                self._let_go(stream, landed.target)  # (the name claimed, as it was spelt)
            self.catalog.record_landed(
                LandedRow(  # by position: the columns' order
                    lane.dest.ident,
                    stream.planned,
                    target,
                    src.abs_path,
                    src.size,
                    src.mtime_ns,
                    digest,
                    landed.etag,
                    landed.verify_method,
                    now,
                    self.job_id,
                )
            )
            if not lane.caps.is_local and stream.history != "kept":  # castoff put it: it cannot read it back
                self.catalog.record_object(
                    lane.dest.ident, target, blake3=digest, size=src.size, job_id=self.job_id
                )
                if chain is not None:
                    self.catalog.record_chain(digest, chain)
            self._store(lane, fs, target, out)
        if lane.caps.is_local and lane.caps.can_read_back:  # a lagging destination may read it
            fs.copies.append(VerifiedCopy(lane, stream.planned, target, status, now))
        self._tell(lane, fs, target, out)
        self._stream_closed(stream)

    @staticmethod
    def _chain_landed(stream: Stream, target: str, digest: str) -> list[tuple[int, str, str]] | None:
        """The generations of a history's chain file that landed at a bucket's ``target`` with
        these bytes, for the catalog to compare later runs with (``Catalog.record_chain``); read
        again (a few kilobytes) from the source, or the verified local copy it was sent from:
        None when neither holds these bytes now."""
        src = stream.file.src.abs_path
        if (
            stream.lane.caps.is_local
            or stream.history == "kept"
            or target.rpartition("/")[2] != CHAIN
            or not in_history(target)
            or not in_history(src)
        ):
            return None
        for path in dict.fromkeys((stream.file.local_copy or src, src)):
            try:
                data = Path(path).read_bytes()
                if blake3.blake3(data).hexdigest() == digest:
                    return [(g.number, g.name, g.c4) for g in mhl.parse_chain(data, path)]
            except (OSError, errors.HistoryError):
                continue
        return None

    def _claim(self, stream: Stream) -> bool:
        """The right to record the stream's outcome, taken once: a stopped job records what its
        threads left unfinished (``_record_interrupted``), and a thread that finishes later then
        records nothing: a file gets one outcome, one ``file-done``, and none after the job ended."""
        with self._state:
            if stream.ended:
                return False
            stream.ended = True
            return True

    def _end(self, stream: Stream, out: Outcome) -> None:
        if not self._claim(stream):
            return
        if out.detail is None and stream.notes:
            out = replace(out, detail="; ".join(stream.notes))
        if out.damaged is None and stream.damaged is not None:
            out = replace(out, damaged=stream.damaged)
        self._record(stream.lane, stream.file, stream.target, out)
        self._stream_closed(stream)

    def _stream_closed(self, stream: Stream) -> None:
        with self._state:
            if stream not in self._open:
                return  # already ended (a close that failed after its outcome was recorded)
            if stream.lane.caps.is_local:
                stream.file.pending_local -= 1
            self._open_streams -= 1
            self._open.discard(stream)
            self._wake_waiters_locked()

    def _record(self, lane: Lane, fs: FileState, target: str, out: Outcome) -> None:
        self._store(lane, fs, target, out)
        self._tell(lane, fs, target, out)

    @staticmethod
    def _error_text(out: Outcome) -> tuple[str | None, str | None]:
        error = out.error
        if error is None:
            return None, None
        code = error.code if isinstance(error, errors.CastoffError) else "internal"
        return str(error), code

    def _store(self, lane: Lane, fs: FileState, target: str, out: Outcome) -> None:
        err_text, code = (None, None) if out.error is None else self._error_text(out)
        self.catalog.set_outcome(
            self.job_id,
            fs.file_id,
            dest_ident=lane.dest.ident,
            dest_name=lane.name,
            target=target,
            status=out.status,
            verify_method=out.verify_method,
            etag=out.etag,
            error=err_text,
            error_code=code,
            detail=out.detail,
            verified_at=out.verified_at,
            damaged=out.damaged,
            resumed=out.resumed or None,
        )

    def _tell(self, lane: Lane, fs: FileState, target: str, out: Outcome) -> None:
        """The counters, the log and the event for an outcome already in the catalog."""
        status = out.status
        err_text = None if out.error is None else self._error_text(out)[0]
        st = lane.stats
        with lane.lock:  # the condition's lock: nothing is waited for or woken here
            if status == "skipped":  # a re-run's, one a file
                st.files_done += 1
                st.skipped += 1
            elif status in ("verified", "already"):
                st.files_done += 1
                setattr(st, status, getattr(st, status) + 1)
            elif status == "failed":
                st.failed += 1
                if isinstance(out.error, errors.DestinationFull):  # (``_say_left_full``)
                    lane.files_left_full += 1
                    lane.bytes_left_full += fs.src.size
            elif status == "incomplete":
                st.incomplete += 1
            elif status == "conflict":
                st.conflict += 1
            if out.damaged is not None:
                st.damaged += 1
        if status in ("failed", "incomplete") and not isinstance(out.error, errors.SourceError):
            # (a source's failure is said once, by ``_source_failed``, not once per destination;
            # a destination that went down is said once, by ``_lane_down``, not once per file;
            # Ctrl-C, by the job's end: "interrupted: re-run the same command …")
            said = (
                isinstance(out.error, errors.Interrupted)  # the job's end says it, once
                or self._said_by_lane(lane, out.error)
                or self._said_gave_up(lane, fs, status, out.error)
            )
            level = "debug" if said else "error"
            if level == "error" or self._debug:
                rel = fs.src.rel_path
                text = _without_path(rel, err_text or "")
                self.log(f"{lane.name}: {_shown_path(rel)}: {status}: {text}", level)
        if not self._file_events:
            return
        self.emit(
            "file-done",
            rel_path=fs.src.rel_path,
            dest=lane.name,
            target=target,
            status=status,
            size=fs.src.size,
            blake3=fs.digest,
            verify_method=out.verify_method,
            etag=out.etag,
            error=err_text,
            detail=out.detail,
            damaged=out.damaged,
        )

    def _said_gave_up(self, lane: Lane, fs: FileState, status: str, error: BaseException | None) -> bool:
        """A file that ends at ``lane`` with an error that trying again could have mended
        (unreachable, timeouts, 5xx), once the retries and pauses ran out, ended so because of
        the destination, not of the file: said once (here, the first time), the files after it
        are detail (``--debug``, ``--json``, the report), as a lane that went down is. True:
        said, now or before."""
        if not (isinstance(error, errors.CastoffError) and error.retryable):
            return False
        with lane.lock:
            first, lane.gave_up = not lane.gave_up, True
        if first:
            rel = fs.src.rel_path
            others = any(ln.dead is None for ln in self.lanes if ln is not lane)
            further = (
                "no more files go there in this job; each one is in the report as incomplete"
                if lane.dead is not None  # ``_stopped_answering``
                else "each further file this destination does not take in this job is in the report"
                " (incomplete or failed)"
            )
            self.log(
                f"{lane.name}: {_without_path(rel, str(error))}; still failing after retrying"
                f"{' and pausing' if lane.pauses else ''}: {rel} is {status} there; {further},"
                f" not said one by one here{'; the other destinations carry on' if others else ''}."
                " Once it answers, a re-run of the same command sends what is missing.",
                "error",
            )
        return True

    # -- the source can be released -----------------------------------------------------------

    def _check_released(self) -> None:
        with self._state:
            self._check_released_locked()

    def _check_released_locked(self) -> None:
        if self._released or not self._reading_done or self.cancel.is_set() or self.files == self._withdrawn:
            return  # (nothing was copied from a source with no file: no reason to release it)
        if self._failed_unsent:
            return
        local = [ln for ln in self.lanes if ln.caps.is_local]
        if not local:
            return
        for ln in local:
            st = ln.stats
            if st.failed or st.incomplete or st.files_done < st.files_total:
                return
        uploads_left = (
            any(g for g in self._catchup if any(not s.lane.caps.is_local for s in g))
            or any(ln.queued_bytes for ln in self.lanes if not ln.caps.is_local)
            or self._open_streams > 0
        )
        # said by _call_on_released, once on_released has written what needs the source (its
        # ASC MHL generation with --mhl-source) and what a job killed after the word must leave
        self._release_said = {
            "remaining_streams": self._open_streams if uploads_left else 0,
            "damaged": self._damaged_locally(),
        }
        self._released = self._release_due = True

    def _damaged_locally(self) -> int:
        """Files whose earlier copy at a local destination is damaged (each has a good one too)."""
        return sum(ln.stats.damaged for ln in self.lanes if ln.caps.is_local)

    def _record_interrupted(self, *, say: bool = True) -> None:
        with self._state:
            left = list(self._open)
        for stream in left:
            if not self._claim(stream):
                continue
            lane = stream.lane
            note = "interrupted; re-run to continue"
            with lane.lock:
                busy = stream.busy > 0
            if lane.caps.resumable and stream.receipts:
                note += f" ({len(stream.receipts)}/{stream.file.n_parts} parts uploaded)"
            elif stream.upload is not None and not lane.caps.resumable and not busy:
                # (a thread still inside a write or a commit of it, past the wait for the lanes,
                # keeps its file: closing it here would close a descriptor that thread still
                # uses, or one another file got since; that thread ends it, recording nothing)
                try:
                    stream.upload.abort()
                    self._drop_partial(stream)
                except errors.CastoffError:
                    pass
            try:
                self._record(
                    lane,
                    stream.file,
                    stream.target,
                    Outcome("incomplete", error=errors.Interrupted("interrupted"), detail=note),
                )
            finally:
                self._stream_closed(stream)
        if say:
            self.log("interrupted: re-run the same command to continue where it stopped", "warning")
