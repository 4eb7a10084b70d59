"""Local destinations that fill up, turn read-only, disappear or rot: nothing wrong is visible,
the report names each loss, and the re-run completes the job."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from castoff import errors
from castoff.destinations.faulty import FaultPlan, FaultyDestination, PartFault
from castoff.destinations.local import LocalDestination
from faults.check import Expect, LocalView, source_hashes, visible_is_right
from faults.plugin import Rig

Mount = Callable[..., Path | None]


def _run(*cmd: str) -> bool:
    return subprocess.run(cmd, capture_output=True, check=False).returncode == 0


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Mount]:
    """``tmpfs(size)``: a size-limited tmpfs mounted for this test, or None where the machine
    does not allow mounting (then the tests inject the same errno through the faulty wrapper)."""
    mounted: list[Path] = []

    def mount(size: str) -> Path | None:
        if os.geteuid() != 0 or shutil.which("mount") is None:
            return None
        point = tmp_path / f"mnt{len(mounted)}"
        point.mkdir()
        if not _run("mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(point)):
            return None
        mounted.append(point)
        return point

    yield mount
    if mounted:  # wherever a test moved them to
        points = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
        for point in reversed(points):
            if point.startswith(str(tmp_path) + "/"):
                _run("umount", "-l", point)


def failures_at(rig: Rig, name: str, codes: set[str]) -> dict[tuple[str, str], str]:
    """What the job says did not reach ``name``; every one with one of ``codes``."""
    out = {}
    for row in rig.runner.catalog.job_outcomes(rig.runner.job_id):
        if row["dest_name"] == name and row["status"] != "verified":
            assert row["error_code"] in codes, (row["rel_path"], row["status"], row["error"])
            out[(row["rel_path"], name)] = row["error_code"]
    assert out, f"nothing failed at {name}: the fault did not bite"
    return out


def test_destination_fills_up(rig: Rig, tmpfs: Mount) -> None:
    point = tmpfs("1500k")
    if point is not None:  # a real ENOSPC from a small filesystem
        full = LocalDestination(point / "ssd")
        target: LocalDestination | FaultyDestination = full
    else:
        full = LocalDestination(rig.tmp / "ssd-full")
        target = FaultyDestination(
            full,
            FaultPlan(
                part_faults=[
                    PartFault(
                        "PART.JPG", lambda: errors.DestinationFull("No space left on device (injected)")
                    )
                ]
            ),
        )
    rig.locals[0] = full
    assert rig.run([target, *rig.locals[1:], *([rig.bucket] if rig.bucket else [])]).exit_code == 1
    lost = failures_at(rig, full.name, {"destination-full"})
    rig.check("disk: destination fills up (ENOSPC)", Expect(dest_failed=lost, exit_code=1), faults=1)
    if point is not None:
        assert _run("mount", "-o", "remount,size=64m", str(point))
    assert rig.run().exit_code == 0, rig.runner.logs()
    rig.check("disk: destination fills up (ENOSPC)")


def test_destination_mounted_read_only(rig: Rig, tmpfs: Mount) -> None:
    point = tmpfs("64m")
    if point is None or not _run("mount", "-o", "remount,ro", str(point)):
        pytest.skip("this machine does not allow mounting; the mid-job case below injects EROFS")
    rig.locals[0] = LocalDestination(point / "ssd")
    assert rig.run().exit_code == 1
    lost = failures_at(rig, rig.locals[0].name, {"destination-gone", "destination-read-only"})
    rig.check("disk: mounted read-only", Expect(dest_failed=lost, exit_code=1), faults=1)
    assert _run("mount", "-o", "remount,rw", str(point))
    assert rig.run().exit_code == 0, rig.runner.logs()
    rig.check("disk: mounted read-only")


def test_destination_turns_read_only_mid_job(rig: Rig) -> None:
    ssd = rig.locals[0]
    plan = FaultPlan(
        part_faults=[
            PartFault(
                "C0001", lambda: errors.DestinationReadOnly("Read-only file system (injected)"), index=2
            )
        ]
    )
    assert rig.run([FaultyDestination(ssd, plan), *rig.dests[1:]]).exit_code == 1
    lost = failures_at(rig, ssd.name, {"destination-read-only"})
    rig.check("disk: turns read-only mid-job", Expect(dest_failed=lost, exit_code=1), faults=1)
    assert rig.run().exit_code == 0, rig.runner.logs()
    rig.check("disk: turns read-only mid-job")


def test_destination_removed_mid_job(rig: Rig, tmpfs: Mount) -> None:
    """The drive goes away after some files (its mount moves elsewhere, or the folder does):
    castoff must not write the rest into the empty mount point or a re-created folder and call
    them verified. Plugged back in, the re-run completes it and clears the hidden partials."""
    point = tmpfs("64m")
    ssd = LocalDestination(point / "ssd") if point is not None else rig.locals[0]
    rig.locals[0] = ssd
    away = rig.tmp / "unplugged"
    away.mkdir()
    by_mount = point is not None

    class Unplugged(FaultyDestination):
        def start(self, target: str, **kw: Any) -> Any:  # between two files
            if target.endswith("IMG_0003.CR3"):
                unplug()
            return super().start(target, **kw)

    def unplug() -> None:
        nonlocal by_mount
        if by_mount and not _run("mount", "--make-private", "--move", str(point), str(away)):
            by_mount = False
        if not by_mount:
            Path(ssd.root).rename(away / "ssd")

    assert rig.run([Unplugged(ssd, FaultPlan()), *rig.dests[1:]]).exit_code == 1
    failures_at(rig, ssd.name, {"destination-gone"})
    root = Path(ssd.root)
    assert not root.exists() or not any(root.iterdir()), "files went to where the drive was"
    visible_is_right(source_hashes(rig.source), [LocalView(ssd.name, away / "ssd")])
    if by_mount:  # plug it back in
        assert point is not None
        assert _run("mount", "--move", str(away), str(point))
    else:
        (away / "ssd").rename(root)
    assert rig.run().exit_code == 0, rig.runner.logs()
    rig.check("disk: removed mid-job, then plugged back in", faults=1)


def test_bit_rot_between_write_and_read_back(rig: Rig) -> None:
    ssd = rig.locals[0]
    rotten = FaultyDestination(ssd, FaultPlan(corrupt_before_commit=["IMG_0002", "C0001"]))
    assert rig.run([rotten, *rig.dests[1:]]).exit_code == 1
    lost = failures_at(rig, ssd.name, {"integrity"})
    assert len(lost) == 2
    rig.check("disk: bit rot between write and read-back", Expect(dest_failed=lost, exit_code=1), faults=2)
    assert rig.run().exit_code == 0, rig.runner.logs()
    rig.check("disk: bit rot between write and read-back")
