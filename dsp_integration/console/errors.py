"""Errors of the client API as HTTP answers: Problem Details (RFC 9457,
`application/problem+json`) under /api and for /openapi.json, an error page elsewhere.
Messages are the client API's own one-line messages; no traceback, no secret.

Every problem answer has `type` ("about:blank": the status says what kind of problem it is),
`title` (the status's phrase), `status`, `detail` (what went wrong, in one line), `instance`
(the path asked for) and the extension member `problems`: what in the request was wrong, one
item per problem (empty when the problem is not in the request's content)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from http import HTTPStatus
from typing import Any

import sqlalchemy.exc
from fastapi import FastAPI
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Match, Route
from temporalio.service import RPCError

from dsp_integration.client.errors import (
    BadWeight,
    EntityEnded,
    ServiceError,
    UnknownBatch,
    UnknownEntity,
    UnknownPriority,
)
from dsp_integration.client.temporal_client import TemporalUnavailable
from dsp_integration.console.schemas import problem_out
from dsp_integration.console.templating import render
from dsp_integration.entities import Problem, SubmissionRefused

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
ABOUT_BLANK = "about:blank"
# Paths whose errors are for programs (Problem Details), not for a person at a browser.
MACHINE_PATHS = ("/api/", "/openapi.json")
NOT_JSON = "the body is not JSON (or not UTF-8): send a JSON object"
# RFC 9110's names where Python's `HTTPStatus` phrases differ between versions.
TITLES = {413: "Content Too Large", 422: "Unprocessable Content"}


class ProblemResponse(JSONResponse):
    media_type = PROBLEM_JSON


def problem_item(message: str, field: str | None = None) -> dict[str, Any]:
    return {"entity": None, "field": field, "message": message, "position": None, "line": None}


def problem_response(
    status: int,
    title: str | None,
    detail: str,
    problems: Sequence[Mapping[str, Any]] | None = None,
    headers: Mapping[str, str] | None = None,
    *,
    instance: str | None = None,
) -> Response:
    """The one place a Problem Details answer is made (the access gate uses it too);
    `title` None is the status's phrase ("Not Found")."""
    body = {
        "type": ABOUT_BLANK,
        "title": title or TITLES.get(status) or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "instance": instance,
        "problems": [dict(p) for p in problems or ()],
    }
    return ProblemResponse(body, status_code=status, headers=dict(headers or {}))


def wants_problem_details(request: Request) -> bool:
    return request.url.path.startswith(MACHINE_PATHS)


def _answer(
    request: Request,
    status: int,
    detail: str,
    problems: Sequence[Mapping[str, Any]] = (),
    headers: Mapping[str, str] | None = None,
) -> Response:
    if wants_problem_details(request):
        return problem_response(status, None, detail, problems, headers, instance=request.url.path)
    message = "; ".join(str(p["message"]) for p in problems) if problems else detail
    return render(request, "error.html", {"status": status, "message": message}, status)


def refused_detail(problems: Sequence[Problem]) -> str:
    count = len(problems)
    return f"refused: {count} problem{'s' if count != 1 else ''}, nothing stored"


async def _refused(request: Request, error: Exception) -> Response:
    assert isinstance(error, SubmissionRefused)
    problems = [problem_out(p) for p in error.problems]
    return _answer(request, 422, refused_detail(error.problems), problems)


def _location(loc: Sequence[Any]) -> str:
    """`body.priority` for ("body", "priority"); a query parameter by its name alone."""
    parts = [str(part) for part in loc]
    if parts and parts[0] in ("query", "path", "header"):
        parts = parts[1:]
    return ".".join(parts)


async def _invalid(request: Request, error: Exception) -> Response:
    assert isinstance(error, RequestValidationError)
    errors = list(error.errors())
    if any(e.get("type") == "json_invalid" for e in errors):
        return _answer(request, 400, NOT_JSON, [problem_item(NOT_JSON, "body")])
    problems = [
        problem_item(str(e.get("msg", "invalid")), _location(e.get("loc", ()))) for e in errors
    ]
    count = len(problems)
    detail = f"the request breaks the API's schema: {count} problem{'s' if count != 1 else ''}"
    return _answer(request, 422, detail, problems)


async def _service_error(request: Request, error: Exception) -> Response:
    if isinstance(error, UnknownEntity | UnknownBatch):
        return _answer(request, 404, str(error))
    if isinstance(error, EntityEnded):
        return _answer(request, 409, str(error))
    if isinstance(error, UnknownPriority | BadWeight):
        field = "priority" if isinstance(error, UnknownPriority) else "fairness_weight"
        return _answer(request, 422, str(error), [problem_item(str(error), field)])
    return _answer(request, 400, str(error))


async def _http_error(request: Request, error: Exception) -> Response:
    """Starlette's own answers (no such route, method not allowed, a body it cannot read)."""
    assert isinstance(error, HTTPException)
    if not wants_problem_details(request):
        return await http_exception_handler(request, error)
    status = error.status_code
    if status == 400:
        return _answer(request, 400, NOT_JSON, [problem_item(NOT_JSON, "body")], error.headers)
    headers = dict(error.headers or {})
    if status == 405:
        headers["Allow"] = ", ".join(sorted(_allowed_methods(request)))
    detail = error.detail if isinstance(error.detail, str) else HTTPStatus(status).phrase
    return _answer(request, status, detail.lower(), (), headers)


def _allowed_methods(request: Request) -> set[str]:
    """Every method some route serves at this path (Starlette names only the first route's)."""
    methods: set[str] = set()
    for route in _routes(request.app.router.routes):
        if route.methods:
            match, _ = route.matches({**request.scope, "method": "GET"})
            if match is not Match.NONE:
                methods |= route.methods
    return methods


def _routes(routes: Iterable[BaseRoute]) -> Iterator[Route]:
    """Every route, those of included routers too (FastAPI wraps them)."""
    for route in routes:
        if isinstance(route, Route):
            yield route
        elif (included := getattr(route, "original_router", None)) is not None:
            yield from _routes(included.routes)


async def _unavailable(request: Request, error: Exception) -> Response:
    if isinstance(error, TemporalUnavailable | RPCError):
        detail = "Temporal does not answer"
    else:
        detail = "PostgreSQL does not answer"
    log.warning("%s: %s", detail, type(error).__name__)
    return _answer(request, 503, detail)


async def _unexpected(request: Request, error: Exception) -> Response:
    """A bug: the answer says so without its trace (the log has it, as uvicorn logs it)."""
    return _answer(request, 500, "the service failed unexpectedly; its log says why")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(SubmissionRefused, _refused)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(TemporalUnavailable, _unavailable)
    app.add_exception_handler(RPCError, _unavailable)
    app.add_exception_handler(OSError, _unavailable)
    app.add_exception_handler(sqlalchemy.exc.DBAPIError, _unavailable)
    app.add_exception_handler(sqlalchemy.exc.InterfaceError, _unavailable)
    app.add_exception_handler(Exception, _unexpected)
