"""`castoff uploads`, `castoff uploads abort` and `castoff dest test`, as a user runs them."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

import pytest

from castoff.catalog.db import Catalog
from castoff.destinations.base import MiB
from engine_runner import write
from faults.check import BucketView
from faults.proc import castoff, keys, s3_url, start
from reports.kit import last_report
from servers import LOCALHOST, free_port, s3_error_xml


def open_uploads(state: Path) -> list[Any]:
    if not (state / "catalog.sqlite").exists():
        return []
    catalog = Catalog(state / "catalog.sqlite")
    try:
        return catalog.open_uploads()
    finally:
        catalog.close()


@pytest.fixture
def two_open_uploads(tmp_path: Path, rclone_s3: Any) -> tuple[Path, dict[str, str], list[BucketView]]:
    """A job SIGKILLed while one file goes to two prefixes: two multipart uploads left open."""
    src = tmp_path / "card"
    write(src / "A001.MOV", b"x" * (6 * MiB))
    state = tmp_path / "state"
    env = keys(rclone_s3.access_key, rclone_s3.secret_key)
    args = ["copy", str(src), "--quiet", "--chunk-size", "1M", "--bwlimit", "1M"]
    views = []
    for prefix in ("p1", "p2"):
        args += [
            "--to",
            s3_url(rclone_s3.bucket, f"{prefix}/", rclone_s3.url, part_size="1MiB", provider="rclone"),
        ]
        views.append(
            BucketView(
                f"s3://{rclone_s3.bucket}/{prefix}", rclone_s3.admin_client(), rclone_s3.bucket, f"{prefix}/"
            )
        )
    proc = start(args, state=state, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ups = open_uploads(state)
        if len(ups) == 2 and all(u.parts for u in ups):
            break
        time.sleep(0.1)
    proc.kill()
    proc.communicate(timeout=30)
    assert len(open_uploads(state)) == 2
    return state, env, views


def test_uploads_lists_then_aborts_by_number_and_all(two_open_uploads: Any) -> None:
    state, env, views = two_open_uploads
    listed = castoff("uploads", state=state, env=env)
    assert listed.returncode == 0, listed.stderr
    text = " ".join(listed.stdout.split())
    assert "p1/card/A001.MOV" in text and "p2/card/A001.MOV" in text
    assert "lifecycle" in text
    first, second = open_uploads(state)
    as_json = castoff("uploads", "--json", state=state, env=env)  # QA: "unrecognized arguments"
    assert as_json.returncode == 0, as_json.stderr
    rows = json.loads(as_json.stdout)
    assert [(r["id"], r["key"]) for r in rows] == [(first.id, first.target), (second.id, second.target)]
    for r in rows:
        assert set(r) == {
            "id",
            "destination",
            "key",
            "parts_done",
            "parts_total",
            "size",
            "created_at",
            "job_id",
        }
        assert (r["size"], r["parts_total"]) == (6 * MiB, 6) and 0 < r["parts_done"] <= 6
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4}", r["created_at"])
    assert json.loads(castoff("uploads", "list", "--json", state=state, env=env).stdout) == rows
    assert castoff("uploads", "abort", state=state, env=env).returncode == 2  # names nothing
    typo = castoff("uploads", "abort", str(first.id), "99", state=state, env=env)
    assert typo.returncode == 2  # a number that is no open upload: nothing aborted, not even #first
    assert "numbered 99; nothing was aborted" in " ".join(typo.stderr.split())
    assert len(open_uploads(state)) == 2
    assert len(set().union(*(v.multipart_uploads() for v in views))) == 2
    r = castoff("uploads", "abort", str(first.id), state=state, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"aborted #{first.id}" in r.stdout
    on_server = set().union(*(v.multipart_uploads() for v in views))
    assert {u for _, u in on_server} == {second.token["upload_id"]}
    none_old = castoff("uploads", "abort", "--all", "--older-than", "1h", state=state, env=env)
    assert none_old.returncode == 0  # nothing that old: nothing to do (a nightly cleanup succeeds)
    assert "no unfinished uploads older than 1h" in none_old.stdout
    assert [u.id for u in open_uploads(state)] == [second.id]
    r = castoff("uploads", "abort", "--all", "--older-than", "0s", state=state, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert not open_uploads(state)
    assert not set().union(*(v.multipart_uploads() for v in views))
    assert "no unfinished uploads" in castoff("uploads", state=state, env=env).stdout
    assert json.loads(castoff("uploads", "--json", state=state, env=env).stdout) == []


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["uploads", "list", "--all"], "--all is for 'castoff uploads abort --all'"),
        (["uploads", "--all"], "--all is for 'castoff uploads abort --all'"),
        (["uploads", "abort", "--all", "--json"], "--json is for the list"),
    ],
)
def test_uploads_options_of_the_other_action_are_refused(tmp_path: Path, args: list[str], said: str) -> None:
    """QA: 'uploads list --all' was accepted and meant nothing."""
    r = castoff(*args, state=tmp_path / "state")
    assert r.returncode == 2, r.stdout + r.stderr
    assert said in " ".join(r.stderr.split())
    assert "Traceback" not in r.stderr


def test_uploads_abort_says_when_the_key_may_not_abort(two_open_uploads: Any) -> None:
    state, _, views = two_open_uploads
    wrong = keys("nobody-knows-this", "wrong")
    r = castoff("uploads", "abort", "--all", state=state, env=wrong)
    assert r.returncode == 1
    assert "unknown access key" in " ".join(r.stdout.split())
    assert len(open_uploads(state)) == 2  # still known, so it can be aborted later
    assert len(set().union(*(v.multipart_uploads() for v in views))) == 2


def test_uploads_abort_of_an_upload_the_server_forgot_says_so(two_open_uploads: Any) -> None:
    """QA: an upload the server no longer had was said "aborted #4" like any other."""
    state, env, views = two_open_uploads
    first, second = open_uploads(state)
    views[0].client.abort_multipart_upload(
        Bucket=views[0].bucket, Key=first.target, UploadId=first.token["upload_id"]
    )
    r = castoff("uploads", "abort", str(first.id), str(second.id), state=state, env=env)
    said = " ".join(r.stdout.split())
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"aborted #{first.id}" not in said, said
    assert f"#{first.id}: " in said and "already gone from the server (NoSuchUpload" in said, said
    assert "the catalog has forgotten it too" in said, said
    assert f"aborted #{second.id}" in said, said
    assert not open_uploads(state)


def test_dest_test_ok_leaves_nothing_behind(tmp_path: Path, rclone_s3: Any) -> None:
    env = keys(rclone_s3.access_key, rclone_s3.secret_key)
    url = s3_url(rclone_s3.bucket, "raw/", rclone_s3.url)
    r = castoff("dest", "test", url, state=tmp_path / "state", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "ok" in r.stdout and "takes writes" in " ".join(r.stdout.split())
    admin = rclone_s3.admin_client()
    assert admin.list_objects_v2(Bucket=rclone_s3.bucket).get("KeyCount", 0) == 0
    view = BucketView("b", admin, rclone_s3.bucket, "")
    assert not view.multipart_uploads()
    assert rclone_s3.secret_key not in r.stdout + r.stderr


@pytest.mark.parametrize(
    ("case", "words"),
    [
        ("unknown key", "does not know this access key"),
        ("wrong secret", "secret key is wrong"),
        ("no such bucket", "no such bucket"),
        ("unreachable", "cannot be reached"),
        ("clock skew", "clock is too far off"),
        ("no credentials", "no credentials"),
    ],
)
def test_dest_test_explains_failures(
    tmp_path: Path, rclone_s3: Any, fault_proxy: Any, case: str, words: str
) -> None:
    env = keys(rclone_s3.access_key, rclone_s3.secret_key)
    bucket, endpoint = rclone_s3.bucket, rclone_s3.url
    if case == "unknown key":
        env = keys("AKIAUNKNOWN", rclone_s3.secret_key)
    elif case == "wrong secret":
        env = keys(rclone_s3.access_key, "not-the-secret")
    elif case == "no such bucket":
        bucket = "castoff-no-such-bucket"
    elif case == "unreachable":
        endpoint = f"http://{LOCALHOST}:{free_port()}"
    elif case == "clock skew":
        proxy = fault_proxy(rclone_s3)
        proxy.respond(403, s3_error_xml("RequestTimeTooSkewed", "too skewed"), times=5)
        endpoint = proxy.url
    elif case == "no credentials":
        env = keys("", "")
        del env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]
    r = castoff("dest", "test", s3_url(bucket, "raw/", endpoint), state=tmp_path / "state", env=env)
    out = " ".join((r.stdout + r.stderr).split())
    assert r.returncode == 1, out
    assert "failed" in out and words in out
    assert "Traceback" not in out


def test_dest_test_access_denied_and_no_abort_on_moto(tmp_path: Path, moto: Any) -> None:
    read_only = moto.server.enable_policy(moto.bucket, ["s3:GetObject"])
    url = s3_url(moto.bucket, "raw/", moto.url)
    r = castoff("dest", "test", url, state=tmp_path / "s", env=keys(*read_only))
    assert r.returncode == 1
    assert "may not write" in " ".join(r.stdout.split())
    put_only = moto.server.enable_policy(moto.bucket, ["s3:PutObject"])
    r = castoff("dest", "test", url, state=tmp_path / "s", env=keys(*put_only))
    out = " ".join(r.stdout.split())
    assert r.returncode == 1
    assert "cannot abort uploads" in out and "s3:AbortMultipartUpload" in out


def test_the_default_memory_budget_leaves_room_for_a_buckets_client(tmp_path: Path, rclone_s3: Any) -> None:
    """256 MiB for folders only; 32 MiB less with a bucket, whose S3 client would otherwise push a
    job past 300 MiB; --memory as given either way. The job records the budget it ran with."""
    src = tmp_path / "card"
    write(src / "a.bin", b"a" * 1000)
    state = tmp_path / "state"
    env = keys(rclone_s3.access_key, rclone_s3.secret_key)
    bucket = s3_url(rclone_s3.bucket, "m/", rclone_s3.url)
    runs = [
        (["--to", str(tmp_path / "d1")], 256 * MiB),
        (["--to", str(tmp_path / "d2"), "--to", bucket], 224 * MiB),
        (["--to", str(tmp_path / "d3"), "--to", bucket, "--memory", "300M"], 300 * MiB),
    ]
    for args, _ in runs:
        r = castoff("copy", str(src), "--quiet", *args, state=state, env=env)
        assert r.returncode == 0, r.stdout + r.stderr
    catalog = Catalog(state / "catalog.sqlite")
    try:
        budgets = [json.loads(j["options"])["memory"] for j in reversed(catalog.jobs(10))]
    finally:
        catalog.close()
    assert budgets == [want for _, want in runs]


def test_a_chunk_too_big_for_the_default_budget_says_which_memory_to_give(tmp_path: Path) -> None:
    src = tmp_path / "card"
    write(src / "a.bin", b"a")
    r = castoff(
        "copy", str(src), "--to", str(tmp_path / "d"), "--chunk-size", "200M", state=tmp_path / "s", env={}
    )
    out = " ".join(r.stderr.split())
    assert r.returncode == 2, out
    assert "default memory budget (256.0 MiB) is too small for --chunk-size 200.0 MiB" in out
    assert "give --memory 400M or more" in out
    assert not (tmp_path / "d").exists()


def _three_cards(tmp_path: Path) -> list[str]:
    """Three cards, each with its own IMG_0001.JPG of the same date: one date folder for all."""
    cards = []
    for name in ("A", "B", "C"):
        photo = tmp_path / name / "IMG_0001.JPG"
        write(photo, f"card {name}".encode() * 100)
        os.utime(photo, (1_780_000_000, 1_780_000_000))
        cards.append(str(tmp_path / name))
    return cards


def _bucket_bodies(client: Any, bucket: str) -> dict[str, bytes]:
    listed = client.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {
        o["Key"]: client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
        for o in listed
        if not o["Key"].endswith(".castoff.json")
    }


@pytest.mark.parametrize("conditional", ["off", "on"])
def test_three_files_of_one_job_on_one_key_are_all_kept(
    tmp_path: Path, moto: Any, rclone_s3: Any, conditional: str
) -> None:
    """QA: without conditional writes, two files of one job landing on one key overwrote each
    other, all "verified" (the catalog learnt of the first only when it landed); with them, the
    third file asked for "(2)" again and again, 250 requests a second, forever."""
    server = rclone_s3 if conditional == "off" else moto
    env = keys(server.access_key, server.secret_key) if conditional == "off" else keys("a", "b")
    url = s3_url(server.bucket, "", server.url, conditional=conditional)
    args = ["copy", *_three_cards(tmp_path), "--layout", "date", "--to", url, "--quiet"]
    r = castoff(*args, state=tmp_path / "state", env=env, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    bodies = _bucket_bodies(server.admin_client(), server.bucket)
    assert sorted(bodies.values()) == sorted(f"card {n}".encode() * 100 for n in "ABC")
    assert sorted(k.rsplit("/", 1)[-1] for k in bodies) == [
        "IMG_0001 (2).JPG",
        "IMG_0001 (3).JPG",
        "IMG_0001.JPG",
    ]
    again = castoff(*args, state=tmp_path / "state", env=env, timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr
    assert _bucket_bodies(server.admin_client(), server.bucket) == bodies  # nothing new, nothing lost


def test_a_file_verified_there_from_another_source_is_not_taken_for_this_one(tmp_path: Path) -> None:
    """QA: camera 2's IMG_0001.CR3 (same name, size and mtime as camera 1's, another card) was
    "verified before" because camera 1's had landed at that target; it was never copied."""
    cams = []
    for n in (1, 2):
        photo = tmp_path / f"cam{n}" / "EOS_DIGITAL" / "IMG_0001.CR3"
        write(photo, f"camera {n} photo".encode())
        os.utime(photo, (1_780_000_000, 1_780_000_000))
        cams.append(photo.parent)
    out = tmp_path / "ssd"
    for cam in cams:
        r = castoff("copy", str(cam), "--to", str(out), "--quiet", state=tmp_path / "state")
        assert r.returncode == 0, r.stdout + r.stderr
    assert (out / "EOS_DIGITAL" / "IMG_0001.CR3").read_bytes() == b"camera 1 photo"
    assert (out / "EOS_DIGITAL" / "IMG_0001 (2).CR3").read_bytes() == b"camera 2 photo"


def test_a_part_size_below_the_chunk_size_is_honoured_or_said(tmp_path: Path, moto: Any) -> None:
    """QA: ``--part-size 5M`` gave 16 MiB parts (a part is at least one chunk), silently."""
    src = tmp_path / "card"
    write(src / "A001.MXF", os.urandom(12 * MiB))
    env = keys("a", "b")
    admin = moto.server.admin_client()

    def parts(key: str) -> str:
        return str(admin.head_object(Bucket=moto.bucket, Key=key)["ETag"]).strip('"').rpartition("-")[2]

    to = ["--to", s3_url(moto.bucket, "p/", moto.url)]
    r = castoff("copy", str(src), "--quiet", "--part-size", "5M", *to, state=tmp_path / "s1", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert parts("p/card/A001.MXF") == "3"
    to = ["--to", s3_url(moto.bucket, "q/", moto.url)]
    r = castoff(
        "copy", str(src), "--part-size", "5M", "--chunk-size", "8M", *to, state=tmp_path / "s2", env=env
    )
    assert r.returncode == 0, r.stdout + r.stderr
    said = " ".join(r.stderr.split())
    assert "part size 5.0 MiB is below --chunk-size 8.0 MiB: its parts will be 8.0 MiB" in said
    assert parts("q/card/A001.MXF") == "2"


@pytest.mark.parametrize(
    ("given", "url_options", "flags"),
    [
        ("4194304 bytes (4.0 MiB)", {}, ["--part-size", "4M"]),
        ("1024 bytes (1.0 KiB)", {"part_size": "1K"}, []),
        ("6442450944 bytes (6.0 GiB)", {}, ["--part-size", "6G"]),
    ],
)
def test_a_part_size_the_provider_refuses_stops_the_job_before_a_byte_is_sent(
    tmp_path: Path, moto: Any, given: str, url_options: dict[str, str], flags: list[str]
) -> None:
    """QA: ``--part-size 4M`` to a server with a 5 MiB minimum was only warned about: all 120 MiB
    went out, then CompleteMultipartUpload answered EntityTooSmall (exit 1)."""
    src = tmp_path / "card"
    write(src / "A001.MXF", os.urandom(12 * MiB))
    url = s3_url(moto.bucket, "ps4/", moto.url, **url_options)
    r = castoff("copy", str(src), "--to", url, *flags, state=tmp_path / "state", env=keys("a", "b"))
    assert r.returncode == 2, r.stdout + r.stderr
    said = " ".join(r.stderr.split())
    assert f"s3://{moto.bucket}/ps4: part size {given} is out of range" in said
    if given.startswith("6442450944"):
        assert "above the maximum of S3-compatible server (5368709120 bytes, 5.0 GiB)" in said
        assert "give a part size of 5GiB or less" in said
    else:
        assert "below the minimum of S3-compatible server (5242880 bytes, 5.0 MiB)" in said
        assert "give a part size of 5MiB or more" in said
    assert "Traceback" not in said and "read" not in r.stdout
    admin = moto.server.admin_client()
    assert admin.list_objects_v2(Bucket=moto.bucket).get("KeyCount") == 0
    assert not admin.list_multipart_uploads(Bucket=moto.bucket).get("Uploads")


def test_one_bucket_and_prefix_at_two_endpoints_are_two_rows(
    tmp_path: Path, moto: Any, rclone_s3: Any
) -> None:
    """The same bucket name and prefix at two servers are two destinations: the summary, the
    JSON report and the catalog keep each apart by naming its endpoint."""
    moto.server.create_bucket(rclone_s3.bucket)
    src = tmp_path / "card"
    write(src / "DCIM" / "IMG_0001.JPG", b"j" * 1000)
    write(src / "DCIM" / "IMG_0002.JPG", b"k" * 2000)
    state = tmp_path / "state"
    env = keys(rclone_s3.access_key, rclone_s3.secret_key)  # moto takes any key
    urls = [s3_url(rclone_s3.bucket, "shoot/", server.url) for server in (rclone_s3, moto)]
    r = castoff("copy", str(src), "--to", urls[0], "--to", urls[1], state=state, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    names = [f"s3://{rclone_s3.bucket}/shoot ({server.url})" for server in (rclone_s3, moto)]
    text = "".join(r.stderr.split())  # the table may fold a long name
    for name in names:
        assert "".join(name.split()) in text
    report = json.loads(next((state / "reports").glob("*.json")).read_text())
    assert set(report["summary"]) == set(names)
    assert all(s["verified"] == 2 for s in report["summary"].values())


def test_one_server_by_two_loopback_names_is_one_destination(tmp_path: Path, rclone_s3: Any) -> None:
    """``localhost`` and ``127.0.0.1`` are one server: two copies there would be one copy (and
    the second a '(2)' of each file), so the job is refused before anything is written."""
    src = tmp_path / "card"
    write(src / "IMG_0001.JPG", b"j" * 1000)
    env = keys(rclone_s3.access_key, rclone_s3.secret_key)
    other = rclone_s3.url.replace(LOCALHOST, "localhost")
    assert other != rclone_s3.url
    urls = [s3_url(rclone_s3.bucket, "shoot/", url) for url in (rclone_s3.url, other)]
    r = castoff("copy", str(src), "--to", urls[0], "--to", urls[1], state=tmp_path / "state", env=env)
    assert r.returncode == 2, r.stdout + r.stderr
    said = " ".join(r.stderr.split())
    assert f"the same destination is named twice: s3://{rclone_s3.bucket}/shoot (at" in said
    assert rclone_s3.client.list_objects_v2(Bucket=rclone_s3.bucket).get("KeyCount", 0) == 0


def test_a_bucket_written_through_one_spelling_of_its_endpoint_refuses_another(
    tmp_path: Path, rclone_s3: Any
) -> None:
    """Two cards of one name to one bucket without conditional writes, the second job with
    ``localhost`` where the first wrote ``127.0.0.1``: castoff's memory of the keys it put there is
    kept under the first spelling, so the second would have replaced the first card's photo
    unsaid. It is refused before anything is written, naming the spelling to use; with it, the
    second card's photo lands beside the first."""
    first, second = tmp_path / "a" / "EOS_DIGITAL", tmp_path / "b" / "EOS_DIGITAL"
    write(first / "IMG_0001.JPG", b"card A")
    write(second / "IMG_0001.JPG", b"card B")
    env = keys(rclone_s3.access_key, rclone_s3.secret_key)
    state = tmp_path / "state"
    url = s3_url(rclone_s3.bucket, "shoot/", rclone_s3.url)
    other = s3_url(rclone_s3.bucket, "shoot/", rclone_s3.url.replace(LOCALHOST, "localhost"))
    assert castoff("copy", str(first), "--to", url, state=state, env=env).returncode == 0
    r = castoff("copy", str(second), "--to", other, state=state, env=env)
    said = " ".join((r.stdout + r.stderr).split())
    assert r.returncode == 2, said
    assert f"castoff wrote to this bucket through the endpoint {rclone_s3.url.lower()} before" in said
    assert f"write the endpoint as {rclone_s3.url.lower()}" in said
    key = "shoot/EOS_DIGITAL/IMG_0001.JPG"
    listed = rclone_s3.client.list_objects_v2(Bucket=rclone_s3.bucket, Prefix="shoot/")["Contents"]
    assert [o["Key"] for o in listed] == [key]
    assert rclone_s3.client.get_object(Bucket=rclone_s3.bucket, Key=key)["Body"].read() == b"card A"
    assert castoff("copy", str(second), "--to", url, state=state, env=env).returncode == 0
    beside = rclone_s3.client.get_object(Bucket=rclone_s3.bucket, Key="shoot/EOS_DIGITAL/IMG_0001 (2).JPG")
    assert beside["Body"].read() == b"card B"


def _copied(
    tmp_path: Path, server: str, request: pytest.FixtureRequest, *, also: bool = False, **options: str
) -> tuple[Any, Path, Path, dict[str, str], str]:
    """A card of one photo (two with ``also``) copied to the bucket of ``server``: the bucket, the
    card, the state folder, the environment with the keys, and the URL (with ``options``)."""
    b = request.getfixturevalue(server)
    src = tmp_path / "card"
    write(src / "DCIM" / "IMG_0001.JPG", b"good" * 1000)
    if also:
        write(src / "DCIM" / "IMG_0002.JPG", b"also" * 1000)
    state = tmp_path / "state"
    env = keys(b.access_key, b.secret_key) if server == "rclone_s3" else keys("AKIDANY", "ANYSECRET")
    url = s3_url(b.bucket, "shoot/", b.url, **options)
    assert castoff("copy", str(src), "--to", url, state=state, env=env).returncode == 0
    return b, src, state, env, url


@pytest.mark.parametrize("server", ["moto", "rclone_s3"])
def test_an_object_damaged_since_is_named_by_rehash_verify_download(
    tmp_path: Path, server: str, request: pytest.FixtureRequest
) -> None:
    """An object castoff put, replaced since by other bytes: ``--rehash --verify-download`` reads
    it, calls it damaged (what it read wins over the catalog's memory), keeps it, lands the good
    copy as ``name (2).ext`` and exits 1; a later run says so again and sends nothing."""
    b, src, state, env, url = _copied(tmp_path, server, request)
    key = "shoot/card/DCIM/IMG_0001.JPG"
    head = b.client.head_object(Bucket=b.bucket, Key=key)
    b.client.put_object(Bucket=b.bucket, Key=key, Body=b"rot!" * 1000, Metadata=head["Metadata"])
    r = castoff("copy", str(src), "--to", url, "--rehash", "--verify-download", state=state, env=env)
    said = " ".join((r.stdout + r.stderr).split())
    assert r.returncode == 1, said
    assert "is DAMAGED or was changed" in said and "shoot/card/DCIM/IMG_0001 (2).JPG" in said
    good = b.client.get_object(Bucket=b.bucket, Key="shoot/card/DCIM/IMG_0001 (2).JPG")["Body"].read()
    assert good == b"good" * 1000
    assert b.client.get_object(Bucket=b.bucket, Key=key)["Body"].read() == b"rot!" * 1000  # kept
    again = castoff("copy", str(src), "--to", url, "--rehash", "--verify-download", state=state, env=env)
    said = " ".join((again.stdout + again.stderr).split())
    assert again.returncode == 1 and "still DAMAGED" in said, said
    listed = b.client.list_objects_v2(Bucket=b.bucket, Prefix="shoot/")["Contents"]
    assert sorted(o["Key"] for o in listed) == sorted([key, "shoot/card/DCIM/IMG_0001 (2).JPG"])
    # without the read, the catalog's word: the damaged object is kept, never sent over (its row
    # in the catalog says castoff put these bytes there, but it was found damaged since)
    for more in (["--rehash"], []):
        r = castoff("copy", str(src), "--to", url, *more, state=state, env=env)
        said = " ".join((r.stdout + r.stderr).split())
        assert r.returncode == 1 and "still DAMAGED" in said, (more, said)
        assert b.client.get_object(Bucket=b.bucket, Key=key)["Body"].read() == b"rot!" * 1000, more
        listed = b.client.list_objects_v2(Bucket=b.bucket, Prefix="shoot/")["Contents"]
        assert sorted(o["Key"] for o in listed) == sorted([key, "shoot/card/DCIM/IMG_0001 (2).JPG"])


@pytest.mark.parametrize("server", ["moto", "rclone_s3"])
def test_an_object_deleted_since_is_sent_again_to_its_key_by_rehash_verify_download(
    tmp_path: Path, server: str, request: pytest.FixtureRequest
) -> None:
    """An object castoff put, deleted since: ``--rehash --verify-download`` finds it gone (a
    missing object is no error, nor a conflict) and sends the file again to its own key."""
    b, src, state, env, url = _copied(tmp_path, server, request, also=True)
    key = "shoot/card/DCIM/IMG_0001.JPG"
    b.client.delete_object(Bucket=b.bucket, Key=key)
    r = castoff("copy", str(src), "--to", url, "--rehash", "--verify-download", state=state, env=env)
    said = " ".join((r.stdout + r.stderr).split())
    assert r.returncode == 0, said
    assert "Traceback" not in said and "internal error" not in said
    assert f"{key}: castoff put it there on" in said and "but it is gone: sending it again" in said
    assert b.client.get_object(Bucket=b.bucket, Key=key)["Body"].read() == b"good" * 1000
    listed = b.client.list_objects_v2(Bucket=b.bucket, Prefix="shoot/")["Contents"]
    assert sorted(o["Key"] for o in listed) == [key, "shoot/card/DCIM/IMG_0002.JPG"]


@pytest.mark.parametrize(("server", "provider"), [("rclone_s3", "rclone"), ("moto", "aws")])
def test_rehash_without_a_read_takes_the_catalogs_word_at_a_bucket(
    tmp_path: Path, server: str, provider: str, request: pytest.FixtureRequest
) -> None:
    """QA: ``--rehash`` at a bucket without conditional writes sent every object again over
    whatever its key held (someone's other bytes replaced without a word, the whole shoot
    uploaded again to check a drive), where a bucket with conditional writes counted them
    already, saying for each that a job (its own earlier run) 'has put another file there'.
    Both now take the catalog's word for the bytes castoff put there: nothing is sent or
    replaced, and nothing is said of another job; ``--verify-download`` is the read."""
    b, src, state, env, url = _copied(tmp_path, server, request, also=True, provider=provider)
    key = "shoot/card/DCIM/IMG_0001.JPG"
    b.client.put_object(Bucket=b.bucket, Key=key, Body=b"else" * 1000)  # not castoff's doing
    r = castoff("copy", str(src), "--to", url, "--rehash", state=state, env=env)
    said = " ".join((r.stdout + r.stderr).split())
    assert r.returncode == 0, said
    assert "another file there" not in said and "putting a file there" not in said, said
    assert b.client.get_object(Bucket=b.bucket, Key=key)["Body"].read() == b"else" * 1000
    rep = last_report(state)
    assert [e["bytes_sent"] for e in rep["summary"].values()] == [0], rep["summary"]
    for f in rep["files"]:
        (out,) = f["destinations"]
        assert out["status"] == "already", f
        assert out["verify_method"].startswith("same blake3 as the object castoff put there on "), out


def test_bwlimit_with_a_bucket_is_not_said_to_be_ignored(tmp_path: Path, rclone_s3: Any) -> None:
    src = tmp_path / "card"
    write(src / "a.bin", b"a" * 1000)
    bucket = s3_url(rclone_s3.bucket, "bw/", rclone_s3.url)
    r = castoff(
        "copy",
        str(src),
        "--to",
        str(tmp_path / "d"),
        "--to",
        bucket,
        "--bwlimit",
        "10M",
        state=tmp_path / "state",
        env=keys(rclone_s3.access_key, rclone_s3.secret_key),
    )
    assert r.returncode == 0, r.stderr
    assert "ignored" not in r.stderr, r.stderr
