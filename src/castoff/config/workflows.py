"""Workflow options are ``castoff copy`` options, by name: checked against the copy parser, turned
back into copy arguments, so every option copy gains works in workflows with no code here.

Also: which job a workflow ran last, and whether to resume it.
"""

from __future__ import annotations

import argparse
import copy
import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

#: copy's arguments that a workflow holds elsewhere (source, to) or that are not copy's own
NOT_OPTIONS = frozenset({"help", "sources", "to", "state_dir", "debug", "config"})


def copy_options(copy_parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """copy's options by their dest name (``on_conflict``, ``include``, ``verify_download``…)."""
    return {
        a.dest: a
        for a in copy_parser._actions  # argparse has no public list of a parser's actions
        if a.option_strings and a.dest not in NOT_OPTIONS and a.dest != argparse.SUPPRESS
    }


def add_copy_options(
    target: argparse.ArgumentParser,
    copy_parser: argparse.ArgumentParser,
    title: str,
    only: Collection[str] | None = None,
) -> None:
    """Give ``target`` copy's options (or ``only`` those), defaulting to 'not given' so only what
    the user typed lands in the namespace."""
    group = target.add_argument_group(title)
    # copy's options that exclude each other (--quiet, --json) do here too: said by this command
    twins: dict[int, argparse._MutuallyExclusiveGroup] = {}
    for name, action in copy_options(copy_parser).items():
        if only is not None and name not in only:
            continue
        clone = copy.copy(action)
        clone.default = argparse.SUPPRESS
        clone.required = False
        into: argparse._ActionsContainer = group
        for g in copy_parser._mutually_exclusive_groups:
            if action in g._group_actions:
                if id(g) not in twins:
                    twins[id(g)] = group.add_mutually_exclusive_group()
                into = twins[id(g)]
        into._add_action(clone)  # the way argparse's own parents= shares actions


def merged_options(
    copy_parser: argparse.ArgumentParser, saved: Mapping[str, Any], given: Mapping[str, Any]
) -> dict[str, Any]:
    """The options ``given`` now over the ``saved`` ones: one given replaces the saved option of
    that name, and the saved options it excludes (``--json`` given, ``quiet`` saved: the JSON)."""
    dropped: set[str] = set()
    for g in copy_parser._mutually_exclusive_groups:
        names = {a.dest for a in g._group_actions}
        if names & set(given):
            dropped |= names - set(given)
    return {**{k: v for k, v in saved.items() if k not in dropped}, **given}


def given_options(args: argparse.Namespace, copy_parser: argparse.ArgumentParser) -> dict[str, Any]:
    known = copy_options(copy_parser)
    return {k: v for k, v in vars(args).items() if k in known}


def check_option(copy_parser: argparse.ArgumentParser, name: str, value: object) -> str | None:
    """What is wrong with workflow option ``name = value``; None when copy would take it."""
    action = copy_options(copy_parser).get(name)
    if action is None:
        return "not an option of castoff copy ('castoff copy --help' lists them)"
    if action.nargs == 0:
        return None if isinstance(value, bool) else "must be true or false"
    if isinstance(action, argparse._AppendAction) and not isinstance(value, list):
        return 'must be a list, like ["*.CR3", "*.MP4"]'
    return _check_values(action, value if isinstance(value, list) else [value])


def _check_values(action: argparse.Action, values: Sequence[object]) -> str | None:
    for v in values:
        if isinstance(v, bool) or not isinstance(v, str | int | float):
            return "must be a string or a number"
        if action.choices is not None and v not in action.choices:
            return f"must be one of {', '.join(map(str, action.choices))}"
        if callable(action.type):
            try:
                action.type(str(v))
            except (TypeError, ValueError) as exc:
                return f"bad value {v!r} ({exc})"
    return None


def option_argv(copy_parser: argparse.ArgumentParser, options: Mapping[str, Any]) -> list[str]:
    """The copy arguments that set ``options`` (already checked)."""
    known = copy_options(copy_parser)
    argv: list[str] = []
    for name, value in options.items():
        action = known[name]
        flag = max(action.option_strings, key=len)
        if action.nargs == 0:
            if value == action.const:
                argv.append(flag)
            continue
        for v in value if isinstance(value, list) else [value]:
            argv += [flag, str(v)]
    return argv


def options_for_toml(options: Mapping[str, Any]) -> dict[str, Any]:
    """Namespace values as TOML can hold them (no None, lists as lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in options.items() if v is not None}


# --- runs of a workflow in the catalog --------------------------------------------------------


def run_argv(name: str) -> list[str]:
    """How a workflow's job is recorded in the catalog (argv[1:3]): the link from jobs to workflows."""
    return ["castoff", "run", name]


def _run_argv_of(row: Mapping[str, Any]) -> list[str]:
    try:
        argv = json.loads(row["argv"])
    except (TypeError, ValueError):
        return []
    return [str(a) for a in argv] if isinstance(argv, list) else []


def last_job(rows: Iterable[Mapping[str, Any]], name: str) -> Mapping[str, Any] | None:
    """The newest job ``castoff run NAME`` started, from the catalog's job rows (newest first)."""
    for row in rows:
        if _run_argv_of(row)[:3] == run_argv(name):
            return row
    return None


def last_runs(rows: Iterable[Mapping[str, Any]], name: str) -> dict[tuple[str, ...], Mapping[str, Any]]:
    """The newest job ``castoff run NAME`` started on each source (the sources as run, which
    follow ``run_argv`` in the job's argv), newest first: a workflow run on two readers at once
    has a last run on each."""
    out: dict[tuple[str, ...], Mapping[str, Any]] = {}
    for row in rows:
        argv = _run_argv_of(row)
        if argv[:3] == run_argv(name):
            out.setdefault(tuple(argv[3:]), row)
    return out


#: copy's options that say how a run is shown, not what it does: a job resumed as it ran takes
#: them from the workflow as it is now and the command that resumes it
SHOWN_ONLY = frozenset({"quiet", "json"})


def as_run(options: Mapping[str, Any]) -> dict[str, Any]:
    """The options a workflow's job ran with, as the catalog records them with the job
    (``recorded``): without the ones that only say how it was shown."""
    return {k: v for k, v in options_for_toml(options).items() if k not in SHOWN_ONLY}


def recorded(job: Mapping[str, Any]) -> dict[str, Any] | None:
    """The options a workflow's job ran with (``as_run``), or None for a job of a castoff that did
    not record them."""
    try:
        found = json.loads(job["options"]).get("workflow")
    except (TypeError, ValueError, AttributeError):
        return None
    return dict(found) if isinstance(found, dict) else None


def recorded_given(job: Mapping[str, Any]) -> set[str] | None:
    """The options of ``recorded`` that came from the command line of the run (or of a run it
    resumed), not from the workflow's saved ones; None for a job of a castoff that did not say."""
    try:
        found = json.loads(job["options"]).get("workflow_given")
    except (TypeError, ValueError, AttributeError):
        return None
    return {str(k) for k in found} if isinstance(found, list) else None


def subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    """The parser of the sub-command ``name`` of ``parser``."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found = action.choices.get(name)
            if isinstance(found, argparse.ArgumentParser):
                return found
    raise KeyError(name)
