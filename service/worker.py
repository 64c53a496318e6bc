"""The worker process: the workflow worker and the rate-limited DSP-activity worker."""

from __future__ import annotations

import asyncio
from datetime import timedelta
import logging
import os
from collections.abc import Sequence

from temporalio.client import Client
from temporalio.worker import Worker

from activities.dsp_calls import DspActivities
from activities.dsp_gateway import DspGateway
from activities.poll_planner import ADAPTIVE, PollPlanner
from activities.queue_records import QueueActivities
from activities.rate_limiter import SharedRateLimiter
from config import Settings
from database.engine import open_database
from dsp_client import DspClient, build_http_client
from service.temporal_client import connect_temporal
from workflows.entity import EntityWorkflow

logger = logging.getLogger(__name__)

# Temporal's task-queue limit is a token bucket (about one second of rate as burst); the
# PostgreSQL ledger is the exact limit. A little headroom keeps Temporal from holding the
# budget below 100% while the backlog (and its priorities) still waits in the server.
TEMPORAL_RATE_HEADROOM = 1.1
DSP_MAX_CONCURRENT_ACTIVITIES = 20
# On SIGTERM in-flight DSP requests may finish (each is bounded by DSP_TIMEOUT) before the
# worker stops; what is still running then is retried elsewhere, idempotently.
GRACEFUL_SHUTDOWN = timedelta(seconds=15)
# `fixed` polls every DSP_POLL_MIN_INTERVAL, for comparison (bench/); Settings is shared code.
POLL_STRATEGY_ENV = "DSP_POLL_STRATEGY"


def rate_margin(settings: Settings) -> float:
    """Seconds added to the window: the spread of delays between a slot and the DSP seeing it."""
    return min(0.25, settings.dsp_rate_window * 0.02)


async def run_worker(
    settings: Settings, stop: asyncio.Event, *, client: Client | None = None
) -> None:
    """Run both workers until `stop` is set, then drain and close everything."""
    temporal = client or await connect_temporal(settings)
    async with (
        open_database(settings.effective_database_url) as sessions,
        build_http_client(settings.effective_dsp_base_url, settings.dsp_timeout) as http,
    ):
        limiter = SharedRateLimiter(
            sessions,
            limit=settings.dsp_rate_limit,
            window=settings.dsp_rate_window,
            margin=rate_margin(settings),
        )
        dsp = DspActivities(DspGateway(DspClient(http, settings.dsp_api_token), limiter, sessions))
        queue = QueueActivities(sessions, temporal, settings.temporal_task_queue)
        planner = PollPlanner(
            sessions,
            min_interval=settings.dsp_poll_min_interval,
            max_interval=settings.dsp_poll_max_interval,
            requests_per_second=settings.dsp_requests_per_second,
            strategy=os.environ.get(POLL_STRATEGY_ENV, ADAPTIVE),
        )
        workers = build_workers(temporal, settings, dsp, queue, planner)
        async with workers[0], workers[1]:
            logger.info(
                "worker running: workflows on %r, DSP calls on %r at %.3f/s",
                settings.temporal_task_queue,
                settings.dsp_task_queue,
                settings.dsp_requests_per_second,
            )
            await stop.wait()
            logger.info("worker stopping")


def build_workers(
    client: Client,
    settings: Settings,
    dsp: DspActivities,
    queue: QueueActivities,
    planner: PollPlanner,
) -> Sequence[Worker]:
    workflow_worker = Worker(
        client,
        task_queue=settings.temporal_task_queue,
        workflows=[EntityWorkflow],
        activities=[
            queue.load_entity,
            queue.record_status,
            queue.notify_dependants,
            queue.reopen_blocked,
            planner.plan_next_poll,
        ],
        graceful_shutdown_timeout=GRACEFUL_SHUTDOWN,
    )
    dsp_worker = Worker(
        client,
        task_queue=settings.dsp_task_queue,
        activities=[dsp.submit_entity, dsp.poll_status, dsp.replace_entity, dsp.archive_entity],
        max_concurrent_activities=DSP_MAX_CONCURRENT_ACTIVITIES,
        graceful_shutdown_timeout=GRACEFUL_SHUTDOWN,
        max_task_queue_activities_per_second=settings.dsp_requests_per_second
        * TEMPORAL_RATE_HEADROOM,
    )
    return workflow_worker, dsp_worker
