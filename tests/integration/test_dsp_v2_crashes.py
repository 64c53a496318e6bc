"""A version-2 DSP (no idempotency keys) with worker processes SIGKILLed mid-run, some while
a create is at the DSP and its answer on its way: a create is never sent again blindly, so
every entity ends as in a fault-free run with exactly one live DSP entity per key, the one
its row holds, and every request the DSP saw audited."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from temporalio.client import Client

from devkit.mock_dsp.request_log import RequestRecord
from devkit.mock_dsp.server import MockDspServer
from devkit.stack.temporal_server import TemporalDevServer
from devkit.stack.workers import WorkerProcesses, worker_env
from dsp_integration.client import queries
from dsp_integration.client.context import open_service
from dsp_integration.client.submission import read_submission, submit
from dsp_integration.database.engine import SessionFactory
from tests.integration.conftest import mock_config
from tests.integration.dag import launch_dag
from tests.integration.fault_support import (
    ScriptedFaults,
    assert_audit_accounts_for,
    assert_every_create_carries_its_key,
    assert_one_live_entity_per_key,
    audit_rows,
    end_statuses,
)
from tests.integration.harness import stack_settings, write_entities

pytestmark = pytest.mark.slow

SEARCH_LAG = 1.0
KILL_EVERY_SECONDS = 2.0
KILLING_FOR_SECONDS = 10.0


@pytest.mark.timeout(300)
async def test_sigkilled_workers_at_a_version_2_dsp_leave_one_live_entity_per_key(
    clean_database: SessionFactory,
    database_url: str,
    temporal_server: TemporalDevServer,
    temporal_client: Client,
    mock_dsp: MockDspServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    # `slow` answers within DSP_TIMEOUT keep creates in flight long enough for a kill to land
    # between the DSP creating an entity and the worker recording it.
    mock_dsp.dsp.config = mock_config().model_copy(
        update={"slow_seconds": 1.5, "api_version": 2, "search_lag": SEARCH_LAG}
    )
    settings = stack_settings(
        database_url=database_url,
        temporal_address=temporal_server.address,
        dsp_base_url=mock_dsp.base_url,
        dsp_timeout=3.0,
        dsp_api_version=2,
        dsp_search_lag=SEARCH_LAG,
    )
    entities, expected = launch_dag("crashv2", advertisers=6)
    scripted = ScriptedFaults(monkeypatch)
    targets = ["crashv2-adv1", "crashv2-adv2"]
    for key in targets:
        scripted.add("slow", "POST", idempotency_key=f"{key}:v1")
    in_flight: list[RequestRecord] = []
    arrived = threading.Event()

    def on_slow(record: RequestRecord) -> None:
        in_flight.append(record)
        arrived.set()

    scripted.listeners.append(on_slow)
    path = write_entities(tmp_path / "crashv2.json", "crashv2", entities)

    kills = 0
    with WorkerProcesses(2, worker_env(settings), log_dir=tmp_path / "logs") as workers:
        async with open_service(settings, client=temporal_client) as service:
            await submit(service, read_submission(path))
            began = time.monotonic()
            next_kill = began + KILL_EVERY_SECONDS

            def crash_some() -> None:
                nonlocal next_kill, kills
                now = time.monotonic()
                if arrived.is_set():
                    # A create is at the DSP and its answer is on its way: both workers die.
                    arrived.clear()
                    for index in range(2):
                        workers.kill(index)
                        workers.start()
                    kills += 2
                elif next_kill <= now < began + KILLING_FOR_SECONDS:
                    index = kills % 2
                    workers.kill(index)
                    workers.start()
                    kills += 1
                    next_kill = now + KILL_EVERY_SECONDS

            statuses = await end_statuses(service, expected, within=200, on_tick=crash_some)
            assert statuses == expected
            assert kills >= 4
            assert len(in_flight) == len(targets)
            views = await queries.entity_views(service, batch="crashv2")
            rows = await audit_rows(service.sessions)
            assert_one_live_entity_per_key(mock_dsp.dsp, {v.key: v.dsp_id for v in views}, rows)
            assert_every_create_carries_its_key(rows)
            log = mock_dsp.dsp.request_log
            assert not any(r.replayed for r in log)  # a version-2 DSP never replays
            matched = assert_audit_accounts_for(log, rows)
            assert matched.unanswered_seen >= 1  # some creates were cut off mid-request
