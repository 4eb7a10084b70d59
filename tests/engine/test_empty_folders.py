"""Folders of the source that hold no file are made at every local destination, as ``cp -r`` does:
a card's structure (``PRIVATE/M4ROOT/THMBNL``, an empty ``MISC``) is part of what a DIT mirrors.
Before: only the folders of files were made, so these were missing at every destination."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

from castoff.destinations.local import LocalDestination
from castoff.layout.planner import LayoutOptions, Planner
from castoff.layout.template import LAYOUTS, parse_template
from castoff.scan import Filters
from engine_runner import Runner, s3dest, write

#: the folders the job must make under each destination (those of files are made by their copies)
EMPTY = ("card/MISC", "card/PRIVATE/M4ROOT/THMBNL", "card/PRIVATE/M4ROOT/SUB/EMPTY")


def card(root: Path) -> Path:
    """A card with files, empty folders (nested too), a folder of OS junk alone, junk folders, an
    excluded folder, a folder holding only a symlink and one whose files are all left out."""
    src = root / "card"
    write(src / "DCIM" / "100CANON" / "IMG_0001.JPG", random.Random(1).randbytes(50_000))
    write(src / "MISC" / ".DS_Store", b"junk")
    write(src / "MISC" / "._IMG_0001.JPG", b"apple double")
    (src / "PRIVATE" / "M4ROOT" / "THMBNL").mkdir(parents=True)
    (src / "PRIVATE" / "M4ROOT" / "SUB" / "EMPTY").mkdir(parents=True)
    (src / ".Trashes" / "501").mkdir(parents=True)
    (src / ".Spotlight-V100").mkdir()
    (src / "NOPE" / "inner").mkdir(parents=True)  # --exclude NOPE
    (src / "LINKS").mkdir()
    (src / "LINKS" / "to-dcim").symlink_to(src / "DCIM")  # not followed: LINKS is not empty
    write(src / "THM" / "IMG_0001.THM", b"thumb")  # --exclude '*.THM': THM is not empty on the card
    return src


def folders_under(root: Path) -> set[str]:
    return {
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_dir() and not p.is_symlink() and "ascmhl" not in p.parts
    }


def run(runner: Runner, src: Path, dests: list[Any], **opts: Any) -> Any:
    filters = Filters(exclude=("NOPE", "*.THM"))
    return runner([src], dests, filters=filters, **opts)


def test_empty_and_junk_only_folders_are_made_at_every_local_destination(
    tmp_path: Path, runner: Runner
) -> None:
    src = card(tmp_path / "src")
    ssd, nas = LocalDestination(tmp_path / "ssd"), LocalDestination(tmp_path / "nas")
    result = run(runner, src, [ssd, nas])
    assert result.exit_code == 0, runner.logs()
    assert result.folders_made == {ssd.name: 3, nas.name: 3}
    for d in ("ssd", "nas"):
        root = tmp_path / d
        assert folders_under(root) == {
            "card",
            "card/DCIM",
            "card/DCIM/100CANON",
            "card/MISC",
            "card/PRIVATE",
            "card/PRIVATE/M4ROOT",
            "card/PRIVATE/M4ROOT/THMBNL",
            "card/PRIVATE/M4ROOT/SUB",
            "card/PRIVATE/M4ROOT/SUB/EMPTY",
        }
        assert not any((root / "card" / "MISC").iterdir())  # the junk is not copied
    rows = list(runner.catalog.job_folders(runner.job_id))
    assert sorted({r["rel_path"] for r in rows}) == sorted(EMPTY)
    assert {r["status"] for r in rows} == {"made"}
    assert {r["target"] for r in rows if r["dest_name"] == ssd.name} == {f"{tmp_path}/ssd/{p}" for p in EMPTY}
    made = [e.data for e in runner.events if e.kind == "folder-done"]
    assert len(made) == 6 and {e["status"] for e in made} == {"made"}


def test_a_rerun_makes_a_removed_folder_again_and_copies_nothing(tmp_path: Path, runner: Runner) -> None:
    src = card(tmp_path / "src")
    ssd, nas = LocalDestination(tmp_path / "ssd"), LocalDestination(tmp_path / "nas")
    assert run(runner, src, [ssd, nas]).exit_code == 0
    os.rmdir(tmp_path / "ssd" / "card" / "MISC")
    os.rmdir(tmp_path / "nas" / "card" / "PRIVATE" / "M4ROOT" / "SUB" / "EMPTY")
    os.rmdir(tmp_path / "nas" / "card" / "PRIVATE" / "M4ROOT" / "SUB")
    ssd, nas = LocalDestination(tmp_path / "ssd"), LocalDestination(tmp_path / "nas")
    result = run(runner, src, [ssd, nas])
    assert result.exit_code == 0, runner.logs()
    assert result.folders_made == {ssd.name: 1, nas.name: 1}
    assert (tmp_path / "ssd" / "card" / "MISC").is_dir()
    assert (tmp_path / "nas" / "card" / "PRIVATE" / "M4ROOT" / "SUB" / "EMPTY").is_dir()
    assert {r["status"] for r in runner.outcomes().values()} == {"skipped"}  # no file sent again
    statuses = {
        (r["rel_path"], r["dest_name"]): r["status"] for r in runner.catalog.job_folders(runner.job_id)
    }
    assert statuses[("card/MISC", ssd.name)] == "made"
    assert statuses[("card/MISC", nas.name)] == "already"
    assert not [m for m in runner.logs() if "folder" in m]  # quiet about the ones there


def test_a_file_where_a_folder_goes_fails_that_folder_there_alone(tmp_path: Path, runner: Runner) -> None:
    src = card(tmp_path / "src")
    write(tmp_path / "nas" / "card" / "PRIVATE" / "M4ROOT" / "THMBNL", b"in the way")
    ssd, nas = LocalDestination(tmp_path / "ssd"), LocalDestination(tmp_path / "nas")
    result = run(runner, src, [ssd, nas])
    assert result.exit_code == 1
    assert result.status == "failed"
    assert result.folders_failed == 1 and not result.files_failed
    (said,) = [m for m in runner.logs() if "THMBNL" in m]
    assert f"{nas.name}: empty folder card/PRIVATE/M4ROOT/THMBNL not made" in said
    assert "is a file, where a folder is needed" in said
    # every file and every other folder is delivered, at both
    assert {r["status"] for r in runner.outcomes().values()} == {"verified"}
    assert (tmp_path / "nas" / "card" / "DCIM" / "100CANON" / "IMG_0001.JPG").is_file()
    assert (tmp_path / "nas" / "card" / "MISC").is_dir()
    assert (tmp_path / "ssd" / "card" / "PRIVATE" / "M4ROOT" / "THMBNL").is_dir()
    assert (tmp_path / "nas" / "card" / "PRIVATE" / "M4ROOT" / "THMBNL").read_bytes() == b"in the way"
    rows = {(r["rel_path"], r["dest_name"]): r for r in runner.catalog.job_folders(runner.job_id)}
    failed = rows[("card/PRIVATE/M4ROOT/THMBNL", nas.name)]
    assert failed["status"] == "failed" and failed["error_code"] == "key-rejected"


def test_a_layout_that_places_files_by_date_makes_no_empty_folder_and_says_so_once(
    tmp_path: Path, runner: Runner
) -> None:
    src = card(tmp_path / "src")
    planner = Planner(LayoutOptions(template=parse_template(LAYOUTS["date"])))
    ssd = LocalDestination(tmp_path / "ssd")
    result = run(runner, src, [ssd], planner=planner)
    assert result.exit_code == 0, runner.logs()
    assert result.folders_made == {}
    assert [p for p in folders_under(tmp_path / "ssd") if "MISC" in p or "THMBNL" in p] == []
    (said,) = [m for m in runner.logs() if "empty folder" in m]
    assert said.startswith("3 empty folders of the source not made: the layout ({YYYY}-{MM}-{DD}/{name})")
    assert list(runner.catalog.job_folders(runner.job_id)) == []


def test_a_template_of_the_source_folders_places_them_under_its_own_folders(
    tmp_path: Path, runner: Runner
) -> None:
    src = card(tmp_path / "src")
    template = parse_template("shoots/{shoot}/{card}/{folder}/{name}")
    planner = Planner(LayoutOptions(template=template, shoot="Harbour"))
    ssd = LocalDestination(tmp_path / "ssd")
    assert run(runner, src, [ssd], planner=planner).exit_code == 0, runner.logs()
    for rel in EMPTY:
        assert (tmp_path / "ssd" / "shoots" / "Harbour" / rel).is_dir()


def test_a_mixed_job_makes_them_at_the_local_destination_only(
    tmp_path: Path, runner: Runner, rclone_s3: Any
) -> None:
    src = card(tmp_path / "src")
    bucket = s3dest(rclone_s3.url, rclone_s3.bucket, rclone_s3.access_key, rclone_s3.secret_key)
    ssd = LocalDestination(tmp_path / "ssd")
    result = run(runner, src, [ssd, bucket])
    assert result.exit_code == 0, runner.logs()
    assert result.folders_made == {ssd.name: 3}
    assert {r["dest_name"] for r in runner.catalog.job_folders(runner.job_id)} == {ssd.name}
    keys = [o["Key"] for o in rclone_s3.admin_client().list_objects_v2(Bucket=rclone_s3.bucket)["Contents"]]
    assert keys == ["raw-shoots/card/DCIM/100CANON/IMG_0001.JPG"]
