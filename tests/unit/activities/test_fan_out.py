"""`tell_dependants` on real PostgreSQL: dependants read in pages (never carried in the
history), progress heartbeated after each page and resumed from there, and a superseded
outcome stopped. The Temporal client is a recorder: this is the activity's own logic."""

from __future__ import annotations

import dataclasses
from typing import Any, cast

from sqlalchemy import update
from temporalio.client import Client
from temporalio.testing import ActivityEnvironment

from dsp_integration.activities.fan_out import DependantFanOut
from dsp_integration.contracts import (
    DependencyOutcome,
    EntityStatus,
    TellDependantsInput,
    workflow_id_for,
)
from dsp_integration.database import queue_store
from dsp_integration.database.engine import SessionFactory
from dsp_integration.database.models import QueuedEntity


class SignalRecorder:
    def __init__(self) -> None:
        self.told: list[str] = []

    async def start_workflow(self, *args: Any, id: str, **kwargs: Any) -> None:
        self.told.append(id)


def entity(key: str, *depends_on: str) -> queue_store.NewEntity:
    return queue_store.NewEntity(key, "fan", "ad_groups", {}, "fp", list(depends_on))


async def store(sessions: SessionFactory, dependants: int) -> list[str]:
    keys = [f"dep-{i:03d}" for i in range(dependants)]
    async with sessions.begin() as session:
        await queue_store.insert_new_entities(
            session, [entity("parent"), *(entity(k, "parent") for k in keys), entity("other")]
        )
        await session.execute(
            update(QueuedEntity)
            .where(QueuedEntity.key == "parent")
            .values(status=EntityStatus.SUCCEEDED.value)
        )
    return keys


def fan_out(sessions: SessionFactory, recorder: SignalRecorder) -> DependantFanOut:
    return DependantFanOut(sessions, cast(Client, recorder), "tq", page_size=3, concurrency=2)


SUCCESS = DependencyOutcome(key="parent", status=EntityStatus.SUCCEEDED, payload_version=1)


async def test_every_dependant_is_told_once_in_pages_with_a_heartbeat_per_page(
    clean_database: SessionFactory,
) -> None:
    keys = await store(clean_database, 10)
    recorder, beats = SignalRecorder(), []
    env = ActivityEnvironment()
    env.on_heartbeat = lambda *details: beats.append(details)

    result = await env.run(
        fan_out(clean_database, recorder).tell_dependants, TellDependantsInput(outcome=SUCCESS)
    )

    assert (result.told, result.superseded) == (10, False)
    assert sorted(recorder.told) == [workflow_id_for(k) for k in keys]
    assert beats == [("dep-002", 3), ("dep-005", 6), ("dep-008", 9), ("dep-009", 10)]


async def test_a_retry_resumes_after_the_last_page_heartbeated(
    clean_database: SessionFactory,
) -> None:
    keys = await store(clean_database, 10)
    recorder = SignalRecorder()
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, heartbeat_details=["dep-005", 6])

    result = await env.run(
        fan_out(clean_database, recorder).tell_dependants, TellDependantsInput(outcome=SUCCESS)
    )

    assert result.told == 10
    assert sorted(recorder.told) == [workflow_id_for(k) for k in keys[6:]]


async def test_an_outcome_superseded_by_a_new_version_stops_spreading(
    clean_database: SessionFactory,
) -> None:
    await store(clean_database, 10)
    async with clean_database.begin() as session:
        await queue_store.store_resubmission(
            session, "parent", payload=None, payload_fingerprint=None, depends_on=None
        )
    recorder = SignalRecorder()

    result = await ActivityEnvironment().run(
        fan_out(clean_database, recorder).tell_dependants, TellDependantsInput(outcome=SUCCESS)
    )

    assert (result.told, result.superseded) == (0, True)
    assert recorder.told == []


async def test_a_success_also_wakes_blocked_dependants_a_failure_only_open_ones(
    clean_database: SessionFactory,
) -> None:
    await store(clean_database, 3)
    async with clean_database.begin() as session:
        await session.execute(
            update(QueuedEntity)
            .where(QueuedEntity.key == "dep-000")
            .values(status=EntityStatus.BLOCKED.value)
        )
        await session.execute(
            update(QueuedEntity)
            .where(QueuedEntity.key == "dep-001")
            .values(status=EntityStatus.SUCCEEDED.value)
        )
    told_of_success, told_of_failure = SignalRecorder(), SignalRecorder()
    await ActivityEnvironment().run(
        fan_out(clean_database, told_of_success).tell_dependants,
        TellDependantsInput(outcome=SUCCESS),
    )
    async with clean_database.begin() as session:
        await session.execute(
            update(QueuedEntity)
            .where(QueuedEntity.key == "parent")
            .values(status=EntityStatus.REJECTED.value)
        )
    rejected = SUCCESS.model_copy(update={"status": EntityStatus.REJECTED})
    await ActivityEnvironment().run(
        fan_out(clean_database, told_of_failure).tell_dependants,
        TellDependantsInput(outcome=rejected),
    )

    assert sorted(told_of_success.told) == [workflow_id_for("dep-000"), workflow_id_for("dep-002")]
    assert told_of_failure.told == [workflow_id_for("dep-002")]
