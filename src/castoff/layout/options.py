"""The layout and metadata options of ``castoff copy``, checked before anything is read or written.

``add_arguments`` declares them; ``planner_from_args`` turns them into the engine's Planner or
raises UsageError (exit 2).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from castoff import errors
from castoff.layout.template import LAYOUTS, TOKENS, layout_template

if TYPE_CHECKING:  # (imported where used: the parser, built for every command, needs no planner)
    from castoff.layout.planner import Planner

#: the choices of --name-rules and --metadata (``LayoutOptions`` holds the one given)
NAME_RULES = ("auto", "windows", "posix")
METADATA_MODES = ("object", "sidecar", "both")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("organise and preserve (see README: Layouts and metadata)")
    g.add_argument(
        "--layout",
        choices=tuple(LAYOUTS),
        help="none keeps the source's folders (default); date YYYY-MM-DD/, month YYYY-MM/,"
        " device (camera make and model), type (Photos, RAW, Video, Audio, Sidecars, Other)",
    )
    g.add_argument(
        "--template",
        metavar="TEMPLATE",
        help="a custom layout, e.g. '{YYYY}/{MM}-{shoot}/{device}/{name}'; tokens: "
        + " ".join("{" + t + "}" for t in TOKENS),
    )
    g.add_argument("--shoot", metavar="NAME", help="the shoot name, for {shoot}")
    g.add_argument(
        "--safe-names",
        action="store_true",
        help="on FAT/exFAT/NTFS/SMB, write names those cannot hold with look-alike characters"
        " (reported) instead of failing those files",
    )
    g.add_argument(
        "--name-rules",
        choices=NAME_RULES,
        default="auto",
        help="which names a local destination can hold: auto (from its filesystem type, default),"
        " windows, posix",
    )
    g.add_argument(
        "--metadata",
        choices=METADATA_MODES,
        default="object",
        help="buckets: capture date, device, original path as object metadata (default), as a"
        " <key>.castoff.json sidecar object, or both; what does not fit goes to the sidecar",
    )
    g.add_argument(
        "--xattrs", action="store_true", help="copy user.* extended attributes to local destinations"
    )


def planner_from_args(args: argparse.Namespace) -> Planner:
    from castoff.layout.planner import LayoutOptions, Planner

    template = layout_template(args.layout, args.template)
    shoot = args.shoot or ""
    if "shoot" in template.tokens and not shoot:
        raise errors.UsageError("the template uses {shoot}: give the shoot's name with --shoot NAME")
    if shoot and not shoot.strip():  # QA: --shoot ' ' made a folder named " "
        raise errors.UsageError(
            f"--shoot {shoot!r}: a shoot name must not be blank",
            hint="give its name, like --shoot 2026-05-wedding",
        )
    if shoot and ("/" in shoot or shoot.strip() in (".", "..") or "\x00" in shoot):
        raise errors.UsageError(
            f"--shoot {shoot!r}: a shoot name is one folder name", hint="use the template for folders"
        )
    return Planner(
        LayoutOptions(
            template=template,
            shoot=shoot,
            safe_names=args.safe_names,
            name_rules=args.name_rules,
            metadata=args.metadata,
            xattrs=args.xattrs,
        )
    )
