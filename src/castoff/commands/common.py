"""What the config commands share: the config file and resolver of this invocation, and the copy
parser whose options workflows store.
"""

from __future__ import annotations

import argparse
import functools
from pathlib import Path

from rich.console import Console

from castoff.config import workflows
from castoff.config.resolve import Resolver
from castoff.config.store import ConfigFile, default_path


def config_path(args: argparse.Namespace) -> Path:
    given = getattr(args, "config", None)
    return Path(given).expanduser() if given else default_path()


@functools.cache
def copy_parser() -> argparse.ArgumentParser:
    """``castoff copy``'s parser: the one list of options that workflows store."""
    from castoff.cli import build_parser

    return workflows.subparser(build_parser(), "copy")


def check_option(name: str, value: object) -> str | None:
    return workflows.check_option(copy_parser(), name, value)


def config_file(args: argparse.Namespace) -> ConfigFile:
    return ConfigFile.load(config_path(args), check_option)


def resolver(args: argparse.Namespace) -> Resolver:
    console = Console(stderr=True)
    return Resolver(
        config_path(args),
        insecure_http=bool(getattr(args, "insecure_http", False)),
        warn=lambda text: console.print(f"[yellow]warning:[/] {text}", highlight=False, soft_wrap=True),
        check_option=check_option,
    )
