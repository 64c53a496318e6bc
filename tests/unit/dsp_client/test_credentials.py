"""The token manager against a mocked token endpoint (respx): one login reused until shortly
before expiry, one login for any number of concurrent callers, `expired()` dropping only the
current token, refused credentials remembered with a growing backoff and one loud line, a
throttled login, and no secret or token in any log line or exception."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
import respx
from pydantic import SecretStr

from dsp_integration.config.seats import Seat
from dsp_integration.dsp_client import (
    ClientCredentials,
    CredentialsRefused,
    LoginFailed,
    LoginThrottled,
    StaticToken,
    token_source,
)
from dsp_integration.dsp_client.credentials import (
    REFUSED_BACKOFF_FIRST,
    REFUSED_BACKOFF_MAX,
    TOKEN_PATH,
)

BASE_URL = "http://dsp.test"
CLIENT_SECRET = "client-secret-SENTINEL-1"
TOKENS = [f"issued-token-SENTINEL-{n}" for n in range(100)]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def seat(client_id: str | None = "cid") -> Seat:
    return Seat(
        name="emea",
        base_url=BASE_URL,
        api_version=2,
        search_lag=0.0,
        rate_limit=40,
        rate_window=60.0,
        secret=SecretStr(CLIENT_SECRET),
        client_id=client_id,
        secret_env="DSP_SEAT_EMEA_SECRET",
    )


def issued(n: int, lifetime: float = 3600) -> httpx.Response:
    return httpx.Response(
        200, json={"access_token": TOKENS[n], "token_type": "Bearer", "expires_in": lifetime}
    )


def invalid_client() -> httpx.Response:
    return httpx.Response(
        401, json={"error": {"code": "invalid_client", "message": "bad client", "field": None}}
    )


@pytest_asyncio.fixture
async def http(dsp: respx.Router) -> AsyncIterator[httpx.AsyncClient]:
    """A client whose transport is `dsp` alone (no global patching of httpx)."""
    transport = httpx.MockTransport(dsp.async_handler)
    async with httpx.AsyncClient(base_url=BASE_URL, transport=transport) as client:
        yield client


@pytest.fixture
def dsp() -> respx.Router:
    return respx.Router(base_url=BASE_URL, assert_all_called=False)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def tokens(http: httpx.AsyncClient, clock: Clock) -> ClientCredentials:
    return ClientCredentials(http, seat(), clock=clock)


async def test_logs_in_once_and_reuses_the_token(
    http: httpx.AsyncClient, dsp: respx.Router, clock: Clock
) -> None:
    route = dsp.post(TOKEN_PATH).mock(side_effect=[issued(0), issued(1)])
    source = tokens(http, clock)

    first = await source.token()
    clock.now += 3000
    again = await source.token()

    assert first == again == SecretStr(TOKENS[0])
    assert route.call_count == 1
    sent = route.calls.last.request
    assert json.loads(sent.content) == {"client_id": "cid", "client_secret": CLIENT_SECRET}
    assert "authorization" not in sent.headers


@pytest.mark.parametrize(
    ("lifetime", "margin"),
    [(3600, 60.0), (20, 2.0)],  # min(60 s, 10% of the lifetime)
)
async def test_renews_shortly_before_expiry(
    http: httpx.AsyncClient, dsp: respx.Router, clock: Clock, lifetime: float, margin: float
) -> None:
    route = dsp.post(TOKEN_PATH).mock(side_effect=[issued(0, lifetime), issued(1, lifetime)])
    source = tokens(http, clock)
    await source.token()

    clock.now += lifetime - margin - 0.01
    assert await source.token() == SecretStr(TOKENS[0])
    clock.now += 0.02
    assert await source.token() == SecretStr(TOKENS[1])
    assert route.call_count == 2


async def test_fifty_concurrent_callers_cause_one_login(
    http: httpx.AsyncClient, dsp: respx.Router, clock: Clock
) -> None:
    answered = asyncio.Event()

    async def slow_login(request: httpx.Request) -> httpx.Response:
        await answered.wait()
        return issued(0)

    route = dsp.post(TOKEN_PATH).mock(side_effect=slow_login)
    source = tokens(http, clock)

    callers = [asyncio.create_task(source.token()) for _ in range(50)]
    await asyncio.sleep(0.05)
    answered.set()
    got = await asyncio.gather(*callers)

    assert {token.get_secret_value() for token in got} == {TOKENS[0]}
    assert route.call_count == 1 and source.logins == 1


async def test_a_cancelled_caller_does_not_cancel_the_login_for_the_others(
    http: httpx.AsyncClient, dsp: respx.Router, clock: Clock
) -> None:
    answered = asyncio.Event()

    async def slow_login(request: httpx.Request) -> httpx.Response:
        await answered.wait()
        return issued(0)

    dsp.post(TOKEN_PATH).mock(side_effect=slow_login)
    source = tokens(http, clock)
    leaving = asyncio.create_task(source.token())
    staying = asyncio.create_task(source.token())
    await asyncio.sleep(0.05)
    leaving.cancel()
    answered.set()

    assert await staying == SecretStr(TOKENS[0])
    assert leaving.cancelled()


async def test_expired_drops_only_the_current_token(
    http: httpx.AsyncClient, dsp: respx.Router, clock: Clock
) -> None:
    route = dsp.post(TOKEN_PATH).mock(side_effect=[issued(0), issued(1), issued(2)])
    source = tokens(http, clock)
    old = await source.token()

    # Fifty calls refused with the same token: one new login between them.
    for _ in range(50):
        source.expired(old)
    new = await source.token()
    for _ in range(50):
        source.expired(old)  # late refusals of the old token change nothing
    assert await source.token() == new == SecretStr(TOKENS[1])
    assert route.call_count == 2

    source.expired(new)
    assert await source.token() == SecretStr(TOKENS[2])
    assert route.call_count == 3


async def test_refused_credentials_back_off_with_one_loud_line(
    http: httpx.AsyncClient,
    dsp: respx.Router,
    clock: Clock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    route = dsp.post(TOKEN_PATH).mock(return_value=invalid_client())
    source = tokens(http, clock)

    with caplog.at_level(logging.INFO, logger="dsp_integration.dsp_client.credentials"):
        with pytest.raises(CredentialsRefused) as first:
            await source.token()
        assert first.value.retry_after == REFUSED_BACKOFF_FIRST
        for _ in range(20):  # meanwhile: refused at once, no network call
            clock.now += 1
            with pytest.raises(CredentialsRefused) as waiting:
                await source.token()
        assert route.call_count == 1
        assert waiting.value.retry_after == pytest.approx(REFUSED_BACKOFF_FIRST - 20)

        backoffs = []
        for _ in range(8):
            clock.now += REFUSED_BACKOFF_MAX
            with pytest.raises(CredentialsRefused) as again:
                await source.token()
            backoffs.append(again.value.retry_after)
        assert backoffs == [60, 120, 240, 480, 900, 900, 900, 900]
        assert route.call_count == 9

        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1
        line = errors[0].getMessage()
        assert "'emea'" in line and "DSP_SEAT_EMEA_SECRET" in line and "invalid_client" in line

        route.mock(return_value=issued(0))
        clock.now += REFUSED_BACKOFF_MAX
        assert await source.token() == SecretStr(TOKENS[0])
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert infos == ["seat 'emea': the DSP accepts its client credentials again; its calls go on"]

    # Refused again later: a new transition, a new loud line, the backoff from the start.
    route.mock(return_value=invalid_client())
    source.expired(SecretStr(TOKENS[0]))
    caplog.clear()
    with caplog.at_level(logging.ERROR), pytest.raises(CredentialsRefused) as later:
        await source.token()
    assert later.value.retry_after == REFUSED_BACKOFF_FIRST
    assert len(caplog.records) == 1


async def test_a_throttled_login_waits_for_retry_after_without_asking_again(
    http: httpx.AsyncClient, dsp: respx.Router, clock: Clock
) -> None:
    throttled = httpx.Response(
        429,
        headers={"Retry-After": "120"},
        json={"error": {"code": "rate_limited", "message": "too many", "field": None}},
    )
    route = dsp.post(TOKEN_PATH).mock(side_effect=[throttled, issued(0)])
    source = tokens(http, clock)

    with pytest.raises(LoginThrottled) as raised:
        await source.token()
    assert raised.value.retry_after == 120
    clock.now += 100
    with pytest.raises(LoginThrottled) as still:
        await source.token()
    assert still.value.retry_after == pytest.approx(20)
    assert route.call_count == 1

    clock.now += 21
    assert await source.token() == SecretStr(TOKENS[0])


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(503, headers={"Retry-After": "3"}, text="busy"),
        httpx.Response(200, text="<html>not json</html>"),
        httpx.Response(200, json={"access_token": TOKENS[0]}),
        httpx.Response(200, json={"access_token": "", "expires_in": 60}),
        httpx.Response(200, json={"access_token": TOKENS[0], "expires_in": 0}),
        httpx.ConnectError("connection refused"),
    ],
)
async def test_a_login_that_gets_no_usable_answer_fails_and_is_tried_again(
    http: httpx.AsyncClient,
    dsp: respx.Router,
    clock: Clock,
    answer: httpx.Response | Exception,
) -> None:
    route = dsp.post(TOKEN_PATH).mock(side_effect=[answer, issued(1)])
    source = tokens(http, clock)
    with pytest.raises(LoginFailed) as raised:
        await source.token()
    if isinstance(answer, httpx.Response) and answer.status_code == 503:
        assert raised.value.retry_after == 3
    assert await source.token() == SecretStr(TOKENS[1])  # no backoff of its own
    assert route.call_count == 2


async def test_no_secret_or_token_in_logs_or_exceptions(
    http: httpx.AsyncClient,
    dsp: respx.Router,
    clock: Clock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    echoing = httpx.Response(
        500, json={"error": {"code": CLIENT_SECRET, "message": TOKENS[5], "field": None}}
    )
    dsp.post(TOKEN_PATH).mock(
        side_effect=[
            echoing,
            httpx.Response(429, json={"error": {"code": "rate_limited", "message": TOKENS[6]}}),
        ]
    )
    source = tokens(http, clock)
    raised: list[BaseException] = []
    with caplog.at_level(logging.DEBUG):
        for _ in range(2):
            try:
                await source.token()
            except (LoginFailed, LoginThrottled) as error:
                raised.append(error)
        clock.now += 3600
        dsp.post(TOKEN_PATH).mock(side_effect=[issued(0), invalid_client()])
        token = await source.token()
        source.expired(token)
        try:
            await source.token()
        except CredentialsRefused as error:
            raised.append(error)

    assert [type(error) for error in raised] == [LoginFailed, LoginThrottled, CredentialsRefused]
    seen = "\n".join([*(str(e) for e in raised), *(repr(e) for e in raised), caplog.text])
    seen += repr(source) + repr(seat())
    for secret in (CLIENT_SECRET, *TOKENS):
        assert secret not in seen


async def test_token_source_picks_by_the_seats_credentials(http: httpx.AsyncClient) -> None:
    assert isinstance(token_source(seat(), http), ClientCredentials)
    static = token_source(seat(client_id=None), http)
    assert isinstance(static, StaticToken)
    assert await static.token() == SecretStr(CLIENT_SECRET)
    static.expired(SecretStr(CLIENT_SECRET))
    assert await static.token() == SecretStr(CLIENT_SECRET)
    assert CLIENT_SECRET not in repr(static)
