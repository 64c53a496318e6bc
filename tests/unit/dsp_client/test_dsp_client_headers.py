from datetime import UTC, datetime

import pytest

from dsp_integration.dsp_client.headers import parse_count, parse_retry_after, parse_seconds

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("3", 3.0),
        (" 12 ", 12.0),
        ("0", 0.0),
        ("1.5", 1.5),
        ("Sun, 01 Mar 2026 12:00:30 GMT", 30.0),
        ("Sun, 01 Mar 2026 11:59:00 GMT", 0.0),
        (None, None),
        ("", None),
        ("soon", None),
        ("-1", None),
        ("nan", None),
        ("inf", None),
        ("3, 4", None),
    ],
)
def test_retry_after(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == seconds


def test_retry_after_date_defaults_to_the_clock() -> None:
    assert parse_retry_after("Thu, 01 Jan 1970 00:00:00 GMT") == 0.0
    far = parse_retry_after("Fri, 01 Jan 2100 00:00:00 GMT")
    assert far is not None and far > 365 * 24 * 3600


@pytest.mark.parametrize(
    ("value", "count"),
    [("40", 40), ("0", 0), ("12.0", 12), ("12.5", None), ("-1", None), ("x", None), (None, None)],
)
def test_count(value: str | None, count: int | None) -> None:
    assert parse_count(value) == count


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("3.25", 3.25), ("0", 0.0), ("60", 60.0), ("-0.5", None), ("", None), ("infinity", None)],
)
def test_seconds(value: str, seconds: float | None) -> None:
    assert parse_seconds(value) == seconds
