"""The benchmarks page: the current tables, generated from the result files the benchmarks
write (`devkit/bench/results/`), one table per benchmark with the latest run of each
configuration, and for rate-limit runs a plot of requests per rolling window (inline SVG:
no plotting library at build time, no CDN)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from devkit.bench.results import RESULTS_DIR, load_runs

PLOT_WIDTH, PLOT_HEIGHT, MARGIN = 640, 180, 36


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return "—"
    return str(value).replace("|", "\\|")


def latest_per_run(runs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Per bench, the latest run of each configuration (`run`), with how many it had."""
    by_bench: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for record in runs:  # oldest first: later runs replace earlier ones
        by_bench[record["bench"]][record["run"]] = record
        counts[record["bench"], record["run"]] += 1
    return {
        bench: [record | {"runs": counts[bench, name]} for name, record in sorted(latest.items())]
        for bench, latest in sorted(by_bench.items())
    }


def table(records: list[dict[str, Any]]) -> str:
    columns: list[str] = []
    for record in records:
        columns += [name for name in record["summary"] if name not in columns]
    header = ["run", *columns, "commit", "recorded", "machine", "runs kept"]
    rows = [f"| {' | '.join(header)} |", f"|{' --- |' * len(header)}"]
    for record in records:
        machine = record["machine"]
        cells = [
            f"`{record['run']}`",
            *(_value(record["summary"].get(name)) for name in columns),
            f"`{record['commit']}`",
            record["recorded_at"][:10],
            f"{machine.get('cpus')} CPUs, Python {machine.get('python')}",
            str(record["runs"]),
        ]
        rows.append(f"| {' | '.join(cells)} |")
    return "\n".join(rows)


def window_plot(requests: list[list[Any]], limit: int, window: float) -> str:
    """Requests in the trailing window at each request, against the limit, as inline SVG."""
    times = sorted(float(request[0]) for request in requests)
    if not times:
        return ""
    counts, start = [], 0
    for index, at in enumerate(times):
        while times[start] <= at - window:
            start += 1
        counts.append(index - start + 1)
    span = max(times[-1], window)
    top = max(limit, *counts) * 1.15
    width, height = PLOT_WIDTH - 2 * MARGIN, PLOT_HEIGHT - 2 * MARGIN

    def x(at: float) -> float:
        return MARGIN + width * at / span

    def y(count: float) -> float:
        return MARGIN + height * (1 - count / top)

    points = " ".join(
        f"{x(at):.1f},{y(count):.1f}" for at, count in zip(times, counts, strict=True)
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{PLOT_WIDTH}" height="{PLOT_HEIGHT}" '
        f'role="img" aria-label="requests per rolling {window:g} s window against the limit '
        f'{limit}; at most {max(counts)}">'
        f'<line x1="{MARGIN}" y1="{y(limit):.1f}" x2="{MARGIN + width}" y2="{y(limit):.1f}" '
        f'stroke="#c62828" stroke-dasharray="4 3"/>'
        f'<text x="{MARGIN + width}" y="{y(limit) - 4:.1f}" text-anchor="end" font-size="11" '
        f'fill="#c62828">limit {limit}</text>'
        f'<polyline points="{points}" fill="none" stroke="#1565c0" stroke-width="1.5"/>'
        f'<line x1="{MARGIN}" y1="{MARGIN + height}" x2="{MARGIN + width}" '
        f'y2="{MARGIN + height}" stroke="#555"/>'
        f'<text x="{MARGIN}" y="{PLOT_HEIGHT - 8}" font-size="11">0 s</text>'
        f'<text x="{MARGIN + width}" y="{PLOT_HEIGHT - 8}" font-size="11" '
        f'text-anchor="end">{span:.0f} s</text>'
        f'<text x="4" y="{MARGIN - 8}" font-size="11">requests in the last {window:g} s '
        f"(max {max(counts)})</text></svg>"
    )


def _plots(records: list[dict[str, Any]]) -> list[str]:
    out = []
    for record in records:
        details = record.get("details") or {}
        parameters = record.get("parameters") or {}
        requests = details.get("requests") if isinstance(details, dict) else None
        if requests and "limit" in parameters and "window" in parameters:
            out += [
                f"`{record['run']}`:",
                "",
                window_plot(requests, int(parameters["limit"]), float(parameters["window"])),
                "",
            ]
    return out


def render(folder: Path | None = None) -> str:
    runs = load_runs(folder or RESULTS_DIR)
    if not runs:
        return "No benchmark results are recorded yet (`devkit/bench/results/` is empty)."
    sections = []
    for bench, records in latest_per_run(runs).items():
        command = records[-1]["command"]
        sections += [f"## `{bench}`", "", f"Latest command: `{command}`", "", table(records), ""]
        sections += _plots(records)
    return "\n".join(sections).rstrip()
