"""Put a report file into a destination through the destination interface, so it is verified like any file.

``start`` / ``put_part`` / ``commit``: a local folder reads it back and compares BLAKE3, a bucket checks
Content-MD5 and the ETag. Reports land under ``castoff-reports/`` (after the bucket prefix for S3).
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import blake3

from castoff.destinations.base import Destination, Landed, MiB, ObjectMeta, PartReceipt, Upload, parts_for
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


def part_size_for(dest: Destination, size: int) -> int:
    caps = dest.caps
    ps = max(16 * MiB, caps.min_part_size, caps.preferred_part_size or 0, -(-size // caps.max_parts))
    if size <= caps.single_put_max:
        ps = max(ps, size)  # one request where the destination takes it whole
    return min(ps, caps.max_part_size)


def _put(
    upload: Upload,
    retry: RetryPolicy,
    cancel: threading.Event,
    index: int,
    offset: int,
    data: memoryview,
    md5: bytes | None,
) -> PartReceipt:
    return retry.call(lambda: upload.put_part(index, offset, data, md5), cancel=cancel)


def put_file(
    dest: Destination,
    path: Path,
    *,
    retry: RetryPolicy | None = None,
    cancel: threading.Event | None = None,
) -> Landed:
    """Send ``path`` to ``castoff-reports/<name>`` at ``dest``; returns where it landed, verified."""
    retry = retry or RetryPolicy()
    cancel = cancel or threading.Event()
    st = path.stat()
    digest, md5 = _hashes(path)
    rel = f"{REPORTS_FOLDER}/{path.name}"
    target = dest.target_for(rel)
    part_size = part_size_for(dest, st.st_size)
    meta = ObjectMeta(
        rel_path=rel,
        size=st.st_size,
        mtime_ns=st.st_mtime_ns,
        atime_ns=st.st_atime_ns,
        blake3=digest,
        md5=md5,
    )
    upload = retry.call(lambda: dest.start(target, meta=meta, part_size=part_size), cancel=cancel)
    try:
        receipts: list[PartReceipt] = []
        with open(path, "rb") as fh:
            for index in range(parts_for(st.st_size, part_size)):
                offset = index * part_size
                data = memoryview(fh.read(part_size))
                part_md5 = hashlib.md5(data, usedforsecurity=False).digest() if dest.caps.needs_md5 else None
                receipts.append(_put(upload, retry, cancel, index, offset, data, part_md5))
        return retry.call(
            lambda: upload.commit(receipts, source_blake3=digest, overwrite=True), cancel=cancel
        )
    except BaseException:
        upload.abort()
        raise
