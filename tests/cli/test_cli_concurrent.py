"""Two castoff jobs at once on one catalog, as a user starts them: the same card to the same
destination twice (a double-click, a workflow run twice) is refused while the first runs; another
card to the same drive and bucket (a DIT's second reader) runs beside it; once the first is
killed, the same command resumes it."""

from __future__ import annotations

import random
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from castoff.catalog.db import Catalog
from castoff_cli import Castoff
from engine_runner import write
from server_fixtures import RcloneBucket

T = TypeVar("T")


@pytest.fixture
def castoff(tmp_path: Path) -> Castoff:
    return Castoff(tmp_path / "home")


def text(done: object) -> str:
    return " ".join((getattr(done, "stdout", "") + getattr(done, "stderr", "")).split())


def jobs(castoff: Castoff) -> list[tuple[str, str, int]]:
    catalog = Catalog(castoff.state / "catalog.sqlite")
    try:
        return [(str(r["id"]), str(r["status"]), int(r["pid"])) for r in catalog.jobs()]
    finally:
        catalog.close()


def wait_for(
    castoff: Castoff, proc: object, found: Callable[[Catalog], T], what: str, timeout: float = 60
) -> T:
    """What ``found`` finds in the catalog, once it finds something, while ``proc`` runs."""
    deadline = time.monotonic() + timeout
    while True:
        if (castoff.state / "catalog.sqlite").exists():
            catalog = Catalog(castoff.state / "catalog.sqlite")
            try:
                if answer := found(catalog):
                    return answer
            finally:
                catalog.close()
        assert proc.poll() is None, proc.communicate()  # type: ignore[attr-defined]
        assert time.monotonic() < deadline, f"the first job never {what}"
        time.sleep(0.05)


def wait_for_an_open_upload(castoff: Castoff, proc: object) -> None:
    wait_for(castoff, proc, lambda c: c.open_uploads(), "started its upload")


def ssd_and_bucket(castoff: Castoff, rclone_s3: RcloneBucket, ssd: Path) -> list[str]:
    """``@ssd`` (the folder ``ssd``) and ``@ark`` (the bucket) saved: the ``--to`` options of both."""
    assert castoff("dest", "add", "ssd", "local", str(ssd)).returncode == 0
    r = castoff(
        "dest", "add", "ark", "s3", "--bucket", rclone_s3.bucket, "--endpoint", rclone_s3.url,
        "--access-key-id", rclone_s3.access_key, "--secret-stdin", input=rclone_s3.secret_key + "\n",
    )  # fmt: skip
    assert r.returncode == 0, text(r)
    return ["--to", "@ssd", "--to", "@ark", "--part-size", "5M"]


def test_a_second_job_on_the_same_card_is_refused_another_card_runs_and_a_kill_resumes(
    castoff: Castoff, rclone_s3: RcloneBucket, tmp_path: Path
) -> None:
    card = tmp_path / "EOS_DIGITAL"
    clip = write(card / "CLIP.MP4", random.Random(7).randbytes(6 * 1024 * 1024))
    other_card = tmp_path / "SONY_CARD"
    write(other_card / "C0001.MP4", b"another card's clip")
    ssd = tmp_path / "ssd"
    to = ssd_and_bucket(castoff, rclone_s3, ssd)

    # the first job: its upload paced at 256 kB/s (25 s), so it is still sending while the others
    # start, however slow this machine is; it is killed once they are done
    first = castoff.popen("copy", str(card), *to, "--bwlimit", "256K", "--quiet")
    try:
        wait_for_an_open_upload(castoff, first)
        (running,) = jobs(castoff)
        assert running[1:] == ("running", first.pid)

        again = castoff("copy", str(card), *to, "--quiet")  # the double-click
        assert again.returncode == 2, text(again)
        said = text(again)
        assert (
            f"another castoff job is copying {card} to @ssd right now: job {running[0]} (pid {first.pid},"
            in said
        )
        assert f"copying {card} to @ssd, @ark" in said
        assert "wait for it to finish, or stop it" in said and "then run this again to resume" in said
        inside = castoff(
            "copy", str(card / "CLIP.MP4"), "--to", "@ark"
        )  # a file of the card, one destination
        assert inside.returncode == 2, text(inside)

        # a saved workflow of the same card runs through the same guard
        assert castoff("workflow", "save", "shoot", "--to", "@ssd", "--source", str(card)).returncode == 0
        run = castoff("run", "shoot")
        assert run.returncode == 2 and f"job {running[0]}" in text(run), text(run)
        assert [j[0] for j in jobs(castoff)] == [running[0]]  # the refused jobs left no row

        beside = castoff("copy", str(other_card), "--to", "@ssd", "--to", "@ark", "--quiet")  # 2nd reader
        assert beside.returncode == 0, text(beside)
        assert (ssd / "SONY_CARD" / "C0001.MP4").read_bytes() == b"another card's clip"
        cleanup = castoff("uploads", "abort", "--all")  # a nightly cleanup: not the upload under way
        assert cleanup.returncode == 0 and "is still sending it; not aborted" in text(cleanup), text(cleanup)
        assert first.poll() is None  # the first job is still at it
    finally:
        first.send_signal(signal.SIGKILL)  # a crash: its row still says running, its pid is dead
        first.communicate(timeout=30)

    resumed = castoff("copy", str(card), *to, "--quiet")  # the same command again: resumes it
    assert resumed.returncode == 0, text(resumed)
    statuses = {job_id: status for job_id, status, _pid in jobs(castoff)}
    assert statuses[running[0]] == "interrupted"
    got = rclone_s3.client.get_object(Bucket=rclone_s3.bucket, Key="EOS_DIGITAL/CLIP.MP4")["Body"].read()
    assert got == clip.read_bytes()
    assert (ssd / "EOS_DIGITAL" / "CLIP.MP4").read_bytes() == clip.read_bytes()


def wait_for_a_claim(castoff: Castoff, proc: object) -> str:
    """The job that holds a key of a bucket now (``claims``)."""
    rows = wait_for(castoff, proc, lambda c: c._query("SELECT job_id FROM claims"), "claimed its key")
    return str(rows[0]["job_id"])


def test_two_cards_of_one_name_sent_at_once_to_a_bucket_without_conditional_writes_keep_both(
    castoff: Castoff, rclone_s3: RcloneBucket, tmp_path: Path
) -> None:
    """Two readers, two cards that both call themselves EOS_DIGITAL, two jobs at once to one bucket
    that cannot refuse to replace a key (rclone serve s3 ignores If-None-Match): the catalog lets
    one job have the key while it sends, and the other keeps its file beside it, as one job does
    with two files of one name. Before, both found the key free, and the later upload replaced
    the earlier card's photo unsaid."""
    name = "EOS_DIGITAL/DCIM/100CANON/IMG_0001.CR3"
    first_card, second_card = tmp_path / "reader1" / "EOS_DIGITAL", tmp_path / "reader2" / "EOS_DIGITAL"
    first_photo = write(
        first_card / "DCIM/100CANON/IMG_0001.CR3", random.Random(1).randbytes(6 * 1024 * 1024)
    )
    # multipart too: its upload, started before the key is found taken, must not stay listed
    second_photo = write(
        second_card / "DCIM/100CANON/IMG_0001.CR3", random.Random(2).randbytes(6 * 1024 * 1024)
    )
    r = castoff(
        "dest", "add", "ark", "s3", "--bucket", rclone_s3.bucket, "--endpoint", rclone_s3.url,
        "--access-key-id", rclone_s3.access_key, "--secret-stdin", input=rclone_s3.secret_key + "\n",
    )  # fmt: skip
    assert r.returncode == 0, text(r)

    # the first job's upload is paced (6 MiB at 512 kB/s): it still sends when the second starts
    first = castoff.popen("copy", str(first_card), "--to", "@ark", "--part-size", "5M", "--bwlimit", "512K")
    try:
        holder = wait_for_a_claim(castoff, first)
        (running,) = jobs(castoff)
        assert holder == running[0]
        second = castoff("copy", str(second_card), "--to", "@ark", "--part-size", "5M")
        assert second.returncode == 0, text(second)
        assert f"job {holder} is putting a file there now" in text(second)
        out, err = first.communicate(timeout=120)
        assert first.returncode == 0, out + err
    finally:
        if first.poll() is None:
            first.kill()
            first.communicate(timeout=30)

    def got(key: str) -> bytes:
        return bytes(rclone_s3.client.get_object(Bucket=rclone_s3.bucket, Key=key)["Body"].read())

    listed = rclone_s3.client.list_objects_v2(Bucket=rclone_s3.bucket)
    keys = sorted(o["Key"] for o in listed.get("Contents", []))
    assert rclone_s3.client.list_multipart_uploads(Bucket=rclone_s3.bucket).get("Uploads", []) == []
    assert keys == [name.replace(".CR3", " (2).CR3"), name]
    assert got(name) == first_photo.read_bytes()
    assert got(name.replace(".CR3", " (2).CR3")) == second_photo.read_bytes()
    catalog = Catalog(castoff.state / "catalog.sqlite")
    try:
        assert catalog._query("SELECT * FROM claims") == []  # both jobs let go of their keys
        assert catalog.open_uploads() == []  # none listed that the server does not have
    finally:
        catalog.close()


def test_two_cards_of_one_name_sent_at_once_to_a_drive_and_a_bucket_have_one_name_at_both(
    castoff: Castoff, rclone_s3: RcloneBucket, tmp_path: Path
) -> None:
    """QA K 2: two readers, two cards both called EOS_DIGITAL, two jobs at once to one drive and one
    bucket. The first has landed both its photos at the drive, and its upload of the first is
    paced, so its second is not yet sent when the second job runs. Each name was claimed one
    destination at a time, as each file got there: the second job found IMG_0002.CR3 taken at
    the drive (kept its photo beside it) but free at the bucket (took it), and the first kept
    its photo beside that one there: the name was card 1's photo at the drive and card 2's in
    the bucket. Each job claims a file's name at both destinations when it plans it: the second
    keeps its photos beside the first's, under one name at both."""
    folder = "EOS_DIGITAL/DCIM/100CANON"
    first_card, second_card = tmp_path / "reader1" / "EOS_DIGITAL", tmp_path / "reader2" / "EOS_DIGITAL"
    photos = {}
    for card, seed in ((first_card, 1), (second_card, 2)):
        rng = random.Random(seed)
        photos[card, "IMG_0001.CR3"] = write(
            card / "DCIM/100CANON/IMG_0001.CR3", rng.randbytes(6 * 1024 * 1024)
        )
        photos[card, "IMG_0002.CR3"] = write(
            card / "DCIM/100CANON/IMG_0002.CR3", rng.randbytes(2 * 1024 * 1024)
        )
    ssd = tmp_path / "ssd"
    to = ssd_and_bucket(castoff, rclone_s3, ssd)

    # one upload at a time, the first's 6 MiB at 512 kB/s: its IMG_0002 waits behind it (both
    # sent from the drive's copy, once the upload falls behind)
    first = castoff.popen(
        "copy", str(first_card), *to, "--bwlimit", "512K", "--max-parallel", "1", "--max-parallel-small", "1"
    )
    try:
        wait_for(
            castoff,
            first,
            lambda c: len(c._query("SELECT 1 FROM landed WHERE dest_ident LIKE 'local:%'")) == 2,
            "landed its photos at the drive",
        )
        (running,) = jobs(castoff)
        second = castoff("copy", str(second_card), *to)
        assert second.returncode == 0, text(second)
        assert f"job {running[0]} is putting a file there now" in text(second)
        assert first.poll() is None  # the first job is still sending its first photo
        out, err = first.communicate(timeout=120)
        assert first.returncode == 0, out + err
    finally:
        if first.poll() is None:
            first.kill()
            first.communicate(timeout=30)

    listed = rclone_s3.client.list_objects_v2(Bucket=rclone_s3.bucket)
    keys = sorted(o["Key"] for o in listed.get("Contents", []))
    names = ["IMG_0001 (2).CR3", "IMG_0001.CR3", "IMG_0002 (2).CR3", "IMG_0002.CR3"]
    assert keys == [f"{folder}/{n}" for n in names]
    assert sorted(p.name for p in (ssd / folder).iterdir()) == names
    for n in names:
        card = second_card if " (2)" in n else first_card
        photo = photos[card, n.replace(" (2)", "")].read_bytes()
        assert (ssd / folder / n).read_bytes() == photo, n
        got = rclone_s3.client.get_object(Bucket=rclone_s3.bucket, Key=f"{folder}/{n}")["Body"].read()
        assert got == photo, n
    catalog = Catalog(castoff.state / "catalog.sqlite")
    try:
        assert catalog._query("SELECT * FROM claims") == []  # both jobs let go of their names
    finally:
        catalog.close()


def test_the_drives_have_their_ascmhl_history_once_the_card_can_be_released(
    castoff: Castoff, rclone_s3: RcloneBucket, tmp_path: Path
) -> None:
    """QA: the ASC MHL generations were written when the whole job ended, after the uploads; a
    job that died after "the source can be released" (the card ejected) left the drives with no
    history, and nothing could write it without the card. They are written at release now, the
    card's too (--mhl-source), while the uploads go on."""
    card = tmp_path / "EOS_DIGITAL"
    write(card / "PRIVATE" / "CLIP.MP4", random.Random(3).randbytes(6 * 1024 * 1024))
    write(card / "DCIM" / "IMG_0001.JPG", b"a photo")
    ssd = tmp_path / "ssd"
    r = castoff(
        "dest", "add", "ark", "s3", "--bucket", rclone_s3.bucket, "--endpoint", rclone_s3.url,
        "--access-key-id", rclone_s3.access_key, "--secret-stdin", input=rclone_s3.secret_key + "\n",
    )  # fmt: skip
    assert r.returncode == 0, text(r)
    job = castoff.popen(
        "copy", str(card), "--to", str(ssd), "--to", "@ark", "--part-size", "5M", "--bwlimit", "256K",
        "--mhl-source", "--quiet",
    )  # fmt: skip
    try:
        chain = ssd / "ascmhl" / "ascmhl_chain.xml"
        deadline = time.monotonic() + 60
        while not (chain.exists() and (card / "ascmhl" / "ascmhl_chain.xml").exists()):
            assert job.poll() is None, job.communicate()
            assert time.monotonic() < deadline, "no ASC MHL history while the uploads went on"
            time.sleep(0.05)
        # the clip's upload is still going (6 MiB at 256 kB/s): not in the bucket yet
        listed = rclone_s3.client.list_objects_v2(Bucket=rclone_s3.bucket).get("Contents", [])
        assert not [o["Key"] for o in listed if o["Key"].endswith("CLIP.MP4")]
    finally:
        job.send_signal(signal.SIGKILL)
        job.communicate(timeout=30)
    for folder in (ssd, card):
        v = castoff("verify", str(folder))
        assert v.returncode == 0, text(v)
