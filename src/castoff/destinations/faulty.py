"""A fault-injecting wrapper around any destination, for proving the engine under failure.

Faults are data (a ``FaultPlan``): fail or corrupt a given part of a given file, slow every write
down, or make the whole destination vanish after some bytes. Product code, used by the test suite.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import BinaryIO

from castoff import errors
from castoff.destinations.base import (
    Capabilities,
    Destination,
    Landed,
    ObjectMeta,
    ObjectStat,
    PartReceipt,
    ResumeToken,
    Upload,
)


@dataclass
class PartFault:
    """Raise ``error()`` on ``put_part`` of a target containing ``match`` at part ``index``."""

    match: str
    error: Callable[[], Exception]
    index: int | None = None  # None: any part
    times: int = 1


@dataclass
class FaultPlan:
    part_faults: list[PartFault] = field(default_factory=list)
    #: flip a byte of the landed bytes between write and verification, for targets containing these
    corrupt_before_commit: list[str] = field(default_factory=list)
    #: sleep so that writes run at about this rate (a slow NAS, a thin uplink)
    bytes_per_second: float | None = None
    #: after this many bytes, every call fails as if the drive had been pulled
    vanish_after_bytes: int | None = None
    #: called before every put_part with (target, index); tests use it to act at a precise moment
    on_put: Callable[[str, int], None] | None = None
    #: called before every commit with the target (a slow verification, a busy drive)
    on_commit: Callable[[str], None] | None = None
    #: called before each deferred folder sync with the folder; may raise (a failing drive)
    on_folder_sync: Callable[[str], None] | None = None


class FaultyUpload:
    def __init__(self, dest: FaultyDestination, inner: Upload) -> None:
        self._dest = dest
        self._inner = inner

    @property
    def token(self) -> ResumeToken:
        return self._inner.token

    @property
    def target(self) -> str:
        return self._inner.target

    def put_part(self, index: int, offset: int, data: memoryview, md5: bytes | None) -> PartReceipt:
        plan = self._dest.plan
        if plan.on_put is not None:
            plan.on_put(self.target, index)
        self._dest.check_vanished()
        with self._dest.lock:
            for fault in plan.part_faults:
                if fault.times > 0 and fault.match in self.target and fault.index in (None, index):
                    fault.times -= 1
                    raise fault.error()
        if plan.bytes_per_second:
            time.sleep(len(data) / plan.bytes_per_second)
        receipt = self._inner.put_part(index, offset, data, md5)
        self._dest.count(len(data))
        return receipt

    def commit(
        self,
        parts: Sequence[PartReceipt],
        *,
        source_blake3: str,
        target: str | None = None,
        overwrite: bool = False,
    ) -> Landed:
        if self._dest.plan.on_commit is not None:
            self._dest.plan.on_commit(self.target)
        self._dest.check_vanished()
        if any(m in self.target for m in self._dest.plan.corrupt_before_commit):
            self._corrupt()
        return self._inner.commit(parts, source_blake3=source_blake3, target=target, overwrite=overwrite)

    def _corrupt(self) -> None:
        partial = getattr(self._inner, "data_path", None)  # a local file, named or not
        if isinstance(partial, str):
            with open(partial, "r+b") as fh:
                fh.seek(0)
                b = fh.read(1)
                fh.seek(0)
                fh.write(bytes([(b[0] if b else 0) ^ 0xFF]))
                fh.flush()
                os.fsync(fh.fileno())
            return
        parts = getattr(self._inner, "parts", None)
        if isinstance(parts, dict) and parts:
            first = min(parts)
            body = bytearray(parts[first] or b"\0")
            body[0] ^= 0xFF
            parts[first] = bytes(body)

    def abort(self) -> None:
        self._inner.abort()

    @property
    def left_behind(self) -> bool:
        """The inner upload's partial file could not be removed (``LocalUpload.left_behind``)."""
        return bool(getattr(self._inner, "left_behind", False))


class FaultyDestination:
    """Wraps ``inner`` and misbehaves as ``plan`` says."""

    def __init__(
        self, inner: Destination, plan: FaultPlan, *, caps: Capabilities | None = None, network: bool = False
    ) -> None:
        self.inner = inner
        self.plan = plan
        self.lock = threading.Lock()
        self.bytes_written = 0
        self._caps = caps or inner.caps
        #: taken for a folder on a network share (``LocalDestination.on_network``)
        self.network = network

    def count(self, n: int) -> None:
        with self.lock:
            self.bytes_written += n

    def check_vanished(self) -> None:
        limit = self.plan.vanish_after_bytes
        if limit is not None and self.bytes_written >= limit:
            raise errors.DestinationGone(f"{self.name} vanished (injected)")

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def ident(self) -> str:
        return self.inner.ident

    @property
    def caps(self) -> Capabilities:
        return self._caps

    @property
    def slow_sync(self) -> bool:
        return bool(getattr(self.inner, "slow_sync", False))

    @property
    def on_network(self) -> bool:
        return self.network or bool(getattr(self.inner, "on_network", False))

    def target_for(self, rel_path: str) -> str:
        return self.inner.target_for(rel_path)

    def watch_partials(self, note: Callable[[str], None]) -> None:
        watch = getattr(self.inner, "watch_partials", None)
        if watch is not None:
            watch(note)

    def defer_folder_syncs(self, on: bool) -> None:
        defer = getattr(self.inner, "defer_folder_syncs", None)
        if defer is not None:
            defer(on)

    def sync_folder(self, folder: str) -> None:
        if self.plan.on_folder_sync is not None:
            self.plan.on_folder_sync(folder)
        self.inner.sync_folder(folder)  # type: ignore[attr-defined]  # only asked when inner defers

    def confirm_folders(self, named: Mapping[str, str]) -> None:
        self.inner.confirm_folders(named)  # type: ignore[attr-defined]  # only asked when inner defers

    def preflight(self) -> None:
        self.inner.preflight()

    def start(
        self,
        target: str,
        *,
        meta: ObjectMeta,
        part_size: int,
        resume: ResumeToken | None = None,
        overwrite: bool = False,
    ) -> FaultyUpload:
        self.check_vanished()
        inner = self.inner.start(target, meta=meta, part_size=part_size, resume=resume, overwrite=overwrite)
        return FaultyUpload(self, inner)

    def stat(self, target: str) -> ObjectStat | None:
        return self.inner.stat(target)

    def open_read(self, target: str) -> BinaryIO:
        return self.inner.open_read(target)

    def give_times(self, target: str, meta: ObjectMeta) -> None:
        self.inner.give_times(target, meta)

    def abort_token(self, target: str, token: ResumeToken) -> None:
        self.inner.abort_token(target, token)

    def close(self) -> None:
        self.inner.close()
