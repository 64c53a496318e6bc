"""The life of one DSP entity: wait for its dependencies, submit, poll until the DSP decides."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

from temporalio import workflow
from temporalio.common import Priority, RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.dsp_calls import DspActivities
    from activities.poll_planner import PollPlanner
    from activities.queue_records import QueueActivities
    from contracts import (
        ENTITY_WORKFLOW_NAME,
        TERMINAL_STATUSES,
        ArchiveEntityInput,
        CancelRequest,
        DependencyOutcome,
        DspCallKind,
        DspStatusResult,
        EntitySnapshot,
        EntityState,
        EntityStatus,
        EntityWorkflowInput,
        ErrorType,
        LoadEntityInput,
        NotifyDependantsInput,
        PollCarry,
        PollPlanInput,
        PollStatusInput,
        RecordStatusInput,
        ReopenBlockedInput,
        ReplaceEntityInput,
        ResubmitRequest,
        SubmitEntityInput,
        dsp_priority,
        service_status_for,
    )
    from entities.refs import resolve_refs
    from observability.search_attributes import (
        DSP_BATCH,
        DSP_ENTITY_KEY,
        DSP_ENTITY_TYPE,
        DSP_STATUS,
    )

# Polls per run before continue-as-new keeps the history of a days-long review bounded.
MAX_POLLS_PER_RUN = 100

RECORD_TIMEOUT = timedelta(seconds=30)
RECORD_RETRY_POLICY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=30),
    non_retryable_error_types=["UnknownEntity"],
)
# Queue-table activities (load, record, notify, reopen) run as local activities: each is a
# short database call on the workflow worker, and a regular activity costs a workflow task
# and six history events more (bench/end_to_end.py). Runs recorded before keep theirs.
LOCAL_QUEUE_RECORDS_PATCH = "local-queue-records"
DSP_RETRY_POLICY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=60),
    non_retryable_error_types=[ErrorType.DSP_REJECTED, ErrorType.DSP_NOT_FOUND],
)
# DSP calls may wait for a slot of the shared budget; heartbeats notice a dead worker early.
DSP_START_TO_CLOSE = timedelta(minutes=10)
DSP_HEARTBEAT = timedelta(seconds=30)
FAILING_DSP_ERRORS = (ErrorType.DSP_REJECTED, ErrorType.DSP_NOT_FOUND)


@dataclass
class _Ending:
    status: EntityStatus
    reason: str | None = None
    blocked_by: str | None = None


class _Restart:
    """A resubmission arrived: start over from the stored payload version."""


RESTART = _Restart()


@workflow.defn(name=ENTITY_WORKFLOW_NAME)
class EntityWorkflow:
    """One workflow per entity key. Signals: `dependency_finished`, `cancel`, `resubmit`.
    Query: `state`. Every side effect runs in an activity; every DSP call on the DSP queue."""

    def __init__(self) -> None:
        self._state = EntityState(key="", status=EntityStatus.WAITING)
        self._outcomes: dict[str, DependencyOutcome] = {}
        self._cancel: CancelRequest | None = None
        self._resubmit_version = 0
        self._dsp_ids: dict[str, str] = {}

    @workflow.signal
    def dependency_finished(self, outcome: DependencyOutcome) -> None:
        self._outcomes[outcome.key] = outcome
        if outcome.status in TERMINAL_STATUSES and outcome.key in self._state.waiting_on:
            self._state.waiting_on.remove(outcome.key)

    @workflow.signal
    def cancel(self, request: CancelRequest) -> None:
        self._cancel = request

    @workflow.signal
    def resubmit(self, request: ResubmitRequest) -> None:
        self._resubmit_version = max(self._resubmit_version, request.payload_version)
        self._cancel = None

    @workflow.query
    def state(self) -> EntityState:
        return self._state

    @workflow.run
    async def run(self, request: EntityWorkflowInput) -> EntityState:
        self._state.key = request.key
        snapshot = await self._load(request.key)
        carry = request.carry
        if carry is not None and carry.payload_version != snapshot.payload_version:
            carry = None
        if carry is None and snapshot.status in TERMINAL_STATUSES:
            return self._state  # a late wake-up for an entity that has already ended
        while True:
            version = snapshot.payload_version
            if version > 1 and carry is None:
                await _queue_activity(
                    QueueActivities.reopen_blocked, ReopenBlockedInput(key=snapshot.key)
                )
            ending = await self._process(snapshot, carry)
            carry = None
            if isinstance(ending, _Ending):
                await self._finish(snapshot, ending)
                if self._resubmit_version <= version:
                    return self._state
            self._outcomes.clear()
            snapshot = await self._load(request.key)

    async def _process(
        self, snapshot: EntitySnapshot, carry: PollCarry | None
    ) -> _Ending | _Restart:
        if carry is not None:
            return await self._poll_until_decided(
                snapshot, carry.dsp_id, carry.dsp_status, carry.polls
            )
        if snapshot.status is not EntityStatus.WAITING:
            await self._record(snapshot, EntityStatus.WAITING)
        waited = await self._wait_for_dependencies(snapshot)
        if waited is not None:
            return waited

        body = resolve_refs(snapshot.payload, self._dsp_ids)
        await self._record(snapshot, EntityStatus.SUBMITTING)
        try:
            dsp_id, dsp_status = await self._send_payload(snapshot, body)
        except ActivityError as err:
            return _failure_from(err)
        self._state.dsp_id, self._state.dsp_status = dsp_id, dsp_status
        if self._cancel is not None and not self._resubmitted(snapshot):
            # Cancelled while the POST was in flight: it exists at the DSP now, so archive it.
            return await self._archive(snapshot, dsp_id)
        await self._record(snapshot, EntityStatus.POLLING)
        return await self._poll_until_decided(snapshot, dsp_id, dsp_status, 0)

    async def _wait_for_dependencies(self, snapshot: EntitySnapshot) -> _Ending | _Restart | None:
        known = {dep.key: dep for dep in snapshot.dependencies}

        def current() -> list[DependencyOutcome]:
            return [
                self._outcomes.get(key)
                or DependencyOutcome(
                    key=key,
                    status=dep.status,
                    dsp_id=dep.dsp_id,
                    reason=dep.reason,
                    blocked_by=dep.blocked_by,
                )
                for key, dep in known.items()
            ]

        def settled() -> bool:
            deps = current()
            return any(
                d.status in TERMINAL_STATUSES - {EntityStatus.SUCCEEDED} for d in deps
            ) or all(d.status is EntityStatus.SUCCEEDED for d in deps)

        self._state.waiting_on = [d.key for d in current() if d.status not in TERMINAL_STATUSES]
        await workflow.wait_condition(
            lambda: settled() or self._cancelled() or self._resubmitted(snapshot)
        )
        self._state.waiting_on = []
        if self._resubmitted(snapshot):
            return RESTART
        if self._cancel is not None:
            return _Ending(EntityStatus.CANCELLED, self._cancel.reason)
        deps = current()
        for dep in deps:
            if dep.status is EntityStatus.SUCCEEDED:
                self._dsp_ids[dep.key] = dep.dsp_id or ""
        for dep in deps:
            if dep.status not in TERMINAL_STATUSES or dep.status is EntityStatus.SUCCEEDED:
                continue
            root = dep.blocked_by if dep.status is EntityStatus.BLOCKED else dep.key
            reason = f"dependency '{dep.key}' ended {dep.status.value}"
            if root and root != dep.key:
                reason += f" (because of '{root}')"
            elif dep.reason:
                reason += f": {dep.reason}"
            return _Ending(EntityStatus.BLOCKED, reason, blocked_by=root or dep.key)
        return None

    async def _send_payload(self, snapshot: EntitySnapshot, body: dict) -> tuple[str, str]:
        options = {
            "task_queue": self._dsp_task_queue(),
            "start_to_close_timeout": DSP_START_TO_CLOSE,
            "heartbeat_timeout": DSP_HEARTBEAT,
            "retry_policy": DSP_RETRY_POLICY,
            "priority": _priority(DspCallKind.SUBMIT, snapshot),
        }
        if snapshot.dsp_id and snapshot.dsp_status != "archived":
            replaced: DspStatusResult = await workflow.execute_activity_method(
                DspActivities.replace_entity,
                ReplaceEntityInput(
                    key=snapshot.key,
                    entity_type=snapshot.entity_type,
                    dsp_id=snapshot.dsp_id,
                    body=body,
                ),
                **options,
            )
            return snapshot.dsp_id, replaced.dsp_status
        created = await workflow.execute_activity_method(
            DspActivities.submit_entity,
            SubmitEntityInput(
                key=snapshot.key,
                entity_type=snapshot.entity_type,
                body=body,
                idempotency_key=f"{snapshot.key}:v{snapshot.payload_version}",
            ),
            **options,
        )
        return created.dsp_id, created.dsp_status

    async def _poll_until_decided(
        self, snapshot: EntitySnapshot, dsp_id: str, dsp_status: str, polls: int
    ) -> _Ending | _Restart:
        self._state.dsp_id, self._state.dsp_status = dsp_id, dsp_status
        self._state.polls = polls
        polls_this_run = 0
        reason: str | None = None
        while service_status_for(snapshot.entity_type, dsp_status) is None:
            if polls_this_run >= MAX_POLLS_PER_RUN and not self._interrupted(snapshot):
                workflow.continue_as_new(
                    EntityWorkflowInput(
                        key=snapshot.key,
                        carry=PollCarry(
                            dsp_id=dsp_id,
                            dsp_status=dsp_status,
                            payload_version=snapshot.payload_version,
                            polls=polls,
                            next_interval=0,
                        ),
                    )
                )
            plan = await workflow.execute_local_activity_method(
                PollPlanner.plan_next_poll,
                PollPlanInput(key=snapshot.key, entity_type=snapshot.entity_type, polls=polls),
                start_to_close_timeout=timedelta(seconds=10),
            )
            self._state.next_poll_at = workflow.now() + timedelta(seconds=plan.interval)
            try:
                await workflow.wait_condition(
                    lambda: self._interrupted(snapshot), timeout=timedelta(seconds=plan.interval)
                )
            except TimeoutError:
                pass
            self._state.next_poll_at = None
            if self._resubmitted(snapshot):
                return RESTART
            if self._cancel is not None:
                return await self._archive(snapshot, dsp_id)
            try:
                polled = await workflow.execute_activity_method(
                    DspActivities.poll_status,
                    PollStatusInput(
                        key=snapshot.key, entity_type=snapshot.entity_type, dsp_id=dsp_id
                    ),
                    task_queue=self._dsp_task_queue(),
                    start_to_close_timeout=DSP_START_TO_CLOSE,
                    heartbeat_timeout=DSP_HEARTBEAT,
                    retry_policy=DSP_RETRY_POLICY,
                    priority=_priority(DspCallKind.POLL, snapshot),
                )
            except ActivityError as err:
                return _failure_from(err)
            polls += 1
            polls_this_run += 1
            self._state.polls = polls
            reason = polled.reason
            if polled.dsp_status != dsp_status:
                dsp_status = polled.dsp_status
                self._state.dsp_status = dsp_status
                if service_status_for(snapshot.entity_type, dsp_status) is None:
                    await self._record(snapshot, EntityStatus.POLLING)
        if self._resubmitted(snapshot):
            return RESTART
        status = service_status_for(snapshot.entity_type, dsp_status)
        assert status is not None
        return _Ending(status, reason)

    async def _archive(self, snapshot: EntitySnapshot, dsp_id: str) -> _Ending:
        assert self._cancel is not None
        try:
            archived = await workflow.execute_activity_method(
                DspActivities.archive_entity,
                ArchiveEntityInput(
                    key=snapshot.key, entity_type=snapshot.entity_type, dsp_id=dsp_id
                ),
                task_queue=self._dsp_task_queue(),
                start_to_close_timeout=DSP_START_TO_CLOSE,
                heartbeat_timeout=DSP_HEARTBEAT,
                retry_policy=DSP_RETRY_POLICY,
                priority=_priority(DspCallKind.ARCHIVE, snapshot),
            )
            self._state.dsp_status = archived.dsp_status
        except ActivityError as err:
            workflow.logger.warning("archiving %s at the DSP failed: %s", snapshot.key, err.cause)
        return _Ending(EntityStatus.CANCELLED, self._cancel.reason)

    async def _finish(self, snapshot: EntitySnapshot, ending: _Ending) -> None:
        self._state.status = ending.status
        self._state.reason = ending.reason
        self._publish_status(snapshot, ending.status)
        result = await _queue_activity(
            QueueActivities.record_status,
            RecordStatusInput(
                key=snapshot.key,
                status=ending.status,
                payload_version=snapshot.payload_version,
                dsp_id=self._state.dsp_id,
                dsp_status=self._state.dsp_status,
                reason=ending.reason,
                blocked_by=ending.blocked_by,
            ),
        )
        if not result.dependants:
            return
        root = None
        if ending.status is not EntityStatus.SUCCEEDED:
            root = ending.blocked_by or snapshot.key
        await _queue_activity(
            QueueActivities.notify_dependants,
            NotifyDependantsInput(
                outcome=DependencyOutcome(
                    key=snapshot.key,
                    status=ending.status,
                    dsp_id=self._state.dsp_id,
                    reason=ending.reason,
                    blocked_by=root,
                ),
                dependants=result.dependants,
            ),
        )

    async def _load(self, key: str) -> EntitySnapshot:
        snapshot = await _queue_activity(QueueActivities.load_entity, LoadEntityInput(key=key))
        self._dsp_ids = {}
        self._state = EntityState(
            key=snapshot.key,
            entity_type=snapshot.entity_type,
            status=snapshot.status,
            payload_version=snapshot.payload_version,
            dsp_id=snapshot.dsp_id,
            dsp_status=snapshot.dsp_status,
            reason=snapshot.reason,
        )
        return snapshot

    async def _record(self, snapshot: EntitySnapshot, status: EntityStatus) -> None:
        self._state.status = status
        self._publish_status(snapshot, status)
        await _queue_activity(
            QueueActivities.record_status,
            RecordStatusInput(
                key=snapshot.key,
                status=status,
                payload_version=snapshot.payload_version,
                dsp_id=self._state.dsp_id,
                dsp_status=self._state.dsp_status,
            ),
        )

    def _publish_status(self, snapshot: EntitySnapshot, status: EntityStatus) -> None:
        """Upsert `DspStatus` (and type and batch when the starter did not set them) for the
        web UI. Only runs started with the service's search attributes do it: a server that
        does not know them (the time-skipping test server) would fail the workflow task."""
        attributes = workflow.info().typed_search_attributes
        if DSP_ENTITY_KEY not in attributes or attributes.get(DSP_STATUS) == status.value:
            return
        if not workflow.patched("search-attributes"):
            return
        updates = [DSP_STATUS.value_set(status.value)]
        if DSP_ENTITY_TYPE not in attributes:
            updates.append(DSP_ENTITY_TYPE.value_set(snapshot.entity_type.value))
        if DSP_BATCH not in attributes:
            updates.append(DSP_BATCH.value_set(snapshot.batch))
        workflow.upsert_search_attributes(updates)

    def _cancelled(self) -> bool:
        return self._cancel is not None

    def _resubmitted(self, snapshot: EntitySnapshot) -> bool:
        return self._resubmit_version > snapshot.payload_version

    def _interrupted(self, snapshot: EntitySnapshot) -> bool:
        return self._cancelled() or self._resubmitted(snapshot)

    def _dsp_task_queue(self) -> str:
        # The DSP queue is derived from the workflow queue, as the worker derives it.
        return f"{workflow.info().task_queue}-dsp"


InputT = TypeVar("InputT")
ResultT = TypeVar("ResultT")


async def _queue_activity(
    method: Callable[[QueueActivities, InputT], Awaitable[ResultT]], arg: InputT
) -> ResultT:
    """A queue-table activity: local once the patch is in the history (or the run is new),
    a regular activity on the workflow queue while replaying a run recorded before it."""
    if workflow.patched(LOCAL_QUEUE_RECORDS_PATCH):
        return await workflow.execute_local_activity_method(
            method,
            arg,
            start_to_close_timeout=RECORD_TIMEOUT,
            retry_policy=RECORD_RETRY_POLICY,
        )
    return await workflow.execute_activity_method(
        method, arg, start_to_close_timeout=RECORD_TIMEOUT, retry_policy=RECORD_RETRY_POLICY
    )


def _priority(kind: DspCallKind, snapshot: EntitySnapshot) -> Priority:
    """Priority is not part of the replay check (sdk-core compares an activity's id and type
    only), and `dependants` comes from the recorded `load_entity` result, so it replays."""
    return Priority(priority_key=dsp_priority(kind, snapshot.dependants))


def _failure_from(err: ActivityError) -> _Ending:
    cause = err.cause
    if isinstance(cause, ApplicationError) and cause.type in FAILING_DSP_ERRORS:
        return _Ending(EntityStatus.FAILED, cause.message)
    raise err
