"""A strict rolling-window limiter: at most `limit` requests per key in ANY `window` seconds.

Every hit is recorded, refused ones too, so a client that keeps knocking while refused
keeps its window full. Times are `time.monotonic()` values handed in by the caller."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class LimitDecision:
    allowed: bool
    limit: int
    remaining: int
    reset_after: float
    """Seconds until the oldest request in the window leaves it."""
    retry_after: int | None
    """Whole seconds (rounded up) until a request would be allowed again; set when refused."""

    def headers(self) -> dict[str, str]:
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": f"{self.reset_after:.3f}",
        }
        if self.retry_after is not None:
            headers["Retry-After"] = str(self.retry_after)
        return headers


class RollingWindowLimiter:
    def __init__(self) -> None:
        self._hits: dict[str, deque[float]] = {}

    def _window(self, key: str, now: float, window: float) -> deque[float]:
        hits = self._hits.setdefault(key, deque())
        while hits and hits[0] <= now - window:
            hits.popleft()
        return hits

    def hit(self, key: str, now: float, limit: int, window: float) -> LimitDecision:
        """Record one request at `now` and say whether it is within the limit."""
        hits = self._window(key, now, window)
        allowed = len(hits) < limit
        hits.append(now)
        retry_after = None
        if not allowed:
            # The next request fits once all but `limit - 1` of these hits have left.
            frees_at = hits[len(hits) - limit] + window
            retry_after = max(1, math.ceil(frees_at - now))
        return LimitDecision(
            allowed=allowed,
            limit=limit,
            remaining=max(0, limit - len(hits)),
            reset_after=hits[0] + window - now,
            retry_after=retry_after,
        )

    def add_phantoms(self, key: str, count: int, now: float, window: float) -> int:
        """Fill `key`'s window with `count` requests made now by somebody else; returns how
        many requests the window holds."""
        hits = self._window(key, now, window)
        hits.extend([now] * count)
        return len(hits)

    def in_window(self, key: str, now: float, window: float) -> int:
        return len(self._window(key, now, window))

    def clear(self) -> None:
        self._hits.clear()
