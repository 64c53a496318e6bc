"""The time-skipping test server takes the start rule of `tell_dependant` as the real server
does (tests/integration/test_entity_starts.py): a signal-with-start that may not reopen a
completed run is refused for an entity that has ended, and one whose row has work again is
started in a new run."""

from __future__ import annotations

from dsp_integration.activities.fan_out import tell_dependant
from dsp_integration.contracts import DependencyOutcome, EntityStatus, EntityType, PriorityLevel
from dsp_integration.database.queue_store import StartRow
from tests.workflows.world import World

ACME_SUCCEEDED = DependencyOutcome(
    key="acme", status=EntityStatus.SUCCEEDED, dsp_id="adv_0", payload_version=1
)


async def _tell(world: World, key: str) -> bool:
    outcome = ACME_SUCCEEDED.model_copy(update={"key": world.k("acme")})
    return await tell_dependant(
        world.client,
        world.sessions,
        world.task_queue,
        StartRow(key, "test-batch", PriorityLevel.NORMAL, 1.0),
        outcome,
    )


async def test_news_for_an_ended_entity_opens_no_new_run(world: World) -> None:
    await world.add("acme", EntityType.ADVERTISERS, status=EntityStatus.SUCCEEDED, dsp_id="adv_0")
    spring = await world.add("spring", EntityType.CAMPAIGNS, refs=["acme"])
    first = await world.start(spring)
    assert (await first.result()).status is EntityStatus.SUCCEEDED

    assert await _tell(world, spring) is False

    latest = await world.handle(spring).describe()
    assert latest.run_id == first.result_run_id


async def test_news_for_an_entity_reopened_after_its_run_completed_starts_a_new_run(
    world: World,
) -> None:
    await world.add("acme", EntityType.ADVERTISERS, status=EntityStatus.SUCCEEDED, dsp_id="adv_0")
    spring = await world.add("spring", EntityType.CAMPAIGNS, refs=["acme"])
    first = await world.start(spring)
    assert (await first.result()).status is EntityStatus.SUCCEEDED
    await world.store_resubmission(spring)

    assert await _tell(world, spring) is True

    rerun = world.handle(spring)
    assert (await rerun.describe()).run_id != first.result_run_id
    assert (await world.result(spring)).payload_version == 2
