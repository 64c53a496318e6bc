"""The shared DSP budget as the activities see it: wait for a slot, honour the DSP's word."""

from __future__ import annotations

import asyncio
import logging

from temporalio import activity

from database import rate_ledger
from database.engine import SessionFactory

logger = logging.getLogger(__name__)

# Longest single sleep between slot attempts, so the activity keeps heartbeating.
MAX_SLEEP_SECONDS = 2.0


class SharedRateLimiter:
    def __init__(
        self, session_factory: SessionFactory, *, limit: int, window: float, margin: float
    ) -> None:
        self._sessions = session_factory
        self._limit = limit
        self._window = window
        self._margin = margin

    async def acquire(self) -> None:
        """Return once a request slot is ours; it is counted whether or not the request lands."""
        while True:
            async with self._sessions.begin() as session:
                decision = await rate_ledger.try_take_slot(
                    session, limit=self._limit, window=self._window, margin=self._margin
                )
            if decision.granted:
                return
            if activity.in_activity():
                activity.heartbeat("waiting for a DSP request slot")
            await asyncio.sleep(min(decision.wait_seconds, MAX_SLEEP_SECONDS))

    async def pause(self, seconds: float) -> None:
        async with self._sessions.begin() as session:
            await rate_ledger.pause_until(session, seconds)

    async def observe(self, remaining: int | None, reset: float | None) -> None:
        """The DSP counts requests we did not make (another client on the token): follow it."""
        if remaining == 0 and reset:
            logger.info("DSP reports no requests remaining; pausing %.2f s", reset)
            await self.pause(reset)
