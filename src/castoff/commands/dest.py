"""``castoff dest``: save, list, show, test, rename and remove destinations, and set their keys.

A destination is tested when it is saved (a write-only-safe probe for buckets) and refused when
the test fails, unless ``--no-test``. Keys go to the OS keyring, never to the config file.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from rich.table import Table
from rich.text import Text

from castoff import errors
from castoff.commands.common import S3_FLAGS, config_file, config_locked, print_list, resolver
from castoff.config import secrets
from castoff.config.resolve import (
    SAVED_PREFIX,
    Resolver,
    named_bucket,
    provider_of,
    saved_s3_options,
    with_keys,
)
from castoff.config.store import ConfigFile, SavedDestination, check_name
from castoff.destinations.base import Destination
from castoff.ui.term import Console
from castoff.units import format_bytes

if TYPE_CHECKING:
    from castoff.destinations.s3 import S3Options


@dataclass(frozen=True)
class Verdict:
    ok: bool
    message: str
    hint: str | None = None


def test_destination(dest: Destination) -> Verdict:
    """Can castoff write there? Buckets: start and abort an upload (write-only keys suffice)."""
    from castoff.destinations.local import UNREADABLE_HINT, unreadable_folder

    if not dest.caps.is_local:  # (a bucket: a folder's test need not load boto3)
        from castoff.destinations import s3

        if isinstance(dest, s3.S3Destination):
            result = s3.probe(dest.options)
            return Verdict(result.ok, result.message, result.hint)
    from castoff.destinations.local import FULL_HINT, LocalDestination

    root = getattr(dest, "root", None)
    unreadable = unreadable_folder(root) if isinstance(root, str) else None
    if unreadable is not None:  # a share whose connection died: said, not a traceback
        return Verdict(False, unreadable, UNREADABLE_HINT)
    new_folder = isinstance(root, str) and not os.path.lexists(root)
    try:
        dest.preflight()
        if isinstance(dest, LocalDestination):  # a file written, as a job's first one is
            dest.probe()
    except errors.CastoffError as exc:
        return Verdict(False, exc.message, exc.hint)
    finally:
        if new_folder:  # a test leaves nothing behind: the folder the test made goes again
            with contextlib.suppress(OSError):
                os.rmdir(str(root))
    free = getattr(dest, "free_bytes", None)
    if free == 0:  # (root may still write a byte or two in the filesystem's reserve)
        return Verdict(False, f"{root}: the drive is full (0 B free)", FULL_HINT)
    writable = "writable" if free is None else f"writable, {format_bytes(free)} free"
    said = "".join(f"; {note}" for note in getattr(dest, "notes", ()))  # (mounts.py's warnings)
    if new_folder:
        return Verdict(True, f"{writable} ({root} does not exist yet: the first job creates it){said}")
    return Verdict(True, f"{writable}{said}")


def _print_verdict(console: Console, label: str, verdict: Verdict) -> None:
    if verdict.ok:
        console.print(Text.assemble(("ok", "green"), f" {label}: {verdict.message}"))
        return
    console.print(Text.assemble(("failed", "red"), f" {label}: {verdict.message}"))
    if verdict.hint:
        console.print(f"  {verdict.hint}", markup=False, highlight=False)


# --- add --------------------------------------------------------------------------------------


def _s3_settings(args: argparse.Namespace) -> dict[str, Any]:
    if not args.bucket:
        raise errors.UsageError(
            "an s3 destination needs --bucket", hint="castoff dest add NAME s3 --bucket B …"
        )
    settings: dict[str, Any] = {"bucket": args.bucket}
    if args.prefix:
        settings["prefix"] = args.prefix
    if args.provider:
        settings["provider"] = args.provider
    if args.conditional:
        settings["conditional"] = args.conditional
    for flag, key in S3_FLAGS.items():
        value = getattr(args, flag, None)
        if value is not None and value is not False:
            settings[key] = value
    if "ca_bundle" in settings:
        settings["ca_bundle"] = os.path.abspath(os.path.expanduser(settings["ca_bundle"]))
    _fill_preset(settings)
    return settings


def _fill_preset(settings: dict[str, Any]) -> None:
    """A provider preset: the endpoint from its pattern and the region; required ones asked for."""
    from castoff.destinations.providers import get_provider

    if "provider" not in settings or "endpoint" in settings:
        return
    provider = get_provider(settings["provider"])
    if provider.endpoint_required:
        raise errors.UsageError(
            f"{provider.title} needs --endpoint",
            hint="Cloudflare R2: https://ACCOUNT_ID.r2.cloudflarestorage.com;"
            " MinIO and others: your server's URL",
        )
    endpoint = provider.endpoint_for(settings.get("region"))
    if endpoint:
        settings["endpoint"] = endpoint


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def check_key_options(args: argparse.Namespace) -> None:
    """Key options that conflict, or miss the one they belong to, are refused (exit 2) before
    anything is asked, tested or saved: each would otherwise be dropped without a word (QA:
    ``--secret-stdin`` without ``--access-key-id`` saved a bucket on the AWS chain, its secret unread)."""
    if args.type == "local":
        given = [
            f
            for f in (
                "bucket",
                "prefix",
                "provider",
                "access_key_id",
                "secret_stdin",
                "ask_secret",
                "credential_command",
                "conditional",
                *S3_FLAGS,
            )
            if getattr(args, f, None)
        ]
        if given:
            flags = ", ".join(map(_flag, given))
            raise errors.UsageError(
                f"{flags} {'is a bucket setting' if len(given) == 1 else 'are bucket settings'};"
                " a local destination takes only a folder",
                hint="drop them, or save a bucket: castoff dest add NAME s3 --bucket B …",
            )
        return
    if args.path:
        raise errors.UsageError(
            f"a bucket takes no folder: {args.path!r} would be ignored",
            hint="give the bucket with --bucket B and a key prefix with --prefix P;"
            " a folder is 'castoff dest add NAME local PATH'",
        )
    if args.credential_command:
        given = [f for f in ("access_key_id", "secret_stdin", "ask_secret") if getattr(args, f)]
        if given:
            raise errors.UsageError(
                f"--credential-command conflicts with {', '.join(map(_flag, given))}:"
                " the command gives the keys at every run",
                hint="give either --credential-command CMD alone, or --access-key-id ID"
                " (with --secret-stdin or --ask-secret if you want) without it",
            )
    if args.ask_secret and not args.access_key_id:
        raise errors.UsageError(
            "--ask-secret needs --access-key-id (the key id is not secret; it is saved)",
            hint="castoff dest add NAME s3 --bucket B --access-key-id ID --ask-secret",
        )
    if args.secret_stdin and not args.access_key_id:
        raise errors.UsageError(
            "--secret-stdin needs --access-key-id: the secret read from standard input belongs to a"
            " key id (without one the bucket would use the AWS chain, and the secret would be ignored)",
            hint="castoff dest add NAME s3 --bucket B --access-key-id ID --secret-stdin < secret.txt",
        )
    if args.ask_secret and args.secret_stdin and args.no_test:
        raise errors.UsageError(
            "--secret-stdin conflicts with --ask-secret --no-test: with --ask-secret the secret is"
            " never saved (it is asked for at every run), and --secret-stdin only gives the secret"
            " to test with, which --no-test skips",
            hint="drop --secret-stdin; or drop --ask-secret to keep the secret in the keyring",
        )


def check_credentials_options(args: argparse.Namespace, saved: SavedDestination) -> None:
    """As ``check_key_options``, for ``dest credentials`` (before the keyring or config is touched)."""
    if args.forget:
        given = [f for f in ("access_key_id", "secret_stdin", "no_test") if getattr(args, f)]
        if given:
            raise errors.UsageError(
                f"--forget conflicts with {', '.join(map(_flag, given))}: --forget deletes the keys"
                " (the bucket then uses the AWS chain), it sets no new ones",
                hint=f"give --forget alone, or set new keys without it: castoff dest credentials {saved.name}"
                " --access-key-id ID --secret-stdin",
            )
        return
    if args.secret_stdin and not args.access_key_id:
        raise errors.UsageError(
            "--secret-stdin needs --access-key-id: the new key id would be asked for on the same"
            " standard input the secret is read from",
            hint=f"castoff dest credentials {saved.name} --access-key-id ID --secret-stdin < secret.txt",
        )
    if saved.credentials == "ask" and args.secret_stdin:
        raise errors.UsageError(
            f"--secret-stdin conflicts with how @{saved.name} keeps its keys: it asks for the secret"
            " at every run and never saves one, so only --access-key-id can change here",
            hint=f"give --access-key-id ID alone; to keep the secret in the keyring instead:"
            f" castoff dest add {saved.name} s3 … --access-key-id ID --replace",
        )


def _credentials(args: argparse.Namespace, settings: dict[str, Any], name: str) -> secrets.KeyPair | None:
    """Set the credential mode in ``settings``; the key pair to test (and store) with, if any
    (the options were checked by ``check_key_options``)."""
    if args.credential_command:
        settings.update(credentials="command", credential_command=args.credential_command)
        return secrets.from_command(args.credential_command) if not args.no_test else None
    if args.ask_secret:
        settings.update(credentials="ask", access_key_id=args.access_key_id)
        if args.no_test:
            return None
        return secrets.KeyPair(args.access_key_id, _secret(args, f"@{name} is tested with the secret now"))
    if args.access_key_id:
        secrets.require_keyring()  # before asking for anything
        settings["credentials"] = "keyring"
        return secrets.KeyPair(args.access_key_id, _secret(args, "the secret access key is needed"))
    settings["credentials"] = "chain"
    return None


#: what to do when 'dest add' or 'dest credentials' runs without a terminal to ask on
UNATTENDED = "give the key id with --access-key-id ID and pipe the secret with --secret-stdin"


def _secret(args: argparse.Namespace, why: str) -> str:
    if args.secret_stdin:
        return secrets.read_secret_stdin()
    return secrets.ask_secret(
        "Secret access key (not shown): ", f"{why}: pipe it with --secret-stdin or type it", hint=UNATTENDED
    )


def cmd_add(args: argparse.Namespace) -> int:
    console = Console(stderr=True)
    name = check_name(args.name, "destination")
    check_key_options(args)
    cfg = config_file(args)
    if name in cfg.destinations and not args.replace:
        raise errors.UsageError(
            f"there is already a destination {name!r}", hint="add --replace to overwrite it"
        )
    replaced = _keyring_keys(cfg, cfg.destinations[name], "removed") if name in cfg.destinations else None
    pair: secrets.KeyPair | None = None
    if args.type == "local":
        if not args.path:
            raise errors.UsageError("a local destination needs a folder: castoff dest add NAME local PATH")
        settings: dict[str, Any] = {"path": os.path.abspath(os.path.expanduser(args.path))}
        settings.update(_mounted_on(settings["path"]))
    else:
        settings = _s3_settings(args)
        # checked once, before any question: its warnings (a bucket name AWS would refuse, plain
        # HTTP) said once, not again as the destination is opened for its test
        checked = resolver(args).checked_options(SavedDestination(name, "s3", settings))
        pair = _credentials(args, settings, name)
    saved = SavedDestination(name, args.type, settings)
    dest = _open_with(resolver(args), saved, pair, checked=checked if args.type == "s3" else None)
    try:
        if not args.no_test:
            verdict = test_destination(dest)
            _print_verdict(console, SAVED_PREFIX + name, verdict)
            if not verdict.ok:
                console.print(
                    f"not saved: fix it, or add --no-test to save {name!r} as it is", highlight=False
                )
                return errors.EXIT_FAILED
    finally:
        dest.close()
    _save(cfg, saved, pair if settings.get("credentials") == "keyring" else None, replaced)
    console.print(
        f"saved destination {name!r} in {cfg.path}; use it as --to @{name}", markup=False, highlight=False
    )
    _say_credentials(console, saved)
    return 0


def _mounted_on(path: str) -> dict[str, str]:
    """The mount point and filesystem type ``path`` is on (or would be, made), to be saved with
    it: a job that finds it on another (a share not mounted: the system disk) refuses it."""
    from castoff.destinations.mounts import mount_of

    found = mount_of(path)
    return {} if found is None else {"mounted_on": found[0], "filesystem": found[1]}


def _open_with(
    res: Resolver, saved: SavedDestination, pair: secrets.KeyPair | None, *, checked: S3Options | None = None
) -> Destination:
    """``saved`` opened with ``pair`` (or the AWS chain); ``checked``: its options, checked before."""
    if saved.kind == "local":
        return res.open_saved(saved)
    options = with_keys(checked or res.checked_options(saved), pair)
    if pair is not None:  # the pair given here, not the AWS chain's
        options = replace(options, keys_hint="check the access key id and the secret given here")
    elif saved.credentials == "chain":  # dest add with no keys: its own options say where
        options = replace(
            options,
            no_keys_hint="give the key id with --access-key-id ID (the secret is asked for), or an"
            " AWS profile with --profile NAME, or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
        )
    return named_bucket(saved.name, options)


def _save(
    cfg: ConfigFile,
    saved: SavedDestination,
    pair: secrets.KeyPair | None,
    replaced: secrets.KeyPair | None = None,
) -> None:
    """Keys to the keyring (or the keys of the destination it replaces out of it), then the config;
    the keyring is put back as it was if the config cannot be saved."""
    if pair is not None:
        secrets.store(saved.name, pair)
    elif replaced is not None:
        secrets.delete(saved.name)
    try:
        cfg.put("destinations", saved.name, {"type": saved.kind, **saved.settings})
        cfg.save()
    except BaseException:
        if replaced is not None:
            secrets.store(saved.name, replaced)
        elif pair is not None:
            secrets.delete(saved.name)
        raise


def _say_credentials(console: Console, saved: SavedDestination) -> None:
    mode = saved.credentials
    if saved.kind != "s3":
        return
    if mode == "keyring":
        console.print(f"keys: in the OS keyring ({secrets.keyring_title()})", highlight=False)
        return
    words = {
        "ask": "keys: the secret is asked for at every run (never stored)",
        "command": "keys: from the credential command at every run",
        "chain": "keys: from the AWS chain (environment, ~/.aws files, profile)",
    }
    console.print(words[mode], highlight=False)


# --- list, show -------------------------------------------------------------------------------


def key_id_shown(key_id: object) -> str:
    """An access key id as castoff shows it everywhere (tables, JSON, messages): its first four
    characters. Not a secret, but the half of a pair a message never needs whole."""
    return f"{str(key_id)[:4]}…"


def shown_settings(saved: SavedDestination) -> dict[str, Any]:
    """A destination's settings as list and show print them: the access key id as everywhere."""
    settings = dict(saved.settings)
    if "access_key_id" in settings:
        settings["access_key_id"] = key_id_shown(settings["access_key_id"])
    return settings


def where(saved: SavedDestination) -> str:
    s = saved.settings
    if saved.kind == "local":
        return str(s["path"])
    text = f"s3://{s['bucket']}/{s.get('prefix', '')}".rstrip("/")
    return f"{text} at {s['endpoint']}" if "endpoint" in s else text


def cmd_list(args: argparse.Namespace) -> int:
    cfg = config_file(args)
    return print_list(
        args,
        [{"name": d.name, "type": d.kind, **shown_settings(d)} for d in cfg.destinations.values()],
        title=f"destinations ({cfg.path})",
        columns=("name", "type", "where", "keys"),
        rows=[
            ("@" + d.name, d.kind, where(d), d.credentials if d.kind == "s3" else "")
            for d in cfg.destinations.values()
        ],
        empty="no saved destinations yet: castoff dest add NAME local PATH | s3 --bucket B …",
    )


def _key_status(saved: SavedDestination) -> str:
    mode = saved.credentials
    if mode == "keyring":
        available, backend = secrets.keyring_backend()
        if not available:
            return f"keyring, but no keyring here ({backend}): the AWS chain is used"
        pair = secrets.load(saved.name)
        return (
            f"in the keyring (key {key_id_shown(pair.access_key)})"
            if pair
            else "keyring: MISSING (castoff dest credentials)"
        )
    if mode == "ask":
        return f"asked for at every run (key {key_id_shown(saved.settings['access_key_id'])})"
    if mode == "command":
        return f"from the command {saved.settings['credential_command']!r}"
    return "the AWS chain (environment, ~/.aws files, profile)"


def preset(saved: SavedDestination) -> dict[str, str]:
    """What the provider table adds to a saved bucket's own settings."""
    from castoff.destinations.providers import get_provider
    from castoff.units import format_bytes

    options = saved_s3_options(saved)
    p = get_provider(provider_of(options))
    return {
        "provider": p.title,
        "addressing": options.addressing_style or p.addressing_style,
        "checksums": options.checksum_mode or ("when_supported" if p.sdk_checksums else "when_required"),
        "part sizes": f"{format_bytes(p.min_part_size)} to {format_bytes(p.max_part_size)},"
        f" at most {p.max_parts} parts",
        "multipart ETag check": "yes" if p.multipart_etag_is_md5s else "no (Content-MD5 only)",
        "unfinished uploads": p.abandoned_uploads,
    }


def _snake_keys(info: Mapping[str, Any]) -> dict[str, Any]:
    """``{"from the provider table": {"part sizes": …}}`` as ``{"from_the_provider_table":
    {"part_sizes": …}}``."""
    return {
        k.lower().replace(" ", "_"): _snake_keys(v) if isinstance(v, Mapping) else v for k, v in info.items()
    }


def cmd_show(args: argparse.Namespace) -> int:
    saved = resolver(args).saved(args.name)
    info: dict[str, Any] = {"name": saved.name, "type": saved.kind, **shown_settings(saved)}
    if saved.kind == "s3":
        info["keys"] = _key_status(saved)
        info["from the provider table"] = preset(saved)
    if args.json:  # a script's keys in snake_case, as the settings' own (the table's are words)
        print(json.dumps(_snake_keys(info), indent=2))
        return 0
    console = Console()
    table = Table(title=f"@{saved.name}", show_header=False)
    table_adds = info.pop("from the provider table", {})
    for k, v in info.items():
        shown = str(v)
        if k in table_adds and str(table_adds[k]) != shown:  # "b2 (Backblaze B2)": one row
            shown = f"{shown} ({table_adds[k]})"
        table.add_row(k, Text(shown))  # Text, not markup: a path may hold [ ]
    for k2, v2 in table_adds.items():
        if k2 not in info:
            table.add_row(Text(k2, style="dim"), Text(str(v2)))
    console.print(table)
    return 0


# --- test -------------------------------------------------------------------------------------


def cmd_test(args: argparse.Namespace) -> int:
    console = Console()
    res = resolver(args)
    keys = ("endpoint_url", "region", "profile", "ca_bundle")
    defaults = {k: v for k in keys if (v := getattr(args, k, None))}
    worst = 0
    for given in args.targets:
        spec = given
        if (
            not given.startswith(SAVED_PREFIX)
            and res.config_path.exists()
            and given in res.config.destinations
        ):
            spec = SAVED_PREFIX + given  # dest test NAME: the saved one (./NAME for a folder)
        elif not given.startswith(SAVED_PREFIX):
            _not_a_typo(given)
        dest = res.open(spec, s3_defaults=defaults)
        try:
            verdict = test_destination(dest)
        finally:
            dest.close()
        _print_verdict(console, spec if spec.startswith(SAVED_PREFIX) else dest.name, verdict)
        worst = max(worst, 0 if verdict.ok else errors.EXIT_FAILED)
    return worst


def _not_a_typo(given: str) -> None:
    """``dest test NAME`` with no saved NAME and no folder NAME here is a misspelt name, not a
    folder to create and call writable."""
    if os.sep in given or "://" in given or given.startswith((".", "~")) or os.path.lexists(given):
        return
    raise errors.UsageError(
        f"no saved destination {given!r}, and no folder {given!r} here",
        hint=f"'castoff dest list' shows the saved ones; for a new folder here, write ./{given}",
    )


# --- credentials, remove, rename --------------------------------------------------------------


def _keyring_keys(cfg: ConfigFile, saved: SavedDestination, done: str) -> secrets.KeyPair | None:
    """The keys ``saved`` keeps in the keyring, read before they are removed or moved (None when it
    keeps none there). A keyring that cannot be reached here stops the command before it changes
    anything: the keys would stay behind, orphaned, or the destination would lose them."""
    if saved.kind != "s3" or saved.credentials != "keyring":
        return None
    available, backend = secrets.keyring_backend()
    why = f"no OS keyring is available here ({backend})"
    if available:
        try:
            return secrets.load(saved.name)
        except errors.UsageError as exc:
            why = exc.message
    raise errors.UsageError(
        f"the keys of @{saved.name} could not be {done}: {why}; nothing was changed",
        hint="run it again where the keyring that holds them is available (unlocked); to leave"
        f" them there, edit [destinations.{saved.name}] in {cfg.path} by hand",
    )


def cmd_credentials(args: argparse.Namespace) -> int:
    console = Console(stderr=True)
    res = resolver(args)
    saved = res.saved(args.name)
    if saved.kind != "s3":
        raise errors.UsageError(f"@{saved.name} is a folder: it has no keys")
    check_credentials_options(args, saved)
    cfg = res.config
    if args.forget:
        kept = _keyring_keys(cfg, saved, "removed")
        if kept is not None:
            secrets.delete(saved.name)
        cfg.update("destinations", saved.name, {"credentials": "chain"}, unset=("access_key_id",))
        cfg.save()
        console.print(f"forgot the keys of @{saved.name}; it now uses the AWS chain", highlight=False)
        return 0
    if saved.credentials == "ask":
        key_id = args.access_key_id or str(saved.settings["access_key_id"])
        cfg.update("destinations", saved.name, {"access_key_id": key_id})
        cfg.save()
        console.print(
            f"@{saved.name} now asks for the secret of key {key_id_shown(key_id)} at every run",
            markup=False,
            highlight=False,
        )
        return 0
    secrets.require_keyring(hint=secrets.no_keyring_hint(saved.name))
    key_id = args.access_key_id or secrets.ask_secret(
        "New access key id: ", "the new access key id is needed", ask=input, hint=UNATTENDED
    )
    pair = secrets.KeyPair(key_id, _secret(args, "the new secret access key is needed"))
    if not args.no_test:
        dest = _open_with(res, saved, pair)
        try:
            verdict = test_destination(dest)
        finally:
            dest.close()
        _print_verdict(console, f"@{saved.name} with the new key", verdict)
        if not verdict.ok:
            console.print("the old keys are kept; add --no-test to save the new ones anyway", highlight=False)
            return errors.EXIT_FAILED
    secrets.store(saved.name, pair)
    if saved.credentials != "keyring":
        cfg.update("destinations", saved.name, {"credentials": "keyring"}, unset=("credential_command",))
        cfg.save()
    console.print(
        f"saved the new key {key_id_shown(key_id)} of @{saved.name} in the keyring: the next job uses it,"
        " and the old key can be deactivated now",
        markup=False,
        highlight=False,
    )
    return 0


def _users(cfg: ConfigFile, name: str) -> list[str]:
    return [w.name for w in cfg.workflows.values() if SAVED_PREFIX + name in w.to]


def cmd_remove(args: argparse.Namespace) -> int:
    res = resolver(args)
    saved = res.saved(args.name)
    cfg = res.config
    users = _users(cfg, saved.name)
    if users:
        raise errors.UsageError(
            f"@{saved.name} is used by the workflow{'s' if len(users) != 1 else ''} {', '.join(users)}",
            hint=f"take it out of {'them' if len(users) != 1 else 'it'} first: castoff workflow edit"
            f" {users[0] if len(users) == 1 else 'NAME'} --to …",
        )
    kept = _keyring_keys(cfg, saved, "removed")
    if kept is not None:
        secrets.delete(saved.name)
    try:
        cfg.remove("destinations", saved.name)
        cfg.save()
    except BaseException:
        if kept is not None:
            secrets.store(saved.name, kept)
        raise
    Console(stderr=True).print(
        f"removed @{saved.name}" + (" and its keys from the keyring" if kept else ""), highlight=False
    )
    return 0


def cmd_rename(args: argparse.Namespace) -> int:
    res = resolver(args)
    saved = res.saved(args.name)
    new = check_name(args.new_name.removeprefix(SAVED_PREFIX), "destination")
    cfg = res.config
    if new in cfg.destinations:
        raise errors.UsageError(f"there is already a destination {new!r}")
    users = _users(cfg, saved.name)
    kept = _keyring_keys(cfg, saved, "moved")
    cfg.rename("destinations", saved.name, new)
    for w in users:
        to = [SAVED_PREFIX + new if t == SAVED_PREFIX + saved.name else t for t in cfg.workflows[w].to]
        cfg.update("workflows", w, {"to": to})
    try:
        if kept is not None:
            secrets.store(new, kept)
            secrets.delete(saved.name)
        cfg.save()
    except BaseException:
        if kept is not None:
            secrets.store(saved.name, kept)
            secrets.delete(new)
        raise
    Console(stderr=True).print(
        f"renamed @{saved.name} to @{new}" + (f" (and in {', '.join(users)})" if users else ""),
        highlight=False,
    )
    return 0


#: what changes the config: each holds its lock from the first read to the write
CHANGES = ("add", "credentials", "remove", "rename")
ACTIONS = {
    "add": cmd_add,
    "list": cmd_list,
    "show": cmd_show,
    "test": cmd_test,
    "credentials": cmd_credentials,
    "remove": cmd_remove,
    "rename": cmd_rename,
}


def run(args: argparse.Namespace) -> int:
    name = args.dest_command or "list"
    action = ACTIONS.get(name)
    assert action is not None
    with config_locked(args) if name in CHANGES else contextlib.nullcontext():
        return action(args)
