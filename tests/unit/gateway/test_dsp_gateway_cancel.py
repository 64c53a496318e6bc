"""A DSP call cancelled by the user's last word: nothing leaves while it waits for its slot,
and a request already on its way is finished and audited, its success reported as such
(the workflow then archives or replaces what it created). Real PostgreSQL, mocked DSP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
import respx
from pydantic import SecretStr
from sqlalchemy import func, select
from temporalio.testing import ActivityEnvironment

from dsp_integration.contracts import DEFAULT_SEAT, EntityType
from dsp_integration.database.audit_log import RequestEntry
from dsp_integration.database.engine import SessionFactory
from dsp_integration.database.models import AuditRecord, RatePause, RateWaiter
from dsp_integration.dsp_client import DspClient, StaticToken, build_http_client, create_request
from dsp_integration.gateway.dsp_gateway import DspGateway
from dsp_integration.gateway.rate_limiter import RateSlot, SharedRateLimiter

BASE_URL = "http://dsp.test"
BODY = {"name": "Acme", "domain": "acme.example", "currency": "USD"}
CREATED = {"id": "adv_1", "type": "advertisers", "status": "active", "created_at": "2026-12-01"}


@pytest_asyncio.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with build_http_client(BASE_URL, 5.0) as client:
        yield client


def gateway(http: httpx.AsyncClient, sessions: SessionFactory, limit: int) -> DspGateway:
    limiter = SharedRateLimiter(sessions, seat=DEFAULT_SEAT, limit=limit, window=60.0, hold=5.0)
    return DspGateway(DspClient(http), StaticToken(SecretStr("token")), limiter)


async def audit_rows(sessions: SessionFactory) -> list[AuditRecord]:
    async with sessions() as session:
        return list(await session.scalars(select(AuditRecord).order_by(AuditRecord.id)))


async def cancel_when(env: ActivityEnvironment, ready: asyncio.Event) -> None:
    await ready.wait()
    env.cancel()


@respx.mock(base_url=BASE_URL, assert_all_called=False)
async def test_a_call_cancelled_while_it_waits_for_its_slot_sends_nothing(
    respx_mock: respx.MockRouter, http: httpx.AsyncClient, clean_database: SessionFactory
) -> None:
    route = respx_mock.post("/v1/advertisers").respond(201, json=CREATED)
    calls = gateway(http, clean_database, limit=1)
    await SharedRateLimiter(
        clean_database, seat=DEFAULT_SEAT, limit=1, window=60.0
    ).acquire()  # the only slot
    env = ActivityEnvironment()
    request = create_request(EntityType.ADVERTISERS, BODY, "adv:v1")

    async def cancel_soon() -> None:
        await asyncio.sleep(0.3)
        env.cancel()

    canceller = asyncio.create_task(cancel_soon())
    with pytest.raises(asyncio.CancelledError):
        await env.run(calls.call, "adv", request)
    await canceller
    assert not route.called
    assert await audit_rows(clean_database) == []
    async with clean_database() as session:  # it left the queue of callers waiting for slots
        assert await session.scalar(select(func.count()).select_from(RateWaiter)) == 0


async def cancelled_on_its_way(
    respx_mock: respx.MockRouter,
    http: httpx.AsyncClient,
    sessions: SessionFactory,
    answer: httpx.Response,
) -> asyncio.Task[Any]:
    """A POST that the DSP has received when the call is cancelled; the DSP then answers."""
    sent, answered = asyncio.Event(), asyncio.Event()

    async def slow_dsp(request: httpx.Request) -> httpx.Response:
        sent.set()
        await answered.wait()
        return answer

    respx_mock.post("/v1/advertisers").mock(side_effect=slow_dsp)
    env = ActivityEnvironment()
    call = asyncio.create_task(
        env.run(
            gateway(http, sessions, limit=10).call,
            "adv",
            create_request(EntityType.ADVERTISERS, BODY, "adv:v1"),
        )
    )
    await cancel_when(env, sent)
    await asyncio.sleep(0.1)
    answered.set()
    return call


@respx.mock(base_url=BASE_URL)
async def test_a_request_on_its_way_is_finished_and_its_success_returned(
    respx_mock: respx.MockRouter, http: httpx.AsyncClient, clean_database: SessionFactory
) -> None:
    call = await cancelled_on_its_way(
        respx_mock, http, clean_database, httpx.Response(201, json=CREATED)
    )

    exchange = await call
    assert exchange.status_code == 201
    [row] = await audit_rows(clean_database)
    assert row.response_status == 201 and row.finished_at is not None


@respx.mock(base_url=BASE_URL)
async def test_a_failed_answer_to_a_cancelled_call_reports_the_cancellation(
    respx_mock: respx.MockRouter, http: httpx.AsyncClient, clean_database: SessionFactory
) -> None:
    failure = {"error": {"code": "unavailable", "message": "down"}}
    call = await cancelled_on_its_way(
        respx_mock, http, clean_database, httpx.Response(503, json=failure)
    )

    with pytest.raises(asyncio.CancelledError):
        await call
    [row] = await audit_rows(clean_database)
    assert row.response_status == 503  # audited all the same: it may have reached the DSP


class CancelledOnGrant(SharedRateLimiter):
    """A limiter whose grant comes just as the user's last word cancels the call."""

    def __init__(self, sessions: SessionFactory, env: ActivityEnvironment) -> None:
        super().__init__(sessions, seat=DEFAULT_SEAT, limit=10, window=60.0, hold=5.0)
        self._env = env

    async def acquire(self, request: RequestEntry | None = None) -> RateSlot:
        slot = await super().acquire(request)
        self._env.cancel()
        return slot


@respx.mock(base_url=BASE_URL, assert_all_called=False)
async def test_a_call_cancelled_between_its_grant_and_its_send_leaves_no_audit_row(
    respx_mock: respx.MockRouter, http: httpx.AsyncClient, clean_database: SessionFactory
) -> None:
    """The audit row is written with the grant; nothing left, so it goes again."""
    route = respx_mock.post("/v1/advertisers").respond(201, json=CREATED)
    env = ActivityEnvironment()
    limiter = CancelledOnGrant(clean_database, env)
    calls = DspGateway(DspClient(http), StaticToken(SecretStr("token")), limiter)

    with pytest.raises(asyncio.CancelledError):
        await env.run(calls.call, "adv", create_request(EntityType.ADVERTISERS, BODY, "adv:v1"))
    assert not route.called
    assert await audit_rows(clean_database) == []


class CancelledWhileTold(SharedRateLimiter):
    """A limiter that is being told the DSP's word on the budget (a 429's pause, or the rate
    headers of any other answer) when the user's last word cancels the call."""

    def __init__(self, sessions: SessionFactory, env: ActivityEnvironment) -> None:
        super().__init__(sessions, seat=DEFAULT_SEAT, limit=10, window=60.0, hold=5.0)
        self._env = env
        self.told = False

    async def _cancelled_meanwhile(self) -> None:
        self._env.cancel()
        await asyncio.sleep(0)  # an unshielded telling is cut short here

    async def pause(self, seconds: float) -> None:
        await self._cancelled_meanwhile()
        await super().pause(seconds)
        self.told = True

    async def follow_dsp_count(self, remaining: int | None, reset: float | None) -> None:
        await self._cancelled_meanwhile()
        await super().follow_dsp_count(remaining, reset)
        self.told = True


@respx.mock(base_url=BASE_URL)
async def test_a_success_told_to_the_limiter_as_the_call_is_cancelled_is_returned(
    respx_mock: respx.MockRouter, http: httpx.AsyncClient, clean_database: SessionFactory
) -> None:
    respx_mock.post("/v1/advertisers").respond(201, json=CREATED)
    env = ActivityEnvironment()
    limiter = CancelledWhileTold(clean_database, env)
    calls = DspGateway(DspClient(http), StaticToken(SecretStr("token")), limiter)

    exchange = await env.run(
        calls.call, "adv", create_request(EntityType.ADVERTISERS, BODY, "adv:v1")
    )

    assert exchange.status_code == 201
    assert limiter.told


@respx.mock(base_url=BASE_URL)
async def test_a_429_pause_told_to_the_limiter_as_the_call_is_cancelled_holds(
    respx_mock: respx.MockRouter, http: httpx.AsyncClient, clean_database: SessionFactory
) -> None:
    limited = {"error": {"code": "rate_limited", "message": "slow down"}}
    respx_mock.post("/v1/advertisers").respond(429, json=limited, headers={"Retry-After": "30"})
    env = ActivityEnvironment()
    limiter = CancelledWhileTold(clean_database, env)
    calls = DspGateway(DspClient(http), StaticToken(SecretStr("token")), limiter)

    with pytest.raises(asyncio.CancelledError):  # a failed answer to a cancelled call
        await env.run(calls.call, "adv", create_request(EntityType.ADVERTISERS, BODY, "adv:v1"))

    assert limiter.told
    async with clean_database() as session:
        paused_for = await session.scalar(select(RatePause.paused_until - func.clock_timestamp()))
    assert paused_for is not None and paused_for.total_seconds() > 25
