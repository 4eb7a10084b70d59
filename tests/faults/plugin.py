"""pytest plugin of the fault suite: a rig that runs a real job (two local folders and a bucket
behind the fault proxy) and the soak figures printed at the end of the session."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from castoff.destinations.base import Destination, MiB
from castoff.destinations.local import LocalDestination
from castoff.destinations.s3 import S3Destination
from castoff.engine.job import JobResult
from castoff.engine.retry import RetryPolicy
from engine_runner import Runner, s3dest, write
from faults.check import TALLY, BucketView, Dest, Expect, LocalView, Result, check
from servers import FaultProxy

PART = 1 * MiB
FAST: dict[str, Any] = {
    "retry": RetryPolicy(attempts=6, base=0.02, cap=0.2),
    "lane_pause": 0.1,
    "chunk_size": PART,
    "memory_budget": 8 * PART,
}
BIG = "card/PRIVATE/M4ROOT/CLIP/C0001.MP4"


def make_card(root: Path, seed: int, *, big: int = 3 * PART + 17, small: int = 6) -> dict[str, bytes]:
    """A seeded camera card: small photos, an empty file, one exactly a part, one multipart clip."""
    rng = random.Random(seed)
    files = {f"DCIM/100CANON/IMG_{i:04}.CR3": rng.randbytes(rng.randint(1, 300_000)) for i in range(small)}
    files["DCIM/100CANON/EMPTY.TXT"] = b""
    files["DCIM/101CANON/PART.JPG"] = rng.randbytes(PART)
    files["PRIVATE/M4ROOT/CLIP/C0001.MP4"] = rng.randbytes(big)
    for rel, data in files.items():
        write(root / rel, data)
    return files


def s3_dest(url: str, bucket: str, key: str, secret: str, **kw: Any) -> S3Destination:
    """A bucket at ``url``; without a part size, PART parts on rclone (no minimum part size)."""
    small = {"part_size": PART, "provider": "rclone"} if "part_size" not in kw else {}
    return s3dest(url, bucket, key, secret, **{"prefix": "raw/", **small, **kw})


@dataclass
class Rig:
    """One card, two local folders and a bucket (through ``proxy``), and the catalog of their jobs."""

    tmp: Path
    runner: Runner
    source: Path
    files: dict[str, bytes]
    locals: list[LocalDestination]
    bucket: S3Destination | None
    proxy: FaultProxy | None
    admin: Any = None
    extra_views: list[Dest] = field(default_factory=list)

    @property
    def dests(self) -> list[Destination]:
        return [*self.locals, *([self.bucket] if self.bucket else [])]

    @property
    def views(self) -> list[Dest]:
        views: list[Dest] = [LocalView(d.name, Path(d.root)) for d in self.locals]
        if self.bucket is not None:
            o = self.bucket.options
            views.append(BucketView(self.bucket.name, self.admin, o.bucket, o.prefix))
        return views + self.extra_views

    def run(self, dests: Sequence[Destination] | None = None, **opts: Any) -> JobResult:
        """The job, with a deadline (a hang fails the test with every thread's stack)."""
        return self.runner.bounded([self.source], list(dests or self.dests), **{**FAST, **opts})

    def check(self, scenario: str, expect: Expect | None = None, *, faults: int = 0, **kw: Any) -> Result:
        return check(
            scenario=scenario,
            source=self.source,
            dests=kw.pop("views", self.views),
            state=self.tmp / "state",
            expect=expect,
            faults=faults,
            job_id=self.runner.job_id,
            **kw,
        )


@pytest.fixture
def rig(tmp_path: Path, runner: Runner, rclone_s3: Any, fault_proxy: Any) -> Rig:
    source = tmp_path / "src" / "card"
    files = make_card(source, seed=sum(map(ord, tmp_path.name)))
    proxy = fault_proxy(rclone_s3)
    bucket = s3_dest(proxy.url, rclone_s3.bucket, rclone_s3.access_key, rclone_s3.secret_key)
    locals_ = [LocalDestination(tmp_path / "ssd"), LocalDestination(tmp_path / "nas")]
    return Rig(tmp_path, runner, source, files, locals_, bucket, proxy, admin=rclone_s3.admin_client())


@pytest.fixture
def local_rig(tmp_path: Path, runner: Runner) -> Rig:
    source = tmp_path / "src" / "card"
    files = make_card(source, seed=sum(map(ord, tmp_path.name)))
    locals_ = [LocalDestination(tmp_path / "ssd"), LocalDestination(tmp_path / "nas")]
    return Rig(tmp_path, runner, source, files, locals_, None, None)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not TALLY.scenarios:
        return
    rows = TALLY.rows()
    width = max(len(k) for k, _ in rows)
    terminalreporter.section("castoff reliability figures")
    terminalreporter.write_line(f"| {'figure':<{width}} | value |")
    terminalreporter.write_line(f"|{'-' * (width + 2)}|-------|")
    for k, v in rows:
        terminalreporter.write_line(f"| {k:<{width}} | {v} |")
