"""The `/v1/` API: every request passes the limiter, then the token check, then routing and
the fault dice, and is answered with the rate-limit headers and written to the log. A
`drop` fault's answer is never sent: `api_endpoint` resets the connection instead.

The limiter's window is the seat's when the token is one of its tokens, valid or not (an
expired token's `401` counts, dsp-api-v2.md §2), else the unknown token's own. The token
endpoint, `POST /v1/oauth/token`, is not here but in oauth.py: it counts toward no window."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import struct
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import Response

from devkit.mock_dsp.answer_gates import AnswerGate
from devkit.mock_dsp.config import ApiVersion
from devkit.mock_dsp.entities import utc_now
from devkit.mock_dsp.faults import BEFORE_PROCESSING, break_reply, choose_fault, unavailable
from devkit.mock_dsp.replies import ApiError, Reply, error_reply
from devkit.mock_dsp.request_log import RequestRecord, token_id
from devkit.mock_dsp.state import MockDsp
from devkit.mock_dsp.streams import request_key
from devkit.mock_dsp.validation import ENTITY_TYPES, EXTERNAL_ID, IDEMPOTENCY_KEY_HEADER

API_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

_ROUTES: tuple[tuple[re.Pattern[str], dict[str, str]], ...] = (
    (re.compile(r"/v1/(?P<type>[^/]+)/(?P<id>[^/]+)/status"), {"GET": "status"}),
    (
        re.compile(r"/v1/(?P<type>[^/]+)/(?P<id>[^/]+)"),
        {"GET": "get", "PUT": "replace", "DELETE": "archive"},
    ),
    (re.compile(r"/v1/(?P<type>[^/]+)"), {"POST": "create"}),
)
_VERSION_2_ROUTES: dict[str, dict[str, str]] = {r"/v1/(?P<type>[^/]+)": {"GET": "search"}}
DROP_WAIT_SECONDS = 5.0


class AnswerDropped(ConnectionResetError):
    """What an in-process client (over `httpx.ASGITransport`, no socket to reset) gets for
    a `drop` fault."""


@dataclass(frozen=True)
class ApiCall:
    method: str
    path: str
    token: str | None
    idempotency_key: str | None
    raw: bytes
    query: str = ""

    def query_value(self, name: str) -> str | None:
        values = parse_qs(self.query, keep_blank_values=True).get(name)
        return values[0] if values else None


@dataclass(frozen=True)
class ApiAnswer:
    """`gate`: the answer waits until it is released (after `delay`)."""

    reply: Reply
    record: RequestRecord
    delay: float
    gate: AnswerGate | None = None

    @property
    def dropped(self) -> bool:
        return self.record.fault == "drop"


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def _route(method: str, path: str, api_version: ApiVersion) -> tuple[str, str, str | None]:
    for pattern, operations in _ROUTES:
        match = pattern.fullmatch(path)
        if match is None:
            continue
        if match["type"] not in ENTITY_TYPES:
            break
        if api_version == 2:
            operations = {**operations, **_VERSION_2_ROUTES.get(pattern.pattern, {})}
        operation = operations.get(method)
        if operation is None:
            raise ApiError(405, "method_not_allowed", f"{method} is not allowed on {path}")
        return operation, match["type"], match.groupdict().get("id")
    raise ApiError(404, "not_found", f"no such endpoint: {method} {path}")


def _logged_body(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        return None


def _perform(
    dsp: MockDsp,
    call: ApiCall,
    seat: str,
    operation: str,
    entity_type: str,
    entity_id: str | None,
    now: float,
) -> tuple[Reply, str | None, bool]:
    """The reply, the id of the entity created (if any) and whether it was a replay."""
    if operation == "create":
        created = dsp.create(seat, entity_type, call.raw, call.idempotency_key, now)
        return created.reply, created.created_id, created.replayed
    if operation == "search":
        found = dsp.search(seat, entity_type, call.query_value(EXTERNAL_ID), now)
        return Reply(200, found), None, False
    assert entity_id is not None
    match operation:
        case "status":
            body = dsp.status(seat, entity_type, entity_id, now)
        case "get":
            body = dsp.view(seat, entity_type, entity_id, now)
        case "replace":
            body = dsp.replace(seat, entity_type, entity_id, call.raw, now)
        case _:
            body = dsp.archive(seat, entity_type, entity_id, now)
    return Reply(200, body), None, False


def _stream_key(call: ApiCall, api_version: ApiVersion) -> str:
    """The entity a request's fault dice belong to. Version 2 ignores Idempotency-Key, so a
    create's retries are tied together by the body's `external_id` instead, and a search by
    its query."""
    if api_version == 1:
        return request_key(call.path, call.idempotency_key)
    if call.method == "POST":
        body = _logged_body(call.raw)
        reference = body.get(EXTERNAL_ID) if isinstance(body, dict) else None
        return f"{call.path}#{reference}" if isinstance(reference, str) else call.path
    if call.query:
        return f"{call.path}?{call.query}"
    return request_key(call.path, None)


def answer(dsp: MockDsp, call: ApiCall) -> ApiAnswer:
    """Everything one request does, in one step under the state's lock."""
    with dsp.lock:
        now = time.monotonic()
        wall = utc_now()
        config = dsp.config
        token = call.token or ""
        seats = config.seat_table()
        check = dsp.tokens.check(call.token, seats, now)
        seat = seats.get(check.seat) if check.seat is not None else None
        limit = seat.rate_limit if seat is not None else config.rate_limit
        window = seat.rate_window if seat is not None else config.rate_window
        window_key = dsp.window_of(check.seat, token)
        decision = dsp.limiter.hit(window_key, now, limit, window)
        token_valid = check.state == "valid"
        fault = None
        created_id = None
        replayed = False
        token_expired = False
        if not decision.allowed:
            reply = error_reply(
                429,
                "rate_limited",
                f"more than {limit} requests in {window:g} seconds; "
                f"retry after {decision.retry_after} s",
            )
        elif check.state == "expired":
            token_expired = True
            reply = error_reply(401, "token_expired", "the token has expired: get a new one")
        elif not token_valid or check.seat is None:
            reply = error_reply(401, "unauthorized", "missing, wrong or revoked bearer token")
        else:
            try:
                operation, entity_type, entity_id = _route(
                    call.method, call.path, config.api_version
                )
                faults = dsp.streams.stream(_stream_key(call, config.api_version), "faults")
                fault = choose_fault(config, faults)
                if fault in BEFORE_PROCESSING:
                    reply = unavailable()
                else:
                    reply, created_id, replayed = _perform(
                        dsp, call, check.seat, operation, entity_type, entity_id, now
                    )
            except ApiError as error:
                reply = error.reply()
            if fault is not None and fault not in BEFORE_PROCESSING:
                reply = break_reply(fault, reply)
        reply = reply.with_headers(decision.headers())
        record = RequestRecord(
            at=now,
            wall_time=wall,
            method=call.method,
            path=call.path,
            status=reply.status,
            token_id=token_id(token),
            token_valid=token_valid,
            idempotency_key=call.idempotency_key,
            body=_logged_body(call.raw),
            fault=fault,
            replayed=replayed,
            created_id=created_id,
            query=call.query,
            seat=check.seat,
            token_expired=token_expired,
            window=window_key,
        )
        dsp.log.append(record)
        delay = config.slow_seconds if fault == "slow" else 0.0
    return ApiAnswer(reply, record, delay)


async def api_endpoint(request: Request) -> Response:
    dsp: MockDsp = request.app.state.dsp
    call = ApiCall(
        method=request.method,
        path=request.url.path,
        token=bearer_token(request.headers.get("authorization")),
        idempotency_key=request.headers.get(IDEMPOTENCY_KEY_HEADER),
        raw=await request.body(),
        query=request.url.query,
    )
    result = answer(dsp, call)
    if dsp.on_request is not None:
        dsp.on_request(result.record)
    if result.delay:
        await asyncio.sleep(result.delay)
    if result.gate is not None:
        await result.gate.wait()
    if result.dropped:
        await drop_connection(request)
        return Response(status_code=204)  # not sent: uvicorn ignores sends after a disconnect
    return result.reply.to_response()


async def drop_connection(request: Request) -> None:
    """Reset the request's TCP connection (SO_LINGER 0, then abort: an RST, no answer), and
    wait until the server has seen the disconnect, so nothing is written afterwards.

    ASGI has no call for this; uvicorn's `receive` is a method of its request cycle, which
    holds the transport. Without one (an in-process ASGI client) `AnswerDropped` is raised."""
    transport = getattr(getattr(request.receive, "__self__", None), "transport", None)
    if transport is None:
        raise AnswerDropped("the mock DSP dropped the answer")
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
    async with asyncio.timeout(DROP_WAIT_SECONDS):
        while (await request.receive())["type"] != "http.disconnect":
            pass
