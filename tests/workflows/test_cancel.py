"""`cancel`: while waiting on a dependency, while polling, and what it does to dependants."""

from __future__ import annotations

from dsp_integration.contracts import EntityStatus, EntityType
from tests.workflows.world import World

HOUR_LONG_REVIEW = [[(0.0, "pending_review", None), (3600.0, "approved", None)]]


async def test_cancel_while_waiting_on_a_dependency_never_calls_the_dsp(world: World) -> None:
    acme = await world.add("acme", EntityType.ADVERTISERS)  # never started: it stays waiting
    spring = await world.add("spring", EntityType.CAMPAIGNS, refs=["acme"])
    run = await world.start(spring)
    waiting = await world.until_state(spring, lambda s: bool(s.waiting_on))
    assert (waiting.status, waiting.waiting_on) == (EntityStatus.WAITING, [acme])

    await world.cancel(spring, "not this one")
    state = await run.result()

    assert (state.status, state.reason) == (EntityStatus.CANCELLED, "not this one")
    assert world.statuses(spring) == [EntityStatus.CANCELLED]
    assert world.calls == []
    row = await world.row(spring)
    assert (row.status, row.reason, row.dsp_id) == (EntityStatus.CANCELLED, "not this one", None)


async def test_cancel_while_polling_archives_at_the_dsp(world: World) -> None:
    await world.add("acme", EntityType.ADVERTISERS, status=EntityStatus.SUCCEEDED, dsp_id="adv_0")
    banner = await world.add(
        "banner", EntityType.CREATIVES, refs=["acme"], timelines=HOUR_LONG_REVIEW
    )
    run = await world.start(banner)
    await world.until_state(banner, lambda s: s.status is EntityStatus.POLLING)

    await world.cancel(banner)
    state = await run.result()

    assert state.status is EntityStatus.CANCELLED
    assert (state.reason, state.dsp_id, state.dsp_status) == (
        "cancelled by user",
        "cre_1",
        "archived",
    )
    assert world.statuses(banner) == [
        EntityStatus.SUBMITTING,
        EntityStatus.POLLING,
        EntityStatus.CANCELLED,
    ]
    assert [(c.op, c.dsp_id) for c in world.dsp_calls(banner)] == [
        ("submit", "cre_1"),
        ("archive", "cre_1"),
    ]
    assert world.dsp["cre_1"].archived
    assert (await world.row(banner)).dsp_status == "archived"


async def test_cancelled_entity_blocks_its_dependants(world: World) -> None:
    await world.add("acme", EntityType.ADVERTISERS, status=EntityStatus.SUCCEEDED, dsp_id="adv_0")
    banner = await world.add(
        "banner", EntityType.CREATIVES, refs=["acme"], timelines=HOUR_LONG_REVIEW
    )
    await world.add("spring", EntityType.CAMPAIGNS, status=EntityStatus.SUCCEEDED, dsp_id="cmp_0")
    group = await world.add("group", EntityType.AD_GROUPS, refs=["spring", "banner"])
    video = await world.add("video", EntityType.AD_GROUPS, refs=["banner"])
    runs = {key: await world.start(key) for key in (banner, group, video)}
    await world.until_state(banner, lambda s: s.status is EntityStatus.POLLING)
    await world.until_state(group, lambda s: bool(s.waiting_on))
    await world.until_state(video, lambda s: bool(s.waiting_on))

    await world.cancel(banner)

    assert (await runs[banner].result()).status is EntityStatus.CANCELLED
    for key in (group, video):
        state = await runs[key].result()
        assert state.status is EntityStatus.BLOCKED
        assert state.reason == f"dependency '{banner}' ended cancelled: cancelled by user"
        assert (await world.row(key)).blocked_by == banner
        assert world.statuses(key) == [EntityStatus.BLOCKED]
        assert world.dsp_calls(key) == []
    [(outcome, told)] = [(o, r) for o, r in world.told if o.key == banner]
    assert told.told == 2
    assert (outcome.status, outcome.blocked_by) == (EntityStatus.CANCELLED, banner)


async def test_cancel_while_the_post_is_in_flight_archives_what_it_created(
    world: World,
) -> None:
    acme = await world.add("acme", EntityType.ADVERTISERS)
    answer = world.hold_answer(acme, "submit")
    run = await world.start(acme)
    await world.until(lambda: world.answer_held(acme, "submit"))  # it reached the DSP

    await world.cancel(acme)
    await world.until_heard(acme, "cancel")  # the workflow withdrew the call: too late
    answer.set()
    state = await run.result()

    assert (state.status, state.dsp_status) == (EntityStatus.CANCELLED, "archived")
    assert [c.op for c in world.dsp_calls(acme)] == ["submit", "archive"]
    assert (await world.row(acme)).status is EntityStatus.CANCELLED
