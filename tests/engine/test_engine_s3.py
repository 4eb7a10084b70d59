"""Whole jobs with buckets on real local S3 servers: mixed fan-out, write-only keys, faults, resume."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import blake3
import pytest

from castoff import errors
from castoff.catalog.db import Catalog
from castoff.destinations.base import MiB
from castoff.destinations.faulty import FaultPlan, FaultyDestination, PartFault
from castoff.destinations.local import LocalDestination
from castoff.destinations.s3 import S3Destination
from castoff.engine.retry import RetryPolicy
from engine_runner import Runner, s3dest, write
from servers import SLOW_DOWN_XML, free_port

FAST = {"retry": RetryPolicy(attempts=6, base=0.05, cap=0.5), "lane_pause": 0.2}


def card(root: Path, rng: random.Random, *, big: int = 12 * MiB) -> dict[str, bytes]:
    files = {
        "DCIM/100CANON/IMG_0001.CR3": rng.randbytes(300_000),
        "DCIM/100CANON/IMG 0002 #%?+&=.JPG": rng.randbytes(40_000),
        "PRIVATE/M4ROOT/CLIP/C0001.MP4": rng.randbytes(big),
        "empty.txt": b"",
    }
    for rel, data in files.items():
        write(root / rel, data)
    return files


def read_object(client: Any, bucket: str, key: str) -> tuple[bytes, dict[str, Any]]:
    obj = client.get_object(Bucket=bucket, Key=key)
    return obj["Body"].read(), obj


def test_mixed_job_two_local_and_one_bucket(tmp_path: Path, runner: Runner, rclone_s3: Any) -> None:
    rng = random.Random(3)
    src = tmp_path / "src" / "card"
    files = card(src, rng)
    bucket = s3dest(
        rclone_s3.url,
        rclone_s3.bucket,
        rclone_s3.access_key,
        rclone_s3.secret_key,
        part_size=5 * MiB,
    )
    ssd, nas = LocalDestination(tmp_path / "ssd"), LocalDestination(tmp_path / "nas")
    result = runner([src], [ssd, nas, bucket], chunk_size=5 * MiB, **FAST)
    assert result.exit_code == 0, runner.logs()
    assert result.released
    admin = rclone_s3.admin_client()
    out = runner.outcomes()
    for rel, data in files.items():
        for d in ("ssd", "nas"):
            assert (tmp_path / d / "card" / rel).read_bytes() == data
        key = f"raw-shoots/card/{rel}"
        body, obj = read_object(admin, rclone_s3.bucket, key)
        assert body == data
        meta = {k.lower(): v for k, v in obj["Metadata"].items()}
        assert meta["blake3"] == blake3.blake3(data).hexdigest()
        row = out[(f"card/{rel}", bucket.name)]
        assert row["status"] == "verified"
        assert row["target"] == key
        assert row["etag"]
    big = out[("card/PRIVATE/M4ROOT/CLIP/C0001.MP4", bucket.name)]
    assert big["etag"].endswith("-3")  # 12 MiB in 5 MiB parts
    assert "verified copy" in (big["detail"] or "")  # uploaded from the local copy


def test_whole_job_with_a_write_only_key_on_moto(tmp_path: Path, runner: Runner, moto: Any) -> None:
    rng = random.Random(4)
    src = tmp_path / "src" / "card"
    files = card(src, rng, big=11 * MiB)
    key, secret = moto.enable_write_only()
    bucket = s3dest(moto.url, moto.bucket, key, secret, part_size=5 * MiB, storage_class="STANDARD_IA")
    result = runner([src], [bucket], chunk_size=5 * MiB, **FAST)
    assert result.exit_code == 0, runner.logs()
    admin = moto.admin_client()
    for rel, data in files.items():
        body, obj = read_object(admin, moto.bucket, f"raw-shoots/card/{rel}")
        assert body == data
        assert obj.get("StorageClass") == "STANDARD_IA"
        meta = obj["Metadata"]
        assert meta["blake3"] == blake3.blake3(data).hexdigest()
        assert "mtime" in meta and "md5chksum" in meta
    # the re-run decides from the catalog alone: a write-only key cannot look
    result = runner([src], [bucket], chunk_size=5 * MiB, **FAST)
    assert result.exit_code == 0
    assert {r["status"] for r in runner.outcomes().values()} == {"skipped"}


def test_objects_put_but_not_read_back_are_known_to_the_next_run(
    tmp_path: Path, runner: Runner, moto: Any
) -> None:
    """QA: ``--verify-download`` with a key that may not read: the objects were put (proven by
    Content-MD5 and ETag) and left in the bucket, but the job said nothing was written, and the
    catalog did not know them: the next run replaced a changed photo's object without a word.
    Now each is recorded as put (failed: not read back), and a later run keeps both."""
    src = tmp_path / "src" / "card"
    photo, clip = b"first photo" * 300, os.urandom(11 * MiB)
    write(src / "IMG_0001.JPG", photo)
    write(src / "CLIP.MP4", clip)
    key, secret = moto.enable_write_only()
    reading = s3dest(moto.url, moto.bucket, key, secret, part_size=5 * MiB, verify_download=True)
    result = runner([src], [reading], chunk_size=5 * MiB, **FAST)
    assert (result.exit_code, result.no_destination) == (1, False), runner.logs()
    rows = [runner.outcomes()[(f"card/{rel}", reading.name)] for rel in ("IMG_0001.JPG", "CLIP.MP4")]
    assert [r["status"] for r in rows] == ["failed", "failed"]
    said = [
        r["target"] for r in rows if "put, proven by its checksums, but not read back" in (r["detail"] or "")
    ]
    admin = moto.admin_client()
    put = [o["Key"] for o in admin.list_objects_v2(Bucket=moto.bucket).get("Contents", [])]
    assert put and sorted(put) == sorted(said), (put, [dict(r) for r in rows])  # (one not tried: not put)
    assert not runner.catalog.open_uploads()  # complete: nothing for 'castoff uploads'
    assert not admin.list_multipart_uploads(Bucket=moto.bucket).get("Uploads")

    write(src / "IMG_0001.JPG", b"another photo" * 300)  # a new shot, same name
    os.utime(src / "IMG_0001.JPG", (1_700_000_500, 1_700_000_500))
    writing = s3dest(moto.url, moto.bucket, key, secret, part_size=5 * MiB)
    result = runner([src], [writing], chunk_size=5 * MiB, **FAST)
    assert result.exit_code == 0, runner.logs()
    for k in put:  # what was put is never replaced
        body, _ = read_object(admin, moto.bucket, k)
        assert body == (photo if k.endswith("IMG_0001.JPG") else clip), k
    if "raw-shoots/card/IMG_0001.JPG" in put:
        body, _ = read_object(admin, moto.bucket, "raw-shoots/card/IMG_0001 (2).JPG")
        assert body == b"another photo" * 300
    if "raw-shoots/card/CLIP.MP4" in put:
        assert runner.outcomes()[("card/CLIP.MP4", writing.name)]["status"] == "already"


def test_a_file_sent_again_from_the_start_counts_its_bytes_once(
    tmp_path: Path, runner: Runner, rclone_s3: Any
) -> None:
    """QA: an upload that started over (its multipart upload gone) showed 19.0/19.0 MiB on the
    progress bar while the file went out a second time (41 MiB sent): the parts thrown away
    are taken off the bytes done."""
    src = tmp_path / "src" / "card"
    write(src / "CLIP.MP4", os.urandom(12 * MiB))
    inner = s3dest(
        rclone_s3.url,
        rclone_s3.bucket,
        rclone_s3.access_key,
        rclone_s3.secret_key,
        part_size=5 * MiB,
        max_parallel_parts=1,
        provider="rclone",
    )
    gone = PartFault(match="CLIP", index=2, error=lambda: errors.UploadGone("the upload is gone"), times=1)
    bucket = FaultyDestination(inner, FaultPlan(part_faults=[gone]))
    result = runner.bounded([src], [bucket], chunk_size=5 * MiB, **FAST)
    assert result.exit_code == 0, runner.logs()
    stats = result.lanes[bucket.name]
    assert stats["restarts"] == 1, stats  # parts 1 and 2 went out twice
    assert stats["bytes_done"] == 12 * MiB, stats


def test_throttling_and_a_corrupted_part_are_survived(
    tmp_path: Path, runner: Runner, rclone_s3: Any, fault_proxy: Any
) -> None:
    rng = random.Random(5)
    src = tmp_path / "src" / "card"
    files = card(src, rng)
    proxy = fault_proxy(rclone_s3)
    proxy.respond(503, SLOW_DOWN_XML, headers={"Retry-After": "0"}, match="partNumber=2", times=2)
    proxy.corrupt_byte(1000, match="partNumber=3")
    proxy.drop_after(100_000, match="IMG_0001")
    bucket = s3dest(
        proxy.url, rclone_s3.bucket, rclone_s3.access_key, rclone_s3.secret_key, part_size=5 * MiB
    )
    result = runner([src], [bucket], chunk_size=5 * MiB, **FAST)
    assert result.exit_code == 0, runner.logs()
    admin = rclone_s3.admin_client()
    for rel, data in files.items():
        assert read_object(admin, rclone_s3.bucket, f"raw-shoots/card/{rel}")[0] == data
    assert proxy.pending_faults == 0  # every fault fired


def test_sigkill_mid_upload_resumes_without_resending_parts(
    tmp_path: Path, rclone_s3: Any, fault_proxy: Any
) -> None:
    rng = random.Random(6)
    src = tmp_path / "card"
    data = rng.randbytes(40 * MiB)
    write(src / "A001.MOV", data)
    proxy = fault_proxy(rclone_s3)
    state = tmp_path / "state"
    url, env = _through(proxy, rclone_s3)
    cmd = [
        sys.executable,
        "-m",
        "castoff",
        "--state-dir",
        str(state),
        "copy",
        str(src),
        "--quiet",
        "--to",
        url,
        "--chunk-size",
        "5M",
        "--bwlimit",
        "8M",
    ]
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE)
    parts_done = _wait_for_parts(state, 3)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    assert parts_done >= 3
    catalog = Catalog(state / "catalog.sqlite")
    ups = catalog.open_uploads()
    assert len(ups) == 1
    done_before = len(ups[0].parts)
    catalog.close()
    proxy.reset_counters()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180, check=False)
    assert r.returncode == 0, r.stderr
    sent = proxy.bytes_up
    # only the missing parts went over the wire the second time
    assert sent <= len(data) - done_before * 5 * MiB + 5 * MiB
    body = rclone_s3.admin_client().get_object(Bucket=rclone_s3.bucket, Key="raw/card/A001.MOV")
    assert body["Body"].read() == data
    catalog = Catalog(state / "catalog.sqlite")
    assert catalog.open_uploads() == []


def test_a_resumed_upload_counts_only_what_this_job_sent_and_read(
    tmp_path: Path, rclone_s3: Any, fault_proxy: Any
) -> None:
    """QA: after Ctrl-C at 4/8 parts and a re-run that said "continuing at part 5/8", the report
    said bytes_sent = the whole file (and a bytes_per_s above --bwlimit), and the console "0 B
    read" though the re-run read the file to send its remaining parts."""
    data = random.Random(16).randbytes(8 * 5 * MiB - 12345)  # 8 parts of 5 MiB, the last short
    src = tmp_path / "card"
    write(src / "A001.MOV", data)
    proxy = fault_proxy(rclone_s3)
    state = tmp_path / "state"
    url, env = _through(proxy, rclone_s3)
    cmd = [sys.executable, "-m", "castoff", "--state-dir", str(state), "copy", str(src), "--to", url]
    cmd += ["--chunk-size", "5M", "--bwlimit", "8M"]
    proc = subprocess.Popen([*cmd, "--quiet"], env=env, stderr=subprocess.PIPE)
    _wait_for_parts(state, 3)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(60) == 130
    catalog = Catalog(state / "catalog.sqlite")
    (up,) = catalog.open_uploads()
    resumed = sum(p.size for p in up.parts)
    catalog.close()
    assert 3 <= len(up.parts) < 8
    proxy.reset_counters()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180, check=False)
    assert r.returncode == 0, r.stderr
    said = " ".join(r.stderr.split())
    assert f"continuing at part {len(up.parts) + 1}/8" in said
    assert "40.0 MiB read" in said  # the whole file: its BLAKE3 is checked again as it is sent
    (path,) = [line[len("report: ") :] for line in r.stderr.splitlines() if line.startswith("report: ")]
    report = json.loads(Path(path).read_text())
    (summary,) = report["summary"].values()
    assert summary["verified"] == 1
    assert summary["bytes_sent"] == len(data) - resumed  # the parts of this run, not the file
    assert summary["bytes_resumed"] == resumed
    assert summary["bytes_per_s"] == round(summary["bytes_sent"] / summary["duration_s"], 1)
    assert proxy.bytes_up >= summary["bytes_sent"]  # went over the wire in this run
    assert proxy.bytes_up < len(data) - resumed + 5 * MiB  # and no resumed part again
    body = rclone_s3.admin_client().get_object(Bucket=rclone_s3.bucket, Key="raw/card/A001.MOV")
    assert body["Body"].read() == data


PRECONDITION_FAILED = (
    "<?xml version='1.0' encoding='UTF-8'?><Error><Code>PreconditionFailed</Code>"
    "<Message>At least one of the pre-conditions you specified did not hold</Message></Error>"
)


def test_a_put_whose_answer_was_lost_is_not_taken_for_a_conflict(
    tmp_path: Path, runner: Runner, moto: Any, fault_proxy: Any
) -> None:
    """The object landed but its answer did not; the retry's If-None-Match gets 412 from that
    very object. castoff must recognise its own bytes (same MD5), not upload 'IMG_0001 (2).JPG'."""
    src = tmp_path / "src" / "card"
    data = os.urandom(300_000)
    write(src / "IMG_0001.JPG", data)
    proxy = fault_proxy(moto)
    proxy.truncate_response(0, method="PUT", match="IMG_0001")  # lands, answer lost
    proxy.respond(412, PRECONDITION_FAILED, method="PUT", match="IMG_0001")  # as AWS would
    key, secret = moto.server.admin_key  # this key may read: HEAD can recognise the object
    bucket = s3dest(proxy.url, moto.bucket, key, secret, conditional_writes=True)
    result = runner([src], [bucket], chunk_size=MiB, **FAST)
    assert result.exit_code == 0, runner.logs()
    assert proxy.pending_faults == 0
    admin = moto.admin_client()
    listed = admin.list_objects_v2(Bucket=moto.bucket, Prefix="raw-shoots/")
    assert [o["Key"] for o in listed["Contents"]] == ["raw-shoots/card/IMG_0001.JPG"]
    assert read_object(admin, moto.bucket, "raw-shoots/card/IMG_0001.JPG")[0] == data
    out = runner.outcomes()[("card/IMG_0001.JPG", bucket.name)]
    assert out["status"] == "verified"
    assert "answer was lost" in out["detail"]


def _through(proxy: Any, rclone_s3: Any) -> tuple[str, dict[str, str]]:
    """A bucket URL through the fault proxy (5 MiB parts, 2 at a time), and the environment with
    the server's keys, for castoff run as a process."""
    url = (
        f"s3://{rclone_s3.bucket}/raw/?endpoint={proxy.url}&region=us-east-1"
        "&addressing=path&part_size=5MiB&max_parallel=2"
    )
    keys = {"AWS_ACCESS_KEY_ID": rclone_s3.access_key, "AWS_SECRET_ACCESS_KEY": rclone_s3.secret_key}
    return url, {**os.environ, **keys}


def _wait_for_parts(state: Path, n: int, timeout: float = 60) -> int:
    """Until the catalog records ``n`` parts of the open upload (or ``timeout``): how many it does."""
    deadline = time.monotonic() + timeout
    parts_done = 0
    while time.monotonic() < deadline and parts_done < n:
        time.sleep(0.2)
        if (state / "catalog.sqlite").exists():
            catalog = Catalog(state / "catalog.sqlite")
            ups = catalog.open_uploads()
            parts_done = len(ups[0].parts) if ups else 0
            catalog.close()
    return parts_done


def _count_blake3_passes(monkeypatch: Any) -> list[int]:
    from castoff.engine import job

    sizes: list[int] = []
    real = job.new_blake3

    def counting(size: int) -> Any:
        sizes.append(size)
        return real(size)

    monkeypatch.setattr(job, "new_blake3", counting)
    return sizes


def test_a_bucket_only_file_is_hashed_once_and_sent_with_the_first_reads_part_md5s(
    tmp_path: Path, runner: Runner, rclone_s3: Any, monkeypatch: Any
) -> None:
    from castoff.engine import budget

    rng = random.Random(11)
    files = {"C0001.MP4": rng.randbytes(12 * MiB + 5), "IMG_0001.JPG": rng.randbytes(300_000)}
    for rel, data in files.items():
        write(tmp_path / "src" / "card" / rel, data)
    passes = _count_blake3_passes(monkeypatch)
    part_md5s: list[int] = []
    real_md5 = budget.hashlib.md5

    class CountingHashlib:
        @staticmethod
        def md5(data: Any, *, usedforsecurity: bool = True) -> Any:
            part_md5s.append(len(data))
            return real_md5(data, usedforsecurity=usedforsecurity)

    monkeypatch.setattr(budget, "hashlib", CountingHashlib)
    bucket = s3dest(
        rclone_s3.url, rclone_s3.bucket, rclone_s3.access_key, rclone_s3.secret_key, part_size=5 * MiB
    )
    result = runner([tmp_path / "src" / "card"], [bucket], chunk_size=5 * MiB, **FAST)
    assert result.exit_code == 0, runner.logs()
    assert sorted(passes) == sorted(len(d) for d in files.values()), "one BLAKE3 pass per file"
    assert part_md5s == [], "every part's MD5 came from the read that hashed the file"
    admin = rclone_s3.admin_client()
    for rel, data in files.items():
        assert read_object(admin, rclone_s3.bucket, f"raw-shoots/card/{rel}")[0] == data
        assert runner.outcomes()[(f"card/{rel}", bucket.name)]["status"] == "verified"


def test_a_source_rewritten_between_the_two_reads_is_refused_part_by_part(
    tmp_path: Path, runner: Runner, rclone_s3: Any, monkeypatch: Any
) -> None:
    """Same size, same mtime, other bytes: the server refuses the part whose Content-MD5 (from
    the first read) does not match; the source's change time moved since that read, so the file
    fails as the source's change (QA N #9), not sent again as if the network had corrupted it."""
    from castoff.engine.job import Engine

    rng = random.Random(12)
    data = rng.randbytes(12 * MiB)
    src = write(tmp_path / "src" / "card" / "C0002.MP4", data)
    st = src.stat()
    real = Engine._read_parts
    rewritten: list[bool] = []

    def rewrite_before_the_upload(
        self: Engine, fs: Any, streams: Any, path: str, *, live: bool, **kw: Any
    ) -> Any:
        if not live and not rewritten:
            changed = bytearray(data)
            changed[6 * MiB] ^= 0xFF  # in part 2
            src.write_bytes(bytes(changed))
            os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns))
            rewritten.append(True)
        return real(self, fs, streams, path, live=live, **kw)

    monkeypatch.setattr(Engine, "_read_parts", rewrite_before_the_upload)
    bucket = s3dest(
        rclone_s3.url, rclone_s3.bucket, rclone_s3.access_key, rclone_s3.secret_key, part_size=5 * MiB
    )
    result = runner([src.parent], [bucket], chunk_size=5 * MiB, **FAST)
    assert rewritten and result.exit_code == 1
    row = runner.outcomes()[("card/C0002.MP4", bucket.name)]
    assert (row["status"], row["error_code"]) == ("failed", errors.SourceChanged.code)
    assert "changed since castoff read it" in row["error"], row["error"]
    assert "sent again" not in (row["detail"] or ""), row["detail"]
    admin = rclone_s3.admin_client()
    assert "Contents" not in admin.list_objects_v2(Bucket=rclone_s3.bucket, Prefix="raw-shoots/card/")
    assert admin.list_multipart_uploads(Bucket=rclone_s3.bucket).get("Uploads", []) == []


# --- no silent overwrite where the provider has no conditional writes -------------------------


def _objects(admin: Any, bucket: str, prefix: str) -> dict[str, bytes]:
    listed = admin.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return {o["Key"][len(prefix) :]: read_object(admin, bucket, o["Key"])[0] for o in listed}


def _rewrite(path: Path, data: bytes, mtime: int) -> None:
    write(path, data)
    os.utime(path, (mtime, mtime))


def test_a_bucket_without_conditional_writes_never_has_a_key_replaced_unsaid(
    tmp_path: Path, runner: Runner, rclone_s3: Any
) -> None:
    """``rclone serve s3`` honours no ``If-None-Match``: the catalog's memory of the keys castoff
    put stands in for it. A changed file never replaces the object of its earlier version, for a
    one-request file or a multipart one, whatever names are taken; the same bytes count as
    already there."""
    src = tmp_path / "src" / "card"
    photo, clip = src / "a.jpg", src / "clip.mp4"
    rng = random.Random(7)
    versions = [rng.randbytes(40_000) for _ in range(3)]
    clips = [rng.randbytes(11 * MiB) for _ in range(2)]
    _rewrite(photo, versions[0], 1_700_000_000)
    _rewrite(clip, clips[0], 1_700_000_000)
    bucket = s3dest(
        rclone_s3.url, rclone_s3.bucket, rclone_s3.access_key, rclone_s3.secret_key, part_size=5 * MiB
    )
    assert not bucket.caps.refuses_existing
    admin = rclone_s3.admin_client()
    assert runner([src], [bucket], chunk_size=5 * MiB, **FAST).exit_code == 0, runner.logs()

    _rewrite(photo, versions[1], 1_700_000_100)
    _rewrite(clip, clips[1], 1_700_000_100)
    assert runner([src], [bucket], chunk_size=5 * MiB, **FAST).exit_code == 0, runner.logs()
    out = runner.outcomes()
    assert out[("card/a.jpg", bucket.name)]["target"] == "raw-shoots/card/a (2).jpg"
    assert out[("card/clip.mp4", bucket.name)]["target"] == "raw-shoots/card/clip (2).mp4"
    assert any("exists: kept it, sending this copy as" in line for line in runner.logs())

    _rewrite(photo, versions[2], 1_700_000_200)
    assert runner([src], [bucket], chunk_size=5 * MiB, **FAST).exit_code == 0, runner.logs()
    assert runner.outcomes()[("card/a.jpg", bucket.name)]["target"] == "raw-shoots/card/a (3).jpg"

    os.utime(photo, (1_700_000_300, 1_700_000_300))  # touched: the bytes of a (3).jpg
    assert runner([src], [bucket], chunk_size=5 * MiB, **FAST).exit_code == 0, runner.logs()
    row = runner.outcomes()[("card/a.jpg", bucket.name)]
    assert (row["status"], row["target"]) == ("already", "raw-shoots/card/a (3).jpg")
    assert "same blake3 as the object castoff put there" in row["verify_method"]

    assert _objects(admin, rclone_s3.bucket, "raw-shoots/card/") == {
        "a.jpg": versions[0],
        "a (2).jpg": versions[1],
        "a (3).jpg": versions[2],
        "clip.mp4": clips[0],
        "clip (2).mp4": clips[1],
    }
    uploads = admin.list_multipart_uploads(Bucket=rclone_s3.bucket).get("Uploads", [])
    assert uploads == []  # the clip's upload to the taken key was aborted, not left behind


def _edited_after_its_copy(tmp_path: Path, runner: Runner, rclone_s3: Any) -> tuple[Path, S3Destination]:
    """card/a.jpg put at the bucket, then edited on the card (a new size and time)."""
    src = tmp_path / "src" / "card"
    photo = src / "a.jpg"
    _rewrite(photo, b"first version", 1_700_000_000)
    bucket = s3dest(rclone_s3.url, rclone_s3.bucket, rclone_s3.access_key, rclone_s3.secret_key)
    assert runner([src], [bucket], **FAST).exit_code == 0, runner.logs()
    _rewrite(photo, b"second version", 1_700_000_100)
    return src, bucket


@pytest.mark.parametrize("policy", ["skip", "fail", "overwrite"])
def test_the_conflict_policy_applies_to_keys_the_catalog_knows(
    tmp_path: Path, runner: Runner, rclone_s3: Any, policy: str
) -> None:
    src, bucket = _edited_after_its_copy(tmp_path, runner, rclone_s3)
    result = runner([src], [bucket], on_conflict=policy, **FAST)
    row = runner.outcomes()[("card/a.jpg", bucket.name)]
    stored = _objects(rclone_s3.admin_client(), rclone_s3.bucket, "raw-shoots/card/")
    if policy == "overwrite":
        assert (result.exit_code, row["status"]) == (0, "verified")
        assert stored == {"a.jpg": b"second version"}
        assert row["detail"].startswith("replaced the object castoff put there on ")
        assert row["detail"].endswith(" (--on-conflict overwrite)")
        return
    assert stored == {"a.jpg": b"first version"}
    if policy == "skip":
        assert (result.exit_code, row["status"]) == (1, "conflict")
        assert "exists with other content" in row["detail"]
    else:
        assert (result.exit_code, row["status"], row["error_code"]) == (1, "failed", "conflict")


def _warnings(runner: Runner, dest: str) -> list[str]:
    return [
        str(e.data["message"])
        for e in runner.events
        if e.kind == "log" and e.data.get("level") == "warning" and str(e.data["message"]).startswith(dest)
    ]


def test_an_unreachable_endpoint_is_said_once_then_once_a_pause(tmp_path: Path, runner: Runner) -> None:
    """Five files at a bucket nobody answers for: one line when the trouble starts, one a pause,
    naming the endpoint, not each attempt of each file with its object's URL (45 lines before)."""
    src = tmp_path / "src" / "card"
    for i in range(5):
        write(src / f"IMG_{i:04}.JPG", os.urandom(1000 + i))
    port = free_port()  # nothing listens there
    bucket = s3dest(f"http://127.0.0.1:{port}", "nobody", "AKIDCASTOFFTEST", "SECRETCASTOFFTEST0123456789")
    ssd = LocalDestination(tmp_path / "ssd")
    result = runner.bounded([src], [ssd, bucket], max_pauses=2, **FAST)
    assert result.exit_code == 1
    said = _warnings(runner, bucket.name)
    retrying = [m for m in said if "retrying" in m]
    pausing = [m for m in said if "pausing this destination" in m]
    assert len(retrying) == 1, said
    assert len(pausing) == 2, said  # one a pause, however many files met it
    assert len(said) == 3, said
    assert all(f"endpoint http://127.0.0.1:{port} unreachable (" in m for m in said), said
    assert not any(f"127.0.0.1:{port}/" in m for m in said), said  # the endpoint, not an object's URL
    errors_said = [
        str(e.data["message"])
        for e in runner.events
        if e.kind == "log"
        and e.data.get("level") == "error"
        and str(e.data["message"]).startswith(bucket.name)
    ]
    # the five files that end there so: one line, the first's, not one a file (QA: 94 lines)
    assert len(errors_said) == 1 and "still failing after retrying and pausing" in errors_said[0], errors_said
    assert all(
        runner.outcomes()[(f"card/IMG_{i:04}.JPG", bucket.name)]["status"] == "incomplete" for i in range(5)
    )
    assert all((tmp_path / "ssd" / "card" / f"IMG_{i:04}.JPG").exists() for i in range(5))


def test_a_bucket_that_stopped_answering_is_not_tried_file_by_file(tmp_path: Path, runner: Runner) -> None:
    """QA: once its retries and pauses ran out with nothing landed, each remaining file still
    went through its own six attempts (165 s of a job whose card was long released). The
    destination, not the file, is out: the files after it are not tried, and end incomplete."""
    n = 30
    src = tmp_path / "src" / "card"
    for i in range(n):
        write(src / f"IMG_{i:04}.JPG", os.urandom(1000 + i))
    port = free_port()  # nothing listens there
    bucket = s3dest(
        f"http://127.0.0.1:{port}",
        "nobody",
        "AKIDCASTOFFTEST",
        "SECRETCASTOFFTEST0123456789",
        max_parallel_parts=1,
        max_parallel_small=1,
    )
    ssd = LocalDestination(tmp_path / "ssd")
    result = runner.bounded([src], [ssd, bucket], max_pauses=1, **FAST)
    assert result.exit_code == 1  # incomplete, not "no destination could be used" (2)
    retries = [
        str(e.data["message"])
        for e in runner.events
        if e.kind == "log" and e.data.get("level") == "debug" and "; retry 1 in " in str(e.data["message"])
    ]
    outcomes = runner.outcomes()
    rows = [outcomes[(f"card/IMG_{i:04}.JPG", bucket.name)] for i in range(n)]
    assert all(r["status"] == "incomplete" for r in rows), rows
    tried = [
        r for r in rows if any(f": {r['target']} part " in m or f": {r['target']}: " in m for m in retries)
    ]
    never = [r for r in rows if r not in tried]
    # the few tried or queued before it went out (two failing files at least tell it from one
    # bad file), not every file with six attempts each
    assert 2 <= len(tried) <= 4, retries
    assert len(never) >= n - 4
    # the destination's trouble, without the object the first file met it at
    said_for = f"not sent: {bucket.name} stopped answering: endpoint http://127.0.0.1:{port} unreachable ("
    assert all(r["error"].startswith(said_for + "check the endpoint URL") for r in never), [
        (r["target"], r["error"]) for r in never if not r["error"].startswith(said_for + "check")
    ]
    said = [
        str(e.data["message"]) for e in runner.events if e.kind == "log" and e.data.get("level") == "error"
    ]
    assert len(said) == 1 and "no more files go there in this job" in said[0], said
    assert all((tmp_path / "ssd" / "card" / f"IMG_{i:04}.JPG").exists() for i in range(n))


def test_one_file_that_keeps_failing_leaves_the_bucket_up(
    tmp_path: Path, runner: Runner, rclone_s3: Any
) -> None:
    """The other side of the above: a file whose every attempt fails (a 500 for one key) spends
    the pauses too, but the other files land between them: the destination answers, and no
    file after it is given up."""
    n = 12
    src = tmp_path / "src" / "card"
    for i in range(n):
        write(src / f"IMG_{i:04}.JPG", os.urandom(3000 + i))
    inner = s3dest(
        rclone_s3.url,
        rclone_s3.bucket,
        rclone_s3.access_key,
        rclone_s3.secret_key,
        max_parallel_parts=1,
        max_parallel_small=1,
    )
    always = PartFault(match="IMG_0000", error=lambda: errors.TransientError("internal error"), times=10_000)
    bucket = FaultyDestination(inner, FaultPlan(part_faults=[always]))
    result = runner.bounded([src], [bucket], max_pauses=2, **FAST)
    assert result.exit_code == 1
    outcomes = runner.outcomes()
    assert outcomes[("card/IMG_0000.JPG", bucket.name)]["status"] == "incomplete"
    assert outcomes[("card/IMG_0000.JPG", bucket.name)]["error"] == "internal error"
    assert all(outcomes[(f"card/IMG_{i:04}.JPG", bucket.name)]["status"] == "verified" for i in range(1, n))
    assert not any("no more files go there" in m for m in runner.logs()), "\n".join(
        m for m in runner.logs() if "retry" not in m
    )


def test_trouble_that_passes_is_said_once_and_its_end_too(
    tmp_path: Path, runner: Runner, rclone_s3: Any
) -> None:
    src = tmp_path / "src" / "card"
    for i in range(4):
        write(src / f"IMG_{i:04}.JPG", os.urandom(2000 + i))
    inner = s3dest(rclone_s3.url, rclone_s3.bucket, rclone_s3.access_key, rclone_s3.secret_key)
    lost = PartFault(match="IMG_", error=lambda: errors.TransientError("connection lost"), times=3)
    bucket = FaultyDestination(inner, FaultPlan(part_faults=[lost]))
    result = runner.bounded([src], [bucket], **FAST)
    assert result.exit_code == 0, runner.logs()
    said = _warnings(runner, bucket.name)
    assert said == [f"{bucket.name}: connection lost; retrying (the other destinations carry on)"], said
    assert runner.logs().count(f"{bucket.name}: answering again") == 1


@pytest.mark.parametrize("policy", ["skip", "fail"])
def test_a_copy_kept_beside_a_known_key_is_found_whatever_the_policy(
    tmp_path: Path, runner: Runner, rclone_s3: Any, policy: str
) -> None:
    """QA: a file a rename landed at ``a (2).jpg`` was said NOT copied (skip) or failed (fail) by
    ``--rehash --on-conflict``, where a plain --rehash finds it there: already, whatever the policy."""
    src, bucket = _edited_after_its_copy(tmp_path, runner, rclone_s3)
    assert runner([src], [bucket], **FAST).exit_code == 0, runner.logs()
    assert runner.outcomes()[("card/a.jpg", bucket.name)]["target"] == "raw-shoots/card/a (2).jpg"
    result = runner([src], [bucket], on_conflict=policy, rehash=True, **FAST)
    row = runner.outcomes()[("card/a.jpg", bucket.name)]
    assert (result.exit_code, row["status"], row["target"]) == (0, "already", "raw-shoots/card/a (2).jpg"), (
        row
    )
    stored = _objects(rclone_s3.admin_client(), rclone_s3.bucket, "raw-shoots/card/")
    assert stored == {"a.jpg": b"first version", "a (2).jpg": b"second version"}


def test_a_resumed_upload_of_one_part_says_one_part(tmp_path: Path, rclone_s3: Any) -> None:
    """QA: the notes said "resume: upload had 1 parts" (and "0 parts"): counted as words are."""
    data = random.Random(17).randbytes(3 * 5 * MiB - 999)  # 3 parts of 5 MiB
    src = tmp_path / "card"
    write(src / "A001.MOV", data)
    state = tmp_path / "state"
    url = (
        f"s3://{rclone_s3.bucket}/one/?endpoint={rclone_s3.url}&region=us-east-1"
        "&addressing=path&part_size=5MiB&max_parallel=1&provider=rclone"
    )
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": rclone_s3.access_key,
        "AWS_SECRET_ACCESS_KEY": rclone_s3.secret_key,
    }
    cmd = [sys.executable, "-m", "castoff", "--state-dir", str(state), "copy", str(src), "--to", url]
    cmd += ["--chunk-size", "5M"]
    proc = subprocess.Popen([*cmd, "--quiet", "--bwlimit", "1M"], env=env, stderr=subprocess.DEVNULL)
    _wait_for_parts(state, 1)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    catalog = Catalog(state / "catalog.sqlite")
    (up,) = catalog.open_uploads()
    catalog.close()
    assert len(up.parts) == 1  # the second part takes seconds at 1M/s: none other was recorded
    r = subprocess.run([*cmd, "--json"], env=env, capture_output=True, text=True, timeout=180, check=False)
    assert r.returncode == 0, r.stderr
    (done,) = [e for e in map(json.loads, r.stdout.splitlines()) if e["event"] == "file-done"]
    assert f"resume: upload had 1 part from job {up.job_id}" in done["detail"], done


def test_a_resumed_upload_of_other_bytes_starts_over(
    tmp_path: Path, runner: Runner, rclone_s3: Any, fault_proxy: Any
) -> None:
    """QA E #4: an upload left at 2/4 parts, then resumed from a copy of the card whose bytes
    differ (same size and time: changed in place). It completed, 'verified', holding the new
    bytes under the metadata written when it began (the old bytes' BLAKE3 and MD5). The upload
    begun for other bytes is aborted and sent again from the start: the object's metadata names
    its own bytes."""
    data = random.Random(21).randbytes(4 * 5 * MiB)
    card_dir = tmp_path / "card" / "c21"
    clip = write(card_dir / "CLIP" / "C0002.MP4", data)
    proxy = fault_proxy(rclone_s3)
    proxy.respond(503, SLOW_DOWN_XML, headers={"Retry-After": "0"}, match="partNumber=3", times=10_000)
    opts = {**FAST, "chunk_size": 5 * MiB}

    def bucket() -> S3Destination:
        return s3dest(
            proxy.url,
            rclone_s3.bucket,
            rclone_s3.access_key,
            rclone_s3.secret_key,
            part_size=5 * MiB,
            max_parallel_parts=1,
        )

    first = runner([card_dir], [bucket()], max_pauses=0, **opts)
    assert first.exit_code == 1, runner.logs()
    (up,) = runner.catalog.open_uploads()
    assert up.parts and up.blake3 == blake3.blake3(data).hexdigest()
    # the verified copy on the SSD, same size and time, changed in place in its last part
    changed = bytearray(data)
    changed[3 * 5 * MiB + 1000 : 3 * 5 * MiB + 1016] = b"X" * 16
    copy_dir = tmp_path / "ssd" / "c21"
    copy = write(copy_dir / "CLIP" / "C0002.MP4", bytes(changed))
    st = clip.stat()
    os.utime(copy, ns=(st.st_atime_ns, st.st_mtime_ns))
    proxy.clear_faults()
    second = runner([copy_dir], [bucket()], **opts)
    assert second.exit_code == 0, runner.logs()
    body, obj = read_object(rclone_s3.admin_client(), rclone_s3.bucket, "raw-shoots/c21/CLIP/C0002.MP4")
    assert body == bytes(changed)
    meta = {k.lower(): v for k, v in obj["Metadata"].items()}
    assert meta["blake3"] == blake3.blake3(body).hexdigest()
    if "md5chksum" in meta:
        assert base64.b64decode(meta["md5chksum"]) == hashlib.md5(body).digest()
    said = " ".join(runner.logs())
    assert "the unfinished upload was begun for other bytes" in said
    assert "continuing at part" not in said
    assert runner.catalog.open_uploads() == []


def test_a_file_changed_in_place_since_it_was_copied_is_not_sent_under_its_old_hash(
    tmp_path: Path, runner: Runner, rclone_s3: Any, fault_proxy: Any
) -> None:
    """QA E #3: a job killed with the SSD copy verified and the upload at 2/4 parts; then the card's
    file is rewritten, same size and mtime. The first re-run tried it three times ("sending it
    again"), then said "Re-run the same command"; the second uploaded the new bytes and called
    them verified, the report giving the file their BLAKE3 and calling the SSD's old bytes
    'skipped — verified' under it. Now the re-run finishes the upload from the SSD's verified copy
    (the card is not read: the bucket gets the bytes the first read saw); a job that must read the
    card (a new drive) finds the change: the new bytes go nowhere, every such run says that the
    file changed since it was copied, the skipped copy is said to hold the file as it was, the
    file keeps the one BLAKE3 its verified copies hold, and --rehash keeps both."""
    data = random.Random(40).randbytes(4 * 5 * MiB)
    card_dir = tmp_path / "card" / "c40"
    clip = write(card_dir / "CLIP" / "C0002.MP4", data)
    ssd = LocalDestination(tmp_path / "ssd")
    proxy = fault_proxy(rclone_s3)
    proxy.respond(503, SLOW_DOWN_XML, headers={"Retry-After": "0"}, match="partNumber=3", times=10_000)
    bucket = s3dest(
        proxy.url, rclone_s3.bucket, rclone_s3.access_key, rclone_s3.secret_key, part_size=5 * MiB
    )
    opts = {**FAST, "chunk_size": 5 * MiB}
    assert runner([card_dir], [ssd, bucket], max_pauses=0, **opts).exit_code == 1, runner.logs()
    assert len(runner.catalog.open_uploads()) == 1
    rel = "c40/CLIP/C0002.MP4"
    assert runner.outcomes()[(rel, ssd.name)]["status"] == "verified"
    proxy.clear_faults()
    old, new = blake3.blake3(data).hexdigest(), None
    changed = bytearray(data)
    changed[18_000_000:18_000_016] = b"X" * 16  # in part 4, not sent yet
    st = clip.stat()
    clip.write_bytes(bytes(changed))
    os.utime(clip, ns=(st.st_atime_ns, st.st_mtime_ns))
    new = blake3.blake3(bytes(changed)).hexdigest()
    key = "raw-shoots/c40/CLIP/C0002.MP4"
    admin = rclone_s3.admin_client()
    # The re-run: every drive holds the file, so the upload resumes from the SSD's verified copy,
    # without reading the card (fix-catchup): the bucket gets the bytes the first read saw.
    resumed = runner([card_dir], [ssd, bucket], **opts)
    assert resumed.exit_code == 0 and resumed.bytes_read == 0, runner.logs()
    body, obj = read_object(admin, rclone_s3.bucket, key)
    assert body == data and {k.lower(): v for k, v in obj["Metadata"].items()}["blake3"] == old
    # A new drive needs the card read: the change in place is found, and its bytes go nowhere
    ssd2 = LocalDestination(tmp_path / "ssd2")
    for n in range(2):  # and again: the same command meets it again
        runner.events.clear()
        assert runner([card_dir], [ssd, ssd2, bucket], **opts).exit_code == 1, (n, "\n".join(runner.logs()))
        out = {(r["rel_path"], r["dest_name"]): r for r in runner.catalog.iter_job_rows(runner.job_id)}
        at_new, at_ssd = out[(rel, ssd2.name)], out[(rel, ssd.name)]
        assert at_new["status"] == "failed"
        assert at_new["error_code"] == errors.SourceChangedInPlace.code
        assert "changed at the source since an earlier job copied it" in at_new["error"]
        assert "sending it again" not in " ".join(runner.logs())
        assert (at_new["file_status"], at_new["file_error_code"]) == ("failed", at_new["error_code"])
        assert sum("changed at the source since" in line for line in runner.logs()) == 1, n
        assert at_ssd["status"] == "skipped"
        assert "this copy holds it as it was then" in at_ssd["detail"]
        assert at_ssd["blake3"] == old  # never the new bytes' hash beside the old copy
        assert not (tmp_path / "ssd2" / rel).exists()
        assert runner.catalog.open_uploads() == []
    assert (tmp_path / "ssd" / rel).read_bytes() == data
    assert read_object(admin, rclone_s3.bucket, key)[0] == data
    # --rehash: the file as it is now, kept beside the earlier copies, never over them
    assert runner([card_dir], [ssd, bucket], rehash=True, **opts).exit_code == 0, runner.logs()
    assert (tmp_path / "ssd" / rel).read_bytes() == data
    assert (tmp_path / "ssd" / "c40/CLIP/C0002 (2).MP4").read_bytes() == bytes(changed)
    assert read_object(admin, rclone_s3.bucket, key)[0] == data
    body, obj = read_object(admin, rclone_s3.bucket, "raw-shoots/c40/CLIP/C0002 (2).MP4")
    assert body == bytes(changed)
    assert {k.lower(): v for k, v in obj["Metadata"].items()}["blake3"] == new


@pytest.mark.parametrize("first", ["refused first", "read ends first"])
def test_a_source_changed_during_a_bucket_only_jobs_second_read_is_said_as_its_change_not_the_networks(
    tmp_path: Path, runner: Runner, rclone_s3: Any, monkeypatch: Any, first: str
) -> None:
    """QA N #9: the second read of a bucket-only multipart file (its upload, each part sent with
    the first read's MD5) meets a writer rewriting part 2 in place, its mtime set back. The
    server refuses that part (BadDigest), and the job said "corrupted on the way", a network
    fault, when the read's own closing check (the change time moved) said the source changed.
    Whichever ends first, the refusal or the read, the file fails as the source's change."""
    from castoff.engine.job import Engine
    from castoff.engine.lanes import Lane

    data = random.Random(44).randbytes(4 * 5 * MiB)
    src = write(tmp_path / "card" / "c44" / "C0001.MP4", data)
    st = src.stat()
    real_read_parts, real_read, real_fail, real_check = (
        Engine._read_parts,
        Engine._read_exactly,
        Lane.fail,
        Engine._check_unchanged,
    )
    second, refused, checked = threading.Event(), threading.Event(), threading.Event()

    def read_parts(self: Engine, fs: Any, streams: Any, path: str, *, live: bool, **kw: Any) -> Any:
        if not live:
            second.set()
        return real_read_parts(self, fs, streams, path, live=live, **kw)

    def read_exactly(fd: int, view: memoryview, offset: int, rel: str) -> None:
        if second.is_set() and offset == 5 * MiB:  # a writer rewrites part 2, then sets the time back
            with open(src, "r+b") as fh:
                fh.seek(5 * MiB)
                fh.write(bytes(b ^ 0xFF for b in data[5 * MiB : 5 * MiB + 4096]))
            os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns))
        if second.is_set() and offset == 15 * MiB and first == "refused first":
            assert refused.wait(60), "part 2 was not refused"
        real_read(fd, view, offset, rel)

    def fail(self: Lane, stream: Any, exc: BaseException) -> None:
        if isinstance(exc, errors.BadDigest):
            refused.set()
        real_fail(self, stream, exc)

    def check_unchanged(self: Engine, *args: Any, **kw: Any) -> None:
        try:
            real_check(self, *args, **kw)
        finally:
            if second.is_set():
                checked.set()

    class HeldBack:  # the read's end comes first: part 2's answer waits for it
        @staticmethod
        def wrap(put: Any) -> Any:
            def put_part(upload: Any, index: int, *args: Any) -> Any:
                if second.is_set() and index == 1 and first == "read ends first":
                    assert checked.wait(60), "the read did not end"
                return put(upload, index, *args)

            return put_part

    monkeypatch.setattr(Engine, "_read_parts", read_parts)
    monkeypatch.setattr(Engine, "_read_exactly", staticmethod(read_exactly))
    monkeypatch.setattr(Lane, "fail", fail)
    monkeypatch.setattr(Engine, "_check_unchanged", check_unchanged)
    from castoff.destinations.s3 import S3Upload

    monkeypatch.setattr(S3Upload, "put_part", HeldBack.wrap(S3Upload.put_part))
    bucket = s3dest(
        rclone_s3.url, rclone_s3.bucket, rclone_s3.access_key, rclone_s3.secret_key, part_size=5 * MiB
    )
    result = runner([src.parent], [bucket], chunk_size=5 * MiB, **FAST)
    assert second.is_set() and refused.is_set() and checked.is_set()
    assert result.exit_code == 1
    row = runner.outcomes()[("c44/C0001.MP4", bucket.name)]
    assert (row["status"], row["error_code"]) == ("failed", errors.SourceChanged.code), dict(row)
    why = ("modified while it was read", "changed since castoff read it")  # (which found it first)
    assert any(w in row["error"] for w in why) and "corrupted" not in row["error"], row["error"]
    said = " ".join(" ".join(runner.logs()).split())
    assert "corrupted on the way" not in said and "sending it again" not in said, said
    assert sum(said.count(f"c44/C0001.MP4: {w}") for w in why) == 1, said  # said once
    assert runner.catalog.open_uploads() == []
    listed = rclone_s3.admin_client().list_objects_v2(Bucket=rclone_s3.bucket).get("Contents", [])
    assert not [o for o in listed if o["Key"].endswith("C0001.MP4")], listed


def test_a_file_changed_in_place_whose_earlier_read_reached_nowhere_says_so(
    tmp_path: Path, runner: Runner, rclone_s3: Any, fault_proxy: Any
) -> None:
    """QA H #6: a bucket-only job stopped with its upload at part 2 of 3; the card's file then
    rewritten, same size and time. The re-run said "the copies verified then hold the file as it
    was", when no copy was ever verified (only an unfinished upload of the earlier bytes). It says
    that the earlier read was delivered nowhere, that the resumed upload is left unfinished, and
    that --rehash copies the file as it is now at its own name, which it does."""
    data = random.Random(41).randbytes(3 * 5 * MiB)
    card_dir = tmp_path / "card" / "c41"
    clip = write(card_dir / "CLIP" / "C0001.MP4", data)
    proxy = fault_proxy(rclone_s3)
    proxy.respond(503, SLOW_DOWN_XML, headers={"Retry-After": "0"}, match="partNumber=3", times=10_000)
    bucket = s3dest(
        proxy.url, rclone_s3.bucket, rclone_s3.access_key, rclone_s3.secret_key, part_size=5 * MiB
    )
    opts = {**FAST, "chunk_size": 5 * MiB}
    assert runner([card_dir], [bucket], max_pauses=0, **opts).exit_code == 1, runner.logs()
    assert len(runner.catalog.open_uploads()) == 1
    proxy.clear_faults()
    changed = bytearray(data)
    changed[12_000_000:12_000_016] = b"X" * 16  # in part 3, not sent yet
    st = clip.stat()
    clip.write_bytes(bytes(changed))
    os.utime(clip, ns=(st.st_atime_ns, st.st_mtime_ns))
    rel, key = "c41/CLIP/C0001.MP4", "raw-shoots/c41/CLIP/C0001.MP4"
    admin = rclone_s3.admin_client()
    for n in range(2):  # the same command meets it again
        runner.events.clear()
        assert runner([card_dir], [bucket], **opts).exit_code == 1, (n, "\n".join(runner.logs()))
        out = {(r["rel_path"], r["dest_name"]): r for r in runner.catalog.iter_job_rows(runner.job_id)}
        row = out[(rel, bucket.name)]
        assert row["status"] == "failed" and row["error_code"] == errors.SourceChangedInPlace.code
        said = " ".join(" ".join(runner.logs()).split())
        assert "copies verified then" not in said and "copies verified then" not in row["error"]
        assert "earlier job read here" in row["error"] and "delivered them nowhere" in row["error"], row
        if n == 0:
            assert f"The unfinished upload at {bucket.name}, begun for the earlier bytes, is dropped" in said
        assert runner.catalog.open_uploads() == []
        assert not admin.list_multipart_uploads(Bucket=rclone_s3.bucket).get("Uploads"), n
        assert "--rehash" in said and "at its own name" in said, said
        assert not admin.list_objects_v2(Bucket=rclone_s3.bucket, Prefix="raw-shoots/c41/").get("Contents")
    assert runner([card_dir], [bucket], rehash=True, **opts).exit_code == 0, runner.logs()
    body, obj = read_object(admin, rclone_s3.bucket, key)
    assert body == bytes(changed)
    assert {k.lower(): v for k, v in obj["Metadata"].items()}["blake3"] == blake3.blake3(body).hexdigest()
    assert runner.catalog.open_uploads() == []


def test_a_source_changed_before_a_bucket_only_jobs_second_read_is_said_on_the_console(
    tmp_path: Path, runner: Runner, rclone_s3: Any
) -> None:
    """QA N #9: in a job with only buckets a multipart file is read twice, to hash it and to send
    it. A file changed between the two failed with the reason only in the report: the console said
    "failed 1" and nothing of which file or why. Now it says both, as the first read's trouble is."""
    clip = write(tmp_path / "card" / "c42" / "CLIP" / "C0001.MP4", random.Random(42).randbytes(3 * 5 * MiB))
    write(tmp_path / "card" / "c42" / "DCIM" / "IMG_0001.JPG", b"a photo")

    def change_after_the_first_read(event: Any) -> None:
        if event.kind == "file-read" and str(event.data["rel_path"]).endswith("C0001.MP4"):
            with open(clip, "ab") as fh:
                fh.write(b"a recorder still writing")

    runner.hook = change_after_the_first_read
    bucket = s3dest(
        rclone_s3.url, rclone_s3.bucket, rclone_s3.access_key, rclone_s3.secret_key, part_size=5 * MiB
    )
    result = runner([tmp_path / "card" / "c42"], [bucket], **{**FAST, "chunk_size": 5 * MiB})
    assert result.exit_code == 1
    row = runner.outcomes()[("c42/CLIP/C0001.MP4", bucket.name)]
    assert row["status"] == "failed" and row["error_code"] == errors.SourceChanged.code, dict(row)
    assert runner.outcomes()[("c42/DCIM/IMG_0001.JPG", bucket.name)]["status"] == "verified"
    said = [e.data for e in runner.events if e.kind == "log" and e.data["level"] == "error"]
    assert any(
        str(m["message"]).startswith("c42/CLIP/C0001.MP4: ")
        and f"read again for {bucket.name}" in m["message"]
        for m in said
    ), said
    assert runner.catalog.open_uploads() == []
    admin = rclone_s3.admin_client()
    listed = admin.list_objects_v2(Bucket=rclone_s3.bucket).get("Contents", [])
    assert not [o for o in listed if o["Key"].endswith("C0001.MP4")], listed


def test_a_file_deleted_before_a_bucket_only_jobs_second_read_is_left_out(
    tmp_path: Path, runner: Runner, rclone_s3: Any
) -> None:
    """QA N #8, a bucket's read: a multipart file only buckets take is read twice (to hash it,
    then to send it); one deleted from its folder between the two reads (nothing of it sent yet)
    is left out as one deleted before its first read is: no object, no upload left behind, exit 0."""
    clip = write(tmp_path / "card" / "c43" / "CLIP" / "C0001.MP4", random.Random(43).randbytes(3 * 5 * MiB))
    write(tmp_path / "card" / "c43" / "CLIP" / "C0002.MP4", b"a clip that stays")

    def delete_after_the_first_read(event: Any) -> None:
        if event.kind == "file-read" and str(event.data["rel_path"]).endswith("C0001.MP4"):
            clip.unlink()

    runner.hook = delete_after_the_first_read
    bucket = s3dest(
        rclone_s3.url, rclone_s3.bucket, rclone_s3.access_key, rclone_s3.secret_key, part_size=5 * MiB
    )
    result = runner([tmp_path / "card" / "c43"], [bucket], **{**FAST, "chunk_size": 5 * MiB})
    assert result.exit_code == 0, runner.logs()
    assert (result.files, result.vanished) == (1, 1)
    files = {r["rel_path"]: r for r in runner.catalog.job_files(runner.job_id)}
    assert (files["c43/CLIP/C0001.MP4"]["status"], files["c43/CLIP/C0001.MP4"]["error_code"]) == (
        "skipped",
        "vanished",
    )
    assert set(runner.outcomes()) == {("c43/CLIP/C0002.MP4", bucket.name)}
    assert result.lanes[bucket.name]["files_total"] == 1
    assert runner.catalog.open_uploads() == []
    admin = rclone_s3.admin_client()
    listed = [o["Key"] for o in admin.list_objects_v2(Bucket=rclone_s3.bucket).get("Contents", [])]
    assert listed == ["raw-shoots/c43/CLIP/C0002.MP4"], listed


def test_an_upload_that_never_began_is_not_called_resumable(
    tmp_path: Path, runner: Runner, rclone_s3: Any, fault_proxy: Any
) -> None:
    """QA O #3: a file the bucket never took a part of (its PUT refused until the job gave up) was
    "incomplete" with "resumable: 0/1 parts uploaded; re-run to continue": nothing was begun there,
    and a re-run simply sends it. Only a part that went out makes an upload resumable."""
    write(tmp_path / "card" / "c43" / "DCIM" / "IMG_0001.JPG", b"a photo")
    proxy = fault_proxy(rclone_s3)
    proxy.respond(503, SLOW_DOWN_XML, headers={"Retry-After": "0"}, method="PUT", times=10_000)
    bucket = s3dest(proxy.url, rclone_s3.bucket, rclone_s3.access_key, rclone_s3.secret_key)
    assert runner([tmp_path / "card" / "c43"], [bucket], max_pauses=0, **FAST).exit_code == 1
    row = runner.outcomes()[("c43/DCIM/IMG_0001.JPG", bucket.name)]
    assert row["status"] == "incomplete", dict(row)
    assert "resumable" not in (row["detail"] or ""), dict(row)
    proxy.clear_faults()
    assert runner([tmp_path / "card" / "c43"], [bucket], **FAST).exit_code == 0, runner.logs()
