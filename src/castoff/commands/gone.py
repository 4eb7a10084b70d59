"""A source that is no longer there, which an earlier job copied and released: what finishes it.

After the card could be released (every local destination verified) a job that stopped before
its uploads were done cannot be re-run as it was: the card is gone. The verified local copy can
finish it: the folders the job's files landed in at a local destination, copied as they are
(``--layout none``), get the keys the job gave them at each bucket (``{card}/{path}`` of a folder
is that folder's name and what is under it).
"""

from __future__ import annotations

import json
import os
import shlex

from castoff import errors
from castoff.catalog.db import Catalog

DELIVERED = ("verified", "already", "skipped")


def released_and_gone(catalog: Catalog, source: str, given: str) -> errors.UsageError | None:
    """The error for ``source`` (absolute, not there) when the last job that copied it was released
    and left a bucket short: said so, with the command that finishes from the verified copy (or
    why there is none). None when no such job is known: the usual error stands."""
    from castoff.catalog.running import row_alive

    rows = list(catalog.stream("SELECT * FROM jobs WHERE pruned_at IS NULL ORDER BY started_at DESC"))
    job = next((r for r in rows if source in json.loads(r["sources"])), None)
    dests = (
        []
        if job is None or (job["status"] == "running" and row_alive(job))
        else json.loads(job["destinations"])
    )
    local = [d for d in dests if d.get("kind") == "local"]
    buckets = [d for d in dests if d.get("kind") != "local"]
    if job is None or not local or not buckets:
        return None
    files = catalog.stream(
        "SELECT id, abs_path FROM files WHERE job_id=? AND status != 'skipped'", (str(job["id"]),)
    )
    mine = {
        int(f["id"])
        for f in files
        if str(f["abs_path"]) == source or str(f["abs_path"]).startswith(source.rstrip("/") + "/")
    }
    if not mine:
        return None
    delivered: dict[str, dict[int, str]] = {str(d["ident"]): {} for d in dests}
    for o in catalog.job_outcomes(str(job["id"])):
        fid = int(o["file_id"])
        if fid in mine and o["status"] in DELIVERED and str(o["dest_ident"]) in delivered:
            delivered[str(o["dest_ident"])][fid] = str(o["target"])
    if any(len(delivered[str(d["ident"])]) < len(mine) for d in local):
        return None  # not released: the usual error (the card is needed)
    short = [d for d in buckets if len(delivered[str(d["ident"])]) < len(mine)]
    if not short:
        return None  # nothing left to send
    here = [d for d in local if _all_there(delivered[str(d["ident"])].values())]
    copy = here[0] if here else local[0]
    root = _root(str(copy["ident"]), delivered[str(copy["ident"])].values())
    said = (
        f"source {given} does not exist: job {job['id']} copied it, and every local destination"
        f" verified all of its files (the card could be released), but"
        f" {', '.join(str(d['name']) for d in short)} did not get them all"
    )
    if root is None:
        hint = (
            "mount the card and re-run the same command; the verified copy cannot give the same"
            " keys here (the job's layout put files at the drive's top level, with no folder of their own)"
        )
    elif not here:
        hint = (
            "mount the card and re-run the same command; none of the drives that hold the verified"
            f" copy ({', '.join(str(d['name']) for d in local)}) is there now with all of the job's"
            " files: plug one in, and this command gives the one that finishes from it"
        )
    else:
        folder_root, tops = root
        to = " ".join(f"--to {shlex.quote(str(d.get('spec') or d['name']))}" for d in short)
        folders = " ".join(shlex.quote(os.path.join(folder_root, t)) for t in tops)
        hint = (
            "mount the card and re-run the same command, or finish from the verified copy at"
            f" {copy['name']}: castoff copy {folders} {to} --layout none (the drive's folders as they"
            " are: the same keys as the job's, nothing sent again that is there, unfinished uploads"
            " resumed)"
        )
    return errors.UsageError(said, hint=hint)


def _all_there(targets: object) -> bool:
    """Whether every file the job verified at a local destination is there now (the drive plugged
    in, its folders as they were): only such a copy can finish the job."""
    return all(os.path.isfile(str(t)) for t in targets)  # type: ignore[attr-defined]


def _root(ident: str, targets: object) -> tuple[str, list[str]] | None:
    """The local destination's folder and the top-level folders the job's files are in there."""
    root = ident.split(":", 1)[1] if ident.startswith("local:") else None
    if root is None:
        return None
    prefix = root.rstrip("/") + "/"
    tops: set[str] = set()
    for target in targets:  # type: ignore[attr-defined]
        rest = str(target)[len(prefix) :] if str(target).startswith(prefix) else ""
        top, sep, _ = rest.partition("/")
        if not sep or not top:
            return None
        tops.add(top)
    return root, sorted(tops)
