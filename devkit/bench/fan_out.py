"""One parent with many dependants: from the parent's success to the last dependant's POST.

    DATABASE_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/postgres \
        .venv/bin/python -m devkit.bench.fan_out --dependants 1000 [--workers 2]

An advertiser, one campaign and N ad groups of that campaign, on 2 worker processes with the
DSP limit out of the way. The campaign stays `pending` at the DSP until every ad group's
workflow is started and waiting; when the poll sees it `active`, its workflow tells the N
dependants (`tell_dependants`: keys read in pages from PostgreSQL, signalled 32 at a time,
heartbeated per page). Prints the time from the campaign's recorded success to the last ad
group's POST as the DSP saw it, and the DSP requests made meanwhile."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

from sqlalchemy import func, select
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from devkit.bench.stack import StackOptions, open_bench_stack
from devkit.bench.submit_10k import write_jsonl
from devkit.bench.workloads import Entity, ad_group, advertiser, campaign
from dsp_integration.client.actors import cli_actor
from dsp_integration.client.submission import read_submission, submit
from dsp_integration.contracts import workflow_id_for
from dsp_integration.database.models import AuditRecord, QueuedEntity

BATCH = "bench-fan-out"
UNLIMITED = 100_000  # requests per 1 s window: the DSP limit out of the way
PARENT = "fan-cmp"


def workload(dependants: int) -> list[Entity]:
    return [
        advertiser("fan-adv"),
        campaign(PARENT, "fan-adv"),
        *(ad_group(f"fan-ag{i:05d}", PARENT, []) for i in range(dependants)),
    ]


async def run(dependants: int, workers: int) -> int:
    # Long enough for every ad group to be started and waiting before the campaign succeeds
    # (starts run at about 100-200 per second here).
    pending = 30.0 + dependants * 0.015
    options = StackOptions(
        workers=workers,
        rate_limit=UNLIMITED,
        rate_window=1.0,
        review_seconds=3600.0,
        pending_seconds=pending,
        propagation_delay=0.0,
        poll_min_interval=0.5,
        poll_max_interval=1.0,
    )
    async with open_bench_stack(options) as stack:
        path = write_jsonl(
            Path(stack.workers.log_dir or "/tmp") / "fan.jsonl", workload(dependants)
        )
        await asyncio.sleep(3)  # workers connected and polling
        began = time.perf_counter()
        await submit(stack.service, read_submission(path, BATCH), actor=cli_actor())
        print(f"submitted 2 + {dependants} entities in {time.perf_counter() - began:.1f} s")
        posted = (
            select(func.count())
            .select_from(AuditRecord)
            .where(
                AuditRecord.method == "POST",
                AuditRecord.path == "/v1/ad_groups",
                AuditRecord.response_status == 201,
            )
        )
        # The dependants' POSTs go at the DSP workers' pace (a few dozen per second at most).
        deadline = time.monotonic() + pending + 120 + dependants / 5
        while True:
            async with stack.service.sessions() as session:
                done = await session.scalar(posted)
            if done == dependants:
                break
            if time.monotonic() > deadline:
                print(f"only {done} of {dependants} dependants POSTed in time")
                return 1
            await asyncio.sleep(1)
        async with stack.service.sessions() as session:
            succeeded_at = await session.scalar(
                select(QueuedEntity.finished_at).where(QueuedEntity.key == PARENT)
            )
            last_post = await session.scalar(
                select(func.max(AuditRecord.started_at)).where(
                    AuditRecord.method == "POST", AuditRecord.path == "/v1/ad_groups"
                )
            )
            first_post = await session.scalar(
                select(func.min(AuditRecord.started_at)).where(
                    AuditRecord.method == "POST", AuditRecord.path == "/v1/ad_groups"
                )
            )
        assert succeeded_at is not None and last_post is not None and first_post is not None
        spread = (last_post - succeeded_at).total_seconds()
        print(
            f"{dependants} dependants: parent's success -> first dependant POST "
            f"{(first_post - succeeded_at).total_seconds():.1f} s, -> last dependant POST "
            f"{spread:.1f} s ({dependants / spread:.0f} dependants/s)"
        )
        seconds, told = await fan_out_figures(stack.client)
        print(f"tell_dependants activity: {told} dependants told in {seconds:.1f} s")
        return 0


async def fan_out_figures(client: Client) -> tuple[float, int]:
    """From scheduling the parent's `tell_dependants` to its completion, in its history, and
    how many dependants it told (those started after the parent's success need no telling)."""
    history = await client.get_workflow_handle(workflow_id_for(PARENT)).fetch_history()
    scheduled = completed = None
    told = 0
    for event in history.events:
        attributes = event.activity_task_scheduled_event_attributes
        if attributes.activity_type.name == "tell_dependants":
            scheduled = event.event_time.ToDatetime()
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED and scheduled:
            completed = event.event_time.ToDatetime()
            [payload] = event.activity_task_completed_event_attributes.result.payloads
            told = int(json.loads(payload.data)["told"])
    assert scheduled is not None and completed is not None
    return (completed - scheduled).total_seconds(), told


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dependants", type=int, default=1_000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    return asyncio.run(run(args.dependants, args.workers))


if __name__ == "__main__":
    sys.exit(main())
