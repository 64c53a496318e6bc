"""A producer's view: a client generated from the console's own /openapi.json by
openapi-python-client (at test time, into a temporary directory), used against the real
stack to submit a batch, follow it to its end, cancel an entity and resubmit another."""

from __future__ import annotations

import asyncio
import importlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from devkit.mock_dsp.server import MockDspServer
from tests.integration.console_support import running_console
from tests.integration.dag import creative
from tests.integration.harness import Stack

GENERATOR = Path(sys.executable).with_name("openapi-python-client")
PACKAGE = "dsp_api_client"


def generate_client(document: dict[str, Any], into: Path) -> None:
    spec = into / "openapi.json"
    spec.write_text(json.dumps(document))
    config = into / "generator.yaml"
    config.write_text(f"package_name_override: {PACKAGE}\nproject_name_override: dsp-api-client\n")
    done = subprocess.run(
        [
            str(GENERATOR),
            "generate",
            "--path",
            str(spec),
            "--meta",
            "none",
            "--output-path",
            str(into / PACKAGE),
            "--config",
            str(config),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # The only part it leaves out: JSON Lines bodies (the JSON body covers the same file).
    warnings = [line for line in done.stdout.splitlines() if line.startswith("WARNING")]
    assert all("POST /api/batches" in line for line in warnings), done.stdout


@pytest.fixture
def client_package(tmp_path: Path) -> Iterator[Path]:
    sys.path.insert(0, str(tmp_path))
    try:
        yield tmp_path
    finally:
        sys.path.remove(str(tmp_path))
        for name in [n for n in sys.modules if n == PACKAGE or n.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]


def load(name: str) -> ModuleType:
    return importlib.import_module(f"{PACKAGE}.{name}")


async def until(check: Any, what: str, within: float = 60) -> Any:
    deadline = time.monotonic() + within
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"not {what} after {within:.0f} s")
        await asyncio.sleep(0.2)


async def test_a_generated_client_submits_follows_cancels_and_resubmits(
    stack: Stack, mock_dsp: MockDspServer, client_package: Path
) -> None:
    mock_dsp.dsp.hold("gc-cr-held")
    async with running_console(stack.settings, stack.service) as console:
        async with console.client() as api:
            document = (await api.get("/openapi.json")).json()
        generate_client(document, client_package)
        client_module = load("client")
        models = load("models")
        submit = load("api.api.post_batch")
        get_batch = load("api.api.get_batch")
        get_entity = load("api.api.get_entity")
        list_entities = load("api.api.list_entities")
        cancel = load("api.api.cancel_entity")
        resubmit = load("api.api.resubmit_entity")
        client = client_module.AuthenticatedClient(base_url=console.url, token=console.token)

        # Typed models for one entity, the file's own JSON for the rest: both are the schema.
        first = models.AdvertisersEntity(
            key="gc-adv",
            type_=models.AdvertisersEntityType.ADVERTISERS,
            payload=models.AdvertisersPayload(
                name="Generated Co", domain="generated.example", currency="USD"
            ),
        )
        rest = [
            creative("gc-cr", "gc-adv"),
            creative("gc-cr-bad", "gc-adv", reject=True),
            creative("gc-cr-held", "gc-adv"),
        ]
        entity_file = models.EntityFile.from_dict(
            {"batch": "gc", "entities": [first.to_dict(), *rest]}
        )
        assert entity_file.to_dict()["entities"][1] == rest[0]  # `$ref`s survive the models
        answer = await submit.asyncio_detailed(
            client=client, body=entity_file, priority=models.PriorityLevel.HIGH
        )
        assert answer.status_code == 201, answer.content
        assert isinstance(answer.parsed, models.SubmitAnswer)
        assert (answer.parsed.stored, answer.parsed.priority) == (4, "high")

        async def entity(key: str) -> Any:
            return await get_entity.asyncio(key, client=client)

        async def held_under_review() -> bool:
            return (await entity("gc-cr-held")).status == "polling"

        await until(held_under_review, "gc-cr-held under review")
        cancelled = await cancel.asyncio("gc-cr-held", client=client)
        assert isinstance(cancelled, models.CancelAnswer)
        assert cancelled.previous_status == "polling"

        async def ended() -> Any:
            batch = await get_batch.asyncio("gc", client=client)
            return batch if batch.finished else None

        batch = await until(ended, "batch gc ended", within=90)
        assert batch.counts.to_dict() == {"succeeded": 2, "rejected": 1, "cancelled": 1}

        rejected = await list_entities.asyncio(
            client=client, batch="gc", status=models.ListEntitiesStatus.REJECTED
        )
        assert [row.key for row in rejected.items] == ["gc-cr-bad"]

        # A payload the schema describes, as a typed model: accepted and run again.
        fixed = models.CreativesPayload.from_dict(creative("gc-cr-bad", "gc-adv")["payload"])
        again = await resubmit.asyncio(
            "gc-cr-bad", client=client, body=models.ResubmitBody(payload=fixed)
        )
        assert isinstance(again, models.ResubmitAnswer), again
        assert (again.payload_version, again.previous_status) == (2, "rejected")

        async def succeeded() -> bool:
            return (await entity("gc-cr-bad")).status == "succeeded"

        await until(succeeded, "gc-cr-bad succeeded")

        # Errors come back as the documented Problem Details, parsed by the client.
        ended_already = await cancel.asyncio_detailed("gc-cr", client=client)
        assert ended_already.status_code == 409
        assert isinstance(ended_already.parsed, models.ProblemDetails)
        assert ended_already.parsed.status == 409 and "already ended" in ended_already.parsed.detail
        unknown = await get_entity.asyncio_detailed("gc-nobody", client=client)
        assert unknown.status_code == 404 and unknown.parsed.title == "Not Found"
        assert unknown.headers["content-type"] == "application/problem+json"
        await client.get_async_httpx_client().aclose()
