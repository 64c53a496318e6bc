"""Whether PostgreSQL and Temporal answer, and how many DSP calls wait in Temporal."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import text
from temporalio.api.enums.v1 import TaskQueueKind, TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest, DescribeTaskQueueRequest

from dsp_integration.client.context import ServiceContext
from dsp_integration.contracts import DEFAULT_SEAT, dsp_task_queue

CHECK_TIMEOUT = 3.0


async def _postgres_answers(service: ServiceContext) -> bool:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT), service.sessions() as session:
            await session.execute(text("SELECT 1"))
    except Exception:
        return False
    return True


async def _temporal_answers(service: ServiceContext) -> bool:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT * 2):
            client = await service.temporal()
            await client.workflow_service.describe_namespace(
                DescribeNamespaceRequest(namespace=service.settings.temporal_namespace),
                timeout=timedelta(seconds=CHECK_TIMEOUT),
            )
    except Exception:
        return False
    return True


async def check_health(service: ServiceContext) -> dict[str, bool]:
    """`{"postgresql": ..., "temporal": ...}`: True for each that answered in time."""
    postgres, temporal = await asyncio.gather(
        _postgres_answers(service), _temporal_answers(service)
    )
    return {"postgresql": postgres, "temporal": temporal}


async def dsp_backlog(service: ServiceContext, seat: str = DEFAULT_SEAT) -> int | None:
    """DSP calls scheduled on `seat`'s DSP task queue that no worker has taken yet
    (Temporal's approximate backlog); None when Temporal does not answer."""
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            client = await service.temporal()
            answer = await client.workflow_service.describe_task_queue(
                DescribeTaskQueueRequest(
                    namespace=service.settings.temporal_namespace,
                    task_queue=TaskQueue(
                        name=dsp_task_queue(service.settings.temporal_task_queue, seat),
                        kind=TaskQueueKind.TASK_QUEUE_KIND_NORMAL,
                    ),
                    task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
                    report_stats=True,
                ),
                timeout=timedelta(seconds=CHECK_TIMEOUT),
            )
    except Exception:
        return None
    return int(answer.stats.approximate_backlog_count)
