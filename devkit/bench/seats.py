"""Seats side by side (dsp-api-v2.md §1-2): does each seat keep and use its own budget, what
do more seats cost, and what do expiring tokens cost?

    python -m devkit.bench.seats --seats 2 --limit 40 --window 60 --windows 4
    python -m devkit.bench.seats --seats 1,4,16 --limit 20 --window 5 --windows 6
    python -m devkit.bench.seats --seats 2 --limit 20 --window 5 --windows 12 --token-lifetime 20

Every seat logs in with client credentials at the mock DSP and gets `--windows` windows of
advertisers (one request each) submitted at once, in a batch of its own; with `--small N` the
last seat gets only N (a seat with ten entities beside seats with thousands). For each seat
the DSP's own count: requests, 429s, the most in any window, the share of the limit used in
every full window while its work waited; then requests per second over all seats, worker CPU
per request, 401s and token requests (per worker, per hour of run)."""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devkit.bench.cost import cpu_seconds
from devkit.bench.metrics import RunMetrics, measure
from devkit.bench.results import record_run
from devkit.bench.stack import BenchSeat, BenchStack, StackOptions, open_bench_stack
from devkit.bench.workloads import advertiser
from devkit.mock_dsp.request_log import RequestRecord
from dsp_integration.client.actors import cli_actor
from dsp_integration.client.queries import status_counts
from dsp_integration.client.submission import read_submission, submit
from dsp_integration.contracts import TERMINAL_STATUSES, EntityStatus

OUT_DIR = Path(__file__).resolve().parent / "out"
# The workers' start (imports, connections) is not the requests' cost.
SETTLE_SECONDS = 5.0


@dataclass
class SeatFigures:
    seat: str
    entities: int
    metrics: RunMetrics
    done_after: float | None
    """Seconds from the submissions to the seat's last entity ending (None: not all did)."""

    def line(self) -> str:
        m = self.metrics
        done = f"{self.done_after:.1f} s" if self.done_after is not None else "not done"
        return (
            f"  {self.seat:<8} entities {self.entities:>5}  requests {m.requests:>5}  "
            f"429 {m.rate_limited}  max in window {m.max_in_window}/{m.limit}  "
            f"used {m.utilisation:.1%} (lowest window {m.min_window_utilisation:.1%})  "
            f"done after {done} (lower bound {m.lower_bound_cold:.0f} s)"
        )


@dataclass
class SeatsRun:
    seats: int
    workers: int
    limit: int
    window: float
    token_lifetime: float
    wall_seconds: float
    busy_seconds: float
    requests: int
    worker_cpu_seconds: float
    token_expired: int
    token_requests: dict[str, int]
    lost: list[str]
    duplicates: int
    figures: list[SeatFigures]

    @property
    def logins_at_start(self) -> int:
        """Each worker logs each seat in once when it first needs a token."""
        return self.workers * self.seats

    @property
    def refreshes_per_worker_seat_hour(self) -> float:
        """Token requests beyond the first logins, per worker and seat, per hour of run."""
        refreshes = sum(self.token_requests.values()) - self.logins_at_start
        hours = self.busy_seconds / 3600
        return refreshes / (self.workers * self.seats) / hours if hours else 0.0

    def lines(self) -> list[str]:
        return [
            f"== {self.seats} seat(s) at {self.limit} per {self.window:g} s, "
            f"{self.workers} worker process(es), tokens live {self.token_lifetime:g} s",
            *(figures.line() for figures in self.figures),
            f"requests            {self.requests} in {self.busy_seconds:.1f} s: "
            f"{self.requests / self.busy_seconds if self.busy_seconds else 0:.2f} per second "
            f"(the seats' limits allow {self.seats * self.limit / self.window:.2f})",
            f"worker CPU          {self.worker_cpu_seconds:.1f} s, "
            f"{1000 * self.worker_cpu_seconds / max(1, self.requests):.1f} ms per request",
            f"401 token_expired   {self.token_expired} "
            f"({self.token_expired / self.busy_seconds * 3600 if self.busy_seconds else 0:.0f} "
            f"per hour)",
            f"token requests      {sum(self.token_requests.values())}: "
            f"{self.logins_at_start} first logins ({self.workers} workers x {self.seats} "
            f"seats), then {self.refreshes_per_worker_seat_hour:.0f} per worker and seat "
            f"per hour of run",
            f"nothing lost        {not self.lost and not self.duplicates} "
            f"(not succeeded: {len(self.lost)}, keys with more than one DSP entity: "
            f"{self.duplicates})",
            f"wall time           {self.wall_seconds:.1f} s",
        ]


def seat_names(count: int) -> list[str]:
    return [f"s{i:02d}" for i in range(count)]


def seat_file(seat: str, count: int, folder: Path) -> Path:
    path = folder / f"{seat}.json"
    entities = [advertiser(f"{seat}-a{i}") for i in range(count)]
    path.write_text(json.dumps({"batch": f"seat-{seat}", "seat": seat, "entities": entities}))
    return path


async def _done(stack: BenchStack, batch: str) -> bool:
    counts = await status_counts(stack.service, batch)
    return bool(counts) and all(EntityStatus(s) in TERMINAL_STATUSES for s in counts)


async def drive(
    stack: BenchStack, loads: dict[str, int], give_up_after: float
) -> dict[str, float | None]:
    """Submit every seat's batch at once; until all are done, note when each ended."""
    with tempfile.TemporaryDirectory() as folder:
        for seat, count in loads.items():
            await submit(
                stack.service,
                read_submission(seat_file(seat, count, Path(folder))),
                actor=cli_actor(),
            )
    started = time.monotonic()
    done: dict[str, float | None] = dict.fromkeys(loads)
    while time.monotonic() - started < give_up_after and None in done.values():
        for seat in loads:
            if done[seat] is None and await _done(stack, f"seat-{seat}"):
                done[seat] = time.monotonic() - started
        await asyncio.sleep(0.25)
    return done


async def not_succeeded(stack: BenchStack, loads: dict[str, int]) -> list[str]:
    lost: list[str] = []
    for seat in loads:
        counts = await status_counts(stack.service, f"seat-{seat}")
        others = {s: n for s, n in counts.items() if s != EntityStatus.SUCCEEDED.value}
        lost += [f"{seat}: {others}"] if others or not counts else []
    return lost


def duplicated_keys(records: list[RequestRecord]) -> int:
    """Keys whose creates made more than one DSP entity (each create is a 201 POST)."""
    created = Counter(
        r.idempotency_key or r.created_id
        for r in records
        if r.method == "POST" and r.status == 201 and not r.replayed
    )
    return sum(1 for n in created.values() if n > 1)


async def run(args: argparse.Namespace, seats: int) -> SeatsRun:
    names = seat_names(seats)
    per_seat = args.limit * args.windows
    loads = {name: per_seat for name in names}
    if args.small and seats > 1:
        loads[names[-1]] = args.small
    options = StackOptions(
        workers=args.workers,
        rate_limit=args.limit,
        rate_window=args.window,
        review_seconds=1.0,
        seats=tuple(BenchSeat(name, args.limit, args.window) for name in names),
        token_lifetime=args.token_lifetime,
        token_requests_per_hour=args.token_requests_per_hour,
        log_dir=OUT_DIR / "logs" / f"seats-{seats}",
    )
    began = time.monotonic()
    async with open_bench_stack(options) as stack:
        pids = [pid for pid in stack.workers.pids if pid is not None]
        await asyncio.sleep(SETTLE_SECONDS)
        cpu_before = sum(cpu_seconds(pid) for pid in pids)
        done = await drive(stack, loads, args.timeout)
        cpu = sum(cpu_seconds(pid) for pid in pids) - cpu_before
        lost = await not_succeeded(stack, loads)
        records = sorted(stack.mock.dsp.request_log, key=lambda r: r.at)
        token_requests = stack.mock.dsp.token_request_counts()
    figures = [
        SeatFigures(
            name,
            loads[name],
            measure([r for r in records if r.seat == name], args.limit, args.window),
            done[name],
        )
        for name in names
    ]
    busy = records[-1].at - records[0].at if records else 0.0
    return SeatsRun(
        seats=seats,
        workers=args.workers,
        limit=args.limit,
        window=args.window,
        token_lifetime=args.token_lifetime,
        wall_seconds=time.monotonic() - began,
        busy_seconds=busy,
        requests=len(records),
        worker_cpu_seconds=cpu,
        token_expired=sum(1 for r in records if r.token_expired),
        token_requests=token_requests,
        lost=lost,
        duplicates=duplicated_keys(records),
        figures=figures,
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seats", default="2", help="seat counts to run one after another, e.g. 1,4,16"
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--limit", type=int, default=40, help="each seat's requests per window")
    parser.add_argument("--window", type=float, default=60.0)
    parser.add_argument("--windows", type=int, default=4, help="windows of work per seat")
    parser.add_argument("--small", type=int, default=0, help="the last seat's entities instead")
    parser.add_argument("--token-lifetime", type=float, default=3600.0)
    parser.add_argument(
        "--token-requests-per-hour",
        type=int,
        default=60,
        help="the DSP's limit of token requests per client and rolling hour",
    )
    parser.add_argument("--timeout", type=float, default=1800.0)
    return parser.parse_args(argv)


async def run_all(args: argparse.Namespace) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    for count in (int(part) for part in args.seats.split(",")):
        report = await run(args, count)
        print("\n".join(report.lines()), flush=True)
        results.append(
            {
                "seats": count,
                "requests_per_second": report.requests / report.busy_seconds
                if report.busy_seconds
                else 0.0,
                "cpu_ms_per_request": 1000 * report.worker_cpu_seconds / max(1, report.requests),
                "per_seat": [
                    {
                        "seat": f.seat,
                        "requests": f.metrics.requests,
                        "rate_limited": f.metrics.rate_limited,
                        "max_in_window": f.metrics.max_in_window,
                        "utilisation": f.metrics.utilisation,
                        "lowest_window": f.metrics.min_window_utilisation,
                        "done_after": f.done_after,
                    }
                    for f in report.figures
                ],
                "token_expired": report.token_expired,
                "refreshes_per_worker_seat_hour": report.refreshes_per_worker_seat_hour,
                "token_requests": report.token_requests,
                "lost": report.lost,
                "duplicates": report.duplicates,
            }
        )
    return results


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    results = asyncio.run(run_all(args))
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    name = f"seats-{args.seats.replace(',', '_')}-{args.limit}per{args.window:g}s"
    (OUT_DIR / f"{name}.json").write_text(json.dumps(results, indent=1))
    for result in results:
        print(f"recorded {record_seats_run(args, result, argv)}")


def record_seats_run(
    args: argparse.Namespace, result: dict[str, Any], argv: list[str] | None
) -> Path:
    """One seat count's figures as a result file (devkit/bench/results/seats/)."""
    per_seat = result["per_seat"]
    done = [seat["done_after"] for seat in per_seat]
    summary: dict[str, Any] = {
        "seats": result["seats"],
        "workers": args.workers,
        "limit": f"{args.limit} / {args.window:g} s",
        "token lifetime (s)": args.token_lifetime,
        "requests": sum(seat["requests"] for seat in per_seat),
        "429s": sum(seat["rate_limited"] for seat in per_seat),
        "max in any window": max((seat["max_in_window"] for seat in per_seat), default=0),
        "lowest seat utilisation": f"{min(seat['utilisation'] for seat in per_seat):.1%}",
        "requests/s": round(result["requests_per_second"], 2),
        "worker CPU ms/request": round(result["cpu_ms_per_request"], 1),
        "401 token_expired": result["token_expired"],
        "last seat done (s)": None if None in done else round(max(done, default=0.0), 1),
        "nothing lost": not result["lost"] and not result["duplicates"],
    }
    run = (
        f"seats{result['seats']}-w{args.workers}-{args.limit}per{args.window:g}s"
        f"-token{args.token_lifetime:g}s" + (f"-small{args.small}" if args.small else "")
    )
    return record_run(
        "seats", run, parameters=vars(args), summary=summary, details=result, argv=argv
    )


if __name__ == "__main__":
    main()
