"""The Temporal schedule that runs the orphan sweep (workflows/reconcile.py) every
`DSP_RECONCILE_INTERVAL` seconds. Every worker makes sure it exists; the first one creates it,
the others find it there. Its runs and their results show in the Temporal web UI."""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
)

from dsp_integration.config import Settings
from dsp_integration.contracts import RECONCILE_WORKFLOW_NAME, ReconcileInput, reconcile_schedule_id


async def ensure_reconcile_schedule(client: Client, settings: Settings) -> None:
    schedule_id = reconcile_schedule_id(settings.temporal_task_queue)
    schedule = Schedule(
        action=ScheduleActionStartWorkflow(
            RECONCILE_WORKFLOW_NAME,
            ReconcileInput(
                task_queue=settings.temporal_task_queue,
                grace_seconds=settings.dsp_reconcile_grace,
            ),
            id=schedule_id,
            task_queue=settings.temporal_task_queue,
        ),
        spec=ScheduleSpec(
            intervals=[
                ScheduleIntervalSpec(every=timedelta(seconds=settings.dsp_reconcile_interval))
            ]
        ),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )
    try:
        await client.create_schedule(schedule_id, schedule)
    except ScheduleAlreadyRunningError:
        pass
