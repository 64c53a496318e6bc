"""The shared rolling-window ledger on a real PostgreSQL: slots, in-flight holds, pauses,
the queue, each seat's on its own."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from dsp_integration.database import rate_ledger
from dsp_integration.database.audit_log import RequestAnswer, RequestEntry
from dsp_integration.database.engine import SessionFactory
from dsp_integration.database.models import AuditRecord, RateLedgerEntry, RateWaiter

WINDOW = 60.0
AUDITED = RequestEntry("adv", "POST", "/v1/advertisers", {"name": "Acme"}, "adv:v1")


SEAT = "default"
OTHER_SEAT = "acme-eu"


async def take(
    sessions: SessionFactory, *, limit: int, hold: float = 0.0, seat: str = SEAT
) -> rate_ledger.SlotDecision:
    async with sessions.begin() as session:
        return await rate_ledger.try_take_slot(
            session, seat=seat, limit=limit, window=WINDOW, hold=hold
        )


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


async def test_a_completed_slot_counts_from_its_answer_earlier_or_later_than_its_grant(
    clean_database: SessionFactory,
) -> None:
    """The grant counts a slot from the latest moment its request can reach the DSP if it
    leaves within `hold`; the answer's time bounds the arrival whatever happened: earlier
    when the answer came soon, later when the request left after the hold (a stalled
    worker), which the grant's bound would count from before it arrived."""
    soon = await take(clean_database, limit=2, hold=30.0)
    late = await take(clean_database, limit=2, hold=5.0)
    assert soon.slot_id is not None and soon.now is not None
    assert late.slot_id is not None and late.now is not None
    soon_answer = soon.now + timedelta(seconds=1)
    late_answer = late.now + timedelta(seconds=20)

    async with clean_database.begin() as session:
        await rate_ledger.complete_slot(session, soon.slot_id, soon_answer)
        await rate_ledger.complete_slot(session, late.slot_id, late_answer)

    assert await counted_from(clean_database, soon.slot_id) == soon_answer
    assert await counted_from(clean_database, late.slot_id) == late_answer


@pytest.mark.parametrize(
    ("answer", "sent"),
    [(RequestAnswer(201, "{}", None), True), (None, True), (None, False)],
    ids=["answered", "lost on its way", "never sent"],
)
async def test_a_request_completed_after_its_hold_counts_from_its_answer(
    clean_database: SessionFactory, answer: RequestAnswer | None, sent: bool
) -> None:
    """`complete_request` completes the slot with the same statement, in its audit write."""
    async with clean_database.begin() as session:
        granted = await rate_ledger.try_take_slot(
            session, seat=SEAT, limit=1, window=WINDOW, hold=5.0, request=AUDITED
        )
    assert granted.slot_id is not None and granted.now is not None
    assert granted.audit_id is not None
    answered_at = granted.now + timedelta(seconds=20)

    async with clean_database.begin() as session:
        await rate_ledger.complete_request(
            session,
            granted.slot_id,
            answered_at,
            audit_id=granted.audit_id,
            answer=answer,
            sent=sent,
        )

    assert await counted_from(clean_database, granted.slot_id) == answered_at
    async with clean_database() as session:
        audit = await session.get(AuditRecord, granted.audit_id)
    assert (audit is not None) == sent  # an audit row goes only when nothing was sent
    if audit is not None:
        assert audit.response_status == (answer.response_status if answer else None)


async def counted_from(sessions: SessionFactory, slot_id: int) -> datetime | None:
    async with sessions() as session:
        return await session.scalar(
            select(RateLedgerEntry.granted_at).where(RateLedgerEntry.id == slot_id)
        )


@pytest.mark.parametrize("pauses", [(20.0,), (20.0, 5.0)])
async def test_a_pause_holds_every_slot_and_a_shorter_one_does_not_shorten_it(
    clean_database: SessionFactory, pauses: tuple[float, ...]
) -> None:
    for seconds in pauses:
        async with clean_database.begin() as session:
            await rate_ledger.pause_until(session, SEAT, seconds)
    refused = await take(clean_database, limit=10)
    assert not refused.granted
    assert 15 < refused.wait_seconds <= 20
    async with clean_database() as session:
        assert await rate_ledger.granted_in_window(session, SEAT, WINDOW) == 0


async def join(sessions: SessionFactory, seat: str = SEAT) -> int:
    """Queue a caller, as a refused attempt does."""
    async with sessions.begin() as session:
        refused = await rate_ledger.try_take_slot(session, seat=seat, limit=0, window=WINDOW)
    assert refused.ticket is not None
    return refused.ticket


async def take_queued(
    sessions: SessionFactory, ticket: int, *, limit: int, seat: str = SEAT
) -> rate_ledger.SlotDecision:
    async with sessions.begin() as session:
        return await rate_ledger.try_take_slot(
            session, seat=seat, limit=limit, window=WINDOW, hold=0.0, ticket=ticket
        )


async def test_slots_go_to_the_callers_in_the_order_they_began_to_wait(
    clean_database: SessionFactory,
) -> None:
    first, second = await join(clean_database), await join(clean_database)

    second_early = await take_queued(clean_database, second, limit=1)
    first_turn = await take_queued(clean_database, first, limit=1)
    second_then = await take_queued(clean_database, second, limit=1)

    assert not second_early.granted and second_early.ahead == 1
    assert second_early.wait_seconds == rate_ledger.IN_FLIGHT_RECHECK_SECONDS
    assert first_turn.granted
    assert not second_then.granted and second_then.ahead == 0
    assert WINDOW - 5 < second_then.wait_seconds <= WINDOW


async def test_a_caller_behind_others_takes_a_slot_left_free_after_theirs(
    clean_database: SessionFactory,
) -> None:
    first, second = await join(clean_database), await join(clean_database)
    assert (await take_queued(clean_database, second, limit=2)).granted
    assert (await take_queued(clean_database, first, limit=2)).granted


async def test_a_caller_waits_for_the_slot_that_frees_after_those_ahead_of_it(
    clean_database: SessionFactory,
) -> None:
    assert (await take(clean_database, limit=2)).granted
    await asyncio.sleep(1.0)
    assert (await take(clean_database, limit=2)).granted
    first, second = await join(clean_database), await join(clean_database)

    first_wait = (await take_queued(clean_database, first, limit=2)).wait_seconds
    second_wait = (await take_queued(clean_database, second, limit=2)).wait_seconds

    assert 0.5 < second_wait - first_wait < 1.5


async def test_callers_without_a_ticket_go_after_the_queue_and_join_it_when_refused(
    clean_database: SessionFactory,
) -> None:
    first = await join(clean_database)
    refused = await take(clean_database, limit=1)
    assert not refused.granted and refused.ahead == 1 and refused.ticket is not None
    assert refused.ticket > first
    assert (await take(clean_database, limit=3)).granted  # two ahead, three free
    granted_first = await take_queued(clean_database, first, limit=3)
    assert granted_first.granted and granted_first.ahead == 0
    async with clean_database() as session:
        waiting = list(await session.scalars(select(RateWaiter.id)))
    assert waiting == [refused.ticket]


async def test_a_caller_not_seen_for_a_while_no_longer_holds_the_queue_up(
    clean_database: SessionFactory,
) -> None:
    gone, waiting = await join(clean_database), await join(clean_database)
    async with clean_database.begin() as session:
        await session.execute(
            update(RateWaiter)
            .where(RateWaiter.id == gone)
            .values(seen_at=func.clock_timestamp() - timedelta(seconds=60))
        )
    assert (await take_queued(clean_database, waiting, limit=1)).granted
    async with clean_database() as session:
        assert await session.scalar(select(func.count()).select_from(RateWaiter)) == 0


async def test_a_caller_that_leaves_the_queue_holds_nobody_up(
    clean_database: SessionFactory,
) -> None:
    gone, waiting = await join(clean_database), await join(clean_database)
    async with clean_database.begin() as session:
        await rate_ledger.leave_queue(session, gone)
    assert (await take_queued(clean_database, waiting, limit=1)).granted


async def test_a_seat_with_a_full_window_does_not_refuse_another(
    clean_database: SessionFactory,
) -> None:
    full = [await take(clean_database, limit=2) for _ in range(3)]
    other = await take(clean_database, limit=2, seat=OTHER_SEAT)

    assert [d.granted for d in full] == [True, True, False]
    assert other.granted and other.in_window == 1 and other.ahead == 0
    async with clean_database() as session:
        assert await rate_ledger.granted_in_window(session, SEAT, WINDOW) == 2
        assert await rate_ledger.granted_in_window(session, OTHER_SEAT, WINDOW) == 1


async def test_one_seats_callers_are_never_ahead_of_anothers(
    clean_database: SessionFactory,
) -> None:
    await join(clean_database), await join(clean_database)
    mine = await join(clean_database, OTHER_SEAT)

    granted = await take_queued(clean_database, mine, limit=1, seat=OTHER_SEAT)
    newcomer = await take(clean_database, limit=5, seat=OTHER_SEAT)

    assert granted.granted and granted.ahead == 0
    assert newcomer.granted and newcomer.ahead == 0
    async with clean_database() as session:
        still_waiting = list(await session.scalars(select(RateWaiter.seat)))
    assert still_waiting == [SEAT, SEAT]


async def test_one_seats_pause_does_not_pause_another(clean_database: SessionFactory) -> None:
    async with clean_database.begin() as session:
        await rate_ledger.pause_until(session, SEAT, 20.0)

    paused = await take(clean_database, limit=10)
    other = await take(clean_database, limit=10, seat=OTHER_SEAT)

    assert not paused.granted and 15 < paused.wait_seconds <= 20
    assert other.granted


async def test_a_seat_prunes_only_its_own_rows(clean_database: SessionFactory) -> None:
    """A seat with a short window must not drop a slot another seat still counts."""
    async with clean_database.begin() as session:
        now = await session.scalar(select(func.clock_timestamp()))
        assert now is not None
        session.add(RateLedgerEntry(seat=SEAT, granted_at=now - timedelta(seconds=10)))
    async with clean_database.begin() as session:
        short = await rate_ledger.try_take_slot(session, seat=OTHER_SEAT, limit=5, window=1.0)
    assert short.granted and short.in_window == 1
    assert not (await take(clean_database, limit=1)).granted  # the row 10 s old still counts


async def test_a_seats_window_reports_its_slots_callers_and_pause(
    clean_database: SessionFactory,
) -> None:
    await take(clean_database, limit=5)
    await take(clean_database, limit=5)
    await join(clean_database)
    await join(clean_database, OTHER_SEAT)
    async with clean_database.begin() as session:
        await rate_ledger.pause_until(session, OTHER_SEAT, 30.0)

    async with clean_database() as session:
        mine = await rate_ledger.seat_window(session, SEAT, WINDOW)
        other = await rate_ledger.seat_window(session, OTHER_SEAT, WINDOW)
        unused = await rate_ledger.seat_window(session, "unused", WINDOW)

    assert (mine.in_window, mine.waiting, mine.paused_seconds) == (2, 1, 0.0)
    assert (other.in_window, other.waiting) == (0, 1) and 25 < other.paused_seconds <= 30
    assert unused == rate_ledger.SeatWindow(0, 0, 0.0)


async def test_a_seat_deciding_does_not_hold_another_seat_up(
    clean_database: SessionFactory,
) -> None:
    """Each seat has its own lock: a transaction holding one seat's never delays another's
    decisions, while the same seat's next decision waits for it."""
    async with clean_database.begin() as holding:
        assert (await rate_ledger.try_take_slot(holding, seat=SEAT, limit=5, window=WINDOW)).granted
        other = await asyncio.wait_for(take(clean_database, limit=5, seat=OTHER_SEAT), 5.0)
        same = asyncio.create_task(take(clean_database, limit=5))
        await asyncio.sleep(0.5)
        assert not same.done()
    assert other.granted
    assert (await asyncio.wait_for(same, 5.0)).in_window == 2


async def grant_times(
    sessions: SessionFactory, seat: str, *, limit: int, window: float, until: float
) -> list[datetime]:
    """One caller taking `seat`'s slots as fast as the ledger grants them (each counted from
    its grant: hold 0, never completed) until the monotonic clock passes `until`."""
    granted: list[datetime] = []
    ticket: int | None = None
    loop = asyncio.get_running_loop()
    while loop.time() < until:
        async with sessions.begin() as session:
            decision = await rate_ledger.try_take_slot(
                session, seat=seat, limit=limit, window=window, hold=0.0, ticket=ticket
            )
        if decision.granted:
            assert decision.now is not None
            granted.append(decision.now)
            ticket = None
        else:
            ticket = decision.ticket
            await asyncio.sleep(min(decision.wait_seconds, 0.02))
    if ticket is not None:
        async with sessions.begin() as session:
            await rate_ledger.leave_queue(session, ticket)
    return granted


async def test_concurrent_callers_of_two_seats_never_exceed_either_seats_window(
    clean_database: SessionFactory,
) -> None:
    """Six callers per seat, both seats at once, each seat with its own limit and window:
    in no window of a seat are more than its limit of its slots granted, and each seat uses
    its own budget whatever the other does."""
    seats = {SEAT: (3, 0.4), OTHER_SEAT: (5, 0.25)}
    run_for = 2.0
    until = asyncio.get_running_loop().time() + run_for
    callers = {
        seat: [
            asyncio.create_task(
                grant_times(clean_database, seat, limit=limit, window=window, until=until)
            )
            for _ in range(6)
        ]
        for seat, (limit, window) in seats.items()
    }
    for seat, (limit, window) in seats.items():
        times = sorted(t for got in await asyncio.gather(*callers[seat]) for t in got)
        closest = min(
            (times[i + limit] - times[i]).total_seconds() for i in range(len(times) - limit)
        )
        assert closest >= window, f"{seat}: {limit + 1} slots within {closest} s"
        # Well over half its budget, although the other seat's callers run at the same time.
        assert len(times) >= 0.5 * limit * run_for / window, (seat, len(times))
