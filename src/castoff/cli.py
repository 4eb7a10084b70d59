"""The ``castoff`` command line: parse, hand over to the engine, show progress, exit with a code.

Thin on purpose: every decision about files and bytes is the engine's.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import json
import os
import signal
import sqlite3
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, NoReturn

from rich.text import Text

from castoff import __version__, commands, errors
from castoff.commands import prune as prune_cli
from castoff.destinations.base import MiB
from castoff.layout import options as layout_options
from castoff.ui.term import (
    Console,
    GuardedStdout,
    Warnings,
    json_ascii,
    printable,
    stream_gone,
    tolerant,
    write_failed,
)
from castoff.units import format_bytes, parse_size, plural

if TYPE_CHECKING:
    from castoff.catalog.db import Catalog, IntentRow, UploadRow
    from castoff.destinations.base import Destination
    from castoff.engine.job import JobResult
    from castoff.layout.planner import Planner
    from castoff.layout.template import Template
    from castoff.reports.finish import Finished

EPILOG = """exit codes: 0 every file verified at every destination; 1 some file failed somewhere
(the others were delivered), or a copy castoff verified earlier is damaged (kept, beside a good
one); 2 usage or configuration error, another job copying the same source to the same destination
right now, no destination that could be used at all, or no file to copy (an empty source, or
filters that left every file out), or a stdout that cannot take a command's output (a full
disk); 130 interrupted (re-run to resume). A closed or failing stdout (| head, a full disk) never
stops a copy; a listing command ends with 141 when its reader goes away (| head)."""

COPY_EXAMPLES = """examples:
  castoff copy /media/EOS_DIGITAL --to /mnt/ssd/shoots --to /mnt/nas/shoots
  castoff copy /media/EOS_DIGITAL --to @ssd --to @archive        (saved destinations: castoff dest add)
  castoff copy /media/EOS_DIGITAL --to 's3://my-archive/raw/?region=eu-west-1&storage_class=GLACIER_IR'

"""

#: the jobs ``castoff jobs`` lists unless told otherwise (--limit, --all)
JOBS_SHOWN = 50

JOBS_EXAMPLES = """examples:
  castoff jobs
  castoff jobs --all --json
  castoff jobs show 20261121-2359
  castoff jobs prune --keep 30 --dry-run     (what would go; nothing deleted)
  castoff jobs prune --keep 30               (forget the per-file history of all but the 30 newest jobs)
  castoff jobs prune --older-than 90d        (... of jobs started more than 90 days ago)
  castoff jobs prune --keep 10 --older-than 30d   (only jobs both allow)
  castoff jobs prune --keep 30 --reports     (and delete those jobs' reports in the state folder)

A pruned job is still listed, with its file count and bytes, and its report files stay unless
--reports; re-runs skip, hash and write ASC MHL exactly as before (what is verified where is
never pruned)."""


def state_dir(arg: str | None) -> Path:
    if arg:
        return Path(arg).expanduser()
    env = os.environ.get("CASTOFF_HOME")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_state_dir("castoff", appauthor=False))


def _no_catalog_yet(path: Path) -> Catalog:
    """For a command that only reads: an empty catalog, where a state folder castoff cannot write
    holds none yet (nothing was ever recorded there), made in a temporary folder removed at exit."""
    import atexit
    import shutil
    import tempfile

    from castoff.catalog.db import Catalog

    scratch = tempfile.mkdtemp(prefix="castoff-empty-")
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    Console(stderr=True).print(
        f"note: there is no catalog in {path.parent}, which castoff cannot write: nothing was recorded there",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    return Catalog(Path(scratch) / "catalog.sqlite")


def open_catalog(args: argparse.Namespace, *, reading: bool = False) -> Catalog:
    """The catalog of the state folder. ``reading``: a command that only reads it, which reads a
    catalog castoff cannot write (a backup on a read-only mount, someone else's) as it is, saying
    so on stderr; a command that writes it is refused (``UsageError``, exit 2)."""
    from castoff.catalog.db import Catalog

    path = state_dir(args.state_dir) / "catalog.sqlite"
    try:
        return Catalog(path)
    except errors.UsageError as exc:
        cause = exc.__cause__
        unwritable = "readonly" in str(cause) or "read-only" in str(cause)
        if not (reading and (unwritable or not os.access(path.parent, os.W_OK))):
            raise
        if not path.is_file():
            if path.exists() or not path.parent.is_dir():  # (its own error says what is in the way)
                raise
            return _no_catalog_yet(path)
    catalog = Catalog(path, read_only=True)
    unread = f"; its -wal file ({path}-wal), the latest changes, cannot be read" if catalog.wal_unread else ""
    Console(stderr=True).print(
        f"note: the catalog {path} is opened read-only (castoff cannot write it): nothing is recorded,"
        f" and a job a killed castoff left running still shows as running{unread}",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    return catalog


class BadOptionValue(argparse.ArgumentTypeError, ValueError):
    """An option's value refused by its type: argparse says the message as it is (exit 2), and a
    workflow's saved value is refused with it too (``config.workflows`` catches ValueError)."""


def parallel_count(text: str) -> int:
    """``--max-parallel``: 1 to MAX_PARALLEL; 0 is refused as -3 is, and as ``?max_parallel=0``
    in an s3:// URL is, not taken as "not given"; 100000 is refused before a thread starts."""
    from castoff.destinations.s3 import MAX_PARALLEL

    try:
        n = int(text)
    except ValueError:
        raise BadOptionValue(f"{text!r} is not a whole number (use 1 to {MAX_PARALLEL})") from None
    if n < 1:
        raise BadOptionValue(f"must be 1 or more, not {n}")
    if n > MAX_PARALLEL:
        raise BadOptionValue(f"must be at most {MAX_PARALLEL} (requests at once per bucket), not {n}")
    return n


class Parser(argparse.ArgumentParser):
    """castoff's parsers (its sub-commands' too: argparse makes them of the parent's class): an
    option is never taken from its first letters (``--inc`` for --include: an option added later
    would change what an old script means), and a mistyped choice gets the close one suggested."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    #: a stdout that could not take the help or version argparse printed (``Parser._print_message``)
    unwritten: OSError | None = None

    def _print_message(self, message: str, file: Any = None) -> None:
        """argparse's, without its ``except OSError: pass``: help that did not reach a full disk is
        remembered for ``_said_by_argparse``, which says so."""
        if not message:
            return
        out = file or sys.stderr
        try:
            out.write(message)
            out.flush()
        except BrokenPipeError:  # the reader had what it wanted (castoff --help | head -1)
            stream_gone(out)
        except OSError as exc:
            stream_gone(out)
            if out is sys.stdout:
                Parser.unwritten = exc

    def error(self, message: str) -> NoReturn:
        """argparse's (usage and message on stderr, exit 2), and with --json its ``error`` event."""
        ErrorEvent.say(errors.EXIT_USAGE, errors.UsageError.code, f"{self.prog}: {message}", None)
        super().error(message)

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        choices = action.choices
        if choices is not None and value not in choices and isinstance(value, str):
            close = difflib.get_close_matches(value, [str(c) for c in choices], n=1)
            if close:
                raise argparse.ArgumentError(
                    action, f"invalid choice: {value!r} (did you mean {close[0]!r}?)"
                )
        super()._check_value(action, value)

    def chosen(self, args: argparse.Namespace) -> argparse.ArgumentParser:
        """The parser of the (sub-)command ``args`` ran: ``castoff dest add``'s for dest add."""
        parser: argparse.ArgumentParser = self
        found = True
        while found:
            found = False
            for action in parser._actions:
                if isinstance(action, argparse._SubParsersAction):
                    name = getattr(args, action.dest, None)
                    if isinstance(name, str) and name in action.choices:
                        parser, found = action.choices[name], True
                        break
        return parser

    def parse_strictly(self, argv: Sequence[str]) -> argparse.Namespace:
        """``parse_args``, but an argument no parser knows is said by the command it was given to,
        with its usage, and with the close option if there is one (``--jsn``: did you mean --json?)."""
        args, extras = self.parse_known_args(argv)
        if extras:
            parser = self.chosen(args)
            known = [o for a in parser._actions for o in a.option_strings if o.startswith("--")]
            close = {
                typed: found[0]
                for x in extras
                if x.startswith("--")
                and (found := difflib.get_close_matches(typed := x.split("=", 1)[0], known, n=1))
            }
            said = "; ".join(f"{t}: did you mean {o}?" for t, o in close.items())
            if len(close) == 1:
                said = f"did you mean {next(iter(close.values()))}?"
            parser.error(f"unrecognized arguments: {' '.join(extras)}" + (f" ({said})" if said else ""))
        if getattr(args, "command", "") is None:  # plain ``castoff``: what it can do
            self.print_help()
            self.exit(errors.EXIT_USAGE)
        return args


def _from_catalog(read: Callable[[Catalog], Iterable[object]]) -> Callable[..., list[str]]:
    """A completer (argcomplete's) of what the catalog holds: job ids, upload numbers. It reads
    the catalog as it is, never makes one; nothing when there is none or it cannot be read."""

    def complete(prefix: str = "", parsed_args: Any = None, **_: Any) -> list[str]:
        from castoff.catalog.db import Catalog

        path = state_dir(getattr(parsed_args, "state_dir", None)) / "catalog.sqlite"
        if not path.is_file():
            return []
        try:
            catalog = Catalog(path, read_only=True)
            try:
                values = [str(v) for v in read(catalog)]
            finally:
                catalog.close()
        except Exception:  # noqa: BLE001 (completion must never fail loudly)
            return []
        return [v for v in values if v.startswith(prefix)]

    return complete


def build_parser() -> Parser:
    p = Parser(
        prog="castoff",
        description="Offload and back up files: read once, write everywhere, verify every byte.",
        epilog=EPILOG,
    )
    p.add_argument("--version", action="version", version=f"castoff {__version__}")
    p.add_argument(
        "--state-dir",
        help="where the catalog and reports live (default: CASTOFF_HOME or the user state folder)",
    )
    p.add_argument("--debug", action="store_true", help="show every decision and tracebacks")
    p.add_argument(
        "--config", metavar="FILE", help="the config file (default: CASTOFF_CONFIG or the user config folder)"
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    # The global options also work after the command (castoff copy … --debug).
    common = Parser(add_help=False)
    common.add_argument("--state-dir", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    common.add_argument("--config", default=argparse.SUPPRESS, help=argparse.SUPPRESS)

    c = sub.add_parser(
        "copy",
        parents=[common],
        help="copy sources to every destination, verified",
        epilog=COPY_EXAMPLES + EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    c.add_argument("sources", nargs="+", metavar="SOURCE", help="a file or folder (a card)")
    c.add_argument(
        "--to",
        dest="to",
        action="append",
        required=True,
        metavar="DEST",
        help="a folder, @NAME (a saved destination), or s3://bucket/prefix/?option=value...; repeat for more",
    )
    out = c.add_mutually_exclusive_group()
    out.add_argument("--quiet", "-q", action="store_true", help="print nothing but errors")
    out.add_argument("--json", action="store_true", help="one JSON event per line on stdout")
    c.add_argument(
        "--on-conflict",
        choices=("rename", "skip", "overwrite", "fail"),
        default="rename",
        help="when a different file is already at the target (default: rename,"
        " keeping both as 'name (2).ext')",
    )
    c.add_argument(
        "--include",
        action="append",
        default=[],
        metavar="GLOB",
        help="copy only matching files: a glob without a '/' matches the name, one with a '/' the path"
        " under the source, one that ends in '/' a folder ('DCIM/': the files inside any DCIM);"
        " case is ignored ('*.jpg' matches IMG_0001.JPG) unless --case-sensitive",
    )
    c.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="GLOB",
        help="leave matching files and folders out (matched as --include's globs)",
    )
    c.add_argument(
        "--case-sensitive",
        action="store_true",
        help="--include/--exclude globs match case exactly ('*.jpg' no longer matches IMG_0001.JPG);"
        " OS junk is matched whatever its case either way",
    )
    c.add_argument(
        "--keep-junk",
        action="store_true",
        help="also copy OS junk (.DS_Store, ._*, Thumbs.db, ..., in any case: THUMBS.DB too)",
    )
    c.add_argument(
        "--follow-symlinks",
        action="store_true",
        help="copy what symlinks inside the sources point to (a source named here is always followed)",
    )
    c.add_argument(
        "--rehash",
        action="store_true",
        help="ignore what the catalog knows: read and verify everything again",
    )
    c.add_argument(
        "--memory",
        default=None,
        help="in-flight memory budget (default 256M, or 224M with a bucket: its client needs room too)",
    )
    layout_options.add_arguments(c)
    rep = c.add_argument_group("reports and ASC MHL")
    rep.add_argument(
        "--report-to",
        choices=("local", "destination", "both"),
        default="local",
        help="local: the JSON and HTML reports stay in the state folder (default); destination or both:"
        " also into every destination's castoff-reports/ folder, verified, after its files",
    )
    rep.add_argument("--no-mhl", action="store_true", help="write no ASC MHL history into local destinations")
    rep.add_argument(
        "--mhl-source",
        action="store_true",
        help="also add an ASC MHL generation (in-place) to each source folder, when it is writable",
    )
    c.add_argument(
        "--chunk-size",
        default=None,
        help="how much of a file is read at a time, one buffer of --memory (64K to 1G; default 16M, or"
        " a bucket's part size below it). A bucket's part (--part-size) is at least one chunk",
    )
    s3 = c.add_argument_group("S3 defaults (per destination: s3://bucket/prefix/?option=value)")
    s3.add_argument("--endpoint-url", "--endpoint", help="S3 endpoint (default: AWS, or AWS_ENDPOINT_URL)")
    s3.add_argument("--region", help="the bucket's region, e.g. eu-west-1 (default: the profile's or AWS's)")
    s3.add_argument("--profile", help="AWS profile from the shared config files")
    s3.add_argument(
        "--storage-class", help="e.g. STANDARD_IA, GLACIER_IR, as the provider names them (default: its own)"
    )
    s3.add_argument("--sse", help="AES256 or aws:kms")
    s3.add_argument("--sse-kms-key-id")
    s3.add_argument(
        "--addressing",
        choices=("path", "virtual", "auto"),
        help="path: ENDPOINT/BUCKET/KEY; virtual: BUCKET.ENDPOINT/KEY (default: the provider's)",
    )
    s3.add_argument(
        "--part-size",
        help="a bucket's multipart part size, within its provider's limits (default: chosen per file);"
        " a file sent in larger parts than --chunk-size is read in them",
    )
    s3.add_argument(
        "--max-parallel",
        type=parallel_count,
        metavar="N",
        help="parts in flight per bucket (default 4, at most 256)",
    )
    s3.add_argument(
        "--bwlimit",
        help="upload bandwidth per bucket, e.g. 10M; a bare number is bytes/s (not KiB/s as in rclone);"
        " 0 or off: no limit",
    )
    s3.add_argument(
        "--max-parallel-small",
        type=parallel_count,
        metavar="N",
        help="small objects (up to 1 MiB) in flight per bucket (default 4 x --max-parallel, at most 256)",
    )
    s3.add_argument(
        "--ca-bundle", metavar="PEM", help="certificates of a private CA (TLS is always verified)"
    )
    s3.add_argument(
        "--insecure-http",
        action="store_true",
        help="allow plain http:// to another computer (the transfer is then unencrypted)",
    )
    s3.add_argument(
        "--checksums",
        choices=("when_required", "when_supported"),
        help="boto3's extra checksums (default: per provider)",
    )
    s3.add_argument(
        "--verify-download",
        action="store_true",
        help="read every object back and compare BLAKE3 (needs read permission)",
    )

    v = sub.add_parser(
        "verify",
        parents=[common],
        help="re-hash a folder against its ASC MHL history or a castoff report",
        epilog="exit codes: 0 every file matches; 1 some file is missing, altered or extra (with --report,"
        " or one the job never delivered there); 2 bad input.",
    )
    v.add_argument("path", metavar="PATH", help="a destination folder")
    v.add_argument("--report", metavar="JSON", help="check against this castoff JSON report, not ascmhl/")
    v.add_argument("--json", action="store_true", help="print the result as one JSON object")

    j = sub.add_parser(
        "jobs",
        parents=[common],
        help="list past jobs, show one, or prune old jobs' per-file history",
        epilog=JOBS_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    j.add_argument(
        "action",
        nargs="?",
        choices=("list", "show", "prune"),
        default="list",
        help="list: the newest jobs (the default); show: every file of one job and where it went;"
        " prune: forget old jobs' per-file history (options below)",
    )
    job_id = j.add_argument(
        "job_id", nargs="?", metavar="ID", help="the job to show: its id, or the start of it"
    )
    job_id.completer = _from_catalog(lambda c: [r["id"] for r in c.jobs(JOBS_SHOWN)])  # type: ignore[attr-defined]
    j.add_argument(
        "--json",
        action="store_true",
        help="print JSON: the jobs (list), the job's report (show), or what was pruned (prune)",
    )
    shown = j.add_mutually_exclusive_group()
    shown.add_argument(
        "--limit", type=int, metavar="N", help=f"list the N newest jobs (default {JOBS_SHOWN})"
    )
    shown.add_argument("--all", action="store_true", help="list every job")
    prune_cli.add_arguments(j)

    u = sub.add_parser(
        "uploads",
        parents=[common],
        help="unfinished multipart uploads the catalog knows",
        epilog="examples:\n  castoff uploads\n  castoff uploads abort 3 4\n"
        "  castoff uploads abort --all --older-than 7d",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    u.add_argument("action", nargs="?", choices=("list", "abort"), default="list")
    ids = u.add_argument("ids", nargs="*", help="upload numbers to abort (from 'castoff uploads')")
    ids.completer = _from_catalog(lambda c: [r.id for r in c.open_uploads()])  # type: ignore[attr-defined]
    u.add_argument("--all", action="store_true", help="abort: every listed upload (abort only)")
    u.add_argument("--older-than", help="only uploads older than this, e.g. 7d, 12h")
    u.add_argument(
        "--json",
        action="store_true",
        help="list: the uploads as one JSON array (id, destination, key, parts_done, parts_total, size,"
        " created_at, job_id)",
    )

    commands.register(sub, common)
    return p


def s3_defaults(args: argparse.Namespace) -> dict[str, object]:
    """The S3 options given as flags, by S3Options field name; per-URL options override them."""
    names = {
        "endpoint_url": "endpoint_url",
        "region": "region",
        "profile": "profile",
        "storage_class": "storage_class",
        "sse": "sse",
        "sse_kms_key_id": "sse_kms_key_id",
        "addressing": "addressing_style",
        "max_parallel": "max_parallel_parts",
        "max_parallel_small": "max_parallel_small",
        "checksums": "checksum_mode",
        "verify_download": "verify_download",
        "ca_bundle": "ca_bundle",
    }
    out: dict[str, object] = {}
    for arg, field in names.items():
        v = getattr(args, arg, None)
        if v not in (None, False):
            out[field] = v
    part = getattr(args, "part_size", None)
    if part:
        out["part_size"] = parse_size(part, what="--part-size")
    rate = getattr(args, "bwlimit", None)
    if rate:  # each bucket's own (bwlimit= in its URL, or saved) over it
        from castoff.engine.pacing import parse_rate

        out["bwlimit"] = parse_rate(rate)
    return out


class Interrupts:
    """First Ctrl-C / SIGTERM / SIGHUP (the terminal closed, an SSH session dropped): stop cleanly
    (the job stays resumable, its report is written). A second Ctrl-C or SIGTERM: stop now."""

    def __init__(self, cancel: threading.Event, console: Console) -> None:
        self.cancel = cancel
        self.console = console
        self.count = 0

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if signum == getattr(signal, "SIGHUP", None):
            # never "stop now": a hangup often comes twice (the terminal's, then the shell's to its
            # jobs), and no one insists; the report is written as for the first Ctrl-C
            if self.cancel.is_set():
                return
        else:
            self.count += 1
        if self.count > 1:
            raise KeyboardInterrupt
        self.cancel.set()
        self.console.print(
            "[yellow]Stopping… (the job can be resumed by running it again;"
            " press Ctrl-C again to quit at once)[/]"
        )

    def install(self) -> None:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, self)
            signal.signal(signal.SIGTERM, self)
            # not on Windows; under nohup (ignored) a hangup is left to do nothing, as asked
            if hasattr(signal, "SIGHUP") and signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:
                signal.signal(signal.SIGHUP, self)


def mark_dead_jobs(catalog: Catalog) -> None:
    """A job left 'running' by a process that is gone (killed, a second Ctrl-C), or whose process
    id another process has since (where the system tells), was interrupted."""
    from castoff.catalog.running import row_alive

    catalog.end_dead_jobs(row_alive)


#: the default in-flight budget; a job with a bucket gets 32 MiB less, because its S3 client (boto3,
#: botocore's models, the connection pool) adds about 25 MiB to the interpreter: with it, a job's
#: peak RSS stays under 300 MiB (README, "Speed, measured")
DEFAULT_MEMORY = 256 * MiB
BUCKET_CLIENT_ROOM = 32 * MiB


DEFAULT_CHUNK = "16M"


def chunk_for_parts(chunk: int, *, given: bool, dests: Sequence[Destination]) -> int:
    """A part is at least one chunk: a bucket's part size below the chunk size lowers the default
    chunk to it (QA: ``--part-size 5M`` gave 16 MiB parts, silently), or is said when the chunk
    size was given."""
    asked = {d.name: p for d in dests if (p := d.caps.preferred_part_size) and p < chunk}
    if not asked:
        return chunk
    if not given:
        return min(asked.values())
    for name, size in asked.items():
        Warnings.say(
            f"{name}: part size {format_bytes(size)} is below --chunk-size"
            f" {format_bytes(chunk)}: its parts will be {format_bytes(chunk)} (a part is at least one chunk)"
        )
    return chunk


def check_spelled_as_before(catalog: Catalog, dests: Sequence[Destination]) -> None:
    """A bucket castoff wrote before through another spelling of its endpoint (``localhost`` for
    ``127.0.0.1``, a default port written out): castoff's memory of the keys it put there, which
    keeps a later file from replacing one at a bucket without conditional writes, is kept under
    that spelling, so another one would write blind. Refused before anything is written."""
    from castoff.destinations.base import ident_place

    buckets = [d for d in dests if d.ident.startswith("s3:http")]
    if not buckets:
        return
    known: dict[str, list[str]] = {}
    for ident in catalog.bucket_idents():
        known.setdefault(ident_place(ident), []).append(ident)
    for d in buckets:
        before = [i for i in known.get(ident_place(d.ident), []) if i != d.ident]
        if before:
            now = d.ident.removeprefix("s3:").split("/", 3)
            then = before[0].removeprefix("s3:").split("/", 3)
            endpoint, earlier = "/".join(now[:3]), "/".join(then[:3])
            raise errors.UsageError(
                f"{d.name}: castoff wrote to this bucket through the endpoint {earlier} before, and"
                f" remembers the keys it put there under that spelling; through {endpoint} it would"
                " not know them, and could replace one",
                hint=f"write the endpoint as {earlier} (endpoint= in the URL, or in the saved destination)",
            )


def memory_budget(given: str | None, chunk: int, *, bucket: bool, default_chunk: bool = False) -> int:
    """``--memory`` as given (checked before against a given ``--chunk-size``; here, with
    ``default_chunk``, against the default one as the destinations' part sizes left it), or the
    default, smaller when a bucket is among the destinations."""
    if given is not None:
        memory = parse_size(given, what="--memory")
        if default_chunk and memory < 2 * chunk:
            raise errors.UsageError(
                f"--memory {given} is too small for the chunk size, {format_bytes(chunk)}: the default"
                " (--chunk-size was not given), and a memory budget holds at least two chunks",
                hint=f"give --memory {-(-2 * chunk // MiB)}M or more, or a smaller --chunk-size"
                f" (at most half of --memory, e.g. --chunk-size {max(memory // 2 // MiB, 1)}M)",
            )
        return memory
    memory = DEFAULT_MEMORY
    if bucket:
        memory -= BUCKET_CLIENT_ROOM
    if memory < 2 * chunk:
        raise errors.UsageError(
            f"the default memory budget ({format_bytes(memory)}) is too small"
            f" for --chunk-size {format_bytes(chunk)}",
            hint=f"give --memory {-(-2 * chunk // MiB)}M or more (two chunks), or a smaller --chunk-size",
        )
    return memory


def check_distinct(dests: Sequence[Destination]) -> None:
    """Two destinations that are one place, named twice or reached by two paths (a symlink, a
    bind mount), would count one copy as two: refused before anything is written."""
    from castoff.destinations.local import folder_identity

    named: dict[str, Destination] = {}
    folders: dict[tuple[int, int, tuple[str, ...]], Destination] = {}
    for d in dests:
        first = named.setdefault(getattr(d, "place", d.ident), d)
        if first is not d:
            both = d.name if first.name == d.name else f"{first.name} and {d.name}"
            if first.ident != d.ident and first.name == d.name:  # one server, two spellings
                at = [getattr(x, "endpoint_url", x.ident) for x in (first, d)]
                both += f" (at {at[0]} and {at[1]})"
            raise errors.UsageError(f"the same destination is named twice: {both}")
        root = getattr(d, "root", None)
        found = folder_identity(root) if isinstance(root, str) else None
        if found is None:
            continue
        first = folders.setdefault(found, d)
        if first is not d:
            raise errors.UsageError(
                f"{first.name} and {d.name} are the same folder: one copy, not two",
                hint="name it once; a second copy needs another folder, best on another drive",
            )


def tell_apart(dests: Sequence[Destination]) -> None:
    """Destinations that would show the same name (one bucket and prefix at two endpoints) name
    their endpoint, so the summary and the reports keep a row for each."""
    names = Counter(d.name for d in dests)
    for d in dests:
        show_where = getattr(d, "show_where", None)
        if names[d.name] > 1 and callable(show_where):
            show_where()


def check_outside_sources(dests: Sequence[Destination], sources: Sequence[str], template: Template) -> None:
    """No local destination may be inside a source, or hold a source folder where the layout
    would put its copy (``castoff copy n/card --to n``: each file's target is the file itself)."""
    from castoff.destinations.local import folder_identity

    for d in dests:
        root = getattr(d, "root", None)
        if not isinstance(root, str):
            continue
        for src in sources:
            real_src = os.path.realpath(src)
            real_root = os.path.realpath(root)
            if real_root == real_src or real_root.startswith(real_src.rstrip("/") + "/"):
                raise errors.UsageError(
                    f"destination {d.name} is inside the source {src}",
                    hint="choose a destination outside the source",
                )
            copy = os.path.join(root, os.path.basename(src))
            if (
                template.starts_with_card
                and os.path.isdir(src)
                and folder_identity(copy) == folder_identity(src)
            ):
                raise errors.UsageError(
                    f"the source {src} would land on itself: its copy at {d.name} would be {copy},"
                    " the source folder itself",
                    hint="choose a destination outside the source's folder",
                )


def check_options(args: argparse.Namespace) -> tuple[Planner, int]:
    """What copy checks of its own options before it looks at a source or a destination (the
    layout or template, --shoot, sizes, the bandwidth), so a workflow is checked when it is saved.
    The planner and the chunk size."""
    planner = layout_options.planner_from_args(args)  # a bad template stops here: nothing read yet
    chunk = parse_size(args.chunk_size or DEFAULT_CHUNK, what="--chunk-size")
    if chunk < 64 * 1024 or chunk > 1024 * MiB:
        raise errors.UsageError("--chunk-size must be between 64K and 1G")
    memory = None if args.memory is None else parse_size(args.memory, what="--memory")
    # (without --chunk-size, the default chunk is checked once the destinations' part sizes,
    # which can lower it, are known: memory_budget)
    if memory is not None and args.chunk_size is not None and memory < 2 * chunk:
        raise errors.UsageError(
            f"--memory {args.memory} is too small for --chunk-size {args.chunk_size}",
            hint="give at least two chunks",
        )
    if args.part_size:
        parse_size(args.part_size, what="--part-size")
    if args.bwlimit:
        from castoff.engine.pacing import parse_rate

        parse_rate(args.bwlimit)
    return planner, chunk


def _gone_after_release(args: argparse.Namespace) -> None:
    """A source that is not there, whose last job was released with a bucket left short: said so,
    with what finishes that job from the verified local copy (``commands/gone.py``); else nothing,
    and ``check_sources`` says the source does not exist."""
    missing = [s for s in args.sources if s and not os.path.lexists(os.path.abspath(s))]
    path = state_dir(args.state_dir) / "catalog.sqlite"
    if not missing or not path.is_file():
        return
    from castoff.catalog.db import Catalog
    from castoff.commands.gone import released_and_gone

    try:
        catalog = Catalog(path, read_only=True)
    except errors.CastoffError:
        return
    try:
        for given in missing:
            said = released_and_gone(catalog, os.path.abspath(given), given)
            if said is not None:
                raise said
    except (errors.CatalogError, sqlite3.Error):
        return
    finally:
        catalog.close()


def cmd_copy(
    args: argparse.Namespace,
    argv: Sequence[str],
    *,
    workflow: Mapping[str, Any] | None = None,
    given: Sequence[str] = (),
    notes: Sequence[str] = (),
) -> int:
    """``workflow``: the options a workflow's run copies with (``castoff run``), recorded with the
    job so that ``--resume`` finishes it as it ran; ``given``: those of them that its command line
    gave (or that of the run it resumes), not the workflow; ``notes``: said as warnings as the job
    starts, and kept in its log."""
    from castoff.commands.common import resolver
    from castoff.engine.job import Engine, JobOptions
    from castoff.engine.retry import RetryPolicy
    from castoff.layout.metasidecar import write_sidecars
    from castoff.reports.finish import FinishOptions, finish_job, write_mhl
    from castoff.reports.mhl_job import MhlOutcome
    from castoff.scan import Filters, check_sources
    from castoff.ui.progress import JsonDisplay, QuietDisplay, RichDisplay, summary_table

    console = Console(stderr=True)
    ErrorEvent.mark(args.json)  # (castoff run: a workflow's saved json)
    planner, chunk = check_options(args)
    _gone_after_release(args)
    sources = check_sources(args.sources, by_name="card" in planner.options.template.tokens)
    defaults = s3_defaults(args)
    if args.on_conflict == "overwrite":
        defaults["conditional_writes"] = False  # If-None-Match would refuse the overwrite
    dests_from = resolver(args)
    dests: list[Destination] = [dests_from.open(spec, s3_defaults=defaults) for spec in args.to]
    chunk = chunk_for_parts(chunk, given=args.chunk_size is not None, dests=dests)
    memory = memory_budget(
        args.memory,
        chunk,
        bucket=any(not d.caps.is_local for d in dests),
        default_chunk=args.chunk_size is None,
    )
    check_distinct(dests)
    tell_apart(dests)
    for d in dests:  # credentials are configuration: missing ones stop the job before any write
        if not d.caps.is_local:
            try:
                d.preflight()
            except errors.BadCredentials as exc:
                raise errors.UsageError(f"{d.name}: {exc.message}", hint=exc.hint) from exc
    check_outside_sources(dests, sources, planner.options.template)
    limiters: dict[str, object] = {}
    if args.bwlimit and all(d.caps.is_local for d in dests):  # harmless: said, not refused
        Warnings.say(
            f"--bwlimit {args.bwlimit} is ignored: it limits uploads to buckets, and every"
            " destination here is a folder"
        )
    if args.bwlimit:
        from castoff.engine.pacing import parse_rate

        limit = parse_rate(args.bwlimit)
        if limit is not None and limit < 1024:  # a bare number is bytes/s: rclone's is KiB/s
            Warnings.say(
                f"--bwlimit {args.bwlimit} is {limit} bytes per second per bucket, under 1 KiB/s:"
                f" a bare number is bytes per second (in rclone it is KiB/s); for KiB/s write"
                f" {args.bwlimit.strip()}K"
            )
    from castoff.engine.pacing import RateLimiter

    for d in dests:  # the bucket's own limit (saved, or bwlimit= in its URL), or --bwlimit
        rate = getattr(getattr(d, "options", None), "bwlimit", None)
        if not d.caps.is_local and isinstance(rate, int):
            limiters[d.ident] = RateLimiter(rate)

    from castoff.catalog.db import new_job_id
    from castoff.catalog.running import process_start, row_alive

    catalog = open_catalog(args)
    mark_dead_jobs(catalog)
    check_spelled_as_before(catalog, dests)
    job_id = new_job_id()
    options = JobOptions(
        chunk_size=chunk,
        memory_budget=memory,
        on_conflict=args.on_conflict,
        rehash=args.rehash,
        filters=Filters(
            include=tuple(args.include),
            exclude=tuple(args.exclude),
            skip_junk=not args.keep_junk,
            follow_symlinks=args.follow_symlinks,
            ignore_case=not args.case_sensitive,
        ),
        retry=RetryPolicy(),
        planner=planner,
    )
    recorded = [
        # spec and s3 (no secrets in either) let 'castoff uploads abort' reopen the destination
        {"name": d.name, "ident": d.ident, "kind": d.caps.kind, "spec": spec, "s3": json.dumps(defaults)}
        for d, spec in zip(dests, args.to, strict=True)
    ]
    for entry, d in zip(recorded, dests, strict=True):
        region = getattr(d, "region", None)  # a bucket's: the reports name it for AWS's own endpoint
        if isinstance(region, str):
            entry["region"] = region
    try:
        catalog.start_job(
            job_id,
            argv=list(argv),
            sources=sources,
            destinations=recorded,
            options={
                "on_conflict": args.on_conflict,
                "memory": memory,
                "chunk_size": chunk,
                **(
                    {"workflow": dict(workflow), "workflow_given": sorted(given)}
                    if workflow is not None
                    else {}
                ),
            },
            pid=os.getpid(),
            proc_start=process_start(os.getpid()),
            # another live job on an overlapping source and the same destination: refused (exit 2)
            alive=row_alive,
        )
    except BaseException:
        for d in dests:
            d.close()
        catalog.close()
        raise
    catalog.wait_longer()  # started: another process that holds the catalog is waited for longer
    cancel = threading.Event()
    engine_box: dict[str, Any] = {}

    def stats() -> dict[str, dict[str, int]]:
        eng = engine_box.get("engine")
        if eng is None:
            return {}
        return {ln.name: dict(vars(ln.stats)) for ln in eng.lanes}

    display = (
        JsonDisplay(stats, said_before=Warnings.take())
        if args.json
        else QuietDisplay(stats)
        if args.quiet
        else RichDisplay(stats, console=console, debug=args.debug)
    )
    finish_options = FinishOptions(
        report_to=args.report_to, mhl=not args.no_mhl, mhl_source=args.mhl_source, filters=options.filters
    )
    mhl_written: list[list[MhlOutcome]] = []  # once written, at release

    def at_release() -> dict[str, object]:
        """The local destinations' ASC MHL (and the card's, with --mhl-source) once every local
        copy is verified, before the job says the card can be ejected: the card's needs the card,
        and a job that dies after the word (or while its uploads go on) leaves the drives with
        their history. One not written is said with the word, before the card goes."""
        outcomes = write_mhl(catalog, job_id, dests, sources, finish_options, down=engine.down())
        mhl_written.append(outcomes)
        return {"mhl_not_written": [o.scope for o in outcomes if not o.ok]}

    engine = Engine(
        catalog,
        job_id,
        dests,
        options,
        sink=display,
        cancel=cancel,
        limiters=limiters,
        on_released=at_release,
        notes=notes,
    )
    engine_box["engine"] = engine
    Interrupts(cancel, console).install()
    started = time.monotonic()
    display.start()
    try:
        try:
            result = engine.run(sources)
            write_sidecars(
                catalog, job_id, dests, planner.options.metadata, result, cancel=cancel, log=engine.log
            )
        except errors.CatalogError as exc:
            # the job stops (what it delivered stays delivered): failed, when the catalog can still
            # say so; else the next command finds it dead and calls it interrupted
            with contextlib.suppress(errors.CatalogError):
                catalog.end_job(job_id, status="failed", exit_code=exc.exit_code)
            raise
        finally:
            display.close()
        catalog.end_job(job_id, status=result.status, exit_code=result.exit_code)
        finished = finish_job(
            catalog,
            job_id,
            dests,
            sources=sources,
            reports_dir=state_dir(args.state_dir) / "reports",
            options=finish_options,
            cancel=cancel,
            mhl_written=mhl_written[0] if mhl_written else None,
            down=engine.down(),
            unused=engine.unused(),
        )
    finally:
        for d in dests:
            d.close()
    report = finished.json
    # a job "done" with exit code 1 delivered every file, beside a damaged copy it found
    files_failed = (
        result.exit_code == errors.EXIT_FAILED
        and result.status == "failed"
        and (result.files_failed or not result.folders_failed)
    )
    damaged = sum(s.get("damaged", 0) for s in result.lanes.values())
    damaged_files = damaged and _damaged_files(catalog, job_id)
    if finished.problems and result.status == "done":
        result.exit_code, result.status = errors.EXIT_FAILED, "failed"
        catalog.end_job(job_id, status="failed", exit_code=result.exit_code)
    elapsed = time.monotonic() - started
    if args.json:
        event = __import__("castoff.engine.events", fromlist=["Event"]).Event
        for o in finished.mhl:
            if o.ok and o.manifest is None and o.message.startswith("ASC MHL not written"):
                # a history asked for and not written (a read-only card): said as in text mode
                # (a failed one is among the problems)
                display(event("log", {"level": "warning", "message": f"{o.scope}: {o.message}"}))
        display(
            event(
                "job-end",
                {
                    "job_id": job_id,
                    "status": result.status,
                    "exit_code": result.exit_code,
                    "report": str(report),
                    "report_html": str(finished.html),
                    "mhl": [o.manifest for o in finished.mhl if o.manifest],
                    "report_copies": finished.copies,
                    "problems": finished.problems,
                    "files": result.files,
                    "bytes": result.bytes,
                    "vanished": result.vanished,
                    "seconds": round(elapsed, 3),
                    "destinations": result.lanes,
                    "empty_folders_made": result.folders_made,
                    "empty_folders_failed": result.folders_failed,
                },
            )
        )
        # the person's side on stderr (``--json > events.jsonl 2> offload.log``): how it ended,
        # where the report is and what could not be written (the warnings and errors said as they came)
        console.print(
            f"job {job_id}: {result.status} (exit code {result.exit_code}), {plural(result.files, 'file')},"
            f" {format_bytes(result.bytes)} in {elapsed:.1f}s",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        _say_partial(console, catalog, job_id)
        _say_vanished(console, result)
        console.print(f"report: {report}", markup=False, highlight=False, soft_wrap=True)
        for text in finished.problems:
            console.print(text, style="red", highlight=False, markup=False, soft_wrap=True)
    elif args.quiet:
        for text in finished.problems:
            console.print(text, style="red", highlight=False, markup=False, soft_wrap=True)
        if damaged:
            text = _damaged_text(
                damaged_files, damaged, delivered=not files_failed, where="named in the report"
            )
            console.print(text, style="yellow", highlight=False, soft_wrap=True)
    else:
        console.print(summary_table(result.lanes, _locations(dests)))
        console.print(
            f"job {job_id}: {result.status}, {plural(result.files, 'file')}, {format_bytes(result.bytes)}"
            f" in {elapsed:.1f}s ({_read_text(result, elapsed)})"
        )
        _say_partial(console, catalog, job_id)
        _say_vanished(console, result)
        if result.folders_made:
            console.print(_folders_text(result.folders_made), markup=False, highlight=False, soft_wrap=True)
        console.print(f"report: {report}", markup=False, highlight=False, soft_wrap=True)
        console.print(f"html report: {finished.html}", markup=False, highlight=False, soft_wrap=True)
        for o in finished.mhl:
            if o.ok:  # a failed one is among the problems
                console.print(f"{o.scope}: {o.message}", markup=False, soft_wrap=True)
        for text in finished.copies:
            console.print(f"report copy: {text}", highlight=False, markup=False, soft_wrap=True)
        for text in finished.problems:
            console.print(text, style="red", highlight=False, markup=False, soft_wrap=True)
        if result.no_destination:
            console.print(
                "[red]No destination could be used, so nothing was written (the reasons are above)."
                " Fix them, then re-run the same command.[/]"
            )
        elif files_failed:
            for text in _failed_text(catalog, job_id):
                console.print(text, style="red", markup=False, highlight=False, soft_wrap=True)
        elif result.folders_failed:
            n = result.folders_failed
            console.print(
                f"[red]Every file reached every destination, verified; {n} empty folder"
                f"{'s were' if n != 1 else ' was'} not made (above). Fix that, then re-run the same"
                " command: it makes only what is missing.[/]",
                highlight=False,
            )
        elif finished.problems and result.exit_code == errors.EXIT_FAILED:
            console.print(f"[red]{_not_written(finished)}[/]", highlight=False)
        if damaged:
            console.print(
                _damaged_text(
                    damaged_files,
                    damaged,
                    delivered=not files_failed and not finished.problems,
                    where="named above and in the report",
                ),
                style="bold yellow",
                highlight=False,
                soft_wrap=True,
            )
    catalog.close()
    return result.exit_code


def _locations(dests: Sequence[Destination]) -> dict[str, str | None]:
    """Where each destination is, by its shown name: the reports' ``location``."""
    from castoff.destinations.base import ident_location

    out: dict[str, str | None] = {}
    for d in dests:
        region = getattr(d, "region", None)
        out[d.name] = ident_location(d.ident, region if isinstance(region, str) else None)
    return out


def _failed_text(catalog: Catalog, job_id: str) -> list[str]:
    """What to do about the files that did not reach every destination: re-run the same command
    where that retries them; for a file kept out by a conflict, or whose target is the source file
    itself, what would help instead (a re-run would do just the same)."""
    from castoff.engine.job import LANE_FATAL
    from castoff.reports.summary import NOT_BY_RERUN

    # a destination that stopped for a reason of its own (a wrong key, a full drive, a TLS
    # failure): a re-run delivers there once what was said is fixed, not before
    stopped = {e.code for e in LANE_FATAL} | {errors.ClockSkew.code}
    # each kind counts files, not outcomes: a file fails the same way at every destination
    kinds = ("rerun", "kept", "refused", "itself", "other", "names", "changed")
    ids: dict[str, set[int]] = {k: set() for k in kinds}
    fix_first = False
    outcomes = catalog.stream(
        "SELECT o.file_id, o.status, o.error_code, o.target, f.abs_path FROM outcomes o"
        " JOIN files f ON f.id=o.file_id"
        " WHERE o.job_id=? AND o.status IN ('failed', 'conflict', 'incomplete')",
        (job_id,),
    )
    for r in outcomes:
        file_id = int(r["file_id"])
        if r["status"] == "conflict":  # --on-conflict skip kept the other file
            ids["kept"].add(file_id)
        elif r["status"] == "incomplete" or r["error_code"] not in NOT_BY_RERUN:
            ids["rerun"].add(file_id)
            fix_first = fix_first or r["error_code"] in stopped
        elif r["error_code"] == errors.SourceNameError.code:
            ids["names"].add(file_id)
        elif r["error_code"] == errors.SourceChangedInPlace.code:
            ids["changed"].add(file_id)
        elif r["error_code"] != "conflict":
            ids["other"].add(file_id)
        elif os.path.isabs(r["target"]) and os.path.realpath(r["target"]) == os.path.realpath(r["abs_path"]):
            ids["itself"].add(file_id)
        else:  # --on-conflict fail
            ids["refused"].add(file_id)
    failed = catalog.stream("SELECT id, error_code FROM files WHERE job_id=? AND status='failed'", (job_id,))
    for r in failed:  # not read: a file the scan or the read failed (its outcomes say the same)
        code = r["error_code"]
        kind = (
            "names"
            if code == errors.SourceNameError.code
            else "changed"
            if code == errors.SourceChangedInPlace.code
            else "other"
            if code in NOT_BY_RERUN
            else "rerun"
        )
        ids[kind].add(int(r["id"]))
    rerun, kept, refused, itself, other, names, changed = (len(ids[k]) for k in ids)

    def them(n: int) -> str:
        return "it" if n == 1 else "them"

    lines = []
    if rerun or not (kept or refused or itself or other or names or changed):
        lines.append(
            "Some files did not reach every destination; see the report."
            + (
                " Fix what is said above of the destination that stopped, then re-run the same"
                " command: it sends only what is missing."
                if fix_first
                else " Re-run the same command to retry only what is missing."
            )
        )
    if names:
        lines.append(
            f"{plural(names, 'file')} failed: {'its name is' if names == 1 else 'their names are'}"
            " not valid UTF-8 (or a folder's above is not), which castoff cannot record; the same"
            f" command fails {them(names)} again. Rename {them(names)} (or the folder) on the source,"
            f" then copy again: the errors above and the report name {them(names)}, escaped."
        )
    if kept:
        lines.append(
            f"{plural(kept, 'file')} not copied: another file with other content is at the target,"
            f" kept (--on-conflict skip); the same command skips {them(kept)} again. --on-conflict"
            f" rename copies {them(kept)} beside the other file as 'name (2).ext'; overwrite replaces it."
        )
    if refused:
        lines.append(
            f"{plural(refused, 'file')} failed: another file with other content is at the target"
            f" (--on-conflict fail); the same command fails {them(refused)} again. --on-conflict rename"
            f" (the default) copies {them(refused)} beside the other file as 'name (2).ext'; skip"
            f" leaves {them(refused)} out."
        )
    if itself:
        lines.append(
            f"{plural(itself, 'file')} failed: the target is the source file itself (the destination"
            f" overlaps the source); the same command fails {them(itself)} again. Choose a destination"
            " outside the source, or a --template that puts the copies elsewhere."
        )
    if changed:
        lines.append(
            f"{plural(changed, 'file')} not copied: changed at the source since an earlier job copied"
            f" {them(changed)} (same size and modification time, other bytes); the same command"
            f" fails {them(changed)} again. The copies verified then, if any (said above), hold"
            f" {them(changed)} as {'it was' if changed == 1 else 'they were'}; to copy {them(changed)}"
            f" as {'it is' if changed == 1 else 'they are'} now, re-run with --rehash (beside an earlier"
            " copy as 'name (2).ext', at its own name where there is none)."
        )
    if other:
        lines.append(
            f"{plural(other, 'file')} failed for a reason the same command meets again (said above"
            " and in the report): change what it says first."
        )
    return lines


def _folders_text(made: Mapping[str, int]) -> str:
    """The empty source folders a job made (said only when it made some: a re-run finds them)."""

    def folders(n: int) -> str:
        return f"{n} empty folder{'s' if n != 1 else ''}"

    counts = set(made.values())
    if len(made) > 1 and len(counts) == 1:
        return f"{folders(counts.pop())} made at each local destination"
    return "; ".join(f"{folders(n)} made at {name}" for name, n in made.items())


def _damaged_files(catalog: Catalog, job_id: str) -> int:
    """The job's files with a damaged copy somewhere (a file may have one at several drives)."""
    from castoff.reports.summary import damaged_files

    return damaged_files(catalog, job_id)


def _damaged_text(files: int, copies: int, *, delivered: bool, where: str) -> str:
    """What the user must do about damaged copies (named one by one above and in the report),
    and, when every file is verified everywhere, that the source may still go. ``files``: the
    files with one, ``copies``: the damaged copies (one file's at two drives: two)."""
    files = max(files, 1)
    if copies <= files:
        has = "1 file has a DAMAGED copy" if files == 1 else f"{files} files have a DAMAGED copy"
        at = f"{has} at a destination, one"
    elif files == 1:
        at = f"1 file has a DAMAGED copy at {copies} destinations, each one"
    else:
        at = f"{files} files have DAMAGED copies at destinations ({copies} copies), each one"
    found = f"Attention: {at} castoff verified earlier that no longer holds those bytes ({where})."
    if delivered:
        text = (
            f"{found} It was kept, and a good copy verified beside it: compare them, then replace"
            " the damaged one."
        )
    else:  # a copy the job's own upload found damaged has no good one beside it yet: the file failed there
        text = (
            f"{found} It was kept; where a good copy is verified beside it, compare them, then replace"
            " the damaged one; where the file failed there, keep the source and re-run the same"
            " command: it writes a good copy beside the damaged one."
        )
    if delivered:
        text += " Every file is verified at every destination: the source can be released."
    return text


def _not_written(finished: Finished) -> str:
    """What failed in a job whose every file reached every destination (said above, one by one)."""
    mhl_failed = sum(not o.ok for o in finished.mhl)
    copies_failed = len(finished.problems) - mhl_failed  # the others are the report's copies
    what = []
    if mhl_failed:
        what.append("an ASC MHL history" if mhl_failed == 1 else f"{mhl_failed} ASC MHL histories")
    if copies_failed > 0:
        what.append("a copy of the report" if copies_failed == 1 else f"{copies_failed} copies of the report")
    one = len(what) == 1 and max(mhl_failed, copies_failed) == 1
    return (
        f"Every file reached every destination, verified; {' and '.join(what) or 'something'}"
        f" {'was' if one or not what else 'were'} not written (above)."
    )


def _say_partial(console: Console, catalog: Catalog, job_id: str) -> None:
    """A job stopped before its scan had found every file: its counts and report are of the files
    it had found (``summary.files_partial``)."""
    from castoff.reports.summary import files_partial

    job = catalog.job(job_id)
    if job is not None and files_partial(job):
        console.print(
            "the job stopped before it had found every file of its sources: the counts and the report"
            " are of the files it had found; a re-run of the same command finds and copies the rest",
            style="yellow",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )


def _say_vanished(console: Console, result: JobResult) -> None:
    """The files deleted after the scan, before castoff read them (each named as it was met):
    left out, not among the job's files, and no failure."""
    if result.vanished:
        console.print(
            f"left out: {plural(result.vanished, 'file')} deleted after the scan, before castoff read"
            f" {'it' if result.vanished == 1 else 'them'} (an editor's lock or swap file, say): named"
            " above and in the report; not a failure",
            style="yellow",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )


def _read_text(result: JobResult, elapsed: float) -> str:
    """How fast the sources were read, over what was read: a re-run reads nothing it skips, and
    uploads that continue from a drive read its verified copies, said as such (QA: a resume that
    uploaded 24 MiB from the SSD said "0 B read, 0 B/s")."""
    lanes = result.lanes.values()
    if (
        result.files
        and lanes
        and not result.bytes_read
        and all(s["skipped"] == s["files_total"] for s in lanes)
    ):
        return "nothing to copy: every file was verified at every destination before"
    copies = result.bytes_from_copies
    read = [f"{format_bytes(result.bytes_read)} read"] if result.bytes_read or not copies else []
    if copies:
        read.append(f"{format_bytes(copies)} read from verified local copies")
    speed = (result.bytes_read + copies) / elapsed if elapsed > 0 else 0.0
    return f"{', '.join(read)}, {format_bytes(speed)}/s"


def cmd_jobs(args: argparse.Namespace) -> int:
    prune_cli.check_arguments(args)
    listing = args.action == "list"
    if args.action == "show" and not (args.job_id or "").strip():  # "" too: an unset $ID
        raise errors.UsageError(
            "'castoff jobs show' needs a job id"
            + (f", not {args.job_id!r}" if args.job_id is not None else ""),
            hint="'castoff jobs' lists them; castoff jobs show ID (or the start of it)",
        )
    if listing and args.job_id is not None:
        raise errors.UsageError(
            f"'castoff jobs list' takes no job id ({args.job_id!r})",
            hint=f"to see that job: castoff jobs show {args.job_id}",
        )
    if not listing and (args.limit is not None or args.all):
        raise errors.UsageError(
            f"{'--all' if args.all else '--limit'} is for the list of jobs ('castoff jobs')"
        )
    if args.limit is not None and args.limit < 1:
        raise errors.UsageError(f"--limit {args.limit}: give 1 or more, or --all")
    if args.action == "prune":
        from castoff.catalog.running import row_alive

        return prune_cli.run(args, state_dir(args.state_dir) / "catalog.sqlite", alive=row_alive, age=_age)
    catalog = open_catalog(args, reading=True)
    mark_dead_jobs(catalog)  # else a killed job would show as running for ever (unless read-only)
    console = Console()
    if listing:
        return _list_jobs(args, catalog, console)
    from castoff.reports import json_report

    job = _one_job(catalog, args.job_id)
    if job["pruned_files"] is not None:
        prune_cli.show_pruned(job, as_json=args.json)
        return 0
    rep = json_report.build(catalog, str(job["id"]))
    if args.json:
        print(json.dumps(rep, indent=2, ensure_ascii=json_ascii()))
        return 0
    j = rep["job"]
    console.print(
        Text.assemble(
            (f"job {j['id']}", "bold"),
            f"  {j['status']}  started {j['started_at']}  sources: {', '.join(map(printable, j['sources']))}",
        )
    )
    if j["castoff_version"] or j["host"]:  # (None each: a job of a castoff that did not keep them)
        ran = f"ran castoff {j['castoff_version'] or '(version unknown)'}"
        console.print(
            ran + (f" on {printable(j['host'])}" if j["host"] else ""), markup=False, highlight=False
        )
    if job["report_path"]:
        console.print(f"report: {printable(job['report_path'])}", markup=False, highlight=False)
    if j.get("files_complete") is False and j["status"] != "running":
        from castoff.reports.summary import PARTIAL_LIST

        console.print(Text(PARTIAL_LIST, style="yellow"), soft_wrap=True)
    for name, s in rep["summary"].items():  # where each is: a saved name may point elsewhere by now
        if s["location"] and s["location"] != name:  # None: a kind without one
            console.print(Text(printable(f"destination {name}: {s['location']}")), highlight=False)
    from rich.table import Table

    table = Table()
    damaged = 0
    damaged_paths: set[str] = set()
    for col in ("file", "size", "destination", "status", "verified by", "target / error"):
        # a narrow terminal wraps a path, never cuts it; the status whole
        table.add_column(col, overflow="fold", no_wrap=col == "status")
    # names, paths and errors with their control characters escaped: a name's ESC sequence would
    # recolour the terminal, its newline split the row
    for f in rep["files"]:
        if not f["destinations"]:
            table.add_row(
                Text(printable(f["path"])),
                format_bytes(f["size"]),
                "-",
                f["status"],
                "",
                Text(printable(f["error"] or "")),
            )
        for d in f["destinations"]:
            style = "" if d["status"] in ("verified", "already", "skipped") else "red"
            status, where = Text(d["status"], style=style), Text(printable(d["error"] or d["target"]))
            if d.get("damaged"):  # absent from the reports of earlier versions
                damaged += 1
                damaged_paths.add(f["path"])
                status.append(" + damaged copy", style="bold red")
                where.append(f"\nDAMAGED copy kept: {printable(d['damaged'])}", style="bold red")
            if d.get("detail"):  # as the JSON and HTML reports say it (sent from the verified copy, ...)
                where.append(f"\n{printable(d['detail'])}", style="dim")
            table.add_row(
                Text(printable(f["path"])),
                format_bytes(f["size"]),
                Text(printable(d["destination"])),
                status,
                d["verify_method"] or "",
                where,
            )
    console.print(table)
    for name, s in rep["summary"].items():  # files the job never took there: in no row above
        if s.get("not_reached"):
            console.print(
                Text(
                    f"{name}: {plural(s['not_reached'], 'file')} of this job never got there: the job"
                    f" ended before {'it' if s['not_reached'] == 1 else 'they'} did (counted incomplete;"
                    f" a re-run of the same command sends {'it' if s['not_reached'] == 1 else 'them'})",
                    style="red",
                ),
                highlight=False,
            )
    if damaged:
        console.print(
            Text(
                _damaged_text(len(damaged_paths), damaged, delivered=False, where="named above"),
                style="bold red",
            ),
            highlight=False,
        )
    if rep["left_out"]:
        console.print(
            f"left out: {len(rep['left_out'])} ("
            + ", ".join(sorted({x["code"] for x in rep["left_out"]}))
            + ")"
        )
    return 0


def _list_jobs(args: argparse.Namespace, catalog: Catalog, console: Console) -> int:
    """``castoff jobs`` (list): the newest jobs, as a table or JSON, or how to start."""
    limit = None if args.all else args.limit or JOBS_SHOWN
    rows = catalog.jobs(limit)
    total = catalog.count_jobs()
    if len(rows) < total:  # on stderr: what stdout holds stays the table, or JSON
        Console(stderr=True).print(
            f"showing the {len(rows)} newest of {total}: --limit N or --all", highlight=False
        )
    if args.json:
        from castoff.catalog.db import job_as_json

        print(json.dumps([job_as_json(r) for r in rows], indent=2, ensure_ascii=json_ascii()))
        return 0
    if not rows:  # as dest list and workflow list say: how to start
        console.print("no jobs yet: castoff copy SOURCE --to DEST (or castoff run WORKFLOW)", highlight=False)
        return 0
    from rich.table import Table

    table = Table(title="castoff jobs")
    for col in ("id", "started", "status", "files", "bytes", "destinations"):
        # the id whole, to copy; a status whole ("interru / pted" on a narrow terminal, QA)
        table.add_column(col, no_wrap=col in ("id", "started", "status"), overflow="fold")
    for r in rows:
        dests = ", ".join(printable(d["name"]) for d in json.loads(r["destinations"]))
        table.add_row(
            r["id"],
            time.strftime("%Y-%m-%d %H:%M", time.localtime(r["started_at"])),
            r["status"] + (" (pruned)" if r["pruned_files"] is not None else ""),
            str(r["n_files"]),
            format_bytes(r["n_bytes"]),
            Text(dests),  # Text, not markup: a folder's name may hold [ ]
        )
    console.print(table)
    return 0


def _one_job(catalog: Catalog, given: str) -> sqlite3.Row:
    """The job ``given`` names (its id, or the start of it): a start that several ids share names them."""
    ids = catalog.job_ids(given)
    job = catalog.job(ids[0]) if len(ids) == 1 else None
    if job is not None:
        return job
    if not ids:
        raise errors.UsageError(f"no job {given!r}", hint="'castoff jobs' lists them")
    more = f"\n    … and {len(ids) - 10} more" if len(ids) > 10 else ""
    raise errors.UsageError(
        f"{given!r} is ambiguous: {len(ids)} job ids begin with it:\n    " + "\n    ".join(ids[:10]) + more,
        hint="give more of the id",
    )


def _age(text: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        return float(text[:-1]) * units[text[-1]]
    except (KeyError, ValueError, IndexError):
        raise errors.UsageError(f"--older-than {text!r}: write it like 12h or 7d") from None


def _job_alive(catalog: Catalog, job_id: str) -> bool:
    from castoff.catalog.running import row_alive

    job = catalog.job(job_id)
    return job is not None and row_alive(job)


def _say_unrecorded(console: Console, intents: Sequence[IntentRow]) -> None:
    """Uploads a stopped job may have begun without recording them (``Catalog.intend_upload``)."""
    for i in intents:
        console.print(
            Text(
                f"{i.dest_name}: {i.target}: a job ({i.job_id}) was stopped as it began this upload,"
                " before it could record it; the next job to that destination looks for it and"
                " aborts it, where the key may list uploads (a lifecycle rule does, where not)"
            )
        )


def cmd_uploads(args: argparse.Namespace) -> int:
    from rich.table import Table

    from castoff.catalog.running import row_alive
    from castoff.commands.common import resolver

    if args.action == "list" and args.ids:  # nothing is left out of a list unsaid
        raise errors.UsageError(
            f"'castoff uploads list' takes no upload numbers ({' '.join(args.ids)})",
            hint=f"to abort them: castoff uploads abort {' '.join(args.ids)}",
        )
    if args.action == "list" and args.all:  # accepted and ignored before: say it
        raise errors.UsageError(
            "--all is for 'castoff uploads abort --all';"
            " 'castoff uploads' always lists every unfinished upload",
            hint="castoff uploads (--older-than AGE to list only the older ones)",
        )
    if args.action == "abort" and args.json:
        raise errors.UsageError(
            "--json is for the list: 'castoff uploads --json'",
            hint="castoff uploads abort N… (without --json)",
        )
    catalog = open_catalog(args, reading=args.action == "list")
    console = Console(stderr=True) if args.json else Console()
    rows = catalog.open_uploads()
    if args.older_than:
        cutoff = time.time() - _age(args.older_than)
        rows = [r for r in rows if r.created_at < cutoff]
    if args.action == "list":
        unrecorded = [i for i in catalog.upload_intents() if not _job_alive(catalog, i.job_id)]
        if args.json:  # the array alone on stdout; what is said besides goes to stderr
            print(json.dumps([_upload_as_json(r) for r in rows], indent=2, ensure_ascii=json_ascii()))
            _say_unrecorded(console, unrecorded)
            return 0
        if not rows:
            console.print("no unfinished uploads")
            _say_unrecorded(console, unrecorded)
            return 0
        table = Table(title="unfinished multipart uploads")
        for col in ("#", "destination", "key", "parts done", "size", "age"):
            table.add_column(col, overflow="fold")
        for r in rows:
            total = _parts_total(r)
            age_h = (time.time() - r.created_at) / 3600
            table.add_row(
                str(r.id),
                Text(printable(r.dest_name)),
                Text(printable(r.target)),
                f"{len(r.parts)}/{total}",
                format_bytes(r.size),
                f"{age_h:.1f} h",
            )
        console.print(table)
        console.print(
            "Re-run the job to finish them, or 'castoff uploads abort N…' / --all."
            " A bucket lifecycle rule (AbortIncompleteMultipartUpload) cleans up the"
            " ones castoff does not know about."
        )
        _say_unrecorded(console, unrecorded)
        return 0
    chosen = _uploads_to_abort(rows, args)
    if not chosen:
        console.print("no unfinished uploads" + (f" older than {args.older_than}" if args.older_than else ""))
        return 0
    failed = 0
    for r in chosen:
        job = catalog.job(r.job_id)
        if job is not None and row_alive(job):  # aborting it would fail that job's file
            console.print(
                f"#{r.id} {r.target}: job {r.job_id} (pid {job['pid']}) is still sending it; not aborted",
                style="yellow",
                markup=False,
                highlight=False,
            )
            continue
        spec = None
        s3_defaults = None
        if job is not None:
            for d in json.loads(job["destinations"]):
                if d["ident"] == r.dest_ident:
                    spec, s3_defaults = d.get("spec", d["name"]), json.loads(d.get("s3") or "{}")
        if spec is None:
            console.print(f"[red]#{r.id}: the destination of this upload is unknown[/]")
            failed += 1
            continue
        try:
            dest = resolver(args).open(spec, s3_defaults=s3_defaults)
            upload_id = r.token.get("upload_id")
            abort_upload = getattr(dest, "abort_upload", None)  # a bucket's says if it was there
            if abort_upload is not None and isinstance(upload_id, str) and upload_id:
                there = bool(abort_upload(r.target, upload_id))
            else:
                dest.abort_token(r.target, r.token)
                there = True
        except errors.CastoffError as exc:
            console.print(f"#{r.id} {r.target}: {exc}", style="red", markup=False, highlight=False)
            failed += 1
            continue
        catalog.close_upload(r.id)
        if there:
            console.print(f"aborted #{r.id}: {r.dest_name} {r.target}", markup=False, highlight=False)
        else:
            console.print(
                f"#{r.id}: {r.dest_name} {r.target}: already gone from the server (NoSuchUpload:"
                " expired, aborted or completed elsewhere); the catalog has forgotten it too",
                markup=False,
                highlight=False,
            )
    return errors.EXIT_FAILED if failed else 0


def _parts_total(r: UploadRow) -> int:
    return -(-r.size // r.part_size) if r.size else 1


def _upload_as_json(r: UploadRow) -> dict[str, object]:
    """One row of 'castoff uploads --json': what the table shows, its time as the reports write it."""
    from castoff.reports.json_report import ISO

    return {
        "id": r.id,
        "destination": r.dest_name,
        "key": r.target,
        "parts_done": len(r.parts),
        "parts_total": _parts_total(r),
        "size": r.size,
        "created_at": time.strftime(ISO, time.localtime(r.created_at)),
        "job_id": r.job_id,
    }


def _uploads_to_abort(rows: list[UploadRow], args: argparse.Namespace) -> list[UploadRow]:
    """The uploads 'castoff uploads abort' names; a number that is not one of them stops it
    before anything is aborted."""
    if args.all:
        return rows
    if not args.ids:
        raise errors.UsageError("name the uploads to abort (numbers from 'castoff uploads') or use --all")
    known = {str(r.id) for r in rows}
    wanted = set(args.ids)
    unknown = [i for i in args.ids if i not in known]
    if unknown:
        older = f" older than {args.older_than}" if args.older_than else ""
        raise errors.UsageError(
            f"no unfinished upload{older} numbered {', '.join(unknown)}; nothing was aborted",
            hint="'castoff uploads' lists them with their numbers",
        )
    return [r for r in rows if str(r.id) in wanted]


#: options whose value may begin with "-" and a digit: argparse takes ``--bwlimit -5M`` for a
#: missing value followed by an option, so ``-5M`` never reached castoff's own message
_SIGNED_VALUES = ("--bwlimit",)


def _attach_signed_values(argv: list[str]) -> list[str]:
    """``--bwlimit -5M`` as ``--bwlimit=-5M``, which argparse passes on as the value."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":  # the rest are sources: never touched
            return out + argv[i:]
        nxt = argv[i + 1] if i + 1 < len(argv) else ""
        if arg in _SIGNED_VALUES and len(nxt) > 1 and nxt[0] == "-" and (nxt[1].isdigit() or nxt[1] == "."):
            out.append(f"{arg}={nxt}")
            i += 2
            continue
        out.append(arg)
        i += 1
    return out


#: open files castoff asks to be allowed (its soft limit, up to the hard one)
OPEN_FILES = 4096


def more_open_files() -> None:
    """Raise the soft limit on open files towards ``OPEN_FILES``: each file waiting for its
    commit keeps its descriptor (up to 64 a destination, plus those being committed), and macOS
    starts a shell at 256: four slow destinations would run out (EMFILE) mid-job."""
    try:
        import resource
    except ImportError:  # (Windows: no such limit)
        return
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = OPEN_FILES if hard == resource.RLIM_INFINITY else min(OPEN_FILES, hard)
        if soft != resource.RLIM_INFINITY and soft < want:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    except (ValueError, OSError):  # a system that refuses: the limit stays what it was
        pass


class ErrorEvent:
    """With ``--json``, a command that ends with an error before its result (a bad argument, a
    source that does not exist, an unknown ``@dest``, a bad template; a catalog that failed under a
    job; a bug) says so on stdout too, as one JSON object, the ``error`` event
    (docs/json-events.md): a script or the web UI that reads stdout gets more than nothing. The
    person's text stays on stderr."""

    #: this command's output is JSON (its --json, or a workflow's saved json: ``mark``)
    wanted = False

    @classmethod
    def mark(cls, wanted: bool) -> None:
        cls.wanted = cls.wanted or wanted

    @classmethod
    def say(cls, exit_code: int, code: str, message: str, hint: str | None) -> None:
        """The event on stdout, when wanted; a stdout that cannot take it is left as it is (what
        the error is, is said on stderr all the same)."""
        if not cls.wanted:
            return
        event = {
            "event": "error",
            "at": round(time.time(), 3),
            "exit_code": exit_code,
            "code": code,
            "message": message,
            "hint": hint,
        }
        try:
            sys.stdout.write(json.dumps(event, ensure_ascii=json_ascii(), default=str) + "\n")
            sys.stdout.flush()
        except (OSError, ValueError, errors.OutputFailed):
            stream_gone(sys.stdout)


def _wants_json(argv: Sequence[str]) -> bool:
    """--json among the options (not after ``--``, where the sources are): read before argparse,
    which says its own errors and exits. Not ``workflow save/edit``'s: a copy option it saves."""
    options = argv[: argv.index("--")] if "--" in argv else argv
    if "workflow" in options:
        at = options.index("workflow")
        if options[at + 1 : at + 2] in (["save"], ["edit"]):
            return False
    return "--json" in options


def _said_by_argparse(done: SystemExit) -> int:
    """The exit code of what argparse printed (help, a version, a usage error), once it is out:
    a stdout that cannot take it (``castoff --help > /dev/full``) is said, exit 2, not a silent 0.
    A reader gone (``castoff --help | head -1``) had what it wanted."""
    if Parser.unwritten is not None:
        sys.stderr.write(f"castoff: {write_failed(sys.stdout, Parser.unwritten).message}\n")
        return errors.EXIT_USAGE
    if done.code is None:
        return 0
    return done.code if isinstance(done.code, int) else errors.EXIT_USAGE


def main(argv: Sequence[str] | None = None) -> int:
    argv = _attach_signed_values(list(sys.argv[1:] if argv is None else argv))
    parser = build_parser()
    Parser.unwritten = None
    commands.autocomplete(parser)
    ErrorEvent.wanted = _wants_json(argv)
    Warnings.take()  # (a test's earlier command in this process)
    try:
        args = parser.parse_strictly(argv)
    except SystemExit as done:  # --help, --version, a usage error: argparse wrote and exits
        return _said_by_argparse(done)
    saves_it = getattr(args, "workflow_command", None) in ("save", "edit")  # a copy option saved
    ErrorEvent.wanted = bool(getattr(args, "json", False)) and not saves_it
    more_open_files()
    tolerant(sys.stdout)  # a character stdout or stderr cannot encode is escaped, not a traceback
    tolerant(sys.stderr)
    console = Console(stderr=True)
    stdout = sys.stdout
    sys.stdout = GuardedStdout(stdout)  # a failed write: OutputFailed, said below
    try:
        code = run_command(parser, args, argv)
        sys.stdout.flush()  # here, not at exit: a reader gone is then met below, not as "Exception ignored"
        return code
    except BrokenPipeError:
        # stdout's reader went away (castoff jobs --json | head): the command ends quietly, with
        # no traceback, and exits 141 (128 + SIGPIPE), what the shell reports for any filter that
        # the closed pipe stopped (cat, ls, git log): a script with pipefail sees the output was
        # cut, as it would with them; the reader that closed it had what it wanted. A copy never
        # gets here: its job goes on to its own exit code (ui/progress.py, JsonDisplay).
        stream_gone(sys.stdout)
        return errors.EXIT_BROKEN_PIPE
    except errors.CastoffError as exc:
        # Text, not markup: a message quotes paths, names and config text, which may hold [ ]
        console.print(Text(f"castoff: {exc.message}", style="bold red"), soft_wrap=True)
        if exc.hint:
            console.print(Text(f"  {exc.hint}"), soft_wrap=True)
        if args.debug:
            console.print_exception()
        if not isinstance(exc, errors.OutputFailed):  # (stdout is what failed)
            ErrorEvent.say(exc.exit_code, exc.code, exc.message, exc.hint)
        return exc.exit_code
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]")
        ErrorEvent.say(errors.EXIT_INTERRUPTED, errors.Interrupted.code, "interrupted", None)
        return errors.EXIT_INTERRUPTED
    except sqlite3.Error as exc:  # (the catalog says its own errors: this is for one it did not)
        from castoff.catalog.db import catalog_error

        said = catalog_error(state_dir(args.state_dir) / "catalog.sqlite", exc)
        if said is None:
            _say_internal(exc)
            raise
        console.print(Text(f"castoff: {said.message}", style="bold red"), soft_wrap=True)
        if said.hint:
            console.print(Text(f"  {said.hint}"), soft_wrap=True)
        if args.debug:
            console.print_exception()
        ErrorEvent.say(said.exit_code, said.code, said.message, said.hint)
        return said.exit_code
    except Exception as exc:  # a bug: its traceback on stderr, as ever
        _say_internal(exc)
        raise
    finally:
        sys.stdout = stdout


def _say_internal(exc: BaseException) -> None:
    """A bug's ``error`` event (code ``internal``): Python exits 1 after its traceback."""
    ErrorEvent.say(
        errors.EXIT_FAILED,
        "internal",
        f"internal error: {type(exc).__name__}: {exc}",
        "a bug in castoff: its traceback is on stderr; please report it",
    )


#: the arguments that name a folder, a file or a destination, by their dest: what each is called in
#: the message, and whether it is a folder (``.`` is then how to say the current one)
PATH_ARGUMENTS: Mapping[str, tuple[str, bool]] = {
    "sources": ("source", True),
    "source": ("--source", True),
    "path": ("path", True),
    "to": ("destination", True),
    "targets": ("destination", True),
    "out": ("--out", True),
    "state_dir": ("--state-dir", True),
    "report": ("--report", False),
    "config": ("--config", False),
    "ca_bundle": ("--ca-bundle", False),
}


def check_not_empty(args: argparse.Namespace) -> None:
    """An empty (or blank) path is refused, never taken as the current folder or as not given: an
    unset ``$CARD`` in a script must not offload the folder the script runs in (QA: ``castoff copy
    "" --to …`` copied the current folder and said done; ``verify --report ""`` ignored --report)."""
    for dest, (label, folder) in PATH_ARGUMENTS.items():
        value = getattr(args, dest, None)
        for v in value if isinstance(value, list) else [value]:
            if isinstance(v, str) and not v.strip():
                said = f"blank {label} {v!r}" if v else f"empty {label}"
                raise errors.UsageError(
                    f"{said}: an empty argument (an unset variable?) never means the current folder"
                    if folder
                    else f"{said}: an empty argument (an unset variable?) names no file",
                    hint="give the path; write . for the current folder"
                    if folder
                    else f"give the file's path, or leave {label} out",
                )


def run_command(parser: argparse.ArgumentParser, args: argparse.Namespace, argv: Sequence[str]) -> int:
    """The command ``args`` names, run; its exit code."""
    check_not_empty(args)
    if args.command == "copy":
        return cmd_copy(args, ["castoff", *argv])
    if args.command == "jobs":
        return cmd_jobs(args)
    if args.command == "verify":
        from castoff.verify import cmd_verify

        return cmd_verify(args)
    if args.command == "uploads":
        return cmd_uploads(args)
    if args.command in commands.COMMANDS:
        return commands.dispatch(args)
    parser.print_help()
    return errors.EXIT_USAGE
