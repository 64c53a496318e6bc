"""The HTTP API against the real stack: the console served by uvicorn, a worker, Temporal,
PostgreSQL and the mock DSP over HTTP."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest

from devkit.mock_dsp.server import MockDspServer
from tests.integration.console_support import CONSOLE_TOKEN, running_console
from tests.integration.dag import ad_group, advertiser, campaign, creative
from tests.integration.harness import Stack


def _file(batch: str, entities: list[dict[str, Any]]) -> bytes:
    return json.dumps({"batch": batch, "entities": entities}).encode()


async def _until_ended(api: httpx.AsyncClient, batch: str, within: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        answer = await api.get(f"/api/batches/{batch}")
        assert answer.status_code == 200, answer.text
        if answer.json()["finished"]:
            return answer.json()
        if time.monotonic() > deadline:
            pytest.fail(f"batch {batch} still running after {within:.0f} s: {answer.json()}")
        await asyncio.sleep(0.2)


async def _until_status(
    api: httpx.AsyncClient, key: str, status: str, within: float = 30
) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        entity = (await api.get(f"/api/entities/{key}")).json()
        if entity["status"] == status:
            return entity
        if time.monotonic() > deadline:
            pytest.fail(f"{key} is {entity['status']}, not {status}, after {within:.0f} s")
        await asyncio.sleep(0.1)


async def test_without_the_token_nothing_is_answered(stack: Stack) -> None:
    entities = [advertiser("sec-adv")]
    async with running_console(stack.settings, stack.service) as console:
        async with console.client() as api:
            assert (
                await api.post("/api/batches", content=_file("sec", entities))
            ).status_code == 201
        for token, authenticated in ((None, False), ("wrong-token", True)):
            async with console.client(token=token, authenticated=authenticated) as anonymous:
                for path in (
                    "/api/batches",
                    "/api/entities",
                    "/api/entities/sec-adv",
                    "/openapi.json",
                ):
                    answer = await anonymous.get(path)
                    assert answer.status_code == 401, path
                    assert "sec-adv" not in answer.text and "sec" not in answer.json()["detail"]
                posted = await anonymous.post("/api/entities/sec-adv/cancel")
                assert posted.status_code == 401
                page = await anonymous.get("/batches/sec")
                assert page.status_code == 401 and 'name="token"' in page.text
                assert "sec-adv" not in page.text
                entity_page = await anonymous.get("/entities/sec-adv")
                # The login page knows only the address asked for, nothing stored about it.
                assert entity_page.status_code == 401 and "advertisers" not in entity_page.text
                assert "sec-adv.example" not in entity_page.text
                assert (await anonymous.get("/healthz")).status_code == 200
        # A browser logs in with the token: HttpOnly, SameSite=Strict session cookie.
        async with httpx.AsyncClient(base_url=console.url) as browser:
            wrong = await browser.post("/login", data={"token": "nope", "next": "/"})
            assert wrong.status_code == 401 and "session" not in wrong.headers.get("set-cookie", "")
            login = await browser.post(
                "/login", data={"token": CONSOLE_TOKEN, "next": "/batches/sec"}
            )
            assert login.status_code == 303 and login.headers["location"] == "/batches/sec"
            cookie = login.headers["set-cookie"].lower()
            assert "httponly" in cookie and "samesite=strict" in cookie
            assert CONSOLE_TOKEN not in login.headers["set-cookie"]
            page = await browser.get("/batches/sec")
            assert page.status_code == 200 and "sec-adv" in page.text
            # The cookie alone changes nothing through the API: it needs the page's CSRF token.
            assert (await browser.post("/api/entities/sec-adv/cancel")).status_code == 403
            # Forms from another site are refused before anything else.
            cross = await browser.post(
                "/entities/sec-adv/cancel", headers={"Origin": "https://evil.example"}
            )
            assert cross.status_code == 403
            stale = await browser.post("/entities/sec-adv/cancel", data={"csrf": "forged"})
            assert stale.status_code == 403


async def test_submit_follow_cancel_and_resubmit(stack: Stack, mock_dsp: MockDspServer) -> None:
    entities = [
        advertiser("api-adv"),
        campaign("api-cmp", "api-adv"),
        creative("api-cr", "api-adv"),
        creative("api-cr-bad", "api-adv", reject=True),
        ad_group("api-ag", "api-cmp", ["api-cr"]),
        ad_group("api-ag-bad", "api-cmp", ["api-cr-bad"]),
    ]
    async with running_console(stack.settings, stack.service) as console, console.client() as api:
        health = await api.get("/healthz")
        assert health.status_code == 200 and health.json() == {
            "postgresql": "ok",
            "temporal": "ok",
        }

        # Refused whole, every problem with its entity and field, nothing stored.
        broken = [*entities, {"key": "api-x", "type": "creatives", "payload": {"name": 5}}]
        broken[1] = {
            **broken[1],
            "payload": {**broken[1]["payload"], "advertiser_id": {"$ref": "nobody"}},
        }
        refused = await api.post("/api/batches", content=_file("api", broken))
        assert refused.status_code == 422, refused.text
        problems = refused.json()["problems"]
        assert {p["entity"] for p in problems} >= {"api-x", "api-cmp"}
        assert all({"entity", "field", "message"} <= set(p) for p in problems)
        assert any(p["field"] for p in problems if p["entity"] == "api-x")
        assert (await api.get("/api/batches")).json() == []
        not_json = await api.post("/api/batches", content=b"{not json")
        assert not_json.status_code == 422 and not_json.json()["problems"]

        accepted = await api.post("/api/batches", content=_file("api", entities))
        assert accepted.status_code == 201, accepted.text
        assert accepted.json() | {"started": 0} == {
            "batch": "api",
            "entities": 6,
            "stored": 6,
            "unchanged": 0,
            "started": 0,
            "priority": "normal",
            "fairness_weight": 1.0,
        }
        again = await api.post("/api/batches", content=_file("api", entities))
        assert again.status_code == 201 and again.json()["stored"] == 0
        assert again.json()["unchanged"] == 6

        summary = await _until_ended(api, "api")
        assert summary["counts"] == {"succeeded": 4, "rejected": 1, "blocked": 1}
        assert summary["total"] == 6 and summary["created"]
        (listed,) = (await api.get("/api/batches")).json()
        assert listed["name"] == "api" and listed["finished"]
        assert listed["seats"] == ["default"]  # a file naming no seat: the default seat's
        assert (await api.get("/api/batches/nobody")).status_code == 404

        rows = (await api.get("/api/entities", params={"batch": "api"})).json()
        assert rows["total"] == 6 and len(rows["items"]) == 6
        assert {"key", "type", "batch", "seat", "status", "dsp_id", "dsp_status", "reason"} <= set(
            rows["items"][0]
        )
        assert {row["seat"] for row in rows["items"]} == {"default"}
        page = await api.get("/api/entities", params={"batch": "api", "limit": 2, "offset": 2})
        assert [r["key"] for r in page.json()["items"]] == [r["key"] for r in rows["items"][2:4]]
        blocked = (await api.get("/api/entities", params={"status": "blocked"})).json()["items"]
        assert [r["key"] for r in blocked] == ["api-ag-bad"]
        creatives = (await api.get("/api/entities", params={"type": "creatives"})).json()
        assert {r["key"] for r in creatives["items"]} == {"api-cr", "api-cr-bad"}
        assert (await api.get("/api/entities", params={"status": "bogus"})).status_code == 422

        detail = (await api.get("/api/entities/api-cr")).json()
        assert detail["status"] == "succeeded" and detail["dsp_id"]
        assert detail["dependencies"] == [{"key": "api-adv", "status": "succeeded"}]
        assert detail["dependants"] == [{"key": "api-ag", "status": "succeeded"}]
        assert detail["workflow_id"] == "dsp-entity-api-cr"
        assert detail["seat"] == "default"
        assert detail["workflow_url"].endswith("/workflows/dsp-entity-api-cr")
        stored, sent = detail["payload_versions"][0], detail["payload_versions"][1]
        assert stored["source"] == "stored" and stored["payload"]["advertiser_id"] == {
            "$ref": "api-adv"
        }
        assert sent["source"] == "sent" and sent["method"] == "POST" and sent["version"] == 1
        assert isinstance(sent["payload"]["advertiser_id"], str)
        audit = (await api.get("/api/entities/api-cr/audit")).json()
        assert audit[0]["method"] == "POST"
        assert any(a["method"] == "POST" and a["response_status"] in (200, 201) for a in audit)
        assert audit[0]["duration_ms"] is not None and audit[-1]["method"] == "GET"
        assert (await api.get("/api/entities/nobody")).status_code == 404
        assert (await api.get("/api/entities/nobody/audit")).status_code == 404

        budget = (await api.get("/api/budget")).json()
        assert budget["limit"] == stack.settings.dsp_rate_limit
        assert 0 <= budget["used"] <= budget["limit"]
        assert budget["throttled_total"] == 0 and budget["waiting_for_slot"] == 0
        assert budget["default_seat"] == "default"
        assert [seat["seat"] for seat in budget["seats"]] == ["default"]
        assert budget["seats"][0]["used"] == budget["used"]

        # Ended: no cancel. Refused payload: 422 with its problems. Fixed: 202, runs again.
        ended = await api.post("/api/entities/api-cr/cancel")
        assert ended.status_code == 409 and "already ended" in ended.json()["detail"]
        bad = await api.post(
            "/api/entities/api-cr-bad/resubmit", json={"payload": {"name": "no fields"}}
        )
        assert bad.status_code == 422 and bad.json()["problems"]
        assert all(p["entity"] == "api-cr-bad" for p in bad.json()["problems"])
        fixed = creative("api-cr-bad", "api-adv")["payload"]
        resubmitted = await api.post("/api/entities/api-cr-bad/resubmit", json={"payload": fixed})
        assert resubmitted.status_code == 202, resubmitted.text
        assert resubmitted.json() == {
            "key": "api-cr-bad",
            "payload_version": 2,
            "previous_status": "rejected",
        }
        await _until_status(api, "api-cr-bad", "succeeded")
        await _until_status(api, "api-ag-bad", "succeeded")
        versions = (await api.get("/api/entities/api-cr-bad")).json()["payload_versions"]
        assert [v["version"] for v in versions if v["source"] == "sent"][-1] in (2, None)
        again = await api.post("/api/entities/api-cr/resubmit")
        assert again.status_code == 202 and again.json()["payload_version"] == 2

        # A creative under review (held there) is cancelled (archived at the DSP).
        mock_dsp.dsp.hold("api-cr-slow")
        lines = "\n".join(json.dumps(e) for e in [creative("api-cr-slow", "api-adv")])
        jsonl = await api.post(
            "/api/batches",
            params={"batch": "api-lines"},
            content=lines.encode(),
            headers={"Content-Type": "application/x-ndjson"},
        )
        assert jsonl.status_code == 201 and jsonl.json()["batch"] == "api-lines"
        no_name = await api.post(
            "/api/batches", content=lines.encode(), headers={"Content-Type": "application/x-ndjson"}
        )
        assert no_name.status_code == 422 and no_name.json()["problems"][0]["field"] == "batch"
        await _until_status(api, "api-cr-slow", "polling")
        cancelled = await api.post("/api/entities/api-cr-slow/cancel")
        assert cancelled.status_code == 202
        assert cancelled.json() == {"key": "api-cr-slow", "previous_status": "polling"}
        await _until_status(api, "api-cr-slow", "cancelled")


async def test_docs_and_openapi(stack: Stack) -> None:
    async with running_console(stack.settings, stack.service) as console, console.client() as api:
        document = (await api.get("/openapi.json")).json()
        assert {"/api/batches", "/api/entities/{key}/resubmit", "/api/budget", "/healthz"} <= set(
            document["paths"]
        )
        docs = await api.get("/docs")
        assert docs.status_code == 200 and "/api/entities/{key}/cancel" in docs.text
        assert "cdn" not in docs.text.lower()


async def test_without_a_token_the_console_is_open_on_loopback(stack: Stack) -> None:
    async with running_console(stack.settings, stack.service, token=None) as console:
        async with console.client() as api:
            assert (await api.get("/api/batches")).status_code == 200
            assert (await api.get("/")).status_code == 200
            cross = await api.post(
                "/api/batches", content=b"{}", headers={"Origin": "http://evil.example"}
            )
            assert cross.status_code == 403
