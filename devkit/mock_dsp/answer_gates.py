"""Answers held until a test releases them: the DSP has acted on a request, and the client
hears of it only when the test says so (a cancel or resubmit can arrive meanwhile). Not to
be confused with `MockDsp.hold`, which keeps an entity under review."""

from __future__ import annotations

import asyncio
import contextlib
import threading


class AnswerGate:
    """Released from any thread (the test's), waited on by the mock's event loop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._released = False
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    def release(self) -> None:
        with self._lock:
            self._released = True
            waiters, self._waiters = self._waiters, []
        for loop, event in waiters:
            with contextlib.suppress(RuntimeError):  # the server has stopped meanwhile
                loop.call_soon_threadsafe(event.set)

    @property
    def released(self) -> bool:
        with self._lock:
            return self._released

    async def wait(self) -> None:
        event = asyncio.Event()
        with self._lock:
            if self._released:
                return
            self._waiters.append((asyncio.get_running_loop(), event))
        await event.wait()
