"""The least a boto3 upload can cost: a bench peer that shows what Content-MD5 itself costs.

Uploads a folder as ``aws s3 cp --recursive`` lays it out (``s3://BUCKET/PREFIX/<folder name>/...``)
with castoff's botocore, castoff's part size (64 MiB) and parallelism (4 parts, 16 small objects in
flight), reading each file once and doing nothing else: no BLAKE3, no catalog, no metadata, no
ETag check. It retries what botocore's standard mode retries (a 500, a 503), as every peer does:
``rclone serve s3`` answers a few of thousands of small PUTs into new folders with a 500
InternalError (its log: "Dir.Rename error: file does not exist", two PUTs racing to make one
folder), and a floor that gave up there would measure nothing.

With ``--content-md5`` every PutObject and UploadPart carries the MD5 of its body, as castoff's
do; without it, none does (as aws-cli's, which send a CRC32 instead).

The two rows side by side price the Content-MD5 that issue 3 asks castoff to send: the client's
MD5 pass, and the server's own MD5 pass to check it (rclone serve s3 hashes every body it is given
a Content-MD5 for, on the same two cores). castoff's distance to the ``--content-md5`` row is what
castoff itself adds.

    python bench/floor_s3.py SRC --endpoint URL --bucket B --prefix P [--content-md5]

Credentials come from the environment (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

PART = 64 * 1024 * 1024
PARTS_IN_FLIGHT = 4
SMALL_IN_FLIGHT = 16


def _md5_header(body: bytes) -> dict[str, str]:
    return {"ContentMD5": base64.b64encode(hashlib.md5(body, usedforsecurity=False).digest()).decode()}


class Uploader:
    def __init__(self, endpoint: str, bucket: str, *, content_md5: bool) -> None:
        config = Config(
            s3={"addressing_style": "path", "payload_signing_enabled": False},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            max_pool_connections=SMALL_IN_FLIGHT + 4,
            retries={"total_max_attempts": 5, "mode": "standard"},
        )
        self.client: Any = boto3.client("s3", endpoint_url=endpoint, config=config)
        self.bucket = bucket
        self.content_md5 = content_md5

    def _checksum(self, body: bytes) -> dict[str, str]:
        return _md5_header(body) if self.content_md5 else {}

    def put(self, path: Path, key: str) -> None:
        body = path.read_bytes()
        self.client.put_object(Bucket=self.bucket, Key=key, Body=body, **self._checksum(body))

    def multipart(self, path: Path, key: str, size: int, parts: ThreadPoolExecutor) -> None:
        upload_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=key)["UploadId"]
        done: list[Future[dict[str, Any]]] = []
        with path.open("rb", buffering=0) as fh:
            for number, offset in enumerate(range(0, size, PART), start=1):
                # at most PARTS_IN_FLIGHT bodies in memory, as castoff's budget would allow
                while sum(not f.done() for f in done) >= PARTS_IN_FLIGHT:
                    next(f for f in done if not f.done()).result()
                body = fh.read(min(PART, size - offset))
                done.append(parts.submit(self._part, key, upload_id, number, body))
            listed = [f.result() for f in done]
        self.client.complete_multipart_upload(
            Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": listed}
        )

    def _part(self, key: str, upload_id: str, number: int, body: bytes) -> dict[str, Any]:
        answer = self.client.upload_part(
            Bucket=self.bucket,
            Key=key,
            UploadId=upload_id,
            PartNumber=number,
            Body=body,
            **self._checksum(body),
        )
        return {"PartNumber": number, "ETag": answer["ETag"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src", type=Path)
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--bucket", required=True)
    ap.add_argument("--prefix", required=True)
    ap.add_argument("--content-md5", action="store_true")
    args = ap.parse_args(argv)
    up = Uploader(args.endpoint, args.bucket, content_md5=args.content_md5)
    src: Path = args.src
    base = f"{args.prefix.strip('/')}/{src.name}"
    with (
        ThreadPoolExecutor(SMALL_IN_FLIGHT) as small,
        ThreadPoolExecutor(PARTS_IN_FLIGHT) as parts,
    ):
        pending: list[Future[None]] = []
        for folder, _, names in os.walk(src):
            for name in sorted(names):
                path = Path(folder, name)
                key = f"{base}/{path.relative_to(src).as_posix()}"
                size = path.stat().st_size
                if size <= PART:
                    pending.append(small.submit(up.put, path, key))
                else:
                    up.multipart(path, key, size, parts)
        for f in pending:
            f.result()  # an error ends the run: the bench flags it as failed
    return 0


if __name__ == "__main__":
    sys.exit(main())
