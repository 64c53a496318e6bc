"""Read-only views of what people and the service did: the action log, entities found by key
or name across batches, DSP requests per minute over the last hour, and how long the DSP
takes to review each entity type."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, func, or_, select

from dsp_integration.activities.review_times import ReviewTimes, observations_from
from dsp_integration.client.context import ServiceContext
from dsp_integration.client.queries import EntityView, entity_view
from dsp_integration.contracts import EntityType, collection_path
from dsp_integration.database import action_log, audit_log
from dsp_integration.database.action_log import ActionView
from dsp_integration.database.models import AuditRecord, QueuedEntity

SEARCH_LIMIT = 100
MINUTES = 60
THROTTLED = 429
# Enough rounds to read the quantiles from, within a bounded range of the audit table.
REVIEW_ROWS = 2000
REVIEW_SCAN = 50_000


async def actions(
    service: ServiceContext,
    *,
    batch: str | None = None,
    key: str | None = None,
    actor: str | None = None,
    limit: int = 100,
) -> list[ActionView]:
    """The action log, newest first, filtered exactly by batch, entity key and actor name."""
    async with service.sessions() as session:
        return await action_log.recent_actions(
            session, batch=batch, entity_key=key, actor_name=actor, limit=limit
        )


async def entity_actions(service: ServiceContext, key: str, batch: str) -> list[ActionView]:
    """The entity's actions and its batch's batch-wide ones (its submit, a prioritise)."""
    async with service.sessions() as session:
        return await action_log.recent_actions(
            session, entity_key=key, batch=batch, with_batch_wide=True
        )


def key_or_name_contains(text: str) -> ColumnElement[bool]:
    """The entity's key or its payload's `name` contains `text`, in any case (`%` and `_`
    in `text` are themselves)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    pattern = f"%{escaped}%"
    name = QueuedEntity.payload["name"].astext
    return or_(QueuedEntity.key.ilike(pattern), name.ilike(pattern))


async def search_entities(
    service: ServiceContext, text: str, *, limit: int = SEARCH_LIMIT
) -> list[EntityView]:
    """Entities whose key or payload `name` contains `text` (any case), in every batch:
    exact key matches first, then by key."""
    text = text.strip()
    if not text:
        return []
    async with service.sessions() as session:
        rows = await session.scalars(
            select(QueuedEntity)
            .where(key_or_name_contains(text))
            .order_by((QueuedEntity.key != text), QueuedEntity.key)
            .limit(limit)
        )
        return [entity_view(row) for row in rows]


@dataclass(frozen=True)
class MinuteCount:
    minute: datetime
    requests: int
    throttled: int


@dataclass(frozen=True)
class TypeReviewTimes:
    """How long the DSP took to decide entities of a type, from the audit's status reads."""

    entity_type: str
    rounds: int
    decided: int
    median: float | None
    p90: float | None


async def requests_per_minute(service: ServiceContext, minutes: int = MINUTES) -> list[MinuteCount]:
    """DSP requests sent in each of the last `minutes` minutes (the database's clock), the
    current minute last, with the ones answered 429; minutes without any count 0."""
    minute = func.date_trunc("minute", AuditRecord.started_at)
    async with service.sessions() as session:
        now = await session.scalar(select(func.date_trunc("minute", func.clock_timestamp())))
        if now is None:  # never: the database always has a clock
            raise RuntimeError("the database did not tell the time")
        since = now - timedelta(minutes=minutes - 1)
        rows = (
            await session.execute(
                select(
                    minute,
                    func.count(),
                    func.count().filter(AuditRecord.response_status == THROTTLED),
                )
                .where(AuditRecord.started_at >= since)
                .group_by(minute)
            )
        ).all()
    counted = {at: (int(total), int(throttled)) for at, total, throttled in rows}
    out = []
    for step in range(minutes):
        at = since + timedelta(minutes=step)
        total, throttled = counted.get(at, (0, 0))
        out.append(MinuteCount(at, total, throttled))
    return out


async def review_times(service: ServiceContext) -> list[TypeReviewTimes]:
    """Per entity type, the median and 90th percentile review time (Kaplan-Meier over the
    recent rounds in the audit table, as the poll planner learns them; None before enough
    rounds were decided)."""
    out = []
    async with service.sessions() as session:
        for entity_type in EntityType:
            events = await audit_log.recent_round_events(
                session, collection_path(entity_type), limit=REVIEW_ROWS, scan=REVIEW_SCAN
            )
            model = ReviewTimes(observations_from(events, entity_type))
            out.append(
                TypeReviewTimes(
                    entity_type=entity_type.value,
                    rounds=model.rounds,
                    decided=model.decided,
                    median=model.quantile(0.5),
                    p90=model.quantile(0.9),
                )
            )
    return out
