"""Entities that the DSP accepts: at once, after a short `pending`, after hours of review."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter

from dsp_integration.contracts import (
    DSP_FAIRNESS_WEIGHT,
    EntityState,
    EntityStatus,
    EntityType,
    EntityWorkflowInput,
    PriorityLevel,
)
from dsp_integration.workflows.activity_options import MAX_POLLS_PER_RUN
from tests.workflows.world import World, backoff_interval

SUBMITTED_AND_SUCCEEDED = [EntityStatus.SUBMITTING, EntityStatus.POLLING, EntityStatus.SUCCEEDED]


def polls_until(decided_after: float, plan: Callable[[int], float] = backoff_interval) -> int:
    """How many polls the planner's schedule takes to reach `decided_after` seconds."""
    elapsed, polls = 0.0, 0
    while elapsed < decided_after:
        elapsed += plan(polls)
        polls += 1
    return polls


def activities_scheduled(history: WorkflowHistory, name: str) -> int:
    return sum(
        1
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and e.activity_task_scheduled_event_attributes.activity_type.name == name
    )


async def test_advertiser_is_active_at_once_without_a_poll(world: World) -> None:
    acme = await world.add("acme", EntityType.ADVERTISERS)

    state = await (await world.start(acme)).result()

    assert state == EntityState(
        key=acme,
        entity_type=EntityType.ADVERTISERS,
        status=EntityStatus.SUCCEEDED,
        payload_version=1,
        dsp_id="adv_1",
        dsp_status="active",
        priority=PriorityLevel.NORMAL,
        fairness_weight=DSP_FAIRNESS_WEIGHT,
    )
    # Active at once: no `polling` is recorded on the way (an entity to poll records it).
    assert world.statuses(acme) == [EntityStatus.SUBMITTING, EntityStatus.SUCCEEDED]
    [post] = world.dsp_calls(acme)
    assert (post.op, post.idempotency_key, post.body) == ("submit", f"{acme}:v1", {"name": "acme"})
    assert world.plans == []
    row = await world.row(acme)
    assert (row.status, row.dsp_id, row.dsp_status) == (EntityStatus.SUCCEEDED, "adv_1", "active")


async def test_campaign_waits_for_its_advertiser_then_polls_until_active(
    world: World,
) -> None:
    acme = await world.add("acme", EntityType.ADVERTISERS)
    spring = await world.add(
        "spring",
        EntityType.CAMPAIGNS,
        refs=["acme"],
        timelines=[[(0, "pending", None), (10, "active", None)]],
    )
    spring_run = await world.start(spring)
    await world.start(acme)

    state = await spring_run.result()

    assert state.status is EntityStatus.SUCCEEDED
    assert (state.dsp_id, state.dsp_status, state.polls) == ("cmp_2", "active", 2)
    assert world.statuses(spring) == SUBMITTED_AND_SUCCEEDED
    assert [c.op for c in world.dsp_calls(spring)] == ["submit", "poll", "poll"]
    assert world.dsp_calls(spring, "submit")[0].body == {"name": "spring", "acme_id": "adv_1"}
    assert [p.polls for p in world.plans] == [0, 1]
    [(outcome, told)] = world.told
    assert told.told == 1
    assert (outcome.key, outcome.status, outcome.payload_version) == (
        acme,
        EntityStatus.SUCCEEDED,
        1,
    )


async def test_creative_review_of_hours_continues_as_new_and_keeps_the_poll_count(
    world: World,
) -> None:
    review = timedelta(hours=6).total_seconds()
    expected_polls = polls_until(review)
    assert expected_polls > MAX_POLLS_PER_RUN
    await world.add("acme", EntityType.ADVERTISERS, status=EntityStatus.SUCCEEDED, dsp_id="adv_0")
    banner = await world.add(
        "banner",
        EntityType.CREATIVES,
        refs=["acme"],
        timelines=[[(0, "pending_review", None), (review, "approved", None)]],
    )
    run = await world.start(banner)

    state = await run.result()

    assert state.status is EntityStatus.SUCCEEDED
    assert (state.dsp_status, state.polls) == ("approved", expected_polls)
    assert world.statuses(banner) == SUBMITTED_AND_SUCCEEDED
    polls = world.dsp_calls(banner, "poll")
    assert len(polls) == expected_polls
    assert len(world.dsp_calls(banner, "submit")) == 1
    # The carried poll count keeps the backoff going where the first run stopped.
    assert [p.polls for p in world.plans] == list(range(expected_polls))
    decided_after = (polls[-1].at - world.dsp_calls(banner)[0].at).total_seconds()
    assert review <= decided_after < review + backoff_interval(expected_polls - 1) + 5

    first_run = world.client.get_workflow_handle(run.id, run_id=run.first_execution_run_id)
    first_history = await first_run.fetch_history()
    assert activities_scheduled(first_history, "poll_status") == MAX_POLLS_PER_RUN
    last = first_history.events[-1]
    assert last.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
    [payload] = last.workflow_execution_continued_as_new_event_attributes.input.payloads
    carried = pydantic_data_converter.payload_converter.from_payload(payload, EntityWorkflowInput)
    assert carried.carry is not None
    assert (carried.carry.dsp_id, carried.carry.polls) == ("cre_1", MAX_POLLS_PER_RUN)

    final_history = await world.handle(banner).fetch_history()
    started = final_history.events[0].workflow_execution_started_event_attributes
    assert started.continued_execution_run_id == run.first_execution_run_id
    assert activities_scheduled(final_history, "poll_status") == (
        expected_polls - MAX_POLLS_PER_RUN
    )
    # Bounded by the poll budget per run, however long the review lasts (about 12 a poll).
    assert len(first_history.events) < 15 * MAX_POLLS_PER_RUN
