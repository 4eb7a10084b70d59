"""The job's one in-flight memory budget, and the chunks it pays for.

A chunk is read once into its own buffer and shared, without copies, by every destination that
takes it; its bytes return to the budget when the last of them lets go.
"""

from __future__ import annotations

import hashlib
import mmap
import threading
from collections.abc import Callable

#: buffers at least this big are kept for reuse: a fresh one costs a page fault per 4 KiB
POOL_MIN = 1024 * 1024
#: up to this size, classes are powers of two; above it, multiples of it
POW2_UP_TO = 16 * POOL_MIN


#: a part's memory: big ones are anonymous maps of their own, outside the heap, so memory let go
#: goes back to the system at once instead of staying in a thread's malloc arena
Buffer = bytearray | mmap.mmap


def new_buffer(n: int) -> Buffer:
    if n < POOL_MIN:
        return bytearray(n)
    # Private, not Python's default shared map: shared anonymous memory is a tmpfs file in the
    # kernel, dearer to fault in. Huge pages where the system allows them: 512 times fewer faults.
    buf = mmap.mmap(-1, n, flags=mmap.MAP_PRIVATE)
    advice = getattr(mmap, "MADV_HUGEPAGE", None)
    if advice is not None:
        try:
            buf.madvise(advice)
        except OSError:
            pass
    return buf


def size_class(n: int) -> int:
    """The size of the buffer that holds ``n`` bytes: small ones exact, then powers of two up
    to 16 MiB, then multiples of 16 MiB. Few classes, so a card of photos of every size from 1
    to 25 MiB reuses its buffers instead of faulting in fresh ones for each size."""
    if n < POOL_MIN:
        return n
    if n <= POW2_UP_TO:
        return 1 << (n - 1).bit_length()
    return -(-n // POW2_UP_TO) * POW2_UP_TO


class MemoryBudget:
    """Bytes of chunk buffers alive at once, at most ``limit`` (one oversized chunk may pass alone).

    Buffers of ``POOL_MIN`` bytes or more are sized up to a whole number of MiB, and freed ones are
    kept and handed out again for a part of the same size class, so a long read does not fault in
    and zero fresh pages for every part. A buffer counts against the limit with its whole size,
    and kept buffers count too: they are dropped to make room for a part of another class. At
    most a quarter of the limit is kept: a steady stream of parts reuses a few buffers, and more
    would only raise the process's peak memory.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.pool_limit = limit // 4
        self.used = 0
        self.peak = 0
        self.pooled = 0
        self._pool: dict[int, list[Buffer]] = {}
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._waiting = 0  # threads in ``acquire`` waiting for room: only then does a release wake

    def acquire(
        self,
        n: int,
        *,
        cancelled: Callable[[], bool],
        on_blocked: Callable[[], None] | None = None,
    ) -> Buffer | None:
        """Wait until a buffer for ``n`` bytes fits and return it: at least ``n`` bytes long, its
        contents stale (the caller overwrites the first ``n``). Calls ``on_blocked`` while
        waiting; None if cancelled."""
        if n >= POOL_MIN:
            n = size_class(n)
        with self._lock:
            while self.used and self.used + n > self.limit:
                if cancelled():
                    return None
                if on_blocked is not None:
                    self._lock.release()
                    try:
                        on_blocked()
                    finally:
                        self._lock.acquire()
                    if not (self.used and self.used + n > self.limit):
                        break
                self._waiting += 1
                try:
                    self._cond.wait(0.05)
                finally:
                    self._waiting -= 1
            self.used += n
            self.peak = max(self.peak, self.used)
            if self._pool:
                kept = self._pool.get(n)
                if kept:
                    self.pooled -= n
                    buf = kept.pop()
                    if not kept:
                        del self._pool[n]
                    return buf
                self._make_room(n)
        return bytearray(n) if n < POOL_MIN else new_buffer(n)

    def _make_room(self, n: int) -> None:
        """Under the lock: drop kept buffers until a new one of ``n`` bytes fits beside them."""
        while self._pool and self.used + self.pooled > self.limit:
            size, kept = next(iter(self._pool.items()))
            kept.pop()
            self.pooled -= size
            if not kept:
                del self._pool[size]

    def release(self, buf: Buffer) -> None:
        n = len(buf)
        with self._lock:
            self.used -= n
            if (
                n >= POOL_MIN
                and self.pooled + n <= self.pool_limit
                and self.used + self.pooled + n <= self.limit
            ):
                self._pool.setdefault(n, []).append(buf)
                self.pooled += n
            if self._waiting:
                self._cond.notify_all()


_RELEASED = bytearray()


class Chunk:
    """One part of one file: its bytes, where they sit in the file, and who still needs them."""

    __slots__ = ("_lock", "_md5", "_refs", "budget", "buffer", "data", "index", "offset", "size")

    def __init__(
        self,
        budget: MemoryBudget,
        buffer: Buffer,
        size: int,
        index: int,
        offset: int,
        refs: int,
        md5: bytes | None = None,
    ) -> None:
        self.budget = budget
        self.buffer = buffer
        self.data = memoryview(buffer)[:size]
        self.size = size
        self.index = index
        self.offset = offset
        self._refs = refs
        self._md5 = md5  # known from an earlier read of the same bytes, or computed on first need
        self._lock = threading.Lock()

    def md5(self) -> bytes:
        """Computed once, on first need, and shared by every destination that sends this part."""
        with self._lock:
            if self._md5 is None:
                self._md5 = hashlib.md5(self.data, usedforsecurity=False).digest()
            return self._md5

    def release(self) -> None:
        with self._lock:
            self._refs -= 1
            last = self._refs == 0
        if last:
            self.budget.release(self.buffer)
            # The buffer is the budget's again (kept for reuse, or dropped): a chunk object
            # still referenced somewhere must not keep it alive as well.
            self.buffer = _RELEASED
            self.data = memoryview(_RELEASED)
