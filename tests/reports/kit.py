"""Helpers shared by the report tests (fixtures are in conftest.py)."""

from __future__ import annotations

import json
import subprocess
import time
import tracemalloc
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import jsonschema

from castoff.catalog.db import Catalog

REPO = Path(__file__).resolve().parents[2]
ASCMHL_VENV = REPO / ".venv-ascmhl"
XSD_DIR = REPO / "src" / "castoff" / "reports" / "ascmhl-xsd"
XSS = "<img src=x onerror=alert(1)>.jpg"

Cli = Callable[..., subprocess.CompletedProcess[str]]
T = TypeVar("T")


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def reports(state: Path, suffix: str = ".json") -> list[Path]:
    return sorted((state / "reports").glob(f"*{suffix}"))


def last_report(state: Path) -> dict[str, Any]:
    return json.loads(reports(state)[-1].read_text(encoding="utf-8"))


def big_job(cat: Catalog, job_id: str, n_files: int) -> None:
    """A finished job of ``n_files`` files, each verified at two folders, written straight to the catalog."""
    dests = [{"name": n, "ident": f"local:/{n}", "kind": "local"} for n in ("ssd", "nas")]
    cat.start_job(job_id, argv=["x"], sources=["/card"], destinations=dests, options={}, pid=1)
    now = time.time()
    # Bulk set-up in one transaction (the public API commits per row, which is slow for 20,000).
    with cat._tx() as db:
        for i in range(n_files):
            cur = db.execute(
                "INSERT INTO files(job_id, rel_path, abs_path, size, mtime_ns, status, blake3, xxh128)"
                " VALUES (?, ?, ?, ?, 0, 'read', ?, ?)",
                (job_id, f"card/{i:06}.CR3", f"/card/{i:06}.CR3", i, f"{i:064x}", f"{i:032x}"),
            )
            for d in dests:
                db.execute(
                    "INSERT INTO outcomes(job_id, file_id, dest_ident, dest_name, target, status,"
                    " verify_method, verified_at) VALUES (?, ?, ?, ?, ?, 'verified', 'read-back blake3', ?)",
                    (job_id, cur.lastrowid, d["ident"], d["name"], f"/{d['name']}/card/{i:06}.CR3", now),
                )
    cat.end_job(job_id, status="done", exit_code=0)


def peak_memory(call: Callable[[], T]) -> tuple[int, T]:
    """The most memory Python held while ``call`` ran (tracemalloc), and what it returned."""
    tracemalloc.start()
    try:
        out = call()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak, out


def schema() -> dict[str, Any]:
    text = resources.files("castoff.reports").joinpath("report.schema.json").read_text(encoding="utf-8")
    return json.loads(text)


def validate(doc: dict[str, Any]) -> None:
    jsonschema.Draft202012Validator(schema(), format_checker=jsonschema.FormatChecker()).validate(doc)
