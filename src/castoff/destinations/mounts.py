"""What a local destination's folder is on: the mount that holds it, as the mount table says.

Whether it is still the mount it was saved on (a share not mounted leaves an empty folder of the
system disk), which names it holds when its type does not say (asked of the filesystem itself),
and whether a read-back there reads the server or a cache on this computer (an rclone mount).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re

from castoff import errors

#: the mount table ``mount_of`` reads (``CASTOFF_MOUNT_TABLE``: another file in its format, for
#: tests that need a filesystem type the machine cannot mount)
MOUNT_TABLE = os.environ.get("CASTOFF_MOUNT_TABLE", "/proc/mounts")
#: the folders drives and shares are mounted in (each in a folder of its own, or, by udisks, in
#: one of the user's: ``/media/USER/SSD``, ``/run/media/USER/SSD``)
MOUNT_FOLDERS = ("/mnt", "/media", "/run/media", "/Volumes")
_USER_LEVEL = ("/media", "/run/media")
#: what an rclone mount's files are read from, by its ``--vfs-cache-mode``: ``writes`` and
#: ``full`` keep a file written there on this computer's disk and answer its read-back from there
RCLONE = "fuse.rclone"
RCLONE_CACHING = ("writes", "full")
#: where an rclone mount's read-back comes from the client's cache: said where castoff says how a
#: copy was verified, and once in the job's output with what to do
RCLONE_HINT = (
    "to read back from the server, mount it with --vfs-cache-mode off (or send to the bucket"
    " directly: castoff --to s3://…)"
)


def _unescape_mount(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def _existing(path: str) -> str:
    """``path``, or its nearest parent that exists."""
    probe = os.path.abspath(path)
    while not os.path.exists(probe) and os.path.dirname(probe) != probe:
        probe = os.path.dirname(probe)
    return probe


def mount_of(path: str, mounts: str | None = None) -> tuple[str, str] | None:
    """The mount point and type of the filesystem holding ``path`` (or its nearest existing
    parent), from the mount table; None where there is no such table (not Linux)."""
    try:
        with open(mounts or MOUNT_TABLE, encoding="utf-8", errors="surrogateescape") as fh:
            table = [line.split() for line in fh]
    except OSError:
        return None
    real = os.path.realpath(_existing(path))
    best: tuple[str, str] | None = None
    for fields in table:
        if len(fields) < 3:
            continue
        point = _unescape_mount(fields[1])
        inside = real == point or real.startswith(point.rstrip("/") + "/")
        if inside and (best is None or len(point) >= len(best[0])):
            best = (point, fields[2])
    return best


def _below(path: str, folder: str) -> bool:
    return path.startswith(folder.rstrip("/") + "/")


def check_mounted_as_saved(root: str, name: str, saved: tuple[str, str]) -> None:
    """DestinationGone when ``root`` is no longer on the filesystem it was on when it was saved
    (``saved``: its mount point and type then): a share not mounted leaves its mount point an
    empty folder of the disk beneath, which a job would fill with copies that only look delivered."""
    now = mount_of(root)
    if now is None or now == saved:
        return
    point, fs = saved
    if _below(point, now[0]):
        what = f"{point} is not mounted (it was {fs} when {name} was saved)"
    else:
        what = f"{root} is now on {now[1]} at {now[0]}, not on {fs} at {point} as when {name} was saved"
    raise errors.DestinationGone(
        what,
        hint=f"mount it and re-run; if {name} has moved for good, save it again: castoff dest add"
        f" {name.lstrip('@')} local {root} --replace",
    )


def _mount_folder(path: str) -> tuple[str, int] | None:
    """The folder drives are mounted in (``MOUNT_FOLDERS``) that ``path`` is in or is, and how
    many levels below it ``path`` is."""
    for folder in MOUNT_FOLDERS:
        if path == folder:
            return folder, 0
        if _below(path, folder):
            return folder, path[len(folder) + 1 :].count("/") + 1
    return None


def _nothing_mounted(path: str) -> bool:
    """``path`` (a folder that exists) is in a folder drives are mounted in, where no drive is
    mounted: the folder it is on is mounted above that one (the system disk)."""
    found = _mount_folder(path)
    if found is None:
        return False
    mount = mount_of(path)
    return mount is not None and (mount[0] != found[0] and _below(found[0], mount[0]))


def check_mount_point(root: str) -> str | None:
    """For a destination folder castoff knows nothing of the mount of (``--to PATH``, or saved
    before castoff recorded it): DestinationGone when making it would make a drive's mount point
    on the system disk (its nearest folder that exists is a folder drives are mounted in, or an
    empty folder in one, and no drive is mounted there). A warning to say (or None) when it is
    itself such an empty folder: a drive not mounted, or a folder made there on purpose."""
    real = os.path.realpath(_existing(root))
    found = _mount_folder(real)
    if found is None or not _nothing_mounted(real):
        return None
    folder, depth = found
    with contextlib.suppress(OSError):
        empty = not os.listdir(real)
        user_level = folder in _USER_LEVEL and depth == 1  # /media/USER: udisks' folder of mounts
        if os.path.lexists(root):
            if empty and depth <= 2:
                return (
                    f"{root} is an empty folder of the system disk, in {folder} where drives are"
                    " mounted: if a drive or share belongs there, it is not mounted and this job"
                    " fills the system disk; stop it (Ctrl-C), mount it and re-run"
                )
            return None
        if depth == 0 or user_level or (empty and depth <= 2):
            raise errors.DestinationGone(
                f"destination {root} does not exist, and {real} is "
                + ("where drives are mounted" if depth == 0 or user_level else "an empty folder")
                + " on the system disk: the drive or share it is on is not mounted",
                hint=f"mount it and re-run; if you mean a folder of the system disk, make it"
                f" (mkdir -p {root}) and re-run",
            )
    return None


#: what a create of a name with ":" may answer where the filesystem holds names but not that one
#: is anything but these (a full or read-only drive says nothing of names)
_NOT_ABOUT_NAMES = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)


def probe_names(root: str, prefix: str, suffix: str) -> tuple[bool, bool] | None:
    """Ask the filesystem at ``root`` which names it holds: (it ignores case, it refuses the
    names Windows filesystems refuse), or None where no file could be made to ask. A hidden
    file is made and looked for by its name with the case swapped, then one with a ":" in its
    name is made; both are removed, whatever happened."""
    import secrets

    token = f"{os.getpid()}-{secrets.token_hex(4)}"
    plain = os.path.join(root, f"{prefix}case-Ab-{token}{suffix}")
    colon = os.path.join(root, f"{prefix}name-a:b-{token}{suffix}")
    made: list[str] = []
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    try:
        try:
            os.close(os.open(plain, flags, 0o644))
        except OSError:
            return None  # what keeps castoff from writing there, the job's first file says
        made.append(plain)
        ignores_case = os.path.lexists(plain.replace("-Ab-", "-aB-"))
        try:
            os.close(os.open(colon, flags, 0o644))
            made.append(colon)
            refuses = False
        except OSError as exc:
            if exc.errno in _NOT_ABOUT_NAMES:
                return ignores_case, False
            refuses = True  # the same name without the ":" was made a moment ago
        return ignores_case, refuses
    finally:
        for path in made:
            with contextlib.suppress(OSError):
                os.unlink(path)


def _rclone_cache_mode(point: str) -> str | None:
    """The ``--vfs-cache-mode`` of the rclone process serving the mount at ``point`` ("off"
    where none is given), or None when no such process is found here (another user's, another
    container's)."""
    try:
        pids = [e for e in os.listdir("/proc") if e.isdigit()]
    except OSError:
        return None
    for pid in pids:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                argv = [os.fsdecode(a) for a in fh.read().split(b"\0") if a]
        except OSError:
            continue
        if not argv or "rclone" not in os.path.basename(argv[0]) or "mount" not in argv[1:]:
            continue
        cwd = "/"
        with contextlib.suppress(OSError):
            cwd = os.readlink(f"/proc/{pid}/cwd")  # (a mount point given relative to it)
        if not any(os.path.realpath(os.path.join(cwd, a)) == point for a in argv[2:]):
            continue
        for i, arg in enumerate(argv):
            if arg.startswith("--vfs-cache-mode="):
                return arg.partition("=")[2]
            if arg == "--vfs-cache-mode" and i + 1 < len(argv):
                return argv[i + 1]
        with contextlib.suppress(OSError), open(f"/proc/{pid}/environ", "rb") as fh:
            for entry in fh.read().split(b"\0"):
                if entry.startswith(b"RCLONE_VFS_CACHE_MODE="):
                    return os.fsdecode(entry.partition(b"=")[2])
        return "off"
    return None


def client_cache(root: str) -> str | None:
    """What a read-back at ``root`` may read instead of the server's copy, where that is a cache
    on this computer: an rclone mount caching writes (or one whose cache mode is not known here);
    None where the read-back reads the server (or its own cache: NFS, SMB and sshfs servers)."""
    mount = mount_of(root)
    if mount is None or mount[1] != RCLONE:
        return None
    mode = _rclone_cache_mode(mount[0])
    if mode in ("off", "minimal"):
        return None
    if mode is None:
        return "rclone's cache on this computer, maybe (its --vfs-cache-mode is not known here)"
    return f"rclone's cache on this computer (--vfs-cache-mode {mode})"
