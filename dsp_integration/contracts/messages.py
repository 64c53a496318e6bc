"""Inputs and results of the entity workflow, its activities, signals and query.

Each call takes one model so fields can be added without breaking running workflows.
DSP payloads travel as plain JSON objects; nothing secret is ever part of these."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from dsp_integration.contracts.names import DEFAULT_PRIORITY_LEVEL, PriorityLevel
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
    # Set by every start of this code: the run is lean from its first command (what the
    # `lean-history` patch turns on) without recording that patch's marker and its
    # `TemporalChangeVersion` upsert. False in runs started before the field.
    lean: bool = False


class CancelRequest(BaseModel):
    reason: str = "cancelled by user"


class ResubmitRequest(BaseModel):
    """Sent after the client stored `payload_version` in the queue table."""

    payload_version: int


class ReprioritiseRequest(BaseModel):
    """Sent after the client stored a batch's new level or weight in the queue table: the
    workflow re-keys its DSP call still waiting in the DSP queue (None: unchanged)."""

    priority: PriorityLevel | None = None
    fairness_weight: float | None = None


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
    # Whether the workflow upserts `submitting` as its `DspStatus`, as the worker that loaded
    # it decides: this code does not (a visibility write per entity for a status that lasts
    # until the DSP call's turn), results recorded before the field did.
    publish_submitting: bool = True
    # Whether the run records `polling` together with the first poll's plan, and its ending
    # together with telling a few dependants, each in one local activity (`start_polling`,
    # `finish_entity`), and upserts `DspStatus=polling` only once a poll finds the review
    # still open; as the worker that loaded it decides: this code does, results recorded
    # before the field did not (two local activities each, `polling` upserted after the POST).
    combined_records: bool = False


class RecordStatusInput(BaseModel):
    key: str
    status: EntityStatus
    payload_version: int
    dsp_id: str | None = None
    dsp_status: str | None = None
    reason: str | None = None
    blocked_by: str | None = None
    # Set by runs that tell dependants in pages (`tell_dependants`): the result then counts
    # the dependants instead of listing them, so no list of keys enters the history.
    count_dependants: bool = False


class TellDependantsResult(BaseModel):
    told: int
    superseded: bool = False


class RecordStatusResult(BaseModel):
    """For a terminal status: the dependants to tell (listed for runs recorded before
    `count_dependants`, counted otherwise), and whether the row took the status at all (it
    does not when a newer payload version was stored meanwhile)."""

    dependants: list[str] = Field(default_factory=list)
    dependants_to_tell: int = 0
    recorded: bool = True
    # The entity's priority as the row holds it now, so a `prioritise` reaches the next DSP
    # call of a running workflow. None in results recorded before the field (keep the level).
    priority: PriorityLevel | None = None
    # Set by `finish_entity` when it told the dependants itself (a few of them).
    told: TellDependantsResult | None = None


class FinishEntityInput(BaseModel):
    """Record an ending (`record.count_dependants` set) and, when it took and at most
    `tell_up_to` dependants are concerned, tell them `outcome` in the same local activity."""

    record: RecordStatusInput
    outcome: DependencyOutcome
    tell_up_to: int


class NotifyDependantsInput(BaseModel):
    outcome: DependencyOutcome
    dependants: list[str]


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


class ReopenBlockedInput(BaseModel):
    key: str


class SubmitEntityInput(BaseModel):
    key: str
    entity_type: EntityType
    body: JsonObject
    idempotency_key: str


class SubmitEntityResult(BaseModel):
    dsp_id: str
    dsp_status: str


class CreatedEntity(BaseModel):
    """What an unanswered POST created at the DSP: its id and status, or None: nothing."""

    dsp_id: str | None = None
    dsp_status: str | None = None


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


class StartPollingInput(BaseModel):
    """Record `polling` (the POST's answer) and plan the first poll, in one local activity."""

    record: RecordStatusInput
    plan: PollPlanInput


class PollPlan(BaseModel):
    """How long to wait before the next status poll, and the entity's priority now (None in
    plans recorded before the field, or when the planner did not read it)."""

    interval: float
    priority: PriorityLevel | None = None
