"""Names shared by the workflow, the activities and the clients."""

from __future__ import annotations

from enum import StrEnum

ENTITY_WORKFLOW_NAME = "EntityWorkflow"
RECONCILE_WORKFLOW_NAME = "ReconcileWorkflow"
WORKFLOW_ID_PREFIX = "dsp-entity-"

# Signals and the query of the entity workflow, as clients and activities name them.
SIGNAL_DEPENDENCY_FINISHED = "dependency_finished"
SIGNAL_CANCEL = "cancel"
SIGNAL_RESUBMIT = "resubmit"
QUERY_STATE = "state"

# Temporal priority keys of DSP activities: lower runs first. The calls of an entity others
# wait for go first (its submission, then the polls that see it decided), then a leaf's
# submission, then a leaf's polls. Polls never take more than half the budget however they
# are ordered (dsp_integration/activities/poll_planner.py), so submissions keep the other half.
DSP_ACTIVITY_PRIORITY_SUBMIT_PARENT = 1
DSP_ACTIVITY_PRIORITY_POLL_PARENT = 2
DSP_ACTIVITY_PRIORITY_SUBMIT = 3
DSP_ACTIVITY_PRIORITY_POLL = 4


class DspCallKind(StrEnum):
    """What a DSP activity does, for its priority."""

    SUBMIT = "submit"  # POST or PUT of the payload
    POLL = "poll"
    ARCHIVE = "archive"


def dsp_priority(kind: DspCallKind, dependants: int) -> int:
    """The priority key of a DSP call of an entity that `dependants` open entities wait for.

    A parent's submission unblocks them, and so does the poll that sees it decided (a
    creative in review holds its ad groups, a pending campaign its ad groups): both go before
    any leaf's call. Archiving unblocks nobody (the dependants of a cancelled entity end
    blocked either way), so it keeps the leaf submissions' key."""
    if kind is DspCallKind.SUBMIT:
        return (
            DSP_ACTIVITY_PRIORITY_SUBMIT_PARENT if dependants > 0 else DSP_ACTIVITY_PRIORITY_SUBMIT
        )
    if kind is DspCallKind.POLL:
        return DSP_ACTIVITY_PRIORITY_POLL_PARENT if dependants > 0 else DSP_ACTIVITY_PRIORITY_POLL
    return DSP_ACTIVITY_PRIORITY_SUBMIT


def workflow_id_for(key: str) -> str:
    """One workflow id per entity key, so the same key never runs twice at once."""
    return f"{WORKFLOW_ID_PREFIX}{key}"


class ErrorType(StrEnum):
    """`ApplicationError.type` values the DSP activities raise."""

    DSP_REJECTED = "DspRejected"  # 422 / other 4xx: the request is wrong, do not retry
    DSP_NOT_FOUND = "DspNotFound"  # 404 on an id we hold
    DSP_UNAUTHORIZED = "DspUnauthorized"  # 401: operator problem, retried until fixed
    DSP_RATE_LIMITED = "DspRateLimited"  # 429, retried after Retry-After
    DSP_TRANSIENT = "DspTransient"  # 5xx, timeouts, bad bodies, 409 reference_not_ready
    UNKNOWN_ENTITY = "UnknownEntity"  # a workflow for a key that is not in dsp_entity_queue


def reconcile_schedule_id(task_queue: str) -> str:
    """The schedule that restarts orphaned entities of one task queue."""
    return f"dsp-reconcile-{task_queue}"
