"""A rolling-window request ledger in PostgreSQL, shared by every worker process.

Temporal's task-queue rate limit is a token bucket split over partitions and lets short
bursts through; the DSP counts every request in a strict rolling window, by the time it
arrives. Each request therefore takes a slot here first: one transaction under an advisory
lock, timed by the database clock so that workers on other machines agree. The request's
audit row is written in the same transaction, and its answer in the same statement as the
slot's completion: a DSP request costs the database two writes.

A row's `granted_at` holds the latest moment its request can have reached the DSP: when
the slot is granted, that is `now + hold` (the longest a request can take to leave the
worker); once the answer is back, `complete_slot` sets it to the grant's database time plus
the time the worker measured from just before the grant to the answer, which is after the
arrival whatever the offset between the clocks. That is usually earlier than the grant's
bound, and later when the request left late (a stalled worker): either way the answer's
time is the one that bounds the arrival. Counting rows whose time is within the
window therefore counts, at every grant, every request the DSP still counts, whatever the
delays between granting, sending and arriving: the DSP never sees more than `limit` in any
window. Each slot costs the window plus the request's round trip, the only budget it leaves
unused.

The calls waiting for slots queue (`dsp_rate_waiter`): a call that is refused joins the queue
in the same statement, and is granted a slot only when fewer callers are ahead of it than
slots are free. The order Temporal dispatched them in (priority keys, fair shares between
batches) is therefore the order they reach the DSP, although each worker holds a few of them
at a time; without the queue they raced for each slot as it freed, and a small batch's last
call could lose dozens of races in a row (devkit/bench/RESULTS.md, "Fair shares").

Everything above holds per seat (dsp-api-v2.md §1): each seat is its own DSP account with its
own limit and window, so each seat has its own lock (`pg_advisory_xact_lock(LEDGER_LOCK_ID,
hashtext(seat))`), and its slots, queue and pause are its rows alone. A seat's decisions are
serialized under its lock and its statement counts, prunes and queues only its own rows, so
the argument above is the argument for one seat whatever the others do: seat A's full window
never refuses seat B, A's waiters never stand ahead of B's, A's pause never holds B. Two seats
whose names hash alike share a lock: they wait for each other's decisions, but count apart."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from functools import cache

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Delete,
    Integer,
    Interval,
    String,
    Text,
    Update,
    bindparam,
    delete,
    func,
    literal_column,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession

from dsp_integration.database.audit_log import RequestAnswer, RequestEntry
from dsp_integration.database.engine import execute_core
from dsp_integration.database.models import AuditRecord, RateLedgerEntry, RatePause, RateWaiter

# The first key of each seat's advisory lock; the second is the seat's name hashed.
LEDGER_LOCK_ID = 727_002
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
    audit_id: int | None = None
    """The request's audit row, written with the grant when one was given."""
    ahead: int = 0
    """Callers queued before this one."""
    ticket: int | None = None
    """The caller's place in the queue when it was refused: pass it to the next attempt."""


# One statement after the seat's lock, so that it sees every slot of the seat granted before
# (READ COMMITTED takes a snapshot per statement): the seat's pause, pruning, count, slot and
# queue, and the request's audit row. Every row it reads or writes is the seat's own. The
# clock is read once (a materialized CTE), after the lock: a grant then counts from no
# earlier than its decision, so the caller's bound on the arrival holds.
_TAKE_SLOT = text(
    """
    WITH clock AS MATERIALIZED (SELECT clock_timestamp() AS now),
    ahead AS (
        SELECT count(*) AS callers FROM dsp_rate_waiter, clock
        WHERE seat = :seat AND seen_at >= clock.now - :stale
            AND (:ticket IS NULL OR id < :ticket)
    ),
    pause AS (
        SELECT paused_until FROM dsp_rate_pause, clock
        WHERE seat = :seat AND paused_until > clock.now
    ),
    pruned AS (
        DELETE FROM dsp_rate_ledger USING clock
        WHERE seat = :seat AND granted_at <= clock.now - :span
    ),
    recent AS (
        SELECT granted_at FROM dsp_rate_ledger, clock
        WHERE seat = :seat AND granted_at > clock.now - :span
        ORDER BY granted_at DESC LIMIT :limit
    ),
    counted AS (SELECT count(*) AS in_window FROM recent),
    slot AS (
        INSERT INTO dsp_rate_ledger (seat, granted_at)
        SELECT :seat, clock.now + :hold FROM clock, counted, ahead
        WHERE counted.in_window + ahead.callers < :limit AND NOT EXISTS (SELECT 1 FROM pause)
        RETURNING id
    ),
    stale AS (
        DELETE FROM dsp_rate_waiter USING clock
        WHERE seat = :seat AND seen_at < clock.now - :stale AND id IS DISTINCT FROM :ticket
    ),
    served AS (
        DELETE FROM dsp_rate_waiter
        WHERE seat = :seat AND id = :ticket AND EXISTS (SELECT 1 FROM slot)
    ),
    waiting AS (
        INSERT INTO dsp_rate_waiter (id, seat, seen_at)
        SELECT coalesce(:ticket, nextval(pg_get_serial_sequence('dsp_rate_waiter', 'id'))),
            :seat, clock.now
        FROM clock WHERE NOT EXISTS (SELECT 1 FROM slot)
        ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at
        RETURNING id
    ),
    turn AS (
        -- The slot this caller waits for frees after those the callers ahead of it take.
        SELECT recent.granted_at,
            row_number() OVER (ORDER BY recent.granted_at) - 1 AS position
        FROM recent
    ),
    audit AS (
        INSERT INTO dsp_entity_audit (entity_key, method, path, request_body,
            idempotency_key, attempt, workflow_id, activity_id, note)
        SELECT :entity_key, :method, :path, :request_body, :idempotency_key, :attempt,
            :workflow_id, :activity_id, :note
        FROM slot WHERE :with_audit
        RETURNING id
    )
    SELECT clock.now, (SELECT paused_until FROM pause) AS paused_until, counted.in_window,
        ahead.callers, (SELECT id FROM slot) AS slot_id, (SELECT id FROM audit) AS audit_id,
        (SELECT id FROM waiting) AS ticket,
        (
            SELECT turn.granted_at FROM turn
            WHERE turn.position = greatest(
                0, least(counted.in_window + ahead.callers - :limit, counted.in_window - 1)
            )
        ) AS frees_with
    FROM clock, counted, ahead
    """
).bindparams(
    *(
        bindparam(name, type_=kind)
        for kind, names in (
            (Integer, ("limit", "attempt")),
            (BigInteger, ("ticket",)),
            (Interval, ("span", "hold", "stale")),
            (
                String,
                (
                    "seat",
                    "entity_key",
                    "method",
                    "path",
                    "idempotency_key",
                    "workflow_id",
                    "activity_id",
                    "note",
                ),
            ),
            (JSONB, ("request_body",)),
            (Boolean, ("with_audit",)),
        )
        for name in names
    )
)


_SEAT_LOCK = text(f"SELECT pg_advisory_xact_lock({LEDGER_LOCK_ID}, hashtext(:seat))").bindparams(
    bindparam("seat", type_=String)
)


async def leave_queue(session: AsyncSession, ticket: int) -> None:
    """The caller stopped waiting without a slot (cancelled)."""
    await session.execute(delete(RateWaiter).where(RateWaiter.id == ticket))


async def try_take_slot(
    session: AsyncSession,
    *,
    seat: str,
    limit: int,
    window: float,
    margin: float = 0.0,
    hold: float = 30.0,
    request: RequestEntry | None = None,
    ticket: int | None = None,
) -> SlotDecision:
    """Grant one of `seat`'s slots when fewer than `limit` of its requests may still be in
    the DSP's window and fewer of its callers are queued before this one (`ticket`; a caller
    without one goes after every queued one) than slots are free, and write `request`'s
    audit row with it: two statements in the caller's transaction, under the seat's lock. A
    caller refused is queued (or seen again under its ticket), a caller granted leaves the
    queue. Other seats' slots, callers and pauses play no part.

    `hold` bounds how long after the grant the request can reach the DSP (it counts until
    `complete_slot`); `margin` widens the window, for a DSP whose clock runs fast."""
    await session.execute(_SEAT_LOCK, {"seat": seat})
    entry = request or RequestEntry("", "", "", None, None)
    found = (
        await session.execute(
            _TAKE_SLOT,
            {
                "seat": seat,
                "span": timedelta(seconds=window + margin),
                "hold": timedelta(seconds=hold),
                "limit": limit,
                "with_audit": request is not None,
                "ticket": ticket,
                "stale": timedelta(seconds=WAITER_STALE_SECONDS),
                **asdict(entry),
            },
        )
    ).one()
    now: datetime = found.now
    in_window, ahead = int(found.in_window), int(found.callers)
    if found.slot_id is not None:
        return SlotDecision(True, 0.0, in_window + 1, found.slot_id, now, found.audit_id, ahead)
    refused = SlotDecision(
        False, IN_FLIGHT_RECHECK_SECONDS, in_window, ahead=ahead, ticket=found.ticket
    )
    if found.paused_until is not None:
        return replace(refused, wait_seconds=(found.paused_until - now).total_seconds())
    frees_with: datetime | None = found.frees_with
    if frees_with is None or frees_with > now:
        # Every slot is free and the callers ahead are taking them, or the slot this caller
        # waits for is still in flight (with more callers ahead than the limit: one in a
        # later window, looked at again by then).
        return refused
    wait = (frees_with + timedelta(seconds=window + margin) - now).total_seconds()
    return replace(refused, wait_seconds=max(wait, 0.001))


@cache
def _slot_completion_statement() -> Update:
    """Built once (every DSP request completes a slot); binds `slot_id`, `arrived_by`."""
    return (
        update(RateLedgerEntry)
        .where(RateLedgerEntry.id == bindparam("slot_id", type_=BigInteger))
        .values(granted_at=bindparam("arrived_by", type_=DateTime(timezone=True)))
    )


async def complete_slot(session: AsyncSession, slot_id: int, arrived_by: datetime) -> None:
    """The answer is back, so the request arrived by `arrived_by` (database clock): it
    counts from then, not from the `hold` bound, whether that is earlier or later."""
    await execute_core(
        session, _slot_completion_statement(), {"slot_id": slot_id, "arrived_by": arrived_by}
    )


async def complete_request(
    session: AsyncSession,
    slot_id: int,
    arrived_by: datetime,
    *,
    audit_id: int,
    answer: RequestAnswer | None,
    sent: bool,
) -> None:
    """`complete_slot` and the request's audit row, in one statement: the row takes the
    answer; without one, it stays unanswered if the request may have left (`sent`), and
    goes if nothing was sent (a call cancelled between its grant and its send)."""
    if answer is None and sent:
        await complete_slot(session, slot_id, arrived_by)
        return
    params: dict[str, object] = {"slot_id": slot_id, "arrived_by": arrived_by, "audit_id": audit_id}
    if answer is not None:
        params |= {
            "answer_status": answer.response_status,
            "answer_body": answer.response_body,
            "answer_error": answer.error,
        }
    await execute_core(session, _request_completion_statement(answered=answer is not None), params)


@cache
def _request_completion_statement(*, answered: bool) -> Update | Delete:
    """Built once per kind (every DSP request completes one): completes the slot and answers
    the audit row, or deletes it. Binds `_slot_completion_statement`'s values, `audit_id`
    and, answered, `answer_status`, `answer_body`, `answer_error`."""
    completion = _slot_completion_statement().cte("completion")
    audit_id = bindparam("audit_id", type_=BigInteger)
    if not answered:
        return delete(AuditRecord).where(AuditRecord.id == audit_id).add_cte(completion)
    return (
        update(AuditRecord)
        .where(AuditRecord.id == audit_id)
        .values(
            response_status=bindparam("answer_status", type_=Integer),
            response_body=bindparam("answer_body", type_=Text),
            error=bindparam("answer_error", type_=Text),
            finished_at=func.clock_timestamp(),
        )
        .add_cte(completion)
    )


async def pause_until(session: AsyncSession, seat: str, seconds: float) -> None:
    """Make every worker hold off `seat`'s requests for `seconds` (a 429, or the DSP saying
    none remain); the other seats go on."""
    until = func.clock_timestamp() + timedelta(seconds=seconds)
    statement = insert(RatePause).values(seat=seat, paused_until=until)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[RatePause.seat],
            set_={
                "paused_until": func.greatest(
                    RatePause.paused_until, literal_column("excluded.paused_until")
                )
            },
        )
    )


async def granted_in_window(session: AsyncSession, seat: str, window: float) -> int:
    """`seat`'s slots counted in the rolling window now (in flight, or answered within it)."""
    now = func.clock_timestamp()
    return int(
        await session.scalar(
            select(func.count())
            .select_from(RateLedgerEntry)
            .where(
                RateLedgerEntry.seat == seat,
                RateLedgerEntry.granted_at > now - timedelta(seconds=window),
            )
        )
        or 0
    )


@dataclass(frozen=True)
class SeatWindow:
    """One seat's window as the operators see it."""

    in_window: int
    """Slots counted in the rolling window now."""
    waiting: int
    """Calls held by workers, queued for a slot (not seen for a while: not counted)."""
    paused_seconds: float
    """How much longer every worker holds the seat's requests off (0 when not paused)."""


_SEAT_WINDOWS = text(
    """
    WITH clock AS MATERIALIZED (SELECT clock_timestamp() AS now),
    asked AS (
        SELECT * FROM unnest(CAST(:seats AS text[]), CAST(:windows AS double precision[]))
            AS asked(seat, window_seconds)
    )
    SELECT asked.seat,
        (SELECT count(*) FROM dsp_rate_ledger
            WHERE dsp_rate_ledger.seat = asked.seat
            AND granted_at > clock.now - make_interval(secs => asked.window_seconds)
        ) AS in_window,
        (SELECT count(*) FROM dsp_rate_waiter
            WHERE dsp_rate_waiter.seat = asked.seat AND seen_at >= clock.now - :stale
        ) AS waiting,
        (SELECT greatest(extract(epoch FROM paused_until - clock.now), 0)
            FROM dsp_rate_pause WHERE dsp_rate_pause.seat = asked.seat) AS paused_seconds
    FROM asked, clock
    """
).bindparams(bindparam("stale", type_=Interval))


async def seat_windows(
    session: AsyncSession, windows: Mapping[str, float]
) -> dict[str, SeatWindow]:
    """Each seat's slots in its window (`windows`: seconds by seat), calls waiting for one
    and pause, read at one moment in one statement (operators' views and gauges ask for every
    seat at once)."""
    found = await session.execute(
        _SEAT_WINDOWS,
        {
            "seats": list(windows),
            "windows": [float(seconds) for seconds in windows.values()],
            "stale": timedelta(seconds=WAITER_STALE_SECONDS),
        },
    )
    return {
        row.seat: SeatWindow(int(row.in_window), int(row.waiting), float(row.paused_seconds or 0))
        for row in found
    }


async def seat_window(session: AsyncSession, seat: str, window: float) -> SeatWindow:
    """`seat`'s slots in the window, calls waiting for one and pause, read at one moment."""
    return (await seat_windows(session, {seat: window}))[seat]
