"""The ASC MHL generations a job adds: one per local destination folder, and one per source on request.

Entries come from the catalog (xxh128 and BLAKE3 from the one read); only a file whose xxh128 an older
catalog never recorded is read again, from the verified copy at the destination.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from castoff import errors, scan
from castoff.catalog.db import Catalog
from castoff.reports import mhl
from castoff.scan import Filters
from castoff.units import plural


@dataclass(frozen=True)
class MhlOutcome:
    scope: str  # the folder the history covers
    manifest: str | None  # None when nothing was written
    message: str
    ok: bool = True
    #: the history now has every entry of the job (none left out for a name XML cannot hold)
    complete: bool = False


def _entry(row: sqlite3.Row, rel: str, on_disk: str, hashed_at: float, *, earlier: bool) -> mhl.Entry:
    xxh = row["xxh128"] or mhl.xxh128_of_file(on_disk)
    return mhl.Entry(
        path=rel,
        size=int(row["size"]),
        mtime_ns=int(row["mtime_ns"]),
        xxh128=str(xxh),
        blake3=row["blake3"],
        hashed_at=hashed_at,
        from_earlier_job=earlier,
    )


def destination_entries(
    catalog: Catalog, job_id: str, dest_ident: str, root: str, remembered: str | None = None
) -> Iterator[mhl.Entry]:
    """Every file proven at the destination in this job (or skipped as verified by an earlier one).
    ``remembered``: a job after whose generation the history has not changed (``_remembered_job``);
    a file skipped in this job that the remembered job proved at the same target is in the history
    already, so it is left out here (without reading the history to find out)."""
    prefix = root.rstrip("/") + "/"
    rows = catalog.stream(
        "SELECT f.size, f.mtime_ns, f.xxh128, f.blake3, o.target, o.status, o.verified_at"
        " FROM files f JOIN outcomes o ON o.file_id=f.id AND o.dest_ident=?"
        " WHERE f.job_id=? AND o.status IN ('verified', 'already', 'skipped')"
        " AND NOT (o.status='skipped' AND EXISTS (SELECT 1 FROM files pf JOIN outcomes po"
        " ON po.file_id=pf.id AND po.dest_ident=o.dest_ident WHERE pf.job_id=?"
        " AND pf.rel_path=f.rel_path AND po.target=o.target AND po.verified_at IS NOT NULL"
        " AND po.status IN ('verified', 'already', 'skipped')))"
        " ORDER BY f.rel_path",
        (dest_ident, job_id, remembered),
    )
    cut = len(prefix)
    # each row unpacked in the query's order (by name, sqlite3.Row compares every name before);
    # the entry as ``_entry`` makes it
    for size, mtime_ns, xxh128, blake3, landed_at, status, verified_at in rows:
        target = str(landed_at)
        if verified_at is None or not target.startswith(prefix):
            continue  # skipped because something else was there (--on-conflict skip): not ours
        rel = target[cut:]
        if mhl.is_ignored(rel):
            continue
        yield mhl.Entry(
            path=rel,
            size=int(size),
            mtime_ns=int(mtime_ns),
            xxh128=str(xxh128 or mhl.xxh128_of_file(target)),
            blake3=blake3,
            hashed_at=float(verified_at),
            from_earlier_job=status == "skipped",
        )


def _memo_key(dest_ident: str, root: str) -> str:
    return f"mhl-history:{dest_ident}:{root}"


def _chain_c4(root: str) -> str | None:
    chain = Path(root) / mhl.FOLDER / mhl.CHAIN
    return mhl.c4_of_file(chain) if chain.is_file() else None


def _remembered_job(catalog: Catalog, dest_ident: str, root: str) -> str | None:
    """The job whose generation left ``root``'s history as it is now (same chain file, byte for
    byte; ``read_chain`` checks every manifest against it), with every entry of that job in it.
    A re-run then knows from the catalog which files the history has, without reading it."""
    memo = catalog.memo(_memo_key(dest_ident, root))
    if memo is None:
        return None
    c4, _, job = memo.partition(" ")
    if c4 != _chain_c4(root):
        return None
    try:
        mhl.read_chain(Path(root))  # every manifest as the chain says: else the writer reports it
    except errors.HistoryError:
        return None
    return job


def _remember(catalog: Catalog, job_id: str, dest_ident: str, root: str, outcome: MhlOutcome) -> None:
    c4 = _chain_c4(root)
    if outcome.ok and outcome.complete and c4 is not None:
        catalog.set_memo(_memo_key(dest_ident, root), f"{c4} {job_id}")


def source_entries(catalog: Catalog, job_id: str, label: str, read_at: float) -> Iterator[mhl.Entry]:
    """Every file of the source whose files' paths start with ``label`` (``scan.source_labels``)
    whose hashes the job knows, with paths relative to the source."""
    prefix = label + "/"
    seen = -1
    for r in catalog.iter_job_rows(job_id):
        if int(r["file_id"]) == seen:
            continue
        seen = int(r["file_id"])
        rel_path = str(r["rel_path"])
        if (
            r["blake3"] is None
            or r["file_status"] in ("failed", "skipped")
            or not rel_path.startswith(prefix)
        ):
            continue
        rel = rel_path[len(prefix) :]
        if mhl.is_ignored(rel):
            continue
        yield _entry(r, rel, str(r["abs_path"]), read_at, earlier=r["file_status"] != "read")


def source_ignore(catalog: Catalog, job_id: str, source: str, label: str, filters: Filters) -> list[str]:
    """What the job left out of ``source``, as ignore patterns: the filters' own, and one by one
    the paths they cannot say (symlinks, special files, what --include did not match). Else
    verifying the source right after the job would call each of them a new file."""
    top = label + "/"
    patterns = list(filters.ignore_patterns())
    rows = catalog.stream(
        "SELECT rel_path, error_code FROM files WHERE job_id=? AND status='skipped' ORDER BY rel_path",
        (job_id,),
    )
    for r in rows:
        rel_path = str(r["rel_path"])
        rel = rel_path[len(top) :]
        if rel_path.startswith(top) and not filters.said_by_patterns(rel, str(r["error_code"])):
            patterns.extend(mhl.path_patterns(Path(source), rel))
    return patterns


def _write(
    root: Path,
    entries: Iterator[mhl.Entry],
    *,
    started: float,
    process: str,
    comment: str,
    ignore: list[str] | tuple[str, ...],
) -> MhlOutcome:
    try:
        written = mhl.write_generation(
            root, entries, started=started, process=process, comment=comment, ignore=ignore
        )
    except errors.HistoryError as exc:
        return MhlOutcome(str(root), None, f"ASC MHL not written: {exc}", ok=False)
    except OSError as exc:
        return MhlOutcome(str(root), None, f"ASC MHL not written: {exc.strerror or exc}", ok=False)
    if written is None:
        return MhlOutcome(str(root), None, "ASC MHL: nothing new to record", complete=True)
    note = f"; {left_out_text(written.left_out)}" if written.left_out else ""
    return MhlOutcome(
        str(root),
        str(written.manifest),
        f"ASC MHL generation {written.generation}: {plural(written.files, 'file')}{note}",
        complete=not written.left_out,
    )


#: how many of the files a generation left out its line names; the others are counted
LEFT_OUT_SAID = 5


def left_out_text(paths: tuple[str, ...] | list[str]) -> str:
    """The files a generation left out because XML cannot hold their names, named (a control
    character as Python writes it: ``'CARD/bell\\x07.jpg'``), the first ``LEFT_OUT_SAID`` of them."""
    named = ", ".join(repr(p) for p in paths[:LEFT_OUT_SAID])
    more = len(paths) - LEFT_OUT_SAID
    return (
        f"left out {plural(len(paths), 'file')} whose name XML cannot hold: {named}"
        + (f" and {more} more" if more > 0 else "")
        + " (the report has them, with their hashes; castoff verify names them as not in the"
        " history, without failing them)"
    )


def write_for_job(
    catalog: Catalog,
    job_id: str,
    local_roots: dict[str, str],
    *,
    sources: list[str],
    with_sources: bool,
    filters: Filters | None = None,
) -> list[MhlOutcome]:
    """``local_roots``: destination ident → folder; ``filters``: the job's. Returns one outcome per
    scope. A destination's generation ignores the junk the job would leave out (a drive's
    ``.Trashes``, ...); a source's, every file the job left out of it."""
    filters = filters or Filters()
    job = catalog.job(job_id)
    if job is None:
        raise KeyError(job_id)
    started = float(job["started_at"])
    comment = f"castoff job {job_id}"
    out = []
    for ident, root in local_roots.items():
        entries = destination_entries(catalog, job_id, ident, root, _remembered_job(catalog, ident, root))
        junk = scan.JUNK_PATTERNS if filters.skip_junk else ()
        outcome = _write(
            Path(root), entries, started=started, process="transfer", comment=comment, ignore=junk
        )
        _remember(catalog, job_id, ident, root, outcome)
        out.append(outcome)
    if with_sources:
        for src, label in zip(sources, scan.source_labels(sources), strict=True):
            if not os.path.isdir(src):
                if os.path.lexists(src):
                    continue  # a file given as a source: no folder to hold a history
                # (the card ejected or unmounted before its history was written): said, never silent
                out.append(
                    MhlOutcome(
                        src,
                        None,
                        "ASC MHL not written: the source is no longer there (was the card ejected"
                        " before castoff said it could be?)",
                        ok=False,
                    )
                )
                continue
            if not os.access(src, os.W_OK):
                out.append(MhlOutcome(src, None, "ASC MHL not written: the source is read-only"))
                continue
            entries = source_entries(catalog, job_id, label, float(job["ended_at"] or time.time()))
            ignore = source_ignore(catalog, job_id, src, label, filters)
            out.append(
                _write(
                    Path(src), entries, started=started, process="in-place", comment=comment, ignore=ignore
                )
            )
    return out
