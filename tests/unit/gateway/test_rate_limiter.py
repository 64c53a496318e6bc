"""The limiter's slot on a real PostgreSQL: whatever ends the block, the slot is completed
(its count moves from "in flight" to "a window after the answer")."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import SecretStr

from dsp_integration.config.seats import Seat
from dsp_integration.database import audit_log, rate_ledger
from dsp_integration.database.audit_log import RequestAnswer, RequestEntry
from dsp_integration.database.engine import SessionFactory
from dsp_integration.gateway.rate_limiter import SharedRateLimiter, rate_margin, slot_hold

WINDOW = 60.0
SEAT = "default"


async def counted_after_its_answer(sessions: SessionFactory) -> bool:
    """The only slot counts for a window after its answer, no longer as in flight. (A
    completed slot counts from a moment measured a little after its answer: look a moment
    later.)"""
    await asyncio.sleep(0.1)
    wait = await refusal_wait(sessions)
    return wait is not None and WINDOW - 5 < wait <= WINDOW


async def refusal_wait(sessions: SessionFactory) -> float | None:
    """How long the default seat's next caller would wait; None if it is granted a slot."""
    async with sessions.begin() as session:
        decision = await rate_ledger.try_take_slot(session, seat=SEAT, limit=1, window=WINDOW)
    return None if decision.granted else decision.wait_seconds


async def test_a_slot_in_the_block_is_in_flight_and_completed_when_it_ends(
    clean_database: SessionFactory,
) -> None:
    limiter = SharedRateLimiter(clean_database, seat=SEAT, limit=1, window=WINDOW, hold=30.0)
    async with limiter.slot() as slot:
        assert await refusal_wait(clean_database) == rate_ledger.IN_FLIGHT_RECHECK_SECONDS
    assert slot.completed
    assert await counted_after_its_answer(clean_database)


async def test_a_block_that_raises_still_completes_its_slot(
    clean_database: SessionFactory,
) -> None:
    limiter = SharedRateLimiter(clean_database, seat=SEAT, limit=1, window=WINDOW, hold=30.0)
    with pytest.raises(RuntimeError):
        async with limiter.slot():
            raise RuntimeError("the send blew up")
    assert await counted_after_its_answer(clean_database)


async def test_a_slot_completes_once(clean_database: SessionFactory) -> None:
    limiter = SharedRateLimiter(clean_database, seat=SEAT, limit=1, window=WINDOW, hold=30.0)
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
    limiter = SharedRateLimiter(clean_database, seat=SEAT, limit=1, window=WINDOW, hold=30.0)
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
    limiter = SharedRateLimiter(clean_database, seat=SEAT, limit=1, window=WINDOW, hold=30.0)
    entry = RequestEntry("adv", "GET", "/v1/advertisers/adv_1/status", None, None)
    async with limiter.slot(entry) as slot:
        if left:
            slot.leaving()
    assert await counted_after_its_answer(clean_database)
    async with clean_database() as session:
        rows = await audit_log.all_requests(session)
    assert [row.response_status for row in rows] == ([None] if left else [])


async def test_a_seats_limiter_takes_its_slots_under_its_name_and_limit(
    clean_database: SessionFactory,
) -> None:
    seat = Seat(
        name="acme-eu",
        base_url="http://dsp.example",
        api_version=2,
        search_lag=0.0,
        rate_limit=2,
        rate_window=WINDOW,
        secret=SecretStr("never-read-here"),
    )
    limiter = SharedRateLimiter.for_seat(clean_database, seat, timeout=10.0)
    for _ in range(2):
        async with limiter.slot():
            pass
    async with clean_database.begin() as session:
        refused = await rate_ledger.try_take_slot(session, seat="acme-eu", limit=2, window=WINDOW)
    assert limiter.seat == "acme-eu" and not refused.granted and refused.in_window == 2
    assert await refusal_wait(clean_database) is None  # the default seat has none of them


async def test_a_429_pauses_only_the_seat_it_came_from(clean_database: SessionFactory) -> None:
    throttled = SharedRateLimiter(clean_database, seat=SEAT, limit=5, window=WINDOW)
    other = SharedRateLimiter(clean_database, seat="acme-eu", limit=5, window=WINDOW)
    async with throttled.slot() as slot:
        await slot.pause(20.0)

    async with other.slot():
        pass
    async with clean_database() as session:
        paused = await rate_ledger.seat_window(session, SEAT, WINDOW)
        going = await rate_ledger.seat_window(session, "acme-eu", WINDOW)
    assert 15 < paused.paused_seconds <= 20
    assert going.paused_seconds == 0.0 and going.in_window == 1


@pytest.mark.parametrize(("whose_full", "paused"), [("mine", False), ("another seat's", True)])
async def test_the_dsp_saying_none_remain_pauses_the_seat_only_when_its_own_do_not_fill_it(
    clean_database: SessionFactory, whose_full: str, paused: bool
) -> None:
    """The DSP counts each seat apart: another seat's full window explains nothing, so the
    seat is paused (somebody else uses its budget); its own full window explains it all."""
    limiter = SharedRateLimiter(clean_database, seat=SEAT, limit=2, window=WINDOW)
    other = SharedRateLimiter(clean_database, seat="acme-eu", limit=2, window=WINDOW)
    for _ in range(2 if whose_full == "another seat's" else 1):
        async with (limiter if whose_full == "mine" else other).slot():
            pass
    async with limiter.slot() as slot:
        await slot.observe(remaining=0, reset=10.0)
    async with clean_database() as session:
        window = await rate_ledger.seat_window(session, SEAT, WINDOW)
        others = await rate_ledger.seat_window(session, "acme-eu", WINDOW)
    assert (window.paused_seconds > 5) == paused and window.paused_seconds <= 10
    assert others.paused_seconds == 0.0
