"""The `state` query while an entity waits on a dependency and while it is being polled."""

from __future__ import annotations

from datetime import timedelta

from temporalio.testing import WorkflowEnvironment

from dsp_integration.contracts import (
    DSP_FAIRNESS_WEIGHT,
    EntityState,
    EntityStatus,
    EntityType,
    PriorityLevel,
)
from dsp_integration.workflows.activity_options import MAX_POLLS_PER_RUN
from tests.workflows.world import World, backoff_interval


async def test_state_while_waiting_lists_the_open_dependencies(world: World) -> None:
    await world.add("acme", EntityType.ADVERTISERS, status=EntityStatus.SUCCEEDED, dsp_id="adv_0")
    spring = await world.add("spring", EntityType.CAMPAIGNS, refs=["acme"])
    banner = await world.add("banner", EntityType.CREATIVES, refs=["acme"])
    group = await world.add("group", EntityType.AD_GROUPS, refs=["spring", "banner"])
    await world.start(group)

    state = await world.until_state(group, lambda s: bool(s.waiting_on))

    assert state == EntityState(
        key=group,
        entity_type=EntityType.AD_GROUPS,
        status=EntityStatus.WAITING,
        payload_version=1,
        waiting_on=[spring, banner],
        priority=PriorityLevel.NORMAL,
        fairness_weight=DSP_FAIRNESS_WEIGHT,
    )
    assert world.calls == []


async def test_state_while_polling_shows_the_dsp_status_and_the_next_poll(
    world: World, env: WorkflowEnvironment
) -> None:
    await world.add("acme", EntityType.ADVERTISERS, status=EntityStatus.SUCCEEDED, dsp_id="adv_0")
    banner = await world.add(
        "banner",
        EntityType.CREATIVES,
        refs=["acme"],
        timelines=[[(0.0, "pending_review", None), (3600.0, "approved", None)]],
    )
    await world.start(banner)

    first = await world.until_state(banner, lambda s: s.next_poll_at is not None)

    [post] = world.dsp_calls(banner)
    assert (first.status, first.dsp_id, first.dsp_status, first.polls, first.waiting_on) == (
        EntityStatus.POLLING,
        "cre_1",
        "pending_review",
        0,
        [],
    )
    assert first.next_poll_at is not None
    planned = (first.next_poll_at - post.at).total_seconds()
    assert abs(planned - backoff_interval(0)) < 0.5

    await env.sleep(timedelta(seconds=backoff_interval(0) + backoff_interval(1) / 2))
    second = await world.until_state(banner, lambda s: s.polls == 1)

    [poll] = world.dsp_calls(banner, "poll")
    assert (second.status, second.dsp_status) == (EntityStatus.POLLING, "pending_review")
    assert second.next_poll_at is not None
    assert abs((second.next_poll_at - poll.at).total_seconds() - backoff_interval(1)) < 0.5


async def test_state_stops_listing_a_dependency_once_it_has_succeeded(
    world: World, env: WorkflowEnvironment
) -> None:
    await world.add("acme", EntityType.ADVERTISERS, status=EntityStatus.SUCCEEDED, dsp_id="adv_0")
    spring = await world.add("spring", EntityType.CAMPAIGNS, refs=["acme"])
    banner = await world.add(
        "banner",
        EntityType.CREATIVES,
        refs=["acme"],
        timelines=[[(0.0, "pending_review", None), (3600.0, "approved", None)]],
    )
    group = await world.add("group", EntityType.AD_GROUPS, refs=["spring", "banner"])
    for key in (group, spring, banner):
        await world.start(key)
    await world.until_state(group, lambda s: len(s.waiting_on) == 2)

    await env.sleep(timedelta(minutes=1))  # the campaign is active after 10 s

    assert (await world.row(spring)).status is EntityStatus.SUCCEEDED
    state = await world.state(group)
    assert (state.status, state.waiting_on) == (EntityStatus.WAITING, [banner])


async def test_state_after_continue_as_new_keeps_the_poll_count(
    world: World, env: WorkflowEnvironment
) -> None:
    await world.add("acme", EntityType.ADVERTISERS, status=EntityStatus.SUCCEEDED, dsp_id="adv_0")
    banner = await world.add(
        "banner",
        EntityType.CREATIVES,
        refs=["acme"],
        timelines=[[(0.0, "pending_review", None), (86400.0, "approved", None)]],
    )
    run = await world.start(banner)
    await world.until_state(banner, lambda s: s.next_poll_at is not None)
    first_100 = sum(backoff_interval(n) for n in range(MAX_POLLS_PER_RUN))

    await env.sleep(timedelta(seconds=first_100 + backoff_interval(MAX_POLLS_PER_RUN) / 2))

    state = await world.until_state(banner, lambda s: s.next_poll_at is not None)
    assert len(world.dsp_calls(banner, "poll")) == MAX_POLLS_PER_RUN
    described = await world.handle(banner).describe()
    assert described.run_id != run.first_execution_run_id  # continued as new
    assert (state.status, state.dsp_status, state.polls) == (
        EntityStatus.POLLING,
        "pending_review",
        MAX_POLLS_PER_RUN,
    )
