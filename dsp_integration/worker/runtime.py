"""The worker process: the workflow worker and the rate-limited DSP-activity worker."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from datetime import timedelta
from typing import Any, Literal

import httpx
import uvloop
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from temporalio.client import Client
from temporalio.worker import Interceptor, UnsandboxedWorkflowRunner, Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from dsp_integration.activities.dsp_calls import DspActivities, DspContract
from dsp_integration.activities.fan_out import DependantFanOut
from dsp_integration.activities.poll_planner import PollPlanner
from dsp_integration.activities.queue_records import QueueActivities
from dsp_integration.activities.reconciler import OrphanReconciler
from dsp_integration.client.temporal_client import connect_temporal
from dsp_integration.config import Settings
from dsp_integration.config.seats import Seat
from dsp_integration.contracts import dsp_task_queue
from dsp_integration.database.engine import SessionFactory, open_database
from dsp_integration.dsp_client import DspClient, build_http_client, token_source
from dsp_integration.gateway.dsp_gateway import DspGateway
from dsp_integration.gateway.heartbeat import HEARTBEAT_EVERY
from dsp_integration.gateway.rate_limiter import SharedRateLimiter
from dsp_integration.observability.metrics import WorkerGauges, client_meter, install_runtime
from dsp_integration.worker.reconcile_schedule import ensure_reconcile_schedule
from dsp_integration.workflows.entity import EntityWorkflow
from dsp_integration.workflows.reconcile import ReconcileWorkflow

logger = logging.getLogger(__name__)

# Temporal's task-queue limit is a token bucket (about one second of rate as burst); the
# PostgreSQL ledger is the exact limit. A little headroom keeps Temporal from holding the
# budget below 100% while the backlog (and its priorities) still waits in the server.
EventLoop = Literal["uvloop", "asyncio"]
TEMPORAL_RATE_HEADROOM = 1.1
# Few DSP tasks per worker: the tasks that left the server get their ledger slots in the order
# they were dispatched (rate_ledger's queue), but each one held here goes before every task
# the server dispatches after it, whatever their priority or batch (the fewer, the sooner a
# newly queued high or small batch's calls go: devkit/bench/RESULTS.md, "Fair shares").
# A handful still covers slow answers at the DSP's rate.
DSP_MAX_CONCURRENT_ACTIVITIES = 4
# A budget larger than a handful can spend needs more (Little's law: rate x time a DSP task
# spends at the worker, slot to answer, about a quarter second on the bench's loaded machine):
# with the limit out of the way, 4 per worker made the DSP queue the bottleneck
# (devkit/bench/RESULTS.md, "Cost per entity"). At the production rate it stays 4.
DSP_TASK_SECONDS = 0.25
DSP_CONCURRENCY_CEILING = 32
# On SIGTERM in-flight DSP requests may finish (each is bounded by DSP_TIMEOUT) before the
# worker stops; what is still running then is retried elsewhere, idempotently.
GRACEFUL_SHUTDOWN = timedelta(seconds=15)
# A cancellation reaches an activity only in the answer to a heartbeat, and the SDK sends an
# activity's heartbeats at most once per throttle interval (by default 0.8 x the heartbeat
# timeout: 24 s for a DSP call). Throttled to the beat interval, a cancel reaches a call held
# for its ledger slot within about two seconds (tests/integration/test_cancel_held_call.py).
HEARTBEAT_THROTTLE = HEARTBEAT_EVERY


class WorkerTuning(BaseSettings):
    """How the worker process runs its workflows, not what the service does:
    `DSP_MAX_CACHED_WORKFLOWS` sizes the sticky cache,
    `DSP_WORKFLOW_SANDBOX=1` runs the workflows in Temporal's sandbox and
    `DSP_EVENT_LOOP=asyncio` runs the worker on asyncio's own event loop instead of uvloop's.

    Why a model of its own, read by the worker entry point: the benchmarks measure real
    worker processes, so these must reach `python worker.py` through its environment, and
    the worker must read them; but they are not part of the service's configuration
    (`config.Settings`, which docker-compose and .env.example mirror field by field), whose
    defaults are the only values production runs. The bench writes them from this model
    (`dsp_integration.config.settings.as_environment`), so a switch cannot be spelled two ways.

    The sticky cache keeps workflows in memory between their tasks, least recently used
    evicted: it bounds a worker's memory however many entities sleep (a creative in a
    days-long review is evicted while others work; its next poll replays its history, bounded
    by continue-as-new, in milliseconds). Too small a cache costs throughput: evicted
    workflows' tasks leave the sticky queue and replay (devkit/bench/RESULTS.md).

    The sandbox re-imports the workflow module for every workflow run it starts (compiling
    it where no bytecode is cached) and guards each activation: a fifth of a worker's CPU in
    the end-to-end bench (devkit/bench/RESULTS.md, "Cost per entity"). The worker runs the
    workflows without it; the workflow tests and the replay test keep it, and they run every
    path of the workflow, so a non-deterministic call still fails there.

    The worker's Python thread does its work in many short callbacks (SDK bridge futures
    resolved from other threads, database and HTTP sockets): uvloop runs them for less CPU
    than asyncio's own loop (devkit/bench/RESULTS.md, "Cost per entity")."""

    model_config = SettingsConfigDict(
        env_prefix="DSP_", env_file=".env", extra="ignore", env_ignore_empty=True
    )

    max_cached_workflows: int = Field(
        default=1000, ge=0, description="Workflows kept in the sticky cache of each worker."
    )
    workflow_sandbox: bool = Field(
        default=False, description="Run the workflows in Temporal's sandbox (1)."
    )
    event_loop: EventLoop = Field(
        default="uvloop", description="`uvloop`, or `asyncio` for asyncio's own event loop."
    )


def event_loop_factory(tuning: WorkerTuning) -> Callable[[], asyncio.AbstractEventLoop]:
    """The event loop the worker process runs on (`asyncio.Runner(loop_factory=...)`)."""
    if tuning.event_loop == "uvloop":
        return uvloop.new_event_loop
    return asyncio.new_event_loop


async def run_worker(
    settings: Settings,
    stop: asyncio.Event,
    *,
    client: Client | None = None,
    tuning: WorkerTuning | None = None,
) -> None:
    """Run both workers until `stop` is set, then drain and close everything. Without
    `tuning`, the switches are read from the environment (`WorkerTuning`)."""
    if tuning is None:
        tuning = WorkerTuning()
    if client is None:
        install_runtime(settings.metrics_port)  # before connecting: the client reports through it
    seats = settings.seats()
    temporal = client or await connect_temporal(settings)
    async with (
        open_database(settings.effective_database_url) as sessions,
        AsyncExitStack() as connections,
    ):
        http_by_url: dict[str, httpx.AsyncClient] = {}
        for url in sorted({seat.base_url for seat in seats}):
            http_by_url[url] = await connections.enter_async_context(
                build_http_client(url, settings.dsp_timeout)
            )
        dsp_by_seat = {
            seat.name: seat_activities(seat, http_by_url[seat.base_url], sessions, settings)
            for seat in seats
        }
        queue = QueueActivities(sessions, temporal, settings.temporal_task_queue)
        planner = PollPlanner(
            sessions,
            min_interval=settings.dsp_poll_min_interval,
            max_interval=settings.dsp_poll_max_interval,
            requests_per_second={seat.name: seat.requests_per_second for seat in seats},
        )
        fan_out = DependantFanOut(sessions, temporal, settings.temporal_task_queue)
        reconciler = OrphanReconciler(sessions, temporal)
        workers = build_workers(
            temporal,
            settings,
            tuning,
            workflow_activities=[
                queue.load_entity,
                queue.record_status,
                queue.finish_entity,
                queue.submission_may_have_landed,
                planner.plan_next_poll,
                planner.start_polling,
                fan_out.tell_dependants,
                reconciler.restart_orphaned_entities,
            ],
            dsp_activities={name: dsp.all() for name, dsp in dsp_by_seat.items()},
        )
        if settings.dsp_reconcile_interval > 0:
            await ensure_reconcile_schedule(temporal, settings)
        gauges = WorkerGauges(client_meter(temporal), sessions, seats=seats)
        async with AsyncExitStack() as running, asyncio.TaskGroup() as background:
            for worker in workers:
                await running.enter_async_context(worker)
            if settings.metrics_port is not None:
                background.create_task(gauges.run(stop))
            logger.info("worker running: workflows on %r", settings.temporal_task_queue)
            for seat in seats:
                logger.info(
                    "seat %r: DSP calls on %r at %.3f/s (%d per %g s), API version %d",
                    seat.name,
                    dsp_task_queue(settings.temporal_task_queue, seat.name),
                    seat.requests_per_second,
                    seat.rate_limit,
                    seat.rate_window,
                    seat.api_version,
                )
            await stop.wait()
            logger.info("worker stopping")


def seat_activities(
    seat: Seat, http: httpx.AsyncClient, sessions: SessionFactory, settings: Settings
) -> DspActivities:
    """The DSP activities of one seat: its credentials, its share of the ledger and its
    contract. Each seat's DSP worker registers its own, on the seat's task queue, so an
    activity acts as the seat whose queue it came from."""
    limiter = SharedRateLimiter.for_seat(sessions, seat, settings.dsp_timeout)
    return DspActivities(
        DspGateway(DspClient(http), token_source(seat, http), limiter),
        sessions,
        DspContract(
            version=seat.api_version,
            search_lag=seat.search_lag,
            request_timeout=settings.dsp_timeout,
        ),
    )


def build_workers(
    client: Client,
    settings: Settings,
    tuning: WorkerTuning,
    *,
    workflow_activities: Sequence[Callable[..., Any]],
    dsp_activities: Mapping[str, Sequence[Callable[..., Any]]],
    interceptors: Sequence[Interceptor] = (),
) -> list[Worker]:
    """The workflow worker (the workflows and the queue-table activities, on
    `settings.temporal_task_queue`), then one DSP worker per seat of `dsp_activities` (that
    seat's DSP activities on its own task queue, rate-limited at its rate). The workflow tests
    build theirs here too, with fake activities, so they run with the options production runs
    with.

    A queue per seat gives each seat its own task-queue rate limit and its own backlog: a seat
    with 10,000 calls waiting does not hold up one with ten, and within a seat the priority
    keys and fair shares between batches work as with one seat."""
    seats = settings.seats()
    workflow_worker = Worker(
        client,
        task_queue=settings.temporal_task_queue,
        workflows=[EntityWorkflow, ReconcileWorkflow],
        activities=workflow_activities,
        interceptors=interceptors,
        graceful_shutdown_timeout=GRACEFUL_SHUTDOWN,
        max_cached_workflows=tuning.max_cached_workflows,
        workflow_runner=(
            SandboxedWorkflowRunner() if tuning.workflow_sandbox else UnsandboxedWorkflowRunner()
        ),
        max_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
        default_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
    )
    dsp_workers = [
        Worker(
            client,
            task_queue=dsp_task_queue(settings.temporal_task_queue, name),
            activities=activities,
            interceptors=interceptors,
            max_concurrent_activities=dsp_concurrency(seats[name].requests_per_second),
            graceful_shutdown_timeout=GRACEFUL_SHUTDOWN,
            max_task_queue_activities_per_second=seats[name].requests_per_second
            * TEMPORAL_RATE_HEADROOM,
            max_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
            default_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
        )
        for name, activities in dsp_activities.items()
    ]
    return [workflow_worker, *dsp_workers]


def dsp_concurrency(requests_per_second: float) -> int:
    """DSP tasks a worker holds at once: a handful, or as many as the budget keeps busy."""
    needed = math.ceil(requests_per_second * DSP_TASK_SECONDS)
    return min(DSP_CONCURRENCY_CEILING, max(DSP_MAX_CONCURRENT_ACTIVITIES, needed))
