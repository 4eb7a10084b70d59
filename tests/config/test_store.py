"""The config file: every problem names the file, line and key; edits keep comments; writes are atomic."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import pytest

from castoff.commands.common import check_option
from castoff.config.store import ConfigError, ConfigFile, key_lines, locked

GOOD = """\
# my studio's castoff config
[destinations.ssd]
type = "local"
path = "/mnt/ssd"   # the fast one

[destinations.archive]
type = "s3"
bucket = "studio-archive"
prefix = "raw/"
provider = "b2"
region = "us-west-004"
max_parallel = 8
credentials = "keyring"

[workflows.shoot]
to = ["@ssd", "@archive"]
source = "/media/EOS_DIGITAL"
options = { on_conflict = "skip", include = ["*.CR3"], rehash = true }
"""


def load(tmp_path: Path, text: str) -> ConfigFile:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return ConfigFile.load(path, check_option)


def test_a_good_config_loads(tmp_path: Path) -> None:
    cfg = load(tmp_path, GOOD)
    assert cfg.destinations["archive"].settings["max_parallel"] == 8
    assert cfg.workflows["shoot"].to == ("@ssd", "@archive")
    assert cfg.workflows["shoot"].options == {"on_conflict": "skip", "include": ["*.CR3"], "rehash": True}


# (what to replace in GOOD, with what, the line, the key, words of the problem)
BROKEN = [
    ('type = "local"', 'type = "ftp"', 3, "destinations.ssd.type", '"local" or "s3"'),
    ('path = "/mnt/ssd"', "path = 3", 4, "destinations.ssd.path", "non-empty string"),
    ('path = "/mnt/ssd"', 'paht = "/mnt/ssd"', 4, "destinations.ssd.paht", "unknown setting"),
    ("max_parallel = 8", "max_parallel = 0", 12, "destinations.archive.max_parallel", "1 or more"),
    (
        'region = "us-west-004"',
        'region = "us-west-004"\nsse = "rot13"',
        12,
        "destinations.archive.sse",
        "AES256",
    ),
    (
        'credentials = "keyring"',
        'credentials = "plaintext"',
        13,
        "destinations.archive.credentials",
        "one of",
    ),
    # a missing key: the line of its table
    ('credentials = "keyring"', 'credentials = "ask"', 6, "destinations.archive.access_key_id", "is missing"),
    ('bucket = "studio-archive"\n', "", 6, "destinations.archive.bucket", "is missing"),
    ('to = ["@ssd", "@archive"]', "to = []", 16, "workflows.shoot.to", "list of destinations"),
    ('on_conflict = "skip"', 'on_conflict = "clobber"', 18, "workflows.shoot.options.on_conflict", "one of"),
    ("rehash = true", 'rehash = "yes"', 18, "workflows.shoot.options.rehash", "true or false"),
    (
        "rehash = true",
        "frobnicate = 1",
        18,
        "workflows.shoot.options.frobnicate",
        "not an option of castoff copy",
    ),
    ('include = ["*.CR3"]', 'include = "*.CR3"', 18, "workflows.shoot.options.include", "must be a list"),
    ("[workflows.shoot]", "[workflow.shoot]", 15, "workflow", "unknown section"),
]


@pytest.mark.parametrize(("old", "new", "line", "key", "words"), BROKEN)
def test_errors_name_file_line_and_key(
    tmp_path: Path, old: str, new: str, line: int, key: str, words: str
) -> None:
    assert old in GOOD
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, GOOD.replace(old, new, 1))
    message = caught.value.message
    assert message.startswith(f"{tmp_path / 'config.toml'}, line {line}: {key}: "), message
    assert words in str(caught.value)
    assert caught.value.exit_code == 2


def test_syntax_errors_name_the_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, GOOD.replace('path = "/mnt/ssd"', 'path = "/mnt/ssd'))
    message = str(caught.value)
    assert "config.toml, line 4: not valid TOML (a string runs to the end of its line:" in message
    assert "u000a" not in message


def test_a_byte_order_mark_is_not_an_error(tmp_path: Path) -> None:
    """Windows Notepad begins a UTF-8 file with one; TOML does not allow it, castoff reads past it."""
    (tmp_path / "config.toml").write_bytes(b"\xef\xbb\xbf" + GOOD.encode())
    cfg = ConfigFile.load(tmp_path / "config.toml", check_option)
    assert "ssd" in cfg.destinations


def test_a_table_given_twice_names_the_line(tmp_path: Path) -> None:
    twice = GOOD.replace("options = { on_conflict", "[workflows.shoot.options]\n[workflows.shoot.options]\n#")
    with pytest.raises(ConfigError, match=r"config.toml, line 19: not valid TOML \(Cannot declare"):
        load(tmp_path, twice)  # tomlkit raises KeyAlreadyPresent for it, with no line


def test_a_file_that_ends_inside_a_value_says_so(tmp_path: Path) -> None:
    """tomlkit calls the end of the file "Unexpected character: '\\x00'"."""
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, '[workflows.x]\nfrom = "/mnt/card"\nto = [\n')
    message = str(caught.value)
    assert "line 3: not valid TOML (the file ends inside a value: is a [, { or quote left open?)" in message
    assert "x00" not in message


def test_key_lines_follow_tables_and_quoted_names() -> None:
    lines = key_lines('a = 1\n[x."my dest"]\n  b = 2 # c\n[[y]]\nc.d = 3\n')
    assert lines[("a",)] == 1
    assert lines[("x", "my dest")] == 2
    assert lines[("x", "my dest", "b")] == 3
    assert lines[("y", "c", "d")] == 5


def test_edits_keep_comments_and_leave_no_temp_files(tmp_path: Path) -> None:
    cfg = load(tmp_path, GOOD)
    (tmp_path / "config.toml").chmod(0o640)
    cfg.rename("destinations", "ssd", "fast")
    cfg.update("workflows", "shoot", {"to": ["@fast", "@archive"]})
    cfg.save()
    text = (tmp_path / "config.toml").read_text()
    assert "# my studio's castoff config" in text and "# the fast one" in text
    again = ConfigFile.load(tmp_path / "config.toml", check_option)
    assert set(again.destinations) == {"fast", "archive"}
    assert [p.name for p in tmp_path.iterdir()] == ["config.toml"]
    assert (tmp_path / "config.toml").stat().st_mode & 0o777 == 0o640  # the user's mode is kept


def test_a_config_that_is_a_link_stays_a_link(tmp_path: Path) -> None:
    dotfiles = tmp_path / "dotfiles"
    dotfiles.mkdir()
    (dotfiles / "castoff.toml").write_text(GOOD)
    (dotfiles / "castoff.toml").chmod(0o644)
    link = tmp_path / "config" / "config.toml"
    link.parent.mkdir()
    link.symlink_to(dotfiles / "castoff.toml")
    cfg = ConfigFile.load(link, check_option)
    cfg.remove("workflows", "shoot")
    cfg.save()
    assert link.is_symlink() and link.resolve() == dotfiles / "castoff.toml"
    assert "shoot" not in (dotfiles / "castoff.toml").read_text()
    assert (dotfiles / "castoff.toml").stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in dotfiles.iterdir()) == ["castoff.toml"]
    with locked(link):  # the lock too stays out of the repository
        pass
    assert sorted(p.name for p in dotfiles.iterdir()) == ["castoff.toml"]
    new = ConfigFile.load(tmp_path / "new" / "config.toml", check_option)
    new.put("destinations", "ssd", {"type": "local", "path": "/mnt/ssd"})
    new.save()
    assert (tmp_path / "new" / "config.toml").stat().st_mode & 0o777 == 0o600  # a new file: 600


def test_a_workflow_naming_a_missing_destination_stops_only_its_run(tmp_path: Path) -> None:
    """QA: one hand-deleted destination that a workflow named failed every load, so even the
    commands that would repair it (dest add, workflow edit, workflow remove) could not run."""
    cfg = load(tmp_path, GOOD.replace('to = ["@ssd", "@archive"]', 'to = ["@ssd", "@nas"]'))
    assert cfg.workflows["shoot"].to == ("@ssd", "@nas")
    where = f"{tmp_path / 'config.toml'}, line 16: workflows.shoot.to: no saved destination 'nas'"
    assert [w.split(": 'castoff run")[0] for w in cfg.warnings] == [where]
    assert "castoff dest add nas" in cfg.warnings[0] and "castoff workflow edit shoot" in cfg.warnings[0]
    with pytest.raises(ConfigError) as caught:
        cfg.check_workflow("shoot")
    assert caught.value.message == where
    cfg.update("workflows", "shoot", {"source": "/media/OTHER"})
    cfg.save()  # a change that leaves it as it was is saved
    cfg = ConfigFile.load(tmp_path / "config.toml", check_option)
    cfg.put("destinations", "nas", {"type": "local", "path": "/mnt/nas"})
    cfg.save()  # and one that repairs it
    assert not ConfigFile.load(tmp_path / "config.toml", check_option).warnings


def test_a_save_that_would_not_load_changes_nothing(tmp_path: Path) -> None:
    cfg = load(tmp_path, GOOD)
    cfg.remove("destinations", "archive")  # still used by the workflow
    with pytest.raises(ConfigError, match="no saved destination 'archive'"):
        cfg.save()
    assert (tmp_path / "config.toml").read_text() == GOOD
    assert [p.name for p in tmp_path.iterdir()] == ["config.toml"]


def test_no_config_file_is_an_empty_config(tmp_path: Path) -> None:
    cfg = ConfigFile.load(tmp_path / "none" / "config.toml", check_option)
    assert not cfg.destinations and not cfg.workflows
    assert not (tmp_path / "none").exists()


def test_one_castoff_at_a_time_holds_the_config_lock(tmp_path: Path) -> None:
    path = tmp_path / "castoff" / "config.toml"
    waited: list[bool] = []
    with locked(path):
        fd = os.open(tmp_path / "castoff" / "config.toml.lock", os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):  # another process's flock, as a second open is
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)
    with locked(path, waiting=lambda: waited.append(True)):  # released: taken at once
        pass
    assert not waited
