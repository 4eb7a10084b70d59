"""Network faults between castoff and a real bucket: every file still lands once, exactly."""

from __future__ import annotations

from typing import Any

import pytest

from castoff.destinations import s3
from castoff.destinations.faulty import FaultPlan, FaultyDestination
from faults.check import Expect
from faults.plugin import Rig, s3_dest
from servers import INTERNAL_ERROR_XML, SLOW_DOWN_XML, RcloneServer


def fired(rig: Rig) -> int:
    assert rig.proxy is not None
    assert rig.proxy.pending_faults == 0, "a planned fault never fired"
    return len(rig.proxy.fired)


def test_connection_reset_mid_part(rig: Rig) -> None:
    assert rig.proxy is not None
    rig.proxy.drop_after(300_000, match="partNumber=2", times=2)
    rig.proxy.drop_after(1_000, match="IMG_0001", method="PUT")
    assert rig.run().exit_code == 0, rig.runner.logs()
    rig.check("network: connection reset mid-part", faults=fired(rig))


def test_stall_past_the_read_timeout(rig: Rig, monkeypatch: pytest.MonkeyPatch, rclone_s3: Any) -> None:
    assert rig.proxy is not None
    monkeypatch.setattr(s3, "READ_TIMEOUT", 5.0)
    rig.bucket = s3_dest(rig.proxy.url, rclone_s3.bucket, rclone_s3.access_key, rclone_s3.secret_key)
    rig.proxy.stall(10.0, match="partNumber=3")
    assert rig.run().exit_code == 0, rig.runner.logs()
    assert any("did not answer in time" in line for line in rig.runner.logs())
    rig.check("network: stall past the timeout", faults=fired(rig))


def test_slow_down_and_internal_error_bursts(rig: Rig) -> None:
    assert rig.proxy is not None
    rig.proxy.respond(503, SLOW_DOWN_XML, headers={"Retry-After": "0"}, match="partNumber=2", times=4)
    rig.proxy.respond(500, INTERNAL_ERROR_XML, match="partNumber=4", times=3)
    rig.proxy.respond(503, SLOW_DOWN_XML, match="IMG_0002", method="PUT", times=2)
    assert rig.run().exit_code == 0, rig.runner.logs()
    rig.check("network: 503 SlowDown and 500 bursts", faults=fired(rig))


def test_corrupted_byte_in_a_request_body(rig: Rig) -> None:
    assert rig.proxy is not None
    rig.proxy.corrupt_byte(1_000, match="partNumber=1")
    rig.proxy.corrupt_byte(10, match="IMG_0003", method="PUT")
    assert rig.run().exit_code == 0, rig.runner.logs()
    rig.check("network: corrupted byte in a request body", faults=fired(rig))


def test_truncated_responses_to_a_part_and_to_complete(rig: Rig) -> None:
    """The server did the work but castoff never saw the answer: a part is sent again, a lost
    Complete answer makes the upload start over (the server no longer knows it)."""
    assert rig.proxy is not None
    rig.proxy.truncate_response(20, match="partNumber=2")
    rig.proxy.truncate_response(40, match="uploadId=", method="POST")
    assert rig.run().exit_code == 0, rig.runner.logs()
    rig.check("network: truncated response", faults=fired(rig))


def test_throttled_beyond_patience_is_incomplete_then_resumes(rig: Rig) -> None:
    """A bucket that keeps answering 503 rests, gives up for this job (exit 1, resumable); the
    re-run finishes from the recorded parts."""
    assert rig.proxy is not None
    rig.proxy.respond(503, SLOW_DOWN_XML, headers={"Retry-After": "0"}, match="partNumber=3", times=10_000)
    result = rig.run(max_pauses=1)
    assert result.exit_code == 1
    name = rig.bucket.name if rig.bucket else ""
    rig.check(
        "network: throttled beyond patience",
        Expect(
            dest_failed={("card/PRIVATE/M4ROOT/CLIP/C0001.MP4", name): "throttled"},
            exit_code=1,
            incomplete_ok=frozenset({name}),
        ),
        faults=len(rig.proxy.fired),
    )
    rig.proxy.clear_faults()
    rig.proxy.reset_counters()
    assert rig.run().exit_code == 0, rig.runner.logs()
    assert "partNumber=1" not in " ".join(t for _, t in rig.proxy.requests)  # parts 1-2 not sent again
    rig.check("network: throttled beyond patience")


@pytest.fixture
def own_rclone() -> Any:
    with RcloneServer() as server:
        yield server


def test_server_killed_and_restarted_mid_job(rig: Rig, own_rclone: RcloneServer, fault_proxy: Any) -> None:
    """rclone serve s3 dies during the clip's upload and comes back with its data (but not its
    multipart uploads): the clip starts over and every other file is still there."""
    bucket = "castoff-restart"
    own_rclone.create_bucket(bucket)
    proxy = fault_proxy(own_rclone)
    inner = s3_dest(proxy.url, bucket, own_rclone.access_key, own_rclone.secret_key)
    kills = {"n": 0}

    def kill_and_restart(target: str, index: int) -> None:
        if target.endswith("C0001.MP4") and index == 2 and not kills["n"]:
            kills["n"] += 1
            own_rclone.kill()
            own_rclone.restart()

    rig.bucket, rig.admin, rig.proxy = inner, own_rclone.admin_client(), proxy
    faulty = FaultyDestination(inner, FaultPlan(on_put=kill_and_restart))
    assert rig.run([*rig.locals, faulty]).exit_code == 0, rig.runner.logs()
    assert kills["n"] == 1
    rig.check("network: server killed and restarted", faults=1)


def test_server_down_until_the_end_then_rerun(rig: Rig, own_rclone: RcloneServer, fault_proxy: Any) -> None:
    bucket = "castoff-down"
    own_rclone.create_bucket(bucket)
    proxy = fault_proxy(own_rclone)
    inner = s3_dest(proxy.url, bucket, own_rclone.access_key, own_rclone.secret_key)

    def kill(target: str, index: int) -> None:
        if target.endswith("C0001.MP4") and index == 1 and own_rclone.is_running():
            own_rclone.kill()

    rig.bucket, rig.admin, rig.proxy = inner, own_rclone.admin_client(), proxy
    result = rig.run([*rig.locals, FaultyDestination(inner, FaultPlan(on_put=kill))], max_pauses=1)
    assert result.exit_code == 1
    own_rclone.restart()
    rig.admin = own_rclone.admin_client()
    report = rig.runner.catalog.job_outcomes(rig.runner.job_id)
    missing = {
        (r["rel_path"], inner.name): r["error_code"]
        for r in report
        if r["status"] in ("failed", "incomplete")
    }
    assert missing, "the bucket lost nothing?"
    rig.check(
        "network: server down until the end",
        Expect(dest_failed=missing, exit_code=1, incomplete_ok=frozenset({inner.name})),
        faults=1,
    )
    assert rig.run().exit_code == 0, rig.runner.logs()
    rig.check("network: server down until the end")
