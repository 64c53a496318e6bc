"""DSP requests per entity and time to the last decision, against the floor, per worker code.

    DATABASE_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/postgres \\
        .venv/bin/python -m devkit.bench.efficiency --revisions current \\
        b8ed4d7:DSP_POLL_STRATEGY=adaptive b8ed4d7:DSP_POLL_STRATEGY=fixed

Each `--revisions` spec is `current` (this checkout's learned planner) or a revision whose
workers are run from a git worktree, with the switches it read (devkit/bench/revision.py):
the revisions before issue 21 (b8ed4d7, for one) also have the backoff (`adaptive`) and
fixed-interval (`fixed`) planners.

A realistic mix, time scaled 10x (production 40 per 60 s becomes 40 per 6 s, and every DSP
processing time is divided by 10 too): advertiser trees (an advertiser, a campaign, two
creatives and an ad group using both), 300 entities. The mock DSP draws each entity's time
from a seeded log-normal per type, by its Idempotency-Key, so every run meets the same
times: creatives reviewed in minutes to hours (median 8 s scaled, sigma 0.8, at most 360 s),
campaigns and ad groups processed in seconds (median 0.5 s, sigma 0.5), advertisers at once.

The floor, from the mock's actual processing times in the run:
- requests: one POST per entity plus one status read per entity the DSP decides later;
- time: when the last decision could be seen by a perfect poller: the same requests alone,
  at the full rate (the DSP's rolling window, bursts included), each status read at the
  moment its entity is decided, a child POSTed once its parents' decisions were read and had
  propagated; the ready requests either in the service's own order (`parents_first_rank`:
  parents' calls, leaves' submissions, leaves' reads; then the file's order) or every ready
  POST before any read (so reviews start sooner), whichever ends sooner. It knows when
  each entity is decided, not how long a review will take before it starts, so it does not
  reorder submissions by their review times: a heuristic, not a proven minimum (a planner
  that happens to POST a long review earlier can beat it by a little). Time runs from the
  first request.

Each run's figures go to `devkit/bench/out/efficiency-<label>.json` (`current`,
`b8ed4d7-poll_strategy=adaptive`, ...); the table and the plot
(`devkit/bench/out/efficiency.png`) are drawn from the files present, so the runs can be
made one at a time."""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from devkit.bench.rate_limit import drive
from devkit.bench.revision import CURRENT, WorkerCode, worker_code_argument
from devkit.bench.stack import StackOptions, open_bench_stack
from devkit.bench.workloads import Entity, Workload, dag
from devkit.mock_dsp.request_log import RequestRecord

OUT_DIR = Path(__file__).resolve().parent / "out"
LIMIT, WINDOW = 40, 6.0
TREES = 60  # x 5 entities
REVIEW_MEDIAN, REVIEW_SIGMA, REVIEW_MAX = 8.0, 0.8, 360.0
PENDING_MEDIAN, PENDING_SIGMA = 0.5, 0.5
PROPAGATION = 0.3
POLL_MIN, POLL_MAX = 0.5, 30.0  # the production defaults (5 s, 300 s) scaled
SEED = 11


@dataclass
class FloorEntity:
    key: str
    processing: float
    parents: list[str]


@dataclass
class CodeRun:
    code: str
    """The worker code's label (`WorkerCode.label`)."""
    entities: int
    requests: int
    requests_floor: int
    seconds_to_last_decision: float
    time_floor: float
    conflicts_409: int
    rate_limited_429: int
    requests_at: list[float] = field(default_factory=list)
    decisions_seen_at: list[float] = field(default_factory=list)
    floor_requests_at: list[float] = field(default_factory=list)
    floor_decisions_seen_at: list[float] = field(default_factory=list)

    def lines(self) -> list[str]:
        return [
            f"== {self.code}: {self.entities} entities",
            f"requests            {self.requests} / floor {self.requests_floor} = "
            f"{self.requests / self.requests_floor:.2f} x ({self.requests / self.entities:.2f} "
            f"per entity, floor {self.requests_floor / self.entities:.2f})",
            f"last decision seen  {self.seconds_to_last_decision:.1f} s / floor "
            f"{self.time_floor:.1f} s = {self.seconds_to_last_decision / self.time_floor:.2f} x",
            f"409 / 429           {self.conflicts_409} / {self.rate_limited_429}",
        ]


def workload() -> Workload:
    return dag(LIMIT, advertisers=TREES)


def _entity_key(record: RequestRecord) -> str:
    return (record.idempotency_key or "").split(":")[0]


def _parents(entity: Entity) -> list[str]:
    refs: list[str] = []
    for value in entity["payload"].values():
        items = value if isinstance(value, list) else [value]
        refs += [item["$ref"] for item in items if isinstance(item, dict) and "$ref" in item]
    return refs


def seen_decisions(
    records: list[RequestRecord], processing: dict[str, float]
) -> tuple[dict[str, float], dict[str, str]]:
    """When each entity's decision was first seen (mock clock): at its POST if the DSP
    decided at once, else at the first status read after its decision."""
    created: dict[str, float] = {}
    keys: dict[str, str] = {}
    seen: dict[str, float] = {}
    for r in records:
        if r.method == "POST" and r.created_id:
            key = _entity_key(r)
            created[r.created_id], keys[r.created_id] = r.at, key
            if processing[r.created_id] == 0:
                seen[key] = r.at
    for r in records:
        parts = r.path.strip("/").split("/")
        if r.method != "GET" or r.status != 200 or len(parts) != 4 or parts[3] != "status":
            continue
        dsp_id = parts[2]
        key = keys.get(dsp_id)
        if key and key not in seen and r.at >= created[dsp_id] + processing[dsp_id]:
            seen[key] = r.at
    return seen, keys


def time_floor(
    entities: list[FloorEntity], limit: int, window: float, propagation: float
) -> tuple[list[float], list[float]]:
    """The floor's request times and decision-seen times: the better of two orders."""
    schedules = [
        _perfect_poller(entities, limit, window, propagation, posts_first)
        for posts_first in (False, True)
    ]
    return min(schedules, key=lambda schedule: schedule[1][-1])


def _perfect_poller(
    entities: list[FloorEntity],
    limit: int,
    window: float,
    propagation: float,
    posts_first: bool,
) -> tuple[list[float], list[float]]:
    children: dict[str, int] = {e.key: 0 for e in entities}
    for e in entities:
        for p in e.parents:
            children[p] += 1
    order = {e.key: i for i, e in enumerate(entities)}
    posted: dict[str, float] = {}
    seen: dict[str, float] = {}
    sent: list[float] = []
    now = 0.0
    while len(seen) < len(entities):
        in_window = [t for t in sent if t > now - window]
        if len(in_window) >= limit:
            now = min(in_window) + window
            continue
        best: tuple[int, int, str] | None = None
        upcoming = math.inf
        for e in entities:
            if e.key not in posted:
                ready_at = max((seen.get(p, math.inf) for p in e.parents), default=0.0)
                ready_at = max(
                    [ready_at, *(posted.get(p, math.inf) + propagation for p in e.parents)]
                )
                rank = 0 if posts_first else parents_first_rank("POST", children[e.key])
                key = (rank, order[e.key], "POST")
            elif e.key not in seen:
                ready_at = posted[e.key] + e.processing
                rank = 10 if posts_first else parents_first_rank("GET", children[e.key])
                key = (rank, order[e.key], "GET")
            else:
                continue
            if ready_at <= now:
                best = min(best, key) if best else key
            else:
                upcoming = min(upcoming, ready_at)
        if best is None:
            now = upcoming
            continue
        _, index, method = best
        entity = entities[index]
        sent.append(now)
        if method == "POST":
            posted[entity.key] = now
            if entity.processing == 0:
                seen[entity.key] = now
        else:
            seen[entity.key] = now
    return sent, sorted(seen.values())


def parents_first_rank(method: str, dependants: int) -> int:
    """The service's order, which its lanes approximate with fair shares: parents' calls
    (submissions and polls alike), then leaves' submissions, then leaves' polls."""
    if dependants > 0:
        return 2
    return 3 if method == "POST" else 4


async def run_code(code: WorkerCode, give_up_after: float) -> CodeRun:
    load = workload()
    entities = [e for phase in load.phases for e in phase.entities]
    options = StackOptions(
        workers=2,
        rate_limit=LIMIT,
        rate_window=WINDOW,
        review_seconds=REVIEW_MEDIAN,
        pending_seconds=PENDING_MEDIAN,
        propagation_delay=PROPAGATION,
        poll_min_interval=POLL_MIN,
        poll_max_interval=POLL_MAX,
        worker_code=code,
        review_model="lognormal",
        review_sigma=REVIEW_SIGMA,
        pending_sigma=PENDING_SIGMA,
        review_max_seconds=REVIEW_MAX,
        seed=SEED,
        log_dir=OUT_DIR / "logs" / f"efficiency-{code.label}",
    )
    async with open_bench_stack(options) as stack:
        events = await drive(stack, load, give_up_after=give_up_after)
        if "timed_out" in events:
            raise SystemExit(f"{code.label}: not all entities ended within {give_up_after:.0f} s")
        records = sorted(stack.mock.dsp.request_log, key=lambda r: r.at)
        processing = {i: e.processing_seconds for i, e in stack.mock.dsp.entities.items()}
    seen, keys = seen_decisions(records, processing)
    by_key = {key: processing[dsp_id] for dsp_id, key in keys.items()}
    floor_entities = [FloorEntity(e["key"], by_key[e["key"]], _parents(e)) for e in entities]
    floor_sent, floor_seen = time_floor(floor_entities, LIMIT, WINDOW, PROPAGATION)
    t0 = records[0].at
    return CodeRun(
        code=code.label,
        entities=len(entities),
        requests=len(records),
        requests_floor=len(entities) + sum(1 for p in by_key.values() if p > 0),
        seconds_to_last_decision=max(seen.values()) - t0,
        time_floor=floor_seen[-1],
        conflicts_409=sum(1 for r in records if r.status == 409),
        rate_limited_429=sum(1 for r in records if r.status == 429),
        requests_at=[round(r.at - t0, 3) for r in records],
        decisions_seen_at=sorted(round(t - t0, 3) for t in seen.values()),
        floor_requests_at=[round(t, 3) for t in floor_sent],
        floor_decisions_seen_at=[round(t, 3) for t in floor_seen],
    )


def plot(runs: list[CodeRun], path: Path) -> Path:
    figure, (decisions, requests) = plt.subplots(1, 2, figsize=(12, 4.5))
    floor = runs[0]
    for axes, attribute, floor_attribute, label in (
        (decisions, "decisions_seen_at", "floor_decisions_seen_at", "decisions seen"),
        (requests, "requests_at", "floor_requests_at", "DSP requests sent"),
    ):
        floor_times = getattr(floor, floor_attribute)
        axes.step(
            floor_times,
            range(1, len(floor_times) + 1),
            where="post",
            color="black",
            ls="--",
            label="floor",
        )
        for run in runs:
            times = getattr(run, attribute)
            axes.step(times, range(1, len(times) + 1), where="post", label=run.code)
        axes.set_xlabel("seconds since the first request")
        axes.set_ylabel(label)
        axes.grid(alpha=0.3)
        axes.legend(loc="lower right")
    decisions.set_title(f"{floor.entities} entities: decisions seen over time")
    requests.set_title(f"requests over time ({LIMIT} per {WINDOW:g} s)")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def load_runs() -> list[CodeRun]:
    """Every run's figures present, the current code's first. Files written before issue 21
    name the poll strategy they ran (`fixed`, `adaptive`, `learned`) as their code."""
    runs = []
    for path in sorted(OUT_DIR.glob("efficiency-*.json")):
        figures = json.loads(path.read_text())
        figures.setdefault("code", figures.pop("strategy", path.stem))
        runs.append(CodeRun(**figures))
    return sorted(runs, key=lambda run: run.code != CURRENT)


def table(runs: list[CodeRun]) -> list[str]:
    out = ["| code | requests / floor | time to last decision / floor | 409 | 429 |"]
    out.append("| --- | --- | --- | --- | --- |")
    for r in runs:
        out.append(
            f"| {r.code} | {r.requests / r.requests_floor:.2f} ({r.requests} / "
            f"{r.requests_floor}) | {r.seconds_to_last_decision / r.time_floor:.2f} "
            f"({r.seconds_to_last_decision:.0f} s / {r.time_floor:.0f} s) | "
            f"{r.conflicts_409} | {r.rate_limited_429} |"
        )
    return out


async def main_async(codes: list[WorkerCode], give_up_after: float) -> None:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for code in codes:
        began = time.monotonic()
        result = await run_code(code, give_up_after)
        (OUT_DIR / f"efficiency-{code.label}.json").write_text(json.dumps(asdict(result)))
        print("\n".join(result.lines()), f"\n(wall {time.monotonic() - began:.0f} s)", flush=True)
    runs = load_runs()
    print("\n".join(table(runs)))
    print(f"plot {plot(runs, OUT_DIR / 'efficiency.png')}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--revisions",
        nargs="+",
        type=worker_code_argument,
        default=[WorkerCode()],
        metavar="SPEC",
        help="current, or REV[:NAME=VALUE,...] (devkit/bench/revision.py)",
    )
    parser.add_argument("--timeout", type=float, default=900.0)
    args = parser.parse_args(argv)
    asyncio.run(main_async(args.revisions, args.timeout))


if __name__ == "__main__":
    main()
