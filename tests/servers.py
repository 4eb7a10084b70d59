"""Real S3 servers (moto_server, rclone serve s3) and a fault-injecting TCP proxy for tests.
Plain Python: every process and socket lives on 127.0.0.1 and is cleaned up by stop() or atexit.
"""

from __future__ import annotations

import atexit
import contextlib
import http.client
import json
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, Literal, Self

import boto3
import psutil  # type: ignore[import-untyped]  # no stubs in the pinned test deps
from botocore.config import Config

if TYPE_CHECKING:
    from botocore.client import BaseClient
    from mypy_boto3_s3 import S3Client

LOCALHOST = "127.0.0.1"
READY_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0

# --------------------------------------------------------------------------------------------
# Process bookkeeping: every server process started here is registered, and an atexit hook
# kills whatever is still running when the interpreter exits (e.g. after a crashed session).
# --------------------------------------------------------------------------------------------

_LIVE: set[_ServerProcess] = set()
_LIVE_LOCK = threading.Lock()


def _register(server: _ServerProcess) -> None:
    with _LIVE_LOCK:
        _LIVE.add(server)


def _unregister(server: _ServerProcess) -> None:
    with _LIVE_LOCK:
        _LIVE.discard(server)


def live_pids() -> list[int]:
    """Pids of the server processes started by this module and not yet reaped."""
    with _LIVE_LOCK:
        servers = list(_LIVE)
    return [pid for pid in (s.pid for s in servers) if pid is not None]


@atexit.register
def _kill_leftovers() -> None:
    """Kill (SIGKILL) every server still running at interpreter exit, then remove its files."""
    with _LIVE_LOCK:
        servers = list(_LIVE)
    for server in servers:
        with contextlib.suppress(Exception):
            server.kill()
        with contextlib.suppress(Exception):
            server.stop()


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOCALHOST, 0))
        port: int = sock.getsockname()[1]
        return port


# --------------------------------------------------------------------------------------------
# boto3 clients
# --------------------------------------------------------------------------------------------

_BASE_CONFIG = Config(
    region_name="us-east-1",
    signature_version="s3v4",
    s3={"addressing_style": "path"},
    request_checksum_calculation="when_required",
    response_checksum_validation="when_required",
    proxies={},  # never route 127.0.0.1 traffic through an HTTP(S)_PROXY from the environment
    connect_timeout=10,
    read_timeout=60,
    retries={"mode": "standard", "max_attempts": 3},
)


def client_config(config: Config | None = None) -> Config:
    """The settings every test client uses, with `config`'s explicit values merged on top."""
    return _BASE_CONFIG if config is None else _BASE_CONFIG.merge(config)


def s3_client(
    endpoint_url: str, access_key: str, secret_key: str, *, config: Config | None = None
) -> S3Client:
    """A path-style SigV4 S3 client for a local endpoint (its own boto3 session: thread-safe)."""
    session = boto3.session.Session()
    return session.client(
        "s3",
        endpoint_url=endpoint_url,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name="us-east-1",
        config=client_config(config),
    )


def _http(
    port: int,
    method: str,
    path: str,
    body: bytes = b"",
    headers: Mapping[str, str] | None = None,
    timeout: float = 10.0,
) -> tuple[int, bytes]:
    """One plain HTTP request to 127.0.0.1:port (http.client ignores proxy variables)."""
    conn = http.client.HTTPConnection(LOCALHOST, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=dict(headers or {}))
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


# --------------------------------------------------------------------------------------------
# Server processes
# --------------------------------------------------------------------------------------------


class ServerStartError(RuntimeError):
    """A server process did not come up (the message carries the tail of its log)."""


class _ServerProcess:
    """A server subprocess on 127.0.0.1 with a temp work dir (log file) removed on stop()."""

    name = "server"

    def __init__(self, *, port: int | None = None, ready_timeout: float = READY_TIMEOUT) -> None:
        self._user_port = port is not None
        self.port: int = port if port is not None else 0
        self.ready_timeout = ready_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._workdir: Path | None = None
        self._log: IO[bytes] | None = None

    # -- subclass hooks ---------------------------------------------------------------------

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _env(self) -> dict[str, str]:
        return dict(os.environ)

    def _prepare(self, workdir: Path) -> None:
        """Create whatever the command needs inside the fresh work dir."""

    def _cleanup(self) -> None:
        """Remove what the subclass owns, after the process is gone (called by stop())."""

    # -- public ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{LOCALHOST}:{self.port}"

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    @property
    def workdir(self) -> Path | None:
        return self._workdir

    @property
    def log_path(self) -> Path | None:
        return None if self._workdir is None else self._workdir / f"{self.name}.log"

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> Self:
        """Start the process and wait until it answers HTTP (at most `ready_timeout` s)."""
        return self._start(keep_port=self._user_port)

    def _start(self, *, keep_port: bool) -> Self:
        if self.is_running():
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        if self._workdir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix=f"castoff-{self.name}-"))
            self._prepare(self._workdir)
        # A port chosen by free_port() can be taken by someone else before the server binds
        # it; retry with another one in that case. A fixed port (restart) is never changed.
        attempts = 1 if keep_port else 3
        for attempt in range(attempts):
            if not keep_port:
                self.port = free_port()
            self._launch()
            try:
                self._wait_ready()
            except ServerStartError:
                self._terminate()
                if attempt == attempts - 1:
                    raise
            else:
                return self
        raise AssertionError("unreachable")

    def stop(self) -> None:
        """Terminate (SIGTERM, then SIGKILL after a timeout), reap, remove the temp work dir."""
        self._terminate()
        self._cleanup()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def kill(self) -> None:
        """SIGKILL the process and reap it; files (log, data) stay for restart()."""
        proc = self._proc
        if proc is None:
            return
        with contextlib.suppress(OSError):
            proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=STOP_TIMEOUT)
        self._reaped()

    def restart(self) -> Self:
        """Stop the process if it runs (gracefully) and start it again on the same port."""
        self._terminate()
        return self._start(keep_port=True)

    def log_tail(self, n_chars: int = 4000) -> str:
        path = self.log_path
        if path is None or not path.exists():
            return "(no log)"
        with path.open("rb") as fh:
            fh.seek(0, 2)
            size = fh.tell()
            fh.seek(max(0, size - n_chars))
            return fh.read().decode("utf-8", "replace")

    def __enter__(self) -> Self:
        if not self.is_running():
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.is_running() else "stopped"
        return f"<{type(self).__name__} {self.url} {state}>"

    # -- internals ------------------------------------------------------------------------

    def _launch(self) -> None:
        assert self.log_path is not None
        self._log = self.log_path.open("ab")
        self._log.write(f"=== {self.name}: {' '.join(self._command())}\n".encode())
        self._log.flush()
        try:
            self._proc = subprocess.Popen(
                self._command(),
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                env=self._env(),
                cwd=self._workdir,
            )
        except OSError:
            self._reaped()
            raise
        _register(self)

    def _wait_ready(self) -> None:
        """Poll GET / until any HTTP answer from *our* process listening on the port."""
        proc = self._proc
        assert proc is not None
        deadline = time.monotonic() + self.ready_timeout
        while True:
            if proc.poll() is not None:
                raise ServerStartError(
                    f"{self.name} exited with {proc.returncode} before answering on "
                    f"{self.url}; log tail:\n{self.log_tail()}"
                )
            if self._answers_http() and self._owns_port(proc.pid):
                return
            if time.monotonic() > deadline:
                raise ServerStartError(
                    f"{self.name} (pid {proc.pid}) did not answer HTTP on {self.url} within "
                    f"{self.ready_timeout:.0f} s; log tail:\n{self.log_tail()}"
                )
            # Waiting on the process doubles as the poll interval and notices an early exit.
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=0.05)

    def _answers_http(self) -> bool:
        try:
            _http(self.port, "GET", "/", timeout=2.0)
        except (OSError, http.client.HTTPException):
            return False
        return True

    def _owns_port(self, pid: int) -> bool:
        """True if `pid` listens on our port (guards against a stranger on a recycled port)."""
        try:
            conns = psutil.Process(pid).net_connections(kind="tcp")
        except psutil.AccessDenied:
            return True
        except psutil.NoSuchProcess:
            return False
        return any(c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == self.port for c in conns)

    def _terminate(self) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(OSError):
                proc.terminate()
            try:
                proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(OSError):
                    proc.kill()
                proc.wait(timeout=STOP_TIMEOUT)
        self._reaped()

    def _reaped(self) -> None:
        if self._proc is not None:
            _unregister(self)
            self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None


class MotoServer(_ServerProcess):
    """`moto_server` (in-memory S3 + IAM) as a subprocess.

    Auth: by default moto accepts any credentials. enable_write_only() switches on IAM
    enforcement (POST /moto-api/reset-auth "0"). moto's own /moto-api/reset wipes the IAM users
    but does NOT switch enforcement off, so afterwards every signed request, the admin's
    included, fails with InvalidAccessKeyId (verified with moto 5.2.5); only the moto-api
    endpoints still answer. reset() here therefore switches enforcement off too.
    """

    name = "moto"
    ANY_KEY = ("testing", "testing")  # accepted while enforcement is off

    def __init__(
        self,
        *,
        port: int | None = None,
        part_min_size: int | None = None,
        ready_timeout: float = READY_TIMEOUT,
    ) -> None:
        super().__init__(port=port, ready_timeout=ready_timeout)
        self.part_min_size = part_min_size
        self.auth_enabled = False
        self._admin_key: tuple[str, str] = self.ANY_KEY
        self._clients: dict[tuple[str, str], S3Client] = {}

    def _command(self) -> list[str]:
        exe = Path(sys.executable).with_name("moto_server")
        return [str(exe), "-H", LOCALHOST, "-p", str(self.port)]

    def _env(self) -> dict[str, str]:
        env = super()._env()
        env.pop("INITIAL_NO_AUTH_ACTION_COUNT", None)
        if self.part_min_size is not None:
            env["S3_UPLOAD_PART_MIN_SIZE"] = str(self.part_min_size)
        return env

    def _cleanup(self) -> None:
        self.auth_enabled = False
        self._admin_key = self.ANY_KEY
        self._clients.clear()

    def _start(self, *, keep_port: bool) -> Self:
        self._cleanup()  # a fresh process (start or restart) has no users, enforcement off
        return super()._start(keep_port=keep_port)

    def moto_api(self, path: str, body: bytes = b"", *, content_type: str | None = None) -> bytes:
        """POST to a /moto-api/ endpoint; raises on a non-2xx answer."""
        headers = {"Content-Type": content_type} if content_type else {}
        status, data = _http(self.port, "POST", path, body=body, headers=headers)
        if not 200 <= status < 300:
            raise RuntimeError(f"moto {path} answered {status}: {data[:500]!r}")
        return data

    def reset(self) -> None:
        """Wipe every bucket, object and IAM user; enforcement goes off (see class doc)."""
        self.disable_auth()
        self.moto_api("/moto-api/reset")
        self._cleanup()

    def disable_auth(self) -> None:
        """Switch IAM enforcement off again: any credentials are accepted."""
        self.moto_api("/moto-api/reset-auth", b"inf", content_type="text/plain")
        self.auth_enabled = False
        self._admin_key = self.ANY_KEY

    def _enable_auth(self) -> None:
        # text/plain matters: a form-encoded body makes moto answer 500.
        self.moto_api("/moto-api/reset-auth", b"0", content_type="text/plain")
        self.auth_enabled = True

    def client(self, access_key: str, secret_key: str, *, config: Config | None = None) -> S3Client:
        return s3_client(self.url, access_key, secret_key, config=config)

    def admin_client(self, *, config: Config | None = None) -> S3Client:
        """A client that may do anything (cached per admin key unless `config` is given)."""
        if config is not None:
            return self.client(*self._admin_key, config=config)
        if self._admin_key not in self._clients:
            self._clients[self._admin_key] = self.client(*self._admin_key)
        return self._clients[self._admin_key]

    @property
    def admin_key(self) -> tuple[str, str]:
        return self._admin_key

    def create_bucket(self, name: str) -> None:
        self.admin_client().create_bucket(Bucket=name)

    def _iam(self) -> BaseClient:
        session = boto3.session.Session()
        iam: BaseClient = session.client(
            "iam",
            endpoint_url=self.url,
            aws_access_key_id=self.ANY_KEY[0],
            aws_secret_access_key=self.ANY_KEY[1],
            region_name="us-east-1",
            config=client_config(),
        )
        return iam

    def _create_user(self, iam: Any, prefix: str, statement: dict[str, Any]) -> tuple[str, str]:
        user = f"{prefix}-{uuid.uuid4().hex[:8]}"
        iam.create_user(UserName=user)
        policy = {"Version": "2012-10-17", "Statement": [statement]}
        iam.put_user_policy(UserName=user, PolicyName=prefix, PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName=user)["AccessKey"]
        return key["AccessKeyId"], key["SecretAccessKey"]

    def enable_policy(self, bucket: str, actions: list[str]) -> tuple[str, str]:
        """Like enable_write_only(), for a key allowed exactly ``actions`` on BUCKET/*."""
        if self.auth_enabled:
            self.disable_auth()
        iam = self._iam()
        admin = self._create_user(
            iam, "castoff-admin", {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}
        )
        key = self._create_user(
            iam,
            "castoff-limited",
            {"Effect": "Allow", "Action": actions, "Resource": f"arn:aws:s3:::{bucket}/*"},
        )
        self._enable_auth()
        self._admin_key = admin
        return key

    def expire_key(self, access_key: str) -> str:
        """Delete an access key, as when it expires or is revoked (moto ignores an Inactive
        status); returns its user's name, for new_key(). Enforcement stays as it was."""
        users: list[str] = []

        def delete(iam: Any, user: str) -> None:
            iam.delete_access_key(UserName=user, AccessKeyId=access_key)
            users.append(user)

        self._with_iam(delete, access_key)
        return users[0]

    def new_key(self, user: str) -> tuple[str, str]:
        """A new (key, secret) for ``user`` (a rotated key: same policy)."""
        made: list[tuple[str, str]] = []

        def create(iam: Any, _: str) -> None:
            new = iam.create_access_key(UserName=user)["AccessKey"]
            made.append((new["AccessKeyId"], new["SecretAccessKey"]))

        self._with_iam(create, None)
        return made[0]

    def _with_iam(self, action: Any, access_key: str | None) -> None:
        was_on = self.auth_enabled
        admin = self._admin_key
        if was_on:  # IAM calls need enforcement off (the admin has s3:* only)
            self.moto_api("/moto-api/reset-auth", b"inf", content_type="text/plain")
        try:
            iam = self._iam()
            user = next(
                (
                    u["UserName"]
                    for u in iam.list_users()["Users"]
                    for k in iam.list_access_keys(UserName=u["UserName"])["AccessKeyMetadata"]
                    if k["AccessKeyId"] == access_key
                ),
                "",
            )
            action(iam, user)
        finally:
            if was_on:
                self._enable_auth()
                self._admin_key = admin

    def enable_write_only(self, bucket: str) -> tuple[str, str]:
        """Create an admin user and a write-only user, switch enforcement on.

        The write-only policy is exactly {"Effect": "Allow", "Action": ["s3:PutObject",
        "s3:AbortMultipartUpload"], "Resource": "arn:aws:s3:::BUCKET/*"}: it can PutObject and
        do multipart uploads (Create/UploadPart/Complete fall under s3:PutObject) and abort,
        but GetObject/HeadObject/ListObjectsV2/ListParts are AccessDenied. admin_client() uses
        the admin key (s3:* on *) from now on. Returns the write-only (key, secret).
        """
        return self.enable_policy(bucket, ["s3:PutObject", "s3:AbortMultipartUpload"])


def self_signed_cert(folder: Path, host: str = LOCALHOST) -> tuple[Path, Path]:
    """A self-signed certificate for ``host`` (an IP address) valid for a day: (cert, key) PEMs."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


class RcloneServer(_ServerProcess):
    """`rclone serve s3` over a local directory: buckets are its sub-directories.

    Set for tests: --config /dev/null (no rclone.conf read or written), --cache-dir and
    --temp-dir inside the server's temp work dir (nothing under ~/.cache, nothing left behind),
    --dir-cache-time 2s with --poll-interval 0 (changes made directly in data_dir are seen
    within 2 s, not after the default 5 minutes; 0s makes rclone 1.75.2's directory cache clean
    itself continuously, and after some minutes of a session its cleaners deadlock in
    vfs.(*Dir).ForgetAll and every request hangs), --stats 0 (no periodic stats lines in the log).
    Access keys must be at least 3 characters: a 2-character key id is refused with
    InvalidAccessKeyId (rclone 1.75.2).
    With ``debug=True`` it also serves its remote control on another loopback port, without
    auth, for ``goroutines()``: the stacks of all its goroutines, to see where it waits.
    """

    name = "rclone"

    def __init__(
        self,
        data_dir: Path | None = None,
        *,
        port: int | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
        extra_args: tuple[str, ...] = (),
        ready_timeout: float = READY_TIMEOUT,
        debug: bool = False,
    ) -> None:
        super().__init__(port=port, ready_timeout=ready_timeout)
        self.rc_port = free_port() if debug else None
        self._owns_data = data_dir is None
        self._data_dir = data_dir
        self.access_key = access_key or f"castoff{uuid.uuid4().hex[:12]}"
        self.secret_key = secret_key or uuid.uuid4().hex + uuid.uuid4().hex
        self.extra_args = extra_args
        self._client: S3Client | None = None

    @property
    def data_dir(self) -> Path:
        """The served directory (buckets are its sub-directories); kept across restart()."""
        if self._data_dir is None:
            raise RuntimeError("no data dir: the server owns a temporary one only while started")
        return self._data_dir

    def _prepare(self, workdir: Path) -> None:
        (workdir / "cache").mkdir()
        (workdir / "tmp").mkdir()
        if self._data_dir is None:
            self._data_dir = Path(tempfile.mkdtemp(prefix="castoff-rclone-data-"))
        self._data_dir.mkdir(parents=True, exist_ok=True)

    def _command(self) -> list[str]:
        assert self._workdir is not None
        exe = Path(sys.executable).with_name("rclone")
        return [
            str(exe) if exe.exists() else "rclone",
            "serve",
            "s3",
            "--config",
            "/dev/null",
            "--addr",
            f"{LOCALHOST}:{self.port}",
            "--auth-key",
            f"{self.access_key},{self.secret_key}",
            "--cache-dir",
            str(self._workdir / "cache"),
            "--temp-dir",
            str(self._workdir / "tmp"),
            "--dir-cache-time",
            "2s",
            "--poll-interval",
            "0",
            "--stats",
            "0",
            "--log-level",
            "INFO",
            *(
                []
                if self.rc_port is None
                else ["--rc", "--rc-no-auth", "--rc-addr", f"{LOCALHOST}:{self.rc_port}"]
            ),
            *self.extra_args,
            str(self.data_dir),
        ]

    def goroutines(self, timeout: float = 10.0) -> str:
        """Every goroutine's stack, grouped (only with ``debug=True``)."""
        if self.rc_port is None:
            return "(rclone runs without debug=True: no goroutine dump)"
        try:
            _, body = _http(self.rc_port, "GET", "/debug/pprof/goroutine?debug=1", timeout=timeout)
        except (OSError, http.client.HTTPException) as exc:
            return f"(no goroutine dump: {exc!r})"
        return body.decode("utf-8", "replace")

    def _env(self) -> dict[str, str]:
        # RCLONE_* variables from the caller's environment would change flags behind our back.
        return {k: v for k, v in super()._env().items() if not k.startswith("RCLONE_")}

    def _cleanup(self) -> None:
        self._client = None
        if self._owns_data and self._data_dir is not None:
            shutil.rmtree(self._data_dir, ignore_errors=True)
            self._data_dir = None

    @property
    def url(self) -> str:
        scheme = "https" if "--cert" in self.extra_args else "http"
        return f"{scheme}://{LOCALHOST}:{self.port}"

    def client(self, *, config: Config | None = None) -> S3Client:
        if "--cert" in self.extra_args:  # the admin trusts the server's own certificate
            session = boto3.session.Session()
            cert = self.extra_args[self.extra_args.index("--cert") + 1]
            return session.client(
                "s3", endpoint_url=self.url, aws_access_key_id=self.access_key,
                aws_secret_access_key=self.secret_key, region_name="us-east-1",
                config=client_config(config), verify=cert,
            )  # fmt: skip
        return s3_client(self.url, self.access_key, self.secret_key, config=config)

    def admin_client(self, *, config: Config | None = None) -> S3Client:
        """A client with this server's key pair (cached unless `config` is given)."""
        if config is not None:
            return self.client(config=config)
        if self._client is None:
            self._client = self.client()
        return self._client

    def create_bucket(self, name: str) -> None:
        self.admin_client().create_bucket(Bucket=name)


# --------------------------------------------------------------------------------------------
# Fault-injecting HTTP/1.1 proxy
# --------------------------------------------------------------------------------------------

FaultKind = Literal["drop_after", "corrupt_byte", "respond", "stall", "truncate_response"]
MAX_STALL = 300.0
_HEAD_LIMIT = 64 * 1024
_RECV = 64 * 1024


def s3_error_xml(code: str, message: str) -> str:
    return f"<Error><Code>{code}</Code><Message>{message}</Message></Error>"


SLOW_DOWN_XML = s3_error_xml("SlowDown", "Please reduce your request rate.")
INTERNAL_ERROR_XML = s3_error_xml("InternalError", "We encountered an internal error. Please try again.")


class _ProtocolError(Exception):
    pass


class _DropFaultError(Exception):
    """A drop_after fault fired: both sockets are to be reset."""


@dataclass
class _Fault:
    kind: FaultKind
    method: str | None
    match: str | None
    remaining: int
    amount: float = 0  # bytes for drop/corrupt/truncate, seconds for stall
    status: int = 0
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    def matches(self, method: str, target: str) -> bool:
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return self.match is None or self.match in target


@dataclass
class _Head:
    raw: bytes
    first: list[str]
    headers: dict[str, str]  # lower-cased names; repeated headers joined with ", "

    @classmethod
    def parse(cls, raw: bytes) -> _Head:
        lines = raw.decode("latin-1").split("\r\n")
        first = lines[0].split(" ", 2)
        if len(first) < 2:
            raise _ProtocolError(f"bad start line {lines[0]!r}")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if not line:
                continue
            name, sep, value = line.partition(":")
            if not sep:
                raise _ProtocolError(f"bad header line {line!r}")
            key = name.strip().lower()
            value = value.strip()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        return cls(raw, first, headers)

    def request_line(self) -> tuple[str, str, str]:
        if len(self.first) != 3:
            raise _ProtocolError(f"bad request line {self.first!r}")
        return self.first[0], self.first[1], self.first[2]

    def has_token(self, name: str, token: str) -> bool:
        return token in (t.strip().lower() for t in self.headers.get(name, "").split(","))

    @property
    def chunked(self) -> bool:
        return self.has_token("transfer-encoding", "chunked")

    @property
    def content_length(self) -> int | None:
        value = self.headers.get("content-length")
        if value is None:
            return None
        try:
            n = int(value.split(",")[0])
        except ValueError as exc:
            raise _ProtocolError(f"bad Content-Length {value!r}") from exc
        if n < 0:
            raise _ProtocolError(f"bad Content-Length {value!r}")
        return n

    def wants_close(self, version: str) -> bool:
        if self.has_token("connection", "close"):
            return True
        return version != "HTTP/1.1" and not self.has_token("connection", "keep-alive")


class _Reader:
    """Buffered reads from a socket: message heads, exact lengths, chunked bodies."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()

    def _fill(self) -> bool:
        data = self.sock.recv(_RECV)
        if not data:
            return False
        self.buf += data
        return True

    def read_head(self) -> bytes | None:
        """The next head up to and including the blank line; None on EOF before any byte."""
        while True:
            idx = self.buf.find(b"\r\n\r\n")
            if idx >= 0:
                head = bytes(self.buf[: idx + 4])
                del self.buf[: idx + 4]
                return head
            if len(self.buf) > _HEAD_LIMIT:
                raise _ProtocolError("message head too large")
            if not self._fill():
                if self.buf:
                    raise _ProtocolError("connection closed inside a message head")
                return None

    def read_line(self) -> bytes:
        while True:
            idx = self.buf.find(b"\r\n")
            if idx >= 0:
                line = bytes(self.buf[: idx + 2])
                del self.buf[: idx + 2]
                return line
            if len(self.buf) > _HEAD_LIMIT:
                raise _ProtocolError("line too long")
            if not self._fill():
                raise _ProtocolError("connection closed inside a chunked body")

    def iter_exact(self, n: int) -> Iterator[bytes]:
        while n > 0:
            if not self.buf and not self._fill():
                raise _ProtocolError(f"connection closed with {n} body bytes outstanding")
            piece = bytes(self.buf[:n])
            del self.buf[: len(piece)]
            n -= len(piece)
            yield piece

    def iter_chunked(self) -> Iterator[bytes]:
        """The raw bytes of a chunked body, framing and trailers included."""
        while True:
            line = self.read_line()
            yield line
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError as exc:
                raise _ProtocolError(f"bad chunk size line {line!r}") from exc
            if size == 0:
                while True:
                    trailer = self.read_line()
                    yield trailer
                    if trailer == b"\r\n":
                        return
            yield from self.iter_exact(size + 2)

    def iter_until_close(self) -> Iterator[bytes]:
        while True:
            if self.buf:
                piece = bytes(self.buf)
                self.buf.clear()
                yield piece
            if not self._fill():
                return


def _reset(sock: socket.socket | None) -> None:
    """Close abruptly: SO_LINGER 0 makes close() send RST instead of FIN."""
    if sock is None:
        return
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


class FaultProxy:
    """A threaded HTTP/1.1 proxy on 127.0.0.1 that can break individual requests.

    Each client connection gets its own upstream connection; keep-alive is mirrored (when
    either side closes, so does the other). Fault plans are armed with drop_after(),
    corrupt_byte(), respond(), stall() and truncate_response(); each applies to the next
    `times` requests whose method equals `method` (if given) and whose path+query contains
    `match` (if given), then disarms. A request takes the first armed plan it matches (in
    arming order), so at most one fault applies to a request. Body offsets count the bytes as
    sent on the wire (for a chunked request body, framing included).

    `Expect: 100-continue` (botocore sends it on every PutObject and UploadPart) is passed
    through: the upstream's interim 100 is relayed as soon as it comes, and a final answer in
    its place is relayed and then the connection is closed, since the client may or may not
    send the body after that.
    """

    def __init__(
        self, upstream: tuple[str, int], *, timeout: float = 60.0, idle_timeout: float = 120.0
    ) -> None:
        host, port = upstream
        if host not in (LOCALHOST, "localhost"):
            raise ValueError(f"FaultProxy only forwards to {LOCALHOST}, not {host!r}")
        self.upstream = (LOCALHOST, int(port))
        self.timeout = timeout
        self.idle_timeout = idle_timeout
        self.port = 0
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._listener: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None
        self._threads: set[threading.Thread] = set()
        self._sockets: set[socket.socket] = set()
        self._faults: list[_Fault] = []
        self._fired: list[tuple[FaultKind, str, str]] = []
        self._requests: list[tuple[str, str]] = []
        self._bytes_up = 0
        self._bytes_down = 0
        self._continues = 0
        self._connections = 0
        self._active = 0
        self._peak_active = 0

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{LOCALHOST}:{self.port}"

    def start(self) -> Self:
        if self._listener is not None:
            raise RuntimeError("proxy already started")
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((LOCALHOST, 0))
        listener.listen(128)
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._accept_thread = threading.Thread(
            target=self._accept_loop, name=f"faultproxy-{self.port}-accept", daemon=True
        )
        self._accept_thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Close the listener and every connection (interrupting stalls), join the threads."""
        self._stopping.set()
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                self._listener.close()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:  # wakes every blocked recv/select; the owner thread closes it
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + timeout
        if self._accept_thread is not None:
            self._accept_thread.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            leftover = list(self._sockets)
            alive = [t.name for t in self._threads if t.is_alive()]
        for sock in leftover:
            with contextlib.suppress(OSError):
                sock.close()
        if alive:
            raise RuntimeError(f"FaultProxy threads still running after stop(): {alive}")

    def __enter__(self) -> Self:
        if self._listener is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- counters -------------------------------------------------------------------------

    @property
    def bytes_up(self) -> int:
        """Request body bytes forwarded upstream."""
        with self._lock:
            return self._bytes_up

    @property
    def bytes_down(self) -> int:
        """Response bytes (heads and bodies) sent back to clients, canned ones included."""
        with self._lock:
            return self._bytes_down

    @property
    def requests(self) -> list[tuple[str, str]]:
        """(method, path+query) of every request head seen, in arrival order."""
        with self._lock:
            return list(self._requests)

    def wait_requests(self, count: int, timeout: float = 10.0) -> bool:
        """Block until at least `count` request heads have arrived; False on timeout."""
        with self._arrived:
            return self._arrived.wait_for(lambda: len(self._requests) >= count, timeout)

    @property
    def fired(self) -> list[tuple[FaultKind, str, str]]:
        """(fault kind, method, path+query) for every fault that was applied."""
        with self._lock:
            return list(self._fired)

    @property
    def continues(self) -> int:
        """Interim `100 Continue` answers relayed from upstream to clients."""
        with self._lock:
            return self._continues

    @property
    def connections(self) -> int:
        """Client connections accepted so far."""
        with self._lock:
            return self._connections

    @property
    def peak_connections(self) -> int:
        """Most client connections open at the same time."""
        with self._lock:
            return self._peak_active

    @property
    def pending_faults(self) -> int:
        """Fault applications still armed (sum of the remaining counts)."""
        with self._lock:
            return sum(f.remaining for f in self._faults)

    def reset_counters(self) -> None:
        with self._lock:
            self._requests.clear()
            self._fired.clear()
            self._bytes_up = self._bytes_down = self._continues = 0

    # -- fault plans ----------------------------------------------------------------------

    def _arm(self, fault: _Fault) -> None:
        if fault.remaining < 1:
            raise ValueError("times must be >= 1")
        with self._lock:
            self._faults.append(fault)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def drop_after(
        self,
        n_body_bytes: int,
        *,
        match: str | None = None,
        method: str | None = None,
        times: int = 1,
    ) -> None:
        """Forward `n_body_bytes` of the request body, then reset both connections (RST).

        If the body is shorter, it is forwarded whole and the reset comes before the answer.
        """
        if n_body_bytes < 0:
            raise ValueError("n_body_bytes must be >= 0")
        self._arm(_Fault("drop_after", method, match, times, amount=n_body_bytes))

    def corrupt_byte(
        self, offset: int, *, match: str | None = None, method: str | None = None, times: int = 1
    ) -> None:
        """Flip every bit of the request body byte at `offset` while forwarding."""
        if offset < 0:
            raise ValueError("offset must be >= 0")
        self._arm(_Fault("corrupt_byte", method, match, times, amount=offset))

    def respond(
        self,
        status: int,
        body_xml: str | bytes = b"",
        *,
        headers: Mapping[str, str] | None = None,
        match: str | None = None,
        method: str | None = None,
        times: int = 1,
    ) -> None:
        """Answer with a canned response instead of forwarding (e.g. 503 + SLOW_DOWN_XML)."""
        body = body_xml.encode() if isinstance(body_xml, str) else body_xml
        fault = _Fault("respond", method, match, times, status=status, body=body, headers=dict(headers or {}))
        self._arm(fault)

    def stall(
        self, seconds: float, *, match: str | None = None, method: str | None = None, times: int = 1
    ) -> None:
        """Hold the request for `seconds` before forwarding it (stop() cuts the wait short)."""
        if not 0 <= seconds <= MAX_STALL:
            raise ValueError(f"stall must be between 0 and {MAX_STALL} s")
        self._arm(_Fault("stall", method, match, times, amount=seconds))

    def truncate_response(
        self, n_bytes: int, *, match: str | None = None, method: str | None = None, times: int = 1
    ) -> None:
        """Forward the request; send only the first `n_bytes` of the final response
        (status line and headers count), then close the connection."""
        if n_bytes < 0:
            raise ValueError("n_bytes must be >= 0")
        self._arm(_Fault("truncate_response", method, match, times, amount=n_bytes))

    def _take_fault(self, method: str, target: str) -> _Fault | None:
        with self._lock:
            self._requests.append((method, target))
            self._arrived.notify_all()
            for fault in self._faults:
                if fault.matches(method, target):
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self._faults.remove(fault)
                    self._fired.append((fault.kind, method, target))
                    return fault
        return None

    # -- connection handling --------------------------------------------------------------

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.add(sock)
            if self._stopping.is_set():  # stop() took its snapshot already: wake this one too
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def _untrack_close(self, sock: socket.socket | None) -> None:
        if sock is None:
            return
        with self._lock:
            self._sockets.discard(sock)
        with contextlib.suppress(OSError):
            sock.close()

    def _accept_loop(self) -> None:
        listener = self._listener
        assert listener is not None
        while not self._stopping.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                return
            if self._stopping.is_set():
                client.close()
                return
            client.settimeout(self.timeout)
            thread = threading.Thread(
                target=self._serve, args=(client,), name=f"faultproxy-{self.port}-conn", daemon=True
            )
            self._track(client)
            with self._lock:
                self._threads.add(thread)
                self._connections += 1
                self._active += 1
                self._peak_active = max(self._peak_active, self._active)
            thread.start()

    def _send_down(self, client: socket.socket, data: bytes) -> None:
        client.sendall(data)
        with self._lock:
            self._bytes_down += len(data)

    def _serve(self, client: socket.socket) -> None:
        upstream: socket.socket | None = None
        dropped = False
        try:
            creader = _Reader(client)
            ureader: _Reader | None = None
            while not self._stopping.is_set():
                if not self._await_next_request(client, creader, upstream):
                    return
                raw = creader.read_head()
                if raw is None:
                    return
                req = _Head.parse(raw)
                method, target, version = req.request_line()
                fault = self._take_fault(method, target)
                if fault is not None and fault.kind == "stall":
                    if self._stopping.wait(fault.amount):
                        return
                    fault = None
                if fault is not None and fault.kind == "respond":
                    if not self._answer_canned(client, creader, req, fault):
                        return
                    continue
                if upstream is None:
                    upstream = socket.create_connection(self.upstream, timeout=self.timeout)
                    self._track(upstream)
                    ureader = _Reader(upstream)
                assert ureader is not None
                upstream.sendall(raw)
                if req.has_token("expect", "100-continue") and (req.chunked or (req.content_length or 0) > 0):
                    final = self._await_continue(client, creader, upstream, ureader)
                    if final is not None:  # upstream answered without wanting the body
                        self._relay_response(client, ureader, method, None, first=final)
                        self._close_gracefully(client)
                        return
                self._forward_body(creader, upstream, req, fault)
                keep = self._relay_response(client, ureader, method, fault)
                if not keep or req.wants_close(version):
                    self._close_gracefully(client)
                    return
        except _DropFaultError:
            dropped = True
        except (OSError, _ProtocolError):
            pass
        finally:
            if dropped:
                with self._lock:
                    self._sockets.discard(client)
                    if upstream is not None:
                        self._sockets.discard(upstream)
                _reset(client)
                _reset(upstream)
            else:
                self._untrack_close(upstream)
                self._untrack_close(client)
            with self._lock:
                self._active -= 1
                self._threads.discard(threading.current_thread())

    def _await_next_request(
        self, client: socket.socket, creader: _Reader, upstream: socket.socket | None
    ) -> bool:
        """Wait for the client's next request; False if the upstream closes (or idle timeout)."""
        if creader.buf:
            return True
        watched = [client] if upstream is None else [client, upstream]
        readable, _, _ = select.select(watched, [], [], self.idle_timeout)
        if not readable:
            return False
        # Anything from an idle upstream is EOF or garbage: either way this connection is done.
        return upstream is None or upstream not in readable

    def _await_continue(
        self, client: socket.socket, creader: _Reader, upstream: socket.socket, ureader: _Reader
    ) -> _Head | None:
        """After forwarding a head with Expect: 100-continue, relay interim answers until
        the body may flow (None) or the upstream gives its final answer (returned)."""
        deadline = time.monotonic() + self.timeout
        while True:
            if creader.buf:  # the client stopped waiting and is sending the body
                return None
            if not ureader.buf:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise _ProtocolError("no answer to Expect: 100-continue")
                readable, _, _ = select.select([client, upstream], [], [], remaining)
                if client in readable and upstream not in readable:
                    return None
                if not readable:
                    continue
            raw = ureader.read_head()
            if raw is None:
                raise _ProtocolError("upstream closed after a request head")
            resp = _Head.parse(raw)
            status = _status(resp)
            if 100 <= status < 200 and status != 101:
                self._send_down(client, raw)
                if status == 100:
                    with self._lock:
                        self._continues += 1
                    return None
                continue
            return resp

    def _forward_body(
        self, creader: _Reader, upstream: socket.socket, req: _Head, fault: _Fault | None
    ) -> None:
        pieces = creader.iter_chunked() if req.chunked else creader.iter_exact(req.content_length or 0)
        drop_at = int(fault.amount) if fault and fault.kind == "drop_after" else None
        flip_at = int(fault.amount) if fault and fault.kind == "corrupt_byte" else None
        pos = 0
        for piece in pieces:
            data = piece
            if flip_at is not None and pos <= flip_at < pos + len(data):
                buf = bytearray(data)
                buf[flip_at - pos] ^= 0xFF
                data = bytes(buf)
            if drop_at is not None and pos + len(data) >= drop_at:
                self._send_up(upstream, data[: drop_at - pos])
                raise _DropFaultError
            self._send_up(upstream, data)
            pos += len(data)
        if drop_at is not None:
            raise _DropFaultError

    def _send_up(self, upstream: socket.socket, data: bytes) -> None:
        if data:
            upstream.sendall(data)
            with self._lock:
                self._bytes_up += len(data)

    def _relay_response(
        self,
        client: socket.socket,
        ureader: _Reader,
        method: str,
        fault: _Fault | None,
        first: _Head | None = None,
    ) -> bool:
        """Relay the upstream's answer; True if both connections may carry another request."""
        resp = first
        while resp is None:
            raw = ureader.read_head()
            if raw is None:
                raise _ProtocolError("upstream closed before answering")
            head = _Head.parse(raw)
            status = _status(head)
            if 100 <= status < 200 and status != 101:  # a late interim answer: relay it
                self._send_down(client, raw)
                continue
            resp = head
        status = _status(resp)
        budget = int(fault.amount) if fault and fault.kind == "truncate_response" else None
        if status < 200 or status in (204, 304) or method.upper() == "HEAD":
            body: Iterator[bytes] = iter(())
            until_close = False
        elif resp.chunked:
            body, until_close = ureader.iter_chunked(), False
        elif resp.content_length is not None:
            body, until_close = ureader.iter_exact(resp.content_length), False
        else:
            body, until_close = ureader.iter_until_close(), True
        for piece in _prepend(resp.raw, body):
            if budget is None:
                self._send_down(client, piece)
            elif budget > 0:  # keep draining the upstream after the budget is spent
                self._send_down(client, piece[:budget])
                budget -= min(budget, len(piece))
        if budget is not None:
            return False
        return not (until_close or resp.wants_close(resp.first[0]))

    def _answer_canned(self, client: socket.socket, creader: _Reader, req: _Head, fault: _Fault) -> bool:
        """Answer `fault`'s response without forwarding; True if the connection stays usable."""
        expect = req.has_token("expect", "100-continue")
        keep = not expect and not req.wants_close(req.first[2])
        if keep:  # swallow the body so that the next request starts in the right place
            pieces = creader.iter_chunked() if req.chunked else creader.iter_exact(req.content_length or 0)
            for _ in pieces:
                pass
        try:
            reason = HTTPStatus(fault.status).phrase
        except ValueError:
            reason = "Fault"
        headers = {
            "Content-Type": "application/xml",
            "Content-Length": str(len(fault.body)),
            "x-amz-request-id": "FAULTPROXY",
            "Date": time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime()),
            "Connection": "keep-alive" if keep else "close",
            **fault.headers,
        }
        head = f"HTTP/1.1 {fault.status} {reason}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        body = b"" if req.first[0].upper() == "HEAD" else fault.body
        self._send_down(client, head.encode("latin-1") + body)
        if not keep:
            self._close_gracefully(client)
        return keep

    def _close_gracefully(self, client: socket.socket) -> None:
        """FIN, then drain what the client still sends (bounded), so that unread request bytes
        don't turn our close into an RST that could destroy the answer before it is read."""
        with contextlib.suppress(OSError):
            client.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + 2.0
            while (remaining := deadline - time.monotonic()) > 0:
                readable, _, _ = select.select([client], [], [], remaining)
                if not readable or not client.recv(_RECV):
                    break


def _status(head: _Head) -> int:
    try:
        return int(head.first[1])
    except (IndexError, ValueError) as exc:
        raise _ProtocolError(f"bad status line {head.first!r}") from exc


def _prepend(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest
