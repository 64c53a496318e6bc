"""The audit trail: a row before each DSP request leaves, completed when it returns."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, ScalarSelect, Update, and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from dsp_integration.database.models import AuditRecord


@dataclass(frozen=True)
class RequestEntry:
    """The audit row of a request about to leave."""

    entity_key: str
    method: str
    path: str
    request_body: dict[str, Any] | None
    idempotency_key: str | None
    attempt: int = 1
    workflow_id: str | None = None
    activity_id: str | None = None
    note: str | None = None


@dataclass(frozen=True)
class RequestAnswer:
    """What came back: the DSP's answer, or the error that stood for it."""

    response_status: int | None
    response_body: str | None
    error: str | None


def answer_request(audit_id: int, answer: RequestAnswer) -> Update:
    """The statement that completes an audit row with its answer."""
    return (
        update(AuditRecord)
        .where(AuditRecord.id == audit_id)
        .values(
            response_status=answer.response_status,
            response_body=answer.response_body,
            error=answer.error,
            finished_at=func.clock_timestamp(),
        )
    )


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
        answer_request(audit_id, RequestAnswer(response_status, response_body, error))
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
            _may_have_landed(),
        )
        .limit(1)
    )
    return found is not None


async def seconds_since_last_landing_attempt(
    session: AsyncSession, entity_key: str, idempotency_key: str, *, request_timeout: float
) -> float | None:
    """Seconds since the latest request sent with `idempotency_key` that may have changed
    something at the DSP (`request_may_have_landed`) was last known in flight: its answer's
    end (a broken or dropped answer comes after the DSP acted, so the entity is at least that
    old), or, if it never ended (the worker died), its sending plus `request_timeout`, the
    latest the DSP can have taken it; None if there is none.
    Counting from the sending alone misses an entity the DSP created a moment after it (the
    row is written before the request leaves). Both times and now are the database's clock,
    so a worker's clock skew does not count."""
    unanswered_until = AuditRecord.started_at + timedelta(seconds=request_timeout)
    last = func.max(func.coalesce(AuditRecord.finished_at, unanswered_until))
    found: float | None = await session.scalar(
        select(func.extract("epoch", func.clock_timestamp() - last)).where(
            AuditRecord.entity_key == entity_key,
            AuditRecord.idempotency_key == idempotency_key,
            _may_have_landed(),
        )
    )
    return found


def _may_have_landed() -> ColumnElement[bool]:
    """An audited request that may have changed something at the DSP: answered 2xx, 5xx or
    not at all (a timeout, a lost connection, a worker that died while sending). A 4xx
    answer is the DSP's word that nothing was done."""
    return or_(
        AuditRecord.response_status.is_(None),
        AuditRecord.response_status < 400,
        AuditRecord.response_status >= 500,
    )


@dataclass(frozen=True)
class RoundEvent:
    """A request that started a processing round (`dsp_status` None: a POST or PUT the DSP
    accepted) or a status read, with the DSP status it answered."""

    entity_key: str
    at: datetime
    dsp_status: str | None
    dsp_at: datetime | None = None
    """The DSP's own time of it, where its answer gave one: a round start's `created_at` (or a
    PUT's `updated_at`), a read's `updated_at` (the moment its status last changed)."""


def _round_starts(collection: str) -> Any:
    return or_(
        and_(
            AuditRecord.method == "POST",
            AuditRecord.path == collection,
            AuditRecord.response_status == 201,
        ),
        and_(
            AuditRecord.method == "PUT",
            AuditRecord.path.like(f"{collection}/%"),
            AuditRecord.response_status == 200,
        ),
    )


async def recent_round_events(
    session: AsyncSession, collection: str, *, limit: int, scan: int
) -> list[RoundEvent]:
    """The latest `limit` round starts and status reads of the type at `collection`
    (`/v1/{type}`) among the latest `scan` audit rows, oldest first. `scan` bounds the
    read to a range of the primary key, so a type seldom used does not cost a walk through
    the whole table."""
    newest = await session.scalar(select(func.max(AuditRecord.id)))
    if newest is None:
        return []
    reads = and_(
        AuditRecord.method == "GET",
        AuditRecord.path.like(f"{collection}/%/status"),
        AuditRecord.response_status == 200,
    )
    rows = (
        await session.execute(
            select(
                AuditRecord.entity_key,
                AuditRecord.started_at,
                AuditRecord.method,
                AuditRecord.response_body,
            )
            .where(AuditRecord.id > newest - scan, or_(_round_starts(collection), reads))
            .order_by(AuditRecord.id.desc())
            .limit(limit)
        )
    ).all()
    events = []
    for key, at, method, body in reversed(rows):
        try:
            answer = json.loads(body or "")
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            answer = {}
        status = None
        if method == "GET":
            if "status" not in answer:
                continue
            status = str(answer["status"])
        stamp = answer.get("created_at" if method == "POST" else "updated_at")
        events.append(RoundEvent(key, at, status, _dsp_time(stamp)))
    return events


def _dsp_time(stamp: object) -> datetime | None:
    """An ISO 8601 time from the DSP's answer, or None when there is none or it has no zone."""
    if not isinstance(stamp, str):
        return None
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def latest_round_start(
    entity_key: str | ColumnElement[str], collection: str
) -> ScalarSelect[datetime]:
    """When the entity's latest accepted POST or PUT started (None if there is none)."""
    return (
        select(func.max(AuditRecord.started_at))
        .where(AuditRecord.entity_key == entity_key, _round_starts(collection))
        .scalar_subquery()
    )
