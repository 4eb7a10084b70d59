"""The job's one in-flight memory budget, and the chunks it pays for.

A chunk is read once into its own buffer and shared, without copies, by every destination that
takes it; its bytes return to the budget when the last of them lets go.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable


class MemoryBudget:
    """Bytes of chunk buffers alive at once, at most ``limit`` (one oversized chunk may pass alone)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.peak = 0
        self._cond = threading.Condition()

    def acquire(
        self,
        n: int,
        *,
        cancelled: Callable[[], bool],
        on_blocked: Callable[[], None] | None = None,
    ) -> bool:
        """Wait until ``n`` bytes fit; calls ``on_blocked`` while waiting. False if cancelled."""
        with self._cond:
            while self.used and self.used + n > self.limit:
                if cancelled():
                    return False
                if on_blocked is not None:
                    self._cond.release()
                    try:
                        on_blocked()
                    finally:
                        self._cond.acquire()
                    if not (self.used and self.used + n > self.limit):
                        break
                self._cond.wait(0.05)
            self.used += n
            self.peak = max(self.peak, self.used)
            return True

    def release(self, n: int) -> None:
        with self._cond:
            self.used -= n
            self._cond.notify_all()


class Chunk:
    """One part of one file: its bytes, where they sit in the file, and who still needs them."""

    __slots__ = ("_lock", "_md5", "_refs", "budget", "buffer", "data", "index", "offset")

    def __init__(
        self, budget: MemoryBudget, buffer: bytearray, size: int, index: int, offset: int, refs: int
    ) -> None:
        self.budget = budget
        self.buffer = buffer
        self.data = memoryview(buffer)[:size]
        self.index = index
        self.offset = offset
        self._refs = refs
        self._md5: bytes | None = None
        self._lock = threading.Lock()

    @property
    def size(self) -> int:
        return len(self.data)

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
            self.budget.release(len(self.buffer))
