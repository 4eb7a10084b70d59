"""What the engine tells the outside world while a job runs: one small event type, one sink.

The progress display, the ``--json`` stream and the tests all listen here; none of them reach into
the engine's state.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Event:
    kind: str  # job-start, plan, file-done, progress, log, released, job-end
    data: Mapping[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=time.time)


EventSink = Callable[[Event], None]


def null_sink(event: Event) -> None:
    return None
