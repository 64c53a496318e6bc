"""Fair shares between batches on the real stack (dev server with fairness on, an in-process
worker, the mock DSP over HTTP with a small rate limit, so a backlog forms).

While two batches both have DSP calls waiting, each gets a share of the budget: a small batch
submitted behind a large backlog ends while the backlog still waits, where first come, first
served would end the whole backlog first. A `prioritise` reaches the calls already waiting in
the DSP queue. How large the shares are is a speed figure, not asserted here:
`python -m devkit.bench.suite_floors shares` prints it (and devkit/bench/fairness.py
measures it in depth)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select
from temporalio.service import RPCError, RPCStatusCode

from dsp_integration.client import control, queries
from dsp_integration.client.actors import cli_actor
from dsp_integration.client.submission import read_submission, submit
from dsp_integration.contracts import PriorityLevel, workflow_id_for
from dsp_integration.database.models import AuditRecord
from tests.integration.dag import advertiser
from tests.integration.harness import (
    Stack,
    end_times,
    wait_until_all_started,
    write_entities,
)

# Timing-sensitive: one process runs these one after another (make test: --dist loadgroup).
pytestmark = pytest.mark.xdist_group("timing")

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
    await submit(stack.service, read_submission(path), level, weight, actor=cli_actor())


async def test_a_small_batch_is_not_held_behind_a_large_backlog(
    slow_stack: Stack, tmp_path: Path
) -> None:
    stack = slow_stack
    await _submit(stack, tmp_path, "big", LARGE_BACKLOG)
    try:
        await _submit(stack, tmp_path, "small", SMALL)

        await end_times(stack, "small")
        counts = await queries.status_counts(stack.service, "big")
        # First come, first served would have ended the whole backlog first.
        assert counts.get("succeeded", 0) < LARGE_BACKLOG, counts
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
    await wait_until_all_started(stack, "bk", BACKLOG)
    await wait_until_all_started(stack, "late", 10)

    report = await control.prioritise(
        stack.service, "late", PriorityLevel.HIGH, 2.0, actor=cli_actor()
    )
    assert (report.changed, report.signalled) == (10, 10)

    late_done = await end_times(stack, "late")
    backlog_done = await end_times(stack, "bk")
    # Left low, the batch would wait for the whole backlog; raised, its queued POSTs go first.
    assert late_done[-1] < backlog_done[-1], (late_done, backlog_done)
    async with stack.service.sessions() as session:
        posts = await session.scalar(
            select(func.count())
            .select_from(AuditRecord)
            .where(AuditRecord.entity_key.like("late-%"), AuditRecord.method == "POST")
        )
    assert posts == 10  # each re-keyed call was cancelled before its request left
