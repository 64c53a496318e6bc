"""An entity's DSP calls run on its seat's task queue, with its seat's workers, and its polls
are planned against its seat's budget."""

from __future__ import annotations

from dsp_integration.contracts import DEFAULT_SEAT, EntityStatus, EntityType, dsp_task_queue
from tests.workflows.world import SECOND_SEAT, World


async def test_each_entity_calls_the_dsp_on_its_seats_queue(world: World) -> None:
    acme = await world.add("acme", EntityType.ADVERTISERS)
    spring = await world.add("spring", EntityType.CAMPAIGNS, seat=SECOND_SEAT)
    banner = await world.add("banner", EntityType.CREATIVES, seat=SECOND_SEAT)
    for key in (acme, spring, banner):
        await world.start(key)
    for key in (acme, spring, banner):
        assert (await world.result(key)).status is EntityStatus.SUCCEEDED

    queues = {key: {call.task_queue for call in world.dsp_calls(key)} for key in world.keys}
    assert queues == {
        acme: {dsp_task_queue(world.task_queue, DEFAULT_SEAT)},
        spring: {dsp_task_queue(world.task_queue, SECOND_SEAT)},
        banner: {dsp_task_queue(world.task_queue, SECOND_SEAT)},
    }
    # Polls are planned against their own seat's budget.
    assert {plan.seat for plan in world.plans if plan.key == banner} == {SECOND_SEAT}
    assert {plan.seat for plan in world.plans if plan.key == spring} == {SECOND_SEAT}
