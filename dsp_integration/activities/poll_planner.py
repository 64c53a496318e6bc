"""How long an entity waits before its next status poll, planned from the shared budget.

Fixed-interval polling spends the DSP budget in proportion to how many entities are under
review, and can starve submissions. The planner backs off per entity (min to max) and
stretches every interval so that all polls together use at most `POLL_SHARE` of the budget."""

from __future__ import annotations

import random
import time
from typing import Literal, get_args

from temporalio import activity

from dsp_integration.contracts import PollPlan, PollPlanInput
from dsp_integration.database import queue_store
from dsp_integration.database.engine import SessionFactory

POLL_SHARE = 0.5
BACKOFF_FACTOR = 1.6
PollStrategy = Literal["adaptive", "fixed"]
ADAPTIVE: PollStrategy = "adaptive"
FIXED: PollStrategy = "fixed"
STRATEGIES: tuple[PollStrategy, ...] = get_args(PollStrategy)
# Wide jitter: entities submitted together at the full rate would otherwise come due together
# and, for a while, poll at the full rate too.
JITTER = 0.5
IN_FLIGHT_CACHE_SECONDS = 2.0


class PollPlanner:
    def __init__(
        self,
        session_factory: SessionFactory,
        *,
        min_interval: float,
        max_interval: float,
        requests_per_second: float,
        strategy: PollStrategy = ADAPTIVE,
    ) -> None:
        if strategy not in STRATEGIES:
            raise ValueError(f"poll strategy must be one of {STRATEGIES}, not {strategy!r}")
        self._strategy = strategy
        self._sessions = session_factory
        self._min = min_interval
        self._max = max_interval
        self._rate = requests_per_second
        self._in_flight = 0
        self._counted_at = float("-inf")

    @activity.defn
    async def plan_next_poll(self, request: PollPlanInput) -> PollPlan:
        """Read-only: counts the entities being polled (cached briefly per worker), and reads
        the entity's priority for the poll that follows the wait. The `fixed` strategy polls
        every `min_interval` whatever the load; it exists for comparison."""
        async with self._sessions() as session:
            priority = await queue_store.priority_of(session, request.key)
        if self._strategy == FIXED:
            return PollPlan(interval=self._min, priority=priority)
        in_flight = await self._polling_count()
        backoff = min(self._max, self._min * BACKOFF_FACTOR**request.polls)
        fair_share = in_flight / (self._rate * POLL_SHARE)
        interval = max(backoff, fair_share)
        interval *= 1 + random.uniform(-JITTER, JITTER)
        return PollPlan(interval=max(self._min, interval), priority=priority)

    async def _polling_count(self) -> int:
        now = time.monotonic()
        if now - self._counted_at > IN_FLIGHT_CACHE_SECONDS:
            async with self._sessions() as session:
                # Those still submitting poll soon: count them, or the first intervals of a
                # large batch are planned for a fraction of the entities that will poll.
                # Advertisers are done with their POST: counting them stretched the first
                # polls of campaigns whose ad groups wait (devkit/bench/RESULTS.md, fanout).
                self._in_flight = await queue_store.count_to_poll(session)
            self._counted_at = now
        return self._in_flight
