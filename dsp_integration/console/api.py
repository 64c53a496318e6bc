"""The HTTP API (JSON), over the same client API as `starter.py`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from dsp_integration.client import control, health, views
from dsp_integration.client.context import ServiceContext
from dsp_integration.client.errors import ServiceError
from dsp_integration.client.submission import fairness_weight
from dsp_integration.console.actions import input_refusals, read_capped, submit_file
from dsp_integration.console.actors import actor_of
from dsp_integration.console.schemas import (
    WEIGHT_SCHEMA,
    AuditOut,
    BatchOut,
    BudgetOut,
    CancelAnswer,
    EntityDetailOut,
    EntityList,
    Health,
    PrioritiseAnswer,
    PrioritiseBody,
    ResubmitAnswer,
    ResubmitBody,
    SubmitAnswer,
    error_responses,
)
from dsp_integration.contracts import (
    DEFAULT_PRIORITY_LEVEL,
    SEAT_NAME_PATTERN,
    EntityStatus,
    EntityType,
    PriorityLevel,
)
from dsp_integration.database.action_log import Action
from dsp_integration.entities import Problem, SubmissionRefused
from dsp_integration.entities.json_schema import BATCH_SCHEMA_PATTERN, ENTITY_FILE, SCHEMA_LIMITS
from dsp_integration.entities.rules import KEY_SCHEMA_PATTERN

if TYPE_CHECKING:
    StatusName = str
    TypeName = str
else:
    # Query parameters FastAPI validates and documents as the enums' values, built from the
    # enums at run time (a type checker cannot read a Literal built this way: str to it).
    StatusName = Literal[tuple(s.value for s in EntityStatus)]
    TypeName = Literal[tuple(t.value for t in EntityType)]
NDJSON = "application/x-ndjson"
MAX_PAGE = 1000
MAX_OFFSET = 1_000_000_000

BatchName = Annotated[str, Path(pattern=BATCH_SCHEMA_PATTERN, description="the batch's name")]
EntityKey = Annotated[str, Path(pattern=KEY_SCHEMA_PATTERN, description="the entity's key")]


def operation_id(route: APIRoute) -> str:
    """The function's name (`cancel_entity`): what a generated client names its call."""
    return route.name


router = APIRouter(prefix="/api", tags=["api"], generate_unique_id_function=operation_id)
health_router = APIRouter(tags=["health"], generate_unique_id_function=operation_id)


def service_of(request: Request) -> ServiceContext:
    return request.app.state.service  # type: ignore[no-any-return]


def entity_json(service: ServiceContext, detail: views.EntityDetail) -> dict[str, Any]:
    ui = service.settings.effective_temporal_ui_url
    namespace = service.settings.temporal_namespace
    return {
        **detail.to_json(),
        "workflow_url": f"{ui}/namespaces/{namespace}/workflows/{detail.workflow_id}",
    }


def audit_json(record: Any) -> dict[str, Any]:
    data: dict[str, Any] = record.to_json()
    finished, started = record.finished_at, record.started_at
    data["duration_ms"] = (
        round((finished - started).total_seconds() * 1000, 1) if finished else None
    )
    return data


@router.post(
    "/batches",
    status_code=201,
    response_model=SubmitAnswer,
    responses=error_responses(
        422,
        described={
            422: "The file is refused whole, every problem listed, nothing stored: what its "
            f"schema says, and {SCHEMA_LIMITS}"
        },
    ),
    summary="Submit an entity file",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{ENTITY_FILE}"}},
                NDJSON: {
                    "schema": {
                        "type": "string",
                        "description": "JSON Lines: one entity object per line (the items "
                        f"of {ENTITY_FILE}.entities), with ?batch=NAME",
                    }
                },
            },
        }
    },
)
async def post_batch(
    request: Request,
    batch: Annotated[
        str | None,
        Query(
            pattern=BATCH_SCHEMA_PATTERN,
            description="the batch's name; required for JSON Lines, else the file's own",
        ),
    ] = None,
    priority: Annotated[
        PriorityLevel, Query(description="high, normal or low")
    ] = DEFAULT_PRIORITY_LEVEL,
    # Bounds documented here, checked by `fairness_weight` (a 422 naming fairness_weight).
    weight: Annotated[float | None, Query(json_schema_extra=WEIGHT_SCHEMA)] = None,
) -> Any:
    """The body is an entity file: a JSON document (`batch`, optional `seat`, `entities`),
    or JSON Lines with `Content-Type: application/x-ndjson` and `?batch=NAME`; an entity may
    name its own `seat`, else the file's or the default seat is its. Checked exactly as
    `starter.py submit` checks a file: refused whole (422, every problem, nothing stored)."""
    data = await read_capped(request.stream())
    json_lines = request.headers.get("content-type", "").split(";")[0].strip() == NDJSON
    async with input_refusals(request, Action.SUBMIT, batch=batch):
        if json_lines and not batch:
            raise SubmissionRefused([Problem("JSON Lines need ?batch=NAME", field="batch")])
        weight_asked = fairness_weight(weight)
    filename = f"{batch}.jsonl" if json_lines else "upload.json"
    report = await submit_file(
        service_of(request),
        data,
        filename=filename,
        actor=actor_of(request),
        batch=batch,
        priority=priority,
        fairness_weight=weight_asked,
    )
    return SubmitAnswer(
        batch=report.batch,
        entities=report.entities,
        stored=report.stored,
        unchanged=report.entities - report.stored,
        started=report.started,
        priority=report.priority.value,
        fairness_weight=report.fairness_weight,
    )


@router.get(
    "/batches",
    response_model=list[BatchOut],
    responses=error_responses(),
    summary="Every batch, newest first",
)
async def list_batches(request: Request) -> Any:
    return [s.to_json() for s in await views.batch_summaries(service_of(request))]


@router.get(
    "/batches/{name}",
    response_model=BatchOut,
    responses=error_responses(404, 422),
    summary="One batch",
)
async def get_batch(request: Request, name: BatchName) -> Any:
    return (await views.batch_summary(service_of(request), name)).to_json()


@router.post(
    "/batches/{name}/priority",
    status_code=202,
    response_model=PrioritiseAnswer,
    responses=error_responses(400, 404, 422),
    summary="Change the priority or weight of a batch's entities that have not ended",
)
async def prioritise_batch(request: Request, name: BatchName, body: PrioritiseBody) -> Any:
    """Each open entity's DSP calls go at the new level and weight, including one already
    waiting in the DSP queue (its workflow schedules it again)."""
    async with input_refusals(request, Action.PRIORITISE, batch=name):
        if body.priority is None and body.fairness_weight is None:
            raise ServiceError("give a priority, a fairness_weight or both")
        weight = None if body.fairness_weight is None else fairness_weight(body.fairness_weight)
    report = await control.prioritise(
        service_of(request), name, body.priority, weight, actor=actor_of(request)
    )
    return {
        "batch": report.batch,
        "priority": report.priority.value if report.priority else None,
        "fairness_weight": report.fairness_weight,
        "changed": report.changed,
        "signalled": report.signalled,
    }


@router.get(
    "/entities",
    response_model=EntityList,
    responses=error_responses(422),
    summary="Entities, filtered and paged",
)
async def list_entities(
    request: Request,
    batch: Annotated[
        str | None, Query(pattern=BATCH_SCHEMA_PATTERN, description="only this batch's")
    ] = None,
    status: Annotated[StatusName | None, Query(description="only the entities in it")] = None,
    type: Annotated[TypeName | None, Query(description="only the entities of this type")] = None,
    seat: Annotated[
        str | None, Query(pattern=SEAT_NAME_PATTERN, description="only the entities of this seat")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="rows per page")] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="rows to skip")] = 0,
) -> Any:
    page = await views.entity_page(
        service_of(request),
        batch=batch,
        status=status,
        entity_type=type,
        seat=seat,
        limit=limit,
        offset=offset,
    )
    return {
        "items": [row.to_json() for row in page.rows],
        "total": page.total,
        "limit": page.limit,
        "offset": page.offset,
    }


@router.get(
    "/entities/{key}",
    response_model=EntityDetailOut,
    responses=error_responses(404, 422),
    summary="One entity, its payload versions, dependencies and dependants",
)
async def get_entity(request: Request, key: EntityKey) -> Any:
    service = service_of(request)
    return entity_json(service, await views.entity_detail(service, key))


@router.get(
    "/entities/{key}/audit",
    response_model=list[AuditOut],
    responses=error_responses(404, 422),
    summary="Every DSP request made for the entity",
)
async def get_audit(request: Request, key: EntityKey) -> Any:
    return [audit_json(r) for r in await views.entity_audit(service_of(request), key)]


@router.post(
    "/entities/{key}/cancel",
    status_code=202,
    response_model=CancelAnswer,
    responses=error_responses(404, 409, 422),
    summary="Cancel an entity (409 when it has already ended)",
)
async def cancel_entity(request: Request, key: EntityKey) -> Any:
    previous = await control.cancel(service_of(request), key, actor=actor_of(request))
    return {"key": key, "previous_status": previous}


@router.post(
    "/entities/{key}/resubmit",
    status_code=202,
    response_model=ResubmitAnswer,
    responses=error_responses(
        400,
        404,
        422,
        described={
            422: "The payload is refused, every problem listed, nothing changed: what the "
            "schema of the entity's type says, and a reference to a key not stored, to an "
            "entity of the wrong type or of another seat, a dependency cycle, an end date "
            "before the start date"
        },
    ),
    summary="Submit an entity again, with a new payload or the stored one",
)
async def resubmit_entity(
    request: Request, key: EntityKey, body: ResubmitBody | None = None
) -> Any:
    """The entity keeps its key, type and seat; a new payload must be one of its type."""
    payload = body.payload if body is not None else None
    report = await control.resubmit(service_of(request), key, payload, actor=actor_of(request))
    return {
        "key": report.key,
        "payload_version": report.payload_version,
        "previous_status": report.previous_status,
    }


@router.get(
    "/budget",
    response_model=BudgetOut,
    responses=error_responses(),
    summary="Every seat's DSP rate budget now",
)
async def get_budget(request: Request) -> Any:
    """A row per seat in `seats`; the top-level fields are the default seat's."""
    return (await views.budget(service_of(request), with_backlog=True)).to_json()


@health_router.get(
    "/healthz", response_model=Health, responses={503: {"model": Health}}, summary="Health"
)
async def healthz(request: Request) -> Any:
    """200 when PostgreSQL and Temporal answer; 503 naming what does not."""
    answers = await health.check_health(service_of(request))
    body = {name: "ok" if ok else "not answering" for name, ok in answers.items()}
    return JSONResponse(body, status_code=200 if all(answers.values()) else 503)
