"""What an operator should look at, read from the queue table for the worker's gauges:
open entities whose DSP status the contract does not name (the service keeps polling them,
as it cannot tell an ending), and how long the oldest entity of each type has been under
review. The runbook (docs/runbook.md) says what each means and what to do."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, func, not_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from dsp_integration.contracts import TERMINAL_STATUSES, EntityStatus
from dsp_integration.contracts.entity_types import ARCHIVED, ENTITY_TYPES
from dsp_integration.database.models import QueuedEntity

# Statuses the contract names for every type besides its first and its success (dsp-api.md).
ENDING_STATUSES = ("rejected", "failed", ARCHIVED)


def known_dsp_statuses(entity_type: str) -> frozenset[str]:
    spec = next(spec for kind, spec in ENTITY_TYPES.items() if kind.value == entity_type)
    return frozenset({spec.first_status, spec.success_status, *ENDING_STATUSES})


@dataclass(frozen=True)
class Attention:
    unknown_dsp_status: dict[str, int]
    """Open entities per type whose last DSP status the contract does not name."""
    oldest_review_seconds: dict[str, float]
    """Per type, seconds since the oldest entity now under review (`polling`) was submitted."""


async def read_attention(session: AsyncSession) -> Attention:
    open_rows = QueuedEntity.status.not_in([status.value for status in TERMINAL_STATUSES])
    unknown = or_(
        *(
            and_(
                QueuedEntity.entity_type == kind.value,
                not_(QueuedEntity.dsp_status.in_(sorted(known_dsp_statuses(kind.value)))),
            )
            for kind in ENTITY_TYPES
        )
    )
    unknown_counts = await session.execute(
        select(QueuedEntity.entity_type, func.count())
        .where(open_rows, QueuedEntity.dsp_status.is_not(None), unknown)
        .group_by(QueuedEntity.entity_type)
    )
    review_since = func.coalesce(QueuedEntity.submitted_at, QueuedEntity.created_at)
    oldest = await session.execute(
        select(
            QueuedEntity.entity_type,
            func.extract("epoch", func.clock_timestamp() - func.min(review_since)),
        )
        .where(QueuedEntity.status == EntityStatus.POLLING.value)
        .group_by(QueuedEntity.entity_type)
    )
    return Attention(
        unknown_dsp_status={kind: int(count) for kind, count in unknown_counts.all()},
        oldest_review_seconds={kind: float(age) for kind, age in oldest.all()},
    )
