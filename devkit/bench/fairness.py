"""Fair shares between batches (issue 11): a 1,000-entity batch, then, `--arrival` seconds
after it was stored and started, a 10-entity batch at normal or high priority (`--small
trees`: two advertiser trees, whose creatives and campaigns are polled; `--small
advertisers`: ten advertisers, one POST each, so only the DSP queue decides). How long the
small batch takes, against the same batch alone; each row on a fresh stack, stopped once the
small batch has ended.

    python -m devkit.bench.fairness --limit 40 --window 6 --arrival 6 [--small advertisers]
    python -m devkit.bench.fairness --limit 40 --window 60 --arrival 60 --rows alone,normal

Rows: `alone` (the small batch on an idle stack), `normal` and `high` (behind the large
batch: each batch's lanes as fairness keys), `fifo` (normal, with the server's fairness off:
first come, first served). `--trace` prints, per row, where the small batch's DSP calls spent
their time and the order both batches' calls were dispatched and granted in (`fair_trace.py`).

`--revision REV[:NAME=VALUE,...]` runs every row's workers from a git worktree of an earlier
revision, with the switches it read, to compare with the current code (the default;
devkit/bench/revision.py). The call orders the service had before issue 21:

    python -m devkit.bench.fairness --rows normal --revision b8ed4d7:DSP_CALL_ORDER=tiers
    python -m devkit.bench.fairness --rows normal --revision b8ed4d7:DSP_CALL_ORDER=flat

(`tiers`: issue 9's priority tiers shared by all batches; `flat`: one fairness key per batch.)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from devkit.bench import fair_trace
from devkit.bench.metrics import busy_utilisation
from devkit.bench.revision import WorkerCode, worker_code_argument
from devkit.bench.stack import BenchStack, StackOptions, open_bench_stack
from devkit.bench.workloads import Entity, advertiser, advertiser_trees
from devkit.mock_dsp.request_log import RequestRecord, max_in_window
from dsp_integration.client.actors import cli_actor
from dsp_integration.client.queries import status_counts
from dsp_integration.client.submission import read_submission, submit
from dsp_integration.contracts import TERMINAL_STATUSES, EntityStatus, PriorityLevel

ROWS = ("alone", "normal", "high", "fifo")
LARGE, SMALL = "fair-large", "fair-small"


@dataclass
class RowResult:
    row: str
    seconds: float
    """From the small batch's submission to its last entity's end."""
    small_requests: int
    other_requests: int
    """The large batch's requests meanwhile."""
    utilisation: float
    rate_limited: int
    max_in_window: int
    finished: bool = True
    """False: the run gave up (`--give-up`) before the small batch had ended."""

    def line(self, alone: float | None) -> str:
        ratio = f"{self.seconds / alone:5.2f}x alone" if alone else " " * 13
        return (
            f"{self.row:<7} small batch {self.seconds:7.1f} s{'' if self.finished else '+'}  "
            f"{ratio}  "
            f"requests small {self.small_requests:>3} / large {self.other_requests:>4}  "
            f"utilisation {self.utilisation:6.1%}  429s {self.rate_limited}  "
            f"max in a window {self.max_in_window}"
        )


async def _submit(
    stack: BenchStack, folder: Path, batch: str, entities: list[Entity], level: PriorityLevel
) -> None:
    path = folder / f"{batch}.json"
    path.write_text(json.dumps({"batch": batch, "entities": entities}))
    await submit(stack.service, read_submission(path), level, actor=cli_actor())


async def _ended(stack: BenchStack, batch: str, give_up_after: float) -> bool:
    """Whether the batch ended within `give_up_after` seconds."""
    deadline = time.monotonic() + give_up_after
    while time.monotonic() < deadline:
        counts = await status_counts(stack.service, batch)
        if counts and all(EntityStatus(s) in TERMINAL_STATUSES for s in counts):
            return True
        await asyncio.sleep(0.25)
    return False


def _is_small(record: RequestRecord, small_ids: set[str]) -> bool:
    if record.method == "POST":
        return (record.idempotency_key or "").startswith(f"{SMALL}-")
    parts = record.path.strip("/").split("/")
    return len(parts) >= 3 and parts[2] in small_ids


async def run_row(row: str, args: argparse.Namespace) -> RowResult:
    options = StackOptions(
        workers=args.workers,
        rate_limit=args.limit,
        rate_window=args.window,
        temporal_dynamic_config=("matching.enableFairness=false",) if row == "fifo" else (),
        worker_code=args.revision,
    )
    level = PriorityLevel.HIGH if row == "high" else PriorityLevel.NORMAL
    async with open_bench_stack(options) as stack:
        with tempfile.TemporaryDirectory() as scratch:
            folder = Path(scratch)
            if row != "alone":
                await _submit(
                    stack, folder, LARGE, advertiser_trees(LARGE, 200), PriorityLevel.NORMAL
                )
                await asyncio.sleep(args.arrival)
            started = time.monotonic()
            started_wall = datetime.now(UTC)
            small_batch = (
                advertiser_trees(SMALL, 2)
                if args.small == "trees"
                else [advertiser(f"{SMALL}-a{i}") for i in range(10)]
            )
            await _submit(stack, folder, SMALL, small_batch, level)
            finished = await _ended(stack, SMALL, args.give_up)
            ended = time.monotonic()
            ended_wall = datetime.now(UTC)
        if args.trace:
            calls = await fair_trace.collect(
                stack.service, stack.client, (LARGE, SMALL), list(stack.mock.dsp.request_log)
            )
            print(f"{row}:", fair_trace.report(calls, SMALL, started_wall, ended_wall), flush=True)
        records = [r for r in stack.mock.dsp.request_log if r.at <= ended]
    small_ids = {r.created_id for r in records if r.created_id and _is_small(r, set())}
    during = [r for r in records if r.at >= started]
    small = [r for r in during if _is_small(r, small_ids)]
    times = [r.at for r in records]
    utilisation, _ = busy_utilisation(times, args.limit, args.window)
    return RowResult(
        row=row,
        seconds=ended - started,
        small_requests=len(small),
        other_requests=len(during) - len(small),
        utilisation=utilisation,
        rate_limited=sum(1 for r in records if r.status == 429),
        max_in_window=max_in_window(times, args.window),
        finished=finished,
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=40, help="requests per window")
    parser.add_argument("--window", type=float, default=6.0, help="seconds")
    parser.add_argument(
        "--arrival", type=float, default=6.0, help="seconds between the two submissions"
    )
    parser.add_argument("--rows", default=",".join(ROWS[:3]), help=f"some of {','.join(ROWS)}")
    parser.add_argument("--small", choices=("trees", "advertisers"), default="trees")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--give-up", type=float, default=900.0)
    parser.add_argument(
        "--trace",
        action="store_true",
        help="print where the small batch's DSP calls spent their time (fair_trace.py)",
    )
    parser.add_argument(
        "--revision",
        type=worker_code_argument,
        default=WorkerCode(),
        metavar="SPEC",
        help="the workers' code: current, or REV[:NAME=VALUE,...] (devkit/bench/revision.py)",
    )
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args(argv)
    unknown = set(args.rows.split(",")) - set(ROWS)
    if unknown:
        parser.error(f"unknown rows {sorted(unknown)}: use {', '.join(ROWS)}")
    return args


async def main_async(args: argparse.Namespace) -> list[RowResult]:
    print(
        f"fairness: 1,000 entities, then after {args.arrival:g} s 10 entities ({args.small}); "
        f"{args.limit} requests per {args.window:g} s, {args.workers} worker process(es), "
        f"code {args.revision.label}",
        flush=True,
    )
    results: list[RowResult] = []
    alone: float | None = None
    for row in args.rows.split(","):
        result = await run_row(row, args)
        if row == "alone":
            alone = result.seconds
        results.append(result)
        print(result.line(alone), flush=True)
    if args.json:
        rows: list[dict[str, Any]] = [vars(r) for r in results]
        settings = vars(args) | {"json": None, "revision": args.revision.label}
        args.json.write_text(json.dumps({"args": settings, "rows": rows}))
    return results


def main() -> None:
    asyncio.run(main_async(parse_args()))


if __name__ == "__main__":
    main()
