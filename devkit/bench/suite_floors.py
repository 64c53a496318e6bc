"""The speed figures the integration tests used to assert as floors (issue 27), printed
beside those floors. The tests keep the exact properties (never over the limit, order,
nothing lost); how fast and how fair is measured here, each scenario on a fresh, cold stack.

    python -m devkit.bench.suite_floors rate        # budget used by two worker processes
    python -m devkit.bench.suite_floors shares      # a small batch behind a large backlog
    python -m devkit.bench.suite_floors prioritise  # `prioritise` on calls already queued
    python -m devkit.bench.suite_floors priority    # a high and a low batch behind a backlog
    python -m devkit.bench.suite_floors all

A figure below its former floor is worth a look (on an idle machine) before it is a bug: the
floors had margins for a loaded 2-core CI machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path

from devkit.bench.metrics import busy_utilisation
from devkit.bench.stack import BenchStack, StackOptions, open_bench_stack
from devkit.bench.workloads import Entity, advertiser
from devkit.mock_dsp.request_log import max_in_window
from dsp_integration.client import control, queries
from dsp_integration.client.actors import cli_actor
from dsp_integration.client.submission import read_submission, submit
from dsp_integration.contracts import PriorityLevel

# The integration tests' settings (tests/integration/test_rate_limit.py, conftest.py).
RATE_LIMIT, RATE_WINDOW = 20, 3.0
SLOW_LIMIT, SLOW_WINDOW = 8, 2.0
GIVE_UP_AFTER = 180.0


async def _submit(
    stack: BenchStack,
    folder: Path,
    batch: str,
    entities: list[Entity],
    level: PriorityLevel = PriorityLevel.NORMAL,
) -> None:
    path = folder / f"{batch}.json"
    path.write_text(json.dumps({"batch": batch, "entities": entities}))
    await submit(stack.service, read_submission(path), level, actor=cli_actor())


def _batch(prefix: str, count: int) -> list[Entity]:
    return [advertiser(f"{prefix}-{i:03d}") for i in range(count)]


async def _until(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + GIVE_UP_AFTER
    while not await condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not within {GIVE_UP_AFTER:.0f} s")
        await asyncio.sleep(0.2)


async def _end_times(stack: BenchStack, batch: str) -> list[datetime]:
    """When each entity of the batch ended, sorted, once all have."""
    ended: list[datetime] = []

    async def all_ended() -> bool:
        views = await queries.entity_views(stack.service, batch=batch)
        ended[:] = sorted(v.finished_at for v in views if v.finished_at is not None)
        return bool(views) and len(ended) == len(views)

    await _until(all_ended, f"batch {batch} ended")
    return ended


async def _all_started(stack: BenchStack, batch: str, count: int) -> None:
    async def started() -> bool:
        counts = await queries.status_counts(stack.service, batch)
        return sum(counts.values()) == count and not counts.get("waiting")

    await _until(started, f"batch {batch} started")


def _options(workers: int, limit: int, window: float) -> StackOptions:
    return StackOptions(workers=workers, rate_limit=limit, rate_window=window)


async def rate(folder: Path) -> list[str]:
    count = 5 * RATE_LIMIT
    async with open_bench_stack(_options(2, RATE_LIMIT, RATE_WINDOW)) as stack:
        await _submit(stack, folder, "rl", _batch("rl-a", count))
        await _end_times(stack, "rl")
        times = sorted(r.at for r in stack.mock.dsp.request_log)
    utilisation, lowest = busy_utilisation(times, RATE_LIMIT, RATE_WINDOW)
    drained, ideal = times[-1] - times[0], count / RATE_LIMIT * RATE_WINDOW
    lines = [
        f"rate: {count} advertisers, 2 worker processes, {RATE_LIMIT} per {RATE_WINDOW} s",
        f"  max in any window   {max_in_window(times, RATE_WINDOW)} (limit {RATE_LIMIT})",
        f"  utilisation         {utilisation:.1%}, lowest window {lowest:.1%} (former floor 85%)",
        f"  drained in          {drained:.1f} s = {drained / ideal:.2f}x the ideal {ideal:.1f} s "
        "(former ceiling 1.2x)",
    ]
    return lines + await _recovery(folder)


async def _recovery(folder: Path) -> list[str]:
    count = 6 * RATE_LIMIT
    async with open_bench_stack(_options(2, RATE_LIMIT, RATE_WINDOW)) as stack:
        mock = stack.mock.dsp
        await _submit(stack, folder, "rc", _batch("rc-a", count))

        async def busy() -> bool:
            return len(mock.request_log) >= 2 * RATE_LIMIT

        await _until(busy, "two windows of requests")
        mock.throttle(RATE_LIMIT)
        throttled_at = time.monotonic()
        await _end_times(stack, "rc")
        after = sorted(r.at for r in mock.request_log if r.at >= throttled_at + RATE_WINDOW)
    utilisation, lowest = busy_utilisation(after, RATE_LIMIT, RATE_WINDOW)
    return [
        f"recovery: {count} advertisers, another client takes a full window after "
        f"{2 * RATE_LIMIT} requests",
        f"  after its window    max {max_in_window(after, RATE_WINDOW)} in a window, "
        f"utilisation {utilisation:.1%}, lowest {lowest:.1%} (former floor 75%)",
    ]


async def shares(folder: Path) -> list[str]:
    large, small = 200, 30
    async with open_bench_stack(_options(1, SLOW_LIMIT, SLOW_WINDOW)) as stack:
        await _submit(stack, folder, "big", _batch("big", large))
        await _submit(stack, folder, "small", _batch("small", small))
        await _end_times(stack, "small")
        counts = await queries.status_counts(stack.service, "big")
    still_open = large - counts.get("succeeded", 0)
    return [
        f"shares: {small} advertisers behind {large}, {SLOW_LIMIT} per {SLOW_WINDOW} s",
        f"  backlog still open when the small batch ended: {still_open} of {large} "
        f"(former floor {large // 3}; equal shares ~160, first come first served 0)",
    ]


async def prioritise(folder: Path) -> list[str]:
    backlog, late = 100, 10
    async with open_bench_stack(_options(1, SLOW_LIMIT, SLOW_WINDOW)) as stack:
        await _submit(stack, folder, "bk", _batch("bk", backlog))
        await _submit(stack, folder, "late", _batch("late", late), PriorityLevel.LOW)
        await _all_started(stack, "bk", backlog)
        await _all_started(stack, "late", late)
        report = await control.prioritise(
            stack.service, "late", PriorityLevel.HIGH, 2.0, actor=cli_actor()
        )
        late_done = await _end_times(stack, "late")
        backlog_done = await _end_times(stack, "bk")
    after = sum(1 for at in backlog_done if at > late_done[-1])
    return [
        f"prioritise: {late} low advertisers behind {backlog}, raised to high "
        f"({report.changed} changed)",
        f"  backlog ended after the raised batch: {after} of {backlog} "
        f"(former floor {backlog // 2}; left low: 0)",
    ]


async def priority(folder: Path) -> list[str]:
    backlog, small = 60, 5
    async with open_bench_stack(_options(1, SLOW_LIMIT, SLOW_WINDOW)) as stack:
        await _submit(stack, folder, "bk", _batch("bk", backlog))
        await _all_started(stack, "bk", backlog)
        await _submit(stack, folder, "lo", _batch("lo", small), PriorityLevel.LOW)
        await _submit(stack, folder, "hi", _batch("hi", small), PriorityLevel.HIGH)
        high_done = (await _end_times(stack, "hi"))[-1]
        backlog_done = await _end_times(stack, "bk")
        low_done = await _end_times(stack, "lo")
    after_high = sum(1 for at in backlog_done if at > high_done)
    before_low = sum(1 for at in backlog_done if at < low_done[0])
    return [
        f"priority: {small} high and {small} low advertisers behind {backlog} normal",
        f"  backlog ended after the high batch:   {after_high} of {backlog} "
        f"(former floor {backlog // 3}; first come first served 0)",
        f"  backlog ended before the low batch's first: {before_low} of {backlog} "
        f"(former floor {backlog - 8})",
    ]


SCENARIOS: dict[str, Callable[[Path], Awaitable[list[str]]]] = {
    "rate": rate,
    "shares": shares,
    "prioritise": prioritise,
    "priority": priority,
}


async def run(names: list[str]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        for name in names:
            for line in await SCENARIOS[name](Path(folder)):
                print(line, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("scenario", choices=[*SCENARIOS, "all"])
    args = parser.parse_args()
    asyncio.run(run(list(SCENARIOS) if args.scenario == "all" else [args.scenario]))


if __name__ == "__main__":
    main()
