"""The config file: saved destinations and workflows in human-editable TOML, checked on load.

Every problem names the file, the line and the key. Edits keep the user's comments (tomlkit) and
replace the file atomically, so a crash never leaves half a config behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import tempfile
import tomllib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from castoff import errors

if TYPE_CHECKING:  # (tomlkit is imported where a config is read: a copy to folders needs none)
    from tomlkit.items import Table

HEADER = """\
castoff configuration: saved destinations and workflows. Edit it freely: castoff checks it
on every load and names the line of anything wrong. Secrets are never stored here (they
live in the OS keyring); see 'castoff dest --help' and 'castoff workflow --help'.
"""

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
CREDENTIAL_MODES = ("chain", "keyring", "ask", "command")
#: S3 settings written as in an s3:// URL's options (one vocabulary for both)
S3_URL_KEYS = (
    "endpoint",
    "region",
    "provider",
    "storage_class",
    "sse",
    "sse_kms_key_id",
    "addressing",
    "profile",
    "part_size",
    "max_parallel",
    "max_parallel_small",
    "checksums",
    "verify_download",
    "ca_bundle",
    "conditional",
    "bwlimit",
)
S3_OWN_KEYS = ("bucket", "prefix", "credentials", "access_key_id", "credential_command", "insecure_http")
#: a local destination's folder, and the mount point and filesystem type it was on when saved
LOCAL_KEYS = ("path", "mounted_on", "filesystem")
WORKFLOW_KEYS = ("to", "source", "options", "description")

#: checks one workflow option (name, value): None when fine, else what is wrong
OptionCheck = Callable[[str, object], str | None]


class ConfigError(errors.UsageError):
    """Something in the config file is wrong; the message names the file, line and key."""

    code = "config"


def default_path() -> Path:
    env = os.environ.get("CASTOFF_CONFIG")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_config_dir("castoff", appauthor=False)) / "config.toml"


def check_name(name: str, what: str) -> str:
    if not NAME_RE.fullmatch(name):
        raise errors.UsageError(
            f"{what} name {name!r} is not allowed",
            hint="use letters, digits, '.', '_' and '-' (at most 64, starting with a letter or digit)",
        )
    return name


@dataclass(frozen=True)
class SavedDestination:
    """One ``[destinations.NAME]`` table: ``kind`` is local or s3; ``settings`` the rest as written."""

    name: str
    kind: str
    settings: Mapping[str, Any]

    @property
    def credentials(self) -> str:
        return str(self.settings.get("credentials", "chain"))


@dataclass(frozen=True)
class Workflow:
    """One ``[workflows.NAME]`` table: destinations, an optional source, and copy options."""

    name: str
    to: tuple[str, ...]
    source: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    description: str | None = None


# --- where keys are ---------------------------------------------------------------------------


_HEADER_RE = re.compile(r"\s*\[\[?\s*(.+?)\s*\]\]?\s*(#.*)?$")
_KEY_RE = re.compile(r"""\s*("[^"]*"|'[^']*'|[A-Za-z0-9_.-]+)\s*=""")


def _split_key(text: str) -> tuple[str, ...]:
    parts = re.findall(r"""\s*("[^"]*"|'[^']*'|[^.]+)\s*(?:\.|$)""", text)
    return tuple(p.strip().strip("\"'") for p in parts if p.strip())


def key_lines(text: str) -> dict[tuple[str, ...], int]:
    """The line (1-based) where each table and key first appears, by its dotted path."""
    lines: dict[tuple[str, ...], int] = {}
    table: tuple[str, ...] = ()
    for number, line in enumerate(text.splitlines(), 1):
        header = _HEADER_RE.match(line)
        if header and not _KEY_RE.match(line):
            table = _split_key(header.group(1))
            lines.setdefault(table, number)
            continue
        key = _KEY_RE.match(line)
        if key:
            lines.setdefault((*table, *_split_key(key.group(1))), number)
    return lines


def _toml_problem(text: str) -> str:
    """Where and what is wrong, from Python's own strict TOML reader, for the mistakes tomlkit
    reports without a line (``KeyAlreadyPresent``)."""
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = re.fullmatch(r"(.*) \(at line (\d+), column \d+\)", str(exc))
        if found:
            return f", line {found.group(2)}: not valid TOML ({found.group(1)})"
        return f": not valid TOML ({exc})"
    return ": not valid TOML (a key or table is given twice)"


# --- the file ---------------------------------------------------------------------------------


class ConfigFile:
    """The config file: load and check it, and write changes back atomically."""

    def __init__(self, path: Path, text: str, check_option: OptionCheck | None = None) -> None:
        import tomlkit
        import tomlkit.exceptions

        self.path = path
        self.text = text
        self._check_option = check_option
        try:
            self.doc = tomlkit.parse(text)
        except tomlkit.exceptions.ParseError as exc:
            reason = str(exc).split(" at line")[0]
            if reason == "Unexpected character: '\\x00'":  # tomlkit's word for the end of the file
                reason = "the file ends inside a value: is a [, { or quote left open?"
            elif "\\u000a" in reason:  # tomlkit's word for a string the line ends in
                reason = "a string runs to the end of its line: is its closing quote missing?"
            raise ConfigError(
                f"{path}, line {exc.line}: not valid TOML ({reason})",
                hint="fix the file (https://toml.io) or move it away to start afresh",
            ) from None
        except tomlkit.exceptions.TOMLKitError:  # a table given twice that tomlkit finds only later
            raise ConfigError(
                f"{path}{_toml_problem(text)}",
                hint="fix the file (https://toml.io) or move it away to start afresh",
            ) from None
        self._lines = key_lines(text)
        self.destinations: dict[str, SavedDestination] = {}
        self.workflows: dict[str, Workflow] = {}
        #: (workflow, destination) of each ``@NAME`` a workflow names that is not saved: an error
        #: only when that workflow runs, so that the commands that repair it still load the file
        self.dangling: list[tuple[str, str]] = []
        self._load()

    @classmethod
    def load(cls, path: Path, check_option: OptionCheck | None = None) -> ConfigFile:
        """The file at ``path``, checked; an empty config when there is none yet."""
        text = ""
        if path.exists():
            try:
                # utf-8-sig: an editor's byte order mark (Windows Notepad) is not a TOML error
                text = path.read_text(encoding="utf-8-sig")
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(f"cannot read the config file {path}: {exc}") from exc
        return cls(path, text, check_option)

    # -- errors

    def error(self, key: Sequence[str], problem: str, hint: str | None = None) -> ConfigError:
        line = self.line_of(tuple(key))
        where = f", line {line}" if line else ""
        dotted = ".".join(key)
        return ConfigError(
            f"{self.path}{where}: {dotted}: {problem}",
            hint=hint or f"fix it in {self.path} (or 'castoff dest --help', 'castoff workflow --help')",
        )

    def dangling_error(self, workflow: str, destination: str) -> ConfigError:
        return self.error(
            ("workflows", workflow, "to"),
            f"no saved destination {destination!r}",
            f"save it again (castoff dest add {destination} …), or take it out of the workflow"
            f" (castoff workflow edit {workflow} --to …)",
        )

    @property
    def warnings(self) -> list[str]:
        """What is wrong in the file but stops only some commands (``castoff run`` of a workflow
        that names a destination no longer saved)."""
        return [
            f"{self.dangling_error(w, d).message}: 'castoff run {w}' fails until it is saved again"
            f" (castoff dest add {d} …) or taken out (castoff workflow edit {w} --to …)"
            for w, d in self.dangling
        ]

    def check_workflow(self, workflow: str) -> None:
        """Before a run: every saved destination the workflow names exists."""
        for w, d in self.dangling:
            if w == workflow:
                raise self.dangling_error(w, d)

    def line_of(self, key: tuple[str, ...]) -> int | None:
        """The line of ``key``, else of its nearest table; for an implicit table (``[a.b]`` only
        names ``a``), its first line."""
        within = [n for k, n in self._lines.items() if k[: len(key)] == key]
        if within:
            return min(within)
        while key and key not in self._lines:
            key = key[:-1]
        return self._lines.get(key) if key else None

    # -- loading

    def _load(self) -> None:
        data = self.doc.unwrap()
        for section in data:
            if section not in ("destinations", "workflows"):
                raise self.error(
                    (section,), "unknown section", "the sections are [destinations] and [workflows]"
                )
        for name, table in self._tables(data, "destinations").items():
            self.destinations[name] = self._destination(name, table)
        for name, table in self._tables(data, "workflows").items():
            self.workflows[name] = self._workflow(name, table)

    def _tables(self, data: Mapping[str, Any], section: str) -> dict[str, Mapping[str, Any]]:
        tables = data.get(section, {})
        if not isinstance(tables, dict):
            raise self.error((section,), f"must be a table ([{section}.NAME] sections)")
        for name, table in tables.items():
            if not isinstance(table, dict):
                raise self.error((section, name), f"must be a table: write it as [{section}.{name}]")
            if not NAME_RE.fullmatch(name):
                raise self.error((section, name), "the name may only use letters, digits, '.', '_' and '-'")
        return tables

    def _destination(self, name: str, table: Mapping[str, Any]) -> SavedDestination:
        key = ("destinations", name)
        kind = table.get("type")
        if kind not in ("local", "s3"):
            raise self.error((*key, "type"), f'must be "local" or "s3", not {kind!r}')
        allowed = ("type", *LOCAL_KEYS) if kind == "local" else ("type", *S3_OWN_KEYS, *S3_URL_KEYS)
        for k in table:
            if k not in allowed:
                raise self.error(
                    (*key, k), f"unknown setting for a {kind} destination", f"known: {', '.join(allowed)}"
                )
        settings = {k: v for k, v in table.items() if k != "type"}
        if kind == "local":
            self._need_str(key, settings, "path")
            self._need_str(key, settings, "mounted_on", required="filesystem" in settings)
            self._need_str(key, settings, "filesystem", required="mounted_on" in settings)
        else:
            self._check_s3(key, settings)
        return SavedDestination(name, str(kind), settings)

    def _need_str(
        self, key: tuple[str, ...], table: Mapping[str, Any], name: str, *, required: bool = True
    ) -> None:
        value = table.get(name)
        if value is None and not required:
            return
        if not isinstance(value, str) or not value.strip():
            raise self.error(
                (*key, name), "must be a non-empty string" if value is not None else "is missing"
            )

    def _check_s3(self, key: tuple[str, ...], settings: Mapping[str, Any]) -> None:
        from castoff.destinations import s3

        self._need_str(key, settings, "bucket")
        for name in ("prefix", "access_key_id", "credential_command"):
            if name in settings and not isinstance(settings[name], str):
                raise self.error((*key, name), "must be a string")
        if not isinstance(settings.get("insecure_http", False), bool):
            raise self.error((*key, "insecure_http"), "must be true or false")
        mode = settings.get("credentials", "chain")
        if mode not in CREDENTIAL_MODES:
            raise self.error(
                (*key, "credentials"), f"must be one of {', '.join(CREDENTIAL_MODES)}, not {mode!r}"
            )
        if mode == "ask":
            self._need_str(key, settings, "access_key_id")
        if mode == "command":
            self._need_str(key, settings, "credential_command")
        try:
            s3.check_bucket_chars(settings["bucket"])
        except errors.UsageError as exc:
            raise self.error((*key, "bucket"), exc.message, exc.hint) from None
        for name in S3_URL_KEYS:
            if name not in settings:
                continue
            value = settings[name]
            if isinstance(value, bool):
                value = "true" if value else "false"
            if not isinstance(value, str | int):
                raise self.error((*key, name), "must be a string, a number or true/false")
            try:
                s3.options_for(settings["bucket"], "", [(name, str(value))], said=f"@{key[-1]}")
            except errors.UsageError as exc:
                raise self.error((*key, name), exc.message, exc.hint) from None

    def _workflow(self, name: str, table: Mapping[str, Any]) -> Workflow:
        key = ("workflows", name)
        for k in table:
            if k not in WORKFLOW_KEYS:
                raise self.error((*key, k), "unknown workflow setting", f"known: {', '.join(WORKFLOW_KEYS)}")
        to = table.get("to")
        if not isinstance(to, list) or not to or not all(isinstance(t, str) and t.strip() for t in to):
            raise self.error((*key, "to"), 'must be a list of destinations, like ["@ssd", "@archive"]')
        self.dangling += [
            (name, ref[1:]) for ref in to if ref.startswith("@") and ref[1:] not in self.destinations
        ]
        self._need_str(key, table, "source", required=False)
        self._need_str(key, table, "description", required=False)
        options = table.get("options", {})
        if not isinstance(options, dict):
            raise self.error((*key, "options"), "must be a table of copy options")
        for opt, value in options.items():
            problem = self._check_option(opt, value) if self._check_option else None
            if problem:
                raise self.error((*key, "options", opt), problem)
        return Workflow(name, tuple(to), table.get("source"), dict(options), table.get("description"))

    # -- saving

    def section(self, name: str) -> Table:
        import tomlkit
        from tomlkit.items import Table

        if name not in self.doc:
            self.doc[name] = tomlkit.table(is_super_table=True)
        table = self.doc[name]
        assert isinstance(table, Table)
        return table

    def put(self, section: str, name: str, values: Mapping[str, Any]) -> None:
        import tomlkit

        table = tomlkit.table()
        for k, v in values.items():
            if v is not None:
                table[k] = v
        self.section(section)[name] = table

    def update(self, section: str, name: str, values: Mapping[str, Any], unset: Sequence[str] = ()) -> None:
        """Change some keys of one table in place, keeping the user's comments around them."""
        from tomlkit.items import Table

        table = self.section(section)[name]
        assert isinstance(table, Table)
        for k, v in values.items():
            table[k] = v
        for k in unset:
            if k in table:
                del table[k]

    def remove(self, section: str, name: str) -> None:
        del self.section(section)[name]

    def rename(self, section: str, old: str, new: str) -> None:
        tables = self.section(section)
        tables[new] = tables[old]
        del tables[old]

    def save(self) -> None:
        """Check the new text as a fresh load would, then replace the file atomically."""
        import tomlkit

        text = tomlkit.dumps(self.doc)
        if not self.text.strip():
            text = "".join(f"# {line}\n" for line in HEADER.splitlines()) + "\n" + text.lstrip("\n")
        write_checked(self.path, text, self._check_option, self)


@contextlib.contextmanager
def locked(path: Path, waiting: Callable[[], None] = lambda: None) -> Iterator[None]:
    """Hold ``config.toml.lock`` beside the config exclusively, so that one castoff at a time reads,
    changes and writes it (two at once would each save what it read, losing the other's change).
    Readers need no lock: a save replaces the file whole. ``waiting`` is called when another
    castoff holds it, before waiting for it."""
    # beside the name castoff was given, not the file a link leads to: a dotfiles repository
    # holding the config gets no lock file in it
    lock = path.with_name(f"{path.name}.lock")
    try:
        lock.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise ConfigError(f"cannot lock the config file {path}: {exc.strerror or exc} ({lock})") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            waiting()
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # and with it the lock


def write_checked(
    path: Path, text: str, check_option: OptionCheck | None, before: ConfigFile | None = None
) -> None:
    """Write ``text`` to ``path`` atomically, after checking that it loads as a config and that
    it names no missing destination that ``before`` (the file as loaded) did not already name:
    a change may leave a dangling reference it did not make, or repair it, never make one. A
    config that is a link (into a dotfiles repository, say) stays one: the file it names is
    replaced, keeping its mode (a new file: 600)."""
    new = ConfigFile(path, text, check_option)
    for w, d in new.dangling:
        if before is None or (w, d) not in before.dangling:
            raise new.dangling_error(w, d)
    real = Path(os.path.realpath(path))
    try:
        mode = real.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o600
    real.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=".config-", suffix=".toml", dir=real.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, real)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
