"""``castoff jobs prune`` as the user sees it: what went (or would go), and a pruned job's ``show``.

The pruning itself is ``castoff.catalog.prune``'s.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.text import Text

from castoff import errors
from castoff.ui.term import Console, json_ascii
from castoff.units import format_bytes, plural

if TYPE_CHECKING:  # (imported where used: the parser, built for every command, needs no catalog)
    from castoff.catalog import prune
    from castoff.catalog.running import JobRow

#: jobs named one by one before the rest are counted
SHOWN = 10

PRUNE_OPTIONS = ("keep", "older_than", "dry_run", "no_vacuum", "reports")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("prune (castoff jobs prune)")
    g.add_argument("--keep", type=int, metavar="N", help="keep the per-file history of the N newest jobs")
    g.add_argument("--older-than", metavar="AGE", help="prune only jobs started before this, e.g. 30d, 12h")
    g.add_argument("--dry-run", action="store_true", help="say what would go, delete nothing")
    g.add_argument("--no-vacuum", action="store_true", help="do not compact the catalog file afterwards")
    g.add_argument(
        "--reports",
        action="store_true",
        help="also delete those jobs' JSON and HTML reports from the state folder's reports/"
        " (copies delivered into destinations with --report-to stay)",
    )


def check_arguments(args: argparse.Namespace) -> None:
    """The prune options belong to ``prune`` alone, and ``prune`` takes no job id."""
    if args.action == "prune":
        if args.job_id:
            raise errors.UsageError(f"'castoff jobs prune' takes no job id ({args.job_id!r})")
        return
    given = [o for o in PRUNE_OPTIONS if getattr(args, o, None) not in (None, False)]
    if given:
        flag = "--" + given[0].replace("_", "-")
        raise errors.UsageError(
            f"{flag} is for 'castoff jobs prune'", hint="e.g. castoff jobs prune --keep 30"
        )


def _when(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(t))


@dataclass(frozen=True)
class Reports:
    """The report files of the jobs pruned (now or by an earlier prune) in the state folder's
    reports/, and whether they were deleted (``--reports``, not a dry run)."""

    folder: Path
    files: list[Path]
    size: int
    deleted: bool


def report_files(folder: Path, job_ids: Iterable[str]) -> list[Path]:
    """``<job id>.json`` and ``.html`` of each job in ``folder``, where they are: the state
    folder's own reports, never the copies ``--report-to`` put into destinations."""
    found = []
    for job_id in job_ids:
        if not job_id or "/" in job_id or job_id.startswith("."):  # (castoff's ids never are)
            continue
        found += [p for p in (folder / f"{job_id}.json", folder / f"{job_id}.html") if p.is_file()]
    return found


def _reports(folder: Path, plan: prune.Plan, *, delete: bool) -> Reports:
    files = report_files(folder, [*plan.earlier, *(j.id for j in plan.jobs)])
    size = 0
    for p in files:
        with contextlib.suppress(OSError):
            size += p.stat().st_size
    if delete:
        for p in files:
            try:
                p.unlink()
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise errors.CastoffError(
                    f"could not delete the report {p}: {exc.strerror or exc}",
                    hint="check the state folder's permissions; run the prune again to delete the rest",
                ) from exc
    return Reports(folder, files, size, delete)


def _as_json(out: prune.Outcome, dry_run: bool, reports: Reports) -> dict[str, Any]:
    return {
        "dry_run": dry_run,
        "jobs": [j.id for j in out.plan.jobs],
        "spared": out.plan.spared,
        "rows": out.rows,
        "kept_reads": out.kept_reads,
        "size_before": out.size_before,
        "size_after": out.size_after,
        "estimate": out.estimate,
        "vacuum": out.vacuum,
        "reports": {
            "deleted": reports.deleted,
            "files": [str(p) for p in reports.files],
            "bytes": reports.size,
        },
    }


def _print_reports(console: Console, reports: Reports, *, asked: bool) -> None:
    if not reports.files:
        return
    what = f"{plural(len(reports.files), 'report file')} ({format_bytes(reports.size)}) in {reports.folder}"
    if reports.deleted:
        said = f"reports deleted: {what}"
    elif asked:
        said = f"reports to delete: {what}"
    else:
        said = f"their reports stay: {what}: add --reports to delete them"
    console.print(said, markup=False, highlight=False, soft_wrap=True)


def _print(console: Console, out: prune.Outcome, dry_run: bool) -> None:
    jobs = out.plan.jobs
    verb = "would prune" if dry_run else "pruned"
    console.print(f"{verb} the per-file history of {len(jobs)} job(s)", highlight=False)
    for j in jobs[:SHOWN]:
        console.print(f"  {j.id}  {_when(j.started_at)}  {j.status}", highlight=False)
    if len(jobs) > SHOWN:
        console.print(f"  … and {len(jobs) - SHOWN} more", highlight=False)
    for job_id, why in out.plan.spared.items():
        console.print(f"kept {job_id}: {why}", highlight=False)
    rows = ", ".join(f"{t} {n:,}" for t, n in out.rows.items())
    console.print(f"rows {'to delete' if dry_run else 'deleted'}: {rows}", highlight=False)
    if out.kept_reads:
        console.print(
            f"kept {out.kept_reads:,} file row(s) of those jobs: the last read of each source,"
            " which re-runs take hashes from",
            highlight=False,
        )
    if dry_run:
        console.print(
            f"catalog: {format_bytes(out.size_before)}; about {format_bytes(out.estimate or 0)} would be"
            " freed. Nothing deleted (--dry-run).",
            highlight=False,
        )
        return
    before, after = format_bytes(out.size_before), format_bytes(out.size_after)
    if out.vacuum.startswith("space not given back") and out.size_after >= out.size_before:
        # (the deletes went to the write-ahead log: "before, after" would say it grew)
        console.print(f"catalog: {after}; {out.vacuum}", highlight=False)
        return
    console.print(f"catalog: {before} before, {after} after; {out.vacuum}", highlight=False)


def run(
    args: argparse.Namespace,
    catalog_path: Path,
    *,
    alive: Callable[[JobRow], bool],
    age: Callable[[str], float],
) -> int:
    """``castoff jobs prune``: ``age`` reads --older-than as ``castoff uploads`` does."""
    from castoff.catalog import prune

    rules = prune.Rules(keep=args.keep, older_than=None if args.older_than is None else age(args.older_than))
    out = prune.prune(catalog_path, rules, dry_run=args.dry_run, alive=alive, compact=not args.no_vacuum)
    reports = _reports(catalog_path.parent / "reports", out.plan, delete=args.reports and not args.dry_run)
    if args.json:
        print(json.dumps(_as_json(out, args.dry_run, reports), indent=2))
    else:
        console = Console()
        _print(console, out, args.dry_run)
        _print_reports(console, reports, asked=args.reports)
    return 0


def pruned_as_json(job: sqlite3.Row) -> dict[str, Any]:
    """``castoff jobs show ID --json`` of a pruned job: the report's ``schema`` and ``job`` (the
    same keys, times as it writes them), ``"pruned": true`` where the report's files and summary
    were, what is kept of them (``n_files``, ``n_bytes``, ``pruned_at``) and where the report is."""
    from castoff.catalog.db import iso_time
    from castoff.reports.json_report import SCHEMA, job_fields

    return {
        "schema": SCHEMA,
        "job": job_fields(job),
        "pruned": True,
        "pruned_at": iso_time(job["pruned_at"]),
        "n_files": job["pruned_files"],
        "n_bytes": job["pruned_bytes"],
        "report_path": job["report_path"],
    }


def show_pruned(job: sqlite3.Row, *, as_json: bool) -> None:
    """``castoff jobs show`` of a job whose per-file history is gone: what is left, and the report."""
    report = job["report_path"]
    if as_json:
        print(json.dumps(pruned_as_json(job), indent=2, ensure_ascii=json_ascii()))
        return
    console = Console()
    console.print(
        Text.assemble(
            (f"job {job['id']}", "bold"),
            f"  {job['status']}  started {_when(job['started_at'])}"
            f"  sources: {', '.join(json.loads(job['sources']))}",
        )
    )
    console.print(
        f"{plural(job['pruned_files'], 'file')}, {format_bytes(job['pruned_bytes'] or 0)}:"
        " the per-file history of this job was pruned from the catalog ('castoff jobs prune');"
        " what is verified where is still known, so re-runs skip as before.",
        highlight=False,
    )
    if report:
        gone = "" if Path(report).exists() else " (no longer there)"
        console.print(
            f"its report, with every file: {report}{gone}", markup=False, highlight=False, soft_wrap=True
        )
    else:
        console.print("it has no report file (the job ended before writing one)", highlight=False)
