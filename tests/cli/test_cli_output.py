"""What castoff prints, where it cannot print it or to whom it should not print it raw: a stdout
that fails (a full disk, an encoding without the characters), file names with control
characters, a pipe or file that is not 80 columns wide, a terminal that hangs up (SIGHUP)."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import signal
import subprocess
import termios
from pathlib import Path

import castoff
from castoff_cli import CASTOFF, run_castoff
from engine_runner import write

FULL = "/dev/full"  # every write to it fails with ENOSPC


def _env(**extra: str) -> dict[str, str]:
    """This environment without COLUMNS (castoff's output then goes where a user's pipe or file
    would have it), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    env.update(extra)
    return env


def _run(
    *args: str, state: Path, stdout: object = subprocess.PIPE, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CASTOFF, "--state-dir", str(state), *args],
        stdin=subprocess.DEVNULL,
        stdout=stdout,  # type: ignore[arg-type]
        stderr=subprocess.PIPE,
        text=True,
        timeout=180,
        check=False,
        env=_env(**env),
    )


def _jobs(state: Path) -> list[dict[str, object]]:
    jobs = json.loads(run_castoff("jobs", "--json", state=state).stdout)
    assert isinstance(jobs, list)
    return jobs


def test_a_json_copy_whose_stdout_is_full_completes_with_its_report(tmp_path: Path) -> None:
    card = tmp_path / "card"
    for i in range(20):
        write(card / f"C{i:02}.MP4", os.urandom(5000 + i))
    state = tmp_path / "state"
    with open(FULL, "w") as full:
        r = _run("copy", str(card), "--to", str(tmp_path / "d"), "--json", state=state, stdout=full)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr and "Exception ignored" not in r.stderr, r.stderr
    assert r.stderr.count("stdout failed (No space left on device)") == 1, r.stderr
    [job] = _jobs(state)
    assert (job["status"], job["exit_code"]) == ("done", 0)
    assert (state / "reports" / f"{job['id']}.json").is_file()
    for f in card.iterdir():
        assert (tmp_path / "d" / "card" / f.name).read_bytes() == f.read_bytes()


def test_json_events_on_a_stdout_that_is_not_utf8(tmp_path: Path) -> None:
    """Windows' stdout redirected to a file is cp1252: the events say every name, escaped."""
    card = tmp_path / "jp"
    for i in range(3):
        write(card / f"A{i}.JPG", os.urandom(300 * 1024))
    write(card / "撮影.txt", b"x")
    state = tmp_path / "state"
    r = _run("copy", str(card), "--to", str(tmp_path / "d"), "--json", state=state, PYTHONIOENCODING="cp1252")
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    events = [json.loads(line) for line in r.stdout.splitlines()]
    assert events[-1]["event"] == "job-end" and events[-1]["status"] == "done"
    assert {"jp/撮影.txt"} <= {e.get("rel_path") for e in events if e["event"] == "file-done"}
    assert (tmp_path / "d" / "jp" / "撮影.txt").read_bytes() == b"x"
    # the text commands too: a character cp1252 has not is escaped, not a traceback
    job_id = str(events[-1]["job_id"])
    for args in (("jobs", "show", job_id), ("jobs", "show", job_id, "--json")):
        shown = _run(*args, state=state, PYTHONIOENCODING="cp1252")
        assert shown.returncode == 0 and "Traceback" not in shown.stderr, shown.stderr
    report = json.loads(_run("jobs", "show", job_id, "--json", state=state, PYTHONIOENCODING="cp1252").stdout)
    assert "jp/撮影.txt" in {f["path"] for f in report["files"]}


def test_commands_whose_stdout_is_full_say_so_without_a_traceback(tmp_path: Path) -> None:
    card = tmp_path / "card"
    write(card / "a.txt", b"a")
    state = tmp_path / "state"
    config = tmp_path / "config.toml"
    dest = tmp_path / "d"
    assert _run("copy", str(card), "--to", str(dest), state=state, CASTOFF_CONFIG=str(config)).returncode == 0
    job_id = str(_jobs(state)[0]["id"])
    for args in (
        ("verify", str(dest), "--json"),
        ("verify", str(dest)),
        ("jobs", "show", job_id, "--json"),
        ("jobs", "show", job_id),
        ("jobs", "--json"),
        ("jobs",),
        ("dest", "list"),
        ("--help",),  # argparse's own output: it used to end 0 (or "Exception ignored", 120)
        ("copy", "--help"),
        ("--version",),
        (),
    ):
        for buffered in ("", "1"):  # PYTHONUNBUFFERED: argparse's write fails, or the flush at exit
            with open(FULL, "w") as full:
                r = _run(
                    *args, state=state, stdout=full, CASTOFF_CONFIG=str(config), PYTHONUNBUFFERED=buffered
                )
            # 2, not 1: verify's 1 says a file is altered
            assert r.returncode == 2, (args, r.stderr)
            assert "Traceback" not in r.stderr and "Exception ignored" not in r.stderr, (args, r.stderr)
            assert "castoff: could not write to stdout: No space left on device" in r.stderr, (args, r.stderr)


def _control_card(tmp_path: Path) -> Path:
    card = tmp_path / "CARD"
    card.mkdir()
    for name in (b"ctrl\x01\x1b[31mred.jpg", b"new\nline.jpg", b"ok.jpg", b"c1\xc2\x9b2J.jpg"):
        (card / os.fsdecode(name)).write_bytes(b"x")
    return card


def test_control_characters_in_names_are_escaped_on_the_console(tmp_path: Path) -> None:
    card = _control_card(tmp_path)  # 1000 columns: a row on one line
    state = tmp_path / "state"
    r = _run(
        "copy", str(card), "--to", str(tmp_path / "x"), "--exclude", "ctrl*", state=state, COLUMNS="1000"
    )
    assert r.returncode == 0, r.stderr
    assert "skip: CARD/ctrl\\x01\\x1b[31mred.jpg: excluded by --exclude" in r.stderr, r.stderr
    r = _run("copy", str(card), "--to", str(tmp_path / "y"), state=state, COLUMNS="1000")
    assert r.returncode == 0, r.stderr
    job_id = str(_jobs(state)[0]["id"])
    shown = _run("jobs", "show", job_id, state=state, COLUMNS="1000")
    assert shown.returncode == 0, shown.stderr
    for out in (r.stderr, shown.stdout):
        assert not any(c in out for c in "\x01\x1b\x9b"), out
    rows = [line for line in shown.stdout.splitlines() if "CARD/" in line]
    assert any("CARD/ctrl\\x01\\x1b[31mred.jpg" in line for line in rows), shown.stdout
    assert any("CARD/c1\\x9b2J.jpg" in line for line in rows), shown.stdout
    # a newline in a name does not split its row: the row has the name whole, and its target
    [row] = [line for line in rows if "new" in line]
    assert "CARD/new\\nline.jpg" in row and row.count("new\\nline.jpg") == 2, shown.stdout
    # the JSON says the names as they are (JSON escapes them)
    report = json.loads(_run("jobs", "show", job_id, "--json", state=state, COLUMNS="1000").stdout)
    assert "CARD/new\nline.jpg" in {f["path"] for f in report["files"]}


def test_output_to_a_pipe_is_not_wrapped_at_80_columns(tmp_path: Path) -> None:
    card = tmp_path / "card"
    write(card / "a.bin", os.urandom(100_000))
    state = tmp_path / "state"
    dest = tmp_path / ("a-destination-whose-path-is-far-longer-than-eighty-columns-" * 2)
    r = _run("copy", str(card), "--to", str(dest), state=state)
    assert r.returncode == 0, r.stderr
    # the job's line whole, "(… read, 156.4 MiB/s)" not broken before its unit
    assert any(line.startswith("job ") and line.endswith("/s)") for line in r.stderr.splitlines()), r.stderr
    assert f"report: {state / 'reports'}" in r.stderr
    listed = _run("jobs", state=state)
    assert listed.returncode == 0, listed.stderr
    [row] = [line for line in listed.stdout.splitlines() if " done " in line]
    assert str(dest) in row, listed.stdout


def _start_json_copy(
    tmp_path: Path, n: int = 300, terminal: int | None = None, nohup: bool = False
) -> tuple[subprocess.Popen[str], Path, Path]:
    """A --json copy of ``n`` files whose stdout is a pipe of one page this test reads only when
    it wants: the job cannot end before then (its events wait for room). The first event read.
    ``terminal``: a pseudo-terminal's end, castoff's stdin, stderr and controlling terminal;
    ``nohup``: started with SIGHUP ignored, as ``nohup`` starts it."""
    card = tmp_path / "card"
    for i in range(n):
        write(card / f"C{i:04}.MP4", os.urandom(1000 + i))
    state = tmp_path / "state"

    def own_terminal() -> None:
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)  # after setsid: the pty becomes /dev/tty

    def ignore_hangups() -> None:
        signal.signal(signal.SIGHUP, signal.SIG_IGN)

    proc = subprocess.Popen(
        [*CASTOFF, "--state-dir", str(state), "copy", str(card), "--to", str(tmp_path / "d"), "--json"],
        stdin=subprocess.DEVNULL if terminal is None else terminal,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE if terminal is None else terminal,
        text=True,
        env=_env(),
        start_new_session=terminal is not None,
        preexec_fn=ignore_hangups if nohup else None if terminal is None else own_terminal,  # noqa: PLW1509
    )
    assert proc.stdout is not None
    fcntl.fcntl(proc.stdout.fileno(), fcntl.F_SETPIPE_SZ, 4096)
    first = json.loads(proc.stdout.readline())
    assert first["event"] == "job-start"  # the handlers are installed by then
    return proc, card, state


def test_sighup_stops_a_copy_as_ctrl_c_does(tmp_path: Path) -> None:
    """A closed terminal or a dropped SSH session: the job stops cleanly (130), writes its
    report, and a re-run finishes it; a second hangup (the shell's, after the terminal's) does
    not make it stop at once."""
    proc, card, state = _start_json_copy(tmp_path)
    proc.send_signal(signal.SIGHUP)
    proc.send_signal(signal.SIGHUP)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err, err
    end = json.loads(out.splitlines()[-1])
    assert (end["event"], end["status"], end["exit_code"]) == ("job-end", "interrupted", 130)
    assert Path(end["report"]).is_file()
    [job] = _jobs(state)
    assert job["status"] == "interrupted"
    again = run_castoff("copy", str(card), "--to", str(tmp_path / "d"), state=state)
    assert again.returncode == 0, again.stderr


def test_a_terminal_that_hangs_up_stops_a_copy_cleanly(tmp_path: Path) -> None:
    """The terminal itself goes (its window closed): the kernel sends SIGHUP, and every write to
    stderr fails from then on (EIO). The job stops as for Ctrl-C, its report written."""
    master, slave = pty.openpty()
    proc, _, state = _start_json_copy(tmp_path, terminal=slave)
    os.close(slave)
    os.close(master)  # the hangup
    assert proc.stdout is not None
    out = proc.stdout.read()
    assert proc.wait(120) == 130
    end = json.loads(out.splitlines()[-1])
    assert (end["event"], end["status"]) == ("job-end", "interrupted")
    assert Path(end["report"]).is_file()
    assert [j["status"] for j in _jobs(state)] == ["interrupted"]


def test_under_nohup_a_hangup_leaves_the_copy_going(tmp_path: Path) -> None:
    proc, _, state = _start_json_copy(tmp_path, nohup=True)
    proc.send_signal(signal.SIGHUP)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert json.loads(out.splitlines()[-1])["status"] == "done"
    assert [j["status"] for j in _jobs(state)] == ["done"]


def test_job_start_is_the_first_event_when_a_destination_is_unusable(tmp_path: Path) -> None:
    card = tmp_path / "card"
    write(card / "a.txt", b"a")
    blocker = write(tmp_path / "a-file", b"")
    r = _run(
        "copy",
        str(card),
        "--to",
        str(blocker / "nope"),
        "--to",
        str(tmp_path / "d"),
        "--json",
        state=tmp_path / "state",
    )
    events = [json.loads(line) for line in r.stdout.splitlines()]
    assert events[0]["event"] == "job-start", events[:3]
    assert events[0]["castoff_version"] == castoff.__version__  # which castoff the script talks to
    assert any(e["event"] == "log" and e["level"] == "error" for e in events), events
    assert events[-1]["event"] == "job-end"


def test_every_json_event_and_field_is_documented(tmp_path: Path) -> None:
    """docs/json-events.md names every event a job gives and every field of it: a script writer
    can rely on it."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "json-events.md").read_text()
    card = tmp_path / "card"
    write(card / "DCIM" / "a.JPG", os.urandom(70_000))
    write(card / "x.tmp", b"")  # a log: skip: … excluded
    (card / "PRIVATE" / "EMPTY").mkdir(parents=True)  # a folder-done
    r = _run(
        "copy",
        str(card),
        "--to",
        str(tmp_path / "d"),
        "--json",
        "--exclude",
        "*.tmp",
        state=tmp_path / "state",
    )
    assert r.returncode == 0, r.stderr
    events = [json.loads(line) for line in r.stdout.splitlines()]
    kinds = {e["event"] for e in events}
    assert {
        "job-start",
        "log",
        "file-read",
        "file-done",
        "folder-done",
        "progress",
        "released",
        "job-end",
    } <= kinds
    for e in events:
        assert f"| `{e['event']}` |" in doc, e["event"]
        for key in e:
            assert f"`{key}`" in doc, (e["event"], key)
        for counters in e.get("destinations", {}).values() if isinstance(e.get("destinations"), dict) else []:
            for key in counters:
                assert f"`{key}`" in doc, (e["event"], key)


def test_with_json_an_error_before_any_job_is_an_error_event_on_stdout(tmp_path: Path) -> None:
    """QA: ``castoff copy nosuch --to d --json`` said its error on stderr only, and a script (the
    web UI) reading stdout got nothing. Each such error is one ``error`` event on stdout, in the
    documented envelope, the text on stderr as before."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "json-events.md").read_text()
    card = tmp_path / "card"
    write(card / "a.txt", b"a")
    d = str(tmp_path / "d")
    config = str(tmp_path / "config.toml")
    cases = [
        (("copy", str(tmp_path / "nosuch"), "--to", d, "--json"), "does not exist"),
        (("copy", str(card), "--to", "@nope", "--json"), "no saved destination 'nope'"),
        (("copy", str(card), "--to", "s3://bucket/raw/?bogus=1", "--json"), "unknown S3 option 'bogus'"),
        (("copy", str(card), "--to", d, "--template", "{nope}", "--json"), "unknown token {nope}"),
        (("copy", str(card), "--to", d, "--on-conflict", "bogus", "--json"), "invalid choice: 'bogus'"),
        (("run", "nowf", "--json"), "no workflow 'nowf'"),
        (("jobs", "show", "nojob", "--json"), "no job 'nojob'"),
        (("verify", str(tmp_path / "nosuch"), "--json"), "is not a folder"),
    ]
    for args, said in cases:
        r = _run(*args, state=tmp_path / "state", CASTOFF_CONFIG=config)
        assert r.returncode == 2, (args, r.stderr)
        assert said in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)
        [line] = r.stdout.splitlines()
        event = json.loads(line)
        assert event["event"] == "error" and isinstance(event["at"], float), (args, event)
        assert (event["exit_code"], event["code"]) == (2, "usage"), (args, event)
        assert said in event["message"], (args, event)
        assert "hint" in event, (args, event)
        assert "| `error` |" in doc
        for key in event:
            assert f"`{key}`" in doc, key
    assert not (tmp_path / "d").exists()
    # without --json, stdout stays empty; workflow save's --json is an option it saves, not its output
    for args in (
        ("copy", str(tmp_path / "nosuch"), "--to", d),
        ("workflow", "save", "w", "--to", "@nope", "--json"),
        ("workflow", "save", "w", "--to", d, "--json", "--quiet"),
    ):
        r = _run(*args, state=tmp_path / "state", CASTOFF_CONFIG=config)
        assert r.returncode == 2 and r.stdout == "", (args, r.stdout, r.stderr)


def test_a_newline_in_a_saved_folder_does_not_split_the_list_rows(tmp_path: Path) -> None:
    """QA: a saved destination or workflow whose folder holds a newline printed its row on two
    lines (``dest list``, ``workflow list``), and an escape in it reached the terminal."""
    folder, card = tmp_path / "dst\nX\x1b[2J", tmp_path / "crd\nY\x1b[2J"
    folder.mkdir()
    card.mkdir()
    state, env = tmp_path / "state", {"CASTOFF_CONFIG": str(tmp_path / "config.toml")}
    added = _run("dest", "add", "nas", "local", str(folder), state=state, **env)
    assert added.returncode == 0, added.stderr
    saved = _run("workflow", "save", "wf", "--to", "@nas", "--source", str(card), state=state, **env)
    assert saved.returncode == 0, saved.stderr
    for what, shown in (("dest", "dst\\nX\\x1b[2J"), ("workflow", "crd\\nY\\x1b[2J")):
        r = _run(what, "list", state=state, COLUMNS="1000", **env)
        assert r.returncode == 0, r.stderr
        assert "\x1b" not in r.stdout, r.stdout
        [row] = [line for line in r.stdout.splitlines() if "@nas" in line]
        assert shown in row, r.stdout


def test_with_json_what_went_wrong_is_also_said_as_text_on_stderr(tmp_path: Path) -> None:
    """QA: the README says ``--json > events.jsonl 2> offload.log`` keeps both, but offload.log
    was empty in every run, even when files failed. The warnings and errors, the card's release
    and how the job ended are said on stderr as text too; stdout stays JSON lines alone."""
    card = tmp_path / "card"
    write(card / "a.jpg", b"a" * 1000)
    (card / "loop.jpg").symlink_to("loop.jpg")
    r = _run(
        "copy",
        str(card),
        "--to",
        str(tmp_path / "d"),
        "--json",
        "--follow-symlinks",
        state=tmp_path / "state",
    )
    assert r.returncode == 1, r.stderr
    events = [json.loads(line) for line in r.stdout.splitlines()]  # nothing but JSON there
    errors_said = [e["message"] for e in events if e["event"] == "log" and e["level"] == "error"]
    assert errors_said
    for message in errors_said:
        assert f"error: {message}" in r.stderr, r.stderr
    job = events[-1]
    assert f"job {job['job_id']}: failed (exit code 1)" in r.stderr
    assert f"report: {job['report']}" in r.stderr

    good = tmp_path / "good"
    write(good / "b.jpg", b"b" * 1000)
    r = _run("copy", str(good), "--to", str(tmp_path / "d"), "--json", state=tmp_path / "state")
    assert r.returncode == 0, r.stderr
    assert "Source can be released: every local destination is verified." in r.stderr
    assert all(json.loads(line) for line in r.stdout.splitlines())


def test_with_json_a_warning_said_before_the_job_is_also_a_log_event(tmp_path: Path) -> None:
    """QA: the README says every ``warning: …`` on stderr is also a ``log`` event with --json, but
    those said before the job (the config file's, ``--bwlimit`` with folders only) were on stderr
    alone. Each is a ``log`` event right after ``job-start``, in the order stderr has them."""
    card = tmp_path / "card"
    write(card / "a.jpg", b"a" * 1000)
    config = tmp_path / "config.toml"
    config.write_text(
        f'[destinations.ssd]\ntype = "local"\npath = "{tmp_path / "ssd"}"\n\n'
        '[workflows.card]\nto = ["@ssd", "@gone"]\n'
    )
    r = _run(
        "copy",
        str(card),
        "--to",
        "@ssd",
        "--bwlimit",
        "10M",
        "--json",
        state=tmp_path / "state",
        CASTOFF_CONFIG=str(config),
    )
    assert r.returncode == 0, r.stderr
    said = [line.removeprefix("warning: ") for line in r.stderr.splitlines() if line.startswith("warning: ")]
    assert len(said) == 2 and "no saved destination 'gone'" in said[0] and "--bwlimit 10M" in said[1], said
    events = [json.loads(line) for line in r.stdout.splitlines()]
    assert events[0]["event"] == "job-start", events[:3]
    logged = [(e["level"], e["message"]) for e in events[1:3] if e["event"] == "log"]
    assert logged == [("warning", text) for text in said], events[:4]


def test_a_job_stopped_before_its_scan_ended_says_its_list_is_partial(tmp_path: Path) -> None:
    """QA: a job stopped (or killed) early listed 3 files of a card of 37, with nothing saying
    that the others were never found: its report, ``jobs`` and ``jobs show`` read as if the card
    held 3. The list of a job whose scan did not end is said to be partial, everywhere."""
    card = tmp_path / "CARD"
    for i in range(1500):
        write(card / f"DCIM/{i // 100:03}" / f"IMG_{i:04}.JPG", os.urandom(1000))
    state = tmp_path / "state"
    argv = [*CASTOFF, "--state-dir", str(state), "copy", str(card), "--to", str(tmp_path / "d"), "--json"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    assert proc.stdout is not None
    for line in proc.stdout:
        if json.loads(line)["event"] == "file-done":
            break
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    said = " ".join(err.split())
    assert "the job stopped before it had found every file of its sources" in said, said
    (job,) = _jobs(state)
    rep = json.loads(_run("jobs", "show", str(job["id"]), "--json", state=state).stdout)
    assert rep["job"]["files_complete"] is False
    assert len(rep["files"]) < 1500, len(rep["files"])
    shown = " ".join(_run("jobs", "show", str(job["id"]), state=state).stdout.split())
    assert "The job ended before it had found every file of its sources" in shown, shown
    html = Path(str(job["report_path"])).with_suffix(".html").read_text()
    assert 'id="partial"' in html
    # run to its end: the list is whole, and nothing says otherwise
    done = _run("copy", str(card), "--to", str(tmp_path / "d"), state=state)
    assert done.returncode == 0, done.stderr
    job = _jobs(state)[0]
    rep = json.loads(_run("jobs", "show", str(job["id"]), "--json", state=state).stdout)
    assert rep["job"]["files_complete"] is True and len(rep["files"]) == 1500
    assert "found every file" not in done.stderr
    assert 'id="partial"' not in Path(str(job["report_path"])).with_suffix(".html").read_text()
