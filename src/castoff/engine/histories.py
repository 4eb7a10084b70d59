"""A source's ASC MHL history (its ``ascmhl/`` folder) copied onto a local destination.

A history is not a set of independent files: its chain file names every manifest with its C4, and
grows by one generation at a time (castoff's own generation at the destination's root, another
tool's, an in-place one on the card). Copied file by file, a card's history that lands on a
destination's history would either be called damaged (castoff added its generation to the chain it
copied) or be kept beside it as ``ascmhl_chain (2).xml`` and a second generation 1 (the destination
had a history of its own): two histories in one folder, which no tool can read.

So each source history is compared, once per destination folder, with the history already there,
by their chains (each manifest's C4 checked by ``mhl.read_chain``):

- **new**: nothing there; copied as it is (castoff then continues it at the destination's root);
- **same** or **kept**: the destination's chain holds every generation of the source's (and perhaps
  more): the chain file counts as already there, whatever its bytes; manifests are compared as
  files (the same name holds the same C4);
- **older**: the source's chain continues the destination's: its new manifests are copied, then its
  chain replaces the shorter one (only a chain that holds every generation of the one it replaces);
- **apart**: the two chains differ at some generation (or one cannot be read): neither can hold the
  other. The destination's history is kept as it is, and the source's chain and the manifests its
  chain does not share fail at that destination, with what to do.

The rules follow the history, not ``--on-conflict``: replacing a chain with one that lacks some of its
generations would orphan their manifests. Buckets are not compared (a write-only key cannot read).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from castoff import errors
from castoff.reports import mhl

CHAIN = mhl.CHAIN
_TAIL = "/" + mhl.FOLDER


def in_history(path: str) -> bool:
    """``path`` (absolute, POSIX) is a file directly inside an ``ascmhl`` folder."""
    return path.rpartition("/")[0].endswith(_TAIL)


@dataclass(frozen=True)
class HistoryCopy:
    """How a source's history stands to the one at the destination folder it would land in."""

    relation: str  # new, same, kept, older, apart
    source: str  # the source's ascmhl folder
    dest: str  # the destination's ascmhl folder
    #: manifests the destination's chain names (``apart``: these are the shared ones)
    dest_names: frozenset[str] = frozenset()
    why: str = ""  # apart: what differs

    def refusal(self, name: str) -> errors.HistoryConflict | None:
        """The error for the file ``name`` of the source's history at this destination, or None
        when it is copied (or counted as there) as any file would be."""
        if self.relation != "apart" or (name != CHAIN and not name.endswith(".mhl")):
            return None
        if name != CHAIN and name in self.dest_names:
            return None  # a manifest both chains share: the same C4, an ordinary file
        return errors.HistoryConflict(
            f"the source's ASC MHL history {self.source} and the destination's {self.dest} are two"
            f" different histories ({self.why}); one folder cannot hold both: kept the destination's,"
            " and did NOT copy this file of the source's",
            hint="copy each card into a folder of its own, with a template that begins with {card}/;"
            " or leave the card's history out: --exclude 'ascmhl/**'",
        )

    def chain_is_there(self) -> bool:
        """The destination's chain holds every generation of the source's: the source's chain file
        counts as already there, whatever its bytes."""
        return self.relation in ("same", "kept")

    def chain_replaces(self) -> bool:
        """The source's chain holds every generation of the destination's, and more."""
        return self.relation == "older"

    def said(self) -> str:
        """How the chain file was found there, for the report."""
        return f"ASC MHL history: the destination's {CHAIN} holds every generation of the source's"


def compare_histories(source_folder: str, dest_folder: str) -> HistoryCopy:
    """Compare the history in ``source_folder`` (an ``ascmhl`` folder of the source) with the one in
    ``dest_folder`` (where it would land). Reads both chains and checks their manifests' C4."""
    src_root, dest_root = Path(source_folder).parent, Path(dest_folder).parent
    try:
        theirs = mhl.read_chain(dest_root)
    except (errors.HistoryError, OSError) as exc:
        return HistoryCopy("apart", source_folder, dest_folder, why=f"the destination's: {_text(exc)}")
    if not theirs:
        # nothing there, or a chain of no generation (which any chain holds)
        empty_chain = (dest_root / mhl.FOLDER / mhl.CHAIN).is_file()
        return HistoryCopy("older" if empty_chain else "new", source_folder, dest_folder)
    dest_names = frozenset(g.name for g in theirs)
    try:
        ours = mhl.read_chain(src_root)
    except (errors.HistoryError, OSError) as exc:
        return HistoryCopy("apart", source_folder, dest_folder, dest_names, f"the source's: {_text(exc)}")
    if ours == theirs or theirs[: len(ours)] == ours:
        return HistoryCopy("same" if ours == theirs else "kept", source_folder, dest_folder, dest_names)
    if ours[: len(theirs)] == theirs:
        return HistoryCopy("older", source_folder, dest_folder, dest_names)
    at = next(i for i, (a, b) in enumerate(zip(ours, theirs, strict=False)) if a != b)
    shared = frozenset(g.name for g in theirs[:at])
    why = f"generation {theirs[at].number} is {theirs[at].name} there, {ours[at].name} in the source"
    return HistoryCopy("apart", source_folder, dest_folder, shared, why)


def _text(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return str(exc)


class Histories:
    """The comparisons of one job: each (destination, folder) once. Two sources whose histories
    would land in one folder (two cards merged by the layout): the first is compared, the second is
    ``apart`` from it, whatever the folder held before."""

    def __init__(self) -> None:
        self._known: dict[tuple[str, str], HistoryCopy] = {}
        self._lock = threading.Lock()

    def at(self, dest_ident: str, source_file: str, target: str) -> HistoryCopy:
        source_folder, dest_folder = source_file.rpartition("/")[0], target.rpartition("/")[0]
        key = (dest_ident, dest_folder)
        with self._lock:
            found = self._known.get(key)
            if found is None:
                found = self._known[key] = compare_histories(source_folder, dest_folder)
            elif found.source != source_folder:
                return HistoryCopy(
                    "apart", source_folder, dest_folder, why=f"the history of {found.source} lands there too"
                )
            return found
