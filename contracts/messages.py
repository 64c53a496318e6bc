"""Inputs and results of the entity workflow, its activities, signals and query.

Each call takes one model so fields can be added without breaking running workflows.
DSP payloads travel as plain JSON objects; nothing secret is ever part of these."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from contracts.statuses import EntityStatus, EntityType

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


class ResubmitRequest(BaseModel):
    """Sent after the client stored `payload_version` in the queue table."""

    payload_version: int


class DependencyOutcome(BaseModel):
    """How a dependency ended, signalled to every dependant."""

    key: str
    status: EntityStatus
    dsp_id: str | None = None
    reason: str | None = None
    blocked_by: str | None = None


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


class LoadEntityInput(BaseModel):
    key: str


class DependencySnapshot(BaseModel):
    key: str
    status: EntityStatus
    dsp_id: str | None = None
    reason: str | None = None
    blocked_by: str | None = None


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


class RecordStatusInput(BaseModel):
    key: str
    status: EntityStatus
    payload_version: int
    dsp_id: str | None = None
    dsp_status: str | None = None
    reason: str | None = None
    blocked_by: str | None = None


class RecordStatusResult(BaseModel):
    """Dependants still open, returned when the recorded status is terminal."""

    dependants: list[str] = Field(default_factory=list)


class NotifyDependantsInput(BaseModel):
    outcome: DependencyOutcome
    dependants: list[str]


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


class PollPlan(BaseModel):
    """How long to wait before the next status poll."""

    interval: float
