"""The audit trail: a row before each DSP request leaves, completed when it returns."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from dsp_integration.database.models import AuditRecord


async def open_request(
    session: AsyncSession,
    *,
    entity_key: str,
    method: str,
    path: str,
    request_body: dict[str, Any] | None,
    idempotency_key: str | None,
    attempt: int,
    workflow_id: str | None,
    activity_id: str | None,
) -> int:
    record = AuditRecord(
        entity_key=entity_key,
        method=method,
        path=path,
        request_body=request_body,
        idempotency_key=idempotency_key,
        attempt=attempt,
        workflow_id=workflow_id,
        activity_id=activity_id,
    )
    session.add(record)
    await session.flush()
    return record.id


async def close_request(
    session: AsyncSession,
    audit_id: int,
    *,
    response_status: int | None,
    response_body: str | None,
    error: str | None,
) -> None:
    await session.execute(
        update(AuditRecord)
        .where(AuditRecord.id == audit_id)
        .values(
            response_status=response_status,
            response_body=response_body,
            error=error,
            finished_at=func.clock_timestamp(),
        )
    )


async def requests_of(session: AsyncSession, entity_key: str) -> list[AuditRecord]:
    rows = await session.scalars(
        select(AuditRecord).where(AuditRecord.entity_key == entity_key).order_by(AuditRecord.id)
    )
    return list(rows)


async def all_requests(session: AsyncSession) -> list[AuditRecord]:
    return list(await session.scalars(select(AuditRecord).order_by(AuditRecord.id)))


async def request_may_have_landed(
    session: AsyncSession, entity_key: str, idempotency_key: str
) -> bool:
    """Whether a request sent with `idempotency_key` may have changed something at the DSP:
    one that was answered 2xx, 5xx or not at all (a timeout, a lost connection, a worker
    that died while sending). A 4xx answer is the DSP's word that nothing was done."""
    found = await session.scalar(
        select(AuditRecord.id)
        .where(
            AuditRecord.entity_key == entity_key,
            AuditRecord.idempotency_key == idempotency_key,
            or_(
                AuditRecord.response_status.is_(None),
                AuditRecord.response_status < 400,
                AuditRecord.response_status >= 500,
            ),
        )
        .limit(1)
    )
    return found is not None
