"""`POST /v1/oauth/token` (dsp-api-v2.md §2): a seat's client credentials buy a token that
works for `token_lifetime` seconds. Each client may ask `token_requests_per_hour` times in
any rolling hour (refused and wrong-secret requests count too, keyed by the client_id
given); beyond that, `429 rate_limited` with `Retry-After`. Token requests count toward no
seat's window and are logged apart from the API's requests, without their secret or token.

The fault dice are not rolled here: the faults test the entity calls, and a login that
failed at random would make every fault test also a login test."""

from __future__ import annotations

import time
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from devkit.mock_dsp.credentials import TOKEN_REQUEST_WINDOW, TokenRequestRecord
from devkit.mock_dsp.entities import utc_now
from devkit.mock_dsp.replies import ApiError, Reply, error_reply, validation_error
from devkit.mock_dsp.state import MockDsp
from devkit.mock_dsp.validation import parse_json

TOKEN_PATH = "/v1/oauth/token"
CREDENTIAL_FIELDS = ("client_id", "client_secret")


@dataclass(frozen=True)
class TokenAnswer:
    reply: Reply
    record: TokenRequestRecord


def _credentials(raw: bytes) -> tuple[str, str]:
    body = parse_json(raw)
    if not isinstance(body, dict):
        raise validation_error(None, "the body must be a JSON object")
    for field in CREDENTIAL_FIELDS:
        value = body.get(field)
        if not isinstance(value, str) or not value:
            raise validation_error(field, "is required: a non-empty string")
    return body["client_id"], body["client_secret"]


def _client_id_of(raw: bytes) -> str | None:
    """The client_id a refused body named, for the log (never the secret)."""
    try:
        body = parse_json(raw)
    except ApiError:
        return None
    value = body.get("client_id") if isinstance(body, dict) else None
    return value if isinstance(value, str) and value else None


def _seconds(value: float) -> int | float:
    return int(value) if value == int(value) else value


def answer_token_request(dsp: MockDsp, raw: bytes) -> TokenAnswer:
    """Everything one token request does, in one step under the state's lock."""
    with dsp.lock:
        now = time.monotonic()
        wall = utc_now()
        config = dsp.config
        seat = None
        try:
            client_id, client_secret = _credentials(raw)
            decision = dsp.tokens.count_token_request(
                client_id, now, config.token_requests_per_hour
            )
            if not decision.allowed:
                reply = error_reply(
                    429,
                    "rate_limited",
                    f"more than {config.token_requests_per_hour} token requests in "
                    f"{TOKEN_REQUEST_WINDOW:g} seconds; retry after {decision.retry_after} s",
                ).with_headers({"Retry-After": str(decision.retry_after)})
            else:
                seat = dsp.tokens.seat_of_client(client_id, client_secret, config.seat_table())
                if seat is None:
                    reply = error_reply(
                        401, "invalid_client", "unknown client_id or wrong client_secret"
                    )
                else:
                    token = dsp.tokens.issue(seat, now, config.token_lifetime)
                    reply = Reply(
                        200,
                        {
                            "access_token": token,
                            "token_type": "Bearer",
                            "expires_in": _seconds(config.token_lifetime),
                        },
                        {"Cache-Control": "no-store"},
                    )
        except ApiError as error:
            reply = error.reply()
        record = TokenRequestRecord(now, wall, _client_id_of(raw), seat, reply.status)
        dsp.tokens.log.append(record)
    return TokenAnswer(reply, record)


async def token_endpoint(request: Request) -> Response:
    dsp: MockDsp = request.app.state.dsp
    if request.method != "POST":
        refused = error_reply(
            405, "method_not_allowed", f"{request.method} is not allowed on {TOKEN_PATH}"
        )
        return refused.to_response()
    result = answer_token_request(dsp, await request.body())
    if dsp.on_token_request is not None:
        dsp.on_token_request(result.record)
    return result.reply.to_response()
