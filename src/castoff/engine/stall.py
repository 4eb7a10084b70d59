"""The last guard against a job that waits forever.

The engine waits until every stream (one file to one destination) has ended. Every wait inside
it has a deadline or ends with the job (network calls time out, retries and pauses are counted),
but a stream that a bug leaves open, with nothing left that could end it, would hold the job
forever: a re-run that hangs, which is worse than one that fails. The engine asks at each turn of
its wait whether anything can still move (a part queued or being sent, a file being read or
closed, a catch-up ready, a paused destination about to retry); ``StallWatch`` says when nothing
could for ``grace`` seconds in a row, and the engine then ends what is left as failed, so the job
exits 1 with the files named and the re-run can pick them up.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from castoff import errors
from castoff.units import plural

#: how long "nothing can move" must hold before the job gives up on what is left
STALL_GRACE = 5.0


class StallWatch:
    def __init__(self, grace: float = STALL_GRACE, clock: Callable[[], float] = time.monotonic) -> None:
        self.grace = grace
        self._clock = clock
        self._since: float | None = None

    def stalled(self, nothing_moves: bool) -> bool:
        """Feed it at every look: True once ``nothing_moves`` has held for ``grace`` seconds."""
        if not nothing_moves:
            self._since = None
            return False
        now = self._clock()
        if self._since is None:
            self._since = now
        return now - self._since >= self.grace


#: a look of the watchdog this much later than it was due: the process did not run meanwhile
STOPPED_GAP = 5.0


class CallWatch:
    """The watchdog's clock for the calls into a share (``Engine._watch_calls``): how long a call
    has been under way, counted while the process ran. A process stopped for minutes (Ctrl-Z,
    then ``fg``; a debugger) saw no share stop answering: a look that comes ``STOPPED_GAP``
    seconds later than due counts every call under way from then."""

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self._clock = clock
        self._last = clock()
        self._resumed = float("-inf")

    def look(self) -> float:
        """At each turn of the watchdog: the time now."""
        now = self._clock()
        if now - self._last > self.interval + STOPPED_GAP:
            self._resumed = now
        self._last = now
        return now

    def under_way(self, since: float, now: float) -> float:
        """How long a call that began at ``since`` has been under way at ``now`` (``look``'s)."""
        return now - max(since, self._resumed)


def stalled_error() -> errors.DestinationError:
    """The outcome's error for a file left unfinished by a stall."""
    return errors.DestinationError(
        "internal error: nothing was left to do for this file, yet it never finished",
        hint="re-run to continue",
    )


def stalled_message(rel_paths: Iterable[str]) -> str:
    """The job log's line for a stall, naming (some of) the files left."""
    files = sorted(set(rel_paths))
    named = ", ".join(files[:5]) + (", …" if len(files) > 5 else "")
    return (
        f"the job stopped making progress with {plural(len(files), 'file')} unfinished ({named}): nothing"
        " was left that could finish them (an internal error); they are marked failed, re-run to continue"
    )
