"""Fixtures for the report tests: the castoff command, a card with hostile names, the ascmhl tool."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from reports.kit import ASCMHL_VENV, XSS, write


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def cli(state: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "castoff", "--state-dir", str(state), *args],
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
            # wide: what is said is checked as text, and the paths of tests run by pytest-xdist are longer
            env={**os.environ, "COLUMNS": "400", **(env or {})},
        )

    return run


@pytest.fixture
def card(tmp_path: Path) -> Path:
    """A small card: a RAW-sized file, a clip, a name that is HTML, odd characters, and OS junk."""
    src = tmp_path / "A001_CARD"
    rng = random.Random(11)
    write(src / "DCIM" / "100CANON" / "IMG_0001.CR3", rng.randbytes(1_500_000))
    write(src / "DCIM" / "100CANON" / XSS, rng.randbytes(1000))
    write(src / "PRIVATE" / "M4ROOT" / "CLIP" / "C0001.MP4", rng.randbytes(3_000_000))
    write(src / "odd" / "a b & 'c' \"d\" #%?+ é.txt", b"odd")
    write(src / "empty.txt", b"")
    write(src / "DCIM" / ".DS_Store", b"junk")
    return src


@pytest.fixture(scope="session")
def ascmhl_bin() -> Path:
    """The reference ASC MHL tool (ascmhl 1.2) in its own virtualenv, made by scripts/bootstrap.sh."""
    bin_dir = ASCMHL_VENV / "bin"
    if not (bin_dir / "ascmhl").exists() or not (bin_dir / "ascmhl-debug").exists():
        pytest.fail(
            f"the reference ascmhl tool is missing ({bin_dir}/ascmhl): run `bash scripts/bootstrap.sh`"
            " (or `make venv`) once, with PyPI reachable, to create .venv-ascmhl",
            pytrace=False,
        )
    return bin_dir
