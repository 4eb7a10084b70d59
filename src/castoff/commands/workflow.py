"""``castoff workflow`` (save, list, show, edit, remove) and ``castoff run NAME``: a saved source,
its destinations and copy options, run as one command, resumed when the last run was interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.text import Text

from castoff import errors
from castoff.commands.common import (
    check_option,
    config_file,
    config_locked,
    config_path,
    copy_parser,
    print_list,
)
from castoff.config import secrets, workflows
from castoff.config.resolve import SAVED_PREFIX
from castoff.config.store import ConfigError, ConfigFile, Workflow, check_name, write_checked
from castoff.ui.term import Console


def _normalise_to(cfg: ConfigFile, targets: Sequence[str]) -> list[str]:
    """``@name`` stays; a bare saved name becomes ``@name``; a folder becomes absolute."""
    out: list[str] = []
    for t in targets:
        if t.startswith(SAVED_PREFIX):
            if t[1:] not in cfg.destinations:
                raise errors.UsageError(
                    f"no saved destination {t[1:]!r}", hint="'castoff dest list' shows them"
                )
            out.append(t)
        elif t in cfg.destinations and os.sep not in t:
            out.append(SAVED_PREFIX + t)
        elif "://" in t:
            if t[:5].lower() == "s3://":  # a bad bucket or a key in the URL never reaches the config
                from castoff.destinations import s3

                s3.parse_s3_url(t)
            out.append(t)
        else:
            out.append(os.path.abspath(os.path.expanduser(t)))
    for i, t in enumerate(out):
        first = out.index(t)
        if first < i:
            both = targets[i] if targets[first] == targets[i] else f"{targets[first]} and {targets[i]}"
            raise errors.UsageError(f"the same destination is named twice: {both}")
    return out


def _workflow(cfg: ConfigFile, name: str) -> Workflow:
    found = cfg.workflows.get(name)
    if found is None:
        known = ", ".join(sorted(cfg.workflows)) or "none yet"
        raise errors.UsageError(
            f"no workflow {name!r} (saved: {known})", hint="castoff workflow save NAME --to …"
        )
    return found


def _check_options(cfg: ConfigFile, options: Mapping[str, Any], to: Sequence[str]) -> dict[str, Any]:
    """Each option as copy's parser takes it, then together as copy checks them before it reads
    (a template, --shoot, the sizes): a workflow that copy would refuse is not saved."""
    from castoff import cli

    checked = workflows.options_for_toml(options)
    for k, v in checked.items():
        problem = check_option(k, v)
        if problem:
            raise errors.UsageError(f"--{k.replace('_', '-')}: {problem}")
    argv = ["SOURCE", "--to", "DEST", *workflows.option_argv(copy_parser(), checked)]
    parsed = copy_parser().parse_args(argv)
    _, chunk = cli.check_options(parsed)
    bucket = any(_is_bucket(cfg, t) for t in to)
    # (with a bucket, its part size can lower the default chunk: checked by copy, which knows it)
    cli.memory_budget(
        parsed.memory, chunk, bucket=bucket, default_chunk=parsed.chunk_size is None and not bucket
    )
    _check_bucket_options(cfg, cli.s3_defaults(parsed), to)
    return checked


def _check_bucket_options(cfg: ConfigFile, defaults: Mapping[str, object], to: Sequence[str]) -> None:
    """Each bucket's options with the workflow's S3 flags over them, as copy will open it: a
    ``--part-size`` its provider refuses (QA: below the minimum) is refused now, not at each run."""
    from castoff.config.resolve import saved_s3_options
    from castoff.destinations import s3

    if not defaults:
        return
    for t in to:
        saved = cfg.destinations.get(t.removeprefix(SAVED_PREFIX)) if t.startswith(SAVED_PREFIX) else None
        if saved is not None and saved.kind == "s3":
            saved_s3_options(saved, defaults)
        elif t[:5].lower() == "s3://":
            s3.parse_s3_url(t, dict(defaults))


def _is_bucket(cfg: ConfigFile, target: str) -> bool:
    saved = (
        cfg.destinations.get(target.removeprefix(SAVED_PREFIX)) if target.startswith(SAVED_PREFIX) else None
    )
    return target[:5].lower() == "s3://" or (saved is not None and saved.kind == "s3")


def cmd_save(args: argparse.Namespace) -> int:
    name = check_name(args.name, "workflow")
    cfg = config_file(args)
    if name in cfg.workflows and not args.replace:
        raise errors.UsageError(
            f"there is already a workflow {name!r}",
            hint="change it with 'castoff workflow edit', or add --replace",
        )
    values: dict[str, Any] = {"to": _normalise_to(cfg, args.to)}
    if args.source:
        values["source"] = os.path.abspath(os.path.expanduser(args.source))
    if args.description:
        values["description"] = args.description
    options = _check_options(cfg, workflows.given_options(args, copy_parser()), values["to"])
    if options:
        values["options"] = options
    cfg.put("workflows", name, values)
    cfg.save()
    Console(stderr=True).print(
        f"saved workflow {name!r} in {cfg.path}; run it with: castoff run {name}",
        markup=False,
        highlight=False,
    )
    return 0


def _last_runs(args: argparse.Namespace) -> list[Mapping[str, Any]]:
    from castoff.cli import open_catalog

    catalog = open_catalog(args, reading=True)
    try:
        return [dict(r) for r in catalog.jobs(1000)]
    finally:
        catalog.close()


def cmd_list(args: argparse.Namespace) -> int:
    cfg = config_file(args)
    rows = _last_runs(args) if cfg.workflows else []
    last = {w.name: workflows.last_job(rows, w.name) for w in cfg.workflows.values()}
    return print_list(
        args,
        [{**_as_dict(w), "last_job": (last[w.name] or {}).get("id")} for w in cfg.workflows.values()],
        title=f"workflows ({cfg.path})",
        columns=("name", "source", "destinations", "last run"),
        rows=[
            (w.name, w.source or "(given at run)", ", ".join(w.to), _when(last[w.name]))
            for w in cfg.workflows.values()
        ],
        empty="no workflows yet: castoff workflow save NAME --to @DEST … --source PATH",
    )


def _when(job: Mapping[str, Any] | None) -> str:
    if job is None:
        return "never"
    return f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(job['started_at']))} {job['status']}"


def _as_dict(w: Workflow) -> dict[str, Any]:
    return {
        "name": w.name,
        "description": w.description,
        "to": list(w.to),
        "source": w.source,
        "options": dict(w.options),
    }


def command_line(w: Workflow) -> str:
    """The ``castoff copy`` command a workflow stands for."""
    argv = ["castoff", "copy", w.source or "SOURCE"]
    for t in w.to:
        argv += ["--to", t]
    argv += workflows.option_argv(copy_parser(), w.options)
    return shlex.join(argv)


def cmd_show(args: argparse.Namespace) -> int:
    w = _workflow(config_file(args), args.name)
    if args.json:
        print(json.dumps(_as_dict(w), indent=2))
        return 0
    console = Console()
    console.print(Text.assemble((w.name, "bold"), f": {w.description}" if w.description else ""))
    console.print(
        f"  source: {w.source or '(given at run: castoff run NAME SOURCE)'}", markup=False, highlight=False
    )
    console.print(f"  to: {', '.join(w.to)}", markup=False, highlight=False)
    for k, v in w.options.items():
        console.print(f"  {k} = {json.dumps(v)}", markup=False, highlight=False)
    console.print(f"  same as: {command_line(w)}", markup=False, highlight=False, soft_wrap=True)
    return 0


def cmd_edit(args: argparse.Namespace) -> int:
    cfg = config_file(args)
    w = _workflow(cfg, args.name)
    values: dict[str, Any] = {}
    if args.to:
        values["to"] = _normalise_to(cfg, args.to)
    if args.source:
        values["source"] = os.path.abspath(os.path.expanduser(args.source))
    if args.description:
        values["description"] = args.description
    options = workflows.given_options(args, copy_parser())
    unset = _unset(w, args.unset)
    if not values and not options and not unset:
        return _edit_in_editor(cfg)
    merged = {
        k: v for k, v in workflows.merged_options(copy_parser(), w.options, options).items() if k not in unset
    }
    to = values.get("to", list(w.to))
    checked = _check_options(cfg, merged, to)
    kept = [None if k in unset else values.get(k, getattr(w, k)) for k in UNSETTABLE]
    if [tuple(to), *kept, checked] == [w.to, *(getattr(w, k) for k in UNSETTABLE), w.options]:
        Console(stderr=True).print(f"nothing to change in workflow {w.name!r}", highlight=False)
        return 0
    if checked:
        values["options"] = checked
    dropped = [k for k in UNSETTABLE if k in unset] + ([] if checked else ["options"])
    cfg.update("workflows", w.name, values, unset=dropped)
    cfg.save()
    Console(stderr=True).print(f"changed workflow {w.name!r}", highlight=False)
    return 0


#: what 'workflow edit --unset' drops besides copy's options (a workflow always has destinations)
UNSETTABLE = ("source", "description")


def _unset(w: Workflow, given: Sequence[str]) -> list[str]:
    """The names of ``--unset`` (``on-conflict`` or ``on_conflict``), each one a workflow can hold."""
    names = [u.lstrip("-").replace("-", "_") for u in given]
    for typed, name in zip(given, names, strict=True):
        if name in UNSETTABLE or name in workflows.copy_options(copy_parser()):
            continue
        saved = [k for k in UNSETTABLE if getattr(w, k)] + list(w.options)
        why = "a workflow needs its destinations: change them with --to" if name == "to" else None
        raise errors.UsageError(
            f"--unset {typed}: " + (why or "not an option of castoff copy, nor source or description"),
            hint=f"workflow {w.name!r} has these to unset: {', '.join(saved)}"
            if saved
            else f"workflow {w.name!r} has no source, description or copy option to unset",
        )
    return names


def _edit_in_editor(cfg: ConfigFile) -> int:
    """Edit a copy of the config in $VISUAL/$EDITOR; it replaces the config only once it is valid
    and the editor exited with 0. The draft goes only then, or when it holds no change."""
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    if not secrets.has_terminal() and "EDITOR" not in os.environ and "VISUAL" not in os.environ:
        raise errors.UsageError(
            "nothing to change was given, and there is no terminal for an editor",
            hint="give options (castoff workflow edit NAME --to … --unset OPTION), or set EDITOR",
        )
    console = Console(stderr=True)
    fd, tmp = tempfile.mkstemp(prefix="castoff-config-", suffix=".toml")
    draft = Path(tmp)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(cfg.text if cfg.text else "")
    try:
        while True:
            try:
                done = subprocess.run([*shlex.split(editor), str(draft)], check=False)
            except OSError as exc:
                raise errors.UsageError(
                    f"the editor {editor!r} could not be started ({exc.strerror or exc})",
                    hint="set VISUAL or EDITOR to an editor that is installed",
                ) from None
            if done.returncode != 0:
                problem = f"the editor exited with code {done.returncode}, so nothing was saved"
            else:
                try:
                    write_checked(cfg.path, draft.read_text(encoding="utf-8-sig"), check_option, cfg)
                except ConfigError as exc:
                    problem = exc.message.replace(str(cfg.path), str(draft))
                else:
                    draft.unlink()
                    console.print(f"saved {cfg.path}", markup=False, highlight=False)
                    return 0
            console.print(problem, style="red", markup=False, highlight=False)
            if not _edit_again():
                console.print("the config is unchanged", highlight=False)
                return errors.EXIT_USAGE
    finally:
        if draft.exists() and draft.read_text(encoding="utf-8-sig") == cfg.text:
            draft.unlink()  # no change of the user's to keep
        elif draft.exists():
            console.print(f"your draft is kept in {draft}", markup=False, highlight=False)


def _edit_again() -> bool:
    """Asked on a terminal; unattended, or at the end of input (Ctrl-D), the answer is no."""
    if not secrets.has_terminal():
        return False
    try:
        return input("Edit again? [Y/n] ").strip().lower() in ("", "y", "yes")
    except EOFError:
        return False


def cmd_remove(args: argparse.Namespace) -> int:
    cfg = config_file(args)
    w = _workflow(cfg, args.name)
    cfg.remove("workflows", w.name)
    cfg.save()
    Console(stderr=True).print(f"removed workflow {w.name!r} (its destinations stay saved)", highlight=False)
    return 0


ACTIONS = {"save": cmd_save, "list": cmd_list, "show": cmd_show, "edit": cmd_edit, "remove": cmd_remove}
#: what changes the config: each holds its lock from the first read to the write (an editor too)
CHANGES = ("save", "edit", "remove")


def run_workflow_command(args: argparse.Namespace) -> int:
    name = args.workflow_command or "list"
    with config_locked(args) if name in CHANGES else contextlib.nullcontext():
        return ACTIONS[name](args)


# --- castoff run ------------------------------------------------------------------------------


def _runs(args: argparse.Namespace, name: str) -> dict[tuple[str, ...], Mapping[str, Any]]:
    """The last run of the workflow on each source (``workflows.last_runs``), a killed one found
    interrupted."""
    from castoff.cli import mark_dead_jobs, open_catalog

    catalog = open_catalog(args)
    try:
        mark_dead_jobs(catalog)
        return workflows.last_runs([dict(r) for r in catalog.jobs(1000)], name)
    finally:
        catalog.close()


def _interrupted_job(
    wanted: Sequence[str], runs: Mapping[tuple[str, ...], Mapping[str, Any]]
) -> Mapping[str, Any] | None:
    """The interrupted run to offer: the last run on the source being run (``wanted``: given, or
    the saved one), when it was interrupted; with no source known, the newest interrupted run."""
    if wanted:
        last = runs.get(tuple(wanted))
        return last if last is not None and last["status"] == "interrupted" else None
    return next((j for j in runs.values() if j["status"] == "interrupted"), None)


def _nothing_to_resume(
    w: Workflow, wanted: Sequence[str], runs: Mapping[tuple[str, ...], Mapping[str, Any]]
) -> None:
    """``--resume`` with no interrupted run on this source: said, and the run goes on as a plain
    one; refused when a run on another source (another reader) was interrupted."""
    others = [j for j in runs.values() if j["status"] == "interrupted"]
    here = ", ".join(wanted)
    if not others:
        Console(stderr=True).print(
            f"nothing to resume: the last run of {w.name!r} was not interrupted", highlight=False
        )
        return
    last = runs.get(tuple(wanted))
    state = "is still running" if last is not None and last["status"] == "running" else "was not interrupted"
    why = f"{w.name!r} never ran on it" if last is None else f"its last run ({_describe(last)}) {state}"
    job = others[0]
    theirs = [str(s) for s in json.loads(job["argv"])[3:]]
    raise errors.UsageError(
        f"nothing to resume on {here}: {why}; the run of {w.name!r} on {', '.join(theirs)} was"
        f" interrupted ({_describe(job)})"
        + (f", and {len(others) - 1} more on other sources" if len(others) > 1 else ""),
        hint=f"castoff run {w.name} {shlex.join(theirs)} --resume finishes that one;"
        f" without --resume, castoff run {w.name}{' ' + shlex.join(wanted) if wanted != [w.source] else ''}"
        f" copies {here}",
    )


def _describe(job: Mapping[str, Any]) -> str:
    started = time.strftime("%Y-%m-%d %H:%M", time.localtime(job["started_at"]))
    return f"job {job['id']}, started {started}, reading {', '.join(json.loads(job['sources']))}"


def _choose(args: argparse.Namespace, name: str, job: Mapping[str, Any]) -> str:
    """resume or new, from the flags, a prompt, or an error when unattended."""
    if args.resume:
        return "resume"
    if args.new:
        return "new"
    if not secrets.has_terminal():
        raise errors.UsageError(
            f"the last run of {name!r} was interrupted ({_describe(job)}), and there is no terminal to ask",
            hint=f"castoff run {name} --resume finishes it; --new starts a new job instead",
        )
    Console(stderr=True).print(
        f"The last run of {name!r} was interrupted ({_describe(job)}).", markup=False, highlight=False
    )
    try:
        answer = input("Resume it [R], start a new job [n], or quit [q]? ").strip().lower()
    except EOFError:  # Ctrl-D: quit
        answer = "q"
    if answer in ("", "r", "resume", "y", "yes"):
        return "resume"
    if answer in ("n", "new"):
        return "new"
    raise errors.Interrupted("nothing was run")


def _sources(args: argparse.Namespace, w: Workflow, job: Mapping[str, Any] | None) -> list[str]:
    if job is not None:  # (found for the sources given, if any: the same)
        return [str(s) for s in json.loads(job["argv"])[3:]]
    given = [os.path.abspath(os.path.expanduser(s)) for s in args.sources]
    if given:
        return given
    if w.source:
        return [w.source]
    raise errors.UsageError(f"workflow {w.name!r} has no saved source", hint=f"castoff run {w.name} SOURCE")


def _placement(options: Mapping[str, Any]) -> str:
    """Where a run's options place files, in words: its layout or template, and the shoot when
    the template names it."""
    from castoff.layout.template import layout_template

    template, layout = options.get("template"), options.get("layout")
    words = f"template {template!r}" if template else f"layout {layout or 'none'}"
    try:
        uses_shoot = "shoot" in layout_template(layout, template).tokens
    except errors.UsageError:  # (checked when it was saved and run: not a case that happens)
        uses_shoot = False
    return words + (f", shoot {options.get('shoot')!r}" if uses_shoot else "")


def _changes(
    to: Sequence[str], options: Mapping[str, Any], now_to: Sequence[str], now: Mapping[str, Any]
) -> list[str]:
    """What differs between a job's destinations and options and the workflow's now, in words."""
    out = []
    if _placement(options) != _placement(now):
        out.append(f"{_placement(options)} → {_placement(now)}")
    out += [f"{t} added" for t in now_to if t not in to]
    out += [f"{t} removed" for t in to if t not in now_to]
    placing = ("layout", "template", "shoot")
    other = sorted(k for k in {*options, *now} if k not in placing and options.get(k) != now.get(k))
    if other:
        out.append("options changed: " + ", ".join("--" + k.replace("_", "-") for k in other))
    return out


def _as_it_ran(
    cfg: ConfigFile, w: Workflow, job: Mapping[str, Any], given_now: Mapping[str, Any]
) -> tuple[list[str], dict[str, Any], set[str], str, str]:
    """The destinations and options ``job`` (an interrupted run of ``w``) ran with, as the catalog
    recorded them; those of its options that its command line gave, not the workflow; in words,
    those options and the ones this run's command line changes ("with --chunk-size 8M, given to
    that run"); and what to say of the workflow's edits since. Refused when it cannot be
    finished so (a destination no longer saved, or a job whose options were not recorded, run
    to other destinations than the workflow's now). An option given to that run, or to this one
    (``given_now``, which the job takes), is no edit of the workflow: what the workflow said of
    it then is not known, and is not what the job uses either."""
    ran_to = [d.get("spec") for d in json.loads(job["destinations"])]
    to = [str(t) for t in ran_to] if all(isinstance(t, str) for t in ran_to) else list(w.to)
    options = workflows.recorded(job)
    now = dict(w.options)
    new = f"castoff run {w.name} --new copies with the workflow as it is now"
    for t in to:
        if t.startswith(SAVED_PREFIX) and t[1:] not in cfg.destinations:
            raise errors.UsageError(
                f"job {job['id']} of {w.name!r} cannot be resumed as it ran: its destination {t}"
                " is no longer saved (removed or renamed since)",
                hint=f"save it under that name again (castoff dest add {t[1:]} …, or dest rename)"
                f" and resume; or {new}",
            )
    if options is None:  # a castoff that did not record them: the workflow's, if it still copies there
        if to != list(w.to):
            changed = "; ".join(_changes(to, now, list(w.to), now))
            raise errors.UsageError(
                f"job {job['id']} of {w.name!r} cannot be resumed as it ran: its destinations have"
                f" changed since ({changed}), and the castoff that ran it did not record its layout"
                " and options",
                hint=f"{new}; or put the destinations back (castoff workflow edit {w.name}"
                f" {' '.join('--to ' + shlex.quote(t) for t in to)}) and resume",
            )
        said = " (the castoff that ran it did not record its options: the workflow's are used)"
        return to, now, set(), said, ""
    given = workflows.recorded_given(job) or set()  # (None: a castoff that did not record them)
    as_now = workflows.as_run(now)
    not_saved = given | set(given_now)
    saved_then = {k: v for k, v in options.items() if k not in not_saved}
    changes = _changes(
        to, {**saved_then, **{k: v for k, v in as_now.items() if k in not_saved}}, list(w.to), as_now
    )
    kept = {k: options[k] for k in sorted(given - set(given_now)) if k in options}
    now_given = {k: v for k, v in workflows.as_run(given_now).items() if options.get(k) != v}
    words = [f"with {_argv(kept)}, given to that run"] if kept else []
    words += [f"{_argv(now_given)} as given now"] if now_given else []
    ran_with = f" ({'; '.join(words)})" if words else ""
    options = {**options, **{k: v for k, v in now.items() if k in workflows.SHOWN_ONLY}}  # shown as now
    said = (
        f"; the workflow has changed since ({'; '.join(changes)}): the next run without --resume"
        " uses it as it is now"
        if changes
        else ""
    )
    return to, options, given, ran_with, said


def _argv(options: Mapping[str, Any]) -> str:
    """Copy options as they are typed (``--chunk-size 8M``)."""
    return shlex.join(workflows.option_argv(copy_parser(), options))


def _placed_anew(
    w: Workflow, before: Mapping[str, Any], sources: Sequence[str], options: Mapping[str, Any]
) -> list[str]:
    """A note when the run places files otherwise than the workflow's last run on these sources
    (``before``): its layout or template edited since, the files land again, in the new places."""
    ran = workflows.recorded(before)
    if ran is None or _placement(ran) == _placement(options):
        return []
    return [
        f"the layout of {w.name!r} differs from its last run on {', '.join(sources)} (job {before['id']}"
        f" placed files by {_placement(ran)}; this run by {_placement(options)}): every file is placed anew"
        " at each destination, beside the copies placed then"
    ]


def _global_argv(args: argparse.Namespace) -> list[str]:
    argv = ["--config", str(config_path(args))]
    if getattr(args, "state_dir", None):
        argv += ["--state-dir", args.state_dir]
    if getattr(args, "debug", False):
        argv.append("--debug")
    return argv


def cmd_run(args: argparse.Namespace) -> int:
    from castoff import cli

    cfg = config_file(args, warn=False)  # its own dangling reference is the error below
    w = _workflow(cfg, args.name)
    cfg.check_workflow(w.name)
    given = [os.path.abspath(os.path.expanduser(s)) for s in args.sources]
    wanted = given or ([w.source] if w.source else [])
    runs = _runs(args, w.name)
    interrupted = _interrupted_job(wanted, runs)
    if args.resume and interrupted is None:
        _nothing_to_resume(w, wanted, runs)
    resumed = (
        interrupted if interrupted is not None and _choose(args, w.name, interrupted) == "resume" else None
    )
    sources = _sources(args, w, resumed)
    typed = workflows.given_options(args, copy_parser())  # the options on this command line
    to, saved, given_then, ran_with, said = (
        _as_it_ran(cfg, w, resumed, typed)
        if resumed is not None
        else (list(w.to), dict(w.options), set[str](), "", "")
    )
    options = workflows.merged_options(copy_parser(), saved, typed)
    before = runs.get(tuple(sources)) if resumed is None else None
    notes = _placed_anew(w, before, sources, options) if before is not None else []
    copy_argv = ["copy", *sources]
    for t in to:
        copy_argv += ["--to", t]
    copy_argv += workflows.option_argv(copy_parser(), options)
    parsed = cli.build_parser().parse_args([*_global_argv(args), *copy_argv])
    if resumed is not None:
        Console(stderr=True).print(
            f"resuming {w.name!r} ({_describe(resumed)}) as it ran{ran_with}: what is verified is skipped,"
            f" unfinished uploads continue from their last part{said}",
            markup=False,
            highlight=False,
        )
    ran = workflows.as_run(options)
    return cli.cmd_copy(
        parsed,
        [*workflows.run_argv(w.name), *sources],
        workflow=ran,
        given=sorted(k for k in given_then | set(typed) if k in ran),  # (a resumed job's, and this run's)
        notes=notes,
    )
