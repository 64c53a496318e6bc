"""Random interleavings of users, the DSP and time on a small DAG, checked against the rules
of `dsp_integration.workflows.entity` ("the last word wins").

Hypothesis draws a `Schedule`: a DAG shape, what the fake DSP answers to each POST/PUT of each
key, and a list of steps: start a workflow, cancel or resubmit a key (as `client.control`
does: read the row, store, signal-with-start), hold a key's next DSP call at its gate (waiting
for a rate-limit slot) or release it, and let test-server time pass. Each step runs once the
previous one has settled (no history, table or DSP change for a few checks), so whether a key
"had ended" when a user acted is read from a quiet table. After the steps every gate opens,
every key is started (as the intake would have), time runs free until every workflow has
closed, and the invariants are checked:

1. nothing is stuck: every key ends terminal in `dsp_entity_queue`, its workflow completed,
   and no workflow task failed (but for a completion refused for a signal that raced it);
2. at most one live (not archived) DSP entity per key, and the row names it;
3. the last word wins: after a cancel accepted while the key had not ended, the key ends
   `cancelled` with no live DSP entity; after a resubmit, the key ends with an outcome of its
   latest payload version (version = resubmits + 1), not `cancelled`;
4. no dependant stays `blocked` while every one of its dependencies ended `succeeded`;
5. every POST/PUT of a dependant that left for the DSP did so while each dependency's stored
   version had succeeded, and carries that dependency's DSP id.

The workflow tests run on one event loop per session (pytest-asyncio); pytest-asyncio runs a
`@given` async test's examples on that loop, so each example builds its own `World` (keys
are unique per world, the table is not emptied) with its own workers, and uses only session
fixtures."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, event, example, given, note, settings
from hypothesis import strategies as st
from temporalio.api.enums.v1 import EventType, WorkflowTaskFailedCause
from temporalio.api.testservice.v1 import LockTimeSkippingRequest, UnlockTimeSkippingRequest
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from dsp_integration.contracts import TERMINAL_STATUSES, EntityStatus, EntityType, first_dsp_status
from dsp_integration.database import queue_store
from dsp_integration.database.engine import SessionFactory
from tests.workflows.world import DspCall, Row, Timeline, World

EXAMPLES = 30
POLL_INTERVAL = 5.0  # the planner's interval, every poll
WAIT_CHUNK = 1.0  # time passes in steps this long, so a call held at a gate stops it soon
SETTLED_CHECKS = 3  # unchanged fingerprints in a row that make "settled"
SETTLE_WITHIN = 15.0  # real seconds
DRAIN_WITHIN = 60.0  # real seconds for every workflow to close once time runs free
STUCK_CHECKS = 40  # nothing moves for this many checks while a workflow still runs: stuck
SUCCESS_STATUS = {
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
        pending = first_dsp_status(entity_type)
        if self.kind == "approve":
            return [(0.0, pending, None), (self.after, SUCCESS_STATUS[entity_type], None)]
        return [(0.0, pending, None), (self.after, "rejected", "not this one")]


@dataclass(frozen=True)
class Step:
    op: str  # start, cancel, resubmit, hold, release, wait
    key: str = ""
    call: str = ""  # the DSP operation a hold is for
    seconds: float = 0.0

    def __repr__(self) -> str:
        if self.op == "wait":
            return f"wait {self.seconds:g}s"
        if self.op == "hold":
            return f"hold({self.key}, {self.call})"
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


# Approvals more often than rejections, or most runs would end in blocks.
APPROVE = st.builds(Verdict, st.just("approve"), st.sampled_from([0.0, 5.0, 20.0]))
VERDICTS = st.one_of(
    APPROVE,
    APPROVE,
    APPROVE,
    st.builds(Verdict, st.just("reject"), st.sampled_from([5.0, 20.0])),
    st.just(Verdict("422")),
)
DSP_OPS = ("submit", "submit", "submit", "replace", "poll", "archive")
WAITS = (1.0, 5.0, 10.0, 30.0)


@st.composite
def schedules(draw: st.DrawFn) -> Schedule:
    shape = draw(st.sampled_from(sorted(SHAPES)))
    names = [node.name for node in SHAPES[shape]]
    dsp = tuple((name, tuple(draw(st.lists(VERDICTS, min_size=1, max_size=3)))) for name in names)
    key = st.sampled_from(names)
    hold = st.builds(Step, st.just("hold"), key, st.sampled_from(DSP_OPS))
    holds = draw(st.lists(hold, max_size=3, unique=True))
    starts = draw(st.permutations(names))
    step = st.one_of(
        st.builds(Step, st.just("cancel"), key),
        st.builds(Step, st.just("resubmit"), key),
        hold,
        st.builds(Step, st.just("release"), key),
        st.builds(Step, st.just("wait"), seconds=st.sampled_from(WAITS)),
        st.builds(Step, st.just("wait"), seconds=st.sampled_from(WAITS)),
    )
    steps = draw(st.lists(step, min_size=1, max_size=10))
    return Schedule(shape, dsp, tuple(holds), tuple(starts), tuple(steps))


# --- the world, watched --------------------------------------------------------------------
class WatchedWorld(World):
    """A `World` that counts the DSP calls held at a gate (test-server time cannot pass while
    one is) and checks each POST/PUT of a dependant as it leaves (invariant 5)."""

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

    async def _closed(self) -> bool:
        for key in self.keys:
            try:
                described = await self.handle(key).describe()
            except RPCError:
                return False
            if described.status is WorkflowExecutionStatus.RUNNING:
                return False
        return True

    async def settle(self) -> None:
        """Until nothing changes for a few checks (time is held still meanwhile)."""
        last: tuple[Any, ...] | None = None
        same = 0
        async with asyncio.timeout(SETTLE_WITHIN):
            while same < SETTLED_CHECKS:
                await asyncio.sleep(0.05)
                now = await self._fingerprint()
                same = same + 1 if now == last else 0
                last = now

    async def drain(self) -> bool:
        """Let time run free until every workflow has closed and nothing moves; False when
        something still runs but nothing moves any more (or after `DRAIN_WITHIN`)."""
        service = self.client.test_service
        await service.unlock_time_skipping(UnlockTimeSkippingRequest())
        try:
            last: tuple[Any, ...] | None = None
            same = 0
            loop = asyncio.get_running_loop()
            deadline = loop.time() + DRAIN_WITHIN
            while loop.time() < deadline:
                await asyncio.sleep(0.05)
                now = await self._fingerprint()
                same = same + 1 if now == last else 0
                last = now
                if same >= SETTLED_CHECKS and await self._closed():
                    return True
                if same >= STUCK_CHECKS:
                    return False
            return False
        finally:
            await service.lock_time_skipping(LockTimeSkippingRequest())

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
    """The users' accepted actions on one key."""

    last: str | None = None  # "cancel" or "resubmit"
    resubmits: int = 0


async def run_schedule(world: WatchedWorld, schedule: Schedule) -> list[str]:
    """Run the steps, drain, and return every broken invariant (empty when all hold)."""
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
        )
        world.names[keys[node.name]] = node.name
        world.refs[keys[node.name]] = [keys[ref] for ref in node.refs]
    words = {name: Words() for name in keys}
    world.t0 = await world.env.get_current_time()
    trace: list[str] = []

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
            await world.resubmit(key)
            world.started.add(key)
            words[step.key].last = "resubmit"
            words[step.key].resubmits += 1
            trace.append(
                f"{at} resubmit({step.key}) -> v{row.payload_version + 1}, "
                f"it was {row.status.value}"
            )
        elif step.op == "hold":
            world.gates_made.append((key, world.gate(key, step.call)))
            trace.append(f"{at} hold({step.key}, {step.call})")
        elif step.op == "release":
            held = [gate for gated, gate in world.gates_made if gated == key]
            for gate in held:
                gate.set()
            trace.append(f"{at} release({step.key}): {len(held)} gate(s)")
        else:
            passed = await world.advance(step.seconds)
            suffix = "" if passed == step.seconds else f" (stopped after {passed:g}s: call held)"
            trace.append(f"{at} wait {step.seconds:g}s{suffix}")
        await world.settle()

    trace.append(f"{await world.now()} release every gate, time runs free")
    for _, gate in world.gates_made:
        gate.set()
    drained = await world.drain()
    # For --hypothesis-show-statistics: how often the interesting things happened.
    for line in trace:
        for label in ("accepted", "refused", "resubmit(", "call held", "0 gate"):
            if label in line:
                event(label.rstrip("("))
    for call in world.calls:
        event(f"{call.op} {call.outcome}")
    for op in world.gated_ops:
        event(f"{op} held at its gate")
    for key in keys.values():
        event(f"ended {(await world.row(key)).status.value}")
    trace.append("drained: every workflow closed" if drained else "NOT DRAINED")
    note("\n".join(["trace:", *trace]))
    return await broken_invariants(world, keys, words, drained)


async def broken_invariants(
    world: WatchedWorld, keys: dict[str, str], words: dict[str, Words], drained: bool
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
    if not drained:
        broken.append("1: the workflows did not all close")
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
    ("hold(child, submit)", "start(parent)", "wait 10s", "resubmit(parent)", ...)."""
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
        elif op == "hold" and not starts:
            holds.append(Step(op, key, call))
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


@example(schedule=RESUBMIT_WHILE_THE_DEPENDANTS_POST_WAITS)
@example(schedule=CANCEL_THEN_RESUBMIT_WHILE_THE_ARCHIVE_WAITS)
@example(schedule=CANCEL_WHILE_THE_POST_WAITS_THEN_RESUBMIT)
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
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
                for _, gate in world.gates_made:
                    gate.set()
                await world.terminate_all()
    finally:
        instance_log.removeHandler(watcher)
    assert not broken, "\n".join(["broken invariants:", *broken])
