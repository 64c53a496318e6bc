"""Where a small batch's time goes behind a large one (issue 11, `fairness.py --trace`): for
every DSP call, when its workflow scheduled it (ActivityTaskScheduled), when the server
handed it to a worker (ActivityTaskStarted), when its ledger slot was granted (the audit
row's `started_at`, written right after the grant) and when the mock DSP saw it; and the
order in which the two batches' calls were dispatched and granted meanwhile.

All times are wall clocks of this machine (Temporal's event times, PostgreSQL's
`clock_timestamp()`, the mock's `wall_time`), as seconds after the small batch's submit."""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from devkit.mock_dsp.request_log import RequestRecord
from dsp_integration.client.context import ServiceContext
from dsp_integration.contracts import workflow_id_for
from dsp_integration.database.models import AuditRecord, QueuedEntity

HISTORY_FETCHES = 32
DSP_ACTIVITIES = frozenset({"submit_entity", "poll_status", "replace_entity", "archive_entity"})


@dataclass
class CallTrace:
    batch: str
    entity_key: str
    activity: str
    activity_id: str
    workflow_started: datetime
    first_workflow_task: datetime | None
    scheduled: datetime
    dispatched: datetime | None = None
    """ActivityTaskStarted: the server handed the task to a worker's poll."""
    granted: datetime | None = None
    """The audit row's `started_at`: the ledger slot was just granted."""
    arrived: datetime | None = None
    """The mock DSP's `wall_time` of the request (POSTs, by Idempotency-Key)."""
    worker: str = ""
    """The identity of the worker that took it."""


async def _calls_of(client: Client, batch: str, key: str) -> list[CallTrace]:
    history = await client.get_workflow_handle(workflow_id_for(key)).fetch_history()
    started: datetime | None = None
    first_task: datetime | None = None
    scheduled: dict[int, CallTrace] = {}
    for event in history.events:
        at = event.event_time.ToDatetime().astimezone()
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
            started = at
        elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
            first_task = first_task or at
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attributes = event.activity_task_scheduled_event_attributes
            if attributes.activity_type.name in DSP_ACTIVITIES:
                assert started is not None
                scheduled[event.event_id] = CallTrace(
                    batch,
                    key,
                    attributes.activity_type.name,
                    attributes.activity_id,
                    started,
                    first_task,
                    at,
                )
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            call = scheduled.get(event.activity_task_started_event_attributes.scheduled_event_id)
            if call is not None:
                call.dispatched = at
                call.worker = event.activity_task_started_event_attributes.identity
    return list(scheduled.values())


async def collect(
    service: ServiceContext,
    client: Client,
    batches: Sequence[str],
    requests: Iterable[RequestRecord],
) -> list[CallTrace]:
    """Every DSP call of the batches' entities, with its audit row and its request."""
    async with service.sessions() as session:
        keys = list(
            await session.execute(
                select(QueuedEntity.batch, QueuedEntity.key).where(QueuedEntity.batch.in_(batches))
            )
        )
        audits = list(
            await session.execute(
                select(
                    AuditRecord.workflow_id,
                    AuditRecord.activity_id,
                    AuditRecord.started_at,
                    AuditRecord.idempotency_key,
                ).order_by(AuditRecord.id)
            )
        )
    limit = asyncio.Semaphore(HISTORY_FETCHES)

    async def fetch(batch: str, key: str) -> list[CallTrace]:
        async with limit:
            return await _calls_of(client, batch, key)

    per_entity = await asyncio.gather(*(fetch(batch, key) for batch, key in keys))
    calls = [call for entity_calls in per_entity for call in entity_calls]
    granted: dict[tuple[str, str], tuple[datetime, str | None]] = {}
    for workflow_id, activity_id, started_at, idempotency_key in audits:
        granted[(workflow_id, activity_id)] = (started_at.astimezone(), idempotency_key)
    arrived: dict[str, datetime] = {}
    for record in requests:
        if record.method == "POST" and record.idempotency_key:
            arrived.setdefault(record.idempotency_key, record.wall_time.astimezone())
    for call in calls:
        grant = granted.get((workflow_id_for(call.entity_key), call.activity_id))
        if grant is not None:
            call.granted = grant[0]
            if grant[1]:
                call.arrived = arrived.get(grant[1])
    return calls


def _seconds(at: datetime | None, origin: datetime) -> str:
    return f"{(at - origin).total_seconds():7.2f}" if at is not None else "      -"


def _stage(values: list[float]) -> str:
    if not values:
        return "-"
    return f"median {statistics.median(values):6.2f} s, max {max(values):6.2f} s (n {len(values)})"


def _sequence(calls: list[CallTrace], small: str, times: list[datetime | None]) -> str:
    marks = sorted(
        (at, "S" if call.batch == small else "l")
        for call, at in zip(calls, times, strict=True)
        if at is not None
    )
    return "".join(mark for _, mark in marks)


def report(calls: list[CallTrace], small: str, origin: datetime, end: datetime) -> str:
    """The small batch's calls stage by stage, and both batches' dispatches and grants while
    it waited (S: the small batch, l: the large one)."""
    lines = [
        "small batch, per DSP call, seconds after its submit:",
        "  entity                      wf start  1st wft  sched.  dispatch granted arrived  worker",
    ]
    small_calls = sorted((c for c in calls if c.batch == small), key=lambda c: c.scheduled)
    for call in small_calls:
        lines.append(
            f"  {call.entity_key[-26:]:<26} {call.activity[:6]:<6}"
            f"{_seconds(call.workflow_started, origin)}"
            f"{_seconds(call.first_workflow_task, origin)}"
            f"{_seconds(call.scheduled, origin)}"
            f"{_seconds(call.dispatched, origin)}"
            f"{_seconds(call.granted, origin)}"
            f"{_seconds(call.arrived, origin)}  {call.worker.split('@')[0]}"
        )
    stages = {
        "submit -> workflow started": [
            (c.workflow_started - origin).total_seconds() for c in small_calls
        ],
        "workflow started -> call scheduled": [
            (c.scheduled - c.workflow_started).total_seconds() for c in small_calls
        ],
        "scheduled -> dispatched (server queue)": [
            (c.dispatched - c.scheduled).total_seconds() for c in small_calls if c.dispatched
        ],
        "dispatched -> slot granted (worker, ledger)": [
            (c.granted - c.dispatched).total_seconds()
            for c in small_calls
            if c.granted and c.dispatched
        ],
        "granted -> at the DSP": [
            (c.arrived - c.granted).total_seconds() for c in small_calls if c.arrived and c.granted
        ],
    }
    lines += [f"  {name:<44} {_stage(values)}" for name, values in stages.items()]
    window = [c for c in calls if c.dispatched and origin <= c.dispatched <= end]
    dispatched_small = sum(1 for c in window if c.batch == small)
    granted_window = [c for c in calls if c.granted and origin <= c.granted <= end]
    granted_small = sum(1 for c in granted_window if c.batch == small)
    lines += [
        f"dispatched while the small batch was open: small {dispatched_small}, "
        f"large {len(window) - dispatched_small}",
        f"  order: {_sequence(window, small, [c.dispatched for c in window])}",
        f"granted while the small batch was open: small {granted_small}, "
        f"large {len(granted_window) - granted_small}",
        f"  order: {_sequence(granted_window, small, [c.granted for c in granted_window])}",
    ]
    for call in small_calls:
        if call.dispatched is None:
            continue
        ahead = sum(
            1
            for c in calls
            if c.batch != small and c.dispatched and call.scheduled < c.dispatched < call.dispatched
        )
        held = sum(
            1
            for c in calls
            if c.batch != small
            and c.granted
            and c.dispatched
            and c.dispatched < call.dispatched
            and call.dispatched < c.granted < (call.granted or end)
        )
        lines.append(
            f"  {call.entity_key[-26:]:<26} large dispatched while queued {ahead:>3}, "
            f"large already held and granted before it {held:>2}"
        )
    return "\n".join(lines)
