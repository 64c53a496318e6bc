"""The shared DSP budget as the activities see it: wait for a slot, honour the DSP's word."""

from __future__ import annotations

import asyncio
import logging
import time
from contextvars import ContextVar
from datetime import datetime, timedelta

from temporalio import activity

from database import rate_ledger
from database.engine import SessionFactory

logger = logging.getLogger(__name__)

# Longest single sleep between slot attempts, so the activity keeps heartbeating.
MAX_SLEEP_SECONDS = 2.0

# The slot of the request this activity (one asyncio task) is making. `DspGateway` tells the
# limiter about every answer (`observe`, or `pause` for a 429) and that is when the slot is
# completed, without the gateway having to carry the slot around.
_current_slot: ContextVar[tuple[int, datetime, float] | None] = ContextVar(
    "dsp_rate_slot", default=None
)


class SharedRateLimiter:
    def __init__(
        self,
        session_factory: SessionFactory,
        *,
        limit: int,
        window: float,
        margin: float = 0.0,
        hold: float = 30.0,
    ) -> None:
        self._sessions = session_factory
        self._limit = limit
        self._window = window
        self._margin = margin
        self._hold = hold

    async def acquire(self) -> None:
        """Return once a request slot is ours; it is counted whether or not the request lands,
        from the moment it may reach the DSP until a window after its answer came back."""
        while True:
            asked_at = time.monotonic()
            async with self._sessions.begin() as session:
                decision = await rate_ledger.try_take_slot(
                    session,
                    limit=self._limit,
                    window=self._window,
                    margin=self._margin,
                    hold=self._hold,
                )
            if decision.granted:
                assert decision.slot_id is not None and decision.now is not None
                _current_slot.set((decision.slot_id, decision.now, asked_at))
                return
            if activity.in_activity():
                activity.heartbeat("waiting for a DSP request slot")
            await asyncio.sleep(min(decision.wait_seconds, MAX_SLEEP_SECONDS))

    async def completed(self) -> None:
        """The answer to this task's request is back (whatever it was)."""
        slot = _current_slot.get()
        if slot is None:
            return
        _current_slot.set(None)
        slot_id, granted_at, asked_at = slot
        arrived_by = granted_at + timedelta(seconds=time.monotonic() - asked_at)
        async with self._sessions.begin() as session:
            await rate_ledger.complete_slot(session, slot_id, arrived_by)

    async def pause(self, seconds: float) -> None:
        await self.completed()
        async with self._sessions.begin() as session:
            await rate_ledger.pause_until(session, seconds)

    async def observe(self, remaining: int | None, reset: float | None) -> None:
        """The DSP counts requests we did not make (another client on the token): follow it."""
        await self.completed()
        if remaining != 0 or not reset:
            return
        async with self._sessions() as session:
            ours = await rate_ledger.granted_in_window(session, self._window)
        if ours < self._limit:
            # Our own requests do not fill the window: somebody else's do.
            logger.info("DSP reports no requests remaining; pausing %.2f s", reset)
            await self.pause(reset)
