"""The engine's one planning hook: where each source file goes under every destination, and what
is recorded about it (capture date and its source, device, type, the sidecar's original).

``Planner.plan`` runs once per file (one bounded header read); ``for_destination`` applies a
destination's name rules and its object-metadata budget to that plan.
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from castoff import errors
from castoff.layout.capture import Capture, read_capture
from castoff.layout.names import filesystem_type, fold_case, windows_problems, windows_rules, windows_safe
from castoff.layout.objmeta import fit_metadata, object_fields
from castoff.layout.sidecars import ORIGINAL_PRIORITY, SIDECAR_KINDS, Folders, ext_of, file_type, stem_of
from castoff.layout.template import LAYOUTS, Template, parse_template
from castoff.scan import TIME_MAX_NS, TIME_MIN_NS

if TYPE_CHECKING:
    from castoff.catalog.db import PriorRead
    from castoff.destinations.base import Destination
    from castoff.scan import SourceFile

_REMEMBER = 4096  # captures and counters kept for sidecars that come before their original
_DATE_TOKENS = frozenset({"YYYY", "YY", "MM", "DD", "hh", "mm", "ss"})
_CAMERA_TOKENS = frozenset({"device", "make", "model"})
_NAME_TOKENS = frozenset({"folder", "name", "stem", "ext"})


@dataclass(frozen=True)
class LayoutOptions:
    template: Template = field(default_factory=lambda: parse_template(LAYOUTS["none"]))
    shoot: str = ""
    safe_names: bool = False
    name_rules: str = "auto"  # auto (from the destination's filesystem), windows, posix
    metadata: str = "object"  # object, sidecar, both (object stores)
    xattrs: bool = False  # copy user.* extended attributes to local destinations


@dataclass(frozen=True)
class FilePlan:
    """One source file, placed by the layout; the same for every destination."""

    layout_path: str
    capture: Capture
    file_type: str
    sidecar_of: str | None
    original_path: str
    xattrs: Mapping[str, bytes] = field(default_factory=dict)
    counter: int | None = None  # its {counter}, kept in the catalog for a re-run

    def record(self) -> dict[str, str | None]:
        """What the catalog keeps, and the JSON report and sidecar objects show."""
        return {
            "capture_time": self.capture.when.isoformat(),
            "capture_source": self.capture.when_source,
            "device": self.capture.device,
            "device_source": self.capture.device_source,
            "file_type": self.file_type,
            "sidecar_of": self.sidecar_of,
            "layout_path": self.layout_path,
            "original_path": self.original_path,
        }

    def catalog_record(self) -> tuple[str | int | None, ...]:
        """``record`` and the make and model apart, so a re-run can plan from the catalog: in
        ``castoff.catalog.db.FILE_META_COLUMNS``' order (one a file, so a tuple, not a dict)."""
        c = self.capture
        return (
            self.layout_path,
            self.original_path,
            c.when.isoformat(),
            c.when_source,
            c.device,
            c.device_source,
            self.file_type,
            self.sidecar_of,
            c.make,
            c.model,
            self.counter,
        )


@dataclass(frozen=True)
class NameRules:
    """The name rules of a destination that does not take every POSIX name apart: ``label``, as
    messages name them (the filesystem's type, or why); ``names``: Windows's refused characters
    and names apply, else only case is folded (a filesystem that ignores case, and takes ":")."""

    label: str
    names: bool = True


@dataclass(frozen=True)
class DestPlan:
    """The plan at one destination: the layout path after its name rules, and its metadata."""

    rel_path: str
    notes: tuple[str, ...] = ()
    meta: Mapping[str, str] = field(default_factory=dict)
    left_out: tuple[str, ...] = ()  # metadata fields that did not fit in the object's metadata
    xattrs: Mapping[str, bytes] = field(default_factory=dict)


def _clean(value: str | None, unknown: str) -> str:
    """A metadata value as one folder name: no separators or control characters, never . or .."""
    text = "".join(c for c in (value or "") if c >= " " and c != "\x7f")
    text = text.replace("/", "-").replace("\\", "-").strip().strip(".").strip()
    return text or unknown


def read_xattrs(path: str) -> dict[str, bytes]:
    """The ``user.*`` extended attributes of ``path`` (others need privileges to write)."""
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    out: dict[str, bytes] = {}
    for name in names:
        if name.startswith("user."):
            try:
                out[name] = os.getxattr(path, name, follow_symlinks=False)
            except OSError:
                continue
    return out


def _rules_at(root: str, dest: Destination) -> NameRules | None:
    """The name rules of the local folder ``root``: its filesystem type's, or where that does not
    say, what the filesystem answered at preflight (``LocalDestination.learn_name_rules``)."""
    fs = filesystem_type(root)
    if windows_rules(fs, root):
        return NameRules(str(fs))
    if getattr(dest, "refuses_windows_names", False):
        return NameRules(f"{fs}, which refuses names Windows filesystems refuse")
    if getattr(dest, "ignores_case", False):
        return NameRules(f"{fs}, which ignores case", names=False)
    return None


class Planner:
    """Places files by the job's template; called by the engine in scan order, from one thread."""

    def __init__(self, options: LayoutOptions) -> None:
        self.options = options
        self._folders = Folders()
        self._captures: OrderedDict[str, Capture] = OrderedDict()
        self._counters: OrderedDict[str, int] = OrderedDict()
        self._next = 0
        #: where new numbers come from when they are shared with other jobs (``number_with``)
        self._take: Callable[[], int] | None = None
        self._rules: dict[str, NameRules | None] = {}  # _windows_rules, by destination
        #: by destination with Windows rules: each folder path as the job first spelt it, by its
        #: ``fold_case`` (``_one_spelling``), and the answer for each spelling met
        self._spelt: dict[str, dict[str, str]] = {}
        self._spelt_as: dict[str, dict[str, str]] = {}
        self._tokens = options.template.tokens  # computed on each use: once here

    @staticmethod
    def _remember(cache: OrderedDict[str, object], key: str, value: object) -> None:
        cache[key] = value
        cache.move_to_end(key)
        if len(cache) > _REMEMBER:
            cache.popitem(last=False)

    def _capture(self, abs_path: str, rel_path: str, mtime_ns: int | None, *, keep: bool = True) -> Capture:
        """``keep``: remembered for the sidecars that come after it."""
        found = self._captures.get(abs_path)
        if found is None:
            if mtime_ns is None:
                try:
                    mtime_ns = os.stat(abs_path).st_mtime_ns
                except OSError:
                    mtime_ns = 0
                if not TIME_MIN_NS <= mtime_ns <= TIME_MAX_NS:  # (that file fails: scan.bad_time)
                    mtime_ns = 0
            found = read_capture(abs_path, rel_path, mtime_ns)
            if keep:
                self._remember(self._captures, abs_path, found)  # type: ignore[arg-type]
        return found

    @property
    def numbers_files(self) -> bool:
        """The template has ``{counter}``."""
        return "counter" in self._tokens

    def continue_after(self, counter: int) -> None:
        """Number new files after ``counter``, the highest an earlier job gave a file of these
        sources (``Catalog.last_counter``): a file added to the card since, even one that sorts
        first, never takes the number of a file already copied."""
        self._next = max(self._next, counter)

    @property
    def counter_scope(self) -> str:
        """What a ``{counter}`` number is unique in: the template, and the shoot when the template
        names it (another shoot's files land in folders of their own)."""
        shoot = self.options.shoot if "shoot" in self._tokens else ""
        return json.dumps([self.options.template.text, shoot])

    def number_with(self, take: Callable[[], int]) -> None:
        """Take each new number from ``take`` (the catalog's ``next_counter`` for
        ``counter_scope``): one numbering for every job of this template and shoot, whatever
        reader its card is in, and two at once never take the same number."""
        self._take = take

    def reuse(self, src: SourceFile, prior: PriorRead, *, header: bool = True) -> None:
        """Take what an earlier read of ``src`` (same path, size, mtime) learnt: its ``{counter}``,
        so a re-run names it as before, and (with ``header``) what its header said, instead of
        reading it again: a re-run plans from the catalog."""
        if prior.rel_path != src.rel_path:
            return  # the card's folder names (part of the device) may differ under another root
        if prior.counter is not None:
            key = stem_of(src.abs_path).lower()
            if key not in self._counters:
                self._remember(self._counters, key, prior.counter)  # type: ignore[arg-type]
        if prior.capture is None or not header:
            return
        c = prior.capture
        capture = Capture(datetime.fromisoformat(c.when), c.when_source, c.make, c.model, c.device_source)
        self._remember(self._captures, src.abs_path, capture)  # type: ignore[arg-type]

    def _counter(self, abs_path: str) -> int:
        """The next number for a new stem in a folder: IMG_1.CR3 and IMG_1.JPG (and their
        sidecars) share one, as a RAW+JPEG pair should."""
        key = stem_of(abs_path).lower()
        n = self._counters.get(key)
        if n is None:
            if self._take is not None:
                n = self._take()
            else:
                self._next += 1
                n = self._next
            self._remember(self._counters, key, n)  # type: ignore[arg-type]
        return n

    def _values(
        self, rel_path: str, capture: Capture, kind: str, counter: int, needed: frozenset[str] | None = None
    ) -> dict[str, str]:
        """Every token's value, or those ``needed`` (the template's: a re-run plans every file, and
        the date's and the camera's need work that a template without them would throw away)."""
        card, _, under = rel_path.partition("/")
        if not under:
            card, under = "", rel_path
        values = {
            "shoot": self.options.shoot,
            "type": kind,
            "card": card,
            "path": under,
            "counter": str(counter),
        }
        if needed is None or not needed.isdisjoint(_NAME_TOKENS):
            folder, _, name = under.rpartition("/")
            values.update(folder=folder, name=name, stem=stem_of(name), ext=ext_of(name))
        if needed is None or not needed.isdisjoint(_DATE_TOKENS):
            when = capture.when
            values.update(
                YYYY=f"{when.year:04}",
                YY=f"{when.year % 100:02}",
                MM=f"{when.month:02}",
                DD=f"{when.day:02}",
                hh=f"{when.hour:02}",
                mm=f"{when.minute:02}",
                ss=f"{when.second:02}",
            )
        if needed is None or not needed.isdisjoint(_CAMERA_TOKENS):
            values.update(
                device=_clean(capture.device, "Unknown device"),
                make=_clean(capture.make, "Unknown"),
                model=_clean(capture.model, "Unknown"),
            )
        return values

    def plan(self, src: SourceFile) -> FilePlan:
        abs_path = src.abs_path
        folder, _, name = abs_path.rpartition("/")
        if not folder or folder.endswith("/"):
            folder, name = os.path.split(abs_path)
        kind = file_type(name)
        # only a sidecar's (or a sound file's) folder is listed: no other file has an original
        original = self._folders.index(folder).original_of(name) if kind in SIDECAR_KINDS else None
        template = self.options.template
        xattrs = read_xattrs(abs_path) if self.options.xattrs else {}
        if original is None:
            # a capture a sidecar may ask for again: only an original's (see FolderIndex)
            capture = self._capture(abs_path, src.rel_path, src.mtime_ns, keep=kind in ORIGINAL_PRIORITY)
            counter = self._counter(abs_path)
            values = self._values(src.rel_path, capture, kind, counter, self._tokens)
            rel = template.render(values)
            return FilePlan(rel, capture, kind, None, src.rel_path, xattrs, counter)
        # A sidecar: its original's folder (date, device, type, counter), its own name.
        orig_abs = os.path.join(folder, original)
        orig_rel = src.rel_path[: len(src.rel_path) - len(name)] + original
        capture = self._capture(orig_abs, orig_rel, None)
        orig_kind = file_type(original)
        counter = self._counter(orig_abs)
        orig_dir = template.render(self._values(orig_rel, capture, orig_kind, counter, self._tokens))
        own = template.render(self._values(src.rel_path, capture, orig_kind, counter, self._tokens))
        orig_dir, own = orig_dir.rpartition("/")[0], own.rpartition("/")[2]
        rel = f"{orig_dir}/{own}" if orig_dir else own
        return FilePlan(rel, capture, kind, original, src.rel_path, xattrs, counter)

    def place_folder(self, rel_path: str) -> str | None:
        """The layout path of a source folder that holds no file (``scan.EmptyFolder``; its
        ``rel_path`` starts with the source's label, as a file's), or None when the template does
        not keep the source's folders (``Template.keeps_folders``) or puts it at the destination's
        root itself (``{path}`` alone, for the source's own folder)."""
        template = self.options.template
        if not template.keeps_folders:
            return None
        card, _, under = rel_path.partition("/")
        return template.render_folder({"card": card, "shoot": self.options.shoot, "path": under}) or None

    def folder_for_destination(self, layout_path: str, dest: Destination) -> str:
        """``layout_path`` (``place_folder``) after the destination's name rules, as a file's
        folders get them; KeyRejected when it cannot hold the name."""
        return self._apply_name_rules(layout_path, dest, folder=True)[0]

    # -- per destination --------------------------------------------------------------------

    def _windows_rules(self, dest: Destination) -> NameRules | None:
        """The name rules at ``dest`` other than POSIX ones, if any (asked once a destination:
        the same for every file)."""
        try:
            return self._rules[dest.ident]
        except KeyError:
            found = self._rules[dest.ident] = self._find_windows_rules(dest)
            return found

    def _find_windows_rules(self, dest: Destination) -> NameRules | None:
        rules = self.options.name_rules
        if rules == "posix" or not dest.caps.is_local:
            return None
        if rules == "windows":
            return NameRules("windows rules (--name-rules windows)")
        root = getattr(dest, "root", None)
        return _rules_at(root, dest) if isinstance(root, str) else None

    def _apply_name_rules(
        self, rel: str, dest: Destination, *, folder: bool = False
    ) -> tuple[str, tuple[str, ...]]:
        """``rel`` (a file's path, or with ``folder`` a folder's) at ``dest`` after its name rules."""
        found = self._windows_rules(dest)
        if found is None:
            return rel, ()
        fs = found.label
        parts = rel.split("/")
        notes: list[str] = []
        for i, part in enumerate(parts):
            problems = windows_problems(part) if found.names else None
            if not problems:
                continue
            if not self.options.safe_names:
                raise errors.KeyRejected(
                    f"{part!r} cannot be written at {dest.name} ({fs}): it has {' and '.join(problems)}",
                    hint=f"rename it, or use --safe-names to write it as {windows_safe(part)!r}",
                )
            parts[i] = windows_safe(part)
            notes.append(f"name {part!r} written as {parts[i]!r} for {fs} (--safe-names)")
        folders = len(parts) if folder else len(parts) - 1
        if folders:
            wanted = "/".join(parts[:folders])
            spelt = self._one_spelling(dest.ident, wanted)
            if spelt != wanted:
                notes.append(
                    f"folder {wanted!r} written as {spelt!r}: at {dest.name} ({fs}) names that differ"
                    " only by case are one"
                )
                return "/".join([spelt, *parts[folders:]]), tuple(notes)
        return "/".join(parts), tuple(notes)

    def _one_spelling(self, ident: str, folder: str) -> str:
        """``folder`` as this job first spelt it at a destination with Windows rules, level by
        level: those filesystems (exFAT, FAT, NTFS) take ``100CANON`` and ``100canon`` for one
        folder, so every file's target names it as it is on the drive (through FUSE, each spelling
        would be a folder of its own to the kernel, and a report would name a path not there)."""
        spelt_as = self._spelt_as.setdefault(ident, {})
        known = spelt_as.get(folder)
        if known is not None:
            return known
        seen = self._spelt.setdefault(ident, {})
        spelt = ""
        for part in folder.split("/"):
            path = f"{spelt}/{part}" if spelt else part
            spelt = seen.setdefault(fold_case(path), path)
        spelt_as[folder] = spelt
        return spelt

    def dest_path(self, plan: FilePlan, dest: Destination) -> tuple[str, tuple[str, ...]]:
        """``plan``'s layout path at ``dest`` after its name rules, and the notes they made:
        ``for_destination``'s first step, and the only one that can fail (KeyRejected when the
        destination cannot hold the name). A re-run that finds the file there needs no more."""
        if self._rules.get(dest.ident, "") is None:  # known to have no name rules: nothing to apply
            return plan.layout_path, ()
        return self._apply_name_rules(plan.layout_path, dest)

    def for_destination(
        self, plan: FilePlan, dest: Destination, named: tuple[str, tuple[str, ...]] | None = None
    ) -> DestPlan:
        """Raises KeyRejected when the destination cannot hold the name; ``named``: what
        ``dest_path`` answered for this plan and destination, not asked again."""
        rel, notes = self._apply_name_rules(plan.layout_path, dest) if named is None else named
        if dest.caps.is_local:
            return DestPlan(rel, notes, xattrs=plan.xattrs)
        fields = object_fields(plan.record())
        if self.options.metadata == "sidecar":
            return DestPlan(rel, notes)
        meta, left_out = fit_metadata(fields, dest.caps.max_metadata_bytes)
        if left_out:
            notes += (f"metadata {', '.join(left_out)} did not fit in the object: see its .castoff.json",)
        return DestPlan(rel, notes, meta=meta, left_out=tuple(left_out))
