"""What castoff tells the user to do next, and how it words counts and refusals."""

from __future__ import annotations

import html
import os
import re
import resource
import subprocess
import sys
from pathlib import Path

from castoff_cli import Castoff
from engine_runner import write

RERUN = "Re-run the same command to retry only what is missing"


def verdict(r: subprocess.CompletedProcess[str]) -> str:
    """The HTML report's verdict, the first thing its reader sees."""
    found = re.search(r"html report: (\S+)", r.stdout + r.stderr)
    assert found, r.stderr
    page = Path(found.group(1)).read_text(encoding="utf-8")
    said = re.search(r'<div class="verdict[^"]*" id="verdict">(.*?)</div>', page, re.S)
    assert said, page
    return html.unescape(re.sub(r"<[^>]+>", " ", said.group(1)))


def test_a_rerun_is_advised_only_for_failures_a_rerun_can_fix(tmp_path: Path) -> None:
    castoff = Castoff(tmp_path / "user")
    card = tmp_path / "card"
    write(card / "a.txt", b"one")
    write(card / "b.txt", b"two")
    dest = tmp_path / "dest"
    write(dest / "card" / "a.txt", b"another file")
    for policy, said in (("skip", "--on-conflict skip"), ("fail", "--on-conflict fail")):
        r = castoff("copy", str(card), "--to", str(dest), "--on-conflict", policy)
        assert r.returncode == 1, r.stderr
        assert RERUN not in r.stderr, r.stderr
        assert f"1 file {'not copied' if policy == 'skip' else 'failed'}" in r.stderr, r.stderr
        assert said in r.stderr and "--on-conflict rename" in r.stderr, r.stderr
        assert RERUN not in verdict(r) and "would meet the same problems again" in verdict(r)
    # the destination holds the source where the template puts its copy: no copy can be made
    n = tmp_path / "n"
    write(n / "card" / "DCIM" / "a.jpg", b"a")
    r = castoff("copy", str(n / "card"), "--to", str(n), "--template", "card/{path}")
    assert r.returncode == 1, r.stderr
    assert RERUN not in r.stderr, r.stderr
    assert "the target is the source file itself" in r.stderr and "outside the source" in r.stderr
    assert RERUN not in verdict(r)
    # a destination that could not be used: fixed, a re-run sends what is missing (and the
    # conflict is still said for what it is)
    write(tmp_path / "ssd", b"a file where a folder was meant")
    r = castoff(
        "copy", str(card), "--to", str(dest), "--to", str(tmp_path / "ssd" / "x"), "--on-conflict", "skip"
    )
    assert r.returncode == 1, r.stderr
    assert RERUN in r.stderr and "1 file not copied" in r.stderr, r.stderr
    assert RERUN in verdict(r)  # both files can still reach the destination that failed


def test_a_mistyped_url_is_said_as_given_with_what_a_destination_looks_like(tmp_path: Path) -> None:
    """Before: unknown destination scheme 's3:/bucket1/x/?endpoint=http://', the "://" of the
    endpoint taken for the URL's own."""
    castoff = Castoff(tmp_path / "user")
    card = tmp_path / "card"
    write(card / "a.txt", b"a")
    endpoint = "?endpoint=http://127.0.0.1:9000"
    for given, said in (
        (f"s3:/bucket1/x/{endpoint}", f"did you mean 's3://bucket1/x/{endpoint}'?"),
        (f"S3:bucket1/x/{endpoint}", f"did you mean 's3://bucket1/x/{endpoint}'?"),
        (f"bucket1/x/{endpoint}", "a destination is a folder path, s3://bucket/prefix/"),
        ("ftp://host/x", "a destination is a folder path, s3://bucket/prefix/"),
    ):
        r = castoff("copy", str(card), "--to", given)
        assert r.returncode == 2, r.stderr
        assert f"'{given}'" in r.stderr and said in r.stderr, r.stderr
        assert "@NAME" in r.stderr or "did you mean" in r.stderr, r.stderr
        assert "Traceback" not in r.stderr
    made = [p.name for p in castoff.root.iterdir() if p.name.lower().startswith(("s3", "bucket1"))]
    assert not made  # no folder was made of a mistyped URL (castoff runs in castoff.root)


def test_one_file_is_one_file_not_one_files(tmp_path: Path) -> None:
    castoff = Castoff(tmp_path / "user")
    card = tmp_path / "card"
    write(card / "a.txt", b"a")
    r = castoff("copy", str(card), "--to", str(tmp_path / "ssd"))
    assert r.returncode == 0, r.stderr
    assert ": done, 1 file, " in r.stderr and "1 files" not in r.stderr, r.stderr
    r = castoff("verify", str(tmp_path / "ssd"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "the 1 recorded file matches" in r.stdout and "1 recorded files" not in r.stdout, r.stdout


def test_max_parallel_0_is_refused_as_minus_3_is(tmp_path: Path) -> None:
    """Before: --max-parallel 0 was taken as "not given", silently (-3 and ?max_parallel=0 were refused)."""
    castoff = Castoff(tmp_path / "user")
    card = tmp_path / "card"
    write(card / "a.txt", b"a")
    for n in ("0", "-3"):
        r = castoff("copy", str(card), "--to", str(tmp_path / "ssd"), "--max-parallel", n)
        assert r.returncode == 2, r.stderr
        assert f"--max-parallel: must be 1 or more, not {n}" in r.stderr, r.stderr
        r = castoff("workflow", "save", "w", "--to", str(tmp_path / "ssd"), "--max-parallel", n)
        assert r.returncode == 2 and "must be 1 or more" in r.stderr, r.stderr
    assert not (tmp_path / "ssd").exists() and not castoff.config.exists()


def test_bwlimit_with_only_folders_is_said_to_do_nothing(tmp_path: Path) -> None:
    castoff = Castoff(tmp_path / "user")
    card = tmp_path / "card"
    write(card / "a.txt", b"a")
    r = castoff(
        "copy", str(card), "--to", str(tmp_path / "a"), "--to", str(tmp_path / "b"), "--bwlimit", "1M"
    )
    assert r.returncode == 0, r.stderr
    said = " ".join(r.stderr.split())
    assert said.count("--bwlimit 1M is ignored: it limits uploads to buckets") == 1, said
    assert (tmp_path / "b" / "card" / "a.txt").read_bytes() == b"a"


def test_the_progress_line_says_incomplete_as_the_summary_does() -> None:
    """Files a re-run resumes (a bucket that stopped answering) are 'incomplete' on the progress
    line, as in the summary table below it, not 'failed' there and 'incomplete' here."""
    import io

    from rich.console import Console
    from rich.text import Text

    from castoff.ui.progress import RichDisplay, summary_table

    lane = dict.fromkeys(
        ("files_done", "files_total", "failed", "incomplete", "conflict", "skipped", "verified", "already"), 0
    )
    lane |= {"files_total": 3, "files_done": 3, "incomplete": 2, "failed": 1, "verified": 0}
    lane |= {"bytes_total": 30, "bytes_skipped": 0, "bytes_done": 10}
    out = io.StringIO()
    display = RichDisplay(lambda: {"s3://b/p": lane}, console=Console(file=out, width=200))
    display.tick()
    (task,) = display.progress.tasks
    line = Text.from_markup(task.fields["files"]).plain
    assert line == "3/3 files 1 failed 2 incomplete", line
    display.console.print(summary_table({"s3://b/p": lane}))
    assert "incomplete" in out.getvalue()


def test_the_progress_line_says_its_rate_in_the_units_of_its_sizes() -> None:
    """QA: ``201.0 MB/s`` (rich's decimal units) beside MiB sizes, while the end line said MiB/s."""
    import io

    from rich.console import Console

    from castoff.ui.progress import RichDisplay

    lane = dict.fromkeys(
        ("files_done", "files_total", "failed", "incomplete", "conflict", "skipped", "verified", "already"), 0
    )
    lane |= {"files_total": 1, "bytes_total": 400 * 1024 * 1024, "bytes_skipped": 0, "bytes_done": 0}
    out = io.StringIO()
    display = RichDisplay(lambda: {"ssd": lane}, console=Console(file=out, width=200))
    display.tick()
    (task,) = display.progress.tasks
    task.finished_speed = 201 * 1024 * 1024  # as rich keeps it: bytes per second
    line = display.progress.make_tasks_table([task])
    Console(file=out, width=200).print(line)
    assert "201.0 MiB/s" in out.getvalue() and "MB/s" not in out.getvalue(), out.getvalue()
    assert "400.0 MiB" in out.getvalue(), out.getvalue()
    # a finished bar: its whole run's rate, not its last samples' (the scan's growing totals keep
    # resetting rich's; the demo's folders said 591 B/s for 48 MiB in a second)
    task.completed, task.finished_time, task.finished_speed = task.total or 0, 2.0, 591.0
    out.truncate(0)
    Console(file=out, width=200).print(display.progress.make_tasks_table([task]))
    assert "200.0 MiB/s" in out.getvalue() and "591" not in out.getvalue(), out.getvalue()


def test_small_words_a_fresh_user_meets(tmp_path: Path) -> None:
    """QA: an empty table on a fresh state folder; a raw KeyError for a file that is no report;
    blank help lines; no exit codes in run --help; 'them' for one workflow."""
    castoff = Castoff(tmp_path / "user")
    r = castoff("jobs")
    assert r.returncode == 0 and "no jobs yet: castoff copy SOURCE --to DEST" in r.stdout, r.stdout
    assert castoff("jobs", "--json").stdout.strip() == "[]"
    folder = tmp_path / "folder"
    write(folder / "a.txt", b"a")
    for text, said in (
        (b'{"schema": "castoff.report/1"}', "it has no 'files' field"),
        (b"[1, 2]", "it has no 'schema' field and no 'files' field"),
        (b"not json", "it is not JSON"),
        (b'{"schema": "castoff.report/1", "files": [3]}', "an entry of its 'files' list is not a file"),
    ):
        write(tmp_path / "notreport.json", text)
        r = castoff("verify", str(folder), "--report", str(tmp_path / "notreport.json"))
        assert r.returncode == 2 and f"is not a castoff JSON report: {said}" in r.stderr, r.stderr
        assert "KeyError" not in r.stderr and "'files'\n" not in r.stderr, r.stderr
    add_help = castoff("dest", "add", "--help").stdout
    for flag in ("--region REGION", "--storage-class STORAGE_CLASS", "--addressing {path,virtual,auto}"):
        after = add_help.split(f"  {flag}", 1)[1].split("\n  -", 1)[0]
        assert after.strip(), (flag, add_help)  # a help line, not nothing
    assert "exit codes: 0 every file verified" in castoff("run", "--help").stdout
    dest = tmp_path / "dest"
    assert castoff("dest", "add", "ssd", "local", str(dest)).returncode == 0
    assert castoff("workflow", "save", "one", "--to", "@ssd").returncode == 0
    r = castoff("dest", "remove", "ssd")
    assert r.returncode == 2 and "take it out of it first: castoff workflow edit one --to" in r.stderr, (
        r.stderr
    )
    assert castoff("workflow", "save", "two", "--to", "@ssd").returncode == 0
    r = castoff("dest", "remove", "ssd")
    assert "take it out of them first: castoff workflow edit NAME --to" in r.stderr, r.stderr


def test_a_bucket_without_keys_is_told_where_its_keys_go(tmp_path: Path) -> None:
    """QA: a saved bucket with no keys was told 'or use profile=NAME' (the s3:// URL's syntax)."""
    castoff = Castoff(tmp_path / "user")
    card = tmp_path / "card"
    write(card / "a.txt", b"a")
    r = castoff("dest", "add", "arch", "s3", "--bucket", "my-bucket", "--endpoint", "http://127.0.0.1:9")
    assert r.returncode == 1 and "--access-key-id ID" in r.stdout + r.stderr, r.stdout + r.stderr
    assert "--profile NAME" in r.stdout + r.stderr and "profile=NAME" not in r.stdout + r.stderr
    args = ("--bucket", "my-bucket", "--endpoint", "http://127.0.0.1:9", "--no-test")
    assert castoff("dest", "add", "arch", "s3", *args).returncode == 0
    r = castoff("copy", str(card), "--to", "@arch")
    assert r.returncode == 2, r.stderr
    assert "castoff dest credentials arch" in r.stderr and "profile=NAME" not in r.stderr, r.stderr
    assert "--profile NAME" in r.stderr, r.stderr
    r = castoff("copy", str(card), "--to", "s3://my-bucket/?endpoint=http://127.0.0.1:9")
    assert r.returncode == 2 and "profile=NAME in the URL" in r.stderr, r.stderr


def test_a_file_changed_in_place_since_it_was_copied_is_said_and_not_rerun(tmp_path: Path) -> None:
    """QA E #3: a card's file rewritten with the same size and mtime after an offload. A re-run
    (here with a second drive) read other bytes than the earlier job, said "Re-run the same
    command", and a later run copied them under the hash of the copy it skipped. Now it says the
    file changed since it was copied, sends the new bytes nowhere, says that the skipped copy is
    the file as it was, and points to --rehash, which keeps both."""
    castoff = Castoff(tmp_path / "user")
    card = tmp_path / "card"
    clip = write(card / "CLIP" / "C0001.MP4", os.urandom(3 * 1024 * 1024))
    write(card / "a.txt", b"one")
    ssd, ssd2 = tmp_path / "ssd", tmp_path / "ssd2"
    r = castoff("copy", str(card), "--to", str(ssd))
    assert r.returncode == 0, r.stderr
    before = clip.read_bytes()
    st = clip.stat()
    with clip.open("r+b") as f:
        f.seek(1000)
        f.write(b"XXXX")
    os.utime(clip, ns=(st.st_atime_ns, st.st_mtime_ns))
    for _ in range(2):
        r = castoff("copy", str(card), "--to", str(ssd), "--to", str(ssd2))
        assert r.returncode == 1, r.stderr
        said = " ".join(r.stderr.split())
        assert "C0001.MP4: changed at the source since an earlier job copied it" in said, said
        assert "this copy holds it as it was then" in said, said
        assert RERUN not in said, said
        assert "1 file not copied: changed at the source" in said and "--rehash" in said, said
        assert RERUN not in verdict(r)
        assert not (ssd2 / "card" / "CLIP" / "C0001.MP4").exists()
        assert (ssd / "card" / "CLIP" / "C0001.MP4").read_bytes() == before
    r = castoff("copy", str(card), "--to", str(ssd), "--to", str(ssd2), "--rehash")
    assert r.returncode == 0, r.stderr
    assert (ssd / "card" / "CLIP" / "C0001.MP4").read_bytes() == before
    assert (ssd / "card" / "CLIP" / "C0001 (2).MP4").read_bytes() == clip.read_bytes()
    assert (ssd2 / "card" / "CLIP" / "C0001.MP4").read_bytes() == clip.read_bytes()


def test_a_file_too_big_for_the_destination_is_said_so_and_not_to_be_rerun(tmp_path: Path) -> None:
    """EFBIG (FAT32 past 4 GiB; here a file size limit, ulimit -f, as Python ignores SIGXFSZ) is
    that file's failure, said as too big for the filesystem, before its bytes are written; the
    others land, and no re-run is advised for it (QA: 'File too large', 'Re-run the same
    command')."""
    castoff = Castoff(tmp_path / "user")
    card = tmp_path / "card"
    write(card / "CLIP" / "C0001.MP4", os.urandom(12 << 20))
    write(card / "CLIP" / "C0002.JPG", os.urandom(300_000))
    dest = tmp_path / "dest"
    limit = 8 << 20

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    r = castoff.run(
        [sys.executable, "-m", "castoff", "copy", str(card), "--to", str(dest), "--no-mhl"],
        preexec_fn=limited,
    )
    assert r.returncode == 1, r.stderr
    assert "C0001.MP4: File too large" in r.stderr
    assert "takes no file this big: copy it to another drive" in r.stderr
    assert RERUN not in r.stderr
    assert "1 file failed for a reason the same command meets again" in r.stderr
    assert sorted(os.listdir(dest / "card" / "CLIP")) == ["C0002.JPG"]  # no partial file left
    assert RERUN not in verdict(r)
