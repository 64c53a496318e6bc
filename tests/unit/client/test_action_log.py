"""The action log: `record_action` and its reads, and every client action writing its row,
accepted or refused (with the reason, and nothing else stored), on a real database and a
real Temporal dev server (workflows are started and left waiting: no worker runs)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import func, select, update
from temporalio.client import Client

from devkit.stack.temporal_server import TemporalDevServer
from dsp_integration.client import control, submission
from dsp_integration.client.actors import Actor, Role
from dsp_integration.client.context import ServiceContext
from dsp_integration.client.errors import EntityEnded, UnknownBatch, UnknownEntity
from dsp_integration.config import Settings
from dsp_integration.contracts import (
    SIGNAL_CANCEL,
    SIGNAL_REPRIORITISE,
    SIGNAL_RESUBMIT,
    CancelRequest,
    PriorityLevel,
    ReprioritiseRequest,
    ResubmitRequest,
    workflow_id_for,
)
from dsp_integration.database import action_log, queue_store
from dsp_integration.database.action_log import ActionView, Outcome, record_action
from dsp_integration.database.engine import SessionFactory
from dsp_integration.database.models import ActionRecord, QueuedEntity
from dsp_integration.entities import SubmissionRefused, parse_submission
from tests.unit.entities.test_entities_parser import example_entities

ALICE = Actor(name="alice", role=Role.OPERATOR, via="console", address="10.0.0.5")
BOB = Actor(name="bob", role=Role.ADMIN, via="cli", os_user="bob")


@pytest_asyncio.fixture
async def service(
    clean_database: SessionFactory, temporal_server: TemporalDevServer, temporal_client: Client
) -> AsyncIterator[ServiceContext]:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        temporal_address=temporal_server.address,
        temporal_task_queue=f"tq-actions-{uuid.uuid4().hex[:12]}",
    )
    yield ServiceContext(settings, clean_database, temporal_client)


def spring_file(entities: list[dict[str, Any]] | None = None, batch: str = "spring") -> Any:
    data = json.dumps({"batch": batch, "entities": entities or example_entities()}).encode()
    return parse_submission(data, filename="spring.json")


async def log_of(service: ServiceContext, **filters: Any) -> list[ActionView]:
    async with service.sessions() as session:
        return await action_log.recent_actions(session, **filters)


async def stored_keys(service: ServiceContext) -> set[str]:
    async with service.sessions() as session:
        return set(await session.scalars(select(QueuedEntity.key)))


async def last_signal(client: Client, key: str, name: str, kind: type[Any]) -> Any:
    """The input of the latest `name` signal in the entity workflow's history (the session's
    Temporal server keeps the workflows of earlier tests, whose keys may be the same)."""
    found = []
    handle = client.get_workflow_handle(workflow_id_for(key))
    async for event in handle.fetch_history_events():
        if event.HasField("workflow_execution_signaled_event_attributes"):
            signal = event.workflow_execution_signaled_event_attributes
            if signal.signal_name == name:
                found.append(signal.input.payloads)
    assert found, f"no {name} signal in the history of {key}"
    (request,) = client.data_converter.payload_converter.from_payloads(found[-1], [kind])
    return request


async def test_record_action_and_its_reads(clean_database: SessionFactory) -> None:
    async with clean_database.begin() as session:
        before = await session.scalar(select(func.clock_timestamp()))
        await record_action(session, ALICE, "submit", batch="b1", new_level="high")
        await record_action(session, BOB, "cancel", batch="b1", entity_key="k1")
        await record_action(
            session,
            ALICE,
            "resubmit",
            batch="b1",
            entity_key="k2",
            old_version=1,
            new_version=2,
            outcome=Outcome.REFUSED,
            reason="not JSON",
        )
        await record_action(session, BOB, "prioritise", batch="b2", old_weight=1, new_weight=2.5)
    async with clean_database() as session:
        everything = await action_log.recent_actions(session)
        assert [row.action for row in everything] == ["prioritise", "resubmit", "cancel", "submit"]
        assert all(before is not None and row.at >= before for row in everything)
        assert everything[0].at - everything[-1].at < timedelta(seconds=5)
        by_key = await action_log.recent_actions(session, entity_key="k1")
        assert [(r.actor_name, r.where, r.action) for r in by_key] == [
            ("bob", "cli (bob)", "cancel")
        ]
        # The entity page's reads: the entity's own and its batch's batch-wide actions.
        with_batch = await action_log.recent_actions(
            session, entity_key="k1", batch="b1", with_batch_wide=True
        )
        assert [r.action for r in with_batch] == ["cancel", "submit"]
        assert [r.action for r in await action_log.recent_actions(session, batch="b1")] == [
            "resubmit",
            "cancel",
            "submit",
        ]
        alices = await action_log.recent_actions(session, actor_name="alice", limit=1)
        assert len(alices) == 1 and alices[0].outcome == "refused"
        assert alices[0].reason == "not JSON" and alices[0].change == "v1 → v2"
        assert alices[0].where == "console (10.0.0.5)"
    assert everything[0].change == "w1 → w2.5"
    assert everything[0].to_json()["actor"] == {
        "name": "bob",
        "role": "admin",
        "via": "cli",
        "address": None,
        "os_user": "bob",
    }


async def test_submit_records_accepted_and_refused_files(service: ServiceContext) -> None:
    report = await submission.submit(service, spring_file(), PriorityLevel.HIGH, 2.0, actor=ALICE)
    assert report.stored == 4
    (row,) = await log_of(service)
    assert (row.actor_name, row.actor_role, row.via, row.address) == (
        "alice",
        "operator",
        "console",
        "10.0.0.5",
    )
    assert (row.action, row.batch, row.outcome, row.reason) == (
        "submit",
        "spring",
        "accepted",
        None,
    )
    assert (row.new_level, row.new_weight) == ("high", 2.0)
    assert row.detail == {"entities": 4, "stored": 4}

    # A file that names a stored key with another payload: refused whole, only the row stored.
    changed = example_entities()
    changed[0]["payload"]["name"] = "Acme changed"
    changed.append({**example_entities()[0], "key": "acme-new"})
    with pytest.raises(SubmissionRefused):
        await submission.submit(service, spring_file(changed, "spring-2"), actor=BOB)
    assert "acme-new" not in await stored_keys(service)
    refused = (await log_of(service))[0]
    assert (refused.actor_name, refused.action, refused.batch) == ("bob", "submit", "spring-2")
    assert refused.outcome == "refused" and refused.reason and "acme" in refused.reason
    assert refused.detail is not None and refused.detail["problems"]


async def test_cancel_records_its_row_and_its_signal_names_the_actor(
    service: ServiceContext, temporal_client: Client
) -> None:
    await submission.submit(service, spring_file(), actor=BOB)
    assert await control.cancel(service, "acme-banner", actor=ALICE) == "waiting"
    row = (await log_of(service, entity_key="acme-banner"))[0]
    assert (row.actor_name, row.action, row.batch, row.outcome) == (
        "alice",
        "cancel",
        "spring",
        "accepted",
    )
    assert row.detail == {"previous_status": "waiting"}
    request = await last_signal(temporal_client, "acme-banner", SIGNAL_CANCEL, CancelRequest)
    assert request.requested_by == "alice via console (10.0.0.5)"

    # Unknown key, ended entity: refused, with why.
    with pytest.raises(UnknownEntity):
        await control.cancel(service, "no-such-key", actor=ALICE)
    async with service.sessions.begin() as session:
        await session.execute(
            update(QueuedEntity).where(QueuedEntity.key == "acme").values(status="succeeded")
        )
    with pytest.raises(EntityEnded):
        await control.cancel(service, "acme", actor=ALICE)
    ended, unknown = (await log_of(service, actor_name="alice"))[:2]
    assert (unknown.entity_key, unknown.outcome) == ("no-such-key", "refused")
    assert unknown.batch is None and "never submitted" in (unknown.reason or "")
    assert (ended.entity_key, ended.batch, ended.outcome) == ("acme", "spring", "refused")
    assert "already ended succeeded" in (ended.reason or "")


async def test_resubmit_records_the_versions_and_refusals(
    service: ServiceContext, temporal_client: Client
) -> None:
    await submission.submit(service, spring_file(), actor=BOB)
    new_payload = {**example_entities()[1]["payload"], "name": "Spring 2"}
    report = await control.resubmit(
        service, "acme-spring", new_payload, PriorityLevel.LOW, actor=ALICE
    )
    assert report.payload_version == 2
    row = (await log_of(service, entity_key="acme-spring"))[0]
    assert (row.action, row.outcome, row.old_version, row.new_version) == (
        "resubmit",
        "accepted",
        1,
        2,
    )
    assert (row.old_level, row.new_level, row.change) == ("normal", "low", "v1 → v2, normal → low")
    assert row.detail is not None and row.detail["new_payload"] is True
    request = await last_signal(temporal_client, "acme-spring", SIGNAL_RESUBMIT, ResubmitRequest)
    assert (request.payload_version, request.requested_by) == (2, ALICE.label())

    # An invalid payload: refused with its problems, the stored version unchanged.
    with pytest.raises(SubmissionRefused):
        await control.resubmit(service, "acme-spring", {"name": "only a name"}, actor=BOB)
    refused = (await log_of(service, entity_key="acme-spring"))[0]
    assert (refused.actor_name, refused.outcome, refused.old_version) == ("bob", "refused", 2)
    assert refused.new_version is None and "budget" in (refused.reason or "")
    async with service.sessions() as session:
        version = await session.scalar(
            select(QueuedEntity.payload_version).where(QueuedEntity.key == "acme-spring")
        )
    assert version == 2
    with pytest.raises(UnknownEntity):
        await control.resubmit(service, "nope", actor=BOB)
    assert (await log_of(service, entity_key="nope"))[0].outcome == "refused"


async def test_prioritise_records_old_and_new_level_and_weight(
    service: ServiceContext, temporal_client: Client
) -> None:
    await submission.submit(service, spring_file(), actor=BOB)
    report = await control.prioritise(service, "spring", PriorityLevel.HIGH, 2.5, actor=ALICE)
    assert (report.changed, report.signalled) == (4, 4)  # started by the submit, not ended
    row = (await log_of(service, batch="spring"))[0]
    assert (row.actor_name, row.action, row.entity_key, row.outcome) == (
        "alice",
        "prioritise",
        None,
        "accepted",
    )
    assert (row.old_level, row.new_level, row.old_weight, row.new_weight) == (
        "normal",
        "high",
        1.0,
        2.5,
    )
    assert row.detail == {"changed": 4}
    request = await last_signal(temporal_client, "acme", SIGNAL_REPRIORITISE, ReprioritiseRequest)
    assert request.requested_by == ALICE.label()

    with pytest.raises(UnknownBatch):
        await control.prioritise(service, "autumn", PriorityLevel.LOW, actor=BOB)
    refused = (await log_of(service, batch="autumn"))[0]
    assert (refused.outcome, refused.new_level) == ("refused", "low")
    assert refused.reason == "unknown batch 'autumn'"
    async with service.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(ActionRecord)) == 3
        stored = await queue_store.fetch_entities(session, ["acme"])
    assert stored["acme"].priority == "high"
