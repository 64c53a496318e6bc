"""Priority order on the real stack (dev server with the priority matcher and fairness, an
in-process worker, the mock DSP over HTTP with a small rate limit, so a backlog forms): a
high batch submitted behind a normal backlog finishes while most of the backlog still waits,
and a low batch submitted at the same time waits for the backlog."""

from __future__ import annotations

import asyncio
from pathlib import Path

from dsp_integration.client import queries
from dsp_integration.client.submission import read_submission, submit
from dsp_integration.contracts import PriorityLevel
from tests.integration.dag import advertiser
from tests.integration.harness import Stack, end_times, write_entities

# 4 requests a second: the 60 advertisers of the backlog (one POST each) take about 15 s.
BACKLOG = 60
SMALL = 5


async def test_a_high_batch_goes_before_the_backlog_and_a_low_one_after(
    slow_stack: Stack, tmp_path: Path
) -> None:
    stack = slow_stack
    backlog = [advertiser(f"bk-{i:03d}") for i in range(BACKLOG)]
    await submit(
        stack.service, read_submission(write_entities(tmp_path / "bk.json", "bk", backlog))
    )
    # Let the backlog's DSP calls reach the DSP queue first.
    await asyncio.sleep(2.0)
    low = [advertiser(f"lo-{i}") for i in range(SMALL)]
    high = [advertiser(f"hi-{i}") for i in range(SMALL)]
    low_file = write_entities(tmp_path / "lo.json", "lo", low)
    high_file = write_entities(tmp_path / "hi.json", "hi", high)
    await submit(stack.service, read_submission(low_file), PriorityLevel.LOW)
    await submit(stack.service, read_submission(high_file), PriorityLevel.HIGH)
    assert {v.priority for v in await queries.entity_views(stack.service, batch="hi")} == {"high"}

    high_done = (await end_times(stack, "hi"))[-1]
    backlog_done = await end_times(stack, "bk")
    low_done = await end_times(stack, "lo")

    # FIFO would finish the high batch after the whole backlog: with priority, about 40 of
    # the backlog are still waiting when its last entity has ended (at least a third, for the
    # calls the worker already held and a loaded machine).
    after_high = sum(1 for at in backlog_done if at > high_done)
    assert after_high >= BACKLOG // 3, (after_high, high_done, backlog_done)
    # The low batch used what was left: nearly all of the backlog ended before its first.
    before_low = sum(1 for at in backlog_done if at < low_done[0])
    assert before_low >= BACKLOG - 8, (before_low, low_done, backlog_done)
