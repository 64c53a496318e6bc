"""Telling an entity's dependants how it stands, however many there are.

The keys are read from `dsp_entity_queue` in pages, never carried in the workflow's history,
and signalled with bounded concurrency. Progress is heartbeated after each page, so a retry
resumes after the last page done instead of starting over; a page read also checks that the
outcome is still the entity's current one, so a superseded outcome stops spreading."""

from __future__ import annotations

import asyncio

from temporalio import activity
from temporalio.client import Client

from dsp_integration.contracts import (
    ENTITY_WORKFLOW_NAME,
    SIGNAL_DEPENDENCY_FINISHED,
    DependencyOutcome,
    EntityWorkflowInput,
    TellDependantsInput,
    TellDependantsResult,
    workflow_id_for,
)
from dsp_integration.contracts.search_attributes import entity_search_attributes
from dsp_integration.database import queue_store
from dsp_integration.database.engine import SessionFactory, autocommit_session

PAGE_SIZE = 500
# Signals in flight at once; the Temporal server, not this worker, is the limit.
SIGNAL_CONCURRENCY = 32


async def tell_dependant(
    client: Client, task_queue: str, key: str, outcome: DependencyOutcome
) -> None:
    """Signal-with-start `dependency_finished` to the workflow of `key`: one that is not
    running starts and reads the news (so a dependant whose start was lost still wakes up)."""
    await client.start_workflow(
        ENTITY_WORKFLOW_NAME,
        EntityWorkflowInput(key=key, lean=True),
        id=workflow_id_for(key),
        task_queue=task_queue,
        search_attributes=entity_search_attributes(key),
        start_signal=SIGNAL_DEPENDENCY_FINISHED,
        start_signal_args=[outcome],
    )


class DependantFanOut:
    def __init__(
        self,
        session_factory: SessionFactory,
        client: Client,
        task_queue: str,
        *,
        page_size: int = PAGE_SIZE,
        concurrency: int = SIGNAL_CONCURRENCY,
    ) -> None:
        self._sessions = session_factory
        self._client = client
        self._task_queue = task_queue
        self._page_size = page_size
        self._concurrency = concurrency

    @activity.defn
    async def tell_dependants(self, request: TellDependantsInput) -> TellDependantsResult:
        """Signal-with-start `dependency_finished` to every dependant concerned, so one whose
        workflow is not running starts and reads the news. Repeating a signal is harmless:
        the workflow keeps the newest version it has heard of. Runs as a local activity when
        the workflow knows there are only a few."""
        outcome = request.outcome
        details = activity.info().heartbeat_details
        after = str(details[0]) if details else ""
        told = int(details[1]) if len(details) > 1 else 0
        gate = asyncio.Semaphore(self._concurrency)

        async def tell(key: str) -> None:
            async with gate:
                await tell_dependant(self._client, self._task_queue, key, outcome)

        while True:
            async with autocommit_session(self._sessions) as session:
                page = await queue_store.dependants_page(
                    session,
                    outcome.key,
                    payload_version=outcome.payload_version,
                    status=outcome.status,
                    after=after,
                    limit=self._page_size,
                )
            if page is None:
                return TellDependantsResult(told=told, superseded=True)
            if not page:
                return TellDependantsResult(told=told)
            async with asyncio.TaskGroup() as group:
                for key in page:
                    group.create_task(tell(key))
            after, told = page[-1], told + len(page)
            if not activity.info().is_local:  # a local activity, for a few, has no heartbeat
                activity.heartbeat(after, told)
