"""`load_snapshot` counts the open entities waiting for a key (its DSP calls' priority)."""

from __future__ import annotations

from sqlalchemy import text, update
from sqlalchemy.dialects import postgresql

from dsp_integration.contracts import EntityStatus
from dsp_integration.database import queue_store
from dsp_integration.database.engine import SessionFactory
from dsp_integration.database.models import QueuedEntity


def entity(key: str, *depends_on: str) -> queue_store.NewEntity:
    return queue_store.NewEntity(key, "deps", "advertisers", {}, "fp", list(depends_on))


async def test_dependants_counts_open_direct_dependants_only(
    clean_database: SessionFactory,
) -> None:
    async with clean_database.begin() as session:
        await queue_store.insert_new_entities(
            session,
            [
                entity("parent"),
                entity("child-1", "parent"),
                entity("child-2", "other", "parent"),
                entity("child-done", "parent"),
                entity("grandchild", "child-1"),
                entity("leaf"),
                entity("parent-prefix", "parentx"),
            ],
        )
        await session.execute(
            update(QueuedEntity)
            .where(QueuedEntity.key == "child-done")
            .values(status=EntityStatus.SUCCEEDED.value)
        )

    async with clean_database() as session:
        parent = await queue_store.load_snapshot(session, "parent")
        child = await queue_store.load_snapshot(session, "child-1")
        leaf = await queue_store.load_snapshot(session, "leaf")
        unasked = await queue_store.load_snapshot(session, "parent", count_dependants=False)
        still_open = await queue_store.open_dependants(session, "parent")

    assert parent is not None and child is not None and leaf is not None
    assert unasked is not None
    assert parent.dependants == 2  # child-done has ended; grandchild waits on child-1
    assert child.dependants == 1
    assert leaf.dependants == 0
    assert unasked.dependants == 0
    assert still_open == ["child-1", "child-2"]


async def test_the_dependants_predicate_can_use_the_gin_index(
    clean_database: SessionFactory,
) -> None:
    """`depends_on @> ARRAY[key]` is what the GIN index serves (`key = ANY(...)` is not)."""
    predicate = queue_store._open_dependant_of("parent")
    assert "@>" in str(predicate.compile(dialect=postgresql.dialect()))
    async with clean_database() as session:
        await session.execute(text("SET LOCAL enable_seqscan = off"))
        plan = await session.execute(
            text(
                "EXPLAIN SELECT count(*) FROM dsp_entity_queue "
                "WHERE depends_on @> ARRAY['parent']::varchar(128)[]"
            )
        )
        lines = "\n".join(row[0] for row in plan)
    assert "ix_dsp_entity_queue_depends_on" in lines
