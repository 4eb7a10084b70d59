"""Put a report file into a destination through the destination interface, so it is verified like any file.

``start`` / ``put_part`` / ``commit``: a local folder reads it back and compares BLAKE3, a bucket checks
Content-MD5 and the ETag. Reports land under ``castoff-reports/`` (after the bucket prefix for S3).
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import blake3

from castoff.destinations.base import Destination, Landed, MiB, ObjectMeta
from castoff.destinations.put import put_object
from castoff.engine.retry import RetryPolicy
from castoff.reports.mhl import REPORTS_FOLDER


def _hashes(path: Path) -> tuple[str, str]:
    b3 = blake3.blake3()
    md5 = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        while block := fh.read(8 * MiB):
            b3.update(block)
            md5.update(block)
    return b3.hexdigest(), md5.hexdigest()


def put_file(
    dest: Destination,
    path: Path,
    *,
    retry: RetryPolicy | None = None,
    cancel: threading.Event | None = None,
) -> Landed:
    """Send ``path`` to ``castoff-reports/<name>`` at ``dest``; returns where it landed, verified."""
    st = path.stat()
    digest, md5 = _hashes(path)
    rel = f"{REPORTS_FOLDER}/{path.name}"
    meta = ObjectMeta(
        rel_path=rel,
        size=st.st_size,
        mtime_ns=st.st_mtime_ns,
        atime_ns=st.st_atime_ns,
        blake3=digest,
        md5=md5,
    )
    with open(path, "rb") as fh:
        return put_object(
            dest,
            dest.target_for(rel),
            fh,
            meta=meta,
            retry=retry or RetryPolicy(),
            cancel=cancel or threading.Event(),
        )
