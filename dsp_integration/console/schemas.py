"""The API's JSON shapes, for validation and for the OpenAPI document."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from dsp_integration.contracts import PriorityLevel
from dsp_integration.entities import Problem


class ProblemOut(BaseModel):
    entity: str | None = Field(description="the entity's key, when the problem concerns one")
    field: str | None = Field(description="the payload field (dotted path), when known")
    message: str
    position: int | None = None
    line: int | None = None


class Problems(BaseModel):
    problems: list[ProblemOut]


class Detail(BaseModel):
    detail: str


class SubmitAnswer(BaseModel):
    batch: str
    entities: int
    stored: int = Field(description="entities new to the service, stored now")
    unchanged: int = Field(description="entities already stored with this very payload")
    started: int = Field(description="workflows started or already running")
    priority: str = Field(description="the priority the new entities were stored with")
    fairness_weight: float = Field(description="and the fairness weight")


class BatchOut(BaseModel):
    name: str
    counts: dict[str, int]
    total: int
    ended: int
    created: str
    finished: str | None
    priority: str = Field(
        description="the level most of its open entities have (of all, once every one ended)"
    )
    fairness_weight: float = Field(description="the weight most of its open entities have")
    seats: list[str] = Field(description="the seats (DSP accounts) its entities belong to")


class EntityOut(BaseModel):
    key: str
    type: str
    batch: str
    status: str
    dsp_id: str | None
    dsp_status: str | None
    reason: str | None
    blocked_by: str | None
    payload_version: int
    priority: str
    fairness_weight: float
    seat: str = Field(description="the seat (DSP account) it belongs to, whose budget it uses")
    name: str | None = Field(None, description="the payload's `name`, when it has one")
    created_at: str
    updated_at: str
    finished_at: str | None


class EntityList(BaseModel):
    items: list[EntityOut]
    total: int
    limit: int
    offset: int


class NeighbourOut(BaseModel):
    key: str
    status: str | None


class PayloadVersionOut(BaseModel):
    version: int | None
    payload: Any
    source: str = Field(description="`stored`: the current payload; `sent`: a body sent")
    method: str | None
    sent_at: str | None


class EntityDetailOut(EntityOut):
    payload: dict[str, Any]
    workflow_id: str
    workflow_url: str
    dependencies: list[NeighbourOut]
    dependants: list[NeighbourOut]
    payload_versions: list[PayloadVersionOut]


class AuditOut(BaseModel):
    id: int
    method: str
    path: str
    request_body: Any
    idempotency_key: str | None
    response_status: int | None
    response_body: str | None
    error: str | None
    attempt: int
    started_at: str
    finished_at: str | None
    duration_ms: float | None
    note: str | None = Field(
        default=None, description="why the service sent it, when no user step asked for it"
    )


class ResubmitBody(BaseModel):
    payload: dict[str, Any] | None = Field(
        default=None, description="a new payload (`$ref`s allowed); absent: the stored one"
    )


class PrioritiseBody(BaseModel):
    priority: PriorityLevel | None = Field(
        default=None, description="high, normal or low (absent: unchanged)"
    )
    fairness_weight: float | None = Field(
        default=None,
        description="the batch's share against other waiting batches, 0.001 to 1000 "
        "(absent: unchanged)",
    )


class PrioritiseAnswer(BaseModel):
    batch: str
    priority: str | None
    fairness_weight: float | None
    changed: int = Field(description="the batch's entities that had not ended, now at it")
    signalled: int = Field(description="of those, the running workflows told")


class CancelAnswer(BaseModel):
    key: str
    previous_status: str


class ResubmitAnswer(BaseModel):
    key: str
    payload_version: int
    previous_status: str


class SeatBudgetOut(BaseModel):
    seat: str
    used: int = Field(description="the seat's DSP requests counted in its current rolling window")
    limit: int = Field(description="the seat's requests allowed per window")
    window_seconds: float
    throttled_total: int = Field(description="the seat's 429 answers in the whole audit trail")
    throttled_in_window: int = Field(description="the seat's 429 answers in its current window")
    paused_seconds: float = Field(
        description="seconds every worker still holds the seat's requests off after a 429"
    )
    waiting_in_workers: int = Field(
        description="the seat's DSP calls held by workers, queued for a slot in the ledger"
    )
    waiting_for_slot: int | None = Field(
        description="the seat's DSP calls queued in its Temporal task queue that no worker has "
        "taken yet (approximate; null when Temporal does not answer)"
    )
    calls_waiting: int = Field(
        description="waiting_in_workers + waiting_for_slot (0 for a null backlog)"
    )


class BudgetOut(BaseModel):
    """Every seat's budget in `seats` (the default seat first). The top-level fields are the
    default seat's (`default_seat`), as they were before there were seats: not sums."""

    used: int = Field(description="the default seat's requests counted in its rolling window")
    limit: int = Field(description="the default seat's requests allowed per window")
    window_seconds: float = Field(description="the default seat's window")
    throttled_total: int = Field(description="the default seat's 429s in the whole audit trail")
    throttled_in_window: int = Field(description="the default seat's 429s in its current window")
    paused_seconds: float = Field(
        description="seconds every worker still holds the default seat's requests off"
    )
    waiting_in_workers: int = Field(
        description="the default seat's DSP calls held by workers, queued for a slot"
    )
    waiting_for_slot: int | None = Field(
        description="the default seat's DSP calls queued in Temporal that no worker has taken "
        "yet (approximate; null when Temporal does not answer)"
    )
    calls_waiting: int = Field(description="the default seat's calls waiting, both kinds")
    default_seat: str = Field(description="the seat of entities whose file names none")
    seats: list[SeatBudgetOut] = Field(description="every configured seat, the default first")


class Health(BaseModel):
    postgresql: str
    temporal: str


def problem_out(problem: Problem) -> dict[str, Any]:
    return {
        "entity": problem.key,
        "field": problem.field,
        "message": problem.message,
        "position": problem.position,
        "line": problem.line,
    }


class ActorOut(BaseModel):
    name: str
    role: str = Field(description="viewer, operator or admin")
    via: str = Field(description="console, api or cli")
    address: str | None = Field(description="the client's address (console, API)")
    os_user: str | None = Field(description="the OS user (CLI)")


class ActionOut(BaseModel):
    """One row of the action log: who asked for what, when, and the outcome."""

    id: int
    at: str = Field(description="when, by the database's clock (ISO 8601)")
    actor: ActorOut
    action: str = Field(description="submit, cancel, resubmit, prioritise or account.*")
    batch: str | None
    key: str | None
    account: str | None = Field(description="the account an account change is about")
    old_version: int | None
    new_version: int | None
    old_level: str | None
    new_level: str | None
    old_weight: float | None
    new_weight: float | None
    outcome: str = Field(description="accepted, refused or failed")
    reason: str | None = Field(description="why it was refused or failed")
    detail: dict[str, Any] | None
