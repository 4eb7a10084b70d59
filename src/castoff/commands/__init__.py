"""The everyday commands beside ``copy``: ``dest``, ``workflow``, ``run``, ``completion`` and ``demo``.

``register`` adds their parsers to the main parser; ``dispatch`` runs the one that was named.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable
from typing import Any

from castoff.commands.common import S3_FLAGS
from castoff.config import workflows
from castoff.destinations.providers import PROVIDERS

COMMANDS = ("dest", "workflow", "run", "completion", "demo")

DEST_EXAMPLES = """examples:
  castoff dest add ssd local /Volumes/SSD/shoots
  castoff dest add archive s3 --bucket my-archive --prefix raw-shoots/ --provider b2 \\
      --region us-west-004 --access-key-id 004a… (the secret is asked for, not shown)
  castoff dest list
  castoff dest test archive
  castoff dest credentials archive        (paste the new pair; the old key can then be deactivated)
  castoff copy /media/EOS_DIGITAL --to @ssd --to @archive

A saved destination is written @NAME wherever a destination is expected (--to @ssd).
Keys live in the OS keyring, never in the config file."""

WORKFLOW_EXAMPLES = """examples:
  castoff workflow save shoot --to @ssd --to @archive --source /media/EOS_DIGITAL --on-conflict skip
  castoff workflow show shoot
  castoff workflow edit shoot --exclude '*.THM'     (or with no options: edit the file in $EDITOR)
  castoff workflow edit shoot --unset exclude
  castoff run shoot                                 (or: castoff run shoot /media/OTHER_CARD)

A workflow takes every option of 'castoff copy' (see castoff copy --help)."""

RUN_EXAMPLES = """examples:
  castoff run shoot
  castoff run shoot /media/EOS_DIGITAL_2 --quiet
  castoff run shoot --resume     (unattended: finish the interrupted last run without asking)

An option given here replaces the workflow's own of that name for this run (and --json a saved
--quiet, --quiet a saved --json). When the last run of the workflow on this source (the saved one,
or the one given) was interrupted, castoff offers to resume it (on a terminal), or needs --resume
or --new (without one). --resume finishes that job as it ran: with the destinations, layout and
options the catalog recorded for it, even if the workflow was edited since (what changed is
said; the next run without --resume uses the workflow as it is now)."""

ADD_EXAMPLES = """examples:
  castoff dest add ssd local /Volumes/SSD/shoots
  castoff dest add nas local /mnt/nas/archive --no-test
  castoff dest add aws-archive s3 --bucket my-archive --region eu-west-1 --access-key-id AKIA…
  castoff dest add b2 s3 --bucket studio-raw --provider b2 --region us-west-004 --access-key-id 004…
  castoff dest add r2 s3 --bucket raw --provider r2 \\
      --endpoint https://ACCOUNT.r2.cloudflarestorage.com --access-key-id … --secret-stdin < secret.txt
  castoff dest add minio s3 --bucket raw --endpoint https://minio.studio.lan:9000 --ca-bundle ca.pem \\
      --access-key-id castoff --ask-secret
  castoff dest add vault s3 --bucket raw --credential-command 'op-creds castoff'
      (the command prints credential_process JSON: AccessKeyId, SecretAccessKey, SessionToken)
  castoff dest add dev s3 --bucket raw --endpoint http://127.0.0.1:9000 --profile dev

The destination is tested (an upload started and aborted: nothing is left) and not saved if the
test fails, unless --no-test. With no keys given, the AWS chain is used (environment, ~/.aws, --profile)."""


def _saved_names(section: str, prefix: str = "") -> Callable[..., Iterable[str]]:
    """An argcomplete completer listing saved destination or workflow names."""

    def complete(prefix_typed: str = "", parsed_args: Any = None, **_: Any) -> list[str]:
        from castoff.commands.common import config_file

        try:
            cfg = config_file(parsed_args or argparse.Namespace(), warn=False)
        except Exception:  # noqa: BLE001 (completion must never fail loudly)
            return []
        items = cfg.destinations if section == "destinations" else cfg.workflows
        return [prefix + n for n in items if (prefix + n).startswith(prefix_typed)]

    return complete


def _completer(action: argparse.Action, fn: Callable[..., Iterable[str]]) -> None:
    action.completer = fn  # type: ignore[attr-defined]  # argcomplete's convention


def _sub(
    parent: Any, name: str, common: argparse.ArgumentParser, help_: str, epilog: str
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = parent.add_parser(
        name,
        parents=[common],
        help=help_,
        description=help_[0].upper() + help_[1:] + ".",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser


def _list_and_show(
    parent: Any,
    common: argparse.ArgumentParser,
    noun: str,
    names: Callable[..., Iterable[str]],
    list_help: str,
    show_help: str,
) -> None:
    ls = _sub(parent, "list", common, list_help, f"example:\n  castoff {noun} list --json")
    ls.add_argument("--json", action="store_true")
    sh = _sub(parent, "show", common, show_help, f"example:\n  castoff {noun} show NAME --json")
    _completer(sh.add_argument("name", metavar="NAME"), names)
    sh.add_argument("--json", action="store_true")


def add_dest_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    copy_parser: argparse.ArgumentParser = sub.choices["copy"]
    d = _sub(
        sub, "dest", common, "save, list, test and remove destinations, and set their keys", DEST_EXAMPLES
    )
    dsub = d.add_subparsers(dest="dest_command", metavar="ACTION")
    a = _sub(dsub, "add", common, "save a destination (tested first)", ADD_EXAMPLES)
    a.add_argument("name", metavar="NAME", help="what to call it (then: --to @NAME)")
    a.add_argument("type", choices=("local", "s3"), help="a folder or an S3-compatible bucket")
    a.add_argument("path", nargs="?", metavar="PATH", help="the folder (local)")
    a.add_argument(
        "--replace",
        action="store_true",
        help="save over a destination of that name, whole (its old settings and keyring keys go)",
    )
    a.add_argument("--no-test", action="store_true", help="save without testing it")
    s3 = a.add_argument_group("bucket")
    s3.add_argument("--bucket")
    s3.add_argument("--prefix", help="key prefix, like raw-shoots/")
    s3.add_argument(
        "--provider",
        choices=tuple(PROVIDERS),  # the table's names, as provider= takes them in a URL or the config
        help="fills the endpoint, addressing, checksums and part limits from castoff's provider table",
    )
    s3.add_argument(
        "--conditional",
        choices=("auto", "on", "off"),
        help="conditional writes (If-None-Match): auto (default) where the provider table says the"
        " server honours them; on only if yours does",
    )
    workflows.add_copy_options(a, copy_parser, "S3 settings (as for castoff copy)", only=S3_FLAGS)
    keys = a.add_argument_group("keys (the secret is never an argument)")
    keys.add_argument(
        "--access-key-id", metavar="ID", help="the key id; the secret is asked for (or --secret-stdin)"
    )
    keys.add_argument("--secret-stdin", action="store_true", help="read the secret from standard input")
    keys.add_argument(
        "--ask-secret", action="store_true", help="never store the secret: ask for it at every run"
    )
    keys.add_argument(
        "--credential-command", metavar="CMD", help="a command printing credential_process JSON"
    )

    names = _saved_names("destinations")
    _list_and_show(
        dsub,
        common,
        "dest",
        names,
        "list the saved destinations",
        "show one destination and its provider preset",
    )
    t = _sub(
        dsub,
        "test",
        common,
        "prove the keys can write there, leaving nothing behind",
        "examples:\n  castoff dest test archive ssd\n  castoff dest test 's3://bucket/prefix/?endpoint=https://s3.example.com'",
    )
    _completer(
        t.add_argument("targets", nargs="+", metavar="DEST", help="a saved name, a folder or an s3:// URL"),
        names,
    )
    t.add_argument("--endpoint-url", help="S3 endpoint of an s3:// URL (default: AWS, or AWS_ENDPOINT_URL)")
    t.add_argument("--region", help="the region of an s3:// URL's bucket")
    t.add_argument("--profile", help="AWS profile for an s3:// URL, from the shared config files")
    t.add_argument("--ca-bundle", metavar="PEM", help="trust the certificates in this file (a private CA)")
    t.add_argument("--insecure-http", action="store_true", help="allow plain http:// to another computer")
    c = _sub(
        dsub,
        "credentials",
        common,
        "set or rotate the keys of a saved bucket",
        "examples:\n  castoff dest credentials archive                (asks for the new pair)\n"
        "  castoff dest credentials archive --access-key-id AKIA… --secret-stdin < new-secret\n"
        "  castoff dest credentials archive --forget       (use the AWS chain instead)\n\n"
        "The new pair is tested before it replaces the old one; then the old key can be deactivated.",
    )
    _completer(c.add_argument("name", metavar="NAME"), names)
    c.add_argument("--access-key-id", metavar="ID")
    c.add_argument("--secret-stdin", action="store_true", help="read the secret from standard input")
    c.add_argument("--no-test", action="store_true", help="save the new keys without testing them")
    c.add_argument("--forget", action="store_true", help="delete the keys from the keyring")
    r = _sub(
        dsub, "remove", common, "forget a destination and its keys", "example:\n  castoff dest remove old-nas"
    )
    _completer(r.add_argument("name", metavar="NAME"), names)
    rn = _sub(
        dsub,
        "rename",
        common,
        "rename a destination (workflows follow)",
        "example:\n  castoff dest rename nas nas-old",
    )
    _completer(rn.add_argument("name", metavar="NAME"), names)
    rn.add_argument("new_name", metavar="NEW")


def add_workflow_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    copy_parser: argparse.ArgumentParser = sub.choices["copy"]
    flows = _saved_names("workflows")
    dests = _saved_names("destinations", "@")
    w = _sub(
        sub,
        "workflow",
        common,
        "save a source, its destinations and options as one command",
        WORKFLOW_EXAMPLES,
    )
    wsub = w.add_subparsers(dest="workflow_command", metavar="ACTION")
    s = _sub(wsub, "save", common, "save a workflow", WORKFLOW_EXAMPLES)
    s.add_argument("name", metavar="NAME")
    _completer(
        s.add_argument(
            "--to", action="append", required=True, metavar="DEST", help="@saved, a folder or s3://…; repeat"
        ),
        dests,
    )
    s.add_argument("--source", metavar="PATH", help="the card or folder it reads (else given at run)")
    s.add_argument("--description", metavar="TEXT", help="what it is for (workflow show says it)")
    s.add_argument("--replace", action="store_true", help="overwrite a workflow of that name, whole")
    workflows.add_copy_options(s, copy_parser, "copy options (as for castoff copy)")
    _list_and_show(
        wsub,
        common,
        "workflow",
        flows,
        "list workflows and their last run",
        "show a workflow and the copy command it stands for",
    )
    e = _sub(
        wsub, "edit", common, "change a workflow (no options: edit the config in $EDITOR)", WORKFLOW_EXAMPLES
    )
    _completer(e.add_argument("name", metavar="NAME"), flows)
    _completer(
        e.add_argument("--to", action="append", metavar="DEST", help="replaces the destinations"), dests
    )
    e.add_argument("--source", metavar="PATH")
    e.add_argument("--description", metavar="TEXT", help="what it is for (workflow show says it)")
    e.add_argument(
        "--unset",
        action="append",
        default=[],
        metavar="OPTION",
        help="drop a saved copy option, by its name (exclude, on-conflict), or the source or description;"
        " repeat for more",
    )
    workflows.add_copy_options(e, copy_parser, "copy options (as for castoff copy)")
    rm = _sub(wsub, "remove", common, "forget a workflow", "example:\n  castoff workflow remove old-shoot")
    _completer(rm.add_argument("name", metavar="NAME"), flows)

    from castoff.cli import EPILOG  # loaded: its build_parser is what calls this

    r = _sub(sub, "run", common, "run a saved workflow", RUN_EXAMPLES + "\n\n" + EPILOG)
    _completer(r.add_argument("name", metavar="NAME"), flows)
    # (a default: argparse calls a "*" positional without one required when NAME is missing)
    r.add_argument("sources", nargs="*", default=[], metavar="SOURCE", help="instead of the saved source")
    when = r.add_mutually_exclusive_group()
    when.add_argument(
        "--resume",
        action="store_true",
        help="finish the interrupted last run on this source, as it ran, without asking",
    )
    when.add_argument(
        "--new", action="store_true", help="start a new job even if the last run was interrupted"
    )
    workflows.add_copy_options(r, copy_parser, "copy options (override the workflow's)")


def add_other_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    c = _sub(
        sub,
        "completion",
        common,
        "print the shell completion script",
        'examples:\n  eval "$(castoff completion bash)"        (in ~/.bashrc)\n'
        "  castoff completion zsh > ~/.zfunc/_castoff   (or eval it in ~/.zshrc)\n"
        "  castoff completion fish > ~/.config/fish/completions/castoff.fish",
    )
    c.add_argument("shell", choices=("bash", "zsh", "fish"))
    d = _sub(
        sub,
        "demo",
        common,
        "offload a sample card to two folders and a local S3 bucket",
        "example:\n  castoff demo            (everything under ./demo-out; your own config is not touched)",
    )
    d.add_argument(
        "--out",
        default="demo-out",
        help="where the demo writes: a new or empty folder, or an earlier demo's (default ./demo-out)",
    )


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    for action in sub.choices["copy"]._actions:
        if action.dest == "to":
            _completer(action, _saved_names("destinations", "@"))
    add_dest_parser(sub, common)
    add_workflow_parsers(sub, common)
    add_other_parsers(sub, common)


def dispatch(args: argparse.Namespace) -> int:
    if args.command == "dest":
        from castoff.commands import dest

        return dest.run(args)
    if args.command == "workflow":
        from castoff.commands import workflow

        return workflow.run_workflow_command(args)
    if args.command == "run":
        from castoff.commands import workflow

        return workflow.cmd_run(args)
    if args.command == "completion":
        return print_completion(args.shell)
    from castoff import demo

    return demo.main(args)


def print_completion(shell: str) -> int:
    from argcomplete.shell_integration import shellcode

    print(shellcode(["castoff"], shell=shell))
    return 0


def autocomplete(parser: argparse.ArgumentParser) -> None:
    """Answer the shell's completion request, if this run is one (argcomplete exits then)."""
    import os

    if "_ARGCOMPLETE" in os.environ:
        from argcomplete.finders import CompletionFinder

        class Finder(CompletionFinder):
            """argcomplete cuts each candidate after the last COMP_WORDBREAKS character of the
            word, as bash replaces only what follows it; but an '@' (one of readline's special
            prefixes) stays in what bash replaces, so it must stay in the candidate, or
            '--to @ss<TAB>' becomes '--to ssd': the folder ssd, not the saved destination."""

            def quote_completions(
                self, completions: list[str], cword_prequote: str, last_wordbreak_pos: int | None
            ) -> list[str]:
                at = last_wordbreak_pos  # where the typed word, so each candidate, has a break
                bash = os.environ.get("_ARGCOMPLETE_SHELL") == "bash"
                if bash and at is not None and all(c[at : at + 1] == "@" for c in completions):
                    at -= 1  # keep the '@'
                return super().quote_completions(completions, cword_prequote, at)

        Finder()(parser, always_complete_options=False)
