"""The JSON job report, built from the catalog alone so a resumed job's report is whole.

Schema ``castoff.report/2`` (``report.schema.json`` beside this module, docs/report.md): the job, a
summary per destination, then every file with its outcome at every destination (target, status, how
and when it was verified, ETag, error), then what was left out. /2 adds to each file ``capture``
(time, source: exif|quicktime|mxf|mtime, device, device_source, type, sidecar_of, layout_path; null when
the job had no planner) and to each destination entry ``metadata_sidecar`` (key, status, error of
its ``.castoff.json`` object; null when none was written).
"""

from __future__ import annotations

import json
import os
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from castoff.catalog.db import Catalog
from castoff.reports.summary import tally

SCHEMA = "castoff.report/2"


def _iso(t: float | None) -> str | None:
    if t is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(t))


def _capture(row: dict[str, Any] | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {
        "time": row["capture_time"],
        "source": row["capture_source"],
        "device": row["device"],
        "device_source": row["device_source"],
        "type": row["file_type"],
        "sidecar_of": row["sidecar_of"],
        "layout_path": row["layout_path"],
    }


def _sidecar(row: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if row is None else {"key": row["key"], "status": row["status"], "error": row["error"]}


def build(catalog: Catalog, job_id: str) -> dict[str, Any]:
    job = catalog.job(job_id)
    if job is None:
        raise KeyError(job_id)
    files = catalog.job_files(job_id)
    outcomes = catalog.job_outcomes(job_id)
    captures = catalog.job_file_meta(job_id)
    sidecars = catalog.job_meta_sidecars(job_id)
    by_file: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for o in outcomes:
        entry = {
            "destination": o["dest_name"],
            "target": o["target"],
            "status": o["status"],
            "verify_method": o["verify_method"],
            "verified_at": _iso(o["verified_at"]),
            "etag": o["etag"],
            "error": o["error"],
            "error_code": o["error_code"],
            "detail": o["detail"],
            "metadata_sidecar": _sidecar(sidecars.get((int(o["file_id"]), o["dest_ident"]))),
        }
        by_file[int(o["file_id"])].append(entry)
    report_files = []
    left_out = []
    for f in files:
        if f["status"] == "skipped":
            left_out.append({"path": f["rel_path"], "reason": f["error"], "code": f["error_code"]})
            continue
        report_files.append(
            {
                "path": f["rel_path"],
                "source": f["abs_path"],
                "size": f["size"],
                "mtime": _iso(f["mtime_ns"] / 1e9),
                "mtime_ns": f["mtime_ns"],
                "blake3": f["blake3"],
                "md5": f["md5"],
                "xxh128": f["xxh128"],
                "status": f["status"],
                "error": f["error"],
                "capture": _capture(captures.get(int(f["id"]))),
                "destinations": by_file.get(int(f["id"]), []),
            }
        )
    ok = {"verified", "already", "skipped"}
    report_files.sort(
        key=lambda r: (
            r["status"] != "failed" and all(d["status"] in ok for d in r["destinations"]),
            r["path"],
        )
    )
    return {
        "schema": SCHEMA,
        "job": {
            "id": job_id,
            "status": job["status"],
            "exit_code": job["exit_code"],
            "started_at": _iso(job["started_at"]),
            "ended_at": _iso(job["ended_at"]),
            "duration_s": (job["ended_at"] - job["started_at"]) if job["ended_at"] else None,
            "sources": json.loads(job["sources"]),
            "command": json.loads(job["argv"]),
        },
        "summary": {name: s.as_json() for name, s in tally(catalog, job).destinations.items()},
        "files": report_files,
        "left_out": left_out,
    }


def write(catalog: Catalog, job_id: str, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{job_id}.json"
    tmp = path.with_suffix(".json.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(build(catalog, job_id), fh, indent=2, ensure_ascii=False)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    catalog.set_report_path(job_id, str(path))
    return path
