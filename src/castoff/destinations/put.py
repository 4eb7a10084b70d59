"""One whole object through the destination interface, outside a job's engine: a report, a
metadata sidecar. ``start`` / ``put_part`` / ``commit`` as the engine does it, so it is verified
the same way (a folder reads it back and compares BLAKE3, a bucket checks Content-MD5 and ETags)."""

from __future__ import annotations

import hashlib
import threading
from typing import BinaryIO

from castoff.destinations.base import Destination, Landed, MiB, ObjectMeta, PartReceipt, parts_for
from castoff.engine.retry import RetryPolicy


def part_size_for(dest: Destination, size: int) -> int:
    """One request where the destination takes the object whole, else parts within its limits."""
    caps = dest.caps
    ps = max(16 * MiB, caps.min_part_size, caps.preferred_part_size or 0, -(-size // caps.max_parts))
    if size <= caps.single_put_max:
        ps = max(ps, size)
    return min(ps, caps.max_part_size)


def put_object(
    dest: Destination,
    target: str,
    body: BinaryIO,
    *,
    meta: ObjectMeta,
    retry: RetryPolicy,
    cancel: threading.Event,
    overwrite: bool = True,
) -> Landed:
    """Send ``meta.size`` bytes of ``body`` to ``target``; ``meta.blake3`` must be their hash.
    Leaves nothing behind when it fails (the upload is aborted)."""
    if meta.blake3 is None:
        raise ValueError("put_object needs the body's BLAKE3 to prove the copy")
    digest = meta.blake3
    part_size = part_size_for(dest, meta.size)
    upload = retry.call(lambda: dest.start(target, meta=meta, part_size=part_size), cancel=cancel)
    try:
        receipts: list[PartReceipt] = []
        for index in range(parts_for(meta.size, part_size)):
            data = memoryview(body.read(part_size))
            md5 = hashlib.md5(data, usedforsecurity=False).digest() if dest.caps.needs_md5 else None
            offset = index * part_size
            receipts.append(
                retry.call(lambda: upload.put_part(index, offset, data, md5), cancel=cancel)  # noqa: B023
            )
        return retry.call(
            lambda: upload.commit(receipts, source_blake3=digest, overwrite=overwrite), cancel=cancel
        )
    except BaseException:
        upload.abort()
        raise
