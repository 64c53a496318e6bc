"""The dev stack's parts, started for real: Temporal dev server, embedded PostgreSQL,
child-process handling and `dev.py up` itself."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import asyncpg
import pytest
from temporalio.api.enums.v1 import WorkflowExecutionStatus
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import ListTaskQueuePartitionsRequest
from temporalio.client import Client

from devkit.stack.mock import MockDspProcess
from devkit.stack.ports import free_port, port_open, split_address, wait_for_port
from devkit.stack.postgres import (
    EmbeddedPostgres,
    asyncpg_dsn,
    create_database,
    drop_database,
    without_password,
)
from devkit.stack.process import ManagedProcess
from devkit.stack.temporal_server import (
    DEV_SERVER_GOGC,
    DYNAMIC_CONFIG,
    SEARCH_ATTRIBUTES,
    TemporalDevServer,
)
from devkit.stack.up import read_stack_file, write_stack_file
from dsp_integration.config.settings import PROJECT_ROOT


async def _select_one(url: str) -> int:
    connection = await asyncpg.connect(asyncpg_dsn(url), timeout=10)
    try:
        return await connection.fetchval("SELECT 1")
    finally:
        await connection.close()


def process_environ(pid: int) -> list[bytes]:
    return Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")


async def test_temporal_dev_server_serves_search_attributes_and_survives_restart(
    tmp_path: Path,
) -> None:
    server = TemporalDevServer(
        port=free_port(), headless=True, db_filename=tmp_path / "temporal.db"
    )
    assert server.ui_url is None
    command = " ".join(server.command())
    for key, value in DYNAMIC_CONFIG.items():
        assert f"--dynamic-config-value {key}={json.dumps(value)}" in command
    with server:
        assert server.startup_seconds is not None and server.startup_seconds < 30
        # Its Go runtime collects garbage less often (DEV_SERVER_GOGC), unless told otherwise.
        assert server.pid is not None
        environ = process_environ(server.pid)
        gogc = os.environ.get("GOGC", str(DEV_SERVER_GOGC))
        assert f"GOGC={gogc}".encode() in environ
        client = await Client.connect(server.address)
        listed = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace="default")
        )
        assert set(SEARCH_ATTRIBUTES) <= set(listed.custom_attributes)
        # The dynamic config took: one partition per task queue (the server default is 4).
        partitions = await client.workflow_service.list_task_queue_partitions(
            ListTaskQueuePartitionsRequest(
                namespace="default", task_queue=TaskQueue(name="dsp-entities-dsp")
            )
        )
        assert len(partitions.activity_task_queue_partitions) == 1
        assert len(partitions.workflow_task_queue_partitions) == 1

        # No worker: the workflow stays open, and must still be there after a restart.
        workflow_id = f"devstack-{uuid.uuid4()}"
        await client.start_workflow("NoSuchWorkflow", id=workflow_id, task_queue="devstack-tq")
        server.restart()
        client = await Client.connect(server.address)
        described = await client.get_workflow_handle(workflow_id).describe()
        assert described.raw_description.workflow_execution_info.status == (
            WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING
        )
    assert not server.running
    assert not port_open("127.0.0.1", server.port)


def test_temporal_dev_server_reports_a_taken_port() -> None:
    with TemporalDevServer(port=free_port(), headless=True) as first:
        second = TemporalDevServer(port=first.port, headless=True)
        with pytest.raises(RuntimeError, match="already listens"):
            second.start()


async def test_embedded_postgres_starts_restarts_and_stops(tmp_path: Path) -> None:
    server = EmbeddedPostgres(tmp_path / "data", port=free_port(), database="devstack_db")
    assert server.url == f"postgresql+asyncpg://postgres@127.0.0.1:{server.port}/devstack_db"
    try:
        assert server.start() is True
        assert server.init_seconds is not None and server.start_seconds is not None
        assert await _select_one(server.url) == 1
        assert server.start() is False  # already running: nothing to do

        server.restart()
        assert await _select_one(server.url) == 1

        other_url = await create_database(server.url, "devstack_other")
        assert other_url.endswith(f":{server.port}/devstack_other")
        assert await create_database(server.url, "devstack_other") == other_url
        assert await _select_one(other_url) == 1
        await drop_database(server.url, "devstack_other")
        with pytest.raises(asyncpg.InvalidCatalogNameError):
            await _select_one(other_url)
    finally:
        server.stop()
    assert not server.running
    assert not port_open("127.0.0.1", server.port)


def test_urls_are_shown_without_password_and_given_to_asyncpg_plain() -> None:
    url = "postgresql+asyncpg://app:s3cret@db.internal:5432/dsp"
    assert "s3cret" not in without_password(url)
    assert asyncpg_dsn(url) == "postgresql://app:s3cret@db.internal:5432/dsp"
    assert split_address("localhost:7233") == ("localhost", 7233)
    assert split_address("[::1]:7000") == ("::1", 7000)


def test_wait_for_port_fails_fast_when_the_server_dies() -> None:
    with pytest.raises(TimeoutError):
        wait_for_port("127.0.0.1", free_port(), timeout=0.2)
    dead = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    dead.wait()
    with pytest.raises(RuntimeError, match="exited with code 3"):
        wait_for_port("127.0.0.1", free_port(), timeout=10, process=dead)


def test_managed_process_escalates_to_sigkill_and_keeps_its_log(tmp_path: Path) -> None:
    script = (
        "import signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ignoring SIGTERM', flush=True)\n"
        "time.sleep(60)\n"
    )
    process = ManagedProcess(
        "stubborn", [sys.executable, "-c", script], log_file=tmp_path / "stubborn.log"
    )
    process.start()
    deadline = time.monotonic() + 10
    while "ignoring" not in process.log_tail() and time.monotonic() < deadline:
        time.sleep(0.02)
    began = time.monotonic()
    assert process.stop(timeout=0.5) == -signal.SIGKILL
    assert time.monotonic() - began < 5
    assert "ignoring SIGTERM" in process.log_tail()


def test_mock_dsp_command_line_follows_the_settings() -> None:
    mock = MockDspProcess(port=18765, token="t0k", rate_limit=5, rate_window=2.5, review_seconds=8)
    args = mock.args
    assert args[:3] == [sys.executable, "-m", "devkit.mock_dsp"]
    pairs = dict(zip(args[3::2], args[4::2], strict=True))
    assert pairs == {
        "--host": "127.0.0.1",
        "--port": "18765",
        "--token": "t0k",
        "--rate-limit": "5",
        "--rate-window": "2.5",
        "--review-seconds": "8",
    }
    assert mock.url == "http://127.0.0.1:18765"


def test_stack_file_of_a_dead_process_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "stack.json"
    write_stack_file(path, {"pid": os.getpid(), "ready": True})
    assert read_stack_file(path) == {"pid": os.getpid(), "ready": True}
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    write_stack_file(path, {"pid": dead.pid, "ready": True})
    assert read_stack_file(path) is None


async def test_dev_py_up_starts_migrates_and_stops_what_it_started(
    tmp_path: Path, postgres_server_url: str
) -> None:
    """`dev.py up --workers 0` with DATABASE_URL and DSP_BASE_URL set: it starts only the
    Temporal dev server, migrates the database, and stops the server on SIGTERM."""
    database = f"devstack_up_{uuid.uuid4().hex[:8]}"
    database_url = await create_database(postgres_server_url, database)
    temporal_port = free_port()
    stack_file = tmp_path / "stack.json"
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": f"127.0.0.1:{temporal_port}",
        "DATABASE_URL": database_url,
        "DSP_BASE_URL": "http://127.0.0.1:9",
    }
    command = [sys.executable, "dev.py", "up", "--workers", "0", "--state-dir", str(tmp_path)]
    up = await asyncio.create_subprocess_exec(
        *command,
        "--stack-file",
        str(stack_file),
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        stack = None
        deadline = time.monotonic() + 60
        while stack is None and up.returncode is None and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            stack = read_stack_file(stack_file)
        if stack is None:
            up.kill()
            pytest.fail((await up.communicate())[0].decode())
        assert stack["temporal"]["started"] is True
        assert stack["postgres"] == {"address": database_url, "started": False, "pid": None}
        assert stack["mock_dsp"]["started"] is False
        assert stack["temporal_address"] == f"127.0.0.1:{temporal_port}"
        assert (tmp_path / "temporal.db").exists()

        connection = await asyncpg.connect(asyncpg_dsn(database_url))
        try:
            assert await connection.fetchval("SELECT version_num FROM alembic_version")
        finally:
            await connection.close()

        up.send_signal(signal.SIGTERM)
        output = (await asyncio.wait_for(up.communicate(), 30))[0].decode()
        assert up.returncode == 0, output
        assert "PostgreSQL" in output and "(already running)" in output
        assert not stack_file.exists()
        assert not port_open("127.0.0.1", temporal_port)
    finally:
        if up.returncode is None:
            up.kill()
            await up.wait()
        await drop_database(postgres_server_url, database)


def test_dev_py_up_refuses_to_run_twice(tmp_path: Path) -> None:
    stack_file = tmp_path / "stack.json"
    stack_file.write_text(json.dumps({"pid": os.getpid(), "ready": True}))
    result = subprocess.run(
        [sys.executable, "dev.py", "up", "--stack-file", str(stack_file)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert "already runs" in result.stdout
