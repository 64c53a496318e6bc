"""The DSP token is a secret: a sentinel token used for a whole run (with faults, so error
paths are taken too) appears in no workflow history (inputs, results, failures: what the
web UI shows), in no table of the database, in no worker log or CLI output. The mock DSP
refuses requests without it. The same holds for a client secret and for every token the DSP
issued for it (expiring every few seconds, so renewals and `401 token_expired` happen)."""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy import text
from temporalio.client import Client

from devkit.mock_dsp.config import MockSeat
from devkit.mock_dsp.server import MockDspServer
from devkit.stack.temporal_server import TemporalDevServer
from devkit.stack.workers import WorkerProcesses, worker_env
from dsp_integration.config import Settings
from dsp_integration.database.engine import SessionFactory
from tests.integration.cli_support import cli_env, run_cli
from tests.integration.conftest import mock_config
from tests.integration.dag import launch_dag
from tests.integration.fault_support import dump_database, histories_json
from tests.integration.harness import stack_settings, write_entities

# The mock's tokens are `secrets.token_urlsafe(32)`; its request log names each by the first
# 12 hex digits of its SHA-256 (`token_id`), so a token can be recognised without the log
# holding one.
TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{43,}")
TOKEN_LENGTH = 43


@dataclass(frozen=True)
class Run:
    """What a run with one worker left behind outside the database and the histories."""

    worker_log: str
    cli_output: str


async def run_a_batch_with_one_worker(
    settings: Settings, env: dict[str, str], path: Path, batch: str, log_dir: Path
) -> Run:
    """The CLI submits the batch and waits, then asks for its status and an audit."""
    with WorkerProcesses(1, worker_env(settings), log_dir=log_dir) as workers:
        submitted = await run_cli(["submit", path, "--wait"], env)
        status = await run_cli(["status", "--batch", batch, "--json"], env)
        audit = await run_cli(["audit", f"{batch}-cr0b", "--json"], env)
        log_path = workers.log_path(0)
    assert submitted.code == 1, submitted  # a rejection and blocks: "some ended otherwise"
    assert status.code == audit.code == 0
    assert log_path is not None
    worker_log = log_path.read_text()
    assert "worker running" in worker_log
    cli_output = "".join(r.stdout + r.stderr for r in (submitted, status, audit))
    return Run(worker_log=worker_log, cli_output=cli_output)


def places_a_secret_could_leak_into(
    histories: dict[str, str], database: str, run: Run
) -> dict[str, str]:
    return {
        **{f"history {name}": body for name, body in histories.items()},
        "database": database,
        "worker log": run.worker_log,
        "CLI output": run.cli_output,
    }


def test_the_mock_dsp_refuses_requests_without_the_token(mock_dsp: MockDspServer) -> None:
    token = mock_dsp.dsp.config.token
    path = "/v1/advertisers/adv_000000/status"
    with httpx.Client(base_url=mock_dsp.base_url) as http:
        missing = http.get(path)
        wrong = http.get(path, headers={"Authorization": f"Bearer {token}x"})
        not_bearer = http.get(path, headers={"Authorization": f"Basic {token}"})
        right = http.get(path, headers={"Authorization": f"Bearer {token}"})
    for answer in (missing, wrong, not_bearer):
        assert answer.status_code == 401
        assert answer.json()["error"]["code"] == "unauthorized"
    assert right.status_code == 404
    assert token not in missing.text + wrong.text + right.text


async def test_a_sentinel_token_leaks_nowhere(
    clean_database: SessionFactory,
    database_url: str,
    temporal_server: TemporalDevServer,
    temporal_client: Client,
    mock_dsp: MockDspServer,
    tmp_path: Path,
) -> None:
    sentinel = f"sentinel-token-{uuid.uuid4()}"
    mock_dsp.dsp.config = mock_config().model_copy(
        update={"token": sentinel, "fault_rate": 0.15, "seed": 3, "slow_seconds": 2.5}
    )
    settings = stack_settings(
        database_url=database_url,
        temporal_address=temporal_server.address,
        dsp_base_url=mock_dsp.base_url,
        dsp_api_token=sentinel,
    )
    entities, expected = launch_dag("sec", advertisers=1)
    path = write_entities(tmp_path / "sec.json", "sec", entities)
    env = cli_env(settings)
    run = await run_a_batch_with_one_worker(settings, env, path, "sec", tmp_path / "logs")

    log = mock_dsp.dsp.request_log
    assert log and all(r.token_valid for r in log)
    assert any(r.fault for r in log)
    histories = await histories_json(temporal_client, settings.temporal_task_queue)
    assert len(histories) >= len(expected)
    assert all(f"dsp-entity-{key}" in " ".join(histories) for key in expected)
    database = await dump_database(clean_database)
    async with clean_database() as session:
        audited = await session.scalar(text("SELECT count(*) FROM dsp_entity_audit"))
    assert audited and "sec-adv0" in database

    places = places_a_secret_could_leak_into(histories, database, run)
    for place, content in places.items():
        assert sentinel not in content, f"the token leaked into the {place}"
        assert "Bearer" not in content, f"an Authorization header in the {place}"


def issued_token_ids_in(content: str) -> set[str]:
    """The `token_id` of every token-shaped piece of `content` (every 43-character window of
    a run of URL-safe characters)."""
    found = set()
    for run in TOKEN_SHAPE.findall(content):
        for start in range(len(run) - TOKEN_LENGTH + 1):
            window = run[start : start + TOKEN_LENGTH]
            found.add(hashlib.sha256(window.encode()).hexdigest()[:12])
    return found


async def test_a_client_secret_and_the_tokens_issued_for_it_leak_nowhere(
    clean_database: SessionFactory,
    database_url: str,
    temporal_server: TemporalDevServer,
    temporal_client: Client,
    mock_dsp: MockDspServer,
    tmp_path: Path,
) -> None:
    client_secret = f"sentinel-secret-{uuid.uuid4()}"
    client_id = "secrets-test-client"
    mock_dsp.dsp.config = mock_config().model_copy(
        update={
            "seats": {
                "default": MockSeat(
                    client_id=client_id, client_secret=client_secret, rate_limit=30, rate_window=3
                )
            },
            "token_lifetime": 4.0,
            "fault_rate": 0.1,
            "seed": 5,
            "slow_seconds": 2.5,
        }
    )
    settings = stack_settings(
        database_url=database_url,
        temporal_address=temporal_server.address,
        dsp_base_url=mock_dsp.base_url,
        dsp_api_token=None,
        dsp_client_id=client_id,
        dsp_client_secret=client_secret,
    )
    entities, expected = launch_dag("cs", advertisers=1)
    path = write_entities(tmp_path / "cs.json", "cs", entities)
    env = cli_env(
        settings,
        DSP_API_TOKEN="",
        DSP_CLIENT_ID=client_id,
        DSP_CLIENT_SECRET=client_secret,
    )
    run = await run_a_batch_with_one_worker(settings, env, path, "cs", tmp_path / "logs")

    logins = [r for r in mock_dsp.dsp.token_log if r.status == 200]
    assert len(logins) >= 2, "the run outlived a token: the worker logged in again"
    log = mock_dsp.dsp.request_log
    assert log and not any(r.status == 401 and not r.token_expired for r in log)
    issued = {r.token_id for r in log}
    histories = await histories_json(temporal_client, settings.temporal_task_queue)
    assert all(f"dsp-entity-{key}" in " ".join(histories) for key in expected)
    database = await dump_database(clean_database)
    assert "cs-adv0" in database

    places = places_a_secret_could_leak_into(histories, database, run)
    for place, content in places.items():
        assert client_secret not in content, f"the client secret leaked into the {place}"
        assert not issued & issued_token_ids_in(content), f"a token leaked into the {place}"
        assert "Bearer" not in content, f"an Authorization header in the {place}"
