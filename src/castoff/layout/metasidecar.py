"""JSON sidecar objects ``<key>.castoff.json`` beside the files on object stores, written after
the files from the catalog, through the destination interface (start/put_part/commit) and verified.

With ``--metadata object`` a sidecar is written only for files whose metadata did not fit; with
``sidecar`` or ``both`` for every file. Re-runs skip sidecars the catalog knows are there.
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import blake3

from castoff import errors
from castoff.catalog.db import Catalog, LandedRow
from castoff.destinations.base import Destination, Landed, ObjectMeta, TargetExists
from castoff.destinations.put import put_object
from castoff.engine.job import JobResult
from castoff.engine.retry import RetryPolicy
from castoff.layout.objmeta import fit_metadata, object_fields

SIDECAR_SUFFIX = ".castoff.json"
SIDECAR_SCHEMA = "castoff.sidecar/1"
DELIVERED = ("verified", "already", "skipped")


def sidecar_body(file_row: Mapping[str, Any], record: Mapping[str, Any], left_out: Sequence[str]) -> bytes:
    doc = {
        "schema": SIDECAR_SCHEMA,
        "original_path": file_row["rel_path"],
        "size": file_row["size"],
        "mtime_ns": file_row["mtime_ns"],
        "blake3": file_row["blake3"],
        "md5": file_row["md5"],
        "capture": {"time": record.get("capture_time"), "source": record.get("capture_source")},
        "device": {"name": record.get("device"), "source": record.get("device_source")},
        "type": record.get("file_type"),
        "sidecar_of": record.get("sidecar_of"),
        "layout_path": record.get("layout_path"),
        "left_out_of_object_metadata": list(left_out),
    }
    return (json.dumps(doc, indent=2, ensure_ascii=False, sort_keys=True) + "\n").encode()


def put_small_object(
    dest: Destination, key: str, body: bytes, *, mtime_ns: int, retry: RetryPolicy, cancel: threading.Event
) -> Landed:
    """One small object through start/put_part/commit, verified as any file is."""
    meta = ObjectMeta(
        rel_path=key,
        size=len(body),
        mtime_ns=mtime_ns,
        atime_ns=mtime_ns,
        blake3=blake3.blake3(body).hexdigest(),
        md5=hashlib.md5(body, usedforsecurity=False).hexdigest(),
    )
    return put_object(dest, key, io.BytesIO(body), meta=meta, retry=retry, cancel=cancel)


def write_sidecars(
    catalog: Catalog,
    job_id: str,
    dests: Sequence[Destination],
    mode: str,
    result: JobResult,
    *,
    cancel: threading.Event,
    log: Callable[[str, str], None],
    retry: RetryPolicy | None = None,
) -> int:
    """After the files: the JSON sidecar objects the job needs, built from the catalog. Returns
    how many failed; a failed one fails the job (``result``), as a file that did not land would."""
    if cancel.is_set():
        return 0
    failed = _write_all(catalog, job_id, dests, mode, retry or RetryPolicy(), cancel, log)
    if failed and result.exit_code == errors.EXIT_OK:
        result.exit_code, result.status = errors.EXIT_FAILED, "failed"
    return failed


def _write_all(
    catalog: Catalog,
    job_id: str,
    dests: Sequence[Destination],
    mode: str,
    retry: RetryPolicy,
    cancel: threading.Event,
    log: Callable[[str, str], None],
) -> int:
    stores = {d.ident: d for d in dests if not d.caps.is_local}
    if not stores:
        return 0
    files = {int(f["id"]): f for f in catalog.job_files(job_id)}
    records = catalog.job_file_meta(job_id)
    failed = 0
    for o in catalog.job_outcomes(job_id):
        dest = stores.get(o["dest_ident"])
        record = records.get(int(o["file_id"]))
        if dest is None or record is None or o["status"] not in DELIVERED or cancel.is_set():
            continue
        fields = object_fields(record)
        left = fields if mode == "sidecar" else fit_metadata(fields, dest.caps.max_metadata_bytes)[1]
        if mode == "object" and not left:
            continue
        f = _with_hashes(catalog, dict(files[int(o["file_id"])]))
        key = str(o["target"]) + SIDECAR_SUFFIX
        body = sidecar_body(f, record, list(left))
        status, error = _deliver(catalog, job_id, dest, key, body, f, retry=retry, cancel=cancel)
        catalog.record_meta_sidecar(job_id, int(o["file_id"]), dest.ident, key, status, error)
        if status == "failed":
            failed += 1
            log(f"{dest.name}: {key}: metadata sidecar not written: {error}", "error")
    return failed


def _with_hashes(catalog: Catalog, row: dict[str, Any]) -> dict[str, Any]:
    """A file skipped in this job was not read: its hashes are the catalog's from the earlier read."""
    if row["blake3"] is None:
        known = catalog.known_hash(str(row["abs_path"]), int(row["size"]), int(row["mtime_ns"]))
        if known is not None:
            row["blake3"], row["md5"] = known
    return row


def _deliver(
    catalog: Catalog,
    job_id: str,
    dest: Destination,
    key: str,
    body: bytes,
    file_row: Mapping[str, Any],
    *,
    retry: RetryPolicy,
    cancel: threading.Event,
) -> tuple[str, str | None]:
    digest = blake3.blake3(body).hexdigest()
    known = catalog.landed_at(dest.ident, key)
    if known is not None and known.blake3 == digest:
        return "already", None
    try:
        landed = put_small_object(
            dest, key, body, mtime_ns=int(file_row["mtime_ns"]), retry=retry, cancel=cancel
        )
    except TargetExists:
        return "exists", "an object of that name was already there; kept it (conditional write)"
    except errors.CastoffError as exc:
        return "failed", str(exc)
    catalog.record_landed(
        LandedRow(
            dest_ident=dest.ident,
            planned=key,
            target=landed.target,
            src_path=str(file_row["abs_path"]),
            size=len(body),
            mtime_ns=int(file_row["mtime_ns"]),
            blake3=digest,
            etag=landed.etag,
            verify_method=landed.verify_method,
            verified_at=time.time(),
            job_id=job_id,
        )
    )
    return "verified", None
