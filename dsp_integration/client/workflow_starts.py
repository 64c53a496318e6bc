"""Starting and signalling entity workflows from outside Temporal."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from temporalio.client import Client
from temporalio.common import Priority, TypedSearchAttributes, WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

from dsp_integration.contracts import (
    ENTITY_WORKFLOW_NAME,
    EntityWorkflowInput,
    PriorityLevel,
    fairness_key_for,
    workflow_id_for,
    workflow_priority_key,
)
from dsp_integration.contracts.search_attributes import entity_search_attributes

# Starts in flight at once. The server is the bottleneck (the dev server writes to one SQLite
# database, about one core); more in flight only queues there (devkit/bench/RESULTS.md).
START_CONCURRENCY = 32


def entity_workflow_priority(batch: str, level: PriorityLevel, weight: float) -> Priority:
    """The priority of an entity's workflow tasks: its level's key, its batch as fairness key
    with the batch's weight. Without it a small batch's first workflow tasks wait behind every
    task of a large batch started before it on the workflow task queue (devkit/bench/
    RESULTS.md, "Fair shares"). Its DSP calls set their own priority."""
    return Priority(
        priority_key=workflow_priority_key(level),
        fairness_key=fairness_key_for(batch),
        fairness_weight=weight,
    )


async def start_entity_workflow(
    client: Client,
    key: str,
    task_queue: str,
    *,
    signal: str | None = None,
    signal_arg: Any = None,
    search_attributes: TypedSearchAttributes | None = None,
    priority: Priority | None = None,
) -> None:
    """Start the entity's workflow unless it runs already; with `signal`, signal-with-start.
    Search attributes default to the key alone (the workflow adds the rest); `priority`
    orders its workflow tasks (`entity_workflow_priority`)."""
    options: dict[str, Any] = {
        "id": workflow_id_for(key),
        "task_queue": task_queue,
        "search_attributes": search_attributes or entity_search_attributes(key),
    }
    if priority is not None:
        options["priority"] = priority
    if signal is None:
        options["id_conflict_policy"] = WorkflowIDConflictPolicy.USE_EXISTING
    else:
        options["start_signal"] = signal
        options["start_signal_args"] = [signal_arg]
    await client.start_workflow(
        ENTITY_WORKFLOW_NAME, EntityWorkflowInput(key=key, lean=True), **options
    )


async def start_entity_workflows(
    client: Client,
    keys: Iterable[str],
    task_queue: str,
    search_attributes: Mapping[str, TypedSearchAttributes] | None = None,
    priorities: Mapping[str, Priority] | None = None,
) -> int:
    """Start many workflows concurrently, in the order given (parents first)."""
    attributes = search_attributes or {}
    priority = priorities or {}
    keys = list(keys)

    async def start(key: str) -> None:
        await start_entity_workflow(
            client,
            key,
            task_queue,
            search_attributes=attributes.get(key),
            priority=priority.get(key),
        )

    await _for_each(keys, start)
    return len(keys)


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


async def _for_each(keys: Iterable[str], call: Callable[[str], Awaitable[None]]) -> None:
    """`call` for every key in order, START_CONCURRENCY at a time; the first RPC error
    raised is re-raised alone."""
    gate = asyncio.Semaphore(START_CONCURRENCY)

    async def one(key: str) -> None:
        async with gate:
            await call(key)

    try:
        async with asyncio.TaskGroup() as group:
            for key in keys:
                group.create_task(one(key))
    except* RPCError as failures:
        raise failures.exceptions[0] from None
