"""The DSP rate limit with two worker processes against the mock DSP's strict limiter:
never over the limit, nothing lost, and the other client's requests honoured. How fully the
budget is used is a speed figure: `python -m devkit.bench.suite_floors rate` prints it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from devkit.bench.workloads import advertiser
from devkit.mock_dsp.request_log import max_in_window
from devkit.mock_dsp.server import MockDspServer
from devkit.stack.temporal_server import TemporalDevServer
from devkit.stack.workers import WorkerProcesses, worker_env
from dsp_integration.client.actors import cli_actor
from dsp_integration.client.context import ServiceContext, open_service
from dsp_integration.client.queries import status_counts
from dsp_integration.client.submission import read_submission, submit
from dsp_integration.config import Settings
from dsp_integration.contracts import EntityStatus
from dsp_integration.database.engine import SessionFactory
from tests.integration.harness import stack_settings, write_entities

# Timing-sensitive: one process runs these one after another (make test: --dist loadgroup).
pytestmark = pytest.mark.xdist_group("timing")

LIMIT = 20
WINDOW = 3.0
WORKERS = 2


@dataclass
class ProcessStack:
    settings: Settings
    service: ServiceContext
    mock: MockDspServer
    workers: WorkerProcesses


@pytest_asyncio.fixture
async def process_stack(
    clean_database: SessionFactory,
    database_url: str,
    temporal_server: TemporalDevServer,
    mock_dsp: MockDspServer,
    tmp_path: Path,
) -> AsyncIterator[ProcessStack]:
    config = mock_dsp.dsp.config.model_copy(update={"rate_limit": LIMIT, "rate_window": WINDOW})
    mock_dsp.dsp.config = config
    settings = stack_settings(
        database_url=database_url,
        temporal_address=temporal_server.address,
        dsp_base_url=mock_dsp.base_url,
        dsp_rate_limit=LIMIT,
        dsp_rate_window=WINDOW,
        dsp_timeout=10.0,
    )
    env = worker_env(settings)
    with WorkerProcesses(WORKERS, env, log_dir=tmp_path / "workers") as workers:
        async with open_service(settings) as service:
            yield ProcessStack(settings, service, mock_dsp, workers)


async def run_backlog(stack: ProcessStack, path: Path, count: int, within: float) -> None:
    entities = [advertiser(f"rl-a{i}") for i in range(count)]
    await submit(
        stack.service, read_submission(write_entities(path, "rl", entities)), actor=cli_actor()
    )
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        counts = await status_counts(stack.service, "rl")
        if counts.get(EntityStatus.SUCCEEDED.value) == count:
            return
        await asyncio.sleep(0.2)
    logs = "\n".join(stack.workers.log_tail(i) for i in range(WORKERS))
    raise AssertionError(f"backlog not drained within {within} s: {counts}\n{logs}")


async def test_two_worker_processes_keep_the_limit_and_lose_nothing(
    process_stack: ProcessStack, tmp_path: Path
) -> None:
    count = 5 * LIMIT
    await run_backlog(process_stack, tmp_path / "backlog.json", count, within=60)

    log = sorted(process_stack.mock.dsp.request_log, key=lambda r: r.at)
    times = [r.at for r in log]
    assert len(log) == count
    assert [r.status for r in log if r.status == 429] == []
    assert max_in_window(times, WINDOW) <= LIMIT
    assert len({r.body["name"] for r in log}) == count


async def test_another_client_on_the_token_is_honoured(
    process_stack: ProcessStack, tmp_path: Path
) -> None:
    count = 6 * LIMIT
    mock = process_stack.mock.dsp

    async def throttle_once_busy() -> float:
        while len(mock.request_log) < 2 * LIMIT:  # noqa: ASYNC110 (the mock has no event)
            await asyncio.sleep(0.05)
        mock.throttle(LIMIT)
        return time.monotonic()

    throttler = asyncio.create_task(throttle_once_busy())
    await run_backlog(process_stack, tmp_path / "throttled.json", count, within=60)
    throttled_at = await throttler

    log = sorted(mock.request_log, key=lambda r: r.at)
    refused = [r for r in log if r.status == 429]
    assert refused, "the other client's burst should have cost at least one 429"
    # Honoured: a few requests already under way may be refused, then everyone waits.
    assert len(refused) <= 2 * WORKERS, [(r.at - throttled_at) for r in refused]
    first = refused[0]
    quiet_until = throttled_at + WINDOW - 0.05
    hammered = [r for r in log if first.at < r.at < quiet_until and r.status == 429]
    assert len(hammered) <= WORKERS
    assert max_in_window([r.at for r in log], WINDOW) <= LIMIT
    # Nothing lost: every refused POST was sent again and created its advertiser once.
    accepted = [r for r in log if r.status != 429]
    assert len(accepted) == count
    assert len({r.body["name"] for r in accepted}) == count
