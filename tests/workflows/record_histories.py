"""Record the histories that `test_replay.py` replays: representative runs of the entity
workflow against the real queue table and a fake DSP, on the time-skipping test server.

Run from the project root when a release is made: the histories go to
tests/histories/<the version in pyproject.toml>/, beside those of earlier releases whose runs
may still be open (docs/guides/workflow-changes.md).

    .venv/bin/python -m tests.workflows.record_histories [OUT_DIR] [--only SCENARIO ...]

The queue table is real: a scratch database on DATABASE_URL's PostgreSQL server, or on an
embedded one started for the run. Only the DSP is faked (tests/workflows/world.py).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import tomllib
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from temporalio.client import Client

from devkit.stack.ports import free_port
from devkit.stack.postgres import EmbeddedPostgres, create_database, drop_database
from dsp_integration.contracts import EntityStatus, EntityType, PriorityLevel
from dsp_integration.database.engine import SessionFactory, open_database
from dsp_integration.database.migrate import upgrade
from dsp_integration.workflows.activity_options import LOCAL_FAN_OUT_LIMIT
from tests.workflows.world import World, start_test_env

HISTORIES = Path(__file__).resolve().parent.parent / "histories"

REVIEW_REJECTS = [(0.0, "pending_review", None), (60.0, "rejected", "logo too small")]
REVIEW_APPROVES = [(0.0, "pending_review", None), (60.0, "approved", None)]
HOUR_LONG_REVIEW = [(0.0, "pending_review", None), (3600.0, "approved", None)]
SIX_HOUR_REVIEW = [(0.0, "pending_review", None), (6 * 3600.0, "approved", None)]
CAMPAIGN_FAILS = [(0.0, "pending", None), (10.0, "failed", "budget exceeds the account limit")]
CAMPAIGN_ACTIVE = [(0.0, "pending", None), (10.0, "active", None)]

# A scenario sets the world up, runs it, and returns the key whose latest run is recorded.
Scenario = Callable[[World], Awaitable[str]]


def _expect(actual: EntityStatus, expected: EntityStatus, what: str) -> None:
    if actual is not expected:
        raise RuntimeError(f"{what}: expected {expected.value}, got {actual.value}")


async def happy_path(world: World) -> str:
    """A campaign waits for its advertiser, is polled until active, and wakes its ad group."""
    acme = await world.add("acme", EntityType.ADVERTISERS)
    spring = await world.add("spring", EntityType.CAMPAIGNS, refs=["acme"])
    group = await world.add("group", EntityType.AD_GROUPS, refs=["spring"])
    await world.start(spring)
    await world.start(group)
    await world.start(acme)
    _expect((await world.result(group)).status, EntityStatus.SUCCEEDED, "happy_path")
    return spring


async def rejection(world: World) -> str:
    """A creative rejected in review; its ad group ends blocked."""
    await world.add("acme", EntityType.ADVERTISERS, status=EntityStatus.SUCCEEDED, dsp_id="adv_0")
    banner = await world.add(
        "banner", EntityType.CREATIVES, refs=["acme"], timelines=[REVIEW_REJECTS]
    )
    group = await world.add("group", EntityType.AD_GROUPS, refs=["banner"])
    await world.start(group)
    await world.start(banner)
    _expect((await world.result(banner)).status, EntityStatus.REJECTED, "rejection")
    _expect((await world.result(group)).status, EntityStatus.BLOCKED, "rejection dependant")
    return banner


async def cancel(world: World) -> str:
    """A creative cancelled while under review: archived at the DSP, its ad group blocked."""
    await world.add("acme", EntityType.ADVERTISERS, status=EntityStatus.SUCCEEDED, dsp_id="adv_0")
    banner = await world.add(
        "banner", EntityType.CREATIVES, refs=["acme"], timelines=[HOUR_LONG_REVIEW]
    )
    group = await world.add("group", EntityType.AD_GROUPS, refs=["banner"])
    await world.start(group)
    await world.start(banner)
    await world.until_state(banner, lambda s: s.status is EntityStatus.POLLING)
    await world.cancel(banner)
    _expect((await world.result(banner)).status, EntityStatus.CANCELLED, "cancel")
    _expect((await world.result(group)).status, EntityStatus.BLOCKED, "cancel dependant")
    return banner


async def resubmit(world: World) -> str:
    """The run started by `resubmit` after a rejection: reopen, PUT, poll, succeed."""
    await world.add("acme", EntityType.ADVERTISERS, status=EntityStatus.SUCCEEDED, dsp_id="adv_0")
    banner = await world.add(
        "banner", EntityType.CREATIVES, refs=["acme"], timelines=[REVIEW_REJECTS, REVIEW_APPROVES]
    )
    group = await world.add("group", EntityType.AD_GROUPS, refs=["banner"])
    await world.start(group)
    await world.start(banner)
    _expect((await world.result(banner)).status, EntityStatus.REJECTED, "resubmit, first run")
    _expect((await world.result(group)).status, EntityStatus.BLOCKED, "resubmit dependant")
    await world.resubmit(banner)
    _expect((await world.result(banner)).status, EntityStatus.SUCCEEDED, "resubmit")
    _expect((await world.result(group)).status, EntityStatus.SUCCEEDED, "reopened dependant")
    return banner


async def blocked_chain(world: World) -> str:
    """A -> B -> C -> D with A failing: C is told B ended blocked, and tells D."""
    await world.add("acme", EntityType.ADVERTISERS, status=EntityStatus.SUCCEEDED, dsp_id="adv_0")
    await world.add("a", EntityType.CAMPAIGNS, refs=["acme"], timelines=[CAMPAIGN_FAILS])
    await world.add("b", EntityType.AD_GROUPS, refs=["a"])
    c = await world.add("c", EntityType.AD_GROUPS, refs=["acme"], depends_on=["b"])
    d = await world.add("d", EntityType.AD_GROUPS, refs=["acme"], depends_on=["c"])
    for name in ("d", "c", "b", "a"):
        await world.start(world.k(name))
    _expect((await world.result(d)).status, EntityStatus.BLOCKED, "blocked_chain")
    _expect((await world.result(c)).status, EntityStatus.BLOCKED, "blocked_chain, middle")
    return c


async def continued_review(world: World) -> str:
    """A six-hour review: the run after continue-as-new, which starts from the carry."""
    await world.add("acme", EntityType.ADVERTISERS, status=EntityStatus.SUCCEEDED, dsp_id="adv_0")
    banner = await world.add(
        "banner", EntityType.CREATIVES, refs=["acme"], timelines=[SIX_HOUR_REVIEW]
    )
    await world.start(banner)
    _expect((await world.result(banner)).status, EntityStatus.SUCCEEDED, "continued_review")
    return banner


async def cancel_queued_post(world: World) -> str:
    """A cancel while the POST waits for its slot: the call is cancelled, nothing is sent."""
    acme = await world.add("acme", EntityType.ADVERTISERS)
    world.gate(acme, "submit")
    run = await world.start(acme)
    await world.until_state(acme, lambda s: s.status is EntityStatus.SUBMITTING)
    await world.cancel(acme)
    _expect((await run.result()).status, EntityStatus.CANCELLED, "cancel_queued_post")
    return acme


async def held_back(world: World) -> str:
    """The ad group's POST waits for its slot when its campaign is resubmitted: the POST is
    cancelled, it waits again and is released by the new version's success."""
    await world.add("acme", EntityType.ADVERTISERS, status=EntityStatus.SUCCEEDED, dsp_id="adv_0")
    spring = await world.add(
        "spring", EntityType.CAMPAIGNS, refs=["acme"], timelines=[CAMPAIGN_ACTIVE] * 2
    )
    group = await world.add("group", EntityType.AD_GROUPS, refs=["spring"])
    queued = world.gate(group, "submit")
    await world.start(group)
    await world.start(spring)
    await world.skip_time(30)
    await world.until_state(group, lambda s: s.status is EntityStatus.SUBMITTING)
    await world.resubmit(spring)
    await world.until_state(group, lambda s: s.status is EntityStatus.WAITING)
    queued.set()
    _expect((await world.result(group)).status, EntityStatus.SUCCEEDED, "held_back")
    return group


async def rekey_queued_post(world: World) -> str:
    """The batch is raised and weighted while the POST waits for its slot: the call is
    cancelled before it leaves and scheduled again with the new priority."""
    acme = await world.add("acme", EntityType.ADVERTISERS, batch="spring")
    world.gate(acme, "submit")
    run = await world.start(acme)
    await world.until(lambda: len(world.dsp_calls(acme, "submit")) == 1)
    await world.prioritise("spring", PriorityLevel.HIGH, 3.0)
    _expect((await run.result()).status, EntityStatus.SUCCEEDED, "rekey_queued_post")
    return acme


async def many_dependants(world: World) -> str:
    """An advertiser with more dependants than its ending's local activity tells: the rest
    are told by the regular, heartbeating `tell_dependants`."""
    acme = await world.add("acme", EntityType.ADVERTISERS)
    campaigns = [
        await world.add(f"spring{i}", EntityType.CAMPAIGNS, refs=["acme"])
        for i in range(LOCAL_FAN_OUT_LIMIT + 5)
    ]
    for campaign in campaigns:
        await world.start(campaign)
    await world.start(acme)
    for campaign in campaigns:
        _expect((await world.result(campaign)).status, EntityStatus.SUCCEEDED, "many_dependants")
    return acme


async def resubmit_on_the_way(world: World) -> str:
    """A resubmit while the POST's answer is on its way: the entity it names takes the new
    version as a PUT."""
    acme = await world.add("acme", EntityType.ADVERTISERS)
    answer = world.hold_answer(acme)
    await world.start(acme)
    await world.until(lambda: len(world.dsp_calls(acme, "submit")) == 1)
    await world.resubmit(acme)
    answer.set()
    _expect((await world.result(acme)).status, EntityStatus.SUCCEEDED, "resubmit_on_the_way")
    return acme


async def lost_post_found_out(world: World) -> str:
    """A cancel while a POST whose answer was lost waits to be retried: what it created is
    found out and archived."""
    acme = await world.add("acme", EntityType.ADVERTISERS)
    world.lose_answers(acme)
    await world.start(acme)
    await world.until(lambda: [c.outcome for c in world.dsp_calls(acme)] == ["lost"])
    await world.cancel(acme)
    _expect((await world.result(acme)).status, EntityStatus.CANCELLED, "lost_post_found_out")
    return acme


SCENARIOS: dict[str, Scenario] = {
    "happy_path": happy_path,
    "rejection": rejection,
    "cancel": cancel,
    "resubmit": resubmit,
    "blocked_chain": blocked_chain,
    "continued_review": continued_review,
    "cancel_queued_post": cancel_queued_post,
    "held_back": held_back,
    "rekey_queued_post": rekey_queued_post,
    "many_dependants": many_dependants,
    "resubmit_on_the_way": resubmit_on_the_way,
    "lost_post_found_out": lost_post_found_out,
}


async def record(
    client: Client, sessions: SessionFactory, name: str, scenario: Scenario, out: Path
) -> Path:
    world = World(client, sessions)
    async with world.workers():
        key = await scenario(world)
        await world.result(key)  # its last workflow task completed
        history = await world.handle(key).fetch_history()
        await world.terminate_all()
    path = out / f"{name}.json"
    path.write_text(history.to_json() + "\n")
    return path


async def record_all(server_url: str, out: Path, only: list[str] | None = None) -> None:
    """Every scenario (or those named in `only`), in a scratch database (migrated to head) on
    `server_url`'s server."""
    name = f"dsp_histories_{uuid.uuid4().hex[:10]}"
    database_url = await create_database(server_url, name)
    try:
        await upgrade(database_url)
        env = await start_test_env()
        try:
            async with open_database(database_url) as sessions:
                for scenario_name, scenario in SCENARIOS.items():
                    if only and scenario_name not in only:
                        continue
                    path = await record(env.client, sessions, scenario_name, scenario, out)
                    print(f"recorded {path}")
        finally:
            await env.shutdown()
    finally:
        await drop_database(server_url, name)
    # Give the SDK's core threads a moment to let go of Python before the interpreter
    # finalizes; exiting at once aborts now and then (PyGILState_Release).
    await asyncio.sleep(0.2)


def _project_version() -> str:
    with (HISTORIES.parent.parent / "pyproject.toml").open("rb") as file:
        return str(tomllib.load(file)["project"]["version"])


def main() -> None:
    """PostgreSQL is DATABASE_URL's server when set, else an embedded one for the run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", type=Path, default=HISTORIES / _project_version())
    parser.add_argument(
        "--only", action="append", choices=sorted(SCENARIOS), help="record just this scenario"
    )
    args = parser.parse_args()
    out, only = args.out, args.only
    out.mkdir(parents=True, exist_ok=True)
    configured = os.environ.get("DATABASE_URL")
    if configured:
        asyncio.run(record_all(configured, out, only))
        return
    with tempfile.TemporaryDirectory() as scratch:
        server = EmbeddedPostgres(data_dir=Path(scratch) / "data", port=free_port())
        server.start()
        try:
            asyncio.run(record_all(server.url, out, only))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
