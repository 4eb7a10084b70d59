"""Turn what a user typed after ``--to`` into a destination: a folder path or an ``s3://`` URL.

The one place that knows which schemes exist; each backend parses its own options.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from castoff import errors
from castoff.destinations.base import Destination
from castoff.destinations.local import LocalDestination

SCHEMES = ("s3://",)


def open_destination(spec: str, *, s3_defaults: Mapping[str, object] | None = None) -> Destination:
    if "://" in spec:
        scheme = spec.split("://", 1)[0].lower() + "://"
        if scheme == "s3://":
            from castoff.destinations import s3

            options = s3.parse_s3_url(spec, dict(s3_defaults or {}))
            return s3.S3Destination(options)
        if scheme == "file://":
            return LocalDestination(spec[len("file://") :])
        raise errors.UsageError(
            f"unknown destination scheme {scheme!r} in {spec!r}",
            hint="use a folder path or s3://bucket/prefix/",
        )
    if not spec.strip():
        raise errors.UsageError("empty destination")
    return LocalDestination(os.path.expanduser(spec), name=spec)
