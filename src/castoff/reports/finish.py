"""What a job leaves behind when it ends: ASC MHL generations, the JSON and HTML reports, and copies.

Order matters: the MHL generations first (the files are all there), the reports next (from the
catalog), and the report copies into the destinations last, after their files.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from castoff import errors
from castoff.catalog.db import Catalog
from castoff.destinations.base import Destination
from castoff.reports import deliver, mhl_job, onepass
from castoff.reports.summary import tally
from castoff.scan import Filters

REPORT_TO = ("local", "destination", "both")


@dataclass(frozen=True)
class FinishOptions:
    report_to: str = "local"
    mhl: bool = True
    mhl_source: bool = False
    #: the job's: what it left out, its ASC MHL generations ignore
    filters: Filters = field(default_factory=Filters)


@dataclass
class Finished:
    json: Path
    html: Path
    mhl: list[mhl_job.MhlOutcome] = field(default_factory=list)
    copies: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def local_roots(dests: Sequence[Destination]) -> dict[str, str]:
    """Destination ident → folder, for the destinations that are folders on this computer."""
    out = {}
    for d in dests:
        root = getattr(d, "root", None)
        if d.caps.kind == "local" and isinstance(root, str):
            out[d.ident] = root
    return out


def write_mhl(
    catalog: Catalog,
    job_id: str,
    dests: Sequence[Destination],
    sources: Sequence[str],
    options: FinishOptions,
    *,
    down: Mapping[str, bool] | None = None,
    unused: Collection[str] = (),
) -> list[mhl_job.MhlOutcome]:
    """The job's ASC MHL generations (each local destination's, and the sources' with
    ``--mhl-source``), said in the job's log. None for a destination that could not be used from
    the job's start (``down``, ``Engine.down``), nor for one the job left as it found it
    (``unused``, ``Engine.unused``): nothing went there, and what is wrong was said."""
    if not options.mhl:
        return []
    roots = {i: r for i, r in local_roots(dests).items() if not (down or {}).get(i) and i not in unused}
    gone = []
    for d in dests:
        check_root = getattr(d, "check_root", None)
        if d.ident not in roots or check_root is None:
            continue
        try:  # a drive unmounted under the job: its history would go into the empty mount point
            check_root()
        except errors.CastoffError as exc:
            gone.append(mhl_job.MhlOutcome(roots.pop(d.ident), None, f"ASC MHL not written: {exc}", ok=False))
    outcomes = gone + mhl_job.write_for_job(
        catalog,
        job_id,
        roots,
        sources=list(sources),
        with_sources=options.mhl_source,
        filters=options.filters,
    )
    for o in outcomes:
        catalog.log(job_id, "info" if o.ok else "error", f"{o.scope}: {o.message}")
    return outcomes


def finish_job(
    catalog: Catalog,
    job_id: str,
    dests: Sequence[Destination],
    *,
    sources: Sequence[str],
    reports_dir: Path,
    options: FinishOptions,
    cancel: threading.Event | None = None,
    mhl_written: list[mhl_job.MhlOutcome] | None = None,
    down: Mapping[str, bool] | None = None,
    unused: Collection[str] = (),
) -> Finished:
    """``mhl_written``: the ASC MHL generations ``write_mhl`` wrote already (once the source could
    be released), not written again. ``down``: the destinations that went down in the job
    (``Engine.down``), which get no report copy: said once each, with why. ``unused``: those the
    job left as it found them (``Engine.unused``: a card with nothing to copy, said already),
    which get none either."""
    down = down or {}
    outcomes = (
        mhl_written
        if mhl_written is not None
        else write_mhl(catalog, job_id, dests, sources, options, down=down, unused=unused)
    )
    job = catalog.job(job_id)
    if job is None:
        raise KeyError(job_id)
    json_path, html_path = onepass.write(catalog, job_id, reports_dir, tally(catalog, job))
    done = Finished(json=json_path, html=html_path, mhl=outcomes)
    done.problems.extend(f"{o.scope}: {o.message}" for o in outcomes if not o.ok)
    if options.report_to in ("destination", "both"):
        for d in dests:
            if d.ident in down:
                said = "could not be used in this job" if down[d.ident] else "stopped during the job"
                done.problems.append(f"{d.name}: the reports were not copied there: it {said} (said above)")
                continue
            if d.ident in unused:
                continue
            for path in (done.json, done.html):
                try:
                    landed = deliver.put_file(d, path, cancel=cancel)
                except errors.CastoffError as exc:
                    done.problems.append(f"{d.name}: report {path.name} not written: {exc}")
                    continue
                done.copies.append(f"{d.name}: {landed.target} ({landed.verify_method})")
    for text in done.problems:
        catalog.log(job_id, "error", text)
    return done
