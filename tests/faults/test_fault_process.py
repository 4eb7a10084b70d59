"""castoff killed, interrupted or terminated at any moment: the re-run delivers everything once."""

from __future__ import annotations

import os
import random
import shutil
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from faults.check import BucketView, LocalView, check, count_fault, unaccounted_uploads, visible_is_right
from faults.plugin import make_card
from faults.proc import castoff, finish, keys, s3_url, start, wait_for_line
from server_fixtures import RcloneBucket, unique_bucket
from servers import RcloneServer

KILL_ITERATIONS = int(os.environ.get("CASTOFF_FAULT_KILLS", "25"))
SOAK_KILLS = int(os.environ.get("CASTOFF_SOAK_KILLS", "100"))


class Job:
    """One card, two folders and a bucket on the session's rclone, run through the CLI."""

    def __init__(self, tmp: Path, rclone: Any, tag: str, seed: int) -> None:
        self.tmp = tmp
        self.source = tmp / "src" / "card"
        if not self.source.exists():
            make_card(self.source, seed, big=4 * 1024 * 1024 + 5)
        self.state = tmp / f"state-{tag}"
        self.folders = [tmp / f"ssd-{tag}", tmp / f"nas-{tag}"]
        self.url = s3_url(
            rclone.bucket, f"{tag}/", rclone.url, part_size="1MiB", max_parallel="2", provider="rclone"
        )
        self.env = keys(rclone.access_key, rclone.secret_key)
        self.secret = rclone.secret_key
        self.server: RcloneServer = rclone.server
        self.views = [
            *(LocalView(str(f), f) for f in self.folders),
            BucketView(f"s3://{rclone.bucket}/{tag}", rclone.admin_client(), rclone.bucket, f"{tag}/"),
        ]

    def args(self, *extra: str) -> list[str]:
        out = ["copy", str(self.source), "--chunk-size", "1M", "--memory", "4M", "--bwlimit", "3M", *extra]
        for dest in [*map(str, self.folders), self.url]:
            out += ["--to", dest]
        return out

    def rerun_and_check(self, scenario: str, faults: int) -> None:
        r = castoff(*self.args("--quiet"), state=self.state, env=self.env, servers=[self.server])
        assert r.returncode == 0, r.stderr
        check(
            scenario=scenario,
            source=self.source,
            dests=self.views,
            state=self.state,
            faults=faults,
            secrets=[self.secret],
            printed=r.stdout + r.stderr,
        )


@pytest.fixture(scope="module")
def fresh_rclone() -> Any:
    """A server of this module's own, with its goroutines at hand: a re-run that hangs shows
    where rclone is as well as where castoff is. (The re-runs that hung > 180 s were castoff's:
    docs/reliability.md, bug 10.)"""
    with RcloneServer(debug=True) as server:
        yield server


@pytest.fixture
def kill_bucket(fresh_rclone: RcloneServer) -> RcloneBucket:
    bucket = unique_bucket()
    fresh_rclone.create_bucket(bucket)
    return RcloneBucket(fresh_rclone, bucket)


def kill_iterations(tmp_path: Path, rclone_s3: Any, n: int, seed: int) -> None:
    rng = random.Random(seed)
    for it in range(n):
        job = Job(tmp_path, rclone_s3, f"it{it}", seed)
        proc = start(job.args("--quiet"), state=job.state, env=job.env)
        time.sleep(rng.uniform(0.2, 2.5))
        proc.send_signal(signal.SIGKILL)
        finish(proc)
        count_fault()
        from faults.check import source_hashes

        visible_is_right(source_hashes(job.source), job.views)
        assert not unaccounted_uploads(job.state, job.views), f"iteration {it}"
        job.rerun_and_check("process: SIGKILL at a random moment, then a re-run", faults=0)
        for folder in job.folders:
            shutil.rmtree(folder, ignore_errors=True)


def test_sigkill_at_seeded_random_moments(tmp_path: Path, kill_bucket: Any) -> None:
    kill_iterations(tmp_path, kill_bucket, KILL_ITERATIONS, seed=20261122)


@pytest.mark.soak
def test_sigkill_soak(tmp_path: Path, kill_bucket: Any) -> None:
    kill_iterations(tmp_path, kill_bucket, SOAK_KILLS, seed=int(os.environ.get("CASTOFF_SOAK_SEED", "7")))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupt_exits_130_then_the_rerun_finishes(tmp_path: Path, rclone_s3: Any, sig: int) -> None:
    job = Job(tmp_path, rclone_s3, sig.name, seed=sig)
    proc = start(job.args("--json"), state=job.state, env=job.env)
    # some work done, the upload under way
    wait_for_line(proc, lambda line: '"progress"' in line and "s3://" in line)
    proc.send_signal(sig)
    _, err = finish(proc, servers=[job.server])
    assert proc.returncode == 130, err
    assert "resume" in err.lower() or "re-run" in err.lower()
    assert not unaccounted_uploads(job.state, job.views)
    from faults.check import source_hashes

    visible_is_right(source_hashes(job.source), job.views)
    job.rerun_and_check(f"process: {sig.name}, then a re-run", faults=1)
