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
# batch takes 1, of a normal batch 3 and of a low batch 5, so the levels never mix. Inside a
# level the batches share by fairness key: each batch's lanes (`CallLane`).
DSP_ACTIVITY_PRIORITY_HIGH = 1
DSP_ACTIVITY_PRIORITY_NORMAL = 3
DSP_ACTIVITY_PRIORITY_LOW = 5

# Fairness between batches: every DSP call carries its batch in the fairness key, so the
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
    kind: DspCallKind, dependants: int, level: PriorityLevel = DEFAULT_PRIORITY_LEVEL
) -> int:
    """The priority key of a DSP call of an entity of a batch at `level`: one key per level,
    whatever the call's kind and `dependants`, so a high batch's calls all go before a normal
    one's and a low one's after. Parents go first within a level by their lane
    (`dsp_fairness_key`), not by a key of their own: a key shared by all batches' parents
    held a small batch behind a large one's tree (devkit/bench/RESULTS.md, "Fair shares")."""
    if level is PriorityLevel.HIGH:
        return DSP_ACTIVITY_PRIORITY_HIGH
    if level is PriorityLevel.LOW:
        return DSP_ACTIVITY_PRIORITY_LOW
    return DSP_ACTIVITY_PRIORITY_NORMAL


def workflow_priority_key(level: PriorityLevel) -> int:
    """The priority key of the workflow tasks of an entity of a batch at `level`: the level's
    key of its DSP calls (one per level)."""
    return dsp_priority(DspCallKind.SUBMIT, 0, level)


# The weight of a batch's polls lane against its submissions lane: while submissions wait, a
# leaf's polls, which unblock nobody, take about a fifth of the dispatches against one batch's
# submissions, and the rest of the budget whenever no submission waits (the issue's "spend
# idle budget on polls but never delay a submission for one", as near as fair shares allow).
POLLS_LANE_SHARE = 0.25


class CallLane(StrEnum):
    """The lane of a DSP call: the suffix of its fairness key. Each batch has three: the calls
    of entities others wait for (a parent's submission and the polls that see it decided),
    leaves' submissions and archives, and leaves' polls. The server's stride scheduling gives
    each key with calls waiting its share, and a key with few calls waiting goes almost at once
    (a key's next call is placed no earlier than the queue's head): a batch's parents overtake
    its own and others' backlogs, and a small batch is not held behind a large one."""

    PARENTS = "parents"
    SUBMISSIONS = "submissions"
    POLLS = "polls"


def call_lane(kind: DspCallKind, dependants: int) -> CallLane:
    """A parent's submission and polls unblock its dependants; archives join submissions."""
    if dependants > 0 and kind is not DspCallKind.ARCHIVE:
        return CallLane.PARENTS
    return CallLane.POLLS if kind is DspCallKind.POLL else CallLane.SUBMISSIONS


def dsp_fairness_weight(kind: DspCallKind, dependants: int, weight: float) -> float:
    """The fairness weight of a DSP call of a batch of `weight`: the batch's, but a quarter of
    it in the polls lane (`POLLS_LANE_SHARE`)."""
    if call_lane(kind, dependants) is CallLane.POLLS:
        return max(MIN_FAIRNESS_WEIGHT, weight * POLLS_LANE_SHARE)
    return weight


def dsp_fairness_key(batch: str, kind: DspCallKind, dependants: int) -> str:
    """The fairness key of a DSP call: the batch and the call's lane after a colon
    (`spring:parents`). Every key ends with one of the lanes' fixed suffixes, so two batches
    never share a key."""
    return fairness_key_for(batch, f":{call_lane(kind, dependants)}")


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


def fairness_key_for(batch: str, suffix: str = "") -> str:
    """The batch's fairness key: its name and `suffix`, or, where that is over 64 bytes, the
    name's first characters, a digest of the whole name and `suffix` (distinct names keep
    distinct keys)."""
    if len(batch.encode("utf-8")) + len(suffix.encode("utf-8")) <= MAX_FAIRNESS_KEY_BYTES:
        return f"{batch}{suffix}"
    digest = hashlib.sha256(batch.encode("utf-8")).hexdigest()[:16]
    room = MAX_FAIRNESS_KEY_BYTES - len(digest) - 1 - len(suffix.encode("utf-8"))
    prefix = batch.encode("utf-8")[:room]
    return f"{prefix.decode('utf-8', errors='ignore')}~{digest}{suffix}"


def workflow_id_for(key: str) -> str:
    """One workflow id per entity key, so the same key never runs twice at once."""
    return f"{WORKFLOW_ID_PREFIX}{key}"


class ErrorType(StrEnum):
    """`ApplicationError.type` values the DSP activities raise."""

    DSP_REJECTED = "DspRejected"  # 422 / other 4xx: the request is wrong, do not retry
    DSP_NOT_FOUND = "DspNotFound"  # 404 on an id we hold
    DSP_UNAUTHORIZED = "DspUnauthorized"  # 401: operator problem, retried until fixed
    DSP_RATE_LIMITED = "DspRateLimited"  # 429, retried after Retry-After
    DSP_TRANSIENT = "DspTransient"  # 5xx, timeouts, bad bodies
    # 409 reference_not_ready: retried like a transient fault; to a replayed POST it also
    # says that the original request created nothing (a replay answers 201).
    DSP_REFERENCE_NOT_READY = "DspReferenceNotReady"
    # A version-2 DSP has no idempotency keys: a create that failed after it may have
    # reached the DSP is not retried blindly; the workflow finds out what it created.
    DSP_MAY_HAVE_LANDED = "DspMayHaveLanded"
    # Finding out waits until the search can show what an attempt created (its lag).
    DSP_SEARCH_LAG = "DspSearchLag"
    UNKNOWN_ENTITY = "UnknownEntity"  # a workflow for a key that is not in dsp_entity_queue
    # An entity of a seat this worker's configuration does not have: retried, so the entity
    # waits for a worker configured with its seat.
    UNKNOWN_SEAT = "UnknownSeat"


def reconcile_schedule_id(task_queue: str) -> str:
    """The schedule that restarts orphaned entities of one task queue."""
    return f"dsp-reconcile-{task_queue}"


# Seats (dsp-api-v2.md §1): one DSP account each, with its own credentials and budget.
# Entities stored before seats existed, and files that name none under the default
# configuration, belong to this one, whose DSP calls keep the queue they always ran on.
DEFAULT_SEAT = "default"
# Seat names appear in task-queue names, metric labels and URLs: short, lower case, plain.
SEAT_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,31}$"
MAX_SEAT_NAME_LENGTH = 32


def dsp_task_queue(workflow_task_queue: str, seat: str) -> str:
    """The rate-limited task queue of one seat's DSP calls: `<queue>-dsp` for the default
    seat (the queue every DSP call ran on before seats), `<queue>-dsp-<seat>` for the others.
    One queue per seat, so each has its own task-queue rate limit and backlog: a seat with
    10,000 calls waiting never delays one with ten."""
    if seat == DEFAULT_SEAT:
        return f"{workflow_task_queue}-dsp"
    return f"{workflow_task_queue}-dsp-{seat}"
