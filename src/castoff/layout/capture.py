"""When and with what a file was shot, read from the file's own header, with the source of each answer.

At most ``HEAD_BYTES`` of a file are read, in a few small reads before the main read (the target
key must be known before an upload starts): EXIF through ``exifread`` for JPEG, HEIC, TIFF-based
RAW (CR2, NEF, ARW, DNG, ORF, RW2, …) and RAF's embedded JPEG; ISO base media boxes walked by hand
for QuickTime/MP4 (``mvhd`` creation time, ``udta`` ©mak/©mod) and CR3 (Canon's CMT1/CMT2 TIFF
blocks, parsed by ``exifread``); MXF's header metadata walked by hand (the Material Package's
creation date, the Identification set's company and product). Else the file's mtime, and the
card's folder names for the device.
"""

from __future__ import annotations

import functools
import io
import logging
import os
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, BinaryIO

#: the most castoff reads of one file to learn its capture date and device (all reads counted)
HEAD_BYTES = 512 * 1024
#: QuickTime counts seconds from 1904-01-01 UTC
QT_EPOCH = datetime(1904, 1, 1, tzinfo=UTC)
CR3_UUID = bytes.fromhex("85c0b687820f11e08111f4ce462b6a48")
_HEIF_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"mif1", b"msf1", b"avif")
_MAX_BOXES = 256  # boxes looked at per level: a damaged file cannot make the walk long

logging.getLogger("exifread").setLevel(logging.ERROR)  # "format not recognised" is an answer here


@dataclass(frozen=True)
class Capture:
    """What the file says about itself; ``when`` is the wall-clock time of the shot (aware when
    the offset is known), ``when_source`` one of exif, quicktime, mxf, mtime."""

    when: datetime
    when_source: str
    make: str | None = None
    model: str | None = None
    device_source: str = "none"  # exif, quicktime, mxf, card, none

    @property
    def device(self) -> str | None:
        """ "Canon EOS R5" from make "Canon" and model "Canon EOS R5"; the make alone when that is all."""
        make, model = (self.make or "").strip(), (self.model or "").strip()
        if make and model and model.lower().startswith(make.split()[0].lower()):
            return model
        return " ".join(p for p in (make, model) if p) or None


class CappedReader(io.RawIOBase):
    """A read-only view of the open file ``fd`` that hands out at most ``cap`` bytes in all, then
    reports EOF. ``head``, the file's first bytes when already read, serves reads it covers; when
    it is shorter than ``SMALL_HEAD`` and not the whole file (``size`` None: not known yet), the
    first read it does not cover reads the first ``SMALL_HEAD`` bytes at once, as one read."""

    def __init__(self, fd: int, cap: int, size: int | None, head: bytes = b"") -> None:
        self._fd = fd
        self._size = size
        self._head = head
        self._partial = size is None  # the head is not the whole file
        self._pos = 0
        self.left = cap

    @property
    def size(self) -> int:
        """The file's size (asked of the open file when its first bytes did not tell)."""
        if self._size is None:
            self._size = os.fstat(self._fd).st_size
        return self._size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            base = 0
        elif whence == io.SEEK_CUR:
            base = self._pos
        elif whence == io.SEEK_END:
            base = self.size
        else:
            raise ValueError(f"invalid whence ({whence})")
        if base + offset < 0:
            raise OSError(22, "negative seek position")
        self._pos = base + offset
        return self._pos

    def tell(self) -> int:
        return self._pos

    def _covered(self, end: int) -> bool:
        """Whether the head holds the bytes up to ``end`` (read at once when they fit in
        ``SMALL_HEAD`` and the head is only the first few bytes of a longer file)."""
        head = self._head
        if end <= len(head):
            return True
        if end <= SMALL_HEAD and self._partial:
            self._partial = False
            self._head = head = os.pread(self._fd, SMALL_HEAD, 0)
            return end <= len(head)
        return False

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        n = min(len(view), self.left)
        if n <= 0:
            return 0
        end = self._pos + n
        data = self._head[self._pos : end] if self._covered(end) else os.pread(self._fd, n, self._pos)
        view[: len(data)] = data
        self._pos += len(data)
        self.left -= len(data)
        return len(data)

    def read_at(self, offset: int, size: int) -> bytes:
        n = min(size, self.left)
        end = offset + n
        if n > 0 and offset >= 0 and self._covered(end):  # (what seek and read do, in one step)
            self._pos = end
            self.left -= n
            return self._head[offset:end]
        self.seek(offset)
        return self.read(size) or b""


# --- EXIF ----------------------------------------------------------------------------------


def _tag(tags: dict[str, Any], *names: str) -> str | None:
    for name in names:
        tag = tags.get(name)
        if tag is not None:
            text = str(tag.values if isinstance(tag.values, str) else tag.printable).strip().strip("\0")
            if text:
                return text
    return None


_OFFSET = re.compile(r"^([+-])(\d{2}):(\d{2})$")


def exif_time(stamp: str | None, offset: str | None) -> datetime | None:
    """EXIF "YYYY:MM:DD HH:MM:SS" (+ "+02:00"), or None when absent or zero-filled."""
    if not stamp:
        return None
    try:
        when = datetime.strptime(stamp[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    m = _OFFSET.match(offset or "")
    if m:
        delta = timedelta(hours=int(m.group(2)), minutes=int(m.group(3)))
        when = when.replace(tzinfo=timezone(delta if m.group(1) == "+" else -delta))
    return when


def _exif_fields(fh: BinaryIO) -> tuple[datetime | None, str | None, str | None]:
    import exifread  # (imported when a file has EXIF to read: most jobs' many files have none)

    try:
        tags = exifread.process_file(fh, details=False, extract_thumbnail=False)
    except Exception:  # noqa: BLE001 (a damaged header is "no metadata", never a failed copy)
        return None, None, None
    when = exif_time(
        _tag(tags, "EXIF DateTimeOriginal", "Image DateTimeOriginal", "Image DateTime"),
        _tag(tags, "EXIF OffsetTimeOriginal", "Image OffsetTimeOriginal"),
    )
    return when, _tag(tags, "Image Make"), _tag(tags, "Image Model")


# --- ISO base media: QuickTime, MP4, CR3 -----------------------------------------------------


def _boxes(fh: CappedReader, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """(type, payload start, payload end) of the boxes between ``start`` and ``end``."""
    pos = start
    for _ in range(_MAX_BOXES):
        if pos + 8 > end:
            return
        head = fh.read_at(pos, 16)
        if len(head) < 8:
            return
        size, kind = struct.unpack(">I4s", head[:8])
        header = 8
        if size == 1 and len(head) == 16:
            size, header = struct.unpack(">Q", head[8:])[0], 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            return
        yield kind, pos + header, pos + size
        pos += size


def _child(fh: CappedReader, start: int, end: int, kind: bytes) -> tuple[int, int] | None:
    for k, a, b in _boxes(fh, start, end):
        if k == kind:
            return a, b
    return None


def _mvhd_time(fh: CappedReader, start: int, end: int) -> datetime | None:
    head = fh.read_at(start, min(end - start, 12))
    if len(head) < 8:
        return None
    if head[0] == 1 and len(head) >= 12:
        secs = struct.unpack(">Q", head[4:12])[0]
    else:
        secs = struct.unpack(">I", head[4:8])[0]
    if secs == 0 or secs > 2**40:
        return None
    return (QT_EPOCH + timedelta(seconds=secs)).astimezone()


def _qt_text(fh: CappedReader, start: int, end: int) -> str | None:
    raw = fh.read_at(start, min(end - start, 260))
    if len(raw) < 4:
        return None
    n = struct.unpack(">H", raw[:2])[0]
    return raw[4 : 4 + n].decode("utf-8", "replace").strip() or None


def _iso_media(fh: CappedReader, size: int) -> Capture | None:
    moov = _child(fh, 0, size, b"moov")
    if moov is None:
        return None
    when = make = model = None
    source = "quicktime"
    for kind, a, b in _boxes(fh, *moov):
        if kind == b"mvhd":
            when = _mvhd_time(fh, a, b)
        elif kind == b"udta":
            for k, c, d in _boxes(fh, a, b):
                if k == b"\xa9mak":
                    make = _qt_text(fh, c, d)
                elif k == b"\xa9mod":
                    model = _qt_text(fh, c, d)
        elif kind == b"uuid" and fh.read_at(a, 16) == CR3_UUID:
            cr3_when, make, model = _cr3(fh, a + 16, b)
            if cr3_when is not None:
                when, source = cr3_when, "exif"
    return _from_header(when, make, model, source)


def _cr3(fh: CappedReader, start: int, end: int) -> tuple[datetime | None, str | None, str | None]:
    when = make = model = None
    for kind, a, b in _boxes(fh, start, end):
        if kind in (b"CMT1", b"CMT2"):
            t, mk, md = _exif_fields(io.BytesIO(fh.read_at(a, b - a)))
            when, make, model = when or t, make or mk, model or md
    return when, make, model


# --- the card's own structure ----------------------------------------------------------------

#: folder names cameras create, and whose they are (checked on every folder of the source path)
CARD_FOLDERS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(p, re.IGNORECASE), make)
    for p, make in (
        (r"^M4ROOT$", "Sony"),
        (r"^XDROOT$", "Sony"),
        (r"^\d{3}MSDCF$", "Sony"),
        (r"^\d{3}CANON$", "Canon"),
        (r"^\d{3}EOS.*$", "Canon"),
        (r"^\d{3}(NIKON|NCZ_?\w*|ND\d+)$", "Nikon"),
        (r"^\d{3}_FUJI$", "Fujifilm"),
        (r"^\d{3}_PANA$", "Panasonic"),
        (r"^\d{3}(OLYMP|OMSYS)$", "OM System"),
        (r"^\d{3}GOPRO$", "GoPro"),
        (r"^\d{3}MEDIA$", "DJI"),
        (r"^\d{3}LEICA$", "Leica"),
        (r"^\d{3}RICOH$", "Ricoh"),
        (r"^\d{3}APPLE$", "Apple"),
    )
)


# --- MXF (SMPTE ST 377) --------------------------------------------------------------------

#: a partition pack's key starts so; the header partition comes first, after an optional run-in
MXF_PARTITION = bytes.fromhex("060e2b34020501010d01020101")
MXF_RUN_IN = 64 * 1024
#: read at once at the start of every file: the whole of most small ones (a JPEG's EXIF segment,
#: and an MXF file's run-in, fit in it)
SMALL_HEAD = MXF_RUN_IN + 16
#: read first: what tells a file's format (and all of a tiny file), in one page
FIRST_HEAD = 4096
#: header metadata sits right after the header partition pack: cameras keep it small
MXF_HEADER_BYTES = 256 * 1024
#: the key of a structural metadata set: 06.0e.2b.34.02.53.01.01.0d.01.01.01.01.01.<set>.00
_MXF_SET = bytes.fromhex("060e2b34025301010d0101010101")
_MXF_IDENTIFICATION, _MXF_MATERIAL, _MXF_SOURCE = 0x30, 0x36, 0x37
#: local tags of the items read (static: the same in every file, whatever its primer says)
_MXF_CREATED, _MXF_COMPANY, _MXF_PRODUCT = 0x4405, 0x3C01, 0x3C02


def _ber(buf: bytes, at: int) -> tuple[int, int]:
    """A BER length at ``at``: (length, where the value starts); (-1, at) when it is cut off."""
    if at >= len(buf):
        return -1, at
    first = buf[at]
    if first < 0x80:
        return first, at + 1
    n = first & 0x7F
    if n == 0 or n > 8 or at + 1 + n > len(buf):
        return -1, at
    return int.from_bytes(buf[at + 1 : at + 1 + n], "big"), at + 1 + n


def _mxf_items(value: bytes) -> dict[int, bytes]:
    """A local set's items: 2-byte tag, 2-byte length, value."""
    items: dict[int, bytes] = {}
    at = 0
    while at + 4 <= len(value):
        tag, length = struct.unpack_from(">HH", value, at)
        items[tag] = value[at + 4 : at + 4 + length]
        at += 4 + length
    return items


def _mxf_time(raw: bytes | None) -> datetime | None:
    """An MXF timestamp: year (2 bytes), month, day, hour, minute, second, quarter-millisecond; UTC."""
    if raw is None or len(raw) != 8:
        return None
    year, month, day, hour, minute, second, qms = struct.unpack(">HBBBBBB", raw)
    try:
        when = datetime(year, month, day, hour, minute, second, min(qms * 4, 999) * 1000, tzinfo=UTC)
    except ValueError:
        return None
    # UTC in the file; shown in this machine's zone, as QuickTime times are
    return when.astimezone() if year >= 1980 else None


def _mxf_text(raw: bytes | None) -> str | None:
    if not raw:
        return None
    text = raw.decode("utf-16-be", errors="replace").rstrip("\0").strip()
    return text or None


def _mxf(buf: bytes) -> Capture | None:
    """Walk the KLV packets of the header partition for the sets castoff reads."""
    created: datetime | None = None
    make = model = None
    at = 0
    for _ in range(_MAX_BOXES * 4):
        if at + 17 > len(buf):
            break
        key = buf[at : at + 16]
        length, start = _ber(buf, at + 16)
        if length < 0 or not key.startswith(b"\x06\x0e\x2b\x34"):
            break
        if key[:14] == _MXF_SET and start + length <= len(buf):
            items = _mxf_items(buf[start : start + length])
            if key[14] == _MXF_MATERIAL or (key[14] == _MXF_SOURCE and created is None):
                created = _mxf_time(items.get(_MXF_CREATED)) or created
            elif key[14] == _MXF_IDENTIFICATION:
                make = make or _mxf_text(items.get(_MXF_COMPANY))
                model = model or _mxf_text(items.get(_MXF_PRODUCT))
        at = start + length
    return _from_header(created, make, model, "mxf")


def device_from_card(rel_path: str) -> str | None:
    return _device_from_folders(rel_path.rpartition("/")[0])


@functools.lru_cache(maxsize=1024)
def _device_from_folders(folders: str) -> str | None:
    """Asked once per folder: every file of a folder has the same answer."""
    for part in folders.split("/") if folders else ():
        for pattern, make in CARD_FOLDERS:
            if pattern.match(part):
                return make
    return None


# --- one file --------------------------------------------------------------------------------


def _mxf_at(fh: CappedReader, head: bytes, *, mxf_name: bool) -> int:
    """Where an MXF file's header partition pack starts: at 0, or after a run-in (at most 64 KiB,
    and rare), looked for in files named .mxf only: in every other file (a folder of documents,
    of sound files) the search cost more than all the other header checks together. -1: none."""
    if head.startswith(MXF_PARTITION):
        return 0
    if not mxf_name:
        return -1
    return fh.read_at(0, MXF_RUN_IN + 16).find(MXF_PARTITION)


_EXIF_STARTS = (b"\xff\xd8", b"II", b"MM")
_RAF_START = b"FUJIFILMCCD-RAW"
_ISO_BOXES = (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip")


def _may_say(head: bytes, *, mxf_name: bool) -> bool:
    """Whether ``_sniff`` looks into a file whose first 16 bytes are ``head`` (any of its
    branches but the last): most files of a job are told apart by this alone."""
    return (
        head[:2] in _EXIF_STARTS
        or head.startswith(_RAF_START)
        or head[4:8] in _ISO_BOXES
        or mxf_name
        or head.startswith(MXF_PARTITION)
    )


def _sniff(fh: CappedReader, *, mxf_name: bool) -> Capture | None:
    head = fh.read_at(0, 16)
    when: datetime | None = None
    make = model = None
    if head[:2] in _EXIF_STARTS:
        when, make, model = _exif_fields(fh)  # type: ignore[arg-type]
    elif head.startswith(_RAF_START):
        at, length = struct.unpack(">II", fh.read_at(84, 8).ljust(8, b"\0"))
        if at and length:
            when, make, model = _exif_fields(io.BytesIO(fh.read_at(at, min(length, 256 * 1024))))
    elif head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS:
        when, make, model = _exif_fields(fh)  # type: ignore[arg-type]
    elif head[4:8] in _ISO_BOXES:
        return _iso_media(fh, fh.size)
    elif (at := _mxf_at(fh, head, mxf_name=mxf_name)) >= 0:
        return _mxf(fh.read_at(at, MXF_HEADER_BYTES))
    else:
        return None
    return _from_header(when, make, model, "exif")


def _from_header(when: datetime | None, make: str | None, model: str | None, source: str) -> Capture | None:
    """What a header said, if anything; an empty ``when_source`` leaves the date to the fallback."""
    if when is None and make is None and model is None:
        return None
    return Capture(
        when=when or datetime.min,
        when_source=source if when else "",
        make=make,
        model=model,
        device_source=source if (make or model) else "none",
    )


def read_capture(path: str, rel_path: str, mtime_ns: int, *, cap: int = HEAD_BYTES) -> Capture:
    """Capture time and device of the file at ``path``; never raises for what the file holds."""
    found: Capture | None = None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            # The first bytes tell most files apart (and are all of a tiny one); a file whose
            # header is looked into reads up to SMALL_HEAD at once (see CappedReader).
            head = os.pread(fd, FIRST_HEAD, 0)
            size = len(head) if len(head) < FIRST_HEAD else None
            mxf_name = path[-4:].lower() == ".mxf"
            if _may_say(head[:16], mxf_name=mxf_name):
                found = _sniff(CappedReader(fd, cap, size, head), mxf_name=mxf_name)
        finally:
            os.close(fd)
    except OSError:
        found = None  # the main read reports an unreadable file; here it just has no metadata
    mtime = datetime.fromtimestamp(mtime_ns / 1e9).astimezone()
    when, when_source = mtime, "mtime"
    make = model = None
    device_source = "none"
    if found is not None:
        if found.when_source:
            when, when_source = found.when, found.when_source
        make, model, device_source = found.make, found.model, found.device_source
    if device_source == "none" and (card := device_from_card(rel_path)):
        make, device_source = card, "card"
    return Capture(when=when, when_source=when_source, make=make, model=model, device_source=device_source)
