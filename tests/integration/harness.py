"""The real stack for one integration test: an in-process worker on a fresh task queue,
talking to the session's Temporal dev server, PostgreSQL and a mock DSP over HTTP."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from temporalio.client import Client

from dsp_integration.client import queries
from dsp_integration.client.actors import cli_actor
from dsp_integration.client.context import ServiceContext, open_service
from dsp_integration.client.progress import wait_for_batch
from dsp_integration.client.submission import read_submission, submit
from dsp_integration.config import Settings
from dsp_integration.worker.runtime import run_worker

TEST_TOKEN = "test-token-5f0c"


def stack_settings(
    *, database_url: str, temporal_address: str, dsp_base_url: str, **overrides: Any
) -> Settings:
    values: dict[str, Any] = {
        "temporal_address": temporal_address,
        "temporal_task_queue": f"tq-{uuid.uuid4().hex[:12]}",
        "database_url": database_url,
        "dsp_base_url": dsp_base_url,
        "dsp_api_token": TEST_TOKEN,
        "dsp_rate_limit": 30,
        "dsp_rate_window": 3.0,
        "dsp_timeout": 2.0,
        "dsp_poll_min_interval": 0.5,
        "dsp_poll_max_interval": 2.0,
        # Each test has its own task queue; a schedule per queue would outlive the test.
        "dsp_reconcile_interval": 0,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@asynccontextmanager
async def running_worker(settings: Settings, client: Client) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(run_worker(settings, stop, client=client))
    try:
        await asyncio.sleep(0)
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)


@dataclass
class Stack:
    settings: Settings
    service: ServiceContext

    async def submit_file(self, path: Path, *, wait_seconds: float = 120) -> dict[str, int]:
        """Submit a file and return its batch's final counts, failing after `wait_seconds`."""
        submission = read_submission(path)
        report = await submit(self.service, submission, actor=cli_actor())
        async with asyncio.timeout(wait_seconds):
            return await wait_for_batch(self.service, report.batch, on_update=lambda _: None)


@asynccontextmanager
async def open_stack(settings: Settings, client: Client) -> AsyncIterator[Stack]:
    async with open_service(settings, client=client) as service, running_worker(settings, client):
        yield Stack(settings, service)


def write_entities(path: Path, batch: str, entities: list[dict[str, Any]]) -> Path:
    path.write_text(json.dumps({"batch": batch, "entities": entities}))
    return path


async def end_times(stack: Stack, batch: str, within: float = 120) -> list[datetime]:
    """When each entity of the batch ended, sorted, once all have; every one succeeded."""
    deadline = time.monotonic() + within
    while True:
        views = await queries.entity_views(stack.service, batch=batch)
        if views and all(v.finished_at is not None for v in views):
            assert {v.status for v in views} == {"succeeded"}, views
            return sorted(v.finished_at for v in views if v.finished_at is not None)
        assert time.monotonic() < deadline, f"batch {batch} not finished in {within:.0f} s"
        await asyncio.sleep(0.2)


async def wait_until_all_started(stack: Stack, batch: str, count: int, within: float = 60) -> None:
    """Until all `count` entities of the batch are stored and none is `waiting`: each has
    reached its DSP calls (or ended)."""
    deadline = time.monotonic() + within
    while True:
        counts = await queries.status_counts(stack.service, batch)
        if sum(counts.values()) == count and not counts.get("waiting"):
            return
        assert time.monotonic() < deadline, f"batch {batch} not all started: {counts}"
        await asyncio.sleep(0.1)
