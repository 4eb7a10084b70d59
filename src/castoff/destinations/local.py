"""A local folder as a destination: a drive, a NAS mount, anything with a POSIX path.

Bytes go to a file with no name yet (Linux ``O_TMPFILE``) in the target's folder, or where the
filesystem cannot make one (NFS, SMB, most FUSE mounts), to a hidden partial file beside the
target. Commit fsyncs, re-reads it past the page cache, compares BLAKE3, sets the times, gives it
its name without clobbering (a hard link of the unnamed file, or a rename of the partial) and
fsyncs the folder (or leaves that to the caller, who syncs each folder once for many files and
records none of them before: ``defer_folder_syncs``). An unnamed file that never got its name
vanishes with the process: a crash or a pulled drive leaves nothing behind, and nothing for the
catalog to clean up.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import hashlib
import itertools
import mmap
import os
import stat
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from castoff import errors
from castoff.destinations import mounts
from castoff.destinations.base import (
    Capabilities,
    Landed,
    ObjectMeta,
    ObjectStat,
    PartReceipt,
    ResumeToken,
    TargetExists,
    check_rel_path,
    still_answering,
)
from castoff.engine.conflicts import LOCAL_MAX_PATH, NAME_MAX, name_max
from castoff.hashing import new_blake3
from castoff.units import format_bytes

READ_BACK_CHUNK = 8 * 1024 * 1024
PARTIAL_PREFIX = ".castoff."
PARTIAL_SUFFIX = ".partial"
#: files this small are not preallocated: the write that follows finds a full disk as early
PREALLOCATE_MIN = 1024 * 1024
#: an fsync that takes longer than this, on average, is a device's (a disk, a USB drive, a NAS),
#: not the page cache's: the destination then says ``slow_sync``, and a small file's fsync waits
#: for its commit, which the engine runs on several threads at once (``Lane``), so the filesystem
#: joins their fsyncs into one journal commit instead of the reader waiting for each in turn
SLOW_SYNC = 0.001
#: the largest file whose fsync a slow-syncing destination leaves to its commit; a bigger one is
#: synced by its writer as before, so a backlog of commits never holds gigabytes of dirty pages
DEFER_SYNC_MAX = 1024 * 1024
#: the coarsest step a filesystem keeps a time in (FAT's 2 s), and how far from now a file's time
#: must be to tell one the filesystem kept from one it set to the time of the rename
_TIMES_STEP_NS = 2 * 10**9
_TIMES_TELL_NS = 60 * 10**9
#: O_TMPFILE where the system has it and the link that names such a file works
#: (``CASTOFF_LOCAL_TMPFILE=0`` forces named partial files, as on filesystems without it)
_O_TMPFILE: int | None = (
    getattr(os, "O_TMPFILE", None)
    if os.path.isdir("/proc/self/fd") and os.environ.get("CASTOFF_LOCAL_TMPFILE", "1") != "0"
    else None
)
#: what open(O_TMPFILE) answers where the filesystem (or the kernel) cannot make one
_NO_TMPFILE = (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL)
#: filesystem types (as /proc/mounts names them, up to a version digit: nfs4, smb3) reached over a
#: network; every FUSE one (``fuse.sshfs``, ``fuse.rclone``, ``fuse.smbnetfs``) counts too but
#: those of a local disk: ``fuseblk`` (exfat-fuse, ntfs-3g on a block device) and FUSE FAT/NTFS
NETWORK_FILESYSTEMS = frozenset(
    {"nfs", "cifs", "smb", "smbfs", "9p", "ceph", "glusterfs", "afs", "ncpfs", "lustre", "beegfs", "gpfs"}
)


def network_filesystem(fs_type: str | None) -> bool:
    """A filesystem where a call may take seconds, or never return (a share that stopped
    answering): NFS, SMB, sshfs and the other FUSE ones but a local disk's."""
    if fs_type is None:
        return False
    if fs_type == "fuse" or fs_type.startswith("fuse."):
        return not ("fat" in fs_type or "ntfs" in fs_type)
    return fs_type.rstrip("0123456789") in NETWORK_FILESYSTEMS


_RENAME_NOREPLACE = 1
_AT_FDCWD = -100


def _load_libc(name: str, argtypes: list[Any]) -> object | None:
    try:
        # the C library is loaded already: no find_library, which runs ldconfig to find it
        fn = ctypes.CDLL(None, use_errno=True)[name]
    except (OSError, AttributeError):
        return None
    fn.argtypes = argtypes
    fn.restype = ctypes.c_int
    return fn


_renameat2 = _load_libc(
    "renameat2", [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
)
#: fallocate(2) itself (mode 0): where the filesystem cannot preallocate it says so, where glibc's
#: posix_fallocate writes a byte in every 4 KiB block instead (on a FUSE exFAT drive, a round trip
#: each: 49,000 for 200 MB, before a byte of the file)
_fallocate = _load_libc("fallocate64", [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64])
#: what fallocate answers where the filesystem (FUSE exFAT, FAT) or the file cannot preallocate
_NO_FALLOCATE = (errno.EOPNOTSUPP, errno.ENOSYS, errno.ENODEV)


class NamingLock:
    """Held around each check-then-rename at one destination, where its filesystem has neither
    RENAME_NOREPLACE nor hard links (FUSE exFAT and FAT, some SMB mounts): castoff's threads name
    files there one at a time (a lock), and so do castoff processes naming files there at once
    (two cards to one drive: an flock of ``folder``, the destination's root, where the filesystem
    takes one; FUSE's are the kernel's own). Else two could both find one name free, and the
    second rename replace the first one's file."""

    def __init__(self, folder: str | None = None) -> None:
        self._lock = threading.Lock()
        self._folder = folder
        self._fd: int | None = None  # the locked folder, while held (only by its holder)

    def __enter__(self) -> None:
        self._lock.acquire()
        if self._folder is not None:
            try:
                self._fd = self._locked(self._folder)
            except BaseException:
                self._lock.release()
                raise

    @staticmethod
    def _locked(folder: str) -> int | None:
        """``folder`` open and flocked; None where it cannot be (the rename then says what is
        wrong; a filesystem that takes no lock leaves it to this process's threads)."""
        try:
            fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        return fd

    def __exit__(self, *exc: object) -> None:
        fd, self._fd = self._fd, None
        try:
            if fd is not None:
                os.close(fd)  # and its flock with it
        finally:
            self._lock.release()


#: for a rename at no destination: this process's threads, one at a time
_NAMING = NamingLock()


def rename_no_replace(src: str, dst: str, *, lock: NamingLock = _NAMING) -> None:
    """Rename ``src`` to ``dst`` unless ``dst`` exists (FileExistsError then): atomically where the
    filesystem can; else under ``lock``, which every naming at that destination holds. On a
    drive that ignores case, a name that differs only by case exists (the drive finds it)."""
    if _renameat2 is not None:
        rc = _renameat2(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), _RENAME_NOREPLACE)  # type: ignore[operator]
        if rc == 0:
            return
        err = ctypes.get_errno()
        if err == errno.EEXIST:
            raise FileExistsError(errno.EEXIST, "target exists", dst)
        if err not in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
            raise OSError(err, os.strerror(err), dst)
    # Filesystems without RENAME_NOREPLACE (some FUSE/SMB mounts): a hard link is just as atomic
    # where supported; the last resort checks then renames, under the lock: nothing else of
    # castoff's names a file there meanwhile (another program could, in that instant).
    try:
        os.link(src, dst)
    except FileExistsError:
        raise
    except OSError:
        with lock:
            if os.path.lexists(dst):
                raise FileExistsError(errno.EEXIST, "target exists", dst) from None
            os.rename(src, dst)
        return
    os.unlink(src)


def fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        fsync_dir_fd(fd)
    finally:
        os.close(fd)


def fsync_dir_fd(fd: int) -> None:
    try:
        os.fsync(fd)
    except OSError as exc:  # some filesystems refuse fsync on a directory
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise


def confirm_synced(fd: int) -> None:
    """After a folder's fsync, fsync a file open on the same filesystem (``fd``): its answer is
    what tells whether the folder's was kept. A filesystem shut down on a failing drive (xfs) or
    turned read-only after an error answers a folder's fsync with 0, writing nothing, and a
    file's with EIO or EROFS: the names just given are then not durable."""
    try:
        os.fsync(fd)
    except OSError as exc:  # a filesystem that cannot fsync this file (FUSE without it) tells nothing
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.ENOSYS):
            raise


def confirm_synced_path(path: str) -> None:
    """``confirm_synced`` with the file at ``path`` (one just named in the folder synced): an
    error opening it (EIO on a filesystem shut down) says as much as its fsync would."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        confirm_synced(fd)
    finally:
        os.close(fd)


def _file_in_the_way(folder: str) -> str | None:
    """What keeps ``folder`` from being made: the deepest path at or above it that exists, when it
    is not a folder (above that one, every level is)."""
    head = folder
    while not os.path.lexists(head) and os.path.dirname(head) != head:
        head = os.path.dirname(head)
    return None if os.path.isdir(head) else head


def make_folders(folder: str) -> list[str]:
    """``os.makedirs(folder, exist_ok=True)``, and the name of every folder it had to create made
    durable: the parent of each is fsynced once all exist (a file named in a new folder is only as
    durable as the folders above it; on btrfs, say, a directory's fsync does not carry its
    parent's). A folder another thread created meanwhile is synced too: its maker may not have
    got there yet. The folders it created, from the top down."""
    missing: list[str] = []
    head = folder
    while not os.path.isdir(head):
        missing.append(head)
        parent = os.path.dirname(head)
        if parent == head:
            break
        head = parent
    if not missing:
        return []
    made = []
    for path in reversed(missing):
        try:
            os.mkdir(path)
            made.append(path)
        except FileExistsError:
            if not os.path.isdir(path):
                raise
    for parent in dict.fromkeys(os.path.dirname(p) for p in missing):
        fsync_dir_path(parent)
    return made


def fsync_dir_path(folder: str) -> None:
    """fsync ``folder`` (``fsync_dir``, where failing to open it is an error too)."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fsync_dir_fd(fd)
    finally:
        os.close(fd)


def link_unnamed(fd: int, final: str, *, sync: bool = True) -> None:
    """Give the unnamed (O_TMPFILE) file open as ``fd`` the name ``final``, and fsync its folder
    (unless not ``sync``: the caller fsyncs the folder; either way, the caller confirms that
    fsync: ``confirm_synced``); FileExistsError if ``final`` exists. linkat must follow the /proc
    link (os.link without a dir_fd calls link(), which does not), so the folder is opened for the
    call."""
    folder, sep, name = final.rpartition("/")  # os.path.split, for a path with no "//"
    dfd = os.open(folder or sep or ".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.link(f"/proc/self/fd/{fd}", name, dst_dir_fd=dfd, follow_symlinks=True)
        if sync:
            fsync_dir_fd(dfd)
    finally:
        os.close(dfd)


class Confirmations:
    """One file fsync confirms every folder fsync on its filesystem that returned before it began
    (``confirm_synced``: a filesystem shut down stays so until it is mounted again). The threads
    committing files at one destination at once (a slow drive's sync committers) share them, as
    the filesystem shares their journal commits, instead of each making one more fsync."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._synced = 0  # folder fsyncs that returned (each one numbered by the count before it)
        self._confirmed = 0  # those numbered below this one are confirmed
        self._busy = False  # a confirming fsync is under way

    def confirm(self, fsync: Callable[[], None]) -> None:
        """A folder fsync just returned: return once a file fsync begun after it has succeeded,
        this thread's own (``fsync``) or one another thread began meanwhile; raise what this
        thread's own raised. (Another's failure is not taken for this one's: it tries its own.)"""
        with self._cond:
            mine = self._synced
            self._synced += 1
            while self._busy:
                self._cond.wait()
            if self._confirmed > mine:
                return
            self._busy = True
            began = self._synced
        ok = False
        try:
            fsync()
            ok = True
        finally:
            with self._cond:
                if ok:
                    self._confirmed = max(self._confirmed, began)
                self._busy = False
                self._cond.notify_all()


def too_big_hint(*, fat: bool) -> str:
    """What to do about a file too big for a destination's filesystem (``fat``: a FAT one)."""
    if fat:
        return "FAT32 holds files of at most 4 GiB - 1 byte: copy it to an exFAT, NTFS or other drive"
    return (
        "the filesystem (or a file size limit: ulimit -f) takes no file this big: copy it to another"
        " drive (FAT32 holds at most 4 GiB - 1 byte; exFAT, NTFS, ext4 and APFS far more)"
    )


#: what to do about a drive that reported an I/O error (EIO: a failing drive, a filesystem shut
#: down after an error, a drive unplugged without unmounting it)
DRIVE_FAILED_HINT = "the drive reported an I/O error: check it (fsck) and remount it, then re-run"
#: ... and about one that went read-only mid-job (EROFS: a filesystem does so after an error; one
#: mounted read-only from the start is said so by preflight)
WENT_READ_ONLY_HINT = (
    "the drive went read-only, as a filesystem does after an error: check it (fsck) and remount it"
    " read-write, then re-run"
)
#: ... and about one that is really gone (its mount point gone, or another folder or drive there)
GONE_HINT = "the drive or mount may have been removed; reconnect it and re-run"
#: ... and about a full one
FULL_HINT = "free space on the destination, then re-run"
#: btrfs runs out of room for its metadata (many small files) while df still shows free space
BTRFS_FULL_HINT = (
    f"{FULL_HINT} (btrfs can run out of room for its metadata while df still shows free space:"
    " 'btrfs filesystem usage' shows it)"
)


#: what an errno is at a local destination, and what to do about it (EFBIG: ``translate_os_error``)
_BY_ERRNO: dict[int, tuple[type[errors.CastoffError], str | None]] = {
    errno.ENOSPC: (errors.DestinationFull, FULL_HINT),
    errno.EDQUOT: (errors.DestinationFull, FULL_HINT),
    errno.EROFS: (errors.DestinationReadOnly, WENT_READ_ONLY_HINT),
    errno.EACCES: (errors.DestinationReadOnly, "castoff may not write here"),
    errno.EPERM: (errors.DestinationReadOnly, "castoff may not write here"),
    errno.EIO: (errors.DriveFailed, DRIVE_FAILED_HINT),
    **dict.fromkeys(
        (errno.ENOENT, errno.ENODEV, errno.ENXIO, errno.ESTALE, errno.ENOTCONN),
        (errors.DestinationGone, GONE_HINT),
    ),
    **dict.fromkeys(
        (errno.ENAMETOOLONG, errno.EILSEQ, errno.EINVAL),
        (errors.KeyRejected, "the destination's filesystem cannot hold this name"),
    ),
}


def translate_os_error(exc: OSError, what: str, *, fat: bool = False) -> errors.CastoffError:
    """The one place where OS errors of a local destination become castoff errors (``fat``: the
    destination is a FAT drive, which says why a file is too big). ``LocalDestination.translate``
    adds what only the destination knows (its drive gone, its filesystem)."""
    detail = f"{what}: {exc.strerror or exc}"
    if exc.errno == errno.EFBIG:  # that file's alone: the same command meets it again
        return errors.FileTooBig(detail, hint=too_big_hint(fat=fat))
    kind, hint = _BY_ERRNO.get(exc.errno or 0, (errors.DestinationError, None))
    return kind(detail, hint=hint)


def full_share_error(exc: OSError, what: str, folder: str, needs: int) -> errors.DestinationFull | None:
    """EIO at a network or FUSE share with less room left than the file needs: that share is
    full (SFTP has no "disk full", so sshfs turns the server's ENOSPC into EIO; castoff would
    say the share was removed). None for any other error, or where there is room."""
    if exc.errno != errno.EIO:
        return None
    try:
        st = os.statvfs(folder)
    except OSError:
        return None
    free = st.f_bavail * st.f_frsize
    if free >= needs:
        return None
    return errors.DestinationFull(
        f"{what}: {exc.strerror or exc}: the share is full ({format_bytes(free)} free,"
        f" {format_bytes(needs)} more needed)",
        hint="free space on the destination, then re-run",
    )


def not_a_file(mode: int) -> str | None:
    """What an entry of this ``st_mode`` is when it is no regular file ("a symlink"), else None."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISLNK(mode):
        return "a symlink"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "no file"


class NotAFile(OSError):
    """What is at a path is no regular file; ``what`` says what it is ("a symlink")."""

    def __init__(self, path: str, what: str) -> None:
        super().__init__(f"{path} is {what}, not a file")
        self.what = what


def open_regular(path: str) -> BinaryIO:
    """``path`` open for reading when it is a regular file; NotAFile when it is anything else. A
    symlink there is never followed, and a FIFO never waited on (its open would wait for a writer
    for ever)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise NotAFile(path, "a symlink") from exc
        raise
    try:
        what = not_a_file(os.fstat(fd).st_mode)
        if what is None:
            os.set_blocking(fd, True)
            return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    os.close(fd)
    raise NotAFile(path, what)


#: what to do about a folder that cannot be looked at (``unreadable_folder``)
UNREADABLE_HINT = "is the share or drive mounted, and does it answer? reconnect it, then re-run"


def unreadable_folder(path: str) -> str | None:
    """Why ``path`` cannot be looked at ("cannot read /mnt/nas: Transport endpoint is not
    connected": a share whose connection died; EIO, ESTALE, no permission); None where it can,
    or where nothing is there (its callers say that their own way)."""
    try:
        os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror or exc}"
    return None


def folder_identity(path: str) -> tuple[int, int, tuple[str, ...]] | None:
    """Which folder ``path`` is, whatever path names it (a symlink, a bind mount): its (st_dev,
    st_ino), or where it does not exist yet, its nearest existing ancestor's and the names still
    to be made below that. None when it cannot be looked at (preflight says why)."""
    head, below = os.path.abspath(path), []
    while True:
        try:
            st = os.stat(head)
        except (FileNotFoundError, NotADirectoryError):
            parent = os.path.dirname(head)
            if parent == head:
                return None
            below.append(os.path.basename(head))
            head = parent
            continue
        except OSError:
            return None
        return st.st_dev, st.st_ino, tuple(reversed(below))


#: numbers that keep two uploads' partial files apart in this process
_partial_numbers = itertools.count(1)


def partial_path_for(target: str) -> str:
    """A hidden name beside ``target`` for its bytes until they are verified, this upload's own:
    two files may go to one name (two cards' IMG_0001.JPG, kept both), or to two names that a
    drive ignoring case takes for one (``100CANON/`` and ``100canon/``), and neither may write
    in the other's partial file."""
    parent, name = os.path.split(target)
    digest = hashlib.sha256(os.fsencode(name)).hexdigest()[:16]
    unique = f"{os.getpid()}-{next(_partial_numbers)}"
    return os.path.join(parent, f"{PARTIAL_PREFIX}{digest}.{unique}{PARTIAL_SUFFIX}")


def set_xattrs(path: str | int, xattrs: Mapping[str, bytes]) -> str | None:
    """Set extended attributes on ``path`` (or an open file); what could not be kept, said for
    the report."""
    for name, value in xattrs.items():
        try:
            if isinstance(path, int):
                os.setxattr(path, name, value)
            else:
                os.setxattr(path, name, value, follow_symlinks=False)
        except OSError as exc:
            return f"extended attributes not kept here ({name}: {exc.strerror})"
    return None


_per_thread = threading.local()
#: the file-type bits of ``st_mode`` (``stat.S_IFMT`` as a mask, without a call per file)
_S_IFMT = 0o170000


class _Deferring(threading.local):
    """Whether the current thread defers its folder syncs (``defer_folder_syncs``)."""

    on = False


def _read_back_buffer() -> memoryview:
    """This thread's read-back buffer, made once: a committer verifies file after file, and a
    fresh buffer for each would cost its pages again every time."""
    try:
        view: memoryview = _per_thread.read_back
    except AttributeError:
        buf = mmap.mmap(-1, READ_BACK_CHUNK, flags=mmap.MAP_PRIVATE)
        view = _per_thread.read_back = memoryview(buf)
    return view


class LocalUpload:
    """One file being written: an unnamed file in the target's folder, or a hidden partial file."""

    def __init__(self, dest: LocalDestination, target: str, meta: ObjectMeta) -> None:
        self._dest = dest
        self._target = target
        self._meta = meta
        self._written: dict[int, int] = {}  # part index -> bytes (a retried part counts once)
        self._bytes = 0  # the sum of ``_written``
        #: the hidden partial file; None while the bytes go to an unnamed file (``O_TMPFILE``)
        self.partial_path: str | None = None
        #: ``abort`` could not remove the partial file (the share dropped, a folder turned
        #: read-only): it is still there, so its catalog row stays for the next run to remove it
        self.left_behind = False
        self._sealed = False
        head, sep, _ = target.rpartition("/")
        #: os.path.dirname, for a path with no "//" (target_for makes none)
        self._parent = parent = head or sep
        if dest.max_file_size is not None and meta.size > dest.max_file_size:  # before a byte
            raise errors.FileTooBig(
                f"{target} is {meta.size:,} bytes: {dest.root} is a FAT drive ({dest.fs_type}),"
                f" which holds files of at most {dest.max_file_size:,} bytes",
                hint=too_big_hint(fat=True),
            )
        if not dest._still_made(parent):  # the usual answer, without make_folder's call
            dest.make_folder(parent)
        try:
            try:
                self._fd: int | None = self._create(parent)
            except FileNotFoundError:  # the folder went away since this job made it
                dest.forget_folder(parent)
                dest.make_folder(parent)
                self._fd = self._create(parent)
        except OSError as exc:
            raise dest.os_error(exc, f"cannot create a file in {parent}", parent) from exc
        if meta.size >= PREALLOCATE_MIN and dest.preallocates:
            try:
                self._preallocate(meta.size)
            except OSError as exc:
                if exc.errno == errno.ENOSPC:
                    self.abort()
                    raise dest.translate(exc, f"no room for {target}") from exc
                if exc.errno == errno.EFBIG:  # too big for this filesystem: that file fails at once
                    self.abort()
                    raise dest.translate(exc, f"cannot write {target}") from exc
                if exc.errno in _NO_FALLOCATE:
                    dest.preallocates = False  # this filesystem cannot: not asked again
                # EINVAL, EINTR...: not preallocated; the writes find a full drive as early

    def _preallocate(self, size: int) -> None:
        """Reserve ``size`` bytes for the file: fallocate(2), never glibc's emulation of it
        (``_fallocate``); os.posix_fallocate where there is no such call (its C library's own,
        which emulates nothing outside glibc)."""
        assert self._fd is not None
        if _fallocate is None:
            os.posix_fallocate(self._fd, 0, size)
            return
        if _fallocate(self._fd, 0, 0, size) != 0:  # type: ignore[operator]
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))

    def _create(self, parent: str) -> int:
        if _O_TMPFILE is not None and self._dest.unnamed_files:
            try:
                return os.open(parent, _O_TMPFILE | os.O_RDWR | os.O_CLOEXEC, 0o644)
            except OSError as exc:
                if exc.errno not in _NO_TMPFILE:
                    raise
                self._dest.unnamed_files = False  # this filesystem cannot: partial files from now on
        self.partial_path = partial_path_for(self._target)
        self._dest.note_partial(self.partial_path)
        return os.open(self.partial_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)

    @property
    def token(self) -> ResumeToken:
        return {"partial": self.partial_path} if self.partial_path is not None else {}

    @property
    def target(self) -> str:
        return self._target

    @property
    def data_path(self) -> str:
        """A path that opens the bytes written so far (for fault injection in tests)."""
        if self.partial_path is not None:
            return self.partial_path
        if self._fd is None:
            raise errors.DestinationError(f"{self._target}: already closed")
        return f"/proc/self/fd/{self._fd}"

    def put_part(self, index: int, offset: int, data: memoryview, md5: bytes | None) -> PartReceipt:
        fd = self._fd
        if fd is None or self._sealed:
            raise errors.DestinationError(f"{self._target}: write after close")
        size = data.nbytes
        done = 0
        try:
            while done < size:
                done += os.pwrite(fd, data[done:], offset + done)
            written = self._written
            self._bytes += size - written.get(index, 0)
            written[index] = size
            if self._bytes >= self._meta.size and not (
                self._dest.slow_sync and self._meta.size <= DEFER_SYNC_MAX
            ):
                self._seal()
        except OSError as exc:
            raise self._write_error(
                exc, f"cannot write {self._target}", self._meta.size - self._bytes
            ) from exc
        return PartReceipt(index=index, offset=offset, size=size)

    def _write_error(self, exc: OSError, what: str, needs: int) -> errors.CastoffError:
        """``LocalDestination.translate``, but at a share, an EIO where less than ``needs`` bytes
        are free says that it is full (``full_share_error``)."""
        full = full_share_error(exc, what, self._parent, needs) if self._dest.on_network else None
        return full or self._dest.translate(exc, what)

    def _seal(self) -> None:
        """Every byte is written: make it durable. A partial file lets its descriptor go, so a
        file waiting for its commit holds none (an unnamed file has only its descriptor)."""
        fd = self._fd
        if fd is None or self._sealed:
            return
        self._sealed = True
        try:
            if self._meta.size >= PREALLOCATE_MIN:
                os.ftruncate(fd, self._meta.size)  # undo any over-allocation
            began = time.perf_counter()
            os.fsync(fd)
            self._dest.note_sync(time.perf_counter() - began)
        finally:
            if self.partial_path is not None:
                self._fd = None
                os.close(fd)

    def _read_back(self) -> tuple[str, int]:
        if self.partial_path is None:
            assert self._fd is not None
            return self._hash_file(self._fd)
        fd = os.open(self.partial_path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            return self._hash_file(fd)
        finally:
            os.close(fd)

    def _hash_file(self, fd: int) -> tuple[str, int]:
        expected = self._meta.size
        hasher = new_blake3(expected)
        total = 0
        try:
            view: memoryview = _per_thread.read_back
        except AttributeError:
            view = _read_back_buffer()
        # +1: the read that finds the end of a small file needs no second buffer-full
        length = READ_BACK_CHUNK if expected >= READ_BACK_CHUNK else expected + 1
        view = view[:length]
        # Ask the kernel to forget cached pages so the read comes from the device
        # (Linux honours this for clean pages; other systems may not: see docs/verification.md).
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        if expected > length:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
        while True:
            n = os.preadv(fd, [view], total)
            if n == 0:
                break
            hasher.update(view[:n])
            total += n
            if n < length and total == expected:
                break  # a short read of a regular file is its end: no read to find it
            still_answering()  # (a big clip's read-back on a slow drive is no hung share)
        return hasher.hexdigest(), total

    def commit(
        self,
        parts: Sequence[PartReceipt],
        *,
        source_blake3: str,
        target: str | None = None,
        overwrite: bool = False,
    ) -> Landed:
        final = target or self._target
        try:
            if not self._sealed:
                self._seal()
            fd = self._fd
            if self.partial_path is None and fd is not None:
                digest, size = self._hash_file(fd)
            else:
                digest, size = self._read_back()
        except OSError as exc:
            # (a share may say it is full only now, as it flushes the file: all of it was needed)
            raise self._write_error(exc, f"cannot finish {final}", self._meta.size) from exc
        if size != self._meta.size or digest != source_blake3:
            raise errors.IntegrityError(
                f"read-back of {final} does not match the source"
                f" (blake3 {digest[:16]}…, {size} bytes; source {source_blake3[:16]}…,"
                f" {self._meta.size} bytes)",
                hint="the destination returned other bytes than were written: check the drive",
            )
        handle = self.partial_path if self.partial_path is not None else self._fd
        assert handle is not None
        meta = self._meta
        note = set_xattrs(handle, meta.xattrs) if meta.xattrs else None
        try:
            # Times first, so the file appears under its name complete and with its times.
            os.utime(handle, ns=(meta.atime_ns, meta.mtime_ns))
            if target is not None:
                self._dest.made_folders.extend(make_folders(os.path.dirname(final)))
                self._dest.check_inside(os.path.dirname(final))
            sync_later = self._name(final, overwrite=overwrite)
        except OSError as exc:
            raise self._dest.os_error(
                exc, f"cannot move {final} into place", os.path.dirname(final), naming=final
            ) from exc
        self._close_fd()
        return Landed(
            target=final,
            size=size,
            verify_method=self._dest.verify_method,
            detail=note,
            say_once=None if note is None else self._dest.first_said(note),
            sync_later=sync_later,
        )

    def _name(self, final: str, *, overwrite: bool) -> str | None:
        """Give the verified file its name, durably; TargetExists unless ``overwrite``. The
        folder whose fsync makes the name durable, if this thread defers folder syncs."""
        sync = not self._dest._deferring.on
        if self.partial_path is None:
            assert self._fd is not None
            if not overwrite:
                try:
                    link_unnamed(self._fd, final, sync=sync)
                except FileExistsError:
                    raise TargetExists(final) from None
                head, sep, _ = final.rpartition("/")
                folder = self._parent if final == self._target else head or sep
                if not sync:
                    return folder
                fd = self._fd
                self._dest.confirm_names(folder, lambda: confirm_synced(fd))
                return None
            # No call replaces a name with an unnamed file: name it hidden, then rename over.
            self.partial_path = partial_path_for(final)
            self._dest.note_partial(self.partial_path)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.partial_path)
            link_unnamed(self._fd, self.partial_path, sync=False)  # the rename's sync covers it
        if overwrite:
            os.replace(self.partial_path, final)
        else:
            try:
                rename_no_replace(self.partial_path, final, lock=self._dest.naming)
            except FileExistsError:
                raise TargetExists(final) from None
        if self._dest.times_kept is not True:  # before the folder's fsync, which makes them durable
            self._dest.keep_times(final, self._meta)
        if not sync:
            return os.path.dirname(final)
        folder = os.path.dirname(final)
        fsync_dir(folder)
        unnamed = self._fd  # the unnamed file, named over another, is still open
        self._dest.confirm_names(
            folder,
            (lambda: confirm_synced(unnamed))
            if unnamed is not None
            else (lambda: confirm_synced_path(final)),
        )
        return None

    def _close_fd(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass

    def abort(self) -> None:
        self._close_fd()  # an unnamed file is gone with its last descriptor
        if self.partial_path is None:
            return
        try:
            os.unlink(self.partial_path)
        except FileNotFoundError:
            # Nothing there: removed, unless the root is no longer the folder the job began with
            # (a share unmounted: its path now leads into the empty mount point).
            self.left_behind = self._dest._root_gone()
        except OSError:
            # The drive may be gone: the partial is hidden, and the catalog keeps it (the engine
            # asks ``left_behind``) for the next run here to remove.
            self.left_behind = True


def _level_as_found(folder: str, name: str) -> str | None:
    """``name`` in ``folder`` as the drive spells it (``as_found``); None when the folder cannot
    be listed."""
    swapped = name.swapcase()
    if swapped == name or not os.path.lexists(os.path.join(folder, swapped)):
        return name
    try:
        names = os.listdir(folder)
    except OSError:
        return None
    if name in names:
        return name
    folded = name.casefold()
    return next((n for n in names if n.casefold() == folded), name)


class LocalDestination:
    """A folder on a local or mounted filesystem."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        name: str | None = None,
        saved_mount: tuple[str, str] | None = None,
    ) -> None:
        self.root = os.path.abspath(os.fspath(root))
        #: the mount point and filesystem type it was on when it was saved (``dest add``): a job
        #: finding it on another refuses it (``check_mounted``)
        self.saved_mount = saved_mount
        self._prefix = self.root if self.root.endswith("/") else self.root + "/"
        self._name = name or self.root
        self._ident = "local:" + self.root  # asked several times a file: made once
        #: (st_dev, st_ino) of the root when the job began: a drive unmounted mid-job must not
        #: turn into writes to the empty mount point (the disk underneath) or a re-created folder
        self._root_id: tuple[int, int] | None = None
        #: folders made or found, checked to be inside the root, with their (st_dev, st_ino):
        #: thousands of files land in few folders, and resolving each one's path again costs a
        #: dozen system calls, where one lstat shows the folder is still the one checked
        self._made: dict[str, tuple[int, int]] = {}
        #: for each folder in ``_made``: whether it is below the root (not the root itself), and
        #: the folders above it, up to the root (excluded); none of them may become a link
        self._levels: dict[str, tuple[bool, tuple[str, ...]]] = {}
        #: the longest name its filesystem holds, in UTF-8 bytes (asked at preflight)
        self.name_max = NAME_MAX
        #: files are written unnamed (O_TMPFILE) until the filesystem says it cannot
        self.unnamed_files = True
        #: files are preallocated (fallocate) until the filesystem says it cannot
        self.preallocates = True
        #: the filesystem type (``/proc/mounts``), and the largest file it holds where that is
        #: known to be less than any card's (FAT: 4 GiB - 1 byte), once preflight has looked
        self.fs_type: str | None = None
        self.max_file_size: int | None = None
        #: what castoff may still write there (statvfs), as preflight found it; None before
        self.free_bytes: int | None = None
        #: the folders this destination created (the root too, where preflight made it)
        self.made_folders: list[str] = []
        #: the folder fsyncs confirmed, by filesystem (st_dev): ``confirm_names``
        self._confirmations: dict[int, Confirmations] = {}
        #: what the filesystem answered at preflight where its type does not say which names it
        #: holds (``learn_name_rules``): it ignores case; it refuses the names Windows refuses
        self.ignores_case = False
        self.refuses_windows_names = False
        #: a name here may be found in another case (Windows rules: exFAT, FAT; or ``ignores_case``):
        #: what lands is recorded as the drive spells it (``as_found``). Set by ``learn_name_rules``
        self.may_fold_case = False
        #: each folder's spelling on the drive, as ``as_found`` found it (by the folder as given)
        self._folders_found: dict[str, str] = {}
        #: what a read-back here reads instead of the server's copy (``mounts.client_cache``)
        self.read_back_from: str | None = None
        #: warnings preflight found, said once as the job starts
        self.notes: list[str] = []
        #: a file keeps the times it had before its rename into place: None until one says; where
        #: not (fusefat gives it the time of the rename), they are set again once it is named
        self.times_kept: bool | None = None
        #: held by every check-then-rename here (``rename_no_replace``, where the filesystem has
        #: neither RENAME_NOREPLACE nor hard links): castoff names files there one at a time
        self.naming = NamingLock(self.root)
        #: what the console was told once (``first_said``)
        self._said: dict[str, str] = {}
        #: a moving average of a file's fsync, in seconds (``note_sync``): None before the first
        self._sync_time: float | None = None
        self._partial_watcher: Callable[[str], None] | None = None
        #: threads whose commits leave the folder's fsync to them (``defer_folder_syncs``)
        self._deferring = _Deferring()
        self._caps = Capabilities(
            kind="local",
            is_local=True,
            can_read_back=True,
            can_stat=True,
            concurrency=1,
            needs_md5=False,
            resumable=False,
            commit_can_retarget=True,
            needs_hash_at_start=False,
            read_back_buffer=READ_BACK_CHUNK,
            max_key_bytes=LOCAL_MAX_PATH,
        )

    @property
    def name(self) -> str:
        return self._name

    @property
    def fat(self) -> bool:
        """A FAT drive (FAT12/16/32), which holds files of at most 4 GiB - 1 byte."""
        return self.max_file_size is not None

    def first_said(self, note: str) -> str | None:
        """What the console says of ``note`` (extended attributes not kept), the first time a
        file here meets it; None after (the report has it for each file)."""
        if self._said.setdefault("xattrs", note) is not note:  # setdefault: one thread's first
            return None
        return f"{note}: this drive cannot keep them (--xattrs); the report says so for each file"

    def give_times(self, target: str, meta: ObjectMeta) -> None:
        """(``Destination.give_times``) Not through a symlink put at its name."""
        try:
            os.utime(target, ns=(meta.atime_ns, meta.mtime_ns), follow_symlinks=False)
        except OSError as exc:
            raise self.os_error(exc, f"cannot set the times of {target}", os.path.dirname(target)) from exc

    def keep_times(self, path: str, meta: ObjectMeta) -> None:
        """``path`` was just renamed into place with ``meta``'s times: where the filesystem drops
        them at a rename (fusefat), set them again. One stat tells, at the first file whose time
        is far enough from now to tell (a file modified this minute looks the same either way)."""
        kept = self.times_kept
        if kept is None:
            if abs(time.time_ns() - meta.mtime_ns) < _TIMES_TELL_NS:
                return
            found = os.stat(path, follow_symlinks=False).st_mtime_ns
            kept = self.times_kept = abs(found - meta.mtime_ns) <= _TIMES_STEP_NS
        if not kept:
            os.utime(path, ns=(meta.atime_ns, meta.mtime_ns), follow_symlinks=False)

    @property
    def ident(self) -> str:
        return self._ident

    @property
    def verify_method(self) -> str:
        """How a copy here is proven: its read-back, and what answers it where that is not the
        drive or server (``read_back_from``)."""
        if self.read_back_from is None:
            return "read-back blake3"
        return f"read-back blake3 of {self.read_back_from}, not the server"

    @property
    def caps(self) -> Capabilities:
        return self._caps

    def note_sync(self, seconds: float) -> None:
        """One file's fsync took ``seconds``. (Written by several threads without a lock: a lost
        update only ages the average a little.)"""
        last = self._sync_time
        self._sync_time = seconds if last is None else last + (seconds - last) * 0.1

    @property
    def slow_sync(self) -> bool:
        """Its fsyncs wait for a device (``SLOW_SYNC``): small files are best committed several
        at a time, not one after the other."""
        last = self._sync_time
        return last is not None and last > SLOW_SYNC

    @property
    def on_network(self) -> bool:
        """On a network or FUSE filesystem (``network_filesystem``), once preflight has looked:
        the engine's reader then leaves this folder's small files to its lane, so that a share
        that answers slowly, or not at all, never holds up the other destinations."""
        return network_filesystem(self.fs_type)

    @property
    def root_id(self) -> tuple[int, int] | None:
        """(st_dev, st_ino) of the root, once preflight has seen it: the scan never enters it."""
        return self._root_id

    def watch_partials(self, note: Callable[[str], None]) -> None:
        """``note(path)`` is called before a hidden partial file is made, and must make it
        durable (the engine records it in the catalog): a crash right after the file appears
        then leaves nothing the next run cannot find and remove."""
        self._partial_watcher = note

    def note_partial(self, path: str) -> None:
        if self._partial_watcher is not None:
            self._partial_watcher(path)

    def defer_folder_syncs(self, on: bool) -> None:
        """From now on, commits made by the calling thread give the file its name without
        fsyncing the folder, and say which folder in ``Landed.sync_later``: the caller calls
        ``sync_folder`` for each folder once, however many files landed there, and only then
        counts those files as landed. A name whose folder is not yet synced may vanish in a
        crash, like an unfinished file: what the catalog has not recorded, the next run makes
        again (or finds there with the same BLAKE3)."""
        self._deferring.on = on

    def defers_folder_syncs(self) -> bool:
        return self._deferring.on

    def confirm_folders(self, named: Mapping[str, str]) -> None:
        """The folders ``named`` maps to a file just named in each were fsynced (``sync_folder``):
        confirm them (``confirm_synced``) with one of those files for each filesystem they are on,
        once for many folders, not once a folder."""
        by_filesystem: dict[object, str] = {}
        for folder, path in named.items():
            known = self._made.get(folder)
            by_filesystem.setdefault(known[0] if known is not None else folder, path)
        for path in by_filesystem.values():
            try:
                confirm_synced_path(path)
            except OSError as exc:
                folders = ", ".join(named)
                raise self.translate(exc, f"cannot make the new names in {folders} durable") from exc

    def confirm_names(self, folder: str, fsync: Callable[[], None]) -> None:
        """``folder``'s fsync just returned: confirmed by ``fsync`` (of a file just named there:
        ``confirm_synced``), or by one another thread makes meanwhile on its filesystem
        (``Confirmations``; a folder whose filesystem is not known yet confirms its own)."""
        known = self._made.get(folder)
        if known is None:
            fsync()
            return
        confirmations = self._confirmations.get(known[0])
        if confirmations is None:
            confirmations = self._confirmations.setdefault(known[0], Confirmations())
        confirmations.confirm(fsync)

    def sync_folder(self, folder: str) -> None:
        """Make the names given in ``folder`` durable (``defer_folder_syncs``), once
        ``confirm_folders`` confirms it."""
        try:
            fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                fsync_dir_fd(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise self.translate(exc, f"cannot make the new names in {folder} durable") from exc

    def translate(self, exc: OSError, what: str) -> errors.CastoffError:
        """``translate_os_error``, with what this destination knows: an I/O error where the
        drive is really gone (its root no longer the folder preflight saw) says so, and a full
        btrfs says its metadata may be what is full."""
        out = translate_os_error(exc, what, fat=self.fat)
        if isinstance(out, errors.DriveFailed) and self._root_gone():
            return errors.DestinationGone(out.message, hint=GONE_HINT)
        if isinstance(out, errors.DestinationFull) and self.fs_type == "btrfs":
            return errors.DestinationFull(out.message, hint=BTRFS_FULL_HINT)
        return out

    def target_for(self, rel_path: str) -> str:
        check_rel_path(rel_path)
        limit = self.name_max  # the filesystem's own, once preflight asked it (eCryptfs: 143)
        if len(rel_path) * 4 > limit:  # a character is at most 4 bytes: only a long name can be too long
            for part in rel_path.split("/"):
                if len(part) * 4 > limit and len(os.fsencode(part)) > limit:
                    raise errors.KeyRejected(
                        f"name longer than {limit} bytes: {part[:40]}…",
                        hint=(
                            "most filesystems cannot hold it"
                            if limit >= NAME_MAX
                            else f"the filesystem of {self.root} holds names of at most {limit} bytes"
                        ),
                    )
        return self._prefix + rel_path  # its parts are checked: no empty, '.' or '..' one

    def check_inside(self, folder: str) -> None:
        """Refuse to write through a symlink that leads out of the destination."""
        real_root = os.path.realpath(self.root)
        existing = folder
        while not os.path.lexists(existing) and os.path.dirname(existing) != existing:
            existing = os.path.dirname(existing)  # the part of the path that exists decides
        if self.root.rstrip("/").startswith(existing.rstrip("/") + "/"):
            # no link: the root itself is missing, and the nearest folder that exists is above it
            raise errors.DestinationGone(
                f"destination {self.root} does not exist",
                hint="is the drive mounted? reconnect it, then re-run",
            )
        real = os.path.realpath(existing)
        if real != real_root and not real.startswith(real_root.rstrip("/") + "/"):
            raise errors.KeyRejected(
                f"{folder} leads outside the destination {self.root} (through a symlink)",
                hint="castoff never follows a link out of a destination",
            )

    def make_folder(self, folder: str) -> None:
        """Create ``folder`` (and its parents) inside the root, never through a link out of it."""
        if self._still_made(folder):
            return
        head, sep, _ = folder.rpartition("/")
        parent = head or sep
        if parent in self._made and self._still_made(parent) and self._made_in(parent, folder):
            return
        self.check_root()  # an unmounted drive's folders must not be made on the disk beneath
        self.check_inside(folder)  # before creating folders: none may appear through a link
        try:
            self.made_folders.extend(make_folders(folder))
            self.check_inside(folder)
            st = os.lstat(folder)
        except OSError as exc:
            blocker = _file_in_the_way(folder) if exc.errno in (errno.EEXIST, errno.ENOTDIR) else None
            if blocker is not None:  # the error would name the folder, not what is wrong
                raise errors.KeyRejected(
                    f"{blocker} is a file, where a folder is needed",
                    hint="move or rename that file, then re-run",
                ) from exc
            raise self.os_error(exc, f"cannot create folder {folder}", folder, naming=folder) from exc
        self._remember(folder, st)

    def os_error(
        self, exc: OSError, what: str, folder: str, *, naming: str | None = None
    ) -> errors.CastoffError:
        """``translate_os_error``, where permission denied in ``folder``, below the root, while
        the root itself is writable, is that folder's alone (``PermissionDenied``, naming the
        folder that refuses): the rest of the destination is still filled, as rsync does. A root
        castoff may not write in (or a read-only filesystem, EROFS) stops the destination.
        ``naming``: the file or folder being given its name, where EPERM in a folder castoff may
        write in is the filesystem refusing that name (fusefat's answer to ``what?.jpg``)."""
        if exc.errno in (errno.EACCES, errno.EPERM) and (
            folder == self.root or folder.startswith(self._prefix)
        ):
            refusing = self.root if folder == self.root else self._refusing(folder)
            if naming is not None and exc.errno == errno.EPERM and os.access(refusing, os.W_OK | os.X_OK):
                below = naming[len(refusing) + 1 :] if naming.startswith(refusing + "/") else naming
                name = below.split("/")[0] or os.path.basename(naming)
                return errors.KeyRejected(
                    f"{what}: the filesystem refused the name {name!r} ({exc.strerror or exc})",
                    hint="this drive's filesystem cannot hold that name: rename it on the source, or copy"
                    " it to another drive",
                )
        if (
            exc.errno in (errno.EACCES, errno.EPERM)
            and folder.startswith(self._prefix)
            and os.access(self.root, os.W_OK | os.X_OK)
        ):
            refusing = self._refusing(folder)
            return errors.PermissionDenied(
                f"{what}: {exc.strerror or exc}",
                hint=f"castoff may not write in {refusing}: change its permissions, then re-run;"
                " the rest of the destination is filled",
            )
        return self.translate(exc, what)

    def _refusing(self, folder: str) -> str:
        """The folder that keeps castoff from writing in ``folder``: the first one, from the
        root down, that castoff may not enter, else the deepest one that exists (where the next
        is to be made, or the file written)."""
        level = self.root
        for part in folder[len(self._prefix) :].split("/"):
            below = os.path.join(level, part)
            if not os.path.isdir(below):  # not there (or not to be looked at): made in ``level``
                return level
            if not os.access(below, os.X_OK):
                return below
            level = below
        return level

    def _remember(self, folder: str, st: os.stat_result) -> None:
        """Note ``folder``, just checked to be inside the root, and each folder above it that is
        inside for sure (it and every level above it, to the root, a folder and no link): a
        folder made beside it later is made in one of those with no resolution of its path."""
        prefix = self._prefix
        above: list[str] = []
        level = os.path.dirname(folder)
        while level != self.root and level.startswith(prefix):  # each folder above it, to the root
            above.append(level)
            level = os.path.dirname(level)
        self._made[folder] = (st.st_dev, st.st_ino)
        self._levels[folder] = (folder.startswith(prefix), tuple(above))
        for i in range(len(above) - 1, -1, -1):  # from the root down
            try:
                lst = os.lstat(above[i])
            except OSError:
                return
            if not stat.S_ISDIR(lst.st_mode):
                return
            self._made[above[i]] = (lst.st_dev, lst.st_ino)
            self._levels[above[i]] = (True, tuple(above[i + 1 :]))

    def _made_in(self, parent: str, folder: str) -> bool:
        """Make (or find) ``folder`` in ``parent``, a folder still as it was checked
        (``_still_made``): nothing above ``folder`` can lead out of the root, so ``folder`` is
        inside when it is a folder and no link. False when it is not, or cannot be made: the
        full check then says why."""
        try:
            os.mkdir(folder)
            made = True
        except FileExistsError:
            made = False
        except OSError:
            return False
        try:
            st = os.lstat(folder)
        except OSError:
            return False
        if not stat.S_ISDIR(st.st_mode):
            return False
        if made:  # its name made durable, as make_folders does
            self.made_folders.append(folder)
            try:
                fsync_dir_path(parent)
            except OSError as exc:
                raise self.translate(exc, f"cannot create folder {folder}") from exc
        inside, above = self._levels[parent]
        self._made[folder] = (st.st_dev, st.st_ino)
        self._levels[folder] = (True, (parent, *above) if inside else ())
        return True

    def _still_made(self, folder: str) -> bool:
        """Whether ``folder`` is still the one this destination made (or found) and checked: it
        has the (st_dev, st_ino) it had, no level between it and the root is a link, and the root
        is the one preflight saw. The number alone does not say: a freed inode number is soon
        reused (ext4 does), by a link put in the folder's place or by a folder that a link put
        above it leads to. (Once a file a folder: lean, and the folder's own lstat is looked at
        once, for its number and for its kind.)"""
        try:
            known = self._made[folder]
            inside, above = self._levels[folder]
        except KeyError:
            return False
        root_id = self._root_id
        try:
            st = os.lstat(folder)
            ok = (
                st.st_ino == known[1]
                and st.st_dev == known[0]
                and (not inside or st.st_mode & _S_IFMT == stat.S_IFDIR)
            )
            if ok and root_id is not None:
                st = os.stat(self.root)
                ok = st.st_ino == root_id[1] and st.st_dev == root_id[0]
            if ok:
                for level in above:  # no level above it a link (its own kind is looked at above)
                    if os.lstat(level).st_mode & _S_IFMT != stat.S_IFDIR:
                        ok = False
                        break
        except OSError:
            return False
        return ok

    def forget_folder(self, folder: str) -> None:
        self._made.pop(folder, None)
        self._levels.pop(folder, None)

    def check_root(self) -> None:
        """DestinationGone when the root is no longer the folder preflight saw; DriveFailed when
        its drive answers with an I/O error."""
        if self._root_id is None:
            return
        try:
            st = os.stat(self.root)
        except OSError as exc:
            if exc.errno == errno.EIO:
                raise self.translate(exc, f"cannot look at destination {self.root}") from exc
            st = None
        if st is None or (st.st_dev, st.st_ino) != self._root_id:
            raise errors.DestinationGone(
                f"destination {self.root} is gone or is no longer the folder the job began with",
                hint="the drive may have been unmounted or the folder moved; reconnect it and re-run",
            )

    def _root_gone(self) -> bool:
        """The root is no longer the folder preflight saw. (An I/O error looking at it says the
        drive is failing, not that it is gone: xfs shut down answers every call so.)"""
        if self._root_id is None:
            return False
        try:
            st = os.stat(self.root)
        except OSError as exc:
            return exc.errno != errno.EIO
        return (st.st_dev, st.st_ino) != self._root_id

    def preflight(self) -> None:
        try:
            self._preflight()
        except OSError as exc:  # (a drive that fails under the look: EIO from a stat)
            raise self.translate(exc, f"cannot look at destination {self.root}") from exc

    def _preflight(self) -> None:
        self.check_mounted()  # (before any folder is made)
        root = Path(self.root)
        self._check_mounted_writable()
        if not root.exists():
            if root.parent.exists() and not root.parent.is_dir():
                raise errors.UsageError(
                    f"destination {self.root}: {root.parent} is a file, not a folder",
                    hint="choose a folder for the destination",
                )
            if not root.parent.is_dir():
                raise errors.DestinationGone(
                    f"destination {self.root} does not exist, nor does its parent {root.parent}",
                    hint="is the drive mounted? castoff creates only the last folder of a path",
                )
            try:
                self.made_folders.extend(make_folders(self.root))
            except OSError as exc:
                raise self.translate(exc, f"cannot create {self.root}") from exc
        if not root.is_dir():
            raise errors.UsageError(f"destination {self.root} is not a folder")
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise errors.DestinationReadOnly(
                f"cannot write to {self.root}", hint="check permissions and the mount"
            )
        st = root.stat()
        self._root_id = (st.st_dev, st.st_ino)
        with contextlib.suppress(OSError):
            fs = os.statvfs(self.root)
            self.free_bytes = fs.f_bavail * fs.f_frsize
        self.name_max = name_max(self.root)
        from castoff.layout.names import filesystem_type, max_file_size  # (names imports this module)

        self.fs_type = filesystem_type(self.root)
        self.max_file_size = max_file_size(self.fs_type)
        self.learn_name_rules()

    def check_mounted(self) -> None:
        """DestinationGone when the folder is not on the mount it was saved on, or (not saved
        with one) when making it would make a drive's mount point on the system disk; a warning
        when it is an empty folder where a drive that is not mounted may belong."""
        self.notes.clear()
        if self.saved_mount is not None:
            mounts.check_mounted_as_saved(self.root, self.name, self.saved_mount)
        note = mounts.check_mount_point(self.root)
        if note is not None:
            self.notes.append(note)

    def learn_name_rules(self) -> None:
        """Where the filesystem's type does not say which names it holds (a FUSE one castoff
        does not know, NFS, sshfs), ask the filesystem (``mounts.probe_names``); and whether a
        read-back here reads a cache on this computer, not the server (an rclone mount)."""
        from castoff.layout.names import rules_known, windows_rules  # (names imports this module)

        if not rules_known(self.fs_type, self.root):
            found = mounts.probe_names(self.root, PARTIAL_PREFIX, PARTIAL_SUFFIX)
            if found is not None:
                self.ignores_case, self.refuses_windows_names = found
        self.may_fold_case = self.ignores_case or windows_rules(self.fs_type, self.root)
        self.read_back_from = mounts.client_cache(self.root)
        if self.read_back_from is not None:
            self.notes.append(
                f"a read-back here reads {self.read_back_from}, not the server: a copy is"
                f" verified on its way there, not proven on the server; {mounts.RCLONE_HINT}"
            )

    def remove_made_folders(self) -> None:
        """Remove the folders this destination created that are still empty, the deepest first:
        a destination no file went to (full, failed, or a card with nothing on it) is left as
        it was found, not with a tree of empty folders."""
        for folder in sorted(set(self.made_folders), key=lambda f: f.count("/"), reverse=True):
            with contextlib.suppress(OSError):  # not empty (another job's files), or gone
                os.rmdir(folder)
        self.made_folders.clear()
        self._made.clear()
        self._levels.clear()

    def probe(self) -> None:
        """Write a byte to a hidden file in the root, fsync it and remove it: a drive where the
        folder can be made but no file written (full; its filesystem failed) fails here, as a
        job's first file would (``castoff dest add`` and ``dest test``; after ``preflight``)."""
        path = os.path.join(self.root, f"{PARTIAL_PREFIX}probe-{os.getpid()}{PARTIAL_SUFFIX}")
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
            try:
                os.write(fd, b"c")
                os.fsync(fd)
            finally:
                os.close(fd)
                with contextlib.suppress(OSError):
                    os.unlink(path)
        except OSError as exc:
            raise self.translate(exc, f"cannot write a file in {self.root}") from exc

    def _check_mounted_writable(self) -> None:
        """DestinationReadOnly when the root (or, not made yet, the folder it goes in) is on a
        filesystem mounted read-only: said so, whether the folder is there or not."""
        head = self.root
        while not os.path.lexists(head) and os.path.dirname(head) != head:
            head = os.path.dirname(head)
        try:
            read_only = bool(os.statvfs(head).f_flag & os.ST_RDONLY)
        except OSError:
            return  # what is wrong there, the checks that follow say
        if read_only:
            raise errors.DestinationReadOnly(
                f"cannot write to {self.root}: the drive is mounted read-only",
                hint="remount it read-write (or choose another drive), then re-run",
            )

    def start(
        self,
        target: str,
        *,
        meta: ObjectMeta,
        part_size: int,
        resume: ResumeToken | None = None,
        overwrite: bool = False,
    ) -> LocalUpload:
        return LocalUpload(self, target, meta)

    def stat(self, target: str) -> ObjectStat | None:
        try:
            st = os.stat(target, follow_symlinks=False)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self.os_error(exc, f"cannot look at {target}", os.path.dirname(target)) from exc
        mode = st.st_mode
        return ObjectStat(
            size=st.st_size,
            mtime_ns=st.st_mtime_ns,
            not_a_file=None if stat.S_ISREG(mode) else not_a_file(mode),
            file_id=(st.st_dev, st.st_ino),
        )

    def as_found(self, target: str, *, name_known: bool = False) -> str:
        """``target`` as the drive spells what is there, for a message: a drive that ignores case
        finds ``CASE.JPG`` at ``case.jpg``. A level whose name, its case swapped, is there too is
        looked for in its folder's listing (only on such a drive, or where both spellings are);
        each folder once a job. ``name_known``: the file is spelt as given (castoff just put it
        there under that name): its folders alone are looked at."""
        if not target.startswith(self._prefix):
            return target
        folder, _, name = target[len(self._prefix) :].rpartition("/")
        shown = self._folders_found.get(folder)
        if shown is None:
            shown = self.root
            head = self.root
            for part in folder.split("/") if folder else ():
                found = _level_as_found(head, part)
                if found is None:
                    return target
                head, shown = os.path.join(head, part), os.path.join(shown, found)
            self._folders_found[folder] = shown  # (a folder castoff makes later: as it is named here)
        found = name if name_known else _level_as_found(os.path.join(self.root, folder), name)
        return target if found is None else os.path.join(shown, found)

    def open_read(self, target: str) -> BinaryIO:
        """The file at ``target``: ConflictError when a symlink, a FIFO or a device is there."""
        try:
            return open_regular(target)
        except NotAFile as exc:
            raise errors.ConflictError(str(exc)) from exc
        except OSError as exc:
            raise self.translate(exc, f"cannot read {target}") from exc

    def abort_token(self, target: str, token: ResumeToken) -> None:
        partial = token.get("partial")
        if isinstance(partial, str):
            try:
                os.unlink(partial)
            except FileNotFoundError:
                pass
            except OSError as exc:  # still there: the caller keeps it in the catalog
                raise translate_os_error(exc, f"cannot remove the partial file {partial}") from exc

    def close(self) -> None:
        return None
