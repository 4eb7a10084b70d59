"""What the config commands share: the config file and resolver of this invocation, and the copy
parser whose options workflows store.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text

from castoff.config import workflows
from castoff.ui.term import Console, Warnings, printable

if TYPE_CHECKING:  # (imported where used: the parser, built for every command, needs no config file)
    from castoff.config.resolve import Resolver
    from castoff.config.store import ConfigFile

#: copy's S3 options that a saved bucket keeps (``dest add`` takes them as copy does), by the
#: name of the setting in the config file (the s3:// URL option names)
S3_FLAGS: Mapping[str, str] = {
    "endpoint_url": "endpoint",
    "region": "region",
    "storage_class": "storage_class",
    "sse": "sse",
    "sse_kms_key_id": "sse_kms_key_id",
    "addressing": "addressing",
    "profile": "profile",
    "part_size": "part_size",
    "max_parallel": "max_parallel",
    "max_parallel_small": "max_parallel_small",
    "checksums": "checksums",
    "verify_download": "verify_download",
    "ca_bundle": "ca_bundle",
    "insecure_http": "insecure_http",
    "bwlimit": "bwlimit",
}


def print_list(
    args: argparse.Namespace,
    as_json: object,
    *,
    title: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[str]],
    empty: str,
) -> int:
    """What the list commands print: JSON with --json, else a table, or how to add a first one.
    The title and cells are Text, not markup: a path may hold [ ]."""
    if getattr(args, "json", False):
        print(json.dumps(as_json, indent=2))
        return 0
    console = Console()
    if not rows:
        console.print(empty, highlight=False)
        return 0
    from rich.table import Table

    table = Table(title=Text(title, style="table.title"))
    for col in columns:
        table.add_column(col, overflow="fold")  # a narrow terminal wraps a path, never cuts it
    for row in rows:
        # a newline or an escape in a saved value would split the row or drive the terminal
        table.add_row(*(Text(printable(str(cell))) for cell in row))
    console.print(table)
    return 0


def config_path(args: argparse.Namespace) -> Path:
    from castoff.config.store import default_path

    given = getattr(args, "config", None)
    return Path(given).expanduser() if given else default_path()


@functools.cache
def copy_parser() -> argparse.ArgumentParser:
    """``castoff copy``'s parser: the one list of options that workflows store."""
    from castoff.cli import build_parser

    return workflows.subparser(build_parser(), "copy")


def check_option(name: str, value: object) -> str | None:
    return workflows.check_option(copy_parser(), name, value)


def config_file(args: argparse.Namespace, *, warn: bool = True) -> ConfigFile:
    """The config file, checked; what stops only some commands is said as a warning."""
    from castoff.config.store import ConfigFile

    cfg = ConfigFile.load(config_path(args), check_option)
    for text in cfg.warnings if warn else ():
        Warnings.say(text)
    return cfg


def config_locked(args: argparse.Namespace) -> contextlib.AbstractContextManager[None]:
    """Around a command that changes the config: from its first read of the file to its write."""
    from castoff.config.store import locked

    path = config_path(args)
    console = Console(stderr=True)
    return locked(
        path,
        waiting=lambda: console.print(
            f"waiting for another castoff that is changing {path}…", highlight=False, soft_wrap=True
        ),
    )


def resolver(args: argparse.Namespace) -> Resolver:
    from castoff.config.resolve import Resolver

    return Resolver(
        config_path(args),
        insecure_http=bool(getattr(args, "insecure_http", False)),
        warn=Warnings.say,
        check_option=check_option,
    )
