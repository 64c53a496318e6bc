"""Telling dependants past the ending's local activity: more than `LOCAL_FAN_OUT_LIMIT` are
told by the regular, heartbeating `tell_dependants` (its history is
`tests/histories/<release>/many_dependants.json`)."""

from __future__ import annotations

from temporalio.api.enums.v1 import EventType

from dsp_integration.contracts import EntityStatus, EntityType
from dsp_integration.workflows.activity_options import LOCAL_FAN_OUT_LIMIT
from tests.workflows.world import World

ACTIVE_AT_ONCE = [[(0, "pending", None), (1, "active", None)]]


async def test_more_dependants_than_the_local_limit_are_all_told_by_a_regular_activity(
    world: World,
) -> None:
    acme = await world.add("acme", EntityType.ADVERTISERS)
    campaigns = [
        await world.add(f"spring{i}", EntityType.CAMPAIGNS, refs=["acme"], timelines=ACTIVE_AT_ONCE)
        for i in range(LOCAL_FAN_OUT_LIMIT + 1)
    ]
    advertiser = await world.start(acme)  # the dependants are started by being told

    assert (await advertiser.result()).status is EntityStatus.SUCCEEDED
    for campaign in campaigns:
        assert (await world.result(campaign)).status is EntityStatus.SUCCEEDED

    history = await advertiser.fetch_history()
    scheduled = [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]
    assert scheduled == ["submit_entity", "tell_dependants"]
    [(outcome, told)] = [(o, r) for o, r in world.told if o.key == acme]
    assert (outcome.status, told.told, told.superseded) == (
        EntityStatus.SUCCEEDED,
        LOCAL_FAN_OUT_LIMIT + 1,
        False,
    )
