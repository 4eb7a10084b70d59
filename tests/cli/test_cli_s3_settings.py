"""S3 settings that cannot work are refused up front, with words a user can act on (QA pass b)."""

from __future__ import annotations

from pathlib import Path

import pytest

from castoff_cli import Castoff
from engine_runner import write
from server_fixtures import MotoBucket, RcloneBucket

ENDPOINT = "http://127.0.0.1:9"  # nothing is sent: every refusal here comes before a request


@pytest.fixture
def card(tmp_path: Path) -> Path:
    write(tmp_path / "card" / "a.txt", b"a")
    return tmp_path / "card"


def refused(r: object, *words: str) -> str:
    said = r.stdout + r.stderr  # type: ignore[attr-defined]
    assert r.returncode == 2, said  # type: ignore[attr-defined]
    assert "Traceback" not in said and "invalid literal" not in said, said
    for w in words:
        assert w in said, said
    return str(said)


def test_max_parallel_has_an_upper_limit_everywhere(tmp_path: Path, card: Path) -> None:
    """Before: --max-parallel 100000 died with "can't start new thread" (the job left interrupted),
    and max_parallel=5000 took 140 s for one small file."""
    castoff = Castoff(tmp_path / "user")
    ssd = tmp_path / "ssd"
    url = f"s3://raw-bucket/p/?endpoint={ENDPOINT}"
    refused(
        castoff("copy", str(card), "--to", url, "--to", str(ssd), "--max-parallel", "100000"), "at most 256"
    )
    refused(castoff("copy", str(card), "--to", f"{url}&max_parallel=5000", "--to", str(ssd)), "at most 256")
    refused(
        castoff("copy", str(card), "--to", f"{url}&max_parallel_small=257"),
        "max_parallel_small",
        "at most 256",
    )
    refused(castoff("workflow", "save", "w", "--to", str(ssd), "--max-parallel", "300"), "at most 256")
    refused(
        castoff(
            "dest",
            "add",
            "x",
            "s3",
            "--bucket",
            "raw-bucket",
            "--endpoint",
            ENDPOINT,
            "--max-parallel",
            "1000",
            "--access-key-id",
            "AKIAEXAMPLE",
            "--secret-stdin",
            input="s\n",
        ),
        "at most 256",
    )
    castoff.config.parent.mkdir(parents=True, exist_ok=True)
    castoff.config.write_text(
        f'[destinations.big]\ntype = "s3"\nbucket = "raw-bucket"\nendpoint = "{ENDPOINT}"\n'
        "max_parallel = 5000\n"
    )
    refused(castoff("copy", str(card), "--to", "@big", "--to", str(ssd)), "max_parallel", "at most 256")
    assert not ssd.exists()


def test_max_parallel_not_a_number_says_what_is_expected(tmp_path: Path, card: Path) -> None:
    """Before: ``(invalid literal for int() with base 10: 'x')``."""
    castoff = Castoff(tmp_path / "user")
    r = castoff("copy", str(card), "--to", f"s3://raw-bucket/p/?endpoint={ENDPOINT}&max_parallel=x")
    refused(r, "bad value for max_parallel: 'x'", "a whole number from 1 to 256")


def test_verify_download_with_a_class_that_cannot_be_read_is_refused(tmp_path: Path, card: Path) -> None:
    """Before: every GLACIER object was stored, its read-back refused (InvalidObjectState), the file
    failed, and every re-run uploaded it again to fail again."""
    castoff = Castoff(tmp_path / "user")
    ssd = tmp_path / "ssd"
    url = f"s3://raw-bucket/p/?endpoint={ENDPOINT}"
    why = "cannot be read back until they are restored"
    for cls in ("GLACIER", "DEEP_ARCHIVE", "glacier"):
        r = castoff(
            "copy", str(card), "--to", f"{url}&storage_class={cls}", "--to", str(ssd), "--verify-download"
        )
        assert cls.upper() in refused(r, why, "drop --verify-download")
    refused(castoff("copy", str(card), "--to", f"{url}&storage_class=GLACIER&verify_download=on"), why)
    refused(
        castoff("copy", str(card), "--to", url, "--storage-class", "DEEP_ARCHIVE", "--verify-download"), why
    )
    add = ["dest", "add", "cold", "s3", "--bucket", "raw-bucket", "--endpoint", ENDPOINT]
    secret = ["--access-key-id", "AKIAEXAMPLE", "--secret-stdin"]
    refused(castoff(*add, "--storage-class", "GLACIER", "--verify-download", *secret, input="s\n"), why)
    assert not castoff.config.exists()
    r = castoff(*add, "--storage-class", "GLACIER", *secret, "--no-test", input="s\n")
    assert r.returncode == 0, r.stderr
    refused(castoff("copy", str(card), "--to", "@cold", "--to", str(ssd), "--verify-download"), why)
    refused(castoff("workflow", "save", "w", "--to", "@cold", "--to", str(ssd), "--verify-download"), why)
    assert not ssd.exists()
    # GLACIER_IR objects are read at once: the combination is fine
    r = castoff("workflow", "save", "ir", "--to", f"{url}&storage_class=GLACIER_IR", "--verify-download")
    assert r.returncode == 0, r.stdout + r.stderr


def test_an_https_endpoint_that_speaks_plain_http_is_said_once_and_the_bucket_stopped(
    tmp_path: Path, moto: MotoBucket
) -> None:
    """Before: one "TLS failure … [SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)
    (check the endpoint's certificate…)" line per file, the bucket tried file after file, and the
    last line advised re-running the same command, which meets the same failure."""
    castoff = Castoff(tmp_path / "user", env={"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"})
    card = tmp_path / "card"
    for i in range(6):
        write(card / f"IMG_{i}.JPG", bytes([i]) * 5000)
    ssd = tmp_path / "ssd"
    url = f"s3://{moto.bucket}/hs/?endpoint=https://127.0.0.1:{moto.port}"  # moto speaks plain HTTP
    r = castoff("copy", str(card), "--to", url, "--to", str(ssd))
    said = r.stdout + r.stderr
    assert r.returncode == 1, said
    assert said.count("does not speak TLS, it answers in plain HTTP") == 1, said
    assert f"write the endpoint as http://127.0.0.1:{moto.port}" in said, said
    assert "_ssl.c" not in said and "WRONG_VERSION_NUMBER" not in said, said
    assert "Re-run the same command to retry only what is missing" not in said, said
    assert "Fix what is said above of the destination that stopped, then re-run" in " ".join(said.split()), (
        said
    )
    assert len(list(ssd.rglob("*.JPG"))) == 6


def test_a_part_size_below_an_unknown_servers_minimum_points_to_provider_rclone(
    tmp_path: Path, card: Path
) -> None:
    """Before: the hint gave only "5MiB or more", where the README's fix for rclone serve s3 is
    provider=rclone (no minimum); then it said "--provider rclone", which castoff copy does not
    take: it says what works where the destination was given (the URL, or the saved one)."""
    castoff = Castoff(tmp_path / "user")
    r = castoff("copy", str(card), "--to", f"s3://raw-bucket/p/?endpoint={ENDPOINT}&part_size=1MiB")
    said = refused(r, "below the minimum of S3-compatible server", "5MiB or more")
    assert "add provider=rclone to the s3:// URL" in said and "--provider" not in said, said
    add = ["dest", "add", "arch", "s3", "--bucket", "raw-bucket", "--endpoint", ENDPOINT, "--no-test"]
    assert castoff(*add).returncode == 0
    said = refused(castoff("copy", str(card), "--to", "@arch", "--part-size", "1M"), "below the minimum")
    assert "castoff dest add arch s3 … --provider rclone --replace" in said, said
    assert castoff(*add, "--provider", "rclone", "--replace").returncode == 0  # as it says
    r = castoff("copy", str(card), "--to", "@arch", "--part-size", "1M")
    assert "below the minimum" not in r.stdout + r.stderr, r.stderr
    r = castoff(
        "copy", str(card), "--to", f"s3://raw-bucket/p/?endpoint={ENDPOINT}&provider=rclone&part_size=1MiB"
    )
    assert "below the minimum" not in r.stdout + r.stderr
    r = castoff("copy", str(card), "--to", "s3://raw-bucket/p/?provider=aws&region=eu-west-1&part_size=1MiB")
    assert "provider=rclone" not in refused(r, "below the minimum of Amazon S3")


def test_yes_no_options_take_and_list_the_same_spellings(tmp_path: Path, card: Path) -> None:
    """Before: ``conditional=maybe`` said "(use true or false)" while the README writes on."""
    castoff = Castoff(tmp_path / "user")
    url = f"s3://raw-bucket/p/?endpoint={ENDPOINT}"
    spellings = "on/off, true/false, yes/no or 1/0"
    refused(
        castoff("copy", str(card), "--to", f"{url}&conditional=maybe"), "bad value for conditional", spellings
    )
    refused(castoff("copy", str(card), "--to", f"{url}&verify_download=maybe"), spellings)
    r = castoff("workflow", "save", "w", "--to", f"{url}&conditional=maybe", "--verify-download")
    refused(r, spellings)
    for word in ("on", "off", "true", "false", "yes", "no", "1", "0", "auto", "ON"):
        r = castoff("workflow", "save", f"w{word}", "--to", f"{url}&conditional={word}", "--verify-download")
        assert r.returncode == 0, r.stdout + r.stderr


def test_dest_add_with_verify_download_tests_that_the_key_can_read(tmp_path: Path, moto: MotoBucket) -> None:
    """Before: ``dest add … --verify-download`` with a key of PutObject + AbortMultipartUpload
    said "ok @mvd: takes writes" and saved it; every job with it then failed the read-back."""
    castoff = Castoff(tmp_path / "user")
    key, secret = moto.enable_write_only()
    add = ["dest", "add", "mvd", "s3", "--bucket", moto.bucket, "--prefix", "vd/", "--endpoint", moto.url]
    r = castoff(*add, "--verify-download", "--access-key-id", key, "--secret-stdin", input=secret + "\n")
    said = " ".join((r.stdout + r.stderr).split())
    assert r.returncode != 0 and "ok @mvd" not in said, said
    assert "cannot read" in said and "--verify-download" in said and "s3:GetObject" in said, said
    assert not castoff.config.exists() or "mvd" not in castoff.config.read_text()
    r = castoff(
        *add, "--verify-download", "--no-test", "--access-key-id", key, "--secret-stdin", input=secret + "\n"
    )
    assert r.returncode == 0, r.stdout + r.stderr
    r = castoff("dest", "test", "mvd")
    assert r.returncode == 1 and "cannot read" in r.stdout + r.stderr, r.stdout + r.stderr


def test_bwlimit_negative_reaches_castoffs_message_and_a_tiny_limit_is_warned(
    tmp_path: Path, card: Path, rclone_s3: RcloneBucket
) -> None:
    """Before: ``--bwlimit -5M`` gave only argparse's "expected one argument", and ``--bwlimit 500``
    (500 bytes/s, where rclone would read KiB/s) went unsaid."""
    castoff = Castoff(
        tmp_path / "user",
        env={"AWS_ACCESS_KEY_ID": rclone_s3.access_key, "AWS_SECRET_ACCESS_KEY": rclone_s3.secret_key},
    )
    url = f"s3://{rclone_s3.bucket}/p/?endpoint={rclone_s3.url}&provider=rclone"
    r = castoff("copy", str(card), "--to", url, "--bwlimit", "-5M")
    said = refused(r, "bandwidth")
    assert "expected one argument" not in said, said
    r = castoff("copy", str(card), "--to", url, "--bwlimit", "500")
    said = " ".join((r.stdout + r.stderr).split())
    assert r.returncode == 0, said
    assert "--bwlimit 500 is 500 bytes per second per bucket, under 1 KiB/s" in said, said
    assert "write 500K" in said, said
    r = castoff("copy", str(card), "--to", url, "--to", str(tmp_path / "ssd"), "--bwlimit", "0")
    assert r.returncode == 0 and "under 1 KiB/s" not in r.stdout + r.stderr, r.stderr


def test_a_saved_bucket_holds_bwlimit_and_conditional_as_dest_add_takes_them(
    tmp_path: Path, rclone_s3: RcloneBucket
) -> None:
    """QA: the README says a saved destination holds the URL's options under the same names, but
    ``dest add --conditional on`` was "unrecognized", ``dest add --bwlimit 10M`` refused, and a
    hand-written ``bwlimit`` "unknown setting for a s3 destination"."""
    import random
    import time

    castoff = Castoff(tmp_path / "user")
    write(tmp_path / "card" / "A001.MOV", random.Random(5).randbytes(1024 * 1024))
    add = ["dest", "add", "ark", "s3", "--bucket", rclone_s3.bucket, "--endpoint", rclone_s3.url]
    add += ["--provider", "rclone", "--conditional", "off", "--bwlimit", "4K"]
    r = castoff(
        *add, "--access-key-id", rclone_s3.access_key, "--secret-stdin", input=rclone_s3.secret_key + "\n"
    )
    assert r.returncode == 0, r.stdout + r.stderr
    saved = castoff.config.read_text()
    assert 'conditional = "off"' in saved and 'bwlimit = "4K"' in saved, saved
    # the saved limit paces that bucket: the folder's copy is verified while its upload still waits
    ssd = tmp_path / "ssd"
    proc = castoff.popen("copy", str(tmp_path / "card"), "--to", str(ssd), "--to", "@ark", "--quiet")
    try:
        while not (ssd / "card" / "A001.MOV").exists():
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        assert proc.poll() is None
        assert rclone_s3.client.list_objects_v2(Bucket=rclone_s3.bucket).get("KeyCount", 0) == 0
    finally:
        proc.kill()
        proc.communicate(timeout=30)
    # written by hand, it is taken as the URL takes it, and checked as it is
    castoff.config.write_text(saved.replace('bwlimit = "4K"', 'bwlimit = "fast"'))
    refused(castoff("dest", "show", "ark"), "bad value for bwlimit", "bandwidth")
    castoff.config.write_text(saved.replace('bwlimit = "4K"', 'bwlimit = "10M"'))
    r = castoff("dest", "show", "ark", "--json")
    assert r.returncode == 0 and '"bwlimit": "10M"' in r.stdout, r.stdout + r.stderr
    # a folder has neither
    r = castoff(
        "dest", "add", "usb", "local", str(tmp_path / "usb"), "--conditional", "on", "--bwlimit", "1M"
    )
    refused(r, "--conditional, --bwlimit are bucket settings")


def test_memory_is_checked_against_the_chunk_size_the_job_uses_and_says_where_it_comes_from(
    tmp_path: Path, card: Path, rclone_s3: RcloneBucket
) -> None:
    """QA: ``--memory 16M`` to a bucket of 8 MiB parts was refused as "too small for --chunk-size
    16M" with no --chunk-size given: the default chunk, which that bucket's part size lowers to
    8 MiB. It is checked against the chunk the job uses; refused, it says it is the default."""
    castoff = Castoff(
        tmp_path / "user",
        env={"AWS_ACCESS_KEY_ID": rclone_s3.access_key, "AWS_SECRET_ACCESS_KEY": rclone_s3.secret_key},
    )
    url = f"s3://{rclone_s3.bucket}/mem/?endpoint={rclone_s3.url}&provider=rclone&part_size=8MiB"
    r = castoff("copy", str(card), "--to", url, "--memory", "16M")
    assert r.returncode == 0, r.stdout + r.stderr
    r = castoff("copy", str(card), "--to", str(tmp_path / "ssd"), "--memory", "16M")
    said = " ".join(refused(r, "--memory 16M is too small for the chunk size, 16.0 MiB").split())
    assert "the default (--chunk-size was not given)" in said, said
    assert "give --memory 32M or more, or a smaller --chunk-size" in said and "--chunk-size 8M" in said, said
    r = castoff("copy", str(card), "--to", str(tmp_path / "ssd"), "--memory", "16M", "--chunk-size", "8M")
    assert r.returncode == 0, r.stdout + r.stderr
