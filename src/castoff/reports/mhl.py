"""ASC MHL v2 histories: read the ``ascmhl/`` folder of a scope, and add one generation to it.

A generation is a manifest (``NNNN_<folder>_<YYYY-MM-DD_HHMMSS>Z.mhl``) plus its entry in
``ascmhl_chain.xml``, which names every manifest with its C4. xxh128 is the hash (the ASC default);
BLAKE3 rides in each hash's ``<metadata>``, the one open place the schema leaves for it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import errno
import fcntl
import hashlib
import itertools
import math
import os
import re
import socket
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import xxhash

from castoff import __version__, errors
from castoff.destinations.local import rename_no_replace
from castoff.engine.conflicts import LOCAL_MAX_PATH, is_alt_of, name_max, name_room

NS = "urn:ASC:MHL:v2.0"
DIR_NS = "urn:ASC:MHL:DIRECTORY:v2.0"
#: castoff's own namespace for what the ASC schema has no element for (BLAKE3)
CASTOFF_NS = "urn:castoff:mhl:1"
FOLDER = "ascmhl"
CHAIN = "ascmhl_chain.xml"
REPORTS_FOLDER = "castoff-reports"
#: gitignore-style, as ascmhl reads them; the latest generation's patterns are the ones that count.
#: Every generation lists these, and what its job left out (``write_generation``'s ``ignore``)
IGNORE = (".DS_Store", "ascmhl", "ascmhl/", f"{REPORTS_FOLDER}/", ".castoff.*.partial")
#: what ``ascmhl`` ignores when the latest generation lists no pattern
ASCMHL_DEFAULT_IGNORE = (".DS_Store", "ascmhl", "ascmhl/")
#: the formats the ASC schema allows, in its element order
FORMATS = ("c4", "md5", "sha1", "xxh128", "xxh3", "xxh64")
#: castoff's record, in a manifest's ``<metadata>``, of a file it replaced (``_replaced_xml``)
_REPLACED_FILE = f"{{{CASTOFF_NS}}}file"
_MANIFEST_NAME = re.compile(r"^(\d{4,})(?:_(.+))?\.mhl$")
# Characters XML 1.0 cannot hold at all (control characters, lone surrogates from undecodable names):
# the complement of XML's Char production, spelt out, because the negated class with its astral
# range took 4 ms to compile at every start-up.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_C4_CHARSET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


@dataclass(frozen=True)
class Entry:
    """One file of a generation."""

    path: str  # relative to the scope, POSIX separators
    size: int
    mtime_ns: int
    xxh128: str
    blake3: str | None
    hashed_at: float  # when the bytes were hashed (or verified equal to that hash)
    #: not proven again in this job (a re-run skipped it): left out when the history has it already
    from_earlier_job: bool = False
    #: the path the history recorded these bytes at before, gone since (``previousPath``)
    previous_path: str | None = None
    #: castoff wrote these bytes there in this job and read them back: other bytes the history
    #: has at the path were replaced by castoff itself (``--on-conflict overwrite``), not damaged
    written: bool = False


@dataclass(frozen=True)
class Generation:
    number: int
    name: str  # file name inside ascmhl/
    c4: str


@dataclass(frozen=True)
class Recorded:
    """What a history says about one path: the first hash, as ``ascmhl verify`` uses it."""

    fmt: str
    value: str
    generation: int


@dataclass(frozen=True)
class Written:
    manifest: Path
    generation: int
    files: int
    left_out: tuple[str, ...]  # paths XML cannot hold
    #: paths whose new bytes castoff wrote over others the history has: ignored from now on
    replaced: tuple[str, ...] = ()


def escape(text: str) -> str:
    """``xml.sax.saxutils.escape`` without its import, which pulls in ``urllib.request``, ``ssl``
    and ``http.client`` (a tenth of a job's start-up): the same three replacements, in its order,
    and a carriage return as ``&#13;``: written as it is, every XML parser reads it back as a line
    feed (XML's end-of-line handling), and ``cr\rname.jpg`` would be a path no file has. (Tab and
    line feed are read back as they are; the other control characters XML 1.0 cannot hold at all,
    not even as a reference: ``can_hold``.)"""
    text = text.replace("&", "&amp;").replace(">", "&gt;").replace("<", "&lt;")
    return text.replace("\r", "&#13;") if "\r" in text else text


def can_hold(text: str) -> bool:
    """Whether an XML 1.0 document can hold ``text`` (``escape``d): no control character but tab,
    line feed and carriage return, no lone surrogate, no U+FFFE or U+FFFF. A path it cannot hold is
    left out of a generation, and ``castoff verify`` does not call that file extra."""
    return _NOT_XML.search(text) is None


def c4_of_file(path: Path) -> str:
    """C4 ID (SMPTE ST 2114): SHA-512 in base58, 90 characters starting with ``c4``."""
    h = hashlib.sha512()
    with open(path, "rb") as fh:
        while block := fh.read(1024 * 1024):
            h.update(block)
    return c4_from_sha512(h.digest())


def c4_from_sha512(digest: bytes) -> str:
    n = int.from_bytes(digest, "big")
    out = ""
    while n:
        n, r = divmod(n, 58)
        out = _C4_CHARSET[r] + out
    return "c4" + out.rjust(88, "1")


def is_ignored(rel_path: str) -> bool:
    """Paths castoff keeps out of manifests and of ``castoff verify``: the history itself,
    castoff's reports, hidden partial files and Finder junk."""
    parts = rel_path.split("/")
    if FOLDER in parts or parts[0] == REPORTS_FOLDER:
        return True
    name = parts[-1]
    return name == ".DS_Store" or (name.startswith(".castoff.") and name.endswith(".partial"))


def _literal(text: str) -> str:
    """``text`` as a gitignore-style pattern that matches it alone."""
    body = re.sub(r"[\\*?\[]", lambda m: "\\" + m.group(), text)
    kept = body.rstrip(" ")
    return kept + "\\ " * (len(body) - len(kept))  # trailing spaces are dropped unless escaped


def path_patterns(scope: Path, rel: str) -> tuple[str, ...]:
    """Ignore patterns for the one path ``rel`` under ``scope``: anchored at the scope, as gitignore
    (and ``castoff verify``) reads them, and below the scope's own name, because ``ascmhl`` matches
    patterns against absolute paths, where an anchored one never matches. Nothing for a name XML
    cannot hold as it is: verifying then calls the path extra."""
    if not can_hold(rel) or not can_hold(scope.name) or "\r" in rel + scope.name:
        return ()  # (a pattern with a carriage return: gitignore reads lines, ending at it)
    return f"/{_literal(rel)}", f"**/{_literal(scope.name)}/{_literal(rel)}"


# -- reading a history ----------------------------------------------------------------------


def read_chain(root: Path) -> list[Generation]:
    """The generations of ``root``'s history, each manifest checked against its C4.

    Raises HistoryError when ``ascmhl/`` exists without a chain file, or a manifest is missing or
    altered (the chain is what makes a history trustworthy: castoff never continues a broken one)."""
    folder = root / FOLDER
    chain = folder / CHAIN
    if not folder.exists():
        return []
    if not chain.is_file():
        if not _manifests(root):
            return []  # an empty ascmhl folder: no history yet
        raise errors.HistoryError(
            f"{folder} has no {CHAIN}: this ASC MHL history is incomplete",
            hint="restore the chain file, or move the ascmhl folder away to start a new history",
        )
    gens = _parse_chain(chain)
    for g in gens:
        path = folder / g.name
        if not path.is_file():
            hint = "restore it from a copy of this history, on a drive this folder was copied to"
            if g is gens[-1]:
                hint += (
                    "; or, if castoff said 'ASC MHL not written: Operation not permitted' here, that"
                    " manifest was never written (a castoff older than this one could not write one on"
                    f' exFAT or FAT): delete the <hashlist> entry with sequencenr="{g.number}" from {chain}'
                )
            raise errors.HistoryError(f"manifest {path} named in {CHAIN} is missing", hint=hint)
        if c4_of_file(path) != g.c4:
            raise errors.HistoryError(
                f"manifest {path} was altered after it was written (its C4 differs from {CHAIN})",
                hint="an ASC MHL manifest must never change; restore it from another copy",
            )
    return gens


def _parse_chain(chain: Path) -> list[Generation]:
    return parse_chain(chain.read_bytes(), str(chain))


def parse_chain(data: bytes, where: str) -> list[Generation]:
    """The generations a chain file's bytes name (``where``: what to call it in an error); their
    manifests are not looked at."""
    try:
        root = ET.fromstring(data)  # noqa: S314 (expat >= 2.4.1 refuses entity bombs; no external entities)
    except ET.ParseError as exc:
        raise errors.HistoryError(f"{where} is not valid XML: {exc}") from exc
    gens = []
    for el in root.iter(f"{{{DIR_NS}}}hashlist"):
        name = el.findtext(f"{{{DIR_NS}}}path") or ""
        c4 = el.findtext(f"{{{DIR_NS}}}c4") or ""
        gens.append(Generation(int(el.get("sequencenr") or 0), name, c4))
    return gens


#: how long a job waits for another castoff to finish writing the same history
LOCK_WAIT = 120.0
#: what flock answers where the filesystem keeps no locks: nothing to wait for there
_NO_LOCKS = (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS)


@contextlib.contextmanager
def locked(root: Path, *, shared: bool = False) -> Iterator[None]:
    """``root``'s history held against other castoff processes while a generation is added
    (``shared``: while it is read whole). Two jobs at once on one drive (two cards, two readers)
    would each take the chain's next number, write the same hidden files, drop each other's
    (``recover``) and leave a chain that names a manifest it does not hold, or another's C4. The lock
    is a flock on the folder ``root`` itself: nothing is added to it, and a castoff killed holding it
    holds it no more. A filesystem without locks holds nothing (no other castoff to coordinate with
    is then told apart: the README says so)."""
    try:
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        yield  # no history there: what follows says so
        return
    try:
        op = (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB
        deadline = time.monotonic() + LOCK_WAIT
        while True:
            try:
                fcntl.flock(fd, op)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise errors.HistoryError(
                        f"another castoff has been writing the ASC MHL history in {root} for"
                        f" {LOCK_WAIT:.0f} s",
                        hint="let that job end (castoff jobs lists it), then re-run this one",
                    ) from None
                time.sleep(0.05)
            except OSError as exc:
                if exc.errno in _NO_LOCKS:
                    break
                raise
        yield
    finally:
        os.close(fd)  # the lock goes with it


def _tmp_manifest(folder: Path, number: int) -> Path:
    return folder / f".castoff-{number:04d}.mhl.tmp"


@dataclass(frozen=True)
class Completed:
    """A generation an interrupted castoff left unfinished, that ``recover`` completed."""

    number: int
    #: the manifest's comment (castoff's: "castoff job ID"), when it has one
    comment: str | None


def complete_unfinished(root: Path) -> Completed | None:
    """``recover`` under the history's lock (``locked``), saying what it completed; what a job
    does first, so that it can say so (``write_generation`` recovers too, without a word)."""
    with locked(root):
        return recover(root)


def recover(root: Path) -> Completed | None:
    """Finish what an interrupted castoff left in ``root/ascmhl`` (the generation completed, if
    one was). A generation is written as: the
    manifest to a hidden file (fsynced), that file named (never over another), then the chain
    naming it (a history's first generation makes an empty chain before the name). So castoff's
    manifest numbered right after the chain's last generation, whole, that the chain does not name
    was cut short before its entry: it is added (``ascmhl`` reads it as a generation already). A
    castoff older than this one wrote the chain first: a chain whose last manifest is missing while
    its hidden file is there, with the C4 the chain records, was cut short before the name: named.
    Leftover hidden files are dropped. Anything else (a manifest missing without its hidden file,
    manifests without a chain) is for ``read_chain`` to refuse."""
    folder = root / FOLDER
    chain = folder / CHAIN
    if not folder.is_dir():
        return None
    completed = None
    (folder / f".{CHAIN}.tmp").unlink(missing_ok=True)
    if chain.is_file():
        gens = _parse_chain(chain)
        last = gens[-1] if gens else None
        if last is not None and not (folder / last.name).exists():
            tmp = _tmp_manifest(folder, last.number)
            if tmp.is_file() and c4_of_file(tmp) == last.c4:
                rename_no_replace(str(tmp), str(folder / last.name))
                completed = Completed(last.number, _comment_of(folder / last.name))
        after = last.number if last is not None else 0
        unchained = [(n, p) for n, p in _manifests(root) if n > after]
        if (
            len(unchained) == 1
            and unchained[0][0] == after + 1
            and all((folder / g.name).is_file() for g in gens)
            and _whole_and_castoffs(unchained[0][1])
        ):
            number, path = unchained[0]
            _write_chain(folder, [*gens, Generation(number, path.name, c4_of_file(path))])
            completed = Completed(number, _comment_of(path))
    for tmp in folder.glob(".castoff-*.mhl.tmp"):
        tmp.unlink()
    return completed


def _comment_of(path: Path) -> str | None:
    """The comment of the manifest at ``path`` (in its header: read no further)."""
    try:
        for _event, el in ET.iterparse(path):  # noqa: S314 (as above)
            if el.tag == f"{{{NS}}}comment":
                return (el.text or "").strip() or None
            if el.tag == f"{{{NS}}}hashes" or el.tag.endswith("}hash"):
                return None
    except ET.ParseError:
        return None
    return None


def _whole_and_castoffs(path: Path) -> bool:
    """Whether the manifest at ``path`` was written by castoff and reads to its end."""
    ours = False
    try:
        for _event, el in ET.iterparse(path):  # noqa: S314 (as above)
            if el.tag == f"{{{NS}}}tool":
                ours = (el.text or "").strip() == "castoff"
            el.clear()  # a manifest of 200,000 files is not held
    except ET.ParseError:
        return False
    return ours


def _manifest_entries(
    path: Path, renames: dict[str, str] | None = None, replaced: dict[str, str] | None = None
) -> Iterator[tuple[str, str, str, str | None]]:
    """(path, format, hash, action) for every file hash of one manifest, streamed. ``renames``: each
    entry's ``previousPath`` (the path it had before, in earlier generations) is added to it as
    ``{previous: path}``, as ``ascmhl`` reads a rename. ``replaced``: the xxh128 of each file the
    manifest's castoff metadata records as replaced (``_replaced_xml``) is put in it by path."""
    in_hash = False
    current: str | None = None
    previous: str | None = None
    found: list[tuple[str, str, str | None]] = []
    hashes: ET.Element | None = None
    try:
        for event, el in ET.iterparse(path, events=("start", "end")):  # noqa: S314 (as above)
            if el.tag == f"{{{NS}}}hashes" and event == "start":
                hashes = el
            if el.tag == _REPLACED_FILE and event == "end":
                if replaced is not None and el.text and el.get("xxh128"):
                    replaced[el.text] = str(el.get("xxh128"))
                el.clear()
                continue
            if el.tag == f"{{{NS}}}hash":
                in_hash = event == "start"
                if event == "end":
                    if current is not None:
                        for fmt, value, action in found:
                            yield current, fmt, value, action
                        if previous is not None and renames is not None:
                            renames[previous] = current
                    el.clear()
                    if hashes is not None and len(hashes) and hashes[-1] is el:
                        del hashes[-1]  # a manifest of 200,000 files is not held either
                current = previous = None
                found = []
                continue
            if not in_hash or event != "end":
                continue
            tag = el.tag.rsplit("}", 1)[-1]
            if tag == "path" and el.text:
                current = el.text
            elif tag in FORMATS and el.text:
                found.append((tag, el.text.strip(), el.get("action")))
            elif tag == "previousPath" and el.text:
                previous = el.text
    except ET.ParseError as exc:
        raise errors.HistoryError(f"{path} is not valid XML: {exc}") from exc


def read_history(
    root: Path, replaced: dict[str, str] | None = None
) -> tuple[list[Generation], dict[str, Recorded], dict[str, str]]:
    """Generations, the hash every path is verified against (its first ``original`` one, else its
    first one, as ``ascmhl`` does), and every path's known xxh128. ``replaced``: filled with the
    xxh128 castoff last recorded for each file it replaced (``_replaced_xml``), by path."""
    gens = read_chain(root)
    original: dict[str, Recorded] = {}
    first: dict[str, Recorded] = {}
    xxh: dict[str, str] = {}
    renames: dict[str, str] = {}
    for number, path in _manifests(root):
        for rel, fmt, value, action in _manifest_entries(path, renames, replaced):
            if action == "original" and rel not in original:
                original[rel] = Recorded(fmt, value, number)
            first.setdefault(rel, Recorded(fmt, value, number))
            if fmt == "xxh128" and action != "failed":
                xxh.setdefault(rel, value)
    recorded = first | original
    for old, new in renames.items():  # renamed since: expected at its new path, as ``ascmhl`` does
        if new in recorded and old != new:
            recorded.pop(old, None)
    return gens, recorded, xxh


def recorded_names(root: Path) -> dict[str, str | None]:
    """Every path ``root``'s history has recorded (a hash, or castoff's record of a replacement),
    with the BLAKE3 castoff recorded there last (None where no castoff did). Raises HistoryError
    for a history that does not read."""
    names: dict[str, str | None] = {}
    hash_tag, path_tag, blake3_tag = f"{{{NS}}}hash", f"{{{NS}}}path", f"{{{CASTOFF_NS}}}blake3"
    read_chain(root)
    for _number, path in _manifests(root):
        hashes: ET.Element | None = None
        try:
            for event, el in ET.iterparse(path, events=("start", "end")):  # noqa: S314 (as above)
                if event == "start":
                    if el.tag == f"{{{NS}}}hashes":
                        hashes = el
                elif el.tag == hash_tag:
                    rel = el.findtext(path_tag)
                    if rel:
                        names[rel] = el.findtext(f".//{blake3_tag}") or names.get(rel)
                    if hashes is not None:
                        hashes.clear()  # a manifest of 200,000 files is not held
                elif el.tag == _REPLACED_FILE:
                    if el.text:
                        names[el.text] = el.get("blake3") or names.get(el.text)
                    el.clear()
        except ET.ParseError as exc:
            raise errors.HistoryError(f"{path} is not valid XML: {exc}") from exc
    return names


def latest_patterns(root: Path) -> list[str]:
    """The ignore patterns of the latest generation of ``root``'s history (none when it has none)."""
    found = _manifests(root)
    patterns: list[str] = []
    if found:
        try:
            for event, el in ET.iterparse(found[-1][1], events=("start", "end")):  # noqa: S314 (as above)
                if el.tag == f"{{{NS}}}hashes" or (el.tag == f"{{{NS}}}processinfo" and event == "end"):
                    break  # the patterns come before the first hash
                if el.tag == f"{{{NS}}}pattern" and event == "end":
                    patterns.append(el.text or "")
        except ET.ParseError as exc:
            raise errors.HistoryError(f"{found[-1][1]} is not valid XML: {exc}") from exc
    return patterns


def _matcher(patterns: Iterable[str]) -> Callable[[str], bool]:
    import pathspec  # here, not at the top: its import cost every job's start-up 10 ms

    spec = pathspec.PathSpec.from_lines("gitignore", patterns)
    return spec.match_file


def latest_ignore(root: Path) -> Callable[[str], bool]:
    """Whether a path under ``root`` (relative, POSIX) is left out of its history: castoff's own
    bookkeeping (``is_ignored``), or a match of the latest generation's ignore patterns (the ones
    ``ascmhl verify`` applies; its defaults when there are none), read as gitignore reads them."""
    matches = _matcher(latest_patterns(root) or ASCMHL_DEFAULT_IGNORE)
    return lambda rel: is_ignored(rel) or matches(rel)


def _known_xxh128(root: Path, renames: dict[str, str] | None = None) -> dict[str, str]:
    """Every path's known xxh128 (``read_history``'s third answer alone, for less memory);
    ``renames`` as ``_manifest_entries`` fills it."""
    xxh: dict[str, str] = {}
    for _number, path in _manifests(root):
        for rel, fmt, value, action in _manifest_entries(path, renames):
            if fmt == "xxh128" and action != "failed":
                xxh.setdefault(rel, value)
    return xxh


def _manifests(root: Path) -> list[tuple[int, Path]]:
    folder = root / FOLDER
    if not folder.is_dir():
        return []
    found = []
    for p in folder.iterdir():
        m = _MANIFEST_NAME.match(p.name)
        if m and p.is_file():
            found.append((int(m.group(1)), p))
    return sorted(found)


# -- writing a generation -------------------------------------------------------------------


#: the Unix second -> its local ISO 8601 text, without and with the UTC offset apart
_SECONDS: dict[int, tuple[str, str]] = {}


def _iso(t: float, *, micro: bool = False) -> str:
    """``t`` as local ISO 8601 with its UTC offset, as ``fromtimestamp(t).astimezone().isoformat``
    writes it. The offset is looked up once a second, not twice a file: a generation's files
    crowd into few seconds, and the lookup cost more than the rest of the file's entry. The
    second is the Unix one ``d`` stands in (one instant: one local time, one offset, whatever the
    DST fold), found without building another datetime."""
    d = dt.datetime.fromtimestamp(t)
    second = math.floor(t)
    if d.microsecond == 0 and t - second >= 0.5:
        second += 1  # fromtimestamp rounded the microseconds up into the next second
    known = _SECONDS.get(second)
    if known is None:
        if len(_SECONDS) > 100_000:
            _SECONDS.clear()
        text = d.replace(microsecond=0).astimezone().isoformat(timespec="seconds")
        known = _SECONDS[second] = (text[:19], text[19:])
    base, offset = known
    return f"{base}.{d.microsecond:06d}{offset}" if micro else base + offset


def manifest_name(number: int, root: Path, started: float) -> str:
    stamp = dt.datetime.fromtimestamp(started, dt.UTC).strftime("%Y-%m-%d_%H%M%SZ")
    folder = _NOT_XML.sub("_", root.name or "root").replace("/", "_")
    return f"{number:04d}_{folder}_{stamp}.mhl"


def _hash_xml(e: Entry, action: str) -> str:
    meta = ""
    if e.blake3:
        meta = f"<metadata><castoff:blake3>{e.blake3}</castoff:blake3></metadata>"
    return (
        f"    <hash>\n"
        # a number and ISO 8601 times need no quoting: quoteattr would write the same
        f'      <path size="{e.size}"'
        f' lastmodificationdate="{_iso(e.mtime_ns / 1e9)}">{escape(e.path)}</path>\n'
        f'      <xxh128 action="{action}" hashdate="{_iso(e.hashed_at, micro=True)}">'
        f"{e.xxh128}</xxh128>\n"
        + (
            ""
            if e.previous_path is None
            else f"      <previousPath>{escape(e.previous_path)}</previousPath>\n"
        )
        + f"      {meta}\n"
        f"    </hash>\n"
    )


def _header(*, process: str, started: float, comment: str | None, ignore: Iterable[str]) -> str:
    host = escape(_NOT_XML.sub("_", socket.gethostname() or "unknown"))
    patterns = "".join(f"<pattern>{escape(p)}</pattern>" for p in dict.fromkeys((*IGNORE, *ignore)))
    comment_xml = f"\n    <comment>{escape(_NOT_XML.sub('_', comment))}</comment>" if comment else ""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<hashlist version="2.0" xmlns="{NS}" xmlns:castoff="{CASTOFF_NS}">\n'
        "  <creatorinfo>\n"
        f"    <creationdate>{_iso(started)}</creationdate>\n"
        f"    <hostname>{host}</hostname>\n"
        f'    <tool version="{escape(__version__)}">castoff</tool>{comment_xml}\n'
        "  </creatorinfo>\n"
        f"  <processinfo>\n    <process>{process}</process>\n    <ignore>{patterns}</ignore>\n"
        "  </processinfo>\n"
    )


def _replaced_xml(replaced: list[Entry]) -> str:
    """The files a generation records as castoff's replacements, in its ``<metadata>``: ASC MHL
    cannot take new bytes at a path it has recorded (a changed file fails from then on: the
    specification's ASC MHL Verify, note 2), and leaves a file that may change out by its ignore
    list. So the generation ignores each such path, and castoff keeps the bytes it wrote there in
    its own namespace, where ``castoff verify`` checks them (``ascmhl`` leaves them be)."""
    if not replaced:
        return ""
    files = "".join(
        f'      <castoff:file size="{e.size}" lastmodificationdate="{_iso(e.mtime_ns / 1e9)}"'
        f' hashdate="{_iso(e.hashed_at, micro=True)}" xxh128="{e.xxh128}"'
        + (f' blake3="{e.blake3}"' if e.blake3 else "")
        + f">{escape(e.path)}</castoff:file>\n"
        for e in replaced
    )
    return f"  <metadata>\n    <castoff:replaced>\n{files}    </castoff:replaced>\n  </metadata>\n"


def _action(e: Entry, known: dict[str, str]) -> str:
    before = known.get(e.path)
    if before is None:
        return "original"
    return "verified" if before == e.xxh128 else "failed"


def write_generation(
    root: Path,
    entries: Iterable[Entry],
    *,
    started: float,
    process: str = "transfer",
    comment: str | None = None,
    ignore: Iterable[str] = (),
    carry_ignore: bool = False,
) -> Written | None:
    """Add a generation to ``root``'s history (creating it when there is none) listing ``entries``,
    whose ignore list adds ``ignore`` (what the job left out) to ``IGNORE``, and with
    ``carry_ignore`` the latest generation's patterns (an ignore list only grows: a destination's).

    Entries ``from_earlier_job`` are left out when the history already records them (a re-run that
    skipped them proves nothing new). An entry castoff ``written`` over other bytes the history has
    at its path is a replacement (``_replaced_xml``): its path is ignored from then on, its bytes
    in castoff's metadata, as are those of a path the carried patterns ignore. Nothing is written
    when no entry remains. The manifest appears under its name only complete and fsynced; then the
    chain that names it is replaced atomically."""
    entries = iter(entries)
    first = next(entries, None)
    if first is None:
        return None  # nothing to record (and the folder may not even exist: a dead destination)
    with locked(root):  # one castoff at a time adds to a history
        return _add_generation(
            root,
            itertools.chain([first], entries),
            started=started,
            process=process,
            comment=comment,
            ignore=ignore,
            carry_ignore=carry_ignore,
        )


def _add_generation(
    root: Path,
    entries: Iterator[Entry],
    *,
    started: float,
    process: str,
    comment: str | None,
    ignore: Iterable[str],
    carry_ignore: bool,
) -> Written | None:
    """``write_generation``'s work, under its lock."""
    recover(root)
    gens = read_chain(root)
    ignoring = list(dict.fromkeys((*IGNORE, *ignore)))
    carried = [p for p in (latest_patterns(root) if carry_ignore and gens else ()) if p not in ignoring]
    ignoring += carried
    # a path the carried patterns ignore gets no hash (the specification's Ignore Semantic): only
    # castoff's record of its bytes. (None without such patterns: no match tried per entry)
    ignored = _matcher(carried) if carried else None
    replaced: list[Entry] = []  # in the generation's metadata
    new_replaced: list[str] = []  # of them, replaced in this job
    history: dict[str, str] | None = None  # read when an entry needs it: a re-run may not
    renamed: dict[str, str] = {}  # the history's renames, {previous path: path}
    elsewhere: dict[str, list[str]] | None = None  # xxh128: the history's paths of those bytes

    def known() -> dict[str, str]:
        nonlocal history
        if history is None:
            history = _known_xxh128(root, renamed)
        return history

    folder_name_max: int | None = None  # the filesystem's, asked when a name needs it

    def alt_room(path: str) -> int | None:
        """The bytes a keep-both name of ``path`` was given there (``Job._keep_both``'s)."""
        nonlocal folder_name_max
        if folder_name_max is None:
            folder_name_max = name_max(str(root))
        return name_room(str(root / path), max_name=folder_name_max, max_path=LOCAL_MAX_PATH)

    def moved_from(e: Entry) -> str | None:
        """One of this path's keep-both names (``photo (2).jpg``) that the history has these bytes
        at, gone from the folder since: moved over this one (the good copy castoff landed beside
        a damaged one, put in its place as castoff advises). Said as ``previousPath``, so that no
        verifier looks for it there any more (``ascmhl create`` infers renames the same way; this
        infers only that one, so that no other missing file is ever explained away)."""
        nonlocal elsewhere
        if elsewhere is None:
            elsewhere = {}
            for rel, value in known().items():
                elsewhere.setdefault(value, []).append(rel)
        for rel in elsewhere.get(e.xxh128, ()):
            if (
                rel != e.path
                and rel not in renamed
                and is_alt_of(rel, e.path, max_name=alt_room(e.path))
                and not os.path.lexists(root / rel)
            ):
                renamed[rel] = e.path  # one new path for each old one
                return rel
        return None

    folder = root / FOLDER
    number = max([g.number for g in gens] + [n for n, _ in _manifests(root)] + [0]) + 1
    final = folder / manifest_name(number, root, started)
    tmp = _tmp_manifest(folder, number)
    written = 0
    left_out: list[str] = []
    folder.mkdir(exist_ok=True)
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            header = _header(process=process, started=started, comment=comment, ignore=ignoring)
            fh.write(header)
            for e in entries:
                if e.from_earlier_job and e.path in known():
                    continue
                if not can_hold(e.path):
                    left_out.append(e.path)
                    continue
                if ignored is not None and ignored(e.path):
                    replaced.append(e)
                    continue
                action = _action(e, known())
                if action == "failed" and e.written and (patterns := path_patterns(root, e.path)):
                    ignoring += patterns
                    replaced.append(e)
                    new_replaced.append(e.path)
                    continue
                if written == 0:
                    fh.write("  <hashes>\n")  # only with a hash in it (the schema's HashesType)
                if action != "failed" and (previous := moved_from(e)) is not None:
                    fh.write(_hash_xml(dataclasses.replace(e, previous_path=previous), action))
                else:
                    fh.write(_hash_xml(e, action))
                written += 1
            fh.write(("  </hashes>\n" if written else "") + _replaced_xml(replaced) + "</hashlist>\n")
            fh.flush()
            os.fsync(fh.fileno())
        if new_replaced:  # the patterns come before the hashes: the header again, with them
            again = _header(process=process, started=started, comment=comment, ignore=ignoring)
            _rewrite_header(tmp, len(header.encode("utf-8")), again)
        if written == 0 and not replaced:
            tmp.unlink()
            if not gens and not any(folder.iterdir()):
                folder.rmdir()
            return None
        c4 = c4_of_file(tmp)
        # The name first (a rename that never replaces a manifest of that name: exFAT and FAT have
        # no hard links), then the chain: it never names a manifest that is not there. A crash in
        # between leaves the manifest without its entry, which ``recover`` adds: beside a chain,
        # made empty first for a new history (a manifest without one is a history that lost it).
        if not (folder / CHAIN).exists():
            _write_chain(folder, [])
        rename_no_replace(str(tmp), str(final))
        _write_chain(folder, [*gens, Generation(number, final.name, c4)])
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return Written(final, number, written + len(replaced), tuple(left_out), tuple(new_replaced))


def _rewrite_header(tmp: Path, body_at: int, header: str) -> None:
    """The manifest being written at ``tmp`` with ``header`` in place of what precedes ``body_at``:
    written to another hidden file (fsynced) that then takes its name."""
    other = tmp.with_name(tmp.name.replace(".mhl.tmp", "-header.mhl.tmp"))  # ``recover`` drops it
    try:
        with open(tmp, "rb") as fin, open(other, "wb") as fout:
            fout.write(header.encode("utf-8"))
            fin.seek(body_at)
            while block := fin.read(1024 * 1024):
                fout.write(block)
            fout.flush()
            os.fsync(fout.fileno())
        os.replace(other, tmp)
    finally:
        other.unlink(missing_ok=True)


def _write_chain(folder: Path, gens: list[Generation]) -> None:
    tmp = folder / f".{CHAIN}.tmp"
    body = "".join(
        f'  <hashlist sequencenr="{g.number}">\n'
        f"    <path>{escape(g.name)}</path>\n"
        f"    <c4>{g.c4}</c4>\n"
        "  </hashlist>\n"
        for g in gens
    )
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(f'<?xml version="1.0" encoding="UTF-8"?>\n<ascmhldirectory xmlns="{DIR_NS}">\n')
        fh.write(body)
        fh.write("</ascmhldirectory>\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, folder / CHAIN)
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


def xxh128_of_file(path: str) -> str:
    """xxh128 of a file on disk; only for files whose hash an older catalog never recorded."""
    h = xxhash.xxh3_128()
    with open(path, "rb") as fh:
        while block := fh.read(8 * 1024 * 1024):
            h.update(block)
    return h.hexdigest()
