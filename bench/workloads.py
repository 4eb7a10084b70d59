"""Generate the benchmark's source folders: card, many-small and one-huge.

Deterministic (seeded), incompressible, fast; cached beside the folder by a manifest.

Bytes come from a BLAKE3 extendable output keyed by (seed, relative path): about 1.8 GB/s on one
core with the ``blake3`` package (a castoff dependency). Without it, SHAKE-128 from hashlib is used
(about 0.5 GB/s, different bytes; the manifest records which). Every file's content is distinct, so
no tool can benefit from duplicate detection.

Run alone: ``python bench/workloads.py card --scale 0.1 --where tmpfs``.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import random
import shutil
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType
from typing import Any


def _optional(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


blake3 = _optional("blake3")  # a castoff dependency; SHAKE-128 stands in without it

MIB = 1 << 20
GIB = 1 << 30
CHUNK = 8 * MIB
WORKLOADS = ("card", "many-small", "one-huge")
WHERE = {"tmpfs": Path("/dev/shm/castoff-bench"), "disk": Path("/var/tmp/castoff-bench")}
GENERATOR = "blake3-xof" if blake3 is not None else "shake128"
MANIFEST_VERSION = 1


@dataclass(frozen=True)
class Params:
    """Everything that decides a workload's bytes; equal params give equal folders."""

    name: str
    scale: float = 1.0
    seed: int = 1
    clips: int = 4  # card: 256 MiB "clips"
    clip_mib: int = 256
    photos: int = 300  # card: "photos", sizes uniform in [photo_min_mib, photo_max_mib]
    photo_min_mib: float = 1.0
    photo_max_mib: float = 6.0
    small_files: int = 20_000  # many-small
    small_min_kib: int = 4
    small_max_kib: int = 64
    huge_gib: float = 8.0  # one-huge; --scale multiplies this size (there is only one file)


@dataclass(frozen=True)
class Workload:
    """A generated source folder and what it holds."""

    name: str
    root: Path  # the folder handed to every tool; its own name is kept at the destinations
    files: int
    nbytes: int
    params: dict[str, Any]
    generator: str

    @property
    def gib(self) -> float:
        return self.nbytes / GIB


def _count(n: int, scale: float) -> int:
    return max(1, round(n * scale))


def plan(p: Params) -> list[tuple[str, int]]:
    """The (relative path, size) of every file of a workload, in creation order."""
    rng = random.Random(f"{p.name}:{p.seed}")
    files: list[tuple[str, int]] = []
    if p.name == "card":
        # A camera-card-like tree: DCIM/100CANON photos (JPG + CR3 pairs), clips under PRIVATE/.
        for i in range(_count(p.clips, p.scale)):
            files.append((f"PRIVATE/M4ROOT/CLIP/C{i + 1:04d}.MP4", p.clip_mib * MIB))
        n_photos = _count(p.photos, p.scale)
        for i in range(n_photos):
            folder = f"DCIM/{100 + i // 200:03d}CANON"
            ext = "CR3" if i % 3 == 2 else "JPG"
            size = int(rng.uniform(p.photo_min_mib, p.photo_max_mib) * MIB)
            files.append((f"{folder}/IMG_{i % 9999 + 1:04d}.{ext}", size))
        files.append(("MISC/VERSION.TXT", 0))  # an empty file, as cards have
    elif p.name == "many-small":
        n = _count(p.small_files, p.scale)
        for i in range(n):
            top, mid = divmod(i // 100, 20)
            size = rng.randint(p.small_min_kib * 1024, p.small_max_kib * 1024)
            files.append((f"d{top:03d}/m{mid:02d}/f{i:06d}.bin", size))
    elif p.name == "one-huge":
        size = max(MIB, int(p.huge_gib * p.scale * GIB))
        files.append(("huge.bin", size))
    else:
        raise ValueError(f"unknown workload {p.name!r}; choose from {', '.join(WORKLOADS)}")
    return files


def _chunks(key: bytes, size: int) -> Iterator[bytes]:
    if blake3 is not None:
        xof = blake3.blake3(key)
        for offset in range(0, size, CHUNK):
            yield xof.digest(length=min(CHUNK, size - offset), seek=offset)
    else:
        # SHAKE has no seek: derive each chunk from (key, chunk index) instead.
        for index, offset in enumerate(range(0, size, CHUNK)):
            seed = key + index.to_bytes(8, "little")
            yield hashlib.shake_128(seed).digest(min(CHUNK, size - offset))


def write_file(path: Path, key: bytes, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        for block in _chunks(key, size):
            f.write(block)


def _manifest_path(root: Path) -> Path:
    return root.parent / f"{root.name}.manifest.json"


def generate(p: Params, base: Path, *, log: bool = True) -> Workload:
    """Create (or reuse, when the manifest matches) the workload folder under ``base/src``."""
    root = base / "src" / p.name
    files = plan(p)
    nbytes = sum(s for _, s in files)
    wanted = {
        "version": MANIFEST_VERSION,
        "generator": GENERATOR,
        "params": asdict(p),
        "files": len(files),
        "nbytes": nbytes,
    }
    manifest = _manifest_path(root)
    workload = Workload(
        name=p.name,
        root=root,
        files=len(files),
        nbytes=nbytes,
        params=asdict(p),
        generator=GENERATOR,
    )
    if manifest.exists() and root.is_dir():
        try:
            if json.loads(manifest.read_text()) == wanted:
                if log:
                    print(f"workload {p.name}: reusing {root} ({workload.gib:.2f} GiB)")
                return workload
        except (OSError, ValueError):
            pass
    if root.exists():
        shutil.rmtree(root)
    manifest.unlink(missing_ok=True)
    if log:
        print(
            f"workload {p.name}: generating {len(files)} files, {workload.gib:.2f} GiB "
            f"in {root} ({GENERATOR})",
            flush=True,
        )
    for rel, size in files:
        key = hashlib.sha256(f"{p.seed}\0{p.name}\0{rel}".encode()).digest()
        write_file(root / rel, key, size)
    manifest.write_text(json.dumps(wanted, indent=1))
    return workload


def drop_workload(root: Path) -> None:
    """Remove a generated workload folder and its manifest."""
    shutil.rmtree(root, ignore_errors=True)
    _manifest_path(root).unlink(missing_ok=True)


def clean_workdir(base: Path, created: list[Path], *, keep_workloads: bool) -> None:
    """Remove a run's destinations, state and logs, and the sources it generated (unless kept)."""
    for sub in ("dst", "state", "scratch", "logs"):
        shutil.rmtree(base / sub, ignore_errors=True)
    if not keep_workloads:
        for root in created:
            drop_workload(root)
        for d in (base / "src", base):
            try:
                d.rmdir()  # only if empty: never remove what this run did not create
            except OSError:
                pass


def planned_bytes(p: Params) -> int:
    return sum(s for _, s in plan(p))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("workload", choices=WORKLOADS)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--where", choices=sorted(WHERE), default="tmpfs")
    ap.add_argument("--workdir", type=Path, help="base folder (overrides --where)")
    ap.add_argument("--huge-gib", type=float, default=8.0)
    args = ap.parse_args(argv)
    base = args.workdir or WHERE[args.where]
    p = Params(name=args.workload, scale=args.scale, seed=args.seed, huge_gib=args.huge_gib)
    w = generate(p, base)
    print(json.dumps({"root": str(w.root), "files": w.files, "bytes": w.nbytes}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
