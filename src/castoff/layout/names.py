"""Which paths a layout may produce, and which names a destination's filesystem can hold.

A layout path is relative, with no empty, ``.`` or ``..`` component. Names keep their exact
characters; on filesystems with Windows rules (FAT, exFAT, NTFS, SMB) a name those cannot hold
fails that file plainly, or, with ``--safe-names``, is changed by the documented table below, and
folder names that differ only by case are one folder there (``fold_case``).
"""

from __future__ import annotations

import re

from castoff import errors
from castoff.destinations.base import check_rel_path
from castoff.destinations.mounts import mount_of

#: filesystem types (as /proc/mounts names them) that follow Windows naming rules; so does a FUSE
#: one named for FAT, exFAT or NTFS (``fuse.fusefat``: ``windows_rules``). (``fuseblk`` is any
#: FUSE filesystem on a block device: exfat-fuse's, ntfs-3g's; ``fuse.smbnetfs`` an SMB share.)
WINDOWS_FILESYSTEMS = frozenset(
    {"vfat", "msdos", "fat", "exfat", "ntfs", "ntfs3", "fuseblk", "cifs", "smb3", "smbfs", "fuse.smbnetfs"}
)
#: GNOME's gvfs serves every share it mounts through one FUSE filesystem; an SMB share is a
#: folder of it named ``smb-share:server=…,share=…`` (``/run/user/1000/gvfs/smb-share:…``)
GVFS = "fuse.gvfsd-fuse"
GVFS_SMB = "smb-share:"
#: filesystem types whose names are POSIX ones for sure: case kept and told apart, any character
#: but "/" (``ext4``'s per-folder casefold is set by hand, and rare). Every other type that is not
#: a Windows one (a FUSE filesystem castoff does not know, NFS and sshfs, whose server decides) is
#: asked at preflight (``LocalDestination.learn_name_rules``)
POSIX_FILESYSTEMS = frozenset(
    {"ext2", "ext3", "ext4", "xfs", "btrfs", "tmpfs", "ramfs", "f2fs", "bcachefs", "overlay"}
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


def windows_rules(fs: str | None, path: str | None = None) -> bool:
    """Whether a filesystem of type ``fs`` follows Windows naming rules (``path``: a folder on it,
    for gvfs, where the share's folder says it is SMB)."""
    if fs is None:
        return False
    if fs == GVFS and path is not None:
        return any(part.startswith(GVFS_SMB) for part in path.split("/"))
    return fs in WINDOWS_FILESYSTEMS or (fs.startswith("fuse.") and ("fat" in fs or "ntfs" in fs))


def rules_known(fs: str | None, path: str | None = None) -> bool:
    """Whether the type ``fs`` alone says which names a filesystem holds (Windows or POSIX
    rules); where not, its destination asks the filesystem itself."""
    return fs in POSIX_FILESYSTEMS or windows_rules(fs, path)


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


def filesystem_type(path: str, mounts: str | None = None) -> str | None:
    """The type of the filesystem holding ``path`` (or its nearest existing parent), from the
    mount table; None where there is no such table (not Linux)."""
    found = mount_of(path, mounts)
    return found[1] if found else None
