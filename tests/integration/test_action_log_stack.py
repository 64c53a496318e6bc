"""Who did what, on the real stack: a cancel through the HTTP API is in the action log with
the person's name and address, and the cancel signal in the workflow's history carries them
(`requested_by`), so the Temporal web UI shows who asked."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType

from devkit.mock_dsp.server import MockDspServer
from dsp_integration.client import accounts
from dsp_integration.client.actors import Role, cli_actor
from dsp_integration.contracts import SIGNAL_CANCEL, CancelRequest, workflow_id_for
from tests.integration.console_support import running_console
from tests.integration.dag import advertiser, creative
from tests.integration.harness import Stack


async def _until(check: Any, what: str, within: float = 60) -> Any:
    deadline = time.monotonic() + within
    while True:
        found = await check()
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} after {within:.0f} s")
        await asyncio.sleep(0.2)


async def test_a_cancel_names_its_requester_in_the_log_and_the_workflow_history(
    stack: Stack, mock_dsp: MockDspServer
) -> None:
    mock_dsp.dsp.hold("who-cr")
    file = {"batch": "who", "entities": [advertiser("who-adv"), creative("who-cr", "who-adv")]}
    # Olivia, an operator, calls the API with her own token.
    await accounts.add_account(
        stack.service.sessions, cli_actor(), "olivia", Role.OPERATOR, "x" * 16
    )
    token = (await accounts.create_token(stack.service.sessions, cli_actor(), "olivia")).token
    async with (
        running_console(stack.settings, stack.service) as console,
        console.client(token=token) as api,
    ):
        assert (await api.post("/api/batches", content=json.dumps(file))).status_code == 201

        async def polling() -> bool:
            entity = (await api.get("/api/entities/who-cr")).json()
            return bool(entity["status"] == "polling")

        await _until(polling, "creative under review")
        assert (await api.post("/api/entities/who-cr/cancel")).status_code == 202

        async def cancelled() -> bool:
            entity = (await api.get("/api/entities/who-cr")).json()
            return bool(entity["status"] == "cancelled")

        await _until(cancelled, "cancelled creative")
        assert (await api.post("/api/entities/who-cr/cancel")).status_code == 409
        log = (await api.get("/api/actions", params={"key": "who-cr"})).json()

    assert [(a["action"], a["outcome"]) for a in log] == [
        ("cancel", "refused"),
        ("cancel", "accepted"),
    ]
    assert all(a["actor"]["name"] == "olivia" and a["actor"]["role"] == "operator" for a in log)
    assert log[1]["detail"] == {"previous_status": "polling"} and log[1]["batch"] == "who"
    assert "already ended cancelled" in log[0]["reason"]

    client = await stack.service.temporal()
    signals = []
    async for event in client.get_workflow_handle(workflow_id_for("who-cr")).fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            attributes = event.workflow_execution_signaled_event_attributes
            if attributes.signal_name == SIGNAL_CANCEL:
                signals.append(attributes.input.payloads)
    assert len(signals) == 1
    (request,) = client.data_converter.payload_converter.from_payloads(signals[0], [CancelRequest])
    assert request.requested_by == "olivia via api (127.0.0.1)"
    # As the Temporal web UI shows the payload: plain JSON naming the person.
    assert signals[0][0].metadata["encoding"] == b"json/plain"
    assert json.loads(signals[0][0].data)["requested_by"] == "olivia via api (127.0.0.1)"
