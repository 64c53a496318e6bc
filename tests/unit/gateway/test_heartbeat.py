"""`auto_heartbeat` beats often enough for a cancellation (which arrives only in a
heartbeat's answer) to reach a DSP call within a couple of seconds, whatever the heartbeat
timeout the workflow gave it."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta

from temporalio.testing import ActivityEnvironment

from dsp_integration.gateway.heartbeat import HEARTBEAT_EVERY, auto_heartbeat

DSP_HEARTBEAT_TIMEOUT = timedelta(seconds=30)


async def test_a_call_with_a_long_heartbeat_timeout_beats_every_second() -> None:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, heartbeat_timeout=DSP_HEARTBEAT_TIMEOUT)
    beats = 0
    second_beat = asyncio.Event()

    def on_heartbeat(*details: object) -> None:
        nonlocal beats
        beats += 1
        if beats == 2:
            second_beat.set()

    env.on_heartbeat = on_heartbeat

    @auto_heartbeat
    async def held_call() -> None:
        await second_beat.wait()

    loop = asyncio.get_running_loop()
    started = loop.time()
    async with asyncio.timeout(DSP_HEARTBEAT_TIMEOUT.total_seconds() / 3):
        await env.run(held_call)

    assert loop.time() - started < 2 * HEARTBEAT_EVERY.total_seconds() + 0.5
