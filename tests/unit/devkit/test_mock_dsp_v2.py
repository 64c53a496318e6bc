"""The mock DSP's version-2 behaviour (dsp-api-v2.md §3, issue 22): no idempotency, the
client's `external_id` and its lagging search, and the `drop` fault that acts on a request
and sends no answer."""

from __future__ import annotations

import httpx
import pytest
from pydantic import SecretStr

import devkit.mock_dsp.api
from devkit.mock_dsp.__main__ import config_from, parse_args
from devkit.mock_dsp.api import AnswerDropped
from devkit.mock_dsp.config import ALL_FAULT_KINDS, FAULT_KINDS, MockDspConfig
from devkit.mock_dsp.examples import ad_group_body, advertiser_body, campaign_body, creative_body
from devkit.mock_dsp.server import MockDspServer
from dsp_integration.dsp_client import DspClient, build_http_client, create_request
from tests.unit.devkit.test_mock_dsp import TOKEN, Dsp, error_of, fast_config, open_dsp

SEARCH_LAG = 10.0


def v2_config(**overrides: object) -> MockDspConfig:
    return fast_config(**{"api_version": 2, "search_lag": SEARCH_LAG, **overrides})


class FakeClock:
    """Stands in for `time` in the API module: what the request handler takes as now."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(devkit.mock_dsp.api, "time", fake)
    return fake


async def search(dsp: Dsp, entity_type: str, external_id: str) -> list[dict[str, object]]:
    response = await dsp.client.get(f"/v1/{entity_type}", params={"external_id": external_id})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"items"}
    items: list[dict[str, object]] = body["items"]
    return items


def test_the_new_knobs_default_to_version_1_and_a_ten_second_lag_without_drop() -> None:
    config = MockDspConfig()
    assert config.api_version == 1
    assert config.search_lag == 10.0
    assert "drop" in ALL_FAULT_KINDS
    assert "drop" not in FAULT_KINDS
    assert config.fault_kinds == list(FAULT_KINDS)
    with pytest.raises(ValueError):
        MockDspConfig(api_version=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        MockDspConfig(search_lag=-1)


async def test_version_2_ignores_the_idempotency_key() -> None:
    async with open_dsp(v2_config()) as dsp:
        first = await dsp.post("advertisers", advertiser_body(), key="adv-1:v1")
        again = await dsp.post("advertisers", advertiser_body(), key="adv-1:v1")
        other_body = await dsp.post("advertisers", advertiser_body("Other"), key="adv-1:v1")

        assert [r.status_code for r in (first, again, other_body)] == [201, 201, 201]
        ids = {r.json()["id"] for r in (first, again, other_body)}
        assert len(ids) == 3
        assert all("Idempotent-Replayed" not in r.headers for r in (first, again, other_body))
        assert len(dsp.state.entities) == 3
        log = dsp.state.request_log
        assert [r.replayed for r in log] == [False, False, False]
        assert [r.created_id for r in log] == [r.json()["id"] for r in (first, again, other_body)]


async def test_version_1_still_replays_and_refuses_external_id() -> None:
    async with open_dsp(fast_config()) as dsp:
        first = await dsp.post("advertisers", advertiser_body(), key="adv-1:v1")
        again = await dsp.post("advertisers", advertiser_body(), key="adv-1:v1")
        with_reference = await dsp.post("advertisers", advertiser_body(external_id="ref-1"))
        listed = await dsp.client.get("/v1/advertisers", params={"external_id": "ref-1"})

        assert again.headers["Idempotent-Replayed"] == "true"
        assert again.json() == first.json()
        assert with_reference.status_code == 422
        error = error_of(with_reference)
        assert (error["code"], error["field"]) == ("validation_error", "external_id")
        assert "unknown field" in error["message"]
        assert listed.status_code == 405


async def test_every_type_stores_and_returns_its_external_id() -> None:
    async with open_dsp(v2_config()) as dsp:
        adv = await dsp.create("advertisers", advertiser_body(external_id="r-adv"))
        cmp = await dsp.create("campaigns", campaign_body(adv, external_id="r-cmp"))
        cre = await dsp.create("creatives", creative_body(adv, external_id="r-cre"))
        adg = await dsp.create("ad_groups", ad_group_body(cmp, [cre], external_id="r-adg"))
        without = await dsp.create("advertisers", advertiser_body("No reference"))

        for entity_type, entity_id, reference in [
            ("advertisers", adv, "r-adv"),
            ("campaigns", cmp, "r-cmp"),
            ("creatives", cre, "r-cre"),
            ("ad_groups", adg, "r-adg"),
        ]:
            view = (await dsp.client.get(f"/v1/{entity_type}/{entity_id}")).json()
            assert view["external_id"] == reference
        assert "external_id" not in (await dsp.client.get(f"/v1/advertisers/{without}")).json()


@pytest.mark.parametrize(
    "external_id",
    ["", "x" * 256, "caf\u00e9", "line\nbreak", "tab\there", 17, None, ["r"]],
    ids=["empty", "too-long", "non-ascii", "newline", "tab", "number", "null", "list"],
)
async def test_a_bad_external_id_is_422_on_its_field(external_id: object) -> None:
    async with open_dsp(v2_config()) as dsp:
        response = await dsp.post("advertisers", advertiser_body(external_id=external_id))

        assert response.status_code == 422
        error = error_of(response)
        assert (error["code"], error["field"]) == ("validation_error", "external_id")
        assert dsp.state.entities == {}


async def test_an_external_id_of_255_printable_characters_is_taken() -> None:
    reference = "".join(chr(0x20 + i % 95) for i in range(255))
    async with open_dsp(v2_config()) as dsp:
        adv = await dsp.create("advertisers", advertiser_body(external_id=reference))
        assert dsp.state.entities[adv].fields["external_id"] == reference


async def test_a_put_without_the_reference_keeps_it_and_one_with_a_bad_one_is_422() -> None:
    async with open_dsp(v2_config()) as dsp:
        adv = await dsp.create("advertisers", advertiser_body(external_id="r-1"))
        kept = await dsp.client.put(f"/v1/advertisers/{adv}", json=advertiser_body("Renamed"))
        bad = await dsp.client.put(f"/v1/advertisers/{adv}", json=advertiser_body(external_id=""))

        assert kept.status_code == 200
        assert dsp.state.entities[adv].fields == advertiser_body("Renamed", external_id="r-1")
        assert error_of(bad)["field"] == "external_id"


async def test_the_search_shows_an_entity_only_after_the_lag_newest_first(
    clock: FakeClock,
) -> None:
    async with open_dsp(v2_config()) as dsp:
        older = await dsp.create("advertisers", advertiser_body("Older", external_id="ref"))
        clock.now += 1.0
        newer = await dsp.create("advertisers", advertiser_body("Newer", external_id="ref"))
        await dsp.create("advertisers", advertiser_body("Elsewhere", external_id="other"))
        clock.now += SEARCH_LAG - 1.0 - 0.001

        assert await search(dsp, "advertisers", "ref") == []
        clock.now += 0.001
        assert [item["id"] for item in await search(dsp, "advertisers", "ref")] == [older]
        clock.now += 1.0
        items = await search(dsp, "advertisers", "ref")
        assert [item["id"] for item in items] == [newer, older]
        for item in items:
            view = await dsp.client.get(f"/v1/advertisers/{item['id']}")
            assert item == view.json()


async def test_the_search_includes_archived_entities_and_keeps_to_type_and_token(
    clock: FakeClock,
) -> None:
    async with open_dsp(v2_config()) as dsp:
        adv = await dsp.create("advertisers", advertiser_body(external_id="ref"))
        cmp = await dsp.create("campaigns", campaign_body(adv, external_id="ref"))
        assert (await dsp.client.delete(f"/v1/campaigns/{cmp}")).status_code == 200
        dsp.state.config = dsp.state.config.model_copy(update={"token": "another-token"})
        other_client = {"Authorization": "Bearer another-token"}
        foreign = await dsp.client.post(
            "/v1/advertisers", json=advertiser_body(external_id="ref"), headers=other_client
        )
        assert foreign.status_code == 201
        clock.now += SEARCH_LAG

        own = await dsp.client.get(
            "/v1/advertisers", params={"external_id": "ref"}, headers=other_client
        )
        dsp.state.config = dsp.state.config.model_copy(update={"token": TOKEN})
        campaigns = await search(dsp, "campaigns", "ref")

        assert [item["id"] for item in own.json()["items"]] == [foreign.json()["id"]]
        assert [item["id"] for item in await search(dsp, "advertisers", "ref")] == [adv]
        assert [(item["id"], item["status"]) for item in campaigns] == [(cmp, "archived")]


async def test_a_search_counts_toward_the_window_and_is_logged() -> None:
    async with open_dsp(v2_config(rate_limit=2, search_lag=0.0)) as dsp:
        adv = await dsp.create("advertisers", advertiser_body(external_id="ref 1"))
        found = await dsp.client.get("/v1/advertisers", params={"external_id": "ref 1"})
        refused = await dsp.client.get("/v1/advertisers", params={"external_id": "ref 1"})

        assert [item["id"] for item in found.json()["items"]] == [adv]
        assert found.headers["X-RateLimit-Remaining"] == "0"
        assert refused.status_code == 429
        searches = [r for r in dsp.state.request_log if r.method == "GET"]
        assert [(r.path, r.query, r.status) for r in searches] == [
            ("/v1/advertisers", "external_id=ref+1", 200),
            ("/v1/advertisers", "external_id=ref+1", 429),
        ]
        assert searches[0].to_json()["query"] == "external_id=ref+1"


@pytest.mark.parametrize("query", ["", "?external_id=", "?name=x"])
async def test_a_search_without_a_valid_external_id_is_422(query: str) -> None:
    async with open_dsp(v2_config()) as dsp:
        response = await dsp.client.get(f"/v1/campaigns{query}")
        assert response.status_code == 422
        assert error_of(response)["field"] == "external_id"


async def test_the_version_and_lag_change_at_run_time_through_the_admin_api() -> None:
    async with open_dsp(fast_config()) as dsp:
        changed = await dsp.client.patch("/_mock/config", json={"api_version": 2, "search_lag": 0})
        created = await dsp.post("advertisers", advertiser_body(external_id="ref"))
        found = await search(dsp, "advertisers", "ref")
        bad_version = await dsp.client.patch("/_mock/config", json={"api_version": 3})
        bad_lag = await dsp.client.patch("/_mock/config", json={"search_lag": -1})

        assert changed.status_code == 200
        assert (changed.json()["api_version"], changed.json()["search_lag"]) == (2, 0.0)
        assert [item["id"] for item in found] == [created.json()["id"]]
        assert error_of(bad_version)["field"] == "api_version"
        assert error_of(bad_lag)["field"] == "search_lag"
        assert (dsp.state.config.api_version, dsp.state.config.search_lag) == (2, 0.0)


def test_the_command_line_sets_the_version_the_lag_and_drop() -> None:
    config = config_from(
        parse_args(["--api-version", "2", "--search-lag", "2.5", "--fault-kinds", "drop,html"])
    )
    assert (config.api_version, config.search_lag, config.fault_kinds) == (2, 2.5, ["drop", "html"])
    assert config_from(parse_args([])).api_version == 1
    with pytest.raises(ValueError):
        config_from(parse_args(["--api-version", "two"]))


async def test_drop_in_process_acts_then_raises_instead_of_answering() -> None:
    async with open_dsp(v2_config(fault_rate=1.0, fault_kinds=["drop"])) as dsp:
        with pytest.raises(AnswerDropped):
            await dsp.post("advertisers", advertiser_body(external_id="ref"))

        (record,) = dsp.state.request_log
        assert (record.fault, record.status) == ("drop", 201)
        assert record.created_id in dsp.state.entities


def server_config(**overrides: object) -> MockDspConfig:
    return MockDspConfig(
        token=TOKEN, propagation_delay=0.0, pending_seconds=0.0, api_version=2, **overrides
    )


async def test_drop_over_http_resets_the_connection_after_creating_the_entity() -> None:
    with MockDspServer(server_config(fault_rate=1.0, fault_kinds=["drop"])) as server:
        async with build_http_client(server.base_url, 5.0) as http:
            client = DspClient(http)
            exchange = await client.send(
                create_request("advertisers", advertiser_body(external_id="ref")), SecretStr(TOKEN)
            )
            async with httpx.AsyncClient(
                base_url=server.base_url, headers={"Authorization": f"Bearer {TOKEN}"}
            ) as raw_client:
                with pytest.raises(httpx.TransportError) as raised:
                    await raw_client.post("/v1/advertisers", json=advertiser_body())
            server.dsp.config = server.dsp.config.model_copy(update={"fault_rate": 0.0})
            after = await client.send(
                create_request("advertisers", advertiser_body()), SecretStr(TOKEN)
            )

        assert exchange.status_code is None
        assert exchange.error is not None
        assert exchange.elapsed < 5.0
        assert isinstance(raised.value, httpx.ReadError | httpx.RemoteProtocolError)
        assert after.status_code == 201
        dropped = [r for r in server.dsp.request_log if r.fault == "drop"]
        assert [(r.status, r.created_id in server.dsp.entities) for r in dropped] == [
            (201, True),
            (201, True),
        ]
        assert len(server.dsp.entities) == 3


async def test_drop_is_drawn_from_the_seeded_fault_stream_of_its_reference() -> None:
    """With a seed, whether a version-2 create is dropped depends on its `external_id` (its
    retries share it) and not on what other entities did before it."""

    async def dropped_references(order: list[str]) -> dict[str, list[bool]]:
        config = v2_config(fault_rate=0.5, fault_kinds=["drop", "empty"], seed=11)
        outcomes: dict[str, list[bool]] = {ref: [] for ref in order}
        async with open_dsp(config) as dsp:
            for reference in order * 3:
                try:
                    await dsp.post("advertisers", advertiser_body(external_id=reference))
                except AnswerDropped:
                    outcomes[reference].append(True)
                else:
                    outcomes[reference].append(False)
        return outcomes

    references = [f"ref-{i}" for i in range(8)]
    forwards = await dropped_references(references)
    backwards = await dropped_references(references[::-1])

    assert forwards == backwards
    assert any(any(drops) for drops in forwards.values())
    assert not all(all(drops) for drops in forwards.values())
