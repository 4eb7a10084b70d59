"""What a command imports before it does anything: every run pays its start-up (a ``castoff jobs``
in a script, each ``dest test``), so a module that a command does not use is not loaded for it.
The modules are those castoff imports where they are used (function-level imports)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from castoff_cli import Castoff
from engine_runner import write

#: castoff's command in this process, then the modules it loaded (one JSON line after its output)
MODULES_AFTER = """
import json, sys
from castoff.cli import main
code = main(sys.argv[1:])
print("\\nMODULES " + json.dumps(sorted(sys.modules)))
"""

#: what building the parser (so every command) does without: the catalog, the layout planner and
#: the destinations it drives, the config file's reader (tomlkit), tables, the HTML report
NOT_FOR_THE_PARSER = (
    "castoff.catalog.db",
    "castoff.catalog.prune",
    "castoff.layout.planner",
    "castoff.destinations.local",
    "castoff.config.store",
    "castoff.config.resolve",
    "castoff.reports",
    "rich.table",
    "tomlkit",
    "jinja2",
    "platformdirs",
    "secrets",
)
#: what listing the catalog's jobs or uploads does without
NOT_FOR_A_LISTING = (
    "castoff.layout.planner",
    "castoff.config.store",
    "castoff.reports.html",
    "tomlkit",
    "jinja2",
)


def _modules(castoff: Castoff, *args: str) -> set[str]:
    done = castoff.run([sys.executable, "-c", MODULES_AFTER, *args])
    assert done.returncode == 0, done.stderr
    line = done.stdout.rsplit("\nMODULES ", 1)[1]
    return set(json.loads(line))


def _loaded(modules: set[str], names: tuple[str, ...]) -> list[str]:
    """Those of ``names`` (a package: or any module of it) that are in ``modules``."""
    return sorted(m for m in modules if any(m == n or m.startswith(n + ".") for n in names))


def test_version_loads_no_module_it_does_not_use(tmp_path: Path) -> None:
    modules = _modules(Castoff(tmp_path / "user"), "--version")
    assert "castoff.cli" in modules  # (the command did run in that process)
    assert _loaded(modules, NOT_FOR_THE_PARSER) == []


@pytest.mark.parametrize("command", [["jobs"], ["uploads"], ["jobs", "--json"]])
def test_listing_the_catalog_reads_no_config_plans_no_layout(tmp_path: Path, command: list[str]) -> None:
    modules = _modules(Castoff(tmp_path / "user"), *command)
    assert "castoff.catalog.db" in modules
    assert _loaded(modules, NOT_FOR_A_LISTING) == []


def test_a_copy_to_folders_reads_no_config_file(tmp_path: Path) -> None:
    """A copy that names no saved destination (@NAME) never reads the config (tomlkit), and one to
    folders only needs no S3 client."""
    card = tmp_path / "card"
    write(card / "DCIM" / "IMG_0001.JPG", b"jpeg")
    modules = _modules(Castoff(tmp_path / "user"), "copy", str(card), "--to", str(tmp_path / "d"), "--quiet")
    assert (tmp_path / "d" / "card" / "DCIM" / "IMG_0001.JPG").read_bytes() == b"jpeg"
    assert "castoff.engine.job" in modules
    assert _loaded(modules, ("tomlkit", "boto3", "castoff.destinations.s3")) == []


def test_testing_a_folder_loads_no_s3_client(tmp_path: Path) -> None:
    """``castoff dest test FOLDER``: boto3 (a fifth of a second to import) is for buckets."""
    (tmp_path / "d").mkdir()
    modules = _modules(Castoff(tmp_path / "user"), "dest", "test", str(tmp_path / "d"))
    assert "castoff.commands.dest" in modules
    assert _loaded(modules, ("boto3", "botocore", "castoff.destinations.s3")) == []
