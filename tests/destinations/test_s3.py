"""The S3 destination against real servers on 127.0.0.1 (moto_server and rclone serve s3).

Each test reads the result back with the server's admin key: bytes, metadata, ETags.
"""

from __future__ import annotations

import base64
import datetime as dt
import email.utils
import hashlib
import http.server
import json
import os
import ssl
import subprocess
import sys
import threading
import unicodedata
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import blake3
import botocore.exceptions as bx
import pytest
from botocore.exceptions import ClientError
from hypothesis import given
from hypothesis import strategies as st

from castoff import errors
from castoff.destinations.base import Destination, Landed, ObjectMeta, PartReceipt, TargetExists
from castoff.destinations.s3 import (
    EXPECT_CONTINUE_MIN,
    META_BLAKE3,
    META_MD5,
    META_MTIME,
    S3Destination,
    S3Options,
    S3Upload,
    build_metadata,
    check_bucket_chars,
    metadata_bytes,
    parse_s3_url,
    probe,
    rclone_mtime,
    translate_error,
)
from castoff.destinations.spec import shown
from server_fixtures import MotoBucket, RcloneBucket, unique_bucket
from servers import INTERNAL_ERROR_XML, LOCALHOST, SLOW_DOWN_XML, MotoServer, free_port, self_signed_cert

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from server_fixtures import ProxyFactory

pytest_plugins = ["server_fixtures"]

PART = 2048  # moto below runs with S3_UPLOAD_PART_MIN_SIZE=1024; rclone has no minimum
#: neither has the 5 MiB minimum of an unknown server: the provider with no minimum lets PART through
SMALL_PARTS = "rclone"
MTIME_NS = 1_700_000_000_123_456_789


@pytest.fixture(autouse=True)
def _no_ambient_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Nothing from this machine's AWS setup may leak in, and nothing may reach for IMDS."""
    for name in list(os.environ):
        if name.startswith("AWS_") or name.lower() in ("http_proxy", "https_proxy"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture(scope="module")
def small_moto_server() -> Iterator[MotoServer]:
    with MotoServer(part_min_size=1024) as server:
        yield server


@pytest.fixture
def moto_b(small_moto_server: MotoServer) -> Iterator[MotoBucket]:
    """Like server_fixtures' ``moto``, on a moto that takes 1 KiB parts."""
    if not small_moto_server.is_running():
        small_moto_server.restart()
    small_moto_server.reset()
    bucket = unique_bucket()
    small_moto_server.create_bucket(bucket)
    yield MotoBucket(small_moto_server, bucket)
    if small_moto_server.is_running():
        small_moto_server.reset()


@dataclass
class Server:
    """One bucket on one server, and the keys to reach it."""

    kind: str  # moto or rclone
    url: str
    key: str
    secret: str
    bucket: str
    admin: S3Client
    opened: list[S3Destination] = field(default_factory=list)

    def options(self, **kw: Any) -> S3Options:
        base: dict[str, Any] = {
            "bucket": self.bucket,
            "endpoint_url": self.url,
            "access_key": self.key,
            "secret_key": self.secret,
            "part_size": PART,
            "provider": SMALL_PARTS,
        }
        return S3Options(**{**base, **kw})

    def dest(self, **kw: Any) -> S3Destination:
        dest = S3Destination(self.options(**kw))
        self.opened.append(dest)
        return dest

    def head(self, key: str) -> dict[str, Any]:
        return dict(self.admin.head_object(Bucket=self.bucket, Key=key))

    def body(self, key: str) -> bytes:
        return self.admin.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def metadata(self, key: str) -> dict[str, str]:
        """User metadata with lower-case keys (rclone answers Mtime, Blake3, ...)."""
        return {k.lower(): v for k, v in self.head(key)["Metadata"].items()}

    def keys(self) -> list[str]:
        listing = self.admin.list_objects_v2(Bucket=self.bucket)
        return sorted(o["Key"] for o in listing.get("Contents", []))

    def uploads(self) -> list[str]:
        listing = self.admin.list_multipart_uploads(Bucket=self.bucket)
        return [u["UploadId"] for u in listing.get("Uploads", [])]


def _moto_server(b: MotoBucket) -> Server:
    key, secret = b.server.admin_key
    return Server("moto", b.url, key, secret, b.bucket, b.client)


def _rclone_server(b: RcloneBucket) -> Server:
    return Server("rclone", b.url, b.access_key, b.secret_key, b.bucket, b.client)


@pytest.fixture(params=["moto", "rclone"])
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    if request.param == "moto":
        s = _moto_server(request.getfixturevalue("moto_b"))
    else:
        s = _rclone_server(request.getfixturevalue("rclone_s3"))
    yield s
    for dest in s.opened:
        dest.close()


@pytest.fixture
def moto(moto_b: MotoBucket) -> Iterator[Server]:
    """This module's moto: the one that takes small parts."""
    s = _moto_server(moto_b)
    yield s
    for dest in s.opened:
        dest.close()


@pytest.fixture
def rclone(rclone_s3: RcloneBucket) -> Iterator[Server]:
    s = _rclone_server(rclone_s3)
    yield s
    for dest in s.opened:
        dest.close()


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def meta_for(rel: str, data: bytes, **extra: str) -> ObjectMeta:
    return ObjectMeta(
        rel_path=rel,
        size=len(data),
        mtime_ns=MTIME_NS,
        atime_ns=MTIME_NS,
        blake3=blake3.blake3(data).hexdigest(),
        md5=md5_hex(data),
        extra=extra,
    )


def put_parts(upload: S3Upload, data: bytes, part: int, only: range | None = None) -> list[PartReceipt]:
    view = memoryview(data)
    indices = only if only is not None else range(max(1, -(-len(data) // part)))
    receipts = []
    for i in indices:
        chunk = view[i * part : (i + 1) * part]
        receipts.append(upload.put_part(i, i * part, chunk, hashlib.md5(chunk).digest()))
    return receipts


def send(dest: S3Destination, rel: str, data: bytes, part: int = PART, **extra: str) -> Landed:
    target = dest.target_for(rel)
    meta = meta_for(rel, data, **extra)
    upload = dest.start(target, meta=meta, part_size=part)
    receipts = put_parts(upload, data, part)
    return upload.commit(receipts, source_blake3=meta.blake3 or "")


def multipart_etag(data: bytes, part: int) -> str:
    digests = b"".join(hashlib.md5(data[i : i + part]).digest() for i in range(0, len(data), part))
    return f"{hashlib.md5(digests).hexdigest()}-{-(-len(data) // part)}"


# --- round trips --------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["when_required", "when_supported"])
@pytest.mark.parametrize("size", [0, 1000, 2 * PART + 100], ids=["empty", "small", "3-parts"])
def test_round_trip(server: Server, mode: str, size: int) -> None:
    data = os.urandom(size)
    dest = server.dest(checksum_mode=mode, prefix="raw")
    assert dest.checksum_mode == mode
    landed = send(dest, "day 1/clip.mov", data)
    key = "raw/day 1/clip.mov"
    assert landed.target == key
    assert landed.size == size
    assert server.body(key) == data
    meta = server.metadata(key)
    assert meta[META_BLAKE3] == blake3.blake3(data).hexdigest()
    assert meta[META_MTIME] == "1700000000.123456789"
    assert meta[META_MD5] == base64.b64encode(hashlib.md5(data).digest()).decode()
    head_etag = server.head(key)["ETag"].strip('"')
    if size > PART:
        assert landed.etag == multipart_etag(data, PART)
        assert landed.verify_method == "content-md5 per part + etag (md5 of part md5s)"
        # rclone 1.75 answers HEAD with the whole-object MD5 (s3-servers.md); moto with -N
        assert head_etag == (landed.etag if server.kind == "moto" else md5_hex(data))
    else:
        assert landed.etag == md5_hex(data) == head_etag
        assert landed.verify_method == "content-md5 + etag (md5)"
    assert landed.detail is None


@pytest.mark.parametrize("mode", ["when_required", "when_supported"])
def test_megabyte_parts_stream_from_the_engines_buffer(server: Server, mode: str) -> None:
    """Bodies over 1 MB go out with Expect: 100-continue, read from the memoryview as a file."""
    part = 1536 * 1024
    data = os.urandom(2 * part + 10)
    landed = send(server.dest(checksum_mode=mode), "big.bin", data, part)
    assert landed.etag == multipart_etag(data, part)
    assert server.body("big.bin") == data
    single = os.urandom(part)
    assert send(server.dest(checksum_mode=mode), "one.bin", single, part).etag == md5_hex(single)


def test_only_big_bodies_wait_for_100_continue(rclone: Server) -> None:
    """A small PutObject goes out headers and body at once; a body of 1 MiB or more first asks
    the server's leave, so a refused request does not send it."""
    dest = rclone.dest()
    sent: dict[str, bytes | str | None] = {}

    def record(request: Any, **_: Any) -> None:
        sent[request.url.rsplit("/", 1)[-1]] = request.headers.get("Expect")

    dest.client.meta.events.register("before-send.s3.PutObject", record)
    small, big = os.urandom(EXPECT_CONTINUE_MIN - 1), os.urandom(EXPECT_CONTINUE_MIN)
    send(dest, "small.jpg", small, part=2 * EXPECT_CONTINUE_MIN)
    send(dest, "big.mov", big, part=2 * EXPECT_CONTINUE_MIN)
    assert sent == {"small.jpg": None, "big.mov": b"100-continue"}
    assert rclone.body("small.jpg") == small and rclone.body("big.mov") == big


def test_storage_class_and_sse_land_on_moto(moto: Server) -> None:
    dest = moto.dest(storage_class="glacier_ir", sse="AES256")
    for rel, size in (("small", 10), ("big", 3 * PART)):
        send(dest, rel, os.urandom(size))
        head = moto.head(rel)
        assert head["StorageClass"] == "GLACIER_IR"
        assert head["ServerSideEncryption"] == "AES256"


def test_sse_kms_etags_are_not_compared(moto: Server) -> None:
    dest = moto.dest(sse="aws:kms", sse_kms_key_id="alias/castoff")
    landed = send(dest, "big", os.urandom(2 * PART + 1))
    assert landed.verify_method == "content-md5 per part"
    assert landed.detail is not None
    assert "Content-MD5" in landed.detail
    assert moto.head("big")["ServerSideEncryption"] == "aws:kms"


def test_parts_sent_from_threads_out_of_order(server: Server) -> None:
    data = os.urandom(8 * PART + 5)
    dest = server.dest()
    meta = meta_for("t", data)
    upload = dest.start("t", meta=meta, part_size=PART)
    view = memoryview(data)
    indices = list(range(9))[::-1]

    def one(i: int) -> PartReceipt:
        return upload.put_part(i, i * PART, view[i * PART : (i + 1) * PART], None)

    with ThreadPoolExecutor(4) as pool:
        receipts = list(pool.map(one, indices))
    landed = upload.commit(receipts, source_blake3=meta.blake3 or "")
    assert landed.etag == multipart_etag(data, PART)
    assert server.body("t") == data


def test_resume_from_token_in_a_new_destination(server: Server) -> None:
    """A later process finishes the upload from the catalog's token and receipts only."""
    data = os.urandom(4 * PART + 7)
    meta = meta_for("resumed.bin", data)
    first = server.dest()
    upload = first.start("resumed.bin", meta=meta, part_size=PART)
    token = json.loads(json.dumps(upload.token))  # as the catalog stores it
    assert token["key"] == "resumed.bin"
    assert token["part_size"] == PART
    assert token["upload_id"]
    done = put_parts(upload, data, PART, only=range(3))
    first.close()
    recorded = [PartReceipt(**json.loads(json.dumps(r.__dict__))) for r in done]

    second = server.dest()
    again = second.start("resumed.bin", meta=meta, part_size=PART, resume=token)
    assert again.token == token
    rest = put_parts(again, data, PART, only=range(3, 5))
    landed = again.commit(recorded + rest, source_blake3=meta.blake3 or "")
    assert landed.etag == multipart_etag(data, PART)
    assert server.body("resumed.bin") == data
    assert server.uploads() == []


def test_resume_token_with_other_part_size_starts_over(server: Server) -> None:
    data = os.urandom(3 * PART)
    dest = server.dest()
    upload = dest.start("f", meta=meta_for("f", data), part_size=PART)
    with pytest.raises(errors.UploadGone):
        dest.start("f", meta=meta_for("f", data), part_size=PART * 2, resume=upload.token)
    upload.abort()


def test_wrong_part_etag_at_commit_fails(server: Server) -> None:
    data = os.urandom(3 * PART)
    dest = server.dest()
    meta = meta_for("x", data)
    upload = dest.start("x", meta=meta, part_size=PART)
    receipts = put_parts(upload, data, PART)
    bogus = md5_hex(b"other bytes")
    receipts[1] = PartReceipt(1, PART, PART, md5=bogus, etag=bogus)
    with pytest.raises(errors.IntegrityError) as info:
        upload.commit(receipts, source_blake3=meta.blake3 or "")
    assert "InvalidPart" in str(info.value)
    upload.abort()
    assert server.keys() == []


def test_wrong_md5_is_refused_by_rclone(rclone: Server) -> None:
    dest = rclone.dest()
    data = os.urandom(3 * PART)
    upload = dest.start("m", meta=meta_for("m", data), part_size=PART)
    with pytest.raises(errors.BadDigest):
        upload.put_part(0, 0, memoryview(data)[:PART], hashlib.md5(b"not it").digest())
    # rclone drops the whole upload after a BadDigest (s3-servers.md): the file starts over
    with pytest.raises(errors.UploadGone):
        upload.put_part(1, PART, memoryview(data)[PART : 2 * PART], None)
    single = dest.start("s", meta=meta_for("s", b"hello"), part_size=PART)
    with pytest.raises(errors.BadDigest):
        single.put_part(0, 0, memoryview(b"hello"), hashlib.md5(b"jello").digest())
    assert rclone.keys() == []


def test_wrong_md5_on_moto_is_caught_by_the_etag(moto: Server) -> None:
    """moto never checks Content-MD5; the part's ETag then differs from the MD5 castoff sent."""
    dest = moto.dest()
    data = os.urandom(3 * PART)
    upload = dest.start("m", meta=meta_for("m", data), part_size=PART)
    with pytest.raises(errors.IntegrityError, match="ETag"):
        upload.put_part(0, 0, memoryview(data)[:PART], hashlib.md5(b"not it").digest())
    upload.abort()


# --- write-only keys, conditional writes, aborts --------------------------------------------


def test_write_only_key_does_the_whole_flow(moto: Server, moto_b: MotoBucket) -> None:
    key, secret = moto_b.enable_write_only()
    admin = moto_b.client
    writer = moto.dest(access_key=key, secret_key=secret, prefix="wo")
    small, big = os.urandom(100), os.urandom(3 * PART + 1)
    send(writer, "small", small)
    send(writer, "big", big)
    abandoned = writer.start("wo/gone", meta=meta_for("gone", big), part_size=PART)
    put_parts(abandoned, big, PART, only=range(1))
    abandoned.abort()
    result = probe(writer.options)
    assert result.ok, result.message
    assert admin.get_object(Bucket=moto.bucket, Key="wo/small")["Body"].read() == small
    assert admin.get_object(Bucket=moto.bucket, Key="wo/big")["Body"].read() == big
    assert admin.list_multipart_uploads(Bucket=moto.bucket).get("Uploads", []) == []
    # the same key cannot read: a read-back is refused plainly
    reader = moto.dest(access_key=key, secret_key=secret, verify_download=True)
    with pytest.raises(errors.AccessDenied, match="GetObject") as denied:
        send(reader, "again", small)
    assert "the key needs s3:GetObject, or drop the option" in str(denied.value.hint)


def test_conditional_writes_on_moto(moto: Server) -> None:
    dest = moto.dest(conditional_writes=True)
    send(dest, "taken", b"first")
    send(dest, "big-taken", os.urandom(2 * PART))
    single = dest.start("taken", meta=meta_for("taken", b"second"), part_size=PART)
    with pytest.raises(TargetExists) as info:
        put_parts(single, b"second", PART)
    assert info.value.target == "taken"
    data = os.urandom(2 * PART + 3)
    meta = meta_for("big-taken", data)
    upload = dest.start("big-taken", meta=meta, part_size=PART)
    receipts = put_parts(upload, data, PART)
    with pytest.raises(TargetExists):
        upload.commit(receipts, source_blake3=meta.blake3 or "")
    # the upload stays open: the engine may overwrite on purpose
    landed = upload.commit(receipts, source_blake3=meta.blake3 or "", overwrite=True)
    assert landed.etag == multipart_etag(data, PART)
    assert moto.body("big-taken") == data
    assert moto.body("taken") == b"first"


def test_conditional_writes_are_off_for_unknown_servers(rclone: Server) -> None:
    """rclone serve s3 ignores If-None-Match (it overwrites), so castoff does not rely on it."""
    dest = rclone.dest()
    assert not dest.conditional_put
    assert not dest.conditional_complete


def test_abort_and_abort_token(server: Server) -> None:
    dest = server.dest()
    data = os.urandom(3 * PART)
    upload = dest.start("a", meta=meta_for("a", data), part_size=PART)
    put_parts(upload, data, PART, only=range(2))
    other = dest.start("b", meta=meta_for("b", data), part_size=PART)
    assert sorted(server.uploads()) == sorted([upload.upload_id, other.upload_id])
    upload.abort()
    dest.abort_token("b", other.token)
    assert server.uploads() == []
    upload.abort()  # already gone: fine
    dest.abort_token("b", other.token)
    assert server.keys() == []


def test_upload_gone(rclone: Server, moto: Server) -> None:
    data = os.urandom(2 * PART)
    for server in (rclone, moto):
        dest = server.dest()
        upload = dest.start("g", meta=meta_for("g", data), part_size=PART)
        upload.abort()
        if server.kind == "rclone":
            with pytest.raises(errors.UploadGone):
                put_parts(upload, data, PART, only=range(1))
        else:  # moto answers 500 for an unknown upload id (documented in translate_error)
            with pytest.raises(errors.TransientError):
                put_parts(upload, data, PART, only=range(1))


def test_read_back_verification(server: Server) -> None:
    dest = server.dest(verify_download=True)
    assert dest.caps.can_read_back
    data = os.urandom(2 * PART + 9)
    landed = send(dest, "rb", data)
    assert landed.verify_method.startswith("read-back blake3 + ")
    with dest.open_read("rb") as fh:
        assert fh.read() == data
    meta = meta_for("rb", data)
    upload = dest.start("rb2", meta=meta, part_size=PART)
    receipts = put_parts(upload, data, PART)
    with pytest.raises(errors.IntegrityError, match="read-back"):
        upload.commit(receipts, source_blake3="0" * 64)


# --- keys -----------------------------------------------------------------------------------

# rclone serve s3 merges folders whose names differ only in Unicode normalization (its VFS
# finds the existing one), so the NFC and NFD file names share one NFC folder here.
NAMES = [
    unicodedata.normalize("NFC", "café/é.txt"),
    unicodedata.normalize("NFC", "café/") + unicodedata.normalize("NFD", "é.txt"),
    unicodedata.normalize("NFD", "déjà vu/clip.mov"),
    "with space/a b.txt",
    "odd/#%?+&=.bin",
    "odd/a+b=c&d#e%20f?g;h,i@j$k!l'm(n)o~p*q[r]s.txt",
    "日本語/ファイル.txt",
]


def test_keys_land_exactly(server: Server) -> None:
    dest = server.dest(prefix="k")
    for name in NAMES:
        landed = send(dest, name, name.encode())
        assert landed.target == "k/" + name
    assert server.keys() == sorted("k/" + n for n in NAMES)
    for name in NAMES:
        assert server.body("k/" + name) == name.encode()


def test_long_keys_refused_before_any_request() -> None:
    closed = f"http://{LOCALHOST}:{free_port()}"  # any request would fail as unreachable
    dest = S3Destination(S3Options("b", prefix="p", endpoint_url=closed, access_key="k", secret_key="s"))
    try:
        assert dest.target_for("é" * 511) == "p/" + "é" * 511  # 2 + 1022 = 1024 bytes
        with pytest.raises(errors.KeyRejected, match="1025 bytes"):
            dest.target_for("é" * 511 + "x")
        with pytest.raises(errors.KeyRejected):
            dest.start("x" * 1025, meta=meta_for("x", b"x"), part_size=PART)
        with pytest.raises(errors.KeyRejected, match="UTF-8"):
            dest.target_for("bad\udcff")
    finally:
        dest.close()


def test_prefix_means_a_folder() -> None:
    assert S3Options("b", prefix="raw").prefix == "raw/"
    assert S3Options("b", prefix="raw/").prefix == "raw/"
    assert S3Options("b").prefix == ""


# --- probe ----------------------------------------------------------------------------------


def test_probe_ok_leaves_nothing(server: Server) -> None:
    result = probe(server.options(prefix="p"))
    assert result.ok, result.message
    assert result.problem is None
    assert result.message.startswith("takes writes")
    assert server.keys() == []
    assert server.uploads() == []


@pytest.mark.parametrize(
    ("change", "problem", "words", "cls"),
    [
        ({"secret_key": "wrong"}, "wrong-secret", "secret", errors.BadCredentials),
        ({"access_key": "nobody-knows-me"}, "unknown-key", "access key", errors.BadCredentials),
        (
            {"bucket": "no-such-bucket-here"},
            "no-such-bucket",
            "no such bucket",
            errors.NoSuchBucket,
        ),
    ],
)
def test_probe_failures_on_rclone(
    rclone: Server, change: dict[str, str], problem: str, words: str, cls: type[Exception]
) -> None:
    options = rclone.options(**change)
    result = probe(options)
    assert not result.ok
    assert result.problem == problem
    assert words in result.message.lower()
    dest = S3Destination(options)
    try:  # the same failure through the upload path
        with pytest.raises(cls):
            send(dest, "f", b"data")
    finally:
        dest.close()


def test_probe_access_denied_on_moto(moto: Server, moto_b: MotoBucket) -> None:
    key, secret = moto_b.enable_write_only()
    other = unique_bucket()
    moto_b.client.create_bucket(Bucket=other)
    result = probe(moto.options(bucket=other, access_key=key, secret_key=secret))
    assert result.problem == "access-denied"
    assert "may not write" in result.message
    assert result.hint is not None
    assert "s3:PutObject" in result.hint


def test_probe_with_verify_download_reads_too(moto: Server, moto_b: MotoBucket) -> None:
    """QA: a saved bucket with --verify-download and a key that cannot read was tested ok, and
    every job then failed every read-back. The probe now reads too, and writes nothing more."""
    key, secret = moto_b.enable_write_only()  # PutObject + AbortMultipartUpload
    write_only = moto.options(prefix="p", access_key=key, secret_key=secret)
    assert probe(write_only).ok  # without --verify-download the read is never tried
    result = probe(replace(write_only, verify_download=True))
    assert not result.ok and result.problem == "access-denied", result.message
    assert "cannot read" in result.message and "--verify-download" in result.message
    assert result.hint is not None and "s3:GetObject" in result.hint
    key, secret = moto_b.server.enable_policy(
        moto_b.bucket, ["s3:PutObject", "s3:AbortMultipartUpload", "s3:GetObject"]
    )
    result = probe(moto.options(prefix="p", access_key=key, secret_key=secret, verify_download=True))
    assert result.ok, result.message
    assert "reads" in result.message
    assert moto_b.client.list_objects_v2(Bucket=moto_b.bucket).get("KeyCount") == 0


def test_probe_unreachable() -> None:
    options = S3Options("b", endpoint_url=f"http://{LOCALHOST}:{free_port()}", access_key="k", secret_key="s")
    result = probe(options)
    assert result.problem == "unreachable"
    assert "cannot be reached" in result.message


def test_probe_clock_skew(rclone: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    import botocore.auth

    real = botocore.auth.get_current_datetime

    def skewed(remove_tzinfo: bool = True) -> dt.datetime:
        return real(remove_tzinfo) - dt.timedelta(hours=2)

    monkeypatch.setattr(botocore.auth, "get_current_datetime", skewed)
    result = probe(rclone.options())
    assert result.problem == "clock-skew", result.message
    assert "clock" in result.message


def test_probe_without_credentials() -> None:
    result = probe(S3Options("b", endpoint_url=f"http://{LOCALHOST}:{free_port()}"))
    assert result.problem == "no-credentials"


@dataclass
class TlsServer:
    port: int
    cert: Path
    requests: list[str]


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[TlsServer]:
    """A tiny HTTPS server with a self-signed certificate that answers the probe's two calls."""
    cert_path, key_path = self_signed_cert(tmp_path)
    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self, status: int, body: bytes = b"") -> None:
            seen.append(f"{self.command} {self.path}")
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            self._answer(
                200,
                b"<InitiateMultipartUploadResult><Bucket>b</Bucket><Key>k</Key>"
                b"<UploadId>up-1</UploadId></InitiateMultipartUploadResult>",
            )

        def do_DELETE(self) -> None:
            self._answer(204)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    class Quiet(http.server.ThreadingHTTPServer):
        def handle_error(self, request: Any, client_address: Any) -> None:
            pass  # the failed handshakes are the point of the test

    httpd = Quiet((LOCALHOST, 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True, do_handshake_on_connect=False)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield TlsServer(httpd.server_address[1], cert_path, seen)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def test_probe_tls_failure_and_ca_bundle(tls_server: TlsServer) -> None:
    options = S3Options(
        "b", endpoint_url=f"https://{LOCALHOST}:{tls_server.port}", access_key="k", secret_key="s"
    )
    result = probe(options)
    assert result.problem == "tls", result.message
    assert "TLS" in result.message
    assert result.hint is not None
    assert "ca_bundle" in result.hint
    assert tls_server.requests == []
    trusted = probe(replace(options, ca_bundle=str(tls_server.cert)))
    assert trusted.ok, trusted.message
    post, delete = tls_server.requests
    assert post.startswith("POST /b/.castoff-probe-")
    assert post.endswith("?uploads")
    assert delete.startswith("DELETE /b/.castoff-probe-")
    assert delete.endswith("uploadId=up-1")


# --- faults through the proxy ---------------------------------------------------------------


def test_slow_down_is_throttled_with_retry_after_and_not_retried(
    rclone: Server, fault_proxy: ProxyFactory
) -> None:
    proxy = fault_proxy((LOCALHOST, int(rclone.url.rsplit(":", 1)[1])))
    dest = rclone.dest(endpoint_url=proxy.url)
    data = os.urandom(2 * PART)
    upload = dest.start("s", meta=meta_for("s", data), part_size=PART)
    proxy.respond(503, SLOW_DOWN_XML, headers={"Retry-After": "7"}, match="partNumber=1")
    with pytest.raises(errors.Throttled) as info:
        put_parts(upload, data, PART, only=range(1))
    assert info.value.retry_after == 7.0
    part_requests = [r for r in proxy.requests if "partNumber=1" in r[1]]
    assert len(part_requests) == 1, "botocore must not retry: the engine does"
    upload.abort()


def test_complete_answering_200_with_an_error_fails(rclone: Server, fault_proxy: ProxyFactory) -> None:
    """S3 may answer CompleteMultipartUpload with 200 and an <Error> body; botocore turns that
    into a 500, which castoff reports as a TransientError, never as success."""
    proxy = fault_proxy((LOCALHOST, int(rclone.url.rsplit(":", 1)[1])))
    dest = rclone.dest(endpoint_url=proxy.url)
    data = os.urandom(2 * PART)
    meta = meta_for("c", data)
    upload = dest.start("c", meta=meta, part_size=PART)
    receipts = put_parts(upload, data, PART)
    proxy.respond(200, INTERNAL_ERROR_XML, method="POST", match="uploadId=")
    with pytest.raises(errors.TransientError):
        upload.commit(receipts, source_blake3=meta.blake3 or "")
    landed = upload.commit(receipts, source_blake3=meta.blake3 or "")  # the retry lands it
    assert landed.etag == multipart_etag(data, PART)


def test_dropped_connection_is_transient(rclone: Server, fault_proxy: ProxyFactory) -> None:
    proxy = fault_proxy((LOCALHOST, int(rclone.url.rsplit(":", 1)[1])))
    dest = rclone.dest(endpoint_url=proxy.url)
    data = os.urandom(3 * PART)
    meta = meta_for("d", data)
    upload = dest.start("d", meta=meta, part_size=PART)
    proxy.drop_after(100, match="partNumber=2")
    with pytest.raises(errors.TransientError):
        put_parts(upload, data, PART, only=range(1, 2))
    receipts = put_parts(upload, data, PART)  # the engine's retry: the part again, then all
    landed = upload.commit(receipts, source_blake3=meta.blake3 or "")
    assert rclone.body("d") == data
    assert landed.etag == multipart_etag(data, PART)


def test_only_writes_go_out_on_the_normal_path(rclone: Server, fault_proxy: ProxyFactory) -> None:
    """No List, Get, Head, ListParts or Delete: a write-only key is enough."""
    proxy = fault_proxy((LOCALHOST, int(rclone.url.rsplit(":", 1)[1])))
    dest = rclone.dest(endpoint_url=proxy.url)
    send(dest, "one", b"small")
    send(dest, "many", os.urandom(2 * PART + 1))
    data = os.urandom(2 * PART)
    dropped = dest.start("dropped", meta=meta_for("dropped", data), part_size=PART)
    put_parts(dropped, data, PART, only=range(1))
    dropped.abort()
    seen = {
        (method, "?" + target.split("?")[1] if "?" in target else "") for method, target in proxy.requests
    }
    assert {m for m, _ in seen} <= {"PUT", "POST", "DELETE"}  # no GET or HEAD at all
    assert all("uploadId=" in q for m, q in seen if m == "DELETE")  # abort only, never an object


# --- the AWS chain ----------------------------------------------------------------------------


@pytest.mark.parametrize("variable", ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"])
def test_endpoint_and_keys_from_the_environment(
    rclone: Server, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, rclone.url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", rclone.key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", rclone.secret)
    dest = S3Destination(S3Options(rclone.bucket))
    try:
        assert dest.endpoint_url == rclone.url
        assert dest.provider.name == "other"  # guessed from the host botocore resolved
        assert dest.checksum_mode == "when_required"
        dest.preflight()
        send(dest, "env", b"from the environment")
    finally:
        dest.close()
    assert rclone.body("env") == b"from the environment"


def test_profile_from_shared_files(rclone: Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    creds = tmp_path / "credentials"
    creds.write_text(
        f"[castoff-test]\naws_access_key_id = {rclone.key}\naws_secret_access_key = {rclone.secret}\n"
    )
    config = tmp_path / "config"
    config.write_text(f"[profile castoff-test]\nregion = eu-west-1\nendpoint_url = {rclone.url}\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(creds))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    dest = S3Destination(S3Options(rclone.bucket, profile="castoff-test"))
    try:
        assert dest.region == "eu-west-1"
        send(dest, "profiled", b"via a profile")
    finally:
        dest.close()
    assert rclone.body("profiled") == b"via a profile"
    with pytest.raises(errors.UsageError):
        S3Destination(S3Options(rclone.bucket, profile="no-such-profile"))


def test_preflight_without_credentials_is_plain() -> None:
    dest = S3Destination(S3Options("b", endpoint_url=f"http://{LOCALHOST}:{free_port()}"))
    try:
        with pytest.raises(errors.BadCredentials, match="no credentials"):
            dest.preflight()
    finally:
        dest.close()


# --- what the engine and the report see --------------------------------------------------------


def test_capabilities_ident_and_name(rclone: Server) -> None:
    dest = rclone.dest(prefix="raw", max_parallel_parts=6)
    assert isinstance(dest, Destination)
    caps = dest.caps
    assert (caps.kind, caps.is_local, caps.can_read_back, caps.can_stat) == (
        "s3",
        False,
        False,
        False,
    )
    assert caps.needs_md5
    assert caps.resumable
    assert caps.needs_hash_at_start
    assert not caps.commit_can_retarget
    assert caps.concurrency == 6
    assert caps.single_put_max == PART
    assert caps.min_part_size == 1  # provider=rclone: no minimum part size
    assert caps.max_parts == 10_000
    assert caps.max_key_bytes == 1024
    assert dest.name == f"s3://{rclone.bucket}/raw"
    assert dest.ident == f"s3:{rclone.url}/{rclone.bucket}/raw/"
    assert rclone.secret not in repr(dest.options)
    assert rclone.key not in repr(dest.options)
    assert S3Destination(rclone.options(prefix="raw/")).ident == dest.ident


def test_metadata_over_the_limit_keeps_castoffs_own(moto: Server) -> None:
    dest = moto.dest()
    extra = {"note": "ü" * 100, "big": "x" * 3000, "small": "kept"}
    landed = send(dest, "meta", b"payload", **extra)
    meta = moto.metadata("meta")
    assert {META_BLAKE3, META_MTIME, META_MD5, "note", "small"} <= set(meta)
    assert "big" not in meta
    assert base64.b64decode(meta["note"].split("?")[3]).decode() == "ü" * 100
    assert landed.detail is not None
    assert "big" in landed.detail


# --- rclone reads what castoff writes -----------------------------------------------------------


def test_rclone_reads_our_mtime_and_md5(moto: Server) -> None:
    """rclone, as a client, sees castoff's mtime to the nanosecond and the whole-file MD5 of a
    multipart object (from md5chksum, since the ETag is not an MD5)."""
    data = os.urandom(3 * PART + 1)
    send(moto.dest(), "dir/file.bin", data)
    exe = Path(sys.executable).with_name("rclone")
    remote = (
        f":s3,provider=Other,endpoint='{moto.url}',access_key_id={moto.key},"
        f"secret_access_key={moto.secret},region=us-east-1:{moto.bucket}/dir"
    )
    out = subprocess.run(
        [str(exe), "--config", "/dev/null", "lsjson", "--hash", "--hash-type", "MD5", remote],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("RCLONE_")},
    )
    (entry,) = json.loads(out.stdout)
    assert entry["ModTime"] == "2023-11-14T22:13:20.123456789Z"
    assert entry["Hashes"]["md5"] == md5_hex(data)
    assert rclone_mtime(MTIME_NS) == "1700000000.123456789"


# --- options from a URL -------------------------------------------------------------------------


def test_parse_s3_url_reads_every_option() -> None:
    spec = (
        "s3://bucket/raw shoots/a#b%20c?endpoint=http://127.0.0.1:9000&region=eu-west-1"
        "&storage_class=glacier_ir&sse=aws:kms&sse_kms_key_id=arn:aws:kms:eu-west-1:1:key/ab"
        "&addressing=path&profile=x&part_size=64MiB&max_parallel=8&checksums=when_supported"
        "&provider=aws&verify_download=yes&ca_bundle=/etc/ca.pem&conditional=auto"
    )
    o = parse_s3_url(spec)
    assert (o.bucket, o.prefix) == ("bucket", "raw shoots/a#b%20c/")
    assert o.endpoint_url == "http://127.0.0.1:9000"
    assert (o.region, o.storage_class, o.sse) == ("eu-west-1", "GLACIER_IR", "aws:kms")
    assert o.sse_kms_key_id == "arn:aws:kms:eu-west-1:1:key/ab"
    assert (o.addressing_style, o.profile, o.provider) == ("path", "x", "aws")
    assert (o.part_size, o.max_parallel_parts) == (64 * 1024 * 1024, 8)
    assert (o.checksum_mode, o.verify_download, o.ca_bundle) == (
        "when_supported",
        True,
        "/etc/ca.pem",
    )
    assert o.conditional_writes is None


def test_small_objects_may_go_wider_than_parts(rclone: Server) -> None:
    """``max_parallel_small``: more small objects in flight than big parts (a lane's workers);
    by default four times ``max_parallel``; never fewer than it."""
    o = parse_s3_url("s3://b/p?max_parallel=3&max_parallel_small=16")
    assert (o.max_parallel_parts, o.max_parallel_small) == (3, 16)
    assert rclone.dest(max_parallel_parts=3, max_parallel_small=16).caps.small_concurrency == 16
    assert rclone.dest(max_parallel_parts=3).caps.small_concurrency == 12
    assert rclone.dest().caps.small_concurrency == 16
    assert rclone.dest(max_parallel_parts=3, max_parallel_small=2).caps.small_concurrency == 3
    with pytest.raises(errors.UsageError, match="max_parallel_small"):
        parse_s3_url("s3://b/p?max_parallel_small=0")


def test_parse_s3_url_takes_defaults_as_a_mapping() -> None:
    o = parse_s3_url("s3://b/p", {"region": "eu-west-1", "profile": "x", "endpoint_url": None})
    assert (o.bucket, o.prefix, o.region, o.profile) == ("b", "p/", "eu-west-1", "x")
    with pytest.raises(errors.UsageError, match="colour"):
        parse_s3_url("s3://b/", {"colour": "red"})


def test_parse_s3_url_keeps_defaults_and_masks_secrets() -> None:
    defaults = S3Options("", access_key="AKIAEXAMPLEKEY", secret_key="s3cr3t", max_parallel_parts=2)
    o = parse_s3_url("s3://b?checksums=auto&sse=sse-s3&conditional=off", defaults)
    assert (o.bucket, o.prefix, o.max_parallel_parts) == ("b", "", 2)
    assert (o.checksum_mode, o.sse, o.conditional_writes) == (None, "AES256", False)
    assert o.secret_key == "s3cr3t"
    shown = repr(o) + str(o)
    assert "s3cr3t" not in shown
    assert "AKIAEXAMPLEKEY" not in shown
    assert "AKIA…" in shown


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("gs://bucket/", "not an S3 destination"),
        ("s3:///prefix", "no valid bucket"),
        ("s3://b/?colour=red", "unknown S3 option 'colour'"),
        ("s3://b/?part_size=12Q", "not a size"),
        ("s3://b/?part_size=0", "part_size"),
        ("s3://b/?part_size=6GiB", "out of range"),
        ("s3://b/?max_parallel=0", "max_parallel"),
        ("s3://b/?storage_class=FROZEN", "storage class 'FROZEN'"),
        ("s3://b/?provider=b2&region=us-west-004&storage_class=GLACIER", "Backblaze B2"),
        ("s3://b/?region=a&region=b", "twice"),
        ("s3://b/?verify_download=maybe", "verify_download"),
        ("s3://b/?sse=rot13", "sse"),
        ("s3://b/?sse_kms_key_id=k", "needs sse=aws:kms"),
        ("s3://b/?endpoint=ftp://host", "bad endpoint"),
        ("s3://b/?endpoint=http://user:pw@host", "credentials in the endpoint"),
        ("s3://b/?provider=acme", "unknown S3 provider"),
        ("s3://b/?checksums=sometimes", "checksums"),
        ("s3://b/?addressing=dns", "addressing"),
    ],
)
def test_parse_s3_url_errors(spec: str, words: str) -> None:
    with pytest.raises(errors.UsageError) as info:
        parse_s3_url(spec)
    assert words in str(info.value)


def test_a_bucket_name_botocore_refuses_is_refused_up_front() -> None:
    """QA: ``s3://bk:t2/`` only warned, then botocore refused it per file with a traceback. Every
    name botocore's own check (VALID_BUCKET) refuses is refused when the options are read."""
    from botocore.handlers import VALID_BUCKET

    names = [f"ab{chr(c)}cd" for c in range(0, 128)] + ["a" * 255, "a" * 256, "Old_Bucket.x-1", "ab\n"]
    for name in names:
        if VALID_BUCKET.search(name) is None or name.endswith("\n"):  # its $ lets a last \n by
            with pytest.raises(errors.UsageError, match="bad bucket name"):
                check_bucket_chars(name)
        else:
            check_bucket_chars(name)
    for spec in ("s3://bk:t2/raw/", "s3://b!x/", "s3://b%20x/?endpoint=http://127.0.0.1:9"):
        with pytest.raises(errors.UsageError, match="bad bucket name"):
            parse_s3_url(spec)


@pytest.mark.parametrize(
    "spec",
    [
        "s3://KEYID:SECRET-IN-URL@bkt2/q/?endpoint=http://127.0.0.1:9",
        "s3://SECRET-IN-URL@bkt2/",
        "s3://KEYID:SECRET-IN-URL@bkt2",
    ],
)
def test_keys_in_an_s3_url_are_refused_and_never_shown(spec: str) -> None:
    with pytest.raises(errors.UsageError) as info:
        parse_s3_url(spec)
    assert "credentials in the s3:// URL are not accepted" in info.value.message
    assert "SECRET-IN-URL" not in info.value.message + (info.value.hint or "")
    assert "s3://***@bkt2" in info.value.message
    assert "SECRET-IN-URL" not in shown(spec) and "***@" in shown(spec)


def test_unknown_option_lists_the_valid_ones() -> None:
    with pytest.raises(errors.UsageError) as info:
        parse_s3_url("s3://b/?endpiont=x")
    assert info.value.hint is not None
    for name in ("endpoint", "region", "storage_class", "part_size", "checksums", "provider"):
        assert name in info.value.hint


# --- metadata -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (0, "0"),
        (1, "0.000000001"),
        (10**9, "1"),
        (1_500_000_000, "1.5"),
        (MTIME_NS, "1700000000.123456789"),
        (1_700_000_000_100_000_000, "1700000000.1"),
        (1_700_000_000_000_000_000, "1700000000"),
        (-1, "-0.000000001"),
        (-1_500_000_000, "-1.5"),
    ],
)
def test_rclone_mtime_table(ns: int, text: str) -> None:
    assert rclone_mtime(ns) == text


def rclone_parse(text: str) -> int:
    """rclone's floatStringToNs (lib swift), the reader castoff's mtime must satisfy."""
    zeros = "000000000"
    point = text.find(".")
    if point >= 0:
        tail = text[point + 1 :]
        tail = tail[:9] if len(tail) > 9 else tail + zeros[: 9 - len(tail)]
        text = text[:point] + tail
    else:
        text += zeros
    return int(text)


@given(st.integers(min_value=-(2**62), max_value=2**62))
def test_rclone_mtime_round_trips_exactly(ns: int) -> None:
    text = rclone_mtime(ns)
    assert rclone_parse(text) == ns
    assert Decimal(text) * 10**9 == ns
    assert "e" not in text
    assert not (text.endswith("0") and "." in text)


def test_metadata_keeps_castoffs_keys_and_encodes_what_headers_cannot_carry() -> None:
    meta = ObjectMeta("f", 1, MTIME_NS, 0, blake3="AB" * 32, md5="00" * 16, extra={
        "Mode": "0644", "note": "naïve\nline", "bad key": "x", "mtime": "1", "ok": "plain",
    })  # fmt: skip
    metadata, notes = build_metadata(meta, 2048)
    assert metadata[META_BLAKE3] == "ab" * 32
    assert metadata[META_MTIME] == "1700000000.123456789"
    assert metadata[META_MD5] == base64.b64encode(bytes(16)).decode()
    assert metadata["mode"] == "0644"
    assert metadata["ok"] == "plain"
    encoded = metadata["note"]
    assert encoded.startswith("=?UTF-8?B?")
    assert base64.b64decode(encoded[10:-2]).decode() == "naïve\nline"
    assert "bad key" not in metadata
    assert sum("left out" in n for n in notes) == 2  # 'bad key' and the clash with 'mtime'


def test_metadata_without_hashes_says_so() -> None:
    metadata, notes = build_metadata(ObjectMeta("f", 1, 0, 0), 2048)
    assert set(metadata) == {META_MTIME}
    assert any("blake3" in n for n in notes)


@given(
    extra=st.dictionaries(
        st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=40),
        st.text(max_size=400),
        max_size=12,
    ),
    limit=st.integers(min_value=160, max_value=8192),
)
def test_metadata_always_fits_and_never_drops_castoffs_keys(extra: dict[str, str], limit: int) -> None:
    meta = ObjectMeta("f", 1, MTIME_NS, 0, blake3="a" * 64, md5="b" * 32, extra=extra)
    metadata, notes = build_metadata(meta, limit)
    assert metadata_bytes(metadata) <= limit
    assert {META_BLAKE3, META_MTIME, META_MD5} <= set(metadata)
    kept = [k for k in metadata if k not in (META_BLAKE3, META_MTIME, META_MD5)]
    assert kept == [k for k in extra if k in kept]  # in the caller's order
    assert all(v.isascii() and v.isprintable() for v in metadata.values())
    left_out = [k for k in extra if k not in metadata]
    assert all(any(k in n for n in notes) for k in left_out)


# --- error translation ----------------------------------------------------------------------


def client_error(code: str, status: int, message: str = "m", **headers: str) -> ClientError:
    response: Any = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": headers},
    }
    return ClientError(response, "UploadPart")


@pytest.mark.parametrize(
    ("code", "status", "cls"),
    [
        ("AccessDenied", 403, errors.AccessDenied),
        ("NoSuchBucket", 404, errors.NoSuchBucket),
        ("InvalidAccessKeyId", 403, errors.BadCredentials),
        ("SignatureDoesNotMatch", 403, errors.BadCredentials),
        ("RequestTimeTooSkewed", 403, errors.ClockSkew),
        ("SlowDown", 503, errors.Throttled),
        ("TooManyRequests", 429, errors.Throttled),
        ("ServiceUnavailable", 503, errors.Throttled),
        ("", 503, errors.Throttled),
        ("InternalError", 500, errors.TransientError),
        ("500", 500, errors.TransientError),  # moto, for an unknown upload id
        ("RequestTimeout", 400, errors.TransientError),
        ("BadDigest", 400, errors.BadDigest),
        ("InvalidDigest", 400, errors.BadDigest),
        ("NoSuchUpload", 404, errors.UploadGone),
        ("InvalidPart", 400, errors.IntegrityError),
        ("PreconditionFailed", 412, TargetExists),
        ("EntityTooSmall", 400, errors.PermanentError),
        ("KeyTooLongError", 400, errors.KeyRejected),
        ("NotImplemented", 501, errors.PermanentError),
        ("Forbidden", 403, errors.AccessDenied),
    ],
)
def test_client_errors_translate(code: str, status: int, cls: type[BaseException]) -> None:
    exc = client_error(code, status)
    mapped = translate_error(exc, bucket="b", key="k")
    assert type(mapped) is cls
    if isinstance(mapped, TargetExists):
        assert mapped.target == "k"


def test_unknown_errors_come_back_unchanged() -> None:
    odd = client_error("SomethingNew", 400)
    assert translate_error(odd, bucket="b") is odd
    plain = ValueError("not ours")
    assert translate_error(plain, bucket="b") is plain


def test_retry_after_in_seconds_or_as_a_date() -> None:
    seconds = translate_error(client_error("SlowDown", 503, **{"retry-after": "3"}), bucket="b")
    assert isinstance(seconds, errors.Throttled)
    assert seconds.retry_after == 3.0
    later = email.utils.format_datetime(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30), usegmt=True)
    dated = translate_error(client_error("SlowDown", 503, **{"retry-after": later}), bucket="b")
    assert isinstance(dated, errors.Throttled)
    assert dated.retry_after is not None
    assert 20 < dated.retry_after <= 30
    junk = translate_error(client_error("SlowDown", 503, **{"retry-after": "soon"}), bucket="b")
    assert isinstance(junk, errors.Throttled)
    assert junk.retry_after is None


def test_rclone_clock_skew_answer_is_clock_skew() -> None:
    said = "The difference between the request time and the server's time exceeds the maximum allowed."
    assert isinstance(translate_error(client_error("AccessDenied", 400, said), bucket="b"), errors.ClockSkew)


@pytest.mark.parametrize(
    ("exc", "cls", "words"),
    [
        (
            bx.EndpointConnectionError(endpoint_url="http://h:9/b/k"),
            errors.TransientError,
            "endpoint http://h:9 unr",
        ),
        (
            bx.ConnectTimeoutError(endpoint_url="http://h:9/b/k"),
            errors.TransientError,
            "endpoint http://h:9 unr",
        ),
        (bx.ReadTimeoutError(endpoint_url="http://h"), errors.TransientError, "in time"),
        (bx.ConnectionClosedError(endpoint_url="http://h"), errors.TransientError, "connection"),
        (bx.SSLError(endpoint_url="https://h", error="bad cert"), errors.TlsFailure, "TLS"),
        (
            bx.SSLError(
                endpoint_url="https://h:9000/b/k",
                error="[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)",
            ),
            errors.TlsFailure,
            "https://h:9000 does not speak TLS, it answers in plain HTTP",
        ),
        (
            bx.SSLError(
                endpoint_url="https://h/b/k",
                error="[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate"
                " (_ssl.c:1006)",
            ),
            errors.TlsFailure,
            "the certificate of https://h is not trusted (self-signed certificate)",
        ),
        (
            bx.SSLError(
                endpoint_url="https://h/b/k", error="EOF occurred in violation of protocol (_ssl.c:2427)"
            ),
            errors.TransientError,
            "lost during the TLS handshake",
        ),
        (bx.NoCredentialsError(), errors.BadCredentials, "credentials"),
        (  # QA: surfaced as an "internal error" with a traceback when raised inside a job
            bx.ParamValidationError(report="Invalid length for parameter Key, value: 0"),
            errors.PermanentError,
            "not sent to s3://b/k: botocore refused the request (Parameter validation failed:"
            " Invalid length for parameter Key, value: 0)",
        ),
    ],
)
def test_transport_errors_translate(exc: Exception, cls: type[Exception], words: str) -> None:
    mapped = translate_error(exc, bucket="b", key="k")
    assert type(mapped) is cls
    assert words in str(mapped)
    assert "_ssl.c" not in str(mapped)
    if "plain HTTP" in words:  # the advice: the same host and port, over http://
        assert "write the endpoint as http://h:9000" in str(mapped)
    if "not trusted" in words:
        assert "ca_bundle=PATH" in str(mapped)
