"""`submit`: check a whole entity file, store it in one transaction, start its workflows."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dsp_integration.client.action_records import ActionScope, refusals_recorded
from dsp_integration.client.actors import Actor
from dsp_integration.client.context import ServiceContext
from dsp_integration.client.errors import BadWeight, UnknownPriority
from dsp_integration.client.workflow_starts import EntityStart, start_entity_workflows
from dsp_integration.config import Settings
from dsp_integration.contracts import (
    DEFAULT_PRIORITY_LEVEL,
    DSP_FAIRNESS_WEIGHT,
    TERMINAL_STATUSES,
    EntityStatus,
    PriorityLevel,
    parse_fairness_weight,
    parse_priority_level,
)
from dsp_integration.contracts.search_attributes import entity_search_attributes
from dsp_integration.database import queue_store
from dsp_integration.database.action_log import Action, record_action
from dsp_integration.database.models import QueuedEntity
from dsp_integration.entities import (
    ExistingEntity,
    SeatChoice,
    Submission,
    check_submission,
    keys_to_look_up,
    parse_submission,
    topological_order,
)
from dsp_integration.entities.refs import dependencies_of, payload_fingerprint


@dataclass(frozen=True)
class SubmitReport:
    batch: str
    entities: int
    stored: int
    started: int
    already_ended: int
    priority: PriorityLevel = DEFAULT_PRIORITY_LEVEL
    fairness_weight: float = DSP_FAIRNESS_WEIGHT


def read_submission(path: Path, batch: str | None = None) -> Submission:
    """Parse the file; raises `SubmissionRefused` listing every problem."""
    return parse_submission(path.read_bytes(), filename=path.name, batch=batch)


def priority_level(text: str | None) -> PriorityLevel:
    """`high`, `normal` or `low` (any case; None is normal); raises `UnknownPriority`."""
    if text is None:
        return DEFAULT_PRIORITY_LEVEL
    level = parse_priority_level(text)
    if level is None:
        raise UnknownPriority(text)
    return level


def fairness_weight(text: str | float | None) -> float:
    """A batch's fairness weight, within Temporal's recommended range (None is the default
    weight); raises `BadWeight`."""
    if text is None:
        return DSP_FAIRNESS_WEIGHT
    weight = parse_fairness_weight(str(text))
    if weight is None:
        raise BadWeight(str(text))
    return weight


def _start(
    key: str,
    entity_type: str,
    stored: QueuedEntity | None,
    batch: str,
    level: PriorityLevel,
    weight: float,
) -> EntityStart:
    """The start of an entity of the file: with what was stored before, if it was (its batch,
    level, weight and status; the start then only carries news, as the entity may end
    meanwhile), else with the file's (the start brings it new work)."""
    if stored is not None:
        batch, level, weight = stored.batch, PriorityLevel(stored.priority), stored.fairness_weight
    status = stored.status if stored is not None else EntityStatus.WAITING.value
    return EntityStart(
        key=key,
        batch=batch,
        level=level,
        weight=weight,
        reopen=stored is None,
        search_attributes=entity_search_attributes(key, entity_type, batch, status),
    )


def _existing(row: QueuedEntity) -> ExistingEntity:
    return ExistingEntity(
        key=row.key, type=row.entity_type, payload=row.payload, batch=row.batch, seat=row.seat
    )


def configured_seats(settings: Settings) -> SeatChoice:
    """The seats a file may name, and the default seat, from the settings (raises
    `SeatProblems` when the seats' configuration is wrong)."""
    seats = settings.seat_layout()
    return SeatChoice.of(seats.names(), seats.default)


async def submit(
    service: ServiceContext,
    submission: Submission,
    priority: PriorityLevel = DEFAULT_PRIORITY_LEVEL,
    fairness_weight: float = DSP_FAIRNESS_WEIGHT,
    *,
    actor: Actor,
) -> SubmitReport:
    """Validate against what is stored, store new entities at `priority` with
    `fairness_weight`, start every open workflow. Submitting the same file again stores
    nothing and starts only what is not running (entities stored before keep their priority
    and weight: `control.prioritise` changes them). Each entity is stored with its seat: its
    own, else the file's, else the configured default; one stored before keeps its own.
    The action log's row for `actor` is written in the storing transaction (a refused file:
    after it has rolled back)."""
    scope = ActionScope(actor, Action.SUBMIT, batch=submission.batch)
    scope.extra.update(new_level=priority.value, new_weight=fairness_weight)
    async with refusals_recorded(service.sessions, scope):
        return await _submit(service, submission, priority, fairness_weight, scope)


async def _submit(
    service: ServiceContext,
    submission: Submission,
    priority: PriorityLevel,
    fairness_weight: float,
    scope: ActionScope,
) -> SubmitReport:
    seats = configured_seats(service.settings)
    async with service.sessions.begin() as session:
        rows = await queue_store.fetch_entities(session, keys_to_look_up(submission))
        check_submission(
            submission, {key: _existing(row) for key, row in rows.items()}, seats=seats
        )
        # Before storing: entities stored while Temporal is unreachable would never start.
        client = await service.temporal()
        ordered = topological_order(submission.entities)
        new = [
            queue_store.NewEntity(
                key=spec.key,
                batch=submission.batch,
                entity_type=str(spec.type),
                payload=spec.payload,
                payload_fingerprint=payload_fingerprint(spec.payload),
                depends_on=dependencies_of(spec.payload, spec.depends_on),
                priority=priority,
                fairness_weight=fairness_weight,
                seat=submission.seat_of(spec, seats.default),
            )
            for spec in ordered
            if spec.key not in rows
        ]
        inserted = await queue_store.insert_new_entities(session, new)
        raced = [entity.key for entity in new if entity.key not in inserted]
        if raced:
            # Another client stored these keys since we looked: check the file against what it
            # stored, and refuse the whole file (nothing of it is committed) if they differ.
            rows.update(await queue_store.fetch_entities(session, raced))
            check_submission(
                submission, {key: _existing(row) for key, row in rows.items()}, seats=seats
            )
        stored = len(inserted)
        await record_action(
            session,
            scope.actor,
            Action.SUBMIT,
            batch=submission.batch,
            new_level=priority.value,
            new_weight=fairness_weight,
            detail={"entities": len(submission.entities), "stored": stored},
        )
        scope.accepted = True
    ended = {key for key, row in rows.items() if EntityStatus(row.status) in TERMINAL_STATUSES}
    starts = [
        _start(
            spec.key,
            str(spec.type),
            rows.get(spec.key),
            submission.batch,
            priority,
            fairness_weight,
        )
        for spec in ordered
        if spec.key not in ended
    ]
    started = await start_entity_workflows(
        client, service.sessions, service.settings.temporal_task_queue, starts
    )
    return SubmitReport(
        batch=submission.batch,
        entities=len(submission.entities),
        stored=stored,
        started=started,
        already_ended=len(ended),
        priority=priority,
        fairness_weight=fairness_weight,
    )
