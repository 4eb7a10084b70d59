"""What ``castoff copy`` makes of the sources it is given: a symlink named on the command line,
names that are not UTF-8, and a source with nothing to copy."""

from __future__ import annotations

from pathlib import Path

import pytest

from castoff_cli import run_castoff
from engine_runner import write


@pytest.mark.parametrize("slash", ["", "/"])
def test_a_source_named_as_a_symlink_is_followed_and_keeps_the_name_given(tmp_path: Path, slash: str) -> None:
    """As ``cp -H`` and rsync do: the link on the command line is followed; links inside the
    source stay governed by --follow-symlinks."""
    card = tmp_path / "card"
    write(card / "DCIM" / "a.jpg", b"from the card")
    (card / "DCIM" / "inside.jpg").symlink_to(card / "DCIM" / "a.jpg")
    link = tmp_path / "CARDLINK"
    link.symlink_to(card)
    out = tmp_path / "out"
    r = run_castoff("copy", f"{link}{slash}", "--to", str(out), state=tmp_path / "s")
    assert r.returncode == 0, r.stderr
    assert (out / "CARDLINK" / "DCIM" / "a.jpg").read_bytes() == b"from the card"
    assert not (out / "CARDLINK" / "DCIM" / "inside.jpg").exists()
    assert "CARDLINK/DCIM/inside.jpg: symlink (not followed; use --follow-symlinks)" in r.stderr


def test_a_source_named_as_a_dangling_symlink_is_a_usage_error(tmp_path: Path) -> None:
    link = tmp_path / "CARDLINK"
    link.symlink_to(tmp_path / "unmounted")
    r = run_castoff("copy", str(link), "--to", str(tmp_path / "out"), state=tmp_path / "s")
    assert r.returncode == 2
    assert f"source {link} is a symlink to {tmp_path / 'unmounted'}, which does not exist" in r.stderr
    assert not (tmp_path / "out").exists()
