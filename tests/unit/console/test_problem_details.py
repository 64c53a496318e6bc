"""Every error answer under /api is Problem Details (RFC 9457): the same members, the
`application/problem+json` type, whoever answers (the gate, FastAPI, the handlers)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from pydantic import SecretStr

from dsp_integration.client.context import ServiceContext
from dsp_integration.config import Settings
from dsp_integration.console import create_app
from dsp_integration.console.schemas import ProblemDetails
from dsp_integration.database.engine import SessionFactory

TOKEN = "unit-problem-token"
MEMBERS = {"type", "title", "status", "detail", "instance", "problems"}


@asynccontextmanager
async def _client(
    sessions: SessionFactory, token: str | None = TOKEN, *, authorized: bool = True
) -> AsyncIterator[httpx.AsyncClient]:
    """The console over the test's database (the gate reads the accounts), no Temporal:
    every answer below is made before Temporal would be asked."""
    settings = Settings(_env_file=None, console_token=SecretStr(token) if token else None)  # type: ignore[call-arg]
    app = create_app(settings)
    app.state.service = ServiceContext(settings, sessions)
    headers = {"Authorization": f"Bearer {TOKEN}"} if token and authorized else {}
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", headers=headers
    ) as client:
        yield client


def _problem(answer: httpx.Response, status: int) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = answer.json()
    assert set(body) == MEMBERS
    ProblemDetails.model_validate(body)
    assert body["type"] == "about:blank" and body["status"] == status
    # The gate names nothing of what was asked for to a caller it does not know.
    assert body["instance"] in (answer.request.url.path, None)
    return body


async def test_the_gates_refusals_are_problem_details(clean_database: SessionFactory) -> None:
    async with _client(clean_database, authorized=False) as anonymous:
        body = _problem(await anonymous.get("/api/batches"), 401)
        assert body["title"] == "Unauthorized" and body["detail"] == "authentication required"
        assert _problem(await anonymous.get("/openapi.json"), 401)["problems"] == []
    async with _client(clean_database) as client:
        cross = await client.post(
            "/api/batches", content=b"{}", headers={"Origin": "https://x.example"}
        )
    assert _problem(cross, 403)["detail"] == "cross-site request refused"


async def test_a_body_that_is_not_json_is_a_400(clean_database: SessionFactory) -> None:
    async with _client(clean_database) as client:
        for body in (b"{not json", b"\xff\xfe{"):
            answer = await client.post(
                "/api/batches/b/priority",
                content=body,
                headers={"Content-Type": "application/json"},
            )
            problem = _problem(answer, 400)
            assert "not JSON" in problem["detail"] and problem["problems"][0]["field"] == "body"


async def test_a_body_the_schema_refuses_is_a_422_naming_each_problem(
    clean_database: SessionFactory,
) -> None:
    async with _client(clean_database) as client:
        for body, field in (
            ({}, "body"),
            ({"priority": None}, "body.priority"),
            ({"fairness_weight": 0}, "body.fairness_weight"),
            ({"fairness_weight": 1, "urgent": True}, "body.urgent"),
        ):
            problem = _problem(await client.post("/api/batches/b/priority", json=body), 422)
            assert field in [p["field"] for p in problem["problems"]], (body, problem)
        bounds = _problem(await client.get("/api/entities", params={"limit": 0}), 422)
        assert bounds["problems"][0]["field"] == "limit"
        bad_key = _problem(await client.get("/api/entities/not a key"), 422)
        assert bad_key["problems"][0]["field"] == "key"


async def test_a_method_the_path_does_not_take_is_a_405_listing_those_it_does(
    clean_database: SessionFactory,
) -> None:
    async with _client(clean_database) as client:
        answer = await client.delete("/api/batches")
    _problem(answer, 405)
    assert answer.headers["allow"] == "GET, POST"


async def test_pages_keep_their_error_page(clean_database: SessionFactory) -> None:
    async with _client(clean_database, None) as client:
        answer = await client.get("/no-such-page")
    assert answer.status_code == 404 and "problem" not in answer.headers["content-type"]
