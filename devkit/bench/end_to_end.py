"""2,000 entities end to end on 2 worker processes, with the DSP limit out of the way.

    DATABASE_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/postgres \
        .venv/bin/python -m devkit.bench.end_to_end [--entities 2000] [--workers 2] [--sample 100]

Prints end-to-end entities per second, workflow tasks and history events per entity (from
the histories of a sample of workflows, every run of each), worker memory (peak RSS of each
worker process) and where the CPU went (seconds per process), which is the profile that
matters on a 2-core machine.

    .venv/bin/python -m devkit.bench.end_to_end --review-days 3

instead measures one creative under a review of that many days on the time-skipping test
server, with the workflow tests' harness (the real queue table, so DATABASE_URL is needed,
and a fake DSP): the runs continue-as-new makes and the history events per run.

`--revision REV` runs the 2,000 entities' workers from a git worktree of an earlier revision,
to compare with the current code (devkit/bench/revision.py); pairs run back to back on a
loaded machine compare better than runs far apart."""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
from collections import Counter
from pathlib import Path
from typing import get_args

from sqlalchemy import make_url, text
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from devkit.bench.cost import BackendCpu, cpu_seconds, database_counters, per_entity_lines
from devkit.bench.revision import WorkerCode, worker_code_argument
from devkit.bench.stack import BenchStack, StackOptions, open_bench_stack
from devkit.bench.submit_10k import entity_lines, write_jsonl
from dsp_integration.client.actors import cli_actor
from dsp_integration.client.progress import wait_for_batch
from dsp_integration.client.submission import read_submission, submit
from dsp_integration.contracts import TERMINAL_STATUSES, workflow_id_for
from dsp_integration.worker.runtime import EventLoop

BATCH = "bench-e2e"
ENDED = {status.value for status in TERMINAL_STATUSES}
# PostgreSQL backends report their statistics at most every 10 s while idle.
STATS_FLUSH_SECONDS = 11
UNLIMITED = 100_000  # requests per 1 s window: the DSP limit out of the way


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def temporal_pid(address: str) -> int | None:
    """The dev server of this stack (other `temporal` processes may run on the machine)."""
    port = address.rpartition(":")[2]
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if args and args[0].endswith(b"temporal") and port.encode() in args:
            return int(proc.name)
    return None


STAGES = text(
    """
    SELECT entity_type,
           avg(extract(epoch FROM submitted_at - created_at)) AS to_submit,
           avg(extract(epoch FROM finished_at - submitted_at)) AS submit_to_end,
           avg(extract(epoch FROM finished_at - created_at)) AS total
    FROM dsp_entity_queue WHERE batch = :batch GROUP BY entity_type ORDER BY total
    """
)


async def history_figures(client: Client, keys: list[str]) -> tuple[Counter[str], int]:
    """Events, workflow tasks and runs over every run of each sampled workflow."""
    totals: Counter[str] = Counter()
    runs = 0
    for key in keys:
        run_ids = [
            e.run_id async for e in client.list_workflows(f'WorkflowId="{workflow_id_for(key)}"')
        ]
        for run_id in run_ids:
            runs += 1
            history = await client.get_workflow_handle(
                workflow_id_for(key), run_id=run_id
            ).fetch_history()
            totals["events"] += len(history.events)
            for event in history.events:
                totals[f"event:{EventType.Name(event.event_type).removeprefix('EVENT_TYPE_')}"] += 1
                if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
                    totals["workflow_tasks"] += 1
                elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
                    totals["workflow_task_failures"] += 1
                elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                    totals["activities"] += 1
                elif event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED:
                    totals["markers"] += 1
    return totals, runs


async def run(
    entities: int,
    workers: int,
    sample: int,
    sandbox: bool,
    dynamic_config: tuple[str, ...] = (),
    event_loop: EventLoop = "uvloop",
    worker_code: WorkerCode | None = None,
) -> int:
    options = StackOptions(
        worker_code=worker_code or WorkerCode(),
        workflow_sandbox=sandbox,
        event_loop=event_loop,
        temporal_dynamic_config=dynamic_config,
        workers=workers,
        rate_limit=UNLIMITED,
        rate_window=1.0,
        review_seconds=1.0,
        pending_seconds=0.3,
        propagation_delay=0.1,
        poll_min_interval=0.5,
        poll_max_interval=2.0,
    )
    async with open_bench_stack(options) as stack:
        return await measure(stack, entities, sample)


async def measure(stack: BenchStack, entities: int, sample: int) -> int:
    workload = entity_lines(entities, "e2e")
    path = write_jsonl(Path(stack.workers.log_dir or "/tmp") / "e2e.jsonl", workload)
    pids = [pid for pid in stack.workers.pids if pid is not None]
    server = temporal_pid(stack.settings.temporal_address)
    await asyncio.sleep(3)  # workers connected and polling
    database = make_url(stack.settings.effective_database_url).database or ""
    backends = BackendCpu(database)
    backends.start()
    async with stack.service.sessions() as session:
        counters_before = await database_counters(session)
    cpu_before = {pid: cpu_seconds(pid) for pid in [*pids, *([server] if server else [])]}
    own_before = time.process_time()
    peak_rss = dict.fromkeys(pids, 0.0)
    idle_rss = {pid: rss_mib(pid) for pid in pids}
    in_flight = [0]  # entities stored and not yet ended, as the progress last counted
    peak_in_flight = 0

    def count_in_flight(counts: dict[str, int]) -> None:
        in_flight[0] = sum(n for status, n in counts.items() if status not in ENDED)

    async def watch_memory() -> None:
        nonlocal peak_in_flight
        while True:
            for pid in pids:
                peak_rss[pid] = max(peak_rss[pid], rss_mib(pid))
            peak_in_flight = max(peak_in_flight, in_flight[0])
            await asyncio.sleep(1)

    watcher = asyncio.create_task(watch_memory())
    backend_watcher = asyncio.create_task(backends.watch())
    began = time.perf_counter()
    report = await submit(stack.service, read_submission(path, BATCH), actor=cli_actor())
    submitted = time.perf_counter() - began
    counts = await wait_for_batch(stack.service, report.batch, on_update=count_in_flight)
    elapsed = time.perf_counter() - began
    watcher.cancel()
    backends.sample()
    backend_watcher.cancel()
    cpu = {pid: cpu_seconds(pid) - before for pid, before in cpu_before.items()}
    own_cpu = time.process_time() - own_before

    keys = random.Random(5).sample([e["key"] for e in workload], min(sample, len(workload)))
    totals, runs = await history_figures(stack.client, keys)
    requests = len(stack.mock.dsp.request_log)
    answers = Counter(r.status for r in stack.mock.dsp.request_log)
    async with stack.service.sessions() as session:
        stages = (await session.execute(STAGES, {"batch": BATCH})).all()
    await asyncio.sleep(STATS_FLUSH_SECONDS)
    async with stack.service.sessions() as session:
        counters = await database_counters(session)
    counters.subtract(counters_before)

    print(f"entities: {entities} on {len(pids)} workers; final statuses {dict(counts)}")
    print(f"submit (store + start): {submitted:.1f} s")
    print(f"end to end: {elapsed:.1f} s, {entities / elapsed:.1f} entities/s")
    print(f"DSP requests: {requests} ({requests / entities:.2f} per entity), {dict(answers)}")
    for entity_type, to_submit, submit_to_end, total in stages:
        print(
            f"  {entity_type:<12} mean s: stored->POST {to_submit:.1f}, "
            f"POST->terminal {submit_to_end:.1f}, total {total:.1f}"
        )
    print(
        f"per entity (sample of {len(keys)}, {runs} runs): "
        f"{totals['workflow_tasks'] / len(keys):.1f} workflow tasks, "
        f"{totals['events'] / len(keys):.1f} history events, "
        f"{totals['activities'] / len(keys):.1f} activities, "
        f"{totals['markers'] / len(keys):.1f} markers, "
        f"{totals['workflow_task_failures']} workflow task failures"
    )
    print(
        f"in flight at most {peak_in_flight} entities; worker RSS before the run "
        + ", ".join(f"{idle_rss[pid]:.0f}" for pid in pids)
        + " MiB; growth to the peak per 1,000 in flight (each worker holds about half, its "
        "sticky cache at most DSP_MAX_CACHED_WORKFLOWS): "
        + ", ".join(
            f"{(peak_rss[pid] - idle_rss[pid]) / max(peak_in_flight, 1) * 1000:.0f}" for pid in pids
        )
        + " MiB"
    )
    for pid in pids:
        print(
            f"worker {pid}: peak RSS {peak_rss[pid]:.0f} MiB (VmHWM {peak_rss_mib(pid):.0f} MiB), "
            f"now {rss_mib(pid):.0f} MiB, CPU {cpu[pid]:.1f} s"
        )
    if server:
        print(
            f"temporal dev server CPU: {cpu[server]:.1f} s, "
            f"peak RSS (VmHWM) {peak_rss_mib(server):.0f} MiB"
        )
    print(f"PostgreSQL backends of the run's database CPU: {backends.seconds:.1f} s")
    print(f"bench process (mock DSP, submit, progress) CPU: {own_cpu:.1f} s")
    print(
        "CPU ms per entity: "
        + ", ".join(
            [
                *(f"worker {pid} {1000 * cpu[pid] / entities:.1f}" for pid in pids),
                *([f"dev server {1000 * cpu[server] / entities:.1f}"] if server else []),
                f"PostgreSQL {1000 * backends.seconds / entities:.1f}",
                f"bench {1000 * own_cpu / entities:.1f}",
            ]
        )
    )
    print("history events per entity by type:")
    for name, count in sorted(totals.items(), key=lambda item: -item[1]):
        if name.startswith("event:"):
            print(f"  {name.removeprefix('event:'):<40} {count / len(keys):6.2f}")
    print("database work per entity (the run's database, incl. submit and progress):")
    for line in per_entity_lines(counters, entities):
        print(line)
    ok = sum(counts.values()) == entities and set(counts) <= {"succeeded"}
    return 0 if ok else 1


async def long_review(days: float) -> int:
    from devkit.stack.postgres import create_database, drop_database
    from dsp_integration.contracts import EntityStatus, EntityType
    from dsp_integration.database.engine import open_database
    from dsp_integration.database.migrate import upgrade
    from tests.workflows.world import World, start_test_env

    server_url = os.environ.get("DATABASE_URL")
    if not server_url:
        print("--review-days needs DATABASE_URL (the workflow tests' queue table is real)")
        return 2
    name = f"dsp_review_{random.randrange(16**10):010x}"
    database_url = await create_database(server_url, name)
    env = await start_test_env()
    review = [(0.0, "pending_review", None), (days * 86400.0, "approved", None)]
    try:
        await upgrade(database_url)
        async with open_database(database_url) as sessions:
            world = World(env.client, sessions)
            async with world.workers():
                await world.add(
                    "acme", EntityType.ADVERTISERS, status=EntityStatus.SUCCEEDED, dsp_id="a"
                )
                banner = await world.add(
                    "banner", EntityType.CREATIVES, refs=["acme"], timelines=[review]
                )
                run_id: str | None = (await world.start(banner)).result_run_id
                state = await world.result(banner)
                runs: list[tuple[int, int]] = []
                while run_id:
                    handle = env.client.get_workflow_handle(workflow_id_for(banner), run_id=run_id)
                    events = (await handle.fetch_history()).events
                    tasks = sum(
                        e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED for e in events
                    )
                    runs.append((len(events), tasks))
                    last = events[-1].workflow_execution_continued_as_new_event_attributes
                    run_id = last.new_execution_run_id or None
                await world.terminate_all()
    finally:
        await env.shutdown()
        await drop_database(server_url, name)
    print(f"{days:g}-day review: {state.status.value} after {state.polls} polls, {len(runs)} runs")
    print(f"history events per run: max {max(e for e, _ in runs)}, all {[e for e, _ in runs]}")
    print(f"workflow tasks per run: max {max(t for _, t in runs)}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=2_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--sample", type=int, default=100)
    parser.add_argument("--review-days", type=float)
    parser.add_argument(
        "--sandbox", action="store_true", help="run the workflows in Temporal's sandbox"
    )
    parser.add_argument(
        "--dynamic-config",
        action="append",
        default=[],
        metavar="KEY=JSON",
        help="a dynamic config value for the dev server, over the stack's (repeatable)",
    )
    parser.add_argument(
        "--event-loop",
        choices=get_args(EventLoop),
        default="uvloop",
        help="the workers' event loop (DSP_EVENT_LOOP)",
    )
    parser.add_argument(
        "--revision",
        type=worker_code_argument,
        default=WorkerCode(),
        metavar="SPEC",
        help="the workers' code: current, or REV[:NAME=VALUE,...] (devkit/bench/revision.py)",
    )
    args = parser.parse_args()
    if args.review_days is not None:
        return asyncio.run(long_review(args.review_days))
    return asyncio.run(
        run(
            args.entities,
            args.workers,
            args.sample,
            args.sandbox,
            tuple(args.dynamic_config),
            args.event_loop,
            args.revision,
        )
    )


if __name__ == "__main__":
    sys.exit(main())
