"""Group commit: the catalog writes of many consecutive files in one SQLite transaction.

A re-run of a verified job writes a few rows per file and nothing else; one commit per file made
the commit cost most of the run. The group is committed every ``max_files`` files, after
``max_age`` seconds, and whenever its thread is about to wait for another one (``flush``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from types import TracebackType

from castoff.catalog.db import Catalog


class WriteGroup:
    """Used by one thread. While the group is open, other threads wait for the catalog: flush it
    before anything that could wait for them (the memory budget, the engine's state lock)."""

    def __init__(
        self,
        catalog: Catalog,
        *,
        max_files: int = 500,
        max_age: float = 0.2,
        before_commit: Callable[[], None] | None = None,
    ) -> None:
        self.catalog = catalog
        self.max_files = max_files
        self.max_age = max_age
        #: called before each commit: the last writes that must be in it (the engine's landed
        #: files, once their folders are synced)
        self.before_commit = before_commit
        self._open_since: float | None = None
        self._files = 0

    def __enter__(self) -> WriteGroup:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # An error in the middle of a file must not commit half of it: the group goes with it.
        self._close(commit=exc_type is None)

    def next_file(self) -> None:
        """Called before each file's writes: opens the group, or commits it when it is full."""
        if self._open_since is not None and (
            self._files >= self.max_files
            or time.monotonic() - self._open_since >= self.max_age
            or self.catalog.urgent
        ):
            self.flush()
        if self._open_since is None and self.catalog.urgent:  # never while holding the group
            self.catalog.let_urgent_in()
        if self._open_since is None:
            self.catalog.hold()
            self._open_since = time.monotonic()
            self._files = 0
        self._files += 1

    def flush(self) -> None:
        """Commit what the group holds, and let the other threads at the catalog."""
        self._close(commit=True)

    def _close(self, *, commit: bool) -> None:
        if commit and self.before_commit is not None:
            self.before_commit()
        if self._open_since is None:
            return
        self._open_since = None
        self.catalog.release(commit=commit)
