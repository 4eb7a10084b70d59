"""Two castoff processes adding to one ASC MHL history at once (two cards offloaded to one drive
from two readers): one generation after the other, never a broken chain."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from castoff import errors
from castoff.reports import mhl
from reports.test_mhl import ascmhl, assert_valid

SRC = Path(__file__).resolve().parents[2] / "src"

#: ``python -c WRITER ROOT WHO N``: N generations of one new file each, as fast as they go
WRITER = """
import sys, time
from pathlib import Path
from castoff.reports import mhl
root, who, n = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
(root / who).mkdir()
for i in range(n):
    f = root / who / f"{i}.txt"
    f.write_text(f"{who} {i}")
    st, xxh = f.stat(), mhl.xxh128_of_file(str(f))
    entry = mhl.Entry(f"{who}/{i}.txt", st.st_size, st.st_mtime_ns, xxh, None, time.time())
    mhl.write_generation(root, iter([entry]), started=time.time())
"""


def test_two_processes_adding_generations_at_once_leave_one_history(tmp_path: Path, ascmhl_bin: Path) -> None:
    """QA: two jobs at once on one drive took the same generation number, wrote the same hidden
    files and dropped each other's: the chain named a manifest that was not there, or one whose C4
    was another's, and every later job and ``castoff verify`` refused the drive's history."""
    root = tmp_path / "shuttle"
    root.mkdir()
    n = 30
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(root), who, str(n)],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for who in ("a", "b")
    ]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    gens = mhl.read_chain(root)  # every manifest there, with the C4 the chain records
    assert [g.number for g in gens] == list(range(1, 2 * n + 1))
    assert not list((root / mhl.FOLDER).glob(".*"))  # no hidden file left
    assert_valid(root)
    v = ascmhl(ascmhl_bin, "ascmhl-debug", "verify", "-v", str(root))
    assert v.returncode == 0, v.stdout + v.stderr


def test_a_history_held_by_another_castoff_is_waited_for_then_said(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "shuttle"
    (root / "a.txt").parent.mkdir()
    (root / "a.txt").write_text("a")
    st = (root / "a.txt").stat()
    entry = mhl.Entry("a.txt", st.st_size, st.st_mtime_ns, mhl.xxh128_of_file(str(root / "a.txt")), None, 0.0)
    monkeypatch.setattr(mhl, "LOCK_WAIT", 0.3)
    holder = subprocess.Popen(  # another process holds the history (its own open of the folder)
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDONLY);"
            " fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)",
            str(root),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        began = time.monotonic()
        with pytest.raises(errors.HistoryError, match="another castoff has been writing"):
            mhl.write_generation(root, iter([entry]), started=time.time())
        assert time.monotonic() - began >= 0.3  # it waited
        assert not (root / mhl.FOLDER).exists()  # and wrote nothing
    finally:
        holder.kill()
        holder.wait()
    assert mhl.write_generation(root, iter([entry]), started=time.time()) is not None  # let go: written
    fd = os.open(root, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # and not held after
    finally:
        os.close(fd)
