"""Check a destination after each run, so a benchmark of a broken copy is flagged, not celebrated.

Every file present with its size, nothing extra (partial files count), a hashed sample identical.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any


def _optional(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


blake3 = _optional("blake3")  # a castoff dependency; SHA-256 stands in without it

READ = 8 << 20
HASH_NAME = "blake3" if blake3 is not None else "sha256"


def _hasher() -> Any:
    return blake3.blake3() if blake3 is not None else hashlib.sha256()


def file_digest(path: Path) -> str:
    h = _hasher()
    with path.open("rb") as f:
        while block := f.read(READ):
            h.update(block)
    return str(h.hexdigest())


def walk_sizes(root: Path) -> dict[str, int]:
    """relative path (with '/') -> size of every non-directory entry under root."""
    sizes: dict[str, int] = {}
    for dirpath, _dirnames, filenames in os.walk(root):
        base = Path(dirpath)
        for name in filenames:
            p = base / name
            rel = p.relative_to(root).as_posix()
            try:
                sizes[rel] = p.lstat().st_size
            except OSError:
                sizes[rel] = -1
    return sizes


@dataclass(frozen=True)
class SourceIndex:
    root: Path
    sizes: dict[str, int]
    sample: dict[str, str]  # relative path -> digest, for a deterministic sample

    @property
    def files(self) -> int:
        return len(self.sizes)

    @property
    def nbytes(self) -> int:
        return sum(self.sizes.values())


def index_source(root: Path, *, sample: int = 24, seed: int = 1) -> SourceIndex:
    """Sizes of every file and digests of a sample: the largest, the smallest, and random picks."""
    sizes = walk_sizes(root)
    names = sorted(sizes)
    chosen: set[str] = set()
    if names:
        chosen.add(max(names, key=lambda n: (sizes[n], n)))
        chosen.add(min(names, key=lambda n: (sizes[n], n)))
        rng = random.Random(seed)
        rest = [n for n in names if n not in chosen]
        chosen.update(rng.sample(rest, min(len(rest), max(0, sample - len(chosen)))))
    return SourceIndex(root, sizes, {n: file_digest(root / n) for n in sorted(chosen)})


@dataclass
class Check:
    """The outcome of checking one destination."""

    where: str
    ok: bool
    files: int = 0
    nbytes: int = 0
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    wrong_size: list[str] = field(default_factory=list)
    wrong_hash: list[str] = field(default_factory=list)
    note: str = ""

    def summary(self) -> str:
        if self.ok:
            return f"{self.where}: ok ({self.files} files{', ' + self.note if self.note else ''})"
        parts = []
        for label, items in (
            ("missing", self.missing),
            ("extra", self.extra),
            ("wrong size", self.wrong_size),
            ("WRONG HASH", self.wrong_hash),
        ):
            if items:
                parts.append(f"{len(items)} {label} (e.g. {items[0]})")
        return f"{self.where}: FAILED: " + "; ".join(parts or [self.note or "?"])


def check_tree(index: SourceIndex, root: Path, where: str, *, note: str = "") -> Check:
    if not root.is_dir():
        return Check(where, False, note=f"{root} does not exist", missing=sorted(index.sizes))
    got = walk_sizes(root)
    missing = sorted(set(index.sizes) - set(got))
    extra = sorted(set(got) - set(index.sizes))
    wrong_size = sorted(n for n in set(got) & set(index.sizes) if got[n] != index.sizes[n])
    wrong_hash = sorted(
        n
        for n, digest in index.sample.items()
        if n in got and got[n] == index.sizes[n] and file_digest(root / n) != digest
    )
    ok = not (missing or extra or wrong_size or wrong_hash)
    return Check(
        where,
        ok,
        files=len(got),
        nbytes=sum(v for v in got.values() if v > 0),
        missing=missing[:20],
        extra=extra[:20],
        wrong_size=wrong_size[:20],
        wrong_hash=wrong_hash[:20],
        note=note,
    )


def check_s3_dir(index: SourceIndex, prefix_dir: Path, where: str) -> Check:
    """An S3 destination, read from the server's data directory (objects are files there).

    The expected layout keeps the source folder's name (prefix/card/...); a tool that puts the
    folder's *contents* straight under the prefix is accepted, with a note.
    """
    kept = prefix_dir / index.root.name
    if kept.is_dir() or not prefix_dir.is_dir():
        return check_tree(index, kept, where)
    return check_tree(index, prefix_dir, where, note="source folder name not kept under prefix")
