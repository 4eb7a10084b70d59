"""How castoff takes its arguments: an empty path, an option given at run time over a saved one,
a listing given an id, a mistyped command or option."""

from __future__ import annotations

import json
from pathlib import Path

from castoff_cli import Castoff
from engine_runner import write


def test_an_empty_path_is_refused_never_the_current_folder(tmp_path: Path) -> None:
    """QA: ``CARD=""; castoff copy "$CARD" --to …`` copied the folder it ran in and said done."""
    castoff = Castoff(tmp_path / "user")
    write(castoff.root / "sub" / "f.txt", b"hi")  # the folder castoff runs in (its cwd)
    card = tmp_path / "card"
    write(card / "a.txt", b"a")
    dest = tmp_path / "dest"
    dest.mkdir()
    assert castoff("workflow", "save", "card", "--to", str(dest), "--source", str(card)).returncode == 0
    report = tmp_path / "report.json"
    write(report, b"{}")
    for args, said in (
        (("copy", "", "--to", str(dest)), "empty source"),
        (("copy", " ", "--to", str(dest)), "blank source ' '"),
        (("copy", str(card), "--to", ""), "empty destination"),
        (("run", "card", ""), "empty source"),
        (("verify", ""), "empty path"),
        (("verify", str(dest), "--report", ""), "empty --report"),
        (("workflow", "save", "x", "--to", str(dest), "--source", ""), "empty --source"),
        (("workflow", "save", "x", "--to", ""), "empty destination"),
        (("workflow", "edit", "card", "--source", ""), "empty --source"),
        (("demo", "--out", ""), "empty --out"),
        (("dest", "add", "d", "local", ""), "empty path"),
        (("dest", "test", ""), "empty destination"),
        (("jobs", "--state-dir", ""), "empty --state-dir"),
        (("dest", "list", "--config", ""), "empty --config"),
    ):
        r = castoff(*args)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert f"castoff: {said}" in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)
    assert list(dest.iterdir()) == []  # nothing copied anywhere
    assert not (castoff.root / "demo-out").exists()
    r = castoff("workflow", "show", "card", "--json")
    assert f'"source": "{card}"' in r.stdout, r.stdout  # the saved source is as it was
    assert '"x"' not in castoff("workflow", "list", "--json").stdout


def test_an_output_option_given_to_run_replaces_the_saved_one(tmp_path: Path) -> None:
    """QA: ``run wq --json`` on a workflow saved with --quiet printed copy's usage and exit 2."""
    castoff = Castoff(tmp_path / "user")
    card = tmp_path / "card"
    write(card / "a.txt", b"a")
    dest = tmp_path / "dest"
    for saved, given in (("--quiet", "--json"), ("--json", "--quiet")):
        name = saved.strip("-")
        assert (
            castoff("workflow", "save", name, "--to", str(dest), "--source", str(card), saved).returncode == 0
        )
        r = castoff("run", name, given, "--rehash")
        assert r.returncode == 0, r.stderr
        if given == "--json":
            assert r.stdout.startswith('{"event": "job-start"'), r.stdout
        else:
            assert r.stdout == "", r.stdout
        r = castoff("run", name, "--quiet", "--json")
        assert r.returncode == 2, r.stderr
        assert "usage: castoff run " in r.stderr and "castoff run: error:" in r.stderr, r.stderr
        assert "castoff copy" not in r.stderr, r.stderr
    # edit: the option given replaces the one it excludes
    assert castoff("workflow", "edit", "quiet", "--json").returncode == 0
    r = castoff("workflow", "show", "quiet", "--json")
    assert '"json": true' in r.stdout and '"quiet": true' not in r.stdout, r.stdout
    r = castoff("workflow", "save", "both", "--to", str(dest), "--quiet", "--json")
    assert r.returncode == 2 and "castoff workflow save: error:" in r.stderr, r.stderr


def test_show_needs_an_id_and_a_listing_takes_none(tmp_path: Path) -> None:
    """QA: ``ID=""; castoff jobs show "$ID" --json`` printed every job, exit 0; ``jobs list 2026``
    and ``uploads list 1`` ignored what they were given."""
    castoff = Castoff(tmp_path / "user")
    card = tmp_path / "card"
    write(card / "a.txt", b"a")
    assert castoff("copy", str(card), "--to", str(tmp_path / "dest"), "--quiet").returncode == 0
    for args, said in (
        (("jobs", "show", "", "--json"), "'castoff jobs show' needs a job id, not ''"),
        (("jobs", "show", "--json"), "'castoff jobs show' needs a job id"),
        (("jobs", "list", "2026"), "'castoff jobs list' takes no job id ('2026')"),
        (("uploads", "list", "1"), "'castoff uploads list' takes no upload numbers (1)"),
    ):
        r = castoff(*args)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert f"castoff: {said}" in r.stderr, (args, r.stderr)
        if "--json" in args:  # no job: the error alone, as JSON (docs/json-events.md)
            [line] = r.stdout.splitlines()
            assert json.loads(line)["event"] == "error" and said in json.loads(line)["message"], line
        else:
            assert r.stdout == "", (args, r.stdout)
    assert castoff("jobs", "list", "--json").stdout.startswith("[")


def test_no_abbreviation_and_a_typo_gets_the_close_name(tmp_path: Path) -> None:
    """QA: ``--inc x`` was taken as --include, ``--j`` as --json (a later option would change what
    an old script means); ``castoff cpy`` only listed the commands; ``copy … --jsn`` was said with
    the top-level usage."""
    castoff = Castoff(tmp_path / "user")
    card = tmp_path / "card"
    write(card / "a.txt", b"a")
    dest = tmp_path / "dest"
    for args, said in (
        (
            ("copy", str(card), "--to", str(dest), "--inc", "x"),
            "castoff copy: error: unrecognized arguments: --inc x (did you mean --include?)",
        ),
        (("jobs", "--j"), "castoff jobs: error: unrecognized arguments: --j (did you mean --json?)"),
        (
            ("copy", str(card), "--to", str(dest), "--jsn"),
            "castoff copy: error: unrecognized arguments: --jsn (did you mean --json?)",
        ),
        (
            ("run", "x", "--quiett"),
            "castoff run: error: unrecognized arguments: --quiett (did you mean --quiet?)",
        ),
        (
            ("dest", "add", "x", "local", str(dest), "--no-tst"),
            "castoff dest add: error: unrecognized arguments: --no-tst (did you mean --no-test?)",
        ),
        (
            ("cpy", str(card)),
            "castoff: error: argument COMMAND: invalid choice: 'cpy' (did you mean 'copy'?)",
        ),
        (
            ("workflow", "lst"),
            "castoff workflow: error: argument ACTION: invalid choice: 'lst' (did you mean 'list'?)",
        ),
        (("copy", str(card), "--to", str(dest), "--on-conflict", "skp"), "(did you mean 'skip'?)"),
        (
            ("copy", str(card), "--to", str(dest), "--zzz"),
            "castoff copy: error: unrecognized arguments: --zzz\n",
        ),
    ):
        r = castoff(*args)
        assert r.returncode == 2, (args, r.stderr)
        assert said in r.stderr, (args, r.stderr)
        command = " ".join(a for a in args[:2] if a in ("copy", "jobs", "run", "dest", "add", "workflow"))
        assert f"usage: castoff {command}" in r.stderr, r.stderr
    assert not dest.exists()
