"""A rolling-window request ledger in PostgreSQL, shared by every worker process.

Temporal's task-queue rate limit is a token bucket split over partitions and lets short
bursts through; the DSP counts every request in a strict rolling window, by the time it
arrives. Each request therefore takes a slot here first: one transaction under an advisory
lock, timed by the database clock so that workers on other machines agree.

A row's `granted_at` holds the latest moment its request can have reached the DSP: when
the slot is granted, that is `now + hold` (the longest a request can take to leave the
worker); once the answer is back, `complete_slot` moves it to the grant's database time plus
the time the worker measured from just before the grant to the answer, which is after the
arrival whatever the offset between the clocks. Counting rows whose time is within the
window therefore counts, at every grant, every request the DSP still counts, whatever the
delays between granting, sending and arriving: the DSP never sees more than `limit` in any
window. Each slot costs the window plus the request's round trip, the only budget it leaves
unused.

The calls waiting for slots queue (`dsp_rate_waiter`): a call joins when it begins to wait
and is granted a slot only when fewer callers are ahead of it than slots are free. The order
Temporal dispatched them in (priority keys, fair shares between batches) is therefore the
order they reach the DSP, although each worker holds a few of them at a time; without the
queue they raced for each slot as it freed, and a small batch's last call could lose dozens
of races in a row (devkit/bench/RESULTS.md, "Fair shares")."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, literal_column, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from dsp_integration.database.models import RateLedgerEntry, RatePause, RateWaiter

LEDGER_LOCK_ID = 727_002
PAUSE_ROW_ID = 1
# How soon to look again while the slot that frees next is still in flight.
IN_FLIGHT_RECHECK_SECONDS = 0.02
# A waiter not seen for this long no longer holds the queue up: its worker died or lost its
# database. Live waiters look again at least every few seconds (the limiter's longest sleep).
WAITER_STALE_SECONDS = 10.0


@dataclass(frozen=True)
class SlotDecision:
    granted: bool
    wait_seconds: float = 0.0
    in_window: int = 0
    slot_id: int | None = None
    now: datetime | None = None
    """The database clock when the decision was taken."""
    ahead: int = 0
    """Callers queued before this one."""


async def join_queue(session: AsyncSession) -> int:
    """Queue a caller about to wait for slots; its ticket goes to `try_take_slot`."""
    ticket = await session.scalar(
        insert(RateWaiter).values(seen_at=func.clock_timestamp()).returning(RateWaiter.id)
    )
    assert ticket is not None
    return int(ticket)


async def leave_queue(session: AsyncSession, ticket: int) -> None:
    """The caller stopped waiting without a slot (cancelled)."""
    await session.execute(delete(RateWaiter).where(RateWaiter.id == ticket))


async def try_take_slot(
    session: AsyncSession,
    *,
    limit: int,
    window: float,
    margin: float = 0.0,
    hold: float = 30.0,
    ticket: int | None = None,
) -> SlotDecision:
    """Grant a slot when fewer than `limit` requests may still be in the DSP's window, and
    fewer callers are queued before this one than slots are free (a caller without a ticket
    goes after every queued one). A granted ticket leaves the queue.

    `hold` bounds how long after the grant the request can reach the DSP (it counts until
    `complete_slot`); `margin` widens the window, for a DSP whose clock runs fast."""
    # Read before the lock: a `now` that is a little old counts more rows, never fewer, and
    # keeps the lock wait out of the caller's bound on when its request arrives.
    now = await session.scalar(select(func.clock_timestamp()))
    assert now is not None
    await session.execute(text(f"SELECT pg_advisory_xact_lock({LEDGER_LOCK_ID})"))
    span = timedelta(seconds=window + margin)
    ahead = await _queue_ahead(session, ticket, now)

    paused_until = await session.scalar(
        select(RatePause.paused_until).where(RatePause.id == PAUSE_ROW_ID)
    )
    if paused_until is not None and paused_until > now:
        return SlotDecision(False, (paused_until - now).total_seconds(), ahead=ahead)

    await session.execute(delete(RateLedgerEntry).where(RateLedgerEntry.granted_at <= now - span))
    recent = list(
        await session.scalars(
            select(RateLedgerEntry.granted_at)
            .where(RateLedgerEntry.granted_at > now - span)
            .order_by(RateLedgerEntry.granted_at.desc())
            .limit(limit)
        )
    )
    if len(recent) + ahead < limit:
        slot_id = await session.scalar(
            insert(RateLedgerEntry)
            .values(granted_at=now + timedelta(seconds=hold))
            .returning(RateLedgerEntry.id)
        )
        if ticket is not None:
            await session.execute(delete(RateWaiter).where(RateWaiter.id == ticket))
        return SlotDecision(True, 0.0, len(recent) + 1, slot_id, now, ahead)
    if not recent:  # every slot is free, and the callers ahead are taking them
        return SlotDecision(False, IN_FLIGHT_RECHECK_SECONDS, 0, ahead=ahead)
    # This caller's slot is the one that frees after those the callers ahead of it take (or,
    # with more callers ahead than the limit, one in a later window: look again by then).
    turn = min(len(recent) + ahead - limit, len(recent) - 1)
    frees_with = recent[len(recent) - 1 - turn]
    if frees_with > now:
        return SlotDecision(False, IN_FLIGHT_RECHECK_SECONDS, len(recent), ahead=ahead)
    wait = (frees_with + span - now).total_seconds()
    return SlotDecision(False, max(wait, 0.001), len(recent), ahead=ahead)


async def _queue_ahead(session: AsyncSession, ticket: int | None, now: datetime) -> int:
    """Mark the caller seen (queued again under its ticket if it was dropped as stale) and
    count the live callers queued before it."""
    await session.execute(
        delete(RateWaiter).where(RateWaiter.seen_at < now - timedelta(seconds=WAITER_STALE_SECONDS))
    )
    if ticket is not None:
        statement = insert(RateWaiter).values(id=ticket, seen_at=now)
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=[RateWaiter.id], set_={"seen_at": statement.excluded.seen_at}
            )
        )
    ahead = select(func.count()).select_from(RateWaiter)
    if ticket is not None:
        ahead = ahead.where(RateWaiter.id < ticket)
    return int(await session.scalar(ahead) or 0)


async def complete_slot(session: AsyncSession, slot_id: int, arrived_by: datetime) -> None:
    """The answer is back, so the request arrived by `arrived_by` (database clock): it
    counts from then, not from the `hold` bound."""
    await session.execute(
        update(RateLedgerEntry)
        .where(RateLedgerEntry.id == slot_id, RateLedgerEntry.granted_at > arrived_by)
        .values(granted_at=arrived_by)
    )


async def pause_until(session: AsyncSession, seconds: float) -> None:
    """Make every worker hold off for `seconds` (a 429, or the DSP saying none remain)."""
    until = func.clock_timestamp() + timedelta(seconds=seconds)
    statement = insert(RatePause).values(id=PAUSE_ROW_ID, paused_until=until)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[RatePause.id],
            set_={
                "paused_until": func.greatest(
                    RatePause.paused_until, literal_column("excluded.paused_until")
                )
            },
        )
    )


async def granted_in_window(session: AsyncSession, window: float) -> int:
    now = func.clock_timestamp()
    return int(
        await session.scalar(
            select(func.count())
            .select_from(RateLedgerEntry)
            .where(RateLedgerEntry.granted_at > now - timedelta(seconds=window))
        )
        or 0
    )
