"""ASC MHL on the drives cards and shuttles are: exFAT and FAT (no hard links), and a drive pulled
before its generation is written. Real drives where the machine can mount them (tests/fat_mounts.py),
the same failures injected where it cannot."""

from __future__ import annotations

import builtins
import errno
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from castoff import errors
from castoff.catalog.db import Catalog
from castoff.destinations.local import LocalDestination
from castoff.reports import finish, mhl, mhl_job
from fat_mounts import fat_drive
from reports.kit import Cli, write
from reports.test_mhl import ascmhl, assert_valid


def no_hard_links(monkeypatch: pytest.MonkeyPatch) -> None:
    """``link`` refused as exFAT and FAT refuse it."""

    def refused(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        raise PermissionError(errno.EPERM, os.strerror(errno.EPERM), str(src), None, str(dst))

    monkeypatch.setattr(os, "link", refused)


def entries_of(root: Path) -> list[mhl.Entry]:
    """An entry for every file under ``root`` but the history's own, as a job proves them."""
    out = []
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_file() and not mhl.is_ignored(rel):
            st = p.stat()
            out.append(
                mhl.Entry(rel, st.st_size, st.st_mtime_ns, mhl.xxh128_of_file(str(p)), None, time.time())
            )
    return out


def finish_job(cat: Catalog, job_id: str, dest: LocalDestination, card: Path, tmp_path: Path) -> Any:
    """The job's end (its reports and histories) again, for its one destination."""
    return finish.finish_job(
        cat,
        job_id,
        [dest],
        sources=[str(card)],
        reports_dir=tmp_path / "reports",
        options=finish.FinishOptions(),
    )


def chain_names(root: Path) -> list[str]:
    return [g.name for g in mhl.read_chain(root)]


def test_a_generation_is_written_where_hard_links_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ascmhl_bin: Path
) -> None:
    """QA: on exFAT and FAT every generation failed ("ASC MHL not written: Operation not
    permitted": the manifest was named by a hard link) and left a chain naming a manifest that was
    not there, which every later job and ``castoff verify`` refused."""
    no_hard_links(monkeypatch)
    root = tmp_path / "shuttle"
    write(root / "A001" / "C0001.MP4", b"clip" * 1000)
    first = mhl.write_generation(root, entries_of(root), started=time.time())
    assert first is not None and first.manifest.is_file()
    write(root / "A002" / "C0002.MP4", b"clap" * 1000)
    second = mhl.write_generation(root, entries_of(root), started=time.time() + 1)
    assert second is not None and second.generation == 2
    assert chain_names(root) == [first.manifest.name, second.manifest.name]
    assert not list((root / "ascmhl").glob(".*"))
    assert_valid(root)
    v = ascmhl(ascmhl_bin, "ascmhl-debug", "verify", str(root))
    assert v.returncode == 0, v.stdout + v.stderr


def test_a_card_history_is_carried_where_hard_links_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The card's new generation carried into its copy on a drive: the manifest was named there by
    a hard link too."""
    card, there = tmp_path / "A001", tmp_path / "shuttle" / "A001"
    write(card / "C0001.MP4", b"clip" * 1000)
    assert mhl.write_generation(card, entries_of(card), started=time.time()) is not None
    write(there / "C0001.MP4", b"clip" * 1000)
    (there / "ascmhl").mkdir()
    for p in (card / "ascmhl").iterdir():
        (there / "ascmhl" / p.name).write_bytes(p.read_bytes())
    write(card / "C0002.MP4", b"clap" * 1000)
    assert mhl.write_generation(card, entries_of(card), started=time.time() + 1) is not None
    no_hard_links(monkeypatch)
    outcome = mhl_job.carry_history(card, there)
    assert outcome.ok, outcome.message
    assert chain_names(there) == chain_names(card)


@pytest.mark.parametrize("cut", [1, 2])
def test_a_manifest_whose_chain_entry_was_cut_short_is_chained_by_the_next_generation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ascmhl_bin: Path, cut: int
) -> None:
    """The manifest is named before the chain names it: the chain never names a manifest that is
    not there. A crash (here, the chain's write failing) between the two leaves the manifest
    unchained, and the next generation adds it to the chain first; also the first generation's,
    beside the empty chain made before it (without one, a history lost its chain: refused)."""
    root = tmp_path / "ssd"
    before = []
    for i in range(1, cut):
        write(root / f"{i}.jpg", b"%d" % i)
        done = mhl.write_generation(root, entries_of(root), started=time.time() + i)
        assert done is not None
        before.append(done.manifest.name)
    write(root / f"{cut}.jpg", b"cut")
    real_write_chain = mhl._write_chain

    def cut_short(folder: Path, gens: list[mhl.Generation]) -> None:
        if not gens:  # the empty chain a new history begins with
            return real_write_chain(folder, gens)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(mhl, "_write_chain", cut_short)
    with pytest.raises(OSError, match="No space"):
        mhl.write_generation(root, entries_of(root), started=time.time() + cut)
    monkeypatch.setattr(mhl, "_write_chain", real_write_chain)
    assert chain_names(root) == before  # whole, as it was
    (unchained,) = (root / "ascmhl").glob(f"{cut:04d}_*.mhl")
    write(root / "late.jpg", b"late")
    last = mhl.write_generation(root, entries_of(root), started=time.time() + cut + 1)
    assert last is not None and last.generation == cut + 1
    assert chain_names(root) == [*before, unchained.name, last.manifest.name]
    assert_valid(root)
    v = ascmhl(ascmhl_bin, "ascmhl-debug", "verify", str(root))
    assert v.returncode == 0, v.stdout + v.stderr


def test_a_chain_naming_a_manifest_never_written_says_what_to_do(tmp_path: Path) -> None:
    """What a castoff older than this one left on exFAT: the chain names a last manifest that was
    never written (its hidden file removed). That cannot be told from a deleted manifest, so it is
    refused, with the way out: the chain entry to delete."""
    root = tmp_path / "card"
    write(root / "one.jpg", b"one")
    first = mhl.write_generation(root, entries_of(root), started=time.time())
    assert first is not None
    gens = mhl.read_chain(root)
    mhl._write_chain(
        root / "ascmhl", [*gens, mhl.Generation(2, "0002_card_2026-11-23_014338Z.mhl", gens[0].c4)]
    )
    with pytest.raises(errors.HistoryError) as last:
        mhl.read_chain(root)
    assert 'sequencenr="2"' in str(last.value) and "exFAT or FAT" in str(last.value)
    first.manifest.unlink()  # not the last one: restored from a copy, nothing else
    with pytest.raises(errors.HistoryError) as earlier:
        mhl.read_chain(root)
    assert "restore it from a copy" in str(earlier.value) and "sequencenr" not in str(earlier.value)


@pytest.mark.parametrize("kind", ["exfat", "fat32"])
def test_card_and_shuttle_histories_on_real_exfat_and_fat_drives(
    tmp_path: Path, cli: Cli, state: Path, ascmhl_bin: Path, kind: str
) -> None:
    """QA (real exFAT and FAT mounts): the card's and the shuttle's generations were never
    written, the job exited 1, and every re-run and ``castoff verify`` refused the history."""
    with (
        fat_drive(tmp_path, kind, label="EOS_DIGITAL") as card,
        fat_drive(tmp_path, kind, label="SHUTTLE") as shuttle,
    ):
        for i in range(3):
            write(card.path / "DCIM" / "100CANON" / f"IMG_000{i}.JPG", os.urandom(50_000))
        ssd, shoots = tmp_path / "ssd", shuttle.path / "shoots"
        for run in ("first", "re-run"):
            r = cli("copy", str(card.path), "--to", str(ssd), "--to", str(shoots), "--mhl-source")
            assert r.returncode == 0, f"{run}: {r.stderr}"
            assert "not written" not in r.stderr
        if kind == "exfat":  # (fusefat loses the times castoff sets on a file it renames into
            # place: a re-run reads those files again and records them verified, a generation 2)
            assert "ASC MHL: nothing new to record" in r.stderr
            assert "ASC MHL generation 2" not in r.stderr
        for root in (card.path, shoots, ssd):
            assert chain_names(root)
            v = ascmhl(ascmhl_bin, "ascmhl-debug", "verify", str(root))
            assert v.returncode == 0, v.stdout + v.stderr
        assert cli("verify", str(shoots)).returncode == 0


def _under(root: Path) -> Callable[[Any], bool]:
    prefix = str(root) + os.sep

    def inside(path: Any) -> bool:
        return isinstance(path, (str, os.PathLike)) and os.fspath(path).startswith(prefix)

    return inside


def test_a_drive_gone_before_its_history_is_written_is_said_and_the_report_written(
    tmp_path: Path, cli: Cli, state: Path, card: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """QA (an exFAT shuttle pulled mid-job, its FUSE daemon killed): the check that the drive is
    still there passed (FUSE answered from its cache), then reading the chain raised ENOTCONN: a
    traceback, and the job's report never written. Here every call under the drive fails so."""
    shuttle = tmp_path / "shuttle"
    assert cli("copy", str(card), "--to", str(shuttle)).returncode == 0  # its history remembered
    dest = LocalDestination(str(shuttle))  # never preflighted: nothing tells it the drive is gone
    inside = _under(shuttle)
    real_stat, real_open = os.stat, builtins.open

    def stat(path: Any, *args: Any, **kwargs: Any) -> Any:
        if inside(path):
            raise OSError(errno.ENOTCONN, os.strerror(errno.ENOTCONN), os.fspath(path))
        return real_stat(path, *args, **kwargs)

    def open_(path: Any, *args: Any, **kwargs: Any) -> Any:
        if inside(path):
            raise OSError(errno.ENOTCONN, os.strerror(errno.ENOTCONN), os.fspath(path))
        return real_open(path, *args, **kwargs)

    cat = Catalog(state / "catalog.sqlite")
    (job,) = cat.jobs()
    monkeypatch.setattr(os, "stat", stat)
    monkeypatch.setattr(builtins, "open", open_)
    done = finish_job(cat, job["id"], dest, card, tmp_path)
    monkeypatch.undo()
    (outcome,) = done.mhl
    assert not outcome.ok
    assert outcome.message.startswith("ASC MHL not written: Transport endpoint is not connected")
    assert "the drive or mount may have been removed" in outcome.message
    assert json.loads(done.json.read_text(encoding="utf-8"))["job"]["id"] == job["id"]


def test_a_real_drive_pulled_before_its_history_is_written_is_said_and_the_report_written(
    tmp_path: Path, cli: Cli, state: Path
) -> None:
    """The same with a real exFAT drive whose FUSE daemon is killed, as QA pulled it."""
    card = tmp_path / "A001"
    write(card / "CLIP" / "C0001.MP4", os.urandom(100_000))
    with fat_drive(tmp_path, "exfat", label="SHUTTLE") as shuttle:
        shoots = shuttle.path / "shoots"
        assert cli("copy", str(card), "--to", str(shoots)).returncode == 0
        dest = LocalDestination(str(shoots))
        shuttle.pull()
        cat = Catalog(state / "catalog.sqlite")
        (job,) = cat.jobs()
        done = finish_job(cat, job["id"], dest, card, tmp_path)
        (outcome,) = done.mhl
        assert not outcome.ok
        assert "the drive or mount may have been removed" in outcome.message, outcome.message
        assert done.json.is_file()


def test_case_only_renames_on_the_source_are_recorded_as_an_exfat_drive_spells_its_copies(
    tmp_path: Path, cli: Cli, ascmhl_bin: Path
) -> None:
    """QA N #5: a source's a.txt renamed A.txt, then its folder Docs renamed docs, then b.txt
    edited and renamed B.txt, each followed by a backup to an exFAT drive (it ignores case). The
    drive keeps the spelling it has (``Docs/a.txt``; the edit lands in ``Docs`` as ``B (2).txt``),
    and each generation records what the drive holds, not the source's new spelling: castoff
    verify, ascmhl-debug verify and ascmhl diff pass, where they called files missing."""
    src = tmp_path / "proj"
    write(src / "Docs" / "a.txt", b"alpha")
    write(src / "Docs" / "b.txt", b"beta")
    with fat_drive(tmp_path, "exfat", label="BACKUP") as drive:
        bk = drive.path / "bk"

        def backup() -> None:
            r = cli("copy", str(src), "--to", str(bk))
            assert r.returncode == 0, r.stderr

        backup()
        (src / "Docs" / "a.txt").rename(src / "Docs" / "A.txt")
        backup()
        (src / "Docs").rename(src / "docs")
        backup()
        (src / "docs" / "b.txt").write_bytes(b"beta edited")
        (src / "docs" / "b.txt").rename(src / "docs" / "B.txt")
        backup()
        held = sorted(p.relative_to(bk).as_posix() for p in bk.rglob("*.txt"))
        assert held == ["proj/Docs/B (2).txt", "proj/Docs/a.txt", "proj/Docs/b.txt"]
        recorded = {
            p.text
            for m in sorted((bk / "ascmhl").glob("*.mhl"))
            for p in etree.parse(str(m)).iter(f"{{{mhl.NS}}}path")
        }
        assert recorded == set(held)
        assert_valid(bk)
        v = cli("verify", str(bk))
        assert v.returncode == 0, v.stdout + v.stderr
        for tool in (("ascmhl-debug", "verify"), ("ascmhl", "diff")):
            theirs = ascmhl(ascmhl_bin, *tool, str(bk))
            assert theirs.returncode == 0, theirs.stdout + theirs.stderr
