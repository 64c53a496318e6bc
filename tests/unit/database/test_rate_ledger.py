"""The shared rolling-window ledger on a real PostgreSQL: slots, in-flight holds, pauses."""

from __future__ import annotations

from datetime import timedelta

import pytest

from dsp_integration.database import rate_ledger
from dsp_integration.database.engine import SessionFactory

WINDOW = 60.0


async def take(
    sessions: SessionFactory, *, limit: int, hold: float = 0.0
) -> rate_ledger.SlotDecision:
    async with sessions.begin() as session:
        return await rate_ledger.try_take_slot(session, limit=limit, window=WINDOW, hold=hold)


async def test_grants_the_limit_then_waits_for_the_oldest_to_leave_the_window(
    clean_database: SessionFactory,
) -> None:
    granted = [await take(clean_database, limit=3) for _ in range(3)]
    refused = await take(clean_database, limit=3)

    assert [d.granted for d in granted] == [True, True, True]
    assert [d.in_window for d in granted] == [1, 2, 3]
    assert not refused.granted
    assert WINDOW - 5 < refused.wait_seconds <= WINDOW


async def test_a_slot_in_flight_counts_until_its_answer_and_then_for_a_window(
    clean_database: SessionFactory,
) -> None:
    first = await take(clean_database, limit=1, hold=30.0)
    while_in_flight = await take(clean_database, limit=1)
    assert first.granted and first.slot_id is not None and first.now is not None
    assert not while_in_flight.granted
    assert while_in_flight.wait_seconds == rate_ledger.IN_FLIGHT_RECHECK_SECONDS

    async with clean_database.begin() as session:
        await rate_ledger.complete_slot(session, first.slot_id, first.now)
    after_answer = await take(clean_database, limit=1)
    assert not after_answer.granted
    assert WINDOW - 5 < after_answer.wait_seconds <= WINDOW


async def test_completing_a_slot_never_makes_it_count_later(
    clean_database: SessionFactory,
) -> None:
    first = await take(clean_database, limit=1)
    assert first.slot_id is not None and first.now is not None
    async with clean_database.begin() as session:
        await rate_ledger.complete_slot(
            session, first.slot_id, first.now + timedelta(seconds=WINDOW)
        )
    refused = await take(clean_database, limit=1)
    assert WINDOW - 5 < refused.wait_seconds <= WINDOW


@pytest.mark.parametrize("pauses", [(20.0,), (20.0, 5.0)])
async def test_a_pause_holds_every_slot_and_a_shorter_one_does_not_shorten_it(
    clean_database: SessionFactory, pauses: tuple[float, ...]
) -> None:
    for seconds in pauses:
        async with clean_database.begin() as session:
            await rate_ledger.pause_until(session, seconds)
    refused = await take(clean_database, limit=10)
    assert not refused.granted
    assert 15 < refused.wait_seconds <= 20
    async with clean_database() as session:
        assert await rate_ledger.granted_in_window(session, WINDOW) == 0
