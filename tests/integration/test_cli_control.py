"""Cancel and resubmit end to end: the real CLI (`starter.py cancel|resubmit` subprocesses)
against a worker, Temporal, PostgreSQL and the mock DSP over HTTP."""

from __future__ import annotations

import asyncio
import getpass
import json
import time
from pathlib import Path

import pytest

from devkit.mock_dsp.server import MockDspServer
from dsp_integration.client import queries
from dsp_integration.client.actors import cli_actor
from dsp_integration.client.queries import EntityView
from dsp_integration.client.submission import read_submission, submit
from tests.integration.cli_support import cli_env, run_cli
from tests.integration.conftest import mock_config
from tests.integration.dag import ad_group, advertiser, campaign, creative
from tests.integration.fault_support import end_statuses
from tests.integration.harness import Stack, write_entities

REVIEW_SECONDS = 4.0


async def _view(stack: Stack, key: str) -> EntityView:
    (view,) = await queries.entity_views(stack.service, keys=[key])
    return view


async def _wait_for(stack: Stack, key: str, status: str, within: float = 30) -> EntityView:
    deadline = time.monotonic() + within
    while True:
        view = await _view(stack, key)
        if view.status == status:
            return view
        if time.monotonic() > deadline:
            pytest.fail(f"{key} is {view.status}, not {status}, after {within:.0f} s")
        await asyncio.sleep(0.1)


async def test_cancel_and_resubmit_through_the_cli(
    stack: Stack, mock_dsp: MockDspServer, tmp_path: Path
) -> None:
    mock_dsp.dsp.config = mock_config().model_copy(update={"review_seconds": REVIEW_SECONDS})
    after = ad_group("ctl-ag-after", "ctl-cmp", [])
    after["depends_on"] = ["ctl-ag-wait"]
    entities = [
        advertiser("ctl-adv"),
        campaign("ctl-cmp", "ctl-adv"),
        creative("ctl-cr-slow", "ctl-adv"),
        creative("ctl-cr-cancel", "ctl-adv"),
        creative("ctl-cr-bad", "ctl-adv", reject=True),
        ad_group("ctl-ag-wait", "ctl-cmp", ["ctl-cr-slow"]),
        after,
        ad_group("ctl-ag-bad", "ctl-cmp", ["ctl-cr-bad"]),
    ]
    path = write_entities(tmp_path / "c.json", "ctl", entities)
    # Both creatives stay under review until released: the cancels below find them there
    # however long the CLI takes to start.
    mock_dsp.dsp.hold("ctl-cr-cancel")
    mock_dsp.dsp.hold("ctl-cr-slow")
    await submit(stack.service, read_submission(path), actor=cli_actor())
    env = cli_env(stack.settings)

    # Under review at the DSP, and waiting on a creative under review: cancel both.
    under_review = await _wait_for(stack, "ctl-cr-cancel", "polling")
    assert (await _view(stack, "ctl-ag-wait")).status == "waiting"
    cancels = await asyncio.gather(
        run_cli(["cancel", "ctl-cr-cancel"], env), run_cli(["cancel", "ctl-ag-wait"], env)
    )
    assert [r.code for r in cancels] == [0, 0], cancels
    assert "was polling" in cancels[0].stdout and "was waiting" in cancels[1].stdout
    mock_dsp.dsp.release("ctl-cr-slow")

    # A rejected creative blocks its ad group; fixed and resubmitted, it unblocks it.
    rejected = await _wait_for(stack, "ctl-cr-bad", "rejected")
    assert (await _wait_for(stack, "ctl-ag-bad", "blocked")).blocked_by == "ctl-cr-bad"
    fixed = creative("ctl-cr-bad", "ctl-adv")["payload"]
    (tmp_path / "fixed.json").write_text(json.dumps(fixed))
    resubmitted = await run_cli(
        ["resubmit", "ctl-cr-bad", "--payload", tmp_path / "fixed.json"], env
    )
    assert resubmitted.code == 0, resubmitted
    assert "payload version 2" in resubmitted.stdout
    await _wait_for(stack, "ctl-ag-bad", "waiting", within=15)

    statuses = await end_statuses(stack.service, [e["key"] for e in entities], within=60)
    assert statuses == {
        "ctl-adv": "succeeded",
        "ctl-cmp": "succeeded",
        "ctl-cr-slow": "succeeded",
        "ctl-cr-cancel": "cancelled",
        "ctl-cr-bad": "succeeded",
        "ctl-ag-wait": "cancelled",
        "ctl-ag-after": "blocked",
        "ctl-ag-bad": "succeeded",
    }
    views = {v.key: v for v in await queries.entity_views(stack.service, batch="ctl")}
    assert views["ctl-ag-after"].blocked_by == "ctl-ag-wait"
    assert views["ctl-cr-bad"].payload_version == 2

    log = mock_dsp.dsp.request_log
    # The cancelled creative was archived at the DSP; the cancelled ad group never sent.
    assert under_review.dsp_id is not None
    assert mock_dsp.dsp.status_of(under_review.dsp_id) == "archived"
    assert any(r.method == "DELETE" and under_review.dsp_id in r.path for r in log)
    assert not any(r.idempotency_key and "ctl-ag-wait" in r.idempotency_key for r in log)
    assert not any(r.idempotency_key and "ctl-ag-after" in r.idempotency_key for r in log)
    # The fix was a PUT on the same DSP entity, not a second one.
    assert views["ctl-cr-bad"].dsp_id == rejected.dsp_id
    puts = [r for r in log if r.method == "PUT"]
    assert [r.path for r in puts] == [f"/v1/creatives/{rejected.dsp_id}"]
    assert puts[0].body["name"] == fixed["name"]
    creative_posts = [r for r in log if r.method == "POST" and r.path == "/v1/creatives"]
    assert sum(1 for r in creative_posts if r.created_id) == 3
    assert mock_dsp.dsp.status_of(rejected.dsp_id or "") == "approved"

    audit = await run_cli(["audit", "ctl-cr-bad", "--json"], env)
    assert audit.code == 0, audit
    answered = [(r["method"], r["response_status"]) for r in json.loads(audit.stdout)]
    assert answered.count(("POST", 201)) == 1 and answered.count(("PUT", 200)) == 1

    # The action log names the OS user behind each command, refusals included.
    refused = await run_cli(["cancel", "ctl-adv"], env)
    assert refused.code != 0 and "already ended" in refused.stderr
    actions = await run_cli(["actions", "--batch", "ctl", "--json"], env)
    assert actions.code == 0, actions
    rows = json.loads(actions.stdout)
    summary = [(r["action"], r["key"], r["outcome"]) for r in rows]
    assert summary[:2] == [
        ("cancel", "ctl-adv", "refused"),
        ("resubmit", "ctl-cr-bad", "accepted"),
    ]
    # The two cancels ran at once: in either order.
    assert sorted(summary[2:4]) == [
        ("cancel", "ctl-ag-wait", "accepted"),
        ("cancel", "ctl-cr-cancel", "accepted"),
    ]
    assert summary[4:] == [("submit", None, "accepted")]  # by this test, not the CLI
    me = getpass.getuser()
    cli = {"name": me, "role": "admin", "via": "cli", "address": None, "os_user": me}
    assert all(r["actor"] == cli for r in rows[:4])
    assert "already ended" in rows[0]["reason"]
    assert (rows[1]["old_version"], rows[1]["new_version"]) == (1, 2)
    table = await run_cli(["actions", "--key", "ctl-cr-bad"], env)
    assert table.code == 0 and "resubmit" in table.stdout and me in table.stdout
