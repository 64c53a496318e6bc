"""The browser pages: server-rendered (autoescaped), each action a POST form with a CSRF
token, over the same client API as `starter.py` and the HTTP API."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, File, Form, Request, UploadFile
from starlette.responses import RedirectResponse, Response

from dsp_integration.client import activity, control, views
from dsp_integration.client.errors import EntityEnded
from dsp_integration.client.submission import fairness_weight, priority_level
from dsp_integration.console.actions import input_refusals, parse_payload, submit_file
from dsp_integration.console.activity import charts_context
from dsp_integration.console.actors import actor_of
from dsp_integration.console.api import audit_json, entity_json, service_of
from dsp_integration.console.auth import CSRF_FIELD, Guard
from dsp_integration.console.templating import render
from dsp_integration.contracts import EntityStatus, EntityType, PriorityLevel
from dsp_integration.database.action_log import Action
from dsp_integration.entities import MAX_FILE_BYTES, Problem, SubmissionRefused

router = APIRouter(include_in_schema=False)
STATUSES = [s.value for s in EntityStatus]
LEVELS = [level.value for level in PriorityLevel]
TYPES = [t.value for t in EntityType]
BATCH_PAGE_ROWS = 1000
ACTIONS_SHOWN = 100
MAX_FILTER_TEXT = 200


def _stale_form(request: Request, csrf: str) -> Response | None:
    guard: Guard = request.app.state.guard
    if request.state.bearer or guard.csrf_matches(request.state.session, csrf):
        return None  # a bearer header is never sent by a forged cross-site form
    message = "this form is stale or came from elsewhere; reload the page and try again"
    return render(request, "error.html", {"status": 403, "message": message}, 403)


def _entity_url(key: str, **query: str) -> str:
    suffix = "&".join(f"{name}={quote(value)}" for name, value in query.items())
    return f"/entities/{quote(key, safe='')}" + (f"?{suffix}" if suffix else "")


@router.get("/")
async def index(request: Request) -> Response:
    service = service_of(request)
    batches = await views.batch_summaries(service)
    budget = await views.budget(service)
    context = {"batches": batches, "budget": budget, **await charts_context(service)}
    return render(request, "index.html", context)


@router.get("/batches/{name}")
async def batch_page(
    request: Request,
    name: str,
    status: str | None = None,
    type: str | None = None,
    seat: str | None = None,
    q: str | None = None,
) -> Response:
    """The filters are the page's query (`?status=&type=&seat=&q=`): a reload, a link or a
    bookmark keeps them."""
    service = service_of(request)
    summary = await views.batch_summary(service, name)
    status = status if status in STATUSES else None
    entity_type = type if type in TYPES else None
    seat = seat if seat in summary.seats else None
    text = (q or "").strip()[:MAX_FILTER_TEXT] or None
    page = await views.entity_page(
        service,
        batch=name,
        status=status,
        entity_type=entity_type,
        seat=seat,
        text=text,
        limit=BATCH_PAGE_ROWS,
    )
    context = {
        "batch": summary,
        "page": page,
        "status": status or "",
        "type": entity_type or "",
        "seat": seat or "",
        "q": text or "",
        "statuses": STATUSES,
        "types": TYPES,
        "levels": LEVELS,
        "actions": await activity.actions(service, batch=name, limit=ACTIONS_SHOWN),
    }
    return render(request, "batch.html", context)


@router.post("/batches/{name}/priority")
async def prioritise_batch(
    request: Request,
    name: str,
    priority: str = Form(""),
    weight: str = Form(""),
    csrf: str = Form("", alias=CSRF_FIELD),
) -> Response:
    if (refusal := _stale_form(request, csrf)) is not None:
        return refusal
    async with input_refusals(request, Action.PRIORITISE, batch=name):
        level = priority_level(priority)
        weight_asked = fairness_weight(weight) if weight.strip() else None
    await control.prioritise(
        service_of(request), name, level, weight_asked, actor=actor_of(request)
    )
    return RedirectResponse(f"/batches/{quote(name, safe='')}", status_code=303)


async def _entity_page(
    request: Request,
    key: str,
    *,
    problems: list[Problem] | None = None,
    payload_text: str | None = None,
    message: str | None = None,
    status_code: int = 200,
) -> Response:
    service = service_of(request)
    detail = await views.entity_detail(service, key)
    audit = [audit_json(record) for record in await views.entity_audit(service, key)]
    context: dict[str, Any] = {
        "entity": detail,
        "v": detail.view,
        "info": entity_json(service, detail),
        "audit": audit,
        "actions": await activity.entity_actions(service, key, detail.view.batch),
        "problems": problems or [],
        "payload_text": payload_text,
        "message": message,
        "ended": views.ended(detail.view.status),
    }
    return render(request, "entity.html", context, status_code)


DONE_MESSAGES = {
    "cancel": "Cancel requested: the workflow ends the entity cancelled.",
    "resubmit": "Resubmitted: the workflow picks the new payload version up.",
}


@router.get("/entities/{key}")
async def entity_page(request: Request, key: str, done: str | None = None) -> Response:
    return await _entity_page(request, key, message=DONE_MESSAGES.get(done or ""))


@router.post("/entities/{key}/cancel")
async def cancel_entity(
    request: Request, key: str, csrf: str = Form("", alias=CSRF_FIELD)
) -> Response:
    if (refusal := _stale_form(request, csrf)) is not None:
        return refusal
    try:
        await control.cancel(service_of(request), key, actor=actor_of(request))
    except EntityEnded as ended:
        return await _entity_page(request, key, message=str(ended), status_code=409)
    return RedirectResponse(_entity_url(key, done="cancel"), status_code=303)


@router.post("/entities/{key}/resubmit")
async def resubmit_entity(
    request: Request,
    key: str,
    payload: str = Form(""),
    csrf: str = Form("", alias=CSRF_FIELD),
) -> Response:
    if (refusal := _stale_form(request, csrf)) is not None:
        return refusal
    try:
        async with input_refusals(request, Action.RESUBMIT, entity_key=key):
            new_payload = parse_payload(payload)
        await control.resubmit(service_of(request), key, new_payload, actor=actor_of(request))
    except SubmissionRefused as refused:
        return await _entity_page(
            request, key, problems=refused.problems, payload_text=payload, status_code=422
        )
    return RedirectResponse(_entity_url(key, done="resubmit"), status_code=303)


@router.get("/submit")
async def submit_page(request: Request) -> Response:
    return render(request, "submit.html", {"problems": [], "filename": None, "levels": LEVELS})


@router.post("/submit")
async def submit_upload(
    request: Request,
    file: Annotated[UploadFile, File()],
    batch: str = Form(""),
    priority: str = Form("normal"),
    csrf: str = Form("", alias=CSRF_FIELD),
) -> Response:
    if (refusal := _stale_form(request, csrf)) is not None:
        return refusal
    filename = file.filename or "upload.json"
    data = await file.read(MAX_FILE_BYTES + 1)
    try:
        async with input_refusals(request, Action.SUBMIT, batch=batch.strip() or None):
            level = priority_level(priority)
        report = await submit_file(
            service_of(request),
            data,
            filename=filename,
            actor=actor_of(request),
            batch=batch.strip() or None,
            priority=level,
        )
    except SubmissionRefused as refused:
        context = {"problems": refused.problems, "filename": filename, "levels": LEVELS}
        return render(request, "submit.html", context, status_code=422)
    return RedirectResponse(f"/batches/{quote(report.batch, safe='')}", status_code=303)
