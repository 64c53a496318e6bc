"""Crashes on the real stack: worker processes SIGKILLed mid-run (some mid-request), the
Temporal server restarted, PostgreSQL restarted. Every entity still ends as in a fault-free
run, with one DSP entity per key and every request the DSP saw audited."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from devkit.mock_dsp.request_log import RequestRecord
from devkit.mock_dsp.server import MockDspServer
from devkit.stack.ports import free_port
from devkit.stack.postgres import EmbeddedPostgres
from devkit.stack.temporal_server import TemporalDevServer
from devkit.stack.workers import WorkerProcesses, worker_env
from dsp_integration.client import queries
from dsp_integration.client.actors import cli_actor
from dsp_integration.client.context import ServiceContext, open_service
from dsp_integration.client.submission import read_submission, submit
from dsp_integration.database.engine import SessionFactory
from dsp_integration.database.migrate import upgrade
from tests.integration.conftest import mock_config
from tests.integration.dag import launch_dag
from tests.integration.fault_support import (
    ScriptedFaults,
    assert_audit_accounts_for,
    assert_every_create_carries_its_key,
    assert_one_dsp_entity_per_key,
    assert_one_live_entity_per_key,
    audit_rows,
    end_statuses,
)
from tests.integration.harness import open_stack, stack_settings, write_entities

# Slow, and heavy on the two cores: they run one after another in one test process (their
# own xdist group), beside the rest of the suite rather than beside each other.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("crashes")]

KILL_EVERY_SECONDS = 2.0
KILLING_FOR_SECONDS = 12.0


async def _check_outcome(
    service: ServiceContext,
    mock: MockDspServer,
    batch: str,
    expected: dict[str, str],
    api_version: int = 1,
) -> None:
    views = {v.key: v for v in await queries.entity_views(service, batch=batch)}
    assert {k: v.status for k, v in views.items()} == expected
    rows = await audit_rows(service.sessions)
    dsp_ids = {k: v.dsp_id for k, v in views.items()}
    if api_version == 1:
        assert_one_dsp_entity_per_key(mock.dsp, dsp_ids)
    else:
        assert_one_live_entity_per_key(mock.dsp, dsp_ids, rows)
    assert_audit_accounts_for(mock.dsp.request_log, rows)


# Both DSP contracts: version 1 retries creates with idempotency keys, version 2 finds out
# through the search what a create cut off by the restart made.
API_VERSIONS = pytest.mark.parametrize("api_version", [1, 2], ids=["v1", "v2"])


def _speak(mock: MockDspServer, api_version: int) -> dict[str, object]:
    """The mock set to `api_version` (a short search lag), and the service's settings for it."""
    mock.dsp.config = mock_config().model_copy(
        update={"api_version": api_version, "search_lag": 1.0}
    )
    return {"dsp_api_version": api_version, "dsp_search_lag": 1.0}


# Its own wait for the outcome is 200 s: the default timeout would cut it short.
@pytest.mark.timeout(300)
@API_VERSIONS
async def test_sigkilled_workers_lose_and_duplicate_nothing(
    clean_database: SessionFactory,
    database_url: str,
    temporal_server: TemporalDevServer,
    temporal_client: Client,
    mock_dsp: MockDspServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    api_version: int,
) -> None:
    # `slow` answers that still come within DSP_TIMEOUT keep requests in flight long enough
    # for a kill to land between the DSP creating an entity and the worker recording it.
    speaks = _speak(mock_dsp, api_version)
    mock_dsp.dsp.config = mock_dsp.dsp.config.model_copy(update={"slow_seconds": 1.5})
    settings = stack_settings(
        database_url=database_url,
        temporal_address=temporal_server.address,
        dsp_base_url=mock_dsp.base_url,
        dsp_timeout=3.0,
        **speaks,
    )
    # At version 2 a cut-off create costs a search lag: fewer entities keep the run short.
    entities, expected = launch_dag("crash", advertisers=9 if api_version == 1 else 6)
    scripted = ScriptedFaults(monkeypatch)
    targets = ["crash-adv1", "crash-adv2"]
    for key in targets:
        scripted.add("slow", "POST", idempotency_key=f"{key}:v1")
    in_flight: list[RequestRecord] = []
    arrived = threading.Event()

    def on_slow(record: RequestRecord) -> None:
        in_flight.append(record)
        arrived.set()

    scripted.listeners.append(on_slow)
    path = write_entities(tmp_path / "crash.json", "crash", entities)

    kills = 0
    with WorkerProcesses(2, worker_env(settings), log_dir=tmp_path / "logs") as workers:
        async with open_service(settings, client=temporal_client) as service:
            await submit(service, read_submission(path), actor=cli_actor())
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
            await _check_outcome(service, mock_dsp, "crash", expected, api_version)
            rows = await audit_rows(service.sessions)
            matched = assert_audit_accounts_for(mock_dsp.dsp.request_log, rows)
            assert matched.unanswered_seen >= 1  # some creates were cut off mid-request
            log = mock_dsp.dsp.request_log
            if api_version == 2:
                # Never a replay: what a cut-off create made was found through the search.
                assert not any(r.replayed for r in log)
                assert_every_create_carries_its_key(rows)
                return
            # Their retries were replays.
            for record in in_flight:
                same = [r for r in log if r.idempotency_key == record.idempotency_key]
                assert same[-1].replayed or same[-1] is record
            assert any(r.replayed for r in log)


@pytest_asyncio.fixture
async def own_temporal(tmp_path: Path) -> AsyncIterator[TemporalDevServer]:
    server = TemporalDevServer(
        port=free_port(), headless=True, db_filename=tmp_path / "temporal" / "state.db"
    )
    await asyncio.to_thread(server.start)
    try:
        yield server
    finally:
        await asyncio.to_thread(server.stop)


async def _wait_until_some_ended(service: ServiceContext, batch: str, at_least: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        counts = await queries.status_counts(service, batch)
        ended = sum(n for s, n in counts.items() if s not in ("waiting", "submitting", "polling"))
        if ended >= at_least:
            return
        await asyncio.sleep(0.2)
    pytest.fail(f"{batch}: fewer than {at_least} entities ended within 60 s")


async def _assert_work_in_flight(service: ServiceContext, batch: str) -> None:
    """Some entities are at the DSP (a create on its way, or a review being polled): the
    restart that follows meets work under way, not a finished run. Waited for, briefly: the
    moment the first parents end, their dependants may all still be `waiting` for the news."""
    deadline = time.monotonic() + 30
    while True:
        counts = await queries.status_counts(service, batch)
        if counts.get("submitting", 0) + counts.get("polling", 0) >= 1:
            return
        assert time.monotonic() < deadline and counts.get("waiting", 0) > 0, counts
        await asyncio.sleep(0.05)


@API_VERSIONS
async def test_a_temporal_restart_mid_run_changes_no_outcome(
    clean_database: SessionFactory,
    database_url: str,
    own_temporal: TemporalDevServer,
    mock_dsp: MockDspServer,
    tmp_path: Path,
    api_version: int,
) -> None:
    client = await Client.connect(own_temporal.address, data_converter=pydantic_data_converter)
    settings = stack_settings(
        database_url=database_url,
        temporal_address=own_temporal.address,
        dsp_base_url=mock_dsp.base_url,
        **_speak(mock_dsp, api_version),
    )
    entities, expected = launch_dag("tres", advertisers=3)
    path = write_entities(tmp_path / "tres.json", "tres", entities)
    async with open_stack(settings, client) as stack:
        await submit(stack.service, read_submission(path), actor=cli_actor())
        await _wait_until_some_ended(stack.service, "tres", 3)
        await _assert_work_in_flight(stack.service, "tres")
        await asyncio.to_thread(own_temporal.restart)
        await end_statuses(stack.service, expected, within=120)
        await _check_outcome(stack.service, mock_dsp, "tres", expected, api_version)


@API_VERSIONS
async def test_a_postgres_restart_mid_run_changes_no_outcome(
    temporal_server: TemporalDevServer,
    temporal_client: Client,
    mock_dsp: MockDspServer,
    tmp_path: Path,
    api_version: int,
) -> None:
    postgres = EmbeddedPostgres(
        data_dir=tmp_path / "pg", port=free_port(), database=f"pgr_{uuid.uuid4().hex[:8]}"
    )
    await asyncio.to_thread(postgres.start)
    try:
        await upgrade(postgres.url)
        settings = stack_settings(
            database_url=postgres.url,
            temporal_address=temporal_server.address,
            dsp_base_url=mock_dsp.base_url,
            **_speak(mock_dsp, api_version),
        )
        entities, expected = launch_dag("pgres", advertisers=3)
        path = write_entities(tmp_path / "pgres.json", "pgres", entities)
        async with open_stack(settings, temporal_client) as stack:
            await submit(stack.service, read_submission(path), actor=cli_actor())
            await _wait_until_some_ended(stack.service, "pgres", 3)
            await _assert_work_in_flight(stack.service, "pgres")
            await asyncio.to_thread(postgres.stop)
            await asyncio.sleep(2)
            await asyncio.to_thread(postgres.start)
            await end_statuses(stack.service, expected, within=120)
            await _check_outcome(stack.service, mock_dsp, "pgres", expected, api_version)
    finally:
        await asyncio.to_thread(postgres.stop)
