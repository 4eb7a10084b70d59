"""Turn what follows ``--to`` (``@name`` of a saved destination, a folder, an s3:// URL) into a
destination, after the checks that need no request: bucket name rules, plain HTTP, CA bundle, keys.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from castoff import errors
from castoff.config.store import (
    S3_URL_KEYS,
    ConfigError,
    ConfigFile,
    OptionCheck,
    SavedDestination,
    default_path,
)
from castoff.destinations.base import Destination

if TYPE_CHECKING:
    from castoff.config import secrets
    from castoff.destinations.s3 import S3Options

Warn = Callable[[str], None]
SAVED_PREFIX = "@"


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_transport(options: S3Options, *, insecure_http: bool, label: str, warn: Warn) -> None:
    """Plain HTTP only to this computer unless asked for; a CA bundle must exist."""
    if options.endpoint_url:
        url = urlsplit(options.endpoint_url)
        if url.scheme == "http" and not is_loopback(url.hostname):
            if not insecure_http:
                raise errors.UsageError(
                    f"{label}: {options.endpoint_url} is plain HTTP to another computer:"
                    " the files and the request headers would cross the network unencrypted",
                    hint="use https://, or add --insecure-http if you accept an unencrypted transfer",
                )
            warn(
                f"{label}: the transfer to {options.endpoint_url} is UNENCRYPTED"
                " (plain HTTP, allowed by --insecure-http)"
            )
    if options.ca_bundle and not Path(options.ca_bundle).expanduser().is_file():
        raise errors.UsageError(
            f"{label}: the CA bundle {options.ca_bundle} does not exist",
            hint="give the PEM file of your private certificate authority",
        )


def provider_of(options: S3Options) -> str:
    from castoff.destinations.providers import get_provider, guess_provider

    if options.provider:
        return get_provider(options.provider).name
    if options.endpoint_url:
        return guess_provider(urlsplit(options.endpoint_url).hostname).name
    return "aws"


def check_bucket(options: S3Options, *, label: str, warn: Warn) -> None:
    """The provider's bucket name rules, before any request is sent."""
    from castoff.config import names  # here: a job without a bucket need not compile its rules

    verdict = names.check_name(options.bucket, provider_of(options), region=options.region)
    for text in verdict.warnings:
        warn(f"{label}: {text}")
    if verdict.errors:
        raise errors.UsageError(
            f"{label}: bad bucket name {options.bucket!r} ({verdict.rules}): " + "; ".join(verdict.errors),
            hint="name the bucket exactly as it exists at the provider",
        )


def saved_s3_options(saved: SavedDestination, defaults: Mapping[str, object] | None = None) -> S3Options:
    """The S3Options a saved destination describes (no keys yet), over the job's ``defaults``."""
    from castoff.destinations import s3

    settings, label = saved.settings, SAVED_PREFIX + saved.name
    query = [(k, _text(settings[k])) for k in S3_URL_KEYS if k in settings]
    options = s3.options_for(
        str(settings["bucket"]), "", query, dict(defaults or {}), said=label, label=label
    )
    return replace(options, prefix=str(settings.get("prefix", "")))


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def with_keys(options: S3Options, pair: secrets.KeyPair | None) -> S3Options:
    if pair is None:
        return options
    return replace(
        options, access_key=pair.access_key, secret_key=pair.secret_key, session_token=pair.session_token
    )


def no_keys_hint(saved: SavedDestination) -> str:
    """What to do when a saved bucket finds no keys at all: in castoff's own words, not the URL's."""
    return (
        f"save its keys: castoff dest credentials {saved.name}; or set AWS_ACCESS_KEY_ID and"
        f" AWS_SECRET_ACCESS_KEY, or name an AWS profile: castoff dest add {saved.name} s3 … --profile"
        " NAME --replace"
    )


def keys_hint(saved: SavedDestination) -> str | None:
    """What to do when the server refuses the keys of a saved bucket, by where they come from
    (None: the AWS chain, whose own hint says it)."""
    fix = f"castoff dest credentials {saved.name}"
    mode = saved.credentials
    if mode == "keyring":
        return f"its keys are the pair saved in the OS keyring: set the right one with {fix}"
    if mode == "ask":
        return (
            "its access key id is saved in the config, its secret typed at each run: check the"
            f" secret typed, or set the right key id with {fix} --access-key-id ID"
        )
    if mode == "command":
        return (
            "its keys are what its credential command prints (castoff dest show"
            f" {saved.name} names the command): check them, or save a pair with {fix}"
        )
    return None


def named_bucket(name: str, options: S3Options) -> Destination:
    """An S3 destination shown by its saved name (``@archive``) in progress, logs and reports."""
    from castoff.destinations import s3

    class SavedBucket(s3.S3Destination):
        @property
        def name(self) -> str:
            return SAVED_PREFIX + name

    return SavedBucket(options)


class Resolver:
    """Opens the destinations of one command; loads the config only when a saved one is named,
    and gets each saved destination's keys once."""

    def __init__(
        self,
        config_path: Path | None = None,
        *,
        insecure_http: bool = False,
        warn: Warn | None = None,
        check_option: OptionCheck | None = None,
    ) -> None:
        self.config_path = config_path or default_path()
        self.insecure_http = insecure_http
        self.warn: Warn = warn or (lambda text: None)
        self._check_option = check_option
        self._config: ConfigFile | None = None
        self._keys: dict[str, secrets.KeyPair | None] = {}

    @property
    def config(self) -> ConfigFile:
        if self._config is None:
            self._config = ConfigFile.load(self.config_path, self._check_option)
            for text in self._config.warnings:
                self.warn(text)
        return self._config

    def saved(self, name: str) -> SavedDestination:
        name = name.removeprefix(SAVED_PREFIX)
        found = self.config.destinations.get(name)
        if found is None:
            known = ", ".join(sorted(self.config.destinations)) or "none yet"
            raise errors.UsageError(
                f"no saved destination {name!r} (saved: {known})",
                hint="'castoff dest add NAME ...' saves one; 'castoff dest list' shows them",
            )
        return found

    def open(self, spec: str, *, s3_defaults: Mapping[str, object] | None = None) -> Destination:
        if spec.startswith(SAVED_PREFIX):
            return self.open_saved(self.saved(spec), s3_defaults=s3_defaults)
        if spec[:5].lower() == "s3://":
            from castoff.destinations import s3

            options = s3.parse_s3_url(spec, dict(s3_defaults or {}))
            check_bucket(options, label=spec, warn=self.warn)
            check_transport(options, insecure_http=self.insecure_http, label=spec, warn=self.warn)
            return s3.S3Destination(options)
        self._not_a_saved_name(spec)
        from castoff.destinations.spec import open_destination

        return open_destination(spec, s3_defaults=s3_defaults)

    def _not_a_saved_name(self, spec: str) -> None:
        """``--to ssd`` with no folder ssd here but a saved ssd: the user meant ``@ssd``."""
        if os.sep in spec or "://" in spec or os.path.exists(spec):
            return
        if not self.config_path.exists():
            return
        try:
            saved = spec in self.config.destinations
        except ConfigError:
            return  # a folder is asked for; the config's own problem is reported where it is used
        if saved:
            raise errors.UsageError(
                f"there is no folder {spec!r} here, but there is a saved destination {spec!r}",
                hint=f"write @{spec} for the saved destination, or ./{spec} for a new folder",
            )

    def open_saved(
        self, saved: SavedDestination, *, s3_defaults: Mapping[str, object] | None = None
    ) -> Destination:
        if saved.kind == "local":
            from castoff.destinations.local import LocalDestination

            path = os.path.expanduser(str(saved.settings["path"]))
            point, fs = saved.settings.get("mounted_on"), saved.settings.get("filesystem")
            mount = (point, fs) if isinstance(point, str) and isinstance(fs, str) else None
            return LocalDestination(path, name=SAVED_PREFIX + saved.name, saved_mount=mount)
        return named_bucket(saved.name, self.s3_options(saved, s3_defaults))

    def checked_options(
        self, saved: SavedDestination, s3_defaults: Mapping[str, object] | None = None
    ) -> S3Options:
        """The options of a saved bucket, checked, without keys."""
        label = SAVED_PREFIX + saved.name
        options = saved_s3_options(saved, s3_defaults)
        check_bucket(options, label=label, warn=self.warn)
        insecure = self.insecure_http or bool(saved.settings.get("insecure_http", False))
        check_transport(options, insecure_http=insecure, label=label, warn=self.warn)
        return options

    def s3_options(
        self, saved: SavedDestination, s3_defaults: Mapping[str, object] | None = None
    ) -> S3Options:
        """The options of a saved bucket, checked, with its keys (and, for keys castoff keeps,
        what to do when the server refuses them: not the AWS chain's variables)."""
        pair = self.keys(saved)
        options = with_keys(self.checked_options(saved, s3_defaults), pair)
        if pair is None:
            return replace(options, no_keys_hint=no_keys_hint(saved))
        return replace(options, keys_hint=keys_hint(saved))

    def keys(self, saved: SavedDestination) -> secrets.KeyPair | None:
        if saved.name not in self._keys:
            self._keys[saved.name] = self._fetch_keys(saved)
        return self._keys[saved.name]

    def _fetch_keys(self, saved: SavedDestination) -> secrets.KeyPair | None:
        from castoff.config import secrets  # here: it and its subprocess only for a saved bucket

        mode, label = saved.credentials, SAVED_PREFIX + saved.name
        if mode == "ask":
            key_id = str(saved.settings["access_key_id"])
            secret = secrets.ask_secret(
                f"Secret access key for {label} (key {key_id[:4]}…, not shown): ",
                f"{label} asks for its secret at every run (--ask-secret)",
                # (dest credentials changes only the key id of such a bucket)
                hint=f"run it from a terminal; to run it unattended, save the secret in the keyring:"
                f" castoff dest add {saved.name} s3 … --replace --access-key-id ID (without --ask-secret),"
                " or give a --credential-command CMD instead",
            )
            return secrets.KeyPair(key_id, secret)
        if mode == "command":
            return secrets.from_command(str(saved.settings["credential_command"]))
        if mode != "keyring":
            return None  # the AWS chain: environment, shared files, profile, roles
        available, backend = secrets.keyring_backend()
        if not available:
            self.warn(
                f"{label}: no OS keyring here ({backend}); using the AWS chain instead"
                " (environment, ~/.aws files, profile)"
            )
            return None
        pair = secrets.load(saved.name)
        if pair is None:
            raise errors.UsageError(
                f"{label}: its keys are not in the keyring",
                hint=f"set them with: castoff dest credentials {saved.name} (a destination renamed by hand"
                f" in {self.config_path} leaves its keys under its old name; 'castoff dest rename'"
                " takes them along)",
            )
        return pair
