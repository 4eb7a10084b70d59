"""Hashers sized to their input, and a way to run several over the same bytes at once."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

import blake3

#: below this, BLAKE3's worker threads cost more to wake than they save
THREADED_FROM = 4 * 1024 * 1024
#: below this, handing a part to another thread costs more than hashing it here
SIDE_FROM = 256 * 1024


class Updatable(Protocol):
    def update(self, data: memoryview, /) -> object: ...


def new_blake3(size: int) -> blake3.blake3:
    """A BLAKE3 hasher for ``size`` bytes: multithreaded for large inputs only."""
    return blake3.blake3(max_threads=blake3.blake3.AUTO if size >= THREADED_FROM else 1)


def _update_all(hashers: Sequence[Updatable], data: memoryview) -> None:
    for h in hashers:
        h.update(data)


class PartMd5s:
    """The MD5 of each part, in order: ``update`` is called once per part. A bucket-only file's
    first read keeps them, so its second read sends them as Content-MD5 without hashing again."""

    def __init__(self) -> None:
        self.digests: list[bytes] = []

    def update(self, data: memoryview, /) -> None:
        self.digests.append(hashlib.md5(data, usedforsecurity=False).digest())


class SideHashing:
    """Runs a part's other hashes (xxh128 for ASC MHL, a whole-file MD5 for buckets) on another
    core while the reader runs BLAKE3. Each releases the GIL, so a part costs about its slowest
    hash instead of their sum. One per job; ``close`` when the job is done."""

    WORKERS = 2

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=self.WORKERS, thread_name_prefix="hash")

    def update(self, main: Updatable | None, side: Sequence[Updatable], data: memoryview) -> None:
        if main is None:
            _update_all(side, data)
            return
        if not side or len(data) < SIDE_FROM:
            main.update(data)
            _update_all(side, data)
            return
        # Two side hashes (xxh128 and a whole-file MD5, or a part MD5 beside them) each get a
        # worker; more share them.
        groups = [side[i :: self.WORKERS] for i in range(min(len(side), self.WORKERS))]
        try:
            done = [self._pool.submit(_update_all, g, data) for g in groups]
        except RuntimeError:  # closed: a reader cancelled with the job finishes its part here
            main.update(data)
            _update_all(side, data)
            return
        try:
            main.update(data)
        finally:
            for d in done:
                d.result()

    def close(self) -> None:
        self._pool.shutdown(wait=True)
