"""The last word wins (issue 9): each user action against each stage a DSP call can be in,
on the real queue table; only the DSP is faked. Each test failed on the code before it."""

from __future__ import annotations

from dsp_integration.contracts import EntityStatus, EntityType
from tests.workflows.world import World

REVIEW_APPROVES = [(0.0, "pending_review", None), (60.0, "approved", None)]
REVIEW_REJECTS = [(0.0, "pending_review", None), (60.0, "rejected", "logo too small")]
PENDING_THEN_ACTIVE = [(0.0, "pending", None), (10.0, "active", None)]
PENDING_THEN_FAILED = [(0.0, "pending", None), (10.0, "failed", "budget too small")]


def live(world: World, key: str) -> list[str]:
    return [e.dsp_id for e in world.dsp.values() if e.key == key and not e.archived]


async def test_a_cancel_before_the_post_leaves_sends_nothing(world: World) -> None:
    acme = await world.add("acme", EntityType.ADVERTISERS)
    world.gate(acme, "submit")  # the POST waits for a rate-limit slot, which never comes
    run = await world.start(acme)
    await world.until_state(acme, lambda s: s.status is EntityStatus.SUBMITTING)

    await world.cancel(acme)
    state = await run.result()

    assert state.status is EntityStatus.CANCELLED
    assert [(c.op, c.outcome) for c in world.dsp_calls(acme)] == [("submit", "cancelled")]
    assert world.dsp == {}
    assert (await world.row(acme)).status is EntityStatus.CANCELLED


async def test_a_cancel_after_the_post_left_archives_what_it_created(world: World) -> None:
    acme = await world.add("acme", EntityType.ADVERTISERS)
    answer = world.hold_answer(acme)
    run = await world.start(acme)
    await world.until(lambda: bool(world.dsp))  # the POST reached the DSP; no answer yet

    await world.cancel(acme)
    await world.until_heard(acme, "cancel")  # the cancel is taken before the answer comes
    answer.set()
    state = await run.result()

    assert (state.status, state.dsp_status) == (EntityStatus.CANCELLED, "archived")
    assert [c.op for c in world.dsp_calls(acme)] == ["submit", "archive"]
    assert live(world, acme) == []


async def test_a_cancel_after_a_post_whose_answer_was_lost_archives_what_it_created(
    world: World,
) -> None:
    """The first POST created the entity but its answer was lost; the retry waits for its
    slot when the user cancels. The audit trail says the request may have landed, so the
    same Idempotency-Key is sent again to learn the id, and that entity is archived."""
    acme = await world.add("acme", EntityType.ADVERTISERS)
    world.lose_answers(acme)
    run = await world.start(acme)
    await world.until(lambda: bool(world.dsp_calls(acme)))
    retry = world.gate(acme, "submit")
    await world.skip_time(5)  # past the retry's backoff
    await world.until(lambda: len(world.dsp_calls(acme)) == 2)

    await world.cancel(acme)
    await world.until_heard(acme, "cancel")
    retry.set()
    state = await run.result()

    assert state.status is EntityStatus.CANCELLED
    ops = [(c.op, c.outcome) for c in world.dsp_calls(acme)]
    assert ops[0] == ("submit", "lost") and ops[-1] == ("archive", "ok")
    assert len({e.dsp_id for e in world.dsp.values()}) == 1  # one entity, never a second
    assert live(world, acme) == []


async def test_cancel_then_resubmit_while_the_delete_is_queued_ends_in_the_new_version(
    world: World,
) -> None:
    """Was: `_archive` read the cleared cancel request, every replay failed, the workflow
    stayed running and the dependants were never told."""
    await world.add("acme", EntityType.ADVERTISERS, status=EntityStatus.SUCCEEDED, dsp_id="adv_0")
    banner = await world.add(
        "banner", EntityType.CREATIVES, refs=["acme"], timelines=[REVIEW_APPROVES] * 2
    )
    group = await world.add("group", EntityType.AD_GROUPS, refs=["banner"])
    await world.start(group)
    run = await world.start(banner)
    await world.until_state(banner, lambda s: s.status is EntityStatus.POLLING)
    delete_queued = world.gate(banner, "archive")
    await world.cancel(banner)
    await world.until_state(banner, lambda s: bool(world.dsp_calls(banner, "archive")))

    await world.resubmit(banner)
    delete_queued.set()
    state = await world.result(banner)

    assert (state.status, state.payload_version) == (EntityStatus.SUCCEEDED, 2)
    assert [c.op for c in world.dsp_calls(banner)][:3] == ["submit", "poll", "archive"] or [
        c.op for c in world.dsp_calls(banner)
    ][:2] == ["submit", "archive"]
    assert len(live(world, banner)) == 1
    assert (await world.result(group)).status is EntityStatus.SUCCEEDED
    assert run.result_run_id is not None


async def test_resubmitting_the_blocked_middle_of_a_chain_reopens_what_it_blocked(
    world: World,
) -> None:
    """creative (rejected) <- ad group <- follower. The ad group is resubmitted without the
    creative and succeeds: the follower, blocked because of it, goes back to waiting and
    succeeds too (before, it stayed blocked: reopening matched the root cause only)."""
    await world.add("acme", EntityType.ADVERTISERS, status=EntityStatus.SUCCEEDED, dsp_id="adv_0")
    await world.add("spring", EntityType.CAMPAIGNS, status=EntityStatus.SUCCEEDED, dsp_id="cmp_0")
    banner = await world.add(
        "banner", EntityType.CREATIVES, refs=["acme"], timelines=[REVIEW_REJECTS]
    )
    group = await world.add(
        "group",
        EntityType.AD_GROUPS,
        refs=["spring", "banner"],
        timelines=[PENDING_THEN_ACTIVE],
    )
    follower = await world.add(
        "follower",
        EntityType.AD_GROUPS,
        refs=["spring"],
        depends_on=["group"],
        timelines=[PENDING_THEN_ACTIVE],
    )
    for key in (follower, group, banner):
        await world.start(key)
    assert (await world.result(follower)).status is EntityStatus.BLOCKED
    assert (await world.row(group)).status is EntityStatus.BLOCKED

    await world.resubmit(group, refs=["spring"])

    assert (await world.result(group)).status is EntityStatus.SUCCEEDED
    assert (await world.result(follower)).status is EntityStatus.SUCCEEDED
    assert world.reopened[-1] == (group, [follower])


async def test_a_parents_resubmit_holds_back_a_dependant_whose_post_is_queued(
    world: World,
) -> None:
    """The campaign succeeded and released its ad group, whose POST waits for a slot; then
    the campaign is resubmitted. The queued POST is cancelled (it would only meet `409
    reference_not_ready` while the campaign is processed again), the ad group waits again,
    and when the new version fails it ends `blocked`, as the entity format says."""
    await world.add("acme", EntityType.ADVERTISERS, status=EntityStatus.SUCCEEDED, dsp_id="adv_0")
    spring = await world.add(
        "spring",
        EntityType.CAMPAIGNS,
        refs=["acme"],
        timelines=[PENDING_THEN_ACTIVE, PENDING_THEN_FAILED],
    )
    group = await world.add("group", EntityType.AD_GROUPS, refs=["spring"])
    queued = world.gate(group, "submit")
    await world.start(group)
    await world.start(spring)
    await world.skip_time(30)  # the campaign's review
    await world.until_state(group, lambda s: s.status is EntityStatus.SUBMITTING)

    await world.resubmit(spring)
    await world.until_state(group, lambda s: s.status is EntityStatus.WAITING, within=10)
    queued.set()

    assert (await world.result(spring)).status is EntityStatus.FAILED
    state = await world.result(group)
    assert state.status is EntityStatus.BLOCKED
    assert state.reason == f"dependency '{spring}' ended failed: budget too small"
    assert [(c.op, c.outcome) for c in world.dsp_calls(group)] == [("submit", "cancelled")]
    assert [(o.status, o.payload_version) for o, _ in world.told if o.key == spring] == [
        (EntityStatus.SUCCEEDED, 1),
        (EntityStatus.WAITING, 2),
        (EntityStatus.FAILED, 2),
    ]
