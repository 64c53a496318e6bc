"""Reads and conditional writes of `dsp_entity_queue`. Every write is safe to run twice."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    DateTime,
    Integer,
    Select,
    String,
    Text,
    and_,
    any_,
    bindparam,
    case,
    func,
    literal,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB, aggregate_order_by, array, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from dsp_integration.contracts import (
    DEFAULT_PRIORITY_LEVEL,
    DEFAULT_SEAT,
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
from dsp_integration.database import audit_log
from dsp_integration.database.engine import execute_core
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
    seat: str = DEFAULT_SEAT


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
                "seat": e.seat,
            }
            for e in entities
        ],
    )
    return set(result.scalars())


def _open_dependant_of(
    key: str | ColumnElement[str] | Any, table: type[QueuedEntity] | Any = QueuedEntity
) -> ColumnElement[bool]:
    """Rows (of `table`, an alias of the queue if given) that depend on `key` directly and
    have not ended. `depends_on @> ARRAY[key]` (not `key = ANY(depends_on)`) so the GIN
    index on `depends_on` serves it."""
    return and_(table.depends_on.contains(array([key])), table.status.not_in(_TERMINAL))


def _dependencies_of(row: type[QueuedEntity] | Any) -> ColumnElement[Any]:
    """The state of `row`'s dependencies, as one JSON array, oldest first (as stored)."""
    dep = aliased(QueuedEntity, name="dep")
    state = func.json_build_object(
        "key", dep.key,
        "status", dep.status,
        "dsp_id", dep.dsp_id,
        "reason", dep.reason,
        "blocked_by", dep.blocked_by,
        "payload_version", dep.payload_version,
    )  # fmt: skip
    return (
        select(
            func.coalesce(
                func.json_agg(aggregate_order_by(state, dep.created_at, dep.key)),
                text("'[]'"),
                type_=JSONB,
            )
        )
        .where(dep.key == any_(row.depends_on))
        .scalar_subquery()
    )


def _open_dependants_count(row: type[QueuedEntity] | Any) -> ColumnElement[int]:
    """How many entities that have not ended depend on `row` directly."""
    waiting = aliased(QueuedEntity, name="waiting")
    return (
        select(func.count())
        .select_from(waiting)
        .where(_open_dependant_of(row.key, waiting))
        .scalar_subquery()
    )


@cache
def _snapshot_statement(count_dependants: bool) -> Select[Any]:
    """Built once (see `_record_statement`); binds `key`."""
    dependants = _open_dependants_count(QueuedEntity) if count_dependants else literal(0)
    return select(
        QueuedEntity,
        _dependencies_of(QueuedEntity).label("dependencies"),
        dependants.label("dependants"),
    ).where(QueuedEntity.key == bindparam("key", type_=String))


async def load_snapshot(
    session: AsyncSession, key: str, *, count_dependants: bool = True
) -> EntitySnapshot | None:
    """The entity, its dependencies' state and (unless told not to) its open dependants, in
    one statement (so one round trip and one snapshot)."""
    row = (
        await execute_core(session, _snapshot_statement(count_dependants), {"key": key})
    ).one_or_none()
    if row is None:
        return None
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
        dependencies=[DependencySnapshot.model_validate(dep) for dep in row.dependencies],
        dependants=int(row.dependants),
        priority=stored_level(row.priority),
        fairness_weight=row.fairness_weight,
        seat=row.seat,
    )


def stored_level(stored: str | None) -> PriorityLevel:
    """A stored priority as a level (normal for anything else)."""
    try:
        return PriorityLevel(stored or DEFAULT_PRIORITY_LEVEL)
    except ValueError:
        return DEFAULT_PRIORITY_LEVEL


@cache
def _priority_and_age_statement(collection: str | None) -> Select[Any, Any]:
    """Built once per collection (see `_record_statement`); binds `key`."""
    key = bindparam("key", type_=String)
    age: Any = literal(None)
    if collection is not None:
        since = func.clock_timestamp() - audit_log.latest_round_start(key, collection)
        age = func.extract("epoch", since)
    priority = select(QueuedEntity.priority).where(QueuedEntity.key == key).scalar_subquery()
    return select(priority, age)


async def priority_and_round_age(
    session: AsyncSession, key: str, collection: str | None
) -> tuple[PriorityLevel | None, float | None]:
    """The entity's priority now (None for an unknown key) and, given its type's
    `collection`, the seconds since its latest accepted POST or PUT (None if none), in one
    statement."""
    row = (await execute_core(session, _priority_and_age_statement(collection), {"key": key})).one()
    stored, seconds = tuple(row)
    return (
        None if stored is None else stored_level(stored),
        None if seconds is None else float(seconds),
    )


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


@dataclass(frozen=True)
class StatusRecord:
    """What `record_status` did: whether the row took the status (it does not when a newer
    payload version was stored meanwhile), the row's priority, the status it had before, and
    the row as changed (None unless recorded)."""

    recorded: bool
    priority: PriorityLevel | None
    status_before: str | None = None
    entity_type: str | None = None
    status: str | None = None
    created_at: datetime | None = None
    finished_at: datetime | None = None
    dependants_to_tell: int = 0


@dataclass(frozen=True)
class _RecordShape:
    """What varies in `record_status`'s statement besides the values it binds."""

    sets_dsp_id: bool
    sets_dsp_status: bool
    terminal: bool
    include_blocked: bool


@cache
def _record_statement(shape: _RecordShape) -> Select[Any]:
    """Built once per shape: a status is recorded several times per entity, and building
    the statement and its cache key each time cost more worker CPU than running it. Binds
    `entity_key`, `version` and the `new_` values (not the column names: an UPDATE's SET
    reserves those)."""
    entity = QueuedEntity
    key = bindparam("entity_key", type_=String)
    same_version = entity.payload_version == bindparam("version", type_=Integer)

    def if_recorded(value: Any, column: Any) -> Any:
        return case((same_version, value), else_=column)

    now = func.now()
    values: dict[str, Any] = {
        "status": if_recorded(bindparam("new_status", type_=String), entity.status),
        "reason": if_recorded(bindparam("new_reason", type_=Text), entity.reason),
        "blocked_by": if_recorded(bindparam("new_blocked_by", type_=String), entity.blocked_by),
        "updated_at": if_recorded(now, entity.updated_at),
        "finished_at": if_recorded(
            now if shape.terminal else literal(None, DateTime(timezone=True)),
            entity.finished_at,
        ),
    }
    where = [entity.key == key]
    if shape.sets_dsp_id:
        values["dsp_id"] = bindparam("new_dsp_id", type_=String)
        values["submitted_at"] = func.coalesce(entity.submitted_at, now)
    else:
        where.append(same_version)
    if shape.sets_dsp_status:
        values["dsp_status"] = bindparam("new_dsp_status", type_=String)
    before = select(entity.status, entity.priority).where(entity.key == key).cte("before")
    changed = (
        update(entity)
        .where(*where)
        .values(**values)
        .returning(
            same_version.label("recorded"),
            entity.entity_type,
            entity.status,
            entity.created_at,
            entity.finished_at,
        )
        .cte("changed")
    )
    extra: list[Any] = []
    if shape.terminal:
        extra.append(
            select(func.count())
            .select_from(entity)
            .where(_dependant_to_tell(key, include_blocked=shape.include_blocked))
            .scalar_subquery()
            .label("to_tell")
        )
    return select(
        before.c.status.label("status_before"),
        before.c.priority,
        changed.c.recorded,
        changed.c.entity_type,
        changed.c.status,
        changed.c.created_at,
        changed.c.finished_at,
        *extra,
    ).select_from(before.outerjoin(changed, true()))


async def record_status(session: AsyncSession, change: RecordStatusInput) -> StatusRecord:
    """Store a status change of the payload version the caller works on, in one statement:
    the row's status before, the update and, for an ending, how many dependants to tell.

    A run still working on an older version (the client stored a resubmission meanwhile)
    changes nothing but the DSP facts, so it can never overwrite the newer request: which DSP
    entity exists is a fact whatever the version, or a resubmit would POST again."""
    shape = _RecordShape(
        sets_dsp_id=change.dsp_id is not None,
        sets_dsp_status=change.dsp_status is not None,
        terminal=change.status in TERMINAL_STATUSES,
        include_blocked=change.status is EntityStatus.SUCCEEDED,
    )
    found = (
        await execute_core(
            session,
            _record_statement(shape),
            {
                "entity_key": change.key,
                "version": change.payload_version,
                "new_status": change.status.value,
                "new_reason": change.reason,
                "new_blocked_by": change.blocked_by,
                "new_dsp_id": change.dsp_id,
                "new_dsp_status": change.dsp_status,
            },
        )
    ).one_or_none()
    if found is None:
        return StatusRecord(recorded=False, priority=None)
    recorded = bool(found.recorded)
    return StatusRecord(
        recorded=recorded,
        priority=stored_level(found.priority),
        status_before=found.status_before,
        entity_type=found.entity_type if recorded else None,
        status=found.status if recorded else None,
        created_at=found.created_at if recorded else None,
        finished_at=found.finished_at if recorded else None,
        dependants_to_tell=int(found.to_tell or 0) if shape.terminal else 0,
    )


async def open_dependants(session: AsyncSession, key: str) -> list[str]:
    """Keys that depend on `key` directly and have not ended."""
    rows = await session.scalars(
        select(QueuedEntity.key).where(_open_dependant_of(key)).order_by(QueuedEntity.key)
    )
    return list(rows)


def _dependant_to_tell(
    key: str | ColumnElement[str], *, include_blocked: bool
) -> ColumnElement[bool]:
    """Direct dependants that an outcome of `key` concerns: the open ones, and after a
    success also the blocked ones that no other dependency still ends, which look again (one
    may have been blocked by an outcome that a newer version of `key` has since superseded)."""
    if not include_blocked:
        return _open_dependant_of(key)
    return and_(QueuedEntity.depends_on.contains(array([key])), _has_work(QueuedEntity))


def _has_work(row: type[QueuedEntity] | Any) -> ColumnElement[bool]:
    """Whether a run of `row`'s workflow would have anything to do: it has not ended, or it
    is blocked and none of its dependencies ends it any more (a run looks again, as
    `EntityWorkflow` does for a blocked entity woken by a dependency's success)."""
    dep = aliased(QueuedEntity, name="blocking")
    still_blocking = (
        select(dep.key)
        .where(
            dep.key == any_(row.depends_on),
            dep.status.in_(_TERMINAL),
            dep.status != EntityStatus.SUCCEEDED.value,
        )
        .exists()
    )
    return or_(
        row.status.not_in(_TERMINAL),
        and_(row.status == EntityStatus.BLOCKED.value, ~still_blocking),
    )


@dataclass(frozen=True)
class StartRow:
    """What starting an entity's workflow needs from its row: the key, and the batch, level
    and fairness weight its workflow tasks are ordered by."""

    key: str
    batch: str
    level: PriorityLevel
    weight: float


def _start_columns() -> tuple[Any, ...]:
    return (
        QueuedEntity.key,
        QueuedEntity.batch,
        QueuedEntity.priority,
        QueuedEntity.fairness_weight,
    )


def _start_rows(rows: Iterable[Any]) -> list[StartRow]:
    return [
        StartRow(
            key=row.key,
            batch=row.batch,
            level=stored_level(row.priority),
            weight=float(row.fairness_weight),
        )
        for row in rows
    ]


async def dependants_page(
    session: AsyncSession,
    key: str,
    *,
    payload_version: int,
    status: EntityStatus,
    after: str,
    limit: int,
) -> list[StartRow] | None:
    """The next `limit` dependants to tell (keys after `after`, in key order) about `key`
    standing at `status` in `payload_version`, each with what its start needs; None once that
    is no longer so (a newer version was stored, or the entity moved on), so a superseded
    outcome stops spreading."""
    current = await execute_core(session, _version_and_status_statement(), {"key": key})
    row = current.one_or_none()
    if row is None or row.payload_version != payload_version:
        return None
    if status in TERMINAL_STATUSES and row.status != status.value:
        return None
    rows = await execute_core(
        session,
        _dependants_page_statement(include_blocked=status is EntityStatus.SUCCEEDED),
        {"key": key, "after": after, "page_size": limit},
    )
    return _start_rows(rows)


@cache
def _version_and_status_statement() -> Select[int, str]:
    """Built once (see `_record_statement`); binds `key`."""
    return select(QueuedEntity.payload_version, QueuedEntity.status).where(
        QueuedEntity.key == bindparam("key", type_=String)
    )


@cache
def _dependants_page_statement(*, include_blocked: bool) -> Select[Any]:
    """Built once per kind (see `_record_statement`); binds `key`, `after`, `page_size`."""
    return (
        select(*_start_columns())
        .where(
            _dependant_to_tell(bindparam("key", type_=String), include_blocked=include_blocked),
            QueuedEntity.key > bindparam("after", type_=String),
        )
        .order_by(QueuedEntity.key)
        .limit(bindparam("page_size", type_=Integer))
    )


@cache
def _needs_run_statement() -> Select[Any]:
    """Built once (see `_record_statement`); binds `key`."""
    return select(_has_work(QueuedEntity)).where(QueuedEntity.key == bindparam("key", type_=String))


async def needs_run(session: AsyncSession, key: str) -> bool:
    """Whether a run of the entity's workflow would have anything to do (`_has_work`);
    False for an unknown key."""
    found = await execute_core(session, _needs_run_statement(), {"key": key})
    return bool(found.scalar_one_or_none())


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
) -> list[StartRow]:
    """Entities that have not ended and whose row has not changed for `idle_seconds`, after
    `after` in key order, each with what its start needs."""
    rows = await session.execute(
        select(*_start_columns())
        .where(
            QueuedEntity.status.not_in(_TERMINAL),
            QueuedEntity.updated_at < func.now() - timedelta(seconds=idle_seconds),
            QueuedEntity.key > after,
        )
        .order_by(QueuedEntity.key)
        .limit(limit)
    )
    return _start_rows(rows)


async def count_to_poll(
    session: AsyncSession,
    entity_type: EntityType | None = None,
    *,
    batch_of: str | None = None,
    seat: str | None = None,
) -> int:
    """Entities being polled, and those being submitted that will poll after their POST (of
    one type, if given; of the batch of the entity `batch_of`, if given; of one seat, if
    given)."""
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
    if seat is not None:
        query = query.where(QueuedEntity.seat == seat)
    if batch_of is not None:
        owner = aliased(QueuedEntity, name="owner")
        batch = select(owner.batch).where(owner.key == batch_of).scalar_subquery()
        query = query.where(QueuedEntity.batch == batch)
    return int(await session.scalar(query) or 0)
