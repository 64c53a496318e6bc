"""Fair shares between batches on the real stack (dev server with fairness on, an in-process
worker, the mock DSP over HTTP with a small rate limit, so a backlog forms).

While two batches both have DSP calls waiting, each gets a share of the budget: a small batch
submitted behind a large backlog ends while most of the backlog still waits, where first
come, first served would end the whole backlog first. The margins are wide, for the calls the
worker already holds and a loaded machine (exact shares are measured by
devkit/bench/fairness.py, not asserted). A `prioritise` reaches the calls already waiting in
the DSP queue."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import func, select
from temporalio.service import RPCError, RPCStatusCode

from dsp_integration.client import control, queries
from dsp_integration.client.submission import read_submission, submit
from dsp_integration.contracts import PriorityLevel, workflow_id_for
from dsp_integration.database.models import AuditRecord
from tests.integration.dag import advertiser
from tests.integration.harness import Stack, end_times, write_entities

# 4 requests a second: a 100-advertiser backlog (one POST each) takes about 25 s alone.
BACKLOG = 100
SMALL = 30
# 50 s of POSTs alone: a small batch behind it ends long before it at any fair share.
LARGE_BACKLOG = 200


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


async def test_a_small_batch_is_not_held_behind_a_large_backlog(
    slow_stack: Stack, tmp_path: Path
) -> None:
    stack = slow_stack
    await _submit(stack, tmp_path, "big", LARGE_BACKLOG)
    try:
        await _submit(stack, tmp_path, "small", SMALL)

        await end_times(stack, "small")
        counts = await queries.status_counts(stack.service, "big")
        still_open = LARGE_BACKLOG - counts.get("succeeded", 0)
        # At equal shares the small batch's 30 POSTs take about 60 of the budget, so about
        # 160 of the backlog are still open (first come, first served: none). Even a share of
        # one in four leaves 80 open.
        assert still_open >= LARGE_BACKLOG // 3, counts
    finally:
        # The rest of the backlog is not this test's business; a later test reusing its keys
        # would otherwise meet these workflows still running.
        await _terminate(stack, [f"big-{i:03d}" for i in range(LARGE_BACKLOG)])


async def _terminate(stack: Stack, keys: list[str]) -> None:
    client = await stack.service.temporal()
    for key in keys:
        try:
            await client.get_workflow_handle(workflow_id_for(key)).terminate("test over")
        except RPCError as error:
            if error.status is not RPCStatusCode.NOT_FOUND:  # ended already
                raise


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
