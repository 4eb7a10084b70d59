"""Bucket and container name rules per provider: each rule, the words of its message, legacy warnings."""

from __future__ import annotations

import pytest

from castoff.config.names import RULES, check_name

VALID = [
    ("aws", "my-archive.2026"),
    ("aws", "abc"),
    ("aws", "a" * 63),
    ("wasabi", "raw-shoots"),
    ("minio", "castoff-test-0123"),
    ("b2", "Studio-Raw-2026"),
    ("b2", "a" * 50),
    ("gcs", "my_bucket-1"),
    ("gcs", ".".join(["a" * 63] * 3)),  # 191 characters with dots
    ("r2", "raw-2026"),
    ("spaces", "nyc-raw"),
    ("azure", "photos-2026"),
    ("azure", "$root"),
]

BROKEN = [
    # (provider, name, words of the broken rule)
    ("aws", "ab", "between 3 and 63 characters"),
    ("aws", "a" * 64, "between 3 and 63 characters"),
    ("aws", "Raw", "only lowercase letters"),
    ("aws", "-raw", "begin and end with a letter or a digit"),
    ("aws", "raw-", "begin and end with a letter or a digit"),
    ("aws", "raw..2026", "two adjacent dots"),
    ("aws", "raw.-2026", "dot next to a dash"),
    ("aws", "raw-.2026", "dot next to a dash"),
    ("aws", "192.168.5.4", "IP address"),
    ("aws", "xn--raw", "not start with 'xn--'"),
    ("aws", "sthree-raw", "'sthree-'"),
    ("aws", "amzn-s3-demo-raw", "'amzn-s3-demo-'"),
    ("aws", "raw-s3alias", "not end with '-s3alias'"),
    ("aws", "raw--ol-s3", "--ol-s3"),
    ("aws", "raw.mrap", ".mrap"),
    ("aws", "raw--x-s3", "--x-s3"),
    ("wasabi", "Raw_Shoots", "only lowercase letters"),
    ("b2", "short", "between 6 and 50 characters"),
    ("b2", "a" * 51, "between 6 and 50 characters"),
    ("b2", "raw_shoots", "only letters, digits and dashes"),
    ("b2", "b2-raw-shoots", "not start with 'b2-'"),
    ("gcs", "ab", "between 3 and 63"),
    ("gcs", "a" * 64, "up to 222 with dots"),
    ("gcs", ".".join(["a" * 64, "b"]), "each dot-separated part at most 63"),
    ("gcs", "goog-raw", "not start with 'goog'"),
    ("gcs", "my-google-raw", '"google"'),
    ("gcs", "my-g00gle-raw", '"google"'),
    ("gcs", "Raw", "only lowercase letters"),
    ("gcs", "10.1.2.3", "IP address"),
    ("azure", "ab", "between 3 and 63"),
    ("azure", "Photos", "only lowercase letters"),
    ("azure", "pho--tos", "two dashes in a row"),
    ("azure", "-photos", "begin and end with a letter or a digit"),
    ("azure", "$logs2", "only lowercase letters"),
    ("r2", "raw.shoots", "only lowercase letters, digits and dashes"),
    ("spaces", "Raw", "only lowercase letters, digits and dashes"),
]


@pytest.mark.parametrize(("provider", "name"), VALID)
def test_valid_names_pass(provider: str, name: str) -> None:
    verdict = check_name(name, provider, region="eu-west-1")
    assert verdict.ok and not verdict.warnings, verdict


@pytest.mark.parametrize(("provider", "name", "words"), BROKEN)
def test_each_broken_rule_is_named(provider: str, name: str, words: str) -> None:
    verdict = check_name(name, provider, region="eu-west-1")
    assert not verdict.ok
    assert any(words in e for e in verdict.errors), verdict.errors
    assert verdict.rules == RULES[provider].source


@pytest.mark.parametrize("name", ["My_Old_Bucket", "old..bucket", "x" * 200])
def test_legacy_us_east_1_names_only_warn(name: str) -> None:
    for region in ("us-east-1", None):
        verdict = check_name(name, "aws", region=region)
        assert verdict.ok
        assert verdict.warnings and "legacy us-east-1 rules" in verdict.warnings[0]
    assert not check_name(name, "aws", region="eu-west-1").ok


def test_legacy_rules_do_not_excuse_everything() -> None:
    assert not check_name("has space", "aws", region="us-east-1").ok
    assert not check_name("x" * 256, "aws", region="us-east-1").ok


def test_unknown_servers_get_the_aws_rules_as_warnings() -> None:
    verdict = check_name("Local_Bucket", "other")
    assert verdict.ok
    assert verdict.warnings and "only lowercase letters" in verdict.warnings[0]
