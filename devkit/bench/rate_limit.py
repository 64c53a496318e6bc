"""Run a named workload against the mock DSP with N worker processes and report how the
rate limit was kept and used.

    python -m devkit.bench.rate_limit --workload backlog --workers 2 --limit 20 --window 5

`--revision REV[:NAME=VALUE,...]` runs the workers from a git worktree of an earlier
revision with the switches it read, for a comparison with the current code (the default):
e.g. `--workload fanout --revision b8ed4d7:DSP_DEPENDANT_PRIORITY=0` for parents' calls in
the leaves' lanes (devkit/bench/revision.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from devkit.bench.metrics import RunMetrics, measure, share_of_posts
from devkit.bench.plot import plot_run
from devkit.bench.results import record_run
from devkit.bench.revision import WorkerCode, worker_code_argument
from devkit.bench.stack import BenchStack, StackOptions, open_bench_stack
from devkit.bench.workloads import (
    FANOUT_LEAF_PREFIX,
    FANOUT_PARENT,
    WORKLOADS,
    Phase,
    Workload,
    backlog,
    fanout,
)
from dsp_integration.client.actors import cli_actor
from dsp_integration.client.queries import status_counts
from dsp_integration.client.submission import read_submission, submit
from dsp_integration.contracts import TERMINAL_STATUSES, EntityStatus

OUT_DIR = Path(__file__).resolve().parent / "out"


@dataclass
class RunReport:
    name: str
    workload: str
    workers: int
    code: str
    """The worker code's label (`WorkerCode.label`): `current` or an earlier revision."""
    metrics: RunMetrics
    wall_seconds: float
    plot: str | None
    extra: dict[str, Any] = field(default_factory=dict)

    def lines(self) -> list[str]:
        head = [
            f"== {self.name}: workload {self.workload}, {self.workers} worker process(es), "
            f"code {self.code}",
            *self.metrics.lines(),
        ]
        head += [f"{key:<19} {value}" for key, value in self.extra.items()]
        head.append(f"wall time           {self.wall_seconds:.1f} s; plot {self.plot}")
        return head


async def _submit_phase(stack: BenchStack, phase: Phase, folder: Path) -> None:
    path = folder / f"{phase.batch}.json"
    path.write_text(json.dumps({"batch": phase.batch, "entities": phase.entities}))
    await submit(stack.service, read_submission(path), actor=cli_actor())


async def _batch_done(stack: BenchStack, batch: str) -> bool:
    counts = await status_counts(stack.service, batch)
    return bool(counts) and all(EntityStatus(s) in TERMINAL_STATUSES for s in counts)


async def drive(
    stack: BenchStack,
    workload: Workload,
    *,
    give_up_after: float,
    throttle: int = 0,
    throttle_at: float = 0.0,
) -> dict[str, Any]:
    """Submit the phases when due, inject the other client's requests, wait for the last
    batch to end. Returns timestamps (mock monotonic clock) of what happened."""
    events: dict[str, Any] = {}
    pending = list(workload.phases)
    started = time.monotonic()
    throttled = throttle == 0
    with tempfile.TemporaryDirectory() as folder:
        while time.monotonic() - started < give_up_after:
            log = stack.mock.dsp.request_log
            while pending and pending[0].after(len(log)):
                phase = pending.pop(0)
                events[f"submitted {phase.batch}"] = time.monotonic()
                await _submit_phase(stack, phase, Path(folder))
            if not throttled and log and time.monotonic() - log[0].at >= throttle_at:
                events["throttled"] = time.monotonic()
                events["in_window_after_throttle"] = stack.mock.dsp.throttle(throttle)
                throttled = True
            if not pending and await _batch_done(stack, workload.phases[-1].batch):
                events["done"] = time.monotonic()
                return events
            await asyncio.sleep(0.25)
    events["timed_out"] = time.monotonic()
    return events


def review_extra(stack: BenchStack, events: dict[str, Any], limit: int) -> dict[str, Any]:
    records = sorted(stack.mock.dsp.request_log, key=lambda r: r.at)
    arrived = events.get("submitted rv-newcomers")
    if arrived is None:
        return {}
    newcomer_posts = [
        r.at for r in records if r.method == "POST" and (r.idempotency_key or "").startswith("rv-a")
    ]
    end = max(newcomer_posts) if newcomer_posts else arrived
    window = stack.options.rate_window
    return {
        "newcomers share": f"{share_of_posts(records, arrived, end):.1%} of requests were "
        f"submissions while new advertisers waited ({end - arrived:.1f} s to submit "
        f"{len(newcomer_posts)}; at the full rate {len(newcomer_posts) * window / limit:.1f} s)",
        "polls per creative": f"{_polls_per_creative(records):.2f}",
    }


def _polls_per_creative(records: list[Any]) -> float:
    polled = [r for r in records if r.method == "GET" and r.entity_type == "creatives"]
    ids = {r.path.split("/")[3] for r in polled}
    return len(polled) / len(ids) if ids else 0.0


def _entity_key(record: Any) -> str:
    return (record.idempotency_key or "").split(":")[0]


def fanout_extra(stack: BenchStack, events: dict[str, Any]) -> dict[str, Any]:
    """When the parent's POST went, behind how many leaves, and when its children were in."""
    arrived = events.get("submitted fo-parent")
    if arrived is None:
        return {}
    posts = sorted(
        (r for r in stack.mock.dsp.request_log if r.method == "POST"), key=lambda r: r.at
    )
    leaves = [r.at for r in posts if _entity_key(r).startswith(FANOUT_LEAF_PREFIX)]
    parent = [r.at for r in posts if _entity_key(r) == FANOUT_PARENT]
    children = [
        r.at
        for r in posts
        if _entity_key(r).startswith(f"{FANOUT_PARENT}-cp") and "-ag" not in _entity_key(r)
    ]
    grandchildren = [r.at for r in posts if "-ag" in _entity_key(r)]
    if not parent:
        return {"parent POST": "never"}
    ahead = [t for t in leaves if arrived <= t < parent[0]]
    out = {
        "leaves waiting": f"{len([t for t in leaves if t >= arrived])} leaf POSTs still to go "
        f"when the parent arrived",
        "parent POST": f"{parent[0] - arrived:.1f} s after its submission, behind "
        f"{len(ahead)} leaf POSTs",
    }
    if children:
        out["children POSTed"] = (
            f"{len(children)}, the last {max(children) - arrived:.1f} s after the parent's "
            f"submission (first {min(children) - arrived:.1f} s)"
        )
    if grandchildren:
        out["grandchildren POSTed"] = (
            f"{len(grandchildren)}, the last {max(grandchildren) - arrived:.1f} s after the "
            f"parent's submission (first {min(grandchildren) - arrived:.1f} s)"
        )
    if "done" in events:
        out["parent batch done"] = f"{events['done'] - arrived:.1f} s after its submission"
    if leaves:
        out["last leaf POST"] = f"{max(leaves) - arrived:.1f} s after the parent's submission"
    return out


def throttle_extra(
    stack: BenchStack, events: dict[str, Any], limit: int, window: float
) -> dict[str, Any]:
    at = events.get("throttled")
    if at is None:
        return {}
    records = sorted(stack.mock.dsp.request_log, key=lambda r: r.at)
    refused = [r.at for r in records if r.status == 429]
    after = [r.at for r in records if r.at > at]
    last = after[-1] if after else at
    recovered = [t for t in after if t >= last - window]
    return {
        "throttle": f"{events.get('in_window_after_throttle')} requests in the window right "
        f"after the other client's burst",
        "429 after throttle": len([t for t in refused if t >= at]),
        "last window rate": f"{len(recovered)} requests in the last {window:g} s before the end "
        f"({len(recovered) / limit:.0%} of the limit)",
    }


async def run(args: argparse.Namespace) -> RunReport:
    if args.workload == "backlog":
        workload = backlog(args.limit, args.windows)
    elif args.workload == "fanout":
        workload = fanout(args.limit, args.windows, args.children, args.grandchildren)
    else:
        workload = WORKLOADS[args.workload](args.limit)
    options = StackOptions(
        workers=args.workers,
        rate_limit=args.limit,
        rate_window=args.window,
        review_seconds=workload.review_seconds,
        poll_min_interval=args.poll_min,
        poll_max_interval=args.poll_max,
        worker_code=args.revision,
        log_dir=OUT_DIR / "logs" / args.name,
        temporal_dynamic_config=tuple(args.dynamic_config),
    )
    began = time.monotonic()
    async with open_bench_stack(options) as stack:
        events = await drive(
            stack,
            workload,
            give_up_after=args.timeout,
            throttle=args.throttle,
            throttle_at=args.throttle_at,
        )
        wall = time.monotonic() - began
        records = sorted(stack.mock.dsp.request_log, key=lambda r: r.at)
        metrics = measure(records, args.limit, args.window)
        extra: dict[str, Any] = {"workload": workload.description}
        if "timed_out" in events:
            extra["timed out"] = f"after {args.timeout:.0f} s"
        extra |= review_extra(stack, events, args.limit)
        extra |= throttle_extra(stack, events, args.limit, args.window)
        extra |= fanout_extra(stack, events)
        plot = None
        if records:
            plot = str(
                plot_run(
                    records,
                    args.limit,
                    args.window,
                    OUT_DIR / f"{args.name}.png",
                    f"{args.workload}: {args.workers} worker process(es), "
                    f"{args.limit} per {args.window:g} s, {args.revision.label} code",
                )
            )
    report = RunReport(
        args.name, args.workload, args.workers, args.revision.label, metrics, wall, plot, extra
    )
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    dump = asdict(report) | {
        "requests": [[round(r.at - records[0].at, 4), r.method, r.path, r.status] for r in records]
    }
    (OUT_DIR / f"{args.name}.json").write_text(json.dumps(dump, indent=1, default=str))
    record_rate_limit_run(args, report, dump["requests"])
    return report


def record_rate_limit_run(
    args: argparse.Namespace, report: RunReport, requests: list[list[Any]]
) -> Path:
    """The run's figures as a result file (devkit/bench/results/rate_limit/), with each
    request's time, method, path and status for the page's plot."""
    m = report.metrics
    summary: dict[str, Any] = {
        "workload": args.workload,
        "workers": args.workers,
        "limit": f"{args.limit} / {args.window:g} s",
        "code": args.revision.label,
        "requests": m.requests,
        "429s": m.rate_limited,
        "max in any window": m.max_in_window,
        "utilisation": f"{m.utilisation:.1%}",
        "lowest window": f"{m.min_window_utilisation:.1%}",
        "first to last request (s)": round(m.busy_seconds, 1),
        "requests / rate (s)": round(m.lower_bound_rate, 1),
    }
    parameters = {
        name: (str(value) if not isinstance(value, int | float | str | bool) else value)
        for name, value in vars(args).items()
    }
    return record_run(
        "rate_limit",
        args.name,
        parameters=parameters,
        summary=summary,
        details={"extra": report.extra, "requests": requests},
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", choices=sorted(WORKLOADS), default="backlog")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--windows", type=int, default=6, help="backlog, fanout: windows of leaves")
    parser.add_argument(
        "--children", type=int, default=None, help="fanout: campaigns under the parent"
    )
    parser.add_argument(
        "--grandchildren", type=int, default=0, help="fanout: ad groups under each campaign"
    )
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--window", type=float, default=5.0)
    parser.add_argument(
        "--revision",
        type=worker_code_argument,
        default=WorkerCode(),
        metavar="SPEC",
        help="the workers' code: current, or REV[:NAME=VALUE,...] (devkit/bench/revision.py)",
    )
    parser.add_argument("--poll-min", type=float, default=1.0)
    parser.add_argument("--poll-max", type=float, default=60.0)
    parser.add_argument("--throttle", type=int, default=0, help="other client's requests")
    parser.add_argument("--throttle-at", type=float, default=0.0, help="seconds in")
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--name", default=None)
    parser.add_argument(
        "--dynamic-config",
        action="append",
        default=[],
        metavar="KEY=JSON",
        help="extra Temporal dev-server dynamic config, e.g. matching.useNewMatcher=true",
    )
    args = parser.parse_args(argv)
    if args.name is None:
        args.name = (
            f"{args.workload}-w{args.workers}-{args.limit}per{args.window:g}s-"
            f"{args.revision.label}" + (f"-throttle{args.throttle}" if args.throttle else "")
        )
    return args


def main(argv: list[str] | None = None) -> None:
    report = asyncio.run(run(parse_args(argv)))
    print("\n".join(report.lines()))


if __name__ == "__main__":
    main()
