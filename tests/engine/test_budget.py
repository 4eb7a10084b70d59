"""The memory budget: limits, size classes, and the pool of reused part buffers."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import blake3
import xxhash

from castoff.catalog.db import Catalog
from castoff.destinations.local import READ_BACK_CHUNK, LocalDestination
from castoff.destinations.memory import MemoryDestination
from castoff.engine.budget import POOL_MIN, Chunk, MemoryBudget, size_class
from castoff.engine.job import Engine, JobOptions
from castoff.hashing import SideHashing, new_blake3

MiB = 1024 * 1024


def never() -> bool:
    return False


def test_size_classes_are_few_so_buffers_are_reused() -> None:
    assert size_class(0) == 0
    assert size_class(1000) == 1000
    assert size_class(POOL_MIN - 1) == POOL_MIN - 1
    assert size_class(POOL_MIN) == POOL_MIN
    assert size_class(3 * MiB + 1) == 4 * MiB
    assert size_class(5 * MiB) == 8 * MiB
    assert size_class(16 * MiB) == 16 * MiB
    assert size_class(16 * MiB + 1) == 32 * MiB
    assert size_class(40 * MiB) == 48 * MiB
    # photos of every size from 1 to 25 MiB fall into five classes
    assert len({size_class(n * MiB + 7) for n in range(1, 26)}) == 5


def test_a_released_part_buffer_is_handed_out_again() -> None:
    budget = MemoryBudget(64 * MiB)
    first = budget.acquire(5 * MiB - 10, cancelled=never)
    assert first is not None and len(first) == 8 * MiB
    budget.release(first)
    again = budget.acquire(7 * MiB + 3000, cancelled=never)
    assert again is first, "same size class: the kept buffer is reused"
    assert budget.used == 8 * MiB and budget.pooled == 0


def test_small_buffers_are_exact_and_not_kept() -> None:
    budget = MemoryBudget(64 * MiB)
    small = budget.acquire(4096, cancelled=never)
    assert small is not None and len(small) == 4096
    budget.release(small)
    assert budget.pooled == 0 and budget.used == 0


def test_kept_buffers_never_push_the_total_past_the_limit() -> None:
    budget = MemoryBudget(8 * MiB)
    budget.pool_limit = budget.limit  # keep everything, to fill the pool
    bufs = [budget.acquire(2 * MiB, cancelled=never) for _ in range(4)]
    for b in bufs:
        assert b is not None
        budget.release(b)
    assert budget.pooled == 8 * MiB and budget.used == 0
    # another size class: kept buffers are dropped to make room
    big = budget.acquire(6 * MiB, cancelled=never)
    assert big is not None
    assert budget.used + budget.pooled <= budget.limit
    assert budget.peak == 8 * MiB


def test_at_most_a_quarter_of_the_limit_is_kept() -> None:
    budget = MemoryBudget(64 * MiB)
    bufs = [budget.acquire(4 * MiB, cancelled=never) for _ in range(8)]
    for b in bufs:
        assert b is not None
        budget.release(b)
    assert budget.used == 0 and budget.pooled == 16 * MiB


def test_a_reader_waits_until_a_chunk_is_released() -> None:
    budget = MemoryBudget(4 * MiB)
    buf = budget.acquire(4 * MiB, cancelled=never)
    assert buf is not None
    chunk = Chunk(budget, buf, 4 * MiB - 1, index=0, offset=0, refs=2)
    got: list[bytearray | None] = []
    waiter = threading.Thread(target=lambda: got.append(budget.acquire(MiB, cancelled=never)))
    waiter.start()
    chunk.release()
    waiter.join(0.3)
    assert waiter.is_alive(), "one of two holders released: the bytes are still in use"
    chunk.release()
    waiter.join(10)
    assert not waiter.is_alive() and got and got[0] is not None
    assert chunk.size == 4 * MiB - 1


def test_a_cancelled_wait_returns_none() -> None:
    budget = MemoryBudget(MiB)
    held = budget.acquire(MiB, cancelled=never)
    assert held is not None
    assert budget.acquire(MiB, cancelled=lambda: True) is None


def test_side_hashing_gives_the_same_digests_as_hashing_in_turn() -> None:
    data = os.urandom(3 * MiB + 5)
    side = SideHashing()
    try:
        for size in (1000, 300 * 1024, MiB):  # inline below SIDE_FROM, on the pool above it
            b3, xx, md5 = new_blake3(len(data)), xxhash.xxh3_128(), hashlib.md5(usedforsecurity=False)
            view = memoryview(data)
            for at in range(0, len(data), size):
                side.update(b3, [xx, md5], view[at : at + size])
            assert b3.hexdigest() == blake3.blake3(data).hexdigest()
            assert xx.hexdigest() == xxhash.xxh3_128(data).hexdigest()
            assert md5.hexdigest() == hashlib.md5(data, usedforsecurity=False).hexdigest()
    finally:
        side.close()
    late = hashlib.md5(usedforsecurity=False)
    side.update(new_blake3(0), [late], memoryview(data))  # after close: done in turn, not lost
    assert late.hexdigest() == hashlib.md5(data, usedforsecurity=False).hexdigest()


def test_a_released_chunk_keeps_no_buffer_alive() -> None:
    """Once the budget has a part's buffer back, a chunk object still referenced somewhere (an
    idle worker's last part, a request object) must not keep the memory too: the budget would
    count it free while the process still holds it."""
    import gc
    import weakref

    budget = MemoryBudget(4 * POOL_MIN)  # keeps at most one MiB: a 2 MiB buffer is dropped
    buf = budget.acquire(2 * POOL_MIN, cancelled=lambda: False)
    assert buf is not None
    alive = weakref.ref(buf)
    chunk = Chunk(budget, buf, 2 * POOL_MIN - 1, index=0, offset=0, refs=1)
    del buf
    chunk.release()
    gc.collect()
    assert alive() is None
    assert chunk.size == 2 * POOL_MIN - 1 and budget.used == 0


def test_an_idle_worker_holds_no_part() -> None:
    """A lane's worker waiting for its next part does not keep the last one's buffer alive."""
    import gc
    import weakref

    from castoff.destinations.memory import MemoryDestination
    from castoff.engine.lanes import FileState, Lane, Stream
    from castoff.scan import SourceFile

    done = threading.Event()
    lane = Lane(
        MemoryDestination("bucket", is_local=False),
        put=lambda stream, chunk: done.set(),
        close=lambda stream: None,
        cancel=threading.Event(),
    )
    lane.start()
    try:
        budget = MemoryBudget(4 * POOL_MIN)
        buf = budget.acquire(2 * POOL_MIN, cancelled=lambda: False)
        assert buf is not None
        alive = weakref.ref(buf)
        src = SourceFile(abs_path="/a", rel_path="a", size=2 * POOL_MIN, mtime_ns=0, atime_ns=0, dev=0, ino=0)
        fs = FileState(src=src, file_id=1, part_size=2 * POOL_MIN, n_parts=1)
        stream = Stream(lane=lane, file=fs, planned="a", target="a", feeding=True)
        assert lane.push(stream, Chunk(budget, buf, 2 * POOL_MIN, index=0, offset=0, refs=1))
        del buf
        assert done.wait(10)
        for _ in range(100):  # the worker releases the part just after the put returns
            gc.collect()
            if alive() is None:
                break
            threading.Event().wait(0.01)
        assert alive() is None
    finally:
        lane.stop(timeout=5)


def test_read_back_buffers_are_taken_out_of_the_memory_budget(tmp_path: Path) -> None:
    """One read-back buffer per local destination's committer and one for the threads that
    verify small files: the parts get the rest, so ``--memory`` bounds both."""
    catalog = Catalog(tmp_path / "catalog.sqlite")
    dests = [LocalDestination(tmp_path / "a"), LocalDestination(tmp_path / "b"), MemoryDestination("m")]
    engine = Engine(catalog, "j", dests, JobOptions(memory_budget=256 * MiB))
    assert engine.budget.limit + engine.catchup_budget.limit == 256 * MiB - 3 * READ_BACK_CHUNK
    # a small budget keeps most of itself for the parts
    engine = Engine(catalog, "j", dests, JobOptions(memory_budget=4 * MiB))
    assert engine.budget.limit + engine.catchup_budget.limit == 4 * MiB - 4 * MiB // 8
    # no destination reads back: every byte is for parts
    engine = Engine(catalog, "j", [MemoryDestination("m")], JobOptions(memory_budget=64 * MiB))
    assert engine.budget.limit + engine.catchup_budget.limit == 64 * MiB
