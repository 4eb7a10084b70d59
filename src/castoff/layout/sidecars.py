"""What kind of file a name is (Photos, RAW, Video, Audio, Sidecars, Other) and which sidecar
belongs to which original in the same folder.

A folder is listed once, by name only, when the planner first meets one of its files: the tree is
never held in memory, only the few folders the streamed scan is in.
"""

from __future__ import annotations

import os
from collections import OrderedDict


def _exts(text: str) -> frozenset[str]:
    return frozenset(text.split())


PHOTO_EXTS = _exts("jpg jpeg jpe heic heif hif avif png tif tiff webp gif bmp jxl")
RAW_EXTS = _exts(
    "cr2 cr3 crw nef nrw arw srf sr2 dng orf rw2 raf pef srw x3f 3fr iiq rwl erf mef mos kdc dcr gpr"
)
VIDEO_EXTS = _exts("mov mp4 m4v mxf mts m2ts avi mkv 3gp insv braw r3d crm mpg mpeg")
AUDIO_EXTS = _exts("wav bwf mp3 aac m4a flac aif aiff ogg opus")
SIDECAR_EXTS = _exts("xmp thm lrv lrf xml srt aae pp3 dop cos on1 exif bim ctg cpi")
TYPES = ("Photos", "RAW", "Video", "Audio", "Sidecars", "Other")
#: when several originals share a stem, a sidecar goes with the first of these kinds
ORIGINAL_PRIORITY = ("RAW", "Video", "Photos")
#: the kinds of file that may be another's sidecar (``FolderIndex.original_of``)
SIDECAR_KINDS = ("Sidecars", "Audio")


def ext_of(name: str) -> str:
    stem, dot, ext = name.rpartition(".")
    return ext if dot and stem else ""


def stem_of(name: str) -> str:
    stem, dot, _ = name.rpartition(".")
    return stem if dot and stem else name


_KINDS = (
    ("Photos", PHOTO_EXTS),
    ("RAW", RAW_EXTS),
    ("Video", VIDEO_EXTS),
    ("Audio", AUDIO_EXTS),
    ("Sidecars", SIDECAR_EXTS),
)
#: the kind of every known extension (lower case); the first of ``_KINDS`` that has it
_KIND_OF_EXT = {ext: kind for kind, exts in reversed(_KINDS) for ext in exts}


def file_type(name: str) -> str:
    return _KIND_OF_EXT.get(ext_of(name).lower(), "Other")


def original_keys(name: str) -> list[str]:
    """The names (lower case) an original may have, matched on its stem or its whole name:
    ``IMG_1.XMP`` → img_1; ``IMG_1.CR2.xmp`` → img_1.cr2, img_1; Sony's ``C0001M01.XML`` → c0001m01, c0001."""
    stem = stem_of(name).lower()
    keys = [stem]
    inner = stem_of(stem)
    if inner != stem:
        keys.append(inner)
    if ext_of(name).lower() == "xml" and len(stem) > 3 and stem[-3] == "m" and stem[-2:].isdigit():
        keys.append(stem[:-3])
    return keys


class FolderIndex:
    """The originals of one folder, by lower-case stem and by lower-case name."""

    def __init__(self, folder: str) -> None:
        self.by_key: dict[str, list[str]] = {}
        try:
            with os.scandir(folder) as it:
                names = sorted(e.name for e in it if e.is_file(follow_symlinks=False))
        except OSError:
            names = []
        for n in names:
            if file_type(n) in ORIGINAL_PRIORITY:
                self.by_key.setdefault(stem_of(n).lower(), []).append(n)
                self.by_key.setdefault(n.lower(), []).append(n)

    def original_of(self, name: str) -> str | None:
        """The original ``name`` is a sidecar of, or None when it stands alone."""
        if file_type(name) not in SIDECAR_KINDS:
            return None
        for key in original_keys(name):
            found = self.by_key.get(key)
            if found:
                return min(found, key=lambda n: (ORIGINAL_PRIORITY.index(file_type(n)), n))
        return None


class Folders:
    """The last few folders' indexes (the scan walks depth first, so a handful is enough)."""

    def __init__(self, keep: int = 8) -> None:
        self._keep = keep
        self._cache: OrderedDict[str, FolderIndex] = OrderedDict()

    def index(self, folder: str) -> FolderIndex:
        idx = self._cache.get(folder)
        if idx is None:
            idx = self._cache[folder] = FolderIndex(folder)
            if len(self._cache) > self._keep:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(folder)
        return idx
