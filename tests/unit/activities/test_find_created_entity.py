"""`find_created_entity`: what a POST whose answer was lost created, learned by replaying it
with the same Idempotency-Key. A refusal means nothing was created (a replay of a request
the DSP took answers its `201`); a fault is retried like any other. Real PostgreSQL (the
ledger and the audit), a mocked DSP."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
import respx
from pydantic import SecretStr
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from dsp_integration.activities.dsp_calls import DspActivities
from dsp_integration.contracts import (
    DEFAULT_SEAT,
    CreatedEntity,
    EntityType,
    ErrorType,
    SubmitEntityInput,
)
from dsp_integration.database.engine import SessionFactory
from dsp_integration.dsp_client import DspClient, StaticToken, build_http_client
from dsp_integration.gateway.dsp_gateway import DspGateway
from dsp_integration.gateway.rate_limiter import SharedRateLimiter

BASE_URL = "http://dsp.test"
POST = SubmitEntityInput(
    key="spring",
    entity_type=EntityType.CAMPAIGNS,
    body={"name": "Spring", "advertiser_id": "adv_1"},
    idempotency_key="spring:v1",
)


def error(code: str) -> dict[str, object]:
    return {"error": {"code": code, "message": code.replace("_", " "), "field": None}}


@pytest_asyncio.fixture
async def activities(clean_database: SessionFactory) -> AsyncIterator[DspActivities]:
    async with build_http_client(BASE_URL, 5.0) as http:
        limiter = SharedRateLimiter(
            clean_database, seat=DEFAULT_SEAT, limit=100, window=60.0, hold=5.0
        )
        yield DspActivities(
            DspGateway(DspClient(http), StaticToken(SecretStr("token")), limiter),
            clean_database,
        )


@pytest.mark.parametrize(
    ("answer", "found"),
    [
        (
            httpx.Response(
                201,
                json={"id": "cmp_7", "type": "campaigns", "status": "pending", "created_at": "x"},
                headers={"Idempotent-Replayed": "true"},
            ),
            CreatedEntity(dsp_id="cmp_7", dsp_status="pending", holds_attempt=True),
        ),
        (httpx.Response(409, json=error("reference_not_ready")), CreatedEntity()),
        (httpx.Response(422, json=error("unknown_reference")), CreatedEntity()),
    ],
    ids=["replayed 201", "409 reference_not_ready", "422"],
)
async def test_the_replayed_post_says_what_was_created(
    activities: DspActivities, answer: httpx.Response, found: CreatedEntity
) -> None:
    with respx.mock(base_url=BASE_URL) as dsp:
        route = dsp.post("/v1/campaigns").mock(return_value=answer)
        result = await ActivityEnvironment().run(activities.find_created_entity, POST)

    assert result == found
    [call] = route.calls
    assert call.request.headers["Idempotency-Key"] == "spring:v1"


async def test_a_fault_is_retried_not_taken_for_nothing_created(
    activities: DspActivities,
) -> None:
    with respx.mock(base_url=BASE_URL) as dsp:
        dsp.post("/v1/campaigns").mock(return_value=httpx.Response(503, json=error("down")))
        with pytest.raises(ApplicationError) as raised:
            await ActivityEnvironment().run(activities.find_created_entity, POST)

    assert raised.value.type == ErrorType.DSP_TRANSIENT
    assert not raised.value.non_retryable
