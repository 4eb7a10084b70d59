"""ASC MHL written by castoff, judged by the reference tool (ascmhl 1.2) and the ASC XSD files."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import time
from datetime import datetime
from pathlib import Path

import blake3
import pathspec
import pytest
import xxhash
from lxml import etree

from castoff.catalog.db import Catalog
from castoff.reports import mhl
from castoff.scan import Filters, as_ignore_pattern
from reports.kit import XSD_DIR, XSS, Cli, write

NS = {"m": mhl.NS, "c": mhl.CASTOFF_NS, "d": mhl.DIR_NS}


def xsd(name: str) -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(XSD_DIR / name)))


def assert_valid(root: Path) -> None:
    """Every manifest and the chain validate against the XSD files shipped in the package."""
    manifests = sorted((root / "ascmhl").glob("*.mhl"))
    assert manifests
    schema = xsd("ASCMHL.xsd")
    for m in manifests:
        schema.assertValid(etree.parse(str(m)))
    xsd("ASCMHLDirectory__combined.xsd").assertValid(etree.parse(str(root / "ascmhl" / "ascmhl_chain.xml")))


def ascmhl(bin_dir: Path, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(bin_dir / tool), *args], capture_output=True, text=True, timeout=120, check=False
    )


def files_of(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not mhl.is_ignored(str(p.relative_to(root)))
    }


def test_each_local_destination_gets_a_history_the_reference_tool_accepts(
    tmp_path: Path, card: Path, cli: Cli, ascmhl_bin: Path
) -> None:
    a, b = tmp_path / "ssd", tmp_path / "nas"
    r = cli("copy", str(card), "--to", str(a), "--to", str(b), "--mhl-source", "--report-to", "both")
    assert r.returncode == 0, r.stderr
    for root in (a, b, card):
        assert_valid(root)
        schema_check = ascmhl(
            ascmhl_bin,
            "ascmhl-debug",
            "xsd-schema-check",
            "-xsd",
            str(XSD_DIR / "ASCMHL.xsd"),
            str(next((root / "ascmhl").glob("0001_*.mhl"))),
        )
        assert schema_check.returncode == 0, schema_check.stdout + schema_check.stderr
        v = ascmhl(ascmhl_bin, "ascmhl-debug", "verify", "-v", str(root))
        assert v.returncode == 0, v.stdout + v.stderr
        assert XSS in v.stdout
    manifest = next((a / "ascmhl").glob("0001_ssd_*.mhl"))
    assert re.fullmatch(r"0001_ssd_\d{4}-\d\d-\d\d_\d{6}Z\.mhl", manifest.name)
    doc = etree.parse(str(manifest))
    assert doc.findtext("m:processinfo/m:process", namespaces=NS) == "transfer"
    assert doc.findtext("m:creatorinfo/m:tool", namespaces=NS) == "castoff"
    hashes = doc.findall("m:hashes/m:hash", namespaces=NS)
    on_disk = files_of(a)
    assert len(hashes) == len(on_disk) == 5
    for h in hashes:
        rel = h.findtext("m:path", namespaces=NS)
        data = on_disk[rel]
        assert h.find("m:path", namespaces=NS).get("size") == str(len(data))
        xxh = h.find("m:xxh128", namespaces=NS)
        assert xxh.get("action") == "original"
        assert xxh.text == xxhash.xxh3_128(data).hexdigest()
        assert h.findtext("m:metadata/c:blake3", namespaces=NS) == blake3.blake3(data).hexdigest()
    # The source's history is in-place, paths relative to the card.
    src_doc = etree.parse(str(next((card / "ascmhl").glob("0001_*.mhl"))))
    assert src_doc.findtext("m:processinfo/m:process", namespaces=NS) == "in-place"
    assert f"DCIM/100CANON/{XSS}" in [p.text for p in src_doc.iterfind(".//m:hash/m:path", namespaces=NS)]


def test_history_continues_across_castoff_and_ascmhl_generations(
    tmp_path: Path, card: Path, cli: Cli, ascmhl_bin: Path
) -> None:
    dest = tmp_path / "ssd"
    assert cli("copy", str(card), "--to", str(dest)).returncode == 0
    # The reference tool adds generation 2 on top of castoff's.
    created = ascmhl(ascmhl_bin, "ascmhl", "create", "-v", str(dest))
    assert created.returncode == 0, created.stdout + created.stderr
    assert "verified" in created.stdout
    # A re-run with nothing new adds no generation; a new file on the card adds generation 3.
    assert cli("copy", str(card), "--to", str(dest)).returncode == 0
    assert len(list((dest / "ascmhl").glob("*.mhl"))) == 2
    write(card / "DCIM" / "100CANON" / "IMG_0002.CR3", b"new frame" * 1000)
    r = cli("copy", str(card), "--to", str(dest))
    assert r.returncode == 0, r.stderr
    assert "ASC MHL generation 3: 1 file" in r.stderr
    assert_valid(dest)
    chain = etree.parse(str(dest / "ascmhl" / "ascmhl_chain.xml"))
    entries = chain.findall("d:hashlist", namespaces=NS)
    assert [e.get("sequencenr") for e in entries] == ["1", "2", "3"]
    for e in entries:
        assert mhl.c4_of_file(dest / "ascmhl" / e.findtext("d:path", namespaces=NS)) == e.findtext(
            "d:c4", namespaces=NS
        )
    for tool_args in (("ascmhl-debug", "verify"), ("ascmhl", "create")):
        done = ascmhl(ascmhl_bin, *tool_args, str(dest))
        assert done.returncode == 0, done.stdout + done.stderr


def _both_verify(cli: Cli, ascmhl_bin: Path, *roots: Path) -> None:
    """Each history is valid and verifies with castoff and with the reference ascmhl."""
    for root in roots:
        assert_valid(root)
        mine = cli("verify", str(root))
        assert mine.returncode == 0, mine.stdout + mine.stderr
        theirs = ascmhl(ascmhl_bin, "ascmhl-debug", "verify", str(root))
        assert theirs.returncode == 0, theirs.stdout + theirs.stderr


def test_a_skipped_file_enters_a_new_history_with_the_xxh128_of_its_first_read(
    tmp_path: Path, card: Path, cli: Cli, state: Path, ascmhl_bin: Path
) -> None:
    dest = tmp_path / "ssd"
    assert cli("copy", str(card), "--to", str(dest), "--no-mhl").returncode == 0
    assert not (dest / "ascmhl").exists()
    r = cli("copy", str(card), "--to", str(dest))
    assert r.returncode == 0, r.stderr
    assert "ASC MHL generation 1: 5 files" in r.stderr
    cat = Catalog(state / "catalog.sqlite")
    jobs = [j["id"] for j in cat.jobs()]
    second = {f["rel_path"]: f for f in cat.job_files(jobs[0])}
    assert all(f["xxh128"] for f in second.values() if f["status"] != "skipped")
    v = ascmhl(ascmhl_bin, "ascmhl-debug", "verify", str(dest))
    assert v.returncode == 0, v.stdout + v.stderr


@pytest.mark.parametrize(
    "filters",
    [
        ["--exclude", "*.THM", "--exclude", "MISC/b.txt", "--exclude", "we*ird*"],
        ["--include", "*.CR3", "--include", "*.MP4"],
    ],
    ids=["exclude", "include"],
)
def test_what_a_job_leaves_out_of_a_card_is_ignored_by_its_history_and_by_the_destinations(
    tmp_path: Path, card: Path, cli: Cli, ascmhl_bin: Path, filters: list[str]
) -> None:
    """Before: the card's generation ignored .DS_Store alone, so OS junk, excluded files and
    skipped symlinks and FIFOs made both ``castoff verify`` and ``ascmhl verify`` fail on the card
    at once (rc 1, rc 21 "New files not referenced")."""
    write(card / "DCIM" / "100CANON" / "._IMG_0001.CR3", b"apple double")
    write(card / ".Trashes" / "501" / "gone.CR3", b"trash")
    write(card / "DCIM" / "100CANON" / "IMG_0001.THM", b"thumb")
    write(card / "MISC" / "b.txt", b"left out by path")
    write(card / "MISC" / "we*ird [1]  ", b"a name gitignore must escape")
    (card / "DCIM" / "100CANON" / "link.CR3").symlink_to("IMG_0001.CR3")
    os.mkfifo(card / "MISC" / "fifo")
    dest = tmp_path / "ssd"
    r = cli("copy", str(card), "--to", str(dest), "--mhl-source", *filters)
    assert r.returncode == 0, r.stderr
    _both_verify(cli, ascmhl_bin, card, dest)
    # Ignored is only what was left out: a file added to the card since is new to both.
    write(card / "DCIM" / "100CANON" / "IMG_0009.CR3", b"new")
    assert "extra    DCIM/100CANON/IMG_0009.CR3" in cli("verify", str(card)).stdout
    assert ascmhl(ascmhl_bin, "ascmhl-debug", "verify", str(card)).returncode == 21


def test_what_the_job_leaves_out_only_because_it_ignores_case_is_named_in_the_card_history(
    tmp_path: Path, card: Path, cli: Cli, ascmhl_bin: Path
) -> None:
    """castoff's filters and junk names ignore case; ASC MHL's ignore patterns (gitignore's) do not,
    so ``*.thm`` as a pattern would not cover IMG_0001.THM, nor ``Thumbs.db`` THUMBS.DB: those are
    named one by one, and verifying the card after the job finds nothing new."""
    write(card / "DCIM" / "100CANON" / "IMG_0001.THM", b"thumb")
    write(card / "DCIM" / "100CANON" / "img_0002.thm", b"thumb")
    write(card / "DCIM" / "THUMBS.DB", b"windows junk")
    write(card / "Desktop.ini", b"windows junk")
    dest = tmp_path / "ssd"
    r = cli("copy", str(card), "--to", str(dest), "--mhl-source", "--exclude", "*.thm")
    assert r.returncode == 0, r.stderr
    assert not (dest / card.name / "DCIM" / "THUMBS.DB").exists()
    assert not (dest / card.name / "DCIM" / "100CANON" / "IMG_0001.THM").exists()
    _both_verify(cli, ascmhl_bin, card, dest)
    filters = Filters(exclude=("*.thm",))
    assert filters.said_by_patterns("DCIM/100CANON/img_0002.thm", "excluded")
    assert not filters.said_by_patterns("DCIM/100CANON/IMG_0001.THM", "excluded")
    assert filters.said_by_patterns("DCIM/Thumbs.db", "junk")
    assert not filters.said_by_patterns("DCIM/THUMBS.DB", "junk")


@pytest.mark.parametrize(
    ("glob", "said"),
    [
        ("*.THM", True),
        ("IMG_00[0-4]?.CR3", True),
        ("[!I]*", True),
        ("Thumbs.db", True),
        ("DCIM/*.THM", False),  # fnmatch's * crosses folders there; gitignore's never does
        ("!important", False),
        ("#hash", False),
        ("a\\b", False),
        ("trailing ", False),
        ("[^x]*", False),
        ("**.THM", False),
    ],
)
def test_an_exclude_glob_is_written_as_an_ignore_pattern_only_where_it_means_the_same(
    glob: str, said: bool
) -> None:
    pattern = as_ignore_pattern(glob)
    assert (pattern is not None) == said
    if pattern is None:
        return
    spec = pathspec.PathSpec.from_lines("gitignore", [pattern])
    filters = Filters(exclude=(glob,), skip_junk=False)
    for rel in ("a.THM", "DCIM/100CANON/IMG_0001.CR3", "DCIM/IMG_0051.CR3", "x/Thumbs.db", "Info", "x/!i #h"):
        parts = rel.split("/")
        # the scan leaves a folder out with all it holds, as gitignore does
        left_out = [p for p in ("/".join(parts[: i + 1]) for i in range(len(parts))) if filters.excluded(p)]
        assert spec.match_file(rel) == bool(left_out), rel
        assert all(filters.said_by_patterns(p, "excluded") for p in left_out), rel


def test_a_tampered_history_is_never_continued(tmp_path: Path, card: Path, cli: Cli) -> None:
    dest = tmp_path / "ssd"
    assert cli("copy", str(card), "--to", str(dest)).returncode == 0
    manifest = next((dest / "ascmhl").glob("*.mhl"))
    before = manifest.read_bytes()
    manifest.write_bytes(before.replace(b"<tool ", b"<tool  "))
    write(card / "late.txt", b"late")
    r = cli("copy", str(card), "--to", str(dest))
    assert r.returncode == 1
    assert "altered" in r.stderr and "ASC MHL not written" in r.stderr
    assert len(list((dest / "ascmhl").glob("*.mhl"))) == 1
    (dest / "ascmhl" / "ascmhl_chain.xml").unlink()
    r = cli("copy", str(card), "--to", str(dest))
    assert r.returncode == 1 and "has no ascmhl_chain.xml" in r.stderr


@pytest.mark.parametrize("damage", ["altered", "no chain"])
def test_a_history_not_continued_is_said_once_and_not_called_a_file_that_failed(
    tmp_path: Path, card: Path, cli: Cli, damage: str
) -> None:
    """Before: "ASC MHL not written: …" twice, then "Some files did not reach every destination",
    when every file had."""
    dest = tmp_path / "ssd"
    assert cli("copy", str(card), "--to", str(dest)).returncode == 0
    if damage == "altered":
        manifest = next((dest / "ascmhl").glob("*.mhl"))
        manifest.write_bytes(manifest.read_bytes().replace(b"<tool ", b"<tool  "))
    else:
        (dest / "ascmhl" / "ascmhl_chain.xml").unlink()
    write(card / "late.txt", b"late")
    r = cli("copy", str(card), "--to", str(dest))
    said = " ".join(r.stderr.split())
    assert r.returncode == 1, r.stderr
    assert said.count("ASC MHL not written") == 1, said
    assert "Some files did not reach every destination" not in said
    assert (
        "Every file reached every destination, verified; an ASC MHL history was not written (above)." in said
    )
    assert (dest / card.name / "late.txt").read_bytes() == b"late"


def test_histories_not_written_at_release_are_said_with_it(tmp_path: Path, card: Path, cli: Cli) -> None:
    """QA: "Source can be released" was said after the card's own generation had failed (the
    README: the card's is written before castoff says so, so that an ejected card has its own),
    and at the end "2 ASC MHL histories was not written". The release names what was not written,
    and that a re-run writing it needs the card."""
    dest = tmp_path / "ssd"
    assert cli("copy", str(card), "--to", str(dest), "--mhl-source").returncode == 0
    for root in (card, dest):
        (root / "ascmhl" / "ascmhl_chain.xml").unlink()  # a history castoff refuses to continue
    write(card / "late.txt", b"late")
    job = ("copy", str(card), "--to", str(dest), "--mhl-source", "--exclude", "ascmhl/**")
    r = cli(*job)
    said = " ".join(r.stderr.split())
    assert r.returncode == 1, r.stderr
    assert (
        "Source can be released: every local destination is verified. But 2 ASC MHL histories were"
        f" not written ({dest}, {card}: see the end); a re-run that writes them needs the card."
    ) in said
    assert (
        "Every file reached every destination, verified; 2 ASC MHL histories were not written (above)."
        in said
    )
    j = cli(*job, "--json")
    (released,) = [e for e in map(json.loads, j.stdout.splitlines()) if e["event"] == "released"]
    assert released["mhl_not_written"] == [str(dest), str(card)]


@pytest.mark.parametrize(
    ("histories", "copies", "said"),
    [
        (1, 0, "an ASC MHL history was not written"),
        (2, 0, "2 ASC MHL histories were not written"),
        (0, 1, "a copy of the report was not written"),
        (0, 2, "2 copies of the report were not written"),
        (1, 1, "an ASC MHL history and a copy of the report were not written"),
    ],
)
def test_what_was_not_written_is_said_in_agreement(histories: int, copies: int, said: str) -> None:
    from castoff.cli import _not_written
    from castoff.reports.finish import Finished
    from castoff.reports.mhl_job import MhlOutcome

    failed = [MhlOutcome(f"/d{i}", None, "ASC MHL not written: no", ok=False) for i in range(histories)]
    problems = [f"problem {i}" for i in range(histories + copies)]
    done = Finished(json=Path("r.json"), html=Path("r.html"), mhl=failed, problems=problems)
    assert f"Every file reached every destination, verified; {said} (above)." == _not_written(done)


def test_names_xml_cannot_hold_are_left_out_and_said(tmp_path: Path) -> None:
    root = tmp_path / "dest"
    root.mkdir()
    entries = [
        mhl.Entry("ok.txt", 1, 0, "0" * 32, None, 0.0),
        mhl.Entry("bell\x07.txt", 1, 0, "1" * 32, None, 0.0),
    ]
    written = mhl.write_generation(root, iter(entries), started=0.0)
    assert written is not None and written.files == 1 and written.left_out == ("bell\x07.txt",)
    assert_valid(root)


def test_a_carriage_return_is_kept_and_a_name_xml_cannot_hold_is_named_not_failed(
    tmp_path: Path, cli: Cli, ascmhl_bin: Path
) -> None:
    """Before: a carriage return was written as it is, read back (by every XML parser) as a line
    feed: verify called the copy missing and extra, ascmhl missing; a control character's file was
    left out unnamed, and verify failed it as extra, a copy castoff had verified."""
    card = tmp_path / "CARD"
    write(card / "cr\rname.jpg", b"a")
    write(card / "tab\tand\nline.jpg", b"t")
    write(card / "ok.jpg", b"b")
    write(card / "ctrl\x01\x1b[31mred.jpg", b"c")
    dest = tmp_path / "dst"
    r = cli("copy", str(card), "--to", str(dest))
    assert r.returncode == 0, r.stderr
    said = " ".join(r.stderr.split())
    assert (
        "ASC MHL generation 1: 3 files; left out 1 file whose name XML cannot hold:"
        " 'CARD/ctrl\\x01\\x1b[31mred.jpg'"
    ) in said
    assert_valid(dest)
    (manifest,) = (dest / "ascmhl").glob("*.mhl")
    assert "CARD/cr&#13;name.jpg</path>" in manifest.read_text(encoding="utf-8")
    mine = cli("verify", str(dest))
    assert mine.returncode == 0, mine.stdout + mine.stderr
    assert "all 3 recorded files match; nothing missing, nothing extra" in mine.stdout
    assert (
        "  unrecorded  'CARD/ctrl\\x01\\x1b[31mred.jpg'  (XML cannot hold its name: not in the"
        " history, not checked)" in mine.stdout
    )
    as_json = json.loads(cli("verify", str(dest), "--json").stdout)
    assert as_json["ok"] and as_json["extra"] == [] and as_json["missing"] == []
    assert as_json["unrecordable"] == ["CARD/ctrl\x01\x1b[31mred.jpg"]
    theirs = ascmhl(ascmhl_bin, "ascmhl-debug", "verify", str(dest))
    assert "missing" not in theirs.stdout + theirs.stderr  # (it calls the control character's file new)
    # what castoff verify does not fail, something still does: an altered file
    (dest / "CARD" / "cr\rname.jpg").write_bytes(b"z")
    assert cli("verify", str(dest)).returncode == 1


def test_an_old_catalog_gains_the_xxh128_column(tmp_path: Path) -> None:
    path = tmp_path / "catalog.sqlite"
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE files (id INTEGER PRIMARY KEY, job_id TEXT NOT NULL, rel_path TEXT NOT NULL,"
        " abs_path TEXT NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, status TEXT NOT NULL,"
        " blake3 TEXT, md5 TEXT, error TEXT, error_code TEXT, UNIQUE (job_id, rel_path))"
    )
    db.execute("INSERT INTO files VALUES (1, 'j', 'a', '/a', 1, 0, 'read', 'b3', NULL, NULL, NULL)")
    db.commit()
    db.close()
    cat = Catalog(path)
    cat.file_read(1, blake3="b3", md5=None, xxh128="x" * 32)
    assert cat.job_files("j")[0]["xxh128"] == "x" * 32


@pytest.mark.parametrize("size", [0, 1, 1_000_003])
def test_c4_matches_the_reference_definition(tmp_path: Path, size: int, ascmhl_bin: Path) -> None:
    f = write(tmp_path / "f.bin", bytes(range(256)) * (size // 256) + b"x" * (size % 256))
    r = ascmhl(ascmhl_bin, "ascmhl-debug", "hash", "-h", "c4", str(f))
    assert r.returncode == 0, r.stdout + r.stderr
    assert mhl.c4_of_file(f) in r.stdout


def test_a_generation_cut_short_by_a_crash_is_finished_by_the_next_run(
    tmp_path: Path, card: Path, cli: Cli, ascmhl_bin: Path
) -> None:
    """A castoff older than this one wrote the chain before naming the manifest: a SIGKILL between
    the two left it as a hidden, complete file. The next run names it (with a rename: exFAT and
    FAT have no hard links) and carries on; stray hidden files go."""
    dest = tmp_path / "ssd"
    assert cli("copy", str(card), "--to", str(dest)).returncode == 0
    manifest = next((dest / "ascmhl").glob("0001_*.mhl"))
    manifest.rename(dest / "ascmhl" / ".castoff-0001.mhl.tmp")
    (dest / "ascmhl" / ".castoff-0002.mhl.tmp").write_text("<half")
    write(card / "late.txt", b"late")
    r = cli("copy", str(card), "--to", str(dest))
    assert r.returncode == 0, r.stderr
    said = " ".join(r.stderr.split())
    assert "ASC MHL: generation 1, left unfinished by job " in said, said  # (QA M #5: said so)
    assert ", completed; generation 2: 1 file" in said, said
    assert manifest.is_file()
    assert not list((dest / "ascmhl").glob(".*"))
    assert_valid(dest)
    v = ascmhl(ascmhl_bin, "ascmhl-debug", "verify", str(dest))
    assert v.returncode == 0, v.stdout + v.stderr


@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin", "America/St_Johns", "Australia/Lord_Howe"])
def test_mhl_times_are_what_the_plain_conversion_writes(monkeypatch: pytest.MonkeyPatch, zone: str) -> None:
    """The offset is looked up once a second; the text must not change for it, at a DST change
    (both readings of the repeated hour), at half-hour offsets, and next to a whole second."""
    monkeypatch.setenv("TZ", zone)
    time.tzset()
    try:
        mhl._SECONDS.clear()
        fall_back = 1792890000.0  # 2026-10-25 01:00 UTC: Europe's clocks go back an hour
        times = [fall_back + k * 900 + f for k in range(-6, 7) for f in (0.0, 0.25, 0.9999996)]
        times += [0.0, 1e9 + 0.5, 1795331759.168126, 4102444800.000001]
        for t in times:
            for micro in (False, True):
                expected = datetime.fromtimestamp(t).astimezone()
                text = expected.isoformat(timespec="microseconds" if micro else "seconds")
                assert mhl._iso(t, micro=micro) == text, (zone, t, micro)
    finally:
        mhl._SECONDS.clear()
        monkeypatch.undo()
        time.tzset()


def test_empty_folders_made_at_a_destination_keep_its_history_clean_for_both_tools(
    tmp_path: Path, card: Path, cli: Cli, ascmhl_bin: Path
) -> None:
    """ASC MHL lists files; castoff records no directory hashes, and ascmhl (verify, diff) does not
    ask for them: a destination with the card's empty folders verifies clean with both tools, and
    the reference tool can add its own generation on top (which hashes the folders) and still
    verify, as castoff does."""
    (card / "PRIVATE" / "M4ROOT" / "THMBNL").mkdir()
    (card / "MISC" / "EMPTY").mkdir(parents=True)
    dest = tmp_path / "ssd"
    r = cli("copy", str(card), "--to", str(dest))
    assert r.returncode == 0, r.stderr
    assert "2 empty folders made at" in r.stderr
    assert (dest / card.name / "PRIVATE" / "M4ROOT" / "THMBNL").is_dir()
    assert (dest / card.name / "MISC" / "EMPTY").is_dir()
    _both_verify(cli, ascmhl_bin, dest)
    diff = ascmhl(ascmhl_bin, "ascmhl", "diff", str(dest))
    assert diff.returncode == 0, diff.stdout + diff.stderr
    created = ascmhl(ascmhl_bin, "ascmhl", "create", str(dest))
    assert created.returncode == 0, created.stdout + created.stderr
    _both_verify(cli, ascmhl_bin, dest)


def test_a_damaged_copy_replaced_by_its_good_copy_leaves_a_history_every_verifier_accepts(
    tmp_path: Path, card: Path, cli: Cli, ascmhl_bin: Path
) -> None:
    """castoff finds a damaged copy, keeps it and lands the good one beside it as ``name (2).ext``
    (recorded in that generation); the user follows the advice and moves the good copy over the
    damaged one. The next generation says where it went (``previousPath``): ``castoff verify``
    and ``ascmhl-debug verify`` look for it at its new name, not the gone ``(2)`` one. Before,
    both reported it missing for ever. Another file gone from the folder is still missing."""
    ssd = tmp_path / "ssd"
    assert cli("copy", str(card), "--to", str(ssd)).returncode == 0
    copy = ssd / card.name / "DCIM" / "100CANON" / "IMG_0001.CR3"
    good = copy.with_name("IMG_0001 (2).CR3")
    r = _damaged_then_rehashed(cli, card, ssd, copy)
    assert r.returncode == 1 and "is DAMAGED" in r.stderr, r.stderr
    assert good.is_file()
    assert _moved_over(cli, card, ssd, good, copy) == [
        (f"{card.name}/DCIM/100CANON/IMG_0001.CR3", f"{card.name}/DCIM/100CANON/IMG_0001 (2).CR3")
    ]
    assert_valid(ssd)
    v = cli("verify", str(ssd))
    assert v.returncode == 0, v.stdout + v.stderr
    theirs = ascmhl(ascmhl_bin, "ascmhl-debug", "verify", str(ssd))
    assert theirs.returncode == 0, theirs.stdout + theirs.stderr

    (ssd / card.name / "empty.txt").unlink()  # a file gone is still named, never explained away
    v = cli("verify", str(ssd))
    assert v.returncode == 1 and f"missing  {card.name}/empty.txt" in v.stdout, v.stdout + v.stderr


def _moved_over(
    cli: Cli, card: Path, ssd: Path, good: Path, copy: Path
) -> list[tuple[str | None, str | None]]:
    """``good`` moved over ``copy`` ("put the good copy in its place"), then the same copy
    again: the (path, previousPath) of each hash the new generation records a move for."""
    os.replace(good, copy)
    r = cli("copy", str(card), "--to", str(ssd))
    assert r.returncode == 0, r.stderr
    latest = sorted((ssd / "ascmhl").glob("*.mhl"))[-1]
    moved = etree.parse(str(latest)).findall(".//m:hash", NS)
    return [(h.findtext("m:path", namespaces=NS), h.findtext("m:previousPath", namespaces=NS)) for h in moved]


def _damaged_then_rehashed(cli: Cli, card: Path, ssd: Path, copy: Path) -> subprocess.CompletedProcess[str]:
    """One byte of ``copy`` flipped, its size and mtime kept (only a re-read finds it), then the
    same copy again with ``--rehash``."""
    st = copy.stat()
    with open(copy, "r+b") as fh:
        b = fh.read(1)
        fh.seek(0)
        fh.write(bytes([b[0] ^ 1]))
    os.utime(copy, ns=(st.st_atime_ns, st.st_mtime_ns))
    return cli("copy", str(card), "--to", str(ssd), "--rehash")


def test_a_good_copy_under_a_shortened_keep_both_name_moved_over_the_damaged_one_is_its_previous_path(
    tmp_path: Path, cli: Cli, ascmhl_bin: Path
) -> None:
    """As above, with a name so long that its keep-both name lost the end of its stem to fit
    255 bytes: the next generation still says where the good copy came from."""
    card = tmp_path / "CARD"
    name = "é" * 124 + ".jpg"  # 252 bytes: "é…é (2).jpg" would be 256
    write(card / name, os.urandom(5000))
    write(card / "other.txt", b"other")
    ssd = tmp_path / "ssd"
    assert cli("copy", str(card), "--to", str(ssd)).returncode == 0
    copy = ssd / "CARD" / name
    r = _damaged_then_rehashed(cli, card, ssd, copy)
    assert r.returncode == 1 and "is DAMAGED" in r.stderr, r.stderr
    good = copy.with_name("é" * 123 + " (2).jpg")  # 246 + 8 bytes: one é more would not fit
    assert good.is_file(), r.stderr
    assert _moved_over(cli, card, ssd, good, copy) == [(f"CARD/{name}", f"CARD/{good.name}")]
    _both_verify(cli, ascmhl_bin, ssd)


def test_a_card_gone_before_its_history_was_written_is_a_failed_history_not_a_silent_one(
    tmp_path: Path, card: Path, cli: Cli, state: Path
) -> None:
    """QA: with --mhl-source and --json, a card unmounted before its generation was written left
    no ascmhl/ on it, and the job said nothing (no problem, exit 0): a source folder that was no
    longer there was passed over. It is a history not written, among the job's problems."""
    from castoff.reports import mhl_job

    r = cli("copy", str(card), "--to", str(tmp_path / "ssd"), "--no-mhl")
    assert r.returncode == 0, r.stderr
    cat = Catalog(state / "catalog.sqlite")
    (job,) = cat.jobs()
    gone = tmp_path / "A001_CARD.unmounted"
    card.rename(gone)
    (outcome,) = mhl_job.write_for_job(cat, job["id"], {}, sources=[str(card)], with_sources=True)
    assert not outcome.ok
    assert "the source is no longer there" in outcome.message
    assert not card.exists() and not (gone / "ascmhl").exists()


def test_a_nightly_overwrite_of_an_edited_file_leaves_a_history_every_verifier_accepts(
    tmp_path: Path, cli: Cli, ascmhl_bin: Path
) -> None:
    """A backup with ``--on-conflict overwrite``: a.txt is edited (v1, v2, back to v1, v3) and
    each run replaces its copy. ASC MHL cannot take new bytes at a path it recorded, and leaves a
    file that changes out by its ignore list: so the generation that replaces it ignores it from
    then on (every later one too, an ascmhl generation between them included), and castoff
    records the bytes it wrote in its metadata. No generation calls castoff's own verified
    replacement failed; castoff verify, ascmhl-debug verify, ascmhl diff and ascmhl create all
    accept the folder after every run; and castoff verify still checks a.txt, against the bytes
    it last wrote (damage after that is altered)."""
    src, nas = tmp_path / "proj", tmp_path / "nas"
    write(src / "b.txt", b"unchanged")
    a = nas / "proj" / "a.txt"
    for n, version in enumerate((b"v1", b"v2-longer", b"v1", b"v3-longer-still")):
        write(src / "a.txt", version)
        r = cli("copy", str(src), "--to", str(nas), "--on-conflict", "overwrite")
        assert r.returncode == 0, r.stderr
        assert a.read_bytes() == version
        if n == 1:
            said = " ".join(r.stderr.split())
            assert "1 file replaced with new bytes, ignored by the history from now on" in said, said
        _both_verify(cli, ascmhl_bin, nas)
        diff = ascmhl(ascmhl_bin, "ascmhl", "diff", str(nas))
        assert diff.returncode == 0, diff.stdout + diff.stderr
        if n == 2:  # the reference tool's own generation in between: castoff carries its patterns on
            created = ascmhl(ascmhl_bin, "ascmhl", "create", str(nas))
            assert created.returncode == 0, created.stdout + created.stderr
    manifests = sorted((nas / "ascmhl").glob("*.mhl"))
    assert len(manifests) == 5
    assert not any('action="failed"' in m.read_text(encoding="utf-8") for m in manifests)
    last = etree.parse(str(manifests[-1]))
    (recorded,) = last.xpath("//c:replaced/c:file", namespaces=NS)
    assert (recorded.text, recorded.get("xxh128")) == (
        "proj/a.txt",
        xxhash.xxh3_128(b"v3-longer-still").hexdigest(),
    )
    assert recorded.get("blake3") == blake3.blake3(b"v3-longer-still").hexdigest()
    assert not last.xpath("//m:hash/m:path[text()='proj/a.txt']", namespaces=NS)

    a.write_bytes(b"v3-longer-stilL")  # damaged after castoff wrote it: named, with castoff's bytes
    v = cli("verify", str(nas))
    assert v.returncode == 1 and "altered  proj/a.txt" in v.stdout, v.stdout + v.stderr


def test_a_keep_both_name_only_the_history_knows_is_not_given_to_other_bytes(
    tmp_path: Path, cli: Cli, ascmhl_bin: Path
) -> None:
    """QA N #4: edits landed as ``a (2).txt`` and ``a (3).txt``; the user deleted ``a (2).txt``;
    the next edit comes from another castoff (another catalog, which never saw the drive). The
    drive's ASC MHL history records ``a (2).txt`` with other bytes: that name is not handed out
    again (the history would say two things of it), the edit takes ``a (4).txt``, and the history
    names only the deleted file missing."""
    src, nas = tmp_path / "proj", tmp_path / "nas"
    for data in (b"v1", b"v2", b"v3"):
        write(src / "a.txt", data)
        assert cli("copy", str(src), "--to", str(nas)).returncode == 0
    (nas / "proj" / "a (2).txt").unlink()
    write(src / "a.txt", b"v4")
    r = cli("--state-dir", str(tmp_path / "other-state"), "copy", str(src), "--to", str(nas))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "other-state" / "catalog.sqlite").is_file()  # not the first catalog
    assert not (nas / "proj" / "a (2).txt").exists()
    assert (nas / "proj" / "a (4).txt").read_bytes() == b"v4"
    assert_valid(nas)
    assert not any('action="failed"' in m.read_text(encoding="utf-8") for m in (nas / "ascmhl").glob("*.mhl"))
    v = cli("verify", str(nas))
    assert v.returncode == 1 and "missing  proj/a (2).txt" in v.stdout and "altered  " not in v.stdout, (
        v.stdout
    )
