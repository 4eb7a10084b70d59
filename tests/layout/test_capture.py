"""Capture date and device read from real sample files: every format, every fallback, bounded reads."""

from __future__ import annotations

import io
import os
import random
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from PIL import Image

from castoff import samples as smp
from castoff.layout.capture import HEAD_BYTES, Capture, device_from_card, exif_time, read_capture

NIKON = smp.Shot(
    make="NIKON CORPORATION", model="NIKON Z 8", taken=datetime(2023, 1, 2, 3, 4, 5), offset="-05:00"
)
NO_OFFSET = smp.Shot(make="SONY", model="ILCE-7M4", taken=datetime(2022, 12, 31, 23, 59, 58))
MINUS5 = timezone(-timedelta(hours=5))
VIDEO_AT = datetime(2024, 1, 1, 12, 0, 0, tzinfo=UTC)


def pillow_jpeg() -> bytes:
    """EXIF written by another writer than castoff's own sample code."""
    img = Image.new("RGB", (8, 8), (10, 200, 30))
    exif = Image.Exif()
    exif[0x010F] = "FUJIFILM"
    exif[0x0110] = "X-T5"
    exif_ifd = exif.get_ifd(0x8769)
    exif_ifd[0x9003] = "2021:07:04 10:11:12"
    exif_ifd[0x9011] = "+09:00"
    out = io.BytesIO()
    img.save(out, "JPEG", exif=exif)
    return out.getvalue()


CASES: list[tuple[str, bytes, str, str, str | None]] = [
    # name, bytes, capture ISO time, source, device
    ("a.jpg", smp.jpeg(NIKON), "2023-01-02T03:04:05-05:00", "exif", "NIKON Z 8"),
    ("pillow.jpg", pillow_jpeg(), "2021-07-04T10:11:12+09:00", "exif", "FUJIFILM X-T5"),
    ("b.cr2", smp.tiff_raw(NIKON, kind="cr2"), "2023-01-02T03:04:05-05:00", "exif", "NIKON Z 8"),
    ("c.nef", smp.tiff_raw(NIKON, kind="nef"), "2023-01-02T03:04:05-05:00", "exif", "NIKON Z 8"),
    ("d.arw", smp.tiff_raw(NO_OFFSET, kind="arw"), "2022-12-31T23:59:58", "exif", "SONY ILCE-7M4"),
    ("e.dng", smp.tiff_raw(NIKON, kind="dng"), "2023-01-02T03:04:05-05:00", "exif", "NIKON Z 8"),
    ("f.orf", smp.tiff_raw(NIKON, kind="orf"), "2023-01-02T03:04:05-05:00", "exif", "NIKON Z 8"),
    ("g.rw2", smp.tiff_raw(NIKON, kind="rw2"), "2023-01-02T03:04:05-05:00", "exif", "NIKON Z 8"),
    ("h.raf", smp.raf(NIKON), "2023-01-02T03:04:05-05:00", "exif", "NIKON Z 8"),
    ("i.cr3", smp.cr3(NIKON), "2023-01-02T03:04:05-05:00", "exif", "NIKON Z 8"),
    ("l.heic", smp.heic(NIKON), "2023-01-02T03:04:05-05:00", "exif", "NIKON Z 8"),
    (
        "j.mov",
        smp.quicktime(VIDEO_AT, make="Apple", model="iPhone 15 Pro"),
        "VIDEO",
        "quicktime",
        "Apple iPhone 15 Pro",
    ),
    ("k.mp4", smp.quicktime(VIDEO_AT, brand=b"mp42", moov_first=True), "VIDEO", "quicktime", None),
    ("m.mxf", smp.mxf(VIDEO_AT, company="Sony", product="PMW-F55"), "VIDEO", "mxf", "Sony PMW-F55"),
    ("n.mxf", smp.mxf(VIDEO_AT), "VIDEO", "mxf", None),
]


@pytest.mark.parametrize(("name", "data", "when", "source", "device"), CASES, ids=[c[0] for c in CASES])
def test_capture_from_the_file(
    tmp_path: Path, name: str, data: bytes, when: str, source: str, device: str | None
) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    cap = read_capture(str(path), f"card/{name}", path.stat().st_mtime_ns)
    expected = VIDEO_AT.astimezone().isoformat() if when == "VIDEO" else when
    assert cap.when.isoformat() == expected
    assert cap.when_source == source
    assert cap.device == device
    assert cap.device_source == ("none" if device is None else source)


def test_mvhd_version_1(tmp_path: Path) -> None:
    path = tmp_path / "v1.mov"
    ftyp = smp.box(b"ftyp", b"qt  \0\0\0\0qt  ")
    path.write_bytes(ftyp + smp.box(b"moov", smp.mvhd(VIDEO_AT, version=1)))
    cap = read_capture(str(path), "card/v1.mov", 0)
    assert (cap.when, cap.when_source) == (VIDEO_AT.astimezone(), "quicktime")


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("plain.jpg", smp.jpeg(None)),
        ("notes.txt", b"hello"),
        ("empty.mov", b""),
        ("truncated.cr2", smp.tiff_raw(NIKON)[:20]),
        (
            "garbage.mp4",
            b"\0\0\0\x20ftypisom" + random.Random(93).randbytes(64),
        ),  # one set: named alike in every run
        ("zero-date.jpg", smp.jpeg(smp.Shot(make=None, model=None, taken=None))),
    ],
)
def test_no_metadata_falls_back_to_mtime(tmp_path: Path, name: str, data: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    stamp = datetime(2020, 2, 3, 4, 5, 6).timestamp()
    os.utime(path, (stamp, stamp))
    cap = read_capture(str(path), f"card/{name}", path.stat().st_mtime_ns)
    assert cap.when_source == "mtime"
    assert cap.when.replace(tzinfo=None) == datetime(2020, 2, 3, 4, 5, 6)
    assert cap.device is None and cap.device_source == "none"


@pytest.mark.parametrize(
    ("rel", "make"),
    [
        ("EOS/DCIM/100CANON/IMG_0001.JPG", "Canon"),
        ("card/PRIVATE/M4ROOT/CLIP/C0001.MP4", "Sony"),
        ("card/DCIM/101MSDCF/DSC0001.ARW", "Sony"),
        ("card/DCIM/100NIKON/DSC_0001.NEF", "Nikon"),
        ("card/DCIM/100_FUJI/DSCF0001.RAF", "Fujifilm"),
        ("card/DCIM/100GOPRO/GX010001.MP4", "GoPro"),
        ("card/DCIM/100MEDIA/DJI_0001.MP4", "DJI"),
        ("card/DCIM/100CANON", None),  # the file's own name is not a folder
        ("card/Misc/clip.mp4", None),
    ],
)
def test_device_from_card_structure(rel: str, make: str | None) -> None:
    assert device_from_card(rel) == make


def test_card_device_used_only_when_the_file_says_nothing(tmp_path: Path) -> None:
    path = tmp_path / "C0001.MP4"
    path.write_bytes(smp.quicktime(VIDEO_AT))
    cap = read_capture(str(path), "card/PRIVATE/M4ROOT/CLIP/C0001.MP4", 0)
    assert (cap.device, cap.device_source, cap.when_source) == ("Sony", "card", "quicktime")
    path.write_bytes(smp.quicktime(VIDEO_AT, make="Sony", model="FX3"))
    cap = read_capture(str(path), "card/PRIVATE/M4ROOT/CLIP/C0001.MP4", 0)
    assert (cap.device, cap.device_source) == ("Sony FX3", "quicktime")


def test_reads_are_bounded_even_when_moov_is_at_the_end_of_a_huge_file(tmp_path: Path) -> None:
    """A 64 GiB (sparse) clip with moov last: found with a few small reads, far below the cap."""
    path = tmp_path / "huge.mov"
    mdat_size = 64 * 1024**3
    moov = smp.box(b"moov", smp.mvhd(VIDEO_AT))
    with open(path, "wb") as fh:
        fh.write(smp.box(b"ftyp", b"qt  \0\0\0\0qt  "))
        fh.write(b"\0\0\0\x01mdat" + mdat_size.to_bytes(8, "big"))
        fh.seek(mdat_size - 16, os.SEEK_CUR)
        fh.write(moov)
    cap = read_capture(str(path), "card/huge.mov", 0, cap=4096)
    assert cap.when_source == "quicktime"
    assert HEAD_BYTES == 512 * 1024


def test_every_byte_read_counts_against_the_cap(tmp_path: Path) -> None:
    """The cap counts bytes read, not offsets: image data between the header and the IFDs is
    skipped by seeking, and a cap too small for the IFDs gives mtime, never a longer read."""
    path = tmp_path / "far.cr2"
    path.write_bytes(smp.tiff_exif(NIKON, gap=64 * 1024))
    assert read_capture(str(path), "card/far.cr2", 0, cap=1024).when_source == "exif"
    assert read_capture(str(path), "card/far.cr2", 0, cap=64).when_source == "mtime"


@pytest.mark.parametrize(
    ("stamp", "offset", "iso"),
    [
        ("2024:05:17 14:30:05", None, "2024-05-17T14:30:05"),
        ("2024:05:17 14:30:05", "+02:00", "2024-05-17T14:30:05+02:00"),
        ("2024:05:17 14:30:05", "-03:30", "2024-05-17T14:30:05-03:30"),
        ("2024:05:17 14:30:05", "bogus", "2024-05-17T14:30:05"),
        ("0000:00:00 00:00:00", None, None),
        ("", None, None),
    ],
)
def test_exif_time(stamp: str, offset: str | None, iso: str | None) -> None:
    got = exif_time(stamp, offset)
    assert (got.isoformat() if got else None) == iso


def test_device_name_from_make_and_model() -> None:
    when = datetime(2024, 1, 1)
    assert Capture(when, "exif", "Canon", "Canon EOS R5").device == "Canon EOS R5"
    assert Capture(when, "exif", "SONY", "ILCE-7M4").device == "SONY ILCE-7M4"
    assert Capture(when, "exif", "Apple", None).device == "Apple"
    assert Capture(when, "exif", None, None).device is None


def test_an_mxf_without_a_creation_date_or_cut_short_falls_back_to_mtime(tmp_path: Path) -> None:
    whole = smp.mxf(None, company="ARRI", product="ALEXA 35")
    (tmp_path / "a.mxf").write_bytes(whole)
    cap = read_capture(str(tmp_path / "a.mxf"), "card/a.mxf", (tmp_path / "a.mxf").stat().st_mtime_ns)
    assert (cap.when_source, cap.device, cap.device_source) == ("mtime", "ARRI ALEXA 35", "mxf")
    dated = smp.mxf(VIDEO_AT, company="Sony")
    (tmp_path / "b.mxf").write_bytes(dated[:40])  # the partition pack, cut off
    cap = read_capture(str(tmp_path / "b.mxf"), "card/b.mxf", (tmp_path / "b.mxf").stat().st_mtime_ns)
    assert cap.when_source == "mtime" and cap.device_source == "none"


@pytest.mark.parametrize(
    ("name", "run_in", "found"),
    [
        ("run-in.MXF", 4096, True),  # a run-in: looked for in a file named .mxf
        ("longest-run-in.mxf", 65536 - 1, True),
        ("renamed.bin", 0, True),  # the partition pack at 0: found whatever the name
        ("renamed-run-in.bin", 4096, False),  # not looked for: the date falls back to the mtime
    ],
)
def test_an_mxf_run_in_is_looked_for_in_files_named_mxf(
    tmp_path: Path, name: str, run_in: int, found: bool
) -> None:
    path = tmp_path / name
    path.write_bytes(b"\x01" * run_in + smp.mxf(VIDEO_AT, company="Sony", product="FX6"))
    cap = read_capture(str(path), f"card/{name}", path.stat().st_mtime_ns)
    if found:
        assert (cap.when, cap.when_source, cap.device) == (VIDEO_AT.astimezone(), "mxf", "Sony FX6")
    else:
        assert (cap.when_source, cap.device_source) == ("mtime", "none")


def _preads(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """The (size, offset) of every read the header check makes."""
    import castoff.layout.capture as capture_mod

    seen: list[tuple[int, int]] = []
    real = os.pread

    def pread(fd: int, n: int, offset: int) -> bytes:
        seen.append((n, offset))
        return real(fd, n, offset)

    monkeypatch.setattr(capture_mod.os, "pread", pread)
    return seen


def test_a_file_with_no_header_to_read_costs_one_small_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Most files of a job (documents, sound, data) say nothing: their first page tells, not 64 KiB."""
    from castoff.layout.capture import FIRST_HEAD

    path = tmp_path / "data.bin"
    path.write_bytes(b"\x01" * 50_000)
    seen = _preads(monkeypatch)
    assert read_capture(str(path), "card/data.bin", 0).when_source == "mtime"
    assert seen == [(FIRST_HEAD, 0)]


def test_a_header_past_the_first_page_is_read_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """EXIF beyond the first page: one more read, of the first SMALL_HEAD bytes, serves the
    whole walk (not one read per tag)."""
    from castoff.layout.capture import FIRST_HEAD, SMALL_HEAD

    path = tmp_path / "far.cr2"
    path.write_bytes(smp.tiff_exif(NIKON, gap=8 * 1024))
    seen = _preads(monkeypatch)
    cap = read_capture(str(path), "card/far.cr2", 0)
    assert (cap.when_source, cap.device) == ("exif", "NIKON Z 8")
    assert seen == [(FIRST_HEAD, 0), (SMALL_HEAD, 0)]
