"""Security: TLS verified by default, no symlink out of a destination, least privilege, and no
secret in anything castoff writes or prints."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from castoff import errors
from castoff.destinations.base import MiB
from castoff.destinations.faulty import FaultPlan, FaultyDestination, PartFault
from castoff_cli import files_containing
from faults.check import BucketView, Expect, LocalView, check
from faults.plugin import Rig, make_card, s3_dest
from faults.proc import castoff, keys, s3_url
from servers import RcloneServer, self_signed_cert


@pytest.fixture
def tls_rclone(tmp_path: Path) -> Iterator[tuple[RcloneServer, Path]]:
    folder = tmp_path / "tls"
    folder.mkdir()
    cert, key = self_signed_cert(folder)
    with RcloneServer(extra_args=("--cert", str(cert), "--key", str(key))) as server:
        server.create_bucket("castoff-tls")
        yield server, cert


def test_tls_is_verified_by_default_and_ca_bundle_trusts_a_private_ca(
    tmp_path: Path, tls_rclone: tuple[RcloneServer, Path]
) -> None:
    server, cert = tls_rclone
    assert server.url.startswith("https://")
    src = tmp_path / "card"
    make_card(src, seed=3)
    env = keys(server.access_key, server.secret_key)
    url = s3_url("castoff-tls", "raw/", server.url, part_size="1MiB", provider="rclone")
    state = tmp_path / "state"
    probe = castoff("dest", "test", url, state=state, env=env)
    assert probe.returncode == 1
    assert "TLS" in probe.stdout and "ca_bundle" in " ".join(probe.stdout.split())
    refused = castoff("copy", str(src), "--to", url, "--quiet", state=state, env=env)
    assert refused.returncode == 2, refused.stdout + refused.stderr  # no destination could be used
    said = " ".join((refused.stdout + refused.stderr).split())
    assert said.count("is not trusted (self-signed certificate)") == 1, said  # once, not per file
    assert "ca_bundle=PATH" in said and "_ssl.c" not in said, said
    view = BucketView("s3://castoff-tls/raw", server.admin_client(), "castoff-tls", "raw/")
    assert view.objects() == {}  # nothing went over an unverified connection
    assert castoff("dest", "test", url, "--ca-bundle", str(cert), state=state, env=env).returncode == 0
    r = castoff("copy", str(src), "--to", url, "--ca-bundle", str(cert), "--quiet", state=state, env=env)
    assert r.returncode == 0, r.stderr
    check(
        scenario="security: TLS with a private CA",
        source=src,
        dests=[view],
        state=state,
        secrets=[server.secret_key],
        printed=r.stdout + r.stderr,
    )


def test_never_follows_a_symlink_out_of_a_destination(tmp_path: Path) -> None:
    src = tmp_path / "card"
    make_card(src, seed=4)
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "card").symlink_to(outside)  # planted: dest/card leads elsewhere
    state = tmp_path / "state"
    r = castoff("copy", str(src), "--to", str(dest), "--to", str(tmp_path / "ok"), state=state)
    assert r.returncode == 1
    assert not any(outside.rglob("*")), "castoff wrote through the link"
    (dest / "card").unlink()
    files = [p for p in src.rglob("*") if p.is_file()]
    lost = {(f"card/{p.relative_to(src).as_posix()}", str(dest)): "key-rejected" for p in files}
    check(
        scenario="security: no symlink out of a destination",
        source=src,
        dests=[LocalView(str(dest), dest), LocalView(str(tmp_path / "ok"), tmp_path / "ok")],
        state=state,
        expect=Expect(dest_failed=lost, exit_code=1),
    )


def test_whole_job_with_a_write_only_key_and_no_secret_anywhere(tmp_path: Path, moto: Any) -> None:
    src = tmp_path / "card"
    make_card(src, seed=5, big=11 * MiB)
    key, secret = moto.enable_write_only()
    state = tmp_path / "state"
    url = s3_url(moto.bucket, "raw/", moto.url, part_size="5MiB")
    r = castoff(
        "copy",
        str(src),
        "--to",
        str(tmp_path / "ssd"),
        "--to",
        url,
        "--chunk-size",
        "5M",
        "--json",
        state=state,
        env=keys(key, secret),
    )
    assert r.returncode == 0, r.stderr
    views = [
        LocalView(str(tmp_path / "ssd"), tmp_path / "ssd"),
        BucketView(f"s3://{moto.bucket}/raw", moto.admin_client(), moto.bucket, "raw/"),
    ]
    listed = castoff("jobs", "show", "--json", check_job_id(state), state=state, env=keys(key, secret))
    check(
        scenario="security: least privilege (write-only key)",
        source=src,
        dests=views,
        state=state,
        secrets=[secret],
        printed=r.stdout + r.stderr + listed.stdout + listed.stderr,
    )


def check_job_id(state: Path) -> str:
    from castoff.catalog.db import Catalog

    catalog = Catalog(state / "catalog.sqlite")
    try:
        return str(catalog.jobs(1)[0]["id"])
    finally:
        catalog.close()


def test_a_key_without_abort_gets_a_clear_message_and_loses_nothing(rig: Rig, moto: Any) -> None:
    """A part the bucket keeps refusing would make castoff abort the upload and start over; the
    key may not abort: the file fails plainly, the upload stays known, and the re-run resumes it."""
    key, secret = moto.server.enable_policy(moto.bucket, ["s3:PutObject"])
    make_card(rig.source, seed=12, big=11 * MiB)
    rig.bucket = s3_dest(moto.url, moto.bucket, key, secret, part_size=5 * MiB)
    rig.admin = moto.admin_client()
    bad = PartFault(
        "C0001", lambda: errors.IntegrityError("the part came back wrong (injected)"), index=1, times=100
    )
    faulty = FaultyDestination(rig.bucket, FaultPlan(part_faults=[bad]))
    opts = {"chunk_size": 5 * MiB, "memory_budget": 40 * MiB}
    assert rig.run([*rig.locals, faulty], **opts).exit_code == 1
    logs = " ".join(rig.runner.logs())
    assert "could not abort the upload" in logs and "AbortMultipartUpload" in logs
    name = rig.bucket.name
    rig.check(
        "security: key without AbortMultipartUpload",
        Expect(dest_failed={("card/PRIVATE/M4ROOT/CLIP/C0001.MP4", name): "integrity"}, exit_code=1),
        faults=1,
    )
    assert len(rig.runner.catalog.open_uploads()) == 1
    assert rig.run(**opts).exit_code == 0, rig.runner.logs()
    rig.check("security: key without AbortMultipartUpload")


@pytest.mark.parametrize(
    ("url", "words"),
    [
        (
            "s3://b/raw/?secret_access_key=SECRET-IN-URL-1&region=eu-west-1",
            "unknown S3 option 'secret_access_key'",
        ),
        (
            "s3://b/raw/?region=eu-west-1&aws_session_token=SECRET-IN-URL-1",
            "unknown S3 option 'aws_session_token'",
        ),
        ("s3:///raw/?password=SECRET-IN-URL-1", "no valid bucket name"),
        ("gopher://x/?Secret-Key=SECRET-IN-URL-1", "unknown destination scheme"),
    ],
)
def test_a_secret_typed_into_a_url_is_never_echoed(tmp_path: Path, url: str, words: str) -> None:
    src = tmp_path / "card"
    make_card(src, seed=5)
    state = tmp_path / "state"
    r = castoff("copy", str(src), "--to", url, state=state)
    out = " ".join((r.stdout + r.stderr).split())
    assert r.returncode == 2 and words in out, out
    assert "SECRET-IN-URL-1" not in out and "=***" in out
    assert "Traceback" not in out
    assert not state.exists() or not files_containing("SECRET-IN-URL-1", [state])
