"""Activities that read and write `dsp_entity_queue` and wake the workflows of other entities.
They run on the workflow worker, as local activities of the entity workflow, never on the
rate-limited DSP queue."""

from __future__ import annotations

from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError

from dsp_integration.activities.fan_out import DependantFanOut
from dsp_integration.contracts import (
    TERMINAL_STATUSES,
    EntitySnapshot,
    ErrorType,
    FinishEntityInput,
    LoadEntityInput,
    RecordStatusInput,
    RecordStatusResult,
    SubmissionCheckInput,
    TellDependantsInput,
)
from dsp_integration.database import audit_log, queue_store
from dsp_integration.database.engine import SessionFactory, autocommit_session
from dsp_integration.observability.metrics import observe_entity_finished


class QueueActivities:
    def __init__(self, session_factory: SessionFactory, client: Client, task_queue: str) -> None:
        self._sessions = session_factory
        self._fan_out = DependantFanOut(session_factory, client, task_queue)

    @activity.defn
    async def load_entity(self, request: LoadEntityInput) -> EntitySnapshot:
        """Read the entity, the current state of everything it depends on and how many open
        entities wait for it."""
        async with autocommit_session(self._sessions) as session:
            snapshot = await queue_store.load_snapshot(session, request.key)
        if snapshot is None:
            raise ApplicationError(
                f"entity {request.key!r} is not in dsp_entity_queue",
                type=ErrorType.UNKNOWN_ENTITY,
                non_retryable=True,
            )
        return snapshot

    @activity.defn
    async def record_status(self, change: RecordStatusInput) -> RecordStatusResult:
        """Store a status change (conditional on the payload version, so safe to repeat).
        For a terminal status of the version the row holds, returns how many dependants to
        tell (the caller tells them in pages)."""
        terminal = change.status in TERMINAL_STATUSES
        async with autocommit_session(self._sessions) as session:
            stored = await queue_store.record_status(session, change)
        # The row's priority now: a `prioritise` reaches the workflow's next DSP call.
        priority = stored.priority
        if not terminal:
            return RecordStatusResult(recorded=stored.recorded, priority=priority)
        # A blocked entity that looked again and is still blocked ends once, not twice.
        if (
            stored.recorded
            and stored.finished_at is not None
            and stored.status_before != change.status.value
        ):
            assert stored.entity_type is not None and stored.status is not None
            assert stored.created_at is not None
            observe_entity_finished(
                stored.entity_type, stored.status, stored.created_at, stored.finished_at
            )
        if not stored.recorded:
            return RecordStatusResult(recorded=False, priority=priority)
        return RecordStatusResult(dependants_to_tell=stored.dependants_to_tell, priority=priority)

    @activity.defn
    async def finish_entity(self, request: FinishEntityInput) -> RecordStatusResult:
        """Record an ending and, when it took and only a few dependants are concerned, tell
        them in the same local activity (one marker where there were two). Telling reads the
        dependants in pages that check the outcome is still current, so a newer version
        stored meanwhile stops it; many dependants are left to the workflow's regular,
        heartbeating `tell_dependants`."""
        result = await self.record_status(request.record)
        if result.recorded and 0 < result.dependants_to_tell <= request.tell_up_to:
            result.told = await self._fan_out.tell_dependants(
                TellDependantsInput(outcome=request.outcome)
            )
        return result

    @activity.defn
    async def submission_may_have_landed(self, request: SubmissionCheckInput) -> bool:
        """Whether an attempt of this POST may have reached the DSP (by the audit trail), so a
        POST cancelled before it finished may still have created the entity."""
        async with autocommit_session(self._sessions) as session:
            return await audit_log.request_may_have_landed(
                session, request.key, request.idempotency_key
            )
