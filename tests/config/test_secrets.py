"""Which keyring backends castoff trusts with a secret: never a plaintext file, and a backend keyring
itself does not recommend only when the user named it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import keyring
import pytest

from castoff import errors
from castoff.config import secrets
from keyring_backend import FileKeyring, LowPriorityKeyring


@pytest.fixture(autouse=True)
def own_keyring(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A keyring file and keyring config folder of the test's own; keyring's choice restored after."""
    before = keyring.get_keyring()
    monkeypatch.delenv("PYTHON_KEYRING_BACKEND", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("CASTOFF_TEST_KEYRING", str(tmp_path / "keyring.json"))
    yield tmp_path / "keyring.json"
    keyring.set_keyring(before)


PAIR = secrets.KeyPair("AKIAEXAMPLE", "SECRET-NOT-TO-BE-WRITTEN")


def test_a_plaintext_backend_is_refused_like_no_keyring(own_keyring: Path) -> None:
    plaintext = type("PlaintextKeyring", (FileKeyring,), {"__module__": "keyrings.alt.file", "priority": 0.5})
    keyring.set_keyring(plaintext())
    ok, name = secrets.keyring_backend()
    assert not ok and name.startswith("keyrings.alt.file.PlaintextKeyring") and "plain file" in name
    with pytest.raises(errors.UsageError, match="no OS keyring is available here") as refused:
        secrets.store("ark", PAIR)
    assert refused.value.hint == secrets.NO_KEYRING_HINT
    assert not own_keyring.exists()
    assert secrets.load("ark") is None


def test_a_backend_keyring_does_not_recommend_is_used_only_when_named(
    own_keyring: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    keyring.set_keyring(LowPriorityKeyring())  # picked by priority, for want of a better one
    ok, name = secrets.keyring_backend()
    assert not ok and "PYTHON_KEYRING_BACKEND" in name
    with pytest.raises(errors.UsageError, match="no OS keyring is available here"):
        secrets.store("ark", PAIR)
    assert not own_keyring.exists()

    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring_backend.LowPriorityKeyring")
    assert secrets.keyring_backend() == (True, "keyring_backend.LowPriorityKeyring")
    monkeypatch.delenv("PYTHON_KEYRING_BACKEND")
    rc = tmp_path / "xdg" / "python_keyring" / "keyringrc.cfg"
    rc.parent.mkdir(parents=True)
    rc.write_text("[backend]\ndefault-keyring = keyring_backend.LowPriorityKeyring\n")
    assert secrets.keyring_backend()[0]
    secrets.store("ark", PAIR)
    assert secrets.load("ark") == PAIR


def test_the_suites_file_backend_is_trusted_and_named(own_keyring: Path) -> None:
    keyring.set_keyring(FileKeyring())
    assert secrets.keyring_backend() == (True, "keyring_backend.FileKeyring")
    assert secrets.keyring_title() == "keyring backend FileKeyring"
