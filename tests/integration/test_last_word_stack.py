"""The last word wins on the real stack (Temporal dev server, PostgreSQL, `run_worker`, the
mock DSP over HTTP) while a DSP answer is on its way: the mock acts on the request and holds
its answer until the user's cancel or resubmit is in the workflow's history, so each test
forces the order it names. And a fan-out past the local limit ends every dependant."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHistory

import devkit.mock_dsp.api
from devkit.mock_dsp.answer_gates import AnswerGate
from devkit.mock_dsp.api import ApiAnswer, ApiCall
from devkit.mock_dsp.config import FaultKind
from devkit.mock_dsp.request_log import RequestRecord
from devkit.mock_dsp.server import MockDspServer
from devkit.mock_dsp.state import MockDsp
from devkit.stack.temporal_server import TemporalDevServer
from dsp_integration.client import control
from dsp_integration.client.actors import cli_actor
from dsp_integration.client.submission import read_submission, submit
from dsp_integration.contracts import SIGNAL_CANCEL, SIGNAL_RESUBMIT, workflow_id_for
from dsp_integration.database.engine import SessionFactory
from dsp_integration.database.models import QueuedEntity
from dsp_integration.workflows.activity_options import LOCAL_FAN_OUT_LIMIT
from tests.integration.conftest import mock_config, open_test_stack
from tests.integration.dag import advertiser, campaign, creative
from tests.integration.fault_support import (
    assert_audit_accounts_for,
    assert_one_dsp_entity_per_key,
    audit_rows,
    end_statuses,
)
from tests.integration.harness import Stack, write_entities

# A held answer stays within the client's timeout: the service hears it, late.
DSP_TIMEOUT = 20.0
# Campaigns past the limit of dependants told in the finishing local activity.
FAN_OUT_CAMPAIGNS = LOCAL_FAN_OUT_LIMIT + 6
FAN_OUT_RATE_LIMIT = 120


@pytest_asyncio.fixture
async def patient_stack(
    clean_database: SessionFactory,
    database_url: str,
    temporal_server: TemporalDevServer,
    temporal_client: Client,
    mock_dsp: MockDspServer,
) -> AsyncIterator[Stack]:
    """The stack with a DSP timeout longer than any held answer."""
    async with open_test_stack(
        database_url, temporal_server, temporal_client, mock_dsp, dsp_timeout=DSP_TIMEOUT
    ) as opened:
        yield opened


@dataclass
class HeldAnswer:
    """One request whose answer the mock holds: the first one matching, optionally under a
    fault, and only if `when` accepts its answer."""

    method: str
    path_part: str | None
    idempotency_key: str | None
    fault: FaultKind | None
    when: Callable[[ApiAnswer], bool] | None
    gate: AnswerGate = field(default_factory=AnswerGate)
    record: RequestRecord | None = None

    def matches(self, call: ApiCall) -> bool:
        return (
            call.method == self.method
            and (self.idempotency_key is None or call.idempotency_key == self.idempotency_key)
            and (self.path_part is None or self.path_part in call.path)
        )

    async def until_held(self, within: float = 30.0) -> RequestRecord:
        async def arrived() -> bool:
            return self.record is not None

        await _until(arrived, f"no {self.method} came to be held", within)
        assert self.record is not None
        return self.record


class HeldAnswers:
    """Installed by swapping `devkit.mock_dsp.api.answer` (as `ScriptedFaults` does): the
    mock processes the request as usual and hands the endpoint the gate to wait on."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self._waiting: list[HeldAnswer] = []
        self._all: list[HeldAnswer] = []
        original = devkit.mock_dsp.api.answer

        def answer(dsp: MockDsp, call: ApiCall) -> ApiAnswer:
            hold = next((h for h in self._waiting if h.matches(call)), None)
            if hold is None:
                return original(dsp, call)
            result = _answer_under(original, dsp, call, hold.fault)
            refused = result.record.status == 429
            if refused or (hold.when is not None and not hold.when(result)):
                return result
            self._waiting.remove(hold)
            hold.record = result.record
            return replace(result, gate=hold.gate)

        monkeypatch.setattr(devkit.mock_dsp.api, "answer", answer)

    def hold(
        self,
        method: str,
        *,
        path_part: str | None = None,
        idempotency_key: str | None = None,
        fault: FaultKind | None = None,
        when: Callable[[ApiAnswer], bool] | None = None,
    ) -> HeldAnswer:
        held = HeldAnswer(method, path_part, idempotency_key, fault, when)
        self._waiting.append(held)
        self._all.append(held)
        return held

    def release_all(self) -> None:
        for held in self._all:
            held.gate.release()


def _answer_under(
    original: Callable[[MockDsp, ApiCall], ApiAnswer],
    dsp: MockDsp,
    call: ApiCall,
    fault: FaultKind | None,
) -> ApiAnswer:
    if fault is None:
        return original(dsp, call)
    saved = dsp._config
    dsp._config = saved.model_copy(update={"fault_rate": 1.0, "fault_kinds": [fault]})
    try:
        return original(dsp, call)
    finally:
        dsp._config = saved


@pytest.fixture
def held(mock_dsp: MockDspServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[HeldAnswers]:
    answers = HeldAnswers(monkeypatch)
    yield answers
    answers.release_all()


async def test_a_cancel_while_a_posts_answer_is_on_its_way_archives_the_entity(
    patient_stack: Stack, mock_dsp: MockDspServer, held: HeldAnswers, tmp_path: Path
) -> None:
    key = "lw-post-cancel"
    post = held.hold("POST", idempotency_key=f"{key}:v1")
    await _submit(patient_stack, tmp_path, [advertiser(key)])
    created = (await post.until_held()).created_id
    assert created is not None

    await control.cancel(patient_stack.service, key, actor=cli_actor())
    await _until_signalled(patient_stack, key, SIGNAL_CANCEL)
    post.gate.release()

    assert await end_statuses(patient_stack.service, [key], within=30) == {key: "cancelled"}
    assert mock_dsp.dsp.status_of(created) == "archived"
    _assert_nothing_live(mock_dsp.dsp)
    assert _calls(mock_dsp.dsp) == [("POST", None), ("DELETE", created)]
    await _assert_accounted(patient_stack, mock_dsp.dsp, key)


async def test_a_cancel_while_a_503_after_a_create_is_on_its_way_finds_and_archives_it(
    patient_stack: Stack, mock_dsp: MockDspServer, held: HeldAnswers, tmp_path: Path
) -> None:
    """The answer is released as soon as the cancel is in the history, so it usually reaches
    the activity before the cancel does: the attempt fails (Temporal retries no attempt of a
    cancelled call) and the workflow must still find out and archive what the POST created.
    Before the fix the run failed there, the row stayed `submitting`, the entity live."""
    key = "lw-503-cancel"
    post = held.hold("POST", idempotency_key=f"{key}:v1", fault="503_after")
    await _submit(patient_stack, tmp_path, [advertiser(key)])
    created = (await post.until_held()).created_id
    assert created is not None  # the DSP acted; its answer says 503

    await control.cancel(patient_stack.service, key, actor=cli_actor())
    await _until_signalled(patient_stack, key, SIGNAL_CANCEL)
    post.gate.release()

    assert await end_statuses(patient_stack.service, [key], within=30) == {key: "cancelled"}
    assert mock_dsp.dsp.status_of(created) == "archived"
    _assert_nothing_live(mock_dsp.dsp)
    posts = [r for r in mock_dsp.dsp.request_log if r.method == "POST"]
    assert [(r.status, r.fault, r.replayed) for r in posts] == [
        (503, "503_after", False),
        (201, None, True),  # the replay that found out what the first one created
    ]
    assert _calls(mock_dsp.dsp)[-1] == ("DELETE", created)
    history = await _history(patient_stack, key)
    assert "find_created_entity" in _activities(history)
    await _assert_accounted(patient_stack, mock_dsp.dsp, key)


async def test_a_resubmit_while_a_posts_answer_is_on_its_way_puts_over_that_entity(
    patient_stack: Stack, mock_dsp: MockDspServer, held: HeldAnswers, tmp_path: Path
) -> None:
    key = "lw-post-resubmit"
    post = held.hold("POST", idempotency_key=f"{key}:v1")
    first = advertiser(key)
    await _submit(patient_stack, tmp_path, [first])
    created = (await post.until_held()).created_id
    assert created is not None

    second = {**first["payload"], "name": "Advertiser renamed"}
    await control.resubmit(patient_stack.service, key, payload=second, actor=cli_actor())
    await _until_signalled(patient_stack, key, SIGNAL_RESUBMIT)
    post.gate.release()

    await _until(
        lambda: _ended_at_version(patient_stack, key, 2), "version 2 never ended", within=30
    )
    row = await _row(patient_stack, key)
    assert (row.status, row.dsp_id) == ("succeeded", created)
    [entity] = mock_dsp.dsp.entity_views()
    assert (entity["id"], entity["name"], entity["status"]) == (created, second["name"], "active")
    puts = [r for r in mock_dsp.dsp.request_log if r.method == "PUT"]
    assert [(r.path, r.status, r.body) for r in puts] == [
        (f"/v1/advertisers/{created}", 200, second)
    ]
    await _assert_accounted(patient_stack, mock_dsp.dsp, key)


async def test_a_cancel_while_a_poll_answering_success_is_on_its_way_archives_the_entity(
    patient_stack: Stack, mock_dsp: MockDspServer, held: HeldAnswers, tmp_path: Path
) -> None:
    adv, key = "lw-poll-adv", "lw-poll-creative"
    poll = held.hold(
        "GET",
        path_part="/v1/creatives/",
        when=lambda answer: (answer.reply.body or {}).get("status") == "approved",
    )
    await _submit(patient_stack, tmp_path, [advertiser(adv), creative(key, adv)])
    read = await poll.until_held()
    creative_id = read.path.split("/")[3]

    await control.cancel(patient_stack.service, key, actor=cli_actor())
    await _until_signalled(patient_stack, key, SIGNAL_CANCEL)
    poll.gate.release()

    statuses = await end_statuses(patient_stack.service, [adv, key], within=30)
    assert statuses == {adv: "succeeded", key: "cancelled"}
    assert mock_dsp.dsp.status_of(creative_id) == "archived"
    deletes = [r for r in mock_dsp.dsp.request_log if r.method == "DELETE"]
    assert [(r.path, r.status) for r in deletes] == [(f"/v1/creatives/{creative_id}", 200)]
    assert mock_dsp.dsp.request_log.index(deletes[0]) > mock_dsp.dsp.request_log.index(read)
    await _assert_accounted(patient_stack, mock_dsp.dsp, adv, key)


async def test_a_cancel_while_a_puts_answer_is_on_its_way_archives_the_entity(
    patient_stack: Stack, mock_dsp: MockDspServer, held: HeldAnswers, tmp_path: Path
) -> None:
    key = "lw-put-cancel"
    first = advertiser(key)
    await _submit(patient_stack, tmp_path, [first])
    assert await end_statuses(patient_stack.service, [key], within=30) == {key: "succeeded"}
    created = (await _row(patient_stack, key)).dsp_id
    assert created is not None
    put = held.hold("PUT", path_part=f"/{created}")

    await control.resubmit(
        patient_stack.service, key, payload={**first["payload"], "name": "v2"}, actor=cli_actor()
    )
    await put.until_held()
    await control.cancel(patient_stack.service, key, actor=cli_actor())
    await _until_signalled(patient_stack, key, SIGNAL_CANCEL)
    put.gate.release()

    assert await end_statuses(patient_stack.service, [key], within=30) == {key: "cancelled"}
    assert mock_dsp.dsp.status_of(created) == "archived"
    _assert_nothing_live(mock_dsp.dsp)
    assert _calls(mock_dsp.dsp) == [("POST", None), ("PUT", created), ("DELETE", created)]
    await _assert_accounted(patient_stack, mock_dsp.dsp, key)


async def test_a_resubmit_while_a_deletes_answer_is_on_its_way_posts_the_new_version(
    patient_stack: Stack, mock_dsp: MockDspServer, held: HeldAnswers, tmp_path: Path
) -> None:
    """The archive a cancel asked for stands; the resubmit that came while its answer was on
    its way then creates the new version as a new entity (an archived one takes no PUT)."""
    key = "lw-delete-resubmit"
    post = held.hold("POST", idempotency_key=f"{key}:v1")
    delete = held.hold("DELETE")
    first = advertiser(key)
    await _submit(patient_stack, tmp_path, [first])
    archived = (await post.until_held()).created_id
    await control.cancel(patient_stack.service, key, actor=cli_actor())
    await _until_signalled(patient_stack, key, SIGNAL_CANCEL)
    post.gate.release()
    assert (await delete.until_held()).path == f"/v1/advertisers/{archived}"

    second = {**first["payload"], "name": "Advertiser again"}
    await control.resubmit(patient_stack.service, key, payload=second, actor=cli_actor())
    await _until_signalled(patient_stack, key, SIGNAL_RESUBMIT)
    delete.gate.release()

    await _until(
        lambda: _ended_at_version(patient_stack, key, 2), "version 2 never ended", within=30
    )
    row = await _row(patient_stack, key)
    assert row.status == "succeeded" and row.dsp_id not in (None, archived)
    assert mock_dsp.dsp.status_of(archived) == "archived"
    live = [e for e in mock_dsp.dsp.entity_views() if e["status"] != "archived"]
    assert [(e["id"], e["name"]) for e in live] == [(row.dsp_id, second["name"])]
    posts = [r for r in mock_dsp.dsp.request_log if r.method == "POST"]
    assert [(r.idempotency_key, r.created_id) for r in posts] == [
        (f"{key}:v1", archived),
        (f"{key}:v2", row.dsp_id),
    ]
    assert_audit_accounts_for(
        mock_dsp.dsp.request_log, await audit_rows(patient_stack.service.sessions)
    )


async def test_a_fan_out_past_the_local_limit_ends_every_dependant(
    clean_database: SessionFactory,
    database_url: str,
    temporal_server: TemporalDevServer,
    temporal_client: Client,
    mock_dsp: MockDspServer,
    tmp_path: Path,
) -> None:
    mock_dsp.dsp.config = mock_config().model_copy(update={"rate_limit": FAN_OUT_RATE_LIMIT})
    adv = "lw-fan-adv"
    campaigns = [f"lw-fan-cmp{n:02d}" for n in range(FAN_OUT_CAMPAIGNS)]
    entities = [advertiser(adv)] + [campaign(key, adv) for key in campaigns]
    async with open_test_stack(
        database_url,
        temporal_server,
        temporal_client,
        mock_dsp,
        dsp_rate_limit=FAN_OUT_RATE_LIMIT,
    ) as stack:
        await _submit(stack, tmp_path, entities)
        statuses = await end_statuses(stack.service, [adv, *campaigns], within=60)
        assert statuses == dict.fromkeys([adv, *campaigns], "succeeded")
        history = await _history(stack, adv)
        # Past the limit the advertiser tells its dependants in a regular activity.
        assert "tell_dependants" in _activities(history)
        rows = {key: await _row(stack, key) for key in [adv, *campaigns]}
        assert_one_dsp_entity_per_key(mock_dsp.dsp, {k: r.dsp_id for k, r in rows.items()})


# --- what the tests share --------------------------------------------------------------


async def _submit(stack: Stack, tmp_path: Path, entities: list[dict[str, Any]]) -> None:
    path = write_entities(tmp_path / "entities.json", "lw", entities)
    await submit(stack.service, read_submission(path), actor=cli_actor())


async def _until(check: Callable[[], Awaitable[bool]], failure: str, within: float) -> None:
    """Look again every 50 ms until `check` holds; fail after `within` seconds."""
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, f"{failure} (within {within:.0f} s)"
        await asyncio.sleep(0.05)


async def _history(stack: Stack, key: str) -> WorkflowHistory:
    client = await stack.service.temporal()
    return await client.get_workflow_handle(workflow_id_for(key)).fetch_history()


async def _until_signalled(stack: Stack, key: str, signal: str) -> None:
    """Until the workflow's history holds `signal`: from there on the workflow hears the
    user's word before any answer released afterwards."""

    async def signalled() -> bool:
        history = await _history(stack, key)
        return any(
            e.workflow_execution_signaled_event_attributes.signal_name == signal
            for e in history.events
        )

    await _until(signalled, f"no {signal} signal in the history of {key}", within=10)


def _activities(history: WorkflowHistory) -> list[str]:
    return [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]


async def _row(stack: Stack, key: str) -> QueuedEntity:
    async with stack.service.sessions() as session:
        row = await session.get(QueuedEntity, key)
    assert row is not None, key
    return row


async def _ended_at_version(stack: Stack, key: str, version: int) -> bool:
    row = await _row(stack, key)
    return row.payload_version == version and row.finished_at is not None


def _calls(dsp: MockDsp) -> list[tuple[str, str | None]]:
    """Every request but 429s, as (method, the entity id in its path)."""
    return [
        (r.method, r.path.split("/")[3] if r.path.count("/") >= 3 else None)
        for r in dsp.request_log
        if r.status != 429
    ]


def _assert_nothing_live(dsp: MockDsp) -> None:
    live = [e for e in dsp.entity_views() if e["status"] != "archived"]
    assert not live, f"entities left live at the DSP: {live}"


async def _assert_accounted(stack: Stack, dsp: MockDsp, *keys: str) -> None:
    rows = {key: await _row(stack, key) for key in keys}
    assert_one_dsp_entity_per_key(dsp, {key: row.dsp_id for key, row in rows.items()})
    assert_audit_accounts_for(dsp.request_log, await audit_rows(stack.service.sessions))
