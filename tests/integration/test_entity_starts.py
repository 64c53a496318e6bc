"""Starting entity workflows on the real stack (dev server, PostgreSQL, mock DSP): news of a
dependency never opens a second run for an entity that has ended, and never strands one that
a resubmit upstream reopened after its run completed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowExecutionStatus

from dsp_integration.activities.fan_out import tell_dependant
from dsp_integration.client import control
from dsp_integration.client.actors import cli_actor
from dsp_integration.client.errors import EntityEnded
from dsp_integration.client.progress import wait_for_batch
from dsp_integration.contracts import (
    DependencyOutcome,
    EntityStatus,
    PriorityLevel,
    workflow_id_for,
)
from dsp_integration.database.models import QueuedEntity
from dsp_integration.database.queue_store import StartRow
from tests.integration.dag import ad_group, advertiser, campaign
from tests.integration.harness import Stack, write_entities


async def _runs(client: Client, key: str) -> list[tuple[str, WorkflowExecutionStatus | None]]:
    """Every run of the key's workflow, oldest first, as visibility lists them."""
    runs = [
        (execution.run_id, execution.status, execution.start_time)
        async for execution in client.list_workflows(f"WorkflowId = '{workflow_id_for(key)}'")
    ]
    return [(run_id, status) for run_id, status, _ in sorted(runs, key=lambda run: run[2])]


async def test_a_terminal_outcome_told_to_an_entity_that_has_ended_opens_no_new_run(
    stack: Stack, temporal_client: Client, tmp_path: Path
) -> None:
    """The race of the 10,000-entity run, made certain: the fan-out read the campaign as open,
    the campaign ended and its run completed, then the advertiser's success reaches it."""
    entities = [advertiser("st-adv"), campaign("st-cmp", "st-adv")]
    counts = await stack.submit_file(write_entities(tmp_path / "st.json", "st", entities))
    assert counts == {"succeeded": 2}
    handle = temporal_client.get_workflow_handle(workflow_id_for("st-cmp"))
    ended = await handle.describe()
    assert ended.status is WorkflowExecutionStatus.COMPLETED

    opened = await tell_dependant(
        temporal_client,
        stack.service.sessions,
        stack.settings.temporal_task_queue,
        StartRow("st-cmp", "st", PriorityLevel.NORMAL, 1.0),
        DependencyOutcome(key="st-adv", status=EntityStatus.SUCCEEDED, payload_version=1),
    )

    assert opened is False
    latest = await handle.describe()  # the latest run, read from the history, not visibility
    assert (latest.run_id, latest.status) == (ended.run_id, WorkflowExecutionStatus.COMPLETED)
    assert await _runs(temporal_client, "st-cmp") == [
        (ended.run_id, WorkflowExecutionStatus.COMPLETED)
    ]


async def test_a_dependant_reopened_after_its_run_completed_runs_again(
    stack: Stack, temporal_client: Client, tmp_path: Path
) -> None:
    """The campaign fails and the ad group ends blocked (its run completes). Resubmitting the
    campaign, fixed, puts the ad group back to waiting; the campaign's new run tells it, the
    first start is refused (its run completed), the row says it has work, and it runs again
    to success."""
    entities = [
        advertiser("re-adv"),
        campaign("re-cmp", "re-adv", fail=True),
        ad_group("re-ag", "re-cmp", []),
    ]
    counts = await stack.submit_file(write_entities(tmp_path / "re.json", "re", entities))
    assert counts == {"succeeded": 1, "failed": 1, "blocked": 1}
    blocked_run = await temporal_client.get_workflow_handle(workflow_id_for("re-ag")).describe()
    assert blocked_run.status is WorkflowExecutionStatus.COMPLETED

    report = await control.resubmit(
        stack.service, "re-cmp", payload=campaign("re-cmp", "re-adv")["payload"], actor=cli_actor()
    )

    assert report.reopened == ["re-ag"]
    async with asyncio.timeout(120):
        counts = await wait_for_batch(stack.service, "re", on_update=lambda _: None)
    assert counts == {"succeeded": 3}
    # The row records the ending a moment before the run completes.
    rerun_handle = temporal_client.get_workflow_handle(workflow_id_for("re-ag"))
    async with asyncio.timeout(30):
        await rerun_handle.result()
    rerun = await rerun_handle.describe()
    assert rerun.run_id != blocked_run.run_id
    assert rerun.status is WorkflowExecutionStatus.COMPLETED


async def test_a_cancel_racing_the_entitys_ending_opens_no_new_run(
    stack: Stack, temporal_client: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`cancel` read the row while the advertiser was still being submitted; it succeeded and
    its run completed before the cancel's signal-with-start: the cancel reports that it has
    ended, and no run opens to carry it out."""
    counts = await stack.submit_file(
        write_entities(tmp_path / "cx.json", "cx", [advertiser("cx-adv")])
    )
    assert counts == {"succeeded": 1}
    handle = temporal_client.get_workflow_handle(workflow_id_for("cx-adv"))
    ended = await handle.describe()
    read_row = control._row
    reads = 0

    async def row_read_before_it_ended(service: object, key: str) -> QueuedEntity:
        nonlocal reads
        row = await read_row(stack.service, key)
        reads += 1
        if reads == 1:
            row.status = EntityStatus.SUBMITTING.value
        return row

    monkeypatch.setattr(control, "_row", row_read_before_it_ended)

    with pytest.raises(EntityEnded, match="has already ended succeeded"):
        await control.cancel(stack.service, "cx-adv", actor=cli_actor())

    latest = await handle.describe()
    assert (latest.run_id, latest.status) == (ended.run_id, WorkflowExecutionStatus.COMPLETED)
