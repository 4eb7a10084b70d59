"""Faults of time: credentials that expire or are rotated mid-job, a clock the server refuses."""

from __future__ import annotations

from typing import Any

from castoff.destinations.base import MiB
from castoff.destinations.faulty import FaultPlan, FaultyDestination
from faults.check import Expect
from faults.plugin import BIG, Rig, make_card, s3_dest
from servers import s3_error_xml

SKEW_XML = s3_error_xml(
    "RequestTimeTooSkewed", "The difference between the request time and the current time is too large."
)


def moto_rig(rig: Rig, moto: Any, key: str, secret: str, plan: FaultPlan | None = None) -> FaultyDestination:
    """The rig's card (with 5 MiB parts, moto's minimum) to its folders and a moto bucket."""
    make_card(rig.source, seed=11, big=11 * MiB)
    rig.files = {}
    rig.bucket = s3_dest(moto.url, moto.bucket, key, secret, part_size=5 * MiB)
    rig.admin = moto.admin_client()
    return FaultyDestination(rig.bucket, plan or FaultPlan())


def test_credentials_expire_mid_job_then_rotated_key_resumes(rig: Rig, moto: Any) -> None:
    key, secret = moto.enable_write_only()
    expired: dict[str, Any] = {"n": 0}

    def expire(target: str, index: int) -> None:
        if target.endswith("C0001.MP4") and index == 1 and not expired["n"]:
            expired["n"] += 1
            expired["user"] = moto.server.expire_key(key)

    bucket = moto_rig(rig, moto, key, secret, FaultPlan(on_put=expire))
    result = rig.run([*rig.locals, bucket], chunk_size=5 * MiB, memory_budget=40 * MiB)
    assert result.exit_code == 1
    assert expired["n"] == 1
    assert rig.bucket is not None
    name = rig.bucket.name
    rows = rig.runner.catalog.job_outcomes(rig.runner.job_id)
    lost = {
        (r["rel_path"], name): r["error_code"]
        for r in rows
        if r["dest_name"] == name and r["status"] != "verified"
    }
    assert lost.get((BIG, name)) == "bad-credentials", [r["error"] for r in rows if r["status"] != "verified"]
    assert any("unknown access key" in line for line in rig.runner.logs())
    rig.check(
        "time: credentials expire mid-job",
        Expect(dest_failed=lost, exit_code=1, incomplete_ok=frozenset({name})),
        faults=1,
    )
    new_key, new_secret = moto.server.new_key(expired["user"])
    rig.bucket = s3_dest(moto.url, moto.bucket, new_key, new_secret, part_size=5 * MiB)
    assert rig.run(chunk_size=5 * MiB, memory_budget=40 * MiB).exit_code == 0, rig.runner.logs()
    rig.check("time: credentials rotated, the job resumes")


def test_clock_skew_is_refused_plainly_then_the_rerun_delivers(rig: Rig) -> None:
    assert rig.proxy is not None
    rig.proxy.respond(403, SKEW_XML, match="IMG_0004", method="PUT", times=50)
    assert rig.run().exit_code == 1
    assert rig.bucket is not None
    name = rig.bucket.name
    rig.check(
        "time: RequestTimeTooSkewed",
        Expect(dest_failed={("card/DCIM/100CANON/IMG_0004.CR3", name): "clock-skew"}, exit_code=1),
        faults=len(rig.proxy.fired),
    )
    logs = " ".join(rig.runner.logs())
    assert "clock" in logs and "NTP" in logs
    rig.proxy.clear_faults()
    assert rig.run().exit_code == 0, rig.runner.logs()
    rig.check("time: RequestTimeTooSkewed")
