"""Restarting orphans: stored entities that have not ended and whose workflow is not running.

A client stores a file in one transaction and starts the workflows after it commits; if it
dies in between (or a start fails and the rest are never tried), the rows wait with nothing
to run them. The sweep compares the open rows with the running workflows that Temporal's
visibility lists, and starts what is missing. A start is idempotent (the workflow id is the
key's), so a sweep that races a client or another sweep does no harm."""

from __future__ import annotations

import asyncio

from temporalio import activity
from temporalio.client import Client

from dsp_integration.activities.entity_starts import EntityStart, start_entity_workflow
from dsp_integration.contracts import (
    ENTITY_WORKFLOW_NAME,
    ReconcileInput,
    ReconcileResult,
    workflow_id_for,
)
from dsp_integration.database import queue_store
from dsp_integration.database.engine import SessionFactory

PAGE_SIZE = 1000
START_CONCURRENCY = 16


async def running_workflow_ids(client: Client, task_queue: str) -> set[str]:
    query = (
        f"WorkflowType = '{ENTITY_WORKFLOW_NAME}' AND ExecutionStatus = 'Running' "
        f"AND TaskQueue = '{task_queue}'"
    )
    return {execution.id async for execution in client.list_workflows(query)}


async def restart_orphans(
    sessions: SessionFactory, client: Client, request: ReconcileInput
) -> ReconcileResult:
    """Start the workflow of every open entity, idle for `grace_seconds`, that has none
    running on `request.task_queue`, with its batch's priority and fairness key. An open row
    has work to do, so the start may open a new run after a completed one."""
    running = await running_workflow_ids(client, request.task_queue)
    gate = asyncio.Semaphore(START_CONCURRENCY)
    restarted: list[str] = []
    seen = 0

    async def start(row: queue_store.StartRow) -> None:
        async with gate:
            start = EntityStart(
                key=row.key, batch=row.batch, level=row.level, weight=row.weight, reopen=True
            )
            await start_entity_workflow(client, sessions, request.task_queue, start)
            restarted.append(row.key)

    after = ""
    while True:
        async with sessions() as session:
            page = await queue_store.open_keys_page(
                session, after=after, limit=PAGE_SIZE, idle_seconds=request.grace_seconds
            )
        if not page:
            break
        seen += len(page)
        async with asyncio.TaskGroup() as group:
            for row in page:
                if workflow_id_for(row.key) not in running:
                    group.create_task(start(row))
        after = page[-1].key
        if activity.in_activity():
            activity.heartbeat(after)
    return ReconcileResult(open_entities=seen, restarted=sorted(restarted))


class OrphanReconciler:
    def __init__(self, session_factory: SessionFactory, client: Client) -> None:
        self._sessions = session_factory
        self._client = client

    @activity.defn
    async def restart_orphaned_entities(self, request: ReconcileInput) -> ReconcileResult:
        """One sweep (see the module docstring); safe to repeat at any time."""
        result = await restart_orphans(self._sessions, self._client, request)
        if result.restarted:
            activity.logger.warning(
                "restarted %d orphaned entities: %s",
                len(result.restarted),
                ", ".join(result.restarted[:20]),
            )
        return result
