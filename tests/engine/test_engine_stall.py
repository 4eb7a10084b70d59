"""A job never waits forever: a bug that leaves a file unfinished ends the job with exit 1 and
that file failed (resumable by a re-run), never a hang. The bugs are made on purpose here."""

from __future__ import annotations

from pathlib import Path

import pytest

from castoff import errors
from castoff.destinations.base import MiB
from castoff.destinations.faulty import FaultPlan, FaultyDestination, FaultyUpload, PartFault
from castoff.destinations.local import LocalDestination
from castoff.engine.job import Engine
from castoff.engine.lanes import Stream
from castoff.engine.retry import RetryPolicy
from castoff.engine.stall import StallWatch
from engine_runner import Runner, write

OPTS = {"retry": RetryPolicy(attempts=2, base=0.01, cap=0.02), "chunk_size": MiB, "memory_budget": 8 * MiB}


def card(tmp_path: Path) -> Path:
    src = tmp_path / "src" / "card"
    write(src / "A.JPG", b"a" * 1000)
    write(src / "CLIP.MP4", b"c" * (2 * MiB + 3))
    write(src / "B.JPG", b"b" * 2000)
    return src


def test_a_close_that_raises_ends_its_file_as_failed(
    tmp_path: Path, runner: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_abort(self: FaultyUpload) -> None:
        raise RuntimeError("a bug in abort")

    monkeypatch.setattr(FaultyUpload, "abort", broken_abort)
    refused = PartFault("CLIP", lambda: errors.PermanentError("refused (injected)"), index=1)
    dest = FaultyDestination(LocalDestination(tmp_path / "d"), FaultPlan(part_faults=[refused]))
    ok = LocalDestination(tmp_path / "ok")
    result = runner.bounded([card(tmp_path)], [dest, ok], **OPTS)
    assert result.exit_code == 1
    out = runner.outcomes()
    clip = out[("card/CLIP.MP4", dest.name)]
    assert clip["status"] == "failed"
    assert "a bug in abort" in clip["error"]  # the close's own error, not a stall found later
    others = {k: r["status"] for k, r in out.items() if k != ("card/CLIP.MP4", dest.name)}
    assert len(others) == 5
    assert set(others.values()) == {"verified"}


def test_a_file_no_thread_will_finish_ends_the_job_with_exit_1(
    tmp_path: Path, runner: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = Engine._close_stream

    def loses_the_clip(self: Engine, stream: Stream) -> None:
        if "CLIP" not in stream.target:
            real(self, stream)  # the clip's close never comes: nothing is left that would end it

    monkeypatch.setattr(Engine, "_close_stream", loses_the_clip)
    d1, d2 = LocalDestination(tmp_path / "d1"), LocalDestination(tmp_path / "d2")
    result = runner.bounded([card(tmp_path)], [d1, d2], **OPTS)
    assert result.exit_code == 1
    out = runner.outcomes()
    for d in (d1, d2):
        clip = out[("card/CLIP.MP4", d.name)]
        assert clip["status"] == "failed"
        assert "never finished" in clip["error"]
        assert out[("card/A.JPG", d.name)]["status"] == "verified"
    assert any("stopped making progress with 1 file unfinished (card/CLIP.MP4)" in ln for ln in runner.logs())


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_watch_counts_only_an_unbroken_stillness() -> None:
    clock = Clock()
    watch = StallWatch(grace=5.0, clock=clock)
    assert not watch.stalled(True)
    clock.now += 4.9
    assert not watch.stalled(True)
    assert not watch.stalled(False)  # something moved: the count starts again
    clock.now += 4.9
    assert not watch.stalled(True)
    clock.now += 4.9
    assert not watch.stalled(True)
    clock.now += 0.2
    assert watch.stalled(True)
