"""The poll planner: per-entity backoff, stretched so all polls share at most half the budget."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from dsp_integration.activities.poll_planner import FIXED, JITTER, POLL_SHARE, PollPlanner
from dsp_integration.contracts import EntityStatus, EntityType, PollPlanInput
from dsp_integration.database import queue_store
from dsp_integration.database.engine import SessionFactory
from dsp_integration.database.models import QueuedEntity

MIN, MAX, RATE = 5.0, 300.0, 40 / 60


def planner(sessions: SessionFactory, strategy: str = "adaptive") -> PollPlanner:
    return PollPlanner(
        sessions, min_interval=MIN, max_interval=MAX, requests_per_second=RATE, strategy=strategy
    )


async def in_flight(
    sessions: SessionFactory, count: int, status: EntityStatus, entity_type: str = "creatives"
) -> None:
    entities = [
        queue_store.NewEntity(
            f"{entity_type}-{status.value}-{i}", "plan", entity_type, {}, "fp", []
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
async def test_few_in_flight_back_off_from_min_to_max(
    clean_database: SessionFactory, polls: int, backoff: float
) -> None:
    intervals = [await plan(planner(clean_database), polls) for _ in range(50)]
    assert all(max(MIN, backoff * (1 - JITTER)) <= i <= backoff * (1 + JITTER) for i in intervals)


async def test_many_to_poll_stretch_intervals_to_half_the_budget(
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


async def test_fixed_strategy_ignores_the_load(clean_database: SessionFactory) -> None:
    await in_flight(clean_database, 200, EntityStatus.POLLING)
    assert await plan(planner(clean_database, FIXED), 10) == MIN


def test_an_unknown_strategy_is_refused(clean_database: SessionFactory) -> None:
    with pytest.raises(ValueError, match="poll strategy must be one of"):
        planner(clean_database, "eager")
