"""The mock DSP's API, in process: auth, validation, references, statuses, idempotency,
PUT, DELETE, faults and the `/_mock/` endpoints."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import httpx
import pytest

from devkit.mock_dsp.app import create_app
from devkit.mock_dsp.config import MockDspConfig
from devkit.mock_dsp.examples import ad_group_body, advertiser_body, campaign_body, creative_body
from devkit.mock_dsp.state import MockDsp

TOKEN = "unit-token-3b9e"


def fast_config(**overrides: Any) -> MockDspConfig:
    values: dict[str, Any] = {
        "token": TOKEN,
        "rate_limit": 1000,
        "rate_window": 60.0,
        "propagation_delay": 0.0,
        "pending_seconds": 0.0,
        "review_seconds": 0.0,
    }
    values.update(overrides)
    return MockDspConfig(**values)


class Dsp:
    """A client on the in-process app, plus its state."""

    def __init__(self, client: httpx.AsyncClient, transport: httpx.ASGITransport) -> None:
        self.client = client
        self.transport = transport
        self.state: MockDsp = transport.app.state.dsp  # type: ignore[attr-defined]

    async def post(self, entity_type: str, body: Any, key: str | None = None) -> httpx.Response:
        headers = {"Idempotency-Key": key} if key is not None else {}
        return await self.client.post(f"/v1/{entity_type}", json=body, headers=headers)

    async def create(self, entity_type: str, body: Any) -> str:
        response = await self.post(entity_type, body)
        assert response.status_code == 201, response.text
        return response.json()["id"]

    async def status(self, entity_type: str, entity_id: str) -> dict[str, Any]:
        response = await self.client.get(f"/v1/{entity_type}/{entity_id}/status")
        assert response.status_code == 200, response.text
        return response.json()

    async def tree(self) -> dict[str, str]:
        """An advertiser, a campaign and a creative, all usable at once."""
        adv = await self.create("advertisers", advertiser_body())
        return {
            "adv": adv,
            "cmp": await self.create("campaigns", campaign_body(adv)),
            "cre": await self.create("creatives", creative_body(adv)),
        }


@asynccontextmanager
async def open_dsp(config: MockDspConfig | None = None) -> AsyncIterator[Dsp]:
    transport = httpx.ASGITransport(app=create_app(config or fast_config()))
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://dsp.test",
        headers={"Authorization": f"Bearer {TOKEN}"},
    ) as client:
        yield Dsp(client, transport)


def error_of(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "field"}
    assert body["error"]["message"]
    return body["error"]


def not_json(content: bytes) -> bool:
    try:
        json.loads(content)
    except ValueError:
        return True
    return False


async def test_an_advertiser_is_created_active_with_an_opaque_id() -> None:
    async with open_dsp() as dsp:
        response = await dsp.post("advertisers", advertiser_body())

        assert response.status_code == 201
        body = response.json()
        assert set(body) == {"id", "type", "status", "created_at"}
        assert body["id"].startswith("adv_")
        assert body["type"] == "advertisers"
        assert body["status"] == "active"
        assert datetime.fromisoformat(body["created_at"]).tzinfo is not None
        assert response.headers["X-RateLimit-Limit"] == "1000"
        assert response.headers["X-RateLimit-Remaining"] == "999"
        assert 59.0 < float(response.headers["X-RateLimit-Reset"]) <= 60.0


async def test_every_type_round_trips_with_its_fields() -> None:
    async with open_dsp() as dsp:
        ids = await dsp.tree()
        group = ad_group_body(ids["cmp"], [ids["cre"]])
        ids["adg"] = await dsp.create("ad_groups", group)

        assert [ids[k][:4] for k in ("adv", "cmp", "cre", "adg")] == [
            "adv_",
            "cmp_",
            "cre_",
            "adg_",
        ]
        response = await dsp.client.get(f"/v1/ad_groups/{ids['adg']}")
        assert response.status_code == 200
        entity = response.json()
        assert {k: entity[k] for k in group} == group
        assert entity["id"] == ids["adg"]
        assert entity["type"] == "ad_groups"
        assert entity["status"] == "active"
        assert entity["reason"] is None
        assert set(entity) == {*group, "id", "type", "status", "reason", "created_at", "updated_at"}
        status = await dsp.status("creatives", ids["cre"])
        assert set(status) == {"id", "type", "status", "reason", "updated_at"}
        assert status["status"] == "approved"


async def test_a_missing_or_wrong_token_is_401_and_logged_without_the_token() -> None:
    async with open_dsp() as dsp:
        no_token = await dsp.client.get(
            "/v1/advertisers/adv_1/status", headers={"Authorization": ""}
        )
        wrong = await dsp.client.post(
            "/v1/advertisers",
            json=advertiser_body(),
            headers={"Authorization": "Bearer not-the-token"},
        )
        basic = await dsp.client.get(
            "/v1/advertisers/adv_1/status", headers={"Authorization": f"Basic {TOKEN}"}
        )

        for response in (no_token, wrong, basic):
            assert response.status_code == 401
            assert error_of(response)["code"] == "unauthorized"
            assert "X-RateLimit-Remaining" in response.headers
        assert dsp.state.entities == {}
        log = dsp.state.request_log
        assert [r.token_valid for r in log] == [False, False, False]
        dumped = json.dumps([r.to_json() for r in log])
        assert TOKEN not in dumped
        assert "not-the-token" not in dumped


BAD_BODIES: list[tuple[str, dict[str, Any], str]] = [
    ("advertisers", advertiser_body(color="red"), "color"),
    ("advertisers", {"name": "Acme", "currency": "USD"}, "domain"),
    ("advertisers", advertiser_body(name=""), "name"),
    ("advertisers", advertiser_body(name="x" * 256), "name"),
    ("advertisers", advertiser_body(domain="not a host"), "domain"),
    ("advertisers", advertiser_body(domain="-acme.example"), "domain"),
    ("advertisers", advertiser_body(currency="usd"), "currency"),
    ("advertisers", advertiser_body(currency="USDX"), "currency"),
    ("campaigns", campaign_body("adv_1", budget={"amount": 0, "currency": "USD"}), "budget.amount"),
    (
        "campaigns",
        campaign_body("adv_1", budget={"amount": True, "currency": "USD"}),
        "budget.amount",
    ),
    ("campaigns", campaign_body("adv_1", budget={"amount": 5}), "budget.currency"),
    (
        "campaigns",
        campaign_body("adv_1", budget={"amount": 5, "currency": "USD", "cap": 1}),
        "budget.cap",
    ),
    ("campaigns", campaign_body("adv_1", budget=5), "budget"),
    ("campaigns", campaign_body("adv_1", start_date="2027-02-30"), "start_date"),
    ("campaigns", campaign_body("adv_1", start_date="20270301"), "start_date"),
    ("campaigns", campaign_body("adv_1", end_date="2027-02-01"), "end_date"),
    ("campaigns", campaign_body(""), "advertiser_id"),
    ("campaigns", campaign_body(7), "advertiser_id"),  # type: ignore[arg-type]
    ("creatives", creative_body("adv_1", format="audio"), "format"),
    ("creatives", creative_body("adv_1", click_url="ftp://acme.example/x"), "click_url"),
    ("creatives", creative_body("adv_1", asset_url="https://"), "asset_url"),
    ("creatives", creative_body("adv_1", width=0), "width"),
    ("creatives", creative_body("adv_1", height=2.5), "height"),
    ("creatives", {k: v for k, v in creative_body("adv_1").items() if k != "width"}, "width"),
    ("creatives", creative_body("adv_1", duration=30), "duration"),
    ("ad_groups", ad_group_body("cmp_1", [], bid_cpm=-1), "bid_cpm"),
    ("ad_groups", ad_group_body("cmp_1", [], bid_cpm="2.5"), "bid_cpm"),
    ("ad_groups", ad_group_body("cmp_1", "cre_1"), "creative_ids"),  # type: ignore[arg-type]
    ("ad_groups", ad_group_body("cmp_1", ["cre_1", 5]), "creative_ids[1]"),  # type: ignore[list-item]
]


@pytest.mark.parametrize(("entity_type", "body", "field"), BAD_BODIES)
async def test_a_broken_field_is_422_with_its_field(
    entity_type: str, body: dict[str, Any], field: str
) -> None:
    async with open_dsp() as dsp:
        response = await dsp.post(entity_type, body)

        assert response.status_code == 422
        assert error_of(response) == {
            "code": "validation_error",
            "message": error_of(response)["message"],
            "field": field,
        }
        assert dsp.state.entities == {}


async def test_video_creatives_need_no_size_and_bodies_must_be_json_objects() -> None:
    async with open_dsp() as dsp:
        adv = await dsp.create("advertisers", advertiser_body())
        video = {k: v for k, v in creative_body(adv, format="video").items() if k != "width"}
        assert (await dsp.post("creatives", video)).status_code == 201

        for content in (b"[1, 2]", b"{not json", b""):
            response = await dsp.client.post("/v1/advertisers", content=content)
            assert response.status_code == 422
            assert error_of(response)["code"] == "validation_error"
            assert error_of(response)["field"] is None


async def test_references_must_exist_have_the_right_type_and_not_be_archived() -> None:
    async with open_dsp() as dsp:
        ids = await dsp.tree()
        gone = await dsp.create("advertisers", advertiser_body("Gone"))
        assert (await dsp.client.delete(f"/v1/advertisers/{gone}")).status_code == 200

        cases = [
            ("campaigns", campaign_body("adv_nope"), "advertiser_id"),
            ("campaigns", campaign_body(ids["cmp"]), "advertiser_id"),
            ("campaigns", campaign_body(gone), "advertiser_id"),
            ("ad_groups", ad_group_body(ids["cmp"], [ids["cre"], "cre_nope"]), "creative_ids[1]"),
            ("ad_groups", ad_group_body(ids["adv"], []), "campaign_id"),
        ]
        for entity_type, body, field in cases:
            response = await dsp.post(entity_type, body)
            assert response.status_code == 422, body
            assert error_of(response)["code"] == "unknown_reference"
            assert error_of(response)["field"] == field
        assert len(dsp.state.entities) == 4


async def test_a_fresh_reference_is_not_ready_until_it_propagates() -> None:
    async with open_dsp(fast_config(propagation_delay=0.3)) as dsp:
        adv = await dsp.create("advertisers", advertiser_body())
        created = time.monotonic()

        early = await dsp.post("campaigns", campaign_body(adv))
        assert early.status_code == 409
        assert error_of(early)["code"] == "reference_not_ready"
        assert error_of(early)["field"] == "advertiser_id"
        # The parent itself can be read at once.
        assert (await dsp.status("advertisers", adv))["status"] == "active"

        await asyncio.sleep(max(0.0, 0.32 - (time.monotonic() - created)))
        assert (await dsp.post("campaigns", campaign_body(adv))).status_code == 201


async def test_a_pending_parent_is_not_ready_until_active() -> None:
    async with open_dsp(fast_config(pending_seconds=0.3)) as dsp:
        adv = await dsp.create("advertisers", advertiser_body())
        cmp = await dsp.create("campaigns", campaign_body(adv))

        early = await dsp.post("ad_groups", ad_group_body(cmp, []))
        assert early.status_code == 409
        assert error_of(early) == {
            "code": "reference_not_ready",
            "message": error_of(early)["message"],
            "field": "campaign_id",
        }
        await asyncio.sleep(0.35)
        assert (await dsp.post("ad_groups", ad_group_body(cmp, []))).status_code == 201


async def test_statuses_advance_with_time() -> None:
    async with open_dsp(fast_config(pending_seconds=0.2, review_seconds=0.7)) as dsp:
        adv = await dsp.create("advertisers", advertiser_body())
        created = await dsp.post("campaigns", campaign_body(adv))
        cmp = created.json()["id"]
        cre = await dsp.create("creatives", creative_body(adv))
        began = time.monotonic()

        assert created.json()["status"] == "pending"
        first = await dsp.status("campaigns", cmp)
        assert (first["status"], first["reason"]) == ("pending", None)
        assert (await dsp.status("creatives", cre))["status"] == "pending_review"

        await asyncio.sleep(0.22)
        later = await dsp.status("campaigns", cmp)
        assert later["status"] == "active"
        assert datetime.fromisoformat(later["updated_at"]) > datetime.fromisoformat(
            first["updated_at"]
        )
        assert (await dsp.status("creatives", cre))["status"] == "pending_review"

        await asyncio.sleep(max(0.0, 0.72 - (time.monotonic() - began)))
        assert (await dsp.status("creatives", cre))["status"] == "approved"
        assert dsp.state.status_of(cre) == "approved"
        assert dsp.state.status_of("cre_nope") is None


async def test_review_jitter_adds_a_random_part_of_the_review_time() -> None:
    async with open_dsp(fast_config(review_seconds=10.0, review_jitter=0.5, seed=3)) as dsp:
        adv = await dsp.create("advertisers", advertiser_body())
        ids = [await dsp.create("creatives", creative_body(adv, name=f"c{i}")) for i in range(8)]

        seconds = [dsp.state.entities[i].processing_seconds for i in ids]
        assert all(10.0 <= s <= 15.0 for s in seconds)
        assert len(set(seconds)) == len(seconds)


async def test_lognormal_review_times_are_per_type_seeded_and_independent_of_order() -> None:
    config = fast_config(
        review_model="lognormal",
        review_seconds=100.0,
        review_sigma=1.0,
        pending_seconds=2.0,
        pending_sigma=0.5,
        review_max_seconds=400.0,
        seed=5,
    )

    async def times(order: list[int]) -> dict[str, float]:
        async with open_dsp(config) as dsp:
            adv = await dsp.create("advertisers", advertiser_body())
            out = {"advertiser": dsp.state.entities[adv].processing_seconds}
            for i in order:
                cre = await dsp.create("creatives", creative_body(adv, name=f"c{i}"))
                out[f"c{i}"] = dsp.state.entities[cre].processing_seconds
            cmp = await dsp.create("campaigns", campaign_body(adv))
            out["campaign"] = dsp.state.entities[cmp].processing_seconds
            return out

    forward = await times(list(range(40)))
    backward = await times(list(reversed(range(40))))

    assert forward == backward
    assert forward["advertiser"] == 0.0
    reviews = sorted(forward[f"c{i}"] for i in range(40))
    assert all(0 < s <= 400.0 for s in reviews)
    assert 30.0 < reviews[20] < 300.0  # around the median of 100 s
    assert reviews[-1] > 3 * reviews[0]  # spread, with a tail
    assert 0.2 < forward["campaign"] < 20.0


async def test_name_markers_decide_the_outcome() -> None:
    async with open_dsp() as dsp:
        adv = await dsp.create("advertisers", advertiser_body("Acme [fail]"))
        rejected = await dsp.create("creatives", creative_body(adv, name="Banner [reject]"))
        failed_creative = await dsp.create("creatives", creative_body(adv, name="B [fail]"))
        failed_campaign = await dsp.create("campaigns", campaign_body(adv, name="Spring [fail]"))
        good_campaign = await dsp.create("campaigns", campaign_body(adv))
        failed_group = await dsp.create(
            "ad_groups", ad_group_body(good_campaign, [], name="[fail]")
        )

        assert (await dsp.status("advertisers", adv))["status"] == "active"
        review = await dsp.status("creatives", rejected)
        assert review["status"] == "rejected"
        assert review["reason"].startswith("creative policy:")
        for entity_type, entity_id in (
            ("creatives", failed_creative),
            ("campaigns", failed_campaign),
            ("ad_groups", failed_group),
        ):
            status = await dsp.status(entity_type, entity_id)
            assert status["status"] == "failed"
            assert status["reason"]
        # A parent that ended badly can never be used.
        response = await dsp.post("ad_groups", ad_group_body(good_campaign, [rejected]))
        assert response.status_code == 422
        assert error_of(response)["code"] == "unknown_reference"
        assert error_of(response)["field"] == "creative_ids[0]"


async def test_the_same_key_and_body_replay_the_first_answer() -> None:
    async with open_dsp(fast_config(pending_seconds=0.2)) as dsp:
        adv = await dsp.create("advertisers", advertiser_body())
        body = campaign_body(adv)
        first = await dsp.post("campaigns", body, key="cmp-spring-1")
        await asyncio.sleep(0.25)
        reordered = dict(reversed(list(body.items())))
        again = await dsp.post("campaigns", reordered, key="cmp-spring-1")

        assert first.status_code == again.status_code == 201
        assert "Idempotent-Replayed" not in first.headers
        assert again.headers["Idempotent-Replayed"] == "true"
        assert again.json() == first.json()
        assert again.json()["status"] == "pending"  # the original answer, not today's status
        assert sum(1 for e in dsp.state.entities.values() if e.type == "campaigns") == 1
        posts = [r for r in dsp.state.request_log if r.path == "/v1/campaigns"]
        assert [(r.replayed, r.created_id) for r in posts] == [
            (False, first.json()["id"]),
            (True, None),
        ]
        assert posts[1].idempotency_key == "cmp-spring-1"


async def test_the_same_key_with_another_body_is_refused() -> None:
    async with open_dsp() as dsp:
        adv = await dsp.create("advertisers", advertiser_body())
        assert (await dsp.post("campaigns", campaign_body(adv), key="k1")).status_code == 201

        for entity_type, body in (
            ("campaigns", campaign_body(adv, name="Summer")),
            ("creatives", campaign_body(adv)),
        ):
            response = await dsp.post(entity_type, body, key="k1")
            assert response.status_code == 422
            assert error_of(response)["code"] == "idempotency_key_reused"
        assert len(dsp.state.entities) == 2


async def test_without_a_key_every_post_creates_and_keys_belong_to_a_token() -> None:
    async with open_dsp() as dsp:
        ids = {await dsp.create("advertisers", advertiser_body()) for _ in range(3)}
        assert len(ids) == 3

        assert (await dsp.post("advertisers", advertiser_body(), key="shared")).status_code == 201
        dsp.state.config = fast_config(token="other-token")
        other = await dsp.client.post(
            "/v1/advertisers",
            json=advertiser_body("Other"),
            headers={"Authorization": "Bearer other-token", "Idempotency-Key": "shared"},
        )
        assert other.status_code == 201
        assert "Idempotent-Replayed" not in other.headers
        assert len(dsp.state.entities) == 5


async def test_a_refused_post_does_not_use_up_its_key() -> None:
    async with open_dsp(fast_config(propagation_delay=0.2)) as dsp:
        adv = await dsp.create("advertisers", advertiser_body())
        body = campaign_body(adv)
        assert (await dsp.post("campaigns", body, key="retry-me")).status_code == 409
        await asyncio.sleep(0.22)
        response = await dsp.post("campaigns", body, key="retry-me")
        assert response.status_code == 201
        assert "Idempotent-Replayed" not in response.headers


@pytest.mark.parametrize("key", ["", "x" * 256, "naïve", "tab\there"])
async def test_a_malformed_idempotency_key_is_refused(key: str) -> None:
    async with open_dsp() as dsp:
        response = await dsp.client.post(
            "/v1/advertisers",
            json=advertiser_body(),
            headers={b"Idempotency-Key": key.encode()},
        )
        assert response.status_code == 422
        assert error_of(response)["field"] == "Idempotency-Key"
        assert dsp.state.entities == {}


async def test_put_replaces_the_fields_and_processes_again() -> None:
    async with open_dsp(fast_config(review_seconds=0.2)) as dsp:
        adv = await dsp.create("advertisers", advertiser_body())
        cre = await dsp.create("creatives", creative_body(adv, name="Banner [reject]"))
        await asyncio.sleep(0.22)
        assert (await dsp.status("creatives", cre))["status"] == "rejected"

        fixed = creative_body(adv, name="Banner v2")
        response = await dsp.client.put(f"/v1/creatives/{cre}", json=fixed)

        assert response.status_code == 200
        assert set(response.json()) == {"id", "type", "status", "reason", "updated_at"}
        assert (response.json()["status"], response.json()["reason"]) == ("pending_review", None)
        assert (await dsp.client.get(f"/v1/creatives/{cre}")).json()["name"] == "Banner v2"
        await asyncio.sleep(0.22)
        assert (await dsp.status("creatives", cre))["status"] == "approved"


async def test_put_validates_like_post_and_refuses_archived_or_unknown_entities() -> None:
    async with open_dsp() as dsp:
        ids = await dsp.tree()
        bad = await dsp.client.put(
            f"/v1/campaigns/{ids['cmp']}", json=campaign_body(ids["adv"], extra=1)
        )
        assert bad.status_code == 422
        assert error_of(bad)["field"] == "extra"
        unknown_parent = await dsp.client.put(
            f"/v1/campaigns/{ids['cmp']}", json=campaign_body("adv_nope")
        )
        assert error_of(unknown_parent)["code"] == "unknown_reference"

        missing = await dsp.client.put("/v1/campaigns/cmp_nope", json=campaign_body(ids["adv"]))
        assert missing.status_code == 404
        assert error_of(missing)["code"] == "not_found"

        await dsp.client.delete(f"/v1/campaigns/{ids['cmp']}")
        archived = await dsp.client.put(
            f"/v1/campaigns/{ids['cmp']}", json=campaign_body(ids["adv"])
        )
        assert archived.status_code == 422
        assert error_of(archived)["code"] == "validation_error"


async def test_delete_archives_and_is_idempotent() -> None:
    async with open_dsp() as dsp:
        ids = await dsp.tree()
        first = await dsp.client.delete(f"/v1/creatives/{ids['cre']}")
        again = await dsp.client.delete(f"/v1/creatives/{ids['cre']}")

        assert first.status_code == again.status_code == 200
        assert first.json()["status"] == "archived"
        assert again.json() == first.json()
        assert (await dsp.status("creatives", ids["cre"]))["status"] == "archived"
        for path in ("/v1/creatives/cre_nope", f"/v1/campaigns/{ids['cre']}"):
            response = await dsp.client.delete(path)
            assert response.status_code == 404
            assert error_of(response)["code"] == "not_found"


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/v1/advertisers/adv_nope/status", 404),
        ("GET", "/v1/advertisers/adv_nope", 404),
        ("POST", "/v1/banners", 404),
        ("GET", "/v1/banners/ban_1/status", 404),
        ("GET", "/v2/advertisers", 404),
        ("GET", "/", 404),
        ("GET", "/v1/advertisers", 405),
        ("POST", "/v1/advertisers/adv_1", 405),
    ],
)
async def test_unknown_ids_and_paths(method: str, path: str, status: int) -> None:
    async with open_dsp() as dsp:
        response = await dsp.client.request(method, path)

        assert response.status_code == status
        assert error_of(response)["code"] == (
            "not_found" if status == 404 else "method_not_allowed"
        )
        assert "X-RateLimit-Limit" in response.headers
        assert [r.status for r in dsp.state.request_log] == [status]


async def test_503_before_refuses_and_creates_nothing() -> None:
    async with open_dsp(fast_config(fault_rate=1.0, fault_kinds=["503_before"])) as dsp:
        response = await dsp.post("advertisers", advertiser_body(), key="k")

        assert response.status_code == 503
        assert error_of(response)["code"] == "service_unavailable"
        assert response.headers["Retry-After"] == "1"
        assert "X-RateLimit-Remaining" in response.headers
        assert dsp.state.entities == {}
        record = dsp.state.request_log[0]
        assert (record.fault, record.created_id, record.status) == ("503_before", None, 503)

        dsp.state.config = fast_config()
        retried = await dsp.post("advertisers", advertiser_body(), key="k")
        assert retried.status_code == 201
        assert "Idempotent-Replayed" not in retried.headers


@pytest.mark.parametrize("kind", ["503_after", "truncated", "empty", "html"])
async def test_faults_after_processing_create_the_entity_but_break_the_answer(kind: str) -> None:
    async with open_dsp(fast_config(fault_rate=1.0, fault_kinds=[kind])) as dsp:
        response = await dsp.post("advertisers", advertiser_body(), key="k")

        assert not_json(response.content) or response.status_code == 503
        if kind == "503_after":
            assert response.status_code == 503
        if kind == "empty":
            assert response.content == b""
        assert "X-RateLimit-Remaining" in response.headers
        assert len(dsp.state.entities) == 1
        (created,) = dsp.state.entities
        assert dsp.state.request_log[0].created_id == created
        assert dsp.state.request_log[0].fault == kind

        # The key was stored: the retry is a replay of the same entity.
        dsp.state.config = fast_config()
        retried = await dsp.post("advertisers", advertiser_body(), key="k")
        assert retried.headers["Idempotent-Replayed"] == "true"
        assert retried.json()["id"] == created


async def test_a_truncated_answer_is_the_start_of_the_real_one() -> None:
    async with open_dsp(fast_config(fault_rate=1.0, fault_kinds=["truncated"])) as dsp:
        response = await dsp.post("advertisers", advertiser_body())

        assert response.status_code == 201
        assert not_json(response.content)
        (created,) = dsp.state.entities
        assert response.content.startswith(b'{"id":"' + created.encode())


async def test_a_slow_answer_comes_late_but_whole() -> None:
    async with open_dsp(fast_config(fault_rate=1.0, fault_kinds=["slow"], slow_seconds=0.3)) as dsp:
        began = time.monotonic()
        response = await dsp.post("advertisers", advertiser_body())

        assert time.monotonic() - began >= 0.3
        assert response.status_code == 201
        assert response.json()["id"] in dsp.state.entities
        # Logged as soon as it was processed, before the delay.
        assert dsp.state.request_log[0].fault == "slow"


async def test_faults_follow_the_seed() -> None:
    config = fast_config(fault_rate=0.5, fault_kinds=["503_before", "empty"], seed=42)
    runs = []
    for _ in range(2):
        async with open_dsp(config) as dsp:
            for _ in range(20):
                await dsp.client.get("/v1/advertisers/adv_1/status")
            runs.append([r.fault for r in dsp.state.request_log])
    assert runs[0] == runs[1]
    assert {"503_before", "empty", None} == set(runs[0])


async def test_admin_endpoints_need_no_token_and_are_not_counted() -> None:
    async with open_dsp(fast_config(rate_limit=3)) as dsp:
        adv = await dsp.create("advertisers", advertiser_body())
        await dsp.client.get("/v1/advertisers/adv_nope/status")
        admin = httpx.AsyncClient(transport=dsp.transport, base_url="http://dsp.test")
        async with admin:
            for _ in range(5):
                log = (await admin.get("/_mock/requests")).json()
            stats = (await admin.get("/_mock/stats")).json()
            entities = (await admin.get("/_mock/entities")).json()
            config = (await admin.get("/_mock/config")).json()

        assert [(r["method"], r["path"], r["status"]) for r in log] == [
            ("POST", "/v1/advertisers", 201),
            ("GET", "/v1/advertisers/adv_nope/status", 404),
        ]
        assert log[0]["body"] == advertiser_body()
        assert log[0]["created_id"] == adv
        assert log[0]["token_valid"] is True
        assert TOKEN not in json.dumps(log)
        assert stats["total"] == 2
        assert stats["rate_limited"] == 0
        assert stats["max_in_window"] == 2
        assert stats["by_status"] == {"201": 1, "404": 1}
        assert stats["by_endpoint"] == {"GET advertisers": 1, "POST advertisers": 1}
        assert [(e["id"], e["status"], e["name"]) for e in entities] == [(adv, "active", "Acme")]
        assert config["rate_limit"] == 3
        assert "token" not in config
        assert (await dsp.client.get(f"/v1/advertisers/{adv}")).headers[
            "X-RateLimit-Remaining"
        ] == "0"


async def test_patch_config_changes_knobs_at_runtime() -> None:
    async with open_dsp() as dsp:
        patched = await dsp.client.patch(
            "/_mock/config", json={"fault_rate": 1.0, "fault_kinds": ["503_before"]}
        )
        assert patched.status_code == 200
        assert patched.json()["fault_rate"] == 1.0
        assert (await dsp.post("advertisers", advertiser_body())).status_code == 503

        for change, field in (
            ({"fault_rate": 2}, "fault_rate"),
            ({"fault_kinds": ["boom"]}, "fault_kinds.0"),
            ({"no_such_knob": 1}, "no_such_knob"),
        ):
            refused = await dsp.client.patch("/_mock/config", json=change)
            assert refused.status_code == 422
            assert error_of(refused)["field"] == field
        assert dsp.state.config.fault_rate == 1.0

        await dsp.client.patch("/_mock/config", json={"fault_rate": 0, "token": "new-token"})
        assert (await dsp.post("advertisers", advertiser_body())).status_code == 401


async def test_reset_forgets_everything_but_the_config() -> None:
    async with open_dsp(fast_config(rate_limit=2)) as dsp:
        await dsp.create("advertisers", advertiser_body())
        await dsp.post("advertisers", advertiser_body(), key="k")
        assert (await dsp.post("advertisers", advertiser_body())).status_code == 429

        assert (await dsp.client.post("/_mock/reset")).json() == {"reset": True}

        assert dsp.state.request_log == []
        assert dsp.state.entities == {}
        response = await dsp.post("advertisers", advertiser_body(), key="k")
        assert response.status_code == 201
        assert "Idempotent-Replayed" not in response.headers
        assert response.headers["X-RateLimit-Remaining"] == "1"
