"""Reads and conditional writes of `dsp_entity_queue`. Every write is safe to run twice."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from dsp_integration.contracts import (
    DEFAULT_PRIORITY_LEVEL,
    DSP_FAIRNESS_WEIGHT,
    TERMINAL_STATUSES,
    DependencySnapshot,
    EntitySnapshot,
    EntityStatus,
    EntityType,
    PriorityLevel,
    RecordStatusInput,
    polled_after_post,
)
from dsp_integration.database.models import QueuedEntity

_TERMINAL = [status.value for status in TERMINAL_STATUSES]


@dataclass(frozen=True)
class NewEntity:
    key: str
    batch: str
    entity_type: str
    payload: dict[str, Any]
    payload_fingerprint: str
    depends_on: list[str]
    priority: PriorityLevel = DEFAULT_PRIORITY_LEVEL
    fairness_weight: float = DSP_FAIRNESS_WEIGHT


async def fetch_entities(session: AsyncSession, keys: Iterable[str]) -> dict[str, QueuedEntity]:
    wanted = list(set(keys))
    found: dict[str, QueuedEntity] = {}
    for start in range(0, len(wanted), 10_000):
        rows = await session.scalars(
            select(QueuedEntity).where(QueuedEntity.key.in_(wanted[start : start + 10_000]))
        )
        found.update((row.key, row) for row in rows)
    return found


async def insert_new_entities(session: AsyncSession, entities: Sequence[NewEntity]) -> set[str]:
    """Insert entities not stored yet, in bulk; existing keys are left untouched. Returns the
    keys this call inserted: a key another transaction stored first is not among them."""
    if not entities:
        return set()
    # A list of parameter sets, not `.values([...])`: SQLAlchemy's "insertmanyvalues" sends
    # batches of one cached statement instead of compiling one with thousands of bound
    # parameters per chunk, several times faster for a large file (devkit/bench/RESULTS.md).
    result = await session.execute(
        insert(QueuedEntity)
        .on_conflict_do_nothing(index_elements=[QueuedEntity.key])
        .returning(QueuedEntity.key),
        [
            {
                "key": e.key,
                "batch": e.batch,
                "entity_type": e.entity_type,
                "payload": e.payload,
                "payload_fingerprint": e.payload_fingerprint,
                "depends_on": e.depends_on,
                "status": EntityStatus.WAITING.value,
                "priority": e.priority.value,
                "fairness_weight": e.fairness_weight,
            }
            for e in entities
        ],
    )
    return set(result.scalars())


def _open_dependant_of(key: str) -> ColumnElement[bool]:
    """Rows that depend on `key` directly and have not ended. `depends_on @> ARRAY[key]`
    (not `key = ANY(depends_on)`) so the GIN index on `depends_on` serves it."""
    return and_(QueuedEntity.depends_on.contains([key]), QueuedEntity.status.not_in(_TERMINAL))


async def count_open_dependants(session: AsyncSession, key: str) -> int:
    count = await session.scalar(
        select(func.count()).select_from(QueuedEntity).where(_open_dependant_of(key))
    )
    return int(count or 0)


async def load_snapshot(
    session: AsyncSession, key: str, *, count_dependants: bool = True
) -> EntitySnapshot | None:
    """The entity, its dependencies' state and (unless told not to) its open dependants."""
    row = await session.get(QueuedEntity, key)
    if row is None:
        return None
    dependencies = await fetch_entities(session, row.depends_on)
    dependants = await count_open_dependants(session, key) if count_dependants else 0
    return EntitySnapshot(
        key=row.key,
        batch=row.batch,
        entity_type=EntityType(row.entity_type),
        payload=row.payload,
        payload_version=row.payload_version,
        status=EntityStatus(row.status),
        dsp_id=row.dsp_id,
        dsp_status=row.dsp_status,
        reason=row.reason,
        dependencies=[
            DependencySnapshot(
                key=dep.key,
                status=EntityStatus(dep.status),
                dsp_id=dep.dsp_id,
                reason=dep.reason,
                blocked_by=dep.blocked_by,
                payload_version=dep.payload_version,
            )
            for dep in dependencies.values()
        ],
        dependants=dependants,
        priority=stored_level(row.priority),
        fairness_weight=row.fairness_weight,
    )


def stored_level(stored: str | None) -> PriorityLevel:
    """A stored priority as a level (normal for anything else)."""
    try:
        return PriorityLevel(stored or DEFAULT_PRIORITY_LEVEL)
    except ValueError:
        return DEFAULT_PRIORITY_LEVEL


async def stored_status(session: AsyncSession, key: str) -> str | None:
    return await session.scalar(select(QueuedEntity.status).where(QueuedEntity.key == key))


async def priority_of(session: AsyncSession, key: str) -> PriorityLevel | None:
    """The entity's priority now (None for an unknown key)."""
    stored = await session.scalar(select(QueuedEntity.priority).where(QueuedEntity.key == key))
    return None if stored is None else stored_level(stored)


async def prioritise_batch(
    session: AsyncSession,
    batch: str,
    level: PriorityLevel | None,
    fairness_weight: float | None = None,
) -> list[str] | None:
    """Give the batch's entities that have not ended `level` and `fairness_weight` (None:
    unchanged); returns their keys, or None when no entity of that batch was ever stored."""
    known = await session.scalar(
        select(QueuedEntity.key).where(QueuedEntity.batch == batch).limit(1)
    )
    if known is None:
        return None
    values: dict[str, Any] = {}
    if level is not None:
        values["priority"] = level.value
    if fairness_weight is not None:
        values["fairness_weight"] = fairness_weight
    open_rows = select(QueuedEntity.key).where(
        QueuedEntity.batch == batch, QueuedEntity.status.not_in(_TERMINAL)
    )
    if not values:
        return list(await session.scalars(open_rows))
    changed = await session.execute(
        update(QueuedEntity)
        .where(QueuedEntity.batch == batch, QueuedEntity.status.not_in(_TERMINAL))
        .values(**values)
        .returning(QueuedEntity.key)
    )
    return list(changed.scalars())


async def record_status(session: AsyncSession, change: RecordStatusInput) -> QueuedEntity | None:
    """Store a status change of the payload version the caller works on; return the row as
    changed, or None when nothing changed.

    A run still working on an older version (the client stored a resubmission meanwhile)
    changes nothing, so it can never overwrite the newer request."""
    if change.dsp_id is not None:
        # Which DSP entity exists is a fact whatever the version, or a resubmit would POST again.
        facts: dict[str, Any] = {
            "dsp_id": change.dsp_id,
            "submitted_at": func.coalesce(QueuedEntity.submitted_at, func.now()),
        }
        if change.dsp_status is not None:
            facts["dsp_status"] = change.dsp_status
        await session.execute(
            update(QueuedEntity).where(QueuedEntity.key == change.key).values(**facts)
        )
    values: dict[str, Any] = {
        "status": change.status.value,
        "reason": change.reason,
        "blocked_by": change.blocked_by,
        "updated_at": func.now(),
        "finished_at": func.now() if change.status in TERMINAL_STATUSES else None,
    }
    if change.dsp_status is not None:
        values["dsp_status"] = change.dsp_status
    changed = await session.scalars(
        update(QueuedEntity)
        .where(
            QueuedEntity.key == change.key,
            QueuedEntity.payload_version == change.payload_version,
        )
        .values(**values)
        .returning(QueuedEntity)
    )
    return changed.one_or_none()


async def open_dependants(session: AsyncSession, key: str) -> list[str]:
    """Keys that depend on `key` directly and have not ended."""
    rows = await session.scalars(
        select(QueuedEntity.key).where(_open_dependant_of(key)).order_by(QueuedEntity.key)
    )
    return list(rows)


def _dependant_to_tell(key: str, *, include_blocked: bool) -> ColumnElement[bool]:
    """Direct dependants that an outcome of `key` concerns: the open ones, and after a
    success also the blocked ones, which look again (one may have been blocked by an outcome
    that a newer version of `key` has since superseded)."""
    if not include_blocked:
        return _open_dependant_of(key)
    return and_(
        QueuedEntity.depends_on.contains([key]),
        or_(
            QueuedEntity.status.not_in(_TERMINAL),
            QueuedEntity.status == EntityStatus.BLOCKED.value,
        ),
    )


async def count_dependants_to_tell(
    session: AsyncSession, key: str, *, include_blocked: bool
) -> int:
    count = await session.scalar(
        select(func.count())
        .select_from(QueuedEntity)
        .where(_dependant_to_tell(key, include_blocked=include_blocked))
    )
    return int(count or 0)


async def dependants_page(
    session: AsyncSession,
    key: str,
    *,
    payload_version: int,
    status: EntityStatus,
    after: str,
    limit: int,
) -> list[str] | None:
    """The next `limit` dependants to tell (keys after `after`, in key order) about `key`
    standing at `status` in `payload_version`; None once that is no longer so (a newer
    version was stored, or the entity moved on), so a superseded outcome stops spreading."""
    current = await session.execute(
        select(QueuedEntity.payload_version, QueuedEntity.status).where(QueuedEntity.key == key)
    )
    row = current.one_or_none()
    if row is None or row.payload_version != payload_version:
        return None
    if status in TERMINAL_STATUSES and row.status != status.value:
        return None
    rows = await session.scalars(
        select(QueuedEntity.key)
        .where(
            _dependant_to_tell(key, include_blocked=status is EntityStatus.SUCCEEDED),
            QueuedEntity.key > after,
        )
        .order_by(QueuedEntity.key)
        .limit(limit)
    )
    return list(rows)


async def reopen_blocked(session: AsyncSession, key: str) -> list[str]:
    """Entities blocked because of `key` go back to waiting; returns every such waiting key."""
    await session.execute(
        update(QueuedEntity)
        .where(QueuedEntity.blocked_by == key, QueuedEntity.status == EntityStatus.BLOCKED.value)
        .values(
            status=EntityStatus.WAITING.value, reason=None, finished_at=None, updated_at=func.now()
        )
    )
    rows = await session.scalars(
        select(QueuedEntity.key)
        .where(QueuedEntity.blocked_by == key, QueuedEntity.status == EntityStatus.WAITING.value)
        .order_by(QueuedEntity.key)
    )
    return list(rows)


_REOPEN_DOWNSTREAM = text(
    """
    WITH RECURSIVE downstream(key) AS (
        SELECT key FROM dsp_entity_queue
        WHERE depends_on @> ARRAY[CAST(:key AS VARCHAR)] AND status = 'blocked'
      UNION
        SELECT below.key FROM dsp_entity_queue AS below
        JOIN downstream ON below.depends_on @> ARRAY[downstream.key]
        WHERE below.status = 'blocked'
    )
    UPDATE dsp_entity_queue
    SET status = 'waiting', reason = NULL, blocked_by = NULL, finished_at = NULL,
        updated_at = now()
    WHERE key IN (SELECT key FROM downstream)
    RETURNING key
    """
)


async def reopen_blocked_downstream(session: AsyncSession, key: str) -> list[str]:
    """Everything blocked downstream of `key` (its blocked dependants, theirs, and so on) goes
    back to waiting, in one statement; returns the keys reopened. Matching the dependency
    graph rather than `blocked_by` (the root cause) also reopens what a blocked entity in the
    middle of a chain blocked."""
    rows = await session.scalars(_REOPEN_DOWNSTREAM, {"key": key})
    return sorted(rows)


@dataclass(frozen=True)
class StoredResubmission:
    payload_version: int
    reopened: list[str]


async def store_resubmission(
    session: AsyncSession,
    key: str,
    *,
    payload: dict[str, Any] | None,
    payload_fingerprint: str | None,
    depends_on: list[str] | None,
    priority: PriorityLevel | None = None,
) -> StoredResubmission:
    """Bump the payload version (storing a new payload when given), mark the entity waiting
    for its workflow to pick the new version up, and put everything blocked downstream of it
    back to waiting (`reopen_blocked_downstream`), all in the caller's transaction."""
    values: dict[str, Any] = {
        "payload_version": QueuedEntity.payload_version + 1,
        "status": EntityStatus.WAITING.value,
        "reason": None,
        "blocked_by": None,
        "finished_at": None,
        "updated_at": func.now(),
    }
    if payload is not None:
        values.update(
            payload=payload, payload_fingerprint=payload_fingerprint, depends_on=depends_on
        )
    if priority is not None:
        values["priority"] = priority.value
    result = await session.execute(
        update(QueuedEntity)
        .where(QueuedEntity.key == key)
        .values(**values)
        .returning(QueuedEntity.payload_version)
    )
    version = int(result.scalar_one())
    return StoredResubmission(version, await reopen_blocked_downstream(session, key))


async def list_entities(
    session: AsyncSession, *, keys: Sequence[str] = (), batch: str | None = None
) -> list[QueuedEntity]:
    query = select(QueuedEntity).order_by(QueuedEntity.created_at, QueuedEntity.key)
    if keys:
        query = query.where(QueuedEntity.key.in_(list(keys)))
    if batch is not None:
        query = query.where(QueuedEntity.batch == batch)
    return list(await session.scalars(query))


async def count_by_status(session: AsyncSession, *, batch: str | None = None) -> dict[str, int]:
    query = select(QueuedEntity.status, func.count()).group_by(QueuedEntity.status)
    if batch is not None:
        query = query.where(QueuedEntity.batch == batch)
    return {status: count for status, count in (await session.execute(query)).all()}


async def open_keys_page(
    session: AsyncSession, *, after: str, limit: int, idle_seconds: float
) -> list[str]:
    """Keys of entities that have not ended and whose row has not changed for
    `idle_seconds`, after `after` in key order."""
    rows = await session.scalars(
        select(QueuedEntity.key)
        .where(
            QueuedEntity.status.not_in(_TERMINAL),
            QueuedEntity.updated_at < func.now() - timedelta(seconds=idle_seconds),
            QueuedEntity.key > after,
        )
        .order_by(QueuedEntity.key)
        .limit(limit)
    )
    return list(rows)


async def count_to_poll(session: AsyncSession, entity_type: EntityType | None = None) -> int:
    """Entities being polled, and those being submitted that will poll after their POST (of
    one type, if given)."""
    polled_types = [t.value for t in EntityType if polled_after_post(t)]
    query = (
        select(func.count())
        .select_from(QueuedEntity)
        .where(
            or_(
                QueuedEntity.status == EntityStatus.POLLING.value,
                and_(
                    QueuedEntity.status == EntityStatus.SUBMITTING.value,
                    QueuedEntity.entity_type.in_(polled_types),
                ),
            )
        )
    )
    if entity_type is not None:
        query = query.where(QueuedEntity.entity_type == entity_type.value)
    return int(await session.scalar(query) or 0)
