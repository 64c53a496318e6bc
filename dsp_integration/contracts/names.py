"""Names shared by the workflow, the activities and the clients."""

from __future__ import annotations

import hashlib
from enum import StrEnum

ENTITY_WORKFLOW_NAME = "EntityWorkflow"
RECONCILE_WORKFLOW_NAME = "ReconcileWorkflow"
WORKFLOW_ID_PREFIX = "dsp-entity-"

# Signals and the query of the entity workflow, as clients and activities name them.
SIGNAL_DEPENDENCY_FINISHED = "dependency_finished"
SIGNAL_CANCEL = "cancel"
SIGNAL_RESUBMIT = "resubmit"
SIGNAL_REPRIORITISE = "reprioritise"
QUERY_STATE = "state"


class PriorityLevel(StrEnum):
    """The priority users give a batch (`submit --priority`, `prioritise`): a high batch's
    DSP calls go before a normal one's, and a low batch's use what is left."""

    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"


DEFAULT_PRIORITY_LEVEL = PriorityLevel.NORMAL


def parse_priority_level(text: str) -> PriorityLevel | None:
    """The level named by `text` (any case), or None when it names none."""
    try:
        return PriorityLevel(text.strip().lower())
    except ValueError:
        return None


# Temporal priority keys of DSP activities: lower runs first, 1 to 5 (the server's default
# `matching.priorityLevels`, and the only range Temporal Cloud offers). Every call of a high
# batch takes 1 and every call of a low batch 5, so the levels never mix; inside the normal
# level the calls of an entity others wait for go first (its submission and the polls that
# see it decided), then a leaf's submission, then a leaf's polls. Polls never take more than
# half the budget however they are ordered (dsp_integration/activities/poll_planner.py), so
# submissions keep the other half.
DSP_ACTIVITY_PRIORITY_HIGH = 1
DSP_ACTIVITY_PRIORITY_PARENT = 2
DSP_ACTIVITY_PRIORITY_SUBMIT = 3
DSP_ACTIVITY_PRIORITY_POLL = 4
DSP_ACTIVITY_PRIORITY_LOW = 5
# What runs recorded before the levels used for a normal parent's submission and polls; kept
# for the tests that read those histories.
DSP_ACTIVITY_PRIORITY_SUBMIT_PARENT = DSP_ACTIVITY_PRIORITY_PARENT
DSP_ACTIVITY_PRIORITY_POLL_PARENT = DSP_ACTIVITY_PRIORITY_PARENT

# Fairness between batches: every DSP call carries its batch as the fairness key, so the
# server hands each batch with calls waiting at one priority key a share of the dispatches by
# weight (`matching.enableFairness`). Equal weights by default: each waiting batch gets an
# equal share; users give a batch another weight (`submit --weight`, `prioritise --weight`).
DSP_FAIRNESS_WEIGHT = 1.0
# Temporal's recommended range of fairness weights (temporal/api common/v1 Priority).
MIN_FAIRNESS_WEIGHT = 0.001
MAX_FAIRNESS_WEIGHT = 1000.0
# Temporal refuses fairness keys longer than 64 bytes.
MAX_FAIRNESS_KEY_BYTES = 64


class DspCallKind(StrEnum):
    """What a DSP activity does, for its priority."""

    SUBMIT = "submit"  # POST or PUT of the payload
    POLL = "poll"
    ARCHIVE = "archive"


def dsp_priority(
    kind: DspCallKind,
    dependants: int,
    level: PriorityLevel = DEFAULT_PRIORITY_LEVEL,
    tiers: bool = True,
) -> int:
    """The priority key of a DSP call of an entity of a batch at `level` that `dependants`
    open entities wait for.

    High and low take one key each, so a high batch's calls all go before a normal one's and
    a low one's after. Inside the normal level a parent's submission unblocks its dependants,
    and so does the poll that sees it decided (a creative in review holds its ad groups, a
    pending campaign its ad groups): both go before any leaf's call. Archiving unblocks nobody
    (the dependants of a cancelled entity end blocked either way), so it keeps the leaf
    submissions' key.

    Without `tiers` every normal call takes the leaves' submission key: the server orders
    priority keys before fairness keys, so tiers shared by all batches put every batch's
    parents and submissions before any batch's leaves and polls, and a small batch's ad
    groups wait for a large batch's whole tree (devkit/bench/RESULTS.md, "Fair shares")."""
    if level is PriorityLevel.HIGH:
        return DSP_ACTIVITY_PRIORITY_HIGH
    if level is PriorityLevel.LOW:
        return DSP_ACTIVITY_PRIORITY_LOW
    if not tiers:
        return DSP_ACTIVITY_PRIORITY_SUBMIT
    if kind is DspCallKind.POLL:
        return DSP_ACTIVITY_PRIORITY_PARENT if dependants > 0 else DSP_ACTIVITY_PRIORITY_POLL
    if kind is DspCallKind.SUBMIT and dependants > 0:
        return DSP_ACTIVITY_PRIORITY_PARENT
    return DSP_ACTIVITY_PRIORITY_SUBMIT


def parse_fairness_weight(text: str) -> float | None:
    """The weight written in `text`, or None when it is not a number within
    [MIN_FAIRNESS_WEIGHT, MAX_FAIRNESS_WEIGHT]."""
    try:
        weight = float(text.strip())
    except ValueError:
        return None
    if not MIN_FAIRNESS_WEIGHT <= weight <= MAX_FAIRNESS_WEIGHT:  # also refuses nan and inf
        return None
    return weight


def fairness_key_for(batch: str) -> str:
    """The batch's fairness key: its name, or, for a name over 64 bytes, its first characters
    and a digest of the whole name (distinct names keep distinct keys)."""
    if len(batch.encode("utf-8")) <= MAX_FAIRNESS_KEY_BYTES:
        return batch
    digest = hashlib.sha256(batch.encode("utf-8")).hexdigest()[:16]
    prefix = batch.encode("utf-8")[: MAX_FAIRNESS_KEY_BYTES - len(digest) - 1]
    return f"{prefix.decode('utf-8', errors='ignore')}~{digest}"


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
