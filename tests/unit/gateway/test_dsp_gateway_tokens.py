"""The gateway and the seat's tokens: the token before the slot (a failed login sends nothing,
takes no slot, writes no audit row), and a request refused as `401 token_expired` sent once
more with a fresh token in a slot and an audit row of its own, the refused attempt keeping
both. At a version-2 DSP neither a failed login nor a `token_expired` is a create that "may
have landed".

Real PostgreSQL (the seat's ledger and the audit log), real token manager; only the DSP, its
token endpoint included, is mocked."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio
import respx
from pydantic import SecretStr
from sqlalchemy import func, select
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from dsp_integration.activities.dsp_calls import DspActivities, DspContract
from dsp_integration.config.seats import Seat
from dsp_integration.contracts import EntityType, ErrorType, SubmitEntityInput
from dsp_integration.database.audit_log import request_may_have_landed
from dsp_integration.database.engine import SessionFactory
from dsp_integration.database.models import AuditRecord, RateLedgerEntry, RateWaiter
from dsp_integration.dsp_client import (
    ClientCredentials,
    CredentialsRefused,
    DspClient,
    LoginError,
    LoginFailed,
    LoginThrottled,
    create_request,
)
from dsp_integration.dsp_client.credentials import REFUSED_BACKOFF_FIRST, TOKEN_PATH
from dsp_integration.gateway.dsp_gateway import DspGateway, sent_nothing
from dsp_integration.gateway.rate_limiter import SharedRateLimiter

BASE_URL = "http://dsp.test"
SEAT = "emea"
WINDOW = 60.0
# Far longer than a test: a slot still in flight counts until `now + HOLD`, an answered one
# from its answer, so the two cannot be mistaken for each other.
HOLD = 600.0
BODY = {"name": "Acme", "domain": "acme.example", "currency": "USD"}
CREATED = {"id": "adv_1", "type": "advertisers", "status": "active", "created_at": "2026-12-01"}
EXPIRED = {"error": {"code": "token_expired", "message": "token expired", "field": None}}
UNKNOWN = {"error": {"code": "unauthorized", "message": "unknown token", "field": None}}
INVALID_CLIENT = {"error": {"code": "invalid_client", "message": "bad secret", "field": None}}
POST = SubmitEntityInput(
    key="acme", entity_type=EntityType.ADVERTISERS, body=BODY, idempotency_key="acme:v1"
)


def seat() -> Seat:
    return Seat(
        name=SEAT,
        base_url=BASE_URL,
        api_version=2,
        search_lag=0.0,
        rate_limit=40,
        rate_window=WINDOW,
        secret=SecretStr("client-secret"),
        client_id="cid",
    )


def issued(token: str) -> httpx.Response:
    return httpx.Response(200, json={"access_token": token, "expires_in": 3600})


@pytest.fixture
def dsp() -> respx.Router:
    return respx.Router(base_url=BASE_URL, assert_all_called=False)


@pytest_asyncio.fixture
async def http(dsp: respx.Router) -> AsyncIterator[httpx.AsyncClient]:
    """A client whose transport is `dsp` alone (no global patching of httpx)."""
    transport = httpx.MockTransport(dsp.async_handler)
    async with httpx.AsyncClient(base_url=BASE_URL, transport=transport) as client:
        yield client


def gateway_for(
    sessions: SessionFactory, http: httpx.AsyncClient, tokens: ClientCredentials | None = None
) -> DspGateway:
    limiter = SharedRateLimiter(sessions, seat=SEAT, limit=40, window=WINDOW, hold=HOLD)
    return DspGateway(DspClient(http), tokens or ClientCredentials(http, seat()), limiter)


async def audit_rows(sessions: SessionFactory) -> list[AuditRecord]:
    async with sessions() as session:
        return list(await session.scalars(select(AuditRecord).order_by(AuditRecord.id)))


async def seat_slot_ages(sessions: SessionFactory) -> list[float]:
    """Seconds since each of the seat's ledger rows counts from, by the database clock:
    between 0 and the window for a request that was answered and is still in the seat's
    window; about -HOLD for one still in flight."""
    age = func.extract("epoch", func.clock_timestamp() - RateLedgerEntry.granted_at)
    async with sessions() as session:
        found = await session.scalars(
            select(age).where(RateLedgerEntry.seat == SEAT).order_by(RateLedgerEntry.id)
        )
        return [float(seconds) for seconds in found]


# An answered slot counts from the grant's database time plus the worker's monotonic time to
# the answer: a bound that may run a moment ahead of the database clock read just after.
CLOCK_SLACK = 0.05


async def assert_answered_slots_in_window(sessions: SessionFactory, count: int) -> None:
    ages = await seat_slot_ages(sessions)
    assert len(ages) == count
    assert all(-CLOCK_SLACK <= seconds < WINDOW for seconds in ages), ages


def bearer(call: Any) -> str:
    return str(call.request.headers["authorization"])


async def test_a_token_expired_request_goes_once_more_with_a_fresh_token(
    http: httpx.AsyncClient, dsp: respx.Router, clean_database: SessionFactory
) -> None:
    login = dsp.post(TOKEN_PATH).mock(side_effect=[issued("old"), issued("new")])
    create = dsp.post("/v1/advertisers").mock(
        side_effect=[httpx.Response(401, json=EXPIRED), httpx.Response(201, json=CREATED)]
    )

    exchange = await gateway_for(clean_database, http).call(
        "acme", create_request("advertisers", BODY, "acme:v1")
    )

    assert exchange.status_code == 201
    assert [bearer(call) for call in create.calls] == ["Bearer old", "Bearer new"]
    assert login.call_count == 2
    # One audit row per attempt, each answered: the refused attempt stays on record ...
    rows = await audit_rows(clean_database)
    assert [(row.entity_key, row.idempotency_key, row.response_status) for row in rows] == [
        ("acme", "acme:v1", 401),
        ("acme", "acme:v1", 201),
    ]
    assert all(row.finished_at is not None for row in rows)
    assert "token_expired" in (rows[0].response_body or "")
    # ... and in the seat's window, beside the retry's own slot.
    await assert_answered_slots_in_window(clean_database, 2)


async def test_expired_twice_in_one_call_is_not_tried_a_third_time(
    http: httpx.AsyncClient, dsp: respx.Router, clean_database: SessionFactory
) -> None:
    login = dsp.post(TOKEN_PATH).mock(side_effect=[issued("one"), issued("two"), issued("x")])
    create = dsp.post("/v1/advertisers").mock(return_value=httpx.Response(401, json=EXPIRED))
    tokens = ClientCredentials(http, seat())

    with pytest.raises(ApplicationError) as raised:
        await gateway_for(clean_database, http, tokens).call(
            "acme", create_request("advertisers", BODY, "acme:v1")
        )

    assert raised.value.type == ErrorType.DSP_UNAUTHORIZED
    assert not sent_nothing(raised.value)
    assert create.call_count == 2 and login.call_count == 2
    assert [row.response_status for row in await audit_rows(clean_database)] == [401, 401]
    await assert_answered_slots_in_window(clean_database, 2)
    # The second refusal dropped the second token too: the activity's retry logs in anew.
    assert await tokens.token() == SecretStr("x")


async def test_another_401_is_not_retried(
    http: httpx.AsyncClient, dsp: respx.Router, clean_database: SessionFactory
) -> None:
    login = dsp.post(TOKEN_PATH).mock(side_effect=[issued("one"), issued("two")])
    create = dsp.post("/v1/advertisers").mock(return_value=httpx.Response(401, json=UNKNOWN))

    with pytest.raises(ApplicationError) as raised:
        await gateway_for(clean_database, http).call(
            "acme", create_request("advertisers", BODY, "acme:v1")
        )

    assert raised.value.type == ErrorType.DSP_UNAUTHORIZED
    assert create.call_count == 1 and login.call_count == 1
    [row] = await audit_rows(clean_database)
    assert row.response_status == 401 and "unauthorized" in (row.response_body or "")
    await assert_answered_slots_in_window(clean_database, 1)


@pytest.mark.parametrize(
    ("login_answer", "error_class", "error_type", "delay"),
    [
        (
            httpx.Response(401, json=INVALID_CLIENT),
            CredentialsRefused,
            ErrorType.DSP_UNAUTHORIZED,
            REFUSED_BACKOFF_FIRST,
        ),
        (
            httpx.Response(429, headers={"Retry-After": "300"}),
            LoginThrottled,
            ErrorType.DSP_RATE_LIMITED,
            300,
        ),
        (httpx.Response(503), LoginFailed, ErrorType.DSP_TRANSIENT, None),
        (httpx.ConnectError("refused"), LoginFailed, ErrorType.DSP_TRANSIENT, None),
    ],
)
async def test_no_token_sends_nothing_and_takes_no_slot(
    http: httpx.AsyncClient,
    dsp: respx.Router,
    clean_database: SessionFactory,
    login_answer: httpx.Response | Exception,
    error_class: type[LoginError],
    error_type: ErrorType,
    delay: float | None,
) -> None:
    dsp.post(TOKEN_PATH).mock(side_effect=[login_answer])
    create = dsp.post("/v1/advertisers").mock(return_value=httpx.Response(201, json=CREATED))

    with pytest.raises(ApplicationError) as raised:
        await gateway_for(clean_database, http).call(
            "acme", create_request("advertisers", BODY, "acme:v1")
        )

    assert raised.value.type == error_type
    expected = timedelta(seconds=delay) if delay is not None else None
    assert raised.value.next_retry_delay == expected
    assert sent_nothing(raised.value)
    assert isinstance(raised.value.__cause__, error_class)
    assert str(raised.value.__cause__) in raised.value.message
    assert not create.called
    # Nothing taken: no slot, no audit row, no place in the seat's queue.
    assert await seat_slot_ages(clean_database) == []
    assert await audit_rows(clean_database) == []
    async with clean_database() as session:
        assert await session.scalar(select(func.count()).select_from(RateWaiter)) == 0


async def test_a_fresh_login_that_fails_after_token_expired_sent_nothing_more(
    http: httpx.AsyncClient, dsp: respx.Router, clean_database: SessionFactory
) -> None:
    dsp.post(TOKEN_PATH).mock(side_effect=[issued("old"), httpx.Response(503)])
    create = dsp.post("/v1/advertisers").mock(return_value=httpx.Response(401, json=EXPIRED))

    with pytest.raises(ApplicationError) as raised:
        await gateway_for(clean_database, http).call(
            "acme", create_request("advertisers", BODY, "acme:v1")
        )

    assert raised.value.type == ErrorType.DSP_TRANSIENT and sent_nothing(raised.value)
    assert create.call_count == 1
    # Only the refused attempt: its audit row and its slot; the retry never had a token.
    [row] = await audit_rows(clean_database)
    assert row.response_status == 401 and "token_expired" in (row.response_body or "")
    await assert_answered_slots_in_window(clean_database, 1)


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
    clean_database: SessionFactory,
    tokens_answer: httpx.Response | Exception | None,
    create_answers: list[httpx.Response],
    error_type: ErrorType,
) -> None:
    logins: list[httpx.Response | Exception] = (
        [tokens_answer] if tokens_answer is not None else [issued("one"), issued("two")]
    )
    dsp.post(TOKEN_PATH).mock(side_effect=logins)
    create = dsp.post("/v1/advertisers").mock(side_effect=create_answers)
    activities = DspActivities(
        gateway_for(clean_database, http), clean_database, DspContract(version=2)
    )

    with pytest.raises(ApplicationError) as raised:
        await ActivityEnvironment().run(activities.submit_entity, POST)

    assert raised.value.type == error_type
    assert create.call_count == len(create_answers)
    # Each create sent has its audit row and its slot; what the activity's retry will read
    # of them agrees with the verdict.
    rows = await audit_rows(clean_database)
    assert [row.response_status for row in rows] == [a.status_code for a in create_answers]
    await assert_answered_slots_in_window(clean_database, len(create_answers))
    async with clean_database() as session:
        landed = await request_may_have_landed(session, POST.key, POST.idempotency_key)
    assert landed == (error_type == ErrorType.DSP_MAY_HAVE_LANDED)


async def test_a_token_that_ends_while_the_call_waits_for_its_slot_is_renewed_first(
    http: httpx.AsyncClient, dsp: respx.Router, clean_database: SessionFactory
) -> None:
    """With a backlog a call waits for its slot for seconds or minutes: the token it had when
    it began to wait may be past its refresh by the time it is sent."""
    now = [0.0]
    login = dsp.post(TOKEN_PATH).mock(
        side_effect=[
            httpx.Response(200, json={"access_token": "early", "expires_in": 20}),
            httpx.Response(200, json={"access_token": "later", "expires_in": 20}),
        ]
    )
    create = dsp.post("/v1/advertisers").mock(return_value=httpx.Response(201, json=CREATED))
    tokens = ClientCredentials(http, seat(), clock=lambda: now[0])
    limiter = SharedRateLimiter(clean_database, seat=SEAT, limit=1, window=0.5, hold=HOLD)
    gateway = DspGateway(DspClient(http), tokens, limiter)
    other = await limiter.acquire()  # the seat's only slot, for now

    waiting = asyncio.create_task(
        gateway.call("acme", create_request("advertisers", BODY, "acme:v1"))
    )
    async with asyncio.timeout(10):
        while True:
            if login.call_count:
                break
            await asyncio.sleep(0.01)
    now[0] = 19.0  # the token is in its last tenth while the call waits
    await other.complete()
    exchange = await waiting

    assert exchange.status_code == 201
    assert [bearer(call) for call in create.calls] == ["Bearer later"]
    assert login.call_count == 2
