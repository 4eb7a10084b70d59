"""A bucket's lane runs more small requests at once than big ones.

A small object's upload is a round trip, not bandwidth: thousands of small files need many in
flight (``Capabilities.small_concurrency``), while parts of big files stay at ``concurrency``
(each holds a part's worth of memory).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

from castoff.destinations.base import SMALL_PART
from castoff.destinations.faulty import FaultPlan, FaultyDestination
from castoff.destinations.memory import MemoryDestination
from engine_runner import Runner, write


class InFlight:
    """How many puts of each kind were under way at once, at most."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now: Counter[str] = Counter()
        self.most: Counter[str] = Counter()

    def __call__(self, target: str, index: int) -> None:
        kind = "big" if "clip" in target else "small"
        with self.lock:
            self.now[kind] += 1
            self.most[kind] = max(self.most[kind], self.now[kind])
        time.sleep(0.05)  # a round trip
        with self.lock:
            self.now[kind] -= 1


def test_small_objects_go_wider_than_big_parts(tmp_path: Path, runner: Runner) -> None:
    src = tmp_path / "card"
    for i in range(40):
        write(src / "photos" / f"IMG_{i:03}.JPG", bytes([i]) * 10_000)
    for i in range(4):
        write(src / "video" / f"clip{i}.mov", bytes([i]) * (4 * SMALL_PART))  # two 2 MiB parts
    seen = InFlight()
    bucket = MemoryDestination("bucket", is_local=False, concurrency=2, small_concurrency=6)
    dest = FaultyDestination(bucket, FaultPlan(on_put=seen))
    result = runner([src], [dest], chunk_size=2 * SMALL_PART)
    assert result.exit_code == 0
    assert len(bucket.objects) == 44
    assert 4 <= seen.most["small"] <= 6, seen.most
    assert seen.most["big"] <= 2, seen.most


def test_without_small_concurrency_a_lane_has_its_concurrency(tmp_path: Path, runner: Runner) -> None:
    src = tmp_path / "card"
    for i in range(20):
        write(src / f"IMG_{i:03}.JPG", bytes([i]) * 10_000)
    seen = InFlight()
    bucket = MemoryDestination("bucket", is_local=False, concurrency=3)
    assert runner([src], [FaultyDestination(bucket, FaultPlan(on_put=seen))]).exit_code == 0
    assert seen.most["small"] == 3, seen.most
    assert len(bucket.objects) == 20
