"""The one way to start an entity workflow: the client's submit, cancel and resubmit, telling
dependants and the orphan sweep all start one through `start_entity_workflow`.

It lives with the activities, not the client, because the fan-out and the sweep run as
activities, and the client may import activities but not the other way round.

Every start carries the batch's priority and fairness key (`entity_workflow_priority`).

**A start never opens a second run for an entity that has just ended.** Entity workflows
end by completing normally (an ending is recorded in the row first), so a start that must
not reopen a completed run says so with `reopen=False`: it uses the id-reuse policy
`ALLOW_DUPLICATE_FAILED_ONLY`. The server then signals a running run, starts the first run of
a key that has none, starts again after a run that failed, was terminated or timed out, and
rejects the start (`WorkflowAlreadyStartedError`) when the latest run completed; checking and
starting are one step on the server, so a start racing the run's close cannot slip between
them. `start_entity_workflow` then returns False instead of raising. Starts that reopen work
(submit, resubmit, cancel, the sweep of an open row) keep `ALLOW_DUPLICATE`."""

from __future__ import annotations

from dataclasses import dataclass
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
    workflow as it is. `reopen=False`: never a new run after a completed one (module
    docstring). `search_attributes` default to the key alone (the workflow adds the rest)."""

    key: str
    batch: str
    level: PriorityLevel
    weight: float
    signal: str | None = None
    signal_arg: Any = None
    reopen: bool = True
    search_attributes: TypedSearchAttributes | None = None


async def start_entity_workflow(client: Client, task_queue: str, start: EntityStart) -> bool:
    """Start (or signal-with-start) the entity's workflow on `task_queue`. Returns False only
    for a start with `reopen=False` that the server refused because the entity's latest run
    completed: it has ended, and the start had nothing to carry to it."""
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
