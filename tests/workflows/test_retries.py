"""DSP faults: transient errors are retried, a 422 fails the entity, a hung call times out
and is tried again."""

from __future__ import annotations

from datetime import timedelta
from itertools import pairwise
from typing import Any

import pytest
from temporalio import workflow
from temporalio.client import Client
from temporalio.worker import (
    Interceptor,
    StartActivityInput,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
    WorkflowOutboundInterceptor,
)

from dsp_integration.contracts import EntityStatus, EntityType
from dsp_integration.database.engine import SessionFactory
from tests.workflows.world import World

SHORT_HEARTBEAT = timedelta(seconds=1)


async def test_transient_failures_are_retried_with_the_same_idempotency_key(
    world: World,
) -> None:
    await world.add("acme", EntityType.ADVERTISERS, status=EntityStatus.SUCCEEDED, dsp_id="adv_0")
    spring = await world.add("spring", EntityType.CAMPAIGNS, refs=["acme"], transient={"submit": 3})

    state = await (await world.start(spring)).result()

    assert (state.status, state.dsp_id) == (EntityStatus.SUCCEEDED, "cmp_1")
    submits = world.dsp_calls(spring, "submit")
    assert [(c.attempt, c.outcome) for c in submits] == [
        (1, "transient"),
        (2, "transient"),
        (3, "transient"),
        (4, "ok"),
    ]
    assert {c.idempotency_key for c in submits} == {f"{spring}:v1"}
    gaps = [(b.at - a.at).total_seconds() for a, b in pairwise(submits)]
    assert [round(g) for g in gaps] == [2, 4, 8]  # DSP_RETRY_POLICY's backoff
    assert world.statuses(spring) == [
        EntityStatus.SUBMITTING,
        EntityStatus.POLLING,
        EntityStatus.SUCCEEDED,
    ]
    assert len(world.dsp) == 1


async def test_a_422_fails_the_entity_with_the_dsp_message(world: World) -> None:
    await world.add("acme", EntityType.ADVERTISERS, status=EntityStatus.SUCCEEDED, dsp_id="adv_0")
    spring = await world.add(
        "spring", EntityType.CAMPAIGNS, refs=["acme"], reject=["end_date: before start_date"]
    )

    state = await (await world.start(spring)).result()

    assert (state.status, state.reason, state.dsp_id) == (
        EntityStatus.FAILED,
        "end_date: before start_date",
        None,
    )
    assert [(c.op, c.attempt, c.outcome) for c in world.dsp_calls(spring)] == [
        ("submit", 1, "rejected")
    ]
    assert world.statuses(spring) == [EntityStatus.SUBMITTING, EntityStatus.FAILED]
    assert (await world.row(spring)).reason == "end_date: before start_date"


async def test_a_poll_that_stops_heartbeating_times_out_and_is_tried_again(
    client: Client, clean_database: SessionFactory
) -> None:
    world = World(client, clean_database)
    await world.add("acme", EntityType.ADVERTISERS, status=EntityStatus.SUCCEEDED, dsp_id="adv_0")
    spring = await world.add("spring", EntityType.CAMPAIGNS, refs=["acme"], hang={"poll": 1})

    async with world.workers(interceptors=[ShortHeartbeat()]):
        state = await (await world.start(spring)).result()

    assert (state.status, state.polls) == (EntityStatus.SUCCEEDED, 2)
    polls = world.dsp_calls(spring, "poll")
    assert [(c.attempt, c.outcome) for c in polls] == [(1, "hung"), (2, "ok"), (1, "ok")]
    retried_after = (polls[1].at - polls[0].at).total_seconds()
    assert retried_after == pytest.approx(1 + 2, abs=0.5)  # heartbeat timeout, then backoff
    assert world.statuses(spring) == [
        EntityStatus.SUBMITTING,
        EntityStatus.POLLING,
        EntityStatus.SUCCEEDED,
    ]


class ShortHeartbeat(Interceptor):
    """The test server cannot skip time while an activity runs, so a hung activity would
    cost the workflow's real 30 s heartbeat timeout; this shortens it to one second."""

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor]:
        return _ShortHeartbeatInbound


class _ShortHeartbeatInbound(WorkflowInboundInterceptor):
    def init(self, outbound: WorkflowOutboundInterceptor) -> None:
        super().init(_ShortHeartbeatOutbound(outbound))


class _ShortHeartbeatOutbound(WorkflowOutboundInterceptor):
    def start_activity(self, input: StartActivityInput) -> workflow.ActivityHandle[Any]:
        if input.heartbeat_timeout is not None:
            input.heartbeat_timeout = SHORT_HEARTBEAT
        return super().start_activity(input)
