"""The S3-compatible providers castoff knows, as one table of data: limits, quirks, defaults.

The S3 destination reads its part limits, checksum mode, ETag rules and endpoint from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Literal

from castoff import errors
from castoff.destinations.base import GiB, KiB, MiB, TiB

AddressingStyle = Literal["path", "virtual", "auto"]

MB = 1000 * 1000
GB = 1000 * MB
TB = 1000 * GB

#: AWS's list (https://docs.aws.amazon.com/AmazonS3/latest/userguide/storage-class-intro.html);
#: EXPRESS_ONEZONE and OUTPOSTS need other bucket types and are left out.
AWS_STORAGE_CLASSES = frozenset(
    {
        "STANDARD",
        "REDUCED_REDUNDANCY",
        "STANDARD_IA",
        "ONEZONE_IA",
        "INTELLIGENT_TIERING",
        "GLACIER",
        "DEEP_ARCHIVE",
        "GLACIER_IR",
    }
)


@dataclass(frozen=True)
class Provider:
    """One row of the table: what castoff assumes about a provider unless the user overrides it."""

    name: str
    title: str
    #: endpoint URL, with ``{region}`` to fill in; None: botocore decides (AWS, or the
    #: AWS_ENDPOINT_URL* chain), and the user must give one when ``endpoint_required``
    endpoint: str | None
    endpoint_required: bool
    #: region used when neither the user nor the AWS chain names one
    default_region: str | None
    addressing_style: AddressingStyle
    #: accepts boto3's default flexible checksums (CRC32 headers; aws-chunked trailers over
    #: HTTPS): ``request_checksum_calculation="when_supported"``. Otherwise castoff lets boto3
    #: send them only where an operation requires it (``"when_required"``) and relies on
    #: Content-MD5, which every provider checks.
    sdk_checksums: bool
    min_part_size: int
    max_part_size: int
    max_parts: int
    max_object_size: int
    #: the largest single PutObject
    max_put_size: int
    #: a PutObject's ETag is the MD5 of the body (when not under SSE-KMS or SSE-C)
    put_etag_is_md5: bool
    #: a multipart ETag is ``md5(concat(part md5s))-N``
    multipart_etag_is_md5s: bool
    #: ``If-None-Match: *`` is honoured (412 when the key exists) on PutObject / on Complete
    conditional_put: bool
    conditional_complete: bool
    #: user metadata budget, counted as AWS does: the UTF-8 bytes of every key and value
    max_metadata_bytes: int
    storage_classes: frozenset[str]
    #: every part but the last must have the same size (castoff's plan always does this)
    equal_parts: bool
    #: what becomes of a multipart upload that is never completed or aborted
    abandoned_uploads: str
    notes: tuple[str, ...] = ()

    def endpoint_for(self, region: str | None) -> str | None:
        """The endpoint URL in ``region``; None when the provider has no pattern."""
        if self.endpoint is None or "{region}" not in self.endpoint:
            return self.endpoint
        region = region or self.default_region
        if not region:
            raise errors.UsageError(
                f"{self.title} needs a region to build its endpoint",
                hint=f"add region=... or endpoint=... (the pattern is {self.endpoint})",
            )
        return self.endpoint.format(region=region)


_ROWS = (
    Provider(
        name="aws",
        title="Amazon S3",
        endpoint=None,  # botocore resolves s3.<region>.amazonaws.com (and FIPS, dual-stack, ...)
        endpoint_required=False,
        default_region="us-east-1",
        addressing_style="auto",  # virtual-hosted, path for names with dots
        sdk_checksums=True,  # the SDK defaults are made for AWS (cloud-anchors.md 3.3)
        # https://docs.aws.amazon.com/AmazonS3/latest/userguide/qfacts.html
        min_part_size=5 * MiB,
        max_part_size=5 * GiB,
        max_parts=10_000,
        max_put_size=5 * GiB,
        max_object_size=10_000 * 5 * GiB,  # "48.8 TiB" (qfacts.html; 5 TB until Dec 2025)
        put_etag_is_md5=True,
        multipart_etag_is_md5s=True,
        # https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html
        conditional_put=True,
        conditional_complete=True,
        # "2 KB" inside an 8 KB PUT header:
        # https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingMetadata.html
        max_metadata_bytes=2 * KiB,
        storage_classes=AWS_STORAGE_CLASSES,
        equal_parts=False,
        abandoned_uploads="kept, and billed, until aborted: add a lifecycle rule "
        "AbortIncompleteMultipartUpload",
        notes=(
            "ETags are not MD5s under SSE-KMS or SSE-C; castoff then relies on Content-MD5",
            "GLACIER and DEEP_ARCHIVE objects need a restore before a read-back can verify them",
        ),
    ),
    Provider(
        name="b2",
        title="Backblaze B2",
        # "s3.<region>.backblazeb2.com, where <region> is similar to us-west-004"
        # (https://www.backblaze.com/apidocs/introduction-to-the-s3-compatible-api)
        endpoint="https://s3.{region}.backblazeb2.com",
        endpoint_required=False,
        default_region=None,  # an account lives in one region: the user must say which
        addressing_style="auto",  # virtual-hosted, path for names with dots
        # rejected x-amz-checksum-* / x-amz-sdk-checksum-algorithm in 2025 (cloud-anchors.md 3.3)
        sdk_checksums=False,
        # "5 MB-5 GB" parts, 10,000 parts, files up to 10 TB
        # (https://www.backblaze.com/docs/cloud-storage-large-files)
        min_part_size=5 * MB,
        max_part_size=5 * GB,
        max_parts=10_000,
        max_put_size=5 * GB,
        max_object_size=10 * TB,
        put_etag_is_md5=True,
        # the S3 API's multipart ETag form is not documented: do not assume (cloud-anchors.md 4)
        multipart_etag_is_md5s=False,
        conditional_put=False,  # not documented by Backblaze
        conditional_complete=False,
        # 7,000 bytes for file name + info, 2,048 with SSE
        # (https://www.backblaze.com/docs/cloud-storage-add-file-information-with-the-native-api)
        max_metadata_bytes=2 * KiB,
        storage_classes=frozenset({"STANDARD"}),
        equal_parts=False,
        abandoned_uploads="unfinished large files stay, and are billed, until cancelled",
        notes=("the master application key cannot use the S3 API: create an application key",),
    ),
    Provider(
        name="r2",
        title="Cloudflare R2",
        # https://<ACCOUNT_ID>.r2.cloudflarestorage.com: the account id is not a region
        endpoint=None,
        endpoint_required=True,
        default_region="auto",
        addressing_style="path",
        sdk_checksums=False,  # 501 on x-amz-checksum-crc32 when boto3 1.36 shipped
        # https://developers.cloudflare.com/r2/platform/limits,
        # https://developers.cloudflare.com/r2/objects/multipart-objects
        min_part_size=5 * MiB,
        max_part_size=5 * GiB,
        max_parts=10_000,
        max_put_size=5 * GiB,
        max_object_size=4995 * TiB // 1000,  # "4.995 TiB"
        put_etag_is_md5=True,
        multipart_etag_is_md5s=True,  # for uploads created after 2023-06-21 (multipart-objects)
        # https://developers.cloudflare.com/r2/api/s3/conditional-operations/
        conditional_put=True,
        conditional_complete=True,
        max_metadata_bytes=8192,  # platform/limits
        storage_classes=frozenset({"STANDARD", "STANDARD_IA"}),
        equal_parts=True,
        abandoned_uploads="aborted automatically after 7 days",
        notes=("about one write per second to the same key; more answers 429",),
    ),
    Provider(
        name="wasabi",
        title="Wasabi",
        endpoint="https://s3.{region}.wasabisys.com",
        endpoint_required=False,
        default_region="us-east-1",
        addressing_style="auto",  # virtual-hosted, path for names with dots
        sdk_checksums=False,  # not documented: stay with Content-MD5
        min_part_size=5 * MiB,
        max_part_size=5 * GiB,
        max_parts=10_000,
        max_put_size=5 * GiB,
        max_object_size=5 * TB,
        put_etag_is_md5=True,
        multipart_etag_is_md5s=True,
        conditional_put=False,  # not documented by Wasabi
        conditional_complete=False,
        max_metadata_bytes=2 * KiB,  # assumed as AWS
        storage_classes=frozenset({"STANDARD"}),
        equal_parts=False,
        # https://docs.wasabi.com/docs/how-does-wasabi-handle-multipart-uploads
        abandoned_uploads="parts are billed as active storage for 30 days, even once aborted",
        notes=("objects deleted within 90 days are billed for 90 days (minimum storage duration)",),
    ),
    Provider(
        name="minio",
        title="MinIO",
        endpoint=None,
        endpoint_required=True,
        default_region="us-east-1",
        addressing_style="path",  # rclone's Minio.yaml forces path style
        sdk_checksums=False,  # releases before 2025-01-20 answer MissingContentMD5
        min_part_size=5 * MiB,
        max_part_size=5 * GiB,
        max_parts=10_000,
        max_put_size=5 * GiB,
        max_object_size=10_000 * 5 * GiB,  # MinIO says 50 TiB; 10,000 x 5 GiB parts reach this
        put_etag_is_md5=True,  # follows AWS (minio/minio#17214), except under KMS auto-encryption
        multipart_etag_is_md5s=True,
        # conditional writes since 2024-08 (minio/minio#20346, blog.min.io conditional write)
        conditional_put=True,
        conditional_complete=True,
        max_metadata_bytes=2 * KiB,  # assumed as AWS
        storage_classes=frozenset({"STANDARD", "REDUCED_REDUNDANCY"}),
        equal_parts=False,
        abandoned_uploads="kept until aborted, or until the server's stale-upload expiry",
    ),
    Provider(
        name="spaces",
        title="DigitalOcean Spaces",
        endpoint="https://{region}.digitaloceanspaces.com",
        endpoint_required=False,
        default_region="nyc3",
        addressing_style="auto",  # virtual-hosted, path for names with dots
        sdk_checksums=False,
        # https://docs.digitalocean.com/products/spaces/details/limits/
        min_part_size=5 * MiB,
        max_part_size=5 * GB,
        max_parts=10_000,
        max_put_size=5 * GB,
        max_object_size=5 * TB,
        put_etag_is_md5=True,
        multipart_etag_is_md5s=True,
        conditional_put=False,
        conditional_complete=False,
        max_metadata_bytes=2 * KiB,  # assumed as AWS
        storage_classes=frozenset({"STANDARD"}),
        equal_parts=False,
        abandoned_uploads="kept, and billed, until aborted",
        notes=("150 PUT/s per Space and at most 5 PUTs to one object in 5 minutes (limits page)",),
    ),
    Provider(
        name="gcs",
        title="Google Cloud Storage (XML API)",
        endpoint="https://storage.googleapis.com",
        endpoint_required=False,
        default_region="auto",
        addressing_style="path",
        sdk_checksums=False,
        min_part_size=5 * MiB,
        max_part_size=5 * GiB,
        max_parts=10_000,
        max_put_size=5 * TiB,
        max_object_size=5 * TiB,
        put_etag_is_md5=True,
        # multipart objects carry only CRC32C; the ETag is not an MD5
        # (https://cloud.google.com/storage/docs/xml-api/post-object-complete)
        multipart_etag_is_md5s=False,
        conditional_put=False,  # GCS uses x-goog-if-generation-match, not If-None-Match
        conditional_complete=False,
        max_metadata_bytes=8 * KiB,  # custom metadata "8 KiB" (GCS quotas and limits)
        storage_classes=frozenset({"STANDARD", "NEARLINE", "COLDLINE", "ARCHIVE"}),
        equal_parts=False,
        abandoned_uploads="kept, and billed, until aborted",
        notes=("use HMAC keys of a service account",),
    ),
    Provider(
        name="other",
        title="S3-compatible server",
        endpoint=None,
        endpoint_required=True,
        default_region="us-east-1",
        addressing_style="path",  # self-hosted servers rarely have wildcard DNS
        sdk_checksums=False,  # many reject them (cloud-anchors.md 3.3): Content-MD5 is universal
        min_part_size=5 * MiB,
        max_part_size=5 * GiB,
        max_parts=10_000,
        max_put_size=5 * GiB,
        max_object_size=5 * TiB,
        put_etag_is_md5=True,
        multipart_etag_is_md5s=True,
        # rclone serve s3 1.75 ignores If-None-Match and overwrites: never assume it works
        conditional_put=False,
        conditional_complete=False,
        max_metadata_bytes=2 * KiB,
        storage_classes=AWS_STORAGE_CLASSES,
        equal_parts=True,  # the safe assumption
        abandoned_uploads="depends on the server: abort them with `castoff uploads abort`",
    ),
)

#: ``rclone serve s3``: an unknown server, but with no minimum part size (1.75 completes
#: uploads of 1 MiB parts, as the tests send): with provider=rclone small parts are allowed; an
#: unknown server is held to the usual 5 MiB. (1.75 also ignores If-None-Match and overwrites.)
_RCLONE = replace(
    next(p for p in _ROWS if p.name == "other"), name="rclone", title="rclone serve s3", min_part_size=1
)
PROVIDERS: Mapping[str, Provider] = MappingProxyType({p.name: p for p in (*_ROWS, _RCLONE)})

#: endpoint host suffixes that name a provider, checked in this order
_HOST_SUFFIXES = (
    (".amazonaws.com", "aws"),
    (".amazonaws.com.cn", "aws"),
    (".backblazeb2.com", "b2"),
    (".r2.cloudflarestorage.com", "r2"),
    (".wasabisys.com", "wasabi"),
    (".digitaloceanspaces.com", "spaces"),
    (".storage.googleapis.com", "gcs"),
)


def get_provider(name: str) -> Provider:
    """The row called ``name``; UsageError listing the known ones otherwise."""
    try:
        return PROVIDERS[name.strip().lower()]
    except KeyError:
        raise errors.UsageError(
            f"unknown S3 provider {name!r}", hint=f"known: {', '.join(PROVIDERS)}"
        ) from None


def guess_provider(host: str | None) -> Provider:
    """The provider an endpoint host belongs to; ``other`` for anything unknown. None is AWS."""
    if not host:
        return PROVIDERS["aws"]
    host = host.lower().rstrip(".")
    for suffix, name in _HOST_SUFFIXES:
        if host == suffix.lstrip(".") or host.endswith(suffix):
            return PROVIDERS[name]
    return PROVIDERS["other"]
