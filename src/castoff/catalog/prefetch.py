"""The catalog's answers for many scanned files at once: a re-run asks in bulk, not per file.

A re-run of a verified job asks, for every file, what an earlier read learnt (``prior_read``) and
what landed at each destination (``landed_at``). ``Prefetch`` reads ahead of the scan a batch of
files and answers those questions for the whole batch in one query each, so each file's decision
costs a dictionary lookup instead of an SQLite round trip per question.

The answers are the same as the point queries': a lookup the batch cannot settle (a target whose
row was not among the batch's, or any catalog write since that could change an answer; see
``Catalog.generation``) is asked again, one file at a time. A first run, whose files the catalog
has never seen, reads no further ahead of the scan than before: batching starts once a file is
found read before, and stops when a batch is mostly new files.
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
    ``landed_at`` answer as ``Catalog.prior_read`` and ``Catalog.landed_at`` would."""

    def __init__(
        self, catalog: Catalog, dest_idents: Sequence[str], *, enabled: bool = True, batch: int | None = None
    ) -> None:
        self.catalog = catalog
        self.dest_idents = tuple(dest_idents)
        self.enabled = enabled
        self.batch = batch or BATCH
        self._warm = False  # reading ahead in batches (the last files were mostly known)
        self._generation = -1  # the catalog's generation the batch's answers hold for
        self._paths: set[str] = set()  # the batch's sources
        self._reads: dict[tuple[str, int, int], tuple[int, PriorRead]] = {}
        self._landed: dict[tuple[str, str], LandedRow] = {}
        #: batches looked up, and questions asked one file at a time: for the tests
        self.batches = 0
        self.asked_alone = 0

    def ahead(self, items: Iterable[T]) -> Iterator[T]:
        """``items`` (the scan's), unchanged and in order, looked up a batch at a time while warm."""
        it = iter(items)
        while True:
            if not (self.enabled and self._warm):
                item = next(it, None)
                if item is None:
                    return
                yield item
                continue
            chunk = list(islice(it, self.batch))
            if not chunk:
                return
            self._fetch([i for i in chunk if isinstance(i, SourceFile)])
            yield from chunk

    def _fetch(self, files: list[SourceFile]) -> None:
        self._reads.clear()
        self._landed.clear()
        self._paths = {f.abs_path for f in files}
        if not files:
            return
        self.batches += 1
        self._generation = self.catalog.generation
        paths = list(self._paths)
        for abs_path, size, mtime_ns, row_id, prior in self.catalog.prior_reads(paths):
            key = (abs_path, size, mtime_ns)
            known = self._reads.get(key)
            if known is None or known[0] < row_id:  # the last read, as prior_read's ORDER BY id DESC
                self._reads[key] = (row_id, prior)
        for ident in self.dest_idents:
            for row in self.catalog.landed_from(ident, paths):
                self._landed[(ident, row.planned)] = row
        known_files = sum((f.abs_path, f.size, f.mtime_ns) in self._reads for f in files)
        self._warm = known_files * 2 >= len(files)

    def _current(self, src_path: str) -> bool:
        """Whether the batch's answers hold for this source: it was in the batch, and nothing
        was written since that could change them."""
        return src_path in self._paths and self._generation == self.catalog.generation

    def prior_read(self, src: SourceFile) -> PriorRead | None:
        if self._current(src.abs_path):
            found = self._reads.get((src.abs_path, src.size, src.mtime_ns))
            return None if found is None else found[1]
        self.asked_alone += 1
        prior = self.catalog.prior_read(src.abs_path, src.size, src.mtime_ns)
        if prior is not None:
            self._warm = True  # known files: the next ones are likely known too
        return prior

    def landed_at(self, dest_ident: str, target: str, src_path: str) -> LandedRow | None:
        if self._current(src_path):
            row = self._landed.get((dest_ident, target))
            if row is not None:
                return row
            # not landed from this batch's sources; another source may have landed there
        self.asked_alone += 1
        return self.catalog.landed_at(dest_ident, target)
