"""A destination that becomes unusable (gone, full, read-only, a bucket refusing the key) is said
once, is tried no more, and every file that did not go there is still recorded as failed there;
a one-off error of one file stays that file's."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest

from castoff import errors
from castoff.destinations.base import Destination, MiB
from castoff.destinations.faulty import FaultPlan, FaultyDestination, PartFault
from castoff.destinations.local import LocalDestination
from castoff.destinations.memory import MemoryDestination
from castoff.engine.job import Engine
from castoff.engine.retry import RetryPolicy
from engine_runner import Runner, write

CHUNK = 1 * MiB
FAST = {"retry": RetryPolicy(attempts=3, base=0.01, cap=0.05), "lane_pause": 0.05}


def card(tmp_path: Path, n: int, size: int) -> Path:
    src = tmp_path / "src" / "card"
    for i in range(n):
        write(src / f"IMG_{i:04}.JPG", os.urandom(size))
    return src


def error_lines(runner: Runner, dest: str) -> list[str]:
    """The console's error lines about ``dest`` (what a user sees without --debug)."""
    return [
        str(e.data["message"])
        for e in runner.events
        if e.kind == "log" and e.data.get("level") == "error" and dest in str(e.data["message"])
    ]


class Puts:
    """Counts the parts a destination was asked to take."""

    def __init__(self) -> None:
        self.n = 0
        self._lock = threading.Lock()

    def __call__(self, target: str, index: int) -> None:
        with self._lock:
            self.n += 1


def failing_everything(inner: Destination, error: type[errors.CastoffError], puts: Puts) -> FaultyDestination:
    return FaultyDestination(
        inner, FaultPlan(part_faults=[PartFault("", lambda: error("injected"), times=10_000)], on_put=puts)
    )


def check_all_failed_there(runner: Runner, n: int, name: str, code: str) -> None:
    out = runner.outcomes()
    there = [out[(f"card/IMG_{i:04}.JPG", name)] for i in range(n)]
    assert {r["status"] for r in there} == {"failed"}
    assert {r["error_code"] for r in there} == {code}
    assert all(r["error"] for r in there)


def check_all_verified(runner: Runner, n: int, name: str) -> None:
    out = runner.outcomes()
    assert {out[(f"card/IMG_{i:04}.JPG", name)]["status"] for i in range(n)} == {"verified"}


def test_a_full_drive_is_said_once_and_tried_no_more_small_files(tmp_path: Path, runner: Runner) -> None:
    n = 40
    src = card(tmp_path, n, 4000)  # small files: the reader writes them itself
    puts = Puts()
    full = failing_everything(LocalDestination(tmp_path / "full"), errors.DestinationFull, puts)
    ok = LocalDestination(tmp_path / "ok")
    result = runner.bounded([src], [full, ok], chunk_size=CHUNK, **FAST)
    said = error_lines(runner, full.name)
    assert len(said) == 1, said
    assert result.exit_code == 1 and not result.no_destination
    assert "stopped" in said[0] and "No more files go there" in said[0] and "carry on" in said[0]
    assert puts.n == 1  # the first file met it; no other was tried there
    check_all_failed_there(runner, n, full.name, "destination-full")
    check_all_verified(runner, n, ok.name)
    assert result.lanes[full.name]["failed"] == n and result.lanes[ok.name]["verified"] == n


def test_a_drive_that_vanishes_under_big_files_is_said_once(tmp_path: Path, runner: Runner) -> None:
    n = 8
    src = card(tmp_path, n, 2 * CHUNK + 5)  # through the lane's workers and committer
    puts = Puts()
    usb = FaultyDestination(
        LocalDestination(tmp_path / "usb"), FaultPlan(vanish_after_bytes=3 * CHUNK, on_put=puts)
    )
    ok = LocalDestination(tmp_path / "ok")
    result = runner.bounded([src], [usb, ok], chunk_size=CHUNK, memory_budget=16 * CHUNK, **FAST)
    assert result.exit_code == 1
    said = error_lines(runner, usb.name)
    assert len(said) == 1, said
    check_all_verified(runner, n, ok.name)
    out = runner.outcomes()
    statuses = [out[(f"card/IMG_{i:04}.JPG", usb.name)]["status"] for i in range(n)]
    assert statuses.count("failed") >= n - 1
    assert {out[(f"card/IMG_{i:04}.JPG", usb.name)]["error_code"] for i in range(n)} <= {
        None,
        "destination-gone",
    }
    # once it was gone, the parts still queued there were not offered to it one by one
    assert puts.n <= 3 + 3


def test_a_bucket_that_refuses_the_key_mid_job_is_said_once(tmp_path: Path, runner: Runner) -> None:
    n = 12
    src = card(tmp_path, n, 3000)
    puts = Puts()
    bucket = failing_everything(MemoryDestination("bucket", is_local=False), errors.BadCredentials, puts)
    ok = LocalDestination(tmp_path / "ok")
    result = runner.bounded([src], [bucket, ok], chunk_size=CHUNK, **FAST)
    assert result.exit_code == 1
    said = error_lines(runner, "bucket")
    assert len(said) == 1, said
    check_all_failed_there(runner, n, "bucket", "bad-credentials")
    check_all_verified(runner, n, ok.name)
    # the bucket's own workers may have had a few parts in hand when the first answer came back
    assert puts.n <= 4


def test_one_file_too_large_for_the_drive_fails_alone(tmp_path: Path, runner: Runner) -> None:
    """FAT32's 4 GiB limit (EFBIG), or one name the filesystem refuses: that file fails, loudly,
    and the destination takes every other file."""
    n = 6
    src = card(tmp_path, n, 3000)
    fat = FaultyDestination(
        LocalDestination(tmp_path / "fat"),
        FaultPlan(
            part_faults=[
                PartFault("IMG_0002", lambda: errors.DestinationError("File too large (injected)")),
                PartFault("IMG_0004", lambda: errors.KeyRejected("Invalid argument (injected)")),
            ]
        ),
    )
    result = runner.bounded([src], [fat], chunk_size=CHUNK, **FAST)
    assert result.exit_code == 1
    out = runner.outcomes()
    failed = {i for i in range(n) if out[(f"card/IMG_{i:04}.JPG", fat.name)]["status"] == "failed"}
    assert failed == {2, 4}
    said = error_lines(runner, fat.name)
    assert len(said) == 2 and "IMG_0002" in said[0] + said[1] and "IMG_0004" in said[0] + said[1]
    assert not any("No more files" in line for line in said)
    assert runner.engine.lanes[0].dead is None


def test_a_destination_unusable_from_the_start_is_said_once(tmp_path: Path, runner: Runner) -> None:
    n = 25
    src = card(tmp_path, n, 3000)
    (tmp_path / "afile").write_bytes(b"not a folder")
    bad = LocalDestination(tmp_path / "afile" / "ssd")  # its parent is a file
    ok = LocalDestination(tmp_path / "ok")
    result = runner.bounded([src], [bad, ok], chunk_size=CHUNK, **FAST)
    said = error_lines(runner, bad.name)
    assert len(said) == 1, said
    assert result.exit_code == 1 and not result.no_destination
    assert "cannot be used" in said[0] and "is a file, not a folder" in said[0] and "carry on" in said[0]
    check_all_failed_there(runner, n, bad.name, "usage")
    check_all_verified(runner, n, ok.name)


def test_no_usable_destination_at_all_writes_nothing_and_exits_2(tmp_path: Path, runner: Runner) -> None:
    n = 10
    src = card(tmp_path, n, 3000)
    (tmp_path / "afile").write_bytes(b"not a folder")
    bad = LocalDestination(tmp_path / "afile" / "ssd")
    unmounted = LocalDestination(tmp_path / "media" / "usb" / "shoots")  # no /media/usb
    result = runner.bounded([src], [bad, unmounted], chunk_size=CHUNK, **FAST)
    assert result.exit_code == 2 and result.no_destination and result.bytes_read == 0
    for d in (bad, unmounted):
        said = error_lines(runner, d.name)
        assert len(said) == 1, said
        assert "carry on" not in said[0]
    check_all_failed_there(runner, n, bad.name, "usage")
    check_all_failed_there(runner, n, unmounted.name, "destination-gone")
    assert not (tmp_path / "media").exists()


def test_every_destination_full_before_any_file_landed_exits_2(tmp_path: Path, runner: Runner) -> None:
    """Full (or gone) from the very first file, with nothing delivered anywhere: as unusable as a
    drive that is not mounted (README: exit 2, nothing was written)."""
    n = 5
    src = card(tmp_path, n, 3000)
    full = failing_everything(LocalDestination(tmp_path / "full"), errors.DestinationFull, Puts())
    result = runner.bounded([src], [full], chunk_size=CHUNK, **FAST)
    assert result.exit_code == 2 and result.no_destination
    assert len(error_lines(runner, full.name)) == 1
    check_all_failed_there(runner, n, full.name, "destination-full")


def test_a_destination_that_fails_after_some_files_landed_exits_1(tmp_path: Path, runner: Runner) -> None:
    n = 6
    src = card(tmp_path, n, 3000)
    late = FaultyDestination(
        LocalDestination(tmp_path / "late"),
        FaultPlan(part_faults=[PartFault("IMG_0003", lambda: errors.DestinationGone("gone (injected)"))]),
    )
    result = runner.bounded([src], [late], chunk_size=CHUNK, **FAST)
    assert result.exit_code == 1 and not result.no_destination
    said = error_lines(runner, late.name)
    assert len(said) == 1 and "stopped: gone (injected)" in said[0], said
    out = runner.outcomes()
    assert [out[(f"card/IMG_{i:04}.JPG", late.name)]["status"] for i in range(n)] == ["verified"] * 3 + [
        "failed"
    ] * 3


def test_a_file_that_fails_at_a_destination_gone_down_meanwhile_is_not_sent_there_again(
    tmp_path: Path, runner: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """QA M #4: a failing drive went read-only; a file whose read-back had given other bytes
    meanwhile was then "sending it again" there, after the "stopped" line. It ends as the lane's
    other files do, said once. (Another thread's write meeting EROFS is played by taking the lane
    down from B.JPG's commit, just before its read-back.)"""
    src = tmp_path / "src" / "card"
    write(src / "B.JPG", os.urandom(4000))
    write(src / "C.JPG", os.urandom(4000))
    engines: list[Engine] = []
    real_run = Engine.run

    def run(self: Engine, sources: Any) -> Any:
        engines.append(self)
        return real_run(self, sources)

    def on_commit(target: str) -> None:
        if target.endswith("B.JPG"):
            (engine,) = engines
            (lane,) = [ln for ln in engine.lanes if ln.name == failing.name]
            engine._lane_down(lane, errors.DestinationReadOnly("Read-only file system (injected)"))

    monkeypatch.setattr(Engine, "run", run)
    plan = FaultPlan(corrupt_before_commit=["B.JPG"], on_commit=on_commit)
    failing = FaultyDestination(LocalDestination(tmp_path / "ssd"), plan)
    ok = LocalDestination(tmp_path / "ok")
    result = runner.bounded([src], [failing, ok], chunk_size=CHUNK, **FAST)
    assert result.exit_code == 1
    assert not [line for line in runner.logs() if "sending it again" in line], runner.logs()
    assert len(error_lines(runner, failing.name)) == 1, "\n".join(error_lines(runner, failing.name))
    out = runner.outcomes()
    for name in ("B.JPG", "C.JPG"):
        there = out[(f"card/{name}", failing.name)]
        assert there["status"] == "failed" and there["error_code"] == "destination-read-only", there
    assert result.lanes[failing.name]["restarts"] == 0
