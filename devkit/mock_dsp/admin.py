"""`/_mock/` endpoints for tests and operators: read the logs and the entities, reset, change
the knobs (the seats too), fill a seat's window, revoke or expire a seat's tokens. They need
no token and count toward no window. The config they show leaves out tokens and secrets."""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from devkit.mock_dsp.config import MockDspConfig
from devkit.mock_dsp.replies import ApiError, validation_error
from devkit.mock_dsp.state import MockDsp

HIDDEN_CONFIG_FIELDS: dict[str, Any] = {
    "token": True,
    "seats": {"__all__": {"token", "client_secret"}},
}


def _dsp(request: Request) -> MockDsp:
    return request.app.state.dsp


async def _json_object(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = json.loads(raw) if raw else {}
    except (UnicodeDecodeError, ValueError) as error:
        raise validation_error(None, f"the body is not valid JSON: {error}") from error
    if not isinstance(body, dict):
        raise validation_error(None, "the body must be a JSON object")
    return body


def _error(error: ApiError) -> Response:
    reply = error.reply()
    return JSONResponse(reply.body, reply.status)


def _public_config(config: MockDspConfig) -> dict[str, Any]:
    return config.model_dump(mode="json", exclude=HIDDEN_CONFIG_FIELDS)


async def requests(request: Request) -> Response:
    return JSONResponse([record.to_json() for record in _dsp(request).request_log])


async def token_requests(request: Request) -> Response:
    return JSONResponse([record.to_json() for record in _dsp(request).token_log])


async def stats(request: Request) -> Response:
    return JSONResponse(_dsp(request).stats())


async def entities(request: Request) -> Response:
    return JSONResponse(_dsp(request).entity_views())


async def reset(request: Request) -> Response:
    _dsp(request).reset()
    return JSONResponse({"reset": True})


async def get_config(request: Request) -> Response:
    return JSONResponse(_public_config(_dsp(request).config))


async def patch_config(request: Request) -> Response:
    """Change some knobs: the body holds only the fields to change."""
    dsp = _dsp(request)
    try:
        changes = await _json_object(request)
        with dsp.lock:
            dsp.config = MockDspConfig.model_validate({**dsp.config.model_dump(), **changes})
    except ApiError as error:
        return _error(error)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or None
        return _error(validation_error(field, first["msg"]))
    return JSONResponse(_public_config(dsp.config))


def _optional_string(body: dict[str, Any], field: str) -> str | None:
    value = body.get(field)
    if value is not None and not isinstance(value, str):
        raise validation_error(field, "must be a string")
    return value


async def throttle(request: Request) -> Response:
    """`{"requests": N, "seat": optional, "token": optional}`: N phantom requests in the
    seat's window (else the token's seat's, else the default seat's)."""
    try:
        body = await _json_object(request)
        count = body.get("requests")
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise validation_error("requests", "must be a non-negative integer")
        token = _optional_string(body, "token")
        seat = _optional_string(body, "seat")
        in_window = _dsp(request).throttle(count, token, seat)
    except ApiError as error:
        return _error(error)
    except ValueError as error:
        return _error(validation_error("seat", str(error)))
    return JSONResponse({"in_window": in_window})


async def change_tokens(request: Request) -> Response:
    """`POST /_mock/tokens/revoke` or `/_mock/tokens/expire`, `{"seat": name}`: every token
    issued to the seat is now revoked (`401 unauthorized`) or expired (`401 token_expired`)."""
    dsp = _dsp(request)
    try:
        seat = _optional_string(await _json_object(request), "seat")
        if seat is None:
            raise validation_error("seat", "is required")
        if request.url.path.endswith("/revoke"):
            changed = dsp.revoke_tokens(seat)
        else:
            changed = dsp.expire_tokens(seat)
    except ApiError as error:
        return _error(error)
    except ValueError as error:
        return _error(validation_error("seat", str(error)))
    return JSONResponse({"tokens": changed})


ADMIN_ROUTES = [
    Route("/requests", requests, methods=["GET"]),
    Route("/token_requests", token_requests, methods=["GET"]),
    Route("/stats", stats, methods=["GET"]),
    Route("/entities", entities, methods=["GET"]),
    Route("/reset", reset, methods=["POST"]),
    Route("/config", get_config, methods=["GET"]),
    Route("/config", patch_config, methods=["PATCH"]),
    Route("/throttle", throttle, methods=["POST"]),
    Route("/tokens/revoke", change_tokens, methods=["POST"]),
    Route("/tokens/expire", change_tokens, methods=["POST"]),
]
