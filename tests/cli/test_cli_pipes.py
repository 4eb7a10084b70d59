"""A reader of castoff's stdout that goes away (a monitoring script that ends, ``| head``): a copy
goes on to its normal end, a listing command ends quietly; no traceback either way."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
from pathlib import Path

import blake3

from castoff_cli import CASTOFF, run_castoff
from engine_runner import write


def _env() -> dict[str, str]:
    return {**os.environ, "COLUMNS": "200"}


def _stdout_closed(*args: str, state: Path, read_first: bool) -> tuple[int, str]:
    """Run castoff with stdout a pipe of one page that this test closes: after reading its first
    line (``read_first``), or before castoff writes anything. Its exit code and stderr."""
    proc = subprocess.Popen(
        [*CASTOFF, "--state-dir", str(state), *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env(),
    )
    assert proc.stdout is not None and proc.stderr is not None
    fcntl.fcntl(
        proc.stdout.fileno(), fcntl.F_SETPIPE_SZ, 4096
    )  # a few lines fill it: castoff must meet the close
    if read_first:
        assert proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read().decode()
    return proc.wait(120), err


def test_a_copy_whose_json_reader_goes_away_completes(tmp_path: Path) -> None:
    card = tmp_path / "card"
    for i in range(200):
        write(card / f"C{i:04}.MP4", os.urandom(2000 + i))
    state = tmp_path / "state"
    a, b = tmp_path / "a", tmp_path / "b"
    code, err = _stdout_closed(
        "copy", str(card), "--to", str(a), "--to", str(b), "--json", state=state, read_first=True
    )
    assert code == 0, err
    assert "Traceback" not in err and "Exception ignored" not in err, err
    assert err.count("stdout was closed") == 1, err  # said once, so the close was met
    for dest in (a, b):
        for f in card.iterdir():
            copy = dest / "card" / f.name
            assert blake3.blake3(copy.read_bytes()).digest() == blake3.blake3(f.read_bytes()).digest()
    jobs = json.loads(run_castoff("jobs", "--json", state=state).stdout)
    assert [(j["status"], j["exit_code"]) for j in jobs] == [("done", 0)]


def test_listing_commands_end_quietly_when_stdout_is_closed(tmp_path: Path) -> None:
    state = tmp_path / "state"
    card = tmp_path / "card"
    write(card / "a.txt", b"a")
    for i in range(3):
        assert run_castoff("copy", str(card), "--to", str(tmp_path / f"d{i}"), state=state).returncode == 0
    for args in (("jobs", "--all", "--json"), ("jobs",), ("completion", "bash")):
        code, err = _stdout_closed(*args, state=state, read_first=False)
        assert (code, err) == (141, ""), args  # 128 + SIGPIPE, as a shell reports for cat or ls
