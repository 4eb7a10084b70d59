"""Shared fixtures: sample trees, a job runner over the engine, and (from server_fixtures) real S3 servers."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(__file__))


from engine_runner import Runner, write

__all__ = ["Runner", "write"]

pytest_plugins = ["server_fixtures", "faults.plugin"]


@pytest.fixture(autouse=True)
def fsyncs_count_as_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    """tmp_path is on this machine's disk, whose fsyncs take from 0.1 to a few ms: an in-process
    engine test would take the slow-device path (``LocalDestination.slow_sync``) or not by
    chance. Its own tests (tests/engine/test_slow_sync.py) turn it back on."""
    from castoff.destinations import local

    monkeypatch.setattr(local, "SLOW_SYNC", float("inf"))


@pytest.fixture
def make_tree(tmp_path: Path) -> Callable[[dict[str, bytes]], Path]:
    def make(files: dict[str, bytes], name: str = "card") -> Path:
        root = tmp_path / "src" / name
        root.mkdir(parents=True, exist_ok=True)
        for rel, data in files.items():
            write(root / rel, data)
        return root

    return make


@pytest.fixture
def runner(tmp_path: Path) -> Runner:
    return Runner(tmp_path / "state")
