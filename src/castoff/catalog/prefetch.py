"""The catalog's answers for many scanned files at once: a run asks in bulk, not per file.

Every file asks what an earlier read learnt (``prior_read``) and what landed at each destination
(``landed_at``). ``Prefetch`` answers those questions without a query per file, two ways:

* a re-run of a verified job reads a batch of files ahead of the scan once files turn out known,
  and looks the whole batch up with one query each;
* a first run (of a new source, or to new destinations) reads no further ahead of the scan than
  before: when the scan enters a folder, one query asks whether the catalog knows anything of the
  folder's files (a read, a copy landed from one); when it knows nothing, every file of the folder
  is answered "nothing" without another query.

The answers are the same as the point queries' (``landed_at``: see there), as of the look-up. A
question the look-up cannot settle is asked again, one file at a time: a file the scan gave twice
since (nested sources), a source landed somewhere since (``Catalog.landed_sources``: another
thread's copy of it), any other catalog write since that could change an answer
(``Catalog.generation``), or a second question about a file's read (the read of this job is in
the catalog by then).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from typing import TypeVar

from castoff.catalog.db import Catalog, LandedRow, PriorRead
from castoff.scan import SourceFile

T = TypeVar("T")

#: files looked up together; a batch's look-ups and its rows stay small (a few hundred kB at most)
BATCH = 256


class Prefetch:
    """Used by the engine's reading thread only. ``ahead`` wraps the scan; ``prior_read`` and
    ``landed_at`` answer for the file it gave last as ``Catalog.prior_read`` and
    ``Catalog.landed_at`` would (any other file: the catalog is asked)."""

    def __init__(
        self, catalog: Catalog, dest_idents: Sequence[str], *, enabled: bool = True, batch: int | None = None
    ) -> None:
        self.catalog = catalog
        self.dest_idents = tuple(dest_idents)
        self.enabled = enabled
        self.batch = batch or BATCH
        if enabled:
            catalog.watch_landed()
        self._warm = False  # reading ahead in batches (the last files were mostly known)
        self._generation = -1  # the catalog's generation the look-up's answers hold for
        self._reads: dict[tuple[str, int, int], tuple[int, PriorRead]] = {}
        self._landed: dict[tuple[str, str, str], LandedRow] = {}
        self._folder: str | None = None  # the folder looked up last (outside batches)
        self._cold = False  # ... and the catalog knew nothing of its files: every answer is None
        self._seen: set[str] = set()  # the files given since the look-up
        #: the file given last, when the look-up answers for it (given once since), and its read
        #: when that was not asked yet
        self._fresh: str | None = None
        self._fresh_read: str | None = None
        #: batches and folders looked up, and questions asked one file at a time: for the tests
        self.batches = 0
        self.folders = 0
        self.asked_alone = 0

    def ahead(self, items: Iterable[T]) -> Iterator[T]:
        """``items`` (the scan's), unchanged and in order, looked up a batch at a time while warm,
        else a folder at a time."""
        it = iter(items)
        while True:
            if not (self.enabled and self._warm):
                item = next(it, None)
                if item is None:
                    return
                if self.enabled and isinstance(item, SourceFile):
                    path = item.abs_path
                    folder = path[: path.rfind("/")]
                    if folder != self._folder or self._generation != self.catalog.generation:
                        self._look_folder(folder)
                    self._give(path, self._cold)
                yield item
                continue
            chunk = list(islice(it, self.batch))
            if not chunk:
                return
            self._fetch([i for i in chunk if isinstance(i, SourceFile)])
            for item in chunk:
                if isinstance(item, SourceFile):
                    self._give(item.abs_path, True)
                yield item

    def _give(self, path: str, covered: bool) -> None:
        """``path`` is the file given now; the look-up answers for it when it ``covered`` it and
        the file was not given since (then its own copy may have been recorded)."""
        if covered and path not in self._seen:
            self._seen.add(path)
            self._fresh = self._fresh_read = path
        else:
            self._fresh = self._fresh_read = None

    def _look_folder(self, folder: str) -> None:
        self.folders += 1
        self._reads.clear()
        self._landed.clear()
        self._seen.clear()
        self._folder = folder
        self._generation = self.catalog.generation
        self._cold = not self.catalog.knows_folder(folder, self.dest_idents)

    def _fetch(self, files: list[SourceFile]) -> None:
        self._reads.clear()
        self._landed.clear()
        self._seen.clear()
        self._folder = None
        self._cold = False
        if not files:
            return
        self.batches += 1
        self._generation = self.catalog.generation
        self.catalog.watch_landed()  # before the queries: a copy recorded meanwhile is in one or both
        paths = list({f.abs_path for f in files})
        for abs_path, size, mtime_ns, row_id, prior in self.catalog.prior_reads(paths):
            key = (abs_path, size, mtime_ns)
            known = self._reads.get(key)
            if known is None or known[0] < row_id:  # the last read, as prior_read's ORDER BY id DESC
                self._reads[key] = (row_id, prior)
        for ident in self.dest_idents:
            for row in self.catalog.landed_from(ident, paths):
                self._landed[(ident, row.planned, row.src_path)] = row
        known_files = sum((f.abs_path, f.size, f.mtime_ns) in self._reads for f in files)
        self._warm = known_files * 2 >= len(files)

    def prior_read(self, src: SourceFile) -> PriorRead | None:
        path = src.abs_path
        if path == self._fresh_read and self._generation == self.catalog.generation:
            self._fresh_read = None  # asked again: this job may have read it since
            if self._cold:
                return None
            found = self._reads.get((path, src.size, src.mtime_ns))
            return None if found is None else found[1]
        self.asked_alone += 1
        prior = self.catalog.prior_read(path, src.size, src.mtime_ns)
        if prior is not None:
            self._warm = True  # known files: the next ones are likely known too
        return prior

    def landed_at(self, dest_ident: str, target: str, src_path: str) -> LandedRow | None:
        """What landed at ``target`` from ``src_path`` (what another source landed there is no
        copy of this one: the engine takes it for none)."""
        if (
            src_path == self._fresh
            and self._generation == self.catalog.generation
            and src_path not in self.catalog.landed_sources
        ):
            if self._cold:
                return None
            row = self._landed.get((dest_ident, target, src_path))
        else:
            self.asked_alone += 1
            row = self.catalog.landed_at(dest_ident, target, src_path)
        return row
