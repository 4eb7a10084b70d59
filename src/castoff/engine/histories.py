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
generations would orphan their manifests.

A bucket (a write-only key cannot read) is compared by the catalog's memory: every chain file castoff
lands in a bucket is kept by its BLAKE3 with the generations it names (``Catalog.record_chain``), and
the object castoff put at a key is known (``objects``); so the source's chain is compared with the
chain castoff put at that key, by the same rules (``compare_chain``). Where the catalog knows no
chain at that key (an older catalog, another tool's upload), the relation is **unknown**: nothing is
decided by the history, and ``--on-conflict`` applies as to any file.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from castoff import errors
from castoff.reports import mhl

CHAIN = mhl.CHAIN
_TAIL = "/" + mhl.FOLDER


def in_history(path: str) -> bool:
    """``path`` (absolute, POSIX; or a bucket's key) is a file directly inside an ``ascmhl`` folder."""
    folder = path.rpartition("/")[0]
    return folder.endswith(_TAIL) or folder == mhl.FOLDER


@dataclass(frozen=True)
class HistoryCopy:
    """How a source's history stands to the one at the destination folder it would land in."""

    relation: str  # new, same, kept, older, apart; unknown (a bucket's key the catalog knows no chain at)
    source: str  # the source's ascmhl folder
    dest: str  # the destination's ascmhl folder (at a bucket: the keys' prefix)
    #: manifests the destination's chain names (``apart``: these are the shared ones)
    dest_names: frozenset[str] = frozenset()
    why: str = ""  # apart: what differs
    #: the destination's chain is the one castoff recorded it put at a bucket's key (``compare_sent``)
    sent: bool = False
    #: generations in the source's chain, and in the destination's (``older``: what the report says)
    counts: tuple[int, int] = (0, 0)

    def refusal(self, name: str) -> errors.HistoryConflict | None:
        """The error for the file ``name`` of the source's history at this destination, or None
        when it is copied (or counted as there) as any file would be."""
        if self.relation != "apart" or (name != CHAIN and not name.endswith(".mhl")):
            return None
        if name != CHAIN and name in self.dest_names:
            return None  # a manifest both chains share: the same C4, an ordinary file
        theirs = f"the one castoff put at {self.dest}" if self.sent else f"the destination's {self.dest}"
        return errors.HistoryConflict(
            f"the source's ASC MHL history {self.source} and {theirs} are two"
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
        if self.sent:
            return (
                f"ASC MHL history: the {CHAIN} castoff put at this key holds every generation of the"
                " source's (the catalog's record of it)"
            )
        return f"ASC MHL history: the destination's {CHAIN} holds every generation of the source's"

    def replaced(self, target: str) -> str:
        """Why the chain at ``target`` was replaced, for the log and the report."""
        ours, theirs = self.counts
        whose = f"the {CHAIN} castoff put there before" if self.sent else f"the {CHAIN} there"
        return (
            f"{target}: replaced {whose}, which names {theirs} generation{'s' * (theirs != 1)}, with the"
            f" source's, which names {ours}: the source's ASC MHL history continues it"
        )


def compare_histories(source_folder: str, dest_folder: str) -> HistoryCopy:
    """Compare the history in ``source_folder`` (an ``ascmhl`` folder of the source) with the one in
    ``dest_folder`` (a local folder, where it would land). Reads both chains and checks their
    manifests' C4."""
    dest_root = Path(dest_folder).parent
    try:
        theirs = mhl.read_chain(dest_root)
    except (errors.HistoryError, OSError) as exc:
        return HistoryCopy("apart", source_folder, dest_folder, why=f"the destination's: {_text(exc)}")
    if not theirs and not (dest_root / mhl.FOLDER / mhl.CHAIN).is_file():
        return HistoryCopy("new", source_folder, dest_folder)
    return compare_chain(source_folder, dest_folder, theirs)


def compare_sent(source_folder: str, dest_folder: str, sent: list[mhl.Generation] | None) -> HistoryCopy:
    """Compare the history in ``source_folder`` with ``sent``, the generations of the chain castoff
    put at a bucket's ``dest_folder`` (the catalog's record; None: it knows no chain there)."""
    if sent is None:
        return HistoryCopy("unknown", source_folder, dest_folder, sent=True)
    return compare_chain(source_folder, dest_folder, sent, sent=True)


def compare_chain(
    source_folder: str, dest_folder: str, theirs: list[mhl.Generation], *, sent: bool = False
) -> HistoryCopy:
    """The one comparison, chain against chain: the source's history (read, its manifests' C4
    checked) against ``theirs``, the chain at the destination (read there, or the catalog's record)."""
    if not theirs:  # a chain of no generation, which any chain holds
        return HistoryCopy("older", source_folder, dest_folder, sent=sent)
    dest_names = frozenset(g.name for g in theirs)
    try:
        ours = mhl.read_chain(Path(source_folder).parent)
    except (errors.HistoryError, OSError) as exc:
        why = f"the source's: {_text(exc)}"
        return HistoryCopy("apart", source_folder, dest_folder, dest_names, why, sent=sent)
    counts = (len(ours), len(theirs))
    if ours == theirs or theirs[: len(ours)] == ours:
        relation = "same" if ours == theirs else "kept"
        return HistoryCopy(relation, source_folder, dest_folder, dest_names, sent=sent, counts=counts)
    if ours[: len(theirs)] == theirs:
        return HistoryCopy("older", source_folder, dest_folder, dest_names, sent=sent, counts=counts)
    at = next(i for i, (a, b) in enumerate(zip(ours, theirs, strict=False)) if a != b)
    shared = frozenset(g.name for g in theirs[:at])
    why = f"generation {theirs[at].number} is {theirs[at].name} there, {ours[at].name} in the source"
    return HistoryCopy("apart", source_folder, dest_folder, shared, why, sent=sent, counts=counts)


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

    def at(
        self,
        dest_ident: str,
        source_file: str,
        target: str,
        sent: Callable[[str], list[mhl.Generation] | None] | None = None,
    ) -> HistoryCopy:
        """``sent``: at a bucket, the generations of the chain castoff put at a key (the catalog's)."""
        source_folder, dest_folder = source_file.rpartition("/")[0], target.rpartition("/")[0]
        key = (dest_ident, dest_folder)
        with self._lock:
            found = self._known.get(key)
            if found is None:
                found = self._known[key] = (
                    compare_histories(source_folder, dest_folder)
                    if sent is None
                    else compare_sent(source_folder, dest_folder, sent(f"{dest_folder}/{CHAIN}"))
                )
            elif found.source != source_folder:
                return HistoryCopy(
                    "apart",
                    source_folder,
                    dest_folder,
                    why=f"the history of {found.source} lands there too",
                    sent=found.sent,
                )
            return found
