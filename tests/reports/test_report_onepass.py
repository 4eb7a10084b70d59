"""Both reports written in one pass over the catalog say, byte for byte, what the two writers say one
by one; the JSON's hand-written lines are ``json.dumps`` of the files ``build`` makes; a failure
leaves neither report, and memory does not grow with the job."""

from __future__ import annotations

import json
import random
import re
import shutil
import time
import unicodedata
from html import escape as html_escape
from pathlib import Path
from typing import Any

import pytest

from castoff.catalog.db import FILE_META_COLUMNS, Catalog
from castoff.destinations.faulty import FaultPlan, FaultyDestination
from castoff.destinations.local import LocalDestination
from castoff.engine.retry import RetryPolicy
from castoff.reports import html, json_report, onepass
from castoff.reports.summary import Tally, tally
from engine_runner import Runner, write
from reports.kit import XSS, big_job, peak_memory, validate

UNICODE = 'Ünïcødé 日本語 ✓ \u2028 "q" \\ tab\t.txt'
#: the footer says when the page was written: the one thing two writings of a report may differ in
GENERATED = re.compile(r"Written by castoff \S+ on [0-9: -]+ from its catalog")


def _counts(catalog: Catalog, job_id: str) -> Tally:
    job = catalog.job(job_id)
    assert job is not None
    return tally(catalog, job)


def _with_layout_facts(runner: Runner) -> None:
    """What a layout planner and metadata sidecars leave in the catalog, for two of the files."""
    files = {str(r["rel_path"]): int(r["id"]) for r in runner.catalog.job_files(runner.job_id)}
    clip = next(i for p, i in files.items() if p.endswith("C0001.MP4"))
    odd = next(i for p, i in files.items() if p.endswith(UNICODE))
    for file_id, device in ((clip, "Sony ILME-FX3 «A»"), (odd, None)):
        meta: dict[str, str | None] = {
            "layout_path": f"2026/{file_id}/é",
            "original_path": "x",
            "capture_time": "2026-11-02T10:00:00+01:00",
            "capture_source": "quicktime",
            "device": device,
            "device_source": "quicktime" if device else "none",
            "file_type": "Video",
            "sidecar_of": None,
        }
        runner.catalog.set_file_meta(runner.job_id, file_id, [meta.get(c) for c in FILE_META_COLUMNS])
    dests = sorted({str(r["dest_ident"]) for r in runner.catalog.job_outcomes(runner.job_id)})
    runner.catalog.record_meta_sidecar(
        runner.job_id, clip, dests[0], "2026/C0001.MP4.castoff.json", "verified", None
    )
    runner.catalog.record_meta_sidecar(
        runner.job_id, clip, dests[-1], "k.castoff.json", "failed", "disk «full»"
    )


def _apart(catalog: Catalog, job_id: str, folder: Path, counts: Tally) -> tuple[Path, Path]:
    return json_report.write(catalog, job_id, folder, counts), html.write(catalog, job_id, folder, counts)


def _assert_same(together: tuple[Path, Path], apart: tuple[Path, Path]) -> dict[str, Any]:
    assert together[0].name == apart[0].name and together[1].name == apart[1].name
    assert together[0].read_bytes() == apart[0].read_bytes()
    pages = [GENERATED.subn("", p.read_text(encoding="utf-8")) for p in (together[1], apart[1])]
    assert pages[0] == pages[1] and pages[0][1] == 1
    assert sorted(p.name for p in together[0].parent.iterdir()) == sorted(p.name for p in together)
    doc: dict[str, Any] = json.loads(together[0].read_text(encoding="utf-8"))
    validate(doc)
    return doc


def _assert_lines_are_dumps(catalog: Catalog, job_id: str, path: Path) -> dict[str, Any]:
    """The file lines, byte for byte, are ``json.dumps`` of what ``build`` makes of each file."""
    built = json_report.build(catalog, job_id)
    text = path.read_text(encoding="utf-8")
    assert json.loads(text) == built
    # split at "\n" only: splitlines() would also split inside a name holding U+2028
    lines = [ln[4:].removesuffix(",") for ln in text.split("\n") if ln.startswith('    {"path": ')]
    assert lines[: len(built["files"])] == [json.dumps(f, ensure_ascii=False) for f in built["files"]]
    return built


def test_one_pass_writes_what_the_two_writers_write(tmp_path: Path, runner: Runner, card: Path) -> None:
    write(card / "odd" / UNICODE, "ü".encode())
    dests = [LocalDestination(tmp_path / "ssd"), LocalDestination(tmp_path / "nås")]
    assert runner([card], dests).exit_code == 0
    _with_layout_facts(runner)
    cat, job_id = runner.catalog, runner.job_id
    counts = _counts(cat, job_id)
    assert counts.problem_files == 0
    together = onepass.write(cat, job_id, tmp_path / "together", counts)
    assert cat.job(job_id)["report_path"] == str(together[0])  # type: ignore[index]
    doc = _assert_same(together, _apart(cat, job_id, tmp_path / "apart", counts))
    built = _assert_lines_are_dumps(cat, job_id, together[0])
    paths = [f["path"] for f in built["files"]]
    assert paths == sorted(paths) and len(paths) == 6
    assert [[d["destination"] for d in f["destinations"]] for f in doc["files"]] == [
        sorted(str(d.root) for d in dests)
    ] * 6
    by_path = {f["path"]: f for f in doc["files"]}
    assert by_path[f"{card.name}/odd/{UNICODE}"]["capture"]["layout_path"].endswith("/é")
    sidecars = [
        d["metadata_sidecar"] for d in by_path[f"{card.name}/PRIVATE/M4ROOT/CLIP/C0001.MP4"]["destinations"]
    ]
    assert {s["status"] for s in sidecars} == {"verified", "failed"}
    assert [x["code"] for x in doc["left_out"]] == ["junk"]
    raw = together[0].read_text(encoding="utf-8")
    assert "日本語" in raw and "Sony ILME-FX3 «A»" in raw  # UTF-8 as it is, not \u escapes
    page = together[1].read_text(encoding="utf-8")
    assert page.count('<tbody class="file">') == 6 and 'id="problems"' not in page
    assert XSS not in page
    xss = by_path[f"{card.name}/DCIM/100CANON/{XSS}"]
    assert _tbody(xss) in page  # the full list's rows, as the template wrote them before html.py did


def _tbody(f: dict[str, Any]) -> str:
    """One file of the HTML's full list, spelt out: under 1 KiB, verified at each destination."""
    esc = html_escape
    n = len(f["destinations"])
    rows = [
        f"    <td>{esc(d['destination'])}</td>\n"
        f'    <td><span class="pill verified">verified</span></td>\n'
        f'    <td class="target"><code>{esc(d["target"])}</code></td>\n'
        f"    <td><code></code></td>\n"
        f"    <td>{esc(d['verify_method'])}</td>\n"
        f'    <td class="num">{d["verified_at"][:19].replace("T", " ")}</td>\n  </tr>\n'
        for d in f["destinations"]
    ]
    return (
        f'  <tbody class="file">\n  <tr>\n    <td class="path" rowspan="{n}">{esc(f["path"])}</td>\n'
        f'    <td class="num" rowspan="{n}">{f["size"]} B</td>\n'  # under 1 KiB
        f'    <td rowspan="{n}"><code class="hash">{f["blake3"]}</code></td>\n'
        + "  <tr>\n".join(rows)
        + "  </tbody>\n"
    )


def test_with_problems_listed_first_one_pass_writes_what_the_two_writers_write(
    tmp_path: Path, runner: Runner, card: Path
) -> None:
    write(card / "odd" / UNICODE, "ü".encode())
    rotten = FaultyDestination(
        LocalDestination(tmp_path / "rot"), FaultPlan(corrupt_before_commit=["IMG_0001"])
    )
    fast = RetryPolicy(attempts=1, base=0.01, cap=0.05)
    result = runner([card], [LocalDestination(tmp_path / "ok"), rotten], retry=fast, lane_pause=0.05)
    assert result.exit_code == 1
    _with_layout_facts(runner)
    cat, job_id = runner.catalog, runner.job_id
    cat.add_file(job_id, rel_path=f"{card.name}/never read é.jpg", abs_path="/gone", size=1, mtime_ns=0)
    unreadable = cat.add_file(
        job_id, rel_path=f"{card.name}/bad «sector».jpg", abs_path="/bad", size=9, mtime_ns=0
    )
    cat.file_failed(unreadable, error="read: I/O error «EIO»", code="io")
    unlooked = cat.add_file(  # the scan could not look at it: its size and mtime unknown (null)
        job_id, rel_path=f"{card.name}/not looked at.jpg", abs_path="/nl", size=None, mtime_ns=None
    )
    cat.file_failed(unlooked, error="cannot list folder: Permission denied", code="source-read")
    counts = _counts(cat, job_id)
    assert counts.problem_files == 4
    doc = _assert_same(
        onepass.write(cat, job_id, tmp_path / "together", counts),
        _apart(cat, job_id, tmp_path / "apart", counts),
    )
    _assert_lines_are_dumps(cat, job_id, tmp_path / "together" / f"{job_id}.json")
    # the problems first, in path order (the file never got to as well: the summary counts it),
    # then the others in path order
    problems = [f["path"] for f in doc["files"][:4]]
    assert problems == [
        f"{card.name}/DCIM/100CANON/IMG_0001.CR3",
        f"{card.name}/bad «sector».jpg",
        f"{card.name}/never read é.jpg",
        f"{card.name}/not looked at.jpg",
    ]
    assert [(f["size"], f["mtime_ns"]) for f in doc["files"][1:4]] == [(9, 0), (1, 0), (None, None)]
    assert doc["files"][3]["mtime"] is None and doc["files"][2]["mtime"] is not None
    rest = [f["path"] for f in doc["files"][4:]]
    assert rest == sorted(rest) and len(rest) == len(doc["files"]) - 4
    page = (tmp_path / "together" / f"{job_id}.html").read_text(encoding="utf-8")
    section = page[page.index('id="problems"') : page.index('id="files"')]
    assert section.count('<tbody class="file">') == 4 and "never read é.jpg" in section
    assert '<td class="num" rowspan="1">unknown</td>' in section


def test_files_not_read_are_problems_when_every_outcome_is_verified(
    tmp_path: Path, runner: Runner, card: Path
) -> None:
    """The summary skips looking up outcomes file by file when all of them are fine: the files
    never read still count."""
    assert runner([card], [LocalDestination(tmp_path / "ssd")]).exit_code == 0
    cat, job_id = runner.catalog, runner.job_id
    cat.add_file(job_id, rel_path="later.jpg", abs_path="/later.jpg", size=1, mtime_ns=0)
    unreadable = cat.add_file(job_id, rel_path="bad.jpg", abs_path="/bad.jpg", size=1, mtime_ns=0)
    cat.file_failed(unreadable, error="read: I/O error", code="io")
    counts = _counts(cat, job_id)
    # the file never read is not at the destination either (not reached there); the unreadable
    # one is the source's failure, its own
    assert [(s.problems, s.not_reached) for s in counts.destinations.values()] == [(1, 1)]
    assert counts.problem_files == 2
    doc = _assert_same(
        onepass.write(cat, job_id, tmp_path / "together", counts),
        _apart(cat, job_id, tmp_path / "apart", counts),
    )
    assert [f["path"] for f in doc["files"][:2]] == ["bad.jpg", "later.jpg"]  # the problems first


def test_a_failure_in_either_report_leaves_neither(tmp_path: Path, runner: Runner, card: Path) -> None:
    assert runner([card], [LocalDestination(tmp_path / "ssd")]).exit_code == 0
    cat, job_id = runner.catalog, runner.job_id
    counts = _counts(cat, job_id)
    # A name taken where the HTML would be staged: the JSON, opened first, is removed, not left.
    folder = tmp_path / "taken"
    (folder / f"{job_id}.html.tmp").mkdir(parents=True)
    with pytest.raises(OSError):
        onepass.write(cat, job_id, folder, counts)
    assert [p.name for p in folder.iterdir()] == [f"{job_id}.html.tmp"]
    # A catalog value the page cannot show, met half-way through: both files were being written.
    with cat._tx() as db:
        db.execute("UPDATE files SET size='many' WHERE job_id=? AND rel_path LIKE '%C0001.MP4'", (job_id,))
    folder = tmp_path / "broken"
    with pytest.raises(TypeError):
        onepass.write(cat, job_id, folder, counts)
    assert list(folder.iterdir()) == []
    assert cat.job(job_id)["report_path"] is None  # type: ignore[index]


@pytest.mark.slow
def test_one_pass_memory_does_not_grow_with_the_job(tmp_path: Path) -> None:
    cat = Catalog(tmp_path / "catalog.sqlite")
    big_job(cat, "20260101-000000-aaaa", 2000)
    big_job(cat, "20260101-000000-bbbb", 8000)
    small_counts, big_counts = _counts(cat, "20260101-000000-aaaa"), _counts(cat, "20260101-000000-bbbb")
    onepass.write(cat, "20260101-000000-aaaa", tmp_path / "warm", small_counts)  # compiles the template
    small, _ = peak_memory(lambda: onepass.write(cat, "20260101-000000-aaaa", tmp_path / "r", small_counts))
    big, (js, page) = peak_memory(
        lambda: onepass.write(cat, "20260101-000000-bbbb", tmp_path / "r", big_counts)
    )
    assert page.read_text(encoding="utf-8").count('<tbody class="file">') == 8000
    assert len(json.loads(js.read_text(encoding="utf-8"))["files"]) == 8000
    assert big < small * 1.5 + (1 << 20), f"peak {small} bytes for 2,000 files, {big} for 8,000"
    assert big < (js.stat().st_size + page.stat().st_size) / 4
    shutil.rmtree(tmp_path / "r")


#: drawn blank, though letters (Lo): Hangul fillers
_BLANK_LETTERS = "\u115f\u1160\u3164\uffa0"


def _unseen(ch: str) -> bool:
    """A character a page does not show as itself, as ``unicodedata`` says."""
    cat = unicodedata.category(ch)
    return cat in ("Cc", "Cf", "Zl", "Zp") or (cat == "Zs" and ch != " ") or ch in _BLANK_LETTERS


def _reference_visible(value: object, *, name: bool = True) -> str:
    """What ``html._visible`` writes, character by character: ``html.escape``, and each character
    a page would not show (in a name, also a space at either end of a name in its path, or after
    another space) as a marked escape, as Python's ``repr`` writes it."""
    text = str(value)
    marked = [_unseen(ch) for ch in text]
    if name:
        for i, ch in enumerate(text):
            if ch == " ":
                before = text[:i].rsplit("/", 1)[-1]
                after = text[i + 1 :].split("/", 1)[0]
                marked[i] = marked[i] or before.strip(" ") == "" or after.strip(" ") == ""
                marked[i] = marked[i] or (i > 0 and text[i - 1] == " ")
    out = []
    for ch, odd in zip(text, marked, strict=True):
        if not odd:
            out.append(html_escape(ch))
        elif ch == " ":
            out.append('<span class="esc">\\x20</span>')
        else:
            out.append(f'<span class="esc">{repr(ch)[1:-1]}</span>')
    return "".join(out)


def test_every_name_and_text_is_written_as_the_reference_writes_it() -> None:
    """The fast paths (a value written as it is after a search, a text not searched for a name's
    spaces) and the pass over a value agree with the reference on short values of every kind of
    character that matters: a space before a final newline is not at the end of a name."""
    rng = random.Random(7)
    alphabet = ["a", " ", "/", "&", "<", '"', "'", "\n", "\x7f", "\xa0", "é", "\u202e", "\u3000"]
    for _ in range(20_000):
        value = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 7)))
        for name in (True, False):
            want = _reference_visible(value, name=name)
            assert html._text(value, name=name) == want, (value, name)
            assert html._visible(value, name=name) == want, (value, name)
    assert html._text("verified at /drive on 2026-11-23", name=False) == "verified at /drive on 2026-11-23"


def test_what_the_page_marks_is_every_character_unicodedata_calls_unseen() -> None:
    """``html.ODD`` is spelt out (working it out costs every job's start-up): it holds every
    character ``unicodedata`` calls a control, a format character, a separator or a space other
    than the plain one, and beyond them only those a later Unicode made format characters."""
    odd = re.compile(f"[{html.ODD}]")
    found = {c for c in map(chr, range(0x110000)) if odd.match(c)}
    unseen = {c for c in map(chr, range(0x110000)) if not 0xD800 <= ord(c) < 0xE000 and _unseen(c)}
    assert unseen <= found
    assert {f"{ord(c):x}" for c in found - unseen} <= {f"{n:x}" for n in range(0x13430, 0x13440)}


def _reference_rows(rows: list[tuple[Any, ...]]) -> str:
    """One file of the HTML's full list as it was written before its values were searched instead
    of escaped and its rows' shared parts remembered: every value escaped, its names (the file's
    path, the destination, the target) and errors as ``_reference_visible`` writes them."""
    from castoff.units import format_bytes

    def esc(value: object) -> str:
        return html_escape(str(value))

    name = _reference_visible

    def text(value: object) -> str:
        return _reference_visible(value, name=False)

    f, n = rows[0], len(rows)
    out = [
        f'  <tbody class="file">\n  <tr>\n    <td class="path" rowspan="{n}">{name(f[1])}</td>\n'
        f'    <td class="num" rowspan="{n}">{esc(format_bytes(f[3]))}</td>\n'
        f'    <td rowspan="{n}"><code class="hash">{esc(f[6] or "")}</code></td>\n'
    ]
    for i, r in enumerate(rows):
        if i:
            out.append("  <tr>\n")
        if r[17] is None:
            pill = "source-failed" if f[5] == "failed" else "pending"
            out.append(
                f'    <td class="muted">–</td><td><span class="pill {pill}">{esc(f[5])}</span></td>\n'
                f'    <td class="err" colspan="4">{text(f[9] or "")}</td>\n  </tr>\n'
            )
            continue
        when = "" if r[21] is None else time.strftime(html.WHEN, time.localtime(int(r[21] // 1)))
        error = f'<div class="err">{text(r[23])}</div>' if r[23] else ""
        detail = f'<div class="muted">{text(r[25])}</div>' if r[25] else ""
        damaged = ' <span class="pill damaged">damaged copy kept</span>' if r[29] else ""
        out.append(
            f"    <td>{name(r[17])}</td>\n"
            f'    <td><span class="pill {esc(r[19])}">{esc(r[19])}</span>{damaged}</td>\n'
            f'    <td class="target"><code>{name(r[18])}</code>{error}{detail}</td>\n'
            f"    <td><code>{esc(r[22] or '')}</code></td>\n"
            f"    <td>{esc(r[20] or '')}</td>\n"
            f'    <td class="num">{esc(when)}</td>\n  </tr>\n'
        )
    out.append("  </tbody>\n")
    return "".join(out)


def test_html_rows_are_every_value_escaped() -> None:
    """The full list's rows, whose values are searched for the five characters ``html.escape``
    replaces and whose shared parts are remembered, say byte for byte what escaping every value
    says: hostile and odd text in every column, every status, S3 ETags, damaged copies, files
    never read or never got to, one row a destination."""
    hostile = [XSS, "a&b", 'q"q', "s'q", "<>", "plain", "é\u0301 日本 \u2028", "&amp;", None, ""]
    # names a page would show as others: a line feed, a tab, spaces at an end or in a run, a
    # right-to-left override, a zero-width space, a control character, a real backslash escape
    hostile += ["new\nline", "tab\there", "trail ", " lead", "a  b", "x /y/ z", "\u202egpj.exe"]
    hostile += ["zw\u200bsp", "bell\x07\x1b[31m", "nb\xa0sp", "\\n literal", "  "]
    file_rows = html._FileRows()
    checked = 0
    for i in range(480):
        text = hostile[i % len(hostile)]
        other = hostile[(i * 7 + 3) % len(hostile)]
        status = ("failed", "pending", "read")[i % 3]
        f = (i, f"card/{text}{i}", f"/src/{text}", (0, 1023, 5 * 1024**3 + i)[i % 3], i, status)
        f += (None if i % 5 == 0 else f"{i:064x}{other or ''}", None, None, text if i % 4 == 0 else None)
        f += (None,) * 7
        if i % 11 == 0:
            rows = [(*f, *(None,) * 13)]
        else:
            rows = []
            for j, dest in enumerate((f"ssd {other}", "nas", f"bucket{text}")[: 1 + i % 3]):
                verified_at = None if (i + j) % 6 == 0 else 1_790_000_000.25 + i * 0.5 + j * 0.01
                statuses = ("verified", "already", "skipped", "conflict", "failed", "incomplete", other)
                damaged = f"/{dest}/{other}.damaged" if i % 13 == 1 else ("" if i % 13 == 2 else None)
                rows.append(
                    (
                        *f,
                        dest,
                        f"/{dest}/{text}{i}",
                        statuses[(i + j) % 7],
                        (None, "read-back blake3", other)[j % 3],
                        verified_at,
                        f'"{i:032x}{other or ""}"' if j == 2 else None,  # an S3 ETag
                        other if i % 2 else None,  # error
                        None,
                        text if (i + j) % 3 == 0 else None,  # detail
                        None,
                        None,
                        None,
                        damaged,
                    )
                )
        assert file_rows(rows) == _reference_rows(rows), rows
        checked += 1
    assert checked == 480
