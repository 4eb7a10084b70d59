"""A destination that cannot be used, as the user sees it: one message saying which destination,
what is wrong and what to do, not one line per file; every file still failed there in the report;
the other destination complete; the exit code."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from castoff.units import format_bytes
from castoff_cli import Castoff
from engine_runner import write
from faults.proc import s3_url

N = 30


@pytest.fixture
def card(tmp_path: Path) -> Path:
    src = tmp_path / "EOS_DIGITAL"
    for i in range(N):
        write(src / "DCIM" / "100CANON" / f"IMG_{i:04}.JPG", os.urandom(60_000))
    return src


def lines_with(text: str, needle: str) -> list[str]:
    return [line for line in text.splitlines() if needle in line]


def report(castoff: Castoff) -> dict[str, Any]:
    found = list((castoff.state / "reports").glob("*.json"))
    assert len(found) == 1
    data: dict[str, Any] = json.loads(found[0].read_text())
    return data


def at(rep: dict[str, Any], dest: Path) -> list[dict[str, Any]]:
    """Every file's entry at ``dest`` in the JSON report."""
    return [d for f in rep["files"] for d in f["destinations"] if d["destination"] == str(dest)]


def check_ok_complete(rep: dict[str, Any], ok: Path, card: Path) -> None:
    entries = at(rep, ok)
    assert len(entries) == N and {d["status"] for d in entries} == {"verified"}
    for p in (card / "DCIM" / "100CANON").iterdir():
        assert (ok / "EOS_DIGITAL" / "DCIM" / "100CANON" / p.name).read_bytes() == p.read_bytes()


def test_a_destination_under_a_file_is_said_once(tmp_path: Path, card: Path) -> None:
    castoff = Castoff(tmp_path / "user")
    write(tmp_path / "ssd", b"a file where a folder was meant")
    bad, ok = tmp_path / "ssd" / "shoots", tmp_path / "ok"
    r = castoff("copy", str(card), "--to", str(bad), "--to", str(ok))
    out = r.stdout + r.stderr
    said = lines_with(out, "is a file, not a folder")
    assert len(said) == 1, out
    assert said[0].startswith(f"{bad}: cannot be used:") and "the other destinations carry on" in said[0]
    assert r.returncode == 1, out
    assert "Some files did not reach every destination" in out
    rep = report(castoff)
    entries = at(rep, bad)
    assert len(entries) == N and {d["status"] for d in entries} == {"failed"}
    assert all("is a file, not a folder" in d["error"] for d in entries)
    assert rep["summary"][str(bad)]["failed"] == N
    check_ok_complete(rep, ok, card)
    quiet = castoff("copy", str(card), "--to", str(bad), "--to", str(ok), "--quiet")
    assert quiet.returncode == 1
    assert len(lines_with(quiet.stdout + quiet.stderr, "is a file, not a folder")) == 1, quiet.stderr


def test_no_usable_destination_exits_2_and_writes_nothing(tmp_path: Path, card: Path) -> None:
    castoff = Castoff(tmp_path / "user")
    write(tmp_path / "ssd", b"a file where a folder was meant")
    bad, unmounted = tmp_path / "ssd" / "shoots", tmp_path / "media" / "usb" / "shoots"
    r = castoff("copy", str(card), "--to", str(bad), "--to", str(unmounted))
    out = r.stdout + r.stderr
    assert len(lines_with(out, "is a file, not a folder")) == 1, out
    assert len(lines_with(out, "does not exist")) == 1, out
    assert "No destination could be used, so nothing was written" in out
    assert r.returncode == 2, out
    rep = report(castoff)
    for dest in (bad, unmounted):
        entries = at(rep, dest)
        assert len(entries) == N and {d["status"] for d in entries} == {"failed"}
    assert rep["job"]["exit_code"] == 2
    assert not (tmp_path / "media").exists()


def _run(*cmd: str) -> bool:
    return subprocess.run(cmd, capture_output=True, check=False).returncode == 0


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs of this test's own (skipped where the machine does not allow mounting)."""
    point = tmp_path / "mnt"
    point.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root; tests/engine/test_lane_down.py injects ENOSPC")
    if not _run("mount", "-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs", str(point)):
        pytest.skip("this machine does not allow mounting a tmpfs")
    try:
        yield point
    finally:
        _run("umount", "-l", str(point))


def test_a_drive_that_fills_up_mid_job_is_said_once(tmp_path: Path, card: Path, small_tmpfs: Path) -> None:
    castoff = Castoff(tmp_path / "user")
    full, ok = small_tmpfs / "ssd", tmp_path / "ok"
    r = castoff("copy", str(card), "--to", str(full), "--to", str(ok))
    out = r.stdout + r.stderr
    # (the ASC MHL of the files that did land there cannot be written either: said once, apart)
    said = [line for line in lines_with(out, "No space left on device") if "ASC MHL" not in line]
    assert len(said) == 1, out
    assert said[0].startswith(f"{full}: stopped:") and "No more files go there" in said[0]
    assert r.returncode == 1, out
    rep = report(castoff)
    entries = at(rep, full)
    failed = [d for d in entries if d["status"] == "failed"]
    assert len(entries) == N and failed and len(failed) + rep["summary"][str(full)]["verified"] == N
    assert {d["error_code"] for d in failed} == {"destination-full"}
    assert rep["summary"][str(full)]["failed"] == len(failed)
    check_ok_complete(rep, ok, card)
    # QA M #3: said before it fills (once, as soon as the files planned there pass its free
    # space), and at the end, how much did not go there
    (warned,) = lines_with(out, "to write there so far")
    assert warned.startswith(f"{full}: ") and "free: it will be full before the job ends" in warned, out
    assert out.index(warned) < out.index(said[0])
    left = f"{full}: full: {len(failed)} files ({format_bytes(60_000 * len(failed))}) did not go there"
    assert len(lines_with(out, left)) == 1, out


def test_a_folder_with_verified_copies_gone_is_a_drive_not_mounted_not_made_again(
    tmp_path: Path, card: Path
) -> None:
    """QA: a re-run with the USB drive unplugged made the destination folder again under the empty
    mount point, filled the system disk with the card, and said every copy verified and the card
    safe to release. A folder castoff verified copies in, gone, is refused (that destination
    only, exit 1, nothing made); made again by the user, it is filled again."""
    castoff = Castoff(tmp_path / "user")
    mount_point = tmp_path / "media" / "USB"
    usb, ssd = mount_point / "shoots", tmp_path / "ssd"
    mount_point.mkdir(parents=True)
    assert castoff("copy", str(card), "--to", str(ssd), "--to", str(usb)).returncode == 0
    shutil.rmtree(usb)  # unplugged: the mount point is an empty folder

    r = castoff("copy", str(card), "--to", str(ssd), "--to", str(usb))
    said = " ".join(r.stderr.split())
    assert r.returncode == 1, said
    assert f"destination {usb} does not exist, though castoff verified {N} copies there before:" in said
    assert "is the drive mounted?" in said
    assert "can be released" not in said
    assert not usb.exists()
    assert len(list((ssd / card.name / "DCIM" / "100CANON").iterdir())) == N

    usb.mkdir()  # "if you removed that folder on purpose, make it again"
    r = castoff("copy", str(card), "--to", str(ssd), "--to", str(usb))
    assert r.returncode == 0, r.stderr
    assert len(list((usb / card.name / "DCIM" / "100CANON").iterdir())) == N


def test_a_bucket_that_stops_answering_is_said_once_not_per_file(
    tmp_path: Path, rclone_s3: Any, fault_proxy: Any
) -> None:
    """QA: the S3 server gone mid-job printed one 'incomplete: endpoint … unreachable' line per
    file left (94 of them). The trouble is said when it starts, at each pause and once when the
    files stop going there; every file's outcome is still in the report."""
    n = 16
    src = tmp_path / "card"
    for i in range(n):
        write(src / "DCIM" / f"IMG_{i:04}.JPG", os.urandom(200_000))
    proxy = fault_proxy(rclone_s3)
    url = s3_url(rclone_s3.bucket, "v1/", proxy.url, provider="rclone")
    bucket, ok = f"s3://{rclone_s3.bucket}/v1", tmp_path / "ok"
    castoff = Castoff(tmp_path / "user", env={"AWS_ACCESS_KEY_ID": rclone_s3.access_key}, quick_retries=True)
    castoff.env["AWS_SECRET_ACCESS_KEY"] = rclone_s3.secret_key
    proc = castoff.popen("copy", str(src), "--to", str(ok), "--to", url, "--bwlimit", "400K")
    admin = rclone_s3.admin_client()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # a few files landed: the server goes away
        if admin.list_objects_v2(Bucket=rclone_s3.bucket).get("KeyCount", 0) >= 2:
            break
        time.sleep(0.05)
    proxy.stop()
    out, err = proc.communicate(timeout=300)
    text = out + err
    assert proc.returncode == 1, text
    about = lines_with(text, f"{bucket}: ")
    assert len(lines_with(text, "still failing after retrying")) == 1, text
    # (stopping the proxy mid-request may first answer one request with a 500 and let the next
    # through: said once each, as any hiccup is)
    hiccup = [ln for ln in about if "server error 500" in ln or ": answering again" in ln]
    assert len(hiccup) <= 2, text
    assert all("unreachable" in line for line in about if line not in hiccup), text
    # the trouble's start, its pauses (3) and its end, however many files met it: no line a file
    assert len(about) - len(hiccup) <= 5, text
    assert not lines_with(text, f"{bucket}: card/"), text  # the per-file line: "{bucket}: {rel}: …"
    rep = report(castoff)
    entries = at_name(rep, bucket)
    assert len(entries) == n
    summary = rep["summary"][bucket]
    sent = summary["verified"]
    assert 2 <= sent < n
    assert summary["incomplete"] + summary["failed"] == n - sent
    assert {d["status"] for d in entries} <= {"verified", "incomplete", "failed"}
    assert all("unreachable" in d["error"] for d in entries if d["status"] != "verified")
    assert len(at(rep, ok)) == n


def at_name(rep: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [d for f in rep["files"] for d in f["destinations"] if d["destination"] == name]


def test_ctrl_c_is_said_once_not_once_per_upload_in_flight(tmp_path: Path, rclone_s3: Any) -> None:
    """QA: Ctrl-C printed "s3://…: card/F5.JPG: incomplete: interrupted" for each upload under
    way, then the job's own "interrupted: re-run the same command …"; the latter says it all."""
    src = tmp_path / "card"
    for i in range(6):
        write(src / f"F{i}.JPG", os.urandom(300_000))
    url = s3_url(rclone_s3.bucket, "cc/", rclone_s3.url, provider="rclone")
    castoff = Castoff(tmp_path / "user", env={"AWS_ACCESS_KEY_ID": rclone_s3.access_key})
    castoff.env["AWS_SECRET_ACCESS_KEY"] = rclone_s3.secret_key
    ok = tmp_path / "ok"
    proc = castoff.popen("copy", str(src), "--to", str(ok), "--to", url, "--bwlimit", "100K")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list(ok.rglob("*.JPG"))) < 6:  # the bucket lags behind
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    text = out + err
    assert proc.returncode == 130, text
    assert len(lines_with(text, "interrupted: re-run the same command")) == 1, text
    assert not lines_with(text, "incomplete: interrupted"), text
    summary = report(castoff)["summary"][f"s3://{rclone_s3.bucket}/cc"]
    assert summary["incomplete"] >= 1, summary  # still counted where it belongs


#: root runs castoff without the capabilities that ignore file permissions
NO_OVERRIDE = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search,-fowner"]


@pytest.fixture
def as_a_user(tmp_path: Path) -> Iterator[list[str]]:
    """The command prefix under which castoff meets file permissions as a user does (root drops
    the capabilities that ignore them): skipped where a read-only folder would still be written.
    The folders a test makes read-only are made writable again at the end."""
    prefix = NO_OVERRIDE if os.geteuid() == 0 else []
    if prefix and shutil.which("setpriv") is None:
        pytest.skip("running as root, without setpriv to drop the capabilities that ignore permissions")
    probe = tmp_path / "probe"
    probe.mkdir(mode=0o555)
    refused = subprocess.run(
        [*prefix, sys.executable, "-c", f"open({str(probe / 'f')!r}, 'w')"], capture_output=True, check=False
    )
    if refused.returncode == 0:
        pytest.skip(
            "this process may write in a read-only folder (capabilities): permissions cannot be tested"
        )
    yield prefix
    for p in tmp_path.rglob("*"):
        if p.is_dir() and not p.is_symlink():
            p.chmod(0o755)


def run_as(prefix: list[str], castoff: Castoff, *args: str) -> subprocess.CompletedProcess[str]:
    return castoff.run([*prefix, sys.executable, "-m", "castoff", *args])


def test_a_read_only_folder_below_the_root_fails_its_files_only(tmp_path: Path, as_a_user: list[str]) -> None:
    """QA: one read-only folder in the destination stopped the whole destination (files in
    writable folders beside it never written, which ones depending on the sort order). Its files
    fail, each of them, naming the folder, as do those of a folder that cannot be made in a
    read-only one; the rest of the destination is filled."""
    card = tmp_path / "CARD"
    write(card / "DCIM" / "100" / "p1.jpg", b"p1")
    write(card / "DCIM" / "100" / "p2.jpg", b"p2")
    write(card / "DCIM" / "101" / "sub" / "q.jpg", b"q")  # its folder cannot be made in 101
    write(card / "DCIM" / "102" / "r.jpg", b"r")  # after the refused ones in sort order
    write(card / "MISC" / "m.txt", b"m")
    wp, ok = tmp_path / "wp", tmp_path / "ok"
    for name in ("100", "101"):
        (wp / "CARD" / "DCIM" / name).mkdir(parents=True)
        (wp / "CARD" / "DCIM" / name).chmod(0o555)
    castoff = Castoff(tmp_path / "user")
    r = run_as(as_a_user, castoff, "copy", str(card), "--to", str(wp), "--to", str(ok))
    out = " ".join((r.stdout + r.stderr).split())
    assert r.returncode == 1, out
    assert "stopped" not in out and "No more files go there" not in out, out
    for name in ("102/r.jpg", "MISC/m.txt"):
        rel = f"DCIM/{name}" if name.startswith("1") else name
        assert (wp / "CARD" / rel).read_bytes() == (card / rel).read_bytes()
    rep = report(castoff)
    by_path = {f["path"]: d for f in rep["files"] for d in f["destinations"] if d["destination"] == str(wp)}
    refused = {
        "CARD/DCIM/100/p1.jpg": wp / "CARD" / "DCIM" / "100",
        "CARD/DCIM/100/p2.jpg": wp / "CARD" / "DCIM" / "100",
        "CARD/DCIM/101/sub/q.jpg": wp / "CARD" / "DCIM" / "101",
    }
    assert {p for p, d in by_path.items() if d["status"] == "failed"} == set(refused), by_path
    for path, folder in refused.items():
        entry = by_path[path]
        assert entry["error_code"] == "permission-denied", entry
        assert f"castoff may not write in {folder}:" in entry["error"], entry
        assert f"{path}: failed:" in out  # each said, with its folder
    assert {d["status"] for p, d in by_path.items() if p not in refused} == {"verified"}
    assert rep["summary"][str(ok)]["verified"] == 5


def test_a_read_only_destination_root_still_stops_the_destination(
    tmp_path: Path, card: Path, as_a_user: list[str]
) -> None:
    ro, ok = tmp_path / "ro", tmp_path / "ok"
    ro.mkdir(mode=0o555)
    castoff = Castoff(tmp_path / "user")
    r = run_as(as_a_user, castoff, "copy", str(card), "--to", str(ro), "--to", str(ok))
    out = r.stdout + r.stderr
    said = lines_with(out, f"cannot write to {ro}")
    assert len(said) == 1 and said[0].startswith(f"{ro}: cannot be used:"), out
    assert r.returncode == 1, out
    rep = report(castoff)
    assert {d["error_code"] for d in at(rep, ro)} == {"destination-read-only"}
    check_ok_complete(rep, ok, card)


def test_a_read_only_card_with_mhl_source_is_said_under_json_too(
    tmp_path: Path, card: Path, as_a_user: list[str]
) -> None:
    """QA: with --mhl-source on a read-only card, text mode said "ASC MHL not written: the source
    is read-only"; --json said it nowhere (no event, nothing on stderr). It is a ``log`` warning
    event, and on stderr, as the other warnings are under --json."""
    card.chmod(0o555)
    castoff = Castoff(tmp_path / "user")
    note = f"{card}: ASC MHL not written: the source is read-only"
    r = run_as(as_a_user, castoff, "copy", str(card), "--to", str(tmp_path / "a"), "--mhl-source")
    assert r.returncode == 0, r.stderr
    assert note in " ".join((r.stdout + r.stderr).split()), r.stderr
    r = run_as(as_a_user, castoff, "copy", str(card), "--to", str(tmp_path / "b"), "--mhl-source", "--json")
    assert r.returncode == 0, r.stderr
    events = [json.loads(line) for line in r.stdout.splitlines()]
    logs = [e for e in events if e["event"] == "log" and e["message"] == note]
    assert [e["level"] for e in logs] == ["warning"], events
    assert events.index(logs[0]) < [e["event"] for e in events].index("job-end")
    assert f"warning: {note}" in r.stderr.splitlines(), r.stderr
    assert not (card / "ascmhl").exists()


def test_a_drive_full_before_the_job_is_left_as_it_was(tmp_path: Path, card: Path, small_tmpfs: Path) -> None:
    """QA M #7: "No destination could be used, so nothing was written", and the full drive had
    shoot/EOS_DIGITAL/DCIM/100CANON made on it (its folders take no blocks on ext4 or tmpfs)."""
    castoff = Castoff(tmp_path / "user")
    (small_tmpfs / "shoot").mkdir()
    fd = os.open(small_tmpfs / "filler", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        with pytest.raises(OSError, match="No space"):
            _write_until_full(fd)
    finally:
        os.close(fd)
    r = castoff("copy", str(card), "--to", str(small_tmpfs / "shoot"), "--report-to", "both")
    out = r.stdout + r.stderr
    assert r.returncode == 2, out
    assert "No destination could be used, so nothing was written" in out
    assert os.listdir(small_tmpfs / "shoot") == []  # as it was: nothing made there


def test_a_card_with_nothing_to_copy_leaves_the_destinations_as_they_were(tmp_path: Path) -> None:
    """QA M #7: an empty card (one not mounted: its mount point) with --report-to both made the
    destination's folder and put the job's reports there (README: nothing to copy is an error,
    exit 2, as a wrong path would be)."""
    castoff = Castoff(tmp_path / "user")
    (tmp_path / "media" / "A001").mkdir(parents=True)
    (tmp_path / "ssd").mkdir()
    r = castoff(
        "copy",
        str(tmp_path / "media" / "A001"),
        "--to",
        str(tmp_path / "ssd" / "shoots"),
        "--report-to",
        "both",
    )
    out = r.stdout + r.stderr
    assert r.returncode == 2, out
    assert "no file to copy" in out
    assert os.listdir(tmp_path / "ssd") == [], out
    assert "ASC MHL" not in out and "report copy" not in out, out
    assert len(list((castoff.state / "reports").glob("*.json"))) == 1  # the job's, in the state folder


def _write_until_full(fd: int) -> None:
    while True:
        os.write(fd, b"\0" * 4096)
