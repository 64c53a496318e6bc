"""`submit --wait`: follow a batch until every entity has ended."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from dsp_integration.client.context import ServiceContext
from dsp_integration.client.queries import status_counts
from dsp_integration.contracts import TERMINAL_STATUSES, EntityStatus

POLL_SECONDS = 1.0
_ORDER = [status.value for status in EntityStatus]


def describe_counts(counts: dict[str, int]) -> str:
    return " ".join(f"{status}={counts[status]}" for status in _ORDER if counts.get(status))


def _ended(counts: dict[str, int]) -> int:
    return sum(n for status, n in counts.items() if EntityStatus(status) in TERMINAL_STATUSES)


async def wait_for_batch(
    service: ServiceContext,
    batch: str,
    *,
    console: Console | None = None,
    on_update: Callable[[dict[str, int]], None] | None = None,
) -> dict[str, int]:
    """Block until every entity of `batch` is terminal; shows a progress bar on a terminal
    and a plain line per change otherwise. Returns the final counts."""
    console = console or Console(stderr=True)
    if console.is_terminal:
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[counts]}"),
            console=console,
            transient=False,
        ) as progress:
            task = progress.add_task(batch, total=None, counts="")

            def show(counts: dict[str, int]) -> None:
                progress.update(
                    task,
                    total=sum(counts.values()),
                    completed=_ended(counts),
                    counts=describe_counts(counts),
                )

            return await _follow(service, batch, show, on_update)

    last = ""

    def print_line(counts: dict[str, int]) -> None:
        nonlocal last
        line = f"{batch}: {_ended(counts)}/{sum(counts.values())} ended  {describe_counts(counts)}"
        if line != last:
            print(line, file=sys.stderr, flush=True)
            last = line

    return await _follow(service, batch, print_line, on_update)


async def _follow(
    service: ServiceContext,
    batch: str,
    show: Callable[[dict[str, int]], None],
    on_update: Callable[[dict[str, int]], None] | None,
) -> dict[str, int]:
    while True:
        counts = await status_counts(service, batch)
        show(counts)
        if on_update:
            on_update(counts)
        if counts and _ended(counts) == sum(counts.values()):
            return counts
        await asyncio.sleep(POLL_SECONDS)
