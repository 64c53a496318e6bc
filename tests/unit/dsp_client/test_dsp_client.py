"""DspClient.send against a mocked DSP (respx), and what `classify` makes of each answer."""

import asyncio
import dataclasses
import json
import logging
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import pytest_asyncio
import respx
from pydantic import SecretStr

from dsp_integration.dsp_client import (
    MAX_STORED_BODY_BYTES,
    DspClient,
    DspExchange,
    DspResponseError,
    OutcomeKind,
    build_http_client,
    classify,
    create_request,
    parse_created,
    parse_status,
    replace_request,
    status_request,
)

BASE_URL = "http://dsp.test"
SENTINEL = "SENTINEL-tok-3f9a1c77e2"
CREATED = {
    "id": "cmp_8f3a1c",
    "type": "campaigns",
    "status": "pending",
    "created_at": "2026-03-01T12:00:00Z",
}
STATUS = {
    "id": "cr_1",
    "type": "creatives",
    "status": "rejected",
    "reason": "asset is blurry",
    "updated_at": "2026-03-01T12:00:00Z",
}
BODY = {"advertiser_id": "adv_1", "name": "Spring", "budget": {"amount": 5000, "currency": "USD"}}
RATE_HEADERS = {
    "X-RateLimit-Limit": "40",
    "X-RateLimit-Remaining": "12",
    "X-RateLimit-Reset": "3.25",
}


def error_body(code: str, message: str, field: str | None = None) -> dict[str, object]:
    return {"error": {"code": code, "message": message, "field": field}}


@pytest_asyncio.fixture
async def client() -> AsyncIterator[DspClient]:
    async with build_http_client(BASE_URL, 10.0) as http:
        yield DspClient(http)


@pytest.fixture
def dsp() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE_URL, assert_all_called=True) as router:
        yield router


def assert_no_secret(*objects: object) -> None:
    for item in objects:
        texts = [repr(item), str(item)]
        if dataclasses.is_dataclass(item) and not isinstance(item, type):
            texts.append(json.dumps(dataclasses.asdict(item), default=str))
        for text in texts:
            assert SENTINEL not in text


async def test_create_sends_auth_idempotency_key_and_json(
    client: DspClient, dsp: respx.MockRouter
) -> None:
    route = dsp.post("/v1/campaigns").respond(201, json=CREATED, headers=RATE_HEADERS)

    exchange = await client.send(
        create_request("campaigns", BODY, "entity-1-v1"), SecretStr(SENTINEL)
    )

    sent = route.calls.last.request
    assert sent.headers["Authorization"] == f"Bearer {SENTINEL}"
    assert sent.headers["Idempotency-Key"] == "entity-1-v1"
    assert sent.headers["Content-Type"] == "application/json"
    assert sent.headers["Accept"] == "application/json"
    assert json.loads(sent.content) == BODY
    assert exchange.status_code == 201
    assert exchange.json == CREATED
    assert json.loads(exchange.body_text) == CREATED
    assert exchange.error is None
    assert exchange.replayed is False
    assert (exchange.rate_limit_limit, exchange.rate_limit_remaining) == (40, 12)
    assert exchange.rate_limit_reset == 3.25
    assert exchange.retry_after is None
    assert 0 <= exchange.elapsed < 5
    outcome = classify(exchange)
    assert outcome.kind is OutcomeKind.OK
    assert outcome.status_code == 201
    assert parse_created(exchange) == ("cmp_8f3a1c", "pending")


async def test_get_sends_no_body_and_no_idempotency_key(
    client: DspClient, dsp: respx.MockRouter
) -> None:
    route = dsp.get("/v1/creatives/cr_1/status").respond(200, json=STATUS)

    exchange = await client.send(status_request("creatives", "cr_1"), SecretStr(SENTINEL))

    sent = route.calls.last.request
    assert sent.content == b""
    assert "Idempotency-Key" not in sent.headers
    assert "Content-Type" not in sent.headers
    assert sent.headers["Authorization"] == f"Bearer {SENTINEL}"
    assert classify(exchange).kind is OutcomeKind.OK
    assert parse_status(exchange) == ("rejected", "asset is blurry")


async def test_ids_reach_the_dsp_quoted(client: DspClient, dsp: respx.MockRouter) -> None:
    route = dsp.put("/v1/campaigns/a%2Fb").respond(200, json={**STATUS, "reason": None})

    exchange = await client.send(replace_request("campaigns", "a/b", BODY), SecretStr(SENTINEL))

    assert route.calls.last.request.url.raw_path == b"/v1/campaigns/a%2Fb"
    assert parse_status(exchange) == ("rejected", None)


async def test_replayed_create(client: DspClient, dsp: respx.MockRouter) -> None:
    dsp.post("/v1/campaigns").respond(201, json=CREATED, headers={"Idempotent-Replayed": "true"})

    exchange = await client.send(
        create_request("campaigns", BODY, "entity-1-v1"), SecretStr(SENTINEL)
    )

    assert exchange.replayed is True
    outcome = classify(exchange)
    assert outcome.kind is OutcomeKind.OK
    assert "replay" in outcome.message
    assert parse_created(exchange) == ("cmp_8f3a1c", "pending")


@pytest.mark.parametrize(
    ("status", "payload", "kind", "code", "field", "message"),
    [
        (
            401,
            error_body("unauthorized", "missing or wrong token"),
            OutcomeKind.UNAUTHORIZED,
            "unauthorized",
            None,
            "unauthorized: missing or wrong token",
        ),
        (
            404,
            error_body("not_found", "no such campaign"),
            OutcomeKind.NOT_FOUND,
            "not_found",
            None,
            "not_found: no such campaign",
        ),
        (
            409,
            error_body("reference_not_ready", "advertiser adv_1 is not ready", "advertiser_id"),
            OutcomeKind.TRANSIENT,
            "reference_not_ready",
            "advertiser_id",
            "HTTP 409 reference_not_ready on advertiser_id: advertiser adv_1 is not ready",
        ),
        (
            409,
            error_body("conflict", "entity is being replaced"),
            OutcomeKind.REJECTED,
            "conflict",
            None,
            "conflict: entity is being replaced",
        ),
        (
            422,
            error_body("validation_error", "must be > 0", "budget.amount"),
            OutcomeKind.REJECTED,
            "validation_error",
            "budget.amount",
            "validation_error on budget.amount: must be > 0",
        ),
        (
            422,
            error_body("idempotency_key_reused", "key used with another body"),
            OutcomeKind.REJECTED,
            "idempotency_key_reused",
            None,
            "idempotency_key_reused: key used with another body",
        ),
        (
            422,
            error_body("unknown_reference", "", "advertiser_id"),
            OutcomeKind.REJECTED,
            "unknown_reference",
            "advertiser_id",
            "unknown_reference on advertiser_id",
        ),
        (
            400,
            error_body("bad_request", "body is not JSON"),
            OutcomeKind.REJECTED,
            "bad_request",
            None,
            "bad_request: body is not JSON",
        ),
        (
            500,
            error_body("internal", "boom"),
            OutcomeKind.TRANSIENT,
            "internal",
            None,
            "HTTP 500: internal: boom",
        ),
    ],
)
async def test_error_answers(
    client: DspClient,
    dsp: respx.MockRouter,
    status: int,
    payload: dict[str, object],
    kind: OutcomeKind,
    code: str,
    field: str | None,
    message: str,
) -> None:
    dsp.post("/v1/campaigns").respond(status, json=payload, headers=RATE_HEADERS)

    exchange = await client.send(create_request("campaigns", BODY, "k"), SecretStr(SENTINEL))

    assert exchange.status_code == status
    assert exchange.json == payload
    assert exchange.rate_limit_remaining == 12
    outcome = classify(exchange)
    assert (outcome.kind, outcome.code, outcome.field, outcome.message) == (
        kind,
        code,
        field,
        message,
    )
    assert outcome.retry_after is None
    assert outcome.status_code == status


async def test_429_with_retry_after(client: DspClient, dsp: respx.MockRouter) -> None:
    dsp.post("/v1/campaigns").respond(
        429,
        json=error_body("rate_limited", "too many requests"),
        headers={**RATE_HEADERS, "Retry-After": "3", "X-RateLimit-Remaining": "0"},
    )

    exchange = await client.send(create_request("campaigns", BODY, "k"), SecretStr(SENTINEL))

    assert exchange.retry_after == 3.0
    assert exchange.rate_limit_remaining == 0
    outcome = classify(exchange)
    assert outcome.kind is OutcomeKind.RATE_LIMITED
    assert outcome.retry_after == 3.0
    assert outcome.code == "rate_limited"


async def test_429_without_retry_after_waits_one_second(
    client: DspClient, dsp: respx.MockRouter
) -> None:
    dsp.get("/v1/campaigns/c1/status").respond(429, text="slow down")

    outcome = classify(await client.send(status_request("campaigns", "c1"), SecretStr(SENTINEL)))

    assert outcome.kind is OutcomeKind.RATE_LIMITED
    assert outcome.retry_after == 1.0


async def test_429_without_retry_after_follows_the_window_reset(
    client: DspClient, dsp: respx.MockRouter
) -> None:
    dsp.get("/v1/campaigns/c1/status").respond(
        429, json=error_body("rate_limited", "x"), headers={"X-RateLimit-Reset": "2.5"}
    )

    outcome = classify(await client.send(status_request("campaigns", "c1"), SecretStr(SENTINEL)))

    assert outcome.kind is OutcomeKind.RATE_LIMITED
    assert outcome.retry_after == 2.5


async def test_500_without_retry_after(client: DspClient, dsp: respx.MockRouter) -> None:
    dsp.post("/v1/campaigns").respond(500, text="")

    outcome = classify(
        await client.send(create_request("campaigns", BODY, "k"), SecretStr(SENTINEL))
    )

    assert outcome.kind is OutcomeKind.TRANSIENT
    assert outcome.retry_after is None
    assert outcome.message == "HTTP 500: empty body"


async def test_503_keeps_retry_after(client: DspClient, dsp: respx.MockRouter) -> None:
    dsp.post("/v1/campaigns").respond(
        503, json=error_body("unavailable", "maintenance"), headers={"Retry-After": "7"}
    )

    outcome = classify(
        await client.send(create_request("campaigns", BODY, "k"), SecretStr(SENTINEL))
    )

    assert outcome.kind is OutcomeKind.TRANSIENT
    assert outcome.retry_after == 7.0
    assert outcome.code == "unavailable"


@pytest.mark.parametrize(
    ("content", "headers", "problem"),
    [
        (b'{"id": "cmp_8f3a1c", "type": "campa', {}, "not JSON"),
        (b"", {}, "empty body"),
        (b"<html><body>502 Bad Gateway</body></html>", {"Content-Type": "text/html"}, "not JSON"),
        (b'["cmp_8f3a1c"]', {}, "not a JSON object"),
        (b'{"type": "campaigns", "status": "pending"}', {}, "without 'id'"),
        (b'{"id": "cmp_1", "status": null}', {}, "without 'status'"),
        (b'{"id": "cmp_1", "status": "pending", "n": NaN}', {}, "not JSON"),
        (b'{"id": "cmp_1", "status": "pending\xff"}', {}, "not JSON"),
    ],
)
async def test_2xx_with_an_unusable_body_is_transient(
    client: DspClient,
    dsp: respx.MockRouter,
    content: bytes,
    headers: dict[str, str],
    problem: str,
) -> None:
    dsp.post("/v1/campaigns").respond(201, content=content, headers=headers)

    exchange = await client.send(create_request("campaigns", BODY, "k"), SecretStr(SENTINEL))

    assert exchange.status_code == 201
    outcome = classify(exchange)
    assert outcome.kind is OutcomeKind.TRANSIENT
    assert outcome.message.startswith("HTTP 201 treated like a 5xx")
    assert problem in outcome.message
    with pytest.raises(DspResponseError, match="HTTP 201"):
        parse_created(exchange)


@pytest.mark.parametrize("status", [400, 404, 409, 422])
async def test_4xx_without_the_dsp_error_body_is_treated_like_a_5xx(
    client: DspClient, dsp: respx.MockRouter, status: int
) -> None:
    dsp.post("/v1/campaigns").respond(
        status, text="<html>nginx says no</html>", headers={"Retry-After": "2"}
    )

    outcome = classify(
        await client.send(create_request("campaigns", BODY, "k"), SecretStr(SENTINEL))
    )

    assert outcome.kind is OutcomeKind.TRANSIENT
    assert f"HTTP {status}" in outcome.message
    assert "nginx says no" in outcome.message
    assert outcome.retry_after == 2.0


async def test_401_without_a_body_is_still_unauthorized(
    client: DspClient, dsp: respx.MockRouter
) -> None:
    dsp.post("/v1/campaigns").respond(401)

    outcome = classify(
        await client.send(create_request("campaigns", BODY, "k"), SecretStr(SENTINEL))
    )

    assert outcome.kind is OutcomeKind.UNAUTHORIZED
    assert outcome.message == "unauthorized: empty body"


@pytest.mark.parametrize("status", [408, 425])
async def test_retryable_client_errors(
    client: DspClient, dsp: respx.MockRouter, status: int
) -> None:
    dsp.post("/v1/campaigns").respond(status, json=error_body("timeout", "too slow"))

    outcome = classify(
        await client.send(create_request("campaigns", BODY, "k"), SecretStr(SENTINEL))
    )

    assert outcome.kind is OutcomeKind.TRANSIENT
    assert outcome.code == "timeout"


async def test_redirects_are_not_followed(client: DspClient, dsp: respx.MockRouter) -> None:
    dsp.post("/v1/campaigns").respond(307, headers={"Location": "/v2/campaigns"})

    exchange = await client.send(create_request("campaigns", BODY, "k"), SecretStr(SENTINEL))

    assert exchange.status_code == 307
    assert len(dsp.calls) == 1
    assert classify(exchange).kind is OutcomeKind.TRANSIENT


@pytest.mark.parametrize(
    ("raised", "error"),
    [
        (httpx.ReadTimeout("timed out"), "timeout after 10.0 s waiting for the answer"),
        (httpx.ConnectTimeout(""), "timeout after 10.0 s connecting"),
        (httpx.WriteTimeout(""), "timeout after 10.0 s sending the request"),
        (httpx.PoolTimeout(""), "timeout after 10.0 s waiting for a free connection"),
        (httpx.ConnectError("[Errno 111] Connection refused"), "connection refused"),
        (httpx.ConnectError("[Errno -2] Name or service not known"), "connection failed: "),
        (httpx.RemoteProtocolError("Server disconnected"), "protocol error: Server disconnected"),
        (httpx.ReadError("reset by peer"), "network error: reset by peer"),
    ],
)
async def test_no_answer(
    client: DspClient, dsp: respx.MockRouter, raised: Exception, error: str
) -> None:
    dsp.post("/v1/campaigns").mock(side_effect=raised)

    exchange = await client.send(create_request("campaigns", BODY, "k"), SecretStr(SENTINEL))

    assert exchange.status_code is None
    assert exchange.error is not None and exchange.error.startswith(error)
    assert (exchange.body_text, exchange.json) == ("", None)
    outcome = classify(exchange)
    assert outcome.kind is OutcomeKind.TRANSIENT
    assert outcome.message == f"no answer from the DSP: {exchange.error}"
    with pytest.raises(DspResponseError):
        parse_created(exchange)


async def test_cancellation_is_not_swallowed(client: DspClient) -> None:
    reached = asyncio.Event()

    async def never_answer(request: httpx.Request) -> httpx.Response:
        reached.set()
        await asyncio.sleep(30)
        return httpx.Response(201, json=CREATED)

    with respx.mock(base_url=BASE_URL, assert_all_called=False) as dsp:
        dsp.post("/v1/campaigns").mock(side_effect=never_answer)
        sending = asyncio.create_task(
            client.send(create_request("campaigns", BODY, "k"), SecretStr(SENTINEL))
        )
        await asyncio.wait_for(reached.wait(), 5)
        sending.cancel()

        with pytest.raises(asyncio.CancelledError):
            await sending


async def test_large_bodies_are_cut_for_storage_but_parsed_whole(
    client: DspClient, dsp: respx.MockRouter
) -> None:
    payload = {**CREATED, "notes": "é" * MAX_STORED_BODY_BYTES}
    dsp.post("/v1/campaigns").respond(201, json=payload)

    exchange = await client.send(create_request("campaigns", BODY, "k"), SecretStr(SENTINEL))

    assert exchange.body_truncated is True
    assert len(exchange.body_text.encode("utf-8")) <= MAX_STORED_BODY_BYTES
    assert len(exchange.body_text.encode("utf-8")) > MAX_STORED_BODY_BYTES - 4
    assert exchange.json == payload
    assert classify(exchange).kind is OutcomeKind.OK


async def test_stored_bodies_hold_no_nul(client: DspClient, dsp: respx.MockRouter) -> None:
    dsp.post("/v1/campaigns").respond(502, content=b"bad\x00gateway\xff")

    exchange = await client.send(create_request("campaigns", BODY, "k"), SecretStr(SENTINEL))

    assert "\x00" not in exchange.body_text
    assert exchange.body_text.startswith("bad")
    assert classify(exchange).kind is OutcomeKind.TRANSIENT


async def test_malformed_rate_limit_headers_read_as_absent(
    client: DspClient, dsp: respx.MockRouter
) -> None:
    dsp.get("/v1/campaigns/c1/status").respond(
        200,
        json=STATUS,
        headers={
            "X-RateLimit-Limit": "lots",
            "X-RateLimit-Remaining": "-3",
            "X-RateLimit-Reset": "soon",
            "Retry-After": "later",
        },
    )

    exchange = await client.send(status_request("campaigns", "c1"), SecretStr(SENTINEL))

    assert exchange.rate_limit_limit is None
    assert exchange.rate_limit_remaining is None
    assert exchange.rate_limit_reset is None
    assert exchange.retry_after is None
    assert classify(exchange).kind is OutcomeKind.OK


async def test_the_token_never_shows(
    client: DspClient, dsp: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    echoed = {"error": {"code": "unauthorized", "message": f"bad token {SENTINEL}", "field": None}}
    dsp.post("/v1/campaigns").respond(401, json=echoed)
    dsp.get("/v1/campaigns/c1/status").mock(
        side_effect=httpx.ConnectError(f"cannot reach with {SENTINEL}")
    )
    dsp.get("/v1/campaigns/c2/status").respond(200, text=f"<p>{SENTINEL}</p>")

    with caplog.at_level(logging.DEBUG):
        rejected = await client.send(create_request("campaigns", BODY, "k"), SecretStr(SENTINEL))
        failed = await client.send(status_request("campaigns", "c1"), SecretStr(SENTINEL))
        garbled = await client.send(status_request("campaigns", "c2"), SecretStr(SENTINEL))
        with pytest.raises(DspResponseError) as raised:
            parse_status(garbled)

    assert "[redacted]" in rejected.body_text
    assert rejected.json == {
        "error": {"code": "unauthorized", "message": "bad token [redacted]", "field": None}
    }
    assert failed.error is not None and "[redacted]" in failed.error
    outcomes = [classify(exchange) for exchange in (rejected, failed, garbled)]
    assert_no_secret(client, rejected, failed, garbled, *outcomes, raised.value, caplog.text)
    assert "dsp.test" in repr(client)


def test_exchange_repr_leaves_out_the_body() -> None:
    exchange = DspExchange(status_code=201, body_text="x" * 10_000, json={"id": "c"})
    assert len(repr(exchange)) < 400
