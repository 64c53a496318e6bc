"""The mock DSP's rolling-window limiter: exact arithmetic on given times, then strictness
over the API with short windows."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

from devkit.mock_dsp.app import create_app
from devkit.mock_dsp.config import MockDspConfig
from devkit.mock_dsp.limiter import RollingWindowLimiter
from devkit.mock_dsp.request_log import max_in_window
from devkit.mock_dsp.state import MockDsp

TOKEN = "limiter-token-77"
STATUS_PATH = "/v1/advertisers/adv_nope/status"


def test_exactly_limit_requests_fit_then_the_refusal_says_when_to_come_back() -> None:
    limiter = RollingWindowLimiter()
    decisions = [limiter.hit("t", at, limit=3, window=10.0) for at in (0.0, 1.0, 2.0)]
    assert [d.allowed for d in decisions] == [True, True, True]
    assert [d.remaining for d in decisions] == [2, 1, 0]
    assert [d.reset_after for d in decisions] == [10.0, 9.0, 8.0]
    assert all(d.retry_after is None for d in decisions)

    refused = limiter.hit("t", 3.5, limit=3, window=10.0)
    assert not refused.allowed
    assert refused.remaining == 0
    assert refused.reset_after == pytest.approx(6.5)
    # The refusal counts too: 0.0 and 1.0 must leave before a slot frees, at 11.0.
    assert refused.retry_after == 8
    assert refused.headers() == {
        "X-RateLimit-Limit": "3",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": "6.500",
        "Retry-After": "8",
    }

    assert not limiter.hit("t", 10.9, limit=3, window=10.0).allowed
    # At 11.5 the window (1.5, 11.5] holds 2.0, 3.5 and 10.9: still full.
    assert not limiter.hit("t", 11.5, limit=3, window=10.0).allowed


def test_a_client_that_waits_retry_after_gets_in() -> None:
    limiter = RollingWindowLimiter()
    for at in (0.0, 0.1, 0.2):
        limiter.hit("t", at, limit=3, window=1.0)
    refused = limiter.hit("t", 0.3, limit=3, window=1.0)
    assert refused.retry_after == 1
    assert limiter.hit("t", 0.3 + refused.retry_after, limit=3, window=1.0).allowed


def test_a_request_leaves_the_window_exactly_window_seconds_later() -> None:
    limiter = RollingWindowLimiter()
    assert limiter.hit("t", 5.0, limit=1, window=2.0).allowed
    assert not limiter.hit("t", 6.999, limit=1, window=2.0).allowed
    assert limiter.in_window("t", 7.0, 2.0) == 1  # 5.0 left, 6.999 is still there
    assert limiter.hit("t", 8.999, limit=1, window=2.0).allowed


def test_each_key_has_its_own_window_and_phantoms_fill_it() -> None:
    limiter = RollingWindowLimiter()
    assert limiter.hit("a", 0.0, limit=1, window=5.0).allowed
    assert limiter.hit("b", 0.0, limit=1, window=5.0).allowed
    assert limiter.add_phantoms("c", 4, 1.0, 5.0) == 4
    refused = limiter.hit("c", 2.0, limit=4, window=5.0)
    assert not refused.allowed
    assert refused.retry_after == 4  # 1.0 + 5.0 - 2.0, rounded up
    limiter.clear()
    assert limiter.in_window("c", 2.0, 5.0) == 0


def test_max_in_window_looks_at_every_rolling_window() -> None:
    assert max_in_window([], 1.0) == 0
    assert max_in_window([0.0, 0.5, 1.0, 1.5], 1.0) == 2
    assert max_in_window([0.0, 0.9, 1.0, 1.8, 1.85, 3.0], 1.0) == 4
    assert max_in_window([3.0, 0.0, 0.1], 10.0) == 3


@asynccontextmanager
async def open_client(
    rate_limit: int, rate_window: float
) -> AsyncIterator[tuple[httpx.AsyncClient, MockDsp]]:
    app = create_app(MockDspConfig(token=TOKEN, rate_limit=rate_limit, rate_window=rate_window))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://dsp.test",
        headers={"Authorization": f"Bearer {TOKEN}"},
    ) as client:
        yield client, app.state.dsp


async def test_the_api_allows_exactly_the_limit_then_429_with_headers() -> None:
    async with open_client(rate_limit=5, rate_window=2.0) as (client, dsp):
        answers = [await client.get(STATUS_PATH) for _ in range(6)]

        assert [a.status_code for a in answers] == [404] * 5 + [429]
        assert [a.headers["X-RateLimit-Remaining"] for a in answers] == [
            "4",
            "3",
            "2",
            "1",
            "0",
            "0",
        ]
        assert {a.headers["X-RateLimit-Limit"] for a in answers} == {"5"}
        assert all(0 < float(a.headers["X-RateLimit-Reset"]) <= 2.0 for a in answers)
        refused = answers[-1]
        assert refused.json() == {
            "error": {
                "code": "rate_limited",
                "message": refused.json()["error"]["message"],
                "field": None,
            }
        }
        assert refused.headers["Retry-After"] == "2"
        assert "Retry-After" not in answers[0].headers
        assert dsp.rate_limited_count() == 1
        assert dsp.max_in_window(2.0) == 6  # refused requests count too


async def test_waiting_retry_after_is_enough() -> None:
    async with open_client(rate_limit=2, rate_window=1.0) as (client, _):
        await client.get(STATUS_PATH)
        await client.get(STATUS_PATH)
        refused = await client.get(STATUS_PATH)
        assert refused.status_code == 429
        assert refused.headers["Retry-After"] == "1"

        await asyncio.sleep(float(refused.headers["Retry-After"]))
        assert (await client.get(STATUS_PATH)).status_code == 404


async def test_the_window_rolls_and_never_lets_more_than_the_limit_through() -> None:
    """A client that ignores 429s and fires every 40 ms for 1.2 s: whatever was let
    through fits the limit in every rolling window."""
    limit, window = 4, 0.5
    async with open_client(rate_limit=limit, rate_window=window) as (client, dsp):
        began = time.monotonic()
        while time.monotonic() - began < 1.2:
            await client.get(STATUS_PATH)
            await asyncio.sleep(0.04)

        log = dsp.request_log
        passed = [r.at for r in log if r.status != 429]
        assert max_in_window(passed, window) <= limit
        assert max_in_window([r.at for r in log], window) > limit
        assert len(passed) >= limit
        assert sum(1 for r in log if r.status == 429) > 0


async def test_401s_count_and_every_token_has_its_own_window() -> None:
    async with open_client(rate_limit=2, rate_window=30.0) as (client, dsp):
        wrong = {"Authorization": "Bearer wrong"}
        statuses = [(await client.get(STATUS_PATH, headers=wrong)).status_code for _ in range(3)]
        assert statuses == [401, 401, 429]
        assert (await client.get(STATUS_PATH)).status_code == 404
        assert dsp.max_in_window(30.0) == 3
        assert dsp.max_in_window(30.0, token=TOKEN) == 1


async def test_throttle_fills_the_window_like_another_client() -> None:
    async with open_client(rate_limit=5, rate_window=30.0) as (client, dsp):
        await client.get(STATUS_PATH)
        response = await client.post("/_mock/throttle", json={"requests": 4})
        assert response.json() == {"in_window": 5}

        refused = await client.get(STATUS_PATH)
        assert refused.status_code == 429
        assert 29 <= int(refused.headers["Retry-After"]) <= 30
        # Phantoms are not requests the mock received.
        assert [r.status for r in dsp.request_log] == [404, 429]

        bad = await client.post("/_mock/throttle", json={"requests": -1})
        assert bad.status_code == 422
        assert bad.json()["error"]["field"] == "requests"


async def test_throttle_can_target_another_token() -> None:
    async with open_client(rate_limit=2, rate_window=30.0) as (client, _):
        await client.post("/_mock/throttle", json={"requests": 2, "token": "someone-else"})
        assert (await client.get(STATUS_PATH)).status_code == 404
        other = await client.get(STATUS_PATH, headers={"Authorization": "Bearer someone-else"})
        assert other.status_code == 429
