"""Which paths a layout may produce, and which names a destination's filesystem can hold.

A layout path is relative, with no empty, ``.`` or ``..`` component. Names keep their exact
characters; on filesystems with Windows rules (FAT, exFAT, NTFS, SMB) a name those cannot hold
fails that file plainly, or, with ``--safe-names``, is changed by the documented table below, and
folder names that differ only by case are one folder there (``fold_case``).
"""

from __future__ import annotations

import os
import re

from castoff import errors
from castoff.destinations.local import check_rel_path

#: filesystem types (as /proc/mounts names them) that follow Windows naming rules; so does a FUSE
#: one named for FAT, exFAT or NTFS (``fuse.fusefat``: ``windows_rules``). (``fuseblk`` is any
#: FUSE filesystem on a block device: exfat-fuse's, ntfs-3g's.)
WINDOWS_FILESYSTEMS = frozenset(
    {"vfat", "msdos", "fat", "exfat", "ntfs", "ntfs3", "fuseblk", "cifs", "smb3", "smbfs"}
)
#: filesystem types of the FAT family (FAT12, FAT16, FAT32), and the largest file each holds
FAT_FILESYSTEMS = frozenset({"vfat", "msdos", "fat", "umsdos"})
FAT_MAX_FILE = 4 * 1024**3 - 1
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


def windows_rules(fs: str | None) -> bool:
    """Whether a filesystem of type ``fs`` follows Windows naming rules."""
    if fs is None:
        return False
    return fs in WINDOWS_FILESYSTEMS or (fs.startswith("fuse.") and ("fat" in fs or "ntfs" in fs))


def max_file_size(fs: str | None) -> int | None:
    """The largest file a filesystem of type ``fs`` holds, where it is smaller than any card's
    clip (FAT: 4 GiB - 1 byte, through the kernel or through FUSE: ``fuse.fusefat``); None for
    every other (exFAT, NTFS, ext4... hold far more)."""
    if fs is None:
        return None
    fuse_fat = fs.startswith("fuse.") and "fat" in fs and "exfat" not in fs
    return FAT_MAX_FILE if fs in FAT_FILESYSTEMS or fuse_fat else None


def fold_case(name: str) -> str:
    """``name`` as a filesystem that ignores case compares it: each character upper-cased on its
    own, as exFAT's and NTFS's upcase tables do (``ß`` stays ``ß``, never ``SS``)."""
    upper = name.upper()
    if len(upper) == len(name):
        return upper
    return "".join(u if len(u := c.upper()) == 1 else c for c in name)


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
