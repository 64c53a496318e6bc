"""Reading the DSP's rate-limit and retry headers. A malformed value reads as absent."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from `Retry-After`: delay-seconds or an HTTP date (past dates read 0)."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    seconds = parse_seconds(text)
    if seconds is not None:
        return seconds
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def parse_seconds(value: str | None) -> float | None:
    """A non-negative, finite number of seconds, possibly fractional."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return seconds


def parse_count(value: str | None) -> int | None:
    """A non-negative whole number; `"12.0"` is accepted, `"12.5"` is not."""
    seconds = parse_seconds(value)
    if seconds is None or not seconds.is_integer():
        return None
    return int(seconds)
