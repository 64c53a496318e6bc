"""The API's JSON shapes, for validation and for the OpenAPI document."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, field_validator, model_validator

from dsp_integration.contracts import MAX_FAIRNESS_WEIGHT, MIN_FAIRNESS_WEIGHT, PriorityLevel
from dsp_integration.contracts.entity_types import EntityType
from dsp_integration.entities import Problem
from dsp_integration.entities.json_schema import payload_schema_name

COMPONENTS = "#/components/schemas/"
PRIORITY_SCHEMA: dict[str, Any] = {
    "type": "string",
    "enum": [level.value for level in PriorityLevel],
    "description": "high, normal or low: a high batch's DSP calls go first, a low one's last",
}
WEIGHT_SCHEMA: dict[str, Any] = {
    "type": "number",
    "minimum": MIN_FAIRNESS_WEIGHT,
    "maximum": MAX_FAIRNESS_WEIGHT,
    "description": f"the batch's share against other waiting batches, {MIN_FAIRNESS_WEIGHT:g} "
    f"to {MAX_FAIRNESS_WEIGHT:g} (1 is the default share)",
}


class ProblemOut(BaseModel):
    entity: str | None = Field(description="the entity's key, when the problem concerns one")
    field: str | None = Field(description="the payload field (dotted path), when known")
    message: str
    position: int | None = None
    line: int | None = None


class ProblemDetails(BaseModel):
    """An error answer, Problem Details (RFC 9457) as `application/problem+json`: the same
    shape for every status; `problems` lists what in the request was wrong."""

    type: str = Field(
        description='a URI naming the kind of problem; "about:blank": its status says it'
    )
    title: str = Field(description="the status's phrase, e.g. Not Found")
    status: int = Field(description="the HTTP status code")
    detail: str = Field(description="what went wrong, in one line")
    instance: str | None = Field(description="the path of the request")
    problems: list[ProblemOut] = Field(
        description="each problem of the request's content (empty when it is not about it)"
    )


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


ANY_PAYLOAD: dict[str, Any] = {
    "description": "a new payload of the entity's type (`$ref`s allowed); absent or null: "
    "the stored one",
    "anyOf": [{"$ref": COMPONENTS + payload_schema_name(t)} for t in EntityType]
    + [{"type": "null"}],
}


class ResubmitBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    payload: Annotated[dict[str, Any] | None, WithJsonSchema(ANY_PAYLOAD)] = None


def _refuse_null(value: Any) -> Any:
    if value is None:
        raise ValueError("leave the field out to keep it unchanged; null is not a value")
    return value


class PrioritiseBody(BaseModel):
    """At least one of the two; a field left out keeps its value."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1})

    priority: Annotated[PriorityLevel | None, WithJsonSchema(PRIORITY_SCHEMA)] = None
    fairness_weight: Annotated[
        float | None,
        Field(ge=MIN_FAIRNESS_WEIGHT, le=MAX_FAIRNESS_WEIGHT),
        WithJsonSchema(WEIGHT_SCHEMA),
    ] = None

    _not_null = field_validator("priority", "fairness_weight", mode="before")(_refuse_null)

    @model_validator(mode="after")
    def _one_at_least(self) -> PrioritiseBody:
        if self.priority is None and self.fairness_weight is None:
            raise ValueError("give a priority, a fairness_weight or both")
        return self


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


class RequestsMinuteOut(BaseModel):
    minute: str = Field(description="the minute's start (ISO 8601, UTC)")
    requests: int = Field(ge=0, description="DSP requests sent in that minute")
    throttled: int = Field(ge=0, description="of those, answered 429")


class ReviewTimeOut(BaseModel):
    type: str = Field(description="the entity type")
    rounds: int = Field(ge=0, description="review rounds seen")
    decided: int = Field(ge=0, description="of those, decided")
    median_seconds: float | None = Field(description="median time to a decision (s)")
    p90_seconds: float | None = Field(description="90th percentile time to a decision (s)")


class ActivityOut(BaseModel):
    """What the index page's plots draw."""

    requests_per_minute: list[RequestsMinuteOut] = Field(
        description="DSP requests per minute over the last hour, oldest first"
    )
    review_times: list[ReviewTimeOut] = Field(description="review times per entity type")


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


def _example(status: int, title: str, detail: str, *, problems: list[Any] | None = None) -> Any:
    """`instance` is filled in per operation (`apidocs.problem_details_media_type`)."""
    return {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": None,
        "problems": problems or [],
    }


# What each error status means for any operation of the API, with an example answer.
ERROR_ANSWERS: dict[int, tuple[str, Any]] = {
    400: (
        "The body is not JSON (or not UTF-8)",
        _example(
            400,
            "Bad Request",
            "the body is not JSON (or not UTF-8): send a JSON object",
            problems=[
                {
                    "entity": None,
                    "field": "body",
                    "message": "the body is not JSON (or not UTF-8): send a JSON object",
                    "position": None,
                    "line": None,
                }
            ],
        ),
    ),
    401: (
        "No valid credentials (`Authorization: Bearer <token>`)",
        _example(401, "Unauthorized", "authentication required"),
    ),
    403: (
        "Refused: a cross-site request, a session without its CSRF token, or a role that "
        "may not do this",
        _example(403, "Forbidden", "missing or wrong X-CSRF-Token"),
    ),
    404: (
        "No such entity or batch",
        _example(
            404,
            "Not Found",
            "unknown entity key 'acme-banner': it was never submitted to this service",
        ),
    ),
    409: (
        "The entity has already ended: nothing to cancel",
        _example(
            409,
            "Conflict",
            "entity 'acme-banner' has already ended succeeded; nothing to cancel",
        ),
    ),
    422: (
        "Refused: every problem is listed, nothing is stored or changed",
        _example(
            422,
            "Unprocessable Content",
            "refused: 1 problem, nothing stored",
            problems=[
                {
                    "entity": "acme-banner",
                    "field": "click_url",
                    "message": "must be an http or https URL, got string 'ftp://acme.example'",
                    "position": 3,
                    "line": None,
                }
            ],
        ),
    ),
    500: (
        "A bug in the service (its log says which)",
        _example(500, "Internal Server Error", "the service failed unexpectedly; its log says why"),
    ),
    503: (
        "PostgreSQL or Temporal does not answer; try again later",
        _example(503, "Service Unavailable", "Temporal does not answer"),
    ),
}
# Every operation under /api may answer these.
ALWAYS = (401, 403, 500, 503)


def error_responses(
    *statuses: int, described: dict[int, str] | None = None
) -> dict[int | str, dict[str, Any]]:
    """`responses=` for an operation: the statuses it may answer besides its success, each
    a Problem Details answer (`apidocs.problem_details_media_type` makes them
    `application/problem+json` with an example), with the operation's own description where
    given."""
    answers: dict[int | str, dict[str, Any]] = {}
    for status in sorted({*statuses, *ALWAYS}):
        description, _ = ERROR_ANSWERS[status]
        answers[status] = {
            "model": ProblemDetails,
            "description": (described or {}).get(status, description),
        }
    return answers
