"""Uploads that catch up from a verified local copy: which copy they read, and what castoff does
when that copy is no longer what it verified (changed, truncated, gone)."""

from __future__ import annotations

import os
import random
import threading
from pathlib import Path
from typing import Any

import pytest

from castoff.destinations.base import MiB
from castoff.destinations.local import LocalDestination
from castoff.engine.events import Event
from castoff.engine.job import Engine
from castoff.engine.retry import RetryPolicy
from engine_runner import Runner, s3dest, write

FAST = {"retry": RetryPolicy(attempts=3, base=0.05, cap=0.2), "lane_pause": 0.2}
BIG = "PRIVATE/M4ROOT/CLIP/C0001.MP4"
REL = f"card/{BIG}"  # the file's path in the job (the source folder's name first)


def card(root: Path) -> dict[str, bytes]:
    rng = random.Random(17)
    files = {BIG: rng.randbytes(13 * MiB), "DCIM/100CANON/IMG_0001.JPG": rng.randbytes(200_000)}
    for rel, data in files.items():
        write(root / rel, data)
    return files


def bucket_of(rclone_s3: Any, prefix: str | None = None) -> Any:
    """The test bucket, 5 MiB parts; ``prefix``: another place in it."""
    extra = {} if prefix is None else {"prefix": prefix}
    return s3dest(
        rclone_s3.url,
        rclone_s3.bucket,
        rclone_s3.access_key,
        rclone_s3.secret_key,
        part_size=5 * MiB,
        **extra,
    )


def _found_damaged(
    tmp_path: Path, runner: Runner, rclone_s3: Any
) -> tuple[Path, dict[str, bytes], LocalDestination, Path]:
    """A card copied to an SSD, the SSD's copy of the clip then rotted, and a job to the SSD and
    the bucket that found it damaged: the card, its files, the SSD and the damaged copy."""
    src = tmp_path / "card"
    files = card(src)
    ssd = LocalDestination(tmp_path / "ssd")
    assert runner([src], [ssd], chunk_size=5 * MiB, **FAST).exit_code == 0
    copy = tmp_path / "ssd" / "card" / BIG
    corrupt(copy, 11 * MiB)
    assert runner.bounded([src], [ssd, bucket_of(rclone_s3)], chunk_size=5 * MiB, **FAST).exit_code == 1
    return src, files, ssd, copy


def corrupt(path: Path, offset: int) -> None:
    """Other bytes in place: the same size and mtime (bit rot, an edit in place)."""
    st = path.stat()
    with path.open("r+b") as fh:
        fh.seek(offset)
        fh.write(b"X" * 16)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def objects(rclone_s3: Any) -> dict[str, bytes]:
    admin = rclone_s3.admin_client()
    listed = admin.list_objects_v2(Bucket=rclone_s3.bucket).get("Contents", [])
    return {
        o["Key"].removeprefix("raw-shoots/card/"): admin.get_object(Bucket=rclone_s3.bucket, Key=o["Key"])[
            "Body"
        ].read()
        for o in listed
        if not o["Key"].endswith((".mhl", ".json", ".html")) and "ascmhl" not in o["Key"]
    }


def test_a_bucket_added_later_reads_the_verified_copy_once_the_card_is_released(
    tmp_path: Path, runner: Runner, rclone_s3: Any
) -> None:
    """QA E 2: the SSD verified by an earlier job, the bucket added now: "the source can be
    released" was said, then the uploads read the card (gone by then: failed, the card blamed)."""
    src = tmp_path / "card"
    files = card(src)
    ssd = LocalDestination(tmp_path / "ssd")
    assert runner([src], [ssd], chunk_size=5 * MiB, **FAST).exit_code == 0
    gone = tmp_path / "card.gone"

    def release(event: Event) -> None:
        if event.kind == "released":
            src.rename(gone)  # the DIT takes the card out when castoff says it may

    runner.hook = release
    result = runner.bounded([src], [ssd, bucket_of(rclone_s3)], chunk_size=5 * MiB, **FAST)
    assert result.released
    assert result.exit_code == 0, runner.logs()
    # the card read once (the bucket's hashes), the multipart upload from the SSD's copy
    assert result.bytes_read == sum(len(d) for d in files.values())
    assert objects(rclone_s3) == files
    out = runner.outcomes()
    assert "sent from the verified copy" in out[(REL, bucket_of(rclone_s3).name)]["detail"]


def test_a_file_verified_at_every_drive_before_is_uploaded_from_a_drive_not_the_card(
    tmp_path: Path, runner: Runner, rclone_s3: Any
) -> None:
    """QA E 2, hashes known (an earlier job had a bucket too): nothing of the card is read, the
    card may go at once, and every upload reads the SSD's verified copy, checked by BLAKE3."""
    src = tmp_path / "card"
    files = card(src)
    ssd = LocalDestination(tmp_path / "ssd")
    assert runner([src], [ssd, bucket_of(rclone_s3)], chunk_size=5 * MiB, **FAST).exit_code == 0
    other = bucket_of(rclone_s3, prefix="other/")

    def release(event: Event) -> None:
        if event.kind == "released":
            src.rename(tmp_path / "card.gone")

    runner.hook = release
    result = runner.bounded([src], [ssd, other], chunk_size=5 * MiB, **FAST)
    assert result.exit_code == 0, runner.logs()
    assert result.released
    assert result.bytes_read == 0
    admin = rclone_s3.admin_client()
    for rel, data in files.items():
        assert admin.get_object(Bucket=rclone_s3.bucket, Key=f"other/card/{rel}")["Body"].read() == data
        assert "sent from the verified copy" in runner.outcomes()[(f"card/{rel}", other.name)]["detail"]


def test_a_verified_copy_found_changed_is_damaged_not_verified(
    tmp_path: Path, runner: Runner, rclone_s3: Any
) -> None:
    """QA E 1 and 9: the SSD's copy, read for the bucket, no longer holds the verified bytes: it
    is damaged there (failed, exit 1, remembered), found at its first part that differs (not
    sent for the server to refuse), and the bucket gets the card's bytes; a re-run writes a good
    copy beside the damaged one."""
    src = tmp_path / "card"
    files = card(src)
    ssd = LocalDestination(tmp_path / "ssd")
    assert runner([src], [ssd], chunk_size=5 * MiB, **FAST).exit_code == 0
    copy = tmp_path / "ssd" / "card" / BIG
    corrupt(copy, 11 * MiB)  # its third part
    bucket = bucket_of(rclone_s3)
    result = runner.bounded([src], [ssd, bucket], chunk_size=5 * MiB, **FAST)
    assert (result.exit_code, result.status) == (1, "failed"), runner.logs()
    at_ssd = result.lanes[ssd.name]
    assert (at_ssd["failed"], at_ssd["damaged"], at_ssd["skipped"]) == (1, 1, 1)
    out = runner.outcomes()
    row = out[(REL, ssd.name)]
    assert row["status"] == "failed"
    assert row["damaged"] == str(copy)
    assert "DAMAGED" in row["error"] and "part 3 of 3" in row["error"]
    assert out[(REL, bucket.name)]["status"] == "verified"
    detail = out[(REL, bucket.name)]["detail"]  # QA H 11: where the bytes that landed came from
    assert not detail.startswith(f"sent from the verified copy {copy}"), detail
    assert f"read again from the source {src / BIG}" in detail
    assert objects(rclone_s3) == files  # the card's bytes, never the damaged copy's
    assert not any("BadDigest" in m or "corrupted on the way" in m for m in runner.logs())
    assert runner.catalog.damaged_at(ssd.ident, str(copy)) is not None
    # a re-run delivers the file to the SSD again, beside the damaged copy (kept)
    again = runner.bounded([src], [ssd, bucket], chunk_size=5 * MiB, **FAST)
    assert again.exit_code == 1  # done, but a damaged copy needs attention
    assert again.status == "done"
    good = copy.with_name("C0001 (2).MP4")
    assert good.read_bytes() == files[BIG]
    assert copy.read_bytes() != files[BIG]
    assert runner.outcomes()[(REL, ssd.name)]["status"] == "verified"


def test_a_verified_copy_gone_falls_back_to_another_and_is_named(
    tmp_path: Path, runner: Runner, rclone_s3: Any
) -> None:
    """QA E 5: the copy the upload was to read was renamed or deleted: the upload reads the other
    verified copy (the card is not needed), and the console names the copy, not the card."""
    src = tmp_path / "card"
    files = card(src)
    ssd, nas = LocalDestination(tmp_path / "ssd"), LocalDestination(tmp_path / "nas")
    assert runner([src], [ssd, nas], chunk_size=5 * MiB, **FAST).exit_code == 0
    copy = tmp_path / "ssd" / "card" / BIG

    def meddle(event: Event) -> None:
        if event.kind == "file-done" and event.data["dest"] == ssd.name and event.data["rel_path"] == REL:
            copy.unlink(
                missing_ok=True
            )  # once castoff found it verified there (skipped), before the upload reads it
        elif event.kind == "released":
            src.rename(tmp_path / "card.gone")

    runner.hook = meddle
    bucket = bucket_of(rclone_s3)
    result = runner.bounded([src], [ssd, nas, bucket], chunk_size=5 * MiB, **FAST)
    assert result.exit_code == 1, runner.logs()  # gone from the SSD (QA H 5): not verified there
    assert objects(rclone_s3) == files
    assert runner.outcomes()[(REL, nas.name)]["status"] == "skipped"
    said = [m for m in runner.logs() if str(copy) in m]
    assert said and "is gone" in said[0], runner.logs()
    assert not any("vanished" in m or "deleted while" in m for m in runner.logs())
    detail = runner.outcomes()[(REL, bucket.name)]["detail"]
    assert f"sent from the verified copy {tmp_path / 'nas' / 'card' / BIG}" in detail


def test_a_copy_found_damaged_is_not_sent_on_as_a_source(
    tmp_path: Path, runner: Runner, rclone_s3: Any
) -> None:
    """QA E 1: the README's recovery (copy the SSD's folder to the bucket) took the copy castoff
    had just found damaged for a good source, sent it and called it verified."""
    _, files, _, _ = _found_damaged(tmp_path, runner, rclone_s3)
    other = bucket_of(rclone_s3, prefix="other/")
    result = runner.bounded([tmp_path / "ssd" / "card"], [other], chunk_size=5 * MiB, **FAST)
    assert (result.exit_code, result.status) == (1, "failed")
    row = runner.outcomes()[(REL, other.name)]
    assert row["status"] == "failed"
    assert "DAMAGED" in row["error"]
    admin = rclone_s3.admin_client()
    keys = {
        o["Key"] for o in admin.list_objects_v2(Bucket=rclone_s3.bucket, Prefix="other/").get("Contents", [])
    }
    assert f"other/card/{BIG}" not in keys
    small = "DCIM/100CANON/IMG_0001.JPG"
    assert admin.get_object(Bucket=rclone_s3.bucket, Key=f"other/card/{small}")["Body"].read() == files[small]


def keys_at(rclone_s3: Any, prefix: str) -> set[str]:
    admin = rclone_s3.admin_client()
    return {
        o["Key"] for o in admin.list_objects_v2(Bucket=rclone_s3.bucket, Prefix=prefix).get("Contents", [])
    }


def test_a_verified_copy_read_as_a_source_with_other_bytes_is_damaged_and_sent_nowhere(
    tmp_path: Path, runner: Runner, rclone_s3: Any
) -> None:
    """QA H 1: the recovery castoff suggests (copy the SSD's folder to the bucket) read a copy
    castoff had verified, rotted since (same size and mtime), sent it and called it verified.
    castoff knows the BLAKE3 it verified at that path: other bytes there are a damaged copy,
    failed before its last part goes out, named with both hashes, remembered."""
    src = tmp_path / "card"
    files = card(src)
    ssd = LocalDestination(tmp_path / "ssd")
    assert runner([src], [ssd], chunk_size=5 * MiB, **FAST).exit_code == 0
    copy = tmp_path / "ssd" / "card" / BIG
    corrupt(copy, 11 * MiB)
    other = bucket_of(rclone_s3, prefix="other/")
    result = runner.bounded([tmp_path / "ssd" / "card"], [other], chunk_size=5 * MiB, **FAST)
    assert (result.exit_code, result.status) == (1, "failed"), runner.logs()
    row = runner.outcomes()[(REL, other.name)]
    assert row["status"] == "failed"
    assert row["error_code"] == "source-damaged"
    assert "DAMAGED" in row["error"] and row["error"].count("BLAKE3") == 2
    assert f"other/card/{BIG}" not in keys_at(rclone_s3, "other/")  # nothing of it completed
    small = "DCIM/100CANON/IMG_0001.JPG"
    assert f"other/card/{small}" in keys_at(rclone_s3, "other/")
    assert runner.catalog.damaged_at(ssd.ident, str(copy)) is not None
    assert files[BIG] != copy.read_bytes()


def test_a_damaged_copy_reached_through_a_symlink_is_refused_too(
    tmp_path: Path, runner: Runner, rclone_s3: Any
) -> None:
    """QA H 2: the drive reached by a symlink to it was taken for another source: its damaged
    copy went to the bucket, exit 0."""
    src = tmp_path / "card"
    card(src)
    ssd = LocalDestination(tmp_path / "ssd")
    assert runner([src], [ssd], chunk_size=5 * MiB, **FAST).exit_code == 0
    copy = tmp_path / "ssd" / "card" / BIG
    corrupt(copy, 11 * MiB)
    assert runner.bounded([src], [ssd, bucket_of(rclone_s3)], chunk_size=5 * MiB, **FAST).exit_code == 1
    (tmp_path / "ssdlink").symlink_to(tmp_path / "ssd")
    other = bucket_of(rclone_s3, prefix="other/")
    result = runner.bounded([tmp_path / "ssdlink" / "card"], [other], chunk_size=5 * MiB, **FAST)
    assert (result.exit_code, result.status) == (1, "failed"), runner.logs()
    row = runner.outcomes()[(REL, other.name)]
    assert (row["status"], row["error_code"]) == ("failed", "source-damaged")
    assert f"other/card/{BIG}" not in keys_at(rclone_s3, "other/")


def test_a_damaged_copy_put_right_as_the_readme_says_is_copied_once_the_card_is_gone(
    tmp_path: Path, runner: Runner, rclone_s3: Any
) -> None:
    """QA H 3: the good copy castoff wrote beside the damaged one moved over it, the card gone:
    the copy reads back with the BLAKE3 castoff verified, so it is no longer damaged and is
    copied (it was refused, with "re-run the same command", which needs the card)."""
    src, files, ssd, copy = _found_damaged(tmp_path, runner, rclone_s3)
    assert runner.bounded([src], [ssd, bucket_of(rclone_s3)], chunk_size=5 * MiB, **FAST).status == "done"
    good = copy.with_name("C0001 (2).MP4")
    good.replace(copy)
    src.rename(tmp_path / "card.gone")
    other = bucket_of(rclone_s3, prefix="other/")
    result = runner.bounded([tmp_path / "ssd" / "card"], [other], chunk_size=5 * MiB, rehash=True, **FAST)
    assert (result.exit_code, result.status) == (0, "done"), runner.logs()
    admin = rclone_s3.admin_client()
    assert admin.get_object(Bucket=rclone_s3.bucket, Key=f"other/card/{BIG}")["Body"].read() == files[BIG]
    assert runner.catalog.damaged_at(ssd.ident, str(copy)) is None


def test_verified_copies_found_gone_during_the_job_are_no_longer_verified_there(
    tmp_path: Path, runner: Runner, rclone_s3: Any
) -> None:
    """QA H 5: both drives' copies deleted while the job ran: the upload read the card, and the
    job said done, exit 0, the file verified at both drives. Found gone, a copy no longer counts:
    failed there, exit 1, and a re-run writes it again."""
    src = tmp_path / "card"
    files = card(src)
    ssd, nas = LocalDestination(tmp_path / "ssd"), LocalDestination(tmp_path / "nas")
    assert runner([src], [ssd, nas], chunk_size=5 * MiB, **FAST).exit_code == 0
    copies = [tmp_path / d / "card" / BIG for d in ("ssd", "nas")]
    done: set[str] = set()

    def meddle(event: Event) -> None:
        if event.kind == "file-done" and event.data["rel_path"] == REL:
            done.add(str(event.data["dest"]))
            if {ssd.name, nas.name} <= done and copies[0].exists():
                for c in copies:  # before the upload reads them
                    c.unlink()

    runner.hook = meddle
    bucket = bucket_of(rclone_s3)
    result = runner.bounded([src], [ssd, nas, bucket], chunk_size=5 * MiB, **FAST)
    assert (result.exit_code, result.status) == (1, "failed"), runner.logs()
    assert objects(rclone_s3) == files
    out = runner.outcomes()
    for dest, copy in zip((ssd, nas), copies, strict=True):
        row = out[(REL, dest.name)]
        assert row["status"] == "failed"
        assert "gone since castoff verified it" in row["error"] and str(copy) in row["error"]
        assert not runner.catalog.landed_for_source(dest.ident, str(src / BIG))
        assert result.lanes[dest.name]["failed"] == 1
    assert out[(REL, bucket.name)]["status"] == "verified"
    runner.hook = None
    again = runner.bounded([src], [ssd, nas], chunk_size=5 * MiB, **FAST)
    assert again.exit_code == 0, runner.logs()
    assert all(c.read_bytes() == files[BIG] for c in copies)


def test_no_good_copy_left_and_the_card_gone_is_said_once_as_such(
    tmp_path: Path, runner: Runner, rclone_s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """QA H 8: after "released" one drive's copy rotted, the other's went, and the card was
    pulled. The upload said "read again from the source …; sending it again", then failed with
    "vanished before it was read" (the card had been read), and the damaged copy's advice, "a
    re-run of the same command writes a good copy beside it", needed the card. Now it says once
    that no good copy is left and the card is gone: mount it, then re-run."""
    src = tmp_path / "card"
    card(src)
    ssd, nas = LocalDestination(tmp_path / "ssd"), LocalDestination(tmp_path / "nas")
    assert runner([src], [ssd, nas], chunk_size=5 * MiB, **FAST).exit_code == 0
    rotted, gone = tmp_path / "ssd" / "card" / BIG, tmp_path / "nas" / "card" / BIG

    meddled = threading.Event()

    def meddle(event: Event) -> None:
        if event.kind == "released":
            corrupt(rotted, 11 * MiB)
            gone.unlink()
            src.rename(tmp_path / "card.gone")
            meddled.set()

    # The upload's catch-up reads nothing before the copies rot, as on the day QA saw: it could
    # otherwise read the SSD's copy whole before "released" was said, and send a good clip.
    catchup_loop = Engine._catchup_loop

    def after_the_meddling(engine: Engine) -> None:
        meddled.wait(30)
        catchup_loop(engine)

    monkeypatch.setattr(Engine, "_catchup_loop", after_the_meddling)
    runner.hook = meddle
    bucket = bucket_of(rclone_s3)
    result = runner.bounded([src], [ssd, nas, bucket], chunk_size=5 * MiB, **FAST)
    assert meddled.is_set() and result.exit_code == 1, runner.logs()
    out = runner.outcomes()[(REL, bucket.name)]
    assert out["status"] == "failed"
    assert (
        "no good copy is left to send" in out["error"] and "is gone (the card was released)" in out["error"]
    )
    logs = runner.logs()
    assert sum("no good copy is left to send" in m for m in logs) == 1, logs
    assert not any("vanished before it was read" in m or "read again from the source" in m for m in logs), (
        logs
    )
    damaged = runner.outcomes()[(REL, ssd.name)]
    assert damaged["status"] == "failed" and damaged["damaged"] == str(rotted)


def test_rehash_finds_the_bucket_on_the_catalogs_word_without_reading_a_copy_for_it(
    tmp_path: Path, runner: Runner, rclone_s3: Any
) -> None:
    """QA: ``--rehash`` with a bucket read the clip a second time, from the SSD's verified copy,
    only to find the object the catalog knows there (README: a bucket castoff cannot read counts
    on the catalog's word), and said "sent from the verified copy …" of it. The card is read once
    (the SSD's copy is read back and compared), nothing is read for the bucket, nothing is sent."""
    src = tmp_path / "card"
    files = card(src)
    ssd, bucket = LocalDestination(tmp_path / "ssd"), bucket_of(rclone_s3)
    assert runner([src], [ssd, bucket], chunk_size=5 * MiB, **FAST).exit_code == 0
    runner.events.clear()
    result = runner.bounded([src], [ssd, bucket], chunk_size=5 * MiB, rehash=True, **FAST)
    assert result.exit_code == 0, runner.logs()
    assert result.bytes_read == sum(len(d) for d in files.values())
    assert [e.data for e in runner.events if e.kind == "file-reread"] == []
    assert (result.lanes[bucket.name]["already"], result.lanes[bucket.name]["bytes_done"]) == (len(files), 0)
    for rel in files:
        row = runner.outcomes()[(f"card/{rel}", bucket.name)]
        assert row["status"] == "already", row
        assert row["verify_method"].startswith("same blake3 as the object castoff put there"), row
        assert row["detail"] is None, row["detail"]
    assert objects(rclone_s3) == files


def test_an_outcome_says_it_was_sent_from_a_copy_only_when_it_was(
    tmp_path: Path, runner: Runner, rclone_s3: Any
) -> None:
    """QA: an upload read from the SSD's verified copy that found the object there already (sent
    nothing) said "sent from the verified copy …" all the same. ``--rehash --verify-download``:
    the clip is read from the SSD's copy and the object read back, the same bytes: already, and
    its detail does not say it was sent; a bucket that lacks it gets it, said as sent from there."""
    src = tmp_path / "card"
    card(src)
    ssd = LocalDestination(tmp_path / "ssd")
    assert runner([src], [ssd, bucket_of(rclone_s3)], chunk_size=5 * MiB, **FAST).exit_code == 0
    reads = s3dest(
        rclone_s3.url,
        rclone_s3.bucket,
        rclone_s3.access_key,
        rclone_s3.secret_key,
        part_size=5 * MiB,
        verify_download=True,
    )
    other = bucket_of(rclone_s3, prefix="other/")
    runner.events.clear()
    result = runner.bounded([src], [ssd, reads, other], chunk_size=5 * MiB, rehash=True, **FAST)
    assert result.exit_code == 0, runner.logs()
    out = runner.outcomes()
    assert [e.data["path"] for e in runner.events if e.kind == "file-reread"] == [str(tmp_path / "ssd" / REL)]
    assert out[(REL, reads.name)]["status"] == "already"
    assert "sent from" not in (out[(REL, reads.name)]["detail"] or ""), out[(REL, reads.name)]["detail"]
    assert out[(REL, other.name)]["status"] == "verified"
    assert out[(REL, other.name)]["detail"].startswith(
        f"sent from the verified copy {tmp_path / 'ssd' / REL}"
    )
