"""--to resolution checks that need no request: plain HTTP only to this computer, CA bundles, names."""

from __future__ import annotations

from pathlib import Path

import pytest

from castoff import errors
from castoff.config.resolve import Resolver, check_transport, is_loopback
from castoff.destinations.s3 import S3Options


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("10.0.0.5", False),
        ("192.168.1.2", False),
        ("nas.local", False),
        ("localhost.evil.example", False),
        (None, False),
    ],
)
def test_loopback(host: str | None, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_plain_http_elsewhere_is_refused_unless_asked_for_and_then_said() -> None:
    said: list[str] = []
    far = S3Options("raw", endpoint_url="http://10.0.0.5:9000")
    with pytest.raises(errors.UsageError, match="unencrypted"):
        check_transport(far, insecure_http=False, label="@nas", warn=said.append)
    check_transport(far, insecure_http=True, label="@nas", warn=said.append)
    assert said == [
        "@nas: the transfer to http://10.0.0.5:9000 is UNENCRYPTED (plain HTTP, allowed by --insecure-http)"
    ]
    check_transport(
        S3Options("raw", endpoint_url="http://127.0.0.1:9000"),
        insecure_http=False,
        label="x",
        warn=said.append,
    )
    check_transport(
        S3Options("raw", endpoint_url="https://s3.example.com"),
        insecure_http=False,
        label="x",
        warn=said.append,
    )
    assert len(said) == 1


def test_a_missing_ca_bundle_is_refused(tmp_path: Path) -> None:
    options = S3Options("raw", endpoint_url="https://s3.example.com", ca_bundle=str(tmp_path / "none.pem"))
    with pytest.raises(errors.UsageError, match="CA bundle"):
        check_transport(options, insecure_http=False, label="x", warn=print)


def test_ad_hoc_urls_get_the_name_rules_too(tmp_path: Path) -> None:
    resolver = Resolver(tmp_path / "config.toml")
    with pytest.raises(errors.UsageError, match=r"bad bucket name 'b2-raw-shoots' \(Backblaze B2"):
        resolver.open("s3://b2-raw-shoots/?provider=b2&region=us-west-004")
    with pytest.raises(errors.UsageError, match="no saved destination 'ssd'"):
        resolver.open("@ssd")
    assert not (tmp_path / "config.toml").exists()
