"""Fair shares between batches on the real stack (dev server with fairness on, an in-process
worker, the mock DSP over HTTP with a small rate limit, so a backlog forms).

While two batches both have DSP calls waiting, each gets a share of the budget by its
weight: counted as the entities of the large batch that end while the small one runs (one
POST each). First come, first served would end nearly the whole backlog first; the margins
are wide, for the calls the worker already holds and a loaded machine. A `prioritise` reaches
the calls already waiting in the DSP queue."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select

from dsp_integration.client import control, queries
from dsp_integration.client.submission import read_submission, submit
from dsp_integration.contracts import PriorityLevel
from dsp_integration.database.models import AuditRecord
from tests.integration.dag import advertiser
from tests.integration.harness import Stack, end_times, write_entities

# 4 requests a second: a 100-advertiser backlog (one POST each) takes about 25 s alone.
BACKLOG = 100
SMALL = 30


async def _submit(
    stack: Stack,
    tmp_path: Path,
    batch: str,
    count: int,
    level: PriorityLevel = PriorityLevel.NORMAL,
    weight: float = 1.0,
) -> None:
    entities = [advertiser(f"{batch}-{i:03d}") for i in range(count)]
    path = write_entities(tmp_path / f"{batch}.json", batch, entities)
    await submit(stack.service, read_submission(path), level, weight)


async def _all_queued(stack: Stack, batch: str, within: float = 60) -> datetime:
    """When every entity of the batch had its POST scheduled (or done)."""
    deadline = time.monotonic() + within
    while True:
        views = await queries.entity_views(stack.service, batch=batch)
        if views and all(v.status != "waiting" for v in views):
            return datetime.now(UTC)
        assert time.monotonic() < deadline, f"batch {batch} not queued in {within:.0f} s"
        await asyncio.sleep(0.1)


async def _shares(stack: Stack, small: str) -> tuple[int, int, int]:
    """While both batches have POSTs waiting (from when the small batch's are all queued to
    its last end): how many of the backlog and of the small batch ended; and how many of the
    backlog were still open when the small batch had ended."""
    since = await _all_queued(stack, small)
    small_done = await end_times(stack, small)
    backlog_done = await end_times(stack, "bk")
    until = small_done[-1]
    backlog = sum(1 for at in backlog_done if since <= at <= until)
    mine = sum(1 for at in small_done if since <= at)
    return backlog, mine, sum(1 for at in backlog_done if at > until)


async def test_prioritise_moves_calls_already_waiting_in_the_dsp_queue(
    slow_stack: Stack, tmp_path: Path
) -> None:
    stack = slow_stack
    await _submit(stack, tmp_path, "bk", BACKLOG)
    await _submit(stack, tmp_path, "late", 10, PriorityLevel.LOW)
    await asyncio.sleep(3.0)  # every POST of both batches is queued by now

    report = await control.prioritise(stack.service, "late", PriorityLevel.HIGH, 2.0)
    assert (report.changed, report.signalled) == (10, 10)

    late_done = await end_times(stack, "late")
    backlog_done = await end_times(stack, "bk")
    after = sum(1 for at in backlog_done if at > late_done[-1])
    # Left low, the batch would wait for the whole backlog; raised, its queued POSTs go
    # first (the ones the worker already holds aside).
    assert after >= BACKLOG // 2, after
    async with stack.service.sessions() as session:
        posts = await session.scalar(
            select(func.count())
            .select_from(AuditRecord)
            .where(AuditRecord.entity_key.like("late-%"), AuditRecord.method == "POST")
        )
    assert posts == 10  # each re-keyed call was cancelled before its request left
