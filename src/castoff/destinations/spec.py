"""Turn what a user typed after ``--to`` into a destination: a folder path or an ``s3://`` URL.

The one place that knows which schemes exist; each backend parses its own options.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from urllib.parse import unquote

from castoff import errors
from castoff.destinations.base import Destination
from castoff.destinations.local import LocalDestination

SCHEMES = ("s3://",)
#: URL options whose values a message never shows: a secret pasted into a URL stays out of it
SECRET_OPTION = re.compile(r"secret|key|token|passw", re.IGNORECASE)


#: the ``user:password@`` of a URL (``s3://KEY:SECRET@bucket/``, ``?endpoint=http://K:S@host``)
_USERINFO = re.compile(r"(://)[^/?#@]*@")


def shown(spec: str) -> str:
    """``spec`` as a message may show it: the value of each option whose name suggests a secret
    (``?secret_access_key=…``) is ``***``, and so is a URL's ``user:password@`` part."""
    spec = _USERINFO.sub(r"\1***@", spec)
    rest, question, query = spec.partition("?")
    if not question:
        return spec
    items = []
    for item in query.split("&"):
        name, equals, _ = item.partition("=")
        items.append(f"{name}=***" if equals and SECRET_OPTION.search(unquote(name)) else item)
    return rest + question + "&".join(items)


#: what ``--to`` takes, for a message about something else
FORMS = "a folder path, s3://bucket/prefix/?option=value, or @NAME (a saved destination)"
#: the scheme of a URL: at its very start (an "://" in an option's value is none)
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def shown_argv(argv: Sequence[str]) -> list[str]:
    """A command line as a report shows it: each URL (``s3://…?…``, or ``--to=s3://…?…``) as
    ``shown`` writes it, every other word as it is."""
    out = []
    for word in argv:
        head, equals, value = word.partition("=") if word.startswith("-") else ("", "", word)
        out.append(head + equals + shown(value) if _SCHEME.match(value) else word)
    return out


def open_destination(spec: str, *, s3_defaults: Mapping[str, object] | None = None) -> Destination:
    found = _SCHEME.match(spec)
    if found:
        scheme = found.group(1).lower() + "://"
        if scheme == "s3://":
            from castoff.destinations import s3

            options = s3.parse_s3_url(spec, dict(s3_defaults or {}))
            return s3.S3Destination(options)
        if scheme == "file://":
            return LocalDestination(spec[len("file://") :])
        raise errors.UsageError(
            f"unknown destination scheme {scheme!r} in {shown(spec)!r}", hint=f"a destination is {FORMS}"
        )
    if not spec.strip():
        raise errors.UsageError("empty destination")
    head = spec.split("/", 1)[0].lower()
    if head.startswith(("s3:", "file:")) and not os.path.exists(head):
        # "s3:bucket" or "s3:/bucket" made a local folder named "s3:bucket", silently (QA)
        if head.startswith("s3:"):
            hint = f"did you mean {shown('s3://' + spec[3:].lstrip('/'))!r}?"
        else:
            hint = f"write {FORMS}; ./{shown(spec)} for a folder of that name"
        raise errors.UsageError(f"{shown(spec)!r} looks like a URL without its '//'", hint=hint)
    if "://" in spec:  # "bucket/x?endpoint=http://…": a URL without its scheme, or mistyped
        raise errors.UsageError(f"{shown(spec)!r} is not a destination", hint=f"a destination is {FORMS}")
    return LocalDestination(os.path.expanduser(spec), name=spec)
