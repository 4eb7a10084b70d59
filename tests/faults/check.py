"""The one check every fault scenario ends with, and the tally `make soak` prints.

After a job (or its re-run): every source file at every destination has the source's BLAKE3
(buckets read back with an admin key), nothing partial or unexpected is visible, the report says
exactly what happened, and no multipart upload exists that the catalog does not account for.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import blake3

from castoff.catalog.db import Catalog
from castoff.reports import json_report

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

OK = frozenset({"verified", "already", "skipped"})
NOT_DONE = frozenset({"failed", "incomplete"})


@dataclass
class Tally:
    """What every check saw, summed over the session (the soak table)."""

    scenarios: set[str] = field(default_factory=set)
    iterations: int = 0
    files: int = 0
    bytes: int = 0
    faults: int = 0
    lost: int = 0
    corrupted: int = 0
    orphans: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def rows(self) -> list[tuple[str, str]]:
        return [
            ("scenarios run", str(len(self.scenarios))),
            ("iterations (checked jobs)", str(self.iterations)),
            ("files checked (file x destination)", str(self.files)),
            ("bytes checked", f"{self.bytes:,}"),
            ("faults injected", str(self.faults)),
            ("files lost or corrupted", str(self.lost + self.corrupted)),
            ("orphan uploads", str(self.orphans)),
        ]


TALLY = Tally()


def b3(data: bytes) -> str:
    return blake3.blake3(data).hexdigest()


def source_hashes(root: Path) -> dict[str, str]:
    """rel_path (as castoff names it: starting with the source's own name) -> BLAKE3."""
    return {
        f"{root.name}/{p.relative_to(root).as_posix()}": b3(p.read_bytes())
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


@dataclass(frozen=True)
class LocalView:
    """A local destination as castoff names it (``name``) and where its files are (``root``)."""

    name: str
    root: Path


@dataclass(frozen=True)
class BucketView:
    """A bucket destination, read with an admin client (never with castoff's own key)."""

    name: str  # castoff's name for it: s3://bucket/prefix
    client: S3Client
    bucket: str
    prefix: str

    def objects(self) -> dict[str, str]:
        """key -> BLAKE3 of every object under the prefix."""
        out: dict[str, str] = {}
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix)
        for page in pages:
            for obj in page.get("Contents", []):
                key = obj["Key"]
                body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
                out[key] = b3(body)
        return out

    def multipart_uploads(self) -> set[tuple[str, str]]:
        try:
            answer = self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=self.prefix)
        except self.client.exceptions.NoSuchUpload:
            return set()  # rclone serve s3 1.75.2 says so for a bucket with no uploads after a restart
        return {(u["Key"], u["UploadId"]) for u in answer.get("Uploads", [])}


Dest = LocalView | BucketView


@dataclass
class Expect:
    """What a scenario expects beyond "every file verified everywhere".

    ``failed``: rel_path -> error code of a file that must be at no destination (a source fault),
    or of a folder that could not be listed (failed at every destination too).
    ``dest_failed``: (rel_path, destination name) -> error code of a file missing at one place.
    ``incomplete_ok``: destinations whose missing files may be 'incomplete' (resumable) instead of failed.
    """

    failed: Mapping[str, str] = field(default_factory=dict)
    dest_failed: Mapping[tuple[str, str], str] = field(default_factory=dict)
    exit_code: int = 0
    incomplete_ok: frozenset[str] = frozenset()


@dataclass
class Result:
    report: dict[str, Any]
    problems: list[str]
    sizes: dict[str, int] = field(default_factory=dict)
    files: int = 0
    bytes: int = 0
    lost: int = 0
    corrupted: int = 0
    orphans: int = 0


def _want_at(expect: Expect, rel: str, dest: str) -> str | None:
    """The error code expected for ``rel`` at ``dest``; None when it must be there."""
    if rel in expect.failed:
        return expect.failed[rel]
    return expect.dest_failed.get((rel, dest))


#: castoff's own records beside the files: the ASC MHL history and delivered reports
OWN_RECORDS = ("ascmhl", "castoff-reports")


def _visible(dest: Dest) -> dict[str, str]:
    """What a user sees at the destination, but castoff's own records: rel path -> BLAKE3."""
    if isinstance(dest, BucketView):
        found = {k[len(dest.prefix) :]: h for k, h in dest.objects().items()}
    elif not dest.root.exists():
        return {}
    else:
        found = {
            p.relative_to(dest.root).as_posix(): b3(p.read_bytes())
            for p in dest.root.rglob("*")
            if p.is_file() or p.is_symlink()
        }
    return {rel: h for rel, h in found.items() if rel.split("/", 1)[0] not in OWN_RECORDS}


def _check_files(dest: Dest, want: Mapping[str, str], expect: Expect, res: Result) -> None:
    seen = _visible(dest)
    for rel, digest in want.items():
        code = _want_at(expect, rel, dest.name)
        got = seen.pop(rel, None)
        if code is not None:
            if got is not None:
                res.problems.append(f"{dest.name}: {rel} is visible but should have failed ({code})")
            continue
        res.files += 1
        if got is None:
            res.lost += 1
            res.problems.append(f"{dest.name}: {rel} is missing")
        elif got != digest:
            res.corrupted += 1
            res.problems.append(f"{dest.name}: {rel} has other bytes than the source")
        else:
            res.bytes += res.sizes.get(rel, 0)
    for rel in sorted(seen):
        what = "a partial file" if Path(rel).name.startswith(".castoff.") else "an unexpected file"
        res.problems.append(f"{dest.name}: {rel} is visible: {what}")


def _check_report(
    report: dict[str, Any], want: Mapping[str, str], dests: Sequence[Dest], expect: Expect, res: Result
) -> None:
    job = report["job"]
    if job["exit_code"] != expect.exit_code:
        res.problems.append(f"report: exit code {job['exit_code']}, expected {expect.exit_code}")
    files = {f["path"]: f for f in report["files"]}
    for rel, digest in want.items():
        entry = files.get(rel)
        if entry is None:
            res.problems.append(f"report: {rel} is not in the report")
            continue
        if rel not in expect.failed and entry["blake3"] != digest:
            res.problems.append(f"report: {rel} has blake3 {entry['blake3']}, source {digest}")
        at = {d["destination"]: d for d in entry["destinations"]}
        for dest in dests:
            code = _want_at(expect, rel, dest.name)
            d = at.get(dest.name)
            if code is None:
                if d is None or d["status"] not in OK:
                    res.problems.append(
                        f"report: {rel} at {dest.name}: {d and d['status']}, expected verified"
                    )
                continue
            if rel in expect.failed and entry["status"] != "failed":
                res.problems.append(f"report: {rel} status {entry['status']}, expected failed")
            if d is None:
                if rel not in expect.failed:  # a source failure may have reached no destination
                    res.problems.append(f"report: {rel} at {dest.name} missing, expected {code}")
                continue
            allowed = NOT_DONE if dest.name in expect.incomplete_ok else {"failed"}
            if d["status"] not in allowed or d["error_code"] != code:
                res.problems.append(
                    f"report: {rel} at {dest.name}: {d['status']} {d['error_code']}, expected failed {code}"
                )
    for name, s in report["summary"].items():
        bad = s.get("failed", 0) + s.get("incomplete", 0)
        wanted = sum(
            1
            for rel in {*want, *expect.failed}  # and a folder that could not be listed
            if _want_at(expect, rel, name) is not None
            and rel in files
            and any(d["destination"] == name for d in files[rel]["destinations"])
        )
        if bad != wanted:
            res.problems.append(f"report summary: {name} has {bad} failed/incomplete, expected {wanted}")


def _check_uploads(catalog: Catalog, report: dict[str, Any], dests: Sequence[Dest], res: Result) -> None:
    open_rows = catalog.open_uploads()
    # an upload stays open while its file is incomplete (resumable), or failed where the
    # destination refused to abort it (the report's detail says so)
    incomplete = {
        (d["destination"], d["target"])
        for f in report["files"]
        for d in f["destinations"]
        if d["status"] == "incomplete"
        or (d["status"] == "failed" and "castoff uploads" in (d["detail"] or ""))
    }
    known: set[tuple[str, str, str]] = set()
    for row in open_rows:
        known.add((row.dest_name, row.target, str(row.token.get("upload_id"))))
        if (row.dest_name, row.target) not in incomplete:
            res.problems.append(
                f"catalog: an open upload of {row.target} at {row.dest_name} that the report does not"
                " call incomplete"
            )
    for dest in dests:
        if not isinstance(dest, BucketView):
            continue
        for key, upload_id in sorted(dest.multipart_uploads()):
            if (dest.name, key, upload_id) not in known:
                res.orphans += 1
                res.problems.append(f"{dest.name}: orphan multipart upload of {key} ({upload_id})")


def visible_is_right(source_files: Mapping[str, str], dests: Sequence[Dest]) -> None:
    """Mid-way (after a kill, before the re-run): whatever a user can see is a whole, right file.
    Hidden partial files may be there; the re-run removes them."""
    for dest in dests:
        for rel, digest in _visible(dest).items():
            if Path(rel).name.startswith(".castoff."):
                continue
            assert source_files.get(rel) == digest, (
                f"{dest.name}: {rel} is visible but not the source's bytes"
            )


def unaccounted_uploads(state: Path, dests: Sequence[Dest]) -> list[str]:
    """Multipart uploads on the servers that the catalog does not know (orphans). An upload of a
    key with an intent (a kill between the server's answer and the catalog's commit of its id:
    docs/reliability.md, bug 8) is not one yet: the next job looks for it and aborts it, and the
    check after that job (``check``) counts it if that job did not."""
    catalog = Catalog(state / "catalog.sqlite")
    try:
        known = {(r.dest_name, r.target, str(r.token.get("upload_id"))) for r in catalog.open_uploads()}
        intended = {(r.dest_name, r.target) for r in catalog.upload_intents()}
    finally:
        catalog.close()
    orphans = [
        f"{d.name}: {key} ({upload_id})"
        for d in dests
        if isinstance(d, BucketView)
        for key, upload_id in sorted(d.multipart_uploads())
        if (d.name, key, upload_id) not in known and (d.name, key) not in intended
    ]
    with TALLY.lock:
        TALLY.orphans += len(orphans)
    return orphans


def latest_job(catalog: Catalog) -> str:
    rows = catalog.jobs(1)
    assert rows, "no job in the catalog"
    return str(rows[0]["id"])


def check(
    *,
    scenario: str,
    source: Path,
    dests: Sequence[Dest],
    state: Path,
    expect: Expect | None = None,
    faults: int = 0,
    job_id: str | None = None,
    want: Mapping[str, str] | None = None,
    secrets: Iterable[str] = (),
    printed: str = "",
) -> Result:
    """Check everything (see the module doc); count it in TALLY; fail the test on any problem.

    ``want`` defaults to the source's files now (give it when the source is gone or changed);
    ``secrets`` are searched for in everything under ``state`` and in ``printed``."""
    expect = expect or Expect()
    want = dict(source_hashes(source) if want is None else want)
    catalog = Catalog(state / "catalog.sqlite")
    try:
        job = job_id or latest_job(catalog)
        report = json_report.build(catalog, job)
        res = Result(
            report, [], sizes={f["path"]: int(f["size"] or 0) for f in report["files"]}
        )  # null: unread
        written = catalog.job(job)
        if written is not None and written["report_path"]:
            on_disk = json.loads(Path(written["report_path"]).read_text(encoding="utf-8"))
            if on_disk["files"] != report["files"]:
                res.problems.append("the report file differs from what the catalog says")
        for dest in dests:
            _check_files(dest, want, expect, res)
        _check_report(report, want, dests, expect, res)
        _check_uploads(catalog, report, dests, res)
    finally:
        catalog.close()
    _check_secrets(state, printed, secrets, res)
    with TALLY.lock:
        TALLY.scenarios.add(scenario)
        TALLY.iterations += 1
        TALLY.files += res.files
        TALLY.bytes += res.bytes
        TALLY.faults += faults
        TALLY.lost += res.lost
        TALLY.corrupted += res.corrupted
        TALLY.orphans += res.orphans
    assert not res.problems, f"{scenario}:\n  " + "\n  ".join(res.problems)
    return res


def _check_secrets(state: Path, printed: str, secrets: Iterable[str], res: Result) -> None:
    needles = [s.encode() for s in secrets if s]
    if not needles:
        return
    for text_name, blob in [("output", printed.encode()), *_files_under(state)]:
        for needle in needles:
            if needle in blob:
                res.problems.append(f"a secret key appears in {text_name}")


def _files_under(root: Path) -> list[tuple[str, bytes]]:
    if not root.exists():
        return []
    return [(str(p), p.read_bytes()) for p in sorted(root.rglob("*")) if p.is_file()]


def count_fault(n: int = 1) -> None:
    """Faults injected outside a check (e.g. kills whose job is checked later in one go)."""
    with TALLY.lock:
        TALLY.faults += n
