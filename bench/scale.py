"""Scale study: castoff's peak RSS and wall time as the files get more numerous and bigger.

Two series, each with 1 and with 4 local destinations:

* **count**: the many-small workload (files of 4-64 KiB, 100 per folder) at 1k, 10k, 100k and
  200k files; after each 1-destination run, the same job again with the same catalog (nothing to
  copy: it must decide from the catalog, without reading the files, unless ``--rehash``);
* **size**: one file of 1 MiB, 32 MiB, 1 GiB and 8 GiB.

Writes ``scale-<stamp>.md``, ``.json`` and ``.png`` (peak RSS and wall time against file count and
file size) to ``bench/results/``. Every run is checked afterwards like ``bench/run.py``'s.

    python bench/scale.py [--counts 1000,10000,100000,200000] [--sizes 1M,32M,1G,8G]
                          [--dests 1,4] [--where tmpfs|disk] [--runs 1]

(also ``bench/run.py --scale-study ...`` and ``make bench-scale``)
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from fsutil import claim_workdir, exit_on_signals, free_bytes, reset_dir, tree_bytes, warm_up
from measure import GIB, MIB, Measurement, summarize
from peers import RunContext, Tools, add_workdir_options, castoff_failures, castoff_only, peers_for, run_peer
from report import describe_machine, filesystem_of
from verify import SourceIndex, check_tree, index_source
from workloads import WHERE, Params, Workload, clean_workdir, drop_workload, generate, plan

BENCH_DIR = Path(__file__).resolve().parent
RSS_GOAL_MIB = 300
SMALL_FILES_BASE = Params(name="many-small").small_files  # the count that --scale 1 gives
_UNITS = {"": 1, "K": 1 << 10, "M": MIB, "G": GIB, "T": 1 << 40}


def parse_size(text: str) -> int:
    """'1M', '32MiB', '1.5G', '4096' -> bytes (binary units)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?\s*", text.upper())
    if not m:
        raise ValueError(f"not a size: {text!r} (e.g. 1M, 32M, 1G, 8G)")
    return max(1, int(float(m.group(1)) * _UNITS[m.group(2)]))


def _int_list(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def size_label(nbytes: int) -> str:
    for unit, factor in (("GiB", GIB), ("MiB", MIB), ("KiB", 1 << 10)):
        if nbytes >= factor:
            value = nbytes / factor
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{nbytes} B"


@dataclass(frozen=True)
class Point:
    """One workload of the study; it is run once per destination count."""

    series: str  # "count" or "size"
    params: Params
    files: int
    nbytes: int

    @property
    def label(self) -> str:
        if self.series == "count":
            return f"{self.files} files"
        return size_label(self.nbytes)


def count_point(n: int, kib: tuple[int, int] = (4, 64)) -> Point:
    p = Params(name="many-small", scale=n / SMALL_FILES_BASE, small_min_kib=kib[0], small_max_kib=kib[1])
    files = plan(p)
    return Point("count", p, len(files), sum(s for _, s in files))


def size_point(nbytes: int) -> Point:
    # one-huge's size is huge_gib * scale GiB, rounded down to a byte and at least 1 MiB.
    p = Params(name="one-huge", scale=1.0, huge_gib=nbytes / GIB)
    files = plan(p)
    return Point("size", p, len(files), sum(s for _, s in files))


@dataclass
class Result:
    """castoff on one point with one destination count (and, for counts, the re-run)."""

    series: str
    label: str
    files: int
    nbytes: int
    dests: int
    runs: list[dict[str, Any]] = field(default_factory=list)
    rerun: dict[str, Any] | None = None
    skipped: str = ""

    @property
    def verified(self) -> bool:
        return bool(self.runs) and all(r["verified"] for r in self.runs)

    def summary(self) -> dict[str, Any]:
        good = [_measurement(r) for r in self.runs if r["verified"]]
        return asdict(summarize(good, files=self.files, nbytes=self.nbytes))


def _measurement(r: dict[str, Any]) -> Measurement:
    keys = ("ok", "wall_s", "user_s", "sys_s", "maxrss_bytes", "tree_rss_peak_bytes", "timed_out", "error")
    return Measurement(**{k: r[k] for k in keys})


class Study:
    """Runs every point and destination count, one after the other, in one work folder."""

    def __init__(self, args: argparse.Namespace, tools: Tools) -> None:
        self.args = args
        self.tools = tools
        self.base: Path = args.workdir or (WHERE[args.where] / "scale")
        self.results: list[Result] = []
        self.notes: list[str] = []
        self.created: list[Path] = []
        self.castoff = peers_for("local")[0]

    def timeout_for(self, point: Point, dests: int) -> float:
        if self.args.timeout:
            return float(self.args.timeout)
        # generous: 20 ms per file and 60 s per GiB, per destination, plus start-up
        return 120 + dests * (0.02 * point.files + 60 * point.nbytes / GIB)

    def room_needed(self, point: Point, dests: int) -> int:
        source = 0 if (self.base / "src" / point.params.name).exists() else point.nbytes
        # each small file takes at least a 4 KiB block (and a directory entry) at each copy
        on_disk = point.nbytes + 4096 * point.files
        return source + dests * on_disk + 256 * MIB

    def why_skip(self, point: Point, dests: int) -> str:
        cap = self.args.multi_max_files
        if dests > 1 and cap and point.files > cap:
            return f"more than --multi-max-files {cap} files with {dests} destinations"
        need, have = self.room_needed(point, dests), free_bytes(self.base)
        if need > have:
            return (
                f"needs {need / GIB:.1f} GiB free under {self.base}, has {have / GIB:.1f} GiB "
                "(--where disk, or fewer destinations)"
            )
        return ""

    def context(self, w: Workload, dests: int, tag: str) -> RunContext:
        return RunContext(
            src=w.root,
            local_dests=tuple(self.base / "dst" / f"d{i + 1}" for i in range(dests)),
            s3=None,
            state_dir=self.base / "state",
            scratch=self.base / "scratch",
            log_dir=self.base / "logs" / tag,
            timeout_s=0.0,  # set per run below
        )

    def clear(self, ctx: RunContext) -> None:
        for d in ctx.local_dests:
            reset_dir(d)
        reset_dir(ctx.state_dir)
        reset_dir(ctx.scratch)

    def measure(self, ctx: RunContext, index: SourceIndex, timeout: float) -> dict[str, Any]:
        ctx = replace(ctx, timeout_s=timeout)
        m = run_peer(self.castoff, self.tools, ctx)
        checks = [check_tree(index, d / index.root.name, f"local {d.name}") for d in ctx.local_dests]
        record = m.to_dict()
        record["verified"] = m.ok and all(c.ok for c in checks)
        # castoff's state folder after the run: its catalog and the job's reports (a re-run adds
        # its own: every job records every file, README "Keeping the catalog small")
        record["state_bytes"] = tree_bytes(ctx.state_dir)
        record["checks_failed"] = [c.summary() for c in checks if not c.ok]
        if not m.ok:
            record["castoff_report"] = castoff_failures(ctx.state_dir)
            if record["castoff_report"]:
                print(f"    castoff's report: {json.dumps(record['castoff_report'])[:1500]}", flush=True)
        return record

    def run_point(self, point: Point) -> None:
        todo = [(d, self.why_skip(point, d)) for d in self.args.dests]
        for dests, why in todo:
            if why:
                self.results.append(
                    Result(point.series, point.label, point.files, point.nbytes, dests, skipped=why)
                )
                print(f"{point.series} {point.label}, {dests} dest(s): SKIPPED: {why}", flush=True)
        runnable = [d for d, why in todo if not why]
        if not runnable:
            return
        existed = (self.base / "src" / point.params.name).exists()
        w = generate(point.params, self.base)
        if not existed and w.root not in self.created:
            self.created.append(w.root)
        index = index_source(w.root, sample=self.args.sample, seed=1)
        warm_up(self.base / "dst", w.nbytes * max(runnable))  # (fsutil.warm_up: not timed)
        for dests in runnable:
            self.run_dests(point, w, index, dests)
        if w.root in self.created and not self.args.keep_workloads:
            drop_workload(w.root)  # room for the next point
            self.created.remove(w.root)

    def run_dests(self, point: Point, w: Workload, index: SourceIndex, dests: int) -> None:
        res = Result(point.series, point.label, point.files, point.nbytes, dests)
        self.results.append(res)
        timeout = self.timeout_for(point, dests)
        tag = f"{point.series}-{point.files}x{point.nbytes}-{dests}"
        for run in range(self.args.runs):
            ctx = self.context(w, dests, f"{tag}-{run + 1}")
            self.clear(ctx)
            record = self.measure(ctx, index, timeout)
            res.runs.append(record)
            self._print(point, dests, "run", record)
            last = run == self.args.runs - 1
            if last and point.series == "count" and record["verified"]:
                # The same job again on the same catalog: every file is verified there already.
                res.rerun = self.measure(self.context(w, dests, f"{tag}-rerun"), index, timeout)
                self._print(point, dests, "re-run", res.rerun)
            self.clear(ctx)

    @staticmethod
    def _print(point: Point, dests: int, what: str, r: dict[str, Any]) -> None:
        status = "ok, verified" if r["verified"] else f"FAILED: {r['error'] or '; '.join(r['checks_failed'])}"
        print(
            f"  {point.series} {point.label:>12}, {dests} dest(s) {what}: {r['wall_s']:8.2f} s wall "
            f"{r['cpu_s']:8.2f} s CPU {r['maxrss_bytes'] / MIB:6.0f} MiB RSS  {status}",
            flush=True,
        )

    def cleanup(self) -> None:
        clean_workdir(self.base, self.created, keep_workloads=self.args.keep_workloads)


# --------------------------------------------------------------------------- report


def _f(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _mib(value: int | None) -> str:
    return "—" if value is None else f"{value / MIB:.0f}"


def result_rows(results: list[Result]) -> list[dict[str, Any]]:
    """One flat dict per result: what the table, the JSON and the chart show."""
    rows = []
    for r in sorted(results, key=lambda r: (r.series != "count", r.files, r.nbytes, r.dests)):
        s = r.summary() if r.runs else None
        re_ok = r.rerun is not None and r.rerun["verified"]
        rows.append(
            {
                "series": r.series,
                "label": r.label,
                "files": r.files,
                "bytes": r.nbytes,
                "dests": r.dests,
                "status": _status(r),
                "wall_s": s["wall_s"] if s else None,
                "cpu_s": s["cpu_s"] if s else None,
                "maxrss_bytes": s["maxrss_bytes"] if s else None,
                "files_per_s": s["files_per_s"] if s else None,
                "mib_per_s": s["mib_per_s"] if s else None,
                "rerun_wall_s": r.rerun["wall_s"] if re_ok and r.rerun else None,
                "rerun_cpu_s": r.rerun["cpu_s"] if re_ok and r.rerun else None,
                "rerun_maxrss_bytes": r.rerun["maxrss_bytes"] if re_ok and r.rerun else None,
                "state_bytes": r.runs[-1]["state_bytes"] if s else None,
                # what the re-run added to the state folder the last run left
                "rerun_state_bytes": (
                    r.rerun["state_bytes"] - r.runs[-1]["state_bytes"] if re_ok and r.rerun else None
                ),
            }
        )
    return rows


def _status(r: Result) -> str:
    if r.skipped:
        return f"skipped: {r.skipped}"
    bad = [x for x in r.runs if not x["verified"]]
    if r.rerun is not None and not r.rerun["verified"]:
        bad.append(r.rerun)
    if bad:
        return "FAILED: " + (bad[0]["error"] or "; ".join(bad[0]["checks_failed"]))
    return f"ok {len(r.runs)}/{len(r.runs)} verified" + (", re-run verified" if r.rerun else "")


def goals(rows: list[dict[str, Any]]) -> list[str]:
    out = []
    measured = [x for x in rows if x["maxrss_bytes"]]
    if measured:
        worst = max(measured, key=lambda x: x["maxrss_bytes"])
        peak = worst["maxrss_bytes"] / MIB
        met = "met" if peak <= RSS_GOAL_MIB else "**NOT met**"
        out.append(
            f"peak RSS ≤ {RSS_GOAL_MIB} MiB: {met}; the largest was {peak:.0f} MiB "
            f"({worst['series']} {worst['label']}, {worst['dests']} destination(s))."
        )
    reruns = [x for x in rows if x["rerun_wall_s"] is not None]
    for dests in sorted({x["dests"] for x in reruns}):
        big = max((x for x in reruns if x["dests"] == dests), key=lambda x: x["files"])
        out.append(
            f"re-run of a fully verified job of {big['files']} files to {dests} destination(s) "
            f"(nothing to copy, no --rehash): {big['rerun_wall_s']:.2f} s wall, "
            f"{big['rerun_cpu_s']:.2f} s CPU, {big['rerun_maxrss_bytes'] / MIB:.0f} MiB peak RSS "
            f"({big['files'] / big['rerun_wall_s']:.0f} files decided per second); it added "
            f"{big['rerun_state_bytes'] / MIB:.1f} MiB to castoff's state folder (catalog and reports), "
            f"{big['rerun_state_bytes'] / big['files'] / 1000:.1f} kB a file."
        )
    return out


def markdown(rows: list[dict[str, Any]], *, title: str, machine: dict[str, Any], notes: list[str]) -> str:
    m = machine
    lines = [
        f"# {title}",
        "",
        f"Machine: {m['cpu_model']}, {m['usable_cpus']}/{m['logical_cpus']} CPUs usable, "
        f"{m['mem_total_gib']} GiB RAM, {m['os']}, kernel {m['kernel']}, Python {m['python']}.",
        "Filesystems: "
        + ", ".join(f"{k} on {v['fstype']} ({v['mount']})" for k, v in m["filesystems"].items())
        + ".",
        "Tools: " + "; ".join(f"{k}: {v}" for k, v in m["tools"].items()) + ".",
        "",
        *[f"- {n}" for n in [*goals(rows), *notes]],
        "",
    ]
    head = [
        "series",
        "point",
        "dests",
        "status",
        "wall s",
        "CPU s",
        "peak RSS MiB",
        "files/s",
        "MiB/s",
        "re-run wall s",
        "re-run CPU s",
        "re-run RSS MiB",
        "state MiB",
        "re-run adds MiB",
    ]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for x in rows:
        cells = [
            x["series"],
            x["label"],
            str(x["dests"]),
            x["status"],
            _f(x["wall_s"]),
            _f(x["cpu_s"]),
            _mib(x["maxrss_bytes"]),
            _f(x["files_per_s"], 0),
            _f(x["mib_per_s"], 0),
            _f(x["rerun_wall_s"]),
            _f(x["rerun_cpu_s"]),
            _mib(x["rerun_maxrss_bytes"]),
            _f(None if x["state_bytes"] is None else x["state_bytes"] / MIB, 1),
            _f(None if x["rerun_state_bytes"] is None else x["rerun_state_bytes"] / MIB, 1),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    return "\n".join(lines)


def chart(rows: list[dict[str, Any]], path: Path) -> str:
    """Peak RSS and wall time against file count and file size; returns a note."""
    try:
        import matplotlib as mpl

        mpl.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "PNG chart skipped: matplotlib is not importable (bench/setup.sh installs it)."
    done = [x for x in rows if x["wall_s"] is not None]
    if not done:
        return "PNG chart skipped: no successful runs."
    from matplotlib.ticker import FuncFormatter, NullFormatter

    palette = ("tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown")
    colors = {d: palette[i % len(palette)] for i, d in enumerate(sorted({x["dests"] for x in done}))}
    fig, axes = plt.subplots(2, 2, figsize=(12, 8), squeeze=False)
    for i, (series, xkey, what) in enumerate(
        (("count", "files", "file count"), ("size", "bytes", "file size"))
    ):
        ax_rss, ax_wall = axes[i][0], axes[i][1]
        for dests in sorted({x["dests"] for x in done if x["series"] == series}):
            pts = sorted(
                (x for x in done if x["series"] == series and x["dests"] == dests), key=lambda x: x[xkey]
            )
            xs = [x[xkey] for x in pts]
            label = f"{dests} destination{'s' if dests > 1 else ''}"
            color = colors.get(dests)
            ax_rss.plot(xs, [x["maxrss_bytes"] / MIB for x in pts], marker="o", color=color, label=label)
            ax_wall.plot(xs, [x["wall_s"] for x in pts], marker="o", color=color, label=label)
            again = [x for x in pts if x["rerun_wall_s"] is not None]
            if again:
                ax_wall.plot(
                    [x[xkey] for x in again],
                    [x["rerun_wall_s"] for x in again],
                    marker="x",
                    linestyle="--",
                    color=color,
                    label=f"re-run, nothing to copy ({label})",
                )
        ax_rss.axhline(RSS_GOAL_MIB, color="tab:red", linestyle=":", label=f"goal {RSS_GOAL_MIB} MiB")
        xlabel = "file count" if series == "count" else "size of the one file"
        for ax, ylabel in ((ax_rss, "peak RSS MiB"), (ax_wall, "wall s (log)")):
            ax.set_xscale("log")
            ax.set_xlabel(xlabel)
            ax.set_ylabel(ylabel)
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=8)
            ticks = sorted({x[xkey] for x in done if x["series"] == series})
            ax.set_xticks(ticks, [size_label(t) if series == "size" else f"{t:,}" for t in ticks])
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax_wall.set_yscale("log")
        plain = FuncFormatter(lambda v, _pos: f"{v:g}")
        ax_wall.yaxis.set_major_formatter(plain)
        ax_wall.yaxis.set_minor_formatter(plain)
        ax_rss.set_ylim(bottom=0)
        ax_rss.set_title(f"castoff peak RSS against {what}", fontsize=10)
        ax_wall.set_title(f"castoff wall time against {what}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return f"PNG chart: {path}"


# --------------------------------------------------------------------------- command line


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--counts", default="1000,10000,100000,200000", help="file counts of the count series")
    ap.add_argument("--sizes", default="1M,32M,1G,8G", help="file sizes of the size series ('' for none)")
    ap.add_argument(
        "--small-kib",
        default="4-64",
        help="size range of the count series' files in KiB (default 4-64; e.g. 1-4 for 200k files in tmpfs)",
    )
    ap.add_argument("--dests", default="1,4", help="destination counts (default 1,4)")
    ap.add_argument("--runs", type=int, default=1, help="runs per point; the median is reported")
    add_workdir_options(ap)
    ap.add_argument("--timeout", type=float, help="seconds per castoff run (default: from the size)")
    ap.add_argument(
        "--multi-max-files",
        type=int,
        default=0,
        help="skip multi-destination points with more files than this (0: no limit)",
    )
    ap.add_argument("--sample", type=int, default=8, help="files hashed per destination check")
    args = ap.parse_args(argv)
    try:
        args.counts = _int_list(args.counts)
        args.sizes = [parse_size(x) for x in args.sizes.split(",") if x.strip()]
        args.dests = sorted(set(_int_list(args.dests)))
        low, _, high = args.small_kib.partition("-")
        args.small_kib = (int(low), int(high or low))
    except ValueError as exc:
        ap.error(str(exc))
    if not (args.counts or args.sizes) or not args.dests or min(args.dests) < 1 or args.runs < 1:
        ap.error("need at least one count or size, destination counts ≥ 1 and --runs ≥ 1")
    if any(n < 1 for n in args.counts):
        ap.error("--counts must be positive")
    if not 0 < args.small_kib[0] <= args.small_kib[1]:
        ap.error("--small-kib: MIN-MAX with 0 < MIN <= MAX, e.g. 4-64")
    return args


def study_notes(args: argparse.Namespace, base: Path) -> list[str]:
    notes = [
        f"count series: files of {args.small_kib[0]}-{args.small_kib[1]} KiB, 100 per folder.",
        "castoff only, local destinations (`castoff copy SRC --to D1 [--to D2 …] --quiet`), "
        "a fresh catalog for every run; the re-run reuses the catalog of the run before it.",
        "peak RSS: the kernel's ru_maxrss of castoff's process; wall and CPU (user+sys) from os.wait4.",
        f"every run is checked afterwards: every file present with its size at every destination, "
        f"nothing extra, {args.sample} files hashed.",
    ]
    if filesystem_of(base)["fstype"] == "tmpfs":
        notes.append("tmpfs: every read is from RAM; the figures measure CPU and memory, not storage.")
    else:
        notes.append(
            "disk: the figures are noisy (page cache, writeback, other load on the machine); "
            "castoff fsyncs each file and each directory, which dominates small files on disk."
        )
    return notes


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = dt.datetime.now().astimezone()
    tools = castoff_only(args.python)
    if not tools.castoff.ok:
        print(f"castoff is not usable: {tools.castoff.reason} ({tools.castoff.hint})")
        return 2
    study = Study(args, tools)
    lock = claim_workdir(study.base, study.cleanup)
    if lock is None:
        return 2
    points = [count_point(n, args.small_kib) for n in args.counts] + [size_point(b) for b in args.sizes]
    print(
        f"castoff {tools.castoff.version}; {len(points)} points × destinations {args.dests} in {study.base}"
    )
    t0 = time.perf_counter()
    try:
        for point in points:
            study.run_point(point)
        machine = describe_machine({"workload dir": study.base}, {"castoff": tools.castoff.version})
    finally:
        study.cleanup()
    rows = result_rows(study.results)
    notes = [
        *study.notes,
        *study_notes(args, study.base),
        f"the study took {time.perf_counter() - t0:.0f} s.",
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"scale-{started:%Y%m%d-%H%M%S}"
    notes.append(chart(rows, stem.with_suffix(".png")))
    md = markdown(
        rows, title=f"castoff scale study {started:%Y-%m-%d %H:%M %Z}", machine=machine, notes=notes
    )
    stem.with_suffix(".md").write_text(md)
    doc = {
        "started": started.isoformat(),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "machine": machine,
        "notes": notes,
        "goals": goals(rows),
        "rows": rows,
        "results": [asdict(r) for r in study.results],
    }
    stem.with_suffix(".json").write_text(json.dumps(doc, indent=1, default=str, ensure_ascii=False))
    print()
    print(md)
    print(f"written: {stem}.md, {stem}.json, {stem}.png")
    failed = [
        r for r in study.results if r.runs and (not r.verified or (r.rerun and not r.rerun["verified"]))
    ]
    return 1 if failed else 0


if __name__ == "__main__":
    exit_on_signals()  # here, not in main(): a caller (run.py, a test) keeps its own handlers
    sys.exit(main())
