"""Who did what and what the service is doing: the action log (`GET /api/actions`), the
figures behind the index page's plots (`GET /api/activity`, and the plots themselves as a
fragment the page refreshes), and the search across batches (`GET /search`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from dsp_integration.client import activity
from dsp_integration.client.context import ServiceContext
from dsp_integration.console.charts import requests_chart, review_chart
from dsp_integration.console.schemas import ActionOut, ActivityOut, error_responses
from dsp_integration.console.templating import render
from dsp_integration.database.action_log import MAX_ACTIONS

api_router = APIRouter(prefix="/api", tags=["api"])
page_router = APIRouter(include_in_schema=False)
MAX_QUERY = 200


def _service(request: Request) -> ServiceContext:
    return request.app.state.service  # type: ignore[no-any-return]


@api_router.get(
    "/actions",
    response_model=list[ActionOut],
    responses=error_responses(422),
    summary="The action log: who submitted, cancelled, resubmitted, prioritised, newest first",
)
async def list_actions(
    request: Request,
    batch: str | None = Query(None, max_length=128, description="only this batch's actions"),
    key: str | None = Query(None, max_length=128, description="only this entity's actions"),
    actor: str | None = Query(None, max_length=128, description="only this person's actions"),
    limit: int = Query(100, ge=1, le=MAX_ACTIONS),
) -> Any:
    """Every action asked for through the console, the API or the CLI, accepted, refused
    (with why) or failed; filters are exact and combine."""
    rows = await activity.actions(_service(request), batch=batch, key=key, actor=actor, limit=limit)
    return [row.to_json() for row in rows]


@api_router.get(
    "/activity",
    response_model=ActivityOut,
    responses=error_responses(),
    summary="DSP requests per minute (last hour), review times per type",
)
async def get_activity(request: Request) -> dict[str, Any]:
    service = _service(request)
    minutes = await activity.requests_per_minute(service)
    types = await activity.review_times(service)
    return {
        "requests_per_minute": [
            {"minute": m.minute.isoformat(), "requests": m.requests, "throttled": m.throttled}
            for m in minutes
        ],
        "review_times": [
            {
                "type": t.entity_type,
                "rounds": t.rounds,
                "decided": t.decided,
                "median_seconds": t.median,
                "p90_seconds": t.p90,
            }
            for t in types
        ],
    }


async def charts_context(service: ServiceContext) -> dict[str, Any]:
    minutes = await activity.requests_per_minute(service)
    types = await activity.review_times(service)
    return {"requests_svg": requests_chart(minutes), "review_svg": review_chart(types)}


@page_router.get("/activity/charts")
async def charts_fragment(request: Request) -> Response:
    """The index page's plots alone, for the page to refresh them in place."""
    return render(request, "charts.html", await charts_context(_service(request)))


@page_router.get("/search")
async def search_page(request: Request, q: str = "") -> Response:
    query = q.strip()[:MAX_QUERY]
    found = await activity.search_entities(_service(request), query) if query else []
    context = {"q": query, "found": found, "limit": activity.SEARCH_LIMIT}
    return render(request, "search.html", context)
