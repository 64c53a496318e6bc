"""A seat's shared DSP budget as the activities see it: wait for a slot, honour the DSP's word.

    async with limiter.slot() as slot:   # waits for a slot in the shared ledger
        ...send the request...
        await slot.observe(remaining, reset)   # or `await slot.pause(retry_after)` on a 429

The slot is the request's: completing it (`observe`, `pause` or `complete`) moves its count in
the ledger from "may still be in flight" to "a window after its answer"; leaving the block
completes it if nothing did. Each limiter is one seat's (dsp-api-v2.md §1): its slots, its queue
and its pauses are that seat's alone in the ledger."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta

from temporalio import activity

from dsp_integration.config.seats import Seat
from dsp_integration.database import rate_ledger
from dsp_integration.database.audit_log import RequestAnswer, RequestEntry
from dsp_integration.database.engine import SessionFactory, autocommit_session

logger = logging.getLogger(__name__)

# Longest single sleep between slot attempts, so the activity keeps heartbeating.
MAX_SLEEP_SECONDS = 2.0

# The limiter's policy, from the DSP settings (`SharedRateLimiter.for_seat`).
# The window is widened by this share of itself, for clocks that drift apart (the DSP's
# against PostgreSQL's). Delays between a slot and the DSP seeing the request need no margin:
# the ledger counts each request until a window after its answer (database/rate_ledger.py).
CLOCK_MARGIN_SHARE = 0.001
# How many DSP timeouts after its slot a request can still reach the DSP: a pooled
# connection, a connect and a write, each bounded by the timeout (only a crashed worker,
# which never completes its slot, ever needs it).
SLOT_HOLD_TIMEOUTS = 3


def rate_margin(window: float) -> float:
    """Seconds added to the window, for clocks that drift apart."""
    return window * CLOCK_MARGIN_SHARE


def slot_hold(timeout: float) -> float:
    """How long after its slot a request can still reach the DSP."""
    return SLOT_HOLD_TIMEOUTS * timeout


class RateSlot:
    """One granted request slot, counted whether or not its request lands: from the moment
    the request may reach the DSP until a window after its answer came back. Complete it once
    (`complete`, `observe` or `pause`); later calls do nothing. A slot taken for a request
    carries its audit row (`audit_id`), which completing the slot answers in the same write."""

    def __init__(
        self,
        limiter: SharedRateLimiter,
        slot_id: int,
        granted_at: datetime,
        asked_at: float,
        audit_id: int | None = None,
    ) -> None:
        self._limiter = limiter
        self._slot_id = slot_id
        self._granted_at = granted_at  # the database clock at the grant
        self._asked_at = asked_at  # the monotonic clock just before it was asked for
        self.audit_id = audit_id
        self.completed = False
        self._leaving = False

    def leaving(self) -> None:
        """The request is about to leave: from now on it may reach the DSP, so its audit row
        stays even if no answer comes."""
        self._leaving = True

    async def complete(self, answer: RequestAnswer | None = None) -> None:
        """The answer to this slot's request is back (whatever it was), or nothing was sent
        (then its audit row goes, unless the request was `leaving`)."""
        if self.completed:
            return
        self.completed = True
        arrived_by = self._granted_at + timedelta(seconds=time.monotonic() - self._asked_at)
        await self._limiter.complete_slot(
            self._slot_id, arrived_by, audit_id=self.audit_id, answer=answer, sent=self._leaving
        )

    async def observe(self, remaining: int | None, reset: float | None) -> None:
        """Complete the slot with the DSP's rate headers: when the DSP counts requests we
        did not make (another client on the token), every worker follows it."""
        await self.complete()
        await self._limiter.follow_dsp_count(remaining, reset)

    async def pause(self, seconds: float) -> None:
        """Complete the slot after a 429: every worker holds the seat's requests off for
        `seconds`, not just this one, for the budget is the seat's."""
        await self.complete()
        await self._limiter.pause(seconds)


class SharedRateLimiter:
    """One seat's limiter: `limit` requests per rolling `window` seconds for that seat, shared
    by every worker through the ledger."""

    def __init__(
        self,
        session_factory: SessionFactory,
        *,
        seat: str,
        limit: int,
        window: float,
        margin: float = 0.0,
        hold: float = 30.0,
    ) -> None:
        self._sessions = session_factory
        self.seat = seat
        self._limit = limit
        self._window = window
        self._margin = margin
        self._hold = hold

    @classmethod
    def for_seat(
        cls, session_factory: SessionFactory, seat: Seat, timeout: float
    ) -> SharedRateLimiter:
        """The limiter of `seat`, allowing its `rate_limit` requests per rolling `rate_window`
        seconds, each request bounded by `timeout`: the margin and hold of this module's
        policy."""
        window = seat.rate_window
        return cls(
            session_factory,
            seat=seat.name,
            limit=seat.rate_limit,
            window=window,
            margin=rate_margin(window),
            hold=slot_hold(timeout),
        )

    @asynccontextmanager
    async def slot(self, request: RequestEntry | None = None) -> AsyncIterator[RateSlot]:
        """Wait for a slot (a cancellation ends the wait, and no slot is taken) and hold it for
        the block; a slot the block did not complete is completed when it ends. With
        `request`, its audit row is written with the grant."""
        slot = await self.acquire(request)
        try:
            yield slot
        except BaseException:
            if not slot.completed:
                try:
                    await slot.complete()
                except Exception:
                    # The ledger lets go of it a hold after the grant all the same.
                    logger.warning("could not complete a DSP rate slot", exc_info=True)
            raise
        else:
            await slot.complete()

    async def acquire(self, request: RequestEntry | None = None) -> RateSlot:
        """Return once a request slot is ours (prefer `slot()`, which completes it). Slots go
        to the callers in the order they began to wait: a refused attempt queues the caller
        (`rate_ledger.try_take_slot`), and it leaves the queue if it stops waiting."""
        ticket: int | None = None
        try:
            while True:
                asked_at = time.monotonic()
                async with self._sessions.begin() as session:
                    decision = await rate_ledger.try_take_slot(
                        session,
                        seat=self.seat,
                        limit=self._limit,
                        window=self._window,
                        margin=self._margin,
                        hold=self._hold,
                        request=request,
                        ticket=ticket,
                    )
                if decision.granted:
                    assert decision.slot_id is not None and decision.now is not None
                    return RateSlot(
                        self, decision.slot_id, decision.now, asked_at, decision.audit_id
                    )
                ticket = decision.ticket
                if activity.in_activity():
                    activity.heartbeat("waiting for a DSP request slot")
                await asyncio.sleep(min(decision.wait_seconds, MAX_SLEEP_SECONDS))
        except BaseException:
            if ticket is not None:
                await asyncio.shield(self._leave_queue(ticket))
            raise

    async def _leave_queue(self, ticket: int) -> None:
        try:
            async with autocommit_session(self._sessions) as session:
                await rate_ledger.leave_queue(session, ticket)
        except Exception:
            # The queue drops it once it is not seen for `WAITER_STALE_SECONDS`.
            logger.warning("could not leave the DSP rate queue", exc_info=True)

    async def complete_slot(
        self,
        slot_id: int,
        arrived_by: datetime,
        *,
        audit_id: int | None = None,
        answer: RequestAnswer | None = None,
        sent: bool = False,
    ) -> None:
        """The slot's completion and its request's audit row, in one statement outside any
        explicit transaction."""
        async with autocommit_session(self._sessions) as session:
            if audit_id is None:
                await rate_ledger.complete_slot(session, slot_id, arrived_by)
            else:
                await rate_ledger.complete_request(
                    session, slot_id, arrived_by, audit_id=audit_id, answer=answer, sent=sent
                )

    async def pause(self, seconds: float) -> None:
        """Every worker holds the seat's requests off for `seconds`."""
        async with autocommit_session(self._sessions) as session:
            await rate_ledger.pause_until(session, self.seat, seconds)

    async def follow_dsp_count(self, remaining: int | None, reset: float | None) -> None:
        """The DSP reports no requests remaining although ours do not fill the window:
        somebody else's do (another client on the seat), so pause the seat until its reset."""
        if remaining != 0 or not reset:
            return
        async with autocommit_session(self._sessions) as session:
            ours = await rate_ledger.granted_in_window(session, self.seat, self._window)
        if ours < self._limit:
            logger.info(
                "DSP reports no requests remaining for seat %s; pausing it %.2f s", self.seat, reset
            )
            await self.pause(reset)
