"""castoff killed, interrupted or terminated at any moment: the re-run delivers everything once."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from faults.check import BucketView, LocalView, check, count_fault, unaccounted_uploads, visible_is_right
from faults.plugin import make_card
from faults.proc import castoff, env_with, finish, keys, s3_url, start, wait_for_line
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


#: castoff as ``python -c SLOW_DEVICE …``: every fsync of a file takes 20 ms more, as a USB disk's
#: can, so small files go through the sync committers (LocalDestination.slow_sync)
SLOW_DEVICE = """
import os, runpy, stat, sys, time
real_fsync = os.fsync
def fsync(fd):
    if stat.S_ISREG(os.fstat(fd).st_mode):
        time.sleep(0.02)
    real_fsync(fd)
os.fsync = fsync
if os.environ.get("CASTOFF_TEST_PARTIALS"):  # hidden partial files, as on NFS or SMB
    import castoff.destinations.local
    castoff.destinations.local._O_TMPFILE = None
sys.argv = ["castoff", *sys.argv[1:]]
runpy.run_module("castoff", run_name="__main__", alter_sys=True)
"""


def test_sigkill_while_small_files_wait_for_the_sync_committers(tmp_path: Path) -> None:
    """Killed while several small files are between their write and their name (each holding an
    unnamed file, or every other iteration a hidden partial file, some being fsynced by the sync
    committers): nothing a user sees is partial, and the re-run removes what the kill left and
    delivers every file once, verified."""
    rng = random.Random(20261122)
    source = tmp_path / "src" / "card"
    for i in range(600):
        data = rng.randbytes(rng.randint(1, 60_000))
        path = source / "DCIM" / f"{100 + i // 60}CANON" / f"IMG_{i:04}.JPG"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (source / "CLIP").mkdir()
    (source / "CLIP" / "C0001.MP4").write_bytes(rng.randbytes(3 * 1024 * 1024 + 7))
    from faults.check import source_hashes

    want = source_hashes(source)
    killed = 0
    for it in range(6):
        state, folders = tmp_path / f"state-{it}", [tmp_path / f"ssd-{it}", tmp_path / f"nas-{it}"]
        views = [LocalView(str(f), f) for f in folders]
        args = ["copy", str(source), *(a for f in folders for a in ("--to", str(f))), "--quiet"]
        proc = subprocess.Popen(
            [sys.executable, "-c", SLOW_DEVICE, "--state-dir", str(state), *args],
            env=env_with(**({"CASTOFF_TEST_PARTIALS": "1"} if it % 2 else {})),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(rng.uniform(0.4, 1.6))
        proc.send_signal(signal.SIGKILL)
        finish(proc)
        killed += proc.returncode == -signal.SIGKILL
        count_fault()
        visible_is_right(want, views)
        r = castoff(*args, state=state)
        assert r.returncode == 0, r.stderr
        check(
            scenario="process: SIGKILL while small files wait for the sync committers, then a re-run",
            source=source,
            dests=views,
            state=state,
        )
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)
    assert killed >= 4, killed  # (the kills came while the job ran, not after it ended)


def test_four_slow_destinations_under_a_low_open_files_limit(tmp_path: Path) -> None:
    """Each small file waiting for a sync committer keeps its descriptor (up to 64 a destination):
    under macOS's 256, or this test's 100, four slow destinations ran out mid-job (EMFILE, files
    failed). castoff raises its soft limit towards the hard one."""
    import resource

    rng = random.Random(7)
    source = tmp_path / "card"
    for i in range(400):
        path = source / "DCIM" / f"{100 + i // 60}CANON" / f"IMG_{i:04}.JPG"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(rng.randint(1, 60_000)))
    folders = [tmp_path / f"d{i}" for i in range(4)]

    def low_limit() -> None:
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        resource.setrlimit(resource.RLIMIT_NOFILE, (100, hard))

    state = tmp_path / "state"
    r = subprocess.run(
        [sys.executable, "-c", SLOW_DEVICE, "--state-dir", str(state), "copy", str(source), "--quiet"]
        + [a for f in folders for a in ("--to", str(f))],
        env=env_with(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        preexec_fn=low_limit,  # only the limit, before exec
    )
    assert r.returncode == 0, r.stderr
    check(
        scenario="four slow destinations under a low open files limit",
        source=source,
        dests=[LocalView(str(f), f) for f in folders],
        state=state,
    )
