"""Where a saved destination's keys come from: the OS keyring, a prompt, a command, or the AWS chain.

Secrets stay in memory and in the keyring only: never in the config file, the catalog, reports,
logs, process arguments or error messages. Without a secure keyring backend (none, or only a
plaintext file such as keyrings.alt's) castoff says so and never falls back to a file of its own.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from castoff import errors

if TYPE_CHECKING:
    from keyring.backend import KeyringBackend

SERVICE = "castoff"
COMMAND_TIMEOUT = 60.0

NO_KEYRING_HINT = (
    "castoff never writes secrets to a file of its own. Use instead: the environment"
    " (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY), an AWS profile (--profile, ~/.aws/credentials),"
    " a credential command (--credential-command), or --ask-secret to be asked at every run"
)


def no_keyring_hint(name: str) -> str:
    """``NO_KEYRING_HINT`` for ``castoff dest credentials NAME``, which takes none of those
    options: the saved bucket is saved again with one of them."""
    return (
        "castoff never writes secrets to a file of its own. Save the bucket again with another"
        f" way to its keys: castoff dest add {name} s3 … --replace --access-key-id ID --ask-secret"
        " (asked for at every run), or --credential-command CMD, or --profile PROFILE"
        " (~/.aws/credentials); the environment (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY) is"
        " used when no keyring is there"
    )


@dataclass(frozen=True, repr=False)
class KeyPair:
    """An access key id and its secret (and a session token for temporary credentials)."""

    access_key: str
    secret_key: str
    session_token: str | None = None

    def __repr__(self) -> str:
        return f"KeyPair({self.access_key[:4]}…, secret hidden)"

    __str__ = __repr__

    def to_json(self) -> str:
        return json.dumps(
            {"access_key": self.access_key, "secret_key": self.secret_key, "token": self.session_token}
        )


def account(destination: str) -> str:
    """The keyring's user name for a destination's keys (the service is always ``castoff``)."""
    return f"destination:{destination}"


# --- the keyring ------------------------------------------------------------------------------


#: backends refused even when named in PYTHON_KEYRING_BACKEND: no store at all (null drops secrets
#: silently), and files anyone who reads the disk reads (PlaintextKeyring only base64s a secret;
#: any class named Plaintext… too)
NO_STORE = ("keyring.backends.fail.Keyring", "keyring.backends.null.Keyring")
PLAINTEXT = ("keyrings.alt.file.PlaintextKeyring",)


def _qualified(backend: object) -> str:
    return f"{type(backend).__module__}.{type(backend).__name__}"


def _writer() -> KeyringBackend | None:
    """The backend a secret is written to: keyring's own choice, or the first a chainer tries."""
    import keyring
    from keyring.backends import chainer

    backend = keyring.get_keyring()
    if isinstance(backend, chainer.ChainerBackend):
        return backend.backends[0] if backend.backends else None
    return backend


def _named_by_user(backend: KeyringBackend) -> bool:
    """Whether the user named this backend (PYTHON_KEYRING_BACKEND, else keyringrc.cfg: where
    keyring itself looks first) rather than keyring picking it by priority."""
    from keyring import core

    try:
        named = core.load_env() or core.load_config()
    except (ImportError, AttributeError, RuntimeError):
        return False
    return type(named) is type(backend)


def keyring_backend() -> tuple[bool, str]:
    """Whether a secure keyring backend is in use here, and its name (with why, when it is not).

    keyring calls a priority below 1 not recommended, and picks such a backend (keyrings.alt's
    files) when there is nothing better: castoff takes one only when the user named it."""
    backend = _writer()
    if backend is None:
        return False, "keyring.backends.chainer.ChainerBackend, with nothing to chain"
    name = _qualified(backend)
    if name in NO_STORE:
        return False, name
    if name in PLAINTEXT or "Plaintext" in type(backend).__name__:
        return False, f"{name}, which keeps secrets in a plain file"
    if backend.priority < 1 and not _named_by_user(backend):
        return False, (
            f"{name}, which keyring picked for want of a secure one;"
            " name it in PYTHON_KEYRING_BACKEND to use it anyway"
        )
    return True, name


def keyring_title() -> str:
    """The keyring backend in use, as people call it (SecretService, macOS, Windows WinVaultKeyring)."""
    backend = _writer()
    return str(backend.name).removesuffix(" Keyring") if backend is not None else "none"


def _keyring_error(action: str, exc: Exception) -> errors.UsageError:
    # The backend's message never carries the secret, but say only its type to be sure.
    return errors.UsageError(
        f"the OS keyring refused to {action} ({type(exc).__name__})",
        hint="unlock the keyring (or log in to the desktop session) and try again",
    )


def require_keyring(hint: str = NO_KEYRING_HINT) -> None:
    ok, name = keyring_backend()
    if not ok:
        raise errors.UsageError(f"no OS keyring is available here ({name})", hint=hint)


def store(destination: str, pair: KeyPair) -> None:
    import keyring
    import keyring.errors

    require_keyring()
    try:
        keyring.set_password(SERVICE, account(destination), pair.to_json())
    except keyring.errors.KeyringError as exc:
        raise _keyring_error("store the keys", exc) from None


def load(destination: str) -> KeyPair | None:
    """The keys saved for ``destination``; None when there are none (or no keyring here)."""
    import keyring
    import keyring.errors

    if not keyring_backend()[0]:
        return None
    try:
        raw = keyring.get_password(SERVICE, account(destination))
    except keyring.errors.KeyringError as exc:
        raise _keyring_error("give the keys", exc) from None
    if raw is None:
        return None
    try:
        data = json.loads(raw)
        return KeyPair(str(data["access_key"]), str(data["secret_key"]), data.get("token"))
    except (ValueError, KeyError, TypeError):
        raise errors.UsageError(
            f"the keyring entry of {destination} is not castoff's",
            hint=f"set the keys again: castoff dest credentials {destination}",
        ) from None


def delete(destination: str) -> bool:
    """Forget the keys of ``destination``; False when there were none."""
    import keyring
    import keyring.errors

    if not keyring_backend()[0]:
        return False
    try:
        keyring.delete_password(SERVICE, account(destination))
    except keyring.errors.PasswordDeleteError:
        return False
    except keyring.errors.KeyringError as exc:
        raise _keyring_error("delete the keys", exc) from None
    return True


# --- asking -----------------------------------------------------------------------------------


def has_terminal() -> bool:
    return sys.stdin.isatty()


def ask_secret(
    prompt: str,
    why: str,
    *,
    hint: str,
    ask: Callable[[str], str] = getpass.getpass,
) -> str:
    """Read a secret from the terminal without echo; UsageError at once when there is none."""
    if not has_terminal():
        raise errors.UsageError(
            f"{why}, and there is no terminal to ask on (the run is unattended)", hint=hint
        )
    try:
        secret = ask(prompt)
    except EOFError:  # Ctrl-D: no answer, as an empty one
        print(file=sys.stderr)  # the message on a line of its own, not after the prompt
        secret = ""
    if not secret.strip():
        raise errors.UsageError("no secret was entered")
    return secret.strip()


def read_secret_stdin() -> str:
    line = sys.stdin.readline().strip()
    if not line:
        raise errors.UsageError("--secret-stdin: nothing was read from standard input")
    return line


# --- a credential command ---------------------------------------------------------------------


def _run_command(argv: list[str]) -> tuple[int, str]:
    """Run the command; past ``COMMAND_TIMEOUT`` stop it. Unattended (no terminal) it runs in a
    session of its own, and the whole session is stopped, so a script's children are not left
    behind; at a terminal it stays in castoff's, where a password prompt can reach the user."""
    attended = sys.stdin is not None and sys.stdin.isatty()
    try:
        proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=not attended,
        )
    except OSError as exc:
        raise errors.UsageError(
            f"the credential command {argv[0]!r} could not run: {exc.strerror or exc}",
            hint="give the command's full path, and check that it is executable",
        ) from None
    try:
        stdout, _ = proc.communicate(timeout=COMMAND_TIMEOUT)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if attended:
                proc.kill()
            else:
                os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        for pipe in (proc.stdout, proc.stderr):  # a child left behind may hold them: no read
            if pipe is not None:
                pipe.close()
        raise errors.UsageError(
            f"the credential command {argv[0]!r} did not finish within {COMMAND_TIMEOUT:g} s: stopped it",
            hint="run it yourself to see why (it may be waiting for input, which it never gets here)",
        ) from None
    return proc.returncode, stdout


def from_command(command: str) -> KeyPair:
    """Run a ``credential_process``-style command: it prints JSON with AccessKeyId and
    SecretAccessKey (and SessionToken). Its output is never shown, even when it is wrong."""
    argv = shlex.split(command)
    if not argv:
        raise errors.UsageError("the credential command is empty")
    returncode, stdout = _run_command(argv)
    if returncode != 0:
        raise errors.UsageError(
            f"the credential command {argv[0]!r} failed with exit code {returncode}",
            hint="run it yourself to see why",
        )
    expected = 'it must print {"Version": 1, "AccessKeyId": "...", "SecretAccessKey": "..."}'
    try:
        data = json.loads(stdout)
        pair = KeyPair(str(data["AccessKeyId"]), str(data["SecretAccessKey"]), data.get("SessionToken"))
    except (ValueError, KeyError, TypeError):
        raise errors.UsageError(
            f"the credential command {argv[0]!r} did not print the expected JSON", hint=expected
        ) from None
    version = data.get("Version")
    if version != 1 or isinstance(version, bool):  # as AWS's credential_process: Version 1 only
        said = (
            f"Version {version}"
            if isinstance(version, int) and not isinstance(version, bool)
            else ("no Version" if version is None else "a Version that is not a number")
        )  # never the value of anything else it printed
        raise errors.UsageError(
            f"the credential command {argv[0]!r} printed {said}: credential_process JSON is Version 1",
            hint=expected + " (the format of AWS's credential_process, whose only version is 1)",
        )
    return pair
