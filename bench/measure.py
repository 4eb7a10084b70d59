"""Run a command (or a sequence of commands) and measure its cost.

Wall time, user+sys CPU of the whole process tree, peak RSS, and medians over runs.

How the figures are taken (the README repeats this):

* **CPU**: each command is started in its own session and reaped with ``os.wait4``, whose rusage
  covers the command *and every descendant it reaped* (a shell pipeline, ``xargs``' children, ...).
  A daemon that double-forks away is not counted; none of the tools measured here does that.
* **Peak RSS**: two figures. ``maxrss`` is the kernel's ``ru_maxrss`` from ``wait4``: the largest
  resident set of any *single* process in the tree (exact, never missed). ``tree_rss_peak`` is the
  sum of RSS over the live tree, sampled by psutil every 50 ms when psutil is importable (may miss
  short peaks; ``None`` without psutil).
* **Timeouts**: every command has one; on expiry its whole process group is killed (SIGKILL) and
  the measurement is marked ``timed_out``.
"""

from __future__ import annotations

import importlib
import os
import signal
import statistics
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any


def _optional(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


psutil = _optional("psutil")  # optional: only for the sampled tree RSS

GIB = 1 << 30
MIB = 1 << 20
SAMPLE_INTERVAL_S = 0.05


@dataclass(frozen=True)
class Step:
    """One command of a measured sequence (a peer may need several: cp, cp, b3sum, b3sum -c...)."""

    label: str
    argv: Sequence[str]
    cwd: Path | None = None
    env: Mapping[str, str] | None = None
    stdout_path: Path | None = None  # where stdout goes (None: discarded)
    thread_cpu: bool = False  # also sample each thread's CPU seconds (StepResult.thread_cpu_s)


@dataclass
class StepResult:
    label: str
    argv: list[str]
    returncode: int | None
    wall_s: float
    user_s: float
    sys_s: float
    maxrss_bytes: int
    timed_out: bool
    stderr_tail: str
    #: "pid:tid" -> (process name, CPU seconds at the last sample); only with Step.thread_cpu
    thread_cpu_s: dict[str, tuple[str, float]] = field(default_factory=dict)


@dataclass
class Measurement:
    """The cost of one run of one tool: the sum over its steps (peaks are maxima)."""

    ok: bool
    wall_s: float
    user_s: float
    sys_s: float
    maxrss_bytes: int
    tree_rss_peak_bytes: int | None
    timed_out: bool
    steps: list[StepResult] = field(default_factory=list)
    error: str | None = None

    @property
    def cpu_s(self) -> float:
        return self.user_s + self.sys_s

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["cpu_s"] = self.cpu_s
        return d


class _TreeRssSampler(threading.Thread):
    """Sample the summed RSS of a process and its descendants until stopped."""

    def __init__(self, pid: int, *, threads: bool = False) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak = 0
        self.threads = threads
        self.thread_cpu: dict[str, tuple[str, float]] = {}
        self._stop_event = threading.Event()

    def run(self) -> None:
        if psutil is None:
            return
        try:
            root = psutil.Process(self.pid)
        except psutil.Error:
            return
        while not self._stop_event.is_set():
            total = 0
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.Error:
                return
            for proc in procs:
                try:
                    total += proc.memory_info().rss
                    if self.threads:
                        self._sample_threads(proc)
                except psutil.Error:
                    continue
            self.peak = max(self.peak, total)
            self._stop_event.wait(SAMPLE_INTERVAL_S)

    def _sample_threads(self, proc: Any) -> None:
        # A thread's last sample stands for its total: one that ends between two samples loses
        # at most SAMPLE_INTERVAL_S of CPU.
        name = proc.name()
        for t in proc.threads():
            self.thread_cpu[f"{proc.pid}:{t.id}"] = (name, t.user_time + t.system_time)

    def stop(self) -> int:
        self._stop_event.set()
        self.join(timeout=2)
        return self.peak


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _tail(path: Path, limit: int = 2000) -> str:
    try:
        data = path.read_bytes()
    except OSError:
        return ""
    return data[-limit:].decode("utf-8", "replace").strip()


def run_step(step: Step, *, timeout_s: float, log_dir: Path) -> tuple[StepResult, int]:
    """Run one command to completion (or timeout); return its result and sampled tree RSS peak."""
    log_dir.mkdir(parents=True, exist_ok=True)
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in step.label)
    stderr_path = log_dir / f"{safe}.stderr"
    env = dict(step.env) if step.env is not None else None
    with (
        stderr_path.open("wb") as err,
        step.stdout_path.open("wb") if step.stdout_path else open(os.devnull, "wb") as out,
    ):
        start = time.perf_counter()
        proc = subprocess.Popen(
            list(step.argv),
            cwd=step.cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,  # its own process group, so a timeout kills the whole tree
        )
        sampler = _TreeRssSampler(proc.pid, threads=step.thread_cpu)
        sampler.start()
        timed_out = threading.Event()
        lock = threading.Lock()
        exited = False

        def on_timeout() -> None:
            with lock:
                if not exited:  # the pid (and so the group id) is still ours: not yet reaped
                    timed_out.set()
                    _kill_group(proc.pid)

        timer = threading.Timer(timeout_s, on_timeout)
        timer.daemon = True
        timer.start()
        # Wait for the exit without reaping (WNOWAIT), so the timer can never signal a reused pid.
        try:
            os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
        except BaseException:
            # Ctrl-C or SIGTERM in the harness: the command runs in its own session and would
            # not get the signal, so end it (and its children) before giving up.
            timer.cancel()
            _kill_group(proc.pid)
            os.wait4(proc.pid, 0)
            sampler.stop()
            raise
        wall = time.perf_counter() - start
        with lock:
            exited = True
        timer.cancel()
        # Children still running in the group would escape the measurement; none of the tools
        # here leaves any, and killing the group now (leader still a zombie) is safe.
        _kill_group(proc.pid)
        _, status, usage = os.wait4(proc.pid, 0)
        tree_peak = sampler.stop()
    proc.returncode = os.waitstatus_to_exitcode(status)  # already reaped by wait4
    result = StepResult(
        label=step.label,
        argv=[str(a) for a in step.argv],
        returncode=proc.returncode,
        wall_s=wall,
        user_s=usage.ru_utime,
        sys_s=usage.ru_stime,
        maxrss_bytes=usage.ru_maxrss * 1024,  # Linux reports KiB
        timed_out=timed_out.is_set(),
        stderr_tail=_tail(stderr_path),
        thread_cpu_s=dict(sampler.thread_cpu),
    )
    return result, max(tree_peak, result.maxrss_bytes if psutil is not None else 0)


def run_steps(steps: Sequence[Step], *, timeout_s: float, log_dir: Path) -> Measurement:
    """Run steps in order, stopping at the first failure; the timeout covers the whole sequence."""
    deadline = time.monotonic() + timeout_s
    start = time.perf_counter()
    results: list[StepResult] = []
    tree_peak = 0
    error: str | None = None
    for step in steps:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            error = f"timeout before step {step.label!r}"
            break
        result, peak = run_step(step, timeout_s=remaining, log_dir=log_dir)
        results.append(result)
        tree_peak = max(tree_peak, peak)
        if result.timed_out:
            error = f"step {step.label!r} timed out after {timeout_s:.0f} s"
            break
        if result.returncode != 0:
            tail = result.stderr_tail.splitlines()[-3:] if result.stderr_tail else []
            error = f"step {step.label!r} exited {result.returncode}"
            if tail:
                error += ": " + " | ".join(tail)
            break
    return Measurement(
        ok=error is None,
        wall_s=time.perf_counter() - start,
        user_s=sum(r.user_s for r in results),
        sys_s=sum(r.sys_s for r in results),
        maxrss_bytes=max((r.maxrss_bytes for r in results), default=0),
        tree_rss_peak_bytes=tree_peak if psutil is not None else None,
        timed_out=any(r.timed_out for r in results) or (error or "").startswith("timeout"),
        steps=results,
        error=error,
    )


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


@dataclass(frozen=True)
class Summary:
    """Medians over the successful runs of one tool on one job (peaks are maxima)."""

    runs: int
    ok_runs: int
    wall_s: float | None
    wall_min_s: float | None
    wall_max_s: float | None
    cpu_s: float | None
    cpu_s_per_gib: float | None
    maxrss_bytes: int | None
    tree_rss_peak_bytes: int | None
    files_per_s: float | None
    mib_per_s: float | None
    server_cpu_s_per_gib: float | None


def summarize(
    runs: Sequence[Measurement],
    *,
    files: int,
    nbytes: int,
    server_cpu_s: Sequence[float] = (),
) -> Summary:
    good = [m for m in runs if m.ok]
    walls = [m.wall_s for m in good]
    cpus = [m.cpu_s for m in good]
    wall = median(walls)
    cpu = median(cpus)
    gib = nbytes / GIB if nbytes else 0.0
    tree = [m.tree_rss_peak_bytes for m in good if m.tree_rss_peak_bytes is not None]
    server = median(list(server_cpu_s))
    return Summary(
        runs=len(runs),
        ok_runs=len(good),
        wall_s=wall,
        wall_min_s=min(walls) if walls else None,
        wall_max_s=max(walls) if walls else None,
        cpu_s=cpu,
        cpu_s_per_gib=(cpu / gib) if cpu is not None and gib else None,
        maxrss_bytes=max((m.maxrss_bytes for m in good), default=None),
        tree_rss_peak_bytes=max(tree) if tree else None,
        files_per_s=(files / wall) if wall else None,
        mib_per_s=(nbytes / MIB / wall) if wall else None,
        server_cpu_s_per_gib=(server / gib) if server is not None and gib else None,
    )


def process_cpu_seconds(pid: int) -> float | None:
    """user+sys CPU seconds a live process has used so far (from /proc; Linux only)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    # fields[0] is the state (field 3); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / ticks
