"""A job beside another that is still running (another card to the same drive or bucket): what the
other has under way, its multipart uploads and hidden partial files, is never resumed nor cleaned
up; that of a job that has ended is (the ordinary re-run)."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

from castoff.catalog.running import process_start
from castoff.destinations.base import MiB
from castoff.destinations.local import LocalDestination
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
