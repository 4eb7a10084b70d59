"""Proof that the test servers and the fault proxy behave as tests/servers.py promises."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil  # type: ignore[import-untyped]
import pytest
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ResponseStreamingError,
)

from servers import (
    INTERNAL_ERROR_XML,
    SLOW_DOWN_XML,
    FaultProxy,
    MotoServer,
    RcloneServer,
    live_pids,
    s3_client,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

    from server_fixtures import MotoBucket, ProxyFactory, RcloneBucket

# The lead's conftest loads this too; loading a plugin twice is a no-op.
pytest_plugins = ["server_fixtures"]

TESTS_DIR = Path(__file__).resolve().parent
# botocore's retries={"max_attempts": N} means N *retries* (N + 1 attempts in total).
ONE_RETRY = Config(retries={"max_attempts": 1})
NO_RETRY = Config(retries={"total_max_attempts": 1})


def md5_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code"))


def pid_gone(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


def proxied(target: MotoBucket | RcloneBucket, proxy: FaultProxy, config: Config | None = None) -> S3Client:
    """A client for `target`'s admin key that talks through `proxy`."""
    server = target.server
    if isinstance(server, MotoServer):
        key, secret = server.admin_key
    else:
        key, secret = server.access_key, server.secret_key
    return s3_client(proxy.url, key, secret, config=config)


def keys(s3: S3Client, bucket: str) -> list[str]:
    """The keys in `bucket` (rclone omits KeyCount from an empty listing)."""
    return [obj["Key"] for obj in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]


@pytest.fixture(params=["moto", "rclone_s3"])
def any_s3(request: pytest.FixtureRequest) -> MotoBucket | RcloneBucket:
    target: MotoBucket | RcloneBucket = request.getfixturevalue(request.param)
    return target


# ------------------------------------------------------------------------------------------
# Both servers
# ------------------------------------------------------------------------------------------


def test_put_with_content_md5_round_trips(any_s3: MotoBucket | RcloneBucket) -> None:
    data = os.urandom(50_000)
    s3 = any_s3.client
    put = s3.put_object(Bucket=any_s3.bucket, Key="dir/obj", Body=data, ContentMD5=md5_b64(data))
    assert put["ETag"] == f'"{md5_hex(data)}"'
    got = s3.get_object(Bucket=any_s3.bucket, Key="dir/obj")
    assert got["Body"].read() == data
    assert got["ETag"] == put["ETag"]


def test_admin_client_settings(any_s3: MotoBucket | RcloneBucket) -> None:
    config: Any = any_s3.client.meta.config  # botocore sets these attributes dynamically
    assert any_s3.client.meta.endpoint_url == any_s3.url
    assert any_s3.url.startswith("http://127.0.0.1:")
    assert config.s3 == {"addressing_style": "path"}
    assert config.signature_version == "s3v4"
    assert config.region_name == "us-east-1"
    assert config.request_checksum_calculation == "when_required"
    assert config.response_checksum_validation == "when_required"


# ------------------------------------------------------------------------------------------
# rclone
# ------------------------------------------------------------------------------------------


def test_rclone_rejects_wrong_content_md5(rclone_s3: RcloneBucket) -> None:
    s3 = rclone_s3.client
    with pytest.raises(ClientError) as info:
        s3.put_object(Bucket=rclone_s3.bucket, Key="bad", Body=b"payload", ContentMD5=md5_b64(b"other"))
    assert error_code(info.value) == "BadDigest"
    assert keys(s3, rclone_s3.bucket) == []


def test_rclone_rejects_wrong_secret(rclone_s3: RcloneBucket) -> None:
    s3 = s3_client(rclone_s3.url, rclone_s3.access_key, "not-the-secret", config=NO_RETRY)
    with pytest.raises(ClientError) as info:
        s3.list_objects_v2(Bucket=rclone_s3.bucket)
    assert error_code(info.value) == "SignatureDoesNotMatch"


def test_rclone_kill_and_restart_keep_completed_objects(tmp_path: Path) -> None:
    data = os.urandom(300_000)
    with RcloneServer(tmp_path / "data") as server:
        server.create_bucket("keep")
        s3 = server.admin_client(config=NO_RETRY)
        s3.put_object(Bucket="keep", Key="single", Body=data, ContentMD5=md5_b64(data))
        upload = s3.create_multipart_upload(Bucket="keep", Key="multi")["UploadId"]
        parts: list[CompletedPartTypeDef] = []
        for number, chunk in enumerate((data[:200_000], data[200_000:]), start=1):
            etag = s3.upload_part(Bucket="keep", Key="multi", UploadId=upload, PartNumber=number, Body=chunk)[
                "ETag"
            ]
            parts.append({"ETag": etag, "PartNumber": number})
        s3.complete_multipart_upload(
            Bucket="keep", Key="multi", UploadId=upload, MultipartUpload={"Parts": parts}
        )
        port, old_pid = server.port, server.pid
        assert old_pid is not None

        server.kill()
        assert not server.is_running()
        assert pid_gone(old_pid)
        assert old_pid not in live_pids()
        assert (tmp_path / "data" / "keep" / "single").exists()

        server.restart()
        assert server.port == port
        assert server.pid != old_pid
        s3 = server.admin_client(config=NO_RETRY)
        assert s3.get_object(Bucket="keep", Key="single")["Body"].read() == data
        assert s3.get_object(Bucket="keep", Key="multi")["Body"].read() == data
        # rclone: a multipart object's HEAD ETag is the whole-object MD5, not "...-2".
        assert s3.head_object(Bucket="keep", Key="multi")["ETag"] == f'"{md5_hex(data)}"'
        log = server.log_path
        assert log is not None
        assert log.read_text().count("=== rclone:") == 2
    assert not log.exists()
    assert (tmp_path / "data" / "keep" / "single").exists()  # a caller's data dir is kept


# ------------------------------------------------------------------------------------------
# moto
# ------------------------------------------------------------------------------------------


def test_moto_write_only_key(moto: MotoBucket) -> None:
    key, secret = moto.enable_write_only()
    writer = moto.server.client(key, secret, config=NO_RETRY)
    bucket = moto.bucket
    data = os.urandom(5 * 1024 * 1024 + 10)

    writer.put_object(Bucket=bucket, Key="plain", Body=b"hello", ContentMD5=md5_b64(b"hello"))
    upload = writer.create_multipart_upload(Bucket=bucket, Key="multi")["UploadId"]
    parts: list[CompletedPartTypeDef] = []
    for number, chunk in enumerate((data[: 5 * 1024 * 1024], data[5 * 1024 * 1024 :]), start=1):
        etag = writer.upload_part(Bucket=bucket, Key="multi", UploadId=upload, PartNumber=number, Body=chunk)[
            "ETag"
        ]
        parts.append({"ETag": etag, "PartNumber": number})
    done = writer.complete_multipart_upload(
        Bucket=bucket, Key="multi", UploadId=upload, MultipartUpload={"Parts": parts}
    )
    assert done["ETag"].strip('"').endswith("-2")
    aborted = writer.create_multipart_upload(Bucket=bucket, Key="aborted")["UploadId"]
    writer.abort_multipart_upload(Bucket=bucket, Key="aborted", UploadId=aborted)

    for call in (
        lambda: writer.get_object(Bucket=bucket, Key="plain"),
        lambda: writer.head_object(Bucket=bucket, Key="plain"),  # HEAD: no body, code "403"
        lambda: writer.list_objects_v2(Bucket=bucket),
        lambda: writer.list_parts(Bucket=bucket, Key="multi", UploadId=upload),
        lambda: writer.put_object(Bucket="some-other-bucket", Key="x", Body=b"x"),
    ):
        with pytest.raises(ClientError) as info:
            call()
        assert error_code(info.value) in {"AccessDenied", "403"}
        assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403

    # The admin key still sees everything; unsigned-by-IAM keys do not.
    admin = moto.client
    assert admin.get_object(Bucket=bucket, Key="multi")["Body"].read() == data
    assert admin.head_object(Bucket=bucket, Key="multi")["ETag"] == done["ETag"]
    anybody = moto.server.client(*MotoServer.ANY_KEY, config=NO_RETRY)
    with pytest.raises(ClientError) as info:
        anybody.list_objects_v2(Bucket=bucket)
    assert error_code(info.value) == "InvalidAccessKeyId"


def test_moto_reset_with_auth_on(moto: MotoBucket) -> None:
    moto.enable_write_only()
    admin = moto.admin_client(config=NO_RETRY)
    # moto's own reset wipes the IAM users but leaves enforcement on: everyone is locked out.
    moto.server.moto_api("/moto-api/reset")
    with pytest.raises(ClientError) as info:
        admin.list_buckets()
    assert error_code(info.value) == "InvalidAccessKeyId"
    # MotoServer.reset() switches enforcement off as well: any key works again.
    moto.server.reset()
    assert not moto.server.auth_enabled
    assert moto.server.admin_key == MotoServer.ANY_KEY
    assert moto.client.list_buckets()["Buckets"] == []


def test_moto_disable_auth(moto: MotoBucket) -> None:
    moto.enable_write_only()
    moto.server.disable_auth()
    anybody = moto.server.client("whoever", "whatever", config=NO_RETRY)
    anybody.put_object(Bucket=moto.bucket, Key="k", Body=b"v")
    assert anybody.get_object(Bucket=moto.bucket, Key="k")["Body"].read() == b"v"


def test_moto_part_min_size() -> None:
    with MotoServer(part_min_size=1024) as server:
        server.create_bucket("small-parts")
        s3 = server.admin_client(config=NO_RETRY)

        def upload(first_part: bytes) -> None:
            upload_id = s3.create_multipart_upload(Bucket="small-parts", Key="k")["UploadId"]
            parts: list[CompletedPartTypeDef] = []
            for number, chunk in enumerate((first_part, b"tail"), start=1):
                etag = s3.upload_part(
                    Bucket="small-parts", Key="k", UploadId=upload_id, PartNumber=number, Body=chunk
                )["ETag"]
                parts.append({"ETag": etag, "PartNumber": number})
            s3.complete_multipart_upload(
                Bucket="small-parts", Key="k", UploadId=upload_id, MultipartUpload={"Parts": parts}
            )

        upload(b"a" * 1024)
        with pytest.raises(ClientError) as info:
            upload(b"a" * 1023)
        assert error_code(info.value) == "EntityTooSmall"


# ------------------------------------------------------------------------------------------
# Fault proxy
# ------------------------------------------------------------------------------------------


def test_proxy_counts_bytes_and_keeps_connections_alive(
    rclone_s3: RcloneBucket, fault_proxy: ProxyFactory
) -> None:
    proxy = fault_proxy(rclone_s3)
    s3 = proxied(rclone_s3, proxy, NO_RETRY)
    data = os.urandom(100_000)
    bucket = rclone_s3.bucket
    s3.put_object(Bucket=bucket, Key="a", Body=data, ContentMD5=md5_b64(data))
    s3.put_object(Bucket=bucket, Key="b", Body=b"12345")
    assert s3.head_object(Bucket=bucket, Key="a")["ContentLength"] == len(data)
    assert s3.get_object(Bucket=bucket, Key="a")["Body"].read() == data
    assert keys(s3, bucket) == ["a", "b"]
    assert proxy.bytes_up == len(data) + 5
    assert proxy.bytes_down > len(data)
    assert [m for m, _ in proxy.requests] == ["PUT", "PUT", "HEAD", "GET", "GET"]
    assert proxy.requests[0] == ("PUT", f"/{bucket}/a")
    assert "list-type=2" in proxy.requests[4][1]
    # botocore sends Expect: 100-continue on PutObject; rclone's 100 was relayed each time.
    assert proxy.continues == 2
    assert proxy.connections == 1  # one keep-alive connection carried all five requests


def test_proxy_against_moto_closes_like_moto(moto: MotoBucket, fault_proxy: ProxyFactory) -> None:
    proxy = fault_proxy(moto)
    s3 = proxied(moto, proxy, NO_RETRY)
    data = os.urandom(20_000)
    s3.put_object(Bucket=moto.bucket, Key="k", Body=data, ContentMD5=md5_b64(data))
    assert s3.get_object(Bucket=moto.bucket, Key="k")["Body"].read() == data
    assert proxy.bytes_up == len(data)
    assert proxy.continues == 1
    # Werkzeug (moto_server) answers every request with "Connection: close".
    assert proxy.connections == 2


def test_proxy_corrupt_byte_gives_bad_digest(rclone_s3: RcloneBucket, fault_proxy: ProxyFactory) -> None:
    proxy = fault_proxy(rclone_s3)
    s3 = proxied(rclone_s3, proxy, NO_RETRY)
    data = os.urandom(70_000)
    proxy.corrupt_byte(65_000, match="/victim")
    with pytest.raises(ClientError) as info:
        s3.put_object(Bucket=rclone_s3.bucket, Key="victim", Body=data, ContentMD5=md5_b64(data))
    assert error_code(info.value) == "BadDigest"
    assert proxy.fired == [("corrupt_byte", "PUT", f"/{rclone_s3.bucket}/victim")]
    # Disarmed after one use: the same upload now goes through untouched.
    s3.put_object(Bucket=rclone_s3.bucket, Key="victim", Body=data, ContentMD5=md5_b64(data))
    assert rclone_s3.client.get_object(Bucket=rclone_s3.bucket, Key="victim")["Body"].read() == data


def test_proxy_corrupt_byte_without_md5_is_stored_corrupted(
    rclone_s3: RcloneBucket, fault_proxy: ProxyFactory
) -> None:
    proxy = fault_proxy(rclone_s3)
    s3 = proxied(rclone_s3, proxy, NO_RETRY)
    proxy.corrupt_byte(3)
    s3.put_object(Bucket=rclone_s3.bucket, Key="k", Body=b"\x00" * 8)
    stored = rclone_s3.client.get_object(Bucket=rclone_s3.bucket, Key="k")["Body"].read()
    assert stored == b"\x00\x00\x00\xff\x00\x00\x00\x00"


def test_proxy_respond_slow_down(any_s3: MotoBucket | RcloneBucket, fault_proxy: ProxyFactory) -> None:
    proxy = fault_proxy(any_s3)
    proxy.respond(503, SLOW_DOWN_XML, headers={"Retry-After": "1"}, method="PUT", times=2)
    s3 = proxied(any_s3, proxy, ONE_RETRY)
    with pytest.raises(ClientError) as info:
        s3.put_object(Bucket=any_s3.bucket, Key="k", Body=b"data")
    assert error_code(info.value) == "SlowDown"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert info.value.response["ResponseMetadata"]["HTTPHeaders"]["retry-after"] == "1"
    # max_attempts=1 is one *retry*: both attempts met the canned 503, none reached the server.
    assert proxy.requests == [("PUT", f"/{any_s3.bucket}/k")] * 2
    assert proxy.bytes_up == 0
    assert proxy.pending_faults == 0
    assert keys(any_s3.client, any_s3.bucket) == []


def test_proxy_respond_without_retries_and_keep_alive(
    rclone_s3: RcloneBucket, fault_proxy: ProxyFactory
) -> None:
    proxy = fault_proxy(rclone_s3)
    s3 = proxied(rclone_s3, proxy, NO_RETRY)
    proxy.respond(500, INTERNAL_ERROR_XML, method="GET", match="list-type")
    with pytest.raises(ClientError) as info:
        s3.list_objects_v2(Bucket=rclone_s3.bucket)
    assert error_code(info.value) == "InternalError"
    assert keys(s3, rclone_s3.bucket) == []
    assert len(proxy.requests) == 2
    assert proxy.connections == 1  # a canned answer to a body-less request keeps the connection


def test_proxy_500_then_retry_succeeds(rclone_s3: RcloneBucket, fault_proxy: ProxyFactory) -> None:
    proxy = fault_proxy(rclone_s3)
    proxy.respond(500, INTERNAL_ERROR_XML, match="/retried", times=2)
    s3 = proxied(rclone_s3, proxy)  # standard retry mode, 3 attempts
    s3.put_object(Bucket=rclone_s3.bucket, Key="retried", Body=b"finally")
    assert len(proxy.requests) == 3
    assert proxy.bytes_up == len(b"finally")
    assert rclone_s3.client.get_object(Bucket=rclone_s3.bucket, Key="retried")["Body"].read() == b"finally"


def test_proxy_drop_after_is_a_connection_error(rclone_s3: RcloneBucket, fault_proxy: ProxyFactory) -> None:
    proxy = fault_proxy(rclone_s3)
    s3 = proxied(rclone_s3, proxy, NO_RETRY)
    data = os.urandom(1_000_000)
    proxy.drop_after(300_000, match="/cut")
    with pytest.raises(ConnectionClosedError):  # it connected, then was cut
        s3.put_object(Bucket=rclone_s3.bucket, Key="cut", Body=data, ContentMD5=md5_b64(data))
    assert proxy.bytes_up == 300_000
    assert proxy.fired == [("drop_after", "PUT", f"/{rclone_s3.bucket}/cut")]
    # rclone never shows a partial object.
    assert keys(rclone_s3.client, rclone_s3.bucket) == []


def test_proxy_drop_after_heals_with_a_retry(rclone_s3: RcloneBucket, fault_proxy: ProxyFactory) -> None:
    proxy = fault_proxy(rclone_s3)
    s3 = proxied(rclone_s3, proxy, ONE_RETRY)
    data = os.urandom(200_000)
    proxy.drop_after(0, match="/healed")
    s3.put_object(Bucket=rclone_s3.bucket, Key="healed", Body=data, ContentMD5=md5_b64(data))
    assert proxy.bytes_up == len(data)
    assert proxy.connections == 2
    assert rclone_s3.client.get_object(Bucket=rclone_s3.bucket, Key="healed")["Body"].read() == data


def test_proxy_truncate_response(rclone_s3: RcloneBucket, fault_proxy: ProxyFactory) -> None:
    data = os.urandom(64_000)
    rclone_s3.client.put_object(Bucket=rclone_s3.bucket, Key="k", Body=data)
    proxy = fault_proxy(rclone_s3)
    s3 = proxied(rclone_s3, proxy, NO_RETRY)
    proxy.truncate_response(32_000, method="GET")
    resp = s3.get_object(Bucket=rclone_s3.bucket, Key="k")
    with pytest.raises(ResponseStreamingError):
        resp["Body"].read()
    proxy.truncate_response(10, method="HEAD")  # cut inside the status line
    with pytest.raises(ConnectionClosedError):
        s3.head_object(Bucket=rclone_s3.bucket, Key="k")
    assert s3.get_object(Bucket=rclone_s3.bucket, Key="k")["Body"].read() == data


def test_proxy_stall_and_concurrency(rclone_s3: RcloneBucket, fault_proxy: ProxyFactory) -> None:
    proxy = fault_proxy(rclone_s3)
    workers = 16
    stall_s = 1.5
    s3 = proxied(rclone_s3, proxy, Config(max_pool_connections=workers, retries={"total_max_attempts": 1}))
    proxy.stall(stall_s, match="/stalled-", times=workers)

    def put(i: int) -> float:
        start = time.monotonic()
        s3.put_object(Bucket=rclone_s3.bucket, Key=f"stalled-{i}", Body=b"x" * 1000)
        return time.monotonic() - start

    start = time.monotonic()
    with ThreadPoolExecutor(workers) as pool:
        durations = list(pool.map(put, range(workers)))
    elapsed = time.monotonic() - start
    assert min(durations) >= stall_s  # every request was held
    assert elapsed < workers * stall_s / 2  # ...at the same time, not one after the other
    assert proxy.peak_connections >= workers
    assert proxy.bytes_up == workers * 1000
    assert len(keys(rclone_s3.client, rclone_s3.bucket)) == workers


def test_proxy_stop_interrupts_a_stall(rclone_s3: RcloneBucket) -> None:
    proxy = FaultProxy(("127.0.0.1", rclone_s3.port)).start()
    s3 = proxied(rclone_s3, proxy, NO_RETRY)
    proxy.stall(120, method="GET")
    outcome: list[BaseException | None] = []

    def get() -> None:
        try:
            s3.list_objects_v2(Bucket=rclone_s3.bucket)
            outcome.append(None)
        except Exception as exc:
            outcome.append(exc)

    client = threading.Thread(target=get, daemon=True)
    client.start()
    assert proxy.wait_requests(1), "the request never reached the proxy"
    start = time.monotonic()
    proxy.stop()
    assert time.monotonic() - start < 5
    client.join(10)
    assert not client.is_alive()
    assert isinstance(outcome[0], ConnectionClosedError)
    assert not [t for t in threading.enumerate() if t.name.startswith(f"faultproxy-{proxy.port}")]


def test_proxy_only_forwards_to_localhost() -> None:
    with pytest.raises(ValueError, match=r"127\.0\.0\.1"):
        FaultProxy(("10.0.0.1", 80))


# ------------------------------------------------------------------------------------------
# Process hygiene
# ------------------------------------------------------------------------------------------


def test_context_managers_reap_their_processes() -> None:
    with MotoServer() as moto, RcloneServer() as rclone:
        pids = [moto.pid, rclone.pid]
        workdirs = [moto.workdir, rclone.workdir]
        data_dir = rclone.data_dir
        assert None not in pids
        assert set(pids) <= set(live_pids())
    for pid in pids:
        assert pid is not None
        assert pid_gone(pid)
        assert pid not in live_pids()
    for workdir in workdirs:
        assert workdir is not None
        assert not workdir.exists()
    assert not data_dir.exists()  # a data dir the server created itself goes too


INNER_CONFTEST = """
import json, os, sys, threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil
import pytest

sys.path.insert(0, os.environ["CASTOFF_TESTS_DIR"])
pytest_plugins = ["server_fixtures"]


@pytest.fixture(scope="session", autouse=True)
def audit():
    # Set up before, so torn down after, every server fixture of the session.
    yield
    import servers
    pids = [int(p) for p in Path(os.environ["CASTOFF_PIDS"]).read_text().split()]
    alive = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except psutil.NoSuchProcess:
            pass
    threads = [t.name for t in threading.enumerate() if t.name.startswith("faultproxy")]
    Path(os.environ["CASTOFF_AUDIT"]).write_text(json.dumps(
        {"pids": pids, "alive": alive, "live": servers.live_pids(), "threads": threads}))
"""

INNER_TESTS = """
import os, threading
from pathlib import Path

from servers import s3_client


def record(*pids):
    with open(os.environ["CASTOFF_PIDS"], "a") as fh:
        fh.write("".join(f"{p}\\n" for p in pids))


def test_fails_with_everything_running(moto, rclone_s3, fault_proxy):
    record(moto.server.pid, rclone_s3.server.pid)
    proxy = fault_proxy(rclone_s3)
    proxy.stall(120)
    s3 = s3_client(proxy.url, rclone_s3.access_key, rclone_s3.secret_key)
    threading.Thread(target=lambda: s3.list_buckets(), daemon=True).start()
    raise AssertionError("deliberate failure while a request is stalled in the proxy")


def test_passes(moto, rclone_s3):
    moto.enable_write_only()
    rclone_s3.client.put_object(Bucket=rclone_s3.bucket, Key="k", Body=b"v")
"""


def test_fixtures_leave_nothing_running(tmp_path: Path) -> None:
    inner = tmp_path / "inner"
    inner.mkdir()
    (inner / "pytest.ini").write_text("[pytest]\n")
    (inner / "conftest.py").write_text(textwrap.dedent(INNER_CONFTEST))
    (inner / "test_inner.py").write_text(textwrap.dedent(INNER_TESTS))
    pids_file, audit_file = tmp_path / "pids", tmp_path / "audit.json"
    pids_file.write_text("")
    env = {
        **os.environ,
        "CASTOFF_TESTS_DIR": str(TESTS_DIR),
        "CASTOFF_PIDS": str(pids_file),
        "CASTOFF_AUDIT": str(audit_file),
    }
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(inner)],
        cwd=inner,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr  # exactly the deliberate failure
    assert "1 failed, 1 passed" in result.stdout, result.stdout
    audit = json.loads(audit_file.read_text())
    assert len(audit["pids"]) == 2
    # Checked inside the session, after fixture teardown and before any atexit hook.
    assert audit["alive"] == []
    assert audit["live"] == []
    assert audit["threads"] == []
    assert all(pid_gone(pid) for pid in audit["pids"])


def test_atexit_kills_forgotten_servers(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import sys
        sys.path.insert(0, sys.argv[1])
        from servers import MotoServer, RcloneServer
        moto, rclone = MotoServer().start(), RcloneServer().start()
        print(moto.pid, rclone.pid, moto.workdir, rclone.workdir, rclone.data_dir, flush=True)
        # exit without stop(): the atexit hook must clean up
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(TESTS_DIR)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    moto_pid, rclone_pid, *paths = result.stdout.split()
    assert pid_gone(int(moto_pid))
    assert pid_gone(int(rclone_pid))
    for path in paths:
        assert not Path(path).exists()
