"""The HTML job report: one self-contained file (inline CSS, no script, no network) a person can read.

Built from the catalog and streamed to disk as it renders: the summary per destination, the problems,
then every file at every destination. Every name goes through Jinja's autoescaping.
"""

from __future__ import annotations

import functools
import html as _html
import json
import re
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import jinja2
from markupsafe import Markup

from castoff import __version__
from castoff.catalog.db import Catalog
from castoff.destinations.spec import shown_argv
from castoff.reports.json_report import iter_empty_folders
from castoff.reports.rows import file_groups, named_groups
from castoff.reports.staged import staged
from castoff.reports.summary import (
    OK,
    PARTIAL_LIST,
    PROBLEM_FILES_SQL,
    Tally,
    files_partial,
    is_problem,
    tally,
)
from castoff.units import TimeText, format_bytes


@dataclass(frozen=True)
class FileGroup:
    """One file and its rows, one per destination (one row with ``dest_name`` None when it has none)."""

    file: sqlite3.Row
    rows: list[sqlite3.Row]


WHEN = "%Y-%m-%d %H:%M:%S"


def _when(t: float | None) -> str:
    if t is None:
        return ""
    return time.strftime(WHEN, time.localtime(t))


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {sec:02d} s"


def _rate(bps: float | None) -> str:
    return "–" if bps is None else f"{format_bytes(bps)}/s"


def _bytecode_cache(folder: Path) -> jinja2.BytecodeCache | None:
    """The compiled template, kept beside the catalog: compiling it again costs every job 40 ms."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return jinja2.FileSystemBytecodeCache(str(folder), f"castoff-{__version__}-%s.cache")


@functools.cache
def _env(cache_folder: Path) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("castoff.reports", "templates"),
        bytecode_cache=_bytecode_cache(cache_folder),
        autoescape=True,  # every value is escaped unless a template says otherwise (none does)
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters.update(
        bytes=format_bytes,
        when=_when,
        duration=_duration,
        rate=_rate,
        name=_name_filter,
        visible=_visible_filter,
    )
    env.tests["ok"] = lambda status: status in OK
    return env


def _problems(catalog: Catalog, job_id: str) -> Iterator[FileGroup]:
    """The files with a problem, each with only its rows that have one."""
    for rows in named_groups(catalog, job_id, PROBLEM_FILES_SQL):
        items = [r for r in rows if is_problem(r)]
        if items:
            yield FileGroup(items[0], items)


def _esc(value: object) -> str:
    return _html.escape(str(value))


#: characters a page would not show as themselves: control characters (C0, DEL, C1), format
#: characters (the bidi controls that turn a name around, zero-width ones, a soft hyphen, a BOM:
#: Unicode's Cf), line and paragraph separators, spaces other than the plain one (Zs), and the
#: Hangul fillers, drawn blank. Spelt out (Unicode 15; a test checks it against ``unicodedata``):
#: working it out at import cost every job's start-up.
ODD = (
    "\x00-\x1f\x7f-\xa0\xad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u115f\u1160"
    "\u1680\u180e\u2000-\u200f\u2028-\u202f\u205f-\u2064\u2066-\u206f\u3000\u3164\ufeff"
    "\uffa0\ufff9-\ufffb\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3"
    "\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f"
)
#: in a name, also the spaces a page would not show: at either end of a name in its path, and
#: after another (the page folds a run of spaces into one)
_ODD_NAME = re.compile(f"[{ODD}]|(?:^|(?<=/)) +| +(?=/|\\Z)|(?<= ) +")
_ODD_TEXT = re.compile(f"[{ODD}]")
#: a character ``html.escape`` replaces: text without one is its own escape
_special = re.compile("[&<>\"']").search
#: that, or a character ``_visible`` marks; the same for a text of ASCII (``ODD``'s ASCII part),
#: which a smaller class searches four times as fast
_special_or_odd = re.compile(f"[&<>\"'{ODD}]").search
_special_or_odd_ascii = re.compile("[&<>\"'\x00-\x1f\x7f]").search
#: the spaces ``_visible`` marks in a name (``_ODD_NAME``), looked for only in a name with a space
_odd_spaces = re.compile(r"(?:^|/) | (?:/|\Z)|  ").search
_SHORT = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _code(ch: str) -> str:
    """One character as it is written in a name's escape, as Python writes it: ``\\n``, ``\\x1b``,
    ``\\u202e``, a space ``\\x20`` (a symbol for it, ``␠``, is missing from many fonts)."""
    if ch in _SHORT:
        return _SHORT[ch]
    n = ord(ch)
    return f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}" if n < 0x10000 else f"\\U{n:08x}"


def _visible(value: object, *, name: bool = True) -> str:
    """``value`` HTML-escaped, with what a page would not show as itself (``ODD``; in a ``name``,
    spaces at either end of a name in its path, or after another) in a marked escape, one a
    character, ``<span class="esc">\\n</span>``: two different names never look the same (``new\\nline.jpg``
    is not ``new line.jpg``, a right-to-left override does not turn the rest of a name round, and
    a real name ``\\n`` is plain text, not marked)."""
    text = str(value)
    out = []
    at = 0
    for m in (_ODD_NAME if name else _ODD_TEXT).finditer(text):
        out.append(_html.escape(text[at : m.start()]))
        out.extend(f'<span class="esc">{_code(ch)}</span>' for ch in m.group())
        at = m.end()
    out.append(_html.escape(text[at:]))
    return "".join(out)


def _plain(value: object) -> str:
    """``_esc(value)`` (a hash, an ETag): a text that holds none of the five characters is written
    as it is, after one search instead of five replacements."""
    if type(value) is str and not _special(value):
        return value
    return _esc(value)


def _text(value: object, *, name: bool = True) -> str:
    """``_visible(value)``: a text that holds none of the five characters ``html.escape`` replaces
    and nothing ``_visible`` marks is written as it is, after a search instead of a pass over
    it. Only a ``name`` is searched for the spaces a name has marked: a text's " /" (an error's
    "at /path", every re-run's "verified at /drive") is no reason for a pass."""
    if type(value) is str:
        odd = _special_or_odd_ascii(value) if value.isascii() else _special_or_odd(value)
        if odd is None and not (name and " " in value and _odd_spaces(value)):
            return value
    return _visible(value, name=name)


def _name_filter(value: object) -> Markup:
    """The template's ``name`` filter: ``_visible``, marked safe (it is escaped)."""
    return Markup(_text(value))  # noqa: S704 (escaped by _visible)


def _visible_filter(value: object) -> Markup:
    """The template's ``visible`` filter, for a text that holds names (an error): what a page would
    not show (``ODD``) marked, spaces as they are."""
    return Markup(_text(value, name=False))  # noqa: S704 (escaped by _visible)


class _FileRows:
    """One file of the full list as HTML: the template's rows, written here because the list has a
    line per file and destination, and Jinja's per-value machinery made 200,000 files take
    seconds. Every value is written as ``html.escape`` writes it (the same five characters as the
    template's autoescaping, without its Markup object per value): a text that holds none of them
    as it is, after one search, instead of five replacements. The parts of a row most files share
    (destination and status; how and when verified) are written once and remembered."""

    def __init__(self) -> None:
        self._when = TimeText(WHEN)
        #: (destination, status, damaged) -> the row up to its target
        self._heads: dict[tuple[object, object, bool], str] = {}
        #: (verify method, the second verified) -> the row's end
        self._tails: dict[tuple[object, float | None], str] = {}

    def _head(self, key: tuple[object, object, bool]) -> str:
        if len(self._heads) > 10_000:
            self._heads.clear()
        dest, status, undamaged = _text(key[0]), _esc(key[1]), key[2]
        damaged = "" if undamaged else ' <span class="pill damaged">damaged copy kept</span>'
        text = self._heads[key] = (
            f"    <td>{dest}</td>\n"
            f'    <td><span class="pill {status}">{status}</span>{damaged}</td>\n'
            '    <td class="target"><code>'
        )
        return text

    def _tail(self, key: tuple[object, float | None], verified_at: float | None) -> str:
        if len(self._tails) > 10_000:
            self._tails.clear()
        method, when = _esc(key[0] or ""), _esc(self._when(verified_at) or "")
        text = self._tails[key] = f'    <td>{method}</td>\n    <td class="num">{when}</td>\n  </tr>\n'
        return text

    def __call__(self, rows: Sequence[Sequence[Any]]) -> str:
        """By column number, in ``rows.ROWS_SQL``'s order."""
        f = rows[0]
        n = len(rows)
        path, blake3 = _text(f[1]), _plain(f[6] or "")
        out = [
            f'  <tbody class="file">\n  <tr>\n    <td class="path" rowspan="{n}">{path}</td>\n'
            # digits, a point, a space and a unit, or "unknown": nothing to escape
            f'    <td class="num" rowspan="{n}">{format_bytes(f[3])}</td>\n'
            f'    <td rowspan="{n}"><code class="hash">{blake3}</code></td>\n'
        ]
        heads, tails = self._heads, self._tails
        for i, r in enumerate(rows):
            if i:
                out.append("  <tr>\n")
            if r[17] is None:
                pill = "source-failed" if f[5] == "failed" else "pending"
                out.append(
                    f'    <td class="muted">–</td><td><span class="pill {pill}">{_esc(f[5])}</span></td>\n'
                    f'    <td class="err" colspan="4">{_text(f[9] or "", name=False)}</td>\n  </tr>\n'
                )
                continue
            key = (r[17], r[19], not r[29])
            head = heads.get(key) or self._head(key)
            at = r[21]
            end = (r[20], None if at is None else at // 1)  # TimeText's whole second
            tail = tails.get(end) or self._tail(end, at)
            target, etag = _text(r[18]), _plain(r[22] or "")
            error = f'<div class="err">{_text(r[23], name=False)}</div>' if r[23] else ""
            # a re-run says where each copy was verified before
            detail = f'<div class="muted">{_text(r[25], name=False)}</div>' if r[25] else ""
            out.append(f"{head}{target}</code>{error}{detail}</td>\n    <td><code>{etag}</code></td>\n{tail}")
        out.append("  </tbody>\n")
        return "".join(out)


def _file_chunks(groups: Iterable[Sequence[Sequence[Any]]], per_chunk: int = 20) -> Iterator[Markup]:
    """The full list in pieces of ``per_chunk`` files, already escaped, for the template to emit."""
    file_rows = _FileRows()
    chunk: list[str] = []
    for rows in groups:
        chunk.append(file_rows(rows))
        if len(chunk) >= per_chunk:
            yield Markup("".join(chunk))  # noqa: S704 (every value in it went through escape)
            chunk = []
    if chunk:
        yield Markup("".join(chunk))  # noqa: S704


def render(
    catalog: Catalog,
    job_id: str,
    fh: TextIO,
    counts: Tally | None = None,
    files: Iterable[Sequence[Sequence[Any]]] | None = None,
) -> None:
    """Write the report for ``job_id`` to ``fh``, streaming: memory does not grow with the job.
    ``files``: each file's rows for the full list, when the caller streams them (default: read here)."""
    job = catalog.job(job_id)
    if job is None:
        raise KeyError(job_id)
    job_id = str(job["id"])
    counts = counts or tally(catalog, job)
    stream = (
        _env(catalog.path.parent / "cache")
        .get_template("report.html.j2")
        .stream(
            job=job,
            sources=json.loads(job["sources"]),
            command=" ".join(shown_argv(json.loads(job["argv"]))),
            duration=(job["ended_at"] - job["started_at"]) if job["ended_at"] else None,
            summary=list(counts.destinations.values()),
            problem_count=counts.problem_files,
            missing_count=counts.missing_files,
            rerun_count=counts.rerun_files,
            damaged_count=counts.damaged_files,
            partial_list=PARTIAL_LIST if files_partial(job) else None,
            problems=_problems(catalog, job_id),  # a generator: no query unless the template lists problems
            files=_file_chunks(file_groups(catalog, job_id) if files is None else files),
            left_out=counts.left_out,
            empty_folders=list(iter_empty_folders(catalog, job_id)),
            version=__version__,
            generated=_when(time.time()),
        )
    )
    for piece in stream:
        fh.write(piece)


def write(catalog: Catalog, job_id: str, folder: Path, counts: Tally | None = None) -> Path:
    """``<folder>/<job id>.html``, beside the JSON report; it appears only complete. ``counts``:
    the job's tally when the caller has it already."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{job_id}.html"
    with staged(path) as (fh,):
        render(catalog, job_id, fh, counts)
    return path
