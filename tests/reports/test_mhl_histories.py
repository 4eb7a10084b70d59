"""A card's own ASC MHL history copied onto a destination: continued, replaced when it grew, never
mixed with another history (``engine/histories.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import xxhash
from lxml import etree

from castoff.engine.histories import Histories
from castoff.reports import mhl, mhl_job
from reports.kit import Cli, last_report, reports, write
from reports.test_mhl import NS, _both_verify, ascmhl

CHAIN = "ascmhl/ascmhl_chain.xml"


def _outcomes(state: Path, rel_suffix: str) -> list[dict[str, object]]:
    files = [f for f in last_report(state)["files"] if f["path"].endswith(rel_suffix)]
    assert len(files) == 1, [f["path"] for f in last_report(state)["files"]]
    return list(files[0]["destinations"])


def _generations(root: Path) -> list[str]:
    chain = etree.parse(str(root / CHAIN))
    return [e.findtext("d:path", namespaces=NS) or "" for e in chain.findall("d:hashlist", namespaces=NS)]


def _card_with_history(tmp_path: Path, card: Path, cli: Cli) -> None:
    """The card gets an in-place generation (a first offload with --mhl-source)."""
    r = cli("copy", str(card), "--to", str(tmp_path / "first"), "--mhl-source")
    assert r.returncode == 0, r.stderr
    assert (card / CHAIN).is_file()


def test_a_card_history_landing_on_a_new_root_is_continued_and_a_rerun_finds_nothing_damaged(
    tmp_path: Path, card: Path, cli: Cli, state: Path, ascmhl_bin: Path
) -> None:
    _card_with_history(tmp_path, card, cli)
    dest = tmp_path / "ssd"
    r = cli("copy", str(card), "--to", str(dest), "--template", "{path}")
    assert r.returncode == 0, r.stderr
    gens = _generations(dest)
    assert len(gens) == 2 and gens[0].startswith("0001_A001_CARD_") and gens[1].startswith("0002_ssd_")
    # castoff added its generation to the chain it copied: a re-run calls that neither damage nor
    # a conflict, and keeps one chain file
    for _ in range(2):
        r = cli("copy", str(card), "--to", str(dest), "--template", "{path}")
        assert r.returncode == 0, r.stderr
        assert "DAMAGED" not in r.stderr and "(2)" not in r.stderr
    assert sorted(p.name for p in (dest / "ascmhl").iterdir()) == sorted([*gens, "ascmhl_chain.xml"])
    (out,) = _outcomes(state, CHAIN)
    assert out["status"] == "already"
    assert "holds every generation of the source's" in str(out["verify_method"])
    _both_verify(cli, ascmhl_bin, dest)


def test_a_card_history_is_never_mixed_into_another_history(
    tmp_path: Path, card: Path, cli: Cli, state: Path, ascmhl_bin: Path
) -> None:
    _card_with_history(tmp_path, card, cli)
    dest = tmp_path / "ssd"
    other = write(tmp_path / "OTHER" / "notes.txt", b"notes").parent
    assert cli("copy", str(other), "--to", str(dest), "--template", "{path}").returncode == 0
    own = sorted(p.name for p in (dest / "ascmhl").iterdir())
    for extra in ((), ("--on-conflict", "overwrite")):
        r = cli("copy", str(card), "--to", str(dest), "--template", "{path}", *extra)
        assert r.returncode == 1, r.stderr
        said = " ".join(r.stderr.split())
        assert "are two different histories" in said and "did NOT copy" in said
        assert "--exclude 'ascmhl/**'" in said
        # the destination's history is as it was, apart from castoff's generation for the card's files
        names = sorted(p.name for p in (dest / "ascmhl").iterdir())
        assert not any("A001_CARD" in n or "(2)" in n for n in names), names
        (chain,) = _outcomes(state, CHAIN)
        assert (chain["status"], chain["error_code"]) == ("failed", "history-conflict")
        others = [f for f in last_report(state)["files"] if "ascmhl/" not in f["path"]]
        assert {d["status"] for f in others for d in f["destinations"]} <= {"verified", "already", "skipped"}
    assert set(own) <= set(names)
    _both_verify(cli, ascmhl_bin, dest)
    # the way out the message gives
    r = cli("copy", str(card), "--to", str(dest), "--template", "{path}", "--exclude", "ascmhl/**")
    assert r.returncode == 0, r.stderr


def test_a_card_history_that_grew_replaces_the_shorter_chain_at_the_destination(
    tmp_path: Path, card: Path, cli: Cli, state: Path, ascmhl_bin: Path
) -> None:
    _card_with_history(tmp_path, card, cli)
    dest = tmp_path / "ssd"
    assert cli("copy", str(card), "--to", str(dest)).returncode == 0
    nested = dest / card.name
    assert len(_generations(nested)) == 1
    # the card gains a file, and a second in-place generation
    write(card / "DCIM" / "100CANON" / "IMG_0002.CR3", b"new frame" * 1000)
    assert cli("copy", str(card), "--to", str(tmp_path / "first"), "--mhl-source").returncode == 0
    r = cli("copy", str(card), "--to", str(dest))
    assert r.returncode == 0, r.stderr
    assert _generations(nested) == _generations(card)
    assert len(_generations(card)) == 2
    assert sorted(p.name for p in (nested / "ascmhl").iterdir()) == sorted(
        p.name for p in (card / "ascmhl").iterdir()
    )
    assert (nested / CHAIN).read_bytes() == (card / CHAIN).read_bytes()
    (out,) = _outcomes(state, CHAIN)
    assert out["status"] == "verified"
    _both_verify(cli, ascmhl_bin, dest)


def test_two_histories_bound_for_one_folder_in_one_job_keep_the_first(tmp_path: Path) -> None:
    """Two cards merged by the layout: both histories would land in one ascmhl folder."""
    for card in ("A", "B"):
        write(tmp_path / card / "x.txt", card.encode())
        entry = mhl.Entry("x.txt", 1, 0, xxhash.xxh3_128(card.encode()).hexdigest(), None, 0.0)
        mhl.write_generation(
            tmp_path / card,
            iter([entry]),
            started=0.0,
            process="in-place",
            comment=card,
            ignore=(),
        )
    histories = Histories()
    target = str(tmp_path / "dest" / "ascmhl" / "ascmhl_chain.xml")
    first = histories.at("local:d", str(tmp_path / "A" / CHAIN), target)
    assert first.relation == "new" and first.refusal("ascmhl_chain.xml") is None
    second = histories.at("local:d", str(tmp_path / "B" / CHAIN), target)
    assert second.relation == "apart"
    assert second.refusal("ascmhl_chain.xml") is not None
    assert second.refusal("0001_B_2026.mhl") is not None
    assert second.refusal("notes.txt") is None  # not a history file


@pytest.mark.parametrize("layout", [(), ("--template", "shoot/{path}")], ids=["none", "template"])
def test_every_offload_of_a_growing_card_leaves_a_drive_both_tools_verify(
    tmp_path: Path, card: Path, cli: Cli, state: Path, ascmhl_bin: Path, layout: tuple[str, ...]
) -> None:
    """QA: after the second offload of a card with --mhl-source, ``ascmhl diff`` of the drive said
    "found new file" for each file new on the card: the card's history copied to the drive (the
    nested history that records the files below it) lacked the generation castoff wrote on the
    card after copying it. That generation is carried into the copy now, in the same job."""
    dest = tmp_path / "ssd"
    nested = dest / ("shoot" if layout else card.name)
    for i in range(3):
        if i:
            write(card / "DCIM" / "100CANON" / f"IMG_100{i}.CR3", f"frame {i}".encode() * 1000)
        r = cli("copy", str(card), "--to", str(dest), "--mhl-source", *layout)
        assert r.returncode == 0, r.stderr
        assert len(_generations(card)) == i + 1
        for root in (dest, card):
            diff = ascmhl(ascmhl_bin, "ascmhl", "diff", str(root))
            assert diff.returncode == 0, diff.stdout + diff.stderr
        if i:  # the card's history went there in this job, the generation castoff wrote after it too
            assert f"the source's generation {i + 1} carried into its history here" in r.stderr
            assert (nested / CHAIN).read_bytes() == (card / CHAIN).read_bytes()
        _both_verify(cli, ascmhl_bin, dest, card)
        for report in reports(state):
            v = cli("verify", str(dest), "--report", str(report))
            assert v.returncode == 0, v.stdout + v.stderr


def test_a_card_generation_is_never_carried_into_a_copy_its_chain_does_not_continue(tmp_path: Path) -> None:
    """The copy at the destination is another history (or grew apart): it is kept as it is, and
    the outcome says the generation was not carried (the job exits 1), never a chain that orphans
    that copy's manifests."""

    def generation(root: Path, name: str, comment: str) -> None:
        data = write(root / name, comment.encode()).read_bytes()
        entry = mhl.Entry(name, len(data), 0, xxhash.xxh3_128(data).hexdigest(), None, 0.0)
        mhl.write_generation(root, iter([entry]), started=0.0, process="in-place", comment=comment)

    card, there = tmp_path / "card", tmp_path / "ssd" / "card"
    generation(card, "a.txt", "card")
    generation(there, "a.txt", "other")
    before = {p.name: p.read_bytes() for p in (there / "ascmhl").iterdir()}
    generation(card, "b.txt", "card again")
    out = mhl_job.carry_history(card, there)
    assert not out.ok and "not carried" in out.message and "generation 1 is" in out.message
    assert {p.name: p.read_bytes() for p in (there / "ascmhl").iterdir()} == before
    # a copy the card's chain continues takes its new manifest and chain
    same = tmp_path / "nas" / "card"
    (same / "ascmhl").mkdir(parents=True)
    first = mhl.read_chain(card)[0].name
    (same / "ascmhl" / first).write_bytes((card / "ascmhl" / first).read_bytes())
    mhl._write_chain(same / "ascmhl", mhl.read_chain(card)[:1])
    out = mhl_job.carry_history(card, same)
    assert out.ok and "generation 2 carried" in out.message, out.message
    assert mhl.read_chain(same) == mhl.read_chain(card)
    assert (same / CHAIN).read_bytes() == (card / CHAIN).read_bytes()
