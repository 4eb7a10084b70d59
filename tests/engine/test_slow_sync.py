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
from typing import Any

import blake3
import pytest

from castoff.destinations import local
from castoff.destinations.faulty import FaultPlan, FaultyDestination
from castoff.destinations.local import LocalDestination
from castoff.engine import job, lanes
from castoff.engine.pacing import RateLimiter
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


def _stopped_when(runner: Runner, dest: LocalDestination, src: Path, ready: threading.Event) -> Any:
    """Run the job in a thread and cancel it (Ctrl-C) once ``ready`` is set; its result."""
    done: list[Any] = []
    worker = threading.Thread(target=lambda: done.append(runner([src], [dest])), daemon=True)
    worker.start()
    assert ready.wait(60)
    runner.engine.cancel.set()
    worker.join(60)
    assert done, "the job did not end"
    return done[0]


def test_a_stopped_job_records_nothing_after_it_has_ended(
    tmp_path: Path, runner: Runner, slow_device: SlowDevice
) -> None:
    """QA (white box): after Ctrl-C on a slow drive, the sync committers went on committing the
    files waiting for them after the job had returned: files recorded verified after the summary,
    the report and the ASC MHL were written (in no generation, ever: the re-run skipped them, and
    ``castoff verify`` failed the drive), and a second ``file-done`` for files already said
    incomplete. Now what the job says at its end is final."""
    slow_device.delay = 0.3  # the 8 committers need seconds for what waits for them
    src = card_of(tmp_path / "src", 60)
    dest = LocalDestination(tmp_path / "d1")
    verified = threading.Event()
    events = runner.events

    class Watch(list[Any]):
        def append(self, e: Any) -> None:
            super().append(e)
            n = sum(1 for x in self if x.kind == "file-done" and x.data["status"] == "verified")
            if n >= 5:
                verified.set()

    runner.events = Watch(events)
    result = _stopped_when(runner, dest, src, verified)
    assert result.status == "interrupted"
    at_end = {k: dict(r) for k, r in runner.outcomes().items()}
    said = [(e.data["rel_path"], e.data["status"]) for e in runner.events if e.kind == "file-done"]
    time.sleep(slow_device.delay * 8)  # what a committer still held would land by now
    assert {k: dict(r) for k, r in runner.outcomes().items()} == at_end
    assert [t.name for t in threading.enumerate() if t.name.startswith(dest.name)] == []
    assert len(said) == len({p for p, _ in said}) == 60, said  # one outcome each, said once
    statuses = {r["status"] for r in at_end.values()}
    assert statuses <= {"verified", "incomplete"} and "incomplete" in statuses, statuses
    named = {p.relative_to(tmp_path / "d1").as_posix() for p in (tmp_path / "d1").rglob("*.JPG")}
    recorded = {path for (path, _), r in at_end.items() if r["status"] == "verified"}
    assert recorded <= named  # every file called verified is there, under its name


def test_a_stopped_job_never_closes_a_file_a_writer_still_syncs(
    tmp_path: Path, runner: Runner, slow_device: SlowDevice, monkeypatch: pytest.MonkeyPatch
) -> None:
    """QA (white box): partial files (NFS, SMB, FUSE): Ctrl-C while a clip's last fsync took
    long. The job gave its threads 0.5 s, then closed the clip's descriptor under the writer, which
    closed that number again when its fsync returned: by then the catalog's, or a report's (the
    CLI opens them next). The job now leaves such a file to its writer (past a wait, here cut
    short), and no descriptor is closed twice."""
    monkeypatch.setattr(local, "_O_TMPFILE", None)
    monkeypatch.setattr(job, "STOP_WAIT_CANCELLED", 0.1)
    slow_device.delay = 1.5
    src = tmp_path / "src" / "card"
    write(src / "CLIP" / "C0001.MP4", os.urandom(3 * 1024 * 1024))
    dest = LocalDestination(tmp_path / "d1")
    syncing = threading.Event()
    real_sleep = time.sleep

    def sleep(seconds: float) -> None:  # the slow device's fsync: say when it begins
        if seconds == slow_device.delay:
            syncing.set()
        real_sleep(seconds)

    monkeypatch.setattr(time, "sleep", sleep)
    result = _stopped_when(runner, dest, src, syncing)
    assert result.status == "interrupted"
    assert slow_device.now == 1  # the writer is still in its fsync
    mine = [open(tmp_path / f"report-{i}.txt", "w") for i in range(40)]  # noqa: SIM115 (as the CLI's)
    while slow_device.now:
        real_sleep(0.05)
    real_sleep(0.2)
    for f in mine:
        os.fstat(f.fileno())  # EBADF if the writer closed one of ours
        f.write("report")
        f.close()
    [row] = runner.outcomes().values()
    assert row["status"] == "incomplete"
    assert not list((tmp_path / "d1").rglob("C0001.MP4"))  # nothing named
    assert runner([src], [dest]).exit_code == 0  # the re-run delivers it, and clears the partial
    same_tree(src, tmp_path / "d1")
    assert list((tmp_path / "d1").rglob(".castoff.*")) == []


def test_a_stopped_job_sends_no_part_it_was_pacing(tmp_path: Path, runner: Runner) -> None:
    """QA (white box): a part waiting for its turn under ``--bwlimit`` when the job stopped was
    sent after the job had ended (the wait did not look at Ctrl-C); the writer now gives up."""
    src = tmp_path / "src" / "card"
    write(src / "CLIP" / "C0001.MP4", os.urandom(256 * 1024))
    dest = LocalDestination(tmp_path / "d1")
    runner.catalog.start_job(
        "paced", argv=["test"], sources=[str(src)], destinations=[], options={}, pid=os.getpid()
    )
    engine = job.Engine(
        runner.catalog,
        "paced",
        [dest],
        job.JobOptions(chunk_size=64 * 1024),
        sink=runner.events.append,
        limiters={dest.ident: RateLimiter(1024, burst=1024)},  # 4 minutes for the clip
    )
    done: list[Any] = []
    worker = threading.Thread(target=lambda: done.append(engine.run([str(src)])), daemon=True)
    worker.start()
    deadline = time.monotonic() + 60
    while not any(t.name.startswith(f"{dest.name}-w") and t.is_alive() for t in threading.enumerate()):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    time.sleep(0.3)  # its writer waits for its turn to send the first part
    engine.cancel.set()
    worker.join(60)
    assert done and done[0].status == "interrupted"
    assert [t.name for t in threading.enumerate() if t.name.startswith(dest.name)] == []
    assert not list((tmp_path / "d1").rglob("C0001.MP4"))


def test_a_sync_committer_the_system_refuses_leaves_its_files_to_the_committer(
    tmp_path: Path, runner: Runner, slow_device: SlowDevice, monkeypatch: pytest.MonkeyPatch
) -> None:
    """QA (white box): a thread the system refused (a process limit) in the middle of handing a
    file on raised "can't start new thread" out of the job (a traceback, the lanes never stopped).
    The files go to the committer every destination has; every one is verified."""
    start = threading.Thread.start

    def refused(self: threading.Thread) -> None:
        if "-sync" in self.name:
            raise RuntimeError("can't start new thread")
        start(self)

    monkeypatch.setattr(threading.Thread, "start", refused)
    slow_device.delay = 0.005
    src = card_of(tmp_path / "src", 30)
    dest = LocalDestination(tmp_path / "d1")
    assert runner([src], [dest]).exit_code == 0
    same_tree(src, tmp_path / "d1")
    assert not [t for t in slow_device.threads if "-sync" in t]
    assert any(t.endswith("-commit") for t in slow_device.threads), slow_device.threads
