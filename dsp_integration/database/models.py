"""Typed SQLAlchemy models of the service's tables."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Float, Index, Integer, String, Text, func
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class QueuedEntity(Base):
    """One row per entity key: what was submitted and where it stands."""

    __tablename__ = "dsp_entity_queue"

    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    batch: Mapped[str] = mapped_column(String(128), index=True)
    entity_type: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    payload_fingerprint: Mapped[str] = mapped_column(String(64))
    payload_version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    depends_on: Mapped[list[str]] = mapped_column(ARRAY(String(128)), server_default="{}")
    status: Mapped[str] = mapped_column(String(16), index=True)
    dsp_id: Mapped[str | None] = mapped_column(String(255))
    dsp_status: Mapped[str | None] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(Text)
    blocked_by: Mapped[str | None] = mapped_column(String(128), index=True)
    # high, normal or low (contracts.PriorityLevel): set by submit and resubmit, changed for
    # a batch's open entities by prioritise, read by the workflow before each DSP call.
    priority: Mapped[str] = mapped_column(String(8), server_default="normal")
    # The batch's fairness weight (its share of the budget against other waiting batches):
    # set by submit, changed for a batch's open entities by prioritise.
    fairness_weight: Mapped[float] = mapped_column(Float, server_default="1.0")
    # The DSP account (seat) the entity belongs to, from its file (contracts.DEFAULT_SEAT
    # for rows stored before seats): which credentials, budget and task queue its calls use.
    seat: Mapped[str] = mapped_column(String(32), server_default="default")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("ix_dsp_entity_queue_depends_on", "depends_on", postgresql_using="gin"),
    )


class AuditRecord(Base):
    """One row per HTTP request to the DSP, written before it is sent, completed after."""

    __tablename__ = "dsp_entity_audit"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    entity_key: Mapped[str] = mapped_column(String(128), index=True)
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(String(512))
    request_body: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    # Why the service sent a request no user step asked for (archiving a duplicate).
    note: Mapped[str | None] = mapped_column(Text)
    attempt: Mapped[int] = mapped_column(Integer)
    workflow_id: Mapped[str | None] = mapped_column(String(255))
    activity_id: Mapped[str | None] = mapped_column(String(255))
    started_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.clock_timestamp()
    )
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class RateLedgerEntry(Base):
    """A request slot granted by the shared limiter to one seat's request; rows older than
    the window are pruned. Each seat's window is counted on its own."""

    __tablename__ = "dsp_rate_ledger"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    seat: Mapped[str] = mapped_column(String(32), server_default="default")
    granted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_dsp_rate_ledger_seat_granted_at", "seat", "granted_at"),)


class RateWaiter(Base):
    """A DSP call waiting for its slot, in the order it began to wait (`id`): slots go to the
    waiters in that order, so the order Temporal dispatched the calls in (priority, fair
    shares) survives the wait inside the workers. `seen_at` is refreshed at every attempt; a
    waiter not seen for a while (its worker died) no longer holds the others up."""

    __tablename__ = "dsp_rate_waiter"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    seat: Mapped[str] = mapped_column(String(32), server_default="default")
    seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_dsp_rate_waiter_seat_id", "seat", "id"),)


class RatePause(Base):
    """A pause every worker honours for one seat after the DSP answered 429 (a row a seat)."""

    __tablename__ = "dsp_rate_pause"

    seat: Mapped[str] = mapped_column(String(32), primary_key=True)
    paused_until: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ActionRecord(Base):
    """One row per action a person (or the CLI's OS user) asked for: submit, cancel,
    resubmit, prioritise, account changes; accepted or refused, with why."""

    __tablename__ = "dsp_action_log"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    # The database's clock, as the audit trail's: one clock for every row of both.
    at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.clock_timestamp()
    )
    actor_name: Mapped[str] = mapped_column(String(128))
    actor_role: Mapped[str] = mapped_column(String(16))
    via: Mapped[str] = mapped_column(String(16))
    address: Mapped[str | None] = mapped_column(String(64))
    os_user: Mapped[str | None] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(32))
    batch: Mapped[str | None] = mapped_column(String(128))
    entity_key: Mapped[str | None] = mapped_column(String(128))
    # The account an account change is about.
    account: Mapped[str | None] = mapped_column(String(128))
    old_version: Mapped[int | None] = mapped_column(Integer)
    new_version: Mapped[int | None] = mapped_column(Integer)
    old_level: Mapped[str | None] = mapped_column(String(8))
    new_level: Mapped[str | None] = mapped_column(String(8))
    old_weight: Mapped[float | None] = mapped_column(Float)
    new_weight: Mapped[float | None] = mapped_column(Float)
    outcome: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSONB)

    __table_args__ = (
        Index("ix_dsp_action_log_entity_key_id", "entity_key", "id"),
        Index("ix_dsp_action_log_batch_id", "batch", "id"),
        Index("ix_dsp_action_log_actor_name_id", "actor_name", "id"),
    )
