"""What every report says first: per destination, how many files and bytes, how they ended, how fast.

Computed from the catalog in one streamed pass, so it costs the same memory for 20 or 200,000 files.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict, dataclass, field

from castoff.catalog.db import Catalog

#: outcomes that mean the file is at the destination, proven
OK = frozenset({"verified", "already", "skipped"})
STATUSES = ("verified", "already", "skipped", "failed", "incomplete")


@dataclass
class DestinationSummary:
    name: str
    kind: str | None
    files: int = 0
    bytes: int = 0
    verified: int = 0
    already: int = 0
    skipped: int = 0
    failed: int = 0
    incomplete: int = 0
    #: bytes sent and verified in this job (``verified`` outcomes only)
    bytes_sent: int = 0
    #: from the job's start to the last file verified there; None when nothing was
    duration_s: float | None = None
    #: ``bytes_sent / duration_s``
    bytes_per_s: float | None = None

    @property
    def problems(self) -> int:
        return self.failed + self.incomplete

    def as_json(self) -> dict[str, object]:
        return asdict(self)


def is_problem(row: sqlite3.Row) -> bool:
    """A file at a destination that did not end at the destination, proven, or a file never read."""
    if row["file_status"] == "failed":
        return True
    if row["status"] is None:
        return bool(row["file_status"] == "pending")
    return str(row["status"]) not in OK


@dataclass
class Tally:
    """The summary by destination, how many files have a problem, and what was left out on purpose."""

    destinations: dict[str, DestinationSummary]
    problem_files: int = 0
    left_out: list[tuple[str, str | None]] = field(default_factory=list)


def tally(catalog: Catalog, job: sqlite3.Row) -> Tally:
    """One streamed pass over the job's rows; destinations in the job's order."""
    out = {d["name"]: DestinationSummary(d["name"], d.get("kind")) for d in json.loads(job["destinations"])}
    result = Tally(out)
    last: dict[str, float] = {}
    problem_file = -1
    for r in catalog.iter_job_rows(str(job["id"])):
        if r["file_status"] == "skipped":
            result.left_out.append((str(r["rel_path"]), r["file_error"]))
            continue
        if is_problem(r) and int(r["file_id"]) != problem_file:
            problem_file = int(r["file_id"])
            result.problem_files += 1
        if r["dest_name"] is not None:
            _add(out, r, last)
    started = float(job["started_at"])
    for name, s in out.items():
        if name in last:
            s.duration_s = round(max(last[name] - started, 0.0), 3)
            s.bytes_per_s = round(s.bytes_sent / s.duration_s, 1) if s.duration_s > 0 else None
    return result


def _add(out: dict[str, DestinationSummary], r: sqlite3.Row, last: dict[str, float]) -> None:
    name = str(r["dest_name"])
    s = out.setdefault(name, DestinationSummary(name, None))
    s.files += 1
    s.bytes += int(r["size"])
    status = str(r["status"])
    if status in STATUSES:
        setattr(s, status, getattr(s, status) + 1)
    if status == "verified":
        s.bytes_sent += int(r["size"])
    if status in ("verified", "already") and r["verified_at"] is not None:
        last[name] = max(last.get(name, 0.0), float(r["verified_at"]))
