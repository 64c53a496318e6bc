"""What operators see, on the real stack: a `python worker.py` process with METRICS_PORT,
the real `starter.py` (submit, status, audit), the web UI's search-attribute queries, the
worker's JSON logs and its Prometheus endpoint."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import httpx
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from devkit.mock_dsp.server import MockDspServer
from devkit.stack.ports import free_port
from devkit.stack.temporal_server import TemporalDevServer
from devkit.stack.workers import WorkerProcesses
from dsp_integration.database.engine import SessionFactory
from dsp_integration.workflows.entity import EntityWorkflow
from tests.integration.cli_support import cli_env, run_cli
from tests.integration.dag import launch_dag
from tests.integration.harness import stack_settings, write_entities

BATCH = "ops-launch"
T = TypeVar("T")


def polled_statuses(history: WorkflowHistory) -> list[str]:
    """The DSP statuses the run's polls answered, in order."""
    scheduled = {
        e.event_id: e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    }
    statuses = []
    for event in history.events:
        if event.event_type != EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            continue
        completed = event.activity_task_completed_event_attributes
        if scheduled[completed.scheduled_event_id] == "poll_status":
            [payload] = completed.result.payloads
            statuses.append(json.loads(payload.data)["dsp_status"])
    return statuses


_SAMPLE = re.compile(r"^(?P<name>[a-z_]+)(?:\{(?P<labels>.*)\})? (?P<value>\S+)$")


def parse_metrics(text: str) -> list[tuple[str, dict[str, str], float]]:
    samples = []
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match is None:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', match["labels"] or ""))
        samples.append((match["name"], labels, float(match["value"])))
    return samples


def metric(samples: list[tuple[str, dict[str, str], float]], name: str, **labels: str) -> float:
    return sum(
        value
        for sample, got, value in samples
        if sample == name and all(got.get(k) == v for k, v in labels.items())
    )


async def scrape(port: int) -> list[tuple[str, dict[str, str], float]]:
    async with httpx.AsyncClient() as http:
        response = await http.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    response.raise_for_status()
    return parse_metrics(response.text)


async def listed(client: Client, query: str) -> set[str]:
    return {execution.id async for execution in client.list_workflows(query)}


async def eventually(check: Callable[[], Awaitable[T]], within: float = 15.0) -> T:
    """Visibility and the metric gauges lag a little behind the database."""
    deadline = time.monotonic() + within
    while True:
        try:
            return await check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


async def test_an_operator_sees_the_batch_in_metrics_logs_queries_and_the_cli(
    clean_database: SessionFactory,
    database_url: str,
    temporal_server: TemporalDevServer,
    temporal_client: Client,
    mock_dsp: MockDspServer,
    tmp_path: Path,
) -> None:
    metrics_port = free_port()
    settings = stack_settings(
        database_url=database_url,
        temporal_address=temporal_server.address,
        dsp_base_url=mock_dsp.base_url,
    )
    env = cli_env(settings)
    entities, expected = launch_dag("ops", advertisers=2)
    path = write_entities(tmp_path / "ops.json", BATCH, entities)

    with WorkerProcesses(
        1,
        {**env, "METRICS_PORT": str(metrics_port), "DSP_RATE_LIMIT": "30", "DSP_RATE_WINDOW": "3"}
        | {"DSP_POLL_MIN_INTERVAL": "0.5", "DSP_POLL_MAX_INTERVAL": "2", "DSP_TIMEOUT": "2"},
        log_dir=tmp_path,
    ) as workers:
        submitted = await run_cli(["submit", path, "--wait"], env, within=90)
        assert submitted.code == 1, submitted  # a rejection and two blocked: not all succeeded
        status = await run_cli(["status", "--batch", BATCH], env)
        audit = await run_cli(["audit", "ops-cr0b", "--json"], env)

        # Prometheus: the SDK's metrics and the service's, on the one port.
        log = mock_dsp.dsp.request_log
        counts = Counter(expected.values())

        async def metrics_are_current() -> list[tuple[str, dict[str, str], float]]:
            samples = await scrape(metrics_port)
            assert metric(samples, "dsp_entities", status="succeeded") == counts["succeeded"]
            return samples

        samples = await eventually(metrics_are_current)
        names = {name for name, _, _ in samples}
        assert {"temporal_workflow_completed", "temporal_activity_execution_latency_count"} <= names
        assert metric(samples, "dsp_entities", status="blocked") == counts["blocked"]
        assert metric(samples, "dsp_entities", status="rejected") == counts["rejected"]
        assert metric(samples, "dsp_requests") == len(log)
        assert metric(samples, "dsp_requests", seat="default") == len(log)
        posts = sum(1 for r in log if r.method == "POST" and r.path == "/v1/advertisers")
        assert posts == 2
        assert metric(samples, "dsp_requests", endpoint="POST /v1/advertisers") == posts
        polls = sum(1 for r in log if r.path.startswith("/v1/creatives/") and r.method == "GET")
        assert metric(samples, "dsp_requests", endpoint="GET /v1/creatives/{id}/status") == polls
        assert metric(samples, "dsp_rate_limited") == sum(1 for r in log if r.status == 429)
        assert 0 <= metric(samples, "dsp_budget_used_ratio", seat="default") <= 1
        assert metric(samples, "dsp_entity_time_to_terminal_seconds_count") == len(expected)
        assert any(  # buckets in seconds, up to days of review
            name == "dsp_entity_time_to_terminal_seconds_bucket" and labels.get("le") == "86400"
            for name, labels, _ in samples
        )
        assert (
            metric(samples, "dsp_entity_time_to_terminal_seconds_count", status="rejected")
            == counts["rejected"]
        )
        log_path = workers.log_path(0)
    assert log_path is not None

    # The web UI's queries (docs/guides/temporal-ui.md).
    async def queries_answer() -> None:
        in_batch = await listed(temporal_client, f'DspBatch="{BATCH}"')
        assert in_batch == {f"dsp-entity-{key}" for key in expected}
        blocked = await listed(temporal_client, f'DspBatch="{BATCH}" AND DspStatus="blocked"')
        assert blocked == {f"dsp-entity-{k}" for k, s in expected.items() if s == "blocked"}
        creatives = await listed(
            temporal_client, f'DspBatch="{BATCH}" AND DspEntityType="creatives"'
        )
        assert creatives == {f"dsp-entity-{k}" for k in expected if "-cr" in k}
        refused = await listed(temporal_client, 'DspStatus IN ("rejected", "failed")')
        assert "dsp-entity-ops-cr0b" in refused
        assert not refused & {f"dsp-entity-{k}" for k, s in expected.items() if s != "rejected"}
        one = await listed(temporal_client, 'DspEntityKey="ops-cr0b"')
        assert one == {"dsp-entity-ops-cr0b"}

    await eventually(queries_answer)

    # A run that upserted its status replays: the upserts are deterministic (and patched).
    # It upserts its ending, and `polling` only once a poll found the review still open:
    # `waiting` was set at its start, `submitting` is not published, and its start said it
    # is lean (no patch, no TemporalChangeVersion).
    history = await temporal_client.get_workflow_handle("dsp-entity-ops-cr0b").fetch_history()
    upserts = [
        e.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES
    ]
    upserted = [{name: json.loads(value.data) for name, value in u.items()} for u in upserts]
    still_open = [status for status in polled_statuses(history) if status != "rejected"]
    assert upserted == [{"DspStatus": "polling"}] * bool(still_open) + [{"DspStatus": "rejected"}]
    await Replayer(
        workflows=[EntityWorkflow], data_converter=pydantic_data_converter
    ).replay_workflow(history)

    # The worker's log: one JSON object per line, DSP requests carrying key, workflow, attempt.
    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    requests = [entry for entry in lines if entry["message"].startswith("DSP ")]
    assert requests
    for entry in requests:
        assert entry["workflow_id"] == f"dsp-entity-{entry['entity_key']}"
        assert entry["attempt"] >= 1
        assert "activity_id" not in entry["message"]  # details are fields, not message text
    assert {entry["entity_key"] for entry in requests} == {
        key for key, s in expected.items() if s != "blocked"
    }

    # `status --batch`: a per-status summary, then the entities that did not succeed with
    # their reasons, then the slowest.
    assert status.code == 0, status
    flat = " ".join(status.stdout.split())
    assert f"{BATCH}: {len(expected)} entities" in flat
    assert f"succeeded={counts['succeeded']}" in flat
    assert f"blocked={counts['blocked']}" in flat
    assert f"rejected={counts['rejected']}" in flat
    assert "did not succeed" in flat and "slowest" in flat
    for key, state in expected.items():
        if state != "succeeded":
            assert key in flat, key
    assert "dependency 'ops-cr0b' ended rejected" in flat

    # `audit KEY`: the rejected creative's requests in order: POST, then status polls.
    assert audit.code == 0, audit
    records = json.loads(audit.stdout)
    methods = "".join(r["method"][0] for r in records)  # a 409 may repeat the POST
    assert re.fullmatch(r"P+G+", methods), methods
    assert records[-1]["response_status"] == 200
    assert [r["id"] for r in records] == sorted(r["id"] for r in records)
    assert records == sorted(records, key=lambda r: r["started_at"])
