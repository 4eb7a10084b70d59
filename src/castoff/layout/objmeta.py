"""A file's provenance as object metadata: which fields, and which fit in the provider's limit.

castoff's own keys (blake3, mtime, md5chksum) come first; these fields follow while they fit, and
those that do not go to the JSON sidecar object (``metasidecar``), and the report says so.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

#: bytes of the provider's user-metadata limit kept for castoff's own keys
#: (blake3 6+64, mtime 5+≤21, md5chksum 9+24: at most 129)
RESERVED_BYTES = 160


def object_fields(record: Mapping[str, Any]) -> dict[str, str]:
    """The metadata castoff adds to an object, most useful first (the first to be kept)."""
    fields = {
        "capture-time": record.get("capture_time"),
        "capture-source": record.get("capture_source"),
        "device": record.get("device"),
        "original-path": record.get("original_path"),
        "sidecar-of": record.get("sidecar_of"),
    }
    return {k: str(v) for k, v in fields.items() if v}


def encoded_len(value: str) -> int:
    """Bytes a value takes as a header: as it is when printable ASCII, else RFC 2047 (as the S3
    destination sends it)."""
    if value.isascii() and value.isprintable() and value == value.strip():
        return len(value)
    return len("=?UTF-8?B??=") + len(base64.b64encode(value.encode()))


def fit_metadata(fields: Mapping[str, str], limit: int) -> tuple[dict[str, str], list[str]]:
    """The fields that fit in ``limit`` bytes beside castoff's own keys, and the names of the rest."""
    room = limit - RESERVED_BYTES
    fits: dict[str, str] = {}
    left: list[str] = []
    for key, value in fields.items():
        cost = len(key) + encoded_len(value)
        if cost <= room:
            fits[key] = value
            room -= cost
        else:
            left.append(key)
    return fits, left
