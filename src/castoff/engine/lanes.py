"""A lane: one destination's queue of parts, its worker threads and its committer.

A stream is one file on its way through one lane. Every change to a stream's state happens under
its lane's lock (its condition's), so the reader, the workers and the committer agree on what is
left to do.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from castoff import errors
from castoff.destinations.base import (
    SMALL_PART,
    Destination,
    ObjectMeta,
    PartReceipt,
    ResumeToken,
    Upload,
    end_call,
    watch_call,
)
from castoff.engine.budget import Chunk
from castoff.scan import SourceFile

if TYPE_CHECKING:
    from castoff.catalog.db import LandedRow
    from castoff.engine.pacing import RateLimiter
    from castoff.layout.planner import DestPlan, FilePlan

#: files a lane may have written and not yet committed (see ``Lane._work``)
MAX_COMMIT_BACKLOG = 64
#: a local file up to this size is committed (read back, renamed) by the writer that wrote it
INLINE_COMMIT_MAX = 1024 * 1024
#: threads that commit the small files of a local destination whose fsyncs wait for a device
#: (``LocalDestination.slow_sync``: a disk, a NAS); a journaling filesystem joins fsyncs made at
#: once into one journal commit, so N of them cost about what one does
SYNC_COMMITTERS = 8


@dataclass(eq=False)
class FileState:
    """One source file in this job, shared by all its streams."""

    src: SourceFile
    file_id: int
    part_size: int
    n_parts: int
    digest: str | None = None
    md5: str | None = None
    xxh128: str | None = None
    #: each part's MD5 from the first read, kept for a bucket-only multipart file (see
    #: ``Engine._read_parts``); None when not kept or no longer trusted
    part_md5s: list[bytes] | None = None
    #: pending, read, failed; vanished: deleted before its read, left out (``Engine._leave_out_deleted``)
    status: str = "pending"
    error: errors.CastoffError | None = None
    #: the source's change time as this job's read of it found it (its one read, or the first of
    #: a bucket-only file's two): a later read's bytes that a destination refuses are the source's
    #: change when it moved since (``Engine._changed_since_read``); None: not read in this job
    ctime_ns: int | None = None
    #: that change of the source was said (once, whichever read or destination found it first)
    said_changed: bool = False
    #: the read has ended (or was not needed); read by the catch-up thread under the engine's
    #: state lock, and set before it is taken to wake that thread (never waited on by itself)
    read_done: bool = False
    #: the verified local copies a lagging destination may read from, the first first: landed in
    #: this job or verified there by an earlier one (skipped); one that fails is dropped
    copies: list[VerifiedCopy] = field(default_factory=list)
    pending_local: int = 0  # local streams not yet at an end
    streams: list[Stream] = field(default_factory=list)
    plan: FilePlan | None = None  # where the layout puts it (JobOptions.planner)
    #: what the last upload started for it was told (``Engine._ensure_started``): the next
    #: destination's upload shares it when it would be told the same
    meta: ObjectMeta | None = None
    #: the BLAKE3 an earlier job read at the same path, size and mtime, taken as this file's
    known_blake3: str | None = None
    #: the destinations skipped for holding the copy verified on that earlier read: (lane,
    #: target, the outcome recorded), told again if this job's read finds other bytes
    skipped: list[tuple[Lane, str, Any]] = field(default_factory=list)
    #: this job found it changed in place (other bytes than ``known_blake3``): said once
    changed_in_place: errors.SourceChangedInPlace | None = None
    #: the source is a copy castoff verified at a local destination (``castoff copy SSD_FOLDER``),
    #: found at its path with the size and mtime verified then: its read must find that BLAKE3
    verified_here: LandedRow | None = None
    #: this job found that copy damaged (other bytes than ``verified_here``'s): said once
    damaged_here: errors.SourceDamaged | None = None
    #: another file is going to its planned name at one of its destinations, found when it was
    #: planned (``Engine._claim_names``): who ("job ID", or None: another file of this job) and
    #: where (that destination's name). Every destination keeps it beside that name, under one
    #: name (``Engine._keep_both``)
    held: tuple[str | None, str] | None = None
    #: the N of ``name (N).ext`` that the first of its destinations to keep both took, and that
    #: destination's name: the others take it too where it is free (``Engine._keep_both``)
    alt: tuple[int, str] | None = None

    @property
    def local_copy(self) -> str | None:
        """The verified copy the next catch-up read reads, None: the source."""
        copies = self.copies
        return copies[0].path if copies else None


@dataclass(frozen=True, eq=False)
class VerifiedCopy:
    """A copy of a file verified at a local destination, which a catch-up read may read instead
    of the source; found damaged there, it is that destination's outcome (``Engine._copy_failed``)."""

    lane: Lane
    planned: str
    path: str  # the target, an absolute path
    status: str  # its outcome in this job: verified, already or skipped
    verified_at: float


@dataclass(eq=False)
class Stream:
    """One file to one destination."""

    lane: Lane
    file: FileState
    planned: str  # the target the layout chose
    target: str  # where it is going now (differs after a conflict rename)
    upload: Upload | None = None
    upload_pk: int | None = None  # catalog row of a resumable upload
    #: catalog row saying its multipart upload is being created (``Catalog.intend_upload``)
    intent: int | None = None
    resume_token: ResumeToken | None = None
    #: the BLAKE3 the resumed upload was begun for (its object's metadata says it), when known
    resume_blake3: str | None = None
    receipts: dict[int, PartReceipt] = field(default_factory=dict)
    inflight: set[int] = field(default_factory=set)
    queued: int = 0  # tasks in the lane's queue or in a worker
    feeding: bool = False  # a reader is pushing its parts right now
    finished: bool = False  # every part was handed over by the last feed
    closing: bool = False  # handed to the committer
    #: threads inside a put or the close of this stream right now (under the lane's lock): a
    #: stopped job leaves such a stream's file to that thread (``Engine._record_interrupted``)
    busy: int = 0
    #: its outcome is recorded: nothing records another (``Engine._claim``; under the engine's
    #: state lock)
    ended: bool = False
    failed: BaseException | None = None
    restarts: int = 0
    resumed_parts: int = 0
    resumed_bytes: int = 0  # of those parts: sent by an earlier job, not by this one
    notes: list[str] = field(default_factory=list)
    #: the verified local copy its last catch-up read was of (None: the source); said in the
    #: detail of the outcome only when that read sent it (``Engine._record_landed``)
    read_from: str | None = None
    #: castoff's earlier copy at the planned name, found damaged (``Engine._keep_both``)
    damaged: str | None = None
    #: the next " (N)" to try after a conflict at a bucket whose key is fixed at the start
    next_alt: int = 2
    #: a history's chain file, as its history decided (``Engine._chain_conflict``): "replace" (it
    #: continues the chain there: sent to replace it) or "kept" (the chain there holds every
    #: generation of this one: counted there, and the key keeps what it held)
    history: str | None = None
    dest_plan: DestPlan | None = None  # the layout at this destination: name rules, metadata
    start_lock: threading.Lock = field(default_factory=threading.Lock)

    def wants(self, index: int) -> bool:
        return (
            self.feeding and self.failed is None and index not in self.receipts and index not in self.inflight
        )

    def reset(self, *, keep_parts: bool) -> None:
        """Ready the stream for another feed; with ``keep_parts`` the upload continues."""
        if not keep_parts:
            self.upload = None
            self.upload_pk = None
            self.resume_token = None
            self.resume_blake3 = None
            self.resumed_parts = 0
            self.resumed_bytes = 0
            self.receipts.clear()
        self.inflight.clear()
        self.failed = None
        self.finished = False
        self.closing = False


@dataclass
class LaneStats:
    files_total: int = 0
    bytes_total: int = 0
    files_done: int = 0  # verified + already + skipped
    bytes_done: int = 0  # bytes sent (parts landed) for this job
    bytes_skipped: int = 0  # of files verified there before: a re-run sends none of them
    bytes_resumed: int = 0  # parts an earlier job sent, of the uploads this job resumes
    verified: int = 0
    already: int = 0
    skipped: int = 0
    failed: int = 0
    incomplete: int = 0
    conflict: int = 0  # another file at the target, kept (--on-conflict skip): this one not copied
    #: files whose earlier verified copy here is damaged (kept); each has a good copy too, so it
    #: is counted as verified, already or skipped as well
    damaged: int = 0
    restarts: int = 0


class Lane:
    """One destination's worker threads, its queue and its committer."""

    def __init__(
        self,
        dest: Destination,
        *,
        put: Callable[[Stream, Chunk], None],
        close: Callable[[Stream], None],
        cancel: threading.Event,
        limiter: RateLimiter | None = None,
    ) -> None:
        self.dest = dest
        self.caps = dest.caps
        lock = threading.RLock()
        #: the lock under ``cond``: a section that neither waits nor wakes anyone takes it
        #: directly (a Condition's own ``with`` adds two Python calls each way)
        self.lock = lock
        self.cond = threading.Condition(lock)
        #: the workers wait here, on the same lock: a new part wakes one of them, not every
        #: thread of the lane (a wake-up is a thread switch, and a lane may have 8 workers)
        self._work_ready = threading.Condition(lock)
        self.queue: deque[tuple[Stream, Chunk]] = deque()
        self.queued_bytes = 0
        #: queued bytes per memory budget (by id): the reader waiting on a budget asks who holds it
        self.queued_by: dict[int, int] = {}
        #: readers waiting for this (remote) lane's queue to shrink: only then does taking a part
        #: wake anyone (a wake-up is a thread switch, dear in a VM, and a small file has several)
        self.room_waiters = 0
        self.commits: deque[Stream] = deque()
        #: small files of a slow-syncing local destination, for the sync committers (``_hand_on``)
        self.small_commits: deque[Stream] = deque()
        self._small_ready = threading.Condition(lock)
        self._sync_committers: list[threading.Thread] = []
        self.stats = LaneStats()
        #: what castoff may write at a local destination, as its preflight found it (None: not
        #: known, or not local); the bytes of the files planned to go there, not found there before;
        #: and whether it was said that they will not fit (``Engine._plan_space``)
        self.free_bytes: int | None = None
        self.bytes_planned = 0
        self.space_said = False
        #: the files (and their bytes) that did not go there because it was full
        self.files_left_full = 0
        self.bytes_left_full = 0
        self.backlog = 0  # streams of this lane waiting for a catch-up feed
        self.active = 0  # threads of this lane inside a put or a close right now
        #: the destination stopped taking files (gone, full, read-only, a bucket that refuses the
        #: key): no more parts go there in this job; set once, by ``Engine._lane_down``
        self.dead: errors.CastoffError | None = None
        #: it was unusable before any file (its preflight failed)
        self.down_at_start = False
        #: it went down with a call there that never returned (``Engine._leave_hung``)
        self.hung = False
        #: target → file id: the names this job's files are going to here and are not there yet
        #: (``Engine._claim_names``: claimed when a file is planned, let go when it lands); under
        #: ``lock``
        self.claimed: dict[str, int] = {}
        self.paused_until = 0.0
        self.pauses = 0
        #: ``stats.bytes_done`` when the last pause began: nothing landed since, and the pauses
        #: spent, the destination stopped answering (``Engine._stopped_answering``)
        self.landed_at_pause: int | None = None
        #: the files whose calls failed here since its last answer (under ``lock``)
        self.failing: set[int] = set()
        #: retrying since its last success: the console heard of it once, the rest is detail
        self.troubled = False
        #: a file ended here with trouble the retries and pauses did not outlast (unreachable,
        #: timeouts, 5xx): said once, the files after it are detail; over when a call succeeds
        self.gave_up = False
        self.limiter = limiter
        #: when each call into the destination under way began (a part's write, a file's commit:
        #: fsync, read-back, rename), by a number of its own (``oldest_call``)
        self._calls: dict[int, float] = {}
        self._call_numbers = itertools.count()
        #: the reader may write, verify and name small files here itself (``Engine._inline``): a
        #: local folder, but not one on a network or FUSE share, where a call may take seconds or
        #: never return, and the reader, and every destination with it, would wait for it (set
        #: by ``start``, once the preflight found the filesystem)
        self.reader_writes = self.caps.is_local
        self._put = put
        self._close = close
        self._cancel = cancel
        self._stopping = False
        #: workers that may carry a part bigger than SMALL_PART at once, and how many do now
        self._big_slots = max(1, self.caps.concurrency)
        self._big_busy = 0
        n = max(self._big_slots, self.caps.small_concurrency)
        self._threads = [
            threading.Thread(target=self._work, name=f"{dest.name}-w{i}", daemon=True) for i in range(n)
        ]
        self._threads.append(
            threading.Thread(
                target=self._commit_loop,
                args=(self.commits, self.cond),
                name=f"{dest.name}-commit",
                daemon=True,
            )
        )

    @property
    def name(self) -> str:
        return self.dest.name

    def start(self) -> None:
        """After the destination's preflight (which found its filesystem)."""
        self.reader_writes = self.caps.is_local and not getattr(self.dest, "on_network", False)
        for t in self._threads:
            t.start()

    def stop(self, timeout: float = 30.0) -> None:
        with self.lock:
            self._stopping = True
            self.cond.notify_all()
            self._work_ready.notify_all()
            self._small_ready.notify_all()
            threads = [*self._threads, *self._sync_committers]
        deadline = time.monotonic() + timeout
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))

    def oldest_call(self) -> float | None:
        """When the oldest call into the destination still under way began (``time.monotonic``),
        None when none is: a share that stopped answering holds one for good."""
        return min(self._calls.copy().values(), default=None)

    def commit_backlog(self) -> int:
        """Files written here and waiting for a committer (read without the lock: a hint)."""
        return len(self.commits) + len(self.small_commits)

    def _syncs_slowly(self, stream: Stream) -> bool:
        """A small file of a local destination whose fsyncs wait for a device: its commit goes
        to the sync committers, not to the thread that wrote it (``SYNC_COMMITTERS``)."""
        return (
            self.caps.is_local
            and stream.file.src.size <= INLINE_COMMIT_MAX
            and getattr(self.dest, "slow_sync", False)
        )

    def _hand_on(self, stream: Stream) -> None:
        """Under ``cond``: give a stream that nothing more can change to a committer."""
        if stream.failed is None and self._syncs_slowly(stream) and self._sync_committer_ready():
            self.small_commits.append(stream)
            self._small_ready.notify()
            return
        self.commits.append(stream)
        self.cond.notify_all()

    def _sync_committer_ready(self) -> bool:
        """Under ``cond``: one more sync committer started if there may be one more; whether any
        runs. A thread the system refuses (a process limit: ``can't start new thread``) leaves
        the file to the committer every destination has."""
        if len(self._sync_committers) < SYNC_COMMITTERS and not self._stopping:
            t = threading.Thread(
                target=self._commit_loop,
                args=(self.small_commits, self._small_ready),
                name=f"{self.dest.name}-sync{len(self._sync_committers)}",
                daemon=True,
            )
            try:
                t.start()
            except RuntimeError:
                return bool(self._sync_committers)
            self._sync_committers.append(t)
        return bool(self._sync_committers)

    def paused(self) -> bool:
        return time.monotonic() < self.paused_until

    def idle(self) -> bool:
        """Nothing to do and nothing under way here, and no pause whose end would start work."""
        with self.lock:
            return (
                not self.queue
                and not self.commits
                and not self.small_commits
                and self.active == 0
                and not self.paused()
            )

    def attachable(self) -> bool:
        return self.backlog == 0 and self.dead is None and not self.paused()

    # -- feeding ---------------------------------------------------------------------------

    def push(self, stream: Stream, chunk: Chunk) -> bool:
        """Queue one part for the stream; False if the stream no longer takes parts."""
        with self.lock:
            if not stream.wants(chunk.index):
                return False
            stream.inflight.add(chunk.index)
            stream.queued += 1
            self.queue.append((stream, chunk))
            self.queued_bytes += chunk.size
            key = id(chunk.budget)
            self.queued_by[key] = self.queued_by.get(key, 0) + chunk.size
            self._work_ready.notify()
            return True

    def end_feed(self, stream: Stream, *, close_here: bool = False) -> bool:
        """The reader handed over every part it had for this stream. With ``close_here``, a
        stream ready to close is the caller's to close (``close_one``), not the committer's:
        True then."""
        with self.lock:
            if stream.feeding:
                stream.feeding = False
                stream.finished = True
            if close_here and self._closable(stream) and not self._syncs_slowly(stream):
                stream.closing = True
                self.active += 1
                stream.busy += 1
                return True
            self.check_done(stream)
            return False

    def fail(self, stream: Stream, exc: BaseException) -> None:
        with self.lock:
            if stream.failed is None:
                stream.failed = exc
            stream.feeding = False
            self.check_done(stream)

    def detach(self) -> list[Stream]:
        """Drop every queued part that no worker has started; return the streams that lost
        parts, now waiting for a catch-up feed (their finished parts stay done)."""
        dropped: list[tuple[Stream, Chunk]] = []
        with self.lock:
            streams: dict[int, Stream] = {}
            for stream, chunk in self.queue:
                dropped.append((stream, chunk))
                streams[id(stream)] = stream
                stream.inflight.discard(chunk.index)
                stream.queued -= 1
            self.queue.clear()
            self.queued_bytes = 0
            self.queued_by.clear()
            detached = []
            for stream in streams.values():
                if stream.failed is None and not stream.closing:
                    stream.feeding = False
                    stream.finished = False
                    detached.append(stream)
        for _, chunk in dropped:
            chunk.release()
        return detached

    @staticmethod
    def _closable(stream: Stream) -> bool:
        """Under ``cond``: nothing more can change the stream: it is complete, or failed."""
        if stream.closing or stream.queued or stream.inflight or stream.feeding:
            return False
        complete = stream.finished and len(stream.receipts) >= stream.file.n_parts
        return stream.failed is not None or complete

    def check_done(self, stream: Stream) -> None:
        """Under ``cond``: hand the stream to the committer once nothing more can change it."""
        if self._closable(stream):
            stream.closing = True
            self._hand_on(stream)

    def _part_done(self, stream: Stream) -> bool:
        """Under ``cond``, in a writer that just finished a part: once nothing more can change
        the stream, a small local file is closed by this writer (True: the caller closes it,
        ``active`` stays raised for that), any other goes to the committer. Waking the
        committer costs a thread switch per file (on a virtual machine, a wake-up of an idle
        core), more than reading back a small file; and a writer kept busy finds the next file
        already queued, so the reader runs ahead instead of the threads taking turns."""
        if stream.feeding or not self._closable(stream):  # feeding: the reader ends it
            self.active -= 1
            return False
        stream.closing = True
        if (
            self.caps.is_local
            and stream.file.src.size <= INLINE_COMMIT_MAX
            and not self._syncs_slowly(stream)
        ):
            stream.busy += 1
            return True
        self._hand_on(stream)
        self.active -= 1
        return False

    # -- threads ---------------------------------------------------------------------------

    def _starts_new_file(self) -> bool:
        """Under ``cond``: the next chunk opens a file this lane has not started yet."""
        return bool(self.queue) and self.queue[0][0].upload is None

    def _waits_for_big_slot(self) -> bool:
        """Under ``cond``: the next chunk is big and as many big ones are on their way as the
        destination takes at once (the workers beyond those are for small parts)."""
        return bool(self.queue) and self.queue[0][1].size > SMALL_PART and self._big_busy >= self._big_slots

    def _work(self) -> None:
        while True:
            with self.lock:
                # A file waiting for its commit holds things the memory budget does not count
                # (an open file, a stream): past MAX_COMMIT_BACKLOG the writer starts no new file
                # until the committer catches up, so its queue fills the budget and the reader
                # either waits or leaves this lane behind to catch up later.
                while not self._stopping and (
                    not self.queue
                    or (
                        self._starts_new_file()
                        and len(self.commits) + len(self.small_commits) >= MAX_COMMIT_BACKLOG
                    )
                    or self._waits_for_big_slot()
                ):
                    self._work_ready.wait()
                if self._stopping and (not self.queue or self._cancel.is_set()):
                    return
                stream, chunk = self.queue.popleft()
                big = chunk.size > SMALL_PART
                self._big_busy += big
                if self.queue:
                    self._work_ready.notify()  # more parts: the next worker takes the next one
                self.queued_bytes -= chunk.size
                self.queued_by[id(chunk.budget)] -= chunk.size
                if self.room_waiters:  # a reader waits for room in this queue
                    self.cond.notify_all()
                self.active += 1
                stream.busy += 1
            self._run(stream, chunk, big=big)
            # An idle worker must not keep its last part alive: the budget counts that buffer
            # as free, and 16 waiting workers could pin 16 parts' worth of memory beside it.
            del stream, chunk

    def put_here(self, stream: Stream, chunk: Chunk) -> None:
        """The reader writes the part itself, in its own thread (a small file to a local
        folder: see ``Engine._inline``); the lane's state moves as if a worker had taken it."""
        with self.lock:
            takes = stream.wants(chunk.index)
            if takes:
                stream.inflight.add(chunk.index)
                stream.queued += 1
                self.active += 1
                stream.busy += 1
        if takes:
            self._run(stream, chunk)
        else:
            chunk.release()

    def _run(self, stream: Stream, chunk: Chunk, *, big: bool = False) -> None:
        """One part into the destination; ``active`` (and for a ``big`` one, ``_big_busy``) was
        raised for it by the caller."""
        call = next(self._call_numbers)
        outer = watch_call(self._calls, call)
        try:
            self._put(stream, chunk)
        except KeyboardInterrupt:  # a second Ctrl-C, in the reader (``put_here``): quit at once
            self.fail(stream, errors.Interrupted("interrupted"))
            raise
        except BaseException as exc:  # recorded on the stream and reported, never lost
            self.fail(stream, exc)
        finally:
            end_call(self._calls, call, outer)
            chunk.release()
            with self.lock:
                stream.queued -= 1
                stream.busy -= 1
                stream.inflight.discard(chunk.index)
                if big:
                    self._big_busy -= 1
                    self._work_ready.notify()  # a worker may wait for this slot
                here = self._part_done(stream)
        if here:
            self.close_one(stream)

    def close_one(self, stream: Stream) -> None:
        """Close one stream; ``active`` was raised for it by the caller, under ``cond``."""
        call = next(self._call_numbers)
        outer = watch_call(self._calls, call)
        try:
            self._close(stream)
        except BaseException as exc:  # the engine's close records its own failures
            stream.notes.append(f"internal error while closing: {exc!r}")
        finally:
            end_call(self._calls, call, outer)
            with self.lock:
                self.active -= 1
                stream.busy -= 1

    def _commit_loop(self, queue: deque[Stream], ready: threading.Condition) -> None:
        """The committer (``commits``, woken on ``cond``), or a sync committer (``small_commits``,
        woken on ``_small_ready``)."""
        while True:
            with self.lock:
                while not queue and not self._stopping:
                    ready.wait()
                # a stopped job's committers take no more files: those waiting stay incomplete
                # (``Engine._record_interrupted``), never named once the job has said it ended
                if not queue or (self._stopping and self._cancel.is_set()):
                    return
                stream = queue.popleft()
                self.active += 1
                stream.busy += 1
                if len(self.commits) + len(self.small_commits) == MAX_COMMIT_BACKLOG - 1:
                    self._work_ready.notify_all()  # the backlog is below the limit again
            self.close_one(stream)
