"""A version-2 DSP (`dsp-api-v2.md` §3: no idempotency keys, a search by `external_id` that
lags) under random lost answers, search lags, dying workers and users' words (issue 22).

The fake DSP (`World(api_version=2)`) creates an entity for every POST that reaches it; a
POST's answer may be lost after it created one entity ("created"), two (the DSP's own
duplicate, "twice") or none ("nothing"); a worker may die after its POST reached the DSP
(the attempt hangs past the heartbeat timeout and Temporal retries it); the search answers
`DspSearchLag` until `search_lag` test-server seconds have passed since the attempt's POST,
and shows only entities created at least that long ago.

Hypothesis draws a `Schedule`: the lag, two independent keys (a campaign and a creative),
faults scripted before the start, then steps: a fault for the key's next POST, a cancel, a
resubmit, or time passing. After each step has settled:

A. no POST reached the DSP while an entity of its key lived (the fake notes each);
A'. a key has at most one live entity, leaving out the "unsettled" ones: created by a POST
   whose answer never reached the workflow, while no search answered at or after their
   creation plus the lag (a search that could have shown them). So a duplicate a lost POST
   made may live only until the find-out that can see it settles, which archives it;
B. every live entity that is not unsettled is the one on its row.

At the end (everything started, time free until every workflow closed): the invariants of
`test_interleavings` (nothing stuck, at most one live entity per key and it is the row's,
the last word wins), B strictly (nothing is unsettled any more), and

C. no blind POST: every POST that reached the DSP after one of the same key whose answer was
   lost (or whose worker died) came after a search answered at least `search_lag` after
   that earlier POST; and a retried attempt never reached the DSP after one that did.

A broken invariant fails the example with the schedule (one step a line), the trace, the
rows and the DSP calls. Profiles as in `test_interleavings`: a fixed CI profile (the
`@example` schedules, then a few derandomized draws); `HYPOTHESIS_PROFILE=long` draws many.

Below it, plain tests of single cases: a lost POST found and adopted, one that created
nothing sent again after the lag, a cancel during the lag, a dead worker's retry, the DSP's
own duplicate."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
from hypothesis import event, example, given, note, settings
from hypothesis import strategies as st
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from dsp_integration.contracts import TERMINAL_STATUSES, EntityStatus, EntityType
from dsp_integration.database.engine import SessionFactory
from tests.workflows.test_interleavings import (
    Verdict,
    WatchedWorld,
    Words,
    _FailedActivations,
    broken_invariants,
    hypothesis_profile,
)
from tests.workflows.test_retries import ShortHeartbeat
from tests.workflows.world import DspCall, World

PROFILE, TIMEOUT = hypothesis_profile("dsp-v2", ci_examples=6, long_examples=200)
KEYS: dict[str, EntityType] = {"spring": EntityType.CAMPAIGNS, "banner": EntityType.CREATIVES}
# A POST that reached the DSP, whatever became of its answer.
REACHED_THE_DSP = ("ok", "lost", "lost unsent", "crashed", "rejected")
UNANSWERED = ("lost", "lost unsent", "crashed")
SEARCHED = ("found", "nothing")
LOST_KINDS = ("created", "nothing", "twice")


# --- what Hypothesis draws -------------------------------------------------------------------
@dataclass(frozen=True)
class Step:
    """lose (the key's next POST loses its answer, having done `kind`), crash (the worker
    dies after the key's next POST reached the DSP), cancel, resubmit, wait."""

    op: str
    key: str = ""
    kind: str = ""
    seconds: float = 0.0

    def __repr__(self) -> str:
        if self.op == "wait":
            return f"wait {self.seconds:g}s"
        if self.op == "lose":
            return f"lose({self.key}, {self.kind})"
        return f"{self.op}({self.key})"


class Schedule:
    """Printed by `repr`, one step a line."""

    def __init__(
        self,
        lag: float,
        verdicts: tuple[tuple[str, Verdict], ...],
        faults: tuple[Step, ...],  # scripted before the workflows start
        steps: tuple[Step, ...],
    ) -> None:
        self.lag, self.verdicts, self.faults, self.steps = lag, verdicts, faults, steps

    def __repr__(self) -> str:
        lines = [f"Schedule: search lag {self.lag:g}s"]
        lines += [f"  dsp {name}: {verdict!r} every time" for name, verdict in self.verdicts]
        lines += [f"  t+0s {fault!r}" for fault in self.faults]
        lines += [f"  t+0s start({name})" for name in KEYS]
        elapsed = 0.0
        for step in self.steps:
            lines.append(f"  t+{elapsed:g}s {step!r}")
            elapsed += step.seconds
        return "\n".join(lines)


NAME = st.sampled_from(sorted(KEYS))
FAULT = st.one_of(
    st.builds(Step, st.just("lose"), NAME, st.sampled_from(LOST_KINDS)),
    st.builds(Step, st.just("crash"), NAME),
)
STEP = st.one_of(
    FAULT,
    st.builds(Step, st.just("cancel"), NAME),
    st.builds(Step, st.just("resubmit"), NAME),
    st.builds(Step, st.just("resubmit"), NAME),
    st.builds(Step, st.just("wait"), seconds=st.sampled_from([1.0, 5.0, 10.0, 30.0])),
    st.builds(Step, st.just("wait"), seconds=st.sampled_from([1.0, 5.0, 10.0, 30.0])),
)
VERDICT = st.one_of(
    st.builds(Verdict, st.just("approve"), st.sampled_from([0.0, 5.0, 20.0])),
    st.builds(Verdict, st.just("reject"), st.just(5.0)),
)


@st.composite
def schedules(draw: st.DrawFn) -> Schedule:
    lag = draw(st.sampled_from([1.0, 10.0, 30.0, 90.0]))
    verdicts = tuple((name, draw(VERDICT)) for name in sorted(KEYS))
    faults = []
    for name in sorted(KEYS):  # 0-2 lost answers per key before the start
        kinds = draw(st.lists(st.sampled_from(LOST_KINDS), max_size=2))
        faults += [Step("lose", name, kind) for kind in kinds]
    faults += draw(st.lists(st.builds(Step, st.just("crash"), NAME), max_size=1))
    steps = draw(st.lists(STEP, min_size=1, max_size=10))
    return Schedule(lag, verdicts, tuple(faults), tuple(steps))


# --- the world, watched --------------------------------------------------------------------
class V2World(WatchedWorld):
    """`test_interleavings`' watched world with the version-2 fake DSP."""

    def __init__(self, env: WorkflowEnvironment, sessions: SessionFactory, lag: float) -> None:
        super().__init__(env, sessions)
        self.api_version, self.search_lag = 2, lag

    def fault(self, key: str, step: Step) -> None:
        script = self.scripts[key]
        if step.op == "lose":
            script.lost_kinds.append(step.kind)
        else:
            script.crash_after_send += 1

    def unsettled(self, key: str) -> set[str]:
        """Live entities of `key` that a POST created whose answer never reached the
        workflow, and that no search answered since could have shown (see A')."""
        answered = {c.dsp_id for c in self.dsp_calls(key, "submit") if c.outcome == "ok"}
        searched = [c.at for c in self.dsp_calls(key, "find_out") if c.outcome in SEARCHED]
        lag = timedelta(seconds=self.search_lag)
        return {
            e.dsp_id
            for e in self.dsp.values()
            if e.key == key
            and not e.archived
            and e.dsp_id not in answered
            and e.created is not None
            and not any(at >= e.created + lag for at in searched)
        }

    async def v2_moment_invariants(self, *, strict: bool = False) -> list[str]:
        """A, A' and B; `strict` (the end): nothing may be unsettled."""
        broken = [f"A: {breach}" for breach in self.live_breaches]
        for key in self.keys:
            excused = set() if strict else self.unsettled(key)
            live = [i for i in self.live(key) if i not in excused]
            if len(live) > 1:
                broken.append(f"A': {self.names[key]} has live {live} (unsettled: {excused})")
            row = await self.row(key)
            broken += [
                f"B: {self.names[key]}'s live {dsp_id} is not its row's ({row.dsp_id!r})"
                for dsp_id in live
                if dsp_id != row.dsp_id
            ]
        return broken

    def blind_posts(self) -> list[str]:
        """C (see the module)."""
        broken = []
        lag = timedelta(seconds=self.search_lag)
        for key in self.keys:
            posts = [c for c in self.dsp_calls(key, "submit") if c.outcome in REACHED_THE_DSP]
            searched = [c.at for c in self.dsp_calls(key, "find_out") if c.outcome in SEARCHED]
            for i, post in enumerate(posts):
                for earlier in posts[:i]:
                    if earlier.outcome not in UNANSWERED:
                        continue
                    if not any(earlier.at + lag <= at <= post.at for at in searched):
                        broken.append(
                            f"C: {self.names[key]}'s POST #{post.attempt} at "
                            f"{self.since(post.at)} went out with the {earlier.outcome} POST "
                            f"of {self.since(earlier.at)} not found out"
                        )
                if post.attempt > 1 and any(
                    p.idempotency_key == post.idempotency_key for p in posts[:i]
                ):
                    broken.append(
                        f"C: {self.names[key]}'s retried attempt {post.attempt} at "
                        f"{self.since(post.at)} POSTed again"
                    )
        return broken


async def run_schedule(world: V2World, schedule: Schedule) -> list[str]:
    keys: dict[str, str] = {}
    for name, verdict in schedule.verdicts:
        entity_type = KEYS[name]
        keys[name] = await world.add(
            name,
            entity_type,
            timelines=[verdict.timeline(entity_type)] * 8,
            batch=world.batch,
        )
        world.names[keys[name]] = name
        world.refs[keys[name]] = []
    for fault in schedule.faults:
        world.fault(keys[fault.key], fault)
    words = {name: Words() for name in keys}
    world.t0 = await world.env.get_current_time()
    trace: list[str] = []
    broken: list[str] = []
    for key in keys.values():
        await world.start(key)
        world.started.add(key)
    await world.settle()
    for step in schedule.steps:
        at = await world.now()
        key = keys.get(step.key, "")
        if step.op in ("lose", "crash"):
            world.fault(key, step)
            trace.append(f"{at} {step!r}")
        elif step.op == "cancel":
            row = await world.row(key)
            if row.status in TERMINAL_STATUSES:
                trace.append(f"{at} cancel({step.key}) refused: it ended {row.status.value}")
            else:
                await world.cancel(key)
                words[step.key].last = "cancel"
                trace.append(f"{at} cancel({step.key}) accepted, it was {row.status.value}")
        elif step.op == "resubmit":
            row = await world.row(key)
            version = row.payload_version + 1
            await world.resubmit(key, changes={"version": version})
            words[step.key].last = "resubmit"
            words[step.key].resubmits += 1
            trace.append(f"{at} resubmit({step.key}) -> v{version}, it was {row.status.value}")
        else:
            passed = await world.advance(step.seconds)
            trace.append(f"{at} wait {passed:g}s")
        await world.settle()
        broken += [f"after {step!r}: {b}" for b in await world.v2_moment_invariants()]
        if broken:
            break

    trace.append(f"{await world.now()} time runs free")
    still_running = await world.drain()
    for call in world.calls:
        event(f"{call.op} {call.outcome}")
    for key in keys.values():
        event(f"ended {(await world.row(key)).status.value}")
    if world.duplicates_archived:
        event("duplicate archived")
    trace.append("drained: every workflow closed" if not still_running else "NOT DRAINED")
    note("\n".join(["trace:", *trace]))
    broken += [f"1: {line}" for line in still_running]
    broken += await broken_invariants(world, keys, words)
    broken += await world.v2_moment_invariants(strict=True)
    return broken + world.blind_posts()


def _schedule(lag: float, verdicts: dict[str, str], *lines: str) -> Schedule:
    """A schedule written by hand: verdicts as "approve@5s"; lines as the repr's steps
    ("lose(spring, twice)", "crash(banner)", "cancel(spring)", "wait 10s"); faults before the
    first "start"."""
    faults: list[Step] = []
    steps: list[Step] = []
    started = False
    for line in lines:
        if line == "start":
            started = True
            continue
        if line.startswith("wait "):
            steps.append(Step("wait", seconds=float(line[5:-1])))
            continue
        op, args = line[:-1].split("(")
        key, _, kind = args.partition(", ")
        (steps if started else faults).append(Step(op, key, kind))
    return Schedule(
        lag,
        tuple(
            (name, Verdict(text.split("@")[0], float(text.split("@")[1][:-1])))
            for name, text in sorted(verdicts.items())
        ),
        tuple(faults),
        tuple(steps),
    )


APPROVED = {"spring": "approve@5s", "banner": "approve@20s"}
CANCEL_WHILE_THE_SEARCH_LAGS = _schedule(
    10.0,
    APPROVED,
    "lose(spring, created)",
    "lose(banner, twice)",
    "start",
    "wait 5s",
    "cancel(spring)",
    "cancel(banner)",
    "wait 10s",
)
RESUBMIT_WHILE_A_DEAD_WORKERS_POST_IS_UNKNOWN = _schedule(
    30.0,
    APPROVED,
    "crash(spring)",
    "lose(banner, nothing)",
    "start",
    "wait 10s",
    "resubmit(spring)",
    "resubmit(banner)",
    "wait 30s",
    "wait 30s",
)
LOST_TWICE_THEN_CANCEL_AND_RESUBMIT = _schedule(
    1.0,
    APPROVED,
    "lose(spring, nothing)",
    "lose(spring, twice)",
    "start",
    "wait 1s",
    "cancel(spring)",
    "resubmit(spring)",
    "lose(spring, created)",
    "wait 30s",
)


@pytest.mark.timeout(TIMEOUT)
@example(schedule=CANCEL_WHILE_THE_SEARCH_LAGS)
@example(schedule=RESUBMIT_WHILE_A_DEAD_WORKERS_POST_IS_UNKNOWN)
@example(schedule=LOST_TWICE_THEN_CANCEL_AND_RESUBMIT)
@settings(settings.get_profile(PROFILE))
@given(schedule=schedules())
async def test_one_live_entity_per_key_at_a_dsp_without_idempotency(
    env: WorkflowEnvironment, session_factory: SessionFactory, schedule: Schedule
) -> None:
    world = V2World(env, session_factory, schedule.lag)
    watcher = _FailedActivations(world.tag)
    instance_log = logging.getLogger("temporalio.worker._workflow_instance")
    instance_log.addHandler(watcher)
    try:
        async with world.workers(interceptors=[ShortHeartbeat()]):
            try:
                broken = await run_schedule(world, schedule)
                broken += [f"1: a workflow task failed: {m}" for m in watcher.messages]
            finally:
                world.release_all()
                await world.terminate_all()
    finally:
        instance_log.removeHandler(watcher)
    assert not broken, "\n".join(["broken invariants:", *broken])


# --- the cases the fake's lag is for -------------------------------------------------------
def _posts(world: World, key: str) -> list[DspCall]:
    """The POSTs that reached the DSP (a retry that found out instead sent nothing)."""
    return [c for c in world.dsp_calls(key, "submit") if c.outcome in REACHED_THE_DSP]


def _seconds(later: datetime, earlier: datetime) -> float:
    return (later - earlier).total_seconds()


async def test_a_lost_post_is_found_after_the_lag_and_adopted_as_it_is(world_v2: World) -> None:
    """The POST created the entity and its answer was lost: the search, once its lag since
    that POST has passed, finds the entity; it holds what was sent, so it is adopted without
    a PUT and without a second POST."""
    world = world_v2
    spring = await world.add("spring", EntityType.CAMPAIGNS)
    world.lose_answers(spring, kinds=["created"])
    await world.start(spring)
    state = await world.result(spring)

    assert state.status is EntityStatus.SUCCEEDED
    [post] = _posts(world, spring)
    assert post.outcome == "lost"
    searches = world.dsp_calls(spring, "find_out")
    assert [c.outcome for c in searches][-1] == "found"
    assert all(c.outcome == "search lag" for c in searches[:-1])
    assert _seconds(searches[-1].at, post.at) >= world.search_lag
    assert world.dsp_calls(spring, "replace") == []
    assert (await world.row(spring)).dsp_id == post.dsp_id
    assert world.live(spring) == [post.dsp_id]


async def test_a_lost_post_that_created_nothing_is_sent_again_once_the_lag_has_passed(
    world_v2: World,
) -> None:
    world = world_v2
    spring = await world.add("spring", EntityType.CAMPAIGNS)
    world.lose_answers(spring, kinds=["nothing"])
    await world.start(spring)
    state = await world.result(spring)

    assert state.status is EntityStatus.SUCCEEDED
    first, second = _posts(world, spring)
    assert (first.outcome, second.outcome) == ("lost unsent", "ok")
    [search] = [c for c in world.dsp_calls(spring, "find_out") if c.outcome == "nothing"]
    assert _seconds(search.at, first.at) >= world.search_lag
    assert second.at >= search.at
    assert world.live(spring) == [second.dsp_id] == [(await world.row(spring)).dsp_id]


async def test_a_cancel_during_the_lag_archives_what_the_search_then_finds(
    world_v2: World,
) -> None:
    world = world_v2
    spring = await world.add("spring", EntityType.CAMPAIGNS)
    world.lose_answers(spring, kinds=["created"])
    await world.start(spring)
    await world.until(
        lambda: [c.outcome for c in world.dsp_calls(spring)] == ["lost", "search lag"]
    )
    await world.cancel(spring)
    await world.until_heard(spring, "cancel")
    state = await world.result(spring)

    assert state.status is EntityStatus.CANCELLED
    [post] = _posts(world, spring)
    found = [c for c in world.dsp_calls(spring, "find_out") if c.outcome == "found"]
    assert [c.dsp_id for c in found] == [post.dsp_id]
    assert _seconds(found[0].at, post.at) >= world.search_lag
    [archive] = world.dsp_calls(spring, "archive")
    assert archive.dsp_id == post.dsp_id
    assert world.live(spring) == []


async def test_a_retry_after_a_worker_died_past_the_post_finds_out_instead_of_posting(
    client: Client, clean_database: SessionFactory
) -> None:
    """The worker died after the POST reached the DSP: Temporal retries the activity after
    the heartbeat timeout (shortened: the test server cannot skip time while an activity
    runs), and the retry, seeing the unanswered audit row, sends nothing."""
    world = World(client, clean_database, api_version=2, search_lag=10)
    spring = await world.add("spring", EntityType.CAMPAIGNS)
    world.crash_after_send(spring)
    async with world.workers(interceptors=[ShortHeartbeat()]):
        state = await (await world.start(spring)).result()

    assert state.status is EntityStatus.SUCCEEDED
    submits = world.dsp_calls(spring, "submit")
    assert [(c.attempt, c.outcome) for c in submits] == [(1, "crashed"), (2, "not resent")]
    found = [c for c in world.dsp_calls(spring, "find_out") if c.outcome == "found"]
    assert [c.dsp_id for c in found] == [submits[0].dsp_id]
    assert world.live(spring) == [submits[0].dsp_id] == [(await world.row(spring)).dsp_id]


async def test_the_dsps_own_duplicate_is_archived_and_the_oldest_kept(world_v2: World) -> None:
    world = world_v2
    spring = await world.add("spring", EntityType.CAMPAIGNS)
    world.lose_answers(spring, kinds=["twice"])
    await world.start(spring)
    state = await world.result(spring)

    assert state.status is EntityStatus.SUCCEEDED
    [post] = _posts(world, spring)
    twins = [e.dsp_id for e in world.dsp.values() if e.key == spring]
    assert twins[0] == post.dsp_id and len(twins) == 2
    assert world.duplicates_archived == [twins[1]]
    assert world.live(spring) == [post.dsp_id] == [(await world.row(spring)).dsp_id]
