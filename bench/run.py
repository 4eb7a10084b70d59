"""Benchmark castoff side by side with its peers, on the same data, in the same run.

Writes a Markdown table, a JSON file with every run's raw figures, and a PNG chart.

    python bench/run.py [--workload card|many-small|one-huge|all] [--scale X] [--runs N]
                        [--jobs local,s3,mixed] [--where tmpfs|disk] [--out bench/results]

Smoke run (seconds): python bench/run.py --workload card --scale 0.01 --runs 1 --jobs local

    python bench/run.py --scale-study [options of bench/scale.py]   (peak RSS and time vs scale)
    python bench/run.py --profile [options of bench/hotspots.py]    (py-spy flame graphs)
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from fsutil import claim_workdir, exit_on_signals, free_bytes, reset_dir, warm_up
from measure import GIB, MIB, Measurement, summarize
from peers import (
    JOBS,
    Peer,
    RcloneS3Server,
    RunContext,
    S3Target,
    Tools,
    castoff_failures,
    default_python,
    find_tools,
    peers_for,
    run_peer,
    unavailable,
)
from report import Row, chart, describe_machine, filesystem_of, markdown, to_json
from verify import Check, SourceIndex, check_s3_dir, check_tree, index_source
from workloads import WHERE, WORKLOADS, Params, Workload, clean_workdir, generate, planned_bytes

BENCH_DIR = Path(__file__).resolve().parent
N_LOCAL_DESTS = 2


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description="castoff side by side with cp+b3sum, rclone and aws s3 cp, in one run."
    )
    ap.add_argument("--workload", choices=[*WORKLOADS, "all"], default="card")
    ap.add_argument("--scale", type=float, default=1.0, help="multiplies file counts (default 1)")
    ap.add_argument("--runs", type=int, default=3, help="runs per tool; the median is reported")
    ap.add_argument(
        "--jobs", default="local,s3,mixed", help="comma-separated: local, s3, mixed (default all)"
    )
    ap.add_argument("--where", choices=sorted(WHERE), default="tmpfs")
    ap.add_argument("--workdir", type=Path, help="base folder for sources and destinations")
    ap.add_argument(
        "--s3-data",
        type=Path,
        default=Path("/var/tmp"),
        help="parent folder of the local S3 server's data directory (on disk; default /var/tmp)",
    )
    ap.add_argument("--out", type=Path, default=BENCH_DIR / "results")
    ap.add_argument("--huge-gib", type=float, default=8.0, help="one-huge file size (× --scale)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout", type=float, help="seconds per tool run (default: from the size)")
    ap.add_argument(
        "--python",
        default=default_python(),
        help="the Python that runs `-m castoff` (default: the repo's .venv)",
    )
    ap.add_argument("--sample", type=int, default=24, help="files hashed per destination check")
    ap.add_argument(
        "--sync-after",
        action="store_true",
        help="end every peer's timed steps with `sync` (castoff fsyncs by itself); for disk runs",
    )
    ap.add_argument(
        "--drop-caches",
        action="store_true",
        help="before each run (untimed): sync and drop the page cache, if permitted; disk only",
    )
    ap.add_argument("--keep-workloads", action="store_true", help="keep the generated sources for next time")
    ap.add_argument(
        "--no-warm-up",
        dest="warm_up",
        action="store_false",
        help="skip the untimed write of each job's bytes before its runs (fsutil.warm_up)",
    )
    args = ap.parse_args(argv)
    jobs = [j.strip() for j in args.jobs.split(",") if j.strip()]
    bad = [j for j in jobs if j not in JOBS]
    if bad or not jobs:
        ap.error(f"--jobs: unknown {bad}; choose from {', '.join(JOBS)}")
    if args.runs < 1:
        ap.error("--runs must be at least 1")
    args.jobs = jobs
    return args


def drop_caches() -> str | None:
    """sync + drop the page cache (root only); returns why not, or None."""
    subprocess.run(["sync"], timeout=600, check=False)
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError as exc:
        return f"cannot drop caches: {exc}"
    return None


class Bench:
    """One benchmark session: every workload, job, peer and run, and the rows they give."""

    def __init__(self, args: argparse.Namespace, tools: Tools) -> None:
        self.args = args
        self.tools = tools
        self.base: Path = args.workdir or WHERE[args.where]
        self.rows: list[Row] = []
        self.workloads: dict[str, dict[str, Any]] = {}
        self.notes: list[str] = []
        self.server: RcloneS3Server | None = None
        self.server_error: str | None = None
        self.created_sources: list[Path] = []

    # ----------------------------------------------------------------- set-up

    def s3_server(self) -> RcloneS3Server | None:
        if self.server is not None or self.server_error is not None:
            return self.server
        if not self.tools.rclone.ok or not self.tools.rclone.path:
            self.server_error = "rclone is needed for the local S3 server (" + self.tools.rclone.hint + ")"
            return None
        try:
            self.server = RcloneS3Server(self.tools.rclone.path, self.args.s3_data).start()
            srv = self.server
            print(f"local S3: rclone serve s3 at {srv.endpoint}, data in {srv.data_dir}")
        except (OSError, RuntimeError) as exc:
            self.server_error = f"local S3 server did not start: {exc}"
        return self.server

    def timeout_for(self, w: Workload) -> float:
        if self.args.timeout:
            return float(self.args.timeout)
        return 120 + 120 * max(w.gib, 0.01) * (N_LOCAL_DESTS + 1)

    def preflight(self, p: Params) -> str | None:
        """Why this workload cannot fit (None: it fits)."""
        nbytes = planned_bytes(p)
        root = self.base / "src" / p.name
        needs_local = any(j in ("local", "mixed") for j in self.args.jobs)
        need = nbytes * (N_LOCAL_DESTS if needs_local else 0) + 256 * MIB
        if not root.exists():
            need += nbytes
        have = free_bytes(self.base)
        if need > have:
            return (
                f"needs {need / GIB:.1f} GiB free under {self.base}, has {have / GIB:.1f} GiB "
                f"(use --where disk, a smaller --scale or --huge-gib)"
            )
        if any(j in ("s3", "mixed") for j in self.args.jobs):
            s3_need = nbytes + 256 * MIB
            s3_have = free_bytes(self.args.s3_data)
            if s3_need > s3_have:
                return f"the S3 data dir needs {s3_need / GIB:.1f} GiB, has {s3_have / GIB:.1f} GiB"
        return None

    # ----------------------------------------------------------------- one run

    def context(self, peer: Peer, w: Workload, run: int) -> RunContext:
        dests = tuple(self.base / "dst" / f"d{i + 1}" for i in range(N_LOCAL_DESTS))
        s3: S3Target | None = None
        if peer.job in ("s3", "mixed"):
            assert self.server is not None
            s3 = self.server.target(f"{w.name}-{peer.job}-{peer.slug}-{run + 1}")
        return RunContext(
            src=w.root,
            local_dests=dests if peer.job in ("local", "mixed") else (),
            s3=s3,
            state_dir=self.base / "state" / f"{peer.job}-{peer.slug}",
            scratch=self.base / "scratch",
            log_dir=self.base / "logs" / f"{w.name}-{peer.job}-{peer.slug}-{run + 1}",
            timeout_s=self.timeout_for(w),
            sync_after=self.args.sync_after,
        )

    def clear(self, ctx: RunContext) -> None:
        """Empty every destination and castoff's state (not timed)."""
        for d in ctx.local_dests:
            reset_dir(d)
        reset_dir(ctx.state_dir)
        reset_dir(ctx.scratch)
        if ctx.s3 is not None and ctx.s3.local_dir.exists():
            shutil.rmtree(ctx.s3.local_dir)

    def verify(self, index: SourceIndex, ctx: RunContext) -> list[Check]:
        checks = [check_tree(index, d / index.root.name, f"local {d.name}") for d in ctx.local_dests]
        if ctx.s3 is not None:
            checks.append(check_s3_dir(index, ctx.s3.local_dir, f"s3 {ctx.s3.prefix}"))
        return checks

    def one_run(self, peer: Peer, w: Workload, index: SourceIndex, run: int) -> dict[str, Any]:
        ctx = self.context(peer, w, run)
        self.clear(ctx)
        if self.args.drop_caches:
            why = drop_caches()
            if why and why not in self.notes:
                self.notes.append(why)
        cpu0 = self.server.cpu_seconds() if self.server and ctx.s3 else None
        m: Measurement = run_peer(peer, self.tools, ctx)
        cpu1 = self.server.cpu_seconds() if self.server and ctx.s3 else None
        failures = castoff_failures(ctx.state_dir) if peer.is_castoff and not m.ok else None
        checks = self.verify(index, ctx) if m.ok else []
        verified = m.ok and all(c.ok for c in checks)
        record = m.to_dict()
        record.update(
            {
                "run": run + 1,
                "verified": verified,
                "checks": [asdict(c) for c in checks],
                "checks_failed": [c.summary() for c in checks if not c.ok],
                "server_cpu_s": (cpu1 - cpu0) if cpu0 is not None and cpu1 is not None else None,
                "castoff_report": failures,
            }
        )
        self.clear(ctx)
        status = "ok, verified" if verified else ("BROKEN COPY" if m.ok else "FAILED")
        detail = m.error or "; ".join(record["checks_failed"])
        print(
            f"  {w.name}/{peer.job} run {run + 1}: {peer.name:<34} {m.wall_s:7.2f} s wall "
            f"{m.cpu_s:7.2f} s CPU  {status}{': ' + detail if detail else ''}",
            flush=True,
        )
        return record

    # ----------------------------------------------------------------- workloads

    def run_workload(self, name: str) -> None:
        a = self.args
        p = Params(name=name, scale=a.scale, seed=a.seed, huge_gib=a.huge_gib)
        why = self.preflight(p)
        if why:
            print(f"workload {name}: SKIPPED: {why}")
            self.notes.append(f"workload {name} skipped: {why}")
            return
        existed = (self.base / "src" / name).exists()
        t0 = time.perf_counter()
        w = generate(p, self.base)
        if not existed:
            self.created_sources.append(w.root)
        index = index_source(w.root, sample=a.sample, seed=a.seed)
        if (index.files, index.nbytes) != (w.files, w.nbytes):
            raise RuntimeError(f"workload {name} on disk differs from its manifest; delete {w.root}")
        self.workloads[name] = {
            "root": str(w.root),
            "files": w.files,
            "bytes": w.nbytes,
            "gib": w.gib,
            "generator": w.generator,
            "params": w.params,
            "prepare_s": round(time.perf_counter() - t0, 2),
        }
        for job in a.jobs:
            self.run_job(w, index, job)

    def run_job(self, w: Workload, index: SourceIndex, job: str) -> None:
        rows: list[tuple[Peer, Row]] = []
        server_needed = job in ("s3", "mixed")
        server = self.s3_server() if server_needed else None
        for peer in peers_for(job):
            row = Row(w.name, job, peer.name, peer.is_castoff, peer.verifies, available=True)
            missing = unavailable(peer, self.tools)
            if missing:
                row.available = False
                row.reason = "; ".join(x.reason for x in missing)
                row.hint = "; ".join(x.hint for x in missing if x.hint)
            elif server_needed and server is None:
                row.available = False
                row.reason = self.server_error or "no S3 server"
            rows.append((peer, row))
            self.rows.append(row)
        print(f"{w.name} → {job}: {w.files} files, {w.gib:.2f} GiB, {self.args.runs} run(s)")
        for peer, row in rows:
            if not row.available:
                print(f"  {peer.name}: not available: {row.reason}" + (f" ({row.hint})" if row.hint else ""))
        if self.args.warm_up:
            dests = N_LOCAL_DESTS * (job in ("local", "mixed")) + (job in ("s3", "mixed"))
            t0 = time.perf_counter()
            written = warm_up(self.base / "dst", w.nbytes * dests)
            print(
                f"  warm-up: {written / GIB:.2f} GiB written and deleted,"
                f" {time.perf_counter() - t0:.1f} s, not timed"
            )
        # Interleave: run 1 of every tool, then run 2..., so drift affects them alike; each run
        # starts one tool further on, so no tool is always the one after a pause or a clean-up.
        ready = [(peer, row) for peer, row in rows if row.available]
        for run in range(self.args.runs):
            k = run % len(ready) if ready else 0
            for order, (peer, row) in enumerate(ready[k:] + ready[:k], start=1):
                record = self.one_run(peer, w, index, run)
                record["order"] = order  # its place in the round
                row.runs.append(record)
        for _, row in rows:
            if row.available:
                good = [r for r in row.runs if r["ok"] and r["verified"]]
                row.summary = summarize(
                    [_as_measurement(r) for r in good],
                    files=w.files,
                    nbytes=w.nbytes,
                    server_cpu_s=[r["server_cpu_s"] for r in good if r["server_cpu_s"] is not None],
                )

    def cleanup(self) -> None:
        if self.server is not None:
            self.server.stop()
        clean_workdir(self.base, self.created_sources, keep_workloads=self.args.keep_workloads)


def _as_measurement(r: dict[str, Any]) -> Measurement:
    return Measurement(
        ok=r["ok"],
        wall_s=r["wall_s"],
        user_s=r["user_s"],
        sys_s=r["sys_s"],
        maxrss_bytes=r["maxrss_bytes"],
        tree_rss_peak_bytes=r["tree_rss_peak_bytes"],
        timed_out=r["timed_out"],
        error=r["error"],
    )


def standard_notes(args: argparse.Namespace, tools: Tools, base: Path) -> list[str]:
    cpus = len(os.sched_getaffinity(0))
    notes = [
        "wall s: median over the verified runs (min–max beside it); runs are interleaved across tools, "
        "each round starting one tool further on, after an untimed warm-up write (bench/README.md).",
        "CPU s: user+sys of the tool's whole process tree (os.wait4 rusage, children included); "
        "CPU s/GiB divides by the source size, whatever the number of destinations.",
        "peak RSS: the kernel's ru_maxrss, i.e. the largest single process of the tree "
        "(the JSON also has the psutil-sampled sum over the tree).",
        "every run is checked afterwards: file count and sizes at each destination, and "
        f"{args.sample} files hashed; a run that fails this check is flagged "
        "and left out of the medians.",
        "castoff fsyncs each file and directory; cp and rclone do not"
        + (" (a final `sync` is timed for them: --sync-after)." if args.sync_after else "."),
    ]
    if filesystem_of(base)["fstype"] == "tmpfs":
        notes.append(
            "tmpfs: the page cache cannot be dropped (the files live in it), so every read "
            "and read-back comes from RAM: these figures measure CPU and memory bandwidth, "
            "not storage; castoff's fsync and fadvise(DONTNEED) cost next to nothing here."
        )
    else:
        notes.append(
            "disk: figures are noisy (page cache, writeback, other load); "
            + (
                "the page cache was dropped before each run."
                if args.drop_caches
                else "the page cache was NOT dropped between runs (--drop-caches)."
            )
        )
    if any(j in ("s3", "mixed") for j in args.jobs):
        notes.append(
            f"S3 jobs upload over HTTP to rclone serve s3 on 127.0.0.1, sharing the same {cpus} "
            "CPU(s) with the tool: the server is usually the bottleneck, so CPU s/GiB (client "
            "only) is the fair figure; wall time is end-to-end against a local rclone. The "
            "server's own CPU is shown separately."
        )
    if not tools.castoff.ok:
        notes.append(f"castoff: not available: {tools.castoff.reason}")
    return notes


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # The scale study and the profiler are their own commands; run.py hands over to them.
    for flag, module in (("--scale-study", "scale"), ("--profile", "hotspots")):
        if flag in argv:
            argv.remove(flag)
            other: Any = importlib.import_module(module)
            return int(other.main(argv))
    args = parse_args(argv)
    exit_on_signals()
    started = dt.datetime.now().astimezone()
    stamp = started.strftime("%Y%m%d-%H%M%S")
    tools = find_tools(args.python)
    for name, av in tools.by_name().items():
        shown = (av.version or av.path or "ok") if av.ok else f"not available: {av.reason} ({av.hint})"
        print(f"{name:8} {shown}")
    bench = Bench(args, tools)
    lock = claim_workdir(bench.base, bench.cleanup)
    if lock is None:
        return 2
    names = list(WORKLOADS) if args.workload == "all" else [args.workload]
    try:
        for name in names:
            bench.run_workload(name)
        # Both places a run can use, whichever this one used: the report says what each one is.
        fs_paths = {"workload dir": bench.base, "tmpfs (--where tmpfs)": WHERE["tmpfs"]}
        fs_paths["disk (--where disk)"] = WHERE["disk"]
        if bench.server is not None:
            fs_paths["S3 data dir"] = bench.server.data_dir
        machine = describe_machine(
            fs_paths,
            {k: (v.version if v.ok else f"not available ({v.reason})") for k, v in tools.by_name().items()},
        )
    finally:
        bench.cleanup()
    notes = bench.notes + standard_notes(args, tools, bench.base)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / stamp
    png_note = chart(bench.rows, stem.with_suffix(".png"))
    notes.append(png_note)
    md = markdown(
        bench.rows,
        title=f"castoff benchmark {started:%Y-%m-%d %H:%M %Z}",
        machine=machine,
        workloads=bench.workloads,
        notes=notes,
    )
    stem.with_suffix(".md").write_text(md)
    arg_dict = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    stem.with_suffix(".json").write_text(
        to_json(
            bench.rows,
            args=arg_dict,
            machine=machine,
            workloads=bench.workloads,
            notes=notes,
            started=started.isoformat(),
        )
    )
    print()
    print(md)
    print(f"written: {stem}.md, {stem}.json" + (f", {stem}.png" if png_note.startswith("PNG chart:") else ""))
    broken = [r for r in bench.rows if r.available and r.runs and not r.verified]
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
