"""Submit 10,000 entities with the real `starter.py submit`: validated, stored and every
workflow started, with no workers (nothing runs). Prints entities per second and peak memory.

    DATABASE_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/postgres \
        .venv/bin/python -m devkit.bench.submit_10k [--entities 10000] [--profile out.prof]

Without DATABASE_URL an embedded PostgreSQL is started. `--profile` runs the submit under
cProfile and prints the 25 most expensive functions (cumulative)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pstats
import resource
import sys
import time
from pathlib import Path

from temporalio.api.workflowservice.v1 import CountWorkflowExecutionsRequest

from devkit.bench.stack import BenchStack, StackOptions, open_bench_stack
from devkit.bench.workloads import Entity, ad_group, advertiser, campaign, creative
from dsp_integration.config.settings import PROJECT_ROOT

TREE = 5  # advertiser, campaign, two creatives, an ad group
PROFILED_SUBMIT = (
    "import cProfile, sys; from dsp_integration.commands.starter import main; "
    "cProfile.run('code = main(sys.argv[2:])', sys.argv[1]); sys.exit(code)"
)


def entity_lines(count: int, prefix: str) -> list[Entity]:
    """`count` entities as advertiser trees (whole trees, then advertisers to fill up)."""
    entities: list[Entity] = []
    for i in range(count // TREE):
        a = f"{prefix}-a{i}"
        creatives = [f"{a}-c{j}" for j in range(2)]
        entities += [advertiser(a), campaign(f"{a}-cp", a)]
        entities += [creative(c, a) for c in creatives]
        entities.append(ad_group(f"{a}-ag", f"{a}-cp", creatives))
    entities += [advertiser(f"{prefix}-x{i}") for i in range(count - len(entities))]
    return entities


def write_jsonl(path: Path, entities: list[Entity]) -> Path:
    with path.open("w") as out:
        for entity in entities:
            out.write(json.dumps(entity) + "\n")
    return path


def submit_env(stack: BenchStack) -> dict[str, str]:
    settings = stack.settings
    return {
        **os.environ,
        "TEMPORAL_ADDRESS": settings.temporal_address,
        "TEMPORAL_TASK_QUEUE": settings.temporal_task_queue,
        "DATABASE_URL": settings.effective_database_url,
    }


async def count_workflows(stack: BenchStack, batch: str) -> int:
    response = await stack.client.workflow_service.count_workflow_executions(
        CountWorkflowExecutionsRequest(
            namespace=stack.settings.temporal_namespace, query=f'DspBatch="{batch}"'
        )
    )
    return int(response.count)


async def run(entities: int, profile: Path | None) -> int:
    async with open_bench_stack(StackOptions(workers=0)) as stack:
        path = write_jsonl(
            Path(stack.workers.log_dir or "/tmp") / "submit-10k.jsonl",
            entity_lines(entities, "sk"),
        )
        batch = "bench-submit-10k"
        argv = ["submit", str(path), "--batch", batch]
        command = [sys.executable, str(PROJECT_ROOT / "starter.py"), *argv]
        if profile is not None:
            # starter.py ends with os._exit, which would lose cProfile's output.
            command = [sys.executable, "-c", PROFILED_SUBMIT, str(profile), *argv]
        began = time.perf_counter()
        process = await asyncio.create_subprocess_exec(
            *command,
            env=submit_env(stack),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await process.communicate()
        elapsed = time.perf_counter() - began
        # The starter is the only child waited for so far: its peak RSS.
        peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        print(out.decode().strip())
        if process.returncode != 0:
            print(err.decode(), file=sys.stderr)
            return process.returncode or 1
        await asyncio.sleep(2)  # visibility is eventually consistent
        started = await count_workflows(stack, batch)
        print(f"file: {path.stat().st_size / 2**20:.1f} MiB, {entities} entities")
        print(f"submit: {elapsed:.1f} s, {entities / elapsed:.0f} entities/s")
        print(f"peak memory (starter process RSS): {peak_kib / 1024:.0f} MiB")
        print(f"workflows visible with DspBatch={batch!r}: {started}")
        if profile is not None:
            pstats.Stats(str(profile)).sort_stats("cumulative").print_stats(25)
        return 0 if started == entities else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=10_000)
    parser.add_argument("--profile", type=Path)
    args = parser.parse_args()
    return asyncio.run(run(args.entities, args.profile))


if __name__ == "__main__":
    sys.exit(main())
