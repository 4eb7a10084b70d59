"""Sizes and rates as people write them (``256M``, ``1.5GiB``, ``10MB/s``) and as castoff prints them.

Binary multiples throughout: K, KB, KiB all mean 1024, as rclone and the AWS tools read them.
"""

from __future__ import annotations

import re

from castoff import errors

_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*(?:/s)?\s*$", re.IGNORECASE)


def parse_size(text: str, *, what: str = "size") -> int:
    m = _SIZE.match(text)
    if not m:
        raise errors.UsageError(
            f"{what} {text!r} is not a size", hint="write it like 256M, 16MiB, 1.5G or 1048576"
        )
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"
