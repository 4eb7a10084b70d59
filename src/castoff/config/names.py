"""Bucket and container name rules per provider, as data: which rule a name breaks, in words.

Checked before any request is sent, so a typo is caught at ``dest add`` and not as a 400 later.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

#: a rule: a short description (shown when broken) and a test that is True when the name obeys it
Check = Callable[[str], bool]


@dataclass(frozen=True)
class Rule:
    says: str
    ok: Check


@dataclass(frozen=True)
class NameRules:
    """The rules of one provider; ``legacy`` rules (old us-east-1 buckets) only warn."""

    provider: str
    what: str  # "bucket" or "container"
    rules: tuple[Rule, ...]
    source: str


@dataclass(frozen=True)
class NameCheck:
    """The verdict on one name: broken rules (errors) and warnings."""

    errors: tuple[str, ...]
    warnings: tuple[str, ...] = ()
    rules: str = ""  # whose rules were applied

    @property
    def ok(self) -> bool:
        return not self.errors


def _length(lo: int, hi: int) -> Rule:
    return Rule(f"be between {lo} and {hi} characters long", lambda n: lo <= len(n) <= hi)


def _chars(pattern: str, says: str) -> Rule:
    compiled = re.compile(pattern)
    return Rule(says, lambda n: compiled.fullmatch(n) is not None)


def _not_ip(name: str) -> bool:
    try:
        ipaddress.IPv4Address(name)
    except ValueError:
        return True
    return False


def _no_prefix(*prefixes: str) -> Rule:
    return Rule(
        "not start with " + " or ".join(repr(p) for p in prefixes),
        lambda n: not n.lower().startswith(prefixes),
    )


def _no_suffix(*suffixes: str) -> Rule:
    return Rule(
        "not end with " + ", ".join(repr(s) for s in suffixes),
        lambda n: not n.endswith(suffixes),
    )


_ENDS = Rule(
    "begin and end with a letter or a digit", lambda n: bool(n) and n[0].isalnum() and n[-1].isalnum()
)
_NOT_IP = Rule("not be formatted as an IP address (like 192.168.5.4)", _not_ip)
_NO_DOUBLE_DOT = Rule("not contain two adjacent dots ('..')", lambda n: ".." not in n)
_NO_DOT_DASH = Rule("not have a dot next to a dash ('.-' or '-.')", lambda n: ".-" not in n and "-." not in n)

#: https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html
_AWS = (
    _length(3, 63),
    _chars(r"[a-z0-9.-]*", "contain only lowercase letters, digits, dots (.) and dashes (-)"),
    _ENDS,
    _NO_DOUBLE_DOT,
    _NO_DOT_DASH,
    _NOT_IP,
    _no_prefix("xn--", "sthree-", "amzn-s3-demo-"),
    _no_suffix("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"),
)
#: buckets created in us-east-1 before 2018-03-01 may have these names; new ones may not
_AWS_LEGACY = (
    _length(1, 255),
    _chars(r"[A-Za-z0-9._-]*", "contain only letters, digits, dots, dashes and underscores"),
)


def _gcs_length(name: str) -> bool:
    if "." in name:
        return len(name) <= 222 and all(1 <= len(part) <= 63 for part in name.split("."))
    return 3 <= len(name) <= 63


_LOOKALIKE = str.maketrans("013", "ole")


def _not_google(name: str) -> bool:
    """False for "google" and the close misspellings GCS refuses (g00gle, gogle, googel, …)."""
    plain = re.sub("o+", "oo", name.lower().translate(_LOOKALIKE))
    return not any(w in plain for w in ("google", "googel", "goolge"))


#: https://cloud.google.com/storage/docs/buckets#naming
_GCS = (
    Rule(
        "be between 3 and 63 characters long, or up to 222 with dots (each dot-separated part at most 63)",
        _gcs_length,
    ),
    _chars(r"[a-z0-9._-]*", "contain only lowercase letters, digits, dashes, underscores and dots"),
    _ENDS,
    _NOT_IP,
    _no_prefix("goog"),
    Rule('not contain "google" or a close misspelling of it', _not_google),
)

#: https://www.backblaze.com/docs/cloud-storage-buckets (bucket names)
_B2 = (
    _length(6, 50),
    _chars(r"[A-Za-z0-9-]*", "contain only letters, digits and dashes"),
    _no_prefix("b2-"),
)

#: https://learn.microsoft.com/rest/api/storageservices/naming-and-referencing-containers--blobs--and-metadata
_AZURE = (
    _length(3, 63),
    _chars(r"[a-z0-9-]*", "contain only lowercase letters, digits and dashes"),
    _ENDS,
    Rule("not contain two dashes in a row ('--')", lambda n: "--" not in n),
)
_AZURE_SPECIAL = frozenset({"$root", "$web", "$logs"})

#: R2 and Spaces: https://developers.cloudflare.com/r2/buckets/create-buckets/ and DigitalOcean's
#: "3-63 lowercase letters, numbers and dashes, starting with a letter or number"
_DNS_LABEL = (
    _length(3, 63),
    _chars(r"[a-z0-9-]*", "contain only lowercase letters, digits and dashes"),
    _ENDS,
)

RULES: Mapping[str, NameRules] = MappingProxyType(
    {
        "aws": NameRules("aws", "bucket", _AWS, "Amazon S3 general purpose bucket rules"),
        "wasabi": NameRules("wasabi", "bucket", _AWS, "Wasabi (the Amazon S3 rules)"),
        "minio": NameRules("minio", "bucket", _AWS, "MinIO (the Amazon S3 rules)"),
        "b2": NameRules("b2", "bucket", _B2, "Backblaze B2 bucket rules"),
        "gcs": NameRules("gcs", "bucket", _GCS, "Google Cloud Storage bucket rules"),
        "r2": NameRules("r2", "bucket", _DNS_LABEL, "Cloudflare R2 bucket rules"),
        "spaces": NameRules("spaces", "bucket", _DNS_LABEL, "DigitalOcean Spaces rules"),
        "azure": NameRules("azure", "container", _AZURE, "Azure Blob container rules"),
    }
)


def _broken(name: str, rules: tuple[Rule, ...]) -> tuple[str, ...]:
    return tuple(r.says for r in rules if not r.ok(name))


def check_name(name: str, provider: str, *, region: str | None = None) -> NameCheck:
    """Which rules of ``provider`` the bucket (or container) ``name`` breaks.

    On AWS in us-east-1 a name that only the legacy rules allow is a warning (such old buckets
    exist). An unknown provider (``other``: a self-hosted server) gets the AWS rules as warnings."""
    if provider == "azure" and name in _AZURE_SPECIAL:
        return NameCheck(())
    table = RULES.get(provider)
    if table is None:
        broken = _broken(name, _AWS)
        return NameCheck((), tuple(f"{name!r} is not a valid Amazon S3 name: it should {b}" for b in broken))
    broken = _broken(name, table.rules)
    legacy_region = provider == "aws" and (region or "us-east-1") == "us-east-1"
    if broken and legacy_region and not _broken(name, _AWS_LEGACY):
        return NameCheck(
            (),
            tuple(
                f"{name!r} is allowed only by the legacy us-east-1 rules (a new bucket name must {b})"
                for b in broken
            ),
        )
    return NameCheck(tuple(f"it must {b}" for b in broken), rules=table.source)
