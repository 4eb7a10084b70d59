"""Sizes and rates as people write them (``256M``, ``1.5GiB``, ``10MB/s``) and as castoff prints them,
and local times as castoff prints them many times over (``TimeText``).

Binary multiples throughout: K, KB, KiB all mean 1024, as rclone and the AWS tools read them.
"""

from __future__ import annotations

import re
import time
from typing import overload

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


def plural(n: int, word: str, words: str | None = None) -> str:
    """``n`` and the word for that many: ``1 file``, ``2 files``, ``0 files`` (``words`` when the
    plural is not the word and an s: ``copy``, ``copies``)."""
    return f"{n} {word if n == 1 else words or word + 's'}"


def format_bytes(n: float | None) -> str:
    """``n`` bytes for a person; None: "unknown" (the size of a file castoff could not look at)."""
    if n is None:
        return "unknown"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


class TimeText:
    """``time.strftime(fmt)`` of a local time, by whole second, remembered: a job's times crowd into
    few seconds, and the reports write several a file."""

    def __init__(self, fmt: str) -> None:
        self._fmt = fmt
        self._known: dict[int, str] = {}

    @overload
    def __call__(self, t: float) -> str: ...
    @overload
    def __call__(self, t: None) -> None: ...
    @overload
    def __call__(self, t: float | None) -> str | None: ...

    def __call__(self, t: float | None) -> str | None:
        if t is None:
            return None
        second = int(t // 1)
        text = self._known.get(second)
        if text is None:
            if len(self._known) > 100_000:
                self._known.clear()
            text = self._known[second] = time.strftime(self._fmt, time.localtime(second))
        return text
