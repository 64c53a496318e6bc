"""Telling an entity's dependants how it stands, however many there are.

The dependants are read from `dsp_entity_queue` in pages, never carried in the workflow's
history, and signalled with bounded concurrency. Progress is heartbeated after each page, so a
retry resumes after the last page done instead of starting over; a page read also checks that
the outcome is still the entity's current one, so a superseded outcome stops spreading."""

from __future__ import annotations

import asyncio

from temporalio import activity
from temporalio.client import Client

from dsp_integration.activities.entity_starts import EntityStart, start_entity_workflow
from dsp_integration.contracts import (
    SIGNAL_DEPENDENCY_FINISHED,
    DependencyOutcome,
    TellDependantsInput,
    TellDependantsResult,
)
from dsp_integration.database import queue_store
from dsp_integration.database.engine import SessionFactory, autocommit_session

PAGE_SIZE = 500
# Signals in flight at once; the Temporal server, not this worker, is the limit.
SIGNAL_CONCURRENCY = 32


async def tell_dependant(
    client: Client,
    sessions: SessionFactory,
    task_queue: str,
    dependant: queue_store.StartRow,
    outcome: DependencyOutcome,
) -> bool:
    """Signal-with-start `dependency_finished` to the dependant's workflow, so one whose
    workflow is not running starts and reads the news; returns False when it has ended and
    no run was opened for it (`start_entity_workflow`: the page was read a moment ago, and a
    dependant open then may have ended since). The `waiting` news of a new version goes the
    same way: a dependant its resubmit reopened has work in its row and starts, one that had
    succeeded stays ended."""
    start = EntityStart(
        key=dependant.key,
        batch=dependant.batch,
        level=dependant.level,
        weight=dependant.weight,
        signal=SIGNAL_DEPENDENCY_FINISHED,
        signal_arg=outcome,
    )
    return await start_entity_workflow(client, sessions, task_queue, start)


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
        ended = int(details[2]) if len(details) > 2 else 0
        gate = asyncio.Semaphore(self._concurrency)

        async def tell(dependant: queue_store.StartRow) -> None:
            nonlocal ended
            async with gate:
                if not await tell_dependant(
                    self._client, self._sessions, self._task_queue, dependant, outcome
                ):
                    ended += 1

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
                return TellDependantsResult(told=told, already_ended=ended, superseded=True)
            if not page:
                return TellDependantsResult(told=told, already_ended=ended)
            async with asyncio.TaskGroup() as group:
                for dependant in page:
                    group.create_task(tell(dependant))
            after, told = page[-1].key, told + len(page)
            if not activity.info().is_local:  # a local activity, for a few, has no heartbeat
                activity.heartbeat(after, told, ended)
