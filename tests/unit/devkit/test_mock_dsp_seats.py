"""The mock DSP's seats and expiring credentials (dsp-api-v2.md §1-2, issue 23): each seat's
own window, `POST /v1/oauth/token` and its hourly limit, tokens that expire, are revoked or
unknown, entities and the search kept per seat, and the admin API and command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

import devkit.mock_dsp.api
import devkit.mock_dsp.oauth
from devkit.mock_dsp.__main__ import config_from, log_line, parse_args, token_log_line
from devkit.mock_dsp.config import DEFAULT_SEAT, MockDspConfig, MockSeat, dev_seat
from devkit.mock_dsp.examples import advertiser_body, campaign_body
from dsp_integration.config.settings import DEV_API_TOKEN
from tests.unit.devkit.test_mock_dsp import TOKEN, Dsp, error_of, fast_config, open_dsp

EAST_TOKEN = "east-static-token-5f1a"
WEST_CLIENT = "west-client"
WEST_SECRET = "west-secret-77c2"
NORTH_CLIENT = "north-client"
NORTH_SECRET = "north-secret-0b9e"
STATUS_PATH = "/v1/advertisers/adv_missing/status"


def seats(**west: Any) -> dict[str, MockSeat]:
    return {
        "east": MockSeat(token=EAST_TOKEN, rate_limit=2, rate_window=30.0),
        "west": MockSeat(
            client_id=WEST_CLIENT,
            client_secret=WEST_SECRET,
            **{"rate_limit": 3, "rate_window": 30.0, **west},
        ),
        "north": MockSeat(client_id=NORTH_CLIENT, client_secret=NORTH_SECRET, rate_limit=100),
    }


def seats_config(**overrides: Any) -> MockDspConfig:
    return fast_config(**{"seats": seats(), **overrides})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class FakeClock:
    """Stands in for `time` in the API and token modules: what both take as now."""

    def __init__(self) -> None:
        self.now = 5000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(devkit.mock_dsp.api, "time", fake)
    monkeypatch.setattr(devkit.mock_dsp.oauth, "time", fake)
    return fake


async def ask_token(
    dsp: Dsp, client_id: str = WEST_CLIENT, secret: str = WEST_SECRET
) -> httpx.Response:
    return await dsp.client.post(
        "/v1/oauth/token", json={"client_id": client_id, "client_secret": secret}
    )


async def token_of(dsp: Dsp, client_id: str = WEST_CLIENT, secret: str = WEST_SECRET) -> str:
    response = await ask_token(dsp, client_id, secret)
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


async def get_status(dsp: Dsp, token: str) -> httpx.Response:
    return await dsp.client.get(STATUS_PATH, headers=bearer(token))


# Configuration


def test_without_seats_the_flat_fields_make_the_one_default_seat() -> None:
    config = MockDspConfig(token="flat", rate_limit=7, rate_window=12.5)
    (name, seat), *others = config.seat_table().items()
    assert others == []
    assert name == DEFAULT_SEAT == "default"
    assert (seat.token, seat.client_id, seat.rate_limit, seat.rate_window) == (
        "flat",
        None,
        7,
        12.5,
    )
    assert (config.token_lifetime, config.token_requests_per_hour) == (3600.0, 60)
    assert (MockSeat(token="t").rate_limit, MockSeat(token="t").rate_window) == (40, 60.0)


def test_configured_seats_replace_the_flat_one() -> None:
    config = seats_config()
    assert list(config.seat_table()) == ["east", "west", "north"]
    assert config.seat_table()["west"].rate_limit == 3


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({}, "needs a token or a client_id"),
        ({"client_id": "c"}, "go together"),
        ({"client_secret": "s"}, "go together"),
        ({"token": "t", "rate_limit": 0}, "greater than or equal to 1"),
        ({"token": "t", "rate_window": 0}, "greater than 0"),
        ({"token": ""}, "at least 1 character"),
        ({"token": "t", "secret": "s"}, "Extra inputs"),
    ],
)
def test_a_bad_seat_is_refused_naming_the_problem(fields: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        MockSeat.model_validate(fields)


def test_two_seats_cannot_share_a_token_or_a_client_id() -> None:
    with pytest.raises(ValueError, match="share a token"):
        MockDspConfig(seats={"a": MockSeat(token="same"), "b": MockSeat(token="same")})
    with pytest.raises(ValueError, match="share a client_id"):
        MockDspConfig(
            seats={
                "a": MockSeat(client_id="same", client_secret="x"),
                "b": MockSeat(client_id="same", client_secret="y"),
            }
        )
    with pytest.raises(ValueError, match="greater than 0"):
        MockDspConfig(token_lifetime=0)
    with pytest.raises(ValueError, match="greater than or equal to 1"):
        MockDspConfig(token_requests_per_hour=0)


def test_dev_seats_use_the_development_secrets_the_service_falls_back_to() -> None:
    assert dev_seat(DEFAULT_SEAT).token == DEV_API_TOKEN
    assert dev_seat("emea", rate_limit=5).model_dump() == {
        "token": "dev-token-emea",
        "client_id": None,
        "client_secret": None,
        "rate_limit": 5,
        "rate_window": 60.0,
    }
    oauth = dev_seat("apac", client_id="apac-client")
    assert (oauth.token, oauth.client_id, oauth.client_secret) == (
        None,
        "apac-client",
        "dev-secret-apac",
    )


# Windows


async def test_each_seat_has_its_own_window_and_limit() -> None:
    async with open_dsp(seats_config()) as dsp:
        west = await token_of(dsp)
        east_answers = [await get_status(dsp, EAST_TOKEN) for _ in range(3)]
        west_answers = [await get_status(dsp, west) for _ in range(4)]

        assert [a.status_code for a in east_answers] == [404, 404, 429]
        assert [a.status_code for a in west_answers] == [404, 404, 404, 429]
        assert {a.headers["X-RateLimit-Limit"] for a in east_answers} == {"2"}
        assert {a.headers["X-RateLimit-Limit"] for a in west_answers} == {"3"}
        assert 29 <= int(east_answers[-1].headers["Retry-After"]) <= 30
        assert "more than 3 requests in 30 seconds" in error_of(west_answers[-1])["message"]
        assert [r.seat for r in dsp.state.request_log] == ["east"] * 3 + ["west"] * 4
        assert dsp.state.max_in_window(seat="east") == 3
        assert dsp.state.max_in_window(seat="west") == 4
        assert dsp.state.max_in_window(30.0) == 4
        stats = dsp.state.stats()["seats"]
        assert stats["east"] == {
            "total": 3,
            "rate_limited": 1,
            "unauthorized": 0,
            "token_expired": 0,
            "max_in_window": 3,
            "rate_limit": 2,
            "rate_window": 30.0,
            "in_window": 3,
        }
        assert (stats["west"]["in_window"], stats["north"]["total"]) == (4, 0)


async def test_every_token_of_a_seat_counts_toward_the_seat_window() -> None:
    async with open_dsp(seats_config()) as dsp:
        first, second = await token_of(dsp), await token_of(dsp)
        assert first != second
        answers = [await get_status(dsp, token) for token in (first, second, first, second)]

        assert [a.status_code for a in answers] == [404, 404, 404, 429]
        assert [a.headers["X-RateLimit-Remaining"] for a in answers] == ["2", "1", "0", "0"]


async def test_token_requests_count_toward_no_window_and_are_logged_apart() -> None:
    async with open_dsp(seats_config()) as dsp:
        for _ in range(5):
            await token_of(dsp)
        await ask_token(dsp, WEST_CLIENT, "wrong")
        await token_of(dsp, NORTH_CLIENT, NORTH_SECRET)
        token = await token_of(dsp)

        first_call = await get_status(dsp, token)
        assert first_call.headers["X-RateLimit-Remaining"] == "2"
        assert [r.path for r in dsp.state.request_log] == [STATUS_PATH]
        assert dsp.state.token_request_counts() == {WEST_CLIENT: 7, NORTH_CLIENT: 1}
        assert dsp.state.stats()["token_requests"] == {WEST_CLIENT: 7, NORTH_CLIENT: 1}
        log = dsp.state.token_log
        assert [(r.client_id, r.seat, r.status) for r in log[4:7]] == [
            (WEST_CLIENT, "west", 200),
            (WEST_CLIENT, None, 401),
            (NORTH_CLIENT, "north", 200),
        ]


async def test_throttle_fills_a_seat_window_shared_by_all_its_tokens() -> None:
    async with open_dsp(seats_config()) as dsp:
        token = await token_of(dsp)
        assert dsp.state.throttle(3, seat="west") == 3
        assert (await get_status(dsp, token)).status_code == 429
        assert (await get_status(dsp, EAST_TOKEN)).status_code == 404

        via_admin = await dsp.client.post("/_mock/throttle", json={"requests": 1, "seat": "east"})
        assert via_admin.json() == {"in_window": 2}
        by_token = await dsp.client.post(
            "/_mock/throttle", json={"requests": 1, "token": EAST_TOKEN}
        )
        assert by_token.json() == {"in_window": 3}
        unknown = await dsp.client.post("/_mock/throttle", json={"requests": 1, "seat": "nope"})
        assert error_of(unknown)["field"] == "seat"
        assert "east, west, north" in error_of(unknown)["message"]


# Tokens


async def test_a_token_request_with_the_right_credentials_gets_a_bearer_token() -> None:
    async with open_dsp(seats_config()) as dsp:
        response = await ask_token(dsp)

        assert response.status_code == 200
        body = response.json()
        assert set(body) == {"access_token", "token_type", "expires_in"}
        assert body["token_type"] == "Bearer"
        assert body["expires_in"] == 3600 and isinstance(body["expires_in"], int)
        assert len(body["access_token"]) >= 32
        assert WEST_SECRET not in body["access_token"]
        created = await dsp.client.post(
            "/v1/advertisers", json=advertiser_body(), headers=bearer(body["access_token"])
        )
        assert created.status_code == 201
        (record,) = dsp.state.request_log
        assert (record.seat, record.token_valid) == ("west", True)


@pytest.mark.parametrize(
    ("client_id", "secret"),
    [(WEST_CLIENT, "wrong-secret"), ("nobody", WEST_SECRET), (WEST_CLIENT, NORTH_SECRET)],
    ids=["wrong-secret", "unknown-client", "another-seat-secret"],
)
async def test_wrong_credentials_are_401_invalid_client(client_id: str, secret: str) -> None:
    async with open_dsp(seats_config()) as dsp:
        response = await ask_token(dsp, client_id, secret)

        assert response.status_code == 401
        assert error_of(response)["code"] == "invalid_client"
        assert [(r.client_id, r.seat, r.status) for r in dsp.state.token_log] == [
            (client_id, None, 401)
        ]


async def test_a_static_seat_and_the_flat_default_seat_have_no_client_credentials() -> None:
    async with open_dsp() as dsp:
        response = await ask_token(dsp, TOKEN, TOKEN)
        assert error_of(response)["code"] == "invalid_client"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"not json", None),
        (b"[]", None),
        (json.dumps({"client_secret": WEST_SECRET}).encode(), "client_id"),
        (json.dumps({"client_id": WEST_CLIENT}).encode(), "client_secret"),
        (json.dumps({"client_id": 7, "client_secret": WEST_SECRET}).encode(), "client_id"),
    ],
)
async def test_a_malformed_token_request_is_422(body: bytes, field: str | None) -> None:
    async with open_dsp(seats_config()) as dsp:
        response = await dsp.client.post("/v1/oauth/token", content=body)
        assert response.status_code == 422
        assert (error_of(response)["code"], error_of(response)["field"]) == (
            "validation_error",
            field,
        )
        other_method = await dsp.client.get("/v1/oauth/token")
        assert other_method.status_code == 405
        assert error_of(other_method)["code"] == "method_not_allowed"


async def test_a_client_may_ask_for_so_many_tokens_per_rolling_hour(clock: FakeClock) -> None:
    async with open_dsp(seats_config(token_requests_per_hour=3)) as dsp:
        first = await ask_token(dsp)
        clock.now += 600
        await ask_token(dsp, WEST_CLIENT, "wrong")  # refused requests count too
        clock.now += 600
        await ask_token(dsp)
        clock.now += 600
        refused = await ask_token(dsp)
        other_client = await ask_token(dsp, NORTH_CLIENT, NORTH_SECRET)

        assert first.status_code == 200
        assert refused.status_code == 429
        assert error_of(refused)["code"] == "rate_limited"
        # The refused request holds a place too: the next one fits once the first two have
        # left the hour, the second 3600 s after it was made, 2400 s from now.
        assert refused.headers["Retry-After"] == "2400"
        assert "X-RateLimit-Limit" not in refused.headers
        assert other_client.status_code == 200

        clock.now += 2399
        assert (await ask_token(dsp)).status_code == 429
        clock.now += 601  # the requests made 600 s and 1200 s in have left the hour
        assert (await ask_token(dsp)).status_code == 200
        assert dsp.state.token_request_counts() == {WEST_CLIENT: 6, NORTH_CLIENT: 1}
        assert dsp.state.request_log == []


async def test_a_token_expires_after_its_lifetime_and_its_401_counts(clock: FakeClock) -> None:
    async with open_dsp(seats_config(token_lifetime=30.0)) as dsp:
        response = await ask_token(dsp)
        assert response.json()["expires_in"] == 30
        token = response.json()["access_token"]
        clock.now += 29.999
        assert (await get_status(dsp, token)).status_code == 404
        clock.now += 0.001
        expired = await get_status(dsp, token)
        fresh = await token_of(dsp)
        after = await get_status(dsp, fresh)

        assert expired.status_code == 401
        assert error_of(expired)["code"] == "token_expired"
        assert expired.headers["X-RateLimit-Remaining"] == "1"
        assert after.status_code == 404
        assert after.headers["X-RateLimit-Remaining"] == "0"
        records = dsp.state.request_log
        assert [(r.seat, r.token_valid, r.token_expired) for r in records] == [
            ("west", True, False),
            ("west", False, True),
            ("west", True, False),
        ]
        assert dsp.state.stats()["seats"]["west"]["token_expired"] == 1


async def test_a_fractional_lifetime_is_given_as_it_is(clock: FakeClock) -> None:
    async with open_dsp(seats_config(token_lifetime=2.5)) as dsp:
        assert (await ask_token(dsp)).json()["expires_in"] == 2.5


async def test_an_expired_token_over_the_limit_is_429_first(clock: FakeClock) -> None:
    async with open_dsp(seats_config(token_lifetime=1.0)) as dsp:
        token = await token_of(dsp)
        clock.now += 1.0
        answers = [await get_status(dsp, token) for _ in range(4)]
        assert [a.status_code for a in answers] == [401, 401, 401, 429]


async def test_expire_tokens_makes_a_seat_tokens_expired_now(clock: FakeClock) -> None:
    async with open_dsp(seats_config()) as dsp:
        west_tokens = [await token_of(dsp), await token_of(dsp)]
        north = await token_of(dsp, NORTH_CLIENT, NORTH_SECRET)

        assert dsp.state.expire_tokens("west") == 2
        assert dsp.state.expire_tokens("east") == 0  # a static token never expires
        answers = [await get_status(dsp, token) for token in [*west_tokens, north, EAST_TOKEN]]
        fresh = await get_status(dsp, await token_of(dsp))

        assert [a.status_code for a in answers] == [401, 401, 404, 404]
        assert [error_of(a)["code"] for a in answers[:2]] == ["token_expired"] * 2
        assert fresh.status_code == 404
        with pytest.raises(ValueError, match="no seat 'south'"):
            dsp.state.expire_tokens("south")


async def test_revoked_and_unknown_tokens_are_401_unauthorized() -> None:
    async with open_dsp(seats_config()) as dsp:
        revoked = await token_of(dsp)
        assert dsp.state.revoke_tokens("west") == 1
        assert dsp.state.revoke_tokens("west") == 0
        answers = [await get_status(dsp, revoked) for _ in range(2)]
        unknown = [await get_status(dsp, "never-issued") for _ in range(2)]
        missing = await dsp.client.get(STATUS_PATH, headers={"Authorization": ""})
        after = await get_status(dsp, await token_of(dsp))

        assert [error_of(a)["code"] for a in [*answers, *unknown, missing]] == ["unauthorized"] * 5
        # A revoked token is still the seat's: its requests use the seat's window.
        assert [a.headers["X-RateLimit-Remaining"] for a in answers] == ["2", "1"]
        assert after.headers["X-RateLimit-Remaining"] == "0"
        # An unknown token has its own window, of the flat limit.
        assert [a.headers["X-RateLimit-Limit"] for a in unknown] == ["1000", "1000"]
        seats_seen = [r.seat for r in dsp.state.request_log]
        assert seats_seen == ["west", "west", None, None, None, "west"]
        assert dsp.state.stats()["seats"]["west"]["unauthorized"] == 2


async def test_a_seat_removed_from_the_config_loses_its_tokens() -> None:
    async with open_dsp(seats_config()) as dsp:
        token = await token_of(dsp)
        dsp.state.config = fast_config(seats={"east": seats()["east"]})
        assert error_of(await get_status(dsp, token))["code"] == "unauthorized"


async def test_reset_forgets_issued_tokens_and_token_requests() -> None:
    async with open_dsp(seats_config()) as dsp:
        token = await token_of(dsp)
        dsp.state.reset()
        assert dsp.state.token_log == []
        assert dsp.state.token_request_counts() == {}
        assert error_of(await get_status(dsp, token))["code"] == "unauthorized"


# Entities per seat


async def test_a_seat_does_not_see_or_refer_to_another_seat_entities() -> None:
    async with open_dsp(seats_config()) as dsp:
        west = bearer(await token_of(dsp))
        adv = await dsp.client.post("/v1/advertisers", json=advertiser_body(), headers=west)
        adv_id = adv.json()["id"]
        other = bearer(await token_of(dsp, NORTH_CLIENT, NORTH_SECRET))
        seen = await dsp.client.get(f"/v1/advertisers/{adv_id}", headers=other)
        status = await dsp.client.get(f"/v1/advertisers/{adv_id}/status", headers=other)
        replaced = await dsp.client.put(
            f"/v1/advertisers/{adv_id}", json=advertiser_body("Renamed"), headers=other
        )
        archived = await dsp.client.delete(f"/v1/advertisers/{adv_id}", headers=other)
        referred = await dsp.client.post("/v1/campaigns", json=campaign_body(adv_id), headers=other)
        own = await dsp.client.post("/v1/campaigns", json=campaign_body(adv_id), headers=west)

        assert [r.status_code for r in (seen, status, replaced, archived)] == [404] * 4
        assert referred.status_code == 422
        error = error_of(referred)
        assert (error["code"], error["field"]) == ("unknown_reference", "advertiser_id")
        assert own.status_code == 201
        assert dsp.state.entities[adv_id].status(0.0) != "archived"


async def test_idempotency_keys_belong_to_a_seat() -> None:
    async with open_dsp(seats_config()) as dsp:
        west = bearer(await token_of(dsp))
        headers = {"Idempotency-Key": "shared:v1"}
        first = await dsp.client.post(
            "/v1/advertisers", json=advertiser_body(), headers={**west, **headers}
        )
        other_token = bearer(await token_of(dsp))
        replayed = await dsp.client.post(
            "/v1/advertisers", json=advertiser_body(), headers={**other_token, **headers}
        )
        other_seat = await dsp.client.post(
            "/v1/advertisers", json=advertiser_body(), headers={**bearer(EAST_TOKEN), **headers}
        )

        assert replayed.headers["Idempotent-Replayed"] == "true"
        assert replayed.json() == first.json()
        assert other_seat.status_code == 201
        assert "Idempotent-Replayed" not in other_seat.headers
        assert other_seat.json()["id"] != first.json()["id"]


async def test_the_version_2_search_lists_only_the_seat_entities() -> None:
    config = seats_config(api_version=2, search_lag=0.0)
    async with open_dsp(config) as dsp:
        first_token, second_token = await token_of(dsp), await token_of(dsp)
        created = await dsp.client.post(
            "/v1/advertisers",
            json=advertiser_body(external_id="ref"),
            headers=bearer(first_token),
        )
        await dsp.client.post(
            "/v1/advertisers", json=advertiser_body(external_id="ref"), headers=bearer(EAST_TOKEN)
        )
        query = {"external_id": "ref"}
        west = await dsp.client.get("/v1/advertisers", params=query, headers=bearer(second_token))
        north = await dsp.client.get(
            "/v1/advertisers",
            params=query,
            headers=bearer(await token_of(dsp, NORTH_CLIENT, NORTH_SECRET)),
        )

        assert [item["id"] for item in west.json()["items"]] == [created.json()["id"]]
        assert north.json() == {"items": []}


# Logs, admin API and command line


async def test_no_log_or_admin_answer_holds_a_token_or_a_secret() -> None:
    async with open_dsp(seats_config()) as dsp:
        token = await token_of(dsp)
        await ask_token(dsp, WEST_CLIENT, "typo-secret")
        await get_status(dsp, token)
        await get_status(dsp, EAST_TOKEN)
        paths = ("requests", "token_requests", "stats", "config")
        dumps = [(await dsp.client.get(f"/_mock/{path}")).text for path in paths]
        requests = json.loads(dumps[0])

        assert [(r["seat"], r["token_valid"]) for r in requests] == [
            ("west", True),
            ("east", True),
        ]
        assert [r["client_id"] for r in json.loads(dumps[1])] == [WEST_CLIENT, WEST_CLIENT]
        config = json.loads(dumps[3])
        assert config["seats"]["west"] == {
            "client_id": WEST_CLIENT,
            "rate_limit": 3,
            "rate_window": 30.0,
        }
        for secret in (token, EAST_TOKEN, WEST_SECRET, NORTH_SECRET, "typo-secret", TOKEN):
            assert all(secret not in dump for dump in dumps)


async def test_the_admin_api_configures_seats_and_changes_their_tokens() -> None:
    async with open_dsp(fast_config()) as dsp:
        changed = await dsp.client.patch(
            "/_mock/config",
            json={
                "seats": {
                    "west": {"client_id": WEST_CLIENT, "client_secret": WEST_SECRET},
                    "east": {"token": EAST_TOKEN, "rate_limit": 1},
                },
                "token_lifetime": 60,
            },
        )
        bad = await dsp.client.patch("/_mock/config", json={"seats": {"x": {"rate_limit": 2}}})
        token = await token_of(dsp)
        expired = await dsp.client.post("/_mock/tokens/expire", json={"seat": "west"})
        after_expiry = await get_status(dsp, token)
        token = await token_of(dsp)
        revoked = await dsp.client.post("/_mock/tokens/revoke", json={"seat": "west"})
        after_revoke = await get_status(dsp, token)
        unknown = await dsp.client.post("/_mock/tokens/revoke", json={"seat": "south"})
        no_seat = await dsp.client.post("/_mock/tokens/expire", json={})

        assert changed.status_code == 200, changed.text
        assert changed.json()["token_lifetime"] == 60.0
        assert set(changed.json()["seats"]) == {"west", "east"}
        assert "token" not in changed.json()["seats"]["east"]
        assert bad.status_code == 422
        assert error_of(bad)["field"] == "seats.x"
        assert (expired.json(), error_of(after_expiry)["code"]) == ({"tokens": 1}, "token_expired")
        assert (revoked.json(), error_of(after_revoke)["code"]) == ({"tokens": 2}, "unauthorized")
        assert error_of(unknown)["field"] == error_of(no_seat)["field"] == "seat"
        assert (await get_status(dsp, TOKEN)).status_code == 401  # the flat seat is gone


def test_the_command_line_configures_seats_the_lifetime_and_the_token_limit(
    tmp_path: Path,
) -> None:
    seats_json = json.dumps({"west": {"client_id": WEST_CLIENT, "client_secret": WEST_SECRET}})
    seats_file = tmp_path / "seats.json"
    seats_file.write_text(seats_json)
    options = ["--token-lifetime", "20", "--token-requests-per-hour", "5"]

    config = config_from(parse_args(["--seats", seats_json, *options]))
    from_file = config_from(parse_args(["--seats", f"@{seats_file}"]))

    assert config.seats == from_file.seats
    assert config.seats["west"].client_secret == WEST_SECRET
    assert (config.token_lifetime, config.token_requests_per_hour) == (20.0, 5)
    assert config_from(parse_args([])).seats == {}
    with pytest.raises(ValueError):
        config_from(parse_args(["--seats", "{not json"]))
    with pytest.raises(ValueError):
        config_from(parse_args(["--seats", '{"west": {"client_id": "only"}}']))
    with pytest.raises(OSError):
        config_from(parse_args(["--seats", f"@{tmp_path / 'missing.json'}"]))


async def test_the_log_lines_name_the_seat_and_never_the_token(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with open_dsp(seats_config(token_lifetime=1.0)) as dsp:
        token = await token_of(dsp)
        await get_status(dsp, token)
        dsp.state.expire_tokens("west")
        await get_status(dsp, token)
        for record in dsp.state.request_log:
            log_line(record)
        for token_record in dsp.state.token_log:
            token_log_line(token_record)

    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith(f"GET {STATUS_PATH} 404 seat=west")
    assert lines[1].endswith(f"GET {STATUS_PATH} 401 token=expired seat=west")
    assert lines[2].endswith(f"POST /v1/oauth/token 200 client_id={WEST_CLIENT} seat=west")
    assert all(token not in line and WEST_SECRET not in line for line in lines)
