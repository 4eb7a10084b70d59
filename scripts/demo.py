"""``make demo``: a sample card offloaded to two local folders and a local S3-compatible bucket.

Everything happens under ./demo-out; the bucket is ``rclone serve s3`` on 127.0.0.1, stopped at the end.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "demo-out"
KEY, SECRET = "demo-access-key", "demo-secret-key-not-for-production"


def make_card(card: Path) -> None:
    rng = random.Random(2026)
    files: dict[str, int] = {
        f"DCIM/100CANON/IMG_{i:04}.CR3": rng.randint(900_000, 1_500_000) for i in range(12)
    }
    files.update({f"DCIM/100CANON/IMG_{i:04}.JPG": rng.randint(200_000, 400_000) for i in range(12)})
    files["PRIVATE/M4ROOT/CLIP/C0001.MP4"] = 48 * 1024 * 1024
    files["PRIVATE/M4ROOT/CLIP/C0001M01.XML"] = 2_000
    files["odd names/Café déjà vu #1 (final?) + notes.txt"] = 1_234
    files["odd names/100% & more = fun.jpg"] = 50_000
    files["odd names/empty.txt"] = 0
    for rel, size in files.items():
        path = card / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(size))
    (card / "DCIM" / ".DS_Store").write_bytes(b"junk the OS leaves behind")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> int:
    shutil.rmtree(OUT, ignore_errors=True)
    card = OUT / "EOS_DIGITAL"
    make_card(card)
    data = OUT / "bucket-data"
    (data / "demo-bucket").mkdir(parents=True)
    port = free_port()
    rclone = Path(sys.executable).parent / "rclone"
    server = subprocess.Popen(
        [
            str(rclone),
            "serve",
            "s3",
            "--config",
            "/dev/null",
            "--addr",
            f"127.0.0.1:{port}",
            "--auth-key",
            f"{KEY},{SECRET}",
            "--cache-dir",
            str(OUT / "rclone-cache"),
            str(data),
        ],
        stdout=subprocess.DEVNULL,
        stderr=open(OUT / "rclone.log", "wb"),  # noqa: SIM115
    )
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except OSError as exc:
                if getattr(exc, "code", None):
                    break
                time.sleep(0.1)
        bucket = (
            f"s3://demo-bucket/raw-shoots/?endpoint=http://127.0.0.1:{port}&region=us-east-1&addressing=path"
        )
        env = {**os.environ, "AWS_ACCESS_KEY_ID": KEY, "AWS_SECRET_ACCESS_KEY": SECRET}
        cmd = [
            sys.executable,
            "-m",
            "castoff",
            "--state-dir",
            str(OUT / "state"),
            "copy",
            str(card),
            "--to",
            str(OUT / "ssd"),
            "--to",
            str(OUT / "nas"),
            "--to",
            bucket,
        ]
        print("$ castoff copy", card, "--to demo-out/ssd --to demo-out/nas --to s3://demo-bucket/raw-shoots/")
        code = subprocess.call(cmd, env=env)
        print(
            f"\nThe bucket's objects are files under {data / 'demo-bucket'}; the catalog and the"
            f" reports under {OUT / 'state'}.\nRun it again to see every file skipped as already"
            " verified: castoff never copies a byte twice."
        )
        return code
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    raise SystemExit(main())
