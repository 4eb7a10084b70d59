"""Names for keeping both files when a target exists with other content.

``photo.jpg`` becomes ``photo (2).jpg``, then ``photo (3).jpg``; the folder part never changes.
"""

from __future__ import annotations

import re

_NUMBER = re.compile(r" \((\d+)\)")


def alt_target(target: str, n: int) -> str:
    head, sep, name = target.rpartition("/")
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:  # no extension, or a dot-file such as ".profile"
        stem, ext, dot = name, "", ""
    return f"{head}{sep}{stem} ({n}){dot}{ext}"


def is_alt_of(alt: str, target: str) -> bool:
    """``alt`` is one of ``target``'s keep-both names (``photo (2).jpg`` of ``photo.jpg``)."""
    return any(alt_target(target, int(m.group(1))) == alt for m in _NUMBER.finditer(alt))
