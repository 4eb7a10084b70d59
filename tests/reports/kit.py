"""Helpers shared by the report tests (fixtures are in conftest.py)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
ASCMHL_VENV = REPO / ".venv-ascmhl"
XSD_DIR = REPO / "src" / "castoff" / "reports" / "ascmhl-xsd"
XSS = "<img src=x onerror=alert(1)>.jpg"

Cli = Callable[..., subprocess.CompletedProcess[str]]


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def reports(state: Path, suffix: str = ".json") -> list[Path]:
    return sorted((state / "reports").glob(f"*{suffix}"))


def last_report(state: Path) -> dict[str, Any]:
    return json.loads(reports(state)[-1].read_text(encoding="utf-8"))
