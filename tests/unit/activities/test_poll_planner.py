"""The poll planner: polls planned from the decision times learned from the audit, a backoff
while it knows too little, and, where an entity's round start is unknown, a per-entity backoff
stretched so all polls share at most half the budget."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from dsp_integration.activities.poll_planner import (
    BACKOFF_FACTOR,
    DECISION_ODDS,
    JITTER,
    MIN_DECIDED,
    POLL_SHARE,
    SLOW_EVIDENCE,
    TAIL_STRETCH,
    PollPlanner,
)
from dsp_integration.activities.review_times import ReviewObservation, ReviewTimes
from dsp_integration.contracts import DEFAULT_SEAT, EntityStatus, EntityType, PollPlanInput
from dsp_integration.database import queue_store
from dsp_integration.database.engine import SessionFactory
from dsp_integration.database.models import AuditRecord, QueuedEntity

MIN, MAX, RATE = 5.0, 300.0, 40 / 60


def planner(sessions: SessionFactory) -> PollPlanner:
    return PollPlanner(
        sessions, min_interval=MIN, max_interval=MAX, requests_per_second={DEFAULT_SEAT: RATE}
    )


async def in_flight(
    sessions: SessionFactory,
    count: int,
    status: EntityStatus,
    entity_type: str = "creatives",
    batch: str = "plan",
) -> None:
    entities = [
        queue_store.NewEntity(
            f"{batch}-{entity_type}-{status.value}-{i}", batch, entity_type, {}, "fp", []
        )
        for i in range(count)
    ]
    async with sessions.begin() as session:
        await queue_store.insert_new_entities(session, entities)
        await session.execute(
            update(QueuedEntity)
            .where(QueuedEntity.key.in_([e.key for e in entities]))
            .values(status=status.value)
        )


async def plan(p: PollPlanner, polls: int) -> float:
    request = PollPlanInput(key="k", entity_type=EntityType.CREATIVES, polls=polls)
    return (await p.plan_next_poll(request)).interval


@pytest.mark.parametrize(("polls", "backoff"), [(0, MIN), (3, MIN * 1.6**3), (30, MAX)])
async def test_without_a_round_start_few_in_flight_back_off_from_min_to_max(
    clean_database: SessionFactory, polls: int, backoff: float
) -> None:
    intervals = [await plan(planner(clean_database), polls) for _ in range(50)]
    assert all(max(MIN, backoff * (1 - JITTER)) <= i <= backoff * (1 + JITTER) for i in intervals)


async def test_without_a_round_start_many_to_poll_stretch_to_half_the_budget(
    clean_database: SessionFactory,
) -> None:
    await in_flight(clean_database, 150, EntityStatus.POLLING)
    await in_flight(clean_database, 50, EntityStatus.SUBMITTING)
    await in_flight(clean_database, 70, EntityStatus.WAITING)
    await in_flight(clean_database, 90, EntityStatus.SUBMITTING, "advertisers")  # active at once
    fair_share = 200 / (RATE * POLL_SHARE)  # 600 s: beyond the max, on purpose

    intervals = [await plan(planner(clean_database), 0) for _ in range(200)]

    assert all(fair_share * (1 - JITTER) <= i <= fair_share * (1 + JITTER) for i in intervals)
    mean_rate = sum(200 / i for i in intervals) / len(intervals)
    assert mean_rate == pytest.approx(RATE * POLL_SHARE, rel=0.2)


def creative_rounds(decisions: list[float]) -> list[AuditRecord]:
    """A finished round per decision time: POSTed an hour ago, seen pending 1 s before its
    decision and decided 1 s after."""
    began = datetime.now(UTC) - timedelta(hours=1)
    rows = []
    for i, decided in enumerate(decisions):
        for method, path, status, at, dsp in (
            ("POST", "/v1/creatives", 201, 0.0, None),
            ("GET", f"/v1/creatives/cre_{i}/status", 200, decided - 1, "pending_review"),
            ("GET", f"/v1/creatives/cre_{i}/status", 200, decided + 1, "approved"),
        ):
            rows.append(
                AuditRecord(
                    entity_key=f"old-{i}",
                    method=method,
                    path=path,
                    response_status=status,
                    response_body=json.dumps({"status": dsp}) if dsp else None,
                    attempt=1,
                    started_at=began + timedelta(seconds=at),
                )
            )
    return rows


async def posted(sessions: SessionFactory, key: str, seconds_ago: float) -> None:
    """The creative `key`, of the batch "plan", POSTed `seconds_ago`."""
    async with sessions.begin() as session:
        await queue_store.insert_new_entities(
            session, [queue_store.NewEntity(key, "plan", "creatives", {}, "fp", [])]
        )
        session.add(
            AuditRecord(
                entity_key=key,
                method="POST",
                path="/v1/creatives",
                response_status=201,
                attempt=1,
                started_at=datetime.now(UTC) - timedelta(seconds=seconds_ago),
            )
        )


async def test_learned_plans_the_poll_when_most_pending_rounds_are_decided(
    clean_database: SessionFactory,
) -> None:
    decisions = [10.0 * i for i in range(1, 21)]  # 10 s .. 200 s, evenly
    async with clean_database.begin() as session:
        session.add_all(creative_rounds(decisions))
    await posted(clean_database, "k", 0)
    learned = planner(clean_database)

    intervals = [await plan(learned, 0) for _ in range(20)]

    due = odds_age(decisions, 0)
    # The entity was POSTed a moment ago: its age is a few milliseconds.
    assert all(due * 0.89 <= i <= due * 1.1 for i in intervals)


def odds_age(decisions: list[float] | list[int], age: float) -> float:
    """The first decision by which DECISION_ODDS of the rounds pending at `age` are decided."""
    pending = [d for d in decisions if d > age]
    return min(
        d for d in pending if sum(x > d for x in pending) <= (1 - DECISION_ODDS) * len(pending)
    )


def times_of(decisions: range) -> list[ReviewObservation]:
    return [ReviewObservation(d - 1, d + 1) for d in decisions]


def test_learned_policy_from_the_start_into_the_tail(clean_database: SessionFactory) -> None:
    learned = planner(clean_database)
    times = ReviewTimes(times_of(range(10, 210, 10)))

    # Pending at 100 s: 10 of the 20 rounds still to go.
    assert learned.learned_interval(times, 100) == pytest.approx(
        odds_age(list(range(10, 210, 10)), 100) - 100
    )
    # Past the 90th percentile (180 s): when the rest is due, at most TAIL_STRETCH x age.
    assert learned.learned_interval(times, 195) == pytest.approx(5)
    long_tail = ReviewTimes([*times_of(range(10, 200, 10)), ReviewObservation(999, 1001)])
    assert learned.learned_interval(long_tail, 185) == pytest.approx(TAIL_STRETCH * 185)
    # Past every decision seen: nothing to go by but the age.
    assert learned.learned_interval(times, 1000) == pytest.approx(TAIL_STRETCH * 1000)


def test_learned_backs_off_on_the_age_past_what_a_young_sample_tells(
    clean_database: SessionFactory,
) -> None:
    # Three fast decisions seen, seven rounds still pending at 50 s: nothing known beyond.
    young = ReviewTimes([*times_of(range(2, 5)), *[ReviewObservation(50)] * 7])
    learned = planner(clean_database)

    assert learned.learned_interval(young, 60) == pytest.approx((BACKOFF_FACTOR - 1) * 60)


async def test_learned_backs_off_before_it_knows_anything(
    clean_database: SessionFactory,
) -> None:
    async with clean_database.begin() as session:
        session.add_all(creative_rounds([10.0, 20.0, 30.0, 40.0][: MIN_DECIDED - 1]))
    await posted(clean_database, "k", 5)
    await in_flight(clean_database, 10, EntityStatus.POLLING)
    await in_flight(clean_database, 300, EntityStatus.POLLING, "campaigns")

    intervals = [await plan(planner(clean_database), 3) for _ in range(20)]

    backoff = MIN * 1.6**3
    assert all(backoff * (1 - JITTER) <= i <= backoff * (1 + JITTER) for i in intervals)


async def test_learning_creatives_poll_together_at_most_at_the_full_rate(
    clean_database: SessionFactory,
) -> None:
    await posted(clean_database, "k", 5)
    await in_flight(clean_database, 60, EntityStatus.POLLING)
    await in_flight(clean_database, 40, EntityStatus.SUBMITTING)  # about to poll
    await in_flight(clean_database, 100, EntityStatus.WAITING)  # not yet

    intervals = [await plan(planner(clean_database), 0) for _ in range(200)]

    full_rate = 100 / RATE  # 150 s: twice as often as once the reviews prove long
    assert all(full_rate * (1 - JITTER) <= i <= full_rate * (1 + JITTER) for i in intervals)
    assert sum(intervals) / len(intervals) == pytest.approx(full_rate, rel=0.15)


async def test_learning_polls_are_not_stretched_by_another_batchs_backlog(
    clean_database: SessionFactory,
) -> None:
    await posted(clean_database, "k", 5)
    await in_flight(clean_database, 3, EntityStatus.POLLING)
    await in_flight(clean_database, 300, EntityStatus.POLLING, batch="large")
    await in_flight(clean_database, 400, EntityStatus.SUBMITTING, batch="large")

    intervals = [await plan(planner(clean_database), 0) for _ in range(20)]

    # Three of its own batch to poll: 3 / RATE = 4.5 s, under the minimum; 700 of another.
    assert all(MIN * (1 - JITTER) <= i <= MIN * (1 + JITTER) for i in intervals)


async def test_learned_polls_are_not_stretched_by_the_load(
    clean_database: SessionFactory,
) -> None:
    async with clean_database.begin() as session:
        session.add_all(creative_rounds([10.0] * 10))
    await posted(clean_database, "k", 0)
    await in_flight(clean_database, 150, EntityStatus.POLLING)
    await in_flight(clean_database, 50, EntityStatus.SUBMITTING)  # not polling yet

    intervals = [await plan(planner(clean_database), 0) for _ in range(20)]

    # Submissions go first by their priority keys: polls use what is left, when due.
    assert all(MIN <= i <= 10 * 1.1 for i in intervals)


async def test_learning_backs_off_to_half_the_budget_once_reviews_prove_long(
    clean_database: SessionFactory,
) -> None:
    began = datetime.now(UTC) - timedelta(minutes=10)
    rows = [
        AuditRecord(
            entity_key=f"slow-{i}",
            method=method,
            path=path,
            response_status=status,
            response_body=json.dumps({"status": "pending_review"}) if method == "GET" else None,
            attempt=1,
            started_at=began + timedelta(seconds=at),
        )
        for i in range(SLOW_EVIDENCE)
        for method, path, status, at in (
            ("POST", "/v1/creatives", 201, 0),
            ("GET", f"/v1/creatives/cre_{i}/status", 200, 300),
        )
    ]
    async with clean_database.begin() as session:
        session.add_all(rows)
    await posted(clean_database, "k", 5)
    await in_flight(clean_database, 100, EntityStatus.POLLING)

    intervals = [await plan(planner(clean_database), 0) for _ in range(100)]

    half_share = 100 / (RATE * POLL_SHARE)  # 300 s
    assert all(half_share * (1 - JITTER) <= i <= MAX for i in intervals)
    assert sum(intervals) / len(intervals) > 100 / RATE * (1 + JITTER)
