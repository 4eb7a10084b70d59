"""The terminal console every command prints with, and what happens when its reader goes away."""

from __future__ import annotations

import codecs
import contextlib
import io
import os
import re
import sys
from collections.abc import Iterable
from typing import IO, Any, ClassVar

import rich.console
from rich.segment import Segment
from rich.text import Text

from castoff import errors

#: the width of a console whose output is not a terminal (a pipe, a file) and for which COLUMNS
#: says nothing: its lines are not wrapped (rich's default, 80, cut table columns and broke
#: messages mid-phrase in ``castoff jobs | cat`` or ``2> offload.log``)
UNWRAPPED = 10_000

#: control characters: C0 (but tab and newline), DEL, C1. In a file name they would reach the
#: terminal raw: ESC sequences recolour or erase lines, a name could fake a "verified"
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
#: the same, with tab and newline: a name with a newline would split its line or table row
_CONTROL_ALL = re.compile("[\x00-\x1f\x7f-\x9f]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return _NAMED.get(char) or f"\\x{ord(char):02x}"


def printable(text: str) -> str:
    """``text`` (a name, a path) for a console line: its control characters escaped as Python
    writes them (``\\x1b``, ``\\n``), as a name that is not UTF-8 is (``\\xff``)."""
    return _CONTROL_ALL.sub(_escape, text)


def printable_lines(text: str) -> str:
    """A message for the console: its control characters escaped, its newlines too (they come from
    the names it quotes), but for a traceback it ends with (an internal error's, multi-line by
    design)."""
    head, sep, trace = text.partition("\nTraceback (most recent call last):")
    return printable(head) + sep + _CONTROL.sub(_escape, trace)


def is_utf8(stream: IO[str] | Any) -> bool:
    """Whether ``stream`` encodes text as UTF-8 (a redirected stdout on Windows is cp1252)."""
    try:
        return codecs.lookup(getattr(stream, "encoding", None) or "ascii").name == "utf-8"
    except LookupError:
        return False


def json_ascii(stream: IO[str] | Any = None) -> bool:
    """``ensure_ascii`` for JSON printed on ``stream`` (stdout): on a stream that is not UTF-8,
    every character that is not ASCII as an escape, which any encoding holds (the parsed values
    are the same)."""
    return not is_utf8(sys.stdout if stream is None else stream)


def stream_gone(stream: IO[str] | GuardedStdout) -> None:
    """``stream``'s reader went away (``castoff … | head``): from now on what is written to it goes
    to /dev/null, so that neither a later write nor Python's flush at exit (which would print
    "Exception ignored … BrokenPipeError") fails. The Python documentation's recipe ("Note on
    SIGPIPE" in the signal module)."""
    with contextlib.suppress(OSError, ValueError, io.UnsupportedOperation):
        fd = stream.fileno()
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, fd)
        os.close(devnull)


def reason(exc: BaseException) -> str:
    """What an error says, without its errno: "No space left on device"."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def write_failed(stream: IO[str], exc: BaseException) -> errors.OutputFailed:
    """``stream`` (stdout) could not take what was written to it (a full disk, a terminal gone):
    from now on what is written to it goes to /dev/null (nothing more is tried, and Python's flush
    at exit does not fail); the error that says so."""
    stream_gone(stream)
    return errors.OutputFailed(
        f"could not write to stdout: {reason(exc)}",
        hint="what it is redirected to must take the output: free some space, or redirect it elsewhere",
    )


class GuardedStdout:
    """``sys.stdout`` while a command runs: a write or flush that fails for another reason than a
    closed pipe (which ends a listing quietly, 141) is an ``OutputFailed``, said by ``cli.main``
    without a traceback, rather than an ``OSError`` no one could tell from another."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        try:
            return self.stream.write(text)
        except BrokenPipeError:
            raise
        except (OSError, ValueError) as exc:
            raise write_failed(self.stream, exc) from exc

    def flush(self) -> None:
        try:
            self.stream.flush()
        except BrokenPipeError:
            raise
        except (OSError, ValueError) as exc:
            raise write_failed(self.stream, exc) from exc

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def tolerant(stream: Any) -> None:
    """A text stream that is not UTF-8 (Windows' cp1252 when redirected) writes a character it
    cannot encode as an escape (``\\u64ae``), not a UnicodeEncodeError midway through a job."""
    reconfigure = getattr(stream, "reconfigure", None)
    if reconfigure is not None and not is_utf8(stream):
        with contextlib.suppress(ValueError, io.UnsupportedOperation):
            reconfigure(errors="backslashreplace")


class Console(rich.console.Console):
    """rich's console without emoji codes: a file named ``:camera:.jpg`` is printed as it is
    named, not as a picture (``markup=False`` leaves emoji codes on). Control characters never
    reach the terminal raw; a pipe or a file is not wrapped at 80 columns; a stream that fails
    is not a traceback."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("emoji", False)
        super().__init__(**kwargs)
        if kwargs.get("width") is None and not self.is_terminal and not os.environ.get("COLUMNS"):
            self.width = UNWRAPPED

    def _render_buffer(self, buffer: Iterable[Segment]) -> str:
        """The last guard: a control character in any text printed (a name in a message, a table)
        is escaped; rich's own control codes (cursor moves of the progress bars) are not text."""
        return super()._render_buffer(
            Segment(_CONTROL.sub(_escape, text), style, None)
            if not control
            else Segment(text, style, control)
            for text, style, control in buffer
        )

    def _check_buffer(self) -> None:
        try:
            super()._check_buffer()
        except BrokenPipeError:
            raise
        except errors.OutputFailed:
            del self._buffer[:]
            self.quiet = True
            raise
        except (OSError, ValueError) as exc:  # a full disk, a terminal gone (EIO), a closed file
            del self._buffer[:]
            self.quiet = True
            if not self.stderr:
                raise write_failed(self.file, exc) from exc
            stream_gone(self.file)  # progress and messages: what runs goes on

    def on_broken_pipe(self) -> None:
        """rich's own answer is ``SystemExit(1)``, and it silences stdout even for a console on
        stderr. Here: this console prints nothing more. On stderr (progress, messages) that is
        all: what runs goes on (a job is never stopped by a closed terminal or log reader). On
        stdout (what a listing command prints) the ``BrokenPipeError`` goes on to ``cli.main``,
        which ends the command quietly."""
        self.quiet = True
        stream_gone(self.file)
        if not self.stderr:
            raise BrokenPipeError


class Warnings:
    """Each ``warning: …`` said before a job's events start (a config file's, a bucket name's, an
    option's), said on stderr and kept in order: with ``--json`` each is also a ``log`` event, given
    right after ``job-start`` (docs/json-events.md), as the job's own warnings are."""

    said: ClassVar[list[str]] = []

    @classmethod
    def say(cls, text: str) -> None:
        Console(stderr=True).print(Text.assemble(("warning:", "yellow"), f" {text}"), soft_wrap=True)
        cls.said.append(text)

    @classmethod
    def take(cls) -> list[str]:
        """What was said since the command began (or since the last ``take``)."""
        taken, cls.said = cls.said, []
        return taken
