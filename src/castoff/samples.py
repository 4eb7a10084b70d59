"""Small, real media files with known metadata, built byte by byte: for tests and ``castoff demo``.

JPEG and TIFF-based RAW with EXIF, Fujifilm RAF, Canon CR3 and QuickTime/MP4 with a creation time,
sidecars, and ``make_sample_card`` that lays them out the way cameras do.
"""

from __future__ import annotations

import base64
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

_ASCII, _SHORT, _LONG = 2, 3, 4
TAG_MAKE, TAG_MODEL, TAG_EXIF_IFD = 0x010F, 0x0110, 0x8769
TAG_DATETIME_ORIGINAL, TAG_OFFSET_TIME_ORIGINAL = 0x9003, 0x9011
QT_EPOCH = datetime(1904, 1, 1, tzinfo=UTC)
#: Canon's box that holds CR3 metadata (CMT1 = TIFF IFD0, CMT2 = the EXIF IFD)
CR3_UUID = bytes.fromhex("85c0b687820f11e08111f4ce462b6a48")

# A 16x16 grey baseline JPEG after its SOI marker and without a JFIF segment (made once by Pillow).
_JPEG_BODY = base64.b64decode(
    "/9sAQwAUDg8SDw0UEhASFxUUGB4yIR4cHB49LC4kMklATEtHQEZFUFpzYlBVbVZFRmSIZW13e4GCgU5gjZeMfZZzfoF8/8AA"
    "CwgAEAAQAQERAP/EAB8AAAEFAQEBAQEBAAAAAAAAAAABAgMEBQYHCAkKC//EALUQAAIBAwMCBAMFBQQEAAABfQECAwAEEQUS"
    "ITFBBhNRYQcicRQygZGhCCNCscEVUtHwJDNicoIJChYXGBkaJSYnKCkqNDU2Nzg5OkNERUZHSElKU1RVVldYWVpjZGVmZ2hp"
    "anN0dXZ3eHl6g4SFhoeIiYqSk5SVlpeYmZqio6Slpqeoqaqys7S1tre4ubrCw8TFxsfIycrS09TV1tfY2drh4uPk5ebn6Onq"
    "8fLz9PX29/j5+v/aAAgBAQAAPwAooor/2Q=="
)


@dataclass(frozen=True)
class Shot:
    """What a sample file says about itself."""

    make: str | None = "Canon"
    model: str | None = "Canon EOS R5"
    taken: datetime | None = datetime(2024, 5, 17, 14, 30, 5)
    #: EXIF OffsetTimeOriginal, e.g. "+02:00"; None leaves the tag out
    offset: str | None = None


# --- TIFF / EXIF -----------------------------------------------------------------------------


def _ifd(entries: Sequence[tuple[int, int, bytes]], start: int, order: str) -> bytes:
    """One IFD at file offset ``start``: entries of (tag, type, value bytes), data after it."""
    entries = sorted(entries)
    data_at = start + 2 + 12 * len(entries) + 4
    table = struct.pack(order + "H", len(entries))
    data = b""
    for tag, typ, value in entries:
        count = len(value) // {_ASCII: 1, _SHORT: 2, _LONG: 4}[typ]
        if len(value) <= 4:
            table += struct.pack(order + "HHI", tag, typ, count) + value.ljust(4, b"\0")
        else:
            table += struct.pack(order + "HHII", tag, typ, count, data_at + len(data))
            data += value + (b"\0" if len(value) % 2 else b"")
    return table + struct.pack(order + "I", 0) + data


def _ascii(text: str) -> bytes:
    return text.encode("ascii") + b"\0"


def tiff_exif(shot: Shot, *, little: bool = True, magic: bytes = b"*\0", gap: int = 0) -> bytes:
    """A TIFF structure with IFD0 (Make, Model) and an EXIF IFD (DateTimeOriginal, offset).

    ``magic`` is the two bytes after the byte order (b"*\\0" for TIFF; ORF and RW2 use others);
    ``gap`` puts that many bytes between the header and IFD0, as RAW files have image data."""
    order = "<" if little else ">"
    ifd0_at = 8 + gap
    exif_entries: list[tuple[int, int, bytes]] = []
    if shot.taken is not None:
        exif_entries.append((TAG_DATETIME_ORIGINAL, _ASCII, _ascii(shot.taken.strftime("%Y:%m:%d %H:%M:%S"))))
    if shot.offset is not None:
        exif_entries.append((TAG_OFFSET_TIME_ORIGINAL, _ASCII, _ascii(shot.offset)))
    ifd0_entries: list[tuple[int, int, bytes]] = []
    if shot.make is not None:
        ifd0_entries.append((TAG_MAKE, _ASCII, _ascii(shot.make)))
    if shot.model is not None:
        ifd0_entries.append((TAG_MODEL, _ASCII, _ascii(shot.model)))
    # IFD0's size does not depend on the pointer's value: lay it out once to learn where EXIF goes.
    probe = _ifd([*ifd0_entries, (TAG_EXIF_IFD, _LONG, b"\0\0\0\0")], ifd0_at, order)
    exif_at = ifd0_at + len(probe)
    ifd0 = _ifd([*ifd0_entries, (TAG_EXIF_IFD, _LONG, struct.pack(order + "I", exif_at))], ifd0_at, order)
    header = (b"II" if little else b"MM") + magic + struct.pack(order + "I", ifd0_at)
    return header + b"\xa5" * gap + ifd0 + _ifd(exif_entries, exif_at, order)


def jpeg(shot: Shot | None = None) -> bytes:
    """A decodable JPEG; with EXIF in an APP1 segment when ``shot`` is given."""
    if shot is None:
        return b"\xff\xd8" + _JPEG_BODY
    payload = b"Exif\0\0" + tiff_exif(shot)
    return b"\xff\xd8\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + _JPEG_BODY


def tiff_raw(shot: Shot, *, kind: str = "cr2", image_bytes: int = 4096) -> bytes:
    """A TIFF-based RAW look-alike (CR2, NEF, ARW, DNG, ORF, RW2): header, IFDs, then 'sensor data'."""
    magic = {"orf": b"RO", "rw2": b"U\0"}.get(kind, b"*\0")
    return tiff_exif(shot, little=kind != "nef", magic=magic, gap=16) + os.urandom(image_bytes)


def raf(shot: Shot) -> bytes:
    """A Fujifilm RAF: its header points at an embedded JPEG that carries the EXIF."""
    embedded = jpeg(shot)
    header = b"FUJIFILMCCD-RAW 0201FF383501".ljust(84, b"\0")
    jpeg_at = 84 + 8 + 8
    head = header + struct.pack(">II", jpeg_at, len(embedded)) + b"\0" * 8
    return head + embedded + os.urandom(2048)


# --- ISO base media (QuickTime, MP4, CR3) ---------------------------------------------------


def box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def mvhd(created: datetime, *, version: int = 0) -> bytes:
    """A movie header whose creation time is ``created`` (seconds since 1904, UTC)."""
    when = created if created.tzinfo else created.replace(tzinfo=UTC)
    secs = int((when - QT_EPOCH).total_seconds())
    times = struct.pack(">IIII", secs, secs, 1000, 2000)
    if version == 1:
        times = struct.pack(">QQIQ", secs, secs, 1000, 2000)
    rest = (
        struct.pack(">IH", 0x00010000, 0x0100) + b"\0" * 10 + b"\0" * 36 + b"\0" * 24 + struct.pack(">I", 2)
    )
    return box(b"mvhd", bytes([version, 0, 0, 0]) + times + rest)


def _qt_text(kind: bytes, text: str) -> bytes:
    raw = text.encode("utf-8")
    return box(kind, struct.pack(">HH", len(raw), 0x55C4) + raw)


def quicktime(
    created: datetime | None,
    *,
    make: str | None = None,
    model: str | None = None,
    brand: bytes = b"qt  ",
    media_bytes: int = 8192,
    moov_first: bool = False,
) -> bytes:
    """A MOV/MP4 skeleton: ftyp, mdat, moov (mvhd, udta ©mak/©mod). Cameras write moov last."""
    ftyp = box(b"ftyp", brand + b"\0\0\0\0" + brand + b"isom")
    udta = b""
    if make:
        udta += _qt_text(b"\xa9mak", make)
    if model:
        udta += _qt_text(b"\xa9mod", model)
    moov = box(b"moov", (mvhd(created) if created else b"") + (box(b"udta", udta) if udta else b""))
    mdat = box(b"mdat", os.urandom(media_bytes))
    return ftyp + (moov + mdat if moov_first else mdat + moov)


def cr3(shot: Shot) -> bytes:
    """A Canon CR3 skeleton: ftyp 'crx ', and moov/uuid with CMT1 (IFD0) and CMT2 (EXIF)."""
    cmt1 = tiff_exif(Shot(make=shot.make, model=shot.model, taken=None))
    entries: list[tuple[int, int, bytes]] = []
    if shot.taken is not None:
        entries.append((TAG_DATETIME_ORIGINAL, _ASCII, _ascii(shot.taken.strftime("%Y:%m:%d %H:%M:%S"))))
    if shot.offset is not None:
        entries.append((TAG_OFFSET_TIME_ORIGINAL, _ASCII, _ascii(shot.offset)))
    exif = b"II*\0" + struct.pack("<I", 8) + _ifd(entries, 8, "<")
    canon = box(b"CNCV", b"CanonCR3_001/00.09.00/00.00.00") + box(b"CMT1", cmt1) + box(b"CMT2", exif)
    moov = box(b"moov", box(b"uuid", CR3_UUID + canon))
    return box(b"ftyp", b"crx \0\0\0\1crx isom") + moov + box(b"mdat", os.urandom(4096))


def _full(kind: bytes, payload: bytes, version: int = 0) -> bytes:
    return box(kind, bytes([version, 0, 0, 0]) + payload)


def heic(shot: Shot) -> bytes:
    """A HEIF still's metadata skeleton: ftyp 'heic', meta (hdlr, iinf with an Exif item, iloc
    pointing into mdat), and the Exif item in mdat as iPhones write it."""
    ftyp = box(b"ftyp", b"heic\0\0\0\0mif1heic")
    hdlr = _full(b"hdlr", b"\0\0\0\0pict" + b"\0" * 12 + b"\0")
    iinf = _full(b"iinf", struct.pack(">H", 1) + _full(b"infe", struct.pack(">HH", 1, 0) + b"Exif\0", 2))
    item = struct.pack(">I", 6) + b"Exif\0\0" + tiff_exif(shot)

    def meta(at: int) -> bytes:
        iloc = _full(b"iloc", bytes([0x44, 0x00]) + struct.pack(">HHHHII", 1, 1, 0, 1, at, len(item)))
        return _full(b"meta", hdlr + iinf + iloc)

    at = len(ftyp) + len(meta(0)) + 8
    return ftyp + meta(at) + box(b"mdat", item + os.urandom(2048))


def xmp(about: str) -> bytes:
    return (
        '<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        f'<rdf:Description rdf:about="{about}"/></rdf:RDF></x:xmpmeta>\n<?xpacket end="w"?>\n'
    ).encode()


# --- a whole card ----------------------------------------------------------------------------


def _klv(key: bytes, value: bytes) -> bytes:
    return key + b"\x83" + len(value).to_bytes(3, "big") + value


def _local_set(kind: int, items: Sequence[tuple[int, bytes]]) -> bytes:
    key = bytes.fromhex("060e2b34025301010d0101010101") + bytes([kind, 0])
    return _klv(key, b"".join(struct.pack(">HH", tag, len(v)) + v for tag, v in items))


def mxf(created: datetime | None, *, company: str | None = None, product: str | None = None) -> bytes:
    """An MXF skeleton (SMPTE ST 377): header partition pack, an Identification set with the
    writer's company and product, a Material Package with its creation date, then essence."""
    partition = _klv(bytes.fromhex("060e2b34020501010d01020101020400"), bytes(88))
    ident: list[tuple[int, bytes]] = []
    if company:
        ident.append((0x3C01, company.encode("utf-16-be")))
    if product:
        ident.append((0x3C02, product.encode("utf-16-be")))
    package: list[tuple[int, bytes]] = [(0x4403, b"\0" * 8)]
    if created is not None:
        c = created.astimezone(UTC)
        stamp = struct.pack(
            ">HBBBBBB", c.year, c.month, c.day, c.hour, c.minute, c.second, c.microsecond // 4000
        )
        package.append((0x4405, stamp))
    essence = _klv(bytes.fromhex("060e2b34010201010d01030115010501"), b"\0" * 4096)
    return partition + _local_set(0x30, ident) + _local_set(0x36, package) + essence


def _put(path: Path, data: bytes, mtime: datetime) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    ts = mtime.timestamp()
    os.utime(path, (ts, ts))


def make_sample_card(path: str | os.PathLike[str]) -> Path:
    """A realistic camera card at ``path``: Canon stills (JPEG+CR3 with XMP), a Sony clip with its
    proxy, thumbnail and audio, a phone's MOV and HEIC, a file with no metadata and an odd name.

    Returns the card folder. File mtimes are set a day after the capture times, so a layout that
    fell back to mtime would be seen."""
    card = Path(path)
    day = datetime(2024, 5, 17, 9, 0, 0)
    later = day + timedelta(days=1)
    dcim = card / "DCIM" / "100CANON"
    for i in range(3):
        taken = day + timedelta(minutes=10 * i)
        shot = Shot(make="Canon", model="Canon EOS R5", taken=taken, offset="+02:00")
        _put(dcim / f"IMG_{i + 1:04}.JPG", jpeg(shot), later)
        _put(dcim / f"IMG_{i + 1:04}.CR3", cr3(shot), later)
    _put(dcim / "IMG_0001.XMP", xmp("IMG_0001.CR3"), later)
    clip = card / "PRIVATE" / "M4ROOT" / "CLIP"
    clip_time = datetime(2024, 5, 18, 7, 45, 0, tzinfo=UTC)
    _put(clip / "C0001.MP4", quicktime(clip_time, brand=b"XAVC", media_bytes=64 * 1024), later)
    _put(clip / "C0001.LRV", quicktime(clip_time, brand=b"mp42", media_bytes=4096), later)
    _put(clip / "C0001.THM", jpeg(None), later)
    _put(clip / "C0001.WAV", b"RIFF\x24\0\0\0WAVEfmt " + b"\0" * 28, later)
    phone = card / "Phone"
    _put(
        phone / "IMG_4242.MOV",
        quicktime(datetime(2024, 5, 19, 18, 0, 0, tzinfo=UTC), make="Apple", model="iPhone 15 Pro"),
        later,
    )
    phone_shot = Shot(
        make="Apple", model="iPhone 15 Pro", taken=datetime(2024, 5, 19, 20, 5, 0), offset="+02:00"
    )
    _put(phone / "IMG_4243.HEIC", heic(phone_shot), later)
    _put(card / "notes" / "shot list.txt", b"1. sunrise\n2. harbour\n", later)
    _put(card / "notes" / "caf\u00e9 #1 (final).txt", b"odd but legal name\n", later)
    return card
