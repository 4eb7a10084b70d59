"""A source that changes, vanishes or cannot be read while castoff reads it: the file reaches no
destination, the report names it, every other file is delivered, and the re-run completes."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from castoff.engine import job as job_module
from faults.check import Expect, source_hashes
from faults.plugin import BIG, PART, Rig


class FaultyOs:
    """The engine's view of ``os`` with a fault-injecting reader: ``action`` runs when the read
    of ``name`` reaches ``offset`` (mutate the file, remove the card); ``error`` fails the open or
    that read with an errno. Everything else is the real ``os``."""

    def __init__(
        self,
        name: str,
        offset: int = PART,
        *,
        action: Callable[[], None] | None = None,
        open_errno: int | None = None,
        read_errno: int | None = None,
    ) -> None:
        self.name, self.offset, self.action = name, offset, action
        self.open_errno, self.read_errno = open_errno, read_errno
        self.fds: set[int] = set()
        self.fired = 0

    def __getattr__(self, attr: str) -> Any:
        return getattr(os, attr)

    def open(self, path: str, flags: int, *args: Any) -> int:
        if str(path).endswith(self.name) and not flags & (os.O_WRONLY | os.O_RDWR):
            if self.open_errno is not None and not self.fired:
                self.fired += 1
                raise OSError(self.open_errno, os.strerror(self.open_errno), path)
            fd = os.open(path, flags, *args)
            self.fds.add(fd)
            return fd
        return os.open(path, flags, *args)

    def close(self, fd: int) -> None:
        self.fds.discard(fd)
        os.close(fd)

    def preadv(self, fd: int, buffers: list[Any], offset: int) -> int:
        if fd in self.fds and offset >= self.offset and not self.fired:
            self.fired += 1
            if self.read_errno is not None:
                raise OSError(self.read_errno, os.strerror(self.read_errno))
            assert self.action is not None
            self.action()
        return os.preadv(fd, buffers, offset)


@pytest.fixture
def inject(monkeypatch: pytest.MonkeyPatch) -> Callable[..., FaultyOs]:
    def make(name: str, **kw: Any) -> FaultyOs:
        faulty = FaultyOs(name, **kw)
        monkeypatch.setattr(job_module, "os", faulty)
        return faulty

    return make


def _grow(p: Path) -> None:
    with p.open("ab") as fh:
        fh.write(b"more")


def _shrink(p: Path) -> None:
    os.truncate(p, PART + 10)


def _rewrite(p: Path) -> None:
    with p.open("r+b") as fh:
        fh.seek(2 * PART)
        fh.write(b"\0" * 100)


def _replace(p: Path) -> None:
    tmp = p.with_name("new.tmp")
    tmp.write_bytes(p.read_bytes()[::-1])
    os.utime(tmp, ns=(p.stat().st_atime_ns, p.stat().st_mtime_ns))
    tmp.rename(p)


def _delete(p: Path) -> None:
    p.unlink()


CHANGES = {
    "grows": (_grow, "source-changed"),
    "shrinks": (_shrink, "source-changed"),
    "rewritten": (_rewrite, "source-changed"),
    "replaced": (_replace, "source-changed"),
    "deleted": (_delete, "source-vanished"),
}


@pytest.mark.parametrize("how", list(CHANGES))
def test_source_file_changes_during_the_read(rig: Rig, inject: Callable[..., FaultyOs], how: str) -> None:
    change, code = CHANGES[how]
    big = rig.source / BIG.removeprefix("card/")
    before = source_hashes(rig.source)
    faulty = inject(big.name, action=lambda: change(big))
    assert rig.run().exit_code == 1
    assert faulty.fired == 1
    rig.check(
        f"source: file {how} during the read", Expect(failed={BIG: code}, exit_code=1), faults=1, want=before
    )
    if how == "deleted":
        big.write_bytes(rig.files[BIG.removeprefix("card/")])
    assert rig.run().exit_code == 0, rig.runner.logs()
    rig.check(f"source: file {how} during the read")


@pytest.mark.parametrize(
    ("how", "kw", "code"),
    [
        ("permission denied", {"open_errno": errno.EACCES}, "source-read"),
        ("I/O error", {"read_errno": errno.EIO}, "source-read"),
    ],
)
def test_source_file_unreadable(
    rig: Rig, inject: Callable[..., FaultyOs], how: str, kw: Any, code: str
) -> None:
    """Tests run as root, which no permission stops: the errno comes from the reader instead."""
    faulty = inject("IMG_0002.CR3", offset=0, **kw)
    assert rig.run().exit_code == 1
    assert faulty.fired == 1
    said = [line for line in rig.runner.logs() if "IMG_0002.CR3" in line]
    assert len(said) == 1 and said[0].count("IMG_0002.CR3") == 1, said  # the path once, not twice
    if how == "permission denied":
        assert "check its permissions" in said[0]
    rig.check(
        f"source: {how}", Expect(failed={"card/DCIM/100CANON/IMG_0002.CR3": code}, exit_code=1), faults=1
    )
    assert rig.run().exit_code == 0, rig.runner.logs()
    rig.check(f"source: {how}")


def test_card_removed_mid_job(rig: Rig, inject: Callable[..., FaultyOs]) -> None:
    before = source_hashes(rig.source)
    pulled = rig.tmp / "pulled-card"
    inject("IMG_0003.CR3", offset=0, action=lambda: rig.source.rename(pulled))
    assert rig.run().exit_code == 1
    report = rig.runner.catalog.job_files(rig.runner.job_id)
    failed = {str(f["rel_path"]): str(f["error_code"]) for f in report if f["status"] == "failed"}
    assert "card/DCIM/100CANON/IMG_0003.CR3" in failed
    folders = [rel for rel in failed if rel not in before]  # a folder that could not be listed
    want = {rel: h for rel, h in before.items() if not any(rel.startswith(d + "/") for d in folders)}
    expect = Expect(failed=failed, exit_code=1)  # a folder not listed failed at every destination too
    assert set(failed.values()) <= {"source-vanished", "source-read"}
    rig.check("source: card removed mid-job", expect, faults=1, want=want)
    pulled.rename(rig.source)
    assert rig.run().exit_code == 0, rig.runner.logs()
    rig.check("source: card removed mid-job")
