"""The state a SIGKILL leaves between the last part of a multipart upload and its completion,
made on purpose: every part is uploaded and in the catalog, CompleteMultipartUpload never
answered (or landed at the server unrecorded). The re-run must complete it, not hang.

Found by the kill soak: such a re-run fed no part, so the upload was never reopened, the commit
failed on it, and the job waited forever for that file (a re-run hung > 180 s)."""

from __future__ import annotations

from typing import Any

from faults.plugin import BIG, Rig
from servers import INTERNAL_ERROR_XML

#: CompleteMultipartUpload is the one POST naming an upload id
COMPLETE = {"method": "POST", "match": "uploadId="}


def leave_every_part_uncompleted(rig: Rig) -> Any:
    """Run the job with every CompleteMultipartUpload refused: its open upload, all parts in."""
    assert rig.proxy is not None
    rig.proxy.respond(500, INTERNAL_ERROR_XML, times=1000, **COMPLETE)
    first = rig.run(max_pauses=0)
    assert first.exit_code == 1
    (upload,) = rig.runner.catalog.open_uploads()
    assert upload.target.endswith(BIG)
    assert len(upload.parts) == 4  # 3 MiB + 17 bytes in 1 MiB parts: all of them
    rig.proxy.clear_faults()
    rig.proxy.reset_counters()
    return upload


def parts_sent(rig: Rig) -> list[str]:
    assert rig.proxy is not None
    return [target for method, target in rig.proxy.requests if method == "PUT" and "partNumber=" in target]


def test_every_part_sent_but_not_completed_the_rerun_completes_it(rig: Rig) -> None:
    leave_every_part_uncompleted(rig)
    second = rig.run()
    assert second.exit_code == 0, rig.runner.logs()
    assert parts_sent(rig) == []  # completed from the recorded parts, nothing sent again
    rig.check("process: SIGKILL between the last part and its completion, then a re-run", faults=1)


def test_completed_at_the_server_but_not_recorded_the_rerun_delivers_it_once(rig: Rig) -> None:
    upload = leave_every_part_uncompleted(rig)
    assert rig.bucket is not None
    rig.admin.complete_multipart_upload(
        Bucket=rig.bucket.options.bucket,
        Key=upload.target,
        UploadId=upload.token["upload_id"],
        MultipartUpload={"Parts": [{"PartNumber": p.index + 1, "ETag": p.etag} for p in upload.parts]},
    )
    second = rig.run()
    assert second.exit_code == 0, rig.runner.logs()
    rig.check(
        "process: SIGKILL after CompleteMultipartUpload landed, before its record, then a re-run", faults=1
    )
