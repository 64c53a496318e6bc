"""Every DSP call of a normal batch carries priority key 3, of a high batch 1, of a low batch
5; its fairness key is its batch's lane: the batch's parents (an entity others wait for: its
submission and polls), its leaves' submissions, or its leaves' polls; and a `prioritise`
reaches the next DSP call of an entity already running."""

from __future__ import annotations

from temporalio.api.enums.v1 import EventType

from dsp_integration.contracts import (
    DSP_ACTIVITY_PRIORITY_HIGH,
    DSP_ACTIVITY_PRIORITY_LOW,
    DSP_ACTIVITY_PRIORITY_NORMAL,
    POLLS_LANE_SHARE,
    SIGNAL_REPRIORITISE,
    EntityStatus,
    EntityType,
    PriorityLevel,
    fairness_key_for,
)
from dsp_integration.database import queue_store
from tests.workflows.world import World


async def test_a_parents_calls_take_its_batchs_parent_lane_and_a_leafs_the_others(
    world: World,
) -> None:
    await world.add("acme", EntityType.ADVERTISERS, status=EntityStatus.SUCCEEDED, dsp_id="adv_0")
    await world.add("spring", EntityType.CAMPAIGNS, status=EntityStatus.SUCCEEDED, dsp_id="cmp_0")
    banner = await world.add("banner", EntityType.CREATIVES, refs=["acme"], batch="launch")
    group = await world.add(
        "group", EntityType.AD_GROUPS, refs=["spring", "banner"], batch="launch"
    )
    await world.start(group)
    await world.start(banner)

    assert (await world.result(group)).status is EntityStatus.SUCCEEDED

    def keys(key: str, op: str) -> set[tuple[int | None, str | None, float | None]]:
        return {
            (call.priority, call.fairness_key, call.fairness_weight)
            for call in world.dsp_calls(key, op)
        }

    normal = DSP_ACTIVITY_PRIORITY_NORMAL
    # The ad group waits for the banner; nobody waits for the ad group, whose polls weigh a
    # quarter of its batch's weight.
    assert keys(banner, "submit") == {(normal, "launch:parents", 1.0)}
    assert keys(banner, "poll") == {(normal, "launch:parents", 1.0)}
    assert keys(group, "submit") == {(normal, "launch:submissions", 1.0)}
    assert keys(group, "poll") == {(normal, "launch:polls", POLLS_LANE_SHARE)}

    # What the workflow scheduled, as recorded in the history (the replay reads it back).
    history = await world.handle(banner).fetch_history()
    scheduled = {
        (
            e.activity_task_scheduled_event_attributes.activity_type.name,
            e.activity_task_scheduled_event_attributes.priority.priority_key,
            e.activity_task_scheduled_event_attributes.priority.fairness_key,
        )
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and e.activity_task_scheduled_event_attributes.task_queue.name == world.dsp_task_queue
    }
    assert scheduled == {
        ("submit_entity", normal, "launch:parents"),
        ("poll_status", normal, "launch:parents"),
    }


async def test_dependants_that_have_ended_do_not_count(world: World) -> None:
    await world.add("acme", EntityType.ADVERTISERS)
    await world.add(
        "old",
        EntityType.CAMPAIGNS,
        refs=["acme"],
        status=EntityStatus.CANCELLED,
        reason="cancelled by user",
    )
    acme = world.k("acme")

    assert (await (await world.start(acme)).result()).status is EntityStatus.SUCCEEDED
    assert [call.fairness_key for call in world.dsp_calls(acme, "submit")] == [
        "test-batch:submissions"
    ]


async def test_each_call_carries_its_batchs_level_and_the_batchs_lane_as_fairness_key(
    world: World,
) -> None:
    await world.add("acme", EntityType.ADVERTISERS, status=EntityStatus.SUCCEEDED, dsp_id="adv_0")
    long_batch = "a-batch-name-far-longer-than-the-sixty-four-bytes-temporal-allows-for-keys"
    urgent = await world.add(
        "urgent", EntityType.CREATIVES, refs=["acme"], batch="fix", priority="high"
    )
    later = await world.add(
        "later", EntityType.CREATIVES, refs=["acme"], batch=long_batch, priority="low"
    )
    usual = await world.add("usual", EntityType.CREATIVES, refs=["acme"], batch="spring")
    for key in (urgent, later, usual):
        await world.start(key)
    for key in (urgent, later, usual):
        assert (await world.result(key)).status is EntityStatus.SUCCEEDED

    def seen(key: str) -> set[tuple[str, int | None, str | None]]:
        return {(c.op, c.priority, c.fairness_key) for c in world.dsp_calls(key)}

    assert seen(urgent) == {
        ("submit", DSP_ACTIVITY_PRIORITY_HIGH, "fix:submissions"),
        ("poll", DSP_ACTIVITY_PRIORITY_HIGH, "fix:polls"),
    }
    hashed = {fairness_key_for(long_batch, suffix) for suffix in (":submissions", ":polls")}
    assert all(len(key.encode()) <= 64 for key in hashed)
    assert {(op, key) for op, _, key in seen(later)} == {
        ("submit", fairness_key_for(long_batch, ":submissions")),
        ("poll", fairness_key_for(long_batch, ":polls")),
    }
    assert {level for _, level, _ in seen(later)} == {DSP_ACTIVITY_PRIORITY_LOW}
    assert seen(usual) == {
        ("submit", DSP_ACTIVITY_PRIORITY_NORMAL, "spring:submissions"),
        ("poll", DSP_ACTIVITY_PRIORITY_NORMAL, "spring:polls"),
    }
    assert (await world.result(urgent)).priority is PriorityLevel.HIGH


async def test_a_prioritise_reaches_the_next_call_of_a_running_entity(world: World) -> None:
    await world.add("acme", EntityType.ADVERTISERS, status=EntityStatus.SUCCEEDED, dsp_id="adv_0")
    banner = await world.add(
        "banner",
        EntityType.CREATIVES,
        refs=["acme"],
        batch="spring",
        timelines=[[(0, "pending_review", None), (100, "approved", None)]],
    )
    world.plan = lambda polls: 0.01 if polls == 0 else 30.0  # the first poll at once
    first_poll = world.gate(banner, "poll")
    await world.start(banner)
    await world.until(lambda: len(world.dsp_calls(banner, "poll")) == 1)

    # While the first poll waits for its slot, the user raises the batch.
    async with world.sessions.begin() as session:
        assert await queue_store.prioritise_batch(session, "spring", PriorityLevel.HIGH) == [banner]
    first_poll.set()

    assert (await world.result(banner)).status is EntityStatus.SUCCEEDED
    keys = [call.priority for call in world.dsp_calls(banner, "poll")]
    assert len(keys) >= 3
    # The poll already scheduled keeps its place; every one after it goes at the new level.
    assert keys[0] == DSP_ACTIVITY_PRIORITY_NORMAL
    assert set(keys[1:]) == {DSP_ACTIVITY_PRIORITY_HIGH}
    assert [c.priority for c in world.dsp_calls(banner, "submit")] == [DSP_ACTIVITY_PRIORITY_NORMAL]


async def test_a_prioritise_re_keys_the_call_waiting_in_the_dsp_queue(world: World) -> None:
    """The POST waits for its slot when the batch is raised and weighted: it is cancelled
    before its request leaves and scheduled again at the new level and weight, so exactly one
    POST reaches the DSP."""
    acme = await world.add("acme", EntityType.ADVERTISERS, batch="spring")
    queued = world.gate(acme, "submit")
    run = await world.start(acme)
    await world.until(lambda: len(world.dsp_calls(acme, "submit")) == 1)

    assert await world.prioritise("spring", PriorityLevel.HIGH, 3.0) == [acme]

    assert (await run.result()).status is EntityStatus.SUCCEEDED
    assert not queued.is_set()  # the held call was let go by its cancellation alone
    calls = world.dsp_calls(acme, "submit")
    assert [(c.outcome, c.priority, c.fairness_weight) for c in calls] == [
        ("cancelled", DSP_ACTIVITY_PRIORITY_NORMAL, 1.0),
        ("ok", DSP_ACTIVITY_PRIORITY_HIGH, 3.0),
    ]
    assert len([e for e in world.dsp.values() if e.key == acme]) == 1
    assert (await world.state(acme)).fairness_weight == 3.0


async def test_a_weight_alone_re_keys_and_an_unchanged_priority_does_not(world: World) -> None:
    acme = await world.add("acme", EntityType.ADVERTISERS, batch="spring")
    queued = world.gate(acme, "submit")
    run = await world.start(acme)
    await world.until(lambda: len(world.dsp_calls(acme, "submit")) == 1)

    # The same level and weight: the waiting call keeps its place (had it been scheduled
    # again, a third call would stand below). Signals are taken in order.
    await world.prioritise("spring", PriorityLevel.NORMAL, 1.0)
    await world.until_heard(acme, SIGNAL_REPRIORITISE)
    assert [c.outcome for c in world.dsp_calls(acme, "submit")] == ["at gate"]

    await world.prioritise("spring", weight=0.25)
    await world.until(lambda: len(world.dsp_calls(acme, "submit")) == 2)
    queued.set()
    assert (await run.result()).status is EntityStatus.SUCCEEDED
    calls = world.dsp_calls(acme, "submit")
    assert [(c.outcome, c.priority, c.fairness_weight) for c in calls] == [
        ("cancelled", DSP_ACTIVITY_PRIORITY_NORMAL, 1.0),
        ("ok", DSP_ACTIVITY_PRIORITY_NORMAL, 0.25),
    ]
