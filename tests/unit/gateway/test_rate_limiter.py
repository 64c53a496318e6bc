"""The limiter's slot on a real PostgreSQL: whatever ends the block, the slot is completed
(its count moves from "in flight" to "a window after the answer")."""

from __future__ import annotations

import asyncio

import pytest

from dsp_integration.database import audit_log, rate_ledger
from dsp_integration.database.audit_log import RequestAnswer, RequestEntry
from dsp_integration.database.engine import SessionFactory
from dsp_integration.gateway.rate_limiter import SharedRateLimiter, rate_margin, slot_hold

WINDOW = 60.0


async def counted_after_its_answer(sessions: SessionFactory) -> bool:
    """The only slot counts for a window after its answer, no longer as in flight. (A
    completed slot counts from a moment measured a little after its answer: look a moment
    later.)"""
    await asyncio.sleep(0.1)
    return WINDOW - 5 < await refusal_wait(sessions) <= WINDOW


async def refusal_wait(sessions: SessionFactory) -> float:
    async with sessions.begin() as session:
        decision = await rate_ledger.try_take_slot(session, limit=1, window=WINDOW)
    assert not decision.granted
    return decision.wait_seconds


async def test_a_slot_in_the_block_is_in_flight_and_completed_when_it_ends(
    clean_database: SessionFactory,
) -> None:
    limiter = SharedRateLimiter(clean_database, limit=1, window=WINDOW, hold=30.0)
    async with limiter.slot() as slot:
        assert await refusal_wait(clean_database) == rate_ledger.IN_FLIGHT_RECHECK_SECONDS
    assert slot.completed
    assert await counted_after_its_answer(clean_database)


async def test_a_block_that_raises_still_completes_its_slot(
    clean_database: SessionFactory,
) -> None:
    limiter = SharedRateLimiter(clean_database, limit=1, window=WINDOW, hold=30.0)
    with pytest.raises(RuntimeError):
        async with limiter.slot():
            raise RuntimeError("the send blew up")
    assert await counted_after_its_answer(clean_database)


async def test_a_slot_completes_once(clean_database: SessionFactory) -> None:
    limiter = SharedRateLimiter(clean_database, limit=1, window=WINDOW, hold=30.0)
    async with limiter.slot() as slot:
        await slot.observe(remaining=5, reset=10.0)
        await slot.complete()
    assert await counted_after_its_answer(clean_database)


def test_the_policy_derives_from_the_dsp_settings() -> None:
    assert rate_margin(60.0) == pytest.approx(0.06)
    assert slot_hold(10.0) == 30.0


async def test_a_slot_taken_for_a_request_answers_its_audit_row_as_it_completes(
    clean_database: SessionFactory,
) -> None:
    limiter = SharedRateLimiter(clean_database, limit=1, window=WINDOW, hold=30.0)
    entry = RequestEntry("adv", "POST", "/v1/advertisers", {"name": "Acme"}, "adv:v1")
    async with limiter.slot(entry) as slot:
        slot.leaving()
        await slot.complete(RequestAnswer(201, '{"id": "adv_1"}', None))
    assert await counted_after_its_answer(clean_database)
    async with clean_database() as session:
        [row] = await audit_log.all_requests(session)
    assert row.id == slot.audit_id and row.response_status == 201
    assert row.finished_at is not None and row.idempotency_key == "adv:v1"


@pytest.mark.parametrize("left", [False, True])
async def test_a_slot_completed_without_an_answer_keeps_the_audit_row_only_if_it_left(
    clean_database: SessionFactory, left: bool
) -> None:
    limiter = SharedRateLimiter(clean_database, limit=1, window=WINDOW, hold=30.0)
    entry = RequestEntry("adv", "GET", "/v1/advertisers/adv_1/status", None, None)
    async with limiter.slot(entry) as slot:
        if left:
            slot.leaving()
    assert await counted_after_its_answer(clean_database)
    async with clean_database() as session:
        rows = await audit_log.all_requests(session)
    assert [row.response_status for row in rows] == ([None] if left else [])
