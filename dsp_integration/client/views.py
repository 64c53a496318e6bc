"""Read-only views for the web console and HTTP API: batches, pages of entities, one
entity with its neighbours and payload versions, and the DSP budget.

Only reads; every write goes through `submission` and `control` of this package."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Select, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from dsp_integration.client import health
from dsp_integration.client.activity import key_or_name_contains
from dsp_integration.client.context import ServiceContext
from dsp_integration.client.errors import UnknownBatch, UnknownEntity
from dsp_integration.client.queries import AuditView, EntityView, audit_views, entity_view
from dsp_integration.config.seats import Seat
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
from dsp_integration.database.models import AuditRecord, QueuedEntity

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
class SeatBudget:
    """One seat's budget now: its window, the calls waiting for it, its 429s and pause."""

    seat: str
    used: int
    limit: int
    window_seconds: float
    throttled_total: int
    throttled_in_window: int
    paused_seconds: float
    waiting_in_workers: int
    """Calls the workers hold, queued in the ledger for a slot."""
    waiting_for_slot: int | None
    """Calls in the seat's DSP task queue that no worker has taken yet (Temporal's
    approximate backlog); None when not asked or Temporal did not answer."""

    @property
    def calls_waiting(self) -> int:
        """Every call known to wait for one of the seat's slots."""
        return self.waiting_in_workers + (self.waiting_for_slot or 0)

    def to_json(self) -> dict[str, Any]:
        return {
            "seat": self.seat,
            "used": self.used,
            "limit": self.limit,
            "window_seconds": self.window_seconds,
            "throttled_total": self.throttled_total,
            "throttled_in_window": self.throttled_in_window,
            "paused_seconds": self.paused_seconds,
            "waiting_in_workers": self.waiting_in_workers,
            "waiting_for_slot": self.waiting_for_slot,
            "calls_waiting": self.calls_waiting,
        }


@dataclass(frozen=True)
class Budget:
    """Every configured seat's budget, the default seat's first."""

    default_seat: str
    seats: list[SeatBudget]

    @property
    def default(self) -> SeatBudget:
        """The default seat's: what the budget meant before there were seats."""
        return next(b for b in self.seats if b.seat == self.default_seat)

    def to_json(self) -> dict[str, Any]:
        """The default seat's figures at the top level (as before seats), `seats` for all."""
        default = self.default.to_json()
        del default["seat"]
        return {
            **default,
            "default_seat": self.default_seat,
            "seats": [b.to_json() for b in self.seats],
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
    text: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> EntityPage:
    """Entities in submission order, filtered, one page of them and the total. `text`: the
    key or the payload's `name` contains it (any case)."""
    conditions = []
    if text:
        conditions.append(key_or_name_contains(text))
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


async def budget(service: ServiceContext, *, with_backlog: bool = False) -> Budget:
    """Every configured seat's part of the shared rate ledger now: slots counted in its
    rolling window (each request counts from the latest moment it can reach the DSP, as the
    limiter counts it), calls the workers hold waiting for a slot, 429s in the audit trail
    and any pause the workers honour after one. `with_backlog` also asks Temporal for each
    seat's DSP task-queue backlog (a round trip per seat)."""
    seats = service.settings.seat_layout()
    ordered = sorted(seats, key=lambda seat: (seat.name != seats.default, seat.name))
    async with service.sessions() as session:
        by_seat = await rate_ledger.seat_windows(
            session, {seat.name: seat.rate_window for seat in ordered}
        )
        windows = [by_seat[seat.name] for seat in ordered]
        throttled = await _throttled_by_seat(session, ordered, seats.default)
    backlogs: list[int | None] = [None] * len(ordered)
    if with_backlog:
        backlogs = list(
            await asyncio.gather(*(health.dsp_backlog(service, seat.name) for seat in ordered))
        )
    return Budget(
        default_seat=seats.default,
        seats=[
            SeatBudget(
                seat=seat.name,
                used=window.in_window,
                limit=seat.rate_limit,
                window_seconds=seat.rate_window,
                throttled_total=throttled.get(seat.name, (0, 0))[0],
                throttled_in_window=throttled.get(seat.name, (0, 0))[1],
                paused_seconds=round(window.paused_seconds, 3),
                waiting_in_workers=window.waiting,
                waiting_for_slot=backlog,
            )
            for seat, window, backlog in zip(ordered, windows, backlogs, strict=True)
        ],
    )


async def _throttled_by_seat(
    session: AsyncSession, seats: list[Seat], default_seat: str
) -> dict[str, tuple[int, int]]:
    """429 answers by seat: in the whole audit trail, and in the seat's current window. A
    request's seat is its entity's (the default seat's when the entity is gone)."""
    seat_of = func.coalesce(QueuedEntity.seat, default_seat)
    window_of = case({seat.name: seat.rate_window for seat in seats}, value=seat_of, else_=0.0)
    recent = AuditRecord.started_at > func.clock_timestamp() - func.make_interval(
        0, 0, 0, 0, 0, 0, window_of
    )
    rows = await session.execute(
        select(seat_of, func.count(), func.count().filter(recent))
        .select_from(AuditRecord)
        .outerjoin(QueuedEntity, QueuedEntity.key == AuditRecord.entity_key)
        .where(AuditRecord.response_status == THROTTLED)
        .group_by(seat_of)
    )
    return {seat: (int(total), int(in_window)) for seat, total, in_window in rows}


def ended(status: str) -> bool:
    return EntityStatus(status) in TERMINAL_STATUSES
