"""The histories recorded at every supported release must replay on the current
`EntityWorkflow`: a change that would break runs in flight fails here.
docs/guides/workflow-changes.md says what to do then (a patch, retired on schedule)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from packaging.version import Version
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

from dsp_integration.contracts import EntityWorkflowInput, workflow_id_for
from dsp_integration.workflows.entity import EntityWorkflow

ROOT = Path(__file__).resolve().parents[2]
HISTORIES = ROOT / "tests" / "histories"
# One folder per release whose runs may still be open: tests/histories/<version>/.
RELEASES = sorted((p for p in HISTORIES.iterdir() if p.is_dir()), key=lambda p: Version(p.name))
REQUIRED = {
    "happy_path",
    "rejection",
    "cancel",
    "resubmit",
    "blocked_chain",
    "continued_review",
    "many_dependants",
    "resubmit_on_the_way",
    "lost_post_found_out",
}


def load(path: Path) -> WorkflowHistory:
    """Parse a history file; its workflow id follows from the key in the start input."""
    text = path.read_text()
    events = WorkflowHistory.from_json("unknown", text).events
    [payload] = events[0].workflow_execution_started_event_attributes.input.payloads
    start = pydantic_data_converter.payload_converter.from_payload(payload, EntityWorkflowInput)
    return WorkflowHistory.from_json(workflow_id_for(start.key), text)


def replayer() -> Replayer:
    return Replayer(workflows=[EntityWorkflow], data_converter=pydantic_data_converter)


def project_version() -> Version:
    with (ROOT / "pyproject.toml").open("rb") as file:
        return Version(tomllib.load(file)["project"]["version"])


def test_the_latest_release_has_its_histories() -> None:
    """A released version records its histories (`tests.workflows.record_histories
    tests/histories/<version>`); between releases the newest folder is the last release's."""
    version = project_version()
    latest = RELEASES[-1]
    if not version.is_devrelease:
        assert latest.name == str(version)
    assert Version(latest.name) <= version
    assert {path.stem for path in latest.glob("*.json")} >= REQUIRED


@pytest.mark.parametrize(
    "path",
    [path for release in RELEASES for path in sorted(release.glob("*.json"))],
    ids=lambda p: f"{p.parent.name}/{p.stem}",
)
async def test_history_replays(path: Path) -> None:
    history = load(path)
    assert history.events[-1].event_type in {
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED,
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW,
    }

    await replayer().replay_workflow(history)


async def test_a_changed_command_order_fails_the_replay() -> None:
    """The replay really checks: swapping the first activity for another type is caught."""
    history = load(RELEASES[-1] / "happy_path.json")
    scheduled = next(
        e for e in history.events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    )
    scheduled.activity_task_scheduled_event_attributes.activity_type.name = "archive_entity"

    with pytest.raises(NondeterminismError):
        await replayer().replay_workflow(history)


async def test_a_changed_priority_still_replays() -> None:
    """Priority keys are not part of the determinism check (sdk-core compares a scheduled
    activity's id and type only), so changing how they are chosen needs no patch."""
    history = load(RELEASES[-1] / "happy_path.json")
    changed = 0
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            event.activity_task_scheduled_event_attributes.priority.priority_key = 9
            changed += 1
    assert changed

    await replayer().replay_workflow(history)
