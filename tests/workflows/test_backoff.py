"""The workflow waits exactly as long as the planner says between two polls."""

from __future__ import annotations

from itertools import pairwise

import pytest

from dsp_integration.contracts import EntityStatus, EntityType
from tests.workflows.world import World

PLANNED = [3.0, 7.0, 15.0, 40.0, 100.0]


async def test_polls_follow_the_growing_intervals_of_the_planner(world: World) -> None:
    world.plan = lambda polls: PLANNED[polls]
    await world.add("acme", EntityType.ADVERTISERS, status=EntityStatus.SUCCEEDED, dsp_id="adv_0")
    spring = await world.add(
        "spring",
        EntityType.CAMPAIGNS,
        refs=["acme"],
        timelines=[[(0, "pending", None), (150, "active", None)]],
    )

    state = await (await world.start(spring)).result()

    assert (state.status, state.polls) == (EntityStatus.SUCCEEDED, 5)
    calls = world.dsp_calls(spring)
    assert [c.op for c in calls] == ["submit"] + ["poll"] * 5
    gaps = [(b.at - a.at).total_seconds() for a, b in pairwise(calls)]
    assert gaps == pytest.approx(PLANNED, abs=0.5)
    assert [p.polls for p in world.plans] == [0, 1, 2, 3, 4]
    assert {p.entity_type for p in world.plans} == {EntityType.CAMPAIGNS}
