"""`cancel` and `resubmit`: the user's hand on a running (or ended) entity."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from contracts import TERMINAL_STATUSES, CancelRequest, EntityStatus, EntityType, ResubmitRequest
from database import queue_store
from database.models import QueuedEntity
from entities import Problem, SubmissionRefused, validate_payload
from entities.refs import dependencies_of, payload_fingerprint
from service.context import ServiceContext
from service.errors import EntityEnded, UnknownEntity
from service.workflow_starts import start_entity_workflow


@dataclass(frozen=True)
class ResubmitReport:
    key: str
    payload_version: int
    previous_status: str


async def _row(service: ServiceContext, key: str) -> QueuedEntity:
    async with service.sessions() as session:
        found = await queue_store.fetch_entities(session, [key])
    if key not in found:
        raise UnknownEntity(key)
    return found[key]


async def cancel(service: ServiceContext, key: str, reason: str = "cancelled by user") -> str:
    """Ask the entity's workflow to cancel; returns the status it had. A workflow that is not
    running is started to carry the cancel out (signal-with-start), so none is lost."""
    row = await _row(service, key)
    if EntityStatus(row.status) in TERMINAL_STATUSES:
        raise EntityEnded(f"entity {key!r} has already ended {row.status}; nothing to cancel")
    await start_entity_workflow(
        await service.temporal(),
        key,
        service.settings.temporal_task_queue,
        signal="cancel",
        signal_arg=CancelRequest(reason=reason),
    )
    return row.status


async def _referenced_ancestors(service: ServiceContext, keys: list[str]) -> set[str]:
    """Every key reachable from `keys` through stored dependencies (for cycle checks)."""
    seen: set[str] = set()
    frontier = set(keys)
    async with service.sessions() as session:
        while frontier:
            rows = await queue_store.fetch_entities(session, frontier)
            seen |= frontier
            frontier = {dep for row in rows.values() for dep in row.depends_on} - seen
    return seen


async def resubmit(
    service: ServiceContext, key: str, payload: dict[str, Any] | None = None
) -> ResubmitReport:
    """Store a new payload version (optionally a new payload) and hand it to the workflow:
    a running one re-PUTs or re-POSTs it, an ended one is started again. Entities blocked
    because of this one go back to waiting."""
    row = await _row(service, key)
    depends_on: list[str] | None = None
    fingerprint: str | None = None
    if payload is not None:
        deps = dependencies_of(payload, ())
        async with service.sessions() as session:
            known = set(await queue_store.fetch_entities(session, deps))
        problems = validate_payload(key, EntityType(row.entity_type), payload, known)
        if not problems and key in await _referenced_ancestors(service, deps):
            problems.append(
                Problem(f"the new payload makes a dependency cycle through {key!r}", key=key)
            )
        if problems:
            raise SubmissionRefused(problems)
        depends_on = sorted(
            set(deps) | (set(row.depends_on) - set(dependencies_of(row.payload, ())))
        )
        fingerprint = payload_fingerprint(payload)
    async with service.sessions.begin() as session:
        version = await queue_store.store_resubmission(
            session,
            key,
            payload=payload,
            payload_fingerprint=fingerprint,
            depends_on=depends_on,
        )
    await start_entity_workflow(
        await service.temporal(),
        key,
        service.settings.temporal_task_queue,
        signal="resubmit",
        signal_arg=ResubmitRequest(payload_version=version),
    )
    return ResubmitReport(key=key, payload_version=version, previous_status=row.status)
