"""Benchmark results kept as data: one JSON file per run under `devkit/bench/results/<bench>/`,
with the commit and the machine it ran on, which the docs' benchmarks page is generated from
(`devkit/docs/benchmarks_page.py`). Each file holds `summary`, the flat figures the page's
tables show, and `details`, whatever else the bench wants kept."""

from __future__ import annotations

import json
import os
import platform
import shlex
import socket
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"
REPOSITORY = Path(__file__).resolve().parents[2]
# Where tests (or a scratch run) may send results instead of the checked-in folder.
RESULTS_DIR_ENV = "BENCH_RESULTS_DIR"


@dataclass(frozen=True)
class Machine:
    hostname: str
    platform: str
    python: str
    cpus: int
    cpu_model: str

    @classmethod
    def this(cls) -> Machine:
        return cls(
            hostname=socket.gethostname(),
            platform=platform.platform(),
            python=platform.python_version(),
            cpus=os.cpu_count() or 0,
            cpu_model=_cpu_model(),
        )


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def current_commit(repository: Path = REPOSITORY) -> str:
    """The checkout's commit, `-dirty` when the work tree has changes (`unknown` outside git)."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(repository), *args],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()

    try:
        commit = git("rev-parse", "--short=12", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit}-dirty" if dirty else commit


def results_dir() -> Path:
    return Path(os.environ.get(RESULTS_DIR_ENV) or RESULTS_DIR)


def record_run(
    bench: str,
    run: str,
    *,
    parameters: dict[str, Any],
    summary: dict[str, Any],
    details: Any = None,
    argv: list[str] | None = None,
    folder: Path | None = None,
) -> Path:
    """Write one run's result file and return its path. `run` names the configuration (runs
    of the same configuration are its history; the page shows the latest); `summary` holds
    flat figures (numbers, strings, booleans) in the order the page's table shows them."""
    for name, value in summary.items():
        if not isinstance(value, int | float | str | bool) and value is not None:
            raise TypeError(f"summary figure {name!r} is a {type(value).__name__}, not flat")
    now = datetime.now(UTC)
    command = " ".join(
        ["python", "-m", f"devkit.bench.{bench}", *map(shlex.quote, argv or sys.argv[1:])]
    )
    record = {
        "bench": bench,
        "run": run,
        "recorded_at": now.isoformat(timespec="milliseconds"),
        "commit": current_commit(),
        "machine": Machine.this().__dict__,
        "command": command,
        "parameters": parameters,
        "summary": summary,
        "details": details,
    }
    target = (folder or results_dir()) / bench
    target.mkdir(parents=True, exist_ok=True)
    path = target / f"{now:%Y%m%dT%H%M%SZ}-{run}.json"
    for again in range(2, 100):  # two runs of one configuration within a second
        if not path.exists():
            break
        path = target / f"{now:%Y%m%dT%H%M%SZ}-{run}-{again}.json"
    path.write_text(json.dumps(record, indent=1, default=str) + "\n")
    return path


def load_runs(folder: Path | None = None) -> list[dict[str, Any]]:
    """Every recorded run, oldest first; a file that is not a result is an error naming it."""
    runs = []
    for path in sorted((folder or RESULTS_DIR).glob("*/*.json")):
        record = json.loads(path.read_text())
        missing = {"bench", "run", "recorded_at", "commit", "machine", "summary"} - set(record)
        if missing:
            raise ValueError(f"{path}: not a benchmark result (missing {sorted(missing)})")
        record["file"] = str(path.relative_to(path.parents[1]))
        runs.append(record)
    return sorted(runs, key=lambda record: record["recorded_at"])
