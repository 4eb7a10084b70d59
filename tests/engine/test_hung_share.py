"""A folder on a network share that answers slowly, or stops answering (QA L 4, 8): its small files
go through its own lane, never the reader's, so the other destinations do not wait for it; a call
that does not return is said once; Ctrl-C ends the job without it."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import blake3
import pytest

from castoff.destinations import base, local
from castoff.destinations.base import ObjectMeta
from castoff.destinations.faulty import FaultPlan, FaultyDestination
from castoff.destinations.local import LocalDestination, network_filesystem
from castoff.engine import job
from castoff.engine.events import Event
from castoff.engine.retry import RetryPolicy
from castoff.engine.stall import STOPPED_GAP, CallWatch
from engine_runner import Runner, write

FAST = {"retry": RetryPolicy(attempts=3, base=0.01, cap=0.05), "lane_pause": 0.05, "hung_after": 0.2}
N = 12


@pytest.mark.parametrize(
    ("fs_type", "network"),
    [
        ("nfs", True), ("nfs4", True), ("cifs", True), ("smb3", True), ("fuse.sshfs", True),
        ("fuse.rclone", True), ("fuse.smbnetfs", True), ("fuse.gvfsd-fuse", True), ("fuse", True),
        ("ext4", False), ("tmpfs", False), ("apfs", False), ("vfat", False), ("exfat", False),
        ("fuseblk", False), ("fuse.fusefat", False), ("fuse.ntfs-3g", False), (None, False),
    ],
)  # fmt: skip
def test_which_filesystems_are_network_shares(fs_type: str | None, network: bool) -> None:
    assert network_filesystem(fs_type) is network


@pytest.fixture
def card(tmp_path: Path) -> Path:
    src = tmp_path / "src" / "card"
    for i in range(N):
        write(src / "DCIM" / f"IMG_{i:04}.JPG", os.urandom(100_000))
    return src


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    """Held shut, the share's writes wait; opened at the test's end whatever happens, so that no
    thread of the share stays waiting after it."""
    opened = threading.Event()
    yield opened
    opened.set()


def share(tmp_path: Path, gate: threading.Event) -> FaultyDestination:
    """A folder on a network share whose every write waits until ``gate`` opens."""
    return FaultyDestination(
        LocalDestination(tmp_path / "nas"), FaultPlan(on_put=lambda target, index: gate.wait()), network=True
    )


def done_at(events: list[Event], dest: str) -> list[str]:
    return [str(e.data["rel_path"]) for e in events if e.kind == "file-done" and e.data["dest"] == dest]


def test_small_files_do_not_wait_for_a_share(
    tmp_path: Path, runner: Runner, card: Path, gate: threading.Event
) -> None:
    """The SSD gets every small file while the share takes none: the reader wrote, read back
    and named each one at every local folder itself, the share's too, so the SSD filled at
    the share's pace (QA L 4: 33.5 s for 150 files; the SSD alone 1 s), and stopped with it."""
    ssd = LocalDestination(tmp_path / "ssd")
    nas = share(tmp_path, gate)

    def hook(event: Event) -> None:
        if event.kind == "file-done" and len(done_at(runner.events, ssd.name)) == N:
            assert done_at(runner.events, nas.name) == []
            gate.set()  # the share answers again

    runner.hook = hook
    result = runner.bounded([card], [ssd, nas], timeout=60, **FAST)
    assert result.exit_code == 0, runner.logs()
    for i in range(N):
        rel = f"card/DCIM/IMG_{i:04}.JPG"
        data = (card / "DCIM" / f"IMG_{i:04}.JPG").read_bytes()
        assert (tmp_path / "ssd" / rel).read_bytes() == data
        assert (tmp_path / "nas" / rel).read_bytes() == data


def test_a_share_that_stops_answering_is_said_once(
    tmp_path: Path, runner: Runner, card: Path, gate: threading.Event
) -> None:
    """A write that does not return is said, once, as a warning (an event in --json); the job
    waits for the share, which here answers once it was said."""
    ssd = LocalDestination(tmp_path / "ssd")
    nas = share(tmp_path, gate)
    said = (
        f"{nas.name} has not answered for 0 s (a share that stopped answering?): the other destinations go on"
    )

    def hook(event: Event) -> None:
        if event.kind == "log" and str(event.data["message"]).startswith(said):
            gate.set()

    runner.hook = hook
    result = runner.bounded([card], [ssd, nas], timeout=60, **FAST)
    assert result.exit_code == 0, runner.logs()
    warnings = [
        str(e.data["message"]) for e in runner.events if e.kind == "log" and e.data["level"] == "warning"
    ]
    assert [m for m in warnings if "has not answered" in m] == [
        f"{said}; castoff waits for it, Ctrl-C ends the job (a re-run sends the rest)"
    ]
    assert len(done_at(runner.events, nas.name)) == N


def test_ctrl_c_ends_a_job_whose_share_never_answers(
    tmp_path: Path, runner: Runner, card: Path, gate: threading.Event, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C once the share was said: the job ends (it used to wait for the share for good),
    the SSD's files verified, the share's incomplete, and the share down, so that nothing more
    (no report, no ASC MHL) is written there; its thread still waits, which only the share ends."""
    monkeypatch.setattr(job, "STOP_WAIT_CANCELLED", 0.5)  # what a stopped job gives each lane
    ssd = LocalDestination(tmp_path / "ssd")
    nas = share(tmp_path, gate)

    def hook(event: Event) -> None:
        if event.kind == "log" and "has not answered" in str(event.data["message"]):
            runner.engine.cancel.set()  # Ctrl-C

    runner.hook = hook
    result = runner.bounded([card], [ssd, nas], timeout=60, **FAST)
    assert result.exit_code == 130, runner.logs()
    out = runner.outcomes()
    assert {out[(f"card/DCIM/IMG_{i:04}.JPG", ssd.name)]["status"] for i in range(N)} == {"verified"}
    assert {out[(f"card/DCIM/IMG_{i:04}.JPG", nas.name)]["status"] for i in range(N)} == {"incomplete"}
    assert runner.engine.down() == {nas.ident: True}  # nothing more is written there
    left = [m for m in runner.logs() if m.startswith(f"{nas.name}: left unfinished:")]
    assert len(left) == 1 and "has not returned (a share that stopped answering?)" in left[0], runner.logs()


def test_a_slow_local_drive_is_not_said_to_have_stopped_answering(
    tmp_path: Path, runner: Runner, card: Path, gate: threading.Event
) -> None:
    """A drive that is no share (a USB disk flushing a big clip, a long read-back) may take a
    call longer than the watchdog's limit: that is a slow drive, not "a share that stopped
    answering?". Here its writes wait five times the limit; nothing is said of it."""
    ssd = LocalDestination(tmp_path / "ssd")
    slow = FaultyDestination(
        LocalDestination(tmp_path / "usb"), FaultPlan(on_put=lambda target, index: gate.wait())
    )
    opener = threading.Timer(5 * FAST["hung_after"], gate.set)  # (waits past the limit: no bound on castoff)
    opener.start()
    try:
        result = runner.bounded([card], [ssd, slow], timeout=60, **FAST)
    finally:
        opener.cancel()
    assert result.exit_code == 0, runner.logs()
    assert not [m for m in runner.logs() if "has not answered" in m], runner.logs()
    assert len(done_at(runner.events, slow.name)) == N


def test_a_long_read_back_counts_as_answering(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A read-back of a big clip says at each chunk that the drive still answers
    (``still_answering``): the call's time under way, as the watchdog reads it, counts from the
    last chunk, not from the start of the commit."""
    calls: dict[int, float] = {}
    seen: list[float] = []
    real = local.still_answering

    def still_answering() -> None:
        real()
        seen.append(calls[7])

    monkeypatch.setattr(local, "still_answering", still_answering)
    dest = LocalDestination(tmp_path / "usb")
    dest.preflight()
    data = os.urandom(3 * local.READ_BACK_CHUNK + 5)
    outer = base.watch_call(calls, 7)
    try:
        calls[7] = 0.0  # began long ago
        meta = ObjectMeta(rel_path="clip.mov", size=len(data), mtime_ns=0, atime_ns=0)
        upload = dest.start(str(tmp_path / "usb" / "clip.mov"), meta=meta, part_size=len(data))
        receipt = upload.put_part(0, 0, memoryview(data), None)
        upload.commit([receipt], source_blake3=blake3.blake3(data).hexdigest())
    finally:
        base.end_call(calls, 7, outer)
    assert len(seen) >= 3 and all(t > 0.0 for t in seen), seen
    assert calls == {}  # the call is over


def test_a_process_stopped_for_minutes_saw_no_share_stop_answering() -> None:
    """Ctrl-Z during a copy to a share, ``fg`` three minutes later: a write under way then had
    not waited for the share all that time, and is not said to have stopped answering. A share
    that then stops answering still is, after the limit, counted from the resume."""
    now = [0.0]
    watch = CallWatch(0.25, clock=lambda: now[0])
    began = 0.1  # a write, under way when the process stopped
    for t in (0.25, 0.5, 0.75):
        now[0] = t
        assert watch.under_way(began, watch.look()) == pytest.approx(t - began)
    now[0] = 180.75  # stopped, then resumed: the first look since
    assert watch.under_way(began, watch.look()) == 0.0
    for t in (181.0, 241.0):  # the look goes on every 0.25 s (one in two shown)
        while now[0] < t:
            now[0] += 0.25
            watch.look()
        assert watch.under_way(began, now[0]) == pytest.approx(t - 180.75)
    assert watch.under_way(200.0, now[0]) == pytest.approx(41.0)  # a call begun after the resume
    now[0] += 0.25 + STOPPED_GAP - 0.5  # a look late by less than the gap: the process ran
    assert watch.under_way(began, watch.look()) > 60
