"""What the mock DSP saw during a run, measured against the limit."""

from __future__ import annotations

import bisect
import math
from collections import defaultdict
from dataclasses import dataclass, field
from statistics import mean

from devkit.mock_dsp.request_log import RequestRecord, max_in_window


@dataclass
class TypeCounts:
    entities: int
    requests: int
    posts: int
    polls: int

    @property
    def per_entity(self) -> float:
        return self.requests / self.entities if self.entities else 0.0


@dataclass
class RunMetrics:
    limit: int
    window: float
    requests: int
    rate_limited: int
    max_in_window: int
    busy_seconds: float
    utilisation: float
    min_window_utilisation: float
    lower_bound_rate: float
    lower_bound_cold: float
    by_type: dict[str, TypeCounts] = field(default_factory=dict)

    def lines(self) -> list[str]:
        out = [
            f"requests            {self.requests}",
            f"429 answers         {self.rate_limited}",
            f"max in any window   {self.max_in_window} (limit {self.limit} per {self.window:g} s)",
            f"utilisation         {self.utilisation:.1%} (mean over every full window up to the "
            f"last submission; "
            f"lowest window {self.min_window_utilisation:.1%})",
            f"first->last request {self.busy_seconds:.1f} s; lower bound requests/rate "
            f"{self.lower_bound_rate:.1f} s, cold start (first window free) "
            f"{self.lower_bound_cold:.1f} s",
            "requests per entity by type:",
        ]
        for kind, counts in sorted(self.by_type.items()):
            out.append(
                f"  {kind:<12} entities {counts.entities:>4}  requests {counts.requests:>5}  "
                f"(POST {counts.posts}, status {counts.polls})  per entity {counts.per_entity:.2f}"
            )
        return out


def entity_of(record: RequestRecord) -> str:
    parts = record.path.strip("/").split("/")
    if record.method == "POST":
        return record.created_id or record.idempotency_key or f"post-{record.at}"
    return parts[2] if len(parts) >= 3 else record.path


def busy_utilisation(times: list[float], limit: int, window: float) -> tuple[float, float]:
    """Mean and lowest of (requests in [t, t + window)) / limit over every window that fits
    between the first and the last of `times` (sampled every window / 200): the share of
    the limit used while work was waiting."""
    times = sorted(times)
    if len(times) < 2 or times[-1] - times[0] < window:
        return (len(times) / limit if times else 0.0), 0.0
    step = window / 200
    shares = []
    start = times[0]
    while start + window <= times[-1]:
        inside = bisect.bisect_left(times, start + window) - bisect.bisect_left(times, start)
        shares.append(inside / limit)
        start += step
    return mean(shares), min(shares)


def measure(records: list[RequestRecord], limit: int, window: float) -> RunMetrics:
    records = sorted(records, key=lambda r: r.at)
    times = [r.at for r in records]
    # Work waits until the last submission; polls after it run on timers, not on a backlog.
    last_post = max((r.at for r in records if r.method == "POST"), default=None)
    busy = [t for t in times if last_post is None or t <= last_post]
    utilisation, lowest = busy_utilisation(busy, limit, window)
    by_type: dict[str, TypeCounts] = {}
    entities: dict[str, set[str]] = defaultdict(set)
    for record in records:
        kind = record.entity_type or "other"
        counts = by_type.setdefault(kind, TypeCounts(0, 0, 0, 0))
        counts.requests += 1
        counts.posts += record.method == "POST"
        counts.polls += record.method == "GET"
        entities[kind].add(entity_of(record))
    for kind, keys in entities.items():
        by_type[kind].entities = len(keys)
    n = len(records)
    return RunMetrics(
        limit=limit,
        window=window,
        requests=n,
        rate_limited=sum(1 for r in records if r.status == 429),
        max_in_window=max_in_window(times, window),
        busy_seconds=times[-1] - times[0] if times else 0.0,
        utilisation=utilisation,
        min_window_utilisation=lowest,
        lower_bound_rate=n * window / limit,
        lower_bound_cold=max(0, math.ceil(n / limit) - 1) * window,
        by_type=by_type,
    )


def share_of_posts(records: list[RequestRecord], start: float, end: float) -> float:
    inside = [r for r in records if start <= r.at <= end]
    return sum(1 for r in inside if r.method == "POST") / len(inside) if inside else 0.0
