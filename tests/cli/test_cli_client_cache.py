"""A read-back on an rclone mount that caches writes reads the copy on this computer's disk, not
the server's (QA L #1): castoff says so where it says how a copy was verified, and once in the
job's output, with what to do; it does not refuse the job.

The mount is a folder the mount table says is ``fuse.rclone`` (``CASTOFF_MOUNT_TABLE``: rclone is
not installed by make test), served by a process that looks like rclone's to castoff (its command
line: ``rclone mount REMOTE: POINT --vfs-cache-mode MODE``)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from castoff_cli import Castoff
from engine_runner import write


@pytest.fixture
def rclone_mount(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str], list[subprocess.Popen[bytes]]]]:
    point = tmp_path / "rsmb"
    point.mkdir()
    table = tmp_path / "mounts"
    table.write_text(Path("/proc/mounts").read_text() + f"nas: {point} fuse.rclone rw,nosuid,nodev 0 0\n")
    daemons: list[subprocess.Popen[bytes]] = []
    yield point, {"CASTOFF_MOUNT_TABLE": str(table)}, daemons
    for d in daemons:
        d.kill()
        d.wait()


def _rclone(point: Path, mode: str | None) -> subprocess.Popen[bytes]:
    """A process whose command line is an rclone mount's of ``point`` (it only sleeps)."""
    flags = [] if mode is None else ["--vfs-cache-mode", mode]
    code = "import time; time.sleep(120)"
    return subprocess.Popen(
        ["rclone", "-c", code, "mount", "nas:share", str(point), *flags], executable=sys.executable
    )


@pytest.mark.parametrize(
    ("mode", "method"),
    [
        (
            "writes",
            "read-back blake3 of rclone's cache on this computer (--vfs-cache-mode writes), not the server",
        ),
        (None, "read-back blake3"),  # rclone's default: off, reads the server
        ("off", "read-back blake3"),
    ],
)
def test_a_read_back_from_rclones_cache_is_not_called_a_plain_read_back(
    rclone_mount: tuple[Path, dict[str, str], list[subprocess.Popen[bytes]]],
    tmp_path: Path,
    mode: str | None,
    method: str,
) -> None:
    point, env, daemons = rclone_mount
    daemons.append(_rclone(point, mode))
    card = tmp_path / "card"
    write(card / "IMG_0001.JPG", b"one")
    write(card / "IMG_0002.JPG", b"two")
    castoff = Castoff(tmp_path / "user", env=env)
    done = castoff("copy", str(card), "--to", str(point / "shoots"), "--no-mhl")
    assert done.returncode == 0, done.stderr
    report = json.loads(next((castoff.state / "reports").glob("*.json")).read_text())
    assert {f["destinations"][0]["verify_method"] for f in report["files"]} == {method}
    said = [line for line in done.stderr.splitlines() if "not proven on the server" in line]
    if mode == "writes":
        assert len(said) == 1, done.stderr
        assert "--vfs-cache-mode off" in said[0] and "s3://" in said[0]
    else:
        assert said == [], done.stderr


def test_an_rclone_mount_served_by_no_process_seen_here_may_answer_from_its_cache(
    rclone_mount: tuple[Path, dict[str, str], list[subprocess.Popen[bytes]]], tmp_path: Path
) -> None:
    """Where castoff cannot see the rclone process (another user's, another container's), it
    cannot tell the cache mode: it says the cache may answer."""
    point, env, _ = rclone_mount
    write(tmp_path / "card" / "IMG_0001.JPG", b"one")
    castoff = Castoff(tmp_path / "user", env=env)
    done = castoff("copy", str(tmp_path / "card"), "--to", str(point), "--no-mhl")
    assert done.returncode == 0, done.stderr
    assert "rclone's cache on this computer, maybe (its --vfs-cache-mode is not known here)" in done.stderr
    tested = castoff("dest", "test", str(point))
    assert "not proven on the server" in tested.stdout + tested.stderr
