"""What the queue store gives a workflow start: the pages of dependants and of open keys carry
each row's batch, level and fairness weight, and `needs_run` says whether a run would have
anything to do; a success is told (and counted) to the dependants that have work."""

from __future__ import annotations

from sqlalchemy import update

from dsp_integration.contracts import EntityStatus, PriorityLevel, RecordStatusInput
from dsp_integration.database import queue_store
from dsp_integration.database.engine import SessionFactory
from dsp_integration.database.models import QueuedEntity
from dsp_integration.database.queue_store import StartRow


def entity(
    key: str, *depends_on: str, batch: str = "b1", level: str = "normal", weight: float = 1.0
) -> queue_store.NewEntity:
    return queue_store.NewEntity(
        key,
        batch,
        "ad_groups",
        {},
        "fp",
        list(depends_on),
        priority=PriorityLevel(level),
        fairness_weight=weight,
    )


async def set_status(sessions: SessionFactory, status: EntityStatus, *keys: str) -> None:
    async with sessions.begin() as session:
        await session.execute(
            update(QueuedEntity).where(QueuedEntity.key.in_(keys)).values(status=status.value)
        )


async def test_the_pages_carry_each_rows_batch_level_and_weight(
    clean_database: SessionFactory,
) -> None:
    async with clean_database.begin() as session:
        await queue_store.insert_new_entities(
            session,
            [
                entity("parent"),
                entity("a", "parent", batch="b2", level="high", weight=4.0),
                entity("b", "parent", level="low", weight=0.5),
            ],
        )
    await set_status(clean_database, EntityStatus.SUCCEEDED, "parent")
    expected = [
        StartRow("a", "b2", PriorityLevel.HIGH, 4.0),
        StartRow("b", "b1", PriorityLevel.LOW, 0.5),
    ]

    async with clean_database() as session:
        dependants = await queue_store.dependants_page(
            session,
            "parent",
            payload_version=1,
            status=EntityStatus.SUCCEEDED,
            after="",
            limit=10,
        )
        open_rows = await queue_store.open_keys_page(session, after="", limit=10, idle_seconds=-60)

    assert dependants == expected
    assert open_rows == expected


async def test_needs_run_for_an_open_row_and_a_blocked_one_nothing_ends_any_more(
    clean_database: SessionFactory,
) -> None:
    async with clean_database.begin() as session:
        await queue_store.insert_new_entities(
            session,
            [
                entity("ok"),
                entity("bad"),
                entity("open", "ok"),
                entity("unblocked", "ok"),
                entity("still-blocked", "ok", "bad"),
                entity("done", "ok"),
            ],
        )
    await set_status(clean_database, EntityStatus.SUCCEEDED, "ok", "done")
    await set_status(clean_database, EntityStatus.REJECTED, "bad")
    await set_status(clean_database, EntityStatus.BLOCKED, "unblocked", "still-blocked")

    async with clean_database() as session:
        needs = {
            key: await queue_store.needs_run(session, key)
            for key in ("open", "unblocked", "still-blocked", "done", "bad", "missing")
        }

    assert needs == {
        "open": True,
        "unblocked": True,
        "still-blocked": False,
        "done": False,
        "bad": False,
        "missing": False,
    }


async def test_a_success_is_told_to_the_blocked_dependants_nothing_else_ends(
    clean_database: SessionFactory,
) -> None:
    async with clean_database.begin() as session:
        await queue_store.insert_new_entities(
            session,
            [
                entity("ok"),
                entity("bad"),
                entity("open", "ok"),
                entity("unblocked", "ok"),
                entity("still-blocked", "ok", "bad"),
            ],
        )
    await set_status(clean_database, EntityStatus.REJECTED, "bad")
    await set_status(clean_database, EntityStatus.BLOCKED, "unblocked", "still-blocked")

    async with clean_database.begin() as session:
        recorded = await queue_store.record_status(
            session, RecordStatusInput(key="ok", status=EntityStatus.SUCCEEDED, payload_version=1)
        )
    async with clean_database() as session:
        page = await queue_store.dependants_page(
            session, "ok", payload_version=1, status=EntityStatus.SUCCEEDED, after="", limit=10
        )

    assert recorded.dependants_to_tell == 2
    assert page is not None and [row.key for row in page] == ["open", "unblocked"]
