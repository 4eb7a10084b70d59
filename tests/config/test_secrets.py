"""Which keyring backends castoff trusts with a secret: never a plaintext file, and a backend keyring
itself does not recommend only when the user named it."""

from __future__ import annotations

import time
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


def _alive(pid: int) -> bool:
    """Whether ``pid`` is a process that has not ended (a zombie has ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def test_a_credential_command_past_its_time_is_stopped_with_its_children(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unattended, a command that hangs (here a script whose child sleeps) is stopped whole: the
    job says so, and no child of it is left running."""
    monkeypatch.setattr(secrets, "COMMAND_TIMEOUT", 0.5)
    monkeypatch.setattr("sys.stdin", None)
    pidfile = tmp_path / "child.pid"
    with pytest.raises(errors.UsageError) as caught:
        secrets.from_command(f"sh -c 'sleep 30 & echo $! > {pidfile}; wait'")
    assert "did not finish within 0.5 s: stopped it" in caught.value.message
    assert "waiting for input" in (caught.value.hint or "")
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)


def test_a_credential_command_that_cannot_start_says_why() -> None:
    with pytest.raises(errors.UsageError) as caught:
        secrets.from_command("/nonexistent/creds --json")
    assert "'/nonexistent/creds' could not run: No such file or directory" in caught.value.message
    assert "full path" in (caught.value.hint or "")
