"""Errors of the client API as HTTP answers: JSON under /api, an error page elsewhere.
Messages are the client API's own one-line messages; no traceback, no secret."""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy.exc
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
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
from dsp_integration.entities import SubmissionRefused

log = logging.getLogger(__name__)


def _answer(request: Request, status: int, body: dict[str, Any]) -> Response:
    if request.url.path.startswith("/api/"):
        return JSONResponse(body, status_code=status)
    message = body.get("detail") or "; ".join(p["message"] for p in body.get("problems", []))
    return render(request, "error.html", {"status": status, "message": message}, status)


async def _refused(request: Request, error: Exception) -> Response:
    assert isinstance(error, SubmissionRefused)
    return _answer(request, 422, {"problems": [problem_out(p) for p in error.problems]})


async def _invalid(request: Request, error: Exception) -> Response:
    assert isinstance(error, RequestValidationError)
    problems = [
        {
            "entity": None,
            "field": ".".join(str(part) for part in e.get("loc", ())),
            "message": str(e.get("msg", "invalid")),
            "position": None,
            "line": None,
        }
        for e in error.errors()
    ]
    return _answer(request, 422, {"problems": problems})


async def _service_error(request: Request, error: Exception) -> Response:
    status = 400
    if isinstance(error, UnknownEntity | UnknownBatch):
        status = 404
    elif isinstance(error, EntityEnded):
        status = 409
    elif isinstance(error, UnknownPriority | BadWeight):
        problem = {
            "entity": None,
            "field": "priority" if isinstance(error, UnknownPriority) else "fairness_weight",
            "message": str(error),
            "position": None,
            "line": None,
        }
        return _answer(request, 422, {"problems": [problem]})
    return _answer(request, status, {"detail": str(error)})


async def _unavailable(request: Request, error: Exception) -> Response:
    if isinstance(error, TemporalUnavailable | RPCError):
        detail = "Temporal does not answer"
    else:
        detail = "PostgreSQL does not answer"
    log.warning("%s: %s", detail, type(error).__name__)
    return _answer(request, 503, {"detail": detail})


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(SubmissionRefused, _refused)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(TemporalUnavailable, _unavailable)
    app.add_exception_handler(RPCError, _unavailable)
    app.add_exception_handler(OSError, _unavailable)
    app.add_exception_handler(sqlalchemy.exc.DBAPIError, _unavailable)
    app.add_exception_handler(sqlalchemy.exc.InterfaceError, _unavailable)
