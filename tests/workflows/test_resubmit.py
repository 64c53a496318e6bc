"""`resubmit` after a rejection: a new payload version, a new DSP request, and the entities
blocked by the rejected one reopened."""

from __future__ import annotations

from dsp_integration.contracts import EntityStatus, EntityType
from tests.workflows.world import World

REVIEW_REJECTS = [(0.0, "pending_review", None), (60.0, "rejected", "logo too small")]
REVIEW_APPROVES = [(0.0, "pending_review", None), (60.0, "approved", None)]
POLLS_PER_REVIEW = 5  # the backoff reaches 60 s on the 5th poll (5, 13, 25.8, 46.3, 79.1 s)


async def add_creative_with_dependants(world: World, **script: object) -> tuple[str, str, str]:
    """A creative, an ad group using it, and an ad group that depends on that one."""
    await world.add("acme", EntityType.ADVERTISERS, status=EntityStatus.SUCCEEDED, dsp_id="adv_0")
    await world.add("spring", EntityType.CAMPAIGNS, status=EntityStatus.SUCCEEDED, dsp_id="cmp_0")
    banner = await world.add("banner", EntityType.CREATIVES, refs=["acme"], **script)  # type: ignore[arg-type]
    group = await world.add("group", EntityType.AD_GROUPS, refs=["spring", "banner"])
    retarget = await world.add(
        "retarget", EntityType.AD_GROUPS, refs=["spring"], depends_on=["group"]
    )
    return banner, group, retarget


async def assert_blocked_by(world: World, banner: str, group: str, retarget: str) -> None:
    for key in (group, retarget):
        state = await world.result(key)
        assert state.status is EntityStatus.BLOCKED
        assert (await world.row(key)).blocked_by == banner
        assert world.dsp_calls(key) == []


async def assert_reopened_and_succeeded(
    world: World, banner: str, group: str, retarget: str
) -> None:
    assert world.reopened == [(banner, sorted([group, retarget]))]
    for key in (group, retarget):
        state = await world.result(key)
        assert (state.status, state.reason) == (EntityStatus.SUCCEEDED, None)
        assert world.statuses(key) == [
            EntityStatus.BLOCKED,
            EntityStatus.SUBMITTING,
            EntityStatus.POLLING,
            EntityStatus.SUCCEEDED,
        ]
        assert (await world.row(key)).blocked_by is None
    assert world.dsp_calls(group, "submit")[0].body["banner_id"] == "cre_1"


async def test_resubmit_after_review_rejection_replaces_the_dsp_entity(world: World) -> None:
    banner, group, retarget = await add_creative_with_dependants(
        world, timelines=[REVIEW_REJECTS, REVIEW_APPROVES]
    )
    first = await world.start(banner)
    for key in (group, retarget):
        await world.start(key)

    rejected = await first.result()
    assert (rejected.status, rejected.reason) == (EntityStatus.REJECTED, "logo too small")
    await assert_blocked_by(world, banner, group, retarget)
    assert (
        await world.row(group)
    ).reason == f"dependency '{banner}' ended rejected: logo too small"

    second = await world.resubmit(banner)
    state = await second.result()

    assert second.result_run_id != first.result_run_id
    assert (state.status, state.payload_version) == (EntityStatus.SUCCEEDED, 2)
    assert (state.dsp_id, state.dsp_status, state.reason) == ("cre_1", "approved", None)
    assert [(r.status, r.payload_version) for r in world.records if r.key == banner] == [
        (EntityStatus.SUBMITTING, 1),
        (EntityStatus.POLLING, 1),
        (EntityStatus.REJECTED, 1),
        (EntityStatus.SUBMITTING, 2),
        (EntityStatus.POLLING, 2),
        (EntityStatus.SUCCEEDED, 2),
    ]
    assert [(c.op, c.dsp_id) for c in world.dsp_calls(banner)] == (
        [("submit", "cre_1")]
        + [("poll", "cre_1")] * POLLS_PER_REVIEW
        + [("replace", "cre_1")]
        + [("poll", "cre_1")] * POLLS_PER_REVIEW
    )
    await assert_reopened_and_succeeded(world, banner, group, retarget)
    assert [e.dsp_id for e in world.dsp.values() if e.key == banner] == ["cre_1"]


async def test_resubmit_after_a_422_posts_again_with_a_new_idempotency_key(
    world: World,
) -> None:
    banner, group, retarget = await add_creative_with_dependants(
        world, reject=["height: must be a positive integer"]
    )
    first = await world.start(banner)
    for key in (group, retarget):
        await world.start(key)

    failed = await first.result()
    assert (failed.status, failed.reason) == (
        EntityStatus.FAILED,
        "height: must be a positive integer",
    )
    await assert_blocked_by(world, banner, group, retarget)

    state = await (await world.resubmit(banner)).result()

    assert (state.status, state.payload_version, state.dsp_id) == (
        EntityStatus.SUCCEEDED,
        2,
        "cre_1",
    )
    submits = world.dsp_calls(banner, "submit")
    assert [(c.idempotency_key, c.outcome) for c in submits] == [
        (f"{banner}:v1", "rejected"),
        (f"{banner}:v2", "ok"),
    ]
    assert world.dsp_calls(banner, "replace") == []
    assert world.statuses(banner) == [
        EntityStatus.SUBMITTING,
        EntityStatus.FAILED,
        EntityStatus.SUBMITTING,
        EntityStatus.POLLING,
        EntityStatus.SUCCEEDED,
    ]
    await assert_reopened_and_succeeded(world, banner, group, retarget)


async def test_resubmit_while_polling_replaces_the_entity_under_review(world: World) -> None:
    await world.add("acme", EntityType.ADVERTISERS, status=EntityStatus.SUCCEEDED, dsp_id="adv_0")
    banner = await world.add(
        "banner",
        EntityType.CREATIVES,
        refs=["acme"],
        timelines=[[(0.0, "pending_review", None), (3600.0, "approved", None)], REVIEW_APPROVES],
    )
    first = await world.start(banner)
    await world.until_state(banner, lambda s: s.status is EntityStatus.POLLING)

    second = await world.resubmit(banner)
    state = await second.result()

    assert second.result_run_id == first.result_run_id  # the running workflow took it over
    assert (state.status, state.payload_version, state.dsp_id) == (
        EntityStatus.SUCCEEDED,
        2,
        "cre_1",
    )
    assert [c.op for c in world.dsp_calls(banner)] == (
        ["submit", "replace"] + ["poll"] * POLLS_PER_REVIEW
    )
    assert [(r.status, r.payload_version) for r in world.records if r.key == banner] == [
        (EntityStatus.SUBMITTING, 1),
        (EntityStatus.POLLING, 1),
        (EntityStatus.SUBMITTING, 2),
        (EntityStatus.POLLING, 2),
        (EntityStatus.SUCCEEDED, 2),
    ]
    assert world.reopened == [(banner, [])]


async def test_resubmit_while_the_post_is_in_flight_makes_no_second_dsp_entity(
    world: World,
) -> None:
    """The client stores version 2 while version 1's POST waits (for a rate-limit slot,
    say): the id that POST returns must not be lost, or version 2 POSTs a duplicate."""
    await world.add("acme", EntityType.ADVERTISERS, status=EntityStatus.SUCCEEDED, dsp_id="adv_0")
    banner = await world.add(
        "banner", EntityType.CREATIVES, refs=["acme"], timelines=[REVIEW_APPROVES] * 2
    )
    answer = world.hold_answer(banner, "submit")
    await world.start(banner)
    await world.until(lambda: world.answer_held(banner, "submit"))  # it reached the DSP

    second = await world.resubmit(banner)
    await world.until_heard(banner, "resubmit")  # the call was withdrawn: too late
    answer.set()
    state = await second.result()

    assert (state.status, state.payload_version) == (EntityStatus.SUCCEEDED, 2)
    assert [e.dsp_id for e in world.dsp.values() if e.key == banner] == ["cre_1"]
    assert state.dsp_id == "cre_1"
    assert [(c.op, c.dsp_id) for c in world.dsp_calls(banner)][:2] == [
        ("submit", "cre_1"),
        ("replace", "cre_1"),
    ]
    assert world.stale_records == []  # version 1's answer goes straight to version 2


async def test_resubmit_after_cancel_posts_a_new_entity_for_the_archived_one(
    world: World,
) -> None:
    await world.add("acme", EntityType.ADVERTISERS, status=EntityStatus.SUCCEEDED, dsp_id="adv_0")
    banner = await world.add(
        "banner",
        EntityType.CREATIVES,
        refs=["acme"],
        timelines=[[(0.0, "pending_review", None), (3600.0, "approved", None)], REVIEW_APPROVES],
    )
    first = await world.start(banner)
    await world.until_state(banner, lambda s: s.status is EntityStatus.POLLING)
    await world.cancel(banner)
    assert (await first.result()).status is EntityStatus.CANCELLED

    state = await (await world.resubmit(banner)).result()

    assert (state.status, state.payload_version, state.dsp_id) == (
        EntityStatus.SUCCEEDED,
        2,
        "cre_2",
    )
    assert [(c.op, c.dsp_id, c.idempotency_key) for c in world.dsp_calls(banner)][:3] == [
        ("submit", "cre_1", f"{banner}:v1"),
        ("archive", "cre_1", None),
        ("submit", "cre_2", f"{banner}:v2"),
    ]


async def test_a_resubmit_cancels_the_queued_post_of_the_older_version(world: World) -> None:
    """Version 1's POST waits for its slot while version 2 is stored: it is cancelled before
    it leaves (no old payload reaches the DSP), and version 2 is POSTed instead. Nothing of
    version 1 reaches the ad group, which waits for version 2's success."""
    await world.add("acme", EntityType.ADVERTISERS, status=EntityStatus.SUCCEEDED, dsp_id="adv_0")
    banner = await world.add(
        "banner", EntityType.CREATIVES, refs=["acme"], timelines=[REVIEW_APPROVES]
    )
    group = await world.add("group", EntityType.AD_GROUPS, refs=["banner"])
    world.gate(banner, "submit")  # never opened: the slot does not come before the resubmit
    await world.start(group)
    await world.until_state(group, lambda s: bool(s.waiting_on))
    await world.start(banner)
    await world.until_state(banner, lambda s: s.status is EntityStatus.SUBMITTING)

    second = await world.resubmit(banner)
    state = await second.result()

    assert (state.status, state.payload_version) == (EntityStatus.SUCCEEDED, 2)
    assert [(c.op, c.idempotency_key, c.outcome) for c in world.dsp_calls(banner)][:2] == [
        ("submit", f"{banner}:v1", "cancelled"),
        ("submit", f"{banner}:v2", "ok"),
    ]
    assert [o.status for o, _ in world.told if o.key == banner] == [
        EntityStatus.WAITING,
        EntityStatus.SUCCEEDED,
    ]
    assert (await world.result(group)).status is EntityStatus.SUCCEEDED


async def test_the_outcome_of_a_superseded_version_reaches_no_dependant(world: World) -> None:
    """The client has stored version 2 but its signal has not arrived when version 1 is
    rejected: the row keeps version 2 waiting, and no dependant hears of version 1."""
    await world.add("acme", EntityType.ADVERTISERS, status=EntityStatus.SUCCEEDED, dsp_id="adv_0")
    banner = await world.add(
        "banner",
        EntityType.CREATIVES,
        refs=["acme"],
        timelines=[[(0.0, "pending_review", None), (60.0, "rejected", "blurry")]],
    )
    group = await world.add("group", EntityType.AD_GROUPS, refs=["banner"])
    await world.start(group)
    await world.until_state(group, lambda s: bool(s.waiting_on))
    first = await world.start(banner)
    await world.until_state(banner, lambda s: s.status is EntityStatus.POLLING)
    await world.store_resubmission(banner)  # stored; the resubmit signal is not sent yet

    assert (await first.result()).status is EntityStatus.REJECTED

    [stale] = world.stale_records
    assert (stale.status, stale.payload_version) == (EntityStatus.REJECTED, 1)
    assert world.told == []
    assert (await world.row(banner)).status is EntityStatus.WAITING
    assert (await world.state(group)).waiting_on == [banner]
