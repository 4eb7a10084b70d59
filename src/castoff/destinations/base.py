"""The interface every destination implements, and the values that cross it.

A destination describes and performs I/O, nothing else: no threads, no retries, no sleeps. The
engine (``castoff.engine``) owns those and calls a destination only through this interface.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import BinaryIO, Protocol, runtime_checkable
from urllib.parse import urlsplit

from castoff import errors

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB
TiB = 1024 * GiB


#: a part this small costs its destination a request's round trip more than its bytes
SMALL_PART = 1024 * 1024


@dataclass(frozen=True)
class Capabilities:
    """What a destination can do, as data: the engine never probes by catching exceptions."""

    kind: str  # "local", "s3", "memory", ...
    #: a verified copy here may feed a lagging destination, and counts for "source can be released"
    is_local: bool
    #: the engine may re-read the landed bytes (read-back verification, ``open_read``)
    can_read_back: bool
    #: ``stat`` answers without extra permissions (local: yes; S3 write-only: no)
    can_stat: bool
    #: parts may be sent in parallel, this many at once at most
    concurrency: int = 1
    #: requests may run this many at once in all while they carry parts of at most ``SMALL_PART``
    #: bytes (big parts stay at ``concurrency``): a small object's upload costs a round trip more
    #: than bandwidth or memory, so thousands of small files need more of them in flight
    small_concurrency: int = 0
    #: the engine computes an MD5 per part and hands it to ``put_part``
    needs_md5: bool = False
    #: in-progress uploads survive the process: the engine records tokens and receipts in the catalog
    resumable: bool = False
    #: a write refuses to replace what is at its target unless told to (local: a link or rename
    #: that never replaces; S3: ``If-None-Match: *``); where not, the engine remembers in the
    #: catalog what it put there, and that is what keeps a later file from replacing it
    refuses_existing: bool = True
    #: ``commit`` can land the bytes under another target than ``start`` named (local rename)
    commit_can_retarget: bool = False
    #: the object's metadata is fixed at ``start`` and needs the whole-file hashes then
    needs_hash_at_start: bool = False
    min_part_size: int = 1
    #: the part size this destination would like (configured by the user); the engine takes the
    #: largest preference among a file's destinations so every destination sees the same parts
    preferred_part_size: int | None = None
    max_part_size: int = 5 * GiB
    max_parts: int = 10_000
    max_object_size: int = 48 * TiB
    #: files up to this size are sent in one request (one part)
    single_put_max: int = 5 * GiB
    #: bytes of memory a thread holds to read a landed file back (local: its read-back buffer);
    #: the engine takes it out of the job's memory budget
    read_back_buffer: int = 0
    #: the longest target key or path the destination accepts, in UTF-8 bytes
    max_key_bytes: int = 4096
    #: user metadata an object may carry, in bytes (keys + values); 0 where there is none
    max_metadata_bytes: int = 0


@dataclass(frozen=True)
class ObjectMeta:
    """What a destination may record about the file beside its bytes."""

    rel_path: str
    size: int
    mtime_ns: int
    atime_ns: int
    #: hex BLAKE3 of the whole file; None while unknown (only for destinations that don't need it)
    blake3: str | None = None
    #: hex MD5 of the whole file (rclone's md5chksum); None while unknown
    md5: str | None = None
    extra: Mapping[str, str] = field(default_factory=dict)
    #: extended attributes a local destination sets on the file (``--xattrs``)
    xattrs: Mapping[str, bytes] = field(default_factory=dict)


@dataclass(frozen=True)
class PartReceipt:
    """Proof that one part landed: what the destination answered for it."""

    index: int  # 0-based; S3 part number is index + 1
    offset: int
    size: int
    md5: str | None = None  # hex MD5 of the bytes sent, when the destination needs it
    etag: str | None = None  # what the server returned


@dataclass(frozen=True)
class Landed:
    """A file made visible at a destination, and how it was proven."""

    target: str  # final path or key
    size: int
    verify_method: str  # e.g. "read-back blake3", "content-md5 + etag"
    etag: str | None = None
    detail: str | None = None  # anything the report should say (e.g. "etag is not an md5 here")
    #: what the console says once for the destination, not for each file (``detail`` has it for
    #: the report): "extended attributes not kept here (…)"
    say_once: str | None = None
    #: a folder whose fsync makes the name durable, left to the caller, who asked for it
    #: (``LocalDestination.defer_folder_syncs``): the file is not landed before that fsync
    sync_later: str | None = None


@dataclass(frozen=True)
class ObjectStat:
    size: int
    mtime_ns: int | None = None
    etag: str | None = None
    #: what is there when it is no regular file ("a symlink", "a FIFO", ...): never a copy
    not_a_file: str | None = None
    #: (st_dev, st_ino) where the destination has them (a local folder): the source file itself may be there
    file_id: tuple[int, int] | None = None


#: small and JSON-able; saved in the catalog so an upload can be continued by a later process
ResumeToken = Mapping[str, object]


class TargetExists(Exception):
    """``commit`` found something already at the target and did not replace it."""

    def __init__(self, target: str) -> None:
        super().__init__(target)
        self.target = target


@runtime_checkable
class Upload(Protocol):
    """One file on its way to one destination."""

    @property
    def token(self) -> ResumeToken: ...

    @property
    def target(self) -> str: ...

    def put_part(self, index: int, offset: int, data: memoryview, md5: bytes | None) -> PartReceipt:
        """Write one part. Idempotent per index; may be called from several threads at once
        when ``caps.concurrency`` > 1."""
        ...

    def commit(
        self,
        parts: Sequence[PartReceipt],
        *,
        source_blake3: str,
        target: str | None = None,
        overwrite: bool = False,
    ) -> Landed:
        """Make the file visible, proven equal to ``source_blake3`` by the destination's means.

        Raises ``TargetExists`` when something is at the target and ``overwrite`` is false;
        the upload then stays open so the engine may commit it elsewhere or abort it."""
        ...

    def abort(self) -> None:
        """Leave nothing behind that a user could take for the file. Never raises for
        'already gone'."""
        ...


@runtime_checkable
class Destination(Protocol):
    """Where bytes land."""

    @property
    def name(self) -> str:
        """Short label for progress and reports (``ssd``, ``s3://bucket/raw``)."""
        ...

    @property
    def ident(self) -> str:
        """Stable identity for the catalog: the same place gives the same string every run."""
        ...

    @property
    def caps(self) -> Capabilities: ...

    def target_for(self, rel_path: str) -> str:
        """The path or key ``rel_path`` (POSIX separators, relative) lands at. Raises KeyRejected."""
        ...

    def preflight(self) -> None:
        """Check, before the job reads anything, that this destination can take writes at all."""
        ...

    def start(
        self,
        target: str,
        *,
        meta: ObjectMeta,
        part_size: int,
        resume: ResumeToken | None = None,
        overwrite: bool = False,
    ) -> Upload:
        """Begin one file. With ``resume``, continue the upload that token names. ``overwrite``:
        the file is to replace what is at the target (its ``commit`` is told so too): a bucket
        with conditional writes sends its single PutObject without ``If-None-Match``."""
        ...

    def stat(self, target: str) -> ObjectStat | None:
        """Only where ``caps.can_stat``."""
        ...

    def open_read(self, target: str) -> BinaryIO:
        """Only where ``caps.can_read_back``."""
        ...

    def give_times(self, target: str, meta: ObjectMeta) -> None:
        """Only where ``caps.is_local``: the copy at ``target``, found to hold the file's bytes,
        takes ``meta``'s times, as a copy castoff writes does (a source touched since: else every
        later run would find the copy's time other than the source's and read it back)."""
        ...

    def abort_token(self, target: str, token: ResumeToken) -> None:
        """Abandon an upload known only from the catalog (``castoff uploads abort``)."""
        ...

    def close(self) -> None: ...


def parts_for(size: int, part_size: int) -> int:
    """How many parts a file of ``size`` bytes has; an empty file still has one (empty) part."""
    if size <= 0:
        return 1
    return -(-size // part_size)


def check_rel_path(rel_path: str) -> None:
    """Relative POSIX path with no empty, '.' or '..' component: it cannot leave the root."""
    if (
        rel_path
        and rel_path[0] not in "/."
        and rel_path[-1] != "/"
        and "//" not in rel_path
        and "/." not in rel_path
        and "\x00" not in rel_path
    ):
        return  # no component is empty or begins with a dot: the usual path, told without a split
    if not rel_path or rel_path.startswith("/"):
        raise errors.KeyRejected(f"not a relative path: {rel_path!r}")
    if "\x00" in rel_path:
        raise errors.KeyRejected(f"NUL byte in {rel_path!r}")
    parts = rel_path.split("/")
    for bad in ("", ".", ".."):
        if bad in parts:
            raise errors.KeyRejected(f"path component {bad!r} not allowed in {rel_path!r}")


def ident_place(ident: str) -> str:
    """A bucket destination's identity (``s3:ENDPOINT/BUCKET/PREFIX``) with its endpoint's
    spellings made one: the loopback names (``localhost``, ``127.0.0.1``, ``::1``) and the scheme's
    default port. Two identities of one place are one bucket reached by two spellings."""
    scheme, sep, rest = ident.removeprefix("s3:").partition("://")
    if not ident.startswith("s3:http") or not sep:
        return ident  # AWS's own endpoint ("s3:aws/..."), or not a bucket
    netloc, _, where = rest.partition("/")  # the bucket and prefix as they are ('#', '?' too)
    parts = urlsplit(f"{scheme}://{netloc}")
    host = (parts.hostname or "").lower()
    if host in ("localhost", "::1") or host.startswith("127."):
        host = "loopback"
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        return ident
    return f"s3:{scheme}://{host}:{port}/{where}"


def ident_location(ident: str, region: str | None = None) -> str | None:
    """Where a destination is, for a person, from its identity alone (the catalog keeps it for
    every job, so a report rebuilt later still says it, whatever the destination is called by
    then): a folder's absolute path; a bucket as ``s3://bucket/prefix (endpoint)``, the form its
    name takes when the endpoint must be told apart, with ``AWS`` and its ``region`` (when known)
    for AWS's own endpoint. None for a kind it does not know. An identity holds no URL option
    and no key (credentials in an endpoint URL are refused, and dropped here all the same)."""
    if ident.startswith("local:"):
        return ident.removeprefix("local:")
    if not ident.startswith("s3:"):
        return None
    rest = ident.removeprefix("s3:")
    if rest.startswith("aws/"):
        where = f"AWS {region}" if region else "AWS"
        path = rest.removeprefix("aws/")
    else:
        scheme, sep, after = rest.partition("://")
        if not sep:
            return None
        netloc, _, path = after.partition("/")
        where = f"{scheme}://{netloc.rpartition('@')[2]}"
    bucket, _, prefix = path.partition("/")  # a bucket name has no '/'; the prefix as it is
    return f"s3://{bucket}/{prefix}".rstrip("/") + f" ({where})"


#: the call into a destination this thread is making, as the engine's lane counts it: its table of
#: calls under way and its number there (``watch_call``)
_call = threading.local()


def watch_call(calls: dict[int, float], number: int) -> tuple[dict[int, float], int] | None:
    """This thread's call into a destination begins now: ``calls[number]`` says since when it
    is under way (the engine's watchdog: ``Lane.oldest_call``), and ``still_answering`` moves
    that on. Returns what to give ``end_call`` (the call it was made within, if any)."""
    calls[number] = time.monotonic()
    outer: tuple[dict[int, float], int] | None = getattr(_call, "at", None)
    _call.at = (calls, number)
    return outer


def end_call(calls: dict[int, float], number: int, outer: tuple[dict[int, float], int] | None) -> None:
    calls.pop(number, None)
    _call.at = outer


def still_answering() -> None:
    """A long call into a destination is making progress (a read-back of a big clip, a chunk at a
    time): its time under way counts from now, so that a slow drive is not taken for one that
    stopped answering."""
    at: tuple[dict[int, float], int] | None = getattr(_call, "at", None)
    if at is not None and at[1] in at[0]:
        at[0][at[1]] = time.monotonic()
