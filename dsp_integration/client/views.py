"""Read-only views for the web console and HTTP API: batches, pages of entities, one
entity with its neighbours and payload versions, and the DSP budget.

Only reads; every write goes through `submission` and `control` of this package."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, select

from dsp_integration.client.context import ServiceContext
from dsp_integration.client.errors import UnknownBatch, UnknownEntity
from dsp_integration.client.queries import AuditView, EntityView, audit_views, entity_view
from dsp_integration.contracts import (
    DEFAULT_PRIORITY_LEVEL,
    DEFAULT_SEAT,
    DSP_FAIRNESS_WEIGHT,
    TERMINAL_STATUSES,
    EntityStatus,
    PriorityLevel,
    workflow_id_for,
)
from dsp_integration.database import rate_ledger
from dsp_integration.database.models import AuditRecord, QueuedEntity, RatePause

_TERMINAL = [status.value for status in TERMINAL_STATUSES]
THROTTLED = 429
__all__ = ["UnknownBatch"]  # raised here, defined with the client's other errors


@dataclass(frozen=True)
class BatchSummary:
    name: str
    counts: dict[str, int]
    total: int
    ended: int
    created: datetime
    finished: datetime | None
    """When the last entity ended, once every entity has ended."""
    priority: str = DEFAULT_PRIORITY_LEVEL.value
    """The level most of its open entities have (of all of them, once every one has ended)."""
    fairness_weight: float = DSP_FAIRNESS_WEIGHT
    """The fairness weight most of its open entities have (likewise)."""
    seats: list[str] = field(default_factory=lambda: [DEFAULT_SEAT])
    """The seats its entities belong to, by name (a file may mix seats)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "counts": self.counts,
            "total": self.total,
            "ended": self.ended,
            "created": self.created.isoformat(),
            "finished": self.finished.isoformat() if self.finished else None,
            "priority": self.priority,
            "fairness_weight": self.fairness_weight,
            "seats": self.seats,
        }


@dataclass(frozen=True)
class EntityPage:
    rows: list[EntityView]
    total: int
    limit: int
    offset: int


@dataclass(frozen=True)
class Neighbour:
    key: str
    status: str | None
    """None when the key is not (or no longer) in the queue table."""


@dataclass(frozen=True)
class PayloadVersion:
    """A payload as stored (the current one) or as sent to the DSP (earlier ones, from the
    audit trail, with every `$ref` already replaced by the parent's DSP id)."""

    version: int | None
    payload: Any
    source: str
    """`stored` for the current payload, `sent` for a request body in the audit trail."""
    method: str | None = None
    sent_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "payload": self.payload,
            "source": self.source,
            "method": self.method,
            "sent_at": self.sent_at.isoformat() if self.sent_at else None,
        }


@dataclass(frozen=True)
class EntityDetail:
    view: EntityView
    payload: dict[str, Any]
    workflow_id: str
    dependencies: list[Neighbour]
    dependants: list[Neighbour]
    payload_versions: list[PayloadVersion] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            **self.view.to_json(),
            "payload": self.payload,
            "workflow_id": self.workflow_id,
            "dependencies": [{"key": n.key, "status": n.status} for n in self.dependencies],
            "dependants": [{"key": n.key, "status": n.status} for n in self.dependants],
            "payload_versions": [v.to_json() for v in self.payload_versions],
        }


@dataclass(frozen=True)
class Budget:
    used: int
    limit: int
    window_seconds: float
    throttled_total: int
    throttled_in_window: int
    paused_seconds: float
    waiting_for_slot: int | None

    def to_json(self) -> dict[str, Any]:
        return {
            "used": self.used,
            "limit": self.limit,
            "window_seconds": self.window_seconds,
            "throttled_total": self.throttled_total,
            "throttled_in_window": self.throttled_in_window,
            "paused_seconds": self.paused_seconds,
            "waiting_for_slot": self.waiting_for_slot,
        }


def _batch_query() -> Select[str, str, int, datetime, datetime | None, str, float, str]:
    return select(
        QueuedEntity.batch,
        QueuedEntity.status,
        func.count(),
        func.min(QueuedEntity.created_at),
        func.max(QueuedEntity.finished_at),
        QueuedEntity.priority,
        QueuedEntity.fairness_weight,
        QueuedEntity.seat,
    ).group_by(
        QueuedEntity.batch,
        QueuedEntity.status,
        QueuedEntity.priority,
        QueuedEntity.fairness_weight,
        QueuedEntity.seat,
    )


def _batch_level(group: list[Any]) -> str:
    """The level most open entities have (all entities once none is open); a tie goes to the
    higher level."""
    open_rows = [r for r in group if r[1] not in _TERMINAL] or group
    votes: dict[str, int] = {}
    for row in open_rows:
        votes[row[5]] = votes.get(row[5], 0) + int(row[2])
    order = [level.value for level in PriorityLevel]
    return max(
        votes, key=lambda level: (votes[level], -order.index(level) if level in order else -9)
    )


def _batch_weight(group: list[Any]) -> float:
    """The weight most open entities have (all entities once none is open); a tie goes to
    the larger weight."""
    open_rows = [r for r in group if r[1] not in _TERMINAL] or group
    votes: dict[float, int] = {}
    for row in open_rows:
        votes[row[6]] = votes.get(row[6], 0) + int(row[2])
    return max(votes, key=lambda weight: (votes[weight], weight))


def _summaries(rows: list[Any]) -> list[BatchSummary]:
    grouped: dict[str, list[Any]] = {}
    for row in rows:
        grouped.setdefault(row[0], []).append(row)
    summaries = []
    for name, group in grouped.items():
        counts: dict[str, int] = {}
        for row in group:
            counts[row[1]] = counts.get(row[1], 0) + int(row[2])
        ended = sum(n for status, n in counts.items() if status in _TERMINAL)
        total = sum(counts.values())
        last_end = max((r[4] for r in group if r[4] is not None), default=None)
        summaries.append(
            BatchSummary(
                name=name,
                counts=counts,
                total=total,
                ended=ended,
                created=min(r[3] for r in group),
                finished=last_end if ended == total else None,
                priority=_batch_level(group),
                fairness_weight=_batch_weight(group),
                seats=sorted({row[7] for row in group}),
            )
        )
    return sorted(summaries, key=lambda s: (s.created, s.name), reverse=True)


async def batch_summaries(service: ServiceContext) -> list[BatchSummary]:
    """Every batch, newest first."""
    async with service.sessions() as session:
        rows = list((await session.execute(_batch_query())).all())
    return _summaries(rows)


async def batch_summary(service: ServiceContext, name: str) -> BatchSummary:
    async with service.sessions() as session:
        query = _batch_query().where(QueuedEntity.batch == name)
        rows = list((await session.execute(query)).all())
    if not rows:
        raise UnknownBatch(name)
    return _summaries(rows)[0]


async def entity_page(
    service: ServiceContext,
    *,
    batch: str | None = None,
    status: str | None = None,
    entity_type: str | None = None,
    seat: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> EntityPage:
    """Entities in submission order, filtered, one page of them and the total."""
    conditions = []
    if batch is not None:
        conditions.append(QueuedEntity.batch == batch)
    if status is not None:
        conditions.append(QueuedEntity.status == status)
    if entity_type is not None:
        conditions.append(QueuedEntity.entity_type == entity_type)
    if seat is not None:
        conditions.append(QueuedEntity.seat == seat)
    async with service.sessions() as session:
        total = await session.scalar(
            select(func.count()).select_from(QueuedEntity).where(*conditions)
        )
        rows = await session.scalars(
            select(QueuedEntity)
            .where(*conditions)
            .order_by(QueuedEntity.created_at, QueuedEntity.key)
            .limit(limit)
            .offset(offset)
        )
        views = [entity_view(row) for row in rows]
    return EntityPage(rows=views, total=int(total or 0), limit=limit, offset=offset)


def _version_of(idempotency_key: str | None) -> int | None:
    """`<key>:v<version>` (every POST carries one) to the version; PUTs carry none."""
    if not idempotency_key:
        return None
    _, sep, version = idempotency_key.rpartition(":v")
    return int(version) if sep and version.isdigit() else None


async def entity_detail(service: ServiceContext, key: str) -> EntityDetail:
    async with service.sessions() as session:
        row = await session.get(QueuedEntity, key)
        if row is None:
            raise UnknownEntity(key)
        parents = {
            k: s
            for k, s in (
                await session.execute(
                    select(QueuedEntity.key, QueuedEntity.status).where(
                        QueuedEntity.key.in_(list(row.depends_on))
                    )
                )
            ).all()
        }
        children = (
            await session.execute(
                select(QueuedEntity.key, QueuedEntity.status)
                .where(QueuedEntity.depends_on.contains([key]))
                .order_by(QueuedEntity.key)
            )
        ).all()
        sent = (
            await session.execute(
                select(
                    AuditRecord.method,
                    AuditRecord.request_body,
                    AuditRecord.idempotency_key,
                    AuditRecord.started_at,
                )
                .where(
                    AuditRecord.entity_key == key,
                    AuditRecord.method.in_(["POST", "PUT"]),
                    AuditRecord.request_body.is_not(None),
                )
                .order_by(AuditRecord.id)
            )
        ).all()
    versions = [PayloadVersion(row.payload_version, row.payload, "stored")]
    seen: list[Any] = []
    for method, body, idempotency_key, started_at in sent:
        if body in seen:  # retries of one request send the same body
            continue
        seen.append(body)
        versions.append(
            PayloadVersion(_version_of(idempotency_key), body, "sent", method, started_at)
        )
    return EntityDetail(
        view=entity_view(row),
        payload=row.payload,
        workflow_id=workflow_id_for(key),
        dependencies=[Neighbour(k, parents.get(k)) for k in sorted(row.depends_on)],
        dependants=[Neighbour(k, s) for k, s in children],
        payload_versions=versions,
    )


async def entity_audit(service: ServiceContext, key: str) -> list[AuditView]:
    """The audit trail, as `starter.py audit` shows it."""
    return await audit_views(service, key)


async def budget(service: ServiceContext, waiting_for_slot: int | None = None) -> Budget:
    """The shared rate ledger now: slots counted in the rolling window (each request counts
    from the latest moment it can reach the DSP, as the limiter counts it), 429s in the audit
    trail, and any pause the workers honour after a 429."""
    settings = service.settings
    window = settings.dsp_rate_window
    async with service.sessions() as session:
        used = await rate_ledger.granted_in_window(session, window)
        now = await session.scalar(select(func.clock_timestamp()))
        assert now is not None
        throttled_total, throttled_recent = (
            await session.execute(
                select(
                    func.count(),
                    func.count().filter(AuditRecord.started_at > now - timedelta(seconds=window)),
                ).where(AuditRecord.response_status == THROTTLED)
            )
        ).one()
        paused_until = await session.scalar(select(RatePause.paused_until))
    paused = max((paused_until - now).total_seconds(), 0.0) if paused_until else 0.0
    return Budget(
        used=used,
        limit=settings.dsp_rate_limit,
        window_seconds=window,
        throttled_total=int(throttled_total),
        throttled_in_window=int(throttled_recent),
        paused_seconds=round(paused, 3),
        waiting_for_slot=waiting_for_slot,
    )


def ended(status: str) -> bool:
    return EntityStatus(status) in TERMINAL_STATUSES
