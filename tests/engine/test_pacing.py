"""Bandwidth pacing: the token bucket's arithmetic, its behaviour under threads, and
``--bwlimit`` parsing."""

from __future__ import annotations

import threading
import time

import pytest

from castoff import errors
from castoff.engine.pacing import RateLimiter, parse_rate, parse_size

KiB, MiB, GiB = 1024, 1024**2, 1024**3


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("0", 0),
        ("4096", 4096),
        ("512K", 512 * KiB),
        ("512k", 512 * KiB),
        ("64M", 64 * MiB),
        ("64MiB", 64 * MiB),
        ("64 MiB", 64 * MiB),
        ("1.5GiB", 3 * GiB // 2),
        ("1.5K", 1536),
        ("8MB", 8_000_000),
        ("1kB", 1000),
        ("2T", 2 * 1024**4),
        (" 7b ", 7),
    ],
)
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "abc", "-1", "5X", "1.5", "0.1K", "M", "1..2M"])
def test_parse_size_refuses(text: str) -> None:
    with pytest.raises(errors.UsageError):
        parse_size(text)


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("10M", 10 * MiB),
        ("512K", 512 * KiB),
        ("1.5MiB/s", 3 * MiB // 2),
        ("10MB/s", 10_000_000),
        ("100", 100),
        ("0.5K/s", 512),
        ("0", None),
        ("0.5", 1),  # the slowest limit, never "no limit" (it was: int(0.5) is 0)
        ("off", None),
        ("", None),
    ],
)
def test_parse_rate(text: str, rate: int | None) -> None:
    assert parse_rate(text) == rate


def test_parse_rate_refuses_nonsense() -> None:
    with pytest.raises(errors.UsageError, match="bandwidth"):
        parse_rate("fast")


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_bucket_arithmetic() -> None:
    clock = FakeClock()
    limiter = RateLimiter(100, burst=100, clock=clock)
    assert limiter.reserve(100) == 0.0  # the first second's burst
    assert limiter.reserve(50) == pytest.approx(0.5)  # in debt: wait for it
    assert limiter.reserve(50) == pytest.approx(1.0)  # callers queue behind each other
    clock.now += 2.0
    assert limiter.reserve(0) == 0.0
    assert limiter.reserve(100) == pytest.approx(0.0)
    clock.now += 10.0  # a quiet spell refills only up to the burst
    assert limiter.reserve(300) == pytest.approx(2.0)


def test_a_part_larger_than_the_burst_waits_its_time() -> None:
    clock = FakeClock()
    limiter = RateLimiter(1000, burst=10, clock=clock)
    assert limiter.reserve(5010) == pytest.approx(5.0)


def test_threads_share_the_rate() -> None:
    rate = 4 * MiB
    limiter = RateLimiter(rate, burst=64 * KiB)
    chunk, per_thread, threads = 32 * KiB, 8, 4
    started = time.monotonic()

    def send() -> None:
        for _ in range(per_thread):
            limiter.take(chunk)

    workers = [threading.Thread(target=send) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.monotonic() - started
    expected = (chunk * per_thread * threads - 64 * KiB) / rate  # 0.234 s
    assert elapsed >= expected * 0.95
    assert elapsed < expected + 2.0  # generous: the machine may be busy


def test_cancel_interrupts_a_wait() -> None:
    limiter = RateLimiter(10, burst=1)
    cancel = threading.Event()
    threading.Timer(0.05, cancel.set).start()
    started = time.monotonic()
    with pytest.raises(errors.Interrupted):
        limiter.take(1000, cancel=cancel)  # would be 100 s
    assert time.monotonic() - started < 5


def test_rate_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        RateLimiter(0)
