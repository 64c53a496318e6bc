"""The one way to start an entity workflow: the client's submit, cancel and resubmit, telling
dependants and the orphan sweep all start one through `start_entity_workflow`.

It lives with the activities, not the client, because the fan-out and the sweep run as
activities, and the client may import activities but not the other way round.

Every start carries the batch's priority and fairness key (`entity_workflow_priority`).

**No second run for an entity that has just ended.** A start that brings the entity new work
(its first start, a resubmit, the sweep of an open row nothing runs) may open a new run after
a completed one (`EntityStart.reopen`, id-reuse policy `ALLOW_DUPLICATE`). Any other start
only carries news (a dependency's outcome, a user's cancel, a file submitted again) and must
not: a run of an entity that has ended would only wake, find its row ended and stop, and show
in the web UI as an entity still `waiting`. Such a start first goes with the policy
`ALLOW_DUPLICATE_FAILED_ONLY`. The server then signals a running run, starts the first run of
a key, starts again after a run that failed, was terminated or timed out, and refuses the
start (`WorkflowAlreadyStartedError`) when the latest run completed; it checks and starts in
one step, so a start racing the run's close cannot slip between the two. Entity workflows
end by completing normally, after their ending is in the row.

A refusal means the latest run completed, not that the entity has ended for good, so the row
decides (`queue_store.needs_run`) and nothing is stranded:
- an entity reopened with no run (a resubmit upstream put it back to waiting after it ended
  blocked, or its own resubmit's start is still on its way) has not ended: it is started;
- a blocked entity that must look again (the dependency that blocked it succeeded in a newer
  version) has no dependency that still ends it: it is started and looks again;
- anything else has ended: nothing starts, and `start_entity_workflow` returns False.
A second run could still open only if, between the refusal and the start after it, another
start opened a run and that run ended too. Past the namespace's retention a completed run is
gone and a start finds no run to refuse it, so news goes only to entities with work: the
fan-out's pages select them by the same predicate as `needs_run`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from temporalio.client import Client
from temporalio.common import (
    Priority,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError

from dsp_integration.contracts import (
    ENTITY_WORKFLOW_NAME,
    EntityWorkflowInput,
    PriorityLevel,
    fairness_key_for,
    workflow_id_for,
    workflow_priority_key,
)
from dsp_integration.contracts.search_attributes import entity_search_attributes
from dsp_integration.database import queue_store
from dsp_integration.database.engine import SessionFactory, autocommit_session


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


@dataclass(frozen=True)
class EntityStart:
    """One start of the workflow of `key`, of a batch at `level` with `weight`. With `signal`,
    signal-with-start (`signal_arg` its argument); without, a start that leaves a running
    workflow as it is. `reopen`: the start brings new work, so it may open a new run after a
    completed one; otherwise the row decides (module docstring). `search_attributes` default
    to the key alone (the workflow adds the rest)."""

    key: str
    batch: str
    level: PriorityLevel
    weight: float
    signal: str | None = None
    signal_arg: Any = None
    reopen: bool = False
    search_attributes: TypedSearchAttributes | None = None


async def start_entity_workflow(
    client: Client, sessions: SessionFactory, task_queue: str, start: EntityStart
) -> bool:
    """Start (or signal-with-start) the entity's workflow on `task_queue`. Returns False when
    the start only carried news (`reopen` unset) to an entity that has ended: no run opened."""
    if start.reopen:
        return await _start(client, task_queue, start)
    if await _start(client, task_queue, start):
        return True
    async with autocommit_session(sessions) as session:
        if not await queue_store.needs_run(session, start.key):
            return False
    return await _start(client, task_queue, replace(start, reopen=True))


async def _start(client: Client, task_queue: str, start: EntityStart) -> bool:
    """One start with the id-reuse policy `start.reopen` asks for; False when the server
    refused it because the latest run completed."""
    options: dict[str, Any] = {
        "id": workflow_id_for(start.key),
        "task_queue": task_queue,
        "search_attributes": start.search_attributes or entity_search_attributes(start.key),
        "priority": entity_workflow_priority(start.batch, start.level, start.weight),
        "id_reuse_policy": WorkflowIDReusePolicy.ALLOW_DUPLICATE
        if start.reopen
        else WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
    }
    if start.signal is None:
        options["id_conflict_policy"] = WorkflowIDConflictPolicy.USE_EXISTING
    else:
        options["start_signal"] = start.signal
        options["start_signal_args"] = [start.signal_arg]
    try:
        await client.start_workflow(
            ENTITY_WORKFLOW_NAME, EntityWorkflowInput(key=start.key), **options
        )
    except WorkflowAlreadyStartedError:
        if start.reopen:
            raise
        return False
    return True
