"""A job killed between the server's answer to CreateMultipartUpload and the catalog's record of
it: the upload exists and no uploads row names it. The intent committed before the request lets
the next job find it and abort it where the key may list uploads, and say so where it may not."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from castoff.catalog.db import Catalog
from castoff.destinations.base import MiB
from engine_runner import write
from faults.check import BucketView
from faults.proc import castoff, finish, keys, s3_url

#: castoff, dying (as SIGKILL would) at the moment it would record a created multipart upload
DIE_BEFORE_RECORD = """
import os, sys
from castoff.catalog import db
db.Catalog.open_upload = lambda *a, **k: os._exit(9)
from castoff.cli import main
sys.exit(main())
"""


def _killed_in_the_window(src: Path, state: Path, url: str, env: dict[str, str]) -> None:
    cmd = [sys.executable, "-c", DIE_BEFORE_RECORD, "--state-dir", str(state), "copy", str(src), "--quiet"]
    proc = subprocess.Popen(
        [*cmd, "--to", url, "--chunk-size", "5M"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    finish(proc)
    assert proc.returncode == 9


def _intents(state: Path) -> list[Any]:
    catalog = Catalog(state / "catalog.sqlite")
    try:
        return [i for ident in _idents(catalog) for i in catalog.upload_intents(ident)]
    finally:
        catalog.close()


def _idents(catalog: Catalog) -> set[str]:
    return {str(r["dest_ident"]) for r in catalog._query("SELECT dest_ident FROM upload_intents")}


def _card(tmp_path: Path) -> tuple[Path, bytes]:
    data = bytes(range(256)) * (12 * MiB // 256)
    src = tmp_path / "card"
    write(src / "A001.MOV", data)
    return src, data


def _orphan_on_rclone(
    tmp_path: Path, src: Path, rclone_s3: Any
) -> tuple[Path, dict[str, str], str, BucketView, set[tuple[str, str]]]:
    """A job killed in the instant: (state, env, url, a view of the bucket, its open uploads)."""
    state = tmp_path / "state"
    env = keys(rclone_s3.access_key, rclone_s3.secret_key)
    url = s3_url(rclone_s3.bucket, "raw/", rclone_s3.url, part_size="5MiB")
    view = BucketView(f"s3://{rclone_s3.bucket}/raw", rclone_s3.admin_client(), rclone_s3.bucket, "raw/")
    _killed_in_the_window(src, state, url, env)
    return state, env, url, view, view.multipart_uploads()


def test_an_upload_created_but_not_recorded_is_aborted_by_the_next_job(
    tmp_path: Path, rclone_s3: Any
) -> None:
    src, data = _card(tmp_path)
    state, env, url, view, orphans = _orphan_on_rclone(tmp_path, src, rclone_s3)
    assert len(orphans) == 1  # the server made it; the catalog has no uploads row, only the intent
    assert [i.target for i in _intents(state)] == ["raw/card/A001.MOV"]
    listed = castoff("uploads", state=state, env=env)
    assert listed.returncode == 0, listed.stderr
    assert "raw/card/A001.MOV: a job" in " ".join(listed.stdout.split())  # said, with what cleans it

    r = castoff("copy", str(src), "--to", url, "--chunk-size", "5M", state=state, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "aborting the unfinished upload of raw/card/A001.MOV" in " ".join(
        r.stdout.split() + r.stderr.split()
    )
    assert view.multipart_uploads() == set()  # the orphan is gone, and the new upload completed
    admin = rclone_s3.admin_client()
    assert admin.get_object(Bucket=rclone_s3.bucket, Key="raw/card/A001.MOV")["Body"].read() == data
    assert _intents(state) == []


def test_a_finished_job_leaves_no_intent_and_aborts_nothing(tmp_path: Path, rclone_s3: Any) -> None:
    src, _ = _card(tmp_path)
    state = tmp_path / "state"
    env = keys(rclone_s3.access_key, rclone_s3.secret_key)
    url = s3_url(rclone_s3.bucket, "raw/", rclone_s3.url, part_size="5MiB")
    r = castoff("copy", str(src), "--to", url, "--chunk-size", "5M", state=state, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert _intents(state) == []
    assert "aborting" not in r.stdout + r.stderr


def test_a_write_only_key_is_told_an_upload_may_be_left_once(tmp_path: Path, moto: Any) -> None:
    src, data = _card(tmp_path)
    state = tmp_path / "state"
    key, secret = moto.enable_write_only()
    env = keys(key, secret)
    url = s3_url(moto.bucket, "raw/", moto.url, part_size="5MiB")
    _killed_in_the_window(src, state, url, env)
    admin = moto.admin_client()
    assert len(admin.list_multipart_uploads(Bucket=moto.bucket).get("Uploads", [])) == 1

    r = castoff("copy", str(src), "--to", url, "--chunk-size", "5M", state=state, env=env)
    said = " ".join(r.stdout.split() + r.stderr.split())
    assert r.returncode == 0, said  # every file is verified: a warning, not a failure
    assert "an unfinished multipart upload of raw/card/A001.MOV may be left there" in said
    assert "lifecycle rule" in said
    assert admin.get_object(Bucket=moto.bucket, Key="raw/card/A001.MOV")["Body"].read() == data
    assert _intents(state) == []  # said once: the next run is quiet about it
    again = castoff("copy", str(src), "--to", url, "--chunk-size", "5M", state=state, env=env)
    assert again.returncode == 0
    assert "unfinished upload" not in again.stdout + again.stderr


def test_an_upload_begun_far_from_the_intent_is_not_taken_for_its_own(tmp_path: Path, rclone_s3: Any) -> None:
    src, _ = _card(tmp_path)
    state, env, url, view, orphans = _orphan_on_rclone(tmp_path, src, rclone_s3)
    catalog = Catalog(state / "catalog.sqlite")
    with catalog.batch() as db:  # the intent is two hours older than the upload on the server
        db.execute("UPDATE upload_intents SET created_at = created_at - 7200")  # type: ignore[attr-defined]
    catalog.close()
    r = castoff("copy", str(src), "--to", url, "--chunk-size", "5M", state=state, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert view.multipart_uploads() == orphans  # someone else's, for all castoff can tell: kept
    assert _intents(state) == []


def test_a_start_refused_at_once_leaves_no_intent(tmp_path: Path, moto: Any) -> None:
    src, _ = _card(tmp_path)
    state = tmp_path / "state"
    key, secret = moto.server.enable_policy(moto.bucket, ["s3:AbortMultipartUpload"])
    url = s3_url(moto.bucket, "raw/", moto.url, part_size="5MiB")
    r = castoff("copy", str(src), "--to", url, "--chunk-size", "5M", state=state, env=keys(key, secret))
    assert r.returncode != 0
    assert "AccessDenied" in r.stdout + r.stderr or "denied" in (r.stdout + r.stderr).lower()
    assert _intents(state) == []
    assert "may be left there" not in r.stdout + r.stderr
