"""ASC MHL on a re-run: the catalog remembers which job left each history as it is, so a re-run
knows what the history holds without reading it, and reads it whenever the history changed."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from castoff.destinations.local import LocalDestination
from castoff.reports import mhl, mhl_job
from castoff.reports.finish import FinishOptions, write_mhl
from engine_runner import Runner, write


def _job(runner: Runner, src: Path, dest: LocalDestination) -> mhl_job.MhlOutcome:
    assert runner([src], [dest]).exit_code == 0
    (outcome,) = mhl_job.write_for_job(
        runner.catalog, runner.job_id, {dest.ident: str(dest.root)}, sources=[str(src)], with_sources=False
    )
    assert outcome.ok, outcome.message
    return outcome


def _generations(root: Path) -> list[mhl.Generation]:
    return mhl.read_chain(root)


@pytest.fixture
def card(tmp_path: Path) -> Path:
    src = tmp_path / "src" / "card"
    for i in range(4):
        write(src / f"DCIM/IMG_{i}.JPG", os.urandom(3000 + i))
    return src


def test_a_rerun_records_nothing_and_does_not_read_the_history(
    tmp_path: Path, runner: Runner, card: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dest = LocalDestination(tmp_path / "d")
    assert _job(runner, card, dest).manifest is not None

    def unread(root: Path) -> dict[str, str]:
        raise AssertionError(f"the history of {root} was read")

    monkeypatch.setattr(mhl, "_known_xxh128", unread)
    assert _job(runner, card, dest).message == "ASC MHL: nothing new to record"
    assert _job(runner, card, dest).message == "ASC MHL: nothing new to record"  # remembered again
    assert len(_generations(tmp_path / "d")) == 1


def test_a_history_changed_since_is_read_again(tmp_path: Path, runner: Runner, card: Path) -> None:
    dest = LocalDestination(tmp_path / "d")
    _job(runner, card, dest)
    # another tool (here: castoff's own writer, as ascmhl would) adds a generation: the chain changes
    extra = write(tmp_path / "d" / "notes.txt", b"added by hand")
    entry = mhl.Entry("notes.txt", 13, extra.stat().st_mtime_ns, mhl.xxh128_of_file(extra), None, 0.0)
    assert mhl.write_generation(tmp_path / "d", [entry], started=0.0) is not None
    outcome = _job(runner, card, dest)
    assert outcome.message == "ASC MHL: nothing new to record"  # read: every file is in it already
    assert len(_generations(tmp_path / "d")) == 2


def test_a_history_moved_away_is_started_again_with_every_file(
    tmp_path: Path, runner: Runner, card: Path
) -> None:
    dest = LocalDestination(tmp_path / "d")
    _job(runner, card, dest)
    (tmp_path / "d" / mhl.FOLDER).rename(tmp_path / "old-ascmhl")
    outcome = _job(runner, card, dest)
    assert outcome.message == "ASC MHL generation 1: 4 files"


def test_a_file_sent_again_is_the_only_one_recorded(tmp_path: Path, runner: Runner, card: Path) -> None:
    dest = LocalDestination(tmp_path / "d")
    _job(runner, card, dest)
    (tmp_path / "d" / "card" / "DCIM" / "IMG_2.JPG").unlink()
    outcome = _job(runner, card, dest)
    assert outcome.message == "ASC MHL generation 2: 1 file"
    assert outcome.manifest is not None
    text = Path(outcome.manifest).read_text(encoding="utf-8")
    assert "card/DCIM/IMG_2.JPG" in text and 'action="verified"' in text


def test_a_rerun_still_reports_a_tampered_history(tmp_path: Path, runner: Runner, card: Path) -> None:
    dest = LocalDestination(tmp_path / "d")
    _job(runner, card, dest)
    (manifest,) = (tmp_path / "d" / mhl.FOLDER).glob("0001_*.mhl")
    manifest.write_text(manifest.read_text(encoding="utf-8").replace("IMG_1", "IMG_9"), encoding="utf-8")
    assert runner([card], [dest]).exit_code == 0
    (outcome,) = mhl_job.write_for_job(
        runner.catalog, runner.job_id, {dest.ident: str(dest.root)}, sources=[str(card)], with_sources=False
    )
    assert not outcome.ok
    assert "altered" in outcome.message


def test_no_history_is_written_where_a_destination_was_before_it_went_away(tmp_path: Path) -> None:
    """QA: a drive unmounted mid-job was said gone, then its ASC MHL was written into the empty
    mount point, on the system disk (hidden there once the drive was mounted again). A folder that
    is no longer the one the job began with gets "ASC MHL not written", and nothing in it."""
    card = tmp_path / "card"
    write(card / "DCIM" / "IMG_0001.JPG", b"one")
    usb, ssd = LocalDestination(tmp_path / "usb"), LocalDestination(tmp_path / "ssd")
    runner = Runner(tmp_path / "state")
    assert runner([card], [usb, ssd]).exit_code == 0
    (tmp_path / "usb").rename(tmp_path / "unplugged")  # gone, and its mount point left empty
    (tmp_path / "usb").mkdir()
    said = write_mhl(runner.catalog, runner.job_id, [usb, ssd], [str(card)], FinishOptions())
    by_scope = {o.scope: o for o in said}
    gone = by_scope[str(tmp_path / "usb")]
    assert not gone.ok and gone.manifest is None
    assert gone.message.startswith(f"ASC MHL not written: destination {tmp_path / 'usb'} is gone"), gone
    assert list((tmp_path / "usb").iterdir()) == []
    assert by_scope[str(tmp_path / "ssd")].ok  # the other destination's history goes on


def test_a_rerun_that_completes_an_unfinished_generation_says_so(
    tmp_path: Path, runner: Runner, card: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """QA M #5: the drive filled right after the first job's manifest was named, before the chain
    named it; the re-run chained it (``recover``) and said only "ASC MHL: nothing new to record"."""
    dest = LocalDestination(tmp_path / "ssd")
    assert runner([card], [dest]).exit_code == 0
    first = runner.job_id
    real_write_chain = mhl._write_chain

    def full(folder: Path, gens: list[mhl.Generation]) -> None:
        if not gens:  # the empty chain a new history begins with
            return real_write_chain(folder, gens)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(mhl, "_write_chain", full)
    (outcome,) = mhl_job.write_for_job(
        runner.catalog, first, {dest.ident: str(dest.root)}, sources=[str(card)], with_sources=False
    )
    assert not outcome.ok and "No space left on device" in outcome.message
    monkeypatch.undo()
    assert _generations(tmp_path / "ssd") == []
    outcome = _job(runner, card, LocalDestination(tmp_path / "ssd"))
    said = f"ASC MHL: generation 1, left unfinished by job {first}, completed; nothing new to record"
    assert outcome.message == said, outcome.message
    assert [g.number for g in _generations(tmp_path / "ssd")] == [1]
