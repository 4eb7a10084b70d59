"""Which jobs of the catalog are running now, and whether a new job would trip over one of them.

A job's row says ``running`` and names its process id. The process may be gone (a SIGKILL, a
crash, a pulled power cord): then the job was interrupted and a re-run resumes it. Its id may
also have been given to another process since; on Linux the row also keeps the process's start
(``process_start``), which tells the two apart; a row an older castoff wrote without it is told
apart by when the process began (after the job: not its own). Elsewhere (macOS) the process id
alone is taken at its word.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Mapping, Sequence
from typing import Any

from castoff import errors
from castoff.destinations.base import ident_place

#: a row of ``jobs``, as the catalog gives it or as a dict
JobRow = sqlite3.Row | Mapping[str, Any]


def pid_exists(pid: int) -> bool:
    """Whether a process of that id exists (signal 0 checks without sending anything)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's: it exists
        return True
    return True


def _stat(pid: int) -> list[str] | None:
    """The fields of Linux's ``/proc/PID/stat`` after the command name (state first); None
    elsewhere, or when there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as f:
            stat = f.read()
    except OSError:
        return None
    # the command name (2nd field) is in parentheses and may hold spaces: count after it
    return stat.rsplit(")", 1)[-1].split()


def process_start(pid: int) -> str | None:
    """What tells process ``pid`` from another that gets its id later, where the system says
    (Linux: the boot's id and the process's start time in clock ticks since boot, which no
    change of the wall clock moves); None where it cannot be told."""
    fields = _stat(pid)
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            boot = f.read().strip()
        start = int(fields[19]) if fields else None  # field 22 of the line: starttime
    except (OSError, ValueError, IndexError):
        return None
    return None if start is None else f"{boot}:{start}"


#: a process that began this long after the job it would be began later: not the job's own
#: (whose start, recorded once its command line is read, comes after its process's)
STARTED_LATER_S = 2.0


def _started_at(fields: list[str]) -> float | None:
    """When the process of ``/proc/PID/stat``'s ``fields`` began, in epoch seconds (Linux: the
    boot time plus its start in clock ticks; to the second, as the wall clock was at boot)."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            boot = next(int(line.split()[1]) for line in f if line.startswith("btime "))
        return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def job_alive(pid: int | None, proc_start: str | None, started_at: float | None = None) -> bool:
    """Whether the job whose row names ``pid`` (and ``proc_start``, its ``process_start`` then)
    still runs: its process exists (not a zombie, which has ended) and, where that can be told,
    is the same process (not one that got the id since). A row without ``proc_start`` (written
    by an older castoff, or where the system cannot tell) names another process when that one
    began after the job (``started_at``, where the system says when); else the process id is
    taken at its word."""
    if not pid or not pid_exists(int(pid)):
        return False
    fields = _stat(int(pid))
    if fields and fields[0] in ("Z", "X"):
        return False
    if proc_start is None:
        began = _started_at(fields) if fields and started_at is not None else None
        return began is None or started_at is None or began <= started_at + STARTED_LATER_S
    now = process_start(int(pid))
    return now is None or now == proc_start


def row_alive(row: JobRow) -> bool:
    """``job_alive`` of a row of ``jobs`` that says running."""
    proc_start = row["proc_start"] if "proc_start" in row.keys() else None  # noqa: SIM118 (a Row)
    started = row["started_at"] if "started_at" in row.keys() else None  # noqa: SIM118 (a Row)
    return row["status"] == "running" and job_alive(row["pid"], proc_start, started)


def _inside(a: str, b: str) -> bool:
    """``a`` is ``b`` or a path below it (both resolved, absolute)."""
    return a == b or a.startswith(b.rstrip("/") + "/")


def _resolved(path: str) -> str:
    return os.path.realpath(path)


def sources_overlap(ours: Sequence[str], theirs: Sequence[str]) -> tuple[str, str] | None:
    """A pair of sources (ours, theirs) that is one path, or one inside the other, once resolved."""
    for a in ours:
        ra = _resolved(a)
        for b in theirs:
            rb = _resolved(b)
            if _inside(ra, rb) or _inside(rb, ra):
                return a, b
    return None


def _dest_key(ident: str) -> str:
    """A destination's identity in the catalog; a folder's path resolved (a symlink to it is it)."""
    if ident.startswith("local:"):
        return "local:" + _resolved(ident[len("local:") :])
    return ident_place(ident)  # a bucket: one place, however its endpoint is spelt


def dests_overlap(
    ours: Sequence[Mapping[str, Any]], theirs: Sequence[Mapping[str, Any]]
) -> Mapping[str, Any] | None:
    """Our destination that is one of theirs (same identity), or None."""
    keys = {_dest_key(str(d.get("ident", ""))) for d in theirs}
    for d in ours:
        if _dest_key(str(d.get("ident", ""))) in keys:
            return d
    return None


class JobRunning(errors.UsageError):
    """Another live job copies an overlapping source to the same destination: refused, exit 2."""

    code = "job-running"

    def __init__(self, row: JobRow, source: str, dest: Mapping[str, Any]) -> None:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(row["started_at"])))
        their_sources = ", ".join(json.loads(row["sources"]))
        their_dests = ", ".join(str(d.get("name")) for d in json.loads(row["destinations"]))
        why = (
            "folder would each read every file and write it there at the same time: the card read"
            " twice, for copies that one job makes"
            if dest.get("kind") == "local"
            else "bucket would take over each other's uploads"
        )
        super().__init__(
            f"another castoff job is copying {source} to {dest.get('name')} right now:"
            f" job {row['id']} (pid {row['pid']}, started {started}), copying {their_sources}"
            f" to {their_dests}. Two jobs on the same files and {why}; nothing was written",
            hint=f"wait for it to finish, or stop it (Ctrl-C in its terminal, or kill {row['pid']});"
            " then run this again to resume",
        )
        self.job_id = str(row["id"])
