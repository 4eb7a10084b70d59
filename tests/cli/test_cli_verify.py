"""castoff verify: a folder against its ASC MHL history or a castoff report; exit 0 only when all match."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_cli_lane_down import as_a_user  # noqa: F401 (a fixture, used by name)

from castoff.destinations.local import unreadable_folder

CASTOFF = [sys.executable, "-m", "castoff"]


def castoff(*args: str, state: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CASTOFF, "--state-dir", str(state), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def copied(tmp_path: Path) -> tuple[Path, Path]:
    card = tmp_path / "CARD"
    (card / "DCIM").mkdir(parents=True)
    (card / "DCIM" / "IMG_0001.JPG").write_bytes(b"one" * 1000)
    (card / "DCIM" / "IMG_0002.JPG").write_bytes(b"two" * 1000)
    (card / "[brackets] & <tags>.txt").write_bytes(b"three")
    dest = tmp_path / "ssd"
    r = castoff("copy", str(card), "--to", str(dest), "--report-to", "destination", state=tmp_path / "state")
    assert r.returncode == 0, r.stderr
    return dest, next((dest / "castoff-reports").glob("*.json"))


def test_untouched_folder_verifies(copied: tuple[Path, Path], tmp_path: Path) -> None:
    dest, report = copied
    for extra in ([], ["--report", str(report)]):
        r = castoff("verify", str(dest), *extra, state=tmp_path / "state")
        assert r.returncode == 0, r.stdout + r.stderr
        assert "all 3 recorded files match" in r.stdout


def test_missing_altered_and_extra_are_named(copied: tuple[Path, Path], tmp_path: Path) -> None:
    dest, report = copied
    (dest / "CARD" / "DCIM" / "IMG_0001.JPG").unlink()
    (dest / "CARD" / "DCIM" / "IMG_0002.JPG").write_bytes(b"tWo" * 1000)
    (dest / "CARD" / "stray.txt").write_bytes(b"?")
    for extra, fmt in (([], "xxh128"), (["--report", str(report)], "blake3")):
        whole_folder = not extra  # a history covers the folder; a report, its job's files only
        r = castoff("verify", str(dest), *extra, state=tmp_path / "state")
        assert r.returncode == 1, r.stdout + r.stderr
        assert "missing  CARD/DCIM/IMG_0001.JPG" in r.stdout
        assert "altered  CARD/DCIM/IMG_0002.JPG" in r.stdout and fmt in r.stdout
        assert ("extra    CARD/stray.txt" in r.stdout) is whole_folder
        assert ("1 other file here is not from this job: not checked" in r.stdout) is not whole_folder
        j = castoff("verify", str(dest), *extra, "--json", state=tmp_path / "state")
        assert j.returncode == 1
        doc = json.loads(j.stdout)
        assert doc["ok"] is False
        assert doc["missing"] == ["CARD/DCIM/IMG_0001.JPG"]
        assert [a["path"] for a in doc["altered"]] == ["CARD/DCIM/IMG_0002.JPG"]
        assert doc["extra"] == (["CARD/stray.txt"] if whole_folder else [])
        assert doc["others"] == (0 if whole_folder else 1)
        assert doc["matched"] == 1


def test_a_report_checks_its_own_job_on_a_drive_other_jobs_share(
    copied: tuple[Path, Path], tmp_path: Path
) -> None:
    """QA: a second card on the same drive made every check of the first job's report fail with
    its files as "extra"."""
    dest, report = copied
    card2 = tmp_path / "CARD2"
    (card2 / "DCIM").mkdir(parents=True)
    (card2 / "DCIM" / "IMG_0100.JPG").write_bytes(b"other" * 100)
    assert castoff("copy", str(card2), "--to", str(dest), state=tmp_path / "state").returncode == 0
    r = castoff("verify", str(dest), "--report", str(report), state=tmp_path / "state")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "all 3 recorded files match; nothing missing" in r.stdout
    assert "1 other file here is not from this job: not checked" in r.stdout


def test_a_report_names_the_files_its_job_never_delivered_and_fails_until_they_are_there(
    tmp_path: Path,
) -> None:
    """QA: for a drive where 11 of the job's 18 files failed, verify --report said "all 7 recorded
    files match; nothing missing, nothing extra", exit 0: it checked only what the job delivered.
    The files it did not deliver are named, and the folder does not hold the job until they are
    there with the bytes the job read (a re-run delivers them)."""
    state = tmp_path / "state"
    card = tmp_path / "CARD"
    for name in ("DCIM/IMG_0001.JPG", "DCIM/IMG_0002.JPG", "MISC/notes.txt"):
        (card / name).parent.mkdir(parents=True, exist_ok=True)
        (card / name).write_bytes(name.encode() * 100)
    dest = tmp_path / "ssd"
    (dest / "CARD").mkdir(parents=True)
    (dest / "CARD" / "DCIM").write_bytes(b"a file where the job needs a folder")
    assert castoff("copy", str(card), "--to", str(dest), state=state).returncode == 1
    (report,) = (state / "reports").glob("*.json")
    r = castoff("verify", str(dest), "--report", str(report), state=state)
    assert r.returncode == 1, r.stdout + r.stderr
    out = " ".join(r.stdout.split())
    for name in ("IMG_0001.JPG", "IMG_0002.JPG"):
        assert f"not delivered CARD/DCIM/{name} (failed here in the job: " in out
    assert "2 files of the job never reached this folder" in out
    assert "all 1 recorded" not in out and "nothing missing" not in out
    doc = json.loads(castoff("verify", str(dest), "--report", str(report), "--json", state=state).stdout)
    assert doc["ok"] is False and doc["matched"] == 1
    assert [(u["path"], u["status"]) for u in doc["undelivered"]] == [
        ("CARD/DCIM/IMG_0001.JPG", "failed"),
        ("CARD/DCIM/IMG_0002.JPG", "failed"),
    ]
    (dest / "CARD" / "DCIM").unlink()
    assert castoff("copy", str(card), "--to", str(dest), state=state).returncode == 0
    r = castoff("verify", str(dest), "--report", str(report), state=state)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 files the job did not deliver here are here now" in " ".join(r.stdout.split())
    (dest / "CARD" / "DCIM" / "IMG_0002.JPG").write_bytes(b"other bytes")
    r = castoff("verify", str(dest), "--report", str(report), state=state)
    assert r.returncode == 1 and "not delivered  CARD/DCIM/IMG_0002.JPG" in r.stdout


def test_a_report_follows_its_drive_mounted_elsewhere(copied: tuple[Path, Path], tmp_path: Path) -> None:
    """QA: the same drive at another mount point (/Volumes/SSD then, /media/ssd now) "named no
    file delivered" there: the report's destination folder is found by the files in it."""
    dest, report = copied
    kept = tmp_path / "job.json"
    kept.write_bytes(report.read_bytes())
    moved = tmp_path / "media" / "ssd-now"
    moved.parent.mkdir()
    dest.rename(moved)
    r = castoff("verify", str(moved), "--report", str(kept), state=tmp_path / "state")
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"its destination {dest} is this folder now" in " ".join(r.stdout.split())
    assert "all 3 recorded files match" in r.stdout
    (moved / "CARD" / "DCIM" / "IMG_0002.JPG").write_bytes(b"tWo" * 1000)
    r = castoff("verify", str(moved), "--report", str(kept), state=tmp_path / "state")
    assert r.returncode == 1 and "altered  CARD/DCIM/IMG_0002.JPG" in r.stdout
    elsewhere = tmp_path / "empty"
    elsewhere.mkdir()
    r = castoff("verify", str(elsewhere), "--report", str(kept), state=tmp_path / "state")
    assert r.returncode == 2 and "names no file delivered into" in r.stderr


def test_a_copy_of_one_of_two_identical_destinations_names_both(tmp_path: Path) -> None:
    """QA: ssd copied to ssd-moved; verify ssd-moved --report said "its destination …/nas is this
    folder now": the job's two copies are the same files, so nothing tells which one it was."""
    card = tmp_path / "CARD"
    (card / "DCIM").mkdir(parents=True)
    (card / "DCIM" / "IMG_0001.JPG").write_bytes(b"one" * 1000)
    ssd, nas = tmp_path / "ssd", tmp_path / "nas"
    r = castoff("copy", str(card), "--to", str(ssd), "--to", str(nas), state=tmp_path / "state")
    assert r.returncode == 0, r.stderr
    (report,) = (tmp_path / "state" / "reports").glob("*.json")
    subprocess.run(["cp", "-a", str(ssd), str(tmp_path / "ssd-moved")], check=True)
    r = castoff("verify", str(tmp_path / "ssd-moved"), "--report", str(report), state=tmp_path / "state")
    said = " ".join(r.stdout.split())
    assert r.returncode == 0, r.stdout + r.stderr
    assert "its destination /" not in said, said  # no one of them picked
    assert f"this folder is one of its destinations, moved: {ssd} or {nas}" in said, said


def test_bad_input_exits_2(copied: tuple[Path, Path], tmp_path: Path) -> None:
    dest, _ = copied
    state = tmp_path / "state"
    plain = tmp_path / "plain"
    plain.mkdir()
    not_json = tmp_path / "x.json"
    not_json.write_text("{not json")
    for args in (
        [str(tmp_path / "nowhere")],
        [str(plain)],
        [str(dest), "--report", str(not_json)],
        [str(plain), "--report", str(next((dest / "castoff-reports").glob("*.json")))],
    ):
        r = castoff("verify", *args, state=state)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert "castoff:" in r.stderr
    r = castoff("verify", str(dest), "--report", str(tmp_path / "nope.json"), state=state)
    assert r.returncode == 2
    assert f"{tmp_path / 'nope.json'} does not exist" in r.stderr, r.stderr
    assert "Errno" not in r.stderr


def test_a_tampered_history_fails_verification(copied: tuple[Path, Path], tmp_path: Path) -> None:
    dest, _ = copied
    manifest = next((dest / "ascmhl").glob("*.mhl"))
    manifest.write_text(manifest.read_text().replace("IMG_0001", "IMG_0009"))
    r = castoff("verify", str(dest), state=tmp_path / "state")
    assert r.returncode == 1
    assert "cannot be trusted" in r.stderr


def test_a_bucket_url_is_named_as_given_and_pointed_to_the_copy_options(tmp_path: Path) -> None:
    """QA: `castoff verify s3://b/p/?endpoint=http://…` said "s3:/b/p/?endpoint=http:/… is not a
    folder" (the URL folded as a path) and not how to check a bucket."""
    url = "s3://qab/vd/?endpoint=http://127.0.0.1:9"
    r = castoff("verify", url, state=tmp_path / "state")
    assert r.returncode == 2
    said = " ".join(r.stderr.split())
    assert f"{url}: castoff verify reads a folder, not a bucket" in said
    assert "--rehash --verify-download" in said


def test_a_symlink_or_fifo_at_a_recorded_path_is_altered_and_never_read(
    copied: tuple[Path, Path], tmp_path: Path
) -> None:
    """Before: a FIFO at a recorded path held ``castoff verify`` for ever, and a symlink to a
    good copy elsewhere passed as the file."""
    dest, report = copied
    good = tmp_path / "elsewhere.jpg"
    one = dest / "CARD" / "DCIM" / "IMG_0001.JPG"
    good.write_bytes(one.read_bytes())
    one.unlink()
    one.symlink_to(good)
    two = dest / "CARD" / "DCIM" / "IMG_0002.JPG"
    two.unlink()
    os.mkfifo(two)
    for extra in ([], ["--report", str(report)]):
        r = castoff("verify", str(dest), *extra, state=tmp_path / "state", timeout=30)
        assert r.returncode == 1, r.stdout + r.stderr
        assert "altered  CARD/DCIM/IMG_0001.JPG" in r.stdout and "found a symlink, not a file)" in r.stdout
        assert "altered  CARD/DCIM/IMG_0002.JPG" in r.stdout and "found a FIFO, not a file)" in r.stdout
        assert "1 match, 0 missing, 2 altered" in r.stdout


def _offload(card: Path, dest: Path, state: Path) -> Path:
    """One offload of the card with --mhl-source; its report."""
    before = set((state / "reports").glob("*.json")) if (state / "reports").is_dir() else set()
    r = castoff("copy", str(card), "--to", str(dest), "--mhl-source", state=state)
    assert r.returncode == 0, r.stderr
    (report,) = set((state / "reports").glob("*.json")) - before
    return report


def test_a_card_history_the_job_copied_is_checked_and_its_grown_chain_is_no_failure(tmp_path: Path) -> None:
    """QA: the second offload's report called the card's ascmhl/ files it copied "missing" (verify
    never looked inside an ascmhl folder), and every report did once the card's chain grew."""
    card, dest, state = tmp_path / "card", tmp_path / "d1", tmp_path / "state"
    (card / "DCIM").mkdir(parents=True)
    reports = []
    for i in range(3):  # the card grows; each offload adds a generation to its own history
        (card / "DCIM" / f"IMG_{i}.JPG").write_bytes(os.urandom(5000))
        reports.append(_offload(card, dest, state))
        for report in reports:
            r = castoff("verify", str(dest), "--report", str(report), "--json", state=state)
            assert r.returncode == 0, r.stdout + r.stderr
            out = json.loads(r.stdout)
            assert not out["missing"] and not out["altered"], out
    chain = "card/ascmhl/ascmhl_chain.xml"
    r = castoff("verify", str(dest), "--report", str(reports[1]), state=state)
    assert r.returncode == 0, r.stdout
    # the chain that job copied named one generation: it has more now, and is said to have
    now = (dest / chain).read_text().count("<hashlist ")
    assert now > 1 and f"grown    {chain}" in r.stdout and f"{now} generations now" in r.stdout
    assert "(1 ASC MHL chain as a later version)" in r.stdout
    # what the job copied is checked: a manifest altered, or a chain that names another history, fails
    (dest / chain).write_text((dest / chain).read_text().replace("0001_card", "0001_cord"))
    manifest = next((dest / "card" / "ascmhl").glob("0001_*.mhl"))
    manifest.write_bytes(manifest.read_bytes() + b"\n")
    r = castoff("verify", str(dest), "--report", str(reports[1]), state=state)
    assert r.returncode == 1, r.stdout
    assert f"altered  {chain}" in r.stdout and f"altered  card/ascmhl/{manifest.name}" in r.stdout


def test_a_folder_on_a_share_whose_connection_died_is_said_in_one_line(tmp_path: Path) -> None:
    """QA L 7: verify of a share whose FUSE client died (ENOTCONN) printed a traceback; so did
    ``dest test`` of it, and a copy there said it "does not exist". Each says it cannot read it,
    and why, in one line with what to do (here an exFAT drive through FUSE, its daemon killed)."""
    from fat_mounts import fat_drive

    card = tmp_path / "CARD"
    (card / "DCIM").mkdir(parents=True)
    (card / "DCIM" / "IMG_0001.JPG").write_bytes(b"one" * 1000)
    state = tmp_path / "state"
    env = {"CASTOFF_CONFIG": str(tmp_path / "config.toml"), "COLUMNS": "1000"}
    with fat_drive(tmp_path) as drive:
        dest = drive.path / "shoots"
        r = castoff("copy", str(card), "--to", str(dest), state=state)
        assert r.returncode == 0, r.stderr
        drive.pull()
        # What the kernel still holds of the folder (FUSE's attribute cache, about a second)
        # answers for it until then: wait until a look fails, as any look will after it.
        for _ in range(100):
            if unreadable_folder(str(dest)) is not None:
                break
            time.sleep(0.1)
        for args, code in (
            (["verify", str(dest)], 2),
            (["verify", str(drive.path)], 2),
            (["copy", str(card), "--to", str(dest)], 2),
            (["dest", "add", "nas", "local", str(dest)], 1),
        ):
            r = subprocess.run(
                [*CASTOFF, "--state-dir", str(state), *args],
                capture_output=True, text=True, timeout=120, check=False, env={**os.environ, **env},
            )  # fmt: skip
            out = r.stdout + r.stderr
            assert r.returncode == code, (args, out)
            assert "Traceback" not in out and "does not exist" not in out, (args, out)
            where = args[1] if args[0] == "verify" else str(dest)  # (verify: or a file there)
            assert f"cannot read {where}" in out and f": {os.strerror(errno.ENOTCONN)}" in out, (args, out)
            assert "is the share or drive mounted, and does it answer?" in out, (args, out)


def test_a_folder_that_cannot_be_listed_says_so_for_each_file_in_it(
    tmp_path: Path,
    as_a_user: list[str],  # noqa: F811 (the fixture imported above)
) -> None:
    """Its files were said to be missing (os.walk passes over a folder it cannot list, silently),
    and a user looked for copies that were there. Each is named, as a file that cannot be read
    is, with the folder and why; the files beside it are checked as before."""
    card = tmp_path / "CARD"
    for rel, data in (
        ("DCIM/100/a.jpg", b"a" * 100),
        ("DCIM/101/b.jpg", b"b" * 100),
        ("DCIM/101/x/c.jpg", b"c"),
    ):
        (card / rel).parent.mkdir(parents=True, exist_ok=True)
        (card / rel).write_bytes(data)
    dest, state = tmp_path / "ssd", tmp_path / "state"
    r = castoff("copy", str(card), "--to", str(dest), "--report-to", "destination", state=state)
    assert r.returncode == 0, r.stderr
    (report,) = (dest / "castoff-reports").glob("*.json")
    (dest / "CARD" / "DCIM" / "101").chmod(0)
    for against in ([], ["--report", str(report)]):
        r = subprocess.run(
            [*as_a_user, *CASTOFF, "--state-dir", str(state), "verify", str(dest), *against],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert r.returncode == 1, (against, r.stdout, r.stderr)
        assert "  missing  " not in r.stdout and "0 missing" in r.stdout, (against, r.stdout)
        for name in ("b.jpg", "x/c.jpg"):
            assert (
                f"altered  CARD/DCIM/101/{name}" in r.stdout
                and f"its folder CARD/DCIM/101 could not be listed: {os.strerror(errno.EACCES)}" in r.stdout
            ), (against, r.stdout)
        assert "CARD/DCIM/100/a.jpg" not in r.stdout, (against, r.stdout)
