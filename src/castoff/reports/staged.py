"""Report files that appear only complete: each written beside its name as ``<name>.tmp``, synced,
and renamed into place once every one of them is written; after a failure none appears."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO


@contextlib.contextmanager
def staged(*paths: Path) -> Iterator[tuple[TextIO, ...]]:
    """Open a text file for each of ``paths``; they take their names only if the block ends well."""
    made: list[Path] = []
    try:
        with contextlib.ExitStack() as stack:
            files = []
            for path in paths:
                tmp = path.with_name(path.name + ".tmp")
                files.append(stack.enter_context(open(tmp, "w", encoding="utf-8")))
                made.append(tmp)
            yield tuple(files)
            for fh in files:
                fh.flush()
                os.fsync(fh.fileno())
        for tmp, path in zip(made, paths, strict=True):
            os.replace(tmp, path)
    finally:
        for tmp in made:  # only what this call created: after the renames, nothing
            tmp.unlink(missing_ok=True)
