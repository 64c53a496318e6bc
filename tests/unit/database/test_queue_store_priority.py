"""Priority in `dsp_entity_queue`: stored by the intake, read by the workflow's local
activities (`load_snapshot`, `record_status`, `priority_and_round_age`), changed for a batch's open
entities by `prioritise_batch`."""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from dsp_integration.contracts import EntityStatus, PriorityLevel, RecordStatusInput
from dsp_integration.database import queue_store
from dsp_integration.database.engine import SessionFactory
from dsp_integration.database.models import QueuedEntity


async def priority_of(session: AsyncSession, key: str) -> PriorityLevel | None:
    """The priority the workflow's local activities read from the row now."""
    priority, _ = await queue_store.priority_and_round_age(session, key, None)
    return priority


def entity(key: str, batch: str, level: PriorityLevel | None = None) -> queue_store.NewEntity:
    if level is None:
        return queue_store.NewEntity(key, batch, "advertisers", {}, "fp", [])
    return queue_store.NewEntity(key, batch, "advertisers", {}, "fp", [], level)


async def test_prioritise_changes_the_open_entities_of_the_batch_only(
    clean_database: SessionFactory,
) -> None:
    async with clean_database.begin() as session:
        await queue_store.insert_new_entities(
            session,
            [
                entity("a-open", "a"),
                entity("a-high", "a", PriorityLevel.HIGH),
                entity("a-done", "a"),
                entity("b-open", "b", PriorityLevel.LOW),
            ],
        )
        await session.execute(
            update(QueuedEntity)
            .where(QueuedEntity.key == "a-done")
            .values(status=EntityStatus.SUCCEEDED.value)
        )
    async with clean_database() as session:
        assert await priority_of(session, "a-open") is PriorityLevel.NORMAL
        assert await priority_of(session, "a-high") is PriorityLevel.HIGH
        assert await priority_of(session, "missing") is None

    async with clean_database.begin() as session:
        assert len(await queue_store.prioritise_batch(session, "a", PriorityLevel.LOW) or []) == 2
        assert await queue_store.prioritise_batch(session, "nope", PriorityLevel.LOW) is None

    async with clean_database() as session:
        levels = {
            key: await priority_of(session, key) for key in ("a-open", "a-high", "a-done", "b-open")
        }
        snapshot = await queue_store.load_snapshot(session, "a-open")
    assert levels == {
        "a-open": PriorityLevel.LOW,
        "a-high": PriorityLevel.LOW,
        "a-done": PriorityLevel.NORMAL,  # ended: left as it was
        "b-open": PriorityLevel.LOW,
    }
    assert snapshot is not None and snapshot.priority is PriorityLevel.LOW


async def test_record_status_returns_the_row_and_a_resubmit_sets_it(
    clean_database: SessionFactory,
) -> None:
    async with clean_database.begin() as session:
        await queue_store.insert_new_entities(session, [entity("r", "r", PriorityLevel.HIGH)])
        changed = await queue_store.record_status(
            session,
            RecordStatusInput(key="r", status=EntityStatus.SUBMITTING, payload_version=1),
        )
        assert changed.recorded and changed.priority is PriorityLevel.HIGH
        stored = await queue_store.store_resubmission(
            session,
            "r",
            payload=None,
            payload_fingerprint=None,
            depends_on=None,
            priority=PriorityLevel.LOW,
        )
        assert stored.payload_version == 2
        assert await priority_of(session, "r") is PriorityLevel.LOW
