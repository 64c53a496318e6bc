"""Random interleavings of users, the DSP and time on small DAGs of every entity type,
checked against the rule of `dsp_integration.workflows.entity`: the last word wins.

Hypothesis draws a `Schedule`: a DAG shape (advertisers, campaigns, creatives and ad groups,
with their references), what the fake DSP answers to each POST/PUT of each key, and a list
of steps: start a workflow; a user's word (cancel, resubmit with a new payload, prioritise
the batch), as `client.control` does; hold a key's next DSP call at its gate (before it
leaves, as if waiting for a rate-limit slot) or hold its answer (after the DSP acted: POST,
status read, PUT or DELETE), and release what is held for a key, in any order; and let
test-server time pass. Each step runs once the previous one has settled (no history, table or
DSP change for a few checks). After every step:

A. at most one live (not archived) DSP entity per key, at every moment (the fake DSP notes
   each entity created while another of the key lived);
B. every DSP entity the fake created is known: its id is on its row, or it is archived, or a
   DSP call still in flight (held) names it.

After the steps every gate opens and every held answer goes, every key is started (as the
intake would have), time runs free until every workflow has closed (awaited, with a
generous timeout that names what still runs), and then:

1. nothing is stuck: every key ends terminal in `dsp_entity_queue`, its workflow completed,
   and no workflow task failed (but for a completion refused for a signal that raced it);
2. A and B hold strictly (nothing is in flight any more), and a live entity is the row's;
3. the last word wins: after a cancel accepted while the key had not ended, the key ends
   `cancelled` with no live DSP entity; after a resubmit to vN, the row ends at vN with an
   outcome of vN recorded, not `cancelled`, and if it succeeded its DSP entity's body is
   vN's payload;
4. no dependant stays `blocked` while every one of its dependencies ended `succeeded`;
5. every POST/PUT of a dependant that left for the DSP did so while each dependency's stored
   version had succeeded, and carries that dependency's DSP id.

A broken invariant fails the example with the schedule (Hypothesis prints it, one step a
line), the trace of what happened, the rows and the DSP calls.

Profiles: by default a fixed CI profile (the explicit `@example` schedules, then a few drawn
ones, derandomized); `HYPOTHESIS_PROFILE=long` (`make interleavings`) draws many more.

The workflow tests run on one event loop per session (pytest-asyncio); pytest-asyncio runs a
`@given` async test's examples on that loop, so each example builds its own `World` (keys
and its batch are unique per world, the table is not emptied) with its own workers, and uses
only session fixtures."""

from __future__ import annotations

import asyncio
import logging
import math
import os
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, event, example, given, note, settings
from hypothesis import strategies as st
from temporalio.api.enums.v1 import EventType, WorkflowTaskFailedCause
from temporalio.api.testservice.v1 import LockTimeSkippingRequest, UnlockTimeSkippingRequest
from temporalio.client import WorkflowExecutionStatus, WorkflowQueryFailedError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from dsp_integration.contracts import (
    TERMINAL_STATUSES,
    EntityStatus,
    EntityType,
    PriorityLevel,
    first_dsp_status,
)
from dsp_integration.database import queue_store
from dsp_integration.database.engine import SessionFactory
from dsp_integration.worker.runtime import HEARTBEAT_THROTTLE
from tests.workflows.world import DspCall, Row, Timeline, World

POLL_INTERVAL = 5.0  # the planner's interval, every poll
WAIT_CHUNK = 1.0  # time passes in steps this long, so a call held stops it soon
CHECK_EVERY = 0.05  # real seconds between two looks at what the world did
SETTLED_CHECKS = 3  # unchanged fingerprints in a row that make "settled"
HELD_SETTLED_CHECKS = math.ceil(2 * HEARTBEAT_THROTTLE.total_seconds() / CHECK_EVERY)
SETTLE_WITHIN = 15.0  # real seconds
DRAIN_WITHIN = 120.0  # real seconds for every workflow to close once time runs free
HEALTH_CHECKS = [HealthCheck.too_slow, HealthCheck.data_too_large]


def hypothesis_profile(name: str, *, ci_examples: int, long_examples: int) -> tuple[str, int]:
    """Register `name`'s two profiles (CI: few derandomized draws; long, with
    `HYPOTHESIS_PROFILE=long`: many) and return the one this run uses, with its
    pytest-timeout: pytest-timeout counts all of a `@given` test's examples as one test, so
    none for the long run."""
    settings.register_profile(
        f"{name}-ci",
        max_examples=ci_examples,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=HEALTH_CHECKS,
    )
    settings.register_profile(
        f"{name}-long",
        max_examples=long_examples,
        deadline=None,
        suppress_health_check=HEALTH_CHECKS,
    )
    if os.environ.get("HYPOTHESIS_PROFILE") == "long":
        return f"{name}-long", 0
    return f"{name}-ci", 600


PROFILE, TIMEOUT = hypothesis_profile("interleavings", ci_examples=8, long_examples=300)
SUCCESS_STATUS = {
    EntityType.ADVERTISERS: "active",
    EntityType.CREATIVES: "approved",
    EntityType.CAMPAIGNS: "active",
    EntityType.AD_GROUPS: "active",
}


# --- what Hypothesis draws -------------------------------------------------------------------
@dataclass(frozen=True)
class Node:
    name: str
    entity_type: EntityType
    refs: tuple[str, ...] = ()


SHAPES: dict[str, tuple[Node, ...]] = {
    "account": (
        Node("acme", EntityType.ADVERTISERS),
        Node("campaign", EntityType.CAMPAIGNS, ("acme",)),
        Node("creative", EntityType.CREATIVES, ("acme",)),
        Node("group", EntityType.AD_GROUPS, ("campaign", "creative")),
    ),
    "advertiser": (
        Node("acme", EntityType.ADVERTISERS),
        Node("campaign", EntityType.CAMPAIGNS, ("acme",)),
    ),
    "pair": (
        Node("parent", EntityType.CREATIVES),
        Node("child", EntityType.AD_GROUPS, ("parent",)),
    ),
    "chain": (
        Node("parent", EntityType.CAMPAIGNS),
        Node("child", EntityType.AD_GROUPS, ("parent",)),
        Node("grandchild", EntityType.AD_GROUPS, ("child",)),
    ),
    "fork": (
        Node("parent", EntityType.CREATIVES),
        Node("left", EntityType.AD_GROUPS, ("parent",)),
        Node("right", EntityType.AD_GROUPS, ("parent",)),
    ),
    "join": (
        Node("creative", EntityType.CREATIVES),
        Node("campaign", EntityType.CAMPAIGNS),
        Node("group", EntityType.AD_GROUPS, ("creative", "campaign")),
    ),
}


@dataclass(frozen=True)
class Verdict:
    """What the DSP makes of one POST/PUT: approve or reject it after a review of `after`
    seconds, or refuse it at once (422)."""

    kind: str  # "approve", "reject" or "422"
    after: float = 0.0

    def __repr__(self) -> str:
        return "422" if self.kind == "422" else f"{self.kind}@{self.after:g}s"

    def timeline(self, entity_type: EntityType) -> Timeline:
        """An advertiser is decided at once (its POST answers terminal)."""
        pending = first_dsp_status(entity_type)
        if entity_type is EntityType.ADVERTISERS:
            if self.kind == "approve":
                return [(0.0, SUCCESS_STATUS[entity_type], None)]
            return [(0.0, "rejected", "not this one")]
        if self.kind == "approve":
            return [(0.0, pending, None), (self.after, SUCCESS_STATUS[entity_type], None)]
        return [(0.0, pending, None), (self.after, "rejected", "not this one")]


@dataclass(frozen=True)
class Step:
    """start, cancel, resubmit, prioritise (`call` is the level), hold (the next `call` of
    `key` waits at its gate), answer (the next `call` of `key` acts, its answer is held),
    release (what is held for `key`), wait."""

    op: str
    key: str = ""
    call: str = ""
    seconds: float = 0.0

    def __repr__(self) -> str:
        if self.op == "wait":
            return f"wait {self.seconds:g}s"
        if self.op in ("hold", "answer"):
            return f"{self.op}({self.key}, {self.call})"
        if self.op == "prioritise":
            return f"prioritise({self.call})"
        return f"{self.op}({self.key})"


class Schedule:
    """Not a dataclass: Hypothesis prints dataclasses field by field, and this by `repr`, one
    step a line."""

    def __init__(
        self,
        shape: str,
        dsp: tuple[tuple[str, tuple[Verdict, ...]], ...],
        holds: tuple[Step, ...],  # gates set before the workflows start
        starts: tuple[str, ...],  # the order the workflows start in, all at t+0s
        steps: tuple[Step, ...],
    ) -> None:
        self.shape, self.dsp, self.holds, self.starts, self.steps = (
            shape,
            dsp,
            holds,
            starts,
            steps,
        )

    def __repr__(self) -> str:
        nodes = ", ".join(
            f"{n.name}({n.entity_type.value}{' <- ' + '+'.join(n.refs) if n.refs else ''})"
            for n in SHAPES[self.shape]
        )
        lines = [f"Schedule {self.shape}: {nodes}"]
        lines += [f"  dsp {name}: {', '.join(map(repr, verdicts))}" for name, verdicts in self.dsp]
        lines += [f"  t+0s {hold!r}" for hold in self.holds]
        lines += [f"  t+0s start({name})" for name in self.starts]
        elapsed = 0.0
        for step in self.steps:
            lines.append(f"  t+{elapsed:g}s {step!r}")
            elapsed += step.seconds
        return "\n".join(lines)


# Approvals far more often than rejections, or most runs would end in blocks and the races
# of a later version (a PUT, its review) would be rare.
APPROVE = st.builds(Verdict, st.just("approve"), st.sampled_from([0.0, 1.0, 5.0, 20.0]))
VERDICTS = st.one_of(
    *[APPROVE] * 6,
    st.builds(Verdict, st.just("reject"), st.sampled_from([5.0, 20.0])),
    st.just(Verdict("422")),
)
DSP_OPS = ("submit", "submit", "replace", "poll", "poll", "archive")
LEVELS = tuple(level.value for level in PriorityLevel)
WAITS = (1.0, 5.0, 10.0, 30.0)


@st.composite
def schedules(draw: st.DrawFn) -> Schedule:
    shape = draw(st.sampled_from(sorted(SHAPES)))
    names = [node.name for node in SHAPES[shape]]
    dsp = tuple((name, tuple(draw(st.lists(VERDICTS, min_size=1, max_size=3)))) for name in names)
    key = st.sampled_from(names)
    hold = st.builds(
        Step, st.sampled_from(["hold", "answer", "answer"]), key, st.sampled_from(DSP_OPS)
    )
    holds = draw(st.lists(hold, max_size=3, unique=True))
    starts = draw(st.permutations(names))
    step = st.one_of(
        st.builds(Step, st.just("cancel"), key),
        st.builds(Step, st.just("resubmit"), key),
        st.builds(Step, st.just("resubmit"), key),
        st.builds(Step, st.just("prioritise"), call=st.sampled_from(LEVELS)),
        hold,
        hold,
        st.builds(Step, st.just("release"), key),
        st.builds(Step, st.just("release"), key),
        st.builds(Step, st.just("wait"), seconds=st.sampled_from(WAITS)),
        st.builds(Step, st.just("wait"), seconds=st.sampled_from(WAITS)),
    )
    steps = draw(st.lists(step, min_size=1, max_size=12))
    return Schedule(shape, dsp, tuple(holds), tuple(starts), tuple(steps))


# --- the world, watched --------------------------------------------------------------------
class WatchedWorld(World):
    """A `World` with its own batch that counts the DSP calls held at a gate or with their
    answer held (test-server time cannot pass while one is) and checks each POST/PUT of a
    dependant as it leaves (invariant 5)."""

    def __init__(self, env: WorkflowEnvironment, sessions: SessionFactory) -> None:
        super().__init__(env.client, sessions)
        self.env = env
        self.plan = lambda polls: POLL_INTERVAL
        self.held = 0
        self.gated_ops: list[str] = []  # the calls that met a gate
        self.refs: dict[str, list[str]] = {}  # key -> the keys it refers to
        self.names: dict[str, str] = {}  # key -> its name in the schedule
        self.early_writes: list[str] = []
        self.gates_made: list[tuple[str, asyncio.Event]] = []
        self.started: set[str] = set()
        self.t0: datetime | None = None
        self.batch = f"batch-{self.tag}"

    async def _enter(self, op: str, key: str, **details: Any) -> DspCall:
        gated = op in self.scripts[key].gates
        answered_before = details.get("idempotency_key") in self.idempotency
        if gated:
            self.held += 1
            self.gated_ops.append(op)
        try:
            call = await super()._enter(op, key, **details)
        finally:
            if gated:
                self.held -= 1
        if op in ("submit", "replace") and self.refs.get(key) and not answered_before:
            await self._check_dependencies_at_write(call)
        return call

    async def _check_dependencies_at_write(self, call: DspCall) -> None:
        async with self.sessions() as session:
            rows = await queue_store.fetch_entities(session, self.refs[call.key])
        for dep in self.refs[call.key]:
            row = rows[dep]
            field = f"{self.names[dep]}_id"
            sent = (call.body or {}).get(field)
            if row.status != EntityStatus.SUCCEEDED.value or sent != row.dsp_id:
                self.early_writes.append(
                    f"{call.op} of {self.names[call.key]} at {self.since(call.at)} carried "
                    f"{field}={sent!r} while {self.names[dep]} v{row.payload_version} was "
                    f"{row.status} (dsp_id {row.dsp_id!r})"
                )

    async def _answer_when_released(self, call: DspCall) -> None:
        held = call.op in self.scripts[call.key].answers
        if held:
            self.held += 1
            self.gated_ops.append(f"{call.op} answer")
        try:
            await super()._answer_when_released(call)
        finally:
            if held:
                self.held -= 1

    def since(self, at: datetime) -> str:
        assert self.t0 is not None
        return f"t+{(at - self.t0).total_seconds():.0f}s"

    async def now(self) -> str:
        return self.since(await self.env.get_current_time())

    # --- settling ----------------------------------------------------------------------------
    async def _fingerprint(self) -> tuple[Any, ...]:
        runs: list[Any] = []
        for key in self.keys:
            try:
                described = await self.handle(key).describe()
            except RPCError:
                runs.append(None)  # not started
                continue
            runs.append((described.run_id, described.history_length, described.status))
        return (
            tuple(runs),
            len(self.calls),
            len(self.records),
            len(self.stale_records),
            len(self.told),
            len(self.loads),
            len(self._in_flight._running),
            self.held,
        )

    async def settle(self) -> None:
        """Until nothing changes for a few checks (time is held still meanwhile). While a
        call is held, for longer than a cancellation takes to reach it: the workers send its
        heartbeats (which bring a cancellation back) at most once per `HEARTBEAT_THROTTLE`,
        so a workflow may have cancelled it without the call knowing yet."""
        last: tuple[Any, ...] | None = None
        same = 0
        async with asyncio.timeout(SETTLE_WITHIN):
            while same < (HELD_SETTLED_CHECKS if self.held else SETTLED_CHECKS):
                await asyncio.sleep(CHECK_EVERY)
                now = await self._fingerprint()
                same = same + 1 if now == last else 0
                last = now

    async def drain(self) -> list[str]:
        """Let time run free until every workflow has closed, then settle; what still ran
        after `DRAIN_WITHIN` real seconds (empty when all closed)."""
        service = self.client.test_service
        await service.unlock_time_skipping(UnlockTimeSkippingRequest())
        try:
            async with asyncio.timeout(DRAIN_WITHIN):
                while True:
                    if not await self._running():
                        break
                    await asyncio.sleep(0.05)  # polling the server; nothing to wait on here
            await self.settle()
            return []
        except TimeoutError:
            return [
                f"{self.names[key]} still runs after {DRAIN_WITHIN:g} s: {state}"
                for key, state in await self._running_states()
            ]
        finally:
            await service.lock_time_skipping(LockTimeSkippingRequest())

    async def _running(self) -> list[str]:
        running = []
        for key in self.keys:
            try:
                described = await self.handle(key).describe()
            except RPCError:
                running.append(key)  # not started yet: it will be
                continue
            if described.status is WorkflowExecutionStatus.RUNNING:
                running.append(key)
        return running

    async def _running_states(self) -> list[tuple[str, str]]:
        states = []
        for key in await self._running():
            try:
                state = await self.state(key)
                states.append((key, f"{state.status.value} v{state.payload_version}"))
            except (RPCError, WorkflowQueryFailedError) as err:
                states.append((key, f"no state: {err}"))
        return states

    def in_flight_ids(self) -> set[str]:
        """DSP ids named by calls still held (at their gate, or with their answer held)."""
        return {c.dsp_id for c in self.calls if c.outcome in ("held", "at gate") and c.dsp_id}

    async def moment_invariants(self, *, strict: bool = False) -> list[str]:
        """A and B (see the module); `strict` once nothing is in flight."""
        broken = [f"A: {breach}" for breach in self.live_breaches]
        excused = set() if strict else self.in_flight_ids()
        for entity in self.dsp.values():
            if entity.archived or entity.dsp_id in excused:
                continue
            row = await self.row(entity.key)
            if row.dsp_id != entity.dsp_id:
                broken.append(
                    f"B: {self.names[entity.key]}'s live DSP entity {entity.dsp_id} is known "
                    f"nowhere (the row holds {row.dsp_id!r})"
                )
        return broken

    async def advance(self, seconds: float) -> float:
        """Let `seconds` of test-server time pass, in chunks; stops early while a DSP call is
        held at its gate (the test server does not skip time while an activity runs)."""
        passed = 0.0
        while passed < seconds and not self.held:
            chunk = min(WAIT_CHUNK, seconds - passed)
            await self.env.sleep(timedelta(seconds=chunk))
            passed += chunk
        return passed


class _FailedActivations(logging.Handler):
    """Workflow task failures (an exception in workflow code, a non-determinism) of one world."""

    def __init__(self, tag: str) -> None:
        super().__init__(logging.WARNING)
        self.tag = tag
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if self.tag in message:
            self.messages.append(message)


# --- one example -----------------------------------------------------------------------------
@dataclass
class Words:
    """The users' accepted words on one key."""

    last: str | None = None  # "cancel" or "resubmit"
    resubmits: int = 0


async def run_schedule(world: WatchedWorld, schedule: Schedule) -> list[str]:
    """Run the steps (checking A and B after each), drain, and return every broken
    invariant (empty when all hold)."""
    nodes = SHAPES[schedule.shape]
    verdicts = dict(schedule.dsp)
    keys: dict[str, str] = {}
    for node in nodes:
        script = verdicts[node.name]
        keys[node.name] = await world.add(
            node.name,
            node.entity_type,
            refs=node.refs,
            reject=[
                "height: must be a positive integer" if v.kind == "422" else None for v in script
            ],
            timelines=[v.timeline(node.entity_type) for v in script if v.kind != "422"],
            batch=world.batch,
        )
        world.names[keys[node.name]] = node.name
        world.refs[keys[node.name]] = [keys[ref] for ref in node.refs]
    words = {name: Words() for name in keys}
    world.t0 = await world.env.get_current_time()
    trace: list[str] = []
    broken: list[str] = []

    for step in (
        *schedule.holds,
        *(Step("start", name) for name in schedule.starts),
        *schedule.steps,
    ):
        at = await world.now()
        key = keys.get(step.key, "")
        if step.op == "start":
            await world.start(key)
            world.started.add(key)
            trace.append(f"{at} start({step.key})")
            if step.key != schedule.starts[-1]:
                continue  # the workflows start together; settle after the last
        elif step.op == "cancel":
            row = await world.row(key)
            if row.status in TERMINAL_STATUSES:
                trace.append(f"{at} cancel({step.key}) refused: it ended {row.status.value}")
            else:
                await world.cancel(key)
                world.started.add(key)
                words[step.key].last = "cancel"
                trace.append(f"{at} cancel({step.key}) accepted, it was {row.status.value}")
        elif step.op == "resubmit":
            row = await world.row(key)
            version = row.payload_version + 1
            await world.resubmit(key, changes={"version": version})
            world.started.add(key)
            words[step.key].last = "resubmit"
            words[step.key].resubmits += 1
            trace.append(f"{at} resubmit({step.key}) -> v{version}, it was {row.status.value}")
        elif step.op == "prioritise":
            await world.prioritise(world.batch, PriorityLevel(step.call))
            trace.append(f"{at} prioritise({step.call})")
        elif step.op in ("hold", "answer"):
            held = world.gate if step.op == "hold" else world.hold_answer
            world.gates_made.append((key, held(key, step.call)))
            trace.append(f"{at} {step!r}")
        elif step.op == "release":
            gates = [gate for gated, gate in world.gates_made if gated == key]
            for gate in gates:
                gate.set()
            trace.append(f"{at} release({step.key}): {len(gates)} held")
        else:
            passed = await world.advance(step.seconds)
            suffix = "" if passed == step.seconds else f" (stopped after {passed:g}s: call held)"
            trace.append(f"{at} wait {step.seconds:g}s{suffix}")
        await world.settle()
        broken += [f"after {step!r}: {b}" for b in await world.moment_invariants()]
        if broken:
            break

    trace.append(f"{await world.now()} release everything held, time runs free")
    world.release_all()
    for key in keys.values():
        if key not in world.started:
            await world.start(key)  # as the intake would have
    still_running = await world.drain()
    # For --hypothesis-show-statistics: how often the interesting things happened.
    for line in trace:
        for label in ("accepted", "refused", "resubmit(", "call held", "0 held", "prioritise"):
            if label in line:
                event(label.rstrip("("))
    for call in world.calls:
        event(f"{call.op} {call.outcome}")
    for op in world.gated_ops:
        event(f"{op} held")
    for key in keys.values():
        event(f"ended {(await world.row(key)).status.value}")
    trace.append("drained: every workflow closed" if not still_running else "NOT DRAINED")
    note("\n".join(["trace:", *trace]))
    broken += [f"1: {line}" for line in still_running]
    return broken + await broken_invariants(world, keys, words)


async def broken_invariants(
    world: WatchedWorld, keys: dict[str, str], words: dict[str, Words]
) -> list[str]:
    broken: list[str] = []
    rows: dict[str, Row] = {name: await world.row(key) for name, key in keys.items()}
    live = Counter(e.key for e in world.dsp.values() if not e.archived)
    note(
        "rows:\n"
        + "\n".join(
            f"  {name}: v{r.payload_version} {r.status.value} dsp_id={r.dsp_id} "
            f"dsp_status={r.dsp_status} reason={r.reason!r}"
            for name, r in rows.items()
        )
    )
    note(
        "dsp calls:\n"
        + "\n".join(
            f"  {world.since(c.at)} {world.names[c.key]} {c.op}#{c.attempt} "
            f"{c.outcome} {c.dsp_id or ''} {c.idempotency_key or ''}"
            for c in world.calls
        )
    )
    note(
        "told:\n"
        + "\n".join(
            f"  {world.names[o.key]} v{o.payload_version} {o.status.value} -> {r.told}"
            f"{' superseded' if r.superseded else ''}"
            for o, r in world.told
        )
    )

    # 1. Nothing is stuck.
    for name, key in keys.items():
        row = rows[name]
        if row.status not in TERMINAL_STATUSES:
            broken.append(f"1: {name} ended {row.status.value}, not terminal")
        try:
            described = await world.handle(key).describe()
            history = await world.handle(key).fetch_history()
        except RPCError as err:
            broken.append(f"1: {name} has no workflow: {err}")
            continue
        if described.status is not WorkflowExecutionStatus.COMPLETED:
            status = described.status.name if described.status else None
            broken.append(f"1: {name}'s workflow is {status}")
        for e in history.events:
            failed = e.workflow_task_failed_event_attributes
            # UNHANDLED_COMMAND is how the server delivers a signal that raced the workflow's
            # completion (it refuses the completion; the task runs again with the signal).
            if (
                e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
                and failed.cause
                != WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_UNHANDLED_COMMAND
            ):
                broken.append(f"1: a workflow task of {name} failed: {failed}")
    # 2. At most one live DSP entity per key, and the row names it.
    broken += [f"2: {b}" for b in await world.moment_invariants(strict=True)]
    for name, key in keys.items():
        mine = [e.dsp_id for e in world.dsp.values() if e.key == key and not e.archived]
        if live[key] > 1:
            broken.append(f"2: {name} has {live[key]} live DSP entities: {mine}")
        elif mine and rows[name].dsp_id != mine[0]:
            broken.append(
                f"2: {name}'s live DSP entity {mine[0]} is not the row's {rows[name].dsp_id}"
            )
    # 3. The last word wins.
    for name, key in keys.items():
        row, said = rows[name], words[name]
        if row.payload_version != said.resubmits + 1:
            broken.append(
                f"3: {name} is at v{row.payload_version} after {said.resubmits} resubmits"
            )
        if said.last == "cancel":
            if row.status is not EntityStatus.CANCELLED:
                broken.append(f"3: {name} was cancelled last but ended {row.status.value}")
            if live[key]:
                broken.append(f"3: {name} was cancelled last but has a live DSP entity")
        elif said.last == "resubmit":
            if row.status is EntityStatus.CANCELLED:
                broken.append(f"3: {name} was resubmitted last but ended cancelled")
            ended = [
                r
                for r in world.records
                if r.key == key
                and r.status in TERMINAL_STATUSES
                and r.payload_version == row.payload_version
            ]
            if not ended:
                broken.append(f"3: no outcome of {name}'s v{row.payload_version} was recorded")
            entity = world.dsp.get(row.dsp_id or "")
            sent = entity.body.get("version") if entity else None
            if row.status is EntityStatus.SUCCEEDED and sent != row.payload_version:
                broken.append(
                    f"3: {name} succeeded at v{row.payload_version} but its DSP entity "
                    f"{row.dsp_id} holds v{sent}'s payload"
                )
    # 4. No stale block.
    for name, key in keys.items():
        deps = [world.names[dep] for dep in world.refs[key]]
        if rows[name].status is EntityStatus.BLOCKED and all(
            rows[dep].status is EntityStatus.SUCCEEDED for dep in deps
        ):
            broken.append(f"4: {name} stays blocked though {', '.join(deps)} succeeded")
    # 5. Dependants written only on their dependencies' current success.
    broken += [f"5: {early}" for early in world.early_writes]
    return broken


def _schedule(shape: str, dsp: dict[str, str], *lines: str) -> Schedule:
    """A schedule written by hand: `dsp` as "approve@5s, 422", `lines` as the repr's steps
    ("hold(child, submit)", "answer(parent, poll)", "start(parent)", "wait 10s",
    "resubmit(parent)", "prioritise(high)", ...)."""
    verdicts = {
        name: tuple(
            Verdict("422") if v == "422" else Verdict(v.split("@")[0], float(v.split("@")[1][:-1]))
            for v in text.split(", ")
        )
        for name, text in dsp.items()
    }
    holds: list[Step] = []
    starts: list[str] = []
    steps: list[Step] = []
    for line in lines:
        if line.startswith("wait "):
            steps.append(Step("wait", seconds=float(line[5:-1])))
            continue
        op, args = line[:-1].split("(")
        key, _, call = args.partition(", ")
        if op == "start":
            starts.append(key)
        elif op in ("hold", "answer") and not starts:
            holds.append(Step(op, key, call))
        elif op == "prioritise":
            steps.append(Step(op, call=key))
        else:
            steps.append(Step(op, key, call))
    return Schedule(
        shape,
        tuple((n.name, verdicts[n.name]) for n in SHAPES[shape]),
        (*holds,),
        (*starts,),
        (*steps,),
    )


# The races the rules are about, run every time besides the random ones.
RESUBMIT_WHILE_THE_DEPENDANTS_POST_WAITS = _schedule(
    "pair",
    {"parent": "approve@5s", "child": "approve@5s"},
    "hold(child, submit)",
    "start(parent)",
    "start(child)",
    "wait 10s",  # the parent succeeds; the child's POST waits for its slot
    "resubmit(parent)",
    "release(child)",
)
CANCEL_THEN_RESUBMIT_WHILE_THE_ARCHIVE_WAITS = _schedule(
    "chain",
    {"parent": "approve@20s", "child": "approve@5s", "grandchild": "approve@0s"},
    "hold(parent, archive)",
    "start(grandchild)",
    "start(child)",
    "start(parent)",
    "wait 5s",
    "cancel(parent)",
    "resubmit(parent)",
    "release(parent)",
    "wait 30s",
)
CANCEL_WHILE_THE_POST_WAITS_THEN_RESUBMIT = _schedule(
    "fork",
    {"parent": "approve@5s, approve@5s", "left": "approve@0s", "right": "reject@5s"},
    "hold(parent, submit)",
    "start(left)",
    "start(parent)",
    "start(right)",
    "cancel(parent)",
    "wait 5s",
    "resubmit(parent)",
    "release(parent)",
)


# Issue 21's cases: an answer already on its way when the user's word comes.
RESUBMIT_WHILE_THE_ADVERTISERS_POST_ANSWERS_ACTIVE = _schedule(
    "advertiser",
    {"acme": "approve@0s, approve@0s", "campaign": "approve@5s"},
    "answer(acme, submit)",
    "start(acme)",
    "start(campaign)",
    "resubmit(acme)",
    "release(acme)",
    "wait 10s",
)
CANCEL_WHILE_A_STATUS_READ_ANSWERS_APPROVED = _schedule(
    "account",
    {
        "acme": "approve@0s",
        "campaign": "approve@5s",
        "creative": "approve@1s",  # decided by the first status read
        "group": "approve@5s",
    },
    "answer(creative, poll)",
    "start(acme)",
    "start(campaign)",
    "start(creative)",
    "start(group)",
    "wait 5s",
    "cancel(creative)",
    "release(creative)",
    "wait 10s",
)
CANCEL_WHILE_WAITING_FOR_A_RESUBMITTED_CAMPAIGN = _schedule(
    "chain",
    {"parent": "approve@5s, approve@20s", "child": "approve@5s", "grandchild": "approve@5s"},
    "start(parent)",
    "start(child)",
    "start(grandchild)",
    "wait 30s",
    "wait 30s",
    "resubmit(parent)",
    "resubmit(child)",
    "cancel(child)",
    "wait 30s",
)
RESUBMIT_WHILE_A_PUTS_ANSWER_IS_HELD_THEN_PRIORITISE = _schedule(
    "advertiser",
    {"acme": "approve@0s, approve@0s, approve@0s", "campaign": "approve@5s"},
    "start(acme)",
    "start(campaign)",
    "wait 10s",
    "answer(acme, replace)",
    "resubmit(acme)",
    "resubmit(acme)",
    "prioritise(high)",
    "release(acme)",
    "wait 10s",
)


@pytest.mark.timeout(TIMEOUT)
@example(schedule=RESUBMIT_WHILE_THE_DEPENDANTS_POST_WAITS)
@example(schedule=CANCEL_THEN_RESUBMIT_WHILE_THE_ARCHIVE_WAITS)
@example(schedule=CANCEL_WHILE_THE_POST_WAITS_THEN_RESUBMIT)
@example(schedule=RESUBMIT_WHILE_THE_ADVERTISERS_POST_ANSWERS_ACTIVE)
@example(schedule=CANCEL_WHILE_A_STATUS_READ_ANSWERS_APPROVED)
@example(schedule=CANCEL_WHILE_WAITING_FOR_A_RESUBMITTED_CAMPAIGN)
@example(schedule=RESUBMIT_WHILE_A_PUTS_ANSWER_IS_HELD_THEN_PRIORITISE)
@settings(settings.get_profile(PROFILE))
@given(schedule=schedules())
async def test_the_last_word_wins_in_any_interleaving(
    env: WorkflowEnvironment, session_factory: SessionFactory, schedule: Schedule
) -> None:
    world = WatchedWorld(env, session_factory)
    watcher = _FailedActivations(world.tag)
    instance_log = logging.getLogger("temporalio.worker._workflow_instance")
    instance_log.addHandler(watcher)
    try:
        async with world.workers():
            try:
                broken = await run_schedule(world, schedule)
                # A workflow task that failed and was retried may have recovered since.
                broken += [f"1: a workflow task failed: {m}" for m in watcher.messages]
            finally:
                world.release_all()
                await world.terminate_all()
    finally:
        instance_log.removeHandler(watcher)
    assert not broken, "\n".join(["broken invariants:", *broken])
