"""A keyring backend of the tests' own: a JSON file named by CASTOFF_TEST_KEYRING, so no test ever
touches the user's real keyring. Subprocesses load it with PYTHON_KEYRING_BACKEND=keyring_backend.FileKeyring
(tests/ on PYTHONPATH); in-process tests call keyring.set_keyring(FileKeyring())."""

from __future__ import annotations

import json
import os
from pathlib import Path

from keyring.backend import KeyringBackend
from keyring.errors import PasswordDeleteError


class FileKeyring(KeyringBackend):
    priority = 1  # type: ignore[assignment]

    @property
    def path(self) -> Path:
        return Path(os.environ["CASTOFF_TEST_KEYRING"])

    def _read(self) -> dict[str, str]:
        return json.loads(self.path.read_text()) if self.path.exists() else {}

    def _write(self, data: dict[str, str]) -> None:
        self.path.write_text(json.dumps(data))

    def get_password(self, service: str, username: str) -> str | None:
        return self._read().get(f"{service}/{username}")

    def set_password(self, service: str, username: str, password: str) -> None:
        data = self._read()
        data[f"{service}/{username}"] = password
        self._write(data)

    def delete_password(self, service: str, username: str) -> None:
        data = self._read()
        if data.pop(f"{service}/{username}", None) is None:
            raise PasswordDeleteError(username)
        self._write(data)


class LowPriorityKeyring(FileKeyring):
    """Ranked as keyrings.alt's file backends are: keyring picks it only when nothing better exists."""

    priority = 0.5  # type: ignore[assignment]
