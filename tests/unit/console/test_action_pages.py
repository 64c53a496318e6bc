"""The action log through the API and the pages, and the pages' other help for a day's work
(names beside keys, search across batches, filters in the URL, times as `<time>`, plots as
inline SVG), over a real database and Temporal dev server (no worker: nothing runs)."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest_asyncio
from pydantic import SecretStr
from temporalio.client import Client

from devkit.stack.temporal_server import TemporalDevServer
from dsp_integration.client.actors import Actor, Role
from dsp_integration.client.context import ServiceContext
from dsp_integration.config import Settings
from dsp_integration.console import create_app
from dsp_integration.console.actors import actor_of
from dsp_integration.database.engine import SessionFactory
from tests.unit.entities.test_entities_parser import example_entities

TOKEN = "unit-action-pages-token"
HOSTILE = '<img src=x onerror="alert(1)">'


@pytest_asyncio.fixture
async def service(
    clean_database: SessionFactory, temporal_server: TemporalDevServer, temporal_client: Client
) -> AsyncIterator[ServiceContext]:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        temporal_address=temporal_server.address,
        temporal_task_queue=f"tq-pages-{uuid.uuid4().hex[:12]}",
        console_token=SecretStr(TOKEN),
    )
    yield ServiceContext(settings, clean_database, temporal_client)


@pytest_asyncio.fixture
async def api(service: ServiceContext) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(service.settings, service=service)
    app.state.service = service  # the lifespan, which sets it, does not run under ASGITransport
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=("192.0.2.7", 4711)),
        base_url="http://127.0.0.1",
        headers={"Authorization": f"Bearer {TOKEN}"},
    ) as client:
        yield client


def spring(batch: str = "spring") -> bytes:
    entities = example_entities()
    entities[2]["payload"]["name"] = HOSTILE
    return json.dumps({"batch": batch, "entities": entities}).encode()


async def test_the_api_serves_the_action_log_newest_first(api: httpx.AsyncClient) -> None:
    assert (await api.post("/api/batches", content=spring())).status_code == 201
    assert (await api.post("/api/entities/acme-banner/cancel")).status_code == 202
    assert (await api.post("/api/entities/nope/cancel")).status_code == 404
    answer = await api.post("/api/batches/spring/priority", json={"priority": "high"})
    assert answer.status_code == 202
    answer = await api.post("/api/batches/spring/priority", json={"priority": "urgent"})
    assert answer.status_code == 422  # the document's enum refuses it before any action
    answer = await api.post("/api/batches/nope/priority", json={"priority": "low"})
    assert answer.status_code == 404
    log = (await api.get("/api/actions")).json()
    assert [(a["action"], a["outcome"]) for a in log] == [
        ("prioritise", "refused"),
        ("prioritise", "accepted"),
        ("cancel", "refused"),
        ("cancel", "accepted"),
        ("submit", "accepted"),
    ]
    # The caller with the bootstrap CONSOLE_TOKEN (no admin account yet), by address.
    assert log[-1]["actor"] == {
        "name": "CONSOLE_TOKEN",
        "role": "admin",
        "via": "api",
        "address": "192.0.2.7",
        "os_user": None,
    }
    assert log[0]["reason"] == "unknown batch 'nope'"
    assert (log[1]["old_level"], log[1]["new_level"]) == ("normal", "high")
    assert log[2]["key"] == "nope" and "never submitted" in log[2]["reason"]
    cancels = (await api.get("/api/actions", params={"key": "acme-banner"})).json()
    assert [a["action"] for a in cancels] == ["cancel"] and cancels[0]["batch"] == "spring"
    # The refused prioritise names its batch, "nope"; spring has its submit, cancel, prioritise.
    assert len((await api.get("/api/actions", params={"batch": "spring"})).json()) == 3
    assert (await api.get("/api/actions", params={"actor": "bob"})).json() == []
    assert len((await api.get("/api/actions", params={"limit": 2})).json()) == 2
    assert (await api.get("/api/actions", params={"limit": 0})).status_code == 422
    unauthenticated = await api.get("/api/actions", headers={"Authorization": ""})
    assert unauthenticated.status_code == 401


async def test_the_pages_show_names_the_log_and_find_entities(
    api: httpx.AsyncClient, service: ServiceContext
) -> None:
    assert (await api.post("/api/batches", content=spring())).status_code == 201
    assert (await api.post("/api/batches", content=spring("other"))).status_code == 201
    assert (await api.post("/api/entities/acme-spring/cancel")).status_code == 202

    batch = (await api.get("/batches/spring")).text
    assert "Banner" not in batch  # the hostile creative's name replaced it
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in batch and "<img" not in batch
    assert '<td class="name">Spring</td>' in batch
    assert 'id="action-log"' in batch and "CONSOLE_TOKEN" in batch
    assert re.search(r'<time datetime="[^"]+\+00:00" title="[^"]+ UTC">', batch)

    # Filters are the page's query: the same URL gives the same rows.
    filtered = (await api.get("/batches/spring", params={"q": "SPRING", "type": "campaigns"})).text
    rows = re.findall(r'<tr data-key="([^"]+)"', filtered)
    assert rows == ["acme-spring"]
    assert 'id="filter-q" value="SPRING"' in filtered
    assert '<option value="campaigns" selected>' in filtered

    entity = (await api.get("/entities/acme-spring")).text
    log = entity[entity.index('id="action-log"') : entity.index("audit-heading")]
    assert "cancel" in log and "submit" in log and "whole batch" not in log
    assert 'id="workflow-link"' in entity and "/workflows/dsp-entity-acme-spring" in entity

    found = (await api.get("/search", params={"q": "onerror"})).text
    assert re.findall(r'<tr data-key="([^"]+)"', found) == ["acme-banner"]
    assert "<img" not in found
    by_key = (await api.get("/search", params={"q": "acme-spring-ag"})).text
    assert re.findall(r'<tr data-key="([^"]+)"', by_key) == ["acme-spring-ag1"]
    wildcard = (await api.get("/search", params={"q": "%"})).text
    assert "Nothing found" in wildcard

    index = (await api.get("/")).text
    assert 'role="search"' in index and 'class="skip-link"' in index
    assert index.count('<svg class="chart"') == 2 and "<script>" not in index
    assert "0 DSP requests in the last 60 minutes" in index
    fragment = await api.get("/activity/charts")
    assert fragment.status_code == 200 and fragment.text.count("<svg") == 2
    figures = (await api.get("/api/activity")).json()
    assert len(figures["requests_per_minute"]) == 60
    assert {t["type"] for t in figures["review_times"]} == {
        "advertisers",
        "campaigns",
        "creatives",
        "ad_groups",
    }


def test_actor_of_prefers_the_gates_actor() -> None:
    from starlette.requests import Request

    def request(path: str, **state: Any) -> Request:
        scope = {
            "type": "http",
            "path": path,
            "headers": [],
            "client": ("10.1.2.3", 1),
            "state": state,
        }
        return Request(scope)

    alice = Actor("alice", Role.OPERATOR, "console", "10.0.0.5")
    assert actor_of(request("/entities/k", actor=alice)) is alice
    anonymous = actor_of(request("/entities/k"))
    assert (anonymous.name, anonymous.via, anonymous.address) == (
        "anonymous",
        "console",
        "10.1.2.3",
    )
    assert actor_of(request("/api/entities/k/cancel")).via == "api"
