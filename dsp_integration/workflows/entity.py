"""The life of one DSP entity: wait for its dependencies, submit, poll until the DSP decides.

Users steer it with signals, and the last word wins: a cancel or a resubmit interrupts the
DSP call still waiting for its turn (nothing reaches the DSP), archives what a request that
did leave created, and supersedes every outcome of the older version, including those on
their way to dependants. A dependant is released only by its dependency's current version,
and at most one live DSP entity exists per key."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import Priority, RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from dsp_integration.activities.dsp_calls import DspActivities
    from dsp_integration.activities.fan_out import DependantFanOut
    from dsp_integration.activities.poll_planner import PollPlanner
    from dsp_integration.activities.queue_records import QueueActivities
    from dsp_integration.contracts import (
        DEFAULT_PRIORITY_LEVEL,
        DSP_FAIRNESS_WEIGHT,
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
        FinishEntityInput,
        LoadEntityInput,
        PollCarry,
        PollPlan,
        PollPlanInput,
        PollStatusInput,
        PriorityLevel,
        RecordStatusInput,
        ReplaceEntityInput,
        ReprioritiseRequest,
        ResubmitRequest,
        StartPollingInput,
        SubmissionCheckInput,
        SubmitEntityInput,
        SubmitEntityResult,
        TellDependantsInput,
        dsp_fairness_key,
        dsp_fairness_weight,
        dsp_priority,
        service_status_for,
    )
    from dsp_integration.contracts.search_attributes import (
        DSP_BATCH,
        DSP_ENTITY_KEY,
        DSP_ENTITY_TYPE,
        DSP_STATUS,
    )
    from dsp_integration.entities.refs import resolve_refs

# Polls per run before continue-as-new keeps the history of a days-long review bounded.
MAX_POLLS_PER_RUN = 100

# Patches, in the order they were introduced (README, "Patching a workflow").
SEARCH_ATTRIBUTES_PATCH = "search-attributes"
# Queue-table activities (load, record, notify, reopen) run as local activities: each is a
# short database call on the workflow worker, and a regular activity costs a workflow task
# and six history events more. Runs recorded before keep theirs.
LOCAL_QUEUE_RECORDS_PATCH = "local-queue-records"
# Interruptible DSP calls, versioned dependency outcomes told in pages, dependants held back
# by a resubmit and blocked dependants looking again (issue 9). Decided once per run, at its
# start, so a run recorded before keeps the old behaviour from its first command to its last.
LAST_WORD_WINS_PATCH = "last-word-wins"
# Fewer history events per entity (issue 13). Decided once per run, at its start, and it
# stands for the three patches above: a new run records one patch marker and one
# `TemporalChangeVersion` upsert instead of three of each. An entity whose POST answer
# already decides it (an advertiser, active at once) goes to its ending without recording
# `polling` first. Runs started with `EntityWorkflowInput.lean` are lean without the patch.
LEAN_HISTORY_PATCH = "lean-history"
# Choices that need no marker ride on `load_entity`'s recorded result instead, so a run keeps
# the choice of the worker that loaded it: `EntitySnapshot.publish_submitting`,
# `EntitySnapshot.combined_records` (fewer local activities and upserts, issue 13).
# A DSP call still waiting in the DSP queue when the batch's level or weight changes is
# cancelled and scheduled again with the new priority (issue 11). Decided when a change first
# meets a waiting call, the only point where the commands differ.
REKEY_QUEUED_CALLS_PATCH = "rekey-queued-calls"

RECORD_TIMEOUT = timedelta(seconds=30)
RECORD_RETRY_POLICY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=30),
    non_retryable_error_types=[ErrorType.UNKNOWN_ENTITY],
)
DSP_RETRY_POLICY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=60),
    non_retryable_error_types=[ErrorType.DSP_REJECTED, ErrorType.DSP_NOT_FOUND],
)
# DSP calls may wait for a slot of the shared budget; heartbeats notice a dead worker early
# and carry a cancellation to a call that is waiting for its slot.
DSP_START_TO_CLOSE = timedelta(minutes=10)
DSP_HEARTBEAT = timedelta(seconds=30)
FAILING_DSP_ERRORS = (ErrorType.DSP_REJECTED, ErrorType.DSP_NOT_FOUND)
# Telling 10,000 dependants takes minutes; the heartbeat after each page is what matters.
FAN_OUT_START_TO_CLOSE = timedelta(hours=1)
FAN_OUT_HEARTBEAT = timedelta(seconds=30)
FAN_OUT_RETRY_POLICY = RetryPolicy(maximum_interval=timedelta(seconds=30))
# Up to this many dependants are told in a local activity (a few signals, well within its
# timeout); more in a regular, heartbeating activity that resumes where it stopped.
LOCAL_FAN_OUT_LIMIT = 50
DEFAULT_CANCEL_REASON = CancelRequest().reason
ARCHIVED = "archived"


@dataclass
class _Ending:
    status: EntityStatus
    reason: str | None = None
    blocked_by: str | None = None  # the root cause, stored for users
    # The direct dependency whose outcome blocked this entity, and that outcome's version.
    blocking: DependencyOutcome | None = None


class _Restart:
    """A resubmission arrived: start over from the stored payload version."""


class _Interrupted:
    """A DSP call was cancelled before its request left (or its answer no longer matters)."""


RESTART = _Restart()
INTERRUPTED = _Interrupted()


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
        self._dependencies: dict[str, DependencyOutcome] = {}
        self._last_word_wins = False
        self._lean_history = False
        # The batch's priority as last read from the row (load_entity, record_status,
        # plan_next_poll): each DSP call is scheduled with it.
        self._level: PriorityLevel = DEFAULT_PRIORITY_LEVEL
        self._weight: float = DSP_FAIRNESS_WEIGHT

    @workflow.signal
    def dependency_finished(self, outcome: DependencyOutcome) -> None:
        """Where a dependency stands. An older payload version than one already heard of is
        stale (outcomes of superseded versions may still be on their way) and ignored."""
        known = self._outcomes.get(outcome.key)
        if known is not None and outcome.payload_version < known.payload_version:
            return
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

    @workflow.signal
    def reprioritise(self, request: ReprioritiseRequest) -> None:
        """The client stored a new level or weight for the batch: calls from now on go with
        it, and one still waiting in the DSP queue is scheduled again (`_dsp_call`)."""
        self._set_level(request.priority)
        self._set_weight(request.fairness_weight)

    @workflow.query
    def state(self) -> EntityState:
        return self._state

    @workflow.run
    async def run(self, request: EntityWorkflowInput) -> EntityState:
        self._state.key = request.key
        self._lean_history = True
        self._last_word_wins = self._lean_history or workflow.patched(LAST_WORD_WINS_PATCH)
        snapshot = await self._load(request.key)
        carry = request.carry
        if carry is not None and carry.payload_version != snapshot.payload_version:
            carry = None
        if carry is None and snapshot.status in TERMINAL_STATUSES:
            if not self._blocked_no_longer(snapshot):
                return self._state  # a late wake-up for an entity that has already ended
        held_back = 0
        while True:
            version = snapshot.payload_version
            if version > 1 and carry is None and version != held_back:
                held_back = version
                await self._supersede_earlier_versions(snapshot)
            ending = await self._process(snapshot, carry)
            carry = None
            if isinstance(ending, _Ending):
                await self._finish(snapshot, ending)
                if not self._last_word_wins:
                    if self._resubmit_version <= version:
                        return self._state
                elif not self._resubmitted(snapshot) and not self._unblocked_since(ending):
                    return self._state
            if not self._last_word_wins:
                self._outcomes.clear()
            snapshot = await self._load(request.key)

    async def _supersede_earlier_versions(self, snapshot: EntitySnapshot) -> None:
        """A new payload version: what an older one released must wait again. Dependants
        still open hear that this key is `waiting` at the new version (a queued POST of theirs
        is cancelled); the client has already put what the older one blocked back to waiting.
        Runs recorded before the patch reopen the entities blocked because of this one."""
        await self._tell_dependants(
            snapshot,
            DependencyOutcome(
                key=snapshot.key,
                status=EntityStatus.WAITING,
                payload_version=snapshot.payload_version,
            ),
        )

    async def _process(
        self, snapshot: EntitySnapshot, carry: PollCarry | None
    ) -> _Ending | _Restart:
        if carry is not None:
            return await self._poll_until_decided(
                snapshot, carry.dsp_id, carry.dsp_status, carry.polls
            )
        while True:
            if self._state.status is not EntityStatus.WAITING:
                await self._record(snapshot, EntityStatus.WAITING)
            waited = await self._wait_for_dependencies(snapshot)
            if waited is not None:
                return waited

            body = resolve_refs(snapshot.payload, self._dsp_ids)
            await self._record(snapshot, EntityStatus.SUBMITTING, publish=False)
            try:
                sent = await self._send_payload(snapshot, body)
            except ActivityError as err:
                return _failure_from(err)
            if isinstance(sent, _Interrupted):
                if self._resubmitted(snapshot):
                    return RESTART
                if self._cancel is not None:
                    if _live(snapshot.dsp_id, snapshot.dsp_status):
                        assert snapshot.dsp_id is not None
                        return await self._archive(snapshot, snapshot.dsp_id)
                    return _Ending(EntityStatus.CANCELLED, self._cancel.reason)
                continue  # a dependency got a new version before the request left: wait again
            dsp_id, dsp_status = sent
            self._state.dsp_id, self._state.dsp_status = dsp_id, dsp_status
            if self._cancel is not None and not self._resubmitted(snapshot):
                # Cancelled while the POST was in flight: it exists at the DSP now, so archive it.
                return await self._archive(snapshot, dsp_id)
            decided = service_status_for(snapshot.entity_type, dsp_status) is not None
            plan = None
            if not decided:
                plan = await self._start_polling(snapshot)
            elif not (self._lean_history and decided):
                await self._record(snapshot, EntityStatus.POLLING)
            return await self._poll_until_decided(snapshot, dsp_id, dsp_status, 0, plan)

    def _know_dependencies(self, snapshot: EntitySnapshot) -> None:
        """Start from the dependencies as loaded; signals of their versions overlay them."""
        self._dependencies = {
            dep.key: DependencyOutcome(
                key=dep.key,
                status=dep.status,
                dsp_id=dep.dsp_id,
                reason=dep.reason,
                blocked_by=dep.blocked_by,
                payload_version=dep.payload_version,
            )
            for dep in snapshot.dependencies
        }

    def _dependency_view(self) -> list[DependencyOutcome]:
        """Each dependency as last heard of: the loaded row, or a signal of the same or a
        newer payload version."""
        view = []
        for key, loaded in self._dependencies.items():
            heard = self._outcomes.get(key)
            if heard is not None and heard.payload_version >= loaded.payload_version:
                view.append(heard)
            else:
                view.append(loaded)
        return view

    def _dependency_reopened(self) -> bool:
        """A dependency this entity was released by has a newer version under way."""
        return self._last_word_wins and any(
            dep.status is not EntityStatus.SUCCEEDED for dep in self._dependency_view()
        )

    async def _wait_for_dependencies(self, snapshot: EntitySnapshot) -> _Ending | _Restart | None:
        self._know_dependencies(snapshot)

        def settled() -> bool:
            deps = self._dependency_view()
            return _blocking_dependency(deps) is not None or all(
                d.status is EntityStatus.SUCCEEDED for d in deps
            )

        self._state.waiting_on = [
            d.key for d in self._dependency_view() if d.status not in TERMINAL_STATUSES
        ]
        await workflow.wait_condition(
            lambda: settled() or self._cancelled() or self._resubmitted(snapshot)
        )
        self._state.waiting_on = []
        if self._resubmitted(snapshot):
            return RESTART
        if self._cancel is not None:
            return _Ending(EntityStatus.CANCELLED, self._cancel.reason)
        deps = self._dependency_view()
        for dep in deps:
            if dep.status is EntityStatus.SUCCEEDED:
                self._dsp_ids[dep.key] = dep.dsp_id or ""
        blocking = _blocking_dependency(deps)
        if blocking is None:
            return None
        root = blocking.blocked_by if blocking.status is EntityStatus.BLOCKED else blocking.key
        reason = f"dependency '{blocking.key}' ended {blocking.status.value}"
        if root and root != blocking.key:
            reason += f" (because of '{root}')"
        elif blocking.reason:
            reason += f": {blocking.reason}"
        return _Ending(
            EntityStatus.BLOCKED, reason, blocked_by=root or blocking.key, blocking=blocking
        )

    def _blocked_no_longer(self, snapshot: EntitySnapshot) -> bool:
        """A blocked entity woken by a dependency's success looks again: it goes on unless a
        dependency still ends it (one may have been blocked by a superseded outcome)."""
        if not self._last_word_wins or snapshot.status is not EntityStatus.BLOCKED:
            return False
        self._know_dependencies(snapshot)
        return _blocking_dependency(self._dependency_view()) is None

    def _unblocked_since(self, ending: _Ending) -> bool:
        """Whether the dependency that blocked this entity moved on (a newer version, or a
        success) while the ending was recorded; the entity then looks again."""
        if ending.blocking is None:
            return False
        heard = self._outcomes.get(ending.blocking.key)
        if heard is None:
            return False
        return (
            heard.payload_version > ending.blocking.payload_version
            or heard.status is EntityStatus.SUCCEEDED
        )

    async def _send_payload(
        self, snapshot: EntitySnapshot, body: dict[str, Any]
    ) -> tuple[str, str] | _Interrupted:
        """PUT over the live DSP entity of this key, or POST a new one. Interrupted by a
        cancel, a resubmit or a dependency's new version while the request has not left; a
        POST that may have reached the DSP all the same is finished, so what it created is
        known (and archived or replaced)."""

        def interrupted() -> bool:
            return self._interrupted(snapshot) or self._dependency_reopened()

        if snapshot.dsp_id and _live(snapshot.dsp_id, snapshot.dsp_status):
            replaced = await self._dsp_call(
                DspActivities.replace_entity,
                ReplaceEntityInput(
                    key=snapshot.key,
                    entity_type=snapshot.entity_type,
                    dsp_id=snapshot.dsp_id,
                    body=body,
                ),
                DspCallKind.SUBMIT,
                snapshot,
                interrupt=interrupted,
            )
            if isinstance(replaced, _Interrupted):
                return INTERRUPTED
            return snapshot.dsp_id, replaced.dsp_status
        submission = SubmitEntityInput(
            key=snapshot.key,
            entity_type=snapshot.entity_type,
            body=body,
            idempotency_key=f"{snapshot.key}:v{snapshot.payload_version}",
        )
        created = await self._dsp_call(
            DspActivities.submit_entity,
            submission,
            DspCallKind.SUBMIT,
            snapshot,
            interrupt=interrupted,
        )
        if isinstance(created, _Interrupted):
            if not await self._may_have_landed(submission):
                return INTERRUPTED
            # The same Idempotency-Key answers with the entity an earlier attempt created.
            created = await self._dsp_call(
                DspActivities.submit_entity, submission, DspCallKind.SUBMIT, snapshot
            )
            assert isinstance(created, SubmitEntityResult)
        return created.dsp_id, created.dsp_status

    async def _may_have_landed(self, submission: SubmitEntityInput) -> bool:
        return await workflow.execute_local_activity_method(
            QueueActivities.submission_may_have_landed,
            SubmissionCheckInput(key=submission.key, idempotency_key=submission.idempotency_key),
            start_to_close_timeout=RECORD_TIMEOUT,
            retry_policy=RECORD_RETRY_POLICY,
        )

    async def _poll_until_decided(
        self,
        snapshot: EntitySnapshot,
        dsp_id: str,
        dsp_status: str,
        polls: int,
        plan: PollPlan | None = None,
    ) -> _Ending | _Restart:
        """Poll until the DSP decides; `plan` is the first wait's when `start_polling` made
        it. With `combined_records`, `DspStatus=polling` is published once a poll finds the
        review still open: an entity decided by its first poll never shows it in the web UI
        (the queue row and the `state` query do), and a visibility write is saved."""
        self._state.dsp_id, self._state.dsp_status = dsp_id, dsp_status
        self._state.polls = polls
        polls_this_run = 0
        reason: str | None = None
        while service_status_for(snapshot.entity_type, dsp_status) is None:
            if polls_this_run >= MAX_POLLS_PER_RUN and not self._interrupted(snapshot):
                self._continue_polling_in_new_run(snapshot, dsp_id, dsp_status, polls)
            if not (self._last_word_wins and self._interrupted(snapshot)):
                await self._wait_before_poll(snapshot, polls, plan)
            plan = None
            if self._resubmitted(snapshot):
                return RESTART
            if self._cancel is not None:
                return await self._archive(snapshot, dsp_id)
            try:
                polled = await self._poll_once(snapshot, dsp_id)
            except ActivityError as err:
                return _failure_from(err)
            if isinstance(polled, _Interrupted):
                continue
            polls += 1
            polls_this_run += 1
            self._state.polls = polls
            reason = polled.reason
            if polled.dsp_status != dsp_status:
                dsp_status = polled.dsp_status
                self._state.dsp_status = dsp_status
                if service_status_for(snapshot.entity_type, dsp_status) is None:
                    await self._record(snapshot, EntityStatus.POLLING)
            else:
                self._publish_status(snapshot, EntityStatus.POLLING)
        if self._resubmitted(snapshot):
            return RESTART
        status = service_status_for(snapshot.entity_type, dsp_status)
        assert status is not None
        return _Ending(status, reason)

    def _continue_polling_in_new_run(
        self, snapshot: EntitySnapshot, dsp_id: str, dsp_status: str, polls: int
    ) -> None:
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

    async def _start_polling(self, snapshot: EntitySnapshot) -> PollPlan:
        self._state.status = EntityStatus.POLLING
        plan = await workflow.execute_local_activity_method(
            PollPlanner.start_polling,
            StartPollingInput(
                record=self._status_change(snapshot, EntityStatus.POLLING),
                plan=PollPlanInput(key=snapshot.key, entity_type=snapshot.entity_type, polls=0),
            ),
            start_to_close_timeout=RECORD_TIMEOUT,
            retry_policy=RECORD_RETRY_POLICY,
        )
        self._set_level(plan.priority)
        return plan

    async def _wait_before_poll(
        self, snapshot: EntitySnapshot, polls: int, plan: PollPlan | None = None
    ) -> None:
        """Sleep as long as the planner says (or `plan`, made already), or until the user
        interrupts."""
        if plan is None:
            plan = await workflow.execute_local_activity_method(
                PollPlanner.plan_next_poll,
                PollPlanInput(key=snapshot.key, entity_type=snapshot.entity_type, polls=polls),
                start_to_close_timeout=timedelta(seconds=10),
            )
        self._set_level(plan.priority)
        self._state.next_poll_at = workflow.now() + timedelta(seconds=plan.interval)
        try:
            await workflow.wait_condition(
                lambda: self._interrupted(snapshot), timeout=timedelta(seconds=plan.interval)
            )
        except TimeoutError:
            pass
        self._state.next_poll_at = None

    async def _poll_once(
        self, snapshot: EntitySnapshot, dsp_id: str
    ) -> DspStatusResult | _Interrupted:
        return await self._dsp_call(
            DspActivities.poll_status,
            PollStatusInput(key=snapshot.key, entity_type=snapshot.entity_type, dsp_id=dsp_id),
            DspCallKind.POLL,
            snapshot,
            interrupt=lambda: self._interrupted(snapshot),
        )

    async def _archive(self, snapshot: EntitySnapshot, dsp_id: str) -> _Ending:
        """DELETE the DSP entity. Not interruptible: once asked, the archive happens, and a
        resubmit arriving meanwhile then POSTs a new entity."""
        reason = self._cancel.reason if self._cancel is not None else DEFAULT_CANCEL_REASON
        try:
            archived = await self._dsp_call(
                DspActivities.archive_entity,
                ArchiveEntityInput(
                    key=snapshot.key, entity_type=snapshot.entity_type, dsp_id=dsp_id
                ),
                DspCallKind.ARCHIVE,
                snapshot,
            )
            assert isinstance(archived, DspStatusResult)
            self._state.dsp_status = archived.dsp_status
        except ActivityError as err:
            workflow.logger.warning("archiving %s at the DSP failed: %s", snapshot.key, err.cause)
        return _Ending(EntityStatus.CANCELLED, reason)

    async def _dsp_call(
        self,
        method: Callable[[DspActivities, InputT], Awaitable[ResultT]],
        arg: InputT,
        kind: DspCallKind,
        snapshot: EntitySnapshot,
        *,
        interrupt: Callable[[], bool] | None = None,
    ) -> ResultT | _Interrupted:
        """One DSP activity on the rate-limited queue. With `interrupt`, the call is cancelled
        once it holds; the activity sends nothing if its request has not left, and otherwise
        finishes, so the result says what the DSP did. A new level or weight for the batch
        (`reprioritise`) cancels the call the same way and schedules it again with the new
        priority: Temporal keeps a queued task's priority, so this is how a waiting call moves."""

        def interrupted() -> bool:
            return interrupt is not None and self._last_word_wins and interrupt()

        while True:
            priority = self._priority(kind, snapshot)
            handle = workflow.start_activity_method(
                method,
                arg,
                task_queue=self._dsp_task_queue(),
                start_to_close_timeout=DSP_START_TO_CLOSE,
                heartbeat_timeout=DSP_HEARTBEAT,
                retry_policy=DSP_RETRY_POLICY,
                priority=priority,
                cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            )
            if interrupted() or not await self._rekey_wanted(handle, kind, snapshot, interrupted):
                break
            handle.cancel()
            try:
                return await handle  # its request had left: what the DSP did stands
            except ActivityError as err:
                if not isinstance(err.cause, CancelledError):
                    raise
            if interrupted():
                return INTERRUPTED
        if interrupt is None or not self._last_word_wins:
            return await handle
        await workflow.wait_condition(lambda: handle.done() or interrupt())
        if not handle.done():
            handle.cancel()
        try:
            return await handle
        except ActivityError as err:
            if isinstance(err.cause, CancelledError):
                return INTERRUPTED
            raise

    async def _rekey_wanted(
        self,
        handle: workflow.ActivityHandle[Any],
        kind: DspCallKind,
        snapshot: EntitySnapshot,
        interrupted: Callable[[], bool],
    ) -> bool:
        """Wait until the call is done or interrupted, or the batch's priority changes while
        it still waits; whether it should be scheduled again with the new one."""
        scheduled = self._priority(kind, snapshot)

        def changed() -> bool:
            return not handle.done() and self._priority(kind, snapshot) != scheduled

        await workflow.wait_condition(lambda: handle.done() or interrupted() or changed())
        return changed() and workflow.patched(REKEY_QUEUED_CALLS_PATCH)

    async def _tell_dependants(
        self, snapshot: EntitySnapshot, outcome: DependencyOutcome, count: int | None = None
    ) -> None:
        """Tell dependants (read from the queue table by the activity) where this key stands.
        A few are told in a local activity, as cheap as the rest of the queue records; many
        (or an unknown number) in a regular one that heartbeats after each page and that a
        resubmit arriving meanwhile cancels, since the outcome no longer holds."""
        request = TellDependantsInput(outcome=outcome)
        if count is not None and count <= LOCAL_FAN_OUT_LIMIT:
            await workflow.execute_local_activity_method(
                DependantFanOut.tell_dependants,
                request,
                start_to_close_timeout=RECORD_TIMEOUT,
                retry_policy=RECORD_RETRY_POLICY,
            )
            return
        handle = workflow.start_activity_method(
            DependantFanOut.tell_dependants,
            request,
            start_to_close_timeout=FAN_OUT_START_TO_CLOSE,
            heartbeat_timeout=FAN_OUT_HEARTBEAT,
            retry_policy=FAN_OUT_RETRY_POLICY,
            cancellation_type=ActivityCancellationType.TRY_CANCEL,
        )
        await workflow.wait_condition(lambda: handle.done() or self._resubmitted(snapshot))
        if not handle.done():
            handle.cancel()
        try:
            await handle
        except ActivityError as err:
            if not isinstance(err.cause, CancelledError):
                raise

    async def _finish(self, snapshot: EntitySnapshot, ending: _Ending) -> None:
        self._state.status = ending.status
        self._state.reason = ending.reason
        self._publish_status(snapshot, ending.status)
        change = self._status_change(
            snapshot,
            ending.status,
            reason=ending.reason,
            blocked_by=ending.blocked_by,
        )
        root = None
        if ending.status is not EntityStatus.SUCCEEDED:
            root = ending.blocked_by or snapshot.key
        outcome = DependencyOutcome(
            key=snapshot.key,
            status=ending.status,
            dsp_id=self._state.dsp_id,
            reason=ending.reason,
            blocked_by=root,
            payload_version=snapshot.payload_version if self._last_word_wins else 0,
        )
        if self._last_word_wins:
            result = await self._queue_activity(
                QueueActivities.finish_entity,
                FinishEntityInput(record=change, outcome=outcome, tell_up_to=LOCAL_FAN_OUT_LIMIT),
            )
        else:
            result = await self._queue_activity(QueueActivities.record_status, change)
        if self._last_word_wins:
            # An outcome of a superseded version goes nowhere.
            if (
                result.recorded
                and result.dependants_to_tell
                and result.told is None
                and not self._resubmitted(snapshot)
            ):
                await self._tell_dependants(snapshot, outcome, result.dependants_to_tell)

    async def _load(self, key: str) -> EntitySnapshot:
        snapshot = await self._queue_activity(QueueActivities.load_entity, LoadEntityInput(key=key))
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
        self._set_level(snapshot.priority)
        self._set_weight(snapshot.fairness_weight)
        return snapshot

    def _set_level(self, level: PriorityLevel | None) -> None:
        """The priority a local activity just read from the row (None: it did not say, as in
        results recorded before the field), for the DSP calls from now on."""
        if level is not None:
            self._level = level
        self._state.priority = self._level

    def _set_weight(self, weight: float | None) -> None:
        if weight is not None:
            self._weight = weight
        self._state.fairness_weight = self._weight

    async def _record(
        self, snapshot: EntitySnapshot, status: EntityStatus, *, publish: bool = True
    ) -> None:
        self._state.status = status
        if publish:
            self._publish_status(snapshot, status)
        result = await self._queue_activity(
            QueueActivities.record_status, self._status_change(snapshot, status)
        )
        self._set_level(result.priority)

    def _status_change(
        self, snapshot: EntitySnapshot, status: EntityStatus, **details: Any
    ) -> RecordStatusInput:
        """`status` for the row of the loaded version, with the DSP facts known now."""
        return RecordStatusInput(
            key=snapshot.key,
            status=status,
            payload_version=snapshot.payload_version,
            dsp_id=self._state.dsp_id,
            dsp_status=self._state.dsp_status,
            **details,
        )

    def _publish_status(self, snapshot: EntitySnapshot, status: EntityStatus) -> None:
        """Upsert `DspStatus` (and type and batch when the starter did not set them) for the
        web UI. Only runs started with the service's search attributes do it: a server that
        does not know them (the time-skipping test server) would fail the workflow task."""
        attributes = workflow.info().typed_search_attributes
        # TypedSearchAttributes.__contains__ takes a key, though temporalio types the class as
        # a Collection of key-value pairs (hence the ignores).
        if DSP_ENTITY_KEY not in attributes or attributes.get(DSP_STATUS) == status.value:  # type: ignore[comparison-overlap]
            return
        if not (self._lean_history or workflow.patched(SEARCH_ATTRIBUTES_PATCH)):
            return
        updates = [DSP_STATUS.value_set(status.value)]
        if DSP_ENTITY_TYPE not in attributes:  # type: ignore[comparison-overlap]
            updates.append(DSP_ENTITY_TYPE.value_set(snapshot.entity_type.value))
        if DSP_BATCH not in attributes:  # type: ignore[comparison-overlap]
            updates.append(DSP_BATCH.value_set(snapshot.batch))
        workflow.upsert_search_attributes(updates)

    def _cancelled(self) -> bool:
        return self._cancel is not None

    def _resubmitted(self, snapshot: EntitySnapshot) -> bool:
        return self._resubmit_version > snapshot.payload_version

    def _interrupted(self, snapshot: EntitySnapshot) -> bool:
        return self._cancelled() or self._resubmitted(snapshot)

    def _priority(self, kind: DspCallKind, snapshot: EntitySnapshot) -> Priority:
        return _priority(kind, snapshot, self._level, self._weight)

    def _dsp_task_queue(self) -> str:
        # The DSP queue is derived from the workflow queue, as the worker derives it.
        return f"{workflow.info().task_queue}-dsp"

    async def _queue_activity(
        self, method: Callable[[QueueActivities, InputT], Awaitable[ResultT]], arg: InputT
    ) -> ResultT:
        """A queue-table activity: local once the patch is in the history (or the run is
        new), a regular activity on the workflow queue while replaying a run recorded before
        it."""
        if self._lean_history or workflow.patched(LOCAL_QUEUE_RECORDS_PATCH):
            return await workflow.execute_local_activity_method(
                method,
                arg,
                start_to_close_timeout=RECORD_TIMEOUT,
                retry_policy=RECORD_RETRY_POLICY,
            )
        return await workflow.execute_activity_method(
            method, arg, start_to_close_timeout=RECORD_TIMEOUT, retry_policy=RECORD_RETRY_POLICY
        )


InputT = TypeVar("InputT")
ResultT = TypeVar("ResultT")


def _blocking_dependency(deps: list[DependencyOutcome]) -> DependencyOutcome | None:
    """The first dependency that ended any other way than succeeded, if one did."""
    for dep in deps:
        if dep.status in TERMINAL_STATUSES and dep.status is not EntityStatus.SUCCEEDED:
            return dep
    return None


def _live(dsp_id: str | None, dsp_status: str | None) -> bool:
    """Whether a DSP entity exists for the key and is not archived."""
    return bool(dsp_id) and dsp_status != ARCHIVED


def _priority(
    kind: DspCallKind, snapshot: EntitySnapshot, level: PriorityLevel, weight: float
) -> Priority:
    """The priority key by the batch's level, the fairness key by the batch and the call's
    lane (`CallOrder`), the weight by the batch's and the lane.

    Priority is not part of the replay check (sdk-core compares an activity's id and type
    only), and `dependants`, the level, the weight, the order and the batch all come from
    recorded local-activity results (`load_entity`, `record_status`, `plan_next_poll`) or
    signals, so it replays."""
    order = snapshot.call_order
    return Priority(
        priority_key=dsp_priority(kind, snapshot.dependants, level, order),
        fairness_key=dsp_fairness_key(snapshot.batch, kind, snapshot.dependants, order),
        fairness_weight=dsp_fairness_weight(kind, snapshot.dependants, weight, order),
    )


def _failure_from(err: ActivityError) -> _Ending:
    cause = err.cause
    if isinstance(cause, ApplicationError) and cause.type in FAILING_DSP_ERRORS:
        return _Ending(EntityStatus.FAILED, cause.message)
    raise err
