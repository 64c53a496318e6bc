"""Priority from the command line and the HTTP API: `submit --priority`, `status` showing it,
`resubmit --priority`, `prioritise BATCH LEVEL` for the entities that have not ended, and
one-line refusals (exit 2) for an unknown batch or level; the same over HTTP."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from devkit.mock_dsp.server import MockDspServer
from dsp_integration.client import queries
from tests.integration.cli_support import cli_env, run_cli
from tests.integration.console_support import running_console
from tests.integration.dag import advertiser, creative
from tests.integration.harness import Stack, write_entities


def _hold_reviews(mock_dsp: MockDspServer, keys: list[str]) -> None:
    """The creatives stay under review for the whole test, however slowly the CLI runs."""
    for key in keys:
        mock_dsp.dsp.hold(key)


async def _priorities(stack: Stack, batch: str) -> dict[str, str]:
    return {v.key: v.priority for v in await queries.entity_views(stack.service, batch=batch)}


async def test_priority_through_the_cli(
    stack: Stack, mock_dsp: MockDspServer, tmp_path: Path
) -> None:
    _hold_reviews(mock_dsp, ["pr-cr-1", "pr-cr-2"])
    env = cli_env(stack.settings)
    entities = [advertiser("pr-adv"), creative("pr-cr-1", "pr-adv"), creative("pr-cr-2", "pr-adv")]
    path = write_entities(tmp_path / "pr.json", "pr", entities)

    refused = await run_cli(["submit", path, "--priority", "urgent"], env)
    assert refused.code == 2, refused
    assert refused.stderr.strip() == "error: unknown priority 'urgent': use high, normal or low"
    assert await queries.entity_views(stack.service, batch="pr") == []  # nothing stored

    submitted = await run_cli(["submit", path, "--priority", "HIGH"], env)
    assert submitted.code == 0, submitted
    assert "priority high" in submitted.stdout
    assert set((await _priorities(stack, "pr")).values()) == {"high"}

    shown = await run_cli(["status", "pr-cr-1", "--json"], env)
    assert shown.code == 0, shown
    assert json.loads(shown.stdout)[0]["priority"] == "high"
    table = await run_cli(["status", "pr-cr-1", "pr-adv"], env)
    assert table.code == 0 and "priority" in table.stdout and "high" in table.stdout, table
    summary = await run_cli(["status", "--batch", "pr"], env)
    assert summary.code == 0 and "priority high" in summary.stdout, summary

    # The advertiser ends at once; the creatives stay under review.
    async with asyncio.timeout(30):
        while True:
            (adv,) = await queries.entity_views(stack.service, keys=["pr-adv"])
            if adv.finished_at is not None:
                break
            await asyncio.sleep(0.1)
    lowered = await run_cli(["prioritise", "pr", "low"], env)
    assert lowered.code == 0, lowered
    assert "2 entities that have not ended now at priority low" in lowered.stdout
    assert await _priorities(stack, "pr") == {
        "pr-adv": "high",  # ended: left as it was
        "pr-cr-1": "low",
        "pr-cr-2": "low",
    }

    for args, message in (
        (["prioritise", "nope", "high"], "error: unknown batch 'nope'"),
        (
            ["prioritise", "pr", "urgent"],
            "error: unknown priority 'urgent': use high, normal or low",
        ),
        (
            ["resubmit", "pr-cr-2", "--priority", "soon"],
            "error: unknown priority 'soon': use high, normal or low",
        ),
    ):
        bad = await run_cli(args, env)
        assert bad.code == 2, bad
        assert bad.stderr.strip() == message, bad

    resubmitted = await run_cli(["resubmit", "pr-cr-2", "--priority", "high"], env)
    assert resubmitted.code == 0, resubmitted
    assert "at priority high" in resubmitted.stdout
    assert (await _priorities(stack, "pr"))["pr-cr-2"] == "high"


def _file(batch: str, entities: list[dict[str, Any]]) -> bytes:
    return json.dumps({"batch": batch, "entities": entities}).encode()


async def test_priority_through_the_api(stack: Stack, mock_dsp: MockDspServer) -> None:
    _hold_reviews(mock_dsp, ["pa-cr"])
    entities = [advertiser("pa-adv"), creative("pa-cr", "pa-adv")]
    async with running_console(stack.settings, stack.service) as console:
        async with console.client() as api:
            bad = await api.post("/api/batches?priority=urgent", content=_file("pa", entities))
            assert bad.status_code == 422, bad.text
            assert bad.json()["problems"][0]["field"].endswith("priority")

            posted = await api.post("/api/batches?priority=low", content=_file("pa", entities))
            assert posted.status_code == 201, posted.text
            assert posted.json()["priority"] == "low"
            entity = (await api.get("/api/entities/pa-cr")).json()
            assert entity["priority"] == "low"
            assert (await api.get("/api/batches/pa")).json()["priority"] == "low"

            raised = await api.post("/api/batches/pa/priority", json={"priority": "high"})
            assert raised.status_code == 202, raised.text
            assert raised.json()["batch"] == "pa" and raised.json()["priority"] == "high"
            assert (await api.get("/api/entities/pa-cr")).json()["priority"] == "high"
            listed = {b["name"]: b for b in (await api.get("/api/batches")).json()}
            assert listed["pa"]["priority"] == "high"

            unknown = await api.post("/api/batches/nope/priority", json={"priority": "high"})
            assert unknown.status_code == 404, unknown.text
            wrong = await api.post("/api/batches/pa/priority", json={"priority": "urgent"})
            assert wrong.status_code == 422, wrong.text


async def test_weight_through_the_cli_and_the_api(
    stack: Stack, mock_dsp: MockDspServer, tmp_path: Path
) -> None:
    _hold_reviews(mock_dsp, ["wt-cr"])
    env = cli_env(stack.settings)
    entities = [advertiser("wt-adv"), creative("wt-cr", "wt-adv")]
    path = write_entities(tmp_path / "wt.json", "wt", entities)

    for weight in ("0", "heavy", "1001", "nan"):
        refused = await run_cli(["submit", path, "--weight", weight], env)
        assert refused.code == 2, refused
        assert refused.stderr.strip() == (
            f"error: bad weight '{weight}': use a number from 0.001 to 1000 (1 is the default "
            "share)"
        )
    assert await queries.entity_views(stack.service, batch="wt") == []  # nothing stored

    submitted = await run_cli(["submit", path, "--weight", "2.5"], env)
    assert submitted.code == 0, submitted
    assert "weight 2.5" in submitted.stdout
    shown = await run_cli(["status", "wt-cr", "--json"], env)
    assert json.loads(shown.stdout)[0]["fairness_weight"] == 2.5
    summary = await run_cli(["status", "--batch", "wt"], env)
    assert summary.code == 0 and "weight 2.5" in summary.stdout, summary

    nothing = await run_cli(["prioritise", "wt"], env)
    assert nothing.code == 2, nothing
    assert nothing.stderr.strip() == "error: prioritise: give a LEVEL, a --weight or both"
    reweighed = await run_cli(["prioritise", "wt", "--weight", "4"], env)
    assert reweighed.code == 0, reweighed
    assert "now at weight 4" in reweighed.stdout
    (creative_view,) = await queries.entity_views(stack.service, keys=["wt-cr"])
    assert (creative_view.priority, creative_view.fairness_weight) == ("normal", 4.0)

    async with running_console(stack.settings, stack.service) as console:
        async with console.client() as api:
            bad = await api.post("/api/batches?weight=5000", content=_file("wt2", entities))
            assert bad.status_code == 422, bad.text
            assert bad.json()["problems"][0]["field"] == "fairness_weight"
            both = await api.post(
                "/api/batches/wt/priority", json={"priority": "high", "fairness_weight": 0.5}
            )
            assert both.status_code == 202, both.text
            assert both.json()["fairness_weight"] == 0.5 and both.json()["priority"] == "high"
            batch = (await api.get("/api/batches/wt")).json()
            assert (batch["priority"], batch["fairness_weight"]) == ("high", 0.5)
            empty = await api.post("/api/batches/wt/priority", json={})
            # The document says so too (minProperties: 1).
            assert empty.status_code == 422, empty.text
            assert "give a priority" in empty.json()["problems"][0]["message"]
            wrong = await api.post("/api/batches/wt/priority", json={"fairness_weight": -1})
            assert wrong.status_code == 422, wrong.text
