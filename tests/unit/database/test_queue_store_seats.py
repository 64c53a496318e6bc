"""The entity's seat in `dsp_entity_queue`: stored by the intake, read by the workflow's
snapshot, kept by a resubmit."""

from __future__ import annotations

from dsp_integration.contracts import DEFAULT_SEAT, EntitySnapshot
from dsp_integration.database import queue_store
from dsp_integration.database.engine import SessionFactory


def entity(key: str, seat: str | None = None) -> queue_store.NewEntity:
    if seat is None:
        return queue_store.NewEntity(key, "b", "advertisers", {"name": key}, "fp", [])
    return queue_store.NewEntity(key, "b", "advertisers", {"name": key}, "fp", [], seat=seat)


async def test_the_seat_is_stored_loaded_and_kept_by_a_resubmit(
    clean_database: SessionFactory,
) -> None:
    async with clean_database.begin() as session:
        inserted = await queue_store.insert_new_entities(
            session, [entity("in-eu", "eu"), entity("unnamed")]
        )
        assert inserted == {"in-eu", "unnamed"}
        # Inserting again (a race, or the same file) leaves the stored seat alone.
        assert await queue_store.insert_new_entities(session, [entity("in-eu", "us")]) == set()

    async with clean_database() as session:
        rows = await queue_store.fetch_entities(session, ["in-eu", "unnamed"])
        eu = await queue_store.load_snapshot(session, "in-eu")
        unnamed = await queue_store.load_snapshot(session, "unnamed", count_dependants=False)
    assert {key: row.seat for key, row in rows.items()} == {"in-eu": "eu", "unnamed": "default"}
    assert eu is not None and eu.seat == "eu"
    assert unnamed is not None and unnamed.seat == DEFAULT_SEAT

    async with clean_database.begin() as session:
        stored = await queue_store.store_resubmission(
            session,
            "in-eu",
            payload={"name": "renamed"},
            payload_fingerprint="fp2",
            depends_on=[],
        )
        assert stored.payload_version == 2
    async with clean_database() as session:
        again = await queue_store.load_snapshot(session, "in-eu")
    assert again is not None and again.seat == "eu" and again.payload == {"name": "renamed"}


def test_a_snapshot_recorded_before_seats_is_of_the_default_seat() -> None:
    recorded = {
        "key": "old",
        "batch": "b",
        "entity_type": "advertisers",
        "payload": {},
        "payload_version": 1,
        "status": "waiting",
    }
    assert EntitySnapshot.model_validate(recorded).seat == DEFAULT_SEAT
    assert EntitySnapshot.model_validate({**recorded, "seat": "eu"}).seat == "eu"
