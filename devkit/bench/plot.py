"""Requests per rolling window against the limit, over time, as a PNG."""

from __future__ import annotations

import bisect
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from devkit.mock_dsp.request_log import RequestRecord


def rolling_counts(times: list[float], window: float, grid: list[float]) -> list[int]:
    """Requests in (t - window, t] for each t of `grid`."""
    return [bisect.bisect_right(times, t) - bisect.bisect_right(times, t - window) for t in grid]


def plot_run(
    records: list[RequestRecord], limit: int, window: float, path: Path, title: str
) -> Path:
    records = sorted(records, key=lambda r: r.at)
    if not records:
        raise ValueError("no requests to plot")
    t0 = records[0].at
    times = [r.at - t0 for r in records]
    posts = [r.at - t0 for r in records if r.method == "POST"]
    end = times[-1] + window
    step = window / 100
    grid = [i * step for i in range(int(end / step) + 1)]
    figure, axes = plt.subplots(figsize=(10, 4.5))
    axes.plot(grid, rolling_counts(times, window, grid), label="all requests", lw=1.5)
    axes.plot(grid, rolling_counts(posts, window, grid), label="submissions (POST)", lw=1)
    axes.axhline(limit, color="red", ls="--", lw=1, label=f"limit {limit} / {window:g} s")
    refused = [r.at - t0 for r in records if r.status == 429]
    if refused:
        axes.plot(refused, [limit] * len(refused), "rx", label="429")
    axes.set_xlabel("seconds since the first request")
    axes.set_ylabel(f"requests in the last {window:g} s")
    axes.set_ylim(0, limit * 1.25)
    axes.set_title(title)
    axes.legend(loc="lower right")
    axes.grid(alpha=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
