"""``castoff jobs prune`` end to end: real jobs through the CLI into a real catalog, then a prune,
then re-runs that must behave as if nothing had been pruned."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from castoff.catalog.db import Catalog
from castoff.catalog.running import process_start
from castoff.samples import make_sample_card
from castoff_cli import run_castoff
from engine_runner import write

#: a time as the reports write it
ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4}")

PER_FILE = ("files", "outcomes", "file_meta", "meta_sidecars", "events")


def ok(*args: str, state: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    r = run_castoff(*args, state=state, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    return r


def prune(*args: str, state: Path) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(ok("jobs", "prune", "--json", *args, state=state).stdout)
    return out


def jobs(state: Path) -> dict[str, dict[str, Any]]:
    rows = json.loads(ok("jobs", "--json", state=state).stdout)
    return {r["id"]: r for r in rows}


def job_ids(state: Path) -> list[str]:
    """Oldest first ('castoff jobs' lists the newest first; its times are to the second)."""
    return list(reversed(jobs(state)))


def rows_of(state: Path, job_id: str) -> dict[str, int]:
    db = sqlite3.connect(state / "catalog.sqlite")
    try:
        return {
            t: db.execute(f"SELECT COUNT(*) FROM {t} WHERE job_id=?", (job_id,)).fetchone()[0]
            for t in PER_FILE
        }
    finally:
        db.close()


def all_rows(state: Path) -> dict[str, int]:
    db = sqlite3.connect(state / "catalog.sqlite")
    try:
        tables = (*PER_FILE, "landed", "uploads", "parts", "partials", "meta", "jobs")
        return {t: db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in tables}
    finally:
        db.close()


def report(path: str) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(Path(path).read_text())
    return out


def latest_report(state: Path) -> dict[str, Any]:
    return report(str(max((state / "reports").glob("*.json"), key=lambda p: p.stat().st_mtime_ns)))


def history(folder: Path) -> list[str]:
    return sorted(p.name for p in (folder / "ascmhl").iterdir())


def test_prune_keeps_the_newest_and_a_rerun_behaves_as_before(tmp_path: Path, moto: Any) -> None:
    card = make_sample_card(tmp_path / "EOS_DIGITAL")
    state, ssd = tmp_path / "state", tmp_path / "ssd"
    key, secret = moto.enable_write_only()
    env = {"AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret}
    bucket = f"s3://{moto.bucket}/shoots/?endpoint={moto.url}&region=us-east-1&addressing=path"
    copy = [
        "copy",
        str(card),
        "--to",
        str(ssd),
        "--to",
        bucket,
        "--layout",
        "date",
        "--metadata",
        "sidecar",
        "-q",
    ]
    for _ in range(3):
        ok(*copy, state=state, env=env)
    listed = jobs(state)
    third, second, first = listed  # newest first
    for job in (first, second, third):
        assert all(rows_of(state, job)[t] > 0 for t in ("files", "outcomes", "file_meta", "events"))
    assert rows_of(state, first)["meta_sidecars"] > 0
    reads = rows_of(state, first)["files"]
    kept_before = rows_of(state, third)
    rerun_before = latest_report(state)
    mhl_before = history(ssd)

    out = prune("--keep", "1", state=state)

    assert sorted(out["jobs"]) == sorted([first, second])
    assert out["size_after"] < out["size_before"]  # VACUUM gave the space back
    assert out["vacuum"] == "space given back (VACUUM)"
    assert out["kept_reads"] == reads  # every file of the first job was read: the last read of each
    assert rows_of(state, third) == kept_before
    assert rows_of(state, second) == dict.fromkeys(PER_FILE, 0)
    assert rows_of(state, first) == {**dict.fromkeys(PER_FILE, 0), "files": reads, "file_meta": reads}
    after = jobs(state)
    for job, row in listed.items():  # every job still listed, with its files and bytes
        assert (after[job]["n_files"], after[job]["n_bytes"]) == (row["n_files"], row["n_bytes"])
        assert (after[job]["pruned_at"] is not None) == (job != third)
    assert "(pruned)" in ok("jobs", state=state).stdout

    shown = ok("jobs", "show", first, state=state).stdout
    assert "per-file history of this job was pruned" in shown
    assert listed[first]["report_path"] in shown.replace("\n", "")
    # QA: a pruned job's JSON had no schema, epoch floats and the pid: the report's head instead
    pruned = json.loads(ok("jobs", "show", first, "--json", state=state).stdout)
    whole = json.loads(ok("jobs", "show", third, "--json", state=state).stdout)
    assert set(pruned) == {"schema", "job", "pruned", "pruned_at", "n_files", "n_bytes", "report_path"}
    assert pruned["schema"] == whole["schema"] and pruned["pruned"] is True and "pruned" not in whole
    assert set(pruned["job"]) == set(whole["job"])
    assert pruned["job"]["started_at"] == listed[first]["started_at"] and ISO.fullmatch(pruned["pruned_at"])
    assert (pruned["n_files"], pruned["n_bytes"]) == (listed[first]["n_files"], listed[first]["n_bytes"])
    assert pruned["report_path"] == listed[first]["report_path"]

    ok(*copy, state=state, env=env)
    rerun_after = latest_report(state)
    assert rerun_after["files"] == rerun_before["files"]  # skipped, with BLAKE3, capture: as before
    assert {d["status"] for f in rerun_after["files"] for d in f["destinations"]} == {"skipped"}
    assert all(f["blake3"] and f["xxh128"] for f in rerun_after["files"])
    assert rerun_after["summary"] == rerun_before["summary"]
    assert history(ssd) == mhl_before  # no new ASC MHL generation: nothing changed


def test_a_job_an_mhl_history_remembers_is_kept(tmp_path: Path) -> None:
    card = make_sample_card(tmp_path / "EOS_DIGITAL")
    state, a, b = tmp_path / "state", tmp_path / "a", tmp_path / "b"
    ok("copy", str(card), "--to", str(a), "--to", str(b), "-q", state=state)
    ok("copy", str(card), "--to", str(b), "-q", state=state)
    ok("copy", str(card), "--to", str(b), "-q", state=state)
    first, second, _ = job_ids(state)
    mhl_a = history(a)

    out = prune("--keep", "1", state=state)

    assert out["jobs"] == [second]  # the first is the last generation at a
    assert "ASC MHL" in out["spared"][first]
    assert rows_of(state, first)["outcomes"] > 0
    ok("copy", str(card), "--to", str(a), "--to", str(b), "-q", state=state)
    assert history(a) == mhl_a  # no new generation re-listing every file


def _snapshot(path: Path, to: Path) -> None:
    src, dst = sqlite3.connect(path), sqlite3.connect(to)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()


def _answers(path: Path, keys: list[tuple[str, int, int]]) -> Iterator[tuple[Any, ...]]:
    """What each lookup a re-run makes answers for every source: prior_read, known_hash, and the
    hashes file_hashes_known gives a new row of it."""
    catalog = Catalog(path)
    try:
        catalog.start_job("probe", argv=[], sources=[], destinations=[], options={}, pid=0)
        for k in keys:
            row = catalog.add_file(
                "probe", rel_path="/".join(map(str, k)), abs_path=k[0], size=k[1], mtime_ns=k[2]
            )
            catalog.file_hashes_known(row)
            new = catalog.stream("SELECT blake3, md5, xxh128 FROM files WHERE id=?", (row,))
            yield k, catalog.prior_read(*k), catalog.known_hash(*k), tuple(next(iter(new)))
    finally:
        catalog.close()


def test_every_lookup_answers_the_same_after_a_prune(tmp_path: Path) -> None:
    card = make_sample_card(tmp_path / "EOS_DIGITAL")
    state, ssd = tmp_path / "state", tmp_path / "ssd"
    copy = ["copy", str(card), "--to", str(ssd), "--layout", "date", "-q"]
    ok(*copy, state=state)
    write(
        card / "notes" / "shot list.txt", b"a new version of the notes"
    )  # the same path, another size and mtime
    ok(*copy, "--on-conflict", "overwrite", state=state)
    ok(*copy, "--rehash", state=state)  # read everything again: newer reads of every source
    ok(*copy, state=state)
    before = tmp_path / "before.sqlite"
    _snapshot(state / "catalog.sqlite", before)
    db = sqlite3.connect(before)
    keys = sorted(db.execute("SELECT DISTINCT abs_path, size, mtime_ns FROM files WHERE status<>'skipped'"))
    db.close()
    assert len({k[0] for k in keys}) < len(keys)  # some source has had two versions

    out = prune("--keep", "0", state=state)

    assert len(out["jobs"]) == 3  # the newest is the last ASC MHL generation's
    assert list(_answers(state / "catalog.sqlite", keys)) == list(_answers(before, keys))


def _age_jobs(state: Path, days: list[float]) -> list[str]:
    """Pretend the jobs (oldest first) started that many days ago."""
    ids = job_ids(state)
    db = sqlite3.connect(state / "catalog.sqlite")
    with db:
        for job, d in zip(ids, days, strict=True):
            db.execute("UPDATE jobs SET started_at=? WHERE id=?", (time.time() - d * 86400, job))
    db.close()
    return ids


def test_older_than_and_keep_together_and_dry_run(tmp_path: Path) -> None:
    card = make_sample_card(tmp_path / "EOS_DIGITAL")
    state = tmp_path / "state"
    for _ in range(4):
        ok("copy", str(card), "--to", str(tmp_path / "ssd"), "--no-mhl", "-q", state=state)
    j1, j2, j3, j4 = _age_jobs(state, [40, 20, 10, 0])
    rows, size = all_rows(state), (state / "catalog.sqlite").read_bytes()

    dry = prune("--older-than", "15d", "--dry-run", state=state)
    assert dry["jobs"] == [j1, j2]
    assert dry["rows"]["outcomes"] > 0 and dry["estimate"] > 0
    assert all_rows(state) == rows and (state / "catalog.sqlite").read_bytes() == size
    assert "Nothing deleted" in ok("jobs", "prune", "--keep", "0", "--dry-run", state=state).stdout
    assert all_rows(state) == rows

    assert prune("--keep", "3", "--older-than", "15d", state=state)["jobs"] == [
        j1
    ]  # j2 is among the 3 newest
    assert prune("--keep", "1", "--older-than", "15d", state=state)["jobs"] == [j2]  # j3 is younger
    assert prune("--older-than", "30d", state=state)["jobs"] == []
    assert prune("--older-than", "5d", state=state)["jobs"] == [j3]
    assert [j for j, r in jobs(state).items() if r["pruned_at"] is None] == [j4]


def test_reports_go_with_their_jobs_only_when_asked_and_never_from_destinations(tmp_path: Path) -> None:
    """QA: reports grew about 2.3 KB per file per run (11 MB for a re-run of 5,000 files that
    copied nothing) and 'jobs prune' never removed them. --reports deletes the state folder's
    reports of the jobs pruned, now or before; a dry run lists them; destinations' copies stay."""
    card = make_sample_card(tmp_path / "EOS_DIGITAL")
    state, ssd = tmp_path / "state", tmp_path / "ssd"
    for _ in range(3):
        ok("copy", str(card), "--to", str(ssd), "--report-to", "both", "-q", state=state)
    j1, j2, j3 = job_ids(state)
    reports = state / "reports"
    delivered = sorted(p.name for p in (ssd / "castoff-reports").iterdir())
    assert len(delivered) == 6

    def of(*ids: str) -> list[str]:
        return sorted(f"{j}{ext}" for j in ids for ext in (".html", ".json"))

    kept = prune("--keep", "2", state=state)  # j1's history goes; its reports stay, and are said
    assert kept["jobs"] == [j1] and kept["reports"]["deleted"] is False
    assert sorted(Path(p).name for p in kept["reports"]["files"]) == of(j1)
    assert sorted(p.name for p in reports.iterdir()) == of(j1, j2, j3)
    said = ok("jobs", "prune", "--keep", "2", state=state).stdout
    assert "their reports stay: 2 report files" in " ".join(said.split()) and "--reports" in said

    dry = prune("--keep", "1", "--reports", "--dry-run", state=state)
    assert sorted(Path(p).name for p in dry["reports"]["files"]) == of(j1, j2)
    assert dry["reports"]["bytes"] == sum((reports / n).stat().st_size for n in of(j1, j2))
    assert sorted(p.name for p in reports.iterdir()) == of(j1, j2, j3)

    done = prune("--keep", "1", "--reports", state=state)  # j2 pruned now, j1 before: both go
    assert done["jobs"] == [j2] and done["reports"]["deleted"] is True
    assert sorted(p.name for p in reports.iterdir()) == of(j3)
    assert sorted(p.name for p in (ssd / "castoff-reports").iterdir()) == delivered
    shown = ok("jobs", "show", j1, state=state).stdout
    assert "(no longer there)" in shown
    r = run_castoff("copy", str(card), "--to", str(ssd), "-q", state=state)  # a re-run skips as before
    assert r.returncode == 0, r.stderr
    assert {d["status"] for f in latest_report(state)["files"] for d in f["destinations"]} == {"skipped"}


def test_a_running_job_is_never_pruned(tmp_path: Path) -> None:
    card = make_sample_card(tmp_path / "EOS_DIGITAL")
    state = tmp_path / "state"
    for _ in range(4):
        ok("copy", str(card), "--to", str(tmp_path / "ssd"), "--no-mhl", "-q", state=state)
    j1, j2, j3, j4 = job_ids(state)
    dead = subprocess.Popen(["true"])
    dead.wait()
    live = subprocess.Popen(["sleep", "600"])
    try:
        db = sqlite3.connect(state / "catalog.sqlite")
        with db:  # j1 as if its process still ran; j2 as if killed while running; j3 as if killed,
            # and its process id given since to another process (told apart by its start time)
            db.execute(
                "UPDATE jobs SET status='running', pid=?, proc_start=? WHERE id=?",
                (live.pid, process_start(live.pid), j1),
            )
            db.execute("UPDATE jobs SET status='running', pid=? WHERE id=?", (dead.pid, j2))
            db.execute(
                "UPDATE jobs SET status='running', pid=?, proc_start=? WHERE id=?", (live.pid, "0:1", j3)
            )
        db.close()
        kept = rows_of(state, j1)

        out = prune("--keep", "0", state=state)

        assert out["jobs"] == [j2, j3, j4]
        assert out["spared"] == {j1: "running"}
        assert rows_of(state, j1) == kept
        assert out["vacuum"].startswith(f"space not given back: job {j1} is running")
        assert jobs(state)[j2]["status"] == "interrupted"
        assert jobs(state)[j3]["status"] == "interrupted"
        # QA: "catalog: 312.0 KiB before, 569.5 KiB after" (the deletes in the -wal)
        ok("copy", str(card), "--to", str(tmp_path / "nas"), "--no-mhl", "-q", state=state)
        said = " ".join(ok("jobs", "prune", "--keep", "0", state=state).stdout.split())
        assert " before, " not in said, said
        assert f"space not given back: job {j1} is running" in said, said
        assert "the freed pages are reused by later jobs" in said, said
    finally:
        live.kill()
        live.wait()
    out = prune("--keep", "0", state=state)
    assert out["jobs"] == [j1]
    assert out["size_after"] < out["size_before"]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["jobs", "prune"], "--keep N"),
        (["jobs", "prune", "--keep", "-1"], "0 or more"),
        (["jobs", "prune", "--keep", "many"], "invalid int"),
        (["jobs", "prune", "--older-than", "3x"], "write it like 12h or 7d"),
        (["jobs", "prune", "--older-than=-3d"], "positive age"),
        (["jobs", "prune", "20261121", "--keep", "3"], "takes no job id"),
        (["jobs", "list", "--keep", "3"], "--keep is for 'castoff jobs prune'"),
        (["jobs", "show", "x", "--dry-run"], "--dry-run is for 'castoff jobs prune'"),
    ],
)
def test_bad_arguments_exit_2(tmp_path: Path, args: list[str], says: str) -> None:
    r = run_castoff(*args, state=tmp_path / "state")
    assert r.returncode == 2
    assert says in r.stderr


def test_a_catalog_held_by_another_process_gives_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A job started while a prune compacts the catalog (or anything else holds its write lock
    past the busy timeout) says so and exits 1, with no traceback and nothing copied."""
    from castoff.catalog import db as catalog_db
    from castoff.cli import main

    state = tmp_path / "state"
    write(tmp_path / "card" / "A.JPG", b"a" * 1000)
    assert main(["--state-dir", str(state), "jobs"]) == 0  # the catalog exists
    monkeypatch.setattr(catalog_db, "BUSY_TIMEOUT_MS", 200)
    holder = sqlite3.connect(str(state / "catalog.sqlite"), isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        code = main(
            ["--state-dir", str(state), "copy", str(tmp_path / "card"), "--to", str(tmp_path / "ssd")]
        )
    finally:
        holder.close()
    err = capsys.readouterr().err
    assert code == 1
    assert "the catalog is busy" in err and "Traceback" not in err, err
    assert not (tmp_path / "ssd" / "card" / "A.JPG").exists()


def test_a_jobs_file_count_is_the_files_it_copied_before_and_after_pruning(tmp_path: Path) -> None:
    """What the copy's summary said ("2 files"), not the items it left out (junk, a symlink)."""
    card = tmp_path / "EOS_DIGITAL"
    write(card / "DCIM" / "IMG_0001.JPG", b"one")
    write(card / "DCIM" / "IMG_0002.JPG", b"two")
    write(card / ".DS_Store", b"junk")
    (card / "DCIM" / "link.JPG").symlink_to(card / "DCIM" / "IMG_0001.JPG")
    state = tmp_path / "state"
    said = ok("copy", str(card), "--to", str(tmp_path / "ssd"), state=state).stderr
    assert ", 2 files," in " ".join(said.split())
    ok("copy", str(card), "--to", str(tmp_path / "ssd"), "-q", state=state)
    first = job_ids(state)[0]
    assert jobs(state)[first]["n_files"] == 2
    prune("--keep", "1", state=state)
    assert jobs(state)[first]["pruned_at"] is not None
    assert jobs(state)[first]["n_files"] == 2
