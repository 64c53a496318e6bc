"""The tutorial, run as a reader would: its `starter.py` commands in order, as subprocesses,
against the dev stack (a worker, Temporal, PostgreSQL and the mock DSP over HTTP). What stands
up the stack on the page (`make install`, `make up`) is what this test's fixtures do; those
commands are checked against their parsers in tests/unit/test_docs_site.py."""

from __future__ import annotations

import asyncio
import time

import pytest

from devkit.docs.tutorial import tutorial_commands
from devkit.mock_dsp.server import MockDspServer
from dsp_integration.client import queries
from dsp_integration.contracts import TERMINAL_STATUSES
from tests.integration.cli_support import cli_env, run_cli
from tests.integration.harness import Stack

BATCH = "demo-spring-launch"


async def _batch_statuses(stack: Stack) -> dict[str, str]:
    views = await queries.entity_views(stack.service, batch=BATCH)
    return {view.key: view.status for view in views}


async def _wait_until_ended(stack: Stack, within: float = 30) -> dict[str, str]:
    deadline = time.monotonic() + within
    while True:
        statuses = await _batch_statuses(stack)
        if statuses and all(status in TERMINAL_STATUSES for status in statuses.values()):
            return statuses
        if time.monotonic() > deadline:
            pytest.fail(f"the batch has not ended after {within:.0f} s: {statuses}")
        await asyncio.sleep(0.2)


@pytest.mark.timeout(120)
async def test_the_tutorials_commands_do_what_the_tutorial_says(
    stack: Stack, mock_dsp: MockDspServer
) -> None:
    env = cli_env(stack.settings)
    ran = []
    for command in tutorial_commands():
        words = list(command.words)
        if words[:2] != ["python", "starter.py"] or words[2] == "serve":
            continue  # the stack (make, dev.py up, serve) is this test's fixtures
        result = await run_cli(words[2:], env)
        assert result.code == command.expected_exit, f"{command.text}\n{result}"
        assert "Traceback" not in result.stderr, result
        ran.append((words[2], result))
        if words[2] == "submit":
            first = await _batch_statuses(stack)
            assert first["demo-globex-flashy"] == "rejected"
            assert first["demo-globex-awareness"] == "blocked"
            assert list(first.values()).count("succeeded") == len(first) - 2
        if words[2] == "resubmit":
            assert "demo-globex-awareness" in result.stdout  # the dependant it reopens
            await _wait_until_ended(stack)
    assert [name for name, _ in ran] == [
        "submit",
        "status",
        "status",
        "audit",
        "resubmit",
        "status",
    ]
    # What step 3 says the reader sees.
    _, batch_status = ran[1]
    assert "demo-globex-flashy" in batch_status.stdout and "rejected" in batch_status.stdout
    _, audit = ran[3]
    assert "POST /v1/creatives" in audit.stdout
    # What step 4 says: every entity succeeded, and the creative was PUT, not POSTed again.
    assert set((await _batch_statuses(stack)).values()) == {"succeeded"}
    posts = [r for r in mock_dsp.dsp.request_log if r.method == "POST" and r.status == 201]
    assert len({r.idempotency_key.split(":v")[0] for r in posts if r.idempotency_key}) == 11
    assert any(r.method == "PUT" and "/v1/creatives/" in r.path for r in mock_dsp.dsp.request_log)
