"""A job beside another that is still running (another card to the same drive or bucket): what the
other has under way, its multipart uploads and hidden partial files, is never resumed nor cleaned
up; that of a job that has ended is (the ordinary re-run); a name the other is putting a file at
is not this job's, at any of its destinations."""

from __future__ import annotations

import os
import random
import threading
from pathlib import Path
from typing import Any

import pytest

from castoff.catalog.running import process_start
from castoff.destinations.base import MiB
from castoff.destinations.faulty import FaultPlan, FaultyDestination
from castoff.destinations.local import LocalDestination
from castoff.engine.events import Event
from castoff.engine.job import JobResult
from engine_runner import Runner, s3dest, write


def other_job(runner: Runner, dest_ident: str, *, alive: bool) -> None:
    """A job of another process on another card, to the same destination: running (this test's
    own process, alive) or killed (it said running, its process is gone: not this one's start)."""
    runner.catalog.start_job(
        "other",
        argv=["castoff"],
        sources=["/Volumes/OTHER_CARD"],
        destinations=[{"name": "d", "ident": dest_ident, "kind": "x"}],
        options={},
        pid=os.getpid(),
        proc_start=process_start(os.getpid()) if alive else "an-earlier-boot:1",
    )
    if not alive:
        runner.catalog.end_job("other", status="interrupted", exit_code=130)


def test_an_upload_a_running_job_sends_is_left_to_it(tmp_path: Path, runner: Runner, rclone_s3: Any) -> None:
    src = tmp_path / "card"
    clip = write(src / "A001.MOV", random.Random(4).randbytes(6 * MiB))
    bucket = s3dest(
        rclone_s3.url, rclone_s3.bucket, rclone_s3.access_key, rclone_s3.secret_key, part_size=5 * MiB
    )
    other_job(runner, bucket.ident, alive=True)
    st = clip.stat()
    theirs = runner.catalog.open_upload(
        dest_ident=bucket.ident, dest_name=bucket.name, target=bucket.target_for("card/A001.MOV"),
        src_path=str(clip), size=st.st_size, mtime_ns=st.st_mtime_ns, part_size=5 * MiB,
        token={"upload_id": "the-other-jobs-upload", "part_size": 5 * MiB}, blake3=None, job_id="other",
    )  # fmt: skip

    result = runner([src], [bucket], chunk_size=5 * MiB)

    assert result.exit_code == 0, runner.logs()
    assert any("job other is uploading it now" in m for m in runner.logs()), runner.logs()
    assert not any(m.startswith("resume:") for m in runner.logs()), runner.logs()
    left = runner.catalog.open_uploads()
    assert [(u.id, u.job_id, u.token["upload_id"]) for u in left] == [
        (theirs, "other", "the-other-jobs-upload")
    ]
    got = rclone_s3.client.get_object(Bucket=rclone_s3.bucket, Key=bucket.target_for("card/A001.MOV"))
    assert got["Body"].read() == clip.read_bytes()


def _partial(runner: Runner, ssd: LocalDestination, tmp_path: Path, *, alive: bool) -> Path:
    other_job(runner, ssd.ident, alive=alive)
    partial = write(tmp_path / "ssd" / "OTHER_CARD" / ".castoff.C0001.MP4.partial", b"half a clip")
    runner.catalog.add_partial(ssd.ident, str(partial), "other")
    return partial


def test_the_partial_files_of_a_running_job_at_the_same_drive_are_left_to_it(
    tmp_path: Path, runner: Runner, make_tree: Any
) -> None:
    src = make_tree({"DCIM/IMG_0001.JPG": b"jpeg"})
    ssd = LocalDestination(tmp_path / "ssd")
    partial = _partial(runner, ssd, tmp_path, alive=True)
    assert runner([src], [ssd]).exit_code == 0, runner.logs()
    assert partial.read_bytes() == b"half a clip"  # the other job is still writing it
    assert runner.catalog.partials(ssd.ident) == [str(partial)]


def test_the_partial_files_of_a_job_that_ended_are_cleaned_up(
    tmp_path: Path, runner: Runner, make_tree: Any
) -> None:
    src = make_tree({"DCIM/IMG_0001.JPG": b"jpeg"})
    ssd = LocalDestination(tmp_path / "ssd")
    partial = _partial(runner, ssd, tmp_path, alive=False)
    assert runner([src], [ssd]).exit_code == 0, runner.logs()
    assert not partial.exists()
    assert runner.catalog.partials(ssd.ident) == []


@pytest.mark.parametrize("policy", ["rename", "skip"])
def test_two_jobs_at_once_give_a_name_to_one_file_at_every_drive(tmp_path: Path, policy: str) -> None:
    """Two readers, two cards both called EOS_DIGITAL, two jobs at once to the same SSD and NAS
    (QA K 2): the first has landed its IMG_0001.CR3 at the SSD and is still verifying it at the
    NAS when the second comes. Each name went to whichever file was committed first at each
    drive: the second's photo took the name free at the NAS, the first's was kept beside it
    there (or, with skip, not copied there), and IMG_0001.CR3 was card 1's photo at the SSD and
    card 2's at the NAS. The first job claimed the name at both drives when it planned the file:
    the second keeps its photo beside it under one name at both (with skip, copies it nowhere),
    and says why where nothing is at the name yet."""
    name = "EOS_DIGITAL/DCIM/100CANON/IMG_0001.CR3"
    first_card = tmp_path / "reader1" / "EOS_DIGITAL"
    second_card = tmp_path / "reader2" / "EOS_DIGITAL"
    # over 1 MiB: committed by each drive's own thread, not by the reader
    photo1 = write(first_card / "DCIM/100CANON/IMG_0001.CR3", random.Random(1).randbytes(2 * MiB))
    photo2 = write(second_card / "DCIM/100CANON/IMG_0001.CR3", random.Random(2).randbytes(2 * MiB))
    ssd, nas = tmp_path / "ssd", tmp_path / "nas"
    at_nas, go_on, at_ssd = threading.Event(), threading.Event(), threading.Event()

    def nas_waits(target: str) -> None:  # the first job's NAS commit waits for the second job
        at_nas.set()
        assert go_on.wait(120)

    def landed_at_ssd(event: Event) -> None:
        if event.kind == "file-done" and event.data["dest"] == "ssd":
            at_ssd.set()

    first, second = Runner(tmp_path / "state"), Runner(tmp_path / "state")  # one catalog
    first.hook = landed_at_ssd
    done: list[JobResult] = []
    slow_nas = FaultyDestination(LocalDestination(nas, name="nas"), FaultPlan(on_commit=nas_waits))
    job = threading.Thread(
        target=lambda: done.append(
            first([first_card], [LocalDestination(ssd, name="ssd"), slow_nas], on_conflict=policy)
        )
    )
    job.start()
    try:
        assert at_nas.wait(60) and at_ssd.wait(60), first.logs()
        result = second.bounded(
            [second_card],
            [LocalDestination(ssd, name="ssd"), LocalDestination(nas, name="nas")],
            on_conflict=policy,
        )
    finally:
        go_on.set()
        job.join(120)
    assert done and done[0].exit_code == 0, first.logs()
    said = second.outcomes()
    busy = f"{nas / name}: job {first.job_id} is putting a file there now"
    assert first.catalog._query("SELECT * FROM claims") == []  # both jobs let go of their names

    if policy == "skip":  # the second's photo is copied nowhere: the name is the first's, everywhere
        assert result.exit_code == 1, second.logs()
        for drive in (ssd, nas):
            assert [p.name for p in (drive / name).parent.iterdir()] == ["IMG_0001.CR3"]
            assert (drive / name).read_bytes() == photo1.read_bytes(), drive
        assert [said[(name, d)]["status"] for d in ("ssd", "nas")] == ["conflict", "conflict"]
        assert said[(name, "nas")]["detail"] == f"{busy}: this file was NOT copied (--on-conflict skip)"
        return
    assert result.exit_code == 0, second.logs()
    kept = name.replace(".CR3", " (2).CR3")
    for drive in (ssd, nas):
        assert sorted(p.name for p in (drive / name).parent.iterdir()) == ["IMG_0001 (2).CR3", "IMG_0001.CR3"]
        assert (drive / name).read_bytes() == photo1.read_bytes(), drive
        assert (drive / kept).read_bytes() == photo2.read_bytes(), drive
    assert said[(name, "ssd")]["target"] == str(ssd / kept)
    assert said[(name, "nas")]["target"] == str(nas / kept)
    assert said[(name, "nas")]["detail"] == f"{busy}: kept both, this copy is {nas / kept}"
    assert said[(name, "ssd")]["detail"] == f"{ssd / name} exists with other content: kept both"
