"""The planner inside real jobs: layouts over a sample card, sidecars with their originals, name
rules, extended attributes, and re-runs that skip what the layout already placed."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from castoff.destinations.local import LocalDestination
from castoff.layout.planner import LayoutOptions, Planner
from castoff.layout.template import layout_template, parse_template
from castoff.samples import make_sample_card
from engine_runner import Runner, write

SIDECARS = {
    "IMG_0001.XMP": "IMG_0001.CR3",
    "C0001.LRV": "C0001.MP4",
    "C0001.THM": "C0001.MP4",
    "C0001.WAV": "C0001.MP4",
}


def planner(layout: str | None = None, template: str | None = None, **kw: object) -> Planner:
    return Planner(LayoutOptions(template=layout_template(layout, template), **kw))  # type: ignore[arg-type]


def landed(root: Path) -> dict[str, str]:
    """name → folder (relative to root) of every visible file."""
    return {
        p.name: str(p.parent.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and not p.name.startswith(".castoff.")
    }


@pytest.mark.parametrize(
    ("layout", "folders"),
    [
        ("date", {"IMG_0002.JPG": "2024-05-17", "C0001.MP4": "2024-05-18", "IMG_4242.MOV": "2024-05-19"}),
        ("month", {"IMG_0002.JPG": "2024-05", "C0001.MP4": "2024-05", "shot list.txt": "2024-05"}),
        (
            "device",
            {"IMG_0002.CR3": "Canon EOS R5", "C0001.MP4": "Sony", "IMG_4242.MOV": "Apple iPhone 15 Pro"},
        ),
        (
            "type",
            {"IMG_0002.JPG": "Photos", "IMG_0002.CR3": "RAW", "C0001.MP4": "Video", "shot list.txt": "Other"},
        ),
        ("none", {"IMG_0002.JPG": "card/DCIM/100CANON", "C0001.MP4": "card/PRIVATE/M4ROOT/CLIP"}),
    ],
)
def test_layouts_over_a_sample_card(
    tmp_path: Path, runner: Runner, layout: str, folders: dict[str, str]
) -> None:
    card = make_sample_card(tmp_path / "src" / "card")
    dest = tmp_path / "out"
    result = runner([card], [LocalDestination(dest)], planner=planner(layout))
    assert result.exit_code == 0
    where = landed(dest)
    assert len(where) == sum(1 for p in card.rglob("*") if p.is_file())
    for name, folder in folders.items():
        assert where[name] == folder, name
    for sidecar, original in SIDECARS.items():
        assert where[sidecar] == where[original], f"{sidecar} did not travel with {original}"
    # the catalog knows where and why
    meta = runner.catalog.job_file_meta(runner.job_id)
    by_path = {m["original_path"]: m for m in meta.values()}
    cr3 = by_path["card/DCIM/100CANON/IMG_0001.CR3"]
    assert (cr3["capture_source"], cr3["device"], cr3["file_type"]) == ("exif", "Canon EOS R5", "RAW")
    assert cr3["capture_time"] == "2024-05-17T09:00:00+02:00"
    xmp = by_path["card/DCIM/100CANON/IMG_0001.XMP"]
    assert (xmp["sidecar_of"], xmp["file_type"]) == ("IMG_0001.CR3", "Sidecars")
    assert by_path["card/notes/shot list.txt"]["capture_source"] == "mtime"
    assert by_path["card/PRIVATE/M4ROOT/CLIP/C0001.MP4"]["device_source"] == "card"


def test_rerun_with_a_layout_skips_everything(tmp_path: Path, runner: Runner) -> None:
    card = make_sample_card(tmp_path / "src" / "card")
    dest = LocalDestination(tmp_path / "out")
    assert runner([card], [dest], planner=planner("date")).exit_code == 0
    again = runner([card], [dest], planner=planner("date"))
    stats = again.lanes[str(tmp_path / "out")]
    assert (again.exit_code, stats["skipped"], stats["verified"]) == (0, stats["files_total"], 0)


def test_counter_is_shared_by_a_raw_jpeg_pair_and_its_sidecars(tmp_path: Path, runner: Runner) -> None:
    card = make_sample_card(tmp_path / "src" / "card")
    dest = tmp_path / "out"
    p = Planner(LayoutOptions(template=parse_template("{YYYY}{MM}{DD}_{counter:4}.{ext}")))
    assert runner([card], [LocalDestination(dest)], planner=p).exit_code == 0
    names = sorted(x.name for x in dest.iterdir())
    assert names[:4] == ["20240517_0001.CR3", "20240517_0001.JPG", "20240517_0001.XMP", "20240517_0002.CR3"]
    clip = [n for n in names if n.startswith("20240518_") and not n.endswith("txt")]
    assert {n.split(".")[0] for n in clip} == {clip[0].split(".")[0]}  # MP4, LRV, THM, WAV share one
    assert {n.rsplit(".", 1)[1] for n in clip} == {"MP4", "LRV", "THM", "WAV"}


def test_sidecar_variants(tmp_path: Path, runner: Runner) -> None:
    card = make_sample_card(tmp_path / "src" / "card")
    clip = card / "PRIVATE" / "M4ROOT" / "CLIP"
    write(clip / "C0001M01.XML", b"<NonRealTimeMeta/>")  # Sony's clip metadata
    write(card / "DCIM" / "100CANON" / "IMG_0002.CR3.xmp", b"<x/>")  # darktable style
    write(card / "DCIM" / "100CANON" / "ORPHAN.XMP", b"<x/>")  # no original: a file of its own
    dest = tmp_path / "out"
    assert runner([card], [LocalDestination(dest)], planner=planner("type")).exit_code == 0
    where = landed(dest)
    assert where["C0001M01.XML"] == "Video"
    assert where["IMG_0002.CR3.xmp"] == "RAW"
    assert where["ORPHAN.XMP"] == "Sidecars"


@pytest.mark.parametrize("safe", [False, True])
def test_windows_names_fail_plainly_or_are_substituted_and_reported(
    tmp_path: Path, runner: Runner, safe: bool
) -> None:
    src = tmp_path / "src" / "card"
    write(src / "ok.txt", b"fine")
    write(src / "what?.txt", b"odd")
    write(src / "AUX.log", b"reserved")
    dest = tmp_path / "out"
    p = planner("none", name_rules="windows", safe_names=safe)
    result = runner([src], [LocalDestination(dest)], planner=p)
    outcomes = runner.outcomes()
    assert outcomes[("card/ok.txt", str(dest))]["status"] == "verified"
    odd = outcomes[("card/what?.txt", str(dest))]
    if not safe:
        assert result.exit_code == 1
        assert odd["status"] == "failed" and odd["error_code"] == "key-rejected"
        assert "--safe-names" in odd["error"]
        assert sorted(x.name for x in (dest / "card").iterdir()) == ["ok.txt"]
    else:
        assert result.exit_code == 0
        assert (dest / "card" / "what\uff1f.txt").read_bytes() == b"odd"
        assert (dest / "card" / "AUX_.log").read_bytes() == b"reserved"
        assert "written as 'what\uff1f.txt'" in odd["detail"]


def test_posix_destination_keeps_names_exactly(tmp_path: Path, runner: Runner) -> None:
    src = tmp_path / "src" / "card"
    write(src / "what?.txt", b"odd")
    dest = tmp_path / "out"
    assert runner([src], [LocalDestination(dest)], planner=planner("none", name_rules="posix")).exit_code == 0
    assert (dest / "card" / "what?.txt").read_bytes() == b"odd"


@pytest.mark.parametrize("rules", ["windows", "posix"])
def test_folders_whose_names_differ_only_by_case_are_one_under_windows_rules(
    tmp_path: Path, runner: Runner, rules: str
) -> None:
    """exFAT, FAT and NTFS take 100CANON and 100canon for one folder: under their rules every
    file's target names it as the job first spelt it (the report names a path that is there;
    FUSE would take each spelling for a folder of its own), and two files of one name in it are
    kept both. A POSIX destination keeps the folders apart."""
    src = tmp_path / "src" / "card"
    write(src / "100CANON" / "IMG_0001.JPG", b"first")
    write(src / "100CANON" / "sub" / "A.JPG", b"a")
    write(src / "100Canon" / "SUB" / "B.JPG", b"b")
    write(src / "100canon" / "IMG_0001.JPG", b"second")
    dest = tmp_path / "out"
    result = runner([src], [LocalDestination(dest)], planner=planner("none", name_rules=rules))
    assert result.exit_code == 0
    outcomes = runner.outcomes()
    if rules == "posix":
        assert sorted(p.name for p in (dest / "card").iterdir()) == ["100CANON", "100Canon", "100canon"]
        return
    assert [p.name for p in (dest / "card").iterdir()] == ["100CANON"]
    assert landed(dest / "card") == {
        "IMG_0001.JPG": "100CANON",
        "IMG_0001 (2).JPG": "100CANON",
        "A.JPG": "100CANON/sub",
        "B.JPG": "100CANON/sub",
    }
    assert (dest / "card" / "100CANON" / "IMG_0001 (2).JPG").read_bytes() == b"second"
    b = outcomes[("card/100Canon/SUB/B.JPG", str(dest))]
    assert b["target"] == str(dest / "card" / "100CANON" / "sub" / "B.JPG")
    assert "folder 'card/100Canon/SUB' written as 'card/100CANON/sub'" in b["detail"]
    second = outcomes[("card/100canon/IMG_0001.JPG", str(dest))]
    assert second["target"] == str(dest / "card" / "100CANON" / "IMG_0001 (2).JPG")


def _xattrs_supported(path: Path) -> bool:
    probe = path / "probe"
    probe.write_bytes(b"")
    try:
        os.setxattr(probe, "user.castoff.probe", b"1")
    except OSError:
        return False
    finally:
        probe.unlink()
    return True


@pytest.mark.parametrize("copy", [False, True])
def test_extended_attributes_copied_under_the_option(tmp_path: Path, runner: Runner, copy: bool) -> None:
    if not _xattrs_supported(tmp_path):
        pytest.skip("this filesystem holds no user extended attributes")
    src = tmp_path / "src" / "card"
    f = write(src / "IMG_0001.JPG", b"photo")
    os.setxattr(f, "user.xdg.origin.url", b"https://example.invalid/shoot")
    os.setxattr(f, "user.rating", b"\x05")
    dest = tmp_path / "out"
    assert runner([src], [LocalDestination(dest)], planner=planner("none", xattrs=copy)).exit_code == 0
    out = dest / "card" / "IMG_0001.JPG"
    got = {n: os.getxattr(out, n) for n in os.listxattr(out) if n.startswith("user.")}
    want = {"user.xdg.origin.url": b"https://example.invalid/shoot", "user.rating": b"\x05"}
    assert got == (want if copy else {})
    assert out.stat().st_mtime_ns == f.stat().st_mtime_ns


def test_extended_attributes_a_destination_cannot_keep_are_said_once_on_the_console(
    tmp_path: Path, runner: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An exFAT or FAT drive keeps no extended attributes: each file's report entry says so, and
    the console once for the destination (QA: only the report's details said it)."""
    if not _xattrs_supported(tmp_path):
        pytest.skip("this filesystem holds no user extended attributes")
    src = tmp_path / "src" / "card"
    for n in range(3):
        os.setxattr(write(src / f"IMG_000{n}.JPG", b"photo %d" % n), "user.rating", b"5")

    def refuse(path: object, name: str, value: bytes, *a: object, **kw: object) -> None:
        raise OSError(errno.ENOTSUP, "Operation not supported")

    monkeypatch.setattr(os, "setxattr", refuse)
    dest = tmp_path / "out"
    assert runner([src], [LocalDestination(dest)], planner=planner("none", xattrs=True)).exit_code == 0
    said = [m for m in runner.logs() if "extended attributes" in m]
    assert said == [
        f"{dest}: extended attributes not kept here (user.rating: Operation not supported): this drive"
        " cannot keep them (--xattrs); the report says so for each file"
    ]
    details = [o["detail"] for o in runner.outcomes().values()]
    assert details == ["extended attributes not kept here (user.rating: Operation not supported)"] * 3
