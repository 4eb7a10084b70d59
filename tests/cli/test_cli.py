"""The castoff command as a user runs it: exit codes, JSON events, jobs, kills and resumes."""

from __future__ import annotations

import json
import os
import random
import shlex
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import blake3
import jsonschema
import pytest

from castoff.catalog.db import Catalog
from castoff.units import format_bytes, plural
from castoff_cli import CASTOFF, run_castoff
from engine_runner import write

run = run_castoff


def tree_hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): blake3.blake3(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def card(tmp_path: Path) -> Path:
    src = tmp_path / "EOS_DIGITAL"
    rng = random.Random(7)
    for i in range(8):
        write(src / "DCIM" / "100CANON" / f"IMG_{i:04}.CR3", rng.randbytes(200_000 + i))
    write(src / "PRIVATE" / "M4ROOT" / "CLIP" / "C0001.MP4", rng.randbytes(3_000_000))
    write(src / "odd" / "a b #%?+.txt", b"odd")
    write(src / "DCIM" / ".DS_Store", b"junk")
    return src


def test_copy_to_two_folders_then_rerun_skips(tmp_path: Path, card: Path) -> None:
    state = tmp_path / "state"
    r = run("copy", str(card), "--to", str(tmp_path / "a"), "--to", str(tmp_path / "b"), state=state)
    assert r.returncode == 0, r.stderr
    assert "report:" in r.stderr
    want = {k: v for k, v in tree_hashes(card).items() if not k.endswith(".DS_Store")}
    for d in ("a", "b"):
        assert tree_hashes(tmp_path / d / "EOS_DIGITAL") == want
    report = json.loads(next((state / "reports").glob("*.json")).read_text())
    assert report["schema"] == "castoff.report/2"
    entry = next(f for f in report["files"] if f["path"].endswith("C0001.MP4"))
    assert entry["blake3"] == want["PRIVATE/M4ROOT/CLIP/C0001.MP4"]
    assert {d["status"] for d in entry["destinations"]} == {"verified"}
    assert {d["verify_method"] for d in entry["destinations"]} == {"read-back blake3"}
    r2 = run(
        "copy",
        str(card),
        "--to",
        str(tmp_path / "a"),
        "--to",
        str(tmp_path / "b"),
        "--json",
        state=state,
    )
    assert r2.returncode == 0
    events = [json.loads(line) for line in r2.stdout.splitlines()]
    done = [e for e in events if e["event"] == "file-done"]
    assert done and {e["status"] for e in done} == {"skipped"}
    # the hash the catalog knows, as the report has it (QA: null for a file verified before)
    hashes = {f["path"]: f["blake3"] for f in report["files"]}
    assert {(e["rel_path"], e["blake3"]) for e in done} == set(hashes.items())
    assert events[-1]["event"] == "job-end" and events[-1]["exit_code"] == 0
    jobs = run("jobs", "--json", state=state)
    assert len(json.loads(jobs.stdout)) == 2
    shown = run("jobs", "show", report["job"]["id"], state=state)
    assert shown.returncode == 0 and "verified" in shown.stdout


def test_a_rerun_counts_what_it_reads_and_sends_not_what_it_skips(tmp_path: Path, card: Path) -> None:
    """Before: a re-run's bars stood at "0.0/3.6 MiB" with every file done, and its end line
    divided bytes it never read by its time (a "MiB/s read" ten times the disk's)."""
    state = tmp_path / "state"
    argv = ["copy", str(card), "--to", str(tmp_path / "a"), "--to", str(tmp_path / "b")]
    assert run(*argv, state=state).returncode == 0
    write(card / "DCIM" / "100CANON" / "IMG_0100.CR3", os.urandom(1024 * 1024))
    r = run(*argv, state=state)
    said = " ".join(r.stderr.split())
    assert r.returncode == 0, r.stderr
    assert "(1.0 MiB read, " in said, said  # the new file only, of the job's 5.4 MiB
    assert "1.0/1.0 MiB" in said and "11/11 files (10 verified before)" in said, said  # .DS_Store is junk
    r = run(*argv, state=state)
    said = " ".join(r.stderr.split())
    assert "nothing to copy: every file was verified at every destination before" in said, said
    assert said.count("nothing to send") == 3, said  # a and b, and overall
    assert "0.0/" not in said, said


def test_an_empty_source_shows_no_bytes_and_uploads_from_a_drive_say_so(
    tmp_path: Path, card: Path, rclone_s3: Any
) -> None:
    """QA: an empty source's bar said "0/1 bytes"; a job whose uploads all read the verified
    copies on a drive (the card's hashes known) ended "(0 B read, 0 B/s)", having uploaded them."""
    state = tmp_path / "state"
    (tmp_path / "empty").mkdir()
    r = run("copy", str(tmp_path / "empty"), "--to", str(tmp_path / "out"), state=state)
    assert r.returncode == 2 and "no file to copy" in r.stderr, r.stderr
    assert "0/1" not in r.stderr and " 0 B " in r.stderr, r.stderr
    keys = {"AWS_ACCESS_KEY_ID": rclone_s3.access_key, "AWS_SECRET_ACCESS_KEY": rclone_s3.secret_key}
    url = f"s3://{rclone_s3.bucket}/{{}}/?endpoint={rclone_s3.url}&region=us-east-1&addressing=path&provider=rclone"
    ssd = str(tmp_path / "ssd")
    assert run("copy", str(card), "--to", ssd, "--to", url.format("a"), state=state, env=keys).returncode == 0
    r = run("copy", str(card), "--to", ssd, "--to", url.format("b"), state=state, env=keys)
    said = " ".join(r.stderr.split())
    assert r.returncode == 0, said
    size = format_bytes(
        sum(p.stat().st_size for p in card.rglob("*") if p.is_file() and p.name != ".DS_Store")
    )
    assert f"({size} read from verified local copies, " in said, said
    assert "(0 B read" not in said, said


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["copy", "/nonexistent/card", "--to", "{tmp}/d"], "does not exist"),
        (["copy", "{card}", "--to", "ftp://host/x"], "unknown destination scheme"),
        (["copy", "{card}", "--to", "{card}/inside"], "inside the source"),
        (["copy", "{card}", "--to", "{tmp}/d", "--memory", "lots"], "not a size"),
        (["copy", "{card}", "--to", "{tmp}/nope/nope/d"], "does not exist"),
        (["jobs", "show", "no-such-job"], "no job"),
    ],
)
def test_usage_errors_exit_2_and_write_nothing(
    tmp_path: Path, card: Path, args: list[str], message: str
) -> None:
    argv = [a.format(tmp=tmp_path, card=card) for a in args]
    r = run(*argv, state=tmp_path / "state")
    # (a destination that is not mounted is found by the job, which then has nowhere to write)
    assert r.returncode == 2, r.stderr
    assert message in " ".join(r.stderr.split())
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "d").exists()
    assert not (card / "inside").exists()


def test_one_folder_named_by_two_paths_is_refused_before_anything_is_written(
    tmp_path: Path, card: Path
) -> None:
    """Before: ``--to e/real --to e/alias`` (alias a symlink to real) said "verified" twice and
    "the source can be released" with one copy on disk."""
    e = tmp_path / "e"
    (e / "real").mkdir(parents=True)
    (e / "alias").symlink_to("real")
    for a, b in ((e / "real", e / "alias"), (e / "real" / "new", e / "alias" / "new")):
        r = run("copy", str(card), "--to", str(a), "--to", str(b), state=tmp_path / "state")
        assert r.returncode == 2, r.stderr
        assert f"{a} and {b} are the same folder: one copy, not two" in " ".join(r.stderr.split())
    r = run("copy", str(card), "--to", f"{e}/real", "--to", f"{e}/real/", state=tmp_path / "state")
    assert r.returncode == 2, r.stderr
    assert f"the same destination is named twice: {e}/real and {e}/real/" in " ".join(r.stderr.split())
    assert not list((e / "real").iterdir())


def test_a_source_folder_where_its_copy_would_land_is_refused(tmp_path: Path) -> None:
    """Before: ``castoff copy n/card --to n`` found each file "already" at its target (the file
    itself) and said the source could be released."""
    n = tmp_path / "n"
    write(n / "card" / "DCIM" / "a.jpg", b"a")
    r = run("copy", str(n / "card"), "--to", str(n), state=tmp_path / "state")
    assert r.returncode == 2, r.stderr
    said = " ".join(r.stderr.split())
    assert f"the source {n / 'card'} would land on itself" in said, said
    assert sorted(p.name for p in n.rglob("*")) == ["DCIM", "a.jpg", "card"]  # no ascmhl/ either
    # another layout puts the copies beside the source, not on it
    r = run("copy", str(n / "card"), "--to", str(n), "--layout", "type", state=tmp_path / "state")
    assert r.returncode == 0, r.stderr
    assert (n / "Photos" / "a.jpg").read_bytes() == b"a"


@pytest.mark.parametrize(
    "args",
    [
        ["copy", "{card}", "--to", "{tmp}/d"],
        ["jobs"],
        ["jobs", "show", "2026"],
        ["jobs", "prune", "--keep", "1"],
        ["uploads"],
    ],
)
def test_a_catalog_that_is_not_one_stops_every_command_with_its_path_and_exit_2(
    tmp_path: Path, card: Path, args: list[str]
) -> None:
    """Before: ``sqlite3.DatabaseError: file is not a database`` as a traceback, exit 1."""
    catalog = write(tmp_path / "state" / "catalog.sqlite", b"not a database " * 300)
    r = run(*[a.format(tmp=tmp_path, card=card) for a in args], state=tmp_path / "state")
    said = " ".join(r.stderr.split())
    assert r.returncode == 2, r.stderr
    assert f"the catalog {catalog} is not a castoff catalog (file is not a database)" in said, said
    assert "move it aside, or give another --state-dir" in said, said
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize("state", ["home", "home/sub"])
def test_a_file_where_the_state_folder_goes_is_named(tmp_path: Path, card: Path, state: str) -> None:
    """Before: FileExistsError / NotADirectoryError as a traceback, exit 1."""
    write(tmp_path / "home", b"a file")
    r = run("copy", str(card), "--to", str(tmp_path / "d"), state=tmp_path / state)
    said = " ".join(r.stderr.split())
    assert r.returncode == 2, r.stderr
    assert f"{tmp_path / 'home'} is a file, where a folder is needed" in said, said
    assert "Traceback" not in r.stderr
    r = run("--debug", "jobs", state=tmp_path / state)  # --debug still shows where it came from
    assert r.returncode == 2 and "Traceback" in r.stderr


def _many_jobs(state: Path, n: int) -> list[str]:
    """``n`` finished jobs in a new catalog, oldest first, ids ``20261121-0000NN-ab00``."""
    catalog = Catalog(state / "catalog.sqlite")
    ids = [f"20261121-{i:06d}-ab00" for i in range(n)]
    for i, job_id in enumerate(ids):
        dest = {"name": "ssd", "ident": "local:/ssd", "kind": "local", "spec": "/ssd", "s3": "{}"}
        catalog.start_job(
            job_id, argv=["castoff", "copy"], sources=["/card"], destinations=[dest], options={}, pid=0
        )
        catalog.end_job(job_id, status="done", exit_code=0)
        with catalog.batch() as db:  # one second apart, so "newest" is plain
            db.execute("UPDATE jobs SET started_at=? WHERE id=?", (1_790_000_000 + i, job_id))
    catalog.close()
    return ids


def test_jobs_says_when_it_shows_only_the_newest_and_how_to_see_more(tmp_path: Path) -> None:
    """Before: the 50 newest of 68, table and --json alike, and nothing said."""
    state = tmp_path / "state"
    ids = _many_jobs(state, 68)
    r = run("jobs", state=state)
    assert r.returncode == 0, r.stderr
    assert "showing the 50 newest of 68: --limit N or --all" in r.stderr
    assert ids[-1] in r.stdout and ids[17] not in r.stdout
    r = run("jobs", "--json", state=state)
    assert [j["id"] for j in json.loads(r.stdout)] == ids[:-51:-1]
    assert "showing the 50 newest of 68" in r.stderr
    r = run("jobs", "--json", "--all", state=state)
    assert len(json.loads(r.stdout)) == 68 and "showing" not in r.stderr
    assert [j["id"] for j in json.loads(run("jobs", "--json", "--limit", "3", state=state).stdout)] == ids[
        :-4:-1
    ]
    r = run("jobs", "--limit", "0", state=state)
    assert r.returncode == 2 and "give 1 or more, or --all" in r.stderr


def test_jobs_json_holds_json_values_not_json_text(tmp_path: Path) -> None:
    """Before: "argv": "[\\"castoff\\", ...]", a string to decode again."""
    state = tmp_path / "state"
    _many_jobs(state, 1)
    (job,) = json.loads(run("jobs", "--json", state=state).stdout)
    assert job["argv"] == ["castoff", "copy"]
    assert job["sources"] == ["/card"]
    assert job["destinations"] == [
        {"name": "ssd", "ident": "local:/ssd", "kind": "local", "spec": "/ssd", "s3": {}}
    ]
    assert job["options"] == {}
    # QA: epoch floats and castoff's own pid/proc_start: times as the reports write them, no internals
    assert job["started_at"] == time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(1_790_000_000))
    assert not {"pid", "proc_start"} & set(job), job


def test_jobs_show_of_a_start_several_ids_share_names_them(tmp_path: Path) -> None:
    """Before: "no job '20261121-00000'", as if there were none."""
    state = tmp_path / "state"
    ids = _many_jobs(state, 12)
    r = run("jobs", "show", "20261121-00000", state=state)
    said = " ".join(r.stderr.split())
    assert r.returncode == 2, r.stderr
    assert "'20261121-00000' is ambiguous: 10 job ids begin with it" in said, said
    assert all(i in said for i in ids[:10]) and ids[10] not in said
    assert "give more of the id" in said
    r = run("jobs", "show", "20261121-000011", state=state)
    assert r.returncode == 0 and ids[11] in r.stdout
    r = run("jobs", "show", "2026%", state=state)  # not a LIKE pattern
    assert r.returncode == 2 and "no job '2026%'" in r.stderr


def test_jobs_help_says_what_each_action_and_option_does() -> None:
    r = subprocess.run(
        [*CASTOFF, "jobs", "--help"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )
    said = " ".join(r.stdout.split())
    for text in (
        "list: the newest jobs",
        "show: every file of one job",
        "prune: forget old jobs'",
        "--json print JSON",
        "--limit N list the N newest jobs (default 50)",
        "--all list every job",
    ):
        assert text in said, text


def _partials(root: Path) -> list[Path]:
    return list(root.rglob(".castoff.*.partial")) if root.exists() else []


def test_sigkill_at_random_moments_then_rerun_delivers_everything_once(tmp_path: Path) -> None:
    rng = random.Random(20261121)
    src = tmp_path / "card"
    for i in range(30):
        write(src / "DCIM" / f"IMG_{i:03}.JPG", rng.randbytes(rng.randint(1, 600_000)))
    write(src / "CLIP.MP4", rng.randbytes(12_000_000))
    want = tree_hashes(src)
    state = tmp_path / "state"
    dests = [tmp_path / "ssd", tmp_path / "nas"]
    iterations = int(os.environ.get("CASTOFF_KILL_ITERATIONS", "6"))
    for it in range(iterations):
        for d in dests:
            if d.exists():
                subprocess.run(["rm", "-rf", str(d)], check=True)
        proc = subprocess.Popen(
            [
                *CASTOFF,
                "--state-dir",
                str(state / str(it)),
                "copy",
                str(src),
                "--quiet",
                "--chunk-size",
                "1M",
                "--memory",
                "4M",
                "--to",
                str(dests[0]),
                "--to",
                str(dests[1]),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        time.sleep(rng.uniform(0.3, 1.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        # what is visible after the kill is never a wrong file
        for d in dests:
            for rel, h in tree_hashes(d / "card").items() if (d / "card").exists() else []:
                if not Path(rel).name.startswith(".castoff."):
                    assert want[rel] == h, f"iteration {it}: {rel} visible but wrong"
        r = run(
            "copy",
            str(src),
            "--quiet",
            "--to",
            str(dests[0]),
            "--to",
            str(dests[1]),
            state=state / str(it),
        )
        assert r.returncode == 0, r.stderr
        for d in dests:
            assert tree_hashes(d / "card") == want, f"iteration {it}"
            assert not _partials(d)


def test_sigint_exits_130_and_the_job_resumes(tmp_path: Path) -> None:
    rng = random.Random(1)
    src = tmp_path / "card"
    for i in range(40):
        write(src / f"f{i:02}.bin", rng.randbytes(1_000_000))
    slow = tmp_path / "d"
    state = tmp_path / "state"
    proc = subprocess.Popen(
        [
            *CASTOFF,
            "--state-dir",
            str(state),
            "copy",
            str(src),
            "--json",
            "--to",
            str(slow),
            "--chunk-size",
            "256K",
            "--memory",
            "1M",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:  # wait until some work is done, then press Ctrl-C
        if '"file-done"' in line:
            break
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    r = run("copy", str(src), "--to", str(slow), "--quiet", state=state)
    assert r.returncode == 0, r.stderr
    assert tree_hashes(slow / "card") == tree_hashes(src)
    assert not _partials(slow)
    statuses = {j["status"] for j in json.loads(run("jobs", "--json", state=state).stdout)}
    assert statuses == {"interrupted", "done"}


def test_a_file_the_scan_cannot_read_fails_everywhere_and_the_card_is_not_released(tmp_path: Path) -> None:
    """QA: a card file whose stat failed (EUCLEAN on a damaged card) was in no count, and the job
    said "Source can be released" with it copied nowhere. A symlink loop followed gives the same
    scan error here (ELOOP)."""
    src = tmp_path / "card"
    write(src / "a.jpg", b"a" * 1000)
    (src / "loop.jpg").symlink_to("loop.jpg")
    state = tmp_path / "state"
    dests = ["--to", str(tmp_path / "A"), "--to", str(tmp_path / "B")]
    r = run("copy", str(src), *dests, "--follow-symlinks", "--json", state=state)
    assert r.returncode == 1, r.stderr
    events = [json.loads(line) for line in r.stdout.splitlines()]
    assert not [e for e in events if e["event"] == "released"]
    report = json.loads(Path(events[-1]["report"]).read_text())
    assert len(report["summary"]) == 2
    for d in report["summary"].values():
        assert (d["files"], d["verified"], d["failed"]) == (2, 1, 1)
    loop = next(f for f in report["files"] if f["path"] == "card/loop.jpg")
    assert loop["status"] == "failed"
    assert {d["status"] for d in loop["destinations"]} == {"failed"}
    plain = run("copy", str(src), *dests, "--follow-symlinks", state=state)
    assert plain.returncode == 1
    assert "can be released" not in plain.stderr + plain.stdout
    rows = [[c.strip() for c in line.split("│")[1:-1]] for line in plain.stderr.splitlines() if "│" in line]
    assert [r[1:] for r in rows] == [["2", "1000 B", "0", "0", "1", "1"]] * 2, (
        plain.stderr
    )  # skipped 1, failed 1


def test_on_conflict_skip_says_the_file_was_not_copied(tmp_path: Path) -> None:
    """QA: ``--on-conflict skip`` called the card's file "skipped" (the word for verified there by an
    earlier job), exit 0, "Source can be released", and an ASC MHL that claimed it there."""
    src = tmp_path / "card"
    write(src / "diff.txt", b"new")
    write(tmp_path / "dst" / "card" / "diff.txt", b"old")
    state = tmp_path / "state"
    r = run("copy", str(src), "--to", str(tmp_path / "dst"), "--on-conflict", "skip", state=state)
    out = " ".join(r.stderr.split())
    assert r.returncode == 1, out
    assert "exists with other content: kept it, this file was NOT copied (--on-conflict skip)" in out
    assert "can be released" not in out
    assert "┃ conflict ┃" in r.stderr  # the summary's column
    assert (tmp_path / "dst" / "card" / "diff.txt").read_bytes() == b"old"
    report = json.loads(Path(next(w for w in r.stderr.split() if w.endswith(".json"))).read_text())
    assert [d["status"] for d in report["files"][0]["destinations"]] == ["conflict"]
    assert next(iter(report["summary"].values()))["conflict"] == 1
    mhl = "".join(p.read_text() for p in (tmp_path / "dst" / "ascmhl").glob("*.mhl"))
    assert "diff.txt" not in mhl  # the ASC MHL does not vouch for the other file


def test_the_summary_table_keeps_incomplete_apart_from_failed() -> None:
    """QA: after Ctrl-C the console said "failed 31" where the report said incomplete 31 (a re-run
    sends the rest), and a long destination name was cut to "s3://sk…"."""
    from rich.console import Console

    from castoff.ui.progress import summary_table

    zero = dict.fromkeys(("verified", "already", "skipped", "conflict", "failed", "incomplete"), 0)
    name = "s3://a-bucket-with-a-long-name/and/a/long/prefix/[raw]"
    lanes = {name: {**zero, "files_total": 40, "bytes_total": 1 << 20, "verified": 9, "incomplete": 31}}
    console = Console(width=100, record=True)
    console.print(summary_table(lanes))
    text = console.export_text()
    assert "incomplete" in text and "conflict" not in text
    rows = [[c.strip() for c in line.split("│")[1:-1]] for line in text.splitlines() if "│" in line]
    assert rows[0][1:] == ["40", "1.0 MiB", "9", "0", "0", "31", "0"]
    assert "".join(r[0] for r in rows) == name


def test_paths_with_brackets_are_printed_as_they_are(tmp_path: Path) -> None:
    """QA: rich read ``[red]`` in a path as markup (dropped from progress, summary and log lines),
    and ``[/x]`` in a missing source's name crashed the error message with a MarkupError."""
    src = tmp_path / "card [raw]"
    write(src / "f [red].txt", b"new")
    (src / "loop [").mkdir()
    (src / "loop [" / "x].jpg").symlink_to("x].jpg")  # a file that fails: an error log line
    bold, backslash = tmp_path / "out [bold]x", tmp_path / "o2 \\[ end\\"
    write(bold / "card [raw]" / "f [red].txt", b"old")  # a conflict: a warning log line
    state = tmp_path / "state"
    r = run("copy", str(src), "--to", str(bold), "--to", str(backslash), "--follow-symlinks", state=state)
    out = " ".join((r.stdout + r.stderr).split())
    assert r.returncode == 1 and "Traceback" not in out, out
    rows = [line.split("│")[1].strip() for line in r.stderr.splitlines() if line.count("│") > 2]
    assert rows == [str(bold), str(backslash)], r.stderr  # the summary's destinations
    progress = [line.split("━")[0].strip() for line in r.stderr.splitlines() if "━" in line]
    assert [str(bold), str(backslash), "overall"] == progress[:3], r.stderr
    kept = bold / "card [raw]"
    assert (
        f"{kept}/f [red].txt exists with other content: kept both, this copy is {kept}/f [red] (2).txt" in out
    )
    assert "card [raw]/loop [/x].jpg:" in out  # the error line of the file that failed
    for bad in ("no[/x]", "card [backup]", "x [red] \\["):
        r = run("copy", str(tmp_path / bad), "--to", str(tmp_path / "o"), state=state)
        out = " ".join((r.stdout + r.stderr).split())
        assert r.returncode == 2 and f"castoff: source {tmp_path / bad} does not exist" in out, out


@pytest.mark.parametrize("char", ["x", "é", "e\u0301"])
def test_a_long_name_kept_both_is_shortened_to_fit_the_destination(tmp_path: Path, char: str) -> None:
    """QA: a 254-byte name, edited on the card, failed at the destination that held the first
    version ("File name too long", exit 1, "change what it says first"): the name fits, only
    the " (2)" did not. The stem loses whole characters (an accent stays with its letter), the
    extension stays, and the report says the name was shortened; a re-run finds it there."""
    stem = char * (250 // len(char.encode()))
    name = f"{stem}.jpg"
    assert 250 < len(name.encode()) <= 255
    card, out, state = tmp_path / "CARD", tmp_path / "o1", tmp_path / "s"
    write(card / name, b"a")
    assert run("copy", str(card), "--to", str(out), "-q", state=state).returncode == 0
    write(card / name, b"edited")
    r = run("copy", str(card), "--to", str(out), "--json", state=state)
    assert r.returncode == 0, r.stderr
    alt = sorted(p.name for p in (out / "CARD").iterdir() if p.name != name)
    assert len(alt) == 1 and alt[0].endswith(" (2).jpg"), alt
    kept = alt[0].removesuffix(" (2).jpg")
    assert len(alt[0].encode()) <= 255 < len(f"{stem} (2).jpg".encode())
    assert stem.startswith(kept) and len(kept) >= len(stem) - 4 and not kept.endswith("e")
    assert (out / "CARD" / alt[0]).read_bytes() == b"edited"
    assert (out / "CARD" / name).read_bytes() == b"a"
    events = [json.loads(line) for line in r.stdout.splitlines()]
    said = [e["message"] for e in events if e["event"] == "log" and e["level"] == "warning"]
    assert said == [
        f"{out}: {out}/CARD/{name} exists with other content: kept both, this copy is"
        f" {out}/CARD/{alt[0]} (shortened to fit the destination's 255-byte name limit)"
    ]
    (report,) = [e for e in events if e["event"] == "job-end"]
    data = json.loads(Path(report["report"]).read_text())
    (dest,) = data["files"][0]["destinations"]
    assert dest["target"].endswith(alt[0]) and "shortened" in dest["detail"], dest
    again = run("copy", str(card), "--to", str(out), state=state)
    assert again.returncode == 0 and "every file was verified" in again.stderr, again.stderr
    v = run("verify", str(out), state=state)
    assert v.returncode == 0, v.stdout + v.stderr


def test_emoji_codes_in_names_are_printed_as_they_are(tmp_path: Path) -> None:
    """QA: rich turned ``:camera:`` in a folder or file name into a picture, even where markup
    was off: the summary and the log lines named folders that do not exist."""
    src = tmp_path / "card"
    write(src / ":smile:.jpg", b"new")
    out = tmp_path / ":camera: out"
    write(out / "card" / ":smile:.jpg", b"old")  # a conflict: a warning line naming the file
    r = run("copy", str(src), "--to", str(out), state=tmp_path / "state")
    text = " ".join((r.stdout + r.stderr).split())
    assert r.returncode == 0, text
    rows = [line.split("│")[1].strip() for line in r.stderr.splitlines() if line.count("│") > 2]
    assert rows == [str(out)], r.stderr
    assert f"{out}/card/:smile:.jpg exists with other content: kept both" in text
    assert "\N{CAMERA}" not in text and "\N{SMILING FACE WITH OPEN MOUTH}" not in text


def _rot_in_place(path: Path) -> None:
    """A byte changed at a destination, size and mtime kept: bit rot, as only --rehash finds it."""
    st = path.stat()
    with path.open("r+b") as fh:
        fh.seek(10)
        byte = fh.read(1)
        fh.seek(10)
        fh.write(bytes([byte[0] ^ 0xFF]))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def _report(state: Path, stderr: str) -> tuple[dict[str, Any], str]:
    path = Path(next(line for line in stderr.splitlines() if line.startswith("report: "))[8:])
    report = json.loads(path.read_text())
    schema = json.loads((Path(__file__).parents[2] / "src/castoff/reports/report.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(report)
    return report, path.with_suffix(".html").read_text()


def test_a_damaged_copy_found_by_rehash_is_said_everywhere_and_exits_1(tmp_path: Path, card: Path) -> None:
    """Before: the job printed one warning, then counted the file as plain "verified", its HTML
    report said every file was verified, and it exited 0."""
    state, dest = tmp_path / "state", tmp_path / "d1"
    assert run("copy", str(card), "--to", str(dest), state=state).returncode == 0
    rotted = dest / "EOS_DIGITAL" / "DCIM" / "100CANON" / "IMG_0003.CR3"
    good = rotted.with_name("IMG_0003 (2).CR3")
    _rot_in_place(rotted)
    r = run("copy", str(card), "--to", str(dest), "--rehash", state=state)
    assert r.returncode == 1, r.stderr
    assert f"{rotted} is DAMAGED or was changed" in r.stderr
    header = next(line for line in r.stderr.splitlines() if "destination" in line and "files" in line)
    assert [c.strip() for c in header.strip("┃ ").split("┃")][-2:] == ["damaged", "failed"]
    assert "Source can be released" in r.stderr and "1 earlier copy there is DAMAGED" in r.stderr
    assert "Attention: 1 file has a DAMAGED copy at a destination" in r.stderr
    assert "the source can be released." in r.stderr
    report, html = _report(state, r.stderr)
    assert (report["job"]["status"], report["job"]["exit_code"]) == ("done", 1)
    assert report["summary"][str(dest)]["damaged"] == 1
    first = report["files"][0]  # files with a problem first
    assert first["path"] == "EOS_DIGITAL/DCIM/100CANON/IMG_0003.CR3"
    (out,) = first["destinations"]
    assert (out["status"], out["target"], out["damaged"]) == ("verified", str(good), str(rotted))
    assert "is DAMAGED or was changed" in out["detail"] and str(good) in out["detail"]
    assert {d["damaged"] for f in report["files"][1:] for d in f["destinations"]} == {None}
    assert (
        '<div class="verdict warn" id="verdict">Every file is verified at every destination, but 1 file'
        in html
    )
    assert "Every file is verified at every destination (1 destination)" not in html
    assert 'id="problems"' in html and "damaged copy kept" in html
    # the job's own page names it too (before: a plain "verified" row, nothing damaged)
    shown = run("jobs", "show", report["job"]["id"], state=state, env={"COLUMNS": "400"})
    assert shown.returncode == 0, shown.stderr
    row = next(line for line in shown.stdout.splitlines() if "IMG_0003.CR3" in line)
    assert "verified + damaged copy" in row
    assert f"DAMAGED copy kept: {rotted}" in shown.stdout
    assert "Attention: 1 file has a DAMAGED copy at a destination" in " ".join(shown.stdout.split())

    # again: the good copy is there already, nothing sent, no third copy, the damage said again
    r = run("copy", str(card), "--to", str(dest), "--rehash", state=state)
    assert r.returncode == 1, r.stderr
    assert f"{rotted} is still DAMAGED or changed" in r.stderr
    assert sorted(p.name for p in rotted.parent.iterdir() if "IMG_0003" in p.name) == [
        "IMG_0003 (2).CR3",
        "IMG_0003.CR3",
    ]
    report, _ = _report(state, r.stderr)
    (out,) = report["files"][0]["destinations"]
    assert (out["status"], out["target"], out["damaged"]) == ("already", str(good), str(rotted))
    assert report["summary"][str(dest)]["verified"] == 0


def _paced_json_copy(state: Path, argv: list[str], keys: dict[str, str]) -> subprocess.Popen[str]:
    """``castoff ARGV --json --bwlimit 200K``, started: its uploads take seconds."""
    return subprocess.Popen(
        [*CASTOFF, "--state-dir", str(state), *argv, "--json", "--bwlimit", "200K"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, **keys},
    )


def _kill_at_release(proc: subprocess.Popen[str]) -> None:
    """SIGKILL a ``--json`` copy once it says the card can be released."""
    assert proc.stdout is not None
    for line in proc.stdout:  # killed once the source may go: what comes after is still under way
        if json.loads(line)["event"] == "released":
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)


def test_jobs_show_of_a_killed_job_counts_the_files_it_never_took_somewhere(
    tmp_path: Path, rclone_s3: Any
) -> None:
    """QA: a job SIGKILLed while its uploads went on showed each bucket as 'files 120, verified
    120, failed 0, incomplete 0': the files that never got there were in no count. They are
    counted there as incomplete (not reached), in the summary and in 'castoff jobs show'."""
    n = 30
    src = tmp_path / "card"
    for i in range(n):
        write(src / f"IMG_{i:04}.JPG", os.urandom(100_000))
    state = tmp_path / "state"
    url = (
        f"s3://{rclone_s3.bucket}/v1/?endpoint={rclone_s3.url}&region=us-east-1&addressing=path"
        "&provider=rclone"
    )
    keys = {"AWS_ACCESS_KEY_ID": rclone_s3.access_key, "AWS_SECRET_ACCESS_KEY": rclone_s3.secret_key}
    to = ["--to", str(tmp_path / "ssd"), "--to", url]
    proc = subprocess.Popen(
        [*CASTOFF, "--state-dir", str(state), "copy", str(src), "--json", "--bwlimit", "200K", *to],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, **keys},
    )
    _kill_at_release(proc)  # the uploads are still under way
    (job,) = json.loads(run("jobs", "--json", state=state).stdout)
    r = run("jobs", "show", job["id"], "--json", state=state)
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["job"]["status"] == "interrupted"
    assert rep["job"]["exit_code"] is None  # QA: 130, a code the killed process never returned
    bucket = f"s3://{rclone_s3.bucket}/v1"
    reached = dict.fromkeys(rep["summary"], 0)
    for f in rep["files"]:
        # every file is named at every destination, those it never got to too (not-reached)
        assert sorted(d["destination"] for d in f["destinations"]) == sorted(rep["summary"]), f
        for d in f["destinations"]:
            if d["error_code"] == "not-reached":
                assert (d["status"], d["target"]) == ("incomplete", ""), d
                assert d["error"].startswith("the job ended before this file got here"), d
            else:
                reached[d["destination"]] += 1
    assert reached[bucket] < n  # the kill came before every file got there
    for name, s in rep["summary"].items():
        assert s["files"] == n, (name, s)
        assert s["not_reached"] == n - reached[name], (name, s)
        done = s["verified"] + s["already"] + s["skipped"]
        assert done + s["failed"] + s["incomplete"] + s["conflict"] == n, (name, s)
        assert s["incomplete"] >= s["not_reached"]
    assert rep["summary"][bucket]["incomplete"] > 0
    schema = json.loads((Path(__file__).parents[2] / "src/castoff/reports/report.schema.json").read_text())
    jsonschema.validate(rep, schema)
    shown = run("jobs", "show", job["id"], state=state)
    they = "it" if n - reached[bucket] == 1 else "they"
    said = f"{bucket}: {plural(n - reached[bucket], 'file')} of this job never got there"
    said += f": the job ended before {they} did"
    assert said in " ".join(shown.stdout.split()), shown.stdout


def test_at_released_the_card_and_the_drive_have_their_ascmhl_history(tmp_path: Path) -> None:
    """QA: with --mhl-source, a card unmounted as soon as the ``released`` event came had no
    ascmhl/ (its generation was written after the word, or never: the job-end event then said no
    problem, exit 0), and a job SIGKILLed at the word left no ascmhl/ on the drive. Both are
    written before castoff says the card can be released."""
    src = tmp_path / "card"
    for i in range(300):
        write(src / "DCIM" / f"IMG_{i:04}.JPG", os.urandom(2000))
    ssd = tmp_path / "ssd"
    state = tmp_path / "state"
    argv = [*CASTOFF, "--state-dir", str(state), "copy", str(src), "--to", str(ssd), "--json", "--mhl-source"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    _kill_at_release(proc)
    for root in (src, ssd):
        assert [p.name for p in (root / "ascmhl").glob("0001_*.mhl")], root
        assert (root / "ascmhl" / "ascmhl_chain.xml").is_file(), root


def test_file_read_is_said_once_a_file_and_a_catch_up_read_is_its_own_event(
    tmp_path: Path, rclone_s3: Any
) -> None:
    """QA: ``file-read`` came twice for a multipart file sent to a bucket beside a drive (the
    second was the catch-up's read of the verified copy), where docs/json-events.md says once.
    The one read of the source is ``file-read``; a catch-up's read is ``file-reread``, which names
    what it read."""
    src = tmp_path / "card"
    write(src / "CLIP" / "C0001.MP4", os.urandom(20 * 1024 * 1024))
    write(src / "DCIM" / "IMG_0001.JPG", os.urandom(100_000))
    url = (
        f"s3://{rclone_s3.bucket}/once/?endpoint={rclone_s3.url}&region=us-east-1&addressing=path"
        "&provider=rclone"
    )
    keys = {"AWS_ACCESS_KEY_ID": rclone_s3.access_key, "AWS_SECRET_ACCESS_KEY": rclone_s3.secret_key}
    ssd = tmp_path / "ssd"
    argv = ["copy", str(src), "--to", str(ssd), "--to", url, "--json", "--chunk-size", "8M"]
    r = subprocess.run(
        [*CASTOFF, "--state-dir", str(tmp_path / "state"), *argv],
        capture_output=True,
        text=True,
        env={**os.environ, **keys},
        timeout=300,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    events = [json.loads(line) for line in r.stdout.splitlines()]
    read = sorted(e["rel_path"] for e in events if e["event"] == "file-read")
    assert read == ["card/CLIP/C0001.MP4", "card/DCIM/IMG_0001.JPG"]
    for e in events:  # QA O #2: the hash of the one read, which every copy is checked against
        if e["event"] == "file-read":
            assert e["blake3"] == blake3.blake3((src.parent / e["rel_path"]).read_bytes()).hexdigest()
    doc = (Path(__file__).resolve().parents[2] / "docs" / "json-events.md").read_text()
    reread = [e for e in events if e["event"] == "file-reread"]
    assert "card/CLIP/C0001.MP4" in [e["rel_path"] for e in reread]
    for e in reread:
        if e["event"] == "file-reread":
            assert e["path"] in (str(ssd / e["rel_path"]), str(src.parent / e["rel_path"])), e
            assert "| `file-reread` |" in doc and "`path`" in doc


def test_jobs_show_says_what_the_reports_say_of_an_outcome(tmp_path: Path, rclone_s3: Any) -> None:
    """QA: ``castoff jobs show`` (text) left out an outcome's detail, "sent from the verified copy
    …", which the JSON and HTML reports give."""
    src = tmp_path / "card"
    write(src / "CLIP" / "C0001.MP4", os.urandom(20 * 1024 * 1024))
    url = (
        f"s3://{rclone_s3.bucket}/detail/?endpoint={rclone_s3.url}&region=us-east-1&addressing=path"
        "&provider=rclone"
    )
    keys = {"AWS_ACCESS_KEY_ID": rclone_s3.access_key, "AWS_SECRET_ACCESS_KEY": rclone_s3.secret_key}
    state = tmp_path / "state"
    r = run("copy", str(src), "--to", str(tmp_path / "ssd"), "--to", url, "--json", state=state, env=keys)
    assert r.returncode == 0, r.stderr
    job_id = json.loads(r.stdout.splitlines()[-1])["job_id"]
    rep = json.loads(run("jobs", "show", job_id, "--json", state=state).stdout)
    details = [d["detail"] for f in rep["files"] for d in f["destinations"] if d["detail"]]
    assert any(t.startswith("sent from the verified copy") for t in details), details
    shown = run("jobs", "show", job_id, state=state, env={"COLUMNS": "400"})
    assert shown.returncode == 0, shown.stderr
    for text in details:
        assert text in shown.stdout, shown.stdout


@pytest.mark.parametrize("layout", [[], ["--layout", "device"]], ids=["card-folder", "device"])
def test_a_card_gone_after_release_is_said_with_the_command_that_finishes_from_the_verified_copy(
    tmp_path: Path, rclone_s3: Any, layout: list[str]
) -> None:
    """QA: after a job was released and stopped before its uploads were done, the same command
    with the card gone said only "source … does not exist / is the card mounted?". It says the job
    was released and gives the command that finishes from the verified local copy, which puts the
    files at the job's keys (with --layout device too: the drive's folders, as they are)."""
    n = 20
    src = tmp_path / "card"
    for i in range(n):
        write(src / "DCIM" / f"IMG_{i:04}.JPG", os.urandom(100_000))
    state = tmp_path / "state"
    url = (
        f"s3://{rclone_s3.bucket}/gone{len(layout)}/?endpoint={rclone_s3.url}&region=us-east-1"
        "&addressing=path&provider=rclone"
    )
    keys = {"AWS_ACCESS_KEY_ID": rclone_s3.access_key, "AWS_SECRET_ACCESS_KEY": rclone_s3.secret_key}
    ssd = tmp_path / "ssd"
    argv = ["copy", str(src), "--to", str(ssd), "--to", url, *layout]
    _kill_at_release(_paced_json_copy(state, argv, keys))
    src.rename(tmp_path / "ejected")
    r = run(*argv, state=state, env=keys)
    said = " ".join(r.stderr.split())
    assert r.returncode == 2, said
    assert "every local destination verified all of its files (the card could be released)" in said
    assert "Traceback" not in said
    command = said.split("finish from the verified copy at ")[1].split(": ", 1)[1].split(" (the drive's")[0]
    assert command.startswith("castoff copy ")
    r = run(*shlex.split(command)[1:], state=state, env=keys)
    assert r.returncode == 0, r.stderr
    admin = rclone_s3.admin_client()
    listed = admin.list_objects_v2(Bucket=rclone_s3.bucket, Prefix=f"gone{len(layout)}/")
    got = sorted(o["Key"].split("/", 1)[1] for o in listed.get("Contents", []))
    local = sorted(str(p.relative_to(ssd)) for p in ssd.rglob("*.JPG"))
    assert got == local and len(got) == n


def test_the_gone_card_hint_names_a_drive_that_is_plugged_in(tmp_path: Path, rclone_s3: Any) -> None:
    """QA: with the card gone after release, the hint said "finish from the verified copy at uA"
    while uA was unplugged and uB was there. It names a drive that holds the job's files now, and
    with none plugged in it says so (mount the card, or plug a drive in)."""
    src = tmp_path / "card"
    for i in range(20):
        write(src / "DCIM" / f"IMG_{i:04}.JPG", os.urandom(100_000))
    state = tmp_path / "state"
    url = (
        f"s3://{rclone_s3.bucket}/unplugged/?endpoint={rclone_s3.url}&region=us-east-1"
        "&addressing=path&provider=rclone"
    )
    keys = {"AWS_ACCESS_KEY_ID": rclone_s3.access_key, "AWS_SECRET_ACCESS_KEY": rclone_s3.secret_key}
    ua, ub = tmp_path / "uA", tmp_path / "uB"
    argv = ["copy", str(src), "--to", str(ua), "--to", str(ub), "--to", url]
    _kill_at_release(_paced_json_copy(state, argv, keys))
    src.rename(tmp_path / "ejected")
    ua.rename(tmp_path / "uA.unplugged")
    said = " ".join(run(*argv, state=state, env=keys).stderr.split())
    assert f"finish from the verified copy at {ub}: castoff copy {ub / 'card'} " in said, said
    assert str(ua) + "/" not in said and f"at {ua}:" not in said, said
    ub.rename(tmp_path / "uB.unplugged")
    r = run(*argv, state=state, env=keys)
    said = " ".join(r.stderr.split())
    assert r.returncode == 2, said
    assert "finish from the verified copy at" not in said, said
    assert "castoff copy " not in said, said
    assert f"none of the drives that hold the verified copy ({ua}, {ub}) is there now" in said, said
    assert "mount the card and re-run the same command" in said and "Traceback" not in said, said


def test_one_file_damaged_at_two_drives_is_counted_once(tmp_path: Path, card: Path) -> None:
    """QA H 10: one file's copy rotted at both drives was "2 files have a DAMAGED copy at a
    destination": it is one file, with a DAMAGED copy at 2 destinations."""
    state, d1, d2 = tmp_path / "state", tmp_path / "d1", tmp_path / "d2"
    assert run("copy", str(card), "--to", str(d1), "--to", str(d2), state=state).returncode == 0
    for dest in (d1, d2):
        _rot_in_place(dest / "EOS_DIGITAL" / "DCIM" / "100CANON" / "IMG_0003.CR3")
    r = run("copy", str(card), "--to", str(d1), "--to", str(d2), "--rehash", state=state)
    assert r.returncode == 1, r.stderr
    said = " ".join(r.stderr.split())
    assert "Attention: 1 file has a DAMAGED copy at 2 destinations" in said, r.stderr
    report, _html = _report(state, r.stderr)
    shown = run("jobs", "show", report["job"]["id"], state=state, env={"COLUMNS": "400"})
    assert "Attention: 1 file has a DAMAGED copy at 2 destinations" in " ".join(shown.stdout.split())


@pytest.mark.parametrize("policy", ["fail", "skip"])
def test_on_conflict_fail_or_skip_names_the_damaged_copy_castoff_verified(
    tmp_path: Path, card: Path, policy: str
) -> None:
    """QA H 12: with --on-conflict fail|skip, castoff's own rotted copy was "exists with other
    content (--on-conflict rename keeps both)", damaged null: it is the DAMAGED copy castoff
    verified there."""
    state, dest = tmp_path / "state", tmp_path / "d1"
    assert run("copy", str(card), "--to", str(dest), state=state).returncode == 0
    rotted = dest / "EOS_DIGITAL" / "DCIM" / "100CANON" / "IMG_0003.CR3"
    _rot_in_place(rotted)
    r = run("copy", str(card), "--to", str(dest), "--rehash", "--on-conflict", policy, state=state)
    assert r.returncode == 1, r.stderr
    said = " ".join(r.stderr.split())
    assert f"{rotted} is the DAMAGED copy castoff verified there" in said, r.stderr
    assert "exists with other content" not in said
    report, _html = _report(state, r.stderr)
    row = next(f for f in report["files"] if f["path"].endswith("IMG_0003.CR3"))
    (out,) = row["destinations"]
    assert out["damaged"] == str(rotted)


def _between(text: str, start: str, end: str) -> str:
    """The part of ``text`` from ``start`` to the next ``end``."""
    at = text.index(start)
    return text[at : text.index(end, at)]


def test_every_key_of_jobs_prune_verify_and_uploads_json_is_documented(tmp_path: Path) -> None:
    """QA: ``castoff jobs --json`` gave ``scanned`` and destination keys (``ident``, ``kind``,
    ``s3``, ``region``) no document named, ``verify --json`` ``folder``, ``against`` and ``grown``,
    ``jobs prune --json`` was not documented at all, and ``uploads --help`` named a ``parts`` key
    that is ``parts_done`` and ``parts_total``. Each is named where its command is documented."""
    from castoff.catalog.db import UploadRow
    from castoff.cli import _upload_as_json

    root = Path(__file__).resolve().parents[2]
    readme = (root / "README.md").read_text()
    jobs_doc = _between(readme, "`castoff jobs --json` is one array", "- **ASC MHL")
    prune_doc = _between(readme, "`--json` prints one object: `dry_run`", "- A pruned job")
    verify_doc = _between(
        (root / "docs" / "report.md").read_text(), "`--json` prints one object: `ok`", "Exit"
    )
    src, state = tmp_path / "card", tmp_path / "state"
    write(src / "a.jpg", b"a" * 1000)
    assert run("copy", str(src), "--to", str(tmp_path / "ssd"), "--quiet", state=state).returncode == 0
    [job] = json.loads(run("jobs", "--json", state=state).stdout)
    assert job["files_complete"] is True and "scanned" not in job, job
    for key in [*job, *(k for d in job["destinations"] for k in d), "region"]:
        assert f"`{key}`" in jobs_doc, key
    r = run("verify", str(tmp_path / "ssd"), "--json", state=state)
    assert r.returncode == 0, r.stderr
    for key in json.loads(r.stdout):
        assert f"`{key}`" in verify_doc, key
    pruned = json.loads(run("jobs", "prune", "--keep", "0", "--dry-run", "--json", state=state).stdout)
    assert job["id"] in [*pruned["jobs"], *pruned["spared"]], pruned
    for key in [*pruned, *pruned["rows"]]:
        assert f"`{key}`" in prune_doc, key
    row = UploadRow(1, "s3:aws/b/", "s3://b", "k", "/card/k", 10, 0, 5, {}, 0.0, job["id"], ())
    helped = " ".join(run("uploads", "--help", state=state).stdout.split())
    uploads_doc = _between(readme, "`castoff uploads`\nlists", "`castoff uploads\nabort")
    for key in _upload_as_json(row):
        assert key in helped and f"`{key}`" in uploads_doc, key


def test_every_option_of_every_command_is_named_in_the_docs() -> None:
    """QA typed the docs verbatim and found options they never name (``--chunk-size``,
    ``--replace``, ``--description``, ``--unset``, copy's flag forms of the URL options such as
    ``--addressing``, ``--sse``, ``--sse-kms-key-id``, ``--checksums``): each is in README.md or
    docs/*.md."""
    import argparse
    import re

    from castoff.cli import build_parser

    root = Path(__file__).resolve().parents[2]
    docs = (root / "README.md").read_text() + "".join(p.read_text() for p in (root / "docs").glob("*.md"))

    def options(parser: argparse.ArgumentParser, command: str) -> list[tuple[str, str]]:
        found = []
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    found += options(sub, f"{command} {name}".strip())
            found += [(command, o) for o in action.option_strings if o.startswith("--")]
        return found

    unnamed = sorted(
        {(c, o) for c, o in options(build_parser(), "") if not re.search(f"{o}(?![\\w-])", docs)}
    )
    assert unnamed == [], unnamed
