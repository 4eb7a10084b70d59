"""An S3-compatible bucket as a destination: a thin translation of the S3 API, nothing more.

Small files are one PutObject, larger ones a multipart upload; every body carries Content-MD5 and
every ETag is checked. Write-only keys suffice: no List, Get, Head, ListParts or Delete is ever
sent, except GetObject for an opt-in read-back. The engine owns threads, retries and pacing; this
module sends one request per call, with botocore's own retries off.
"""

from __future__ import annotations

import base64
import email.utils
import errno
import functools
import hashlib
import io
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any, BinaryIO, Literal, cast
from urllib.parse import parse_qsl, urlsplit

import blake3
import boto3
import botocore.exceptions as bx
import botocore.session
import urllib3.exceptions
from botocore.config import Config

from castoff import errors
from castoff.destinations.base import (
    Capabilities,
    GiB,
    Landed,
    MiB,
    ObjectMeta,
    ObjectStat,
    PartReceipt,
    ResumeToken,
    TargetExists,
    ident_place,
    parts_for,
)
from castoff.destinations.providers import (
    PROVIDERS,
    AddressingStyle,
    Provider,
    get_provider,
    guess_provider,
)
from castoff.destinations.spec import SECRET_OPTION, shown
from castoff.engine.pacing import parse_size
from castoff.units import format_bytes

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

log = logging.getLogger(__name__)

DEFAULT_PART_SIZE = 64 * MiB  # cloud-anchors.md 8.3: fewer requests, Storj's minimum
MAX_KEY_BYTES = 1024
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 60.0
READ_CHUNK = 8 * MiB
#: the most requests in flight per bucket (``max_parallel``, ``max_parallel_small``): a thread and
#: a connection each. rclone's --transfers is commonly set up to 64-128, s5cmd runs 256 workers;
#: thousands only exhaust threads (QA: 100000 could not start, 5000 took 140 s for one file)
MAX_PARALLEL = 256
#: the three metadata keys castoff always writes; rclone reads mtime and md5chksum
META_BLAKE3 = "blake3"
META_MTIME = "mtime"
META_MD5 = "md5chksum"

ChecksumMode = Literal["when_required", "when_supported"]
SSE = Literal["AES256", "aws:kms"]
_SSE_NAMES: Mapping[str, SSE] = {
    "aes256": "AES256",
    "sse-s3": "AES256",
    "aws:kms": "aws:kms",
    "sse-kms": "aws:kms",
    "kms": "aws:kms",
}


#: storage classes whose objects cannot be read until restored (AWS: GLACIER, DEEP_ARCHIVE;
#: GLACIER_IR, GCS's ARCHIVE and the rest are read at once): a read-back there always fails
#: with InvalidObjectState
UNREADABLE_STORAGE_CLASSES = frozenset({"GLACIER", "DEEP_ARCHIVE"})


# --- options ------------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class S3Options:
    """Everything that says where and how an S3 destination writes. Secrets never show in repr."""

    bucket: str
    prefix: str = ""
    endpoint_url: str | None = None  # None: the provider's pattern, else the AWS chain
    region: str | None = None
    addressing_style: AddressingStyle | None = None  # None: the provider's
    storage_class: str | None = None  # None: the bucket's default (STANDARD)
    sse: SSE | None = None
    sse_kms_key_id: str | None = None
    profile: str | None = None
    provider: str | None = None  # None: guessed from the endpoint host
    part_size: int | None = None  # None: DEFAULT_PART_SIZE within the provider's limits
    max_parallel_parts: int = 4
    #: requests in flight while they carry small objects (at most 1 MiB); None: max_parallel_parts
    max_parallel_small: int | None = None
    checksum_mode: ChecksumMode | None = None  # None: from the provider table
    access_key: str | None = None  # None: the AWS chain (env, files, profile, roles)
    secret_key: str | None = None
    session_token: str | None = None
    verify_download: bool = False
    ca_bundle: str | None = None
    conditional_writes: bool | None = None  # None: where the provider honours them
    #: upload bandwidth of this bucket in bytes per second (``--bwlimit``, ``bwlimit=``); None: no limit
    bwlimit: int | None = None
    #: what to do when the server refuses the keys (an unknown key id, a wrong secret), for keys
    #: that do not come from the AWS chain: a saved bucket's keyring, credential command, ...
    keys_hint: str | None = None
    #: what to do when no keys are found at all: where to give them for this destination (a
    #: saved bucket: castoff dest credentials; dest add: its options); None: NO_KEYS_HINT
    no_keys_hint: str | None = None

    def __post_init__(self) -> None:
        prefix = self.prefix
        if prefix and not prefix.endswith("/"):
            prefix += "/"  # 'raw' and 'raw/' both mean the folder raw/
        object.__setattr__(self, "prefix", prefix)
        if self.storage_class is not None:
            object.__setattr__(self, "storage_class", self.storage_class.strip().upper())
        if self.provider is not None:
            object.__setattr__(self, "provider", self.provider.strip().lower())

    def __repr__(self) -> str:
        shown = []
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None or value == f.default:
                continue
            if f.name == "access_key":
                value = f"{value[:4]}…"
            elif f.name in ("secret_key", "session_token"):
                value = "***"
            shown.append(f"{f.name}={value!r}")
        return f"S3Options({', '.join(shown)})"

    __str__ = __repr__


#: a yes/no option's spellings, in every message that asks for one (the README writes ``on``)
BOOL_SPELLINGS = "on/off, true/false, yes/no or 1/0"


def _bool(text: str) -> bool:
    low = text.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"use {BOOL_SPELLINGS}")


def _auto_bool(text: str) -> bool | None:
    low = text.strip().lower()
    if low == "auto":
        return None
    try:
        return _bool(low)
    except ValueError:
        raise ValueError(f"use auto (where the provider honours them), {BOOL_SPELLINGS}") from None


def _choice(*allowed: str) -> Callable[[str], str | None]:
    def convert(text: str) -> str | None:
        low = text.strip().lower()
        if low == "auto" and "auto" not in allowed:
            return None
        if low not in allowed:
            raise ValueError(f"use one of {', '.join(allowed)}")
        return low

    return convert


def _sse(text: str) -> SSE:
    try:
        return _SSE_NAMES[text.strip().lower()]
    except KeyError:
        raise ValueError("use AES256 (SSE-S3) or aws:kms (SSE-KMS)") from None


def _count(text: str) -> int:
    """A number of requests in flight: a whole number from 1 to MAX_PARALLEL (the message
    says so, never Python's ``invalid literal for int()``)."""
    try:
        n = int(text.strip())
    except ValueError:
        raise ValueError(f"use a whole number from 1 to {MAX_PARALLEL}") from None
    if n < 1:
        raise ValueError("must be 1 or more")
    if n > MAX_PARALLEL:
        raise ValueError(f"must be at most {MAX_PARALLEL} requests at once per bucket")
    return n


def _size(text: str) -> int:
    n = parse_size(text)
    if n < 1:
        raise ValueError("must be at least 1 byte")
    return n


def _rate(text: str) -> int | None:
    from castoff.engine.pacing import parse_rate

    return parse_rate(text)


def _text(text: str) -> str:
    if not text.strip():
        raise ValueError("must not be empty")
    return text.strip()


#: URL option -> (S3Options field, converter)
_URL_OPTIONS: Mapping[str, tuple[str, Any]] = {
    "endpoint": ("endpoint_url", _text),
    "region": ("region", _text),
    "storage_class": ("storage_class", _text),
    "sse": ("sse", _sse),
    "sse_kms_key_id": ("sse_kms_key_id", _text),
    "addressing": ("addressing_style", _choice("path", "virtual", "auto")),
    "profile": ("profile", _text),
    "part_size": ("part_size", _size),
    "max_parallel": ("max_parallel_parts", _count),
    "max_parallel_small": ("max_parallel_small", _count),
    "checksums": ("checksum_mode", _choice("when_required", "when_supported")),
    "provider": ("provider", lambda t: get_provider(t).name),
    "verify_download": ("verify_download", _bool),
    "ca_bundle": ("ca_bundle", _text),
    "conditional": ("conditional_writes", _auto_bool),
    "bwlimit": ("bwlimit", _rate),
}


def parse_s3_url(
    spec: str, defaults: S3Options | Mapping[str, object] | None = None, *, label: str | None = None
) -> S3Options:
    """``s3://bucket/prefix/?endpoint=...&region=...`` into options over ``defaults`` (options,
    or a mapping of S3Options field names such as ``{"region": ..., "profile": ...}``).

    The prefix is taken literally (no percent-decoding: ``%`` and ``#`` are key characters); a
    ``?`` starts the options, so a prefix containing ``?`` must come from ``defaults``. Secrets
    are never read from a URL."""
    said = shown(spec)  # never a secret's value in a message
    if spec[:5].lower() != "s3://":
        raise errors.UsageError(f"not an S3 destination: {said!r}", hint="write it as s3://bucket/prefix/")
    rest, _, query = spec[5:].partition("?")
    bucket, _, prefix = rest.partition("/")
    if "@" in bucket:  # s3://KEY:SECRET@bucket/: refused before the bucket is ever named anywhere
        raise errors.UsageError(
            f"credentials in the s3:// URL are not accepted: {said!r}",
            hint="write it as s3://bucket/prefix/, and give the keys as for the endpoint:"
            " AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, profile=..., or a saved bucket"
            " (castoff dest add NAME s3 --bucket B --access-key-id ID)",
        )
    if not bucket or any(c.isspace() for c in bucket):
        raise errors.UsageError(f"no valid bucket name in {said!r}", hint="write it as s3://bucket/prefix/")
    return options_for(
        bucket, prefix, parse_qsl(query, keep_blank_values=True), defaults, said=said, label=label
    )


def options_for(
    bucket: str,
    prefix: str,
    query: Sequence[tuple[str, str]],
    defaults: S3Options | Mapping[str, object] | None = None,
    *,
    said: str,
    label: str | None = None,
) -> S3Options:
    """The options of ``bucket`` and ``prefix`` with the URL options ``query`` (name, value) over
    ``defaults``, checked; ``said`` names where they were given in a message (the URL as shown,
    or a saved destination's ``@NAME``)."""
    values: dict[str, Any] = {"bucket": bucket, "prefix": prefix}
    for name, raw in query:
        if name not in _URL_OPTIONS:
            raise errors.UsageError(
                f"unknown S3 option {name!r} in {said!r}",
                hint="keys are never read from a URL: save the bucket with castoff dest add NAME s3"
                " --access-key-id ID, or use the AWS chain"
                if SECRET_OPTION.search(name)
                else f"valid options: {', '.join(sorted(_URL_OPTIONS))}",
            )
        field_name, convert = _URL_OPTIONS[name]
        if field_name in values:
            raise errors.UsageError(f"S3 option {name!r} is given twice in {said!r}")
        try:
            values[field_name] = convert(raw)
        except errors.UsageError as exc:
            raise errors.UsageError(f"bad value for {name}: {exc.message}", hint=exc.hint) from exc
        except ValueError as exc:
            value = "***" if SECRET_OPTION.search(name) else f"{raw!r} ({exc})"
            raise errors.UsageError(f"bad value for {name}: {value}") from None
    options = replace(_base_options(defaults), **values)
    provider = _provider_if_known(options)
    check_options(options, provider, label)
    return options


def _base_options(defaults: S3Options | Mapping[str, object] | None) -> S3Options:
    if isinstance(defaults, S3Options):
        return defaults
    given = dict(defaults or {})
    unknown = sorted(set(given) - {f.name for f in fields(S3Options)})
    if unknown:
        raise errors.UsageError(f"unknown S3 setting(s): {', '.join(unknown)}")
    return S3Options(**{"bucket": "", **given})  # type: ignore[arg-type]


def _provider_if_known(options: S3Options) -> Provider | None:
    if options.provider:
        return get_provider(options.provider)
    if options.endpoint_url:
        return guess_provider(urlsplit(options.endpoint_url).hostname)
    return None  # the endpoint may still come from the AWS chain


def _check_prefix(prefix: str) -> None:
    """A prefix is folder names joined by ``/``: a leading ``/``, an empty name (``a//b``) or
    ``.`` and ``..`` make keys that some servers refuse and others store as written, which no
    folder view shows where the user looks for them."""
    names = prefix.removesuffix("/").split("/") if prefix else []
    bad = [n for n in names if n in ("", ".", "..")]
    if bad:
        what = "an empty folder name (a leading / or //)" if "" in bad else f"a {bad[0]!r} folder"
        raise errors.UsageError(
            f"the prefix {prefix!r} has {what}",
            hint="write the prefix as folder names joined by /, like raw/2026/",
        )


#: a bucket name botocore sends (its own check, ``botocore.handlers.VALID_BUCKET``); anything else
#: it refuses at the first request (ParamValidationError). Its access point ARNs castoff does not
#: take: the AWS rules refuse them, and an s3:// URL could not hold one's '/'.
_BOTOCORE_BUCKET = re.compile(r"[a-zA-Z0-9._-]{1,255}")


def check_bucket_chars(bucket: str) -> None:
    """UsageError for a bucket name no provider allows and botocore would refuse per request
    (QA: ``bk:t2`` only warned, then a traceback per file): refused before any job exists."""
    if _BOTOCORE_BUCKET.fullmatch(bucket):
        return
    if not bucket:
        raise errors.UsageError(
            "no bucket name given", hint="name the bucket exactly as it exists at the provider"
        )
    bad = sorted({c for c in bucket if not _BOTOCORE_BUCKET.fullmatch(c)})
    what = (
        f"more than 255 characters ({len(bucket)})"
        if not bad
        else "the character" + ("s " if len(bad) > 1 else " ") + " ".join(repr(c) for c in bad)
    )
    named = bucket if "@" not in bucket else "***@" + bucket.rpartition("@")[2]  # key:secret@bucket
    raise errors.UsageError(
        f"bad bucket name {named!r}: it has {what}; a bucket name has only letters, digits,"
        " dots (.), dashes (-) and underscores (_), at most 255",
        hint="name the bucket exactly as it exists at the provider (keys never go in its name)",
    )


def check_options(options: S3Options, provider: Provider | None, label: str | None = None) -> None:
    """UsageError for options that cannot work; ``provider`` None checks what it can. ``label``
    names the destination in messages (default ``s3://bucket/prefix``)."""
    check_bucket_chars(options.bucket)
    _check_prefix(options.prefix)
    if options.endpoint_url is not None:
        url = urlsplit(options.endpoint_url)
        try:
            port = url.port  # ValueError past 65535 or not a number
        except ValueError:
            port = -1
        if url.scheme not in ("http", "https") or not url.hostname or port in (-1, 0):
            raise errors.UsageError(
                f"bad endpoint URL {options.endpoint_url!r}",
                hint="use http://host:port (a port from 1 to 65535) or https://host",
            )
        if url.username or url.password:
            raise errors.UsageError(
                "credentials in the endpoint URL are not accepted",
                hint="use AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or profile=...",
            )
    if options.storage_class is not None:
        known = (
            provider.storage_classes
            if provider is not None
            else frozenset().union(*(p.storage_classes for p in PROVIDERS.values()))
        )
        if options.storage_class not in known:
            where = provider.title if provider is not None else "any known provider"
            raise errors.UsageError(
                f"storage class {options.storage_class!r} is not offered by {where}",
                hint=f"choose one of {', '.join(sorted(known))}",
            )
    if options.verify_download and options.storage_class in UNREADABLE_STORAGE_CLASSES:
        label = label or f"s3://{options.bucket}/{options.prefix}".rstrip("/")
        raise errors.UsageError(
            f"{label}: --verify-download cannot work with storage class {options.storage_class}:"
            " its objects cannot be read back until they are restored, so every read-back would fail"
            " and every run would upload them again",
            hint="drop --verify-download (each upload is still proven by Content-MD5 and ETags), or"
            " choose a storage class that reads at once, such as GLACIER_IR",
        )
    if options.sse_kms_key_id and options.sse != "aws:kms":
        raise errors.UsageError("sse_kms_key_id needs sse=aws:kms")
    for name, n in (
        ("max_parallel", options.max_parallel_parts),
        ("max_parallel_small", options.max_parallel_small),
    ):
        if n is not None and not 1 <= n <= MAX_PARALLEL:
            raise errors.UsageError(
                f"{name} {n} is out of range: castoff sends 1 to {MAX_PARALLEL} requests at once per bucket",
                hint=f"give {name} a whole number from 1 to {MAX_PARALLEL} (a thread and a connection each)",
            )
    if options.part_size is not None:
        check_part_size(options, provider, label)


def _size_option(n: int) -> str:
    """``n`` bytes as a size option reads it back exactly (``5MiB``, ``5MB``, ``5GiB``)."""
    for unit, name in ((GiB, "GiB"), (1000**3, "GB"), (MiB, "MiB"), (1000**2, "MB")):
        if n % unit == 0:
            return f"{n // unit}{name}"
    return str(n)


def check_part_size(options: S3Options, provider: Provider | None, label: str | None = None) -> None:
    """A part size the provider refuses is a usage error before a byte is read (QA: a part size
    below the minimum was warned about, every part sent, then Complete refused EntityTooSmall).
    ``provider`` None (the endpoint may still come from the AWS chain): only 1 byte to 5 GiB;
    the destination checks again once it knows its provider."""
    size = options.part_size
    if size is None:
        return
    label = label or f"s3://{options.bucket}/{options.prefix}".rstrip("/")
    low, high = (provider.min_part_size, provider.max_part_size) if provider else (1, 5 * GiB)
    title = provider.title if provider else "S3"
    given = f"{size} bytes ({format_bytes(size)})"
    if size < low:
        # rclone serve s3 has no minimum, but only provider=rclone says so (README): an unknown
        # server is held to AWS's 5 MiB. Said as the destination was given: a saved one is
        # ``@NAME`` (castoff copy has no --provider; dest add has)
        rclone = ""
        if provider is not None and provider.name == "other":
            name = label[1:] if label.startswith("@") else None
            rclone = "; for rclone serve s3, which has no minimum, " + (
                f"save it with its provider: castoff dest add {name} s3 … --provider rclone --replace"
                f' (or provider = "rclone" in [destinations.{name}] of the config file)'
                if name
                else "add provider=rclone to the s3:// URL"
            )
        raise errors.UsageError(
            f"{label}: part size {given} is out of range: below the minimum of {title}"
            f" ({low} bytes, {format_bytes(low)})",
            hint=f"give a part size of {_size_option(low)} or more (--part-size, or part_size= in the"
            f" URL or saved destination), or none: castoff then chooses one per file{rclone}",
        )
    if size > high:
        raise errors.UsageError(
            f"{label}: part size {given} is out of range: above the maximum of {title}"
            f" ({high} bytes, {format_bytes(high)})",
            hint=f"give a part size of {_size_option(high)} or less (--part-size, or part_size= in the"
            " URL or saved destination), or none: castoff then chooses one per file",
        )


# --- metadata -----------------------------------------------------------------------------


def rclone_mtime(mtime_ns: int) -> str:
    """``mtime_ns`` as rclone writes ``x-amz-meta-mtime``: decimal seconds, exact to the
    nanosecond, trailing zeros dropped (``1700000000.123456789``, ``1700000000.5``,
    ``1700000000``). A port of ``swift.TimeToFloatString``; integers only, so nothing rounds."""
    if mtime_ns < 0:
        return "-" + rclone_mtime(-mtime_ns)
    digits = f"{mtime_ns:010d}"
    seconds, fraction = digits[:-9], digits[-9:].rstrip("0")
    return f"{seconds}.{fraction}" if fraction else seconds


_HEADER_NAME = re.compile(r"^[a-z0-9!#$&'*+.^_`|~-]+$")


def _header_value(value: str) -> str:
    """``value`` as a header can carry it: printable ASCII as is, anything else RFC 2047
    encoded, as AWS itself returns non-ASCII metadata."""
    if value.isascii() and value.isprintable() and value == value.strip():
        return value
    return f"=?UTF-8?B?{base64.b64encode(value.encode()).decode()}?="


def metadata_bytes(metadata: Mapping[str, str]) -> int:
    """The size AWS counts against the user-metadata limit: UTF-8 bytes of keys and values."""
    return sum(len(k.encode()) + len(v.encode()) for k, v in metadata.items())


def build_metadata(meta: ObjectMeta, limit: int) -> tuple[dict[str, str], list[str]]:
    """The object's user metadata and notes on anything left out.

    castoff's own keys (blake3, mtime, md5chksum) always stay; ``meta.extra`` entries follow in
    their order while they fit within ``limit`` bytes, and any that do not are dropped."""
    metadata: dict[str, str] = {}
    notes: list[str] = []
    if meta.blake3:
        metadata[META_BLAKE3] = meta.blake3.lower()
    else:
        notes.append("no blake3 in the object metadata: it was not known when the upload began")
    metadata[META_MTIME] = rclone_mtime(meta.mtime_ns)
    if meta.md5:
        metadata[META_MD5] = base64.b64encode(bytes.fromhex(meta.md5)).decode()
    used = metadata_bytes(metadata)
    dropped: list[str] = []
    for name, raw in meta.extra.items():
        key = name.strip().lower()
        if key in metadata or not _HEADER_NAME.match(key):
            notes.append(f"metadata {name!r} left out: not a usable or free key name")
            continue
        value = _header_value(raw)
        cost = len(key.encode()) + len(value.encode())
        if used + cost > limit:
            dropped.append(key)
            continue
        metadata[key] = value
        used += cost
    if dropped:
        notes.append(f"metadata over the {limit}-byte limit, left out: {', '.join(dropped)}")
    return metadata, notes


# --- errors -------------------------------------------------------------------------------

_WRITE_HINT = "a write-only key needs s3:PutObject (and s3:AbortMultipartUpload to clean up)"
_THROTTLE_CODES = frozenset(
    {"SlowDown", "Throttling", "ThrottlingException", "TooManyRequests", "TooManyRequestsException",
     "RequestLimitExceeded", "ServiceUnavailable"}
)  # fmt: skip
_TRANSIENT_CODES = frozenset(
    {"InternalError", "RequestTimeout", "OperationAborted", "ConditionalRequestConflict"}
)


@dataclass(frozen=True)
class _Answer:
    """An S3 error answer, as the translation table reads it."""

    op: str  # the API operation, e.g. UploadPart
    bucket: str
    key: str | None
    where: str  # s3://bucket/key
    code: str
    message: str
    keys_hint: str | None = None


def _clock_skew(a: _Answer) -> BaseException:
    return errors.ClockSkew(
        "clock skew: this computer's clock is too far from the server's",
        hint="set the system clock (enable NTP) and try again",
    )


def _access_denied(a: _Answer) -> BaseException:
    # rclone serve s3 says AccessDenied, "The difference between the request time and the
    # server's time exceeds the maximum allowed.", where AWS says RequestTimeTooSkewed.
    if "request time" in a.message.lower():
        return _clock_skew(a)
    if a.op == "GetObject":  # only --verify-download reads
        hint = "--verify-download reads each object back: the key needs s3:GetObject, or drop the option"
        return errors.AccessDenied(f"access denied: {a.op} on {a.where}", hint=hint)
    return errors.AccessDenied(f"access denied: {a.op} on {a.where}", hint=_WRITE_HINT)


def _bad_digest(a: _Answer) -> BaseException:
    return errors.BadDigest(
        f"the server refused the body of {a.op} on {a.where}: its checksum did not match "
        f"({a.code}: corrupted on the way)"
    )


def _invalid_part(a: _Answer) -> BaseException:
    return errors.IntegrityError(
        f"the server does not hold the parts castoff recorded for {a.where} ({a.code})",
        hint="the upload starts over",
    )


def _refused(a: _Answer) -> BaseException:
    return errors.PermanentError(f"{a.op} on {a.where} refused: {a.message} ({a.code})")


#: S3 error codes castoff knows, and what each becomes
_BY_CODE: Mapping[str, Callable[[_Answer], BaseException]] = {
    "AccessDenied": _access_denied,
    "AllAccessDisabled": lambda a: errors.AccessDenied(f"all access to {a.bucket} is disabled"),
    "NoSuchBucket": lambda a: errors.NoSuchBucket(
        f"no such bucket: {a.bucket}", hint="check the bucket name, the endpoint and the region"
    ),
    "InvalidAccessKeyId": lambda a: errors.BadCredentials(
        f"unknown access key: the server does not know this access key id ({a.where})",
        hint=a.keys_hint or "check the access key id (AWS_ACCESS_KEY_ID or the profile)",
    ),
    "SignatureDoesNotMatch": lambda a: errors.BadCredentials(
        f"wrong secret key: the server rejected the request signature ({a.where})",
        hint=f"{a.keys_hint or 'check the secret access key'}; a wrong region can also cause this",
    ),
    "RequestTimeTooSkewed": _clock_skew,
    "BadDigest": _bad_digest,
    "InvalidDigest": _bad_digest,
    "XAmzContentSHA256Mismatch": _bad_digest,
    "NoSuchUpload": lambda a: errors.UploadGone(
        f"the multipart upload of {a.where} no longer exists",
        hint="expired, aborted, or completed by an earlier attempt: the file starts over",
    ),
    "InvalidPart": _invalid_part,
    "InvalidPartOrder": _invalid_part,
    "PreconditionFailed": lambda a: TargetExists(a.key or a.where),
    "KeyTooLongError": lambda a: errors.KeyRejected(f"key too long for the server: {a.where}"),
    "NotImplemented": lambda a: errors.PermanentError(
        f"the server does not support {a.op} as sent: {a.message}",
        hint="if it names a checksum header, use checksums=when_required",
    ),
    "EntityTooSmall": _refused,
    "EntityTooLarge": _refused,
    "InvalidStorageClass": _refused,
    "InvalidObjectState": _refused,
}

#: what to do when no keys are found for an s3:// URL (a saved bucket says its own)
NO_KEYS_HINT = (
    "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or name an AWS profile (profile=NAME in the URL,"
    " or --profile NAME)"
)

#: transport failures, most specific first (SSLError is a ConnectionError)
_BY_TYPE: Sequence[
    tuple[type[Exception] | tuple[type[Exception], ...], Callable[[Exception, str], BaseException]]
] = (
    (bx.SSLError, lambda e, where: _tls_failure(e)),
    (
        (bx.NoCredentialsError, bx.PartialCredentialsError),
        lambda e, where: errors.BadCredentials(
            f"no usable credentials for {where}: {e}",
            hint=NO_KEYS_HINT,
        ),
    ),
    (
        bx.ProfileNotFound,
        lambda e, where: errors.UsageError(str(e), hint="profiles live in ~/.aws/config"),
    ),
    (
        bx.ParamValidationError,  # botocore's own check, before anything is sent: no retry helps
        lambda e, where: errors.PermanentError(
            f"not sent to {where}: botocore refused the request ({' '.join(str(e).split())})",
            hint="check the destination's options (bucket, prefix, storage class, encryption);"
            " if they look right, report this line to castoff",
        ),
    ),
    (
        (bx.EndpointConnectionError, bx.ConnectTimeoutError),
        lambda e, where: errors.TransientError(
            f"endpoint {_origin(e)} unreachable ({where})",
            hint="check the endpoint URL, the network and any firewall",
        ),
    ),
    (
        bx.ReadTimeoutError,
        lambda e, where: errors.TransientError(f"the endpoint did not answer in time ({where})"),
    ),
    (
        (bx.HTTPClientError, bx.ConnectionError, urllib3.exceptions.HTTPError),
        lambda e, where: errors.TransientError(f"connection lost ({where}): {e}"),
    ),
)


#: OpenSSL's words for a connection that ended during the handshake: the network, not TLS
_TLS_DROPPED = ("EOF occurred", "UNEXPECTED_EOF", "Connection reset", "ECONNRESET")


def _tls_failure(exc: Exception) -> BaseException:
    """What a failed TLS connection means, once per endpoint, in words (never OpenSSL's
    ``(_ssl.c:1006)``): a server talking plain HTTP on an https:// endpoint, a certificate
    this computer does not trust, or a connection the network dropped (retried)."""
    origin = _origin(exc)
    text = str(getattr(exc, "kwargs", {}).get("error") or exc)
    reason = re.sub(r"\s*\(_ssl\.c:\d+\)", "", text)
    reason = re.sub(r"^.*?\[SSL(?:: [A-Z0-9_]+)?\]\s*", "", reason).strip() or "TLS handshake failed"
    if any(word in text for word in _TLS_DROPPED):
        return errors.TransientError(f"connection to {origin} lost during the TLS handshake ({reason})")
    if "WRONG_VERSION_NUMBER" in text or "wrong version number" in text:
        return errors.TlsFailure(
            f"TLS failure: {origin} does not speak TLS, it answers in plain HTTP",
            hint=f"write the endpoint as http://{urlsplit(origin).netloc or 'HOST:PORT'}, or give the"
            " server's HTTPS port; plain HTTP to another computer also needs --insecure-http, and is"
            " unencrypted",
        )
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
        reason = reason.removeprefix("certificate verify failed: ")
        return errors.TlsFailure(
            f"TLS failure: the certificate of {origin} is not trusted ({reason})",
            hint="for a private CA or a self-signed certificate, give its certificate as ca_bundle=PATH"
            " or --ca-bundle PATH; check that the endpoint's host name is the certificate's",
        )
    return errors.TlsFailure(
        f"TLS failure talking to {origin}: {reason}",
        hint="check the endpoint URL and its certificate; for a private CA give ca_bundle=PATH",
    )


def _origin(exc: Exception) -> str:
    """The scheme, host and port botocore could not connect to (not the object's whole URL)."""
    url = str(getattr(exc, "kwargs", {}).get("endpoint_url") or "")
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.netloc else "the endpoint"


def _retry_after(headers: Mapping[str, str]) -> float | None:
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def translate_error(
    exc: Exception, *, bucket: str, key: str | None = None, keys_hint: str | None = None
) -> BaseException:
    """The castoff error for a botocore or urllib3 exception; ``exc`` itself when it has no
    meaning here, for the caller to re-raise unchanged.

    ``TargetExists`` (from base) stands for 412 PreconditionFailed. moto answers HTTP 500 (code
    "500") for an unknown upload id where AWS says NoSuchUpload: that is a TransientError here,
    so on moto the engine's retry cap is what ends it."""
    where = f"s3://{bucket}/{key}" if key is not None else f"s3://{bucket}"
    if isinstance(exc, bx.ClientError):
        return _translate_answer(exc, bucket, key, where, keys_hint)
    for kinds, make in _BY_TYPE:
        if isinstance(exc, kinds):
            return make(exc, where)
    return exc


def _translate_answer(
    exc: bx.ClientError, bucket: str, key: str | None, where: str, keys_hint: str | None = None
) -> BaseException:
    error = exc.response.get("Error", {})
    meta = exc.response.get("ResponseMetadata", {})
    code = str(error.get("Code", ""))
    status = int(meta.get("HTTPStatusCode", 0) or 0)
    answer = _Answer(exc.operation_name, bucket, key, where, code, str(error.get("Message", code)), keys_hint)
    if code in _BY_CODE:
        return _BY_CODE[code](answer)
    said = f"{code or status} during {answer.op} on {where}"
    if code in _THROTTLE_CODES or status in (429, 503):
        headers = cast(Mapping[str, str], meta.get("HTTPHeaders", {}))
        return errors.Throttled(f"the server asks to slow down: {said}", retry_after=_retry_after(headers))
    if code in _TRANSIENT_CODES or status >= 500:
        return errors.TransientError(f"server error {status}: {said}")
    if status == 412:
        return TargetExists(key or where)
    if status == 403:
        return errors.AccessDenied(f"access denied: {said}", hint=_WRITE_HINT)
    return exc


@contextmanager
def _s3_errors(bucket: str, key: str | None = None, *, keys_hint: str | None = None) -> Iterator[None]:
    """Translate whatever the S3 call inside raises; re-raise what has no translation
    (``keys_hint``: the options' own, for keys the server refuses)."""
    try:
        yield
    except Exception as exc:
        mapped = translate_error(exc, bucket=bucket, key=key, keys_hint=keys_hint)
        if mapped is exc:
            raise
        raise mapped from exc


# --- the destination ----------------------------------------------------------------------


#: small objects in flight per big part allowed, unless ``max_parallel_small`` says otherwise
SMALL_OBJECTS_PER_PART = 4
#: a body smaller than this is sent without "Expect: 100-continue" (see ``_no_expect_for_small_bodies``)
EXPECT_CONTINUE_MIN = 1024 * 1024


def _no_expect_for_small_bodies(params: dict[str, Any], **_: Any) -> None:
    """botocore asks the server's leave (``Expect: 100-continue``) before every body it streams:
    a round trip per request, before a byte of the body goes out. Worth it for a big body the
    server may refuse (a wrong key, an existing object under If-None-Match); for a small file's
    PutObject it only doubles the request's latency. Runs after botocore's own handler."""
    headers = params.get("headers")
    body = params.get("body")
    if headers and "Expect" in headers and isinstance(body, _PartBody) and len(body) < EXPECT_CONTINUE_MIN:
        del headers["Expect"]


class _PartBody:
    """A read-only file over a memoryview, so botocore streams the engine's buffer uncopied
    (and can seek back to hash or re-send it).

    ``read`` hands out views, not copies, and at least ``_MIN_READ`` bytes at a time: http.client
    asks for 16 KiB per call, and a Python round trip plus a copy per 16 KiB cost more CPU than
    the socket does. Every consumer in botocore and http.client takes any bytes-like block.
    """

    _MIN_READ = 1024 * 1024

    def __init__(self, data: memoryview) -> None:
        self._data = data if data.format == "B" and data.ndim == 1 else data.cast("B")
        self._pos = 0

    def __len__(self) -> int:
        return len(self._data)

    def read(self, size: int | None = -1) -> memoryview | bytes:
        if size is None or size < 0:
            end = len(self._data)
        else:
            end = min(len(self._data), self._pos + max(size, self._MIN_READ))
        if end <= self._pos:
            return b""
        chunk = self._data[self._pos : end]
        self._pos = end
        return chunk

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: len(self._data)}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True


class _BodyReader(io.RawIOBase):
    """A GetObject body as a raw file whose errors come out translated."""

    def __init__(self, body: Any, bucket: str, key: str) -> None:
        self._body = body
        self._bucket = bucket
        self._key = key

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        with _s3_errors(self._bucket, self._key):
            data = self._body.read(len(view))
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._body.close()
        super().close()


def _endpoint_id(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


@functools.cache
def _shared_loader() -> Any:
    """botocore's loader of service models, shared by every destination's session: parsing the
    S3 model again costs about 70 ms of CPU per client."""
    return botocore.session.Session().get_component("data_loader")


def _resolve(options: S3Options) -> tuple[boto3.Session, Provider, str | None, str | None]:
    """The session, provider, endpoint (None: botocore's choice) and region for ``options``;
    local work only."""
    core = botocore.session.Session()
    core.register_component("data_loader", _shared_loader())
    with _s3_errors(options.bucket, keys_hint=options.keys_hint):
        session = boto3.Session(
            botocore_session=core,
            profile_name=options.profile,
            aws_access_key_id=options.access_key,
            aws_secret_access_key=options.secret_key,
            aws_session_token=options.session_token,
        )
        region = options.region or session.region_name  # reads the profile: ProfileNotFound
    endpoint = options.endpoint_url
    if options.provider:
        provider = get_provider(options.provider)
        endpoint = endpoint or provider.endpoint_for(region)
    elif endpoint:
        provider = guess_provider(urlsplit(endpoint).hostname)
    else:
        # AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL or the config file may name an endpoint: ask
        # botocore which one it would use (nothing is sent).
        resolver = session.client("s3", region_name=region or "us-east-1")
        provider = guess_provider(urlsplit(resolver.meta.endpoint_url).hostname)
        resolver.close()
    return session, provider, endpoint, region


class S3Destination:
    """A bucket and prefix at one provider. One boto3 client, shared by every thread."""

    def __init__(self, options: S3Options) -> None:
        self.options = options
        self._where_shown = ""  # see ``show_where``
        self._session, self.provider, endpoint, region = _resolve(options)
        provider = self.provider
        check_options(options, provider, self.name)
        self.region = region or provider.default_region or "us-east-1"
        self.checksum_mode: ChecksumMode = options.checksum_mode or (
            "when_supported" if provider.sdk_checksums else "when_required"
        )
        self.conditional_put = provider.conditional_put
        self.conditional_complete = provider.conditional_complete
        if options.conditional_writes is not None:
            self.conditional_put = self.conditional_complete = options.conditional_writes
        #: ETags are MD5s of what was sent, except under SSE-KMS, whatever the provider
        self.etags_are_md5 = options.sse != "aws:kms"
        self.part_size = options.part_size or max(DEFAULT_PART_SIZE, provider.min_part_size)
        # A small PutObject is a round trip more than bandwidth: thousands of them over a long
        # one want many in flight (1,000 files of 4-64 KiB through a 20 ms round trip: 7.1 s at 4,
        # 3.2 s at 16; aws-cli 5.5 s), while big parts stay at max_parallel (memory).
        small = options.max_parallel_small or min(
            SMALL_OBJECTS_PER_PART * options.max_parallel_parts, MAX_PARALLEL
        )
        self.small_parallel = max(small, options.max_parallel_parts)
        config = Config(
            signature_version="s3v4",
            s3={
                "addressing_style": options.addressing_style or provider.addressing_style,
                # Every part and object body castoff sends carries a Content-MD5, which is signed: hashing the
                # payload again with SHA-256 for the signature (botocore's default over plain
                # HTTP) would add a full pass over every byte and prove nothing more.
                "payload_signing_enabled": False,
            },
            # One attempt: the engine retries. ("max_attempts": 1 would mean one *retry*.)
            retries={"total_max_attempts": 1, "mode": "standard"},
            request_checksum_calculation=self.checksum_mode,
            response_checksum_validation=self.checksum_mode,
            max_pool_connections=max(10, self.small_parallel + 4),
            connect_timeout=CONNECT_TIMEOUT,
            read_timeout=READ_TIMEOUT,
            tcp_keepalive=True,
            user_agent_extra="castoff",
        )
        self.client: S3Client = self._session.client(
            "s3",
            endpoint_url=endpoint,
            region_name=self.region,
            config=config,
            verify=options.ca_bundle or None,
        )
        self.client.meta.events.register_last("before-call.s3", _no_expect_for_small_bodies)
        self.endpoint_url = self.client.meta.endpoint_url
        if provider.endpoint_required and "amazonaws.com" in self.endpoint_url:
            self.client.close()
            raise errors.UsageError(
                f"{provider.title} needs an endpoint", hint="add endpoint=https://... to the URL"
            )
        on_aws = provider.name == "aws" and options.endpoint_url is None
        where = "aws" if on_aws else _endpoint_id(self.endpoint_url)
        self._ident = f"s3:{where}/{options.bucket}/{options.prefix}"
        self._where = where
        self._caps = self._capabilities()

    def _capabilities(self) -> Capabilities:
        options, provider = self.options, self.provider
        return Capabilities(
            kind="s3",
            is_local=False,
            can_read_back=options.verify_download,
            can_stat=False,
            concurrency=options.max_parallel_parts,
            small_concurrency=self.small_parallel,
            needs_md5=True,
            resumable=True,
            commit_can_retarget=False,
            refuses_existing=self.conditional_put and self.conditional_complete,
            needs_hash_at_start=True,
            min_part_size=provider.min_part_size,
            max_part_size=provider.max_part_size,
            max_parts=provider.max_parts,
            max_object_size=provider.max_object_size,
            single_put_max=min(self.part_size, provider.max_put_size),
            max_key_bytes=MAX_KEY_BYTES,
            max_metadata_bytes=provider.max_metadata_bytes,
            preferred_part_size=options.part_size,
        )

    # -- what the engine reads

    @property
    def name(self) -> str:
        return f"s3://{self.options.bucket}/{self.options.prefix}".rstrip("/") + self._where_shown

    @property
    def place(self) -> str:
        """The bucket and prefix with the endpoint's loopback names made one (``localhost``,
        ``127.0.0.1``, ``::1``): two destinations of a job with one place are one destination."""
        return ident_place(self._ident)

    def show_where(self) -> None:
        """Name the endpoint too: another destination of the job has the same bucket and prefix
        at another endpoint, and the summary, reports and messages must tell the two apart."""
        self._where_shown = f" ({self._where})"

    @property
    def ident(self) -> str:
        return self._ident

    @property
    def caps(self) -> Capabilities:
        return self._caps

    def target_for(self, rel_path: str) -> str:
        key = self.options.prefix + rel_path
        try:
            size = len(key.encode("utf-8"))
        except UnicodeEncodeError:
            raise errors.KeyRejected(
                f"{rel_path!r} is not valid Unicode, so it cannot be an S3 key",
                hint="the file name holds bytes that are not UTF-8",
            ) from None
        if size > MAX_KEY_BYTES:
            raise errors.KeyRejected(  # the line that says it names the file: not the key again
                f"its key would be {size} bytes (the prefix and the file's path), S3 allows {MAX_KEY_BYTES}",
                hint="use a shorter prefix or layout for this file",
            )
        if not rel_path:
            raise errors.KeyRejected("empty file path")
        return key

    def preflight(self) -> None:
        """Options and credentials, checked locally: nothing is sent to the endpoint."""
        check_options(self.options, self.provider, self.name)
        with _s3_errors(self.options.bucket, keys_hint=self.options.keys_hint):
            credentials = self._session.get_credentials()
        if credentials is None:
            raise errors.BadCredentials(
                f"no credentials found for {self.name}", hint=self.options.no_keys_hint or NO_KEYS_HINT
            )

    # -- uploads

    def start(
        self,
        target: str,
        *,
        meta: ObjectMeta,
        part_size: int,
        resume: ResumeToken | None = None,
        overwrite: bool = False,
    ) -> S3Upload:
        """Begin one file. A multipart upload is created here, before any part, so the token
        the engine records already names it."""
        if len(target.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
            raise errors.KeyRejected(f"its key is longer than {MAX_KEY_BYTES} bytes, the most S3 allows")
        if not 1 <= part_size <= self.provider.max_part_size:
            raise ValueError(f"part size {part_size} outside 1..{self.provider.max_part_size}")
        if meta.size > self.provider.max_object_size:
            raise errors.PermanentError(
                f"{meta.rel_path} is {meta.size} bytes; {self.provider.title} takes at most "
                f"{self.provider.max_object_size}"
            )
        n_parts = parts_for(meta.size, part_size)
        if n_parts > self.provider.max_parts:
            raise ValueError(f"{n_parts} parts; {self.provider.title} allows {self.provider.max_parts}")
        metadata, notes = build_metadata(meta, self.provider.max_metadata_bytes)
        for note in notes:
            log.info("%s: %s", target, note)
        single = n_parts == 1
        upload_id: str | None = None
        if resume is not None:
            if resume.get("key") != target or resume.get("part_size") != part_size:
                raise errors.UploadGone(
                    f"the recorded upload of {target} used another key or part size",
                    hint="the file starts over",
                )
            recorded = resume.get("upload_id")
            if not single:
                if not isinstance(recorded, str) or not recorded:
                    raise errors.UploadGone(f"no multipart upload recorded for {target}")
                upload_id = recorded
                log.info("resume: upload %s of %s (%d parts)", upload_id, target, n_parts)
        elif not single:
            with _s3_errors(self.options.bucket, target, keys_hint=self.options.keys_hint):
                created = self.client.create_multipart_upload(
                    Bucket=self.options.bucket, Key=target, **self.object_args(metadata)
                )
            upload_id = created["UploadId"]
        return S3Upload(self, target, meta, part_size, upload_id, metadata, notes, overwrite=overwrite)

    def object_args(self, metadata: Mapping[str, str]) -> dict[str, Any]:
        """What PutObject and CreateMultipartUpload share: metadata, class, encryption."""
        args: dict[str, Any] = {"Metadata": dict(metadata)}
        if self.options.storage_class:
            args["StorageClass"] = self.options.storage_class
        if self.options.sse:
            args["ServerSideEncryption"] = self.options.sse
        if self.options.sse_kms_key_id:
            args["SSEKMSKeyId"] = self.options.sse_kms_key_id
        return args

    def stat(self, target: str) -> ObjectStat | None:
        raise RuntimeError("S3 destinations do not stat (caps.can_stat is false): no HEAD")

    def give_times(self, target: str, meta: ObjectMeta) -> None:
        raise RuntimeError("an object's times are its metadata, set when it is put (caps.is_local is false)")

    def open_read(self, target: str) -> BinaryIO:
        """The object's bytes (GetObject); only with verify_download, which grants the read."""
        if not self.options.verify_download:
            raise RuntimeError("open_read needs verify_download (caps.can_read_back)")
        try:
            with _s3_errors(self.options.bucket, target, keys_hint=self.options.keys_hint):
                body = self.client.get_object(Bucket=self.options.bucket, Key=target)["Body"]
        except bx.ClientError as exc:  # untranslated: NoSuchKey is no error elsewhere
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404") or status == 404:
                where = f"s3://{self.options.bucket}/{target}"
                raise FileNotFoundError(errno.ENOENT, "no such object", where) from exc
            raise
        return cast(BinaryIO, io.BufferedReader(_BodyReader(body, self.options.bucket, target)))

    def abort_token(self, target: str, token: ResumeToken) -> None:
        upload_id = token.get("upload_id")
        if isinstance(upload_id, str) and upload_id:
            self.abort_upload(target, upload_id)

    def unfinished_uploads(self, key: str) -> list[tuple[str, float]]:
        """(upload id, when the server says it began, epoch seconds) of every multipart upload of
        exactly ``key`` still open (ListMultipartUploads). Needs ``s3:ListBucketMultipartUploads``,
        which a write-only key lacks: then ``AccessDenied`` (a ``CastoffError``)."""
        found: list[tuple[str, float]] = []
        args: dict[str, Any] = {"Bucket": self.options.bucket, "Prefix": key}
        while True:
            with _s3_errors(self.options.bucket, key, keys_hint=self.options.keys_hint):
                page = self.client.list_multipart_uploads(**args)
            for u in page.get("Uploads") or ():
                if u.get("Key") == key and u.get("UploadId"):
                    began = u.get("Initiated")
                    found.append((str(u["UploadId"]), began.timestamp() if began is not None else 0.0))
            if not page.get("IsTruncated"):
                return found
            args["KeyMarker"] = page.get("NextKeyMarker", "")
            args["UploadIdMarker"] = page.get("NextUploadIdMarker", "")

    def abort_upload(self, key: str, upload_id: str) -> bool:
        """AbortMultipartUpload; an upload already gone (NoSuchUpload) is fine: False then."""
        try:
            with _s3_errors(self.options.bucket, key, keys_hint=self.options.keys_hint):
                self.client.abort_multipart_upload(Bucket=self.options.bucket, Key=key, UploadId=upload_id)
        except errors.UploadGone:
            log.info("abort: upload %s of %s was already gone", upload_id, key)
            return False
        return True

    def close(self) -> None:
        self.client.close()


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def _etag_of(answer: Mapping[str, Any], where: str) -> str:
    """The ETag of a write's answer. Every write answer carries one: without it the answer was
    cut short (urllib3 only warns about a broken head), so what the server did is unknown."""
    etag = str(answer.get("ETag") or "").strip('"').lower()
    if not etag:
        raise errors.TransientError(f"the answer for {where} came without an ETag (cut off on the way?)")
    return etag


def _looks_like(etag: str, multipart: bool) -> bool:
    pattern = r"[0-9a-f]{32}-\d+" if multipart else r"[0-9a-f]{32}"
    return re.fullmatch(pattern, etag) is not None


class S3Upload:
    """One file on its way to a bucket: a single PutObject, or a multipart upload.

    ``put_part`` is safe from several threads at once: it shares only the client (thread-safe)
    and a lock-guarded list of notes. A single PutObject is sent by ``put_part(0)`` and is
    visible from then on; it can raise ``TargetExists`` there when conditional writes are on."""

    def __init__(
        self,
        dest: S3Destination,
        key: str,
        meta: ObjectMeta,
        part_size: int,
        upload_id: str | None,
        metadata: Mapping[str, str],
        notes: Sequence[str],
        *,
        overwrite: bool = False,
    ) -> None:
        self._dest = dest
        self._overwrite = overwrite  # replaces the object at the key: no If-None-Match
        self._key = key
        self._meta = meta
        self._part_size = part_size
        self._upload_id = upload_id
        self._metadata = metadata
        self._n_parts = parts_for(meta.size, part_size)
        self._lock = threading.Lock()
        self._notes = list(notes)
        self._put_sent = False  # a PutObject went out (its answer may have been lost)

    @property
    def token(self) -> ResumeToken:
        return {"upload_id": self._upload_id, "part_size": self._part_size, "key": self._key}

    @property
    def target(self) -> str:
        return self._key

    @property
    def upload_id(self) -> str | None:
        return self._upload_id

    def _note(self, text: str) -> None:
        with self._lock:
            if text not in self._notes:
                self._notes.append(text)

    def _where(self) -> str:
        return f"s3://{self._dest.options.bucket}/{self._key}"

    def put_part(self, index: int, offset: int, data: memoryview, md5: bytes | None) -> PartReceipt:
        size = data.nbytes
        expected = min(self._part_size, self._meta.size - index * self._part_size)
        if not 0 <= index < self._n_parts or offset != index * self._part_size:
            raise ValueError(f"part {index} at {offset} is not in the plan of {self._key}")
        if size != max(expected, 0):
            raise ValueError(f"part {index} of {self._key} is {size} bytes, expected {expected}")
        digest = md5 if md5 is not None else hashlib.md5(data, usedforsecurity=False).digest()
        bucket = self._dest.options.bucket
        if self._upload_id is None:
            answer = self._put_object(data, digest)
        else:
            with _s3_errors(bucket, self._key, keys_hint=self._dest.options.keys_hint):
                answer = self._dest.client.upload_part(
                    Bucket=bucket,
                    Key=self._key,
                    UploadId=self._upload_id,
                    PartNumber=index + 1,
                    Body=cast(Any, _PartBody(data)),
                    ContentLength=size,
                    ContentMD5=_b64(digest),
                )
        etag = _etag_of(answer, self._where())
        self._check_part_etag(index, etag, digest.hex())
        return PartReceipt(index, offset, size, md5=digest.hex(), etag=etag)

    def _put_object(self, data: memoryview, digest: bytes) -> Any:
        """One PutObject. With ``If-None-Match: *``, a 412 after an attempt whose answer was lost
        may be that attempt's own object: where the key may read, an object there with this
        body's MD5 as its ETag is taken as landed, instead of a conflict that would upload a copy
        under another name."""
        dest = self._dest
        args = dest.object_args(self._metadata)
        if dest.conditional_put and not self._overwrite:
            args["IfNoneMatch"] = "*"
        retried, self._put_sent = self._put_sent, True
        try:
            with _s3_errors(dest.options.bucket, self._key, keys_hint=dest.options.keys_hint):
                return dest.client.put_object(
                    Bucket=dest.options.bucket,
                    Key=self._key,
                    Body=cast(Any, _PartBody(data)),
                    ContentLength=data.nbytes,
                    ContentMD5=_b64(digest),
                    **args,
                )
        except TargetExists:
            if not retried:
                raise
            there = self._etag_there()
            if there is None or there != digest.hex() or not self._put_etag_checkable(there):
                raise
            self._note("the first PutObject's answer was lost; the object there has this body's MD5")
            return {"ETag": f'"{there}"'}

    def _etag_there(self) -> str | None:
        """The ETag of the object at the key, or None when the key may not read it."""
        try:
            with _s3_errors(self._dest.options.bucket, self._key, keys_hint=self._dest.options.keys_hint):
                head = self._dest.client.head_object(Bucket=self._dest.options.bucket, Key=self._key)
        except errors.CastoffError:
            return None
        return _etag_of(head, self._where())

    def _put_etag_checkable(self, etag: str) -> bool:
        """Whether this answer's ETag must be the MD5 of the bytes sent."""
        dest = self._dest
        single = self._upload_id is None
        return (
            dest.etags_are_md5
            and (not single or dest.provider.put_etag_is_md5)
            and _looks_like(etag, multipart=False)
        )

    def _check_part_etag(self, index: int, etag: str, md5_hex: str) -> None:
        if not self._put_etag_checkable(etag):
            self._note("ETags are not MD5s here: each body is proven by Content-MD5 only")
            return
        if etag != md5_hex.lower():
            raise errors.IntegrityError(
                f"part {index + 1} of {self._where()}: the server's ETag {etag} is not the MD5 "
                f"{md5_hex} of the bytes sent"
            )

    def commit(
        self,
        parts: Sequence[PartReceipt],
        *,
        source_blake3: str,
        target: str | None = None,
        overwrite: bool = False,
    ) -> Landed:
        if target is not None and target != self._key:
            raise ValueError("an S3 upload cannot change its key at commit (commit_can_retarget)")
        ordered = sorted(parts, key=lambda p: p.index)
        if [p.index for p in ordered] != list(range(self._n_parts)) or sum(p.size for p in ordered) != max(
            self._meta.size, 0
        ):
            raise ValueError(f"the receipts do not cover {self._key} part by part")
        if self._upload_id is None:  # the PutObject went out in put_part(0)
            etag = ordered[0].etag or ""
            method = "content-md5"
            if self._put_etag_checkable(etag) and ordered[0].md5:
                self._check_part_etag(0, etag, ordered[0].md5)
                method = "content-md5 + etag (md5)"
        else:
            etag, method = self._complete(ordered, overwrite)
        if self._dest.options.verify_download:
            try:
                self._read_back(source_blake3)
            except errors.CastoffError as exc:
                if not exc.restartable:  # not a mismatch: the object is there, as its checksums proved
                    exc.left_at = self._key
                raise
            method = f"read-back blake3 + {method}"
        with self._lock:
            detail = "; ".join(self._notes) or None
        return Landed(self._key, self._meta.size, method, etag=etag or None, detail=detail)

    def _complete(self, ordered: Sequence[PartReceipt], overwrite: bool) -> tuple[str, str]:
        dest = self._dest
        listed = []
        for p in ordered:
            if not p.etag:
                raise ValueError(f"receipt of part {p.index} of {self._key} has no ETag")
            listed.append({"PartNumber": p.index + 1, "ETag": f'"{p.etag}"'})
        extra: dict[str, Any] = {}
        if dest.conditional_complete and not (overwrite or self._overwrite):
            extra["IfNoneMatch"] = "*"
        assert self._upload_id is not None
        with _s3_errors(dest.options.bucket, self._key, keys_hint=dest.options.keys_hint):
            answer = dest.client.complete_multipart_upload(
                Bucket=dest.options.bucket,
                Key=self._key,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": cast(Any, listed)},
                **extra,
            )
        etag = _etag_of(answer, self._where())
        return etag, self._check_etag(ordered, etag)

    def _check_etag(self, ordered: Sequence[PartReceipt], etag: str) -> str:
        """Compare Complete's ETag with what the parts make; the verify method it proves."""
        if not (self._dest.etags_are_md5 and self._dest.provider.multipart_etag_is_md5s):
            self._note("the object's ETag is not an MD5 form here: proven by Content-MD5 per part")
            return "content-md5 per part"
        digests = [p.md5 or p.etag or "" for p in ordered]
        if not all(_looks_like(d, False) for d in digests):
            self._note("a recorded part lacks its MD5: the object's ETag was not checked")
            return "content-md5 per part"
        combined = hashlib.md5(b"".join(bytes.fromhex(d) for d in digests), usedforsecurity=False).hexdigest()
        wanted = f"{combined}-{len(ordered)}"
        if etag == wanted:
            return "content-md5 per part + etag (md5 of part md5s)"
        if self._meta.md5 and etag == self._meta.md5.lower():
            return "content-md5 per part + etag (whole-file md5)"
        if _looks_like(etag, True) or _looks_like(etag, False):
            raise errors.IntegrityError(
                f"{self._where()}: the server's ETag {etag} is not {wanted}, what the parts make",
                hint="the object may hold other bytes than were sent",
            )
        self._note(f"the server's ETag {etag!r} is not an MD5 form: proven by Content-MD5 per part")
        return "content-md5 per part"

    def _read_back(self, source_blake3: str) -> None:
        dest = self._dest
        hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)
        total = 0
        with _s3_errors(dest.options.bucket, self._key, keys_hint=dest.options.keys_hint):
            body = dest.client.get_object(Bucket=dest.options.bucket, Key=self._key)["Body"]
            try:
                for chunk in body.iter_chunks(READ_CHUNK):
                    hasher.update(chunk)
                    total += len(chunk)
            finally:
                body.close()
        digest = hasher.hexdigest()
        if digest != source_blake3 or total != self._meta.size:
            raise errors.IntegrityError(
                f"read-back of {self._where()} does not match the source (blake3 {digest[:16]}…, "
                f"{total} bytes; source {source_blake3[:16]}…, {self._meta.size} bytes)"
            )

    def abort(self) -> None:
        """Abort the multipart upload. A single PutObject that went out cannot be taken back
        without Delete, which castoff never sends; its object is complete and proven."""
        if self._upload_id is not None:
            self._dest.abort_upload(self._key, self._upload_id)


# --- castoff dest test --------------------------------------------------------------------


@dataclass(frozen=True)
class ProbeResult:
    """What ``castoff dest test`` found, in words a person can act on (``message`` does not
    repeat the destination's name: the caller prints it)."""

    ok: bool
    destination: str
    endpoint: str
    message: str
    #: None when ok; else unknown-key, wrong-secret, no-credentials, no-such-bucket,
    #: access-denied, unreachable, tls, clock-skew, configuration or other
    problem: str | None = None
    hint: str | None = None
    #: what the server or the SDK said, for the curious
    detail: str | None = None


#: what went wrong, by S3 error code or castoff's own name for it: (problem, plain words)
_PROBLEMS: Mapping[str, tuple[str, str]] = {
    "InvalidAccessKeyId": ("unknown-key", "the server does not know this access key id"),
    "SignatureDoesNotMatch": ("wrong-secret", "the secret key is wrong for this access key id"),
    "NoSuchBucket": ("no-such-bucket", "there is no such bucket at this endpoint"),
    "AccessDenied": ("access-denied", "the key may not write under this prefix"),
    "clock-skew": ("clock-skew", "this computer's clock is too far off"),
    "tls": ("tls", "the TLS connection failed (certificate or protocol)"),
    "unreachable": ("unreachable", "the endpoint cannot be reached"),
    "bad-credentials": ("no-credentials", "no credentials were found"),
    "usage": ("configuration", "the destination is not set up right"),
}


def _problem_of(exc: errors.CastoffError) -> tuple[str, str]:
    cause = exc.__cause__
    name = exc.code
    if isinstance(cause, bx.ClientError) and not isinstance(exc, errors.ClockSkew):
        name = str(cause.response.get("Error", {}).get("Code", ""))
    elif isinstance(cause, bx.SSLError):
        name = "tls"
    elif isinstance(cause, bx.EndpointConnectionError | bx.ConnectTimeoutError):
        name = "unreachable"
    return _PROBLEMS.get(name, ("other", "the destination refused the test"))


def probe(options: S3Options) -> ProbeResult:
    """Prove that the keys can write under the prefix without leaving anything behind:
    CreateMultipartUpload then AbortMultipartUpload of ``PREFIX.castoff-probe-<random>``."""
    try:
        dest = S3Destination(options)
    except errors.CastoffError as exc:
        name = f"s3://{options.bucket}/{options.prefix}".rstrip("/")
        return _failed(name, options.endpoint_url or "", exc)
    key = f"{options.prefix}.castoff-probe-{secrets.token_hex(8)}"
    try:
        dest.preflight()
        with _s3_errors(options.bucket, key, keys_hint=options.keys_hint):
            created = dest.client.create_multipart_upload(Bucket=options.bucket, Key=key)
        try:
            dest.abort_upload(key, created["UploadId"])
        except errors.AccessDenied as exc:
            return ProbeResult(
                False,
                dest.name,
                dest.endpoint_url,
                f"the key can write but cannot abort uploads: an empty upload of {key} "
                f"(id {created['UploadId']}) is left behind",
                "access-denied",
                "grant s3:AbortMultipartUpload so castoff can clean up; "
                "a lifecycle rule that aborts incomplete uploads removes this one",
                exc.message,
            )
        if options.verify_download:
            cannot_read = _probe_read(dest, key)
            if cannot_read is not None:
                return cannot_read
    except (errors.DestinationError, errors.UsageError) as exc:
        return _failed(dest.name, dest.endpoint_url, exc)
    finally:
        dest.close()
    reads = " and reads (GetObject, for --verify-download)" if options.verify_download else ""
    return ProbeResult(
        True,
        dest.name,
        dest.endpoint_url,
        f"takes writes{reads}: started and aborted an upload of {key} "
        f"({dest.provider.title}, checksums {dest.checksum_mode})",
    )


def _probe_read(dest: S3Destination, key: str) -> ProbeResult | None:
    """With verify_download, a key that can write but not read fails every file's read-back, job
    after job (QA: the probe said ok). GetObject of the probe's key, which holds no object: "no
    such key" proves the read is allowed; AccessDenied that it is not. Nothing is written."""
    options = dest.options
    try:
        with _s3_errors(options.bucket, key, keys_hint=options.keys_hint):
            dest.client.get_object(Bucket=options.bucket, Key=key)["Body"].close()
    except errors.AccessDenied as exc:
        return ProbeResult(
            False,
            dest.name,
            dest.endpoint_url,
            "the key can write but cannot read: --verify-download reads every object back, so it"
            f" cannot work with this key (GetObject of {key} was refused)",
            "access-denied",
            "grant the key s3:GetObject under the prefix (on AWS also s3:ListBucket: without it S3"
            " refuses a read of a missing object the same way), or drop --verify-download",
            exc.message,
        )
    except bx.ClientError as exc:  # untranslated: NoSuchKey, the answer a reader gets
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if exc.response.get("Error", {}).get("Code") not in ("NoSuchKey", "404") and status != 404:
            raise
    return None


def _failed(name: str, endpoint: str, exc: errors.CastoffError) -> ProbeResult:
    problem, said = _problem_of(exc)
    message = said if problem != "other" else f"{said}: {exc.message}"
    return ProbeResult(False, name, endpoint, message, problem, exc.hint, exc.message)
