"""What one entity costs the engine: the local activities (markers) and search-attribute
upserts its history holds. `polling` is recorded with the first poll's plan, an ending with
the telling of a few dependants, and `DspStatus=polling` is published only once a poll finds
the review still open (issue 13)."""

from __future__ import annotations

import json
from typing import Any

from pytest import approx
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle

from dsp_integration.contracts import (
    EntityState,
    EntityStatus,
    EntityType,
)
from tests.workflows.world import POLL_MIN, World, backoff_interval


async def shape(handle: WorkflowHandle[Any, EntityState]) -> tuple[list[str], list[str | None]]:
    """The local activities the run recorded, in order, and the `DspStatus` of each upsert."""
    history = await handle.fetch_history()
    local = []
    statuses = []
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED:
            details = event.marker_recorded_event_attributes.details
            [data] = details["data"].payloads
            local.append(json.loads(data.data)["activity_type"])
        elif event.event_type == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
            fields = event.upsert_workflow_search_attributes_event_attributes.search_attributes
            status = fields.indexed_fields.get("DspStatus")
            statuses.append(None if status is None else json.loads(status.data))
    return local, statuses


async def test_a_campaign_decided_by_its_first_poll_never_publishes_polling(
    world: World,
) -> None:
    await world.add("acme", EntityType.ADVERTISERS, status=EntityStatus.SUCCEEDED, dsp_id="adv_0")
    spring = await world.add(
        "spring",
        EntityType.CAMPAIGNS,
        refs=["acme"],
        timelines=[[(0, "pending", None), (POLL_MIN / 2, "active", None)]],
    )
    handle = await world.start(spring, published=True)

    assert (await handle.result()).status is EntityStatus.SUCCEEDED

    local, upserted = await shape(handle)
    assert local == ["load_entity", "record_status", "start_polling", "finish_entity"]
    assert upserted == ["succeeded"]
    # The queue row and the `state` query went through every status all the same.
    assert world.statuses(spring) == [
        EntityStatus.SUBMITTING,
        EntityStatus.POLLING,
        EntityStatus.SUCCEEDED,
    ]
    assert [p.polls for p in world.plans] == [0]


async def test_a_review_still_open_at_the_first_poll_publishes_polling_once(
    world: World,
) -> None:
    await world.add("acme", EntityType.ADVERTISERS, status=EntityStatus.SUCCEEDED, dsp_id="adv_0")
    banner = await world.add(
        "banner",
        EntityType.CREATIVES,
        refs=["acme"],
        timelines=[[(0, "pending_review", None), (POLL_MIN * 5, "approved", None)]],
    )
    handle = await world.start(banner, published=True)
    # Polls at 5, 13 and 25.8 s after the POST: two find the review open.
    assert [sum(map(backoff_interval, range(n + 1))) for n in range(3)] == approx([5, 13, 25.8])

    state = await handle.result()

    assert (state.status, state.polls) == (EntityStatus.SUCCEEDED, 3)
    local, upserted = await shape(handle)
    assert local == ["load_entity", "record_status", "start_polling"] + ["plan_next_poll"] * 2 + [
        "finish_entity"
    ]
    assert upserted == ["polling", "succeeded"]


async def test_an_ending_tells_a_few_dependants_in_its_own_local_activity(world: World) -> None:
    acme = await world.add("acme", EntityType.ADVERTISERS)
    campaigns = [
        await world.add(
            f"spring{i}",
            EntityType.CAMPAIGNS,
            refs=["acme"],
            timelines=[[(0, "pending", None), (1, "active", None)]],
        )
        for i in range(3)
    ]
    runs = [await world.start(key, published=True) for key in campaigns]
    advertiser = await world.start(acme, published=True)

    assert (await advertiser.result()).status is EntityStatus.SUCCEEDED
    for run in runs:
        assert (await run.result()).status is EntityStatus.SUCCEEDED

    local, upserted = await shape(advertiser)
    assert local == ["load_entity", "record_status", "finish_entity"]
    assert upserted == ["succeeded"]
    history = await advertiser.fetch_history()
    assert not any(
        e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and e.activity_task_scheduled_event_attributes.activity_type.name == "tell_dependants"
        for e in history.events
    )
    [(outcome, told)] = [(o, r) for o, r in world.told if o.key == acme]
    assert (outcome.status, told.told, told.superseded) == (EntityStatus.SUCCEEDED, 3, False)
