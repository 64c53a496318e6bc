"""`cancel` and `resubmit`: the user's hand on a running (or ended) entity."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from dsp_integration.activities.reconciler import restart_orphans as _restart_orphans
from dsp_integration.client.action_records import ActionScope, refusals_recorded
from dsp_integration.client.actors import Actor
from dsp_integration.client.context import ServiceContext
from dsp_integration.client.errors import EntityEnded, UnknownBatch, UnknownEntity
from dsp_integration.client.workflow_starts import (
    EntityStart,
    signal_running_workflows,
    start_entity_workflow,
)
from dsp_integration.contracts import (
    SIGNAL_CANCEL,
    SIGNAL_REPRIORITISE,
    SIGNAL_RESUBMIT,
    TERMINAL_STATUSES,
    CancelRequest,
    EntityStatus,
    EntityType,
    PriorityLevel,
    ReconcileInput,
    ReconcileResult,
    ReprioritiseRequest,
    ResubmitRequest,
)
from dsp_integration.database import queue_store
from dsp_integration.database.action_log import Action, record_action
from dsp_integration.database.models import QueuedEntity
from dsp_integration.entities import Problem, SubmissionRefused, validate_payload
from dsp_integration.entities.refs import dependencies_of, payload_fingerprint
from dsp_integration.entities.rules import normalised_payload


@dataclass(frozen=True)
class ResubmitReport:
    key: str
    payload_version: int
    previous_status: str
    reopened: list[str] = field(default_factory=list)
    priority: PriorityLevel | None = None


@dataclass(frozen=True)
class PrioritiseReport:
    batch: str
    priority: PriorityLevel | None
    fairness_weight: float | None
    changed: int
    """The batch's entities that had not ended, which now have `priority` and `weight`."""
    signalled: int = 0
    """Of those, the ones whose workflow was running and was told (the rest read the row)."""


def _signal_with_start(
    row: QueuedEntity,
    signal: str,
    arg: Any,
    *,
    reopen: bool,
    level: PriorityLevel | None = None,
) -> EntityStart:
    """Signal-with-start for `row`'s workflow, at its batch's priority (at `level` if given)."""
    return EntityStart(
        key=row.key,
        batch=row.batch,
        level=level or PriorityLevel(row.priority),
        weight=row.fairness_weight,
        signal=signal,
        signal_arg=arg,
        reopen=reopen,
    )


async def _row(service: ServiceContext, key: str) -> QueuedEntity:
    async with service.sessions() as session:
        found = await queue_store.fetch_entities(session, [key])
    if key not in found:
        raise UnknownEntity(key)
    return found[key]


async def cancel(
    service: ServiceContext, key: str, reason: str = "cancelled by user", *, actor: Actor
) -> str:
    """Ask the entity's workflow to cancel, on behalf of `actor`; returns the status it had.
    A workflow that is not running is started to carry the cancel out (signal-with-start),
    so none is lost; one that ends meanwhile is not started again for it. Recorded in the
    action log once the signal is delivered (nothing else is stored), or as refused."""
    scope = ActionScope(actor, Action.CANCEL, entity_key=key)
    async with refusals_recorded(service.sessions, scope):
        row = await _row(service, key)
        scope.batch = row.batch
        request = CancelRequest(reason=reason, requested_by=actor.label())
        if EntityStatus(row.status) not in TERMINAL_STATUSES and await start_entity_workflow(
            await service.temporal(),
            service.sessions,
            service.settings.temporal_task_queue,
            _signal_with_start(row, SIGNAL_CANCEL, request, reopen=False),
        ):
            async with service.sessions.begin() as session:
                await record_action(
                    session,
                    actor,
                    Action.CANCEL,
                    batch=row.batch,
                    entity_key=key,
                    detail={"previous_status": row.status},
                )
            return row.status
        ended = await _row(service, key)
        raise EntityEnded(f"entity {key!r} has already ended {ended.status}; nothing to cancel")


# One lock for every change of the dependency graph by a resubmit: two resubmits checked
# against the same stored graph could otherwise each pass the cycle check and together store
# a cycle. Resubmits are rare and short; submits cannot close a cycle (a new key can only
# point at keys already stored), so they do not take it.
DEPENDENCY_GRAPH_LOCK = 0x44535052  # "DSPR"


async def _referenced_ancestors(session: AsyncSession, keys: list[str]) -> set[str]:
    """Every key reachable from `keys` through stored dependencies (for cycle checks)."""
    seen: set[str] = set()
    frontier = set(keys)
    while frontier:
        rows = await queue_store.fetch_entities(session, frontier)
        seen |= frontier
        frontier = {dep for row in rows.values() for dep in row.depends_on} - seen
    return seen


async def resubmit(
    service: ServiceContext,
    key: str,
    payload: dict[str, Any] | None = None,
    priority: PriorityLevel | None = None,
    *,
    actor: Actor,
) -> ResubmitReport:
    """Store a new payload version (optionally a new payload) and hand it to the workflow:
    a running one re-PUTs or re-POSTs it, an ended one is started again. Everything blocked
    downstream of this entity goes back to waiting, in the same transaction. With
    `priority`, the entity's DSP calls from now on go at that level.

    The checks and the write run in one transaction under `DEPENDENCY_GRAPH_LOCK`, so
    concurrent resubmits are serialised: each sees what the one before it stored. The
    action log's row for `actor` is written in the same transaction (refused: after it)."""
    scope = ActionScope(actor, Action.RESUBMIT, entity_key=key)
    if priority is not None:
        scope.extra["new_level"] = priority.value
    async with refusals_recorded(service.sessions, scope):
        return await _resubmit(service, key, payload, priority, scope)


async def _resubmit(
    service: ServiceContext,
    key: str,
    payload: dict[str, Any] | None,
    priority: PriorityLevel | None,
    scope: ActionScope,
) -> ResubmitReport:
    async with service.sessions.begin() as session:
        await session.execute(select(func.pg_advisory_xact_lock(DEPENDENCY_GRAPH_LOCK)))
        rows = await queue_store.fetch_entities(session, [key])
        if key not in rows:
            raise UnknownEntity(key)
        row = rows[key]
        previous_status = row.status
        scope.batch = row.batch
        scope.extra.update(old_version=row.payload_version, old_level=row.priority)
        depends_on: list[str] | None = None
        fingerprint: str | None = None
        if payload is not None:
            payload = normalised_payload(EntityType(row.entity_type), payload)
            deps = dependencies_of(payload, ())
            referenced = await queue_store.fetch_entities(session, deps)
            # The entity keeps its seat: its new payload's `$ref`s must stay within it.
            problems = validate_payload(
                key,
                EntityType(row.entity_type),
                payload,
                set(referenced),
                seat=row.seat,
                known_seats={dep: stored.seat for dep, stored in referenced.items()},
            )
            if not problems and key in await _referenced_ancestors(session, deps):
                problems.append(
                    Problem(f"the new payload makes a dependency cycle through {key!r}", key=key)
                )
            if problems:
                raise SubmissionRefused(problems)
            depends_on = sorted(
                set(deps) | (set(row.depends_on) - set(dependencies_of(row.payload, ())))
            )
            fingerprint = payload_fingerprint(payload)
        stored = await queue_store.store_resubmission(
            session,
            key,
            payload=payload,
            payload_fingerprint=fingerprint,
            depends_on=depends_on,
            priority=priority,
        )
        await record_action(
            session,
            scope.actor,
            Action.RESUBMIT,
            batch=row.batch,
            entity_key=key,
            old_version=scope.extra["old_version"],
            new_version=stored.payload_version,
            old_level=scope.extra["old_level"] if priority is not None else None,
            new_level=priority.value if priority is not None else None,
            detail={
                "previous_status": previous_status,
                "new_payload": payload is not None,
                "reopened": stored.reopened,
            },
        )
        scope.accepted = True
    await start_entity_workflow(
        await service.temporal(),
        service.sessions,
        service.settings.temporal_task_queue,
        _signal_with_start(
            row,
            SIGNAL_RESUBMIT,
            ResubmitRequest(
                payload_version=stored.payload_version, requested_by=scope.actor.label()
            ),
            reopen=True,
            level=priority,
        ),
    )
    return ResubmitReport(
        key=key,
        payload_version=stored.payload_version,
        previous_status=previous_status,
        reopened=stored.reopened,
        priority=priority,
    )


async def prioritise(
    service: ServiceContext,
    batch: str,
    priority: PriorityLevel | None,
    fairness_weight: float | None = None,
    *,
    actor: Actor,
) -> PrioritiseReport:
    """Give the batch's entities that have not ended `priority` and `fairness_weight` (None:
    unchanged), then signal `reprioritise` to their running workflows, so a DSP call already
    waiting in the DSP queue is scheduled again with the new priority. The row is written
    first: a workflow that starts meanwhile reads the new values. The action log's row for
    `actor` is written in the same transaction (refused: after it)."""
    scope = ActionScope(actor, Action.PRIORITISE, batch=batch)
    scope.extra.update(
        new_level=priority.value if priority is not None else None, new_weight=fairness_weight
    )
    async with refusals_recorded(service.sessions, scope):
        return await _prioritise(service, batch, priority, fairness_weight, scope)


async def _open_share(session: AsyncSession, batch: str) -> tuple[str | None, float | None]:
    """The level and weight most of the batch's open entities have (None, None: none open)."""
    found = (
        await session.execute(
            select(QueuedEntity.priority, QueuedEntity.fairness_weight)
            .where(
                QueuedEntity.batch == batch,
                QueuedEntity.status.not_in([status.value for status in TERMINAL_STATUSES]),
            )
            .group_by(QueuedEntity.priority, QueuedEntity.fairness_weight)
            .order_by(func.count().desc(), QueuedEntity.priority)
            .limit(1)
        )
    ).first()
    return (found[0], found[1]) if found else (None, None)


async def _prioritise(
    service: ServiceContext,
    batch: str,
    priority: PriorityLevel | None,
    fairness_weight: float | None,
    scope: ActionScope,
) -> PrioritiseReport:
    async with service.sessions.begin() as session:
        old_level, old_weight = await _open_share(session, batch)
        keys = await queue_store.prioritise_batch(session, batch, priority, fairness_weight)
        if keys is None:
            raise UnknownBatch(batch)
        await record_action(
            session,
            scope.actor,
            Action.PRIORITISE,
            batch=batch,
            old_level=old_level if priority is not None else None,
            new_level=priority.value if priority is not None else None,
            old_weight=old_weight if fairness_weight is not None else None,
            new_weight=fairness_weight,
            detail={"changed": len(keys)},
        )
        scope.accepted = True
    signalled = 0
    if keys and (priority is not None or fairness_weight is not None):
        signalled = await signal_running_workflows(
            await service.temporal(),
            keys,
            SIGNAL_REPRIORITISE,
            ReprioritiseRequest(
                priority=priority,
                fairness_weight=fairness_weight,
                requested_by=scope.actor.label(),
            ),
        )
    return PrioritiseReport(
        batch=batch,
        priority=priority,
        fairness_weight=fairness_weight,
        changed=len(keys),
        signalled=signalled,
    )


async def restart_orphans(service: ServiceContext, grace_seconds: float) -> ReconcileResult:
    """What the reconcile schedule does, on demand: start the workflow of every open entity
    idle for `grace_seconds` that has none running."""
    return await _restart_orphans(
        service.sessions,
        await service.temporal(),
        ReconcileInput(
            task_queue=service.settings.temporal_task_queue, grace_seconds=grace_seconds
        ),
    )
