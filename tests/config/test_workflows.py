"""Workflow options are copy's options by name: every one of them round-trips through the config."""

from __future__ import annotations

import argparse

import pytest

from castoff.cli import parallel_count
from castoff.commands.common import check_option, copy_parser
from castoff.config import workflows


def sample_value(action: argparse.Action) -> object:
    """A value copy accepts for ``action`` that is not its default."""
    if action.nargs == 0:
        return action.const
    if action.choices:
        choices = [c for c in action.choices if c != action.default]
        return choices[0]
    if action.type in (int, parallel_count):
        return 3
    value = {"memory": "300M", "chunk_size": "8M", "part_size": "16M", "bwlimit": "5M", "sse": "AES256"}.get(
        action.dest, "x-value"
    )
    return [value, "second"] if isinstance(action, argparse._AppendAction) else value


OPTIONS = sorted(workflows.copy_options(copy_parser()))


def test_copy_has_options_and_workflows_take_them_all() -> None:
    assert {"on_conflict", "include", "exclude", "rehash", "memory", "region", "verify_download"} <= set(
        OPTIONS
    )
    assert not set(OPTIONS) & workflows.NOT_OPTIONS


@pytest.mark.parametrize("name", OPTIONS)
def test_every_copy_option_round_trips(name: str) -> None:
    parser = copy_parser()
    action = workflows.copy_options(parser)[name]
    value = sample_value(action)
    assert check_option(name, value) is None
    argv = workflows.option_argv(parser, {name: value})
    parsed = parser.parse_args(["SOURCE", "--to", "DEST", *argv])
    assert getattr(parsed, name) == value


def test_bad_values_are_refused_with_a_reason() -> None:
    assert check_option("on_conflict", "clobber") == "must be one of rename, skip, overwrite, fail"
    assert check_option("max_parallel", "many") is not None
    assert check_option("quiet", 1) == "must be true or false"
    assert check_option("exclude", "*.THM") is not None
    assert check_option("sources", ["x"]) is not None  # held as 'source', not as an option


def test_last_job_is_found_by_its_run_argv() -> None:
    rows = [
        {"id": "3", "argv": '["castoff", "copy", "x"]'},
        {"id": "2", "argv": '["castoff", "run", "shoot", "/card"]'},
        {"id": "1", "argv": '["castoff", "run", "shoot"]'},
    ]
    found = workflows.last_job(rows, "shoot")
    assert found is not None and found["id"] == "2"
    assert workflows.last_job(rows, "other") is None


def test_a_saved_max_parallel_below_1_is_refused_as_the_flag_is() -> None:
    for value in (0, -3, "0"):
        assert "must be 1 or more" in str(check_option("max_parallel", value))
