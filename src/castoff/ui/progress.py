"""What a person or a script sees while a job runs: rich progress bars, JSON lines, or nothing.

Each display is an event sink plus a ``tick`` that reads the lanes' counters; none of them touches
the engine's state beyond reading those counters.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TextIO

from rich.console import RenderableType
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table
from rich.text import Text

from castoff import errors
from castoff.engine.events import Event
from castoff.ui.term import Console, json_ascii, printable, printable_lines, reason, stream_gone
from castoff.units import format_bytes, plural

Stats = Callable[[], Mapping[str, Mapping[str, int]]]

_LEVEL_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}


class Display:
    """Base display: receives events, is ticked a few times a second, closes with a summary."""

    #: whether debug logs are shown (the engine does not build them otherwise: one a file)
    wants_debug = False
    #: whether it wants a ``file-done`` event per file and destination and a ``progress`` event per
    #: part (the counters are in ``stats``)
    wants_file_done = False

    def __init__(self, stats: Stats) -> None:
        self.stats = stats
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __call__(self, event: Event) -> None:
        return None

    def tick(self) -> None:
        return None

    def start(self) -> None:
        def loop() -> None:
            while not self._stop.wait(0.25):
                self.tick()

        self._thread = threading.Thread(target=loop, name="display", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
        self.tick()


class QuietDisplay(Display):
    """``--quiet``: nothing but errors (a file that failed somewhere, a destination that stopped),
    one line each on stderr, so that a failed job never ends silently."""

    def __init__(self, stats: Stats) -> None:
        super().__init__(stats)
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        if event.kind == "log" and event.data.get("level") == "error":
            with self._lock:
                try:
                    sys.stderr.write(f"{printable_lines(str(event.data.get('message')))}\n")
                    sys.stderr.flush()
                except (OSError, ValueError):  # whoever read stderr went away: the job goes on
                    stream_gone(sys.stderr)


class JsonDisplay(Display):
    """One JSON object per line on stdout: every event, plus a progress snapshot twice a second.

    When stdout fails (its reader went away: a monitoring script that ended, ``| head``; a full
    disk; a terminal gone), the events stop and the job goes on to its normal end and exit code:
    the log, catalog and reports do not depend on stdout. Said once on stderr. On a stdout that is
    not UTF-8 (Windows' cp1252, redirected), every character that is not ASCII is escaped."""

    wants_debug = True
    wants_file_done = True

    def __init__(self, stats: Stats, out: TextIO | None = None, said_before: Sequence[str] = ()) -> None:
        super().__init__(stats)
        self.out = out or sys.stdout
        #: the warnings said on stderr before the job (``term.Warnings``): ``log`` events after
        #: ``job-start``, which is the first event
        self.said_before = list(said_before)
        self.ascii = json_ascii(self.out)
        self._lock = threading.Lock()
        self._last: str | None = None
        self.gone = False  # stdout failed: nothing more is written

    def _write(self, obj: Mapping[str, Any]) -> None:
        line = json.dumps(obj, ensure_ascii=self.ascii, default=str)
        with self._lock:
            if self.gone:
                return
            try:
                self.out.write(line + "\n")
                self.out.flush()
            except (OSError, ValueError, errors.OutputFailed) as exc:
                self.gone = True
                stream_gone(self.out)
                cause = exc.__cause__ if isinstance(exc, errors.OutputFailed) else exc
                why = (
                    "was closed" if isinstance(cause, BrokenPipeError) else f"failed ({reason(cause or exc)})"
                )
                _say(
                    f"castoff: stdout {why}: no more JSON events are printed; the job goes on"
                    " (its log, catalog and reports are unaffected)"
                )

    def __call__(self, event: Event) -> None:
        if event.kind == "progress":
            return
        self._write({"event": event.kind, "at": round(event.at, 3), **event.data})
        if event.kind == "job-start":
            for text in self.said_before:  # (on stderr already)
                self._write(
                    {"event": "log", "at": round(time.time(), 3), "level": "warning", "message": text}
                )
        elif event.kind == "log" and event.data.get("level") in ("warning", "error"):
            # for a person too: ``--json > events.jsonl 2> offload.log`` keeps what went wrong as text
            _say(f"{event.data.get('level')}: {printable_lines(str(event.data.get('message')))}")
        elif event.kind == "released":
            _say(Text.from_markup(released_text(event.data)).plain)

    def tick(self) -> None:
        snap = {name: dict(s) for name, s in self.stats().items()}
        text = json.dumps(snap, sort_keys=True)
        if text != self._last:
            self._last = text
            self._write({"event": "progress", "at": round(time.time(), 3), "destinations": snap})


def _say(text: str) -> None:
    """A line on stderr, if stderr is still there."""
    try:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        stream_gone(sys.stderr)


class _BytesColumn(DownloadColumn):
    """Bytes sent of bytes to send; "nothing to send" where every file was verified before."""

    def render(self, task: Task) -> Text:
        if task.fields.get("nothing"):
            return Text("nothing to send", style="progress.download")
        if task.fields.get("no_files"):  # (not "0/1 bytes": the bar's total is 1 to be drawn)
            return Text("0 B", style="progress.download")
        return super().render(task)


class _SpeedColumn(TransferSpeedColumn):
    """The rate in the units of the sizes beside it and of the end line (MiB/s): rich's own
    column says decimal MB/s (QA: ``201.0 MB/s`` next to MiB sizes, then ``MiB/s`` at the end)."""

    def render(self, task: Task) -> Text:
        # A finished bar's rate is its whole run's: rich's is its last samples', which the scan's
        # growing totals keep resetting (the demo's folders said 591 B/s for 48 MiB in a second).
        if task.finished and task.finished_time:
            speed: float | None = task.completed / task.finished_time
        else:
            speed = task.finished_speed or task.speed
        if speed is None:
            return Text("?", style="progress.data.speed")
        return Text(f"{format_bytes(speed)}/s", style="progress.data.speed")


class RichDisplay(Display):
    """Bars per destination (bytes, files, rate, ETA) and overall, then a summary table."""

    def __init__(self, stats: Stats, console: Console | None = None, debug: bool = False) -> None:
        super().__init__(stats)
        self.console = console or Console(stderr=True)
        self.debug = self.wants_debug = debug
        self.progress = Progress(
            TextColumn("{task.description}", style="bold", markup=False),  # a folder's [ ] stay text
            BarColumn(bar_width=30),
            _BytesColumn(binary_units=True),
            _SpeedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[files]}"),
            console=self.console,
            transient=False,
        )
        self.tasks: dict[str, TaskID] = {}
        self._lock = threading.Lock()

    def start(self) -> None:
        self.progress.start()
        super().start()

    def __call__(self, event: Event) -> None:
        if event.kind == "log":
            level = str(event.data.get("level", "info"))
            if level == "debug" and not self.debug:
                return
            style = _LEVEL_STYLE.get(level, "dim")
            # Text, not markup: a log line quotes paths, which may hold [ ]
            # control characters escaped, newlines too: they come from a name the message quotes
            message = printable_lines(str(event.data.get("message")))
            self.progress.console.print(Text(message, style=style), soft_wrap=True)
        elif event.kind == "released":
            self.progress.console.print(released_text(event.data))

    def tick(self) -> None:
        with self._lock:
            stats = self.stats()
            tot_done = tot_all = tot_files = 0
            for name, s in stats.items():
                if name not in self.tasks:
                    self.tasks[name] = self.progress.add_task(name, total=None, files="")
                tid = self.tasks[name]
                done_files = s["files_done"]
                files = f"{done_files}/{plural(s['files_total'], 'file')}"
                if s["failed"]:
                    files += f" [red]{s['failed']} failed[/]"
                if s["incomplete"]:  # the summary's word: a re-run resumes them
                    files += f" [yellow]{s['incomplete']} incomplete[/]"
                if s["conflict"]:
                    files += f" [yellow]{s['conflict']} not copied (conflict)[/]"
                if s.get("damaged"):
                    files += f" [yellow]{s['damaged']} damaged copy kept[/]"
                if s["skipped"]:
                    files += f" ({s['skipped']} verified before)"
                # the bar counts what this job sends: files verified there before, and the parts an
                # earlier job sent of the uploads this one resumes, are off it
                to_send = s["bytes_total"] - s["bytes_skipped"] - s.get("bytes_resumed", 0)
                done = min(s["bytes_done"], to_send)
                self._bar(tid, done, to_send, planned=s["files_total"], files=files)
                tot_done += done
                tot_all += to_send
                tot_files += s["files_total"]
            if stats and len(stats) > 1:
                if "all" not in self.tasks:
                    self.tasks["all"] = self.progress.add_task("overall", total=None, files="")
                self._bar(self.tasks["all"], tot_done, tot_all, planned=tot_files)

    def _bar(self, tid: TaskID, done: int, total: int, *, planned: int, files: str = "") -> None:
        if total <= 0 and planned:  # files, none to send: a full bar that says so, not "0/1 byte"
            self.progress.update(tid, completed=1, total=1, nothing=True, no_files=False, files=files)
        else:
            no_files = total <= 0  # none found (yet, or in an empty source): an empty bar, 0 B
            total = max(total, 1)
            self.progress.update(
                tid, completed=min(done, total), total=total, nothing=False, no_files=no_files, files=files
            )

    def close(self) -> None:
        super().close()
        self.progress.stop()


def summary_table(
    lanes: Mapping[str, Mapping[str, int]], locations: Mapping[str, str | None] | None = None
) -> Table:
    """The counts the reports give (their words: already = found there with the same bytes,
    skipped = verified there by an earlier job); the conflict, incomplete and damaged columns only
    when there is one (damaged: the file is verified there too, beside a damaged earlier copy).
    A saved destination (``@arch``) has where it is (``locations``, by name: the reports'
    ``location``) on a second line, dim: the name alone does not say which bucket or folder got
    the files. A folder or URL named as it is keeps its one line."""
    table = Table(title="castoff: summary", title_justify="left")
    table.add_column("destination", overflow="fold", min_width=8)  # a long name wraps, never cut
    cols = ["files", "bytes", "verified", "already", "skipped"]
    # the rarer ends only when some destination has them: incomplete = resumable by a re-run
    rare = [c for c in ("conflict", "incomplete", "damaged") if any(s.get(c, 0) for s in lanes.values())]
    for col in [*cols, *(RARE_TITLES[c] for c in rare), "failed"]:
        table.add_column(col, justify="right")
    for name, s in lanes.items():
        shown = Text(printable(name))  # Text, not markup: a folder's name may hold [ ]
        where = (locations or {}).get(name)
        if where and where != name and name.startswith("@"):
            shown.append(f"\n{printable(where)}", style="dim")
        row: list[RenderableType] = [
            shown,
            str(s["files_total"]),
            format_bytes(s["bytes_total"]),
            str(s["verified"]),
            str(s["already"]),
            str(s["skipped"]),
        ]
        row += [f"[yellow]{s[c]}[/]" if s[c] else "0" for c in rare]
        row.append(f"[red]{s['failed']}[/]" if s["failed"] else "0")
        table.add_row(*row)
    return table


RARE_TITLES = {"conflict": "conflict", "incomplete": "incomplete", "damaged": "damaged"}


def released_text(data: Mapping[str, Any]) -> str:
    """The ``released`` event as a line: the source may go, and a damaged copy is not hidden."""
    text = "[bold green]Source can be released:[/] every local destination is verified."
    damaged = int(data.get("damaged") or 0)
    if damaged:
        copies = "copy" if damaged == 1 else "copies"
        text += (
            f" [bold yellow]But {damaged} earlier {copies} there {'is' if damaged == 1 else 'are'}"
            " DAMAGED[/] (kept, beside a verified good copy: see the end)."
        )
    if data.get("remaining_streams"):
        text += " Uploads continue from the local copies."
    unwritten = [str(scope) for scope in data.get("mhl_not_written") or ()]
    if unwritten:
        what = "an ASC MHL history was" if len(unwritten) == 1 else f"{len(unwritten)} ASC MHL histories were"
        them = "it" if len(unwritten) == 1 else "them"
        text += (
            f" [bold yellow]But {what} not written[/] ({escape(printable(', '.join(unwritten)))}: see the"
            f" end); a re-run that writes {them} needs the card."
        )
    return text
