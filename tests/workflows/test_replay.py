"""Recorded histories of representative runs must replay on the current `EntityWorkflow`:
a change that breaks running workflows fails here (use `workflow.patched` instead)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

from dsp_integration.contracts import EntityWorkflowInput, workflow_id_for
from dsp_integration.workflows.entity import EntityWorkflow

HISTORIES = Path(__file__).resolve().parent.parent / "histories"
REQUIRED = {"happy_path", "rejection", "cancel", "resubmit", "blocked_chain"}


def load(path: Path) -> WorkflowHistory:
    """Parse a history file; its workflow id follows from the key in the start input."""
    text = path.read_text()
    events = WorkflowHistory.from_json("unknown", text).events
    [payload] = events[0].workflow_execution_started_event_attributes.input.payloads
    start = pydantic_data_converter.payload_converter.from_payload(payload, EntityWorkflowInput)
    return WorkflowHistory.from_json(workflow_id_for(start.key), text)


def replayer() -> Replayer:
    return Replayer(workflows=[EntityWorkflow], data_converter=pydantic_data_converter)


def test_the_representative_histories_are_recorded() -> None:
    assert REQUIRED <= {path.stem for path in HISTORIES.glob("*.json")}


@pytest.mark.parametrize("path", sorted(HISTORIES.glob("*.json")), ids=lambda p: p.stem)
async def test_history_replays(path: Path) -> None:
    history = load(path)
    assert history.events[-1].event_type in {
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED,
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW,
    }

    await replayer().replay_workflow(history)


async def test_a_lean_start_that_an_older_worker_ran_replays() -> None:
    """During a rolling deploy an older worker may run a start that says `lean`: it ignores
    the field and records the `lean-history` patch. This code reads that marker again."""
    history = load(HISTORIES / "happy_path.v4.json")
    started = history.events[0].workflow_execution_started_event_attributes
    [payload] = started.input.payloads
    start = json.loads(payload.data)
    assert "lean" not in start
    payload.data = json.dumps({**start, "lean": True}).encode()

    await replayer().replay_workflow(history)


def test_a_lean_start_records_no_patch_marker() -> None:
    markers = [
        e
        for e in load(HISTORIES / "happy_path.json").events
        if e.marker_recorded_event_attributes.marker_name == "core_patch"
    ]
    assert markers == []


async def test_a_changed_command_order_fails_the_replay() -> None:
    """The replay really checks: swapping the first activity for another type is caught."""
    history = load(HISTORIES / "happy_path.json")
    scheduled = next(
        e for e in history.events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    )
    scheduled.activity_task_scheduled_event_attributes.activity_type.name = "archive_entity"

    with pytest.raises(NondeterminismError):
        await replayer().replay_workflow(history)


async def test_a_changed_priority_still_replays() -> None:
    """Priority keys are not part of the determinism check (sdk-core compares a scheduled
    activity's id and type only), so changing how they are chosen needs no patch."""
    history = load(HISTORIES / "happy_path.json")
    changed = 0
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            event.activity_task_scheduled_event_attributes.priority.priority_key = 9
            changed += 1
    assert changed

    await replayer().replay_workflow(history)
