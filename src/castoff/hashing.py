"""Hashers sized to their input."""

from __future__ import annotations

import blake3

#: below this, BLAKE3's worker threads cost more to wake than they save
THREADED_FROM = 4 * 1024 * 1024


def new_blake3(size: int) -> blake3.blake3:
    """A BLAKE3 hasher for ``size`` bytes: multithreaded for large inputs only."""
    return blake3.blake3(max_threads=blake3.blake3.AUTO if size >= THREADED_FROM else 1)
