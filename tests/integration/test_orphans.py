"""A starter killed between its commit and its workflow starts leaves stored entities with
no workflow; the reconciler (the schedule every worker ensures, or `starter.py reconcile`)
starts them and they run to the end."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from devkit.mock_dsp.server import MockDspServer
from devkit.stack.temporal_server import TemporalDevServer
from dsp_integration.client import queries
from dsp_integration.client.progress import wait_for_batch
from dsp_integration.contracts import reconcile_schedule_id, workflow_id_for
from dsp_integration.database.engine import SessionFactory
from tests.integration.cli_support import STARTER, cli_env, run_cli
from tests.integration.dag import ad_group, advertiser, campaign
from tests.integration.harness import Stack, open_stack, stack_settings, write_entities

# `starter.py submit` that dies (SIGKILL, nothing flushed or cleaned up) right after the
# entities are committed, before the first workflow start.
KILLED_STARTER = f"""
import os, signal, sys
sys.path.insert(0, {str(STARTER.parent)!r})
import dsp_integration.client.submission

async def killed(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

dsp_integration.client.submission.start_entity_workflows = killed
from dsp_integration.commands.starter import main
main(sys.argv[1:])
"""


def _entities(prefix: str) -> list[dict[str, object]]:
    return [
        advertiser(f"{prefix}-adv"),
        campaign(f"{prefix}-cmp", f"{prefix}-adv"),
        ad_group(f"{prefix}-ag", f"{prefix}-cmp", []),
    ]


async def _submit_and_get_killed(stack: Stack, path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        KILLED_STARTER,
        "submit",
        str(path),
        env=cli_env(stack.settings),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == -signal.SIGKILL, (process.returncode, out, err)


async def _assert_orphaned(stack: Stack, client: Client, keys: list[str]) -> None:
    views = await queries.entity_views(stack.service, keys=keys)
    assert {v.status for v in views} == {"waiting"}
    for key in keys:
        try:
            await client.get_workflow_handle(workflow_id_for(key)).describe()
        except RPCError as error:
            if error.status is RPCStatusCode.NOT_FOUND:
                continue
            raise
        raise AssertionError(f"{key} has a workflow: the starter was not killed before it")


async def test_reconcile_command_restarts_what_a_killed_starter_stored(
    stack: Stack, temporal_client: Client, mock_dsp: MockDspServer, tmp_path: Path
) -> None:
    keys = [e["key"] for e in _entities("orph")]
    path = write_entities(tmp_path / "orph.json", "orph", _entities("orph"))
    await _submit_and_get_killed(stack, path)
    await _assert_orphaned(stack, temporal_client, [str(k) for k in keys])

    result = await run_cli(["reconcile", "--grace", "0"], cli_env(stack.settings))

    assert result.code == 0, result
    assert "3 workflows restarted" in result.stdout, result
    async with asyncio.timeout(60):
        counts = await wait_for_batch(stack.service, "orph", on_update=lambda _: None)
    assert counts == {"succeeded": 3}
    again = await run_cli(["reconcile", "--grace", "0"], cli_env(stack.settings))
    assert "0 workflows restarted" in again.stdout, again


async def test_the_worker_schedule_restarts_orphans_by_itself(
    clean_database: SessionFactory,
    database_url: str,
    temporal_server: TemporalDevServer,
    temporal_client: Client,
    mock_dsp: MockDspServer,
    tmp_path: Path,
) -> None:
    settings = stack_settings(
        database_url=database_url,
        temporal_address=temporal_server.address,
        dsp_base_url=mock_dsp.base_url,
        dsp_reconcile_interval=1.0,
        dsp_reconcile_grace=0.5,
    )
    schedule = temporal_client.get_schedule_handle(
        reconcile_schedule_id(settings.temporal_task_queue)
    )
    try:
        async with open_stack(settings, temporal_client) as stack:
            path = write_entities(tmp_path / "sched.json", "sched", _entities("sched"))
            await _submit_and_get_killed(stack, path)
            async with asyncio.timeout(60):
                counts = await wait_for_batch(stack.service, "sched", on_update=lambda _: None)
            assert counts == {"succeeded": 3}
    finally:
        await schedule.delete()
