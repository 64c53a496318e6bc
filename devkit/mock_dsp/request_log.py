"""Every request that reached the API, for tests and the `/_mock/` endpoints."""

from __future__ import annotations

import bisect
import hashlib
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from devkit.mock_dsp.entities import iso


def token_id(token: str) -> str:
    """A stand-in for the token in the log, so the log never holds a secret."""
    return hashlib.sha256(token.encode()).hexdigest()[:12]


def window_key(seat: str | None, token_key: str) -> str:
    """The rolling window a request counts toward: its seat's, whichever of the seat's
    tokens it carries (even an expired one), or an unknown token's own (by `token_id`)."""
    return f"seat:{seat}" if seat is not None else f"token:{token_key}"


@dataclass(frozen=True)
class RequestRecord:
    at: float
    """`time.monotonic()` when the request reached the API."""
    wall_time: datetime
    method: str
    path: str
    status: int
    token_id: str
    token_valid: bool
    idempotency_key: str | None
    body: Any
    fault: str | None
    replayed: bool
    created_id: str | None
    query: str = ""
    """The raw query string (a version-2 search's `external_id=...`), without the `?`."""
    seat: str | None = None
    """The seat of the request's token (valid, expired or revoked); None for an unknown one."""
    token_expired: bool = False
    """The answer was `401 token_expired`."""
    window: str = ""
    """The limiter's key of the window the request counted toward (`window_key`)."""

    @property
    def entity_type(self) -> str | None:
        parts = self.path.strip("/").split("/")
        return parts[1] if len(parts) >= 2 and parts[0] == "v1" else None

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "wall_time": iso(self.wall_time),
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "token_id": self.token_id,
            "token_valid": self.token_valid,
            "idempotency_key": self.idempotency_key,
            "body": self.body,
            "fault": self.fault,
            "replayed": self.replayed,
            "created_id": self.created_id,
            "query": self.query,
            "seat": self.seat,
            "token_expired": self.token_expired,
        }


def max_in_window(times: list[float], window: float) -> int:
    """The most of `times` inside any rolling window: the requests in the window ending at
    `t` are those at `t - window < s <= t`."""
    ordered = sorted(times)
    best = 0
    for end, moment in enumerate(ordered):
        start = bisect.bisect_right(ordered, moment - window)
        best = max(best, end + 1 - start)
    return best


class RequestLog:
    def __init__(self) -> None:
        self._records: list[RequestRecord] = []

    def append(self, record: RequestRecord) -> None:
        self._records.append(record)

    def clear(self) -> None:
        self._records.clear()

    @property
    def records(self) -> list[RequestRecord]:
        return list(self._records)

    def max_in_window(
        self, window: float, token: str | None = None, seat: str | None = None
    ) -> int:
        """The most requests counted toward one window (a seat's, or an unknown token's) in
        any rolling `window` seconds; only those of `token` or of `seat` if given."""
        by_window: dict[str, list[float]] = {}
        wanted = token_id(token) if token is not None else None
        for record in self._records:
            if (wanted is None or record.token_id == wanted) and (
                seat is None or record.seat == seat
            ):
                by_window.setdefault(record.window, []).append(record.at)
        return max((max_in_window(times, window) for times in by_window.values()), default=0)

    def count_status(self, status: int) -> int:
        return sum(1 for r in self._records if r.status == status)

    def seat_stats(self, seat: str, window: float) -> dict[str, Any]:
        records = [r for r in self._records if r.seat == seat]
        return {
            "total": len(records),
            "rate_limited": sum(1 for r in records if r.status == 429),
            "unauthorized": sum(1 for r in records if r.status == 401 and not r.token_expired),
            "token_expired": sum(1 for r in records if r.token_expired),
            "max_in_window": self.max_in_window(window, seat=seat),
        }

    def stats(self, window: float) -> dict[str, Any]:
        by_endpoint = Counter(f"{r.method} {r.entity_type or r.path}" for r in self._records)
        return {
            "total": len(self._records),
            "rate_limited": self.count_status(429),
            "unauthorized": self.count_status(401),
            "max_in_window": self.max_in_window(window),
            "window": window,
            "replayed": sum(1 for r in self._records if r.replayed),
            "created": sum(1 for r in self._records if r.created_id),
            "by_status": {
                str(k): v for k, v in sorted(Counter(r.status for r in self._records).items())
            },
            "by_endpoint": dict(sorted(by_endpoint.items())),
            "faults": dict(Counter(r.fault for r in self._records if r.fault)),
        }
