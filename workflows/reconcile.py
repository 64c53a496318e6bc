"""The periodic sweep that restarts orphaned entities (`activities/reconciler.py`), run by
a Temporal schedule the worker creates (`worker/reconcile_schedule.py`)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from dsp_integration.activities.reconciler import OrphanReconciler
    from dsp_integration.contracts import RECONCILE_WORKFLOW_NAME, ReconcileInput, ReconcileResult


@workflow.defn(name=RECONCILE_WORKFLOW_NAME)
class ReconcileWorkflow:
    @workflow.run
    async def run(self, request: ReconcileInput) -> ReconcileResult:
        return await workflow.execute_activity_method(
            OrphanReconciler.restart_orphaned_entities,
            request,
            start_to_close_timeout=timedelta(minutes=10),
            heartbeat_timeout=timedelta(minutes=1),
            retry_policy=RetryPolicy(maximum_attempts=3),
        )
