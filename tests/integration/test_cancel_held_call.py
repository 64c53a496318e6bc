"""A cancel reaches a DSP call held for its ledger slot within a couple of seconds, on the
worker production runs (`run_worker`: its heartbeat interval and throttle), a real Temporal
dev server, PostgreSQL and the mock DSP."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from temporalio.api.enums.v1 import EventType

from devkit.mock_dsp.server import MockDspServer
from dsp_integration.client import control
from dsp_integration.client.actors import cli_actor
from dsp_integration.client.submission import read_submission, submit
from dsp_integration.contracts import DEFAULT_SEAT, SIGNAL_CANCEL, EntityStatus, workflow_id_for
from dsp_integration.database import rate_ledger
from dsp_integration.database.models import QueuedEntity, RateWaiter
from tests.integration.dag import advertiser
from tests.integration.harness import Stack, write_entities

# Longer than the test: the held call can only end by the cancel.
BUDGET_PAUSE_SECONDS = 120
# From the user's cancel to the held call's end: a beat and a throttled heartbeat's answer
# (a second each), with room for a loaded machine. The SDK's default throttle (0.8 x the
# 30 s heartbeat timeout) took up to 24 s.
CANCEL_REACHES_WITHIN = 3.0


async def test_a_cancel_reaches_a_call_held_for_its_slot_within_seconds(
    stack: Stack, mock_dsp: MockDspServer, tmp_path: Path
) -> None:
    key = "held-adv"
    async with stack.service.sessions.begin() as session:
        await rate_ledger.pause_until(session, DEFAULT_SEAT, BUDGET_PAUSE_SECONDS)
    path = write_entities(tmp_path / "held.json", "held", [advertiser(key)])
    await submit(stack.service, read_submission(path), actor=cli_actor())
    await _until(lambda: _waiting_for_slots(stack), "the POST never waited for its slot")

    await control.cancel(stack.service, key, actor=cli_actor())
    # Long enough for the SDK's default throttle, so a regression reports how late it was.
    await _until(lambda: _ended(stack, key), "the entity did not end after the cancel", 30)

    history = (
        await (await stack.service.temporal())
        .get_workflow_handle(workflow_id_for(key))
        .fetch_history()
    )
    [cancelled_at] = [
        e.event_time.ToDatetime()
        for e in history.events
        if e.workflow_execution_signaled_event_attributes.signal_name == SIGNAL_CANCEL
    ]
    [call_ended_at] = [
        e.event_time.ToDatetime()
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED
    ]
    reached_after = (call_ended_at - cancelled_at).total_seconds()
    assert reached_after < CANCEL_REACHES_WITHIN, f"the held call ended {reached_after:.1f} s late"
    async with stack.service.sessions() as session:
        row = await session.get(QueuedEntity, key)
    assert row is not None and row.status == EntityStatus.CANCELLED.value
    assert row.dsp_id is None
    assert mock_dsp.dsp.request_log == []


async def _waiting_for_slots(stack: Stack) -> bool:
    async with stack.service.sessions() as session:
        waiting = await session.scalar(select(func.count()).select_from(RateWaiter))
    return bool(waiting)


async def _ended(stack: Stack, key: str) -> bool:
    async with stack.service.sessions() as session:
        row = await session.get(QueuedEntity, key)
    return row is not None and row.finished_at is not None


async def _until(
    check: Callable[[], Coroutine[Any, Any, bool]], failure: str, within: float = 10.0
) -> None:
    """Look again every 50 ms until `check` holds; fail after `within` seconds."""
    try:
        async with asyncio.timeout(within):
            while True:
                if await check():
                    return
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"{failure} (within {within:.0f} s)") from None
