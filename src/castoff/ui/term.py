"""The terminal console every command prints with, and what happens when its reader goes away."""

from __future__ import annotations

import contextlib
import io
import os
from typing import IO, Any

import rich.console


def stream_gone(stream: IO[str]) -> None:
    """``stream``'s reader went away (``castoff … | head``): from now on what is written to it goes
    to /dev/null, so that neither a later write nor Python's flush at exit (which would print
    "Exception ignored … BrokenPipeError") fails. The Python documentation's recipe ("Note on
    SIGPIPE" in the signal module)."""
    with contextlib.suppress(OSError, ValueError, io.UnsupportedOperation):
        fd = stream.fileno()
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, fd)
        os.close(devnull)


class Console(rich.console.Console):
    """rich's console without emoji codes: a file named ``:camera:.jpg`` is printed as it is
    named, not as a picture (``markup=False`` leaves emoji codes on)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("emoji", False)
        super().__init__(**kwargs)

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
