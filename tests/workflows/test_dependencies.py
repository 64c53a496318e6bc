"""Waiting on dependencies: a failure blocks the whole chain below it, a dependency that has
already ended is not waited for."""

from __future__ import annotations

from dsp_integration.contracts import EntityStatus, EntityType
from tests.workflows.world import World

CAMPAIGN_FAILS = [(0.0, "pending", None), (10.0, "failed", "budget exceeds the account limit")]


async def test_a_failed_parent_blocks_every_link_of_the_chain(world: World) -> None:
    await world.add("acme", EntityType.ADVERTISERS, status=EntityStatus.SUCCEEDED, dsp_id="adv_0")
    a = await world.add("a", EntityType.CAMPAIGNS, refs=["acme"], timelines=[CAMPAIGN_FAILS])
    b = await world.add("b", EntityType.AD_GROUPS, refs=["a"])
    c = await world.add("c", EntityType.AD_GROUPS, refs=["acme"], depends_on=["b"])
    d = await world.add("d", EntityType.AD_GROUPS, refs=["acme"], depends_on=["c"])
    for key in (d, c, b):
        await world.start(key)
    parent = await world.start(a)

    state = await parent.result()

    assert (state.status, state.reason) == (EntityStatus.FAILED, "budget exceeds the account limit")
    expected = {
        b: f"dependency '{a}' ended failed: budget exceeds the account limit",
        c: f"dependency '{b}' ended blocked (because of '{a}')",
        d: f"dependency '{c}' ended blocked (because of '{a}')",
    }
    for key, reason in expected.items():
        ended = await world.result(key)
        assert (ended.status, ended.reason) == (EntityStatus.BLOCKED, reason)
        row = await world.row(key)
        assert (row.status, row.reason, row.blocked_by) == (EntityStatus.BLOCKED, reason, a)
        assert world.statuses(key) == [EntityStatus.BLOCKED]
        assert world.dsp_calls(key) == []
    # Each told its one dependant (in whatever order the activities' logs completed: b's
    # ending can be logged before a's, whose activity told it).
    assert sorted((o.key, o.status, o.blocked_by, told.told) for o, told in world.told) == [
        (a, EntityStatus.FAILED, a, 1),
        (b, EntityStatus.BLOCKED, a, 1),
        (c, EntityStatus.BLOCKED, a, 1),
    ]


async def test_blocked_by_the_dependency_that_failed_not_by_one_still_running(
    world: World,
) -> None:
    """An ad group whose creative is still under review and whose campaign fails must be
    blocked by the campaign: resubmitting the campaign reopens only what it blocked."""
    await world.add("acme", EntityType.ADVERTISERS, status=EntityStatus.SUCCEEDED, dsp_id="adv_0")
    banner = await world.add(
        "banner",
        EntityType.CREATIVES,
        refs=["acme"],
        timelines=[[(0.0, "pending_review", None), (3600.0, "approved", None)]],
    )
    spring = await world.add(
        "spring", EntityType.CAMPAIGNS, refs=["acme"], timelines=[CAMPAIGN_FAILS]
    )
    group = await world.add("group", EntityType.AD_GROUPS, refs=["banner", "spring"])
    for key in (banner, spring, group):
        await world.start(key)

    state = await world.result(group)

    reason = f"dependency '{spring}' ended failed: budget exceeds the account limit"
    assert (state.status, state.reason) == (EntityStatus.BLOCKED, reason)
    assert (await world.row(group)).blocked_by == spring
    assert (await world.row(banner)).status is EntityStatus.POLLING


async def test_a_dependency_that_already_succeeded_is_not_waited_for(world: World) -> None:
    await world.add("acme", EntityType.ADVERTISERS, status=EntityStatus.SUCCEEDED, dsp_id="adv_7")
    spring = await world.add("spring", EntityType.CAMPAIGNS, refs=["acme"])

    state = await (await world.start(spring)).result()

    assert (state.status, state.dsp_id) == (EntityStatus.SUCCEEDED, "cmp_1")
    assert world.dsp_calls(spring, "submit")[0].body == {"name": "spring", "acme_id": "adv_7"}
    assert world.statuses(spring) == [
        EntityStatus.SUBMITTING,
        EntityStatus.POLLING,
        EntityStatus.SUCCEEDED,
    ]
    history = await world.handle(spring).fetch_history()
    assert not [
        e for e in history.events if e.HasField("workflow_execution_signaled_event_attributes")
    ]


async def test_a_dependency_that_already_failed_blocks_at_once(world: World) -> None:
    await world.add(
        "acme",
        EntityType.ADVERTISERS,
        status=EntityStatus.REJECTED,
        reason="domain is not allowed",
    )
    spring = await world.add("spring", EntityType.CAMPAIGNS, refs=["acme"])

    state = await (await world.start(spring)).result()

    acme = world.k("acme")
    assert (state.status, state.reason) == (
        EntityStatus.BLOCKED,
        f"dependency '{acme}' ended rejected: domain is not allowed",
    )
    assert (await world.row(spring)).blocked_by == acme
    assert world.calls == []
