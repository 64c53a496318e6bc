"""The DSP calls of an entity others wait for carry a lower (earlier) priority key than a
leaf's: its submission 1 and polls 2, a leaf's submission 3 and polls 4."""

from __future__ import annotations

from temporalio.api.enums.v1 import EventType

from dsp_integration.contracts import (
    DSP_ACTIVITY_PRIORITY_POLL,
    DSP_ACTIVITY_PRIORITY_POLL_PARENT,
    DSP_ACTIVITY_PRIORITY_SUBMIT,
    DSP_ACTIVITY_PRIORITY_SUBMIT_PARENT,
    EntityStatus,
    EntityType,
)
from tests.workflows.world import World


async def test_a_parent_goes_before_leaves_and_its_polls_before_theirs(world: World) -> None:
    await world.add("acme", EntityType.ADVERTISERS, status=EntityStatus.SUCCEEDED, dsp_id="adv_0")
    await world.add("spring", EntityType.CAMPAIGNS, status=EntityStatus.SUCCEEDED, dsp_id="cmp_0")
    banner = await world.add("banner", EntityType.CREATIVES, refs=["acme"])
    group = await world.add("group", EntityType.AD_GROUPS, refs=["spring", "banner"])
    await world.start(group)
    await world.start(banner)

    assert (await world.result(group)).status is EntityStatus.SUCCEEDED

    def keys(key: str, op: str) -> set[int | None]:
        return {call.priority for call in world.dsp_calls(key, op)}

    assert keys(banner, "submit") == {DSP_ACTIVITY_PRIORITY_SUBMIT_PARENT}  # the ad group waits
    assert keys(banner, "poll") == {DSP_ACTIVITY_PRIORITY_POLL_PARENT}
    assert keys(group, "submit") == {DSP_ACTIVITY_PRIORITY_SUBMIT}  # nobody waits for it
    assert keys(group, "poll") == {DSP_ACTIVITY_PRIORITY_POLL}

    # What the workflow scheduled, as recorded in the history (the replay reads it back).
    history = await world.handle(banner).fetch_history()
    scheduled = {
        (
            e.activity_task_scheduled_event_attributes.activity_type.name,
            e.activity_task_scheduled_event_attributes.priority.priority_key,
        )
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and e.activity_task_scheduled_event_attributes.task_queue.name == world.dsp_task_queue
    }
    assert scheduled == {
        ("submit_entity", DSP_ACTIVITY_PRIORITY_SUBMIT_PARENT),
        ("poll_status", DSP_ACTIVITY_PRIORITY_POLL_PARENT),
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
    assert [call.priority for call in world.dsp_calls(acme, "submit")] == [
        DSP_ACTIVITY_PRIORITY_SUBMIT
    ]
