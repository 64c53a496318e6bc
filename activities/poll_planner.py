"""How long an entity waits before its next status poll.

The planner polls when a decision is likely: it learns each type's decision times from the
audit table (`review_times`) and plans the next poll at the age by which `DECISION_ODDS` of
the rounds still pending at this age are decided; in the tail (past the type's
`TAIL_QUANTILE`) it polls at least every `TAIL_STRETCH` x the entity's age, so the last
decisions are seen soon after they happen. Polls are not stretched for submissions: a leaf's
polls go in its batch's polls lane at a quarter of the batch's weight (`CallLane`), so while
submissions wait they take about a fifth of the dispatches, otherwise budget that submissions
leave idle; and an entity has at most one poll queued, so polls cannot pile up beyond one per
entity under review.
With fewer than `MIN_DECIDED` decisions seen for the type (a new deployment, or a review
longer than anything seen) it backs off from `min_interval`, stretched so that the type's
polls in the entity's batch together plan for at most the full rate rather than half of it,
to learn quickly. Where the round's start is not known at all, it backs off per entity (min
to max), stretched so that all polls together use at most `POLL_SHARE` of the budget.

Fixed-interval polling and a backoff-only planner were measured against this one
(devkit/bench/RESULTS.md, "Frugal polling"); they live in the revisions before issue 21, and
the benchmarks compare against those revisions (docs/reference/configuration.md)."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Mapping

from temporalio import activity
from temporalio.exceptions import ApplicationError

from dsp_integration.activities.review_times import ReviewTimes, observations_from
from dsp_integration.contracts import (
    EntityType,
    ErrorType,
    PollPlan,
    PollPlanInput,
    StartPollingInput,
)
from dsp_integration.contracts.entity_types import collection_path
from dsp_integration.database import audit_log, queue_store
from dsp_integration.database.engine import SessionFactory, autocommit_session

POLL_SHARE = 0.5
BACKOFF_FACTOR = 1.6
# Wide jitter: entities submitted together at the full rate would otherwise come due together
# and, for a while, poll at the full rate too.
JITTER = 0.5
IN_FLIGHT_CACHE_SECONDS = 2.0

DECISION_ODDS = 0.75
TAIL_QUANTILE = 0.9
TAIL_STRETCH = 0.05
MIN_DECIDED = 3
SLOW_EVIDENCE = 20
# Learned from the latest rounds only, so a DSP that changes its pace is followed.
MODEL_ROWS = 5000
MODEL_SCAN = 100_000
MODEL_REFRESH_SECONDS = 5.0
COLD_REFRESH_SECONDS = 1.0
# Entities polled together, planned one by one, still come due in clumps.
LEARNED_JITTER = 0.1


class PollPlanner:
    def __init__(
        self,
        session_factory: SessionFactory,
        *,
        min_interval: float,
        max_interval: float,
        requests_per_second: Mapping[str, float],
    ) -> None:
        """`requests_per_second`: each seat's budget, which its entities' polls share."""
        self._sessions = session_factory
        self._min = min_interval
        self._max = max_interval
        self._rates = dict(requests_per_second)
        self._in_flight: dict[str, tuple[float, int]] = {}
        self._models: dict[EntityType, tuple[float, ReviewTimes]] = {}
        self._model_lock = asyncio.Lock()

    @activity.defn
    async def plan_next_poll(self, request: PollPlanInput) -> PollPlan:
        """Read-only: reads the entity's priority for the poll that follows the wait, the
        entity's age and its type's decision times (cached per worker)."""
        collection = collection_path(request.entity_type)
        async with autocommit_session(self._sessions) as session:
            priority, age = await queue_store.priority_and_round_age(
                session, request.key, collection
            )
        if age is not None:
            model = await self._model(request.entity_type)
            if model.decided >= MIN_DECIDED:
                interval = self.learned_interval(model, age)
                interval *= 1 + random.uniform(-LEARNED_JITTER, LEARNED_JITTER)
            else:
                interval = await self._cold_interval(request, model)
            return PollPlan(interval=min(self._max, max(self._min, interval)), priority=priority)
        return PollPlan(interval=await self._backoff_interval(request), priority=priority)

    @activity.defn
    async def start_polling(self, request: StartPollingInput) -> PollPlan:
        """Record `polling` (conditional on the payload version, as `record_status`) and
        plan the first poll: one local activity after the POST where there were two."""
        async with autocommit_session(self._sessions) as session:
            await queue_store.record_status(session, request.record)
        return await self.plan_next_poll(request.plan)

    def learned_interval(self, model: ReviewTimes, age: float) -> float:
        """Seconds from `age` to the age by which `DECISION_ODDS` of the rounds still
        pending at `age` are decided; in the tail at most `TAIL_STRETCH` x age; past what
        the data can tell, a backoff on the age."""
        target = model.age_when_survival_below((1 - DECISION_ODDS) * model.survival(age))
        tail = model.quantile(TAIL_QUANTILE)
        stretch = TAIL_STRETCH * max(age, self._min)
        if tail is not None and age >= tail:
            return stretch if target is None or target <= age else min(target - age, stretch)
        if target is None or target <= age:
            return (BACKOFF_FACTOR - 1) * max(age, self._min)
        return target - age

    async def _model(self, entity_type: EntityType) -> ReviewTimes:
        now = time.monotonic()
        cached = self._models.get(entity_type)
        if cached is not None and now - cached[0] < self._refresh_after(cached[1]):
            return cached[1]
        async with self._model_lock:
            cached = self._models.get(entity_type)
            if cached is not None and now - cached[0] < self._refresh_after(cached[1]):
                return cached[1]
            async with autocommit_session(self._sessions) as session:
                events = await audit_log.recent_round_events(
                    session, collection_path(entity_type), limit=MODEL_ROWS, scan=MODEL_SCAN
                )
            model = ReviewTimes(observations_from(events, entity_type))
            self._models[entity_type] = (time.monotonic(), model)
            return model

    async def _cold_interval(self, request: PollPlanInput, model: ReviewTimes) -> float:
        """Nothing learned yet: back off, stretched so that the polls of this type in the
        entity's batch together plan for at most the full rate, so that the first decisions
        are seen, and learned from, soon. Only the batch's own: each batch's calls go in its
        own lanes, and counting every batch's let a large batch's backlog stretch a small
        one's first polls (a small batch's creatives were first polled 27-30 s after their
        POST behind 400 of a large batch's, reviewed in 2 s: devkit/bench/RESULTS.md, "Fair
        shares"). The count is not cached: it is per batch and only taken while cold. Once
        `SLOW_EVIDENCE` rounds were seen pending and still (almost) none decided, the reviews
        are long: polls then share the budget as `_backoff_interval` plans them (`POLL_SHARE`),
        because queued polls held in the workers' DSP slots do delay submissions when they
        want the whole budget (devkit/bench/RESULTS.md, review workload)."""
        async with autocommit_session(self._sessions) as session:
            polling = await queue_store.count_to_poll(
                session, request.entity_type, batch_of=request.key, seat=request.seat
            )
        share = POLL_SHARE if model.rounds - model.decided >= SLOW_EVIDENCE else 1.0
        rate = self._rate(request.seat)
        interval = max(self._min * BACKOFF_FACTOR**request.polls, polling / (rate * share))
        return interval * (1 + random.uniform(-JITTER, JITTER))

    @staticmethod
    def _refresh_after(model: ReviewTimes) -> float:
        return MODEL_REFRESH_SECONDS if model.decided >= MIN_DECIDED else COLD_REFRESH_SECONDS

    def _rate(self, seat: str) -> float:
        try:
            return self._rates[seat]
        except KeyError:
            raise ApplicationError(
                f"seat {seat!r} is not configured on this worker", type=ErrorType.UNKNOWN_SEAT
            ) from None

    async def _backoff_interval(self, request: PollPlanInput) -> float:
        in_flight = await self._polling_count(request.seat)
        backoff = min(self._max, self._min * BACKOFF_FACTOR**request.polls)
        fair_share = in_flight / (self._rate(request.seat) * POLL_SHARE)
        interval = max(backoff, fair_share)
        interval *= 1 + random.uniform(-JITTER, JITTER)
        return max(self._min, interval)

    async def _polling_count(self, seat: str) -> int:
        now = time.monotonic()
        counted_at, count = self._in_flight.get(seat, (float("-inf"), 0))
        if now - counted_at > IN_FLIGHT_CACHE_SECONDS:
            async with autocommit_session(self._sessions) as session:
                # Those still submitting poll soon: count them, or the first intervals of a
                # large batch are planned for a fraction of the entities that will poll.
                # Advertisers are done with their POST: counting them stretched the first
                # polls of campaigns whose ad groups wait (devkit/bench/RESULTS.md, fanout).
                count = await queue_store.count_to_poll(session, seat=seat)
            self._in_flight[seat] = (now, count)
        return count
