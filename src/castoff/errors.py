"""castoff's one tree of errors: what can go wrong, whether a retry may help, and the exit code.

Every failure the engine can meet is one of these. SDK and OS exceptions are translated into this
tree at the destination boundary (``destinations/*``), in one place per backend; anything that
cannot be translated is re-raised as it is, never swallowed.

    CastoffError                       exit 1 unless said otherwise
    ├── UsageError                     exit 2: bad arguments, configuration, unknown destination,
    │                                  a state folder or catalog castoff cannot use
    │   └── OutputFailed               stdout cannot take what a command prints (a full disk, EIO)
    ├── Interrupted                    exit 130: Ctrl-C / SIGTERM / SIGHUP; the catalog stays resumable
    ├── HistoryError                   an ASC MHL history castoff cannot read or continue
    ├── CatalogError                   the catalog failed under a command that had opened it
    │   ├── CatalogDamaged             exit 2: its pages are damaged (move it aside)
    │   ├── CatalogFull                the state folder cannot grow (disk full, a file size limit)
    │   └── CatalogBusy                another castoff process held it past the busy timeout
    ├── SourceError                    one source file cannot be delivered anywhere
    │   ├── SourceChanged              size, mtime or change time moved during the read
    │   │   ├── SourceChangedInPlace   other bytes than an earlier job read at the same path, size
    │   │   │                          and mtime: a re-run meets it again (--rehash copies it)
    │   │   └── SourceDamaged          a copy castoff verified at a local destination, read as a
    │   │                              source, no longer holds those bytes: a re-run meets it again
    │   ├── SourceVanished             deleted or the card was removed
    │   │   └── SourceDeleted          gone at its open, its folder still there (an editor's lock
    │   │                              or swap file): left out (code ``vanished``), not a failure
    │   └── SourceReadError            EIO, permission denied, ...
    │       ├── SourceNameError        its name is not UTF-8: a re-run meets it again (rename it)
    │       └── SourceTimeError        its mtime is outside 1677-2262: a re-run meets it again (touch it)
    └── DestinationError               one file at one destination (``retryable`` says if trying again helps)
        ├── TransientError             retryable: network drops, timeouts, 5xx
        │   └── Throttled              429 / 503 SlowDown; carries ``retry_after`` when the server said
        ├── PermanentError             not retryable for this destination
        │   ├── AccessDenied           the key may not do this (write-only keys meet it on reads)
        │   ├── NoSuchBucket
        │   ├── BadCredentials         unknown key id or wrong secret
        │   ├── ClockSkew              the server refused this computer's clock (set it: NTP)
        │   ├── DestinationFull        ENOSPC / quota
        │   ├── DestinationReadOnly    EROFS / EACCES on the destination (mounted read-only, or
        │   │                          gone read-only after an error)
        │   ├── PermissionDenied       EACCES / EPERM on one folder below a writable destination root:
        │   │                          that folder's files only, the rest of the destination is filled
        │   ├── DestinationGone        the mount or folder disappeared
        │   ├── DriveFailed            the drive reported an I/O error (EIO: a failing drive, a
        │   │                          filesystem shut down after an error): check it, remount it
        │   ├── KeyRejected            the key or path cannot exist there (too long, illegal name)
    │   ├── FileTooBig             the filesystem cannot hold a file this big (FAT32: 4 GiB - 1 byte)
        │   ├── TlsFailure             no trusted TLS connection to the endpoint (certificate, plain HTTP)
        │   └── ConflictError          the target exists with other content and --on-conflict=fail
        │       └── HistoryConflict    a source's ASC MHL history would land on another history
        ├── IntegrityError             bytes at the destination differ from the source's
        │   └── BadDigest              the server refused a body whose Content-MD5 did not match
        └── UploadGone                 the multipart upload no longer exists

``retryable``: calling the same operation again may succeed (the engine backs off and retries).
``restartable``: the operation won't succeed again as it is, but sending the whole file to that
destination once more may (the engine does that a bounded number of times).
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
#: a listing command whose stdout reader went away (``castoff jobs --json | head``): 128 + SIGPIPE,
#: as the shell reports for any filter a closed pipe stopped; a copy goes on to its own code instead
EXIT_BROKEN_PIPE = 141


class CastoffError(Exception):
    """Base of every error castoff raises on purpose."""

    retryable: bool = False
    restartable: bool = False
    exit_code: int = EXIT_FAILED
    code: str = "error"  # short stable identifier used in reports and JSON events
    #: the bucket key whose object this error left in place, sent and proven by its checksums
    #: (Content-MD5, ETag) though not read back (``--verify-download`` refused): the catalog
    #: records it, so that no later run takes the key for free or the object for absent
    left_at: str | None = None

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} ({self.hint})"
        return self.message


class UsageError(CastoffError):
    exit_code = EXIT_USAGE
    code = "usage"


class OutputFailed(UsageError):
    """stdout could not take what a command printed (a full disk, a terminal gone): exit 2, not
    1, which ``verify`` says of an altered file. A copy's JSON events stop instead; the job goes on."""

    code = "output"


class Interrupted(CastoffError):
    exit_code = EXIT_INTERRUPTED
    code = "interrupted"


class HistoryError(CastoffError):
    """An ``ascmhl/`` history without its chain file, or with a manifest missing or altered."""

    code = "mhl-history"


class CatalogError(CastoffError):
    """The catalog (SQLite) failed under a command that had opened it: the command stops, saying
    which catalog and what to do; what a job delivered before stays delivered."""

    code = "catalog"


class CatalogDamaged(CatalogError):
    """Pages of the catalog file are damaged (``database disk image is malformed``): nothing works
    with it until it is moved aside, as when it cannot be opened at all."""

    exit_code = EXIT_USAGE
    code = "catalog-damaged"


class CatalogTooNew(CatalogError):
    """The catalog was written by a newer castoff (its format version is above this castoff's):
    rows this one cannot fully read would be trusted (what is verified where, who holds a key),
    so it is neither read nor written until that castoff, or another state folder, is used."""

    exit_code = EXIT_USAGE
    code = "catalog-too-new"


class CatalogFull(CatalogError):
    """The catalog cannot grow: the state folder's disk is full, or a file size limit is hit."""

    code = "catalog-full"


class CatalogBusy(CatalogError):
    """Another castoff process held the catalog's write lock past the busy timeout."""

    code = "catalog-busy"


class SourceError(CastoffError):
    code = "source"


class SourceChanged(SourceError):
    code = "source-changed"


class SourceChangedInPlace(SourceChanged):
    code = "source-changed-in-place"


class SourceDamaged(SourceChanged):
    code = "source-damaged"


class SourceVanished(SourceError):
    code = "source-vanished"


class SourceDeleted(SourceVanished):
    """Deleted after the scan listed it, before castoff opened it, from a folder that is still
    there, on the same device: the job leaves it out (the reports' ``left_out``, code
    ``vanished``), as if the scan had not met it."""


class SourceReadError(SourceError):
    code = "source-read"


class SourceNameError(SourceReadError):
    """The file's name (or a folder's above it) is not UTF-8: castoff cannot record it, and the
    same command meets it again; renaming it on the source is what helps."""

    code = "source-name"


class SourceTimeError(SourceReadError):
    """The file's modification time is outside what 64-bit nanoseconds hold (1677 to 2262): the
    same command meets it again; giving it a real time on the source is what helps."""

    code = "source-time"


class DestinationError(CastoffError):
    code = "destination"


class TransientError(DestinationError):
    retryable = True
    code = "transient"


class Throttled(TransientError):
    code = "throttled"

    def __init__(self, message: str, *, retry_after: float | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.retry_after = retry_after


class PermanentError(DestinationError):
    code = "permanent"


class AccessDenied(PermanentError):
    code = "access-denied"


class NoSuchBucket(PermanentError):
    code = "no-such-bucket"


class BadCredentials(PermanentError):
    code = "bad-credentials"


class ClockSkew(PermanentError):
    code = "clock-skew"


class DestinationFull(PermanentError):
    code = "destination-full"


class DestinationReadOnly(PermanentError):
    code = "destination-read-only"


class PermissionDenied(PermanentError):
    """castoff may not write in (or look into) one folder below a destination's root, the root
    itself writable: the files that go to that folder fail, each of them; the others land, as
    rsync does. (Not ``DestinationReadOnly``: that one stops the destination.)"""

    code = "permission-denied"


class DestinationGone(PermanentError):
    code = "destination-gone"


class DriveFailed(PermanentError):
    """The destination's drive answered with an I/O error (EIO), its mount still there: a failing
    drive, a filesystem that shut itself down after an error, a drive unplugged without being
    unmounted. No more files go there in this job; checked (fsck) and remounted, a re-run
    copies what is missing. (A drive really gone, its mount point gone or another folder or
    drive there now, is ``DestinationGone``.)"""

    code = "drive-failed"


class KeyRejected(PermanentError):
    code = "key-rejected"


class FileTooBig(PermanentError):
    """The destination's filesystem cannot hold a file this big (EFBIG; FAT32 holds at most
    4 GiB - 1 byte): that file fails there, and the same command meets it again."""

    code = "file-too-big"


class TlsFailure(PermanentError):
    """No trusted TLS connection to the endpoint: its certificate is not trusted, or it answers in
    plain HTTP. Every request there meets it again, whatever the file."""

    code = "tls"


class ConflictError(PermanentError):
    code = "conflict"


class HistoryConflict(ConflictError):
    """A source's ASC MHL history would land on another history (``engine/histories.py``)."""

    code = "history-conflict"


class IntegrityError(DestinationError):
    restartable = True
    code = "integrity"


class BadDigest(IntegrityError):
    code = "bad-digest"


class UploadGone(DestinationError):
    restartable = True
    code = "upload-gone"
