"""The ASC MHL generations a job adds: one per local destination folder, and one per source on request.

Entries come from the catalog (xxh128 and BLAKE3 from the one read); only a file whose xxh128 an older
catalog never recorded is read again, from the verified copy at the destination.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from castoff import errors, scan
from castoff.catalog.db import Catalog
from castoff.destinations.local import rename_no_replace, translate_os_error
from castoff.engine.histories import compare_histories
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
            written=status == "verified",
        )


def _memo_key(dest_ident: str, root: str) -> str:
    return f"mhl-history:{dest_ident}:{root}"


def _chain_c4(root: str) -> str | None:
    """The C4 of ``root``'s chain file; None when there is none or it cannot be read (the drive
    gone under the job: then nothing is remembered of it, and the generation said not written)."""
    try:
        return mhl.c4_of_file(Path(root) / mhl.FOLDER / mhl.CHAIN)
    except OSError:
        return None


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
    except (errors.HistoryError, OSError):
        return None
    return job


def _remember(catalog: Catalog, job_id: str, dest_ident: str, root: str, outcome: MhlOutcome) -> None:
    if not (outcome.ok and outcome.complete):
        return
    c4 = _chain_c4(root)
    if c4 is not None:
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
        completed = mhl.complete_unfinished(root)
        written = mhl.write_generation(
            root,
            entries,
            started=started,
            process=process,
            comment=comment,
            ignore=ignore,
            carry_ignore=process == "transfer",  # a destination's: castoff's replacements stay ignored
        )
    except errors.HistoryError as exc:
        return MhlOutcome(str(root), None, f"ASC MHL not written: {exc}", ok=False)
    except OSError as exc:
        gone = translate_os_error(exc, "ASC MHL not written")
        if isinstance(gone, errors.DestinationGone | errors.DriveFailed) or exc.errno == errno.EROFS:
            # the drive pulled, failing or gone read-only: said as the engine says it
            return MhlOutcome(str(root), None, str(gone), ok=False)
        return MhlOutcome(str(root), None, f"ASC MHL not written: {exc.strerror or exc}", ok=False)
    done = "" if completed is None else f"{completed_text(completed)}; "
    if written is None:
        return MhlOutcome(str(root), None, f"ASC MHL: {done}nothing new to record", complete=True)
    note = f"; {left_out_text(written.left_out)}" if written.left_out else ""
    if written.replaced:
        note += f"; {replaced_text(written.replaced)}"
    return MhlOutcome(
        str(root),
        str(written.manifest),
        f"ASC MHL: {done}generation {written.generation}: {plural(written.files, 'file')}{note}"
        if done
        else f"ASC MHL generation {written.generation}: {plural(written.files, 'file')}{note}",
        complete=not written.left_out,
    )


def completed_text(completed: mhl.Completed) -> str:
    """What is said of a generation an earlier castoff left unfinished, completed now."""
    by = completed.comment.removeprefix("castoff ") if completed.comment else "an earlier job"
    return f"generation {completed.number}, left unfinished by {by}, completed"


def replaced_text(paths: tuple[str, ...]) -> str:
    """What is said of the files a generation records as replaced by castoff (``mhl._replaced_xml``)."""
    named = ", ".join(repr(p) if not p.isprintable() else p for p in paths[:LEFT_OUT_SAID])
    more = len(paths) - LEFT_OUT_SAID
    return (
        f"{plural(len(paths), 'file')} replaced with new bytes, ignored by the history from now on"
        f" (ASC MHL cannot record a file's new bytes): {named}"
        + (f" and {more} more" if more > 0 else "")
        + "; castoff verify checks them against the bytes castoff recorded"
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


def history_copies(catalog: Catalog, job_id: str, label: str, local_roots: dict[str, str]) -> dict[str, str]:
    """Where this job put (or found) the source's own ASC MHL history at a local destination:
    destination ident → the folder its ``ascmhl/`` is in there. Only where every file of the
    source the job delivered there (the files its in-place generation lists) landed under its
    path on the source, below that folder: there the source's history describes the folder as it
    describes the source (a layout that keeps the source's folders: ``none``, ``{card}/{path}``).
    Not at a destination's root (``--template '{path}'``): that history is the destination's own,
    which its generation continues."""
    prefix = label + "/"
    chain = f"{prefix}{mhl.FOLDER}/{mhl.CHAIN}"
    found: dict[str, str] = {}
    for ident, target in catalog.stream(
        "SELECT o.dest_ident, o.target FROM files f JOIN outcomes o ON o.file_id=f.id WHERE f.job_id=?"
        " AND f.rel_path=? AND o.status IN ('verified', 'already', 'skipped') AND o.verified_at IS NOT NULL",
        (job_id, chain),
    ):
        folder = str(target).rpartition("/")[0]
        if ident not in local_roots or not folder.endswith("/" + mhl.FOLDER):
            continue
        there = folder.rpartition("/")[0]
        # at the destination's root, the history is the destination's own, which castoff continues
        if os.path.normpath(there) != os.path.normpath(local_roots[ident]):
            found[str(ident)] = there
    if not found:
        return found
    apart: set[str] = set()
    for r in catalog.iter_job_rows(job_id):
        rel_path = str(r["rel_path"])
        ident = r["dest_ident"]
        if ident not in found or not rel_path.startswith(prefix) or r["blake3"] is None:
            continue
        rel = rel_path[len(prefix) :]
        if r["file_status"] in ("failed", "skipped") or mhl.is_ignored(rel):
            continue
        landed = r["status"] in ("verified", "already", "skipped") and r["verified_at"] is not None
        if not landed or r["target"] != f"{found[ident]}/{rel}":
            apart.add(str(ident))
    return {ident: folder for ident, folder in found.items() if ident not in apart}


def _copy_new(src: Path, dst: Path, c4: str) -> None:
    """``src`` (a manifest, never changed once written) to ``dst``, which must not exist or hold
    the same bytes: written under a hidden name, fsynced, read back (its C4), then named."""
    if dst.exists():
        if mhl.c4_of_file(dst) != c4:
            raise errors.HistoryError(f"{dst} is there already and is another manifest")
        return
    tmp = dst.with_name(f".castoff-carry-{dst.name}.tmp")
    try:
        with open(src, "rb") as fin, open(tmp, "wb") as fout:
            while block := fin.read(1024 * 1024):
                fout.write(block)
            fout.flush()
            os.fsync(fout.fileno())
        if mhl.c4_of_file(tmp) != c4:
            raise errors.HistoryError(f"{dst}: the copy read back differs from {src}")
        rename_no_replace(str(tmp), str(dst))  # never over another file (exFAT, FAT: no hard links)
    finally:
        tmp.unlink(missing_ok=True)


def _replace_chain(source: Path, there: Path, gens: list[mhl.Generation]) -> None:
    """The source's chain file in place of the one in ``there``'s history (atomically), read back."""
    chain = there / mhl.FOLDER / mhl.CHAIN
    tmp = chain.with_name(f".castoff-carry-{mhl.CHAIN}")
    tmp.unlink(missing_ok=True)
    _copy_new(source / mhl.FOLDER / mhl.CHAIN, tmp, mhl.c4_of_file(source / mhl.FOLDER / mhl.CHAIN))
    os.replace(tmp, chain)
    if mhl.read_chain(there) != gens:
        raise errors.HistoryError(f"{chain} does not read back as the source's")


def carry_history(source: Path, there: Path) -> MhlOutcome:
    """The source's history (its new in-place generation) carried into its copy in the folder
    ``there`` at a destination, which a job copied it to: the manifests that copy lacks, then the
    source's chain in place of the shorter one, as the next offload would copy them (only onto a
    copy whose chain the source's continues: ``engine/histories.py``). Else ``ascmhl diff`` of the
    destination calls every file new since the copy's last generation new: a nested history is
    the one that records the files below it."""
    scope = str(there / mhl.FOLDER)
    try:
        how = compare_histories(str(source / mhl.FOLDER), scope)
        if how.relation == "same":
            return MhlOutcome(scope, None, "ASC MHL: the source's history is here as it is", complete=True)
        if how.relation != "older":
            why = how.why or "this history has generations the source's has not"
            return MhlOutcome(
                scope,
                None,
                f"ASC MHL: the source's new generation was not carried into its copy here ({why});"
                " the destination's history does not record the files below it that this job copied",
                ok=False,
            )
        gens = mhl.read_chain(source)
        new = [g for g in gens if g.name not in how.dest_names]
        with mhl.locked(there):  # as a generation is added (``mhl.locked``)
            for g in new:
                _copy_new(source / mhl.FOLDER / g.name, there / mhl.FOLDER / g.name, g.c4)
            _replace_chain(source, there, gens)
    except errors.HistoryError as exc:
        return MhlOutcome(
            scope, None, f"ASC MHL: the source's new generation not carried here: {exc}", ok=False
        )
    except OSError as exc:
        return MhlOutcome(
            scope,
            None,
            f"ASC MHL: the source's new generation not carried here: {exc.strerror or exc}",
            ok=False,
        )
    last = gens[-1]
    return MhlOutcome(
        scope,
        str(there / mhl.FOLDER / last.name),
        f"ASC MHL: the source's generation {last.number} carried into its history here"
        f" ({len(new)} manifest{'s' * (len(new) != 1)} and the chain, read back)",
        complete=True,
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
            written = _write(
                Path(src), entries, started=started, process="in-place", comment=comment, ignore=ignore
            )
            out.append(written)
            if written.manifest is None:
                continue
            # the card's history copied to a drive this job: its new generation goes there too
            for there in history_copies(catalog, job_id, label, local_roots).values():
                out.append(carry_history(Path(src), Path(there)))
    return out
