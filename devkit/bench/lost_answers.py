"""Requests per entity and time to the last decision when the DSP's answers are lost:
version 1 (idempotency keys: a lost create is replayed) against version 2 (no keys: a lost
create is found through the search once its lag has passed), issue 22.

    DATABASE_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/postgres \\
        .venv/bin/python -m devkit.bench.lost_answers --trees 25 --limit 40 --window 6 \\
        --search-lag 2 --drop 0 0.05 0.2

The same workload in every row (`dag`: advertiser trees of five, devkit/bench/workloads.py),
each row on a fresh, cold stack (devkit/bench/stack.py, 2 worker processes). The mock DSP
drops the given share of answers (`drop`: it acts on the request, then resets the
connection, so the service never learns what happened) on every kind of request alike.
Time runs from the first request to the last entity's end; every row checks that each key
ended succeeded with at most one live entity at the DSP, the one on its row."""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import Counter, defaultdict
from dataclasses import dataclass

from devkit.bench.rate_limit import drive
from devkit.bench.stack import StackOptions, open_bench_stack
from devkit.bench.workloads import dag
from devkit.mock_dsp.config import ApiVersion
from dsp_integration.client import queries

SEED = 22


@dataclass(frozen=True)
class Row:
    version: int
    drop: float
    entities: int
    requests: int
    posts: int
    searches: int
    dropped: int
    seconds_to_last_decision: float
    duplicates_archived: int

    def cells(self) -> list[str]:
        return [
            str(self.version),
            f"{self.drop:.0%}",
            str(self.entities),
            f"{self.requests / self.entities:.2f} ({self.requests})",
            f"{self.posts / self.entities:.2f}",
            str(self.searches),
            str(self.dropped),
            str(self.duplicates_archived),
            f"{self.seconds_to_last_decision:.1f}",
        ]


HEADER = [
    "version",
    "answers dropped",
    "entities",
    "requests per entity (all)",
    "POSTs per entity",
    "searches",
    "answers dropped (count)",
    "duplicates archived",
    "time to last decision (s)",
]


async def run_row(version: ApiVersion, drop: float, args: argparse.Namespace) -> Row:
    load = dag(args.limit, advertisers=args.trees)
    options = StackOptions(
        workers=2,
        rate_limit=args.limit,
        rate_window=args.window,
        poll_min_interval=0.5,
        poll_max_interval=30.0,
        seed=SEED,
        api_version=version,
        search_lag=args.search_lag,
    )
    async with open_bench_stack(options) as stack:
        stack.mock.dsp.config = stack.mock.dsp.config.model_copy(
            update={"fault_rate": drop, "fault_kinds": ["drop"]}
        )
        events = await drive(stack, load, give_up_after=args.timeout)
        if "timed_out" in events:
            raise SystemExit(f"v{version} {drop:.0%}: not ended within {args.timeout:.0f} s")
        log = sorted(stack.mock.dsp.request_log, key=lambda r: r.at)
        views = await queries.entity_views(stack.service, batch=load.phases[0].batch)
        dsp_entities = stack.mock.dsp.entity_views()
    statuses = Counter(v.status for v in views)
    assert statuses == {"succeeded": len(views)}, statuses
    live: dict[str, list[str]] = defaultdict(list)
    ids = {v.dsp_id for v in views}
    for entity in dsp_entities:
        if entity["status"] != "archived":
            live[entity.get("external_id") or entity["id"]].append(entity["id"])
    # Version 1 writes no reference: each live entity must then be a row's.
    assert all(len(found) == 1 for found in live.values()), live
    assert {i for found in live.values() for i in found} == ids, "a live entity off its row"
    finished = max(v.finished_at for v in views if v.finished_at is not None)
    return Row(
        version=version,
        drop=drop,
        entities=len(views),
        requests=len(log),
        posts=sum(1 for r in log if r.method == "POST"),
        searches=sum(1 for r in log if r.method == "GET" and r.query),
        dropped=sum(1 for r in log if r.fault == "drop"),
        seconds_to_last_decision=(finished - log[0].wall_time).total_seconds(),
        duplicates_archived=sum(1 for e in dsp_entities if e["status"] == "archived"),
    )


def table(rows: list[Row]) -> list[str]:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + " --- |" * len(HEADER)]
    lines += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    return lines


async def main_async(args: argparse.Namespace) -> None:
    rows = []
    for drop in args.drop:
        for version in args.versions:
            began = time.monotonic()
            row = await run_row(version, drop, args)
            rows.append(row)
            print(" | ".join(row.cells()), f"(wall {time.monotonic() - began:.0f} s)", flush=True)
    print("\n".join(table(rows)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--trees", type=int, default=25, help="advertiser trees of 5 entities")
    parser.add_argument("--limit", type=int, default=40)
    parser.add_argument("--window", type=float, default=6.0)
    parser.add_argument("--search-lag", type=float, default=2.0)
    parser.add_argument("--drop", type=float, nargs="+", default=[0.0, 0.05, 0.2])
    parser.add_argument("--versions", type=int, nargs="+", choices=[1, 2], default=[1, 2])
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args(argv)
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
