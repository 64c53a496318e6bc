"""Priority order on the real stack (dev server with the priority matcher and fairness, an
in-process worker, the mock DSP over HTTP with a small rate limit, so a backlog forms): a
high batch submitted behind a normal backlog finishes before the backlog does, and a low
batch submitted at the same time waits for both: none of its POSTs goes before a backlog POST
but for the few DSP calls the worker already held. How much of the backlog the high batch
passes is a speed figure: `python -m devkit.bench.suite_floors priority` prints it."""

from __future__ import annotations

from pathlib import Path

import pytest

from devkit.mock_dsp.server import MockDspServer
from dsp_integration.client import queries
from dsp_integration.client.actors import cli_actor
from dsp_integration.client.submission import read_submission, submit
from dsp_integration.contracts import PriorityLevel
from dsp_integration.worker.runtime import dsp_concurrency
from tests.integration.conftest import SLOW_LIMIT, SLOW_WINDOW
from tests.integration.dag import advertiser
from tests.integration.harness import (
    Stack,
    end_times,
    wait_until_all_started,
    write_entities,
)

# Timing-sensitive: one process runs these one after another (make test: --dist loadgroup).
pytestmark = pytest.mark.xdist_group("timing")

# 4 requests a second: the 60 advertisers of the backlog (one POST each) take about 15 s.
BACKLOG = 60
SMALL = 5


async def test_a_high_batch_goes_before_the_backlog_and_a_low_one_after(
    slow_stack: Stack, mock_dsp: MockDspServer, tmp_path: Path
) -> None:
    stack = slow_stack
    backlog = [advertiser(f"bk-{i:03d}") for i in range(BACKLOG)]
    await submit(
        stack.service,
        read_submission(write_entities(tmp_path / "bk.json", "bk", backlog)),
        actor=cli_actor(),
    )
    # The backlog's DSP calls reach the DSP queue first.
    await wait_until_all_started(stack, "bk", BACKLOG)
    low = [advertiser(f"lo-{i}") for i in range(SMALL)]
    high = [advertiser(f"hi-{i}") for i in range(SMALL)]
    low_file = write_entities(tmp_path / "lo.json", "lo", low)
    high_file = write_entities(tmp_path / "hi.json", "hi", high)
    await submit(stack.service, read_submission(low_file), PriorityLevel.LOW, actor=cli_actor())
    await submit(stack.service, read_submission(high_file), PriorityLevel.HIGH, actor=cli_actor())
    assert {v.priority for v in await queries.entity_views(stack.service, batch="hi")} == {"high"}

    high_done = (await end_times(stack, "hi"))[-1]
    backlog_done = await end_times(stack, "bk")
    low_done = await end_times(stack, "lo")

    # FIFO would finish the high batch after the whole backlog.
    assert high_done < backlog_done[-1], (high_done, backlog_done)
    # The low batch waited for the high one, and for the backlog: once its first POST went,
    # only calls the worker held before the server handed it a low one may follow.
    assert low_done[0] > high_done, (low_done, high_done)
    posts = [r.idempotency_key or "" for r in mock_dsp.dsp.request_log if r.method == "POST"]
    first_low = next(i for i, key in enumerate(posts) if key.startswith("lo-"))
    backlog_after = [key for key in posts[first_low:] if key.startswith("bk-")]
    assert len(backlog_after) <= dsp_concurrency(SLOW_LIMIT / SLOW_WINDOW), backlog_after
