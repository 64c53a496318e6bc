"""The DSP activities at a version-2 DSP (`dsp-api-v2.md` §3): creates carry the key as
`external_id`; a create that may have landed is never sent again blindly; what it created is
found through the search once its lag has passed; of several live entities the oldest is
kept and the others archived, the audit row saying why. Real PostgreSQL (ledger and audit),
a mocked DSP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta

import httpx
import pytest
import pytest_asyncio
import respx
from pydantic import SecretStr
from sqlalchemy import select
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from dsp_integration.activities.dsp_calls import DspActivities, DspContract
from dsp_integration.contracts import (
    DEFAULT_SEAT,
    CreatedEntity,
    EntityType,
    ErrorType,
    SubmitEntityInput,
)
from dsp_integration.database.engine import SessionFactory
from dsp_integration.database.models import AuditRecord
from dsp_integration.dsp_client import DspClient, StaticToken, build_http_client
from dsp_integration.gateway.dsp_gateway import DspGateway
from dsp_integration.gateway.rate_limiter import SharedRateLimiter

BASE_URL = "http://dsp.test"
BODY = {"name": "Spring", "advertiser_id": "adv_1"}
POST = SubmitEntityInput(
    key="spring", entity_type=EntityType.CAMPAIGNS, body=BODY, idempotency_key="spring:v1"
)
SENT = {**BODY, "external_id": "spring"}
SEARCH = "/v1/campaigns?external_id=spring"


def listed(dsp_id: str, created_at: str, status: str = "pending", **fields: object) -> dict:
    return {"id": dsp_id, "type": "campaigns", "status": status, "created_at": created_at,
            **SENT, **fields}  # fmt: skip


def activities_for(sessions: SessionFactory, http: httpx.AsyncClient, lag: float) -> DspActivities:
    limiter = SharedRateLimiter(sessions, seat=DEFAULT_SEAT, limit=100, window=60.0, hold=5.0)
    gateway = DspGateway(DspClient(http), StaticToken(SecretStr("token")), limiter)
    return DspActivities(gateway, sessions, DspContract(version=2, search_lag=lag))


@pytest_asyncio.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with build_http_client(BASE_URL, 5.0) as client:
        yield client


async def audit(sessions: SessionFactory) -> list[AuditRecord]:
    async with sessions() as session:
        return list(await session.scalars(select(AuditRecord).order_by(AuditRecord.id)))


async def test_a_create_carries_the_key_as_external_id(
    clean_database: SessionFactory, http: httpx.AsyncClient
) -> None:
    activities = activities_for(clean_database, http, lag=10)
    created = {"id": "cmp_1", "type": "campaigns", "status": "pending", "created_at": "x"}
    with respx.mock(base_url=BASE_URL) as dsp:
        route = dsp.post("/v1/campaigns").mock(return_value=httpx.Response(201, json=created))
        result = await ActivityEnvironment().run(activities.submit_entity, POST)

    assert result.dsp_id == "cmp_1"
    assert b'"external_id":"spring"' in route.calls[0].request.content
    [row] = await audit(clean_database)
    assert row.request_body == SENT


async def test_a_fault_after_the_create_may_have_landed_is_not_retried_blindly(
    clean_database: SessionFactory, http: httpx.AsyncClient
) -> None:
    activities = activities_for(clean_database, http, lag=10)
    env = ActivityEnvironment()
    with respx.mock(base_url=BASE_URL) as dsp:
        route = dsp.post("/v1/campaigns").mock(return_value=httpx.Response(503))
        with pytest.raises(ApplicationError) as first:
            await env.run(activities.submit_entity, POST)
        env.info = replace(env.info, attempt=2)  # a retry, as after a worker died
        with pytest.raises(ApplicationError) as retried:
            await env.run(activities.submit_entity, POST)

    for raised in (first.value, retried.value):
        assert (raised.type, raised.non_retryable) == (ErrorType.DSP_MAY_HAVE_LANDED, True)
    assert route.call_count == 1  # the retry sent nothing


async def test_finding_out_waits_out_the_search_lag_since_the_attempt(
    clean_database: SessionFactory, http: httpx.AsyncClient
) -> None:
    activities = activities_for(clean_database, http, lag=30)
    with respx.mock(base_url=BASE_URL, assert_all_called=False) as dsp:
        dsp.post("/v1/campaigns").mock(return_value=httpx.Response(503))
        search = dsp.get(SEARCH).mock(return_value=httpx.Response(200, json={"items": []}))
        with pytest.raises(ApplicationError):
            await ActivityEnvironment().run(activities.submit_entity, POST)
        with pytest.raises(ApplicationError) as waiting:
            await ActivityEnvironment().run(activities.find_created_entity, POST)

    assert waiting.value.type == ErrorType.DSP_SEARCH_LAG
    assert not waiting.value.non_retryable
    delay = waiting.value.next_retry_delay
    assert delay is not None and timedelta(seconds=25) < delay <= timedelta(seconds=30)
    assert search.call_count == 0  # not a request before the search can tell


async def test_the_oldest_live_entity_is_kept_and_duplicates_archived_saying_why(
    clean_database: SessionFactory, http: httpx.AsyncClient
) -> None:
    activities = activities_for(clean_database, http, lag=0)
    items = [
        listed("cmp_3", "2026-12-07T10:00:03Z"),
        listed("cmp_2", "2026-12-07T10:00:02Z", status="archived"),
        listed("cmp_1", "2026-12-07T10:00:01Z"),
    ]
    archived = {"id": "cmp_3", "type": "campaigns", "status": "archived", "reason": None}
    with respx.mock(base_url=BASE_URL) as dsp:
        dsp.get(SEARCH).mock(return_value=httpx.Response(200, json={"items": items}))
        delete = dsp.delete("/v1/campaigns/cmp_3").mock(
            return_value=httpx.Response(200, json=archived)
        )
        found = await ActivityEnvironment().run(activities.find_created_entity, POST)

    assert found == CreatedEntity(
        dsp_id="cmp_1", dsp_status="pending", holds_attempt=True, duplicates_archived=["cmp_3"]
    )
    assert delete.call_count == 1
    notes = [(row.method, row.note) for row in await audit(clean_database)]
    assert notes[0] == ("GET", None)
    assert notes[1][0] == "DELETE" and "duplicate of cmp_1" in (notes[1][1] or "")


@pytest.mark.parametrize(
    ("items", "found"),
    [
        ([], CreatedEntity()),
        ([listed("cmp_1", "t", status="archived")], CreatedEntity()),
        (
            [listed("cmp_1", "t", name="Summer")],
            CreatedEntity(dsp_id="cmp_1", dsp_status="pending", holds_attempt=False),
        ),
    ],
    ids=["nothing", "only archived", "fields differ: a PUT follows"],
)
async def test_what_the_search_shows_is_what_was_created(
    clean_database: SessionFactory,
    http: httpx.AsyncClient,
    items: list[dict],
    found: CreatedEntity,
) -> None:
    activities = activities_for(clean_database, http, lag=0)
    with respx.mock(base_url=BASE_URL) as dsp:
        dsp.get(SEARCH).mock(return_value=httpx.Response(200, json={"items": items}))
        result = await ActivityEnvironment().run(activities.find_created_entity, POST)

    assert result == found
