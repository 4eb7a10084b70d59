"""Names for keeping both files when a target exists with other content.

``photo.jpg`` becomes ``photo (2).jpg``, then ``photo (3).jpg``; the folder part never changes.
"""

from __future__ import annotations


def alt_target(target: str, n: int) -> str:
    head, sep, name = target.rpartition("/")
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:  # no extension, or a dot-file such as ".profile"
        stem, ext, dot = name, "", ""
    return f"{head}{sep}{stem} ({n}){dot}{ext}"
