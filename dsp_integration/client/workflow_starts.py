"""Starting and signalling entity workflows from outside Temporal, many at a time. Each
start goes through `start_entity_workflow`, the one way to start an entity workflow."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from dsp_integration.activities.entity_starts import (
    EntityStart,
    entity_workflow_priority,
    start_entity_workflow,
)
from dsp_integration.contracts import workflow_id_for
from dsp_integration.database.engine import SessionFactory

__all__ = [
    "START_CONCURRENCY",
    "EntityStart",
    "entity_workflow_priority",
    "signal_running_workflows",
    "start_entity_workflow",
    "start_entity_workflows",
]

# Starts in flight at once. The server is the bottleneck (the dev server writes to one SQLite
# database, about one core); more in flight only queues there (devkit/bench/RESULTS.md).
START_CONCURRENCY = 32

T = TypeVar("T")


async def start_entity_workflows(
    client: Client, sessions: SessionFactory, task_queue: str, starts: Sequence[EntityStart]
) -> int:
    """Start many workflows concurrently, in the order given (parents first); returns how
    many started or were running (not those that had ended meanwhile)."""
    started = 0

    async def start(one: EntityStart) -> None:
        nonlocal started
        if await start_entity_workflow(client, sessions, task_queue, one):
            started += 1

    await _for_each(starts, start)
    return started


async def signal_running_workflows(
    client: Client, keys: Iterable[str], signal: str, signal_arg: Any
) -> int:
    """Signal the running workflow of each key, concurrently; returns how many were running.
    A key whose workflow is not running is skipped: it reads the row when it starts."""
    running = 0

    async def send(key: str) -> None:
        nonlocal running
        try:
            await client.get_workflow_handle(workflow_id_for(key)).signal(signal, signal_arg)
        except RPCError as error:
            if error.status is not RPCStatusCode.NOT_FOUND:
                raise
            return
        running += 1

    await _for_each(keys, send)
    return running


async def _for_each(items: Iterable[T], call: Callable[[T], Awaitable[None]]) -> None:
    """`call` for every item in order, START_CONCURRENCY at a time; the first RPC error
    raised is re-raised alone."""
    gate = asyncio.Semaphore(START_CONCURRENCY)

    async def one(item: T) -> None:
        async with gate:
            await call(item)

    try:
        async with asyncio.TaskGroup() as group:
            for item in items:
                group.create_task(one(item))
    except* RPCError as failures:
        raise failures.exceptions[0] from None
