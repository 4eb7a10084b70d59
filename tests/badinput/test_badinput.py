"""Bad input: odd names, edge sizes, a 50 GiB sparse file, links and special files in the
source, and configuration mistakes (exit 2, a specific message, nothing written)."""

from __future__ import annotations

import os
import stat
import tempfile
import threading
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from castoff import errors
from castoff.catalog.db import Catalog
from castoff.destinations.base import GiB, MiB, TiB, parts_for
from castoff.destinations.faulty import FaultPlan, FaultyDestination
from castoff.destinations.local import LocalDestination
from castoff.destinations.s3 import MAX_KEY_BYTES, S3Destination, S3Options
from castoff.engine.job import Engine, JobOptions
from engine_runner import write
from faults.check import Expect
from faults.plugin import PART, Rig
from faults.proc import castoff, env_with, keys, s3_url

NFC = unicodedata.normalize("NFC", "Café Ångström")
NFD = unicodedata.normalize("NFD", "Café Ångström")
NAMES = [
    f"{NFC}.jpg",
    f"{NFD}.jpg",
    "😀 party.heic",
    "a b  c.jpg",
    "-leading-dash.txt",
    "--help",
    "#%?+&=.raw",
    "back\\slash.txt",
    "tab\there.txt",
    "ctl\x01\x1f.txt",
    "CASE.JPG",
    "case.jpg",
    "x" * 251 + ".bin",  # a 255-byte name
]


def test_odd_names_land_exactly_in_folders_and_buckets(rig: Rig) -> None:
    rig.source.joinpath("NAMES").mkdir()
    for i, name in enumerate(NAMES):
        write(rig.source / "NAMES" / name, f"photo {i}".encode())
    assert rig.bucket is not None
    prefix_len = len(rig.bucket.options.prefix.encode())
    # keys of exactly 1,024 bytes and of 1,025: the first lands, the second is refused plainly
    room = MAX_KEY_BYTES - prefix_len - len(b"card/LONG/")
    fits, over = _path_of(room, "a"), _path_of(room + 1, "b")
    write(rig.source / "LONG" / fits, b"fits")
    write(rig.source / "LONG" / over, b"too long")
    too_long = f"card/LONG/{over}"
    assert rig.run().exit_code == 1
    rig.check(
        "bad input: odd names", Expect(dest_failed={(too_long, rig.bucket.name): "key-rejected"}, exit_code=1)
    )
    logs = " ".join(rig.runner.logs())
    assert "S3 allows 1024" in logs
    # QA: the line printed the whole 1 KB path, then the key again: now the file once, shortened
    line = next(text for text in rig.runner.logs() if "S3 allows 1024" in text)
    assert too_long not in line and line.count("card/LONG/") == 1 and len(line) < 400, line


def test_case_only_differences_on_a_case_insensitive_target_keep_both(tmp_path: Path) -> None:
    """``CASE.JPG`` and ``case.jpg`` are two files on a card and one name on exFAT, APFS or NTFS:
    the second never replaces the first. Other bytes land under ``name (2).ext``; the same bytes
    count as already there. (The kernel here cannot mount a case-folding filesystem, so the
    target is the in-memory destination folding names as those filesystems do.)"""
    from castoff.destinations.memory import MemoryDestination
    from engine_runner import Runner

    src = tmp_path / "card"
    write(src / "DCIM" / "CASE.JPG", b"upper")
    write(src / "DCIM" / "case.jpg", b"lower")
    write(src / "DCIM" / "SAME.JPG", b"same bytes")
    write(src / "DCIM" / "same.jpg", b"same bytes")
    dest = MemoryDestination("exfat", case_insensitive=True)
    runner = Runner(tmp_path / "state")
    result = runner([src], [dest])
    assert result.exit_code == 0, runner.logs()
    landed = {dest.names[k]: body for k, body in dest.objects.items()}
    assert sorted(landed.values()) == [b"lower", b"same bytes", b"upper"]
    case_names = {n for n, b in landed.items() if b in (b"upper", b"lower")}
    assert len(case_names) == 2 and any(n.endswith(" (2).jpg") or n.endswith(" (2).JPG") for n in case_names)
    out = runner.outcomes()
    statuses = sorted(out[(f"card/DCIM/{n}", dest.name)]["status"] for n in ("SAME.JPG", "same.jpg"))
    assert statuses == ["already", "verified"]


def _path_of(n_bytes: int, letter: str) -> str:
    """A relative path of exactly ``n_bytes`` bytes in names of at most 200 bytes."""
    parts = []
    while n_bytes > 201:
        parts.append(letter * 200)
        n_bytes -= 201
    return "/".join([*parts, letter * n_bytes])


@pytest.mark.parametrize("size", [0, 1, PART - 1, PART, PART + 1, 2 * PART, 3 * PART - 1])
def test_edge_sizes(rig: Rig, size: int) -> None:
    write(rig.source / "EDGE" / f"{size}.bin", os.urandom(size))
    assert rig.run().exit_code == 0, rig.runner.logs()
    rig.check("bad input: part-size edges")


def test_links_loops_and_special_files_in_the_source(rig: Rig) -> None:
    src = rig.source
    os.link(src / "DCIM/101CANON/PART.JPG", src / "DCIM/101CANON/HARDLINK.JPG")
    (src / "DCIM/loop").symlink_to("..")
    (src / "DCIM/self").symlink_to("self")
    (src / "DCIM/out.jpg").symlink_to("/etc/hostname")
    os.mkfifo(src / "pipe")
    if os.geteuid() == 0:
        os.mknod(src / "null", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    assert rig.run().exit_code == 0, rig.runner.logs()
    result = rig.check("bad input: links and special files")
    left = {x["path"]: x["code"] for x in result.report["left_out"]}
    assert left["card/DCIM/loop"] == left["card/DCIM/self"] == left["card/DCIM/out.jpg"] == "symlink"
    assert left["card/pipe"] == "special"
    assert os.geteuid() != 0 or left["card/null"] == "special"


def test_sparse_50_gib_file_is_planned_right_and_bounded(tmp_path: Path) -> None:
    """Only the first parts are copied (50 GiB through the disk would take minutes): the plan
    keeps within 10,000 equal parts for a bucket, memory stays in the budget, and stopping after
    a few parts leaves nothing visible."""
    src = tmp_path / "card"
    src.mkdir()
    with open(src / "A001.MOV", "wb") as fh:
        fh.truncate(50 * GiB)
    bucket = S3Destination(S3Options("b", endpoint_url="http://127.0.0.1:9", access_key="k", secret_key="s"))
    cancel = threading.Event()
    seen: list[int] = []

    def stop_after_three(target: str, index: int) -> None:
        seen.append(index)
        if len(seen) >= 3:
            cancel.set()

    local = FaultyDestination(LocalDestination(tmp_path / "ssd"), FaultPlan(on_put=stop_after_three))
    catalog = Catalog(tmp_path / "state" / "catalog.sqlite")
    catalog.start_job("j1", argv=[], sources=[str(src)], destinations=[], options={}, pid=os.getpid())
    budget = 32 * MiB
    engine = Engine(
        catalog, "j1", [local, bucket], JobOptions(chunk_size=8 * MiB, memory_budget=budget), cancel=cancel
    )
    part = engine._part_size(50 * GiB)
    assert parts_for(50 * GiB, part) <= bucket.caps.max_parts
    assert bucket.caps.min_part_size <= part <= bucket.caps.max_part_size
    bucket.close()
    engine = Engine(
        catalog, "j1", [local], JobOptions(chunk_size=8 * MiB, memory_budget=budget), cancel=cancel
    )
    result = engine.run([str(src)])
    assert result.exit_code == errors.EXIT_INTERRUPTED
    assert result.peak_memory <= budget
    assert not [p for p in (tmp_path / "ssd").rglob("*") if p.is_file()]  # no partial left, none visible
    catalog.close()


@given(size=st.integers(min_value=0, max_value=5 * TiB), chunk=st.sampled_from([1 * MiB, 8 * MiB, 64 * MiB]))
@settings(max_examples=200, deadline=None)
def test_part_plans_fit_every_bucket_limit(size: int, chunk: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        catalog = Catalog(Path(tmp) / "c.sqlite")
        bucket = S3Destination(
            S3Options("b", endpoint_url="http://127.0.0.1:9", access_key="k", secret_key="s")
        )
        engine = Engine(catalog, "j", [bucket], JobOptions(chunk_size=chunk, memory_budget=4 * chunk))
        part = engine._part_size(size)
        n = parts_for(size, part)
        bucket.close()
        catalog.close()
    assert n <= bucket.caps.max_parts
    assert bucket.caps.min_part_size <= part <= bucket.caps.max_part_size
    assert part % MiB == 0 or part == chunk
    assert (n - 1) * part < max(size, 1) <= n * part or size == 0


segment = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00"), min_size=1, max_size=60
).filter(lambda s: s not in (".", ".."))


@given(
    prefix=st.sampled_from(["", "raw/", "a b/#%?+&=/", "ü/"]), parts=st.lists(segment, min_size=1, max_size=8)
)
@settings(max_examples=300, deadline=None)
def test_s3_keys_are_the_exact_path_or_refused(prefix: str, parts: list[str]) -> None:
    bucket = S3Destination(
        S3Options("b", prefix=prefix, endpoint_url="http://127.0.0.1:9", access_key="k", secret_key="s")
    )
    rel = "/".join(parts)
    try:
        if len((prefix + rel).encode()) > MAX_KEY_BYTES:
            with pytest.raises(errors.KeyRejected):
                bucket.target_for(rel)
        else:
            assert bucket.target_for(rel) == prefix + rel  # no mangling
    finally:
        bucket.close()


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--to", "s3://b/raw/?endpoint=ftp://127.0.0.1:9"], "bad endpoint URL"),
        (["--to", "s3://b/raw/?endpoint=http://user:pw@127.0.0.1:9"], "credentials in the endpoint URL"),
        (["--to", "s3://b/raw/?colour=blue"], "unknown S3 option"),
        (["--to", "s3://b/raw/?part_size=lots"], "bad value for part_size"),
        (["--to", "s3:///raw/"], "no valid bucket name"),
        (["--to", "s3://b/raw/?endpoint=http://127.0.0.1:9&storage_class=FROZEN"], "storage class"),
        (["--to", "s3://b/raw/?endpoint=http://127.0.0.1:9", "--no-keys"], "no credentials"),
        (["--to", "gopher://x/"], "unknown destination scheme"),
        (["--to", "s3:bucket/raw/"], "looks like a URL without its '//'"),
        (["--to", "s3:/bucket/raw/"], "looks like a URL without its '//'"),
        # QA: refused by one server with a traceback a file, stored as written by another
        (["--to", "s3://b/raw//x/?endpoint=http://127.0.0.1:9"], "an empty folder name"),
        (["--to", "s3://b//raw/?endpoint=http://127.0.0.1:9"], "an empty folder name"),
        (["--to", "s3://b/dd/../up/?endpoint=http://127.0.0.1:9"], "a '..' folder"),
        (["--to", "s3://b/./x/?endpoint=http://127.0.0.1:9"], "a '.' folder"),
        (["--to", "s3://b/raw/?endpoint=http://127.0.0.1:99999"], "a port from 1 to 65535"),
        (["--chunk-size", "1K"], "--chunk-size"),
        # every endpoint here is loopback: the names must be refused before any request
        (
            ["--to", "s3://bad%name/raw/?provider=aws&endpoint=http://127.0.0.1:9"],
            "bad bucket name 'bad%name'",
        ),
        (
            ["--to", "s3://b2-photos/raw/?provider=b2&endpoint=http://127.0.0.1:9"],
            "must not start with 'b2-'",
        ),
        (
            ["--to", "s3://google-photos/raw/?provider=gcs&endpoint=http://127.0.0.1:9"],
            "must not start with 'goog'",
        ),
        (["--template", "{YYYY}/{nope}/{name}"], "unknown token {nope}"),
        (["--template", "../{name}"], "would leave the folder"),
        # QA: a folder named " " was made
        (["--template", "{shoot}/{name}", "--shoot", " "], "--shoot ' ': a shoot name must not be blank"),
        (["--shoot", "\t "], "a shoot name must not be blank"),
        (["--template", "{YYYY}/  /{name}"], "the folder name ' ' is blank"),
        (["--template", "/abs/{name}"], "--template"),
        (["--to", "@nosuch"], "no saved destination 'nosuch'"),
        (["--config", "@bad-toml", "--to", "@ssd"], "line 3: not valid TOML"),
        (["--to", "s3://bucket-ok/raw/?endpoint=http://192.0.2.1:9"], "plain HTTP to another computer"),
    ],
)
def test_configuration_mistakes_exit_2_and_write_nothing(tmp_path: Path, args: list[str], words: str) -> None:
    src = tmp_path / "card"
    write(src / "a.jpg", b"a")
    env = keys("AKIAEXAMPLE", "secret-example")
    if "--no-keys" in args:
        args = [a for a in args if a != "--no-keys"]
        env = env_with()
    if "@bad-toml" in args:  # a config file a person broke by hand
        bad = tmp_path / "castoff.toml"
        bad.write_text('[destinations.ssd]\ntype = "local"\npath = "/tmp/x\n')
        args = [str(bad) if a == "@bad-toml" else a for a in args]
    state = tmp_path / "state"
    r = castoff("copy", str(src), "--to", str(tmp_path / "ssd"), *args, state=state, env=env)
    out = " ".join(r.stderr.split())
    assert r.returncode == 2, out
    assert words in out
    assert "Traceback" not in out
    assert not (tmp_path / "ssd").exists()  # nothing written anywhere
    assert not (state / "reports").exists()


def test_a_source_that_does_not_exist(tmp_path: Path, rclone_s3: Any) -> None:
    env = keys(rclone_s3.access_key, rclone_s3.secret_key)
    url = s3_url(rclone_s3.bucket, "raw/", rclone_s3.url)
    r = castoff(
        "copy",
        str(tmp_path / "no-card"),
        "--to",
        str(tmp_path / "ssd"),
        "--to",
        url,
        state=tmp_path / "state",
        env=env,
    )
    assert r.returncode == 2
    assert "does not exist" in r.stderr
    assert not (tmp_path / "ssd").exists()
    assert rclone_s3.admin_client().list_objects_v2(Bucket=rclone_s3.bucket).get("KeyCount", 0) == 0
