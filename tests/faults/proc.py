"""castoff as a user runs it, in a subprocess: the command line, its environment, signals."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

CASTOFF = [sys.executable, "-m", "castoff"]


def env_with(**extra: str) -> dict[str, str]:
    """This environment without AWS settings or proxies, plus ``extra``; castoff from this tree."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and "proxy" not in k.lower()}
    src = str(Path(__file__).resolve().parents[2] / "src")
    env["PYTHONPATH"] = os.pathsep.join([src, *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])])
    env.setdefault("AWS_CONFIG_FILE", os.devnull)
    env.setdefault("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    env.update(extra)
    return env


def castoff(
    *args: str, state: Path, env: Mapping[str, str] | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CASTOFF, "--state-dir", str(state), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=dict(env or env_with()),
    )


def start(args: Sequence[str], *, state: Path, env: Mapping[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*CASTOFF, "--state-dir", str(state), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(env),
    )


def s3_url(bucket: str, prefix: str, endpoint: str, **options: str) -> str:
    opts = {"endpoint": endpoint, "region": "us-east-1", "addressing": "path", **options}
    return f"s3://{bucket}/{prefix}?" + "&".join(f"{k}={v}" for k, v in opts.items())


def keys(access: str, secret: str) -> dict[str, str]:
    return env_with(AWS_ACCESS_KEY_ID=access, AWS_SECRET_ACCESS_KEY=secret)
