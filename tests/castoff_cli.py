"""Run the castoff command in a subprocess with a config, state dir and keyring of the test's own,
keep everything it printed, and search every file it wrote for a secret."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import subprocess
import sys
import termios
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

TESTS = Path(__file__).resolve().parent
SRC = TESTS.parent / "src"
NO_KEYRING = "keyring.backends.fail.Keyring"
#: castoff as ``python -c QUICK_RETRIES …``: a destination that stops answering is retried after
#: 0.02 s (doubling, at most 0.2 s) and paused 0.3 s (doubling), not after 0.25 s (up to 20 s) and
#: 5 s, 10 s, 20 s: what it says and records is the same, as in the engine tests' FAST options
QUICK_RETRIES = """
import inspect, runpy, sys
from castoff.engine import job, retry

def defaults(cls, **new):
    init = cls.__init__
    params = [p for p in inspect.signature(init).parameters.values() if p.default is not p.empty]
    init.__defaults__ = tuple(new.get(p.name, p.default) for p in params)

defaults(retry.RetryPolicy, base=0.02, cap=0.2)
defaults(job.JobOptions, lane_pause=0.3)
sys.argv = ["castoff", *sys.argv[1:]]
runpy.run_module("castoff", run_name="__main__", alter_sys=True)
"""


@dataclass
class Castoff:
    root: Path
    env: dict[str, str] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)
    argvs: list[list[str]] = field(default_factory=list)
    #: retries and pauses of a few tenths of a second (``QUICK_RETRIES``)
    quick_retries: bool = False

    def _argv(self, args: Iterable[str]) -> list[str]:
        if self.quick_retries:
            return [sys.executable, "-c", QUICK_RETRIES, *args]
        return [sys.executable, "-m", "castoff", *args]

    @property
    def config(self) -> Path:
        return self.root / "config" / "config.toml"

    @property
    def state(self) -> Path:
        return self.root / "state"

    @property
    def keyring_file(self) -> Path:
        return self.root / "test-keyring.json"

    def environ(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CASTOFF_"))}
        tmp = self.root / "tmp"  # an editor's draft kept on purpose goes with the test's folder
        tmp.mkdir(parents=True, exist_ok=True)
        env.update(
            TMPDIR=str(tmp),
            PYTHONPATH=os.pathsep.join([str(SRC), str(TESTS)]),
            PYTHON_KEYRING_BACKEND="keyring_backend.FileKeyring",
            CASTOFF_TEST_KEYRING=str(self.keyring_file),
            CASTOFF_CONFIG=str(self.config),
            CASTOFF_HOME=str(self.state),
            AWS_CONFIG_FILE=os.devnull,
            AWS_SHARED_CREDENTIALS_FILE=os.devnull,
            AWS_EC2_METADATA_DISABLED="true",
            COLUMNS="400",  # (wide: the paths of tests run by pytest-xdist are longer)
        )
        env.update(self.env)
        env.update(extra or {})
        return env

    def __call__(
        self, *args: str, input: str | None = None, env: Mapping[str, str] | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        self.argvs.append(list(args))
        return self.run(self._argv(args), input=input, env=env, timeout=timeout)

    def run(
        self,
        argv: Sequence[str],
        *,
        input: str | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float = 120,
        preexec_fn: Callable[[], None] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Any command line (castoff under ``setpriv``, a ``python -c``) in castoff's environment
        and folder, its outputs kept as a call's are."""
        self.root.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            input=input if input is not None else "",
            env=self.environ(env),
            cwd=self.root,
            timeout=timeout,
            check=False,
            preexec_fn=preexec_fn,
        )
        self.outputs += [done.stdout, done.stderr]
        return done

    def popen(self, *args: str, env: Mapping[str, str] | None = None) -> subprocess.Popen[str]:
        self.root.mkdir(parents=True, exist_ok=True)
        self.argvs.append(list(args))
        return subprocess.Popen(
            self._argv(args),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.environ(env),
            cwd=self.root,
        )

    def in_terminal(
        self, *args: str, answers: Iterable[tuple[str, str]], timeout: float = 120
    ) -> tuple[int, str]:
        """Run castoff on a pseudo-terminal of its own (so it may prompt); each (prompt, reply)
        pair waits for the prompt's text and types the reply. Returns the exit code and all output."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.argvs.append(list(args))
        master, slave = pty.openpty()

        def own_terminal() -> None:
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)  # after setsid: the pty becomes /dev/tty

        proc = subprocess.Popen(
            self._argv(args),
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=self.environ(),
            cwd=self.root,
            start_new_session=True,
            preexec_fn=own_terminal,  # noqa: PLW1509 (tests run no threads that fork)
        )
        os.close(slave)
        seen = b""
        deadline = time.monotonic() + timeout
        pending = list(answers)
        answered_at = 0
        try:
            while True:
                ready, _, _ = select.select([master], [], [], 0.2)
                if ready:
                    try:
                        chunk = os.read(master, 65536)
                    except OSError:  # EIO: the child closed the terminal
                        chunk = b""
                    if not chunk and proc.poll() is not None:
                        break
                    seen += chunk
                while pending and seen.find(pending[0][0].encode(), answered_at) >= 0:
                    os.write(master, pending.pop(0)[1].encode() + b"\n")
                    answered_at = len(seen)
                if proc.poll() is not None and not ready:
                    break
                if time.monotonic() > deadline:
                    proc.kill()
                    raise TimeoutError(seen.decode(errors="replace"))
        finally:
            os.close(master)
            proc.wait(10)
        text = seen.decode(errors="replace")
        self.outputs.append(text)
        return proc.returncode, text

    def keyring(self) -> str:
        return self.keyring_file.read_text() if self.keyring_file.exists() else ""


CASTOFF = [sys.executable, "-m", "castoff"]


def run_castoff(
    *args: str, state: Path, env: Mapping[str, str] | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """``castoff --state-dir STATE ARGS…`` in a subprocess, with this process's environment plus
    ``env``, 200 columns wide (no wrapped lines to match); its exit code and what it printed."""
    return subprocess.run(
        [*CASTOFF, "--state-dir", str(state), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, "COLUMNS": "400", **(env or {})},
    )


def files_containing(secret: str, roots: Iterable[Path]) -> list[Path]:
    """Every file under ``roots`` whose bytes contain ``secret`` (plain, or as UTF-16 as some
    SQLite pages could hold it)."""
    needles = [secret.encode(), secret.encode("utf-16-le")]
    found = []
    for root in roots:
        paths = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for p in paths:
            data = p.read_bytes()
            if any(n in data for n in needles):
                found.append(p)
    return found
