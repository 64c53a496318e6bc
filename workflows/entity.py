"""The life of one DSP entity: wait for its dependencies, submit, sleep and poll until the DSP
decides, record the ending.

What each user word, DSP answer and dependency outcome means is decided in one place,
`entity_machine` (pure, no Temporal); this workflow performs the step it names, turns the
result into an event and asks again. Signals only record what arrived."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import Priority
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
        dsp_task_queue,
    )
    from dsp_integration.contracts.search_attributes import (
        DSP_BATCH,
        DSP_ENTITY_KEY,
        DSP_ENTITY_TYPE,
        DSP_STATUS,
    )
    from dsp_integration.entities.refs import resolve_refs
    from dsp_integration.workflows.activity_options import (
        DSP_HEARTBEAT,
        DSP_RETRY_POLICY,
        DSP_START_TO_CLOSE,
        FAN_OUT_HEARTBEAT,
        FAN_OUT_RETRY_POLICY,
        FAN_OUT_START_TO_CLOSE,
        LOCAL_FAN_OUT_LIMIT,
        MAX_POLLS_PER_RUN,
        RECORD_RETRY_POLICY,
        RECORD_TIMEOUT,
        REFUSALS,
    )
    from dsp_integration.workflows.entity_machine import (
        Announce,
        Announced,
        Archive,
        Archived,
        ArchiveRefused,
        CancelAsked,
        DependencyHeard,
        Done,
        EntityFacts,
        Event,
        FindOut,
        Finish,
        FoundOut,
        Load,
        Loaded,
        Poll,
        Polled,
        PostAttempt,
        Recorded,
        Refused,
        ResubmitAsked,
        Send,
        Sent,
        Step,
        Wait,
        Withdrawn,
        apply,
        decide,
        next_step,
        still_wanted,
    )

InputT = TypeVar("InputT")
ResultT = TypeVar("ResultT")


class _Withdrawn:
    """A DSP call cancelled before its request left (or whose failed answer no longer
    matters)."""


WITHDRAWN = _Withdrawn()


@workflow.defn(name=ENTITY_WORKFLOW_NAME)
class EntityWorkflow:
    """One workflow per entity key. Signals: `cancel`, `resubmit`, `reprioritise`,
    `dependency_finished`. Query: `state`. Every side effect runs in an activity; every DSP
    call on the rate-limited DSP queue."""

    def __init__(self) -> None:
        self._facts = EntityFacts(key="")
        self._snapshot: EntitySnapshot | None = None
        self._carry: PollCarry | None = None
        self._status = EntityStatus.WAITING  # as the queue row holds it
        self._reason: str | None = None
        self._waiting_on: tuple[str, ...] = ()
        self._next_poll_at: datetime | None = None
        self._polls_this_run = 0
        # The batch's priority as last read from the row or signalled: each DSP call is
        # scheduled with it.
        self._level: PriorityLevel = DEFAULT_PRIORITY_LEVEL
        self._weight: float = DSP_FAIRNESS_WEIGHT

    @workflow.signal
    def cancel(self, request: CancelRequest) -> None:
        self._facts = apply(self._facts, CancelAsked(request.reason))

    @workflow.signal
    def resubmit(self, request: ResubmitRequest) -> None:
        """Sent after the client stored `payload_version` in the queue table."""
        self._facts = apply(self._facts, ResubmitAsked(request.payload_version))

    @workflow.signal
    def dependency_finished(self, outcome: DependencyOutcome) -> None:
        self._facts = apply(self._facts, DependencyHeard(outcome))

    @workflow.signal
    def reprioritise(self, request: ReprioritiseRequest) -> None:
        """The client stored a new level or weight for the batch: calls from now on go with
        it, and one still waiting in the DSP queue is scheduled again (`_dsp_call`)."""
        self._set_priority(request.priority, request.fairness_weight)

    @workflow.query
    def state(self) -> EntityState:
        facts = self._facts
        return EntityState(
            key=facts.key,
            entity_type=facts.entity_type,
            status=self._status,
            payload_version=facts.version,
            dsp_id=facts.dsp_id,
            dsp_status=facts.dsp_status,
            reason=self._reason,
            waiting_on=list(self._waiting_on),
            polls=facts.polls,
            next_poll_at=self._next_poll_at,
            priority=self._level,
            fairness_weight=self._weight,
        )

    @workflow.run
    async def run(self, request: EntityWorkflowInput) -> EntityState:
        self._facts = replace(self._facts, key=request.key)
        self._carry = request.carry
        step = next_step(self._facts)
        while not isinstance(step, Done):
            event = await self._perform(step)
            self._facts, step = decide(self._facts, event)
        return self.state()

    async def _perform(self, step: Step) -> Event:
        match step:
            case Load():
                return await self._load()
            case FindOut():
                return await self._find_out(step)
            case Announce():
                return await self._announce(step)
            case Wait():
                return await self._wait(step)
            case Send():
                return await self._send(step)
            case Poll():
                return await self._poll(step)
            case Archive():
                return await self._archive(step)
            case Finish():
                return await self._finish(step)
        raise AssertionError(f"no performer for {step!r}")

    # --- the steps ------------------------------------------------------------------------

    async def _load(self) -> Event:
        snapshot = await self._queue_activity(
            QueueActivities.load_entity, LoadEntityInput(key=self._facts.key)
        )
        self._snapshot = snapshot
        self._status, self._reason = snapshot.status, snapshot.reason
        self._set_priority(snapshot.priority, snapshot.fairness_weight)
        carry, self._carry = self._carry, None
        return Loaded(snapshot, carry)

    async def _find_out(self, step: FindOut) -> Event:
        """Whatever users said meanwhile, what the POST created must be known first."""
        found = await self._dsp_call(
            DspActivities.find_created_entity,
            self._submission(step.attempt),
            DspCallKind.SUBMIT,
            step,
        )
        assert not isinstance(found, _Withdrawn)
        return FoundOut(found.dsp_id, found.dsp_status, holds_attempt=found.holds_attempt)

    async def _announce(self, step: Announce) -> Event:
        outcome = DependencyOutcome(
            key=self._facts.key, status=EntityStatus.WAITING, payload_version=step.version
        )
        told = await self._tell_dependants(outcome, lambda: not still_wanted(self._facts, step))
        return Announced() if told else Withdrawn()

    async def _wait(self, step: Wait) -> Event:
        if self._status is not EntityStatus.WAITING:
            await self._record(EntityStatus.WAITING)
        self._waiting_on = step.waiting_on
        await workflow.wait_condition(lambda: not still_wanted(self._facts, step))
        self._waiting_on = ()
        return Withdrawn()

    async def _send(self, step: Send) -> Event:
        """PUT over the live DSP entity of this key, or POST a new one. Withdrawn while the
        request has not left when the facts no longer lead here; a POST that may have reached
        the DSP all the same is then found out (`FindOut`)."""
        snapshot = self._loaded()
        body = resolve_refs(snapshot.payload, dict(step.refs))
        await self._record(EntityStatus.SUBMITTING, publish=False)
        attempt = PostAttempt(step.version, body)
        try:
            if step.put_over is not None:
                replaced = await self._dsp_call(
                    DspActivities.replace_entity,
                    ReplaceEntityInput(
                        key=snapshot.key,
                        entity_type=snapshot.entity_type,
                        dsp_id=step.put_over,
                        body=body,
                    ),
                    DspCallKind.SUBMIT,
                    step,
                )
                if isinstance(replaced, _Withdrawn):
                    return Withdrawn()
                return Sent(step.put_over, replaced.dsp_status, replaced.reason)
            created = await self._dsp_call(
                DspActivities.submit_entity, self._submission(attempt), DspCallKind.SUBMIT, step
            )
        except ActivityError as err:
            if _failed_as(err, ErrorType.DSP_MAY_HAVE_LANDED):
                return Withdrawn(attempt)  # a version-2 DSP: found out, never sent blindly
            return Refused(_refusal(err))
        if isinstance(created, _Withdrawn):
            return Withdrawn(attempt if await self._may_have_landed(attempt) else None)
        assert isinstance(created, SubmitEntityResult)
        return Sent(created.dsp_id, created.dsp_status)

    async def _poll(self, step: Poll) -> Event:
        """Sleep as long as the planner says, then read the DSP status; both withdrawn when
        the facts no longer lead here."""
        if self._polls_this_run >= MAX_POLLS_PER_RUN:
            self._continue_review_in_new_run(step)
        plan = await self._plan_poll()
        self._next_poll_at = workflow.now() + timedelta(seconds=plan.interval)
        try:
            await workflow.wait_condition(
                lambda: not still_wanted(self._facts, step),
                timeout=timedelta(seconds=plan.interval),
            )
        except TimeoutError:
            pass
        self._next_poll_at = None
        if not still_wanted(self._facts, step):
            return Withdrawn()
        snapshot = self._loaded()
        try:
            polled = await self._dsp_call(
                DspActivities.poll_status,
                PollStatusInput(
                    key=snapshot.key, entity_type=snapshot.entity_type, dsp_id=step.dsp_id
                ),
                DspCallKind.POLL,
                step,
            )
        except ActivityError as err:
            return Refused(_refusal(err))
        if isinstance(polled, _Withdrawn):
            return Withdrawn()
        self._polls_this_run += 1
        event = Polled(polled.dsp_status, polled.reason)
        facts = apply(self._facts, event)
        if isinstance(next_step(facts), Poll):  # still under review
            if polled.dsp_status != self._facts.dsp_status:
                await self._record(EntityStatus.POLLING, facts=facts)
            else:
                self._publish_status(EntityStatus.POLLING)
        return event

    async def _archive(self, step: Archive) -> Event:
        snapshot = self._loaded()
        try:
            archived = await self._dsp_call(
                DspActivities.archive_entity,
                ArchiveEntityInput(
                    key=snapshot.key, entity_type=snapshot.entity_type, dsp_id=step.dsp_id
                ),
                DspCallKind.ARCHIVE,
                step,
            )
        except ActivityError as err:
            reason = _refusal(err)
            workflow.logger.warning("the DSP refused to archive %s: %s", step.dsp_id, reason)
            return ArchiveRefused(reason)
        assert isinstance(archived, DspStatusResult)
        return Archived(archived.dsp_status)

    async def _finish(self, step: Finish) -> Event:
        """Record the ending and tell the dependants: a few in the same local activity, many
        in a regular one that a newer version withdraws (the outcome no longer holds)."""
        ending, facts = step.ending, self._facts
        self._status, self._reason = ending.status, ending.reason
        self._publish_status(ending.status)
        root = None if ending.status is EntityStatus.SUCCEEDED else ending.blocked_by or facts.key
        outcome = DependencyOutcome(
            key=facts.key,
            status=ending.status,
            dsp_id=facts.dsp_id,
            reason=ending.reason,
            blocked_by=root,
            payload_version=facts.version,
        )
        result = await self._queue_activity(
            QueueActivities.finish_entity,
            FinishEntityInput(
                record=self._status_change(
                    ending.status, reason=ending.reason, blocked_by=ending.blocked_by
                ),
                outcome=outcome,
                tell_up_to=LOCAL_FAN_OUT_LIMIT,
            ),
        )
        if result.recorded and result.dependants_to_tell and result.told is None:
            version = facts.version
            await self._tell_dependants(outcome, lambda: self._facts.newest > version)
        return Recorded(ending)

    # --- what the steps share -----------------------------------------------------------

    async def _dsp_call(
        self,
        method: Callable[[DspActivities, InputT], Awaitable[ResultT]],
        arg: InputT,
        kind: DspCallKind,
        step: Step,
    ) -> ResultT | _Withdrawn:
        """One DSP activity on the rate-limited queue. When the facts no longer lead to
        `step`, the call is cancelled: the activity sends nothing if its request has not left,
        and otherwise finishes, so the result says what the DSP did. A new level or weight
        for the batch (`reprioritise`) cancels a call still waiting the same way and schedules
        it again: Temporal keeps a queued task's priority, so this is how a waiting call
        moves."""

        def withdrawn() -> bool:
            return not still_wanted(self._facts, step)

        while True:
            scheduled = self._priority(kind)
            cancel_asked = False
            handle = workflow.start_activity_method(
                method,
                arg,
                task_queue=dsp_task_queue(workflow.info().task_queue, self._loaded().seat),
                start_to_close_timeout=DSP_START_TO_CLOSE,
                heartbeat_timeout=DSP_HEARTBEAT,
                retry_policy=DSP_RETRY_POLICY,
                priority=scheduled,
                cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            )
            await self._until_done_or_moved(handle, withdrawn, kind, scheduled)
            if not handle.done():
                handle.cancel()
                cancel_asked = True
            try:
                return await handle  # done, or its request had left: what the DSP did stands
            except ActivityError as err:
                cancelled = isinstance(err.cause, CancelledError)
                if not (cancelled or (cancel_asked and _retryable(err))):
                    raise
            if withdrawn():
                return WITHDRAWN

    async def _until_done_or_moved(
        self,
        handle: workflow.ActivityHandle[Any],
        withdrawn: Callable[[], bool],
        kind: DspCallKind,
        scheduled: Priority,
    ) -> None:
        """Until the call is done, withdrawn, or the batch's priority moved while it waits."""
        await workflow.wait_condition(
            lambda: handle.done() or withdrawn() or self._priority(kind) != scheduled
        )

    async def _tell_dependants(
        self, outcome: DependencyOutcome, withdrawn: Callable[[], bool]
    ) -> bool:
        """Tell every dependant (read from the queue table in pages by the activity) where
        this key stands; False if withdrawn first."""
        handle = workflow.start_activity_method(
            DependantFanOut.tell_dependants,
            TellDependantsInput(outcome=outcome),
            start_to_close_timeout=FAN_OUT_START_TO_CLOSE,
            heartbeat_timeout=FAN_OUT_HEARTBEAT,
            retry_policy=FAN_OUT_RETRY_POLICY,
            cancellation_type=ActivityCancellationType.TRY_CANCEL,
        )
        await workflow.wait_condition(lambda: handle.done() or withdrawn())
        if not handle.done():
            handle.cancel()
        try:
            await handle
        except ActivityError as err:
            if not isinstance(err.cause, CancelledError):
                raise
            return False
        return True

    async def _plan_poll(self) -> PollPlan:
        """The first poll of a version is planned with its `polling` record, the others by
        the planner alone."""
        facts = self._facts
        assert facts.entity_type is not None
        request = PollPlanInput(
            key=facts.key,
            entity_type=facts.entity_type,
            polls=facts.polls,
            seat=self._loaded().seat,
        )
        if self._status is not EntityStatus.POLLING:
            self._status = EntityStatus.POLLING
            plan = await self._queue_activity(
                PollPlanner.start_polling,
                StartPollingInput(record=self._status_change(EntityStatus.POLLING), plan=request),
            )
        else:
            plan = await self._queue_activity(PollPlanner.plan_next_poll, request)
        self._set_priority(plan.priority, None)
        return plan

    def _continue_review_in_new_run(self, step: Poll) -> None:
        facts = self._facts
        workflow.continue_as_new(
            EntityWorkflowInput(
                key=facts.key,
                carry=PollCarry(
                    dsp_id=step.dsp_id,
                    dsp_status=facts.dsp_status or "",
                    payload_version=facts.version,
                    polls=facts.polls,
                    next_interval=0,
                ),
            )
        )

    async def _may_have_landed(self, attempt: PostAttempt) -> bool:
        """Whether an attempt of this POST may have reached the DSP (by the audit trail)."""
        submission = self._submission(attempt)
        return await self._queue_activity(
            QueueActivities.submission_may_have_landed,
            SubmissionCheckInput(key=submission.key, idempotency_key=submission.idempotency_key),
        )

    def _submission(self, attempt: PostAttempt) -> SubmitEntityInput:
        snapshot = self._loaded()
        return SubmitEntityInput(
            key=snapshot.key,
            entity_type=snapshot.entity_type,
            body=attempt.body,
            idempotency_key=f"{snapshot.key}:v{attempt.version}",
        )

    async def _record(
        self, status: EntityStatus, *, publish: bool = True, facts: EntityFacts | None = None
    ) -> None:
        self._status = status
        if publish:
            self._publish_status(status)
        result = await self._queue_activity(
            QueueActivities.record_status, self._status_change(status, facts=facts)
        )
        self._set_priority(result.priority, None)

    def _status_change(
        self, status: EntityStatus, *, facts: EntityFacts | None = None, **details: Any
    ) -> RecordStatusInput:
        """`status` for the row of the version in hand, with the DSP facts known now."""
        facts = facts or self._facts
        return RecordStatusInput(
            key=facts.key,
            status=status,
            payload_version=facts.version,
            dsp_id=facts.dsp_id,
            dsp_status=facts.dsp_status,
            **details,
        )

    def _publish_status(self, status: EntityStatus) -> None:
        """Upsert `DspStatus` (and type and batch when the starter did not set them) for the
        web UI. Only runs started with the service's search attributes do it: a server that
        does not know them (the time-skipping test server) would fail the workflow task."""
        attributes = workflow.info().typed_search_attributes
        # TypedSearchAttributes.__contains__ takes a key, though temporalio types the class as
        # a Collection of key-value pairs (hence the ignores).
        if DSP_ENTITY_KEY not in attributes or attributes.get(DSP_STATUS) == status.value:  # type: ignore[comparison-overlap]
            return
        snapshot = self._loaded()
        updates = [DSP_STATUS.value_set(status.value)]
        if DSP_ENTITY_TYPE not in attributes:  # type: ignore[comparison-overlap]
            updates.append(DSP_ENTITY_TYPE.value_set(snapshot.entity_type.value))
        if DSP_BATCH not in attributes:  # type: ignore[comparison-overlap]
            updates.append(DSP_BATCH.value_set(snapshot.batch))
        workflow.upsert_search_attributes(updates)

    def _set_priority(self, level: PriorityLevel | None, weight: float | None) -> None:
        """The level and weight an activity just read from the row or a signal carried
        (None: unchanged), for the DSP calls from now on."""
        if level is not None:
            self._level = level
        if weight is not None:
            self._weight = weight

    def _priority(self, kind: DspCallKind) -> Priority:
        """The priority key by the batch's level, the fairness key by the batch and the
        call's lane, the weight by the batch's and the lane's. Priority is not part of the
        replay check (sdk-core compares an activity's id and type only)."""
        snapshot = self._loaded()
        return Priority(
            priority_key=dsp_priority(kind, snapshot.dependants, self._level),
            fairness_key=dsp_fairness_key(snapshot.batch, kind, snapshot.dependants),
            fairness_weight=dsp_fairness_weight(kind, snapshot.dependants, self._weight),
        )

    def _loaded(self) -> EntitySnapshot:
        assert self._snapshot is not None, "the entity is loaded before any other step"
        return self._snapshot

    async def _queue_activity(
        self, method: Callable[[Any, InputT], Awaitable[ResultT]], arg: InputT
    ) -> ResultT:
        """A queue-table activity: a short database call, local to the workflow worker."""
        return await workflow.execute_local_activity_method(
            method, arg, start_to_close_timeout=RECORD_TIMEOUT, retry_policy=RECORD_RETRY_POLICY
        )


def _retryable(err: ActivityError) -> bool:
    """Whether Temporal would have retried the failed call, had it not been cancelled: a
    failed answer (a 503, a timeout) that reached the activity before the cancel did ends the
    call as failed instead of cancelled, and means no more than a cancelled call would."""
    cause = err.cause
    if not isinstance(cause, ApplicationError):
        return True
    return not cause.non_retryable and cause.type not in REFUSALS


def _failed_as(err: ActivityError, error_type: ErrorType) -> bool:
    cause = err.cause
    return isinstance(cause, ApplicationError) and cause.type == error_type


def _refusal(err: ActivityError) -> str:
    """The DSP's message for a request it refused; any other failure fails the workflow
    task, to be seen and fixed."""
    cause = err.cause
    if isinstance(cause, ApplicationError) and cause.type in REFUSALS:
        return cause.message
    raise err
