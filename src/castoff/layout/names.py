"""Which paths a layout may produce, and which names a destination's filesystem can hold.

A layout path is relative, with no empty, ``.`` or ``..`` component. Names keep their exact
characters; on filesystems with Windows rules (FAT, exFAT, NTFS, SMB) a name those cannot hold
fails that file plainly, or, with ``--safe-names``, is changed by the documented table below.
"""

from __future__ import annotations

import os
import re

from castoff import errors
from castoff.destinations.local import check_rel_path

#: filesystem types (as /proc/mounts names them) that follow Windows naming rules
WINDOWS_FILESYSTEMS = frozenset(
    {"vfat", "msdos", "fat", "exfat", "ntfs", "ntfs3", "fuseblk", "cifs", "smb3", "smbfs"}
)
#: characters Windows filesystems refuse, and what ``--safe-names`` puts instead (their
#: full-width look-alikes, as rclone's encoder does, so names stay readable and distinct)
SUBSTITUTES = {
    "<": "\uff1c",
    ">": "\uff1e",
    ":": "\uff1a",
    '"': "\uff02",
    "\\": "\uff3c",
    "|": "\uff5c",
    "?": "\uff1f",
    "*": "\uff0a",
}
TRAILING_SUBSTITUTES = {".": "\uff0e", " ": "\u2420"}  # full-width dot, and the symbol for space
RESERVED_NAMES = frozenset(
    {"CON", "PRN", "AUX", "NUL"} | {f"COM{i}" for i in range(1, 10)} | {f"LPT{i}" for i in range(1, 10)}
)
_CONTROL = re.compile(r"[\x00-\x1f]")


def check_layout_path(rel: str) -> None:
    """Raise KeyRejected unless ``rel`` is relative and stays inside the destination."""
    try:
        check_rel_path(rel)
    except errors.KeyRejected as exc:
        raise errors.KeyRejected(f"the layout made {rel!r}: {exc}") from None


def windows_problems(name: str) -> list[str]:
    """Why a FAT/exFAT/NTFS/SMB filesystem cannot hold ``name`` (empty when it can)."""
    problems = []
    bad = sorted({c for c in name if c in SUBSTITUTES})
    if bad:
        problems.append(f"characters {' '.join(bad)}")
    if _CONTROL.search(name):
        problems.append("control characters")
    if name.endswith((".", " ")):
        problems.append("a trailing dot or space")
    if name.split(".", 1)[0].rstrip(" ").upper() in RESERVED_NAMES:
        problems.append(f"the reserved name {name.split('.', 1)[0]}")
    return problems


def windows_safe(name: str) -> str:
    """``name`` as ``--safe-names`` writes it on a Windows-rules filesystem."""
    out = "".join(SUBSTITUTES.get(c, c) for c in name)
    out = _CONTROL.sub(lambda m: chr(0x2400 + ord(m.group())), out)  # ␀…␟
    stripped = out.rstrip(". ")
    out = stripped + "".join(TRAILING_SUBSTITUTES[c] for c in out[len(stripped) :])
    stem, dot, ext = out.partition(".")
    if stem.rstrip(" ").upper() in RESERVED_NAMES:
        out = f"{stem}_{dot}{ext}"
    return out


def _unescape_mount(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def filesystem_type(path: str, mounts: str = "/proc/mounts") -> str | None:
    """The type of the filesystem holding ``path`` (or its nearest existing parent), from the
    mount table; None where there is no such table (not Linux)."""
    try:
        with open(mounts, encoding="utf-8", errors="surrogateescape") as fh:
            table = [line.split() for line in fh]
    except OSError:
        return None
    probe = os.path.abspath(path)
    while not os.path.exists(probe) and os.path.dirname(probe) != probe:
        probe = os.path.dirname(probe)
    real = os.path.realpath(probe)
    best: tuple[int, str] | None = None
    for fields in table:
        if len(fields) < 3:
            continue
        point = _unescape_mount(fields[1])
        inside = real == point or real.startswith(point.rstrip("/") + "/")
        if inside and (best is None or len(point) >= best[0]):
            best = (len(point), fields[2])
    return best[1] if best else None
