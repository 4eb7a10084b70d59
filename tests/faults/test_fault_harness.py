"""The fault suite's own deadline: a castoff that hangs fails its test at once, saying where it
waits (py-spy) and whether its S3 server still answers (with rclone's goroutines)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from faults.proc import finish
from servers import RcloneServer

STUCK = """
import time
def waiting_for_a_commit_that_never_comes():
    time.sleep(600)
waiting_for_a_commit_that_never_comes()
"""


def test_a_hung_process_fails_the_test_with_its_stack_and_the_servers_state() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", STUCK], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    with RcloneServer(debug=True) as rclone, pytest.raises(pytest.fail.Exception) as failed:
        finish(proc, timeout=1.0, servers=[rclone])
    report = str(failed.value)
    assert "did not end within 1 s" in report
    assert "waiting_for_a_commit_that_never_comes" in report  # py-spy's dump of the process
    assert f"127.0.0.1:{rclone.port}: HTTP " in report  # the server answered the probe
    assert "goroutine profile" in report  # and said where its goroutines were
    assert proc.poll() is not None  # killed, not left behind
