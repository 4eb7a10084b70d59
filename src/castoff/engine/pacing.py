"""Bandwidth pacing: a thread-safe token bucket that holds senders to a byte rate.

``--bwlimit`` values (``10M``, ``512K``, ``1.5MiB/s``) are parsed here into bytes per second.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from decimal import Decimal

from castoff import errors

_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(?:([kmgtp])(i)?)?(b)?\s*$", re.IGNORECASE)
_POWERS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4, "p": 5}
_UNLIMITED = {"", "0", "off", "none", "unlimited"}


def _quantity(text: str, what: str, hint: str) -> Decimal:
    m = _SIZE.match(text)
    if not m:
        raise errors.UsageError(f"not {what}: {text!r}", hint=hint)
    number, letter, binary, b = m.groups()
    letter = (letter or "").lower()
    base = 1000 if (letter and b and not binary) else 1024
    return Decimal(number) * Decimal(base) ** _POWERS[letter]


def parse_size(text: str) -> int:
    """Bytes in ``text``: ``4096``, ``512K``, ``64M``, ``1.5GiB`` (binary); ``8MB``, ``1kB`` (SI).

    A bare letter means binary units, as in rclone (``10M`` is 10 MiB); ``B`` after a letter
    without ``i`` means SI units. Fractions are fine when the result is whole bytes."""
    value = _quantity(text, "a size", "use a number with an optional unit: 4096, 512K, 64MiB")
    if value != value.to_integral_value():
        raise errors.UsageError(f"{text!r} is not a whole number of bytes")
    return int(value)


def parse_rate(text: str) -> int | None:
    """Bytes per second for ``--bwlimit``: ``10M``, ``512K``, ``1.5MiB/s`` (units as in
    ``parse_size``); None for no limit (``0``, ``off``)."""
    cleaned = text.strip()
    if cleaned.lower().endswith("/s"):
        cleaned = cleaned[:-2].strip()
    if cleaned.lower() in _UNLIMITED:
        return None
    value = _quantity(cleaned, "a bandwidth", "use bytes per second: 10M, 512K, 1.5MiB/s")
    if value <= 0:
        return None
    return max(1, int(value))  # 0.5 bytes/s is a limit (the slowest), never "no limit"


class RateLimiter:
    """A token bucket of ``bytes_per_second``, shared by every thread that sends.

    ``take(n)`` reserves ``n`` bytes at once and sleeps for the debt, so one large part waits as
    long as its bytes take at the rate and callers are served in the order they asked. ``burst``
    (one second's worth by default) is how much may go out at once after a quiet spell."""

    def __init__(
        self,
        bytes_per_second: int,
        *,
        burst: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if bytes_per_second <= 0:
            raise ValueError("bytes_per_second must be positive")
        self.rate = float(bytes_per_second)
        self.burst = float(burst if burst is not None else bytes_per_second)
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens = self.burst
        self._last = clock()

    def reserve(self, n: int) -> float:
        """Take ``n`` bytes from the bucket now; return how many seconds to wait before sending."""
        if n <= 0:
            return 0.0
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= n
            return -self._tokens / self.rate if self._tokens < 0 else 0.0

    def take(self, n: int, *, cancel: threading.Event | None = None) -> None:
        """Block until ``n`` bytes may be sent. Raises Interrupted when ``cancel`` is set while
        waiting (the reserved bytes stay spent)."""
        wait = self.reserve(n)
        if wait <= 0:
            return
        if cancel is None:
            time.sleep(wait)
        elif cancel.wait(wait):
            raise errors.Interrupted("interrupted while pacing an upload")
