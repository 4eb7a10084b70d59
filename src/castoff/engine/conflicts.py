"""Names for keeping both files when a target exists with other content.

``photo.jpg`` becomes ``photo (2).jpg``, then ``photo (3).jpg``; the folder part never changes.
A name that the `` (2)`` would make longer than the destination holds keeps its extension and
loses the end of its stem instead, by whole characters: ``xxx…x (2).jpg`` in 255 bytes.
"""

from __future__ import annotations

import os
import re
import unicodedata

_NUMBER = re.compile(r" \((\d+)\)")

#: the longest name (one part of a path) a local destination is taken to hold, in UTF-8 bytes:
#: 255 on ext4, XFS, Btrfs, APFS; FAT, exFAT, NTFS and HFS+ hold 255 UTF-16 units, never fewer
NAME_MAX = 255
#: the longest path a local destination takes (``Capabilities.max_key_bytes``; Linux's PATH_MAX)
LOCAL_MAX_PATH = 4096


def name_max(folder: str) -> int:
    """The longest name, in UTF-8 bytes, that ``folder``'s filesystem holds: what it says
    (eCryptfs: 143), at most ``NAME_MAX`` (FAT and exFAT say 1530, bytes of 255 characters
    whatever they are, which a name of 255 such characters would not fit in)."""
    try:
        said = os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        return NAME_MAX
    return min(said, NAME_MAX) if said > 0 else NAME_MAX


def _size(text: str) -> int:
    return len(text.encode("utf-8", "surrogateescape"))


def name_room(target: str, *, max_name: int | None, max_path: int | None) -> int | None:
    """How many UTF-8 bytes the last part of ``target`` may take: ``max_name`` (a folder's
    name limit), and what ``max_path`` (a whole path's or key's limit) leaves after its
    folder part; None when neither limits it."""
    rooms = [max_name] if max_name else []
    if max_path:
        rooms.append(max_path - _size(target.rpartition("/")[0]) - 1)
    return min(rooms) if rooms else None


def alt_target(target: str, n: int, *, max_name: int | None = None) -> str:
    """``target``'s keep-both name number ``n``. ``max_name``: the most UTF-8 bytes its last
    part may take there; the stem is shortened (whole characters, never one of them split, nor
    a character from the accents that follow it) so that the name fits. A stem that cannot
    shrink enough (a huge extension) is kept whole: the destination then refuses the name."""
    head, sep, name = target.rpartition("/")
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:  # no extension, or a dot-file such as ".profile"
        stem, ext, dot = name, "", ""
    tail = f" ({n}){dot}{ext}"
    if max_name is not None and _size(stem) + _size(tail) > max_name:
        room = max_name - _size(tail)
        k = len(stem)
        while k and _size(stem[:k]) > room:
            k -= 1
        while 0 < k < len(stem) and unicodedata.combining(stem[k]):  # é as e, U+0301: no bare e
            k -= 1
        if k:
            stem = stem[:k]
    return f"{head}{sep}{stem}{tail}"


def is_alt_of(alt: str, target: str, *, max_name: int | None = None) -> bool:
    """``alt`` is one of ``target``'s keep-both names (``photo (2).jpg`` of ``photo.jpg``), or
    one shortened to fit ``max_name`` (``alt_target``'s, where it was made)."""
    for m in _NUMBER.finditer(alt.rpartition("/")[2]):
        n = int(m.group(1))
        if alt_target(target, n) == alt or (
            max_name is not None and alt_target(target, n, max_name=max_name) == alt
        ):
            return True
    return False
