"""Walk the sources and yield what a job will copy, and what it leaves out and why.

Streamed (one folder in memory at a time), sorted for a stable order, never following a symlink
inside a source unless asked, skipping OS junk and special files with a reason the report can show.
"""

from __future__ import annotations

import datetime
import fnmatch
import functools
import os
import re
import stat
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from castoff import errors

#: Files and folders the OS leaves on cards and drives; never worth a backup. Matched whatever
#: their case: FAT and exFAT cards, NTFS and APFS drives ignore it, and Windows writes
#: ``THUMBS.DB`` or ``Desktop.ini`` as readily as ``Thumbs.db``.
JUNK_NAMES = frozenset(
    {
        ".DS_Store",
        ".Spotlight-V100",
        ".Trashes",
        ".fseventsd",
        ".TemporaryItems",
        "Thumbs.db",
        "desktop.ini",
        "$RECYCLE.BIN",
        "System Volume Information",
    }
)


_JUNK_FOLDED = frozenset(n.casefold() for n in JUNK_NAMES)


def is_junk(name: str, *, ignore_case: bool = True) -> bool:
    """OS junk (or castoff's own partial file), whatever the case of its name; with
    ``ignore_case=False``, only as ``JUNK_PATTERNS`` spell it (what ASC MHL's ignore list says)."""
    if ignore_case:
        folded = name.casefold()
        return folded in _JUNK_FOLDED or name.startswith("._") or _is_partial(name)
    return name in JUNK_NAMES or name.startswith("._") or _is_partial(name)


def _is_partial(name: str) -> bool:
    return name.startswith(".castoff.") and name.endswith(".partial")


#: why a file whose path is not UTF-8 fails: the catalog, the reports and ASC MHL hold text
NOT_UTF8 = (
    "is not valid UTF-8 (as written by some cameras or old systems): castoff cannot record it;"
    " rename {what} and copy it again"
)


def escaped(path: str) -> str:
    """``path`` as valid UTF-8 text whatever its bytes, for the catalog, the reports and the
    messages: a UTF-8 path as it is; in one that is not, each byte that is not UTF-8 as ``\\xNN``
    and each backslash as ``\\\\`` (``bad\\xff.jpg``), so that two such paths never read the same.
    Such text can still be a real name (a file named ``bad\\xff.jpg`` in those ten characters):
    the scan gives a name that is not UTF-8 one no file beside it has (``shown_names``)."""
    if is_utf8(path):
        return path
    return path.replace("\\", "\\\\").encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def is_utf8(path: str) -> bool:
    """Whether ``path`` (as ``os`` decodes it: a byte that is not UTF-8 as a lone surrogate) is UTF-8."""
    if path.isascii():
        return True
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


#: what follows a name that is not UTF-8 when its escaped text is a real name in the same folder
NOT_UTF8_MARK = " (not UTF-8)"


def shown_names(names: Iterable[str]) -> dict[str, str]:
    """The text each name that is not UTF-8 among one folder's ``names`` is recorded and shown
    as: ``escaped``, and where that is the name of another file or folder there (a real
    ``\\xff.jpg`` beside a name whose one byte is 0xFF), followed by `` (not UTF-8)`` (then
    `` (not UTF-8, 2)``...) until no name there is the same: the real file keeps its own name,
    and every path of a job stays its own."""
    names = list(names)
    bad = sorted(n for n in names if not is_utf8(n))
    if not bad:
        return {}
    taken = {n for n in names if is_utf8(n)}
    out: dict[str, str] = {}
    for name in bad:
        base = text = escaped(name)
        n = 1
        while text in taken:
            text = base + (NOT_UTF8_MARK if n == 1 else f"{NOT_UTF8_MARK[:-1]}, {n})")
            n += 1
        taken.add(text)
        out[name] = text
    return out


#: ``is_junk`` as gitignore-style patterns, as an ASC MHL generation's ignore list holds them
JUNK_PATTERNS = (*sorted(JUNK_NAMES), "._*", ".castoff.*.partial")


def as_ignore_pattern(glob: str) -> str | None:
    """An --exclude glob as the gitignore-style pattern that leaves out the same files and folders,
    or None when gitignore cannot say it: a glob with a "/" is matched against the whole path, its
    ``*`` crossing folders, and ``\\``, ``**``, ``[^``, a leading ``!`` or ``#`` and trailing
    spaces mean something else to gitignore. A glob without them matches names, as here."""
    if not glob or glob != glob.rstrip() or glob.startswith(("!", "#")):
        return None
    if any(c in glob for c in ("/", "\\", "**", "[^")):
        return None
    return glob


@dataclass(frozen=True)
class SourceFile:
    abs_path: str
    rel_path: str  # POSIX separators, starts with the source's own name
    size: int
    mtime_ns: int
    atime_ns: int
    dev: int
    ino: int
    #: its change time (st_ctime_ns): a rename, a rewrite, even one whose mtime was set back,
    #: moves it, and no writer can set it back (``Engine._one_file``); None: not known
    ctime_ns: int | None = None


@dataclass(frozen=True)
class EmptyFolder:
    """A folder that holds nothing the job copies (nothing at all, or only OS junk it skips) and no
    such folder either: no file's copy makes it, so the job makes it itself (where the layout keeps
    the source's folders), as ``cp -r`` would. Only the deepest are yielded: making one makes its
    parents. A folder whose files were all left out by --include/--exclude is not empty on the
    source: it is not made (an empty copy of it would mirror nothing)."""

    abs_path: str
    rel_path: str  # as SourceFile's


@dataclass(frozen=True)
class Skipped:
    """Left out, or found and not readable; its paths are ``escaped``, valid UTF-8 whatever the name."""

    abs_path: str
    rel_path: str
    reason: str
    #: junk, excluded, symlink, special, destination, state: left out; unreadable, gone (listed,
    #: then not found: the engine leaves it out as ``vanished`` when its folder is still there), and
    #: not-utf8, bad-time (a name or a time castoff cannot record: a re-run meets it again): failures
    code: str


@functools.lru_cache(maxsize=256)
def _glob(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    return re.compile(fnmatch.translate(pattern), re.IGNORECASE if ignore_case else 0)


def glob_matches(pattern: str, rel_under: str, *, ignore_case: bool) -> bool:
    """Whether an --include/--exclude glob matches a path under the source: a glob without a "/"
    matches the last name, one with a "/" the whole path (its ``*`` crossing folders). (A glob
    that ends in "/" names folders: ``Filters`` strips that "/" and matches what is left here.)"""
    if "/" in pattern:
        return _glob(pattern.lstrip("/"), ignore_case).match(rel_under) is not None
    return _glob(pattern, ignore_case).match(rel_under.rsplit("/", 1)[-1]) is not None


def folder_glob(pattern: str) -> str | None:
    """What is left of a glob that ends in "/" (``DCIM/``, ``/PRIVATE/M4ROOT/``: a folder, as in
    rsync and gitignore), matched as any glob is but against folders only; None for another."""
    return pattern.rstrip("/") if pattern.endswith("/") else None


#: (pattern as given, the glob matched)
_Pairs = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Filters:
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    skip_junk: bool = True
    follow_symlinks: bool = False
    #: --include/--exclude ignore case (``*.jpg`` matches ``IMG_0001.JPG``) unless --case-sensitive;
    #: OS junk is matched whatever its case either way
    ignore_case: bool = True

    def _match(self, pattern: str, rel_under: str) -> bool:
        return glob_matches(pattern, rel_under, ignore_case=self.ignore_case)

    @functools.cached_property
    def _exclude_split(self) -> tuple[_Pairs, _Pairs]:
        return _split(self.exclude)

    @functools.cached_property
    def _include_split(self) -> tuple[_Pairs, _Pairs]:
        return _split(self.include)

    def _hits(self, pairs: _Pairs, rel_under: str, hits: set[str] | None) -> bool:
        """Whether a (pattern as given, glob matched) pair matches; every pattern that does goes
        into ``hits`` (all are tried then: one pattern that matched only what another also did
        matched something all the same)."""
        if hits is None:
            return any(self._match(glob, rel_under) for _, glob in pairs)
        found = False
        for given, glob in pairs:
            if self._match(glob, rel_under):
                hits.add(given)
                found = True
        return found

    def excluded(self, rel_under: str, hits: set[str] | None = None) -> bool:
        """Whether an --exclude glob that does not end in "/" leaves this file or folder out."""
        return self._hits(self._exclude_split[0], rel_under, hits)

    def excluded_folder(self, rel_under: str, hits: set[str] | None = None) -> bool:
        """Whether an --exclude glob that ends in "/" leaves this folder out (with all it holds)."""
        return self._hits(self._exclude_split[1], rel_under, hits)

    @property
    def excludes_folders(self) -> bool:
        """An --exclude glob ends in "/"."""
        return bool(self._exclude_split[1])

    def included(self, rel_under: str, hits: set[str] | None = None) -> bool:
        """Whether --include chooses this file: a glob matches it, or a glob that ends in "/"
        matches one of the folders it is in (``DCIM/``: every file under a folder named DCIM)."""
        if not self.include:
            return True
        plain, folders = self._include_split
        found = self._hits(plain, rel_under, hits)
        if folders and (hits is not None or not found):
            parts = rel_under.split("/")[:-1]
            for i in range(len(parts)):
                if self._hits(folders, "/".join(parts[: i + 1]), hits):
                    found = True
                    if hits is None:
                        break
        return found

    def patterns(self) -> list[tuple[str, str]]:
        """Every --include and --exclude pattern, as (option, pattern as given)."""
        return [*(("--include", p) for p in self.include), *(("--exclude", p) for p in self.exclude)]

    def ignore_patterns(self) -> tuple[str, ...]:
        """What these filters leave out, as far as gitignore-style patterns can say it."""
        junk = JUNK_PATTERNS if self.skip_junk else ()
        return (*junk, *(p for p in map(as_ignore_pattern, self.exclude) if p is not None))

    def said_by_patterns(self, rel_under: str, code: str) -> bool:
        """Whether ``ignore_patterns`` leaves out a path that the scan left out with ``code``; the
        others (symlinks, special files, what --include did not match, ...) must be named one by one.
        ASC MHL reads its patterns as gitignore does, case-sensitively: what the scan left out only
        because it ignores case (``THUMBS.DB``, ``A.THM`` for ``--exclude '*.thm'``) is named too."""
        if code == "junk":
            return self.skip_junk and is_junk(rel_under.rsplit("/", 1)[-1], ignore_case=False)
        return code == "excluded" and any(
            glob_matches(p, rel_under, ignore_case=False)
            for p in self.exclude
            if as_ignore_pattern(p) is not None
        )


def _split(patterns: tuple[str, ...]) -> tuple[_Pairs, _Pairs]:
    """The globs that match files and folders, and those that end in "/", each as (pattern as
    given, glob to match)."""
    plain = tuple((p, p) for p in patterns if folder_glob(p) is None)
    folders = tuple((p, f) for p in patterns if (f := folder_glob(p)) is not None)
    return plain, folders


def check_sources(sources: Sequence[str], *, by_name: bool = True) -> list[str]:
    """Absolute, existing, each named once. ``by_name``: the layout puts each source's files under
    its own name (``{card}``), so two sources of one name (two cards' ``DCIM``) would land in the
    same folder and are refused; a layout without it takes them (``source_labels``), except two
    files of one name, whose name is their copy's."""
    out: list[str] = []
    names: dict[str, str] = {}
    seen: dict[tuple[int, int], str] = {}
    reals: dict[str, str] = {}  # each source given, resolved: none may be inside another
    for src in sources:
        path = os.path.abspath(src)
        if escaped(path) != path:
            raise errors.UsageError(
                f"source {escaped(path)}: its path {NOT_UTF8.format(what='it')}",
                hint="or mount the card where the path is UTF-8",
            )
        if not os.path.exists(path):  # (a symlink given here is followed: see _scan_root)
            what = f"{src} is a symlink to {os.readlink(path)}, which" if os.path.islink(path) else src
            raise errors.UsageError(
                f"source {what} does not exist", hint="check the path; is the card mounted?"
            )
        name = os.path.basename(path.rstrip("/"))
        if not name:
            raise errors.UsageError(
                f"source {src} has no name to keep under the destination",
                hint="name a folder below the root",
            )
        st = os.stat(path)
        if (first := seen.setdefault((st.st_dev, st.st_ino), src)) != src or path in out:
            raise errors.UsageError(
                f"sources {first} and {src} are the same {'folder' if os.path.isdir(path) else 'file'}",
                hint="name it once",
            )
        real = os.path.realpath(path)
        for earlier, earlier_real in reals.items():
            if os.path.commonpath((real, earlier_real)) in (real, earlier_real):
                inner, outer = (src, earlier) if len(real) > len(earlier_real) else (earlier, src)
                raise errors.UsageError(
                    f"source {inner} is inside source {outer}: its files would be copied twice",
                    hint=f"name {outer} alone (--include/--exclude choose its files),"
                    " or only what is inside it",
                )
        reals[src] = real
        if name in names and (by_name or not (os.path.isdir(path) and os.path.isdir(names[name]))):
            raise errors.UsageError(
                f"sources {names[name]} and {src} would land in the same folder {name!r}"
                if by_name
                else f"sources {names[name]} and {src} are files of the same name {name!r}",
                hint="copy them in separate jobs or to separate destinations"
                + (
                    ", or choose a layout that does not name each source's folder ({card}):"
                    " --layout date, month, device or type, or a --template without {card}"
                    if by_name
                    else ""
                ),
            )
        names.setdefault(name, path)
        out.append(path)
    return out


def source_labels(sources: Sequence[str]) -> list[str]:
    """Each source's name as the first component of its files' paths (``rel_path``) in the
    catalog, the reports and the messages: its own name, and for a second source of the same
    name (two cards' ``DCIM``, taken by a layout without ``{card}``) that name and `` (2)``,
    `` (3)``…, in the order given, so that every file of a job has a path of its own. The
    layout never shows it: ``{card}`` is refused with such sources, and ``{path}`` and the
    names are those under the source."""
    names = [os.path.basename(src.rstrip("/")) for src in sources]
    taken = set(names)
    seen: set[str] = set()
    out: list[str] = []
    for name in names:
        label = name
        if name in seen:
            n = 2
            while (label := f"{name} ({n})") in taken:
                n += 1
            taken.add(label)
        seen.add(name)
        out.append(label)
    return out


def scan(
    sources: Sequence[str],
    filters: Filters,
    destinations: Mapping[tuple[int, int], str] | None = None,
    *,
    folders: bool = False,
    matched: set[str] | None = None,
) -> Iterator[SourceFile | Skipped | EmptyFolder]:
    """``destinations``: the job's destination folders by (st_dev, st_ino), and their names. A
    source never enters one, whatever path reaches it (a followed symlink, a bind mount): it
    would copy the job's own output into itself. ``folders``: yield the ``EmptyFolder`` items
    too (callers that only want files need not tell them apart). ``matched``: gets every
    --include/--exclude pattern (as given) that chose or left out something."""
    for root, top in zip(sources, source_labels(sources), strict=True):
        for item in _scan_root(root, top, filters, destinations or {}, matched):
            if folders or not isinstance(item, EmptyFolder):
                yield item


def _skipped(shown: str, rel: str, reason: str, code: str) -> Skipped:
    """``shown``, ``rel``: the paths as ``shown_names`` made them (valid UTF-8)."""
    return Skipped(shown, rel, reason, code)


#: the modification times castoff can record: nanoseconds since 1970 in a 64-bit integer, as the
#: catalog (SQLite) and ASC MHL hold them: 1677-09-21 to 2262-04-11
TIME_MIN_NS, TIME_MAX_NS = -(2**63), 2**63 - 1


def bad_time(mtime_ns: int) -> str:
    """Why a file whose modification time is outside ``TIME_MIN_NS``..``TIME_MAX_NS`` fails (a
    clock gone wrong, a date typed by hand: ext4, NTFS and APFS can hold it)."""
    try:
        year = datetime.datetime.fromtimestamp(mtime_ns // 1_000_000_000).year
    except (OverflowError, ValueError, OSError):  # past 9999, or beyond the platform's time_t
        year = 1970 + mtime_ns // 1_000_000_000 // 31_556_952  # (a mean Gregorian year, in seconds)
    return (
        f"its modification time (in the year {year}) is outside what castoff can record"
        " (1677-09-21 to 2262-04-11): give it a real time (touch -d 'YYYY-MM-DD HH:MM' on it, or"
        " touch -r with a file of the same shoot) and copy it again"
    )


def _entry(path: str, shown: str, rel: str, st: os.stat_result) -> SourceFile | Skipped:
    """The file to copy; one whose path is not UTF-8 fails, as a file that cannot be read does
    (``shown``, ``rel``: its paths as ``shown_names`` made them)."""
    if not is_utf8(path):
        if not is_utf8(os.path.basename(path)):
            reason = f"its name {NOT_UTF8.format(what='it')}"
        else:
            reason = f"the name of a folder in its path {NOT_UTF8.format(what='that folder')}"
        return _skipped(shown, rel, reason, "not-utf8")
    if not TIME_MIN_NS <= st.st_mtime_ns <= TIME_MAX_NS:
        return _skipped(shown, rel, bad_time(st.st_mtime_ns), "bad-time")
    return SourceFile(
        abs_path=path,
        rel_path=rel,
        size=st.st_size,
        mtime_ns=st.st_mtime_ns,
        atime_ns=st.st_atime_ns,
        dev=st.st_dev,
        ino=st.st_ino,
        ctime_ns=st.st_ctime_ns,
    )


#: the name ``scan``'s ``destinations`` give castoff's own state folder (its catalog, in use)
STATE_FOLDER = "castoff's state folder"


def _into_destination(name: str) -> tuple[str, str]:
    """Why a folder that is one of the job's own is not entered, and the skip's code."""
    if name == STATE_FOLDER:
        return "is castoff's state folder (the catalog and reports of this job): not copied", "state"
    return (
        f"is the destination {name} (the same folder, by another path): not copied into itself",
        "destination",
    )


def _scan_root(
    root: str,
    top: str,
    filters: Filters,
    destinations: Mapping[tuple[int, int], str],
    matched: set[str] | None,
) -> Iterator[SourceFile | Skipped | EmptyFolder]:
    # A source named on the command line is followed when it is a symlink (as ``cp -H`` and
    # rsync do: it is what the user pointed at) and keeps the name it was given there (``top``,
    # its label: see ``source_labels``).
    shown = escaped(root)  # (``check_sources`` refuses a source whose path is not UTF-8)
    try:
        st = os.stat(root)
    except OSError as exc:
        yield _skipped(shown, top, f"cannot read: {exc.strerror}", "unreadable")
        return
    if stat.S_ISREG(st.st_mode):
        yield _entry(root, shown, top, st)
        return
    if not stat.S_ISDIR(st.st_mode):
        yield _skipped(shown, top, "special file (FIFO, device or socket)", "special")
        return
    if (dest := destinations.get((st.st_dev, st.st_ino))) is not None:
        yield _skipped(shown, top, *_into_destination(dest))
        return
    seen_dirs = {(st.st_dev, st.st_ino)}
    yield from _walk(root, shown, top, "", filters, seen_dirs, destinations, matched)


def _broken_link(path: str, exc: OSError) -> str | None:
    """Why a symlink followed (--follow-symlinks) leads nowhere: its target does not exist. None
    when the link itself is gone (it vanished) or cannot be read, or for another error (a loop of
    symlinks, ELOOP, stays a file that cannot be read, as a damaged card's entry is)."""
    if not isinstance(exc, FileNotFoundError):
        return None
    try:
        return f"broken symlink (points to {escaped(os.readlink(path))})"
    except OSError:
        return None


def _is_folder(e: os.DirEntry[str], filters: Filters) -> bool:
    """A folder the scan would enter (a symlink to one only with --follow-symlinks)."""
    try:
        return e.is_dir(follow_symlinks=filters.follow_symlinks) and (
            filters.follow_symlinks or not e.is_symlink()
        )
    except OSError:
        return False


def _walk(
    path: str,
    shown: str,
    rel: str,
    rel_under: str,
    filters: Filters,
    seen: set[tuple[int, int]],
    destinations: Mapping[tuple[int, int], str],
    matched: set[str] | None,
) -> Iterator[SourceFile | Skipped | EmptyFolder]:
    try:
        with os.scandir(path) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as exc:
        yield _skipped(shown, rel, f"cannot list folder: {exc.strerror}", "unreadable")
        return
    holds_something = False  # anything but OS junk: then it is no EmptyFolder
    as_shown = shown_names(e.name for e in entries)  # (names that are not UTF-8; usually none)
    for e in entries:
        name = e.name
        shown_name = as_shown.get(name, name)
        child_rel = f"{rel}/{shown_name}"
        child_shown = os.path.join(shown, shown_name)
        child_under = f"{rel_under}/{name}" if rel_under else name
        if filters.skip_junk and is_junk(name):
            yield _skipped(child_shown, child_rel, "OS junk file", "junk")
            continue
        holds_something = True
        if filters.exclude and filters.excluded(child_under, matched):
            if matched is not None and filters.excludes_folders and _is_folder(e, filters):
                filters.excluded_folder(child_under, matched)  # (it matched too, said or not)
            yield _skipped(child_shown, child_rel, "excluded by --exclude", "excluded")
            continue
        is_link = False
        try:
            is_link = e.is_symlink()
            st = e.stat(follow_symlinks=filters.follow_symlinks)
        except OSError as exc:
            if is_link and (broken := _broken_link(e.path, exc)) is not None:
                yield _skipped(child_shown, child_rel, broken, "symlink")  # (a re-run meets it again)
            elif isinstance(exc, FileNotFoundError):
                yield _skipped(child_shown, child_rel, "vanished before it was read", "gone")
            else:
                yield _skipped(child_shown, child_rel, f"cannot read: {exc.strerror}", "unreadable")
            continue
        if is_link and not filters.follow_symlinks:
            yield _skipped(child_shown, child_rel, "symlink (not followed; use --follow-symlinks)", "symlink")
            continue
        if stat.S_ISDIR(st.st_mode):
            if filters.exclude and filters.excluded_folder(child_under, matched):
                yield _skipped(child_shown, child_rel, "excluded by --exclude", "excluded")
                continue
            key = (st.st_dev, st.st_ino)
            if key in seen:
                yield _skipped(child_shown, child_rel, "symlink loop (folder seen before)", "symlink")
                continue
            if (dest := destinations.get(key)) is not None:
                yield _skipped(child_shown, child_rel, *_into_destination(dest))
                continue
            seen.add(key)
            yield from _walk(
                e.path, child_shown, child_rel, child_under, filters, seen, destinations, matched
            )
            seen.discard(key)
        elif stat.S_ISREG(st.st_mode):
            if filters.include and not filters.included(child_under, matched):
                yield _skipped(child_shown, child_rel, "not matched by --include", "excluded")
                continue
            yield _entry(e.path, child_shown, child_rel, st)
        else:
            yield _skipped(child_shown, child_rel, "special file (FIFO, device or socket)", "special")
    if not holds_something and is_utf8(path):  # a name that is not UTF-8 cannot be recorded
        yield EmptyFolder(path, rel)
