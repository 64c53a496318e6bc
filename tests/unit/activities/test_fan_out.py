"""`tell_dependants` on real PostgreSQL: dependants read in pages (never carried in the
history), progress heartbeated after each page and resumed from there, a superseded outcome
stopped, every start at the dependant's batch priority, and no run reopened for a dependant
that has ended. The Temporal client is a recorder that refuses starts as the server does:
this is the activity's own logic (tests/integration/test_entity_starts.py runs it against
the real server)."""

from __future__ import annotations

import dataclasses
from typing import Any, cast

import pytest
from sqlalchemy import update
from temporalio.client import Client
from temporalio.common import Priority, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.testing import ActivityEnvironment

from dsp_integration.activities.entity_starts import entity_workflow_priority
from dsp_integration.activities.fan_out import DependantFanOut
from dsp_integration.contracts import (
    DependencyOutcome,
    EntityStatus,
    PriorityLevel,
    TellDependantsInput,
    workflow_id_for,
)
from dsp_integration.database import queue_store
from dsp_integration.database.engine import SessionFactory
from dsp_integration.database.models import QueuedEntity


class SignalRecorder:
    """Records signal-with-starts that took. Workflow ids in `completed` have a latest run
    that completed and none running: the server refuses a start that may not reopen one."""

    def __init__(self, completed: tuple[str, ...] = ()) -> None:
        self.told: list[str] = []
        self.priorities: dict[str, Priority] = {}
        self.refused: list[str] = []
        self.completed = {workflow_id_for(key) for key in completed}

    async def start_workflow(
        self,
        workflow: str,
        arg: Any,
        *,
        id: str,
        id_reuse_policy: WorkflowIDReusePolicy,
        priority: Priority,
        **kwargs: Any,
    ) -> None:
        if id in self.completed:
            if id_reuse_policy is WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY:
                self.refused.append(id)
                raise WorkflowAlreadyStartedError(id, workflow)
            self.completed.discard(id)
        self.told.append(id)
        self.priorities[id] = priority


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
    assert beats == [("dep-002", 3, 0), ("dep-005", 6, 0), ("dep-008", 9, 0), ("dep-009", 10, 0)]


async def test_a_retry_resumes_after_the_last_page_heartbeated(
    clean_database: SessionFactory,
) -> None:
    keys = await store(clean_database, 10)
    recorder = SignalRecorder()
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, heartbeat_details=["dep-005", 6, 1])

    result = await env.run(
        fan_out(clean_database, recorder).tell_dependants, TellDependantsInput(outcome=SUCCESS)
    )

    assert (result.told, result.already_ended) == (10, 1)
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


async def set_status(sessions: SessionFactory, status: EntityStatus, *keys: str) -> None:
    async with sessions.begin() as session:
        await session.execute(
            update(QueuedEntity).where(QueuedEntity.key.in_(keys)).values(status=status.value)
        )


async def test_each_dependant_is_started_at_its_own_batch_priority_and_weight(
    clean_database: SessionFactory,
) -> None:
    await store(clean_database, 2)
    async with clean_database.begin() as session:
        await session.execute(
            update(QueuedEntity)
            .where(QueuedEntity.key == "dep-001")
            .values(batch="other-batch", priority="high", fairness_weight=3.0)
        )
    recorder = SignalRecorder()

    await ActivityEnvironment().run(
        fan_out(clean_database, recorder).tell_dependants, TellDependantsInput(outcome=SUCCESS)
    )

    assert recorder.priorities == {
        workflow_id_for("dep-000"): entity_workflow_priority("fan", PriorityLevel.NORMAL, 1.0),
        workflow_id_for("dep-001"): entity_workflow_priority(
            "other-batch", PriorityLevel.HIGH, 3.0
        ),
    }


async def test_a_dependant_that_ended_while_being_told_gets_no_new_run(
    clean_database: SessionFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The page lists dep-000 open; it ends and its run completes before the signal-with-
    start arrives. The server refuses the start; the row says it has ended: counted, not
    reopened, not raised."""
    await store(clean_database, 2)
    recorder = SignalRecorder(completed=("dep-000",))
    await set_status(clean_database, EntityStatus.SUCCEEDED, "dep-000")
    page_read_before_it_ended = [
        queue_store.StartRow("dep-000", "fan", PriorityLevel.NORMAL, 1.0),
        queue_store.StartRow("dep-001", "fan", PriorityLevel.NORMAL, 1.0),
    ]

    async def stale_page(*args: Any, after: str, **kwargs: Any) -> list[queue_store.StartRow]:
        return page_read_before_it_ended if after == "" else []

    monkeypatch.setattr(queue_store, "dependants_page", stale_page)
    result = await ActivityEnvironment().run(
        fan_out(clean_database, recorder).tell_dependants, TellDependantsInput(outcome=SUCCESS)
    )

    assert (result.told, result.already_ended) == (2, 1)
    assert recorder.refused == [workflow_id_for("dep-000")]
    assert recorder.told == [workflow_id_for("dep-001")]


async def test_a_reopened_dependant_whose_run_completed_is_started_again(
    clean_database: SessionFactory,
) -> None:
    """A resubmit upstream put dep-000 back to waiting after its run had completed (blocked):
    the first start is refused, the open row says it has work, so it starts again."""
    await store(clean_database, 1)
    recorder = SignalRecorder(completed=("dep-000",))

    result = await ActivityEnvironment().run(
        fan_out(clean_database, recorder).tell_dependants, TellDependantsInput(outcome=SUCCESS)
    )

    assert (result.told, result.already_ended) == (1, 0)
    assert recorder.refused == [workflow_id_for("dep-000")]
    assert recorder.told == [workflow_id_for("dep-000")]


async def test_a_blocked_dependant_looks_again_unless_another_dependency_still_ends_it(
    clean_database: SessionFactory,
) -> None:
    """Both dependants were blocked by an outcome the parent's new version superseded, and
    their runs completed. The parent's success starts the one nothing else ends (refused
    first, started by its row); the other also depends on `other`, which failed: a run would
    find it still blocked, so it is not even told."""
    async with clean_database.begin() as session:
        await queue_store.insert_new_entities(
            session,
            [
                entity("parent"),
                entity("other"),
                entity("free", "parent"),
                entity("still-blocked", "parent", "other"),
            ],
        )
    await set_status(clean_database, EntityStatus.SUCCEEDED, "parent")
    await set_status(clean_database, EntityStatus.FAILED, "other")
    await set_status(clean_database, EntityStatus.BLOCKED, "free", "still-blocked")
    recorder = SignalRecorder(completed=("free", "still-blocked"))

    result = await ActivityEnvironment().run(
        fan_out(clean_database, recorder).tell_dependants, TellDependantsInput(outcome=SUCCESS)
    )

    assert (result.told, result.already_ended) == (1, 0)
    assert recorder.refused == [workflow_id_for("free")]
    assert recorder.told == [workflow_id_for("free")]
