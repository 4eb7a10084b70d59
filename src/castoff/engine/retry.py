"""How the engine retries a destination call: exponential backoff with full jitter.

Throttling answers (429, 503 SlowDown) honour the server's Retry-After. Only errors the error tree
marks retryable are tried again; everything else goes straight back to the caller.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from castoff import errors

T = TypeVar("T")


#: shared: seeding a new generator for every call costs more than the call it guards
_JITTER = random.Random()


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6
    base: float = 0.25
    cap: float = 20.0

    def delay(self, attempt: int, exc: BaseException, rng: random.Random) -> float:
        if isinstance(exc, errors.Throttled) and exc.retry_after is not None:
            return min(max(exc.retry_after, 0.0), 120.0)
        return rng.uniform(0, min(self.cap, self.base * (2**attempt)))

    def call(
        self,
        fn: Callable[[], T],
        *,
        cancel: threading.Event,
        on_retry: Callable[[int, BaseException, float], None] | None = None,
        rng: random.Random | None = None,
        failed: errors.CastoffError | None = None,
    ) -> T:
        """``fn()``, tried again while it fails with a retryable error. With ``failed``, the
        caller made the first attempt itself and this is how it failed: a call on a hot path
        tries once, and makes the closures a retry needs only when it does fail."""
        attempt = 0
        exc = failed
        while True:
            if exc is None:
                try:
                    return fn()
                except errors.CastoffError as caught:
                    exc = caught
            attempt += 1
            if not exc.retryable or attempt >= self.attempts or cancel.is_set():
                raise exc
            wait = self.delay(attempt, exc, rng or _JITTER)
            if on_retry is not None:
                on_retry(attempt, exc, wait)
            if cancel.wait(wait):
                raise errors.Interrupted("interrupted while waiting to retry") from exc
            exc = None
