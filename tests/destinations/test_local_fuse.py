"""Local destinations on real exFAT and FAT32 drives, as a shuttle drive is mounted on Linux without
their kernel drivers: exfat-fuse (``fuseblk``) and fusefat (``fuse.fusefat``). Neither has
RENAME_NOREPLACE, hard links, O_TMPFILE nor fallocate; both ignore case; fusefat refuses names FAT
cannot hold with EPERM and gives a file the time of its rename.

Each drive is an image on a loop device, made and mounted for the test (root, the FUSE tools and
a free loop device needed: skipped otherwise, saying which is missing), and unmounted and detached
after it, whether it passed or not."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import blake3
import pytest

from castoff import errors
from castoff.destinations.base import ObjectMeta
from castoff.destinations.local import LocalDestination
from castoff_cli import Castoff
from engine_runner import write

Drive = Callable[..., Path]
#: the tools each kind of drive needs: (make it, mount it)
TOOLS = {"exfat": ("mkfs.exfat", "mount.exfat-fuse"), "fat": ("mkfs.vfat", "fusefat")}
WHEN = 1_714_564_800  # 2024-05-01 12:00:00 UTC: an even second, as FAT keeps times


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=60)


def _mounted(point: Path) -> bool:
    return any(line.split()[1] == str(point) for line in Path("/proc/mounts").read_text().splitlines())


@pytest.fixture
def drive(tmp_path: Path) -> Iterator[Drive]:
    """``drive("exfat" | "fat", size)``: the folder where a new, empty drive of that kind is
    mounted."""
    mounted: list[Path] = []
    loops: list[str] = []

    def make(kind: str, size: str = "64M") -> Path:
        if os.geteuid() != 0:
            pytest.skip("mounting an exFAT or FAT drive image needs root")
        missing = [t for t in (*TOOLS[kind], "losetup", "umount") if shutil.which(t) is None]
        if missing:
            pytest.skip(f"{', '.join(missing)} not installed (scripts/bootstrap.sh installs them)")
        if not os.path.exists("/dev/fuse"):
            pytest.skip("no /dev/fuse on this machine")
        image = tmp_path / f"{kind}{len(loops)}.img"
        _run("truncate", "-s", size, str(image))
        made = _run(TOOLS[kind][0], *(["-F", "32"] if kind == "fat" else []), str(image))
        assert made.returncode == 0, made.stderr
        attached = _run("losetup", "-f", "--show", str(image))
        if attached.returncode != 0:
            pytest.skip(f"no free loop device: {attached.stderr.strip()}")
        loop = attached.stdout.strip()
        loops.append(loop)
        point = tmp_path / f"{kind}{len(loops)}"
        point.mkdir()
        cmd = (
            ["mount.exfat-fuse", loop, str(point)]
            if kind == "exfat"
            else ["fusefat", "-o", "rw+", loop, str(point)]
        )
        done = _run(*cmd)
        if done.returncode != 0:
            pytest.skip(f"{cmd[0]} could not mount {loop}: {done.stderr.strip()}")
        mounted.append(point)
        assert _mounted(point)
        return point

    try:
        yield make
    finally:
        for point in reversed(mounted):
            if _run("umount", str(point)).returncode != 0:
                _run("umount", "-l", str(point))  # still busy: detached, gone once let go
        for loop in loops:
            for _ in range(50):  # a FUSE daemon lets go of its device just after the unmount
                if _run("losetup", "-d", loop).returncode == 0:
                    break
                time.sleep(0.1)


def case_card(root: Path, folders: int) -> dict[str, bytes]:
    """``folders`` folders, each with three files that a drive ignoring case puts at one name:
    ``100CANON/IMG_0001.JPG``, ``100CANON/img_0001.jpg`` and ``100canon/IMG_0001.JPG``."""
    files = {}
    for i in range(folders):
        for j, rel in enumerate(("100CANON/IMG_0001.JPG", "100CANON/img_0001.jpg", "100canon/IMG_0001.JPG")):
            data = os.urandom(1000 + j)
            files[f"card/D{i:02}/{rel}"] = data
            write(root / "card" / f"D{i:02}" / rel, data)
    return files


def test_files_whose_names_differ_only_by_case_all_land_on_exfat(drive: Drive, tmp_path: Path) -> None:
    """QA: two such files sometimes ended as one, the other replaced, while the job said both
    verified and the card could be released (the check-then-rename raced between committers,
    and two uploads shared one partial file). Every file lands, at a name of its own that holds
    its bytes, and each conflict names the file as the drive has it."""
    shuttle = drive("exfat")
    files = case_card(tmp_path / "src", 20)
    castoff = Castoff(tmp_path / "user")
    done = castoff("copy", str(tmp_path / "src" / "card"), "--to", str(shuttle / "shoots"), "--no-mhl")
    assert done.returncode == 0, done.stderr
    report = json.loads(next((castoff.state / "reports").glob("*.json")).read_text())
    targets = {}
    for f in report["files"]:
        (d,) = f["destinations"]
        assert d["status"] == "verified", (f["path"], d)
        assert (
            blake3.blake3(Path(d["target"]).read_bytes()).hexdigest()
            == blake3.blake3(files[f["path"]]).hexdigest()
        )
        targets[d["target"].lower()] = f["path"]
    assert len(targets) == len(files)  # no two files at one name, whatever its case
    on_drive = [p for p in (shuttle / "shoots").rglob("*") if p.is_file()]
    assert len(on_drive) == len(files)
    assert {p.parent.name for p in on_drive} == {"100CANON"}  # one spelling of the folder
    said = [line for line in done.stderr.splitlines() if "exists with other content" in line]
    # (a file whose name another file of the job was still landing at says so instead)
    landing = [line for line in done.stderr.splitlines() if "another file of this job goes there" in line]
    assert len(said) + len(landing) == 2 * 20, done.stderr
    for line in said:
        existing = Path(line.split(": ", 1)[1].split(" exists with other content")[0])
        assert existing.name in os.listdir(existing.parent), line  # as the drive spells it
    again = castoff("copy", str(tmp_path / "src" / "card"), "--to", str(shuttle / "shoots"), "--no-mhl")
    assert again.returncode == 0 and "nothing to copy" in again.stderr


def test_two_jobs_naming_files_in_one_exfat_folder_at_once_replace_none(drive: Drive, tmp_path: Path) -> None:
    """Two cards copied to one drive at once (two castoff processes, one catalog), their files at
    one name: each process's check-then-rename holds the drive's root locked (flock), so neither
    finds a name free that the other is giving (without it, QA saw 16 of 160 files replaced, both
    jobs saying every file verified, or exfat-fuse itself dying)."""
    shuttle = drive("exfat", "128M")
    castoff = Castoff(tmp_path / "user")
    hashes = set()
    for card in ("A", "B"):
        for i in range(30):
            for name in ("IMG_0001.JPG", "img_0001.jpg"):
                data = os.urandom(2000)
                hashes.add(blake3.blake3(data).hexdigest())
                write(tmp_path / "src" / card / f"D{i:02}" / name, data)
    jobs = [
        castoff.popen(
            "copy",
            str(tmp_path / "src" / card),
            "--to",
            str(shuttle / "s"),
            "--template",
            "{name}",
            "--no-mhl",
        )
        for card in ("A", "B")
    ]
    for job in jobs:
        _out, err = job.communicate(timeout=300)
        assert job.returncode == 0, err
    landed = {blake3.blake3(p.read_bytes()).hexdigest() for p in (shuttle / "s").iterdir() if p.is_file()}
    assert landed == hashes


def test_exfat_through_fuse_is_not_preallocated_byte_by_byte(drive: Drive) -> None:
    """exfat-fuse has no fallocate, and glibc's posix_fallocate emulates it by writing a byte in
    every 4 KiB block (on this 64 MiB drive, until it is full, for a 200 MB file). castoff asks
    fallocate(2) once, hears it cannot, and writes nothing before the file's own bytes."""
    shuttle = drive("exfat")
    dest = LocalDestination(shuttle / "shoots")
    dest.preflight()
    assert dest.fs_type == "fuseblk" and dest.max_file_size is None
    size = 200_000_000
    upload = dest.start(
        f"{dest.root}/card/C0001.MP4",
        meta=ObjectMeta(rel_path="card/C0001.MP4", size=size, mtime_ns=WHEN * 10**9, atime_ns=WHEN * 10**9),
        part_size=8 << 20,
    )
    try:
        assert os.path.getsize(upload.data_path) == 0
        assert dest.preallocates is False
    finally:
        upload.abort()
    assert shutil.disk_usage(shuttle).used < 8 << 20


def test_fusefat_gets_fat_name_rules_and_keeps_the_times_castoff_sets(drive: Drive, tmp_path: Path) -> None:
    """QA: fusefat's mount type was not taken for FAT (names it cannot hold reached it, and its
    EPERM was said as permissions to change), and it gives a file the time of its rename, so
    every re-run read every file again."""
    card = drive("fat")
    src = tmp_path / "src" / "card"
    for name in ("what?.jpg", "ok.jpg", "IMG_0002.JPG"):
        os.utime(write(src / "DCIM" / name, os.urandom(3000)), (WHEN, WHEN))
    castoff = Castoff(tmp_path / "user")
    done = castoff("copy", str(src), "--to", str(card / "dst"), "--no-mhl")
    assert done.returncode == 1
    assert "'what?.jpg' cannot be written at" in done.stderr and "(fuse.fusefat)" in done.stderr
    assert "permissions" not in done.stderr
    landed = card / "dst" / "card" / "DCIM"
    assert sorted(os.listdir(landed)) == ["IMG_0002.JPG", "ok.jpg"]
    assert {os.stat(landed / n).st_mtime for n in os.listdir(landed)} == {WHEN}
    first = set((castoff.state / "reports").glob("*.json"))
    again = castoff("copy", str(src), "--to", str(card / "dst"), "--no-mhl")
    assert "another modification time" not in again.stderr
    (report,) = set((castoff.state / "reports").glob("*.json")) - first
    rerun = json.loads(report.read_text())
    statuses = {f["path"]: f["destinations"][0]["status"] for f in rerun["files"]}
    # skipped: found as castoff left them, with their times; not read back ("already")
    assert statuses == {
        "card/DCIM/IMG_0002.JPG": "skipped",
        "card/DCIM/ok.jpg": "skipped",
        "card/DCIM/what?.jpg": "failed",
    }


def test_a_name_fusefat_refuses_is_said_as_that_name_not_as_permissions(drive: Drive, tmp_path: Path) -> None:
    """With --name-rules posix nothing is checked up front: fusefat answers EPERM when the file is
    named. The folder is writable, so it is the name: that file fails alone, the others land."""
    card = drive("fat")
    src = tmp_path / "src" / "card"
    write(src / "a:b.txt", b"odd")
    write(src / "ok.txt", b"fine")
    castoff = Castoff(tmp_path / "user")
    done = castoff("copy", str(src), "--to", str(card / "dst"), "--no-mhl", "--name-rules", "posix")
    assert done.returncode == 1
    assert "the filesystem refused the name 'a:b.txt'" in done.stderr
    assert "change its permissions" not in done.stderr
    assert os.listdir(card / "dst" / "card") == ["ok.txt"]
    report = json.loads(next((castoff.state / "reports").glob("*.json")).read_text())
    odd = next(f for f in report["files"] if f["path"].endswith("a:b.txt"))
    assert odd["destinations"][0]["error_code"] == "key-rejected"


def test_a_fat_drive_refuses_a_file_of_4_gib_before_writing_a_byte(drive: Drive) -> None:
    card = drive("fat")
    dest = LocalDestination(card / "dst")
    dest.preflight()
    assert dest.fs_type == "fuse.fusefat" and dest.fat
    size = 4 * 1024**3
    meta = ObjectMeta(rel_path="card/C0001.MP4", size=size, mtime_ns=WHEN * 10**9, atime_ns=WHEN * 10**9)
    with pytest.raises(errors.FileTooBig) as caught:
        dest.start(f"{dest.root}/card/C0001.MP4", meta=meta, part_size=8 << 20)
    assert "FAT32 holds files of at most 4 GiB - 1 byte" in (caught.value.hint or "")
    assert os.listdir(dest.root) == []


def unknown_type(point: Path, table: Path) -> dict[str, str]:
    """The environment of a castoff that reads a mount table where the filesystem mounted at
    ``point`` has a type castoff does not know (``CASTOFF_MOUNT_TABLE``), as an SMB share through
    a FUSE filesystem castoff has never heard of would: only what the filesystem answers tells."""
    lines = []
    for line in Path("/proc/mounts").read_text().splitlines():
        fields = line.split()
        if fields[1] == str(point):
            fields[2] = "fuse.castoff-unknown"
        lines.append(" ".join(fields))
    table.write_text("\n".join(lines) + "\n")
    return {"CASTOFF_MOUNT_TABLE": str(table)}


def test_a_filesystem_of_a_type_castoff_does_not_know_is_asked_which_names_it_holds(
    drive: Drive, tmp_path: Path
) -> None:
    """QA L #1, #5: SMB through FUSE (smbnetfs, rclone, gvfs) was taken for a POSIX filesystem by
    its type: 100canon/ landed in 100CANON/ while the report named 100canon/, and one name with a
    ':' stopped the whole share with EIO. Preflight asks the filesystem: a case-swapped name found
    (it ignores case) and a ':' refused (Windows rules): the folder is spelt once, the ':' name
    fails alone, saying why, the others are verified; the probe files are gone."""
    shuttle = drive("exfat")
    card = tmp_path / "src" / "card"
    write(card / "DCIM" / "100CANON" / "IMG_0001.JPG", b"one" * 100)
    write(card / "DCIM" / "100canon" / "IMG_0002.JPG", b"two" * 100)
    write(card / "DCIM" / "100CANON" / "IMG_0003:edit.JPG", b"three" * 100)
    castoff = Castoff(tmp_path / "user", env=unknown_type(shuttle, tmp_path / "mounts"))
    done = castoff("copy", str(card), "--to", str(shuttle / "shoots"), "--no-mhl")
    assert done.returncode == 1, done.stderr
    report = json.loads(next((castoff.state / "reports").glob("*.json")).read_text())
    ends = {f["path"]: f["destinations"][0] for f in report["files"]}
    assert ends["card/DCIM/100canon/IMG_0002.JPG"]["status"] == "verified"
    assert ends["card/DCIM/100canon/IMG_0002.JPG"]["target"] == str(
        shuttle / "shoots" / "card" / "DCIM" / "100CANON" / "IMG_0002.JPG"
    )
    assert ends["card/DCIM/100CANON/IMG_0001.JPG"]["status"] == "verified"
    bad = ends["card/DCIM/100CANON/IMG_0003:edit.JPG"]
    assert bad["status"] == "failed" and "fuse.castoff-unknown, which refuses names" in bad["error"], bad
    assert "cannot be written" in done.stderr and "No more files go there" not in done.stderr
    assert sorted(os.listdir(shuttle / "shoots" / "card" / "DCIM")) == ["100CANON"]
    assert sorted(os.listdir(shuttle)) == ["shoots"]  # no probe file left
