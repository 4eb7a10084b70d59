"""pytest fixtures for the real S3 servers and the fault proxy of tests/servers.py.
Load with `pytest_plugins = ["server_fixtures"]` in the root conftest.py.
"""

from __future__ import annotations

import contextlib
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from servers import LOCALHOST, FaultProxy, MotoServer, RcloneServer

if TYPE_CHECKING:
    from botocore.config import Config
    from mypy_boto3_s3 import S3Client

# S3_UPLOAD_PART_MIN_SIZE for the session's moto_server; None keeps AWS's 5 MiB minimum.
# Tests that need tiny parts should start their own MotoServer(part_min_size=...).
MOTO_PART_MIN_SIZE: int | None = None


def unique_bucket(prefix: str = "castoff-test") -> str:
    """A fresh, valid S3 bucket name."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@dataclass
class MotoBucket:
    """A freshly reset moto_server with one empty bucket."""

    server: MotoServer
    bucket: str

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def client(self) -> S3Client:
        """The admin client; after enable_write_only() it signs with the admin key."""
        return self.server.admin_client()

    def admin_client(self, *, config: Config | None = None) -> S3Client:
        return self.server.admin_client(config=config)

    def enable_write_only(self) -> tuple[str, str]:
        """Write-only (key, secret) for this bucket; IAM enforcement goes on."""
        return self.server.enable_write_only(self.bucket)


@dataclass
class RcloneBucket:
    """The session's rclone serve s3 with one empty bucket of this test's own."""

    server: RcloneServer
    bucket: str

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def access_key(self) -> str:
        return self.server.access_key

    @property
    def secret_key(self) -> str:
        return self.server.secret_key

    @property
    def client(self) -> S3Client:
        return self.server.admin_client()

    def admin_client(self, *, config: Config | None = None) -> S3Client:
        return self.server.admin_client(config=config)


ProxyTarget = MotoServer | RcloneServer | MotoBucket | RcloneBucket | tuple[str, int]
ProxyFactory = Callable[[ProxyTarget], FaultProxy]


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    with MotoServer(part_min_size=MOTO_PART_MIN_SIZE) as server:
        yield server


@pytest.fixture(scope="session")
def rclone_server() -> Iterator[RcloneServer]:
    with RcloneServer() as server:
        yield server


@pytest.fixture
def moto(moto_server: MotoServer) -> Iterator[MotoBucket]:
    """moto reset to an empty state (IAM enforcement off) with one bucket created."""
    if not moto_server.is_running():  # a previous test killed it
        moto_server.restart()
    moto_server.reset()
    bucket = unique_bucket()
    moto_server.create_bucket(bucket)
    yield MotoBucket(moto_server, bucket)
    # Leave enforcement off and free the memory even if the test failed half-way.
    if moto_server.is_running():
        moto_server.reset()


@pytest.fixture
def rclone_s3(rclone_server: RcloneServer) -> Iterator[RcloneBucket]:
    """A fresh bucket on the session's rclone server, removed from its data dir afterwards."""
    if not rclone_server.is_running():  # a previous test killed it
        rclone_server.restart()
    bucket = unique_bucket()
    rclone_server.create_bucket(bucket)
    yield RcloneBucket(rclone_server, bucket)
    shutil.rmtree(rclone_server.data_dir / bucket, ignore_errors=True)


@pytest.fixture
def fault_proxy() -> Iterator[ProxyFactory]:
    """Factory: `fault_proxy(target)` starts a FaultProxy in front of a server, a bucket
    fixture's server or a (127.0.0.1, port) pair; every proxy is stopped at teardown."""
    with contextlib.ExitStack() as stack:

        def make(target: ProxyTarget) -> FaultProxy:
            upstream = target if isinstance(target, tuple) else (LOCALHOST, target.port)
            proxy = FaultProxy(upstream)
            stack.enter_context(proxy)
            return proxy

        yield make
