"""Inputs and results of the entity workflow, its activities, signals and query.

Each call takes one model so fields can be added without breaking running workflows.
DSP payloads travel as plain JSON objects; nothing secret is ever part of these."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from dsp_integration.contracts.names import DEFAULT_PRIORITY_LEVEL, DEFAULT_SEAT, PriorityLevel
from dsp_integration.contracts.statuses import EntityStatus, EntityType

JsonObject = dict[str, Any]


class PollCarry(BaseModel):
    """What a polling run hands to its continuation after continue-as-new."""

    dsp_id: str
    dsp_status: str
    payload_version: int
    polls: int = 0
    next_interval: float


class EntityWorkflowInput(BaseModel):
    key: str
    carry: PollCarry | None = None


class CancelRequest(BaseModel):
    reason: str = "cancelled by user"
    # Who asked (`Actor.label()`), so the workflow's history shows it; None before the field.
    requested_by: str | None = None


class ResubmitRequest(BaseModel):
    """Sent after the client stored `payload_version` in the queue table."""

    payload_version: int
    requested_by: str | None = None


class ReprioritiseRequest(BaseModel):
    """Sent after the client stored a batch's new level or weight in the queue table: the
    workflow re-keys its DSP call still waiting in the DSP queue (None: unchanged)."""

    priority: PriorityLevel | None = None
    fairness_weight: float | None = None
    requested_by: str | None = None


class DependencyOutcome(BaseModel):
    """Where a dependency stands, signalled to its dependants: how a payload version ended,
    or (status `waiting`) that a new version superseded what they were told before. A newer
    `payload_version` always wins; signals from runs recorded before the field read 0."""

    key: str
    status: EntityStatus
    dsp_id: str | None = None
    reason: str | None = None
    blocked_by: str | None = None
    payload_version: int = 0


class EntityState(BaseModel):
    """What the `state` query reports."""

    key: str
    entity_type: EntityType | None = None
    status: EntityStatus
    payload_version: int = 0
    dsp_id: str | None = None
    dsp_status: str | None = None
    reason: str | None = None
    waiting_on: list[str] = Field(default_factory=list)
    polls: int = 0
    next_poll_at: datetime | None = None
    priority: PriorityLevel | None = None
    fairness_weight: float | None = None


class LoadEntityInput(BaseModel):
    key: str


class DependencySnapshot(BaseModel):
    key: str
    status: EntityStatus
    dsp_id: str | None = None
    reason: str | None = None
    blocked_by: str | None = None
    payload_version: int = 0


class EntitySnapshot(BaseModel):
    key: str
    batch: str
    entity_type: EntityType
    payload: JsonObject
    payload_version: int
    status: EntityStatus
    dsp_id: str | None = None
    dsp_status: str | None = None
    reason: str | None = None
    dependencies: list[DependencySnapshot] = Field(default_factory=list)
    # Open (not terminal) entities whose `depends_on` holds this key, when it was loaded: its
    # DSP calls go before a leaf's. Histories recorded before the field read it as 0.
    dependants: int = 0
    # The priority users gave it (`submit --priority`, `prioritise`), when it was loaded.
    priority: PriorityLevel = DEFAULT_PRIORITY_LEVEL
    # Its batch's fairness weight, when it was loaded. None in results recorded before the
    # field (the default weight).
    fairness_weight: float | None = None
    # The DSP account it belongs to (its file's, or the configured default): its DSP calls
    # run on that seat's task queue. Results recorded before seats read it as the default.
    seat: str = DEFAULT_SEAT


class RecordStatusInput(BaseModel):
    key: str
    status: EntityStatus
    payload_version: int
    dsp_id: str | None = None
    dsp_status: str | None = None
    reason: str | None = None
    blocked_by: str | None = None


class TellDependantsResult(BaseModel):
    """How many dependants were told; of those, how many had already ended, so the news
    started no run of theirs (`already_ended`); and whether the outcome was superseded
    before every page was told."""

    told: int
    already_ended: int = 0
    superseded: bool = False


class RecordStatusResult(BaseModel):
    """For a terminal status: how many dependants to tell (counted, so no list of keys enters
    the history), and whether the row took the status at all (it does not when a newer
    payload version was stored meanwhile)."""

    dependants_to_tell: int = 0
    recorded: bool = True
    # The entity's priority as the row holds it now, so a `prioritise` reaches the next DSP
    # call of a running workflow. None in results recorded before the field (keep the level).
    priority: PriorityLevel | None = None
    # Set by `finish_entity` when it told the dependants itself (a few of them).
    told: TellDependantsResult | None = None


class FinishEntityInput(BaseModel):
    """Record an ending and, when it took and at most `tell_up_to` dependants are
    concerned, tell them `outcome` in the same local activity."""

    record: RecordStatusInput
    outcome: DependencyOutcome
    tell_up_to: int


class TellDependantsInput(BaseModel):
    """Tell every dependant of `outcome.key` about `outcome`; they are read from the queue
    table in pages, so however many there are, only this goes into the history."""

    outcome: DependencyOutcome


class SubmissionCheckInput(BaseModel):
    key: str
    idempotency_key: str


class ReconcileInput(BaseModel):
    """Restart the workflow of every open entity that has none running; `grace_seconds`
    spares entities a client is starting right now."""

    task_queue: str
    grace_seconds: float = 60.0


class ReconcileResult(BaseModel):
    open_entities: int
    restarted: list[str] = Field(default_factory=list)


class SubmitEntityInput(BaseModel):
    key: str
    entity_type: EntityType
    body: JsonObject
    idempotency_key: str


class SubmitEntityResult(BaseModel):
    dsp_id: str
    dsp_status: str


class CreatedEntity(BaseModel):
    """What an unanswered POST created at the DSP: its id and status, or None: nothing.
    `holds_attempt`: the entity holds the fields that POST sent. `duplicates_archived`: more
    live entities carried the key's reference (a version-2 DSP creates one per POST); the
    others were archived, the oldest kept."""

    dsp_id: str | None = None
    dsp_status: str | None = None
    holds_attempt: bool = False
    duplicates_archived: list[str] = Field(default_factory=list)


class PollStatusInput(BaseModel):
    key: str
    entity_type: EntityType
    dsp_id: str


class ReplaceEntityInput(BaseModel):
    key: str
    entity_type: EntityType
    dsp_id: str
    body: JsonObject


class ArchiveEntityInput(BaseModel):
    key: str
    entity_type: EntityType
    dsp_id: str


class DspStatusResult(BaseModel):
    dsp_status: str
    reason: str | None = None


class PollPlanInput(BaseModel):
    key: str
    entity_type: EntityType
    polls: int
    # Polls share their seat's budget: planned against that seat's rate and polling entities.
    seat: str = DEFAULT_SEAT


class StartPollingInput(BaseModel):
    """Record `polling` (the POST's answer) and plan the first poll, in one local activity."""

    record: RecordStatusInput
    plan: PollPlanInput


class PollPlan(BaseModel):
    """How long to wait before the next status poll, and the entity's priority now (None in
    plans recorded before the field, or when the planner did not read it)."""

    interval: float
    priority: PriorityLevel | None = None
