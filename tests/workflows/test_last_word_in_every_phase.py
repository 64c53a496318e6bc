"""The last word wins in every phase (issue 21): a user's cancel or resubmit against a DSP
answer already on its way back (POST, status read, PUT, DELETE), against a call held before
it leaves, and while waiting for a resubmitted dependency. Only the DSP is faked; each test
waits for the workflow to have taken the user's word (`until_heard`) before the held answer
is released, so the order of the race is the one the test names.

Every test checks the fake DSP's record of "at most one live entity per key at every moment"
(`World.live_breaches`): the fake notes each entity created while another of the key lived."""

from __future__ import annotations

import asyncio

import pytest

from dsp_integration.contracts import EntityStatus, EntityType
from tests.workflows.world import Timeline, World

REVIEW_APPROVES = [(0.0, "pending_review", None), (60.0, "approved", None)]
APPROVED_AT_FIRST_POLL = [(0.0, "pending_review", None), (1.0, "approved", None)]
PENDING_THEN_ACTIVE = [(0.0, "pending", None), (10.0, "active", None)]
HOUR_LONG_REVIEW = [(0.0, "pending_review", None), (3600.0, "approved", None)]
HOUR_LONG_PENDING = [(0.0, "pending", None), (3600.0, "active", None)]


async def assert_one_live_entity_at_every_moment(world: World) -> None:
    assert world.live_breaches == []
    assert await world.unknown_entities() == []


async def succeeded_advertiser(world: World, name: str = "acme") -> str:
    """An advertiser run to `succeeded` at v1 (POSTed, answered `active`)."""
    key = await world.add(name, EntityType.ADVERTISERS)
    await world.start(key)
    state = await world.result(key)
    assert (state.status, state.dsp_id) == (EntityStatus.SUCCEEDED, "adv_1")
    return key


async def creative_under_review(world: World, timeline: Timeline = HOUR_LONG_REVIEW) -> str:
    """A creative POSTed and polling (its advertiser succeeded before the test)."""
    await world.add("acme", EntityType.ADVERTISERS, status=EntityStatus.SUCCEEDED, dsp_id="adv_0")
    banner = await world.add("banner", EntityType.CREATIVES, refs=["acme"], timelines=[timeline])
    await world.start(banner)
    await world.until_state(banner, lambda s: s.status is EntityStatus.POLLING)
    return banner


# --- a. a resubmit while a POST's answer is on its way ------------------------------------------
async def test_a_resubmit_while_an_advertisers_post_answers_active_puts_v2_on_that_entity(
    world: World,
) -> None:
    """Was: the answer `active` was terminal, nothing recorded its id, and v2 was POSTed as a
    second live advertiser, the first one's id kept nowhere."""
    acme = await world.add("acme", EntityType.ADVERTISERS)
    answer = await world.held_answer_after(acme, "submit", world.start(acme))

    await world.resubmit(acme, changes={"budget": 2})
    await world.until_heard(acme, "resubmit")
    answer.set()
    state = await world.result(acme)

    assert (state.status, state.payload_version, state.dsp_id) == (
        EntityStatus.SUCCEEDED,
        2,
        "adv_1",
    )
    assert [(c.op, c.dsp_id) for c in world.dsp_calls(acme) if c.op != "poll"] == [
        ("submit", "adv_1"),
        ("replace", "adv_1"),
    ]
    assert world.dsp["adv_1"].body == {"name": "acme", "budget": 2}
    assert list(world.dsp) == ["adv_1"]
    row = await world.row(acme)
    assert (row.status, row.payload_version, row.dsp_id) == (EntityStatus.SUCCEEDED, 2, "adv_1")
    await assert_one_live_entity_at_every_moment(world)


async def test_a_resubmit_while_a_campaigns_post_answers_pending_puts_v2_on_that_entity(
    world: World,
) -> None:
    await world.add("acme", EntityType.ADVERTISERS, status=EntityStatus.SUCCEEDED, dsp_id="adv_0")
    spring = await world.add(
        "spring", EntityType.CAMPAIGNS, refs=["acme"], timelines=[PENDING_THEN_ACTIVE] * 2
    )
    answer = await world.held_answer_after(spring, "submit", world.start(spring))

    await world.resubmit(spring, changes={"budget": 2})
    await world.until_heard(spring, "resubmit")
    answer.set()
    state = await world.result(spring)

    assert (state.status, state.payload_version, state.dsp_id) == (
        EntityStatus.SUCCEEDED,
        2,
        "cmp_1",
    )
    assert [c.op for c in world.dsp_calls(spring, "submit")] == ["submit"]
    [put] = world.dsp_calls(spring, "replace")
    assert put.dsp_id == "cmp_1"
    assert world.dsp["cmp_1"].body == {"name": "spring", "acme_id": "adv_0", "budget": 2}
    assert list(world.dsp) == ["cmp_1"]
    await assert_one_live_entity_at_every_moment(world)


# --- b. a cancel while a status read answers `approved` ----------------------------------------
async def test_a_cancel_while_a_status_read_answers_approved_archives_and_blocks_dependants(
    world: World,
) -> None:
    """Was: the loop checked only for a resubmit after a terminal read; the creative ended
    `succeeded`, live at the DSP, and its dependants were created."""
    await world.add("spring", EntityType.CAMPAIGNS, status=EntityStatus.SUCCEEDED, dsp_id="cmp_0")
    await world.add("acme", EntityType.ADVERTISERS, status=EntityStatus.SUCCEEDED, dsp_id="adv_0")
    banner = await world.add(
        "banner", EntityType.CREATIVES, refs=["acme"], timelines=[APPROVED_AT_FIRST_POLL]
    )
    group = await world.add("group", EntityType.AD_GROUPS, refs=["spring", "banner"])
    read = world.hold_answer(banner, "poll")
    await world.start(group)
    await world.start(banner)
    await world.until_state(group, lambda s: bool(s.waiting_on))
    await world.until_state(banner, lambda s: s.status is EntityStatus.POLLING)
    # Time passes to the first status read (the test server's clock stops while it is held):
    # the DSP says `approved`, and the answer is on its way back.
    time_passing = asyncio.create_task(world.skip_time(10))
    await world.until(lambda: world.answer_held(banner, "poll") is not None)

    await world.cancel(banner)
    await world.until_heard(banner, "cancel")
    read.set()
    await time_passing
    state = await world.result(banner)

    assert (state.status, state.dsp_status) == (EntityStatus.CANCELLED, "archived")
    assert world.live(banner) == []
    assert [c.op for c in world.dsp_calls(banner)] == ["submit", "poll", "archive"]
    dependant = await world.result(group)
    assert dependant.status is EntityStatus.BLOCKED
    assert dependant.reason == f"dependency '{banner}' ended cancelled: cancelled by user"
    assert world.dsp_calls(group) == []
    await assert_one_live_entity_at_every_moment(world)


# --- c. a cancel while waiting for a resubmitted dependency ------------------------------------
async def test_a_cancel_while_waiting_for_a_resubmitted_campaign_archives_the_earlier_version(
    world: World,
) -> None:
    """Was: the ad group was recorded `cancelled` with its v1 entity still active."""
    await world.add("acme", EntityType.ADVERTISERS, status=EntityStatus.SUCCEEDED, dsp_id="adv_0")
    spring = await world.add(
        "spring",
        EntityType.CAMPAIGNS,
        refs=["acme"],
        timelines=[PENDING_THEN_ACTIVE, HOUR_LONG_PENDING],
    )
    group = await world.add("group", EntityType.AD_GROUPS, refs=["spring"])
    await world.start(group)
    await world.start(spring)
    assert (await world.result(group)).status is EntityStatus.SUCCEEDED
    [group_v1] = world.live(group)

    await world.resubmit(spring, changes={"budget": 2})
    await world.until_state(
        spring, lambda s: s.payload_version == 2 and s.status is EntityStatus.POLLING
    )
    await world.resubmit(group, changes={"bid": 2})
    await world.until_state(group, lambda s: s.waiting_on == [spring])
    await world.cancel(group)
    state = await world.result(group, within=30)

    assert state.status is EntityStatus.CANCELLED
    assert world.dsp[group_v1].archived
    assert world.live(group) == []
    assert [c.op for c in world.dsp_calls(group) if c.op != "poll"] == ["submit", "archive"]
    await assert_one_live_entity_at_every_moment(world)


# --- d. a PUT's answer held; a DELETE's answer held ---------------------------------------------
async def test_a_cancel_while_a_puts_answer_is_held_archives_the_entity(world: World) -> None:
    acme = await succeeded_advertiser(world)
    answer = await world.held_answer_after(
        acme, "replace", world.resubmit(acme, changes={"budget": 2})
    )

    await world.cancel(acme)
    await world.until_heard(acme, "cancel")
    answer.set()
    state = await world.result(acme)

    assert (state.status, state.dsp_status) == (EntityStatus.CANCELLED, "archived")
    assert [c.op for c in world.dsp_calls(acme) if c.op != "poll"] == [
        "submit",
        "replace",
        "archive",
    ]
    assert world.live(acme) == []
    assert (await world.row(acme)).status is EntityStatus.CANCELLED
    await assert_one_live_entity_at_every_moment(world)


async def test_a_resubmit_while_a_puts_answer_is_held_puts_the_newest_payload(
    world: World,
) -> None:
    acme = await succeeded_advertiser(world)
    answer = await world.held_answer_after(
        acme, "replace", world.resubmit(acme, changes={"budget": 2})
    )

    await world.resubmit(acme, changes={"budget": 3})
    await world.until_heard(acme, "resubmit", count=2)
    answer.set()
    state = await world.result(acme)

    assert (state.status, state.payload_version, state.dsp_id) == (
        EntityStatus.SUCCEEDED,
        3,
        "adv_1",
    )
    puts = world.dsp_calls(acme, "replace")
    assert [(c.dsp_id, c.body) for c in puts] == [
        ("adv_1", {"name": "acme", "budget": 2}),
        ("adv_1", {"name": "acme", "budget": 3}),
    ]
    assert len(world.dsp_calls(acme, "submit")) == 1
    assert list(world.dsp) == ["adv_1"]
    assert world.dsp["adv_1"].body == {"name": "acme", "budget": 3}
    await assert_one_live_entity_at_every_moment(world)


async def test_a_resubmit_while_a_cancels_delete_is_held_posts_the_new_version_afresh(
    world: World,
) -> None:
    """The DELETE reached the DSP: the entity is gone, so the new version is a new entity."""
    banner = await creative_under_review(world)
    answer = await world.held_answer_after(banner, "archive", world.cancel(banner))

    await world.resubmit(banner, changes={"height": 250})
    await world.until_heard(banner, "resubmit")
    answer.set()
    state = await world.result(banner)

    assert (state.status, state.payload_version) == (EntityStatus.SUCCEEDED, 2)
    assert world.dsp["cre_1"].archived
    assert state.dsp_id is not None and state.dsp_id != "cre_1"
    assert world.live(banner) == [state.dsp_id]
    assert world.dsp[state.dsp_id].body["height"] == 250
    assert [c.op for c in world.dsp_calls(banner) if c.op != "poll"] == [
        "submit",
        "archive",
        "submit",
    ]
    await assert_one_live_entity_at_every_moment(world)


# --- e. the DSP refuses the DELETE ------------------------------------------------------------
async def test_a_refused_archive_ends_failed_not_cancelled_and_keeps_the_dsp_id(
    world: World,
) -> None:
    """Was: `_archive` logged the 4xx and ended `cancelled` with the entity still live."""
    banner = await creative_under_review(world)
    world.refuse(banner, "archive", "409 conflict: the creative is serving")

    await world.cancel(banner)
    state = await world.result(banner)

    assert state.status is EntityStatus.FAILED
    assert state.reason is not None and "archive" in state.reason.lower()
    assert "409 conflict: the creative is serving" in state.reason
    row = await world.row(banner)
    assert (row.status, row.dsp_id) == (EntityStatus.FAILED, "cre_1")
    assert world.live(banner) == ["cre_1"]
    assert [(c.op, c.outcome) for c in world.dsp_calls(banner) if c.op != "poll"] == [
        ("submit", "ok"),
        ("archive", "refused"),
    ]


# --- f. a cancel before / after a held request leaves -----------------------------------------
async def test_a_cancel_before_a_post_leaves_sends_nothing(world: World) -> None:
    acme = await world.add("acme", EntityType.ADVERTISERS)
    world.gate(acme, "submit")  # waiting for its rate-limit slot, which never comes
    await world.start(acme)
    await world.until(lambda: bool(world.dsp_calls(acme, "submit")))

    await world.cancel(acme)
    state = await world.result(acme)

    assert state.status is EntityStatus.CANCELLED
    assert [(c.op, c.outcome) for c in world.dsp_calls(acme)] == [("submit", "cancelled")]
    assert world.dsp == {}


async def test_a_cancel_after_a_post_left_archives_what_it_created(world: World) -> None:
    acme = await world.add("acme", EntityType.ADVERTISERS)
    answer = await world.held_answer_after(acme, "submit", world.start(acme))

    await world.cancel(acme)
    await world.until_heard(acme, "cancel")
    answer.set()
    state = await world.result(acme)

    assert (state.status, state.dsp_status) == (EntityStatus.CANCELLED, "archived")
    assert [c.op for c in world.dsp_calls(acme)] == ["submit", "archive"]
    assert world.live(acme) == []


async def test_a_cancel_before_a_put_leaves_sends_no_put_and_archives_the_entity(
    world: World,
) -> None:
    acme = await succeeded_advertiser(world)
    world.gate(acme, "replace")
    await world.resubmit(acme, changes={"budget": 2})
    await world.until(lambda: bool(world.dsp_calls(acme, "replace")))

    await world.cancel(acme)
    state = await world.result(acme)

    assert state.status is EntityStatus.CANCELLED
    assert [(c.op, c.outcome) for c in world.dsp_calls(acme) if c.op != "poll"] == [
        ("submit", "ok"),
        ("replace", "cancelled"),
        ("archive", "ok"),
    ]
    assert world.dsp["adv_1"].body == {"name": "acme"}  # v2 never reached the DSP
    assert world.live(acme) == []


@pytest.mark.parametrize("held", ["before it leaves", "after it left"])
async def test_a_cancel_around_a_status_read_archives_the_entity(world: World, held: str) -> None:
    banner = await creative_under_review(world, REVIEW_APPROVES)
    release = (
        world.gate(banner, "poll")
        if held == "before it leaves"
        else world.hold_answer(banner, "poll")
    )
    time_passing = asyncio.create_task(world.skip_time(10))  # to the first status read
    if held == "before it leaves":
        await world.until(lambda: bool(world.dsp_calls(banner, "poll")))
    else:
        await world.until(lambda: world.answer_held(banner, "poll") is not None)

    await world.cancel(banner)
    await world.until_heard(banner, "cancel")
    if held == "after it left":
        release.set()  # a read held at its gate is left there: the cancel must reach it
    state = await world.result(banner)
    await time_passing

    assert (state.status, state.dsp_status) == (EntityStatus.CANCELLED, "archived")
    outcome = "cancelled" if held == "before it leaves" else "ok"
    assert [(c.op, c.outcome) for c in world.dsp_calls(banner)] == [
        ("submit", "ok"),
        ("poll", outcome),
        ("archive", "ok"),
    ]
    assert world.live(banner) == []
