"""Turn the benchmark's rows into the Markdown table, the JSON file and the PNG chart.

Also describes the machine (CPU, memory, kernel, filesystems, tool versions) for the report.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import statistics
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from measure import GIB, MIB, Summary

JOB_TITLES = {
    "local": "2 local destinations",
    "s3": "1 bucket on a local rclone serve s3",
    "mixed": "2 local destinations + 1 bucket",
}


@dataclass
class Row:
    """One tool on one job of one workload: every run's raw figures and their summary."""

    workload: str
    job: str
    tool: str
    is_castoff: bool
    verifies: str
    available: bool
    reason: str = ""
    hint: str = ""
    runs: list[dict[str, Any]] = field(default_factory=list)
    summary: Summary | None = None

    @property
    def verified(self) -> bool:
        return bool(self.runs) and all(r.get("verified") for r in self.runs)

    @property
    def status(self) -> str:
        if not self.available:
            return "not available"
        if not self.runs:
            return "not run"
        failed = [r for r in self.runs if not r.get("ok")]
        unverified = [r for r in self.runs if r.get("ok") and not r.get("verified")]
        if failed:
            return f"FAILED {len(failed)}/{len(self.runs)}"
        if unverified:
            return f"BROKEN COPY {len(unverified)}/{len(self.runs)}"
        return f"ok {len(self.runs)}/{len(self.runs)} verified"


# --------------------------------------------------------------------------- machine


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _unescape_mount(s: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), s)


def filesystem_of(path: Path) -> dict[str, Any]:
    """fstype, source and free space of the mount holding ``path`` (from /proc/self/mountinfo)."""
    target = path.resolve()
    best: tuple[str, str, str] = ("/", "?", "?")
    for line in _read("/proc/self/mountinfo").splitlines():
        left, _, right = line.partition(" - ")
        fields = left.split()
        rfields = right.split()
        if len(fields) < 5 or len(rfields) < 2:
            continue
        mount = _unescape_mount(fields[4])
        inside = target == Path(mount) or Path(mount) in target.parents
        if inside and len(mount) >= len(best[0]):
            best = (mount, rfields[0], rfields[1])
    free = None
    probe = target
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        free = shutil.disk_usage(probe).free / GIB
    except OSError:
        pass
    return {
        "path": str(path),
        "mount": best[0],
        "fstype": best[1],
        "source": best[2],
        "free_gib": round(free, 1) if free is not None else None,
    }


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def describe_machine(paths: dict[str, Path], tool_versions: dict[str, str]) -> dict[str, Any]:
    cpuinfo = _read("/proc/cpuinfo")
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    mem = re.search(r"^MemTotal:\s*(\d+) kB", _read("/proc/meminfo"), re.M)
    os_name = re.search(r'^PRETTY_NAME="?([^"\n]+)"?', _read("/etc/os-release"), re.M)
    governor = _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor").strip()
    return {
        "cpu_model": model.group(1).strip() if model else platform.processor() or "?",
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)),
        "cpu_governor": governor or None,
        "mem_total_gib": round(int(mem.group(1)) / (1 << 20), 1) if mem else None,
        "kernel": platform.release(),
        "os": os_name.group(1) if os_name else platform.platform(),
        "python": platform.python_version(),
        "filesystems": {label: filesystem_of(p) for label, p in paths.items()},
        "tools": tool_versions,
        "python_packages": {
            d: _version(d) for d in ("castoff", "blake3", "boto3", "psutil", "matplotlib", "py-spy")
        },
    }


# --------------------------------------------------------------------------- figures


def _f(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _mib(value: int | None) -> str:
    return "—" if value is None else f"{value / MIB:.0f}"


def castoff_row(rows: list[Row], workload: str, job: str) -> Row | None:
    for r in rows:
        if r.workload == workload and r.job == job and r.is_castoff:
            return r
    return None


def _usable(r: Row | None) -> Summary | None:
    if r is None or r.summary is None or not r.verified or r.summary.wall_s is None:
        return None
    return r.summary


def ratios(rows: list[Row]) -> list[dict[str, Any]]:
    """castoff ÷ peer for wall time and CPU/GiB (below 1: castoff is better)."""
    out: list[dict[str, Any]] = []
    for r in rows:
        if r.is_castoff:
            continue
        c = _usable(castoff_row(rows, r.workload, r.job))
        p = _usable(r)
        wall = cpu = None
        if c and p and p.wall_s:
            wall = c.wall_s / p.wall_s if c.wall_s is not None else None
        if c and p and c.cpu_s_per_gib is not None and p.cpu_s_per_gib:
            cpu = c.cpu_s_per_gib / p.cpu_s_per_gib
        out.append({"workload": r.workload, "job": r.job, "peer": r.tool, "wall": wall, "cpu_per_gib": cpu})
    return out


def step_breakdown(r: Row) -> str:
    """'cp -r to d1 0.60, b3sum source 0.04, ...' over the verified runs ('' for one step)."""
    good = [x for x in r.runs if x.get("ok") and x.get("verified")]
    per: dict[str, list[float]] = {}
    for x in good:
        for st in x.get("steps", []):
            per.setdefault(st["label"], []).append(st["wall_s"])
    if len(per) < 2:
        return ""
    return ", ".join(f"{label} {statistics.median(v):.2f}" for label, v in per.items())


def _ratio_for(rat: list[dict[str, Any]], r: Row) -> tuple[float | None, float | None]:
    for x in rat:
        if (x["workload"], x["job"], x["peer"]) == (r.workload, r.job, r.tool):
            return x["wall"], x["cpu_per_gib"]
    return None, None


def _div(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def goals(rows: list[Row]) -> list[dict[str, Any]]:
    """The goals of issues 2, 3 and 7, evaluated where the figures exist."""
    out: list[dict[str, Any]] = []

    def summ(workload: str, job: str, tool: str | None) -> Summary | None:
        for r in rows:
            if r.workload != workload or r.job != job:
                continue
            if (tool is None and r.is_castoff) or r.tool == tool:
                return _usable(r)
        return None

    def add(goal: str, workload: str, value: float | None, limit: float, unit: str = "×") -> None:
        if value is None:
            return
        out.append(
            {
                "goal": goal,
                "workload": workload,
                "value": value,
                "limit": limit,
                "unit": unit,
                "met": value <= limit,
            }
        )

    for wl in dict.fromkeys(r.workload for r in rows):
        c_local = summ(wl, "local", None)
        c_s3 = summ(wl, "s3", None)
        c_mixed = summ(wl, "mixed", None)
        cp = summ(wl, "local", "cp ×2 + b3sum")
        rc2 = summ(wl, "local", "rclone copy ×2")
        rc_s3 = summ(wl, "s3", "rclone copy s3")
        s3_peers = [s for s in (summ(wl, "s3", "aws s3 cp"), rc_s3) if s and s.wall_s]
        if c_local:
            add(
                "local: castoff wall ≤ 1.0× cp+b3sum",
                wl,
                _div(c_local.wall_s, cp.wall_s if cp else None),
                1.0,
            )
            add(
                "local: castoff wall ≤ 0.5× rclone copy ×2",
                wl,
                _div(c_local.wall_s, rc2.wall_s if rc2 else None),
                0.5,
            )
            if wl == "many-small" and cp:
                add(
                    "many-small: cp+b3sum files/s ÷ castoff files/s ≤ 1",
                    wl,
                    _div(cp.files_per_s, c_local.files_per_s),
                    1.0,
                )
        if c_s3 and s3_peers:
            fastest = min(s.wall_s for s in s3_peers if s.wall_s)
            add("s3: castoff wall ≤ fastest peer", wl, _div(c_s3.wall_s, fastest), 1.0)
        if c_s3 and rc_s3:
            add(
                "s3: castoff CPU/GiB ≤ rclone's",
                wl,
                _div(c_s3.cpu_s_per_gib, rc_s3.cpu_s_per_gib),
                1.0,
            )
        if c_mixed and c_s3:
            add(
                "mixed: castoff wall ≤ 1.1× its S3-only job",
                wl,
                _div(c_mixed.wall_s, c_s3.wall_s),
                1.1,
            )
        for job, s in (("local", c_local), ("s3", c_s3), ("mixed", c_mixed)):
            if s and s.maxrss_bytes:
                add(f"{job}: castoff peak RSS ≤ 300 MiB", wl, s.maxrss_bytes / MIB, 300, "MiB")
    return out


def markdown(
    rows: list[Row],
    *,
    title: str,
    machine: dict[str, Any],
    workloads: dict[str, dict[str, Any]],
    notes: list[str],
) -> str:
    rat = ratios(rows)
    lines = [f"# {title}", ""]
    m = machine
    lines.append(
        f"Machine: {m['cpu_model']}, {m['usable_cpus']}/{m['logical_cpus']} CPUs usable, "
        f"{m['mem_total_gib']} GiB RAM, {m['os']}, kernel {m['kernel']}, Python {m['python']}."
    )
    fss = ", ".join(f"{label} on {fs['fstype']} ({fs['mount']})" for label, fs in m["filesystems"].items())
    lines.append(f"Filesystems: {fss}.")
    tools = "; ".join(f"{k}: {v}" for k, v in m["tools"].items())
    lines += [f"Tools: {tools}.", ""]
    lines += [f"- {n}" for n in notes]
    lines.append("")
    for wl in dict.fromkeys(r.workload for r in rows):
        w = workloads.get(wl, {})
        for job in dict.fromkeys(r.job for r in rows if r.workload == wl):
            sub = [r for r in rows if r.workload == wl and r.job == job]
            s3 = job != "local"
            lines.append(
                f"## {wl} ({w.get('files', '?')} files, {w.get('gib', 0):.2f} GiB) → "
                f"{JOB_TITLES.get(job, job)}"
            )
            lines.append("")
            head = [
                "tool",
                "status",
                "wall s (median)",
                "min–max",
                "CPU s",
                "CPU s/GiB",
                "peak RSS MiB",
                "files/s",
                "MiB/s",
            ]
            if s3:
                head.append("server CPU s/GiB")
            head += ["castoff ÷ this, wall", "castoff ÷ this, CPU/GiB"]
            lines.append("| " + " | ".join(head) + " |")
            lines.append("|" + "---|" * len(head))
            for r in sub:
                s = r.summary
                if not r.available:
                    status = f"not available: {r.reason}" + (f" ({r.hint})" if r.hint else "")
                else:
                    status = r.status
                wall_r, cpu_r = (None, None) if r.is_castoff else _ratio_for(rat, r)
                cells = [
                    f"**{r.tool}**" if r.is_castoff else r.tool,
                    status,
                    _f(s.wall_s if s else None),
                    f"{_f(s.wall_min_s)}–{_f(s.wall_max_s)}" if s and s.wall_s else "—",
                    _f(s.cpu_s if s else None),
                    _f(s.cpu_s_per_gib if s else None),
                    _mib(s.maxrss_bytes if s else None),
                    _f(s.files_per_s if s else None, 0),
                    _f(s.mib_per_s if s else None, 0),
                ]
                if s3:
                    cells.append(_f(s.server_cpu_s_per_gib if s else None))
                cells += [
                    "—" if r.is_castoff else _f(wall_r),
                    "—" if r.is_castoff else _f(cpu_r),
                ]
                lines.append("| " + " | ".join(cells) + " |")
            lines.append("")
            steps = [f"{r.tool}: {b}" for r in sub if (b := step_breakdown(r))]
            if steps:
                lines.append("Where the time goes (median wall s per step): " + "; ".join(steps) + ".")
                lines.append("")
            broken = [
                f"{r.tool} run {i + 1}: {x.get('error') or '; '.join(x.get('checks_failed', []))}"
                for r in sub
                for i, x in enumerate(r.runs)
                if not (x.get("ok") and x.get("verified"))
            ]
            if broken:
                lines.append("Failures (these runs are excluded from the medians):")
                lines += [f"- {b}" for b in broken[:20]]
                lines.append("")
    g = goals(rows)
    if g:
        lines += [
            "## Goals (issues 2, 3, 7)",
            "",
            "| goal | workload | value | limit | met |",
            "|---|---|---|---|---|",
        ]
        for x in g:
            met = "n/a" if x["met"] is None else ("yes" if x["met"] else "**no**")
            lines.append(
                f"| {x['goal']} | {x['workload']} | {_f(x['value'])} {x['unit']} | "
                f"{x['limit']} {x['unit']} | {met} |"
            )
        lines.append("")
    else:
        lines += ["Goals: not evaluated (castoff or the peers they compare with did not run).", ""]
    lines.append("What each tool verifies:")
    lines.append("")
    for tool, verifies in dict.fromkeys((r.tool, r.verifies) for r in rows):
        lines.append(f"- {tool}: {verifies}")
    lines.append("")
    return "\n".join(lines)


def to_json(
    rows: list[Row],
    *,
    args: dict[str, Any],
    machine: dict[str, Any],
    workloads: dict[str, dict[str, Any]],
    notes: list[str],
    started: str,
) -> str:
    doc = {
        "started": started,
        "args": args,
        "machine": machine,
        "workloads": workloads,
        "notes": notes,
        "rows": [
            {
                **{k: v for k, v in asdict(r).items() if k != "summary"},
                "status": r.status,
                "verified": r.verified,
                "summary": asdict(r.summary) if r.summary else None,
            }
            for r in rows
        ],
        "ratios_castoff_over_peer": ratios(rows),
        "goals": goals(rows),
    }
    return json.dumps(doc, indent=1, default=str, ensure_ascii=False)


def chart(rows: list[Row], path: Path) -> str:
    """A PNG of wall time and CPU s/GiB per tool; returns a note saying what happened."""
    try:
        import matplotlib as mpl

        mpl.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "PNG chart skipped: matplotlib is not importable (pip install matplotlib)."
    groups = list(dict.fromkeys((r.workload, r.job) for r in rows))
    groups = [
        g for g in groups if any(r.summary and r.summary.wall_s for r in rows if (r.workload, r.job) == g)
    ]
    if not groups:
        return "PNG chart skipped: no successful runs."
    fig, axes = plt.subplots(
        len(groups), 2, figsize=(12, 1.2 + 1.6 * len(groups) + 0.3 * len(rows)), squeeze=False
    )
    for i, (wl, job) in enumerate(groups):
        sub = [r for r in rows if (r.workload, r.job) == (wl, job) and r.summary and r.summary.wall_s]
        labels = [r.tool + ("" if r.verified else " (UNVERIFIED)") for r in sub]
        colors = ["tab:orange" if r.is_castoff else "tab:blue" for r in sub]
        for j, (metric, xlabel) in enumerate(
            (("wall_s", "wall s (median, lower is better)"), ("cpu_s_per_gib", "CPU s per GiB"))
        ):
            ax = axes[i][j]
            values = [getattr(r.summary, metric) or 0.0 for r in sub]
            ax.barh(labels, values, color=colors)
            ax.invert_yaxis()
            ax.set_xlabel(xlabel)
            ax.set_title(f"{wl} → {JOB_TITLES.get(job, job)}", fontsize=9)
            for y, v in enumerate(values):
                ax.text(v, y, f" {v:.2f}", va="center", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return f"PNG chart: {path}"
