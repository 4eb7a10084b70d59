"""Two jobs on one catalog: which is running, and the guard that refuses a second job on the same
files and destination (castoff.catalog.running, Catalog.start_job)."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from castoff import errors
from castoff.catalog.db import Catalog
from castoff.catalog.running import JobRunning, job_alive, process_start, row_alive, sources_overlap

SSD = {"name": "ssd", "ident": "local:/Volumes/SSD", "kind": "local"}
ARK = {"name": "@ark", "ident": "s3:aws/ark/shoots/", "kind": "s3"}
ME = os.getpid()
ME_START = process_start(ME)


@pytest.fixture
def cat(tmp_path: Path) -> Iterator[Catalog]:
    c = Catalog(tmp_path / "catalog.sqlite")
    yield c
    c.close()


def start(cat: Catalog, job_id: str, sources: list[str], dests: list[dict[str, str]], **kw: Any) -> None:
    kw.setdefault("pid", ME)
    kw.setdefault("proc_start", ME_START)
    cat.start_job(
        job_id, argv=["castoff"], sources=sources, destinations=dests, options={}, alive=row_alive, **kw
    )


def running(cat: Catalog) -> list[str]:
    return [str(r["id"]) for r in cat.jobs() if r["status"] == "running"]


def dead_pid() -> int:
    gone = subprocess.Popen(["true"])
    gone.wait()
    return gone.pid


def test_a_second_job_on_the_same_card_and_destination_is_refused_naming_the_first(
    cat: Catalog, tmp_path: Path
) -> None:
    card = tmp_path / "card"
    (card / "DCIM").mkdir(parents=True)
    start(cat, "first", [str(card)], [SSD, ARK])
    with pytest.raises(JobRunning) as refused:
        start(cat, "second", [str(card / "DCIM")], [ARK])  # a folder of the card, one destination
    exc = refused.value
    assert exc.exit_code == errors.EXIT_USAGE
    said = str(exc)
    for text in ("job first", f"pid {ME}", "started ", str(card), "ssd, @ark", "wait for it to finish"):
        assert text in said, text
    assert "run this again to resume" in said
    assert "Two jobs on the same files and bucket would take over each other's uploads" in said
    assert running(cat) == ["first"]  # the refused job left no row
    with pytest.raises(JobRunning) as refused:  # the card's parent folder holds the card: refused too
        start(cat, "third", [str(tmp_path)], [SSD])
    said = str(refused.value)  # a folder has no uploads to take over (QA): what is true for one
    assert "uploads" not in said
    assert "Two jobs on the same files and folder would each read every file and write it there" in said


def test_another_card_or_another_destination_runs_beside_it(cat: Catalog, tmp_path: Path) -> None:
    start(cat, "card-a", [str(tmp_path / "A")], [SSD, ARK])
    start(cat, "card-b", [str(tmp_path / "B")], [SSD, ARK])  # the DIT's second reader
    start(
        cat, "a-elsewhere", [str(tmp_path / "A")], [{"name": "nas", "ident": "local:/nas", "kind": "local"}]
    )
    start(cat, "prefix-a", [str(tmp_path / "AB")], [SSD])  # a name that begins another is not inside it
    assert sorted(running(cat)) == ["a-elsewhere", "card-a", "card-b", "prefix-a"]


def test_a_source_reached_through_a_symlink_is_the_same_source(cat: Catalog, tmp_path: Path) -> None:
    (tmp_path / "card").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "card")
    start(cat, "first", [str(tmp_path / "card")], [SSD])
    with pytest.raises(JobRunning):
        start(cat, "second", [str(tmp_path / "link")], [SSD])
    assert sources_overlap([str(tmp_path / "link")], [str(tmp_path / "card")]) is not None


def test_a_job_whose_process_is_gone_does_not_block_and_is_marked_interrupted(
    cat: Catalog, tmp_path: Path
) -> None:
    start(cat, "killed", [str(tmp_path / "card")], [SSD], pid=dead_pid(), proc_start=None)
    start(cat, "rerun", [str(tmp_path / "card")], [SSD])
    cat.end_dead_jobs(row_alive)
    statuses = {r["id"]: r["status"] for r in cat.jobs()}
    assert statuses == {"killed": "interrupted", "rerun": "running"}


@pytest.mark.skipif(ME_START is None, reason="no /proc: the process id alone is taken at its word")
def test_a_process_id_given_to_another_process_since_is_not_the_job(cat: Catalog, tmp_path: Path) -> None:
    # our own (live) process id, recorded with another process's start: the id was reused
    start(cat, "old", [str(tmp_path / "card")], [SSD], proc_start="another-boot:12345")
    start(cat, "rerun", [str(tmp_path / "card")], [SSD])
    assert job_alive(ME, ME_START) and not job_alive(ME, "another-boot:12345")
    assert job_alive(ME, None)  # a row from before proc_start was kept: the pid alone


@pytest.mark.skipif(ME_START is None, reason="no /proc: the process id alone is taken at its word")
def test_an_older_castoffs_row_whose_process_id_went_to_a_later_process_is_not_running(
    cat: Catalog, tmp_path: Path
) -> None:
    """QA (upgrade): a job an older castoff left running (no proc_start) after its process was
    killed; its id went to another process after a reboot. It was taken as running: "another
    castoff job is copying … kill PID", naming an unrelated process, and prune never vacuumed."""
    later = subprocess.Popen(["sleep", "60"])
    try:
        start(cat, "killed", [str(tmp_path / "card")], [SSD], pid=later.pid, proc_start=None)
        with cat._db:  # its job began before that process did (as the older row says)
            cat._db.execute("UPDATE jobs SET started_at=started_at-60 WHERE id='killed'")
        assert not job_alive(later.pid, None, time.time() - 60)
        assert job_alive(later.pid, None, time.time())  # begun with it: it may be the job's own
        assert job_alive(later.pid, None)  # when the job began is not known: the pid at its word
        start(cat, "rerun", [str(tmp_path / "card")], [SSD])  # not refused as running beside it
        cat.end_dead_jobs(row_alive)
        statuses = {r["id"]: r["status"] for r in cat.jobs()}
        assert statuses == {"killed": "interrupted", "rerun": "running"}
    finally:
        later.kill()
        later.wait()


@pytest.mark.skipif(ME_START is None, reason="no /proc to tell a zombie")
def test_a_zombie_is_not_a_running_job() -> None:
    child = subprocess.Popen(["true"])
    try:
        deadline = time.monotonic() + 10
        while "Z" not in Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]:
            assert time.monotonic() < deadline
            time.sleep(0.02)  # it exits; unreaped, it stays a zombie until wait()
        assert not job_alive(child.pid, None)
    finally:
        child.wait()


def test_two_jobs_started_in_the_same_instant_cannot_both_pass(tmp_path: Path) -> None:
    """The check and the insert are one write transaction: the second job's check waits for the
    first's insert. Each check here takes a while on purpose (a killed job of the same card to
    look at), so a check made outside the transaction would let both through."""
    path = tmp_path / "catalog.sqlite"
    card = str(tmp_path / "card")
    first = Catalog(path)
    first.start_job(
        "killed", argv=["castoff"], sources=[card], destinations=[SSD], options={}, pid=dead_pid()
    )
    first.close()
    barrier = threading.Barrier(2)
    outcomes: dict[str, str] = {}

    def slow_alive(row: Any) -> bool:
        if row["id"] == "killed":
            time.sleep(0.3)
        return row_alive(row)

    def job(job_id: str) -> None:
        c = Catalog(path)  # a connection each, as two processes have
        try:
            barrier.wait(5)
            c.start_job(
                job_id, argv=["castoff"], sources=[card], destinations=[SSD],
                options={}, pid=ME, proc_start=ME_START, alive=slow_alive,
            )  # fmt: skip
            outcomes[job_id] = "started"
        except JobRunning:
            outcomes[job_id] = "refused"
        finally:
            c.close()

    threads = [threading.Thread(target=job, args=(name,)) for name in ("one", "two")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes.values()) == ["refused", "started"], outcomes


def test_one_key_of_a_bucket_is_claimed_by_one_running_job_at_a_time(cat: Catalog, tmp_path: Path) -> None:
    """``claim_key``: two jobs landing two cards on one key of a bucket without conditional writes;
    the second is told the first has it while the first runs, and for good once the first has put
    its object there (even if it looked before that object was in); a key only claimed is free again
    once its holder ended or died."""
    key = "EOS_DIGITAL/DCIM/100CANON/IMG_0001.CR3"
    ident = ARK["ident"]
    start(cat, "first", [str(tmp_path / "a" / "EOS_DIGITAL")], [ARK])
    start(cat, "second", [str(tmp_path / "b" / "EOS_DIGITAL")], [ARK])

    assert cat.claim_key(ident, key, "first", row_alive) is None  # free: the first has it now
    assert cat.claim_key(ident, key, "first", row_alive) is None  # its own claim again
    assert cat.claim_key(ident, key, "second", row_alive) == "first"
    assert cat.claim_key("s3:aws/other/", key, "second", row_alive) is None  # another bucket
    assert cat.claim_key(ident, key + ".xmp", "second", row_alive) is None  # another key

    cat.record_object(ident, key, blake3="b" * 64, size=1, job_id="first")  # put: the claim is done
    # the second looked at objects before the first's object was in, and claims after: taken
    assert cat.claim_key(ident, key, "second", row_alive) == "first"
    cat.end_job("first", status="ok", exit_code=0)
    assert cat.claim_key(ident, key, "second", row_alive) == "first"  # an object is there for good
    key = key.replace("0001", "0002")

    start(cat, "third", [str(tmp_path / "d" / "EOS_DIGITAL")], [ARK])
    assert cat.claim_key(ident, key, "second", row_alive) is None
    assert cat.claim_key(ident, key, "third", row_alive) == "second"
    cat.end_job("second", status="ok", exit_code=0)  # a job's end lets go of every key it held
    assert cat.claim_key(ident, key, "third", row_alive) is None
    assert cat.claim_key(ident, key + ".xmp", "third", row_alive) is None

    # a job killed while holding a key: its claim counts for nothing, and is taken over
    start(cat, "killed", [str(tmp_path / "c" / "EOS_DIGITAL")], [ARK], pid=dead_pid(), proc_start=None)
    assert cat.claim_key(ident, "K", "killed", lambda row: True) is None
    assert cat.claim_key(ident, "K", "third", row_alive) is None
    assert cat.claim_key(ident, "K", "killed", lambda row: True) == "third"
    # and found dead by the next job's start, its claims go with it
    assert cat.claim_key(ident, "L", "killed", lambda row: True) is None
    cat.end_dead_jobs(row_alive)
    rows = cat._query("SELECT target FROM claims WHERE job_id='killed'")
    assert rows == []


def test_a_files_name_is_claimed_at_every_destination_or_at_none(cat: Catalog, tmp_path: Path) -> None:
    """``claim_names``: a file's name, claimed at each of its job's destinations in one go. A job
    that finds it held at one of them by a job still running gets it at none (its photo goes
    beside it at all of them), and is told who holds it and where; a file that is there lets
    go of its claim (``let_go``), as does the end of its job, and a dead job's claim is taken over."""
    name = "EOS_DIGITAL/DCIM/100CANON/IMG_0001.CR3"
    at_ssd, at_ark = (SSD["ident"], f"/Volumes/SSD/{name}"), (ARK["ident"], name)
    start(cat, "first", [str(tmp_path / "a" / "EOS_DIGITAL")], [SSD, ARK])
    start(cat, "second", [str(tmp_path / "b" / "EOS_DIGITAL")], [SSD, ARK])

    def claims() -> list[tuple[str, str, str]]:
        return [tuple(r) for r in cat._query("SELECT dest_ident, target, job_id FROM claims ORDER BY 1")]

    assert cat.claim_names([at_ark], "first", row_alive) is None  # the first sends it to the bucket only
    assert cat.claim_names([at_ssd, at_ark], "second", row_alive) == ("first", ARK["ident"])
    assert claims() == [(*at_ark, "first")]  # not the SSD's name either, free as it was
    assert cat.claim_names([at_ssd, at_ark], "first", row_alive) is None  # its own, and the free one
    assert claims() == [(*at_ssd, "first"), (*at_ark, "first")]

    cat.let_go(SSD["ident"], [at_ssd[1]], "second")  # not the second's to let go
    cat.let_go(SSD["ident"], [at_ssd[1]], "first")  # the first's photo is at the SSD now
    assert claims() == [(*at_ark, "first")]
    assert cat.claim_names([at_ssd, at_ark], "second", row_alive) == ("first", ARK["ident"])
    cat.end_job("first", status="ok", exit_code=0)
    assert cat.claim_names([at_ssd, at_ark], "second", row_alive) is None
    assert claims() == [(*at_ssd, "second"), (*at_ark, "second")]

    start(cat, "killed", [str(tmp_path / "c" / "EOS_DIGITAL")], [SSD], pid=dead_pid(), proc_start=None)
    assert cat.claim_names([(SSD["ident"], "/Volumes/SSD/K")], "killed", lambda row: True) is None
    assert cat.claim_names([(SSD["ident"], "/Volumes/SSD/K"), at_ssd], "third", row_alive) == (
        "second",
        SSD["ident"],
    )
    # the dead job's claim, taken over on the way, is not kept for a name the third does not get
    assert [c for c in claims() if c[1] == "/Volumes/SSD/K"] == []
    assert cat.claim_names([(SSD["ident"], "/Volumes/SSD/K")], "third", row_alive) is None


def test_a_group_that_claims_names_while_no_other_job_runs_has_them_once_it_commits(
    cat: Catalog, tmp_path: Path
) -> None:
    """A held group (the reader's) where no other job runs claims without looking: no job can
    start before it commits. Once it has, another job sees the claims; with that job running,
    the next group looks, and is told who holds a name."""
    name = (SSD["ident"], "/Volumes/SSD/EOS_DIGITAL/DCIM/100CANON/IMG_0001.CR3")
    other = (SSD["ident"], "/Volumes/SSD/EOS_DIGITAL/DCIM/100CANON/IMG_0002.CR3")
    start(cat, "first", [str(tmp_path / "a" / "EOS_DIGITAL")], [SSD])
    cat.hold()
    assert cat.claim_names([name], "first", row_alive) is None
    landed = (SSD["ident"], name[1].replace("0001", "0003"))
    assert cat.claim_names([landed], "first", row_alive) is None
    cat.let_go(landed[0], [landed[1]], "first")  # it landed, in the same group
    cat.release()
    second = Catalog(tmp_path / "catalog.sqlite")  # another process's connection
    try:
        start(second, "second", [str(tmp_path / "b" / "EOS_DIGITAL")], [SSD])
        assert second.claim_names([name], "second", row_alive) == ("first", SSD["ident"])
        assert (
            second.claim_names([landed], "second", row_alive) is None
        )  # let go in the group that claimed it
        cat.hold()  # the second runs now: the first's group looks before it claims
        assert cat.claim_names([landed], "first", row_alive) == ("second", SSD["ident"])
        assert cat.claim_names([other], "first", row_alive) is None
        cat.release()
        assert second.claim_names([other], "second", row_alive) == ("first", SSD["ident"])
    finally:
        second.close()


def test_a_claim_let_go_in_the_group_that_made_it_costs_no_row(cat: Catalog, tmp_path: Path) -> None:
    """A small file claims its name and lands in one held group: with no other job running, the
    claim and its let-go cancel before either is written (what a card of small files costs); a
    claim written by an earlier group is still deleted by a later group's let-go."""
    early = (SSD["ident"], "/Volumes/SSD/EOS_DIGITAL/DCIM/100CANON/IMG_0001.CR3")
    small = (SSD["ident"], "/Volumes/SSD/EOS_DIGITAL/DCIM/100CANON/IMG_0002.CR3")
    start(cat, "first", [str(tmp_path / "a" / "EOS_DIGITAL")], [SSD])
    cat.hold()
    assert cat.claim_names([early], "first", row_alive) is None
    cat.release()
    before = cat._db.total_changes
    cat.hold()
    assert cat.claim_names([small], "first", row_alive) is None
    cat.let_go(small[0], [small[1]], "first")
    cat.let_go(early[0], [early[1]], "second")  # not the second's: it stays
    cat.release()
    assert cat._db.total_changes == before  # (the second's let-go matched no row)
    rows = cat._query("SELECT dest_ident, target, job_id FROM claims")
    assert [tuple(r) for r in rows] == [(*early, "first")]
    cat.hold()
    cat.let_go(early[0], [early[1]], "first")
    cat.release()
    assert cat._query("SELECT * FROM claims") == []


def test_two_jobs_claiming_one_key_in_the_same_instant_one_gets_it(tmp_path: Path) -> None:
    """Each job has its own connection (its own process in real life): the look and the claim are
    one write transaction, so exactly one of many simultaneous claims wins."""
    path = tmp_path / "catalog.sqlite"
    cats = [Catalog(path) for _ in range(6)]
    try:
        for i, c in enumerate(cats):
            start(c, f"job{i}", [str(tmp_path / f"card{i}")], [ARK])
        gate = threading.Barrier(len(cats))
        answers: dict[str, str | None] = {}

        def claim(i: int) -> None:
            gate.wait()
            answers[f"job{i}"] = cats[i].claim_key(ARK["ident"], "IMG_0001.CR3", f"job{i}", row_alive)

        threads = [threading.Thread(target=claim, args=(i,)) for i in range(len(cats))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        winners = [job for job, holder in answers.items() if holder is None]
        assert len(winners) == 1, answers
        assert all(holder == winners[0] for job, holder in answers.items() if job != winners[0])
    finally:
        for c in cats:
            c.close()
