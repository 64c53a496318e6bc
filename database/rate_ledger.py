"""A rolling-window request ledger in PostgreSQL, shared by every worker process.

Temporal's task-queue rate limit is a token bucket split over partitions and lets short
bursts through; the DSP counts every request in a strict rolling window. Each request
therefore takes a slot here first: one transaction under an advisory lock, timed by the
database clock so that workers on other machines agree."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, func, literal_column, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from database.models import RateLedgerEntry, RatePause

LEDGER_LOCK_ID = 727_002
PAUSE_ROW_ID = 1


@dataclass(frozen=True)
class SlotDecision:
    granted: bool
    wait_seconds: float = 0.0
    in_window: int = 0


async def try_take_slot(
    session: AsyncSession, *, limit: int, window: float, margin: float
) -> SlotDecision:
    """Grant a slot when fewer than `limit` were granted in the last `window + margin` seconds.

    The margin covers the spread of delays between granting a slot and the request's arrival
    at the DSP, so that arrivals, too, never exceed the limit in any window."""
    await session.execute(text(f"SELECT pg_advisory_xact_lock({LEDGER_LOCK_ID})"))
    now = await session.scalar(select(func.clock_timestamp()))
    assert now is not None
    span = timedelta(seconds=window + margin)

    paused_until = await session.scalar(
        select(RatePause.paused_until).where(RatePause.id == PAUSE_ROW_ID)
    )
    if paused_until is not None and paused_until > now:
        return SlotDecision(False, (paused_until - now).total_seconds())

    await session.execute(delete(RateLedgerEntry).where(RateLedgerEntry.granted_at <= now - span))
    recent = list(
        await session.scalars(
            select(RateLedgerEntry.granted_at)
            .where(RateLedgerEntry.granted_at > now - span)
            .order_by(RateLedgerEntry.granted_at.desc())
            .limit(limit)
        )
    )
    if len(recent) < limit:
        session.add(RateLedgerEntry(granted_at=now))
        await session.flush()
        return SlotDecision(True, 0.0, len(recent) + 1)
    oldest_that_must_leave = recent[limit - 1]
    wait = (oldest_that_must_leave + span - now).total_seconds()
    return SlotDecision(False, max(wait, 0.001), len(recent))


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
