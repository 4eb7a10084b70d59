"""An in-memory destination: a dict of targets to bytes, for testing the engine without I/O.

It behaves like a careful backend (parts land independently, commit proves the bytes by BLAKE3 and
never clobbers unless asked), so engine tests exercise the same paths real destinations take.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Sequence
from typing import BinaryIO

import blake3

from castoff import errors
from castoff.destinations.base import (
    Capabilities,
    Landed,
    ObjectMeta,
    ObjectStat,
    PartReceipt,
    ResumeToken,
    TargetExists,
)


class MemoryUpload:
    def __init__(self, dest: MemoryDestination, target: str, meta: ObjectMeta) -> None:
        self._dest = dest
        self._target = target
        self._meta = meta
        self.parts: dict[int, bytes] = {}
        self._lock = threading.Lock()
        self.aborted = False

    @property
    def token(self) -> ResumeToken:
        return {"memory": self._target}

    @property
    def target(self) -> str:
        return self._target

    def put_part(self, index: int, offset: int, data: memoryview, md5: bytes | None) -> PartReceipt:
        with self._lock:
            self.parts[offset] = bytes(data)
        return PartReceipt(index=index, offset=offset, size=len(data))

    def commit(
        self,
        parts: Sequence[PartReceipt],
        *,
        source_blake3: str,
        target: str | None = None,
        overwrite: bool = False,
    ) -> Landed:
        final = target or self._target
        body = b"".join(self.parts[o] for o in sorted(self.parts))
        digest = blake3.blake3(body).hexdigest()
        if digest != source_blake3 or len(body) != self._meta.size:
            raise errors.IntegrityError(f"memory copy of {final} differs from the source")
        key = self._dest.key(final)
        with self._dest.lock:
            if key in self._dest.objects and not overwrite:
                raise TargetExists(final)
            self._dest.objects[key] = body
            self._dest.metas[key] = self._meta
            self._dest.names.setdefault(key, final)  # a folding target keeps the first spelling
        return Landed(target=final, size=len(body), verify_method="read-back blake3")

    def abort(self) -> None:
        self.aborted = True
        self.parts.clear()


class MemoryDestination:
    """Objects in a dict. ``is_local`` lets tests stand it in for a drive or for a bucket;
    ``case_insensitive`` for an exFAT card, an APFS or NTFS drive (``IMG.JPG`` is ``img.jpg``)."""

    def __init__(
        self,
        name: str = "memory",
        *,
        is_local: bool = True,
        concurrency: int = 1,
        small_concurrency: int = 0,
        case_insensitive: bool = False,
    ) -> None:
        self._name = name
        self.case_insensitive = case_insensitive
        #: by ``key(target)``: the target itself, or its case-folded form
        self.objects: dict[str, bytes] = {}
        self.metas: dict[str, ObjectMeta] = {}
        self.names: dict[str, str] = {}  # key -> the target as first written
        self.lock = threading.Lock()
        self._caps = Capabilities(
            kind="memory",
            is_local=is_local,
            can_read_back=True,
            can_stat=True,
            concurrency=concurrency,
            small_concurrency=small_concurrency,
            commit_can_retarget=True,
        )

    @property
    def name(self) -> str:
        return self._name

    @property
    def ident(self) -> str:
        return f"memory:{self._name}:{id(self)}"

    @property
    def caps(self) -> Capabilities:
        return self._caps

    def target_for(self, rel_path: str) -> str:
        if not rel_path or rel_path.startswith("/") or ".." in rel_path.split("/"):
            raise errors.KeyRejected(f"bad relative path {rel_path!r}")
        return rel_path

    def key(self, target: str) -> str:
        return target.casefold() if self.case_insensitive else target

    def preflight(self) -> None:
        return None

    def start(
        self,
        target: str,
        *,
        meta: ObjectMeta,
        part_size: int,
        resume: ResumeToken | None = None,
        overwrite: bool = False,
    ) -> MemoryUpload:
        return MemoryUpload(self, target, meta)

    def give_times(self, target: str, meta: ObjectMeta) -> None:
        with self.lock:
            if self.key(target) in self.objects:
                self.metas[self.key(target)] = meta

    def stat(self, target: str) -> ObjectStat | None:
        with self.lock:
            body = self.objects.get(self.key(target))
            meta = self.metas.get(self.key(target))
        if body is None:
            return None
        return ObjectStat(size=len(body), mtime_ns=meta.mtime_ns if meta else None)

    def open_read(self, target: str) -> BinaryIO:
        with self.lock:
            body = self.objects.get(self.key(target))
        if body is None:
            raise errors.DestinationGone(f"{target} is not in {self._name}")
        return io.BytesIO(body)

    def abort_token(self, target: str, token: ResumeToken) -> None:
        return None

    def close(self) -> None:
        return None
