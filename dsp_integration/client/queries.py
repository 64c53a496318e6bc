"""Read-only views for `status` and `audit`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from dsp_integration.client.context import ServiceContext
from dsp_integration.client.errors import UnknownEntity
from dsp_integration.contracts import DEFAULT_SEAT, DSP_FAIRNESS_WEIGHT
from dsp_integration.database import audit_log, queue_store
from dsp_integration.database.models import QueuedEntity


@dataclass(frozen=True)
class EntityView:
    key: str
    type: str
    batch: str
    status: str
    dsp_id: str | None
    dsp_status: str | None
    reason: str | None
    blocked_by: str | None
    payload_version: int
    priority: str
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    fairness_weight: float = DSP_FAIRNESS_WEIGHT
    seat: str = DEFAULT_SEAT
    name: str | None = None
    """The payload's `name`, what people call the entity (None when it has none)."""

    @property
    def seconds_to_end(self) -> float | None:
        """From submission to the terminal status, once it has ended."""
        if self.finished_at is None:
            return None
        return (self.finished_at - self.created_at).total_seconds()

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for name in ("created_at", "updated_at", "finished_at"):
            data[name] = data[name].isoformat() if data[name] else None
        return data


@dataclass(frozen=True)
class AuditView:
    id: int
    method: str
    path: str
    request_body: Any
    idempotency_key: str | None
    response_status: int | None
    response_body: str | None
    error: str | None
    attempt: int
    started_at: datetime
    finished_at: datetime | None
    # Why the service sent it, when no user step asked for it (a duplicate archived).
    note: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["started_at"] = self.started_at.isoformat()
        data["finished_at"] = self.finished_at.isoformat() if self.finished_at else None
        return data


async def entity_views(
    service: ServiceContext, *, keys: Sequence[str] = (), batch: str | None = None
) -> list[EntityView]:
    async with service.sessions() as session:
        rows = await queue_store.list_entities(session, keys=keys, batch=batch)
    missing = set(keys) - {row.key for row in rows}
    if missing:
        raise UnknownEntity(sorted(missing)[0])
    return [entity_view(row) for row in rows]


def entity_view(row: QueuedEntity) -> EntityView:
    return EntityView(
        key=row.key,
        type=row.entity_type,
        batch=row.batch,
        status=row.status,
        dsp_id=row.dsp_id,
        dsp_status=row.dsp_status,
        reason=row.reason,
        blocked_by=row.blocked_by,
        payload_version=row.payload_version,
        priority=row.priority,
        created_at=row.created_at,
        updated_at=row.updated_at,
        finished_at=row.finished_at,
        fairness_weight=row.fairness_weight,
        seat=row.seat,
        name=payload_name(row.payload),
    )


def payload_name(payload: dict[str, Any]) -> str | None:
    name = payload.get("name")
    return name if isinstance(name, str) else None


async def status_counts(service: ServiceContext, batch: str | None = None) -> dict[str, int]:
    async with service.sessions() as session:
        return await queue_store.count_by_status(session, batch=batch)


async def audit_views(service: ServiceContext, key: str) -> list[AuditView]:
    async with service.sessions() as session:
        if not await queue_store.fetch_entities(session, [key]):
            raise UnknownEntity(key)
        records = await audit_log.requests_of(session, key)
    return [
        AuditView(
            id=r.id,
            method=r.method,
            path=r.path,
            request_body=r.request_body,
            idempotency_key=r.idempotency_key,
            response_status=r.response_status,
            response_body=r.response_body,
            error=r.error,
            attempt=r.attempt,
            started_at=r.started_at,
            finished_at=r.finished_at,
            note=r.note,
        )
        for r in records
    ]
