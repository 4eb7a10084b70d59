"""castoff as a user runs it, in a subprocess: the command line, its environment, signals.

Every wait on castoff here has a deadline. A castoff that does not end in time is not left to
stall the session: the test fails with a py-spy dump of its threads and whether each S3 server
of the test still answers, so a hang says where it is the first time it happens."""

from __future__ import annotations

import http.client
import os
import selectors
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import pytest

from servers import MotoServer, RcloneServer, _http

Server = MotoServer | RcloneServer

CASTOFF = [sys.executable, "-m", "castoff"]
#: the longest a castoff of the fault suite may run (a job there takes a few seconds)
RUN_TIMEOUT = float(os.environ.get("CASTOFF_FAULT_RUN_TIMEOUT", "120"))
#: how long after SIGKILL, SIGINT or SIGTERM castoff may take to be gone
EXIT_TIMEOUT = 60.0


def env_with(**extra: str) -> dict[str, str]:
    """This environment without AWS settings or proxies, plus ``extra``; castoff from this tree."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and "proxy" not in k.lower()}
    src = str(Path(__file__).resolve().parents[2] / "src")
    env["PYTHONPATH"] = os.pathsep.join([src, *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])])
    env.setdefault("AWS_CONFIG_FILE", os.devnull)
    env.setdefault("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    env.update(extra)
    return env


def castoff(
    *args: str,
    state: Path,
    env: Mapping[str, str] | None = None,
    timeout: float = RUN_TIMEOUT,
    servers: Iterable[Server] = (),
) -> subprocess.CompletedProcess[str]:
    """Run castoff to its end; fail the test with a hang report past ``timeout`` seconds
    (``servers``: the S3 servers the job talks to, probed in that report)."""
    proc = start(args, state=state, env=env or env_with())
    out, err = finish(proc, timeout=timeout, servers=servers)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def start(args: Sequence[str], *, state: Path, env: Mapping[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*CASTOFF, "--state-dir", str(state), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(env),
    )


def finish(
    proc: subprocess.Popen[str], *, timeout: float = EXIT_TIMEOUT, servers: Iterable[Server] = ()
) -> tuple[str, str]:
    """Wait for ``proc`` to end: its (stdout, stderr). Past ``timeout``: a hang report, then it
    is killed and the test fails."""
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        report = hang_report(proc.pid, servers)
        proc.kill()
        _, err = proc.communicate()
        pytest.fail(
            f"castoff (pid {proc.pid}) did not end within {timeout:.0f} s: {' '.join(map(str, proc.args))}\n"
            f"{report}\n--- its stderr (tail) ---\n{err[-3000:]}",
            pytrace=False,
        )


def wait_for_line(
    proc: subprocess.Popen[str], wanted: Callable[[str], bool], timeout: float = RUN_TIMEOUT
) -> str:
    """Read ``proc``'s stdout until a line ``wanted`` accepts; fail the test (after a hang report
    and a kill) when none came within ``timeout`` seconds or the output ended. Reads the pipe
    itself (no buffered text object in between), so select() never misses a line."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    deadline = time.monotonic() + timeout
    pending = b""
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while (left := deadline - time.monotonic()) > 0:
            if not sel.select(left):
                continue
            block = os.read(fd, 65536)
            if not block:
                break
            *lines, pending = (pending + block).split(b"\n")
            for line in lines:
                if wanted(line.decode("utf-8", "replace")):
                    return line.decode("utf-8", "replace")
    why = "its output ended" if time.monotonic() < deadline else f"nothing within {timeout:.0f} s"
    report = hang_report(proc.pid, ()) if proc.poll() is None else ""
    proc.kill()
    _, err = proc.communicate()
    pytest.fail(f"castoff never printed the awaited line ({why})\n{report}\n--- stderr ---\n{err[-3000:]}")


def hang_report(pid: int, servers: Iterable[Server]) -> str:
    """Where castoff ``pid`` is (py-spy dump of every thread), whether each server answers and,
    for an rclone started with debug=True, where its goroutines are."""
    lines = ["--- py-spy dump of castoff ---", py_spy_dump(pid)]
    for server in servers:
        lines += [f"--- {server!r} ---", probe(server.port)]
        if isinstance(server, RcloneServer):
            lines.append(server.goroutines())
    return "\n".join(lines)


def py_spy_dump(pid: int) -> str:
    exe = Path(sys.executable).with_name("py-spy")
    spy = str(exe) if exe.exists() else shutil.which("py-spy")
    if spy is None:
        return "(py-spy not found)"
    try:
        done = subprocess.run(
            [spy, "dump", "--pid", str(pid)], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"(py-spy failed: {exc})"
    return done.stdout + done.stderr


def probe(port: int, timeout: float = 10.0) -> str:
    """Whether the server on 127.0.0.1:``port`` answers GET / (and how fast)."""
    t0 = time.monotonic()
    try:
        status, _ = _http(port, "GET", "/", timeout=timeout)
    except (OSError, http.client.HTTPException) as exc:
        return f"127.0.0.1:{port}: no answer after {time.monotonic() - t0:.1f} s ({exc!r})"
    return f"127.0.0.1:{port}: HTTP {status} in {time.monotonic() - t0:.2f} s"


def s3_url(bucket: str, prefix: str, endpoint: str, **options: str) -> str:
    opts = {"endpoint": endpoint, "region": "us-east-1", "addressing": "path", **options}
    return f"s3://{bucket}/{prefix}?" + "&".join(f"{k}={v}" for k, v in opts.items())


def keys(access: str, secret: str) -> dict[str, str]:
    return env_with(AWS_ACCESS_KEY_ID=access, AWS_SECRET_ACCESS_KEY=secret)
