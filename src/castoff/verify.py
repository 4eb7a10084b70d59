"""``castoff verify``: re-hash a folder against what was recorded about it, and name every difference.

The record is the folder's ASC MHL history (each path's original hash, as ``ascmhl`` verifies) or a
castoff JSON report (the BLAKE3 of every file it delivered there, and the files it did not deliver
there, which fail the check until they are). ``ascmhl/`` and ``castoff-reports/`` are bookkeeping,
not content, and are never counted.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import blake3
import xxhash

from castoff import errors
from castoff.destinations.local import UNREADABLE_HINT, NotAFile, open_regular, unreadable_folder
from castoff.reports import mhl
from castoff.ui.term import json_ascii
from castoff.units import plural

OK_STATUSES = ("verified", "already", "skipped")


class _Hasher(Protocol):
    def update(self, data: bytes, /) -> object: ...
    def hexdigest(self) -> str: ...


HASHERS: dict[str, Callable[[], _Hasher]] = {
    "blake3": blake3.blake3,
    "md5": lambda: hashlib.md5(usedforsecurity=False),
    "sha1": lambda: hashlib.sha1(usedforsecurity=False),
    "xxh128": xxhash.xxh3_128,
    "xxh3": xxhash.xxh3_64,
    "xxh64": xxhash.xxh64,
    "c4": hashlib.sha512,
}


@dataclass(frozen=True)
class Expected:
    fmt: str
    value: str


@dataclass(frozen=True)
class NotDelivered:
    """A file of a report's job that the job did not deliver into the folder being checked."""

    path: str  # where it was to go, relative to the folder; the report's path when it names no place
    status: str  # its status there in the job: failed, conflict, incomplete, ...
    error: str | None
    #: its BLAKE3 as the job read it, when the job named its place in the folder: found there
    #: with those bytes (a later job delivered it), it is there after all
    blake3: str | None = None


@dataclass
class Result:
    folder: str
    against: str  # what the folder was checked against, in words
    checked: int = 0
    matched: int = 0
    missing: list[str] = field(default_factory=list)
    altered: list[dict[str, str]] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    #: files there that a job's report does not name: other jobs' copies on the same drive, so
    #: counted, not listed, and no failure (a history covers its whole folder: there, ``extra``)
    others: int = 0
    #: files there that no ASC MHL history can name, because XML cannot hold their names (a
    #: control character): castoff leaves them out of its generations (and says so), so they are
    #: named here, not checked, and no failure; a job's JSON report has them (``--report``)
    unrecordable: list[str] = field(default_factory=list)
    #: a report's ASC MHL chain file (a card's history copied there) that is a later version of
    #: the one the job delivered: the history grew since (the card's next generation was carried
    #: there, or a later offload copied its grown chain). Its manifests are checked against it,
    #: those the job delivered among them, so it is named, and no failure
    grown: list[dict[str, object]] = field(default_factory=list)
    #: a report's files that its job did not deliver into the folder (failed, conflict or
    #: incomplete there) and that are not there since, with those bytes: the folder does not hold
    #: the job, so they fail the check as a missing file does (``path``, ``status``, ``error``)
    undelivered: list[dict[str, str | None]] = field(default_factory=list)
    #: of those the job did not deliver, how many are there now with the bytes it read (a re-run)
    delivered_since: int = 0

    @property
    def ok(self) -> bool:
        return not (self.missing or self.altered or self.extra or self.undelivered)


def hash_file(path: str, fmt: str) -> str:
    """NotAFile for a symlink, a FIFO or a device: never followed, never waited on."""
    h = HASHERS[fmt]()
    with open_regular(path) as fh:
        while block := fh.read(8 * 1024 * 1024):
            h.update(block)
    if fmt == "c4":
        return mhl.c4_from_sha512(bytes.fromhex(h.hexdigest()))
    return h.hexdigest()


def from_mhl(root: Path) -> tuple[dict[str, Expected], str, Callable[[str], bool]]:
    """What the history records, in words, and what it leaves out (its latest ignore patterns).
    A file castoff replaced (``--on-conflict overwrite``) is left out of the history from then on,
    as ASC MHL has it; it is checked against the bytes castoff last recorded for it."""
    replaced: dict[str, str] = {}
    gens, recorded, _ = mhl.read_history(root, replaced)
    if not recorded and not replaced:
        raise errors.UsageError(f"{root / mhl.FOLDER} records no file", hint="nothing to verify against")
    left_out = mhl.latest_ignore(root)
    expected = {p: Expected(r.fmt, r.value) for p, r in recorded.items() if not left_out(p)}
    ours = {p: Expected("xxh128", v) for p, v in replaced.items() if left_out(p) and not mhl.is_ignored(p)}

    def ignored(rel: str) -> bool:
        return rel not in ours and left_out(rel)

    return expected | ours, f"ASC MHL history, {plural(len(gens), 'generation')}", ignored


def from_report(root: Path, report: Path) -> tuple[dict[str, Expected], str, list[NotDelivered]]:
    """What the report's job delivered into ``root``, in words, and what it did not deliver there."""
    if not report.is_file():
        raise errors.UsageError(
            f"{report} does not exist" if not report.exists() else f"{report} is not a file",
            hint="give the JSON report the job wrote ('castoff jobs show ID' names it)",
        )
    hint = "give the JSON report the job wrote ('castoff jobs show ID' names it)"
    try:
        data = json.loads(report.read_text(encoding="utf-8"))
    except OSError as exc:
        raise errors.UsageError(f"{report} could not be read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise errors.UsageError(f"{report} is not a castoff JSON report: it is not text", hint=hint) from None
    except ValueError as exc:
        raise errors.UsageError(
            f"{report} is not a castoff JSON report: it is not JSON ({exc})", hint=hint
        ) from None
    missing = [k for k in ("schema", "files") if not isinstance(data, dict) or k not in data]
    if missing:
        raise errors.UsageError(
            f"{report} is not a castoff JSON report: it has no "
            + " and no ".join(f"{k!r} field" for k in missing),
            hint=hint,
        )
    files, schema = data["files"], data["schema"]
    if not isinstance(files, list):
        raise errors.UsageError(
            f"{report} is not a castoff JSON report: its 'files' field is not a list", hint=hint
        )
    if not str(schema).startswith("castoff.report/"):
        raise errors.UsageError(f"{report} has schema {schema!r}, not a castoff.report/N")
    try:
        delivered = [
            (str(d["destination"]), str(d["target"]), str(f["blake3"]))
            for f in files
            if f.get("blake3")
            for d in f.get("destinations", [])
            if d.get("status") in OK_STATUSES and d.get("target") and d.get("destination")
        ]
        # (destination, target or "", the file's path in the report, status, error, blake3)
        not_there = [
            (
                str(d["destination"]),
                str(d.get("target") or ""),
                str(f["path"]),
                str(d["status"]),
                d.get("error"),
                f.get("blake3"),
            )
            for f in files
            for d in f.get("destinations", [])
            if d.get("status") not in OK_STATUSES and d.get("destination")
        ]
    except (AttributeError, KeyError, TypeError):
        raise errors.UsageError(
            f"{report} is not a castoff JSON report: an entry of its 'files' list is not a file as"
            " castoff writes it (each has a path, a blake3 and its destinations, each with a"
            " destination, a status and a target)",
            hint=hint,
        ) from None
    real_root = os.path.realpath(root)

    def inside(target: str) -> str | None:
        """``target``'s path relative to ``root`` when it lies in it, else None."""
        # the folders resolved, not the file: a symlink put in a copy's place stays the copy's path
        folder, name = os.path.split(target)
        resolved = os.path.join(os.path.realpath(folder), name)
        if resolved.startswith(real_root + os.sep):
            return os.path.relpath(resolved, real_root).replace(os.sep, "/")
        return None

    expected: dict[str, Expected] = {}
    for _, target, digest in delivered:
        if (rel := inside(target)) is not None:
            expected[rel] = Expected("blake3", digest)
    undelivered: list[NotDelivered] = []
    for _, target, _, status, error, digest in not_there:
        if target and (rel := inside(target)) is not None:
            undelivered.append(NotDelivered(rel, status, error, digest))
    summary = data.get("summary") if isinstance(data.get("summary"), dict) else {}

    def is_root(dest: str) -> bool:
        """Whether the job's destination ``dest`` is this very folder (its ``location``)."""
        where = summary.get(dest)
        folder = where.get("location") if isinstance(where, dict) else None
        return os.path.realpath(str(folder or dest)) == real_root

    # a file the job never got to there has no place in it: named by its path in the report
    undelivered += [
        NotDelivered(path, status, error)
        for dest, target, path, status, error, _ in not_there
        if not target and is_root(dest)
    ]
    if expected or undelivered:
        return expected, f"castoff report {report.name}", undelivered
    order = list(summary)  # the job's --to order
    moved = _moved_destination(root, delivered, order)
    if moved is None:
        raise errors.UsageError(
            f"the report {report} names no file delivered into {root}",
            hint="pass the folder the job copied to (its --to), and that job's report",
        )
    was, expected = moved
    prefix = was[0].rstrip("/") + "/"
    undelivered = [
        NotDelivered(
            target[len(prefix) :] if target.startswith(prefix) else path,
            status,
            error,
            digest if target.startswith(prefix) else None,
        )
        for dest, target, path, status, error, digest in not_there
        if dest == was[0]
    ]
    if len(was) == 1:
        return (
            expected,
            f"castoff report {report.name}; its destination {was[0]} is this folder now",
            undelivered,
        )
    # identical copies (the same files under the same paths): which one this was cannot be told
    return (
        expected,
        f"castoff report {report.name}; this folder is one of its destinations, moved:"
        f" {' or '.join(was)} (they hold the same files, so either can be checked against)",
        undelivered,
    )


def _moved_destination(
    root: Path, delivered: list[tuple[str, str, str]], order: Sequence[str] = ()
) -> tuple[list[str], dict[str, Expected]] | None:
    """A drive mounted elsewhere since the job (``/Volumes/SSD`` then, ``/media/ssd`` now): the
    report's destination folder whose files are found under ``root`` by their paths inside it,
    the one with the most of them (then the one with the fewest not found) when the job had
    several. Those that match as well (identical copies: ssd and nas) are all named, with the
    files of the first: nothing tells which one this was. None when no file is found."""
    by_dest: dict[str, dict[str, Expected]] = {}
    for dest, target, digest in delivered:
        inside = dest.rstrip("/") + "/"
        if target.startswith(inside):
            by_dest.setdefault(dest, {})[target[len(inside) :]] = Expected("blake3", digest)
    found = {d: sum(os.path.lexists(root / rel) for rel in exp) for d, exp in by_dest.items()}
    score = {d: (found[d], found[d] - len(by_dest[d])) for d in by_dest}
    best = max(score.values(), default=None)
    if best is None or not best[0]:
        return None
    rank = {d: i for i, d in enumerate(order)}
    tied = sorted((d for d in by_dest if score[d] == best), key=lambda d: rank.get(d, len(rank)))
    return tied, by_dest[tied[0]]


def _grown_chain(root: Path, rel: str, expected: dict[str, Expected]) -> int | None:
    """The number of generations the chain file ``rel`` (a report's, inside an ``ascmhl`` folder)
    names now, when it is a later version of the one the job delivered: a valid chain (every
    manifest it names is there with the C4 it records) that names every manifest of that folder
    the report records, and more. None when it is not (then it is altered)."""
    folder = rel.rpartition("/")[0]
    if rel.rpartition("/")[2] != mhl.CHAIN or folder.rpartition("/")[2] != mhl.FOLDER:
        return None
    scope = root / folder.rpartition("/")[0] if "/" in folder else root
    try:
        gens = mhl.read_chain(scope)
    except (errors.HistoryError, OSError):
        return None
    named = {g.name for g in gens}
    delivered = {p.rpartition("/")[2] for p in expected if p.rpartition("/")[0] == folder and p != rel}
    if not gens or not delivered <= named or len(named) <= len(delivered):
        return None
    return len(gens)


def walk(
    root: Path, ignored: Callable[[str], bool] = mhl.is_ignored, unreadable: dict[str, str] | None = None
) -> Iterator[str]:
    """Relative POSIX paths of every file under ``root`` but the ``ignored`` (symlinks are not
    followed). ``unreadable``: each folder that could not be listed (its relative path, "" for
    ``root``) and why; the files in it are not among the paths."""

    def cannot_list(exc: OSError) -> None:
        if unreadable is not None:
            rel = os.path.relpath(exc.filename or root, root)
            unreadable["" if rel == "." else rel.replace(os.sep, "/")] = str(exc.strerror or exc)

    for folder, dirs, files in os.walk(root, onerror=cannot_list):
        rel_folder = os.path.relpath(folder, root)
        dirs.sort()
        for name in sorted(files):
            rel = name if rel_folder == "." else f"{rel_folder}/{name}".replace(os.sep, "/")
            if not ignored(rel):
                yield rel


def check(
    root: Path,
    expected: dict[str, Expected],
    against: str,
    ignored: Callable[[str], bool] = mhl.is_ignored,
    *,
    whole_folder: bool = True,
    undelivered: Sequence[NotDelivered] = (),
) -> Result:
    """``whole_folder``: the record covers every file there (a history), so a file it does not
    name is extra; otherwise (one job's report) it is another job's, counted in ``others``.
    ``undelivered``: the report's files its job did not deliver there; one found at its place
    with the bytes the job read is there (a later job delivered it), the others fail the check."""
    result = Result(str(root), against)
    present = set()
    later = {u.path: u.blake3 for u in undelivered if u.blake3}
    arrived: set[str] = set()
    unreadable: dict[str, str] = {}
    for rel in walk(root, ignored, unreadable):
        present.add(rel)
        want = expected.get(rel)
        if want is None and rel in later:
            if _hash_or_why(root / rel, "blake3") == later[rel]:
                arrived.add(rel)
            else:
                result.others += 1  # another file at its place (a conflict kept it): not the job's
            continue
        if want is None:
            if whole_folder and not mhl.can_hold(rel):
                result.unrecordable.append(rel)
            elif whole_folder:
                result.extra.append(rel)
            else:
                result.others += 1
            continue
        result.checked += 1
        got = _hash_or_why(root / rel, want.fmt)
        if got == want.value:
            result.matched += 1
        elif not whole_folder and (now := _grown_chain(root, rel, expected)) is not None:
            result.matched += 1
            result.grown.append({"path": rel, "generations": now})
        else:
            result.altered.append({"path": rel, "format": want.fmt, "expected": want.value, "found": got})
    result.missing = sorted(p for p in expected if p not in present)
    result.checked += len(result.missing)
    if unreadable:  # not missing: in a folder that could not be listed, so never looked at
        missing = []
        for p in result.missing:
            folder = _listed_in(p, unreadable)
            if folder is None:
                missing.append(p)
                continue
            why = f"unreadable: its folder {folder or '.'} could not be listed: {unreadable[folder]}"
            result.altered.append(
                {"path": p, "format": expected[p].fmt, "expected": expected[p].value, "found": why}
            )
        result.missing = missing
    result.delivered_since = len(arrived)
    result.undelivered = [
        {"path": u.path, "status": u.status, "error": u.error}
        for u in sorted(undelivered, key=lambda u: u.path)
        if u.path not in arrived
    ]
    return result


def _listed_in(path: str, folders: dict[str, str]) -> str | None:
    """The folder of ``folders`` that ``path`` is in (at any depth; "" is the root), or None."""
    folder = path
    while folder:
        folder = folder.rpartition("/")[0]
        if folder in folders:
            return folder
    return None  # ("" is looked up last, once the path has no "/" left)


def _hash_or_why(path: Path, fmt: str) -> str:
    """The file's hash, or what is there instead ("a symlink, not a file", "unreadable: …")."""
    try:
        return hash_file(str(path), fmt)
    except NotAFile as exc:
        return f"{exc.what}, not a file"
    except OSError as exc:
        return f"unreadable: {exc.strerror or exc}"


def _show(path: str) -> str:
    return path if path.isprintable() else repr(path)


def print_result(r: Result, out: Any = None) -> None:
    out = out or sys.stdout
    print(f"castoff verify: {r.folder} (against its {r.against})", file=out)
    for p in r.missing:
        print(f"  missing  {_show(p)}", file=out)
    for a in r.altered:
        found = a["found"] if " " in a["found"] else f"{a['found'][:16]}…"  # a hash, or what is there
        print(
            f"  altered  {_show(a['path'])}  ({a['format']} expected {a['expected'][:16]}…, found {found})",
            file=out,
        )
    for p in r.extra:
        print(f"  extra    {_show(p)}  (not in the record)", file=out)
    for u in r.undelivered:
        why = f": {u['error']}" if u["error"] else ""
        print(f"  not delivered  {_show(str(u['path']))}  ({u['status']} here in the job{why})", file=out)
    for g in r.grown:
        print(
            f"  grown    {_show(str(g['path']))}  (a later version: this ASC MHL history grew since the"
            f" job, {g['generations']} generations now, every manifest the job delivered among them;"
            " not a failure)",
            file=out,
        )
    for p in r.unrecordable:
        print(
            f"  unrecorded  {_show(p)}  (XML cannot hold its name: not in the history, not checked)", file=out
        )
    every = "the 1 recorded file matches" if r.matched == 1 else f"all {r.matched} recorded files match"
    if r.grown:
        every += f" ({plural(len(r.grown), 'ASC MHL chain')} as a later version)"
    if r.ok and r.others:
        print(f"{every}; nothing missing", file=out)
    elif r.ok:
        print(f"{every}; nothing missing, nothing extra", file=out)
    else:
        print(
            f"{plural(r.checked, 'recorded file')}: {r.matched} match, {len(r.missing)} missing,"
            f" {len(r.altered)} altered; {plural(len(r.extra), 'extra file')}",
            file=out,
        )
    if r.undelivered:
        n = len(r.undelivered)
        them = "it" if n == 1 else "them"
        print(
            f"{plural(n, 'file')} of the job never reached this folder (the job did not deliver {them}"
            f" here, nor did a later job since): this folder does not hold the whole job; run the"
            f" job's copy command again to deliver {them}",
            file=out,
        )
    if r.delivered_since:
        are = "is" if r.delivered_since == 1 else "are"
        print(
            f"{plural(r.delivered_since, 'file')} the job did not deliver here {are} here now, with"
            " the bytes it read (a later job delivered them)",
            file=out,
        )
    if r.unrecordable:
        print(
            f"{plural(len(r.unrecordable), 'file')} here not checked: no ASC MHL history can name"
            " a file whose name XML cannot hold (check it against its job's report: --report)",
            file=out,
        )
    if r.others:
        are = "is" if r.others == 1 else "are"
        print(f"{plural(r.others, 'other file')} here {are} not from this job: not checked", file=out)


def _expected(
    root: Path, report: str | None
) -> tuple[dict[str, Expected], str, Callable[[str], bool], list[NotDelivered]]:
    """What ``root`` should hold, from ``report`` or else its ASC MHL history, in words, what is
    left out there, and what the report's job did not deliver."""
    if report:
        expected, against, undelivered = from_report(root, Path(report))
        # a card's own ASC MHL history the job copied is content the report names: checked, as
        # any file it delivered (the destination's own history, never in a report, stays out)
        return expected, against, lambda rel: mhl.is_ignored(rel) and rel not in expected, undelivered
    if (root / mhl.FOLDER).is_dir():
        expected, against, ignored = from_mhl(root)
        return expected, against, ignored, []
    raise errors.UsageError(
        f"{root} has no {mhl.FOLDER}/ history to verify against",
        hint=f"pass --report JOB.json (copies are in {mhl.REPORTS_FOLDER}/ with --report-to destination)",
    )


def cmd_verify(args: argparse.Namespace) -> int:
    if "://" in args.path:  # Path() would fold s3://b into s3:/b
        raise errors.UsageError(
            f"{args.path}: castoff verify reads a folder, not a bucket",
            hint="to read a bucket's copies back and compare them (the key must read), re-run the"
            " copy with --rehash --verify-download",
        )
    root = Path(args.path)
    unreadable = unreadable_folder(str(root))
    if unreadable is not None:  # a share whose connection died: said, not a traceback
        raise errors.UsageError(unreadable, hint=UNREADABLE_HINT)
    if not root.is_dir():
        raise errors.UsageError(f"{root} is not a folder", hint="give the destination folder to check")
    try:
        expected, against, ignored, undelivered = _expected(root, args.report)
    except errors.HistoryError as exc:
        # The record itself was tampered with or lost a part: that is a failed verification.
        print(f"castoff verify: {root}: the ASC MHL history cannot be trusted: {exc}", file=sys.stderr)
        return errors.EXIT_FAILED
    except OSError as exc:  # the share died since (a FUSE cache answered for the folder)
        where = exc.filename or root
        raise errors.UsageError(f"cannot read {where}: {exc.strerror or exc}", hint=UNREADABLE_HINT) from exc
    result = check(root, expected, against, ignored, whole_folder=not args.report, undelivered=undelivered)
    if args.json:
        print(json.dumps({"ok": result.ok, **asdict(result)}, indent=2, ensure_ascii=json_ascii()))
    else:
        print_result(result)
    return errors.EXIT_OK if result.ok else errors.EXIT_FAILED
