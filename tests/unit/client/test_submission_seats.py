"""Seats through the client and the console, without a worker: `submit` stores each entity's
seat (checked against the configured seats, threaded in from the settings), a resubmit keeps
it, and `status`, the API and the console pages show it. Workflows are started on a real
Temporal dev server and left waiting: nothing here needs them to run."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from pydantic import SecretStr
from temporalio.client import Client

from devkit.stack.temporal_server import TemporalDevServer
from dsp_integration.client import control, submission
from dsp_integration.client.actors import cli_actor
from dsp_integration.client.context import ServiceContext
from dsp_integration.commands import starter
from dsp_integration.config import Settings
from dsp_integration.config.seat_config import SeatConfig
from dsp_integration.console import create_app
from dsp_integration.database import queue_store
from dsp_integration.database.engine import SessionFactory
from dsp_integration.entities import SubmissionRefused, parse_submission
from tests.unit.entities.test_entities_parser import example_entities

CONSOLE_TOKEN = "unit-seats-console-token"


@pytest_asyncio.fixture
async def service(
    clean_database: SessionFactory,
    temporal_server: TemporalDevServer,
    temporal_client: Client,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[ServiceContext]:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        dsp_seats=[SeatConfig(name="eu"), SeatConfig(name="us")],
        temporal_address=temporal_server.address,
        temporal_task_queue=f"tq-seats-{uuid.uuid4().hex[:12]}",
        console_token=SecretStr(CONSOLE_TOKEN),
    )
    yield ServiceContext(settings, clean_database, temporal_client)


def seat_file(batch: str = "spring") -> list[dict[str, Any]]:
    """The example file for seat eu, and one advertiser of seat us waiting on it."""
    us_advertiser = {**example_entities()[0], "key": "acme-us", "seat": "us"}
    us_advertiser["depends_on"] = ["acme"]
    return [*example_entities(), us_advertiser]


def as_file(entities: list[dict[str, Any]], **top: Any) -> bytes:
    return json.dumps({"batch": "spring", **top, "entities": entities}).encode()


async def stored_seats(service: ServiceContext) -> dict[str, str]:
    async with service.sessions() as session:
        rows = await queue_store.fetch_entities(
            session, [e["key"] for e in seat_file()] + ["acme-lone"]
        )
    return {key: row.seat for key, row in rows.items()}


async def test_submit_stores_each_seat_and_a_resubmit_keeps_it(service: ServiceContext) -> None:
    data = as_file(seat_file(), seat="eu")
    report = await submission.submit(
        service, parse_submission(data, filename="s.json"), actor=cli_actor()
    )
    assert report.stored == 5
    assert await stored_seats(service) == {
        "acme": "eu",
        "acme-spring": "eu",
        "acme-banner": "eu",
        "acme-spring-ag1": "eu",
        "acme-us": "us",
    }

    # The very same file again: nothing new, nothing refused.
    again = await submission.submit(
        service, parse_submission(data, filename="s.json"), actor=cli_actor()
    )
    assert again.stored == 0 and again.entities == 5

    # The same keys for another seat: refused whole, nothing stored.
    moved = as_file([*seat_file(), {**example_entities()[0], "key": "acme-lone"}], seat="us")
    with pytest.raises(SubmissionRefused) as caught:
        await submission.submit(
            service, parse_submission(moved, filename="s.json"), actor=cli_actor()
        )
    fields = {(p.key, p.field) for p in caught.value.problems}
    assert ("acme", "seat") in fields and ("acme-us", "seat") not in fields
    assert "for seat 'eu', not 'us'" in str(caught.value.problems[0])
    assert "acme-lone" not in await stored_seats(service)

    # A seat that is not configured: refused, naming the configured ones.
    unknown = as_file([{**example_entities()[0], "key": "acme-lone"}], seat="asia")
    with pytest.raises(SubmissionRefused, match="the configured seats are: 'default', 'eu'"):
        await submission.submit(
            service, parse_submission(unknown, filename="s.json"), actor=cli_actor()
        )

    # A resubmit keeps the seat; its new payload's $refs must stay within it.
    report_resubmit = await control.resubmit(
        service,
        "acme-spring",
        {**example_entities()[1]["payload"], "name": "Spring 2"},
        actor=cli_actor(),
    )
    assert report_resubmit.payload_version == 2
    async with service.sessions() as session:
        snapshot = await queue_store.load_snapshot(session, "acme-spring")
    assert snapshot is not None and snapshot.seat == "eu" and snapshot.payload_version == 2
    across = {**example_entities()[1]["payload"], "advertiser_id": {"$ref": "acme-us"}}
    with pytest.raises(SubmissionRefused, match="of seat 'us', but this entity is of seat 'eu'"):
        await control.resubmit(service, "acme-spring", across, actor=cli_actor())
    assert (await stored_seats(service))["acme-spring"] == "eu"


async def test_status_the_api_and_the_console_show_the_seat(
    service: ServiceContext, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = as_file(seat_file(), seat="eu")
    await submission.submit(service, parse_submission(data, filename="s.json"), actor=cli_actor())

    app = create_app(service.settings, service=service)
    app.state.service = service  # the lifespan, which sets it, does not run under ASGITransport
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {CONSOLE_TOKEN}"}
    async with httpx.AsyncClient(
        transport=transport, base_url="http://127.0.0.1", headers=headers
    ) as api:
        entity = (await api.get("/api/entities/acme-us")).json()
        assert entity["seat"] == "us"
        listed = (await api.get("/api/entities", params={"batch": "spring"})).json()
        assert {row["key"]: row["seat"] for row in listed["items"]}["acme"] == "eu"
        only_us = (await api.get("/api/entities", params={"seat": "us"})).json()
        assert [row["key"] for row in only_us["items"]] == ["acme-us"]
        batch = (await api.get("/api/batches/spring")).json()
        assert batch["seats"] == ["eu", "us"]
        assert (await api.get("/api/batches")).json()[0]["seats"] == ["eu", "us"]
        document = (await api.get("/openapi.json")).json()
        assert "seat" in document["components"]["schemas"]["EntityOut"]["properties"]

        page = (await api.get("/batches/spring")).text
        assert (
            '<th scope="col">seat</th>' in page and "<td>us</td>" in page and "seats eu, us" in page
        )
        entity_page = (await api.get("/entities/acme-us")).text
        assert '<dd id="entity-seat">us</dd>' in entity_page

    monkeypatch.setenv("COLUMNS", "200")
    assert await starter._status(service, ["acme", "acme-us"], None, False) == 0
    table = capsys.readouterr().out
    header = next(line for line in table.splitlines() if "key" in line and "batch" in line)
    assert "seat" in header
    assert any("acme-us" in line and " us " in line for line in table.splitlines())
    await starter._print_summary(service, "spring")
    assert "seat eu 4, us 1" in capsys.readouterr().out
    assert await starter._status(service, ["acme"], None, True) == 0
    assert json.loads(capsys.readouterr().out)[0]["seat"] == "eu"
