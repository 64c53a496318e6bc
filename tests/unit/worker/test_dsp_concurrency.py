"""How many DSP tasks a worker holds at once, from the DSP budget."""

from __future__ import annotations

from dsp_integration.worker.runtime import (
    DSP_CONCURRENCY_CEILING,
    DSP_MAX_CONCURRENT_ACTIVITIES,
    dsp_concurrency,
)


def test_the_production_budget_keeps_a_handful() -> None:
    assert dsp_concurrency(40 / 60) == DSP_MAX_CONCURRENT_ACTIVITIES
    assert dsp_concurrency(16.0) == DSP_MAX_CONCURRENT_ACTIVITIES


def test_a_larger_budget_gets_the_tasks_it_keeps_busy() -> None:
    assert dsp_concurrency(40.0) == 10
    assert dsp_concurrency(100.0) == 25


def test_a_budget_out_of_the_way_stops_at_the_ceiling() -> None:
    assert dsp_concurrency(100_000.0) == DSP_CONCURRENCY_CEILING
