"""Local folders whose fsyncs wait for a device (a disk, a USB drive, a NAS): small files are
committed by several threads at once, so their fsyncs overlap instead of the reader waiting for
each in turn. The fsync is slowed here by a few milliseconds, as a real device's is; tmpfs's
costs next to nothing, which is why the rest of the suite never takes this path."""

from __future__ import annotations

import os
import stat
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import blake3
import pytest

from castoff.destinations import local
from castoff.destinations.faulty import FaultPlan, FaultyDestination
from castoff.destinations.local import LocalDestination
from castoff.engine import job, lanes
from engine_runner import Runner, write

SLOW_SYNC = local.SLOW_SYNC  # (read at import, before any fixture sets it)


@dataclass
class SlowDevice:
    """Every fsync of a regular file takes ``delay`` seconds; records who made it and how many
    were under way at once."""

    delay: float = 0.003
    lock: threading.Lock = field(default_factory=threading.Lock)
    now: int = 0
    most: int = 0
    threads: list[str] = field(default_factory=list)


@pytest.fixture(autouse=True)
def slow_is_slow(monkeypatch: pytest.MonkeyPatch) -> None:
    """Undo the suite's ``fsyncs_count_as_fast`` (conftest)."""
    monkeypatch.setattr(local, "SLOW_SYNC", SLOW_SYNC)


@pytest.fixture
def slow_device(monkeypatch: pytest.MonkeyPatch) -> SlowDevice:
    device = SlowDevice()
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            real_fsync(fd)
            return
        with device.lock:
            device.now += 1
            device.most = max(device.most, device.now)
            device.threads.append(threading.current_thread().name)
        try:
            time.sleep(device.delay)
            real_fsync(fd)
        finally:
            with device.lock:
                device.now -= 1

    monkeypatch.setattr(os, "fsync", fsync)
    return device


def card_of(root: Path, n: int, size: int = 3000) -> Path:
    for i in range(n):
        write(root / "card" / f"DCIM/{i // 10:03}" / f"IMG_{i:04}.JPG", os.urandom(size) + bytes([i % 256]))
    return root / "card"


def same_tree(src: Path, out: Path) -> None:
    files = sorted(p.relative_to(src.parent) for p in src.rglob("*") if p.is_file())
    landed = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file() and "ascmhl" not in p.parts)
    assert landed == files
    for rel in files:
        assert (
            blake3.blake3((out / rel).read_bytes()).digest()
            == blake3.blake3((src.parent / rel).read_bytes()).digest()
        )
        assert (out / rel).stat().st_mtime_ns == (src.parent / rel).stat().st_mtime_ns


def test_a_destination_learns_that_its_fsyncs_are_slow_and_forgets_it_when_they_are_not(
    tmp_path: Path,
) -> None:
    dest = LocalDestination(tmp_path / "d")
    assert not dest.slow_sync  # nothing measured yet: as fast as the page cache
    dest.note_sync(0.004)
    assert dest.slow_sync
    for _ in range(40):
        dest.note_sync(0.00001)
    assert not dest.slow_sync


def test_small_files_at_a_slow_device_are_synced_several_at_once_and_all_verified(
    tmp_path: Path, runner: Runner, slow_device: SlowDevice
) -> None:
    src = card_of(tmp_path / "src", 60)
    big = write(src / "CLIP" / "C0001.MP4", os.urandom(3 * 1024 * 1024))
    d1, d2 = LocalDestination(tmp_path / "d1"), LocalDestination(tmp_path / "d2")
    result = runner([src], [d1, d2], chunk_size=1024 * 1024, memory_budget=16 * 1024 * 1024)
    assert result.exit_code == 0
    for out in ("d1", "d2"):
        same_tree(src, tmp_path / out)
        assert list((tmp_path / out).rglob(".castoff.*")) == []
    rows = runner.outcomes()
    assert len(rows) == 2 * 61 and {r["status"] for r in rows.values()} == {"verified"}
    # the first files taught each destination how slow it is; most of the rest were synced by
    # its sync committers, several at a time
    by_pool = [t for t in slow_device.threads if "-sync" in t]
    assert len(by_pool) > 2 * 60 // 2, slow_device.threads
    assert slow_device.most > 2, slow_device.most
    assert {t.rsplit("-sync", 1)[0] for t in by_pool} == {d1.name, d2.name}
    # a big file is synced by the thread that wrote it, not left dirty for a committer
    assert big.stat().st_size > local.DEFER_SYNC_MAX


def test_the_committers_backlog_holds_the_reader_back(
    tmp_path: Path, runner: Runner, slow_device: SlowDevice, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each file waiting for its commit holds an open file: with commits slower than the reader,
    the reader must not run ahead of them without bound (it would run out of descriptors)."""
    limit = 4
    monkeypatch.setattr(lanes, "MAX_COMMIT_BACKLOG", limit)
    monkeypatch.setattr(job, "MAX_COMMIT_BACKLOG", limit)
    slow_device.delay = 0.01
    seen: list[int] = []
    hand_on = lanes.Lane._hand_on

    def counting(self: lanes.Lane, stream: lanes.Stream) -> None:
        hand_on(self, stream)
        seen.append(len(self.small_commits))

    monkeypatch.setattr(lanes.Lane, "_hand_on", counting)
    src = card_of(tmp_path / "src", 80, size=500)
    dest = LocalDestination(tmp_path / "d1")
    assert runner([src], [dest]).exit_code == 0
    same_tree(src, tmp_path / "d1")
    assert seen and max(seen) <= limit + 2, seen


def test_a_copy_damaged_before_its_commit_on_a_slow_device_fails_alone(
    tmp_path: Path, runner: Runner, slow_device: SlowDevice
) -> None:
    src = card_of(tmp_path / "src", 30)
    inner = LocalDestination(tmp_path / "d1")
    inner.note_sync(0.004)  # slow from the first file
    bad = FaultyDestination(inner, FaultPlan(corrupt_before_commit=["IMG_0017"]))
    good = LocalDestination(tmp_path / "d2")
    result = runner([src], [bad, good])
    assert result.exit_code == 1
    rows = runner.outcomes()
    failed = {k for k, r in rows.items() if r["status"] != "verified"}
    assert failed == {("card/DCIM/001/IMG_0017.JPG", bad.name)}, failed
    assert "does not match the source" in rows[("card/DCIM/001/IMG_0017.JPG", bad.name)]["error"]
    assert not (tmp_path / "d1" / "card" / "DCIM" / "001" / "IMG_0017.JPG").exists()
    same_tree(src, tmp_path / "d2")
    assert any("-sync" in t for t in slow_device.threads)
