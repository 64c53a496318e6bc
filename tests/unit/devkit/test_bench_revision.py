"""Benchmarks compare the current code with earlier revisions: what a spec names, and what the
workers of a revision are run with."""

from __future__ import annotations

import pytest

from devkit.bench.revision import WorkerCode
from devkit.bench.stack import StackOptions, bench_worker_env
from dsp_integration.config import Settings
from dsp_integration.config.settings import PROJECT_ROOT


def test_current_is_this_checkout_with_no_switches() -> None:
    code = WorkerCode.parse("current")
    assert code == WorkerCode()
    assert code.label == "current"
    assert code.root() == PROJECT_ROOT


def test_a_revision_with_the_switches_it_read() -> None:
    code = WorkerCode.parse("b8ed4d7:DSP_POLL_STRATEGY=adaptive,DSP_CALL_ORDER=tiers")
    assert code.revision == "b8ed4d7"
    assert code.env == (("DSP_POLL_STRATEGY", "adaptive"), ("DSP_CALL_ORDER", "tiers"))
    assert code.label == "b8ed4d7-poll_strategy=adaptive-call_order=tiers"
    assert WorkerCode.parse("main~3").label == "main_3"


@pytest.mark.parametrize(
    "spec", [":DSP_CALL_ORDER=tiers", "b8ed4d7:DSP_CALL_ORDER", "current:DSP_CALL_ORDER=flat"]
)
def test_a_spec_that_names_no_revision_or_a_bad_switch_is_refused(spec: str) -> None:
    with pytest.raises(ValueError):
        WorkerCode.parse(spec)


def test_a_revisions_switches_reach_its_workers_last() -> None:
    settings = Settings(_env_file=None, database_url="postgresql+asyncpg://db/x")  # type: ignore[call-arg]
    code = WorkerCode.parse("b8ed4d7:DSP_DEPENDANT_PRIORITY=0,DSP_EVENT_LOOP=asyncio")
    env = bench_worker_env(settings, StackOptions(worker_code=code))
    assert env["DSP_DEPENDANT_PRIORITY"] == "0"
    assert env["DSP_EVENT_LOOP"] == "asyncio"  # over the stack's own tuning
    assert "DSP_POLL_STRATEGY" not in bench_worker_env(settings, StackOptions())
