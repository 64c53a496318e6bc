"""The gateway and the seat's tokens: the token before the slot (a failed login sends nothing,
takes no slot, writes no audit row), and a request refused as `401 token_expired` sent once
more with a fresh token in a slot and an audit row of its own, the refused attempt keeping
both. At a version-2 DSP neither a failed login nor a `token_expired` is a create that "may
have landed".

The limiter here records its slots in memory (what the gateway asks of it and tells it); the
ledger's own accounting is tested against PostgreSQL in test_rate_limiter.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio
import respx
from pydantic import SecretStr
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from dsp_integration.activities.dsp_calls import DspActivities, DspContract
from dsp_integration.config.seats import Seat
from dsp_integration.contracts import EntityType, ErrorType, SubmitEntityInput
from dsp_integration.database.audit_log import RequestAnswer, RequestEntry
from dsp_integration.dsp_client import (
    ClientCredentials,
    CredentialsRefused,
    DspClient,
    LoginError,
    LoginFailed,
    LoginThrottled,
    create_request,
)
from dsp_integration.dsp_client.credentials import TOKEN_PATH
from dsp_integration.gateway.dsp_gateway import DspGateway, sent_nothing

BASE_URL = "http://dsp.test"
SEAT = "emea"
BODY = {"name": "Acme", "domain": "acme.example", "currency": "USD"}
CREATED = {"id": "adv_1", "type": "advertisers", "status": "active", "created_at": "2026-12-01"}
EXPIRED = {"error": {"code": "token_expired", "message": "token expired", "field": None}}
POST = SubmitEntityInput(
    key="acme", entity_type=EntityType.ADVERTISERS, body=BODY, idempotency_key="acme:v1"
)


@dataclass
class RecordedSlot:
    entry: RequestEntry | None
    left: bool = False
    answer: RequestAnswer | None = None
    completions: int = 0
    paused: float | None = None

    def leaving(self) -> None:
        self.left = True

    async def complete(self, answer: RequestAnswer | None = None) -> None:
        """Once, as `RateSlot.complete`: later calls do nothing."""
        self.completions += 1
        if self.completions == 1:
            self.answer = answer

    async def observe(self, remaining: int | None, reset: float | None) -> None:
        await self.complete()

    async def pause(self, seconds: float) -> None:
        self.paused = seconds


@dataclass
class RecordingLimiter:
    """The slots the gateway took, each with the audit entry it was granted with."""

    slots: list[RecordedSlot] = field(default_factory=list)

    @asynccontextmanager
    async def slot(self, request: RequestEntry | None = None) -> AsyncIterator[RecordedSlot]:
        slot = RecordedSlot(request)
        self.slots.append(slot)
        yield slot


class FailingLogin:
    def __init__(self, error: LoginError) -> None:
        self.error = error

    async def token(self) -> SecretStr:
        raise self.error

    def expired(self, token: SecretStr) -> None:
        raise AssertionError("nothing was sent, so nothing can have expired")


def seat() -> Seat:
    return Seat(
        name=SEAT,
        base_url=BASE_URL,
        api_version=2,
        search_lag=0.0,
        rate_limit=40,
        rate_window=60.0,
        secret=SecretStr("client-secret"),
        client_id="cid",
    )


def issued(token: str) -> httpx.Response:
    return httpx.Response(200, json={"access_token": token, "expires_in": 3600})


@pytest_asyncio.fixture
async def http(dsp: respx.Router) -> AsyncIterator[httpx.AsyncClient]:
    """A client whose transport is `dsp` alone (no global patching of httpx)."""
    transport = httpx.MockTransport(dsp.async_handler)
    async with httpx.AsyncClient(base_url=BASE_URL, transport=transport) as client:
        yield client


@pytest.fixture
def dsp() -> respx.Router:
    return respx.Router(base_url=BASE_URL, assert_all_called=False)


def bearer(call: Any) -> str:
    return str(call.request.headers["authorization"])


async def test_a_token_expired_request_goes_once_more_with_a_fresh_token(
    http: httpx.AsyncClient, dsp: respx.Router
) -> None:
    login = dsp.post(TOKEN_PATH).mock(side_effect=[issued("old"), issued("new")])
    create = dsp.post("/v1/advertisers").mock(
        side_effect=[httpx.Response(401, json=EXPIRED), httpx.Response(201, json=CREATED)]
    )
    limiter = RecordingLimiter()
    gateway = DspGateway(DspClient(http), ClientCredentials(http, seat()), limiter, SEAT)  # type: ignore[arg-type]

    exchange = await gateway.call("acme", create_request("advertisers", BODY, "acme:v1"))

    assert exchange.status_code == 201
    assert [bearer(call) for call in create.calls] == ["Bearer old", "Bearer new"]
    assert login.call_count == 2
    # Two slots, each with its audit entry, both sent and answered: the refused attempt
    # stays on record and in the window.
    assert [(slot.left, slot.completions > 0) for slot in limiter.slots] == [(True, True)] * 2
    assert [slot.entry.idempotency_key for slot in limiter.slots if slot.entry] == [
        "acme:v1",
        "acme:v1",
    ]
    first, second = (slot.answer for slot in limiter.slots)
    assert first is not None and second is not None
    assert (first.response_status, second.response_status) == (401, 201)
    assert "token_expired" in (first.response_body or "")


async def test_expired_twice_in_one_call_is_not_tried_a_third_time(
    http: httpx.AsyncClient, dsp: respx.Router
) -> None:
    login = dsp.post(TOKEN_PATH).mock(side_effect=[issued("one"), issued("two"), issued("x")])
    create = dsp.post("/v1/advertisers").mock(return_value=httpx.Response(401, json=EXPIRED))
    limiter = RecordingLimiter()
    tokens = ClientCredentials(http, seat())
    gateway = DspGateway(DspClient(http), tokens, limiter, SEAT)  # type: ignore[arg-type]

    with pytest.raises(ApplicationError) as raised:
        await gateway.call("acme", create_request("advertisers", BODY, "acme:v1"))

    assert raised.value.type == ErrorType.DSP_UNAUTHORIZED
    assert not sent_nothing(raised.value)
    assert create.call_count == 2 and len(limiter.slots) == 2 and login.call_count == 2
    # The second refusal dropped the second token too: the activity's retry logs in anew.
    assert await tokens.token() == SecretStr("x")


async def test_another_401_is_not_retried(http: httpx.AsyncClient, dsp: respx.Router) -> None:
    dsp.post(TOKEN_PATH).mock(side_effect=[issued("one"), issued("two")])
    unknown = {"error": {"code": "unauthorized", "message": "unknown token", "field": None}}
    create = dsp.post("/v1/advertisers").mock(return_value=httpx.Response(401, json=unknown))
    limiter = RecordingLimiter()
    gateway = DspGateway(DspClient(http), ClientCredentials(http, seat()), limiter, SEAT)  # type: ignore[arg-type]

    with pytest.raises(ApplicationError) as raised:
        await gateway.call("acme", create_request("advertisers", BODY, "acme:v1"))

    assert raised.value.type == ErrorType.DSP_UNAUTHORIZED
    assert create.call_count == 1 and len(limiter.slots) == 1


@pytest.mark.parametrize(
    ("error", "error_type", "delay"),
    [
        (CredentialsRefused("refused", retry_after=120), ErrorType.DSP_UNAUTHORIZED, 120),
        (LoginThrottled("throttled", retry_after=300), ErrorType.DSP_RATE_LIMITED, 300),
        (LoginFailed("no answer"), ErrorType.DSP_TRANSIENT, None),
    ],
)
async def test_no_token_sends_nothing_and_takes_no_slot(
    http: httpx.AsyncClient,
    dsp: respx.Router,
    error: LoginError,
    error_type: ErrorType,
    delay: float | None,
) -> None:
    create = dsp.post("/v1/advertisers").mock(return_value=httpx.Response(201, json=CREATED))
    limiter = RecordingLimiter()
    gateway = DspGateway(DspClient(http), FailingLogin(error), limiter, SEAT)  # type: ignore[arg-type]

    with pytest.raises(ApplicationError) as raised:
        await gateway.call("acme", create_request("advertisers", BODY, "acme:v1"))

    assert raised.value.type == error_type
    expected = timedelta(seconds=delay) if delay is not None else None
    assert raised.value.next_retry_delay == expected
    assert sent_nothing(raised.value)
    assert str(error) in raised.value.message
    assert not create.called and limiter.slots == []


async def test_a_fresh_login_that_fails_after_token_expired_sent_nothing_more(
    http: httpx.AsyncClient, dsp: respx.Router
) -> None:
    dsp.post(TOKEN_PATH).mock(side_effect=[issued("old"), httpx.Response(503)])
    create = dsp.post("/v1/advertisers").mock(return_value=httpx.Response(401, json=EXPIRED))
    limiter = RecordingLimiter()
    gateway = DspGateway(DspClient(http), ClientCredentials(http, seat()), limiter, SEAT)  # type: ignore[arg-type]

    with pytest.raises(ApplicationError) as raised:
        await gateway.call("acme", create_request("advertisers", BODY, "acme:v1"))

    assert raised.value.type == ErrorType.DSP_TRANSIENT and sent_nothing(raised.value)
    assert create.call_count == 1 and len(limiter.slots) == 1


def v2_activities(gateway: DspGateway) -> DspActivities:
    return DspActivities(gateway, sessions=None, contract=DspContract(version=2))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("tokens_answer", "create_answers", "error_type"),
    [
        # A failed login: nothing was sent.
        (httpx.Response(503), [], ErrorType.DSP_TRANSIENT),
        (httpx.ConnectError("refused"), [], ErrorType.DSP_TRANSIENT),
        (httpx.Response(429, headers={"Retry-After": "9"}), [], ErrorType.DSP_RATE_LIMITED),
        # 401 token_expired twice: the DSP did nothing either time.
        (
            None,
            [httpx.Response(401, json=EXPIRED), httpx.Response(401, json=EXPIRED)],
            ErrorType.DSP_UNAUTHORIZED,
        ),
        # The control: a fault after the create was sent may have created it.
        (None, [httpx.Response(503)], ErrorType.DSP_MAY_HAVE_LANDED),
        (
            None,
            [httpx.Response(401, json=EXPIRED), httpx.Response(502)],
            ErrorType.DSP_MAY_HAVE_LANDED,
        ),
    ],
)
async def test_at_version_2_only_a_sent_create_may_have_landed(
    http: httpx.AsyncClient,
    dsp: respx.Router,
    tokens_answer: httpx.Response | Exception | None,
    create_answers: list[httpx.Response],
    error_type: ErrorType,
) -> None:
    logins: list[httpx.Response | Exception] = (
        [tokens_answer] if tokens_answer is not None else [issued("one"), issued("two")]
    )
    dsp.post(TOKEN_PATH).mock(side_effect=logins)
    create = dsp.post("/v1/advertisers").mock(side_effect=create_answers)
    limiter = RecordingLimiter()
    gateway = DspGateway(DspClient(http), ClientCredentials(http, seat()), limiter, SEAT)  # type: ignore[arg-type]

    with pytest.raises(ApplicationError) as raised:
        await ActivityEnvironment().run(v2_activities(gateway).submit_entity, POST)

    assert raised.value.type == error_type
    assert create.call_count == len(create_answers)
