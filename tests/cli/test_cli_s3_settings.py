"""S3 settings that cannot work are refused up front, with words a user can act on (QA pass b)."""

from __future__ import annotations

from pathlib import Path

import pytest

from castoff_cli import Castoff
from engine_runner import write

ENDPOINT = "http://127.0.0.1:9"  # nothing is sent: every refusal here comes before a request


@pytest.fixture
def card(tmp_path: Path) -> Path:
    write(tmp_path / "card" / "a.txt", b"a")
    return tmp_path / "card"


def refused(r: object, *words: str) -> str:
    said = r.stdout + r.stderr  # type: ignore[attr-defined]
    assert r.returncode == 2, said  # type: ignore[attr-defined]
    assert "Traceback" not in said and "invalid literal" not in said, said
    for w in words:
        assert w in said, said
    return str(said)


def test_max_parallel_has_an_upper_limit_everywhere(tmp_path: Path, card: Path) -> None:
    """Before: --max-parallel 100000 died with "can't start new thread" (the job left interrupted),
    and max_parallel=5000 took 140 s for one small file."""
    castoff = Castoff(tmp_path / "user")
    ssd = tmp_path / "ssd"
    url = f"s3://raw-bucket/p/?endpoint={ENDPOINT}"
    refused(
        castoff("copy", str(card), "--to", url, "--to", str(ssd), "--max-parallel", "100000"), "at most 256"
    )
    refused(castoff("copy", str(card), "--to", f"{url}&max_parallel=5000", "--to", str(ssd)), "at most 256")
    refused(
        castoff("copy", str(card), "--to", f"{url}&max_parallel_small=257"),
        "max_parallel_small",
        "at most 256",
    )
    refused(castoff("workflow", "save", "w", "--to", str(ssd), "--max-parallel", "300"), "at most 256")
    refused(
        castoff(
            "dest",
            "add",
            "x",
            "s3",
            "--bucket",
            "raw-bucket",
            "--endpoint",
            ENDPOINT,
            "--max-parallel",
            "1000",
            "--access-key-id",
            "AKIAEXAMPLE",
            "--secret-stdin",
            input="s\n",
        ),
        "at most 256",
    )
    castoff.config.parent.mkdir(parents=True, exist_ok=True)
    castoff.config.write_text(
        f'[destinations.big]\ntype = "s3"\nbucket = "raw-bucket"\nendpoint = "{ENDPOINT}"\n'
        "max_parallel = 5000\n"
    )
    refused(castoff("copy", str(card), "--to", "@big", "--to", str(ssd)), "max_parallel", "at most 256")
    assert not ssd.exists()


def test_max_parallel_not_a_number_says_what_is_expected(tmp_path: Path, card: Path) -> None:
    """Before: ``(invalid literal for int() with base 10: 'x')``."""
    castoff = Castoff(tmp_path / "user")
    r = castoff("copy", str(card), "--to", f"s3://raw-bucket/p/?endpoint={ENDPOINT}&max_parallel=x")
    refused(r, "bad value for max_parallel: 'x'", "a whole number from 1 to 256")
