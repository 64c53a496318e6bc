"""Keep an activity heartbeating while it awaits something slow, so a dead worker is noticed
within the heartbeat timeout rather than the much longer start-to-close timeout, and a
cancellation (which arrives only in a heartbeat's answer) within a couple of seconds."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from functools import wraps
from typing import ParamSpec, TypeVar

from temporalio import activity

P = ParamSpec("P")
T = TypeVar("T")

# At most this long between beats, whatever the heartbeat timeout: the workers throttle
# heartbeats to the same interval (`worker.runtime.HEARTBEAT_THROTTLE`).
HEARTBEAT_EVERY = timedelta(seconds=1)


def auto_heartbeat(fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    @wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        timeout = activity.info().heartbeat_timeout or timedelta(seconds=10)
        every = min(timeout / 3, HEARTBEAT_EVERY)
        beat = asyncio.create_task(_beat_every(every.total_seconds()))
        try:
            return await fn(*args, **kwargs)
        finally:
            beat.cancel()

    return wrapper


async def _beat_every(seconds: float) -> None:
    while True:
        await asyncio.sleep(seconds)
        activity.heartbeat()
