"""Settings: the DSP token a worker may use, and a worker that refuses a real DSP without one."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import TypeVar

import pytest
import uvloop
from pydantic import SecretStr, ValidationError
from pydantic_settings import BaseSettings

import devkit.mock_dsp.__main__ as mock_main
from devkit.mock_dsp.config import MockDspConfig
from devkit.stack.workers import worker_env
from dsp_integration.config.settings import (
    DEV_API_TOKEN,
    MOCK_DSP_PORT,
    PROJECT_ROOT,
    MissingDspToken,
    Settings,
    as_environment,
    dev_server_ui_url,
)
from dsp_integration.worker.runtime import WorkerTuning, event_loop_factory


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_the_mock_dsp_gets_the_development_token_without_one_being_set() -> None:
    assert settings().dsp_token().get_secret_value() == DEV_API_TOKEN


def test_a_real_dsp_gets_the_token_that_is_set() -> None:
    configured = settings(dsp_base_url="https://dsp.example.com", dsp_api_token="s3cret")
    assert configured.dsp_token() == SecretStr("s3cret")


@pytest.mark.parametrize("token", [None, ""])
def test_a_real_dsp_without_a_token_is_a_configuration_error(token: str | None) -> None:
    configured = settings(dsp_base_url="https://dsp.example.com", dsp_api_token=token)
    with pytest.raises(MissingDspToken, match="DSP_API_TOKEN"):
        configured.dsp_token()


def test_a_worker_for_a_real_dsp_without_a_token_refuses_to_start_with_one_line(
    tmp_path: Path,
) -> None:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("DSP_", "TEMPORAL_", "DATABASE_", "METRICS_"))
    }
    env |= {"DSP_BASE_URL": "https://dsp.example.com", "TEMPORAL_ADDRESS": "127.0.0.1:1"}
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "worker.py")],
        cwd=tmp_path,  # no .env here
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "DSP_API_TOKEN" in lines[0] and "bad configuration" in lines[0]


M = TypeVar("M", bound=BaseSettings)


def read_back(env: dict[str, str], model: type[M], monkeypatch: pytest.MonkeyPatch) -> M:
    """`model` as a process with exactly `env` as its environment reads it."""
    for name in list(os.environ):
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return model(_env_file=None)  # type: ignore[call-arg]


def test_worker_env_passes_every_setting_so_a_worker_reads_the_same(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    configured = settings(
        temporal_address="temporal.example:7233",
        database_url="postgresql+asyncpg://u@db.example/x",
        dsp_base_url="https://dsp.example.com",
        dsp_api_token="s3cret",
        dsp_rate_limit=7,
        dsp_timeout=2.5,
        dsp_reconcile_interval=0,
        metrics_port=9100,
        console_token="c0nsole",
    )
    env = worker_env(configured)
    assert set(env) == {name.upper() for name in Settings.model_fields}
    assert read_back(env, Settings, monkeypatch) == configured


def test_worker_env_for_the_mock_dsp_names_it_and_its_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = worker_env(settings())
    worker = read_back(env, Settings, monkeypatch)
    assert worker.dsp_base_url == f"http://127.0.0.1:{MOCK_DSP_PORT}"
    assert worker.dsp_token().get_secret_value() == DEV_API_TOKEN
    assert worker.metrics_port is None and worker.console_token is None  # "" reads as unset


def test_worker_tuning_goes_through_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    tuning = WorkerTuning(  # type: ignore[call-arg]
        _env_file=None,
        max_cached_workflows=250,
        workflow_sandbox=True,
        event_loop="asyncio",
    )
    env = as_environment(tuning)
    assert env == {
        "DSP_MAX_CACHED_WORKFLOWS": "250",
        "DSP_WORKFLOW_SANDBOX": "1",
        "DSP_EVENT_LOOP": "asyncio",
    }
    assert read_back(env, WorkerTuning, monkeypatch) == tuning


def test_a_bad_worker_switch_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DSP_EVENT_LOOP", "sometimes")
    with pytest.raises(ValidationError):
        WorkerTuning(_env_file=None)  # type: ignore[call-arg]


def test_the_retired_benchmark_switches_change_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """An environment written for a revision before issue 21 still starts this worker, with
    its one poll planner and one call order."""
    default = WorkerTuning(_env_file=None)  # type: ignore[call-arg]
    for name, value in (
        ("DSP_POLL_STRATEGY", "fixed"),
        ("DSP_DEPENDANT_PRIORITY", "0"),
        ("DSP_CALL_ORDER", "tiers"),
    ):
        monkeypatch.setenv(name, value)
    assert WorkerTuning(_env_file=None) == default  # type: ignore[call-arg]


def test_the_mock_dsp_command_line_has_an_option_per_config_field(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DSP_API_TOKEN", raising=False)
    assert mock_main.config_from(mock_main.parse_args([])) == MockDspConfig()
    args = mock_main.parse_args(
        ["--rate-limit", "5", "--rate-window", "2.5", "--fault-kinds", "slow, html", "--seed", "3"]
    )
    config = mock_main.config_from(args)
    assert (config.rate_limit, config.rate_window, config.seed) == (5, 2.5, 3)
    assert config.fault_kinds == ["slow", "html"]
    for name in MockDspConfig.model_fields:
        assert hasattr(mock_main.parse_args([]), name)
    with pytest.raises(ValueError):
        mock_main.config_from(mock_main.parse_args(["--fault-kinds", "gremlins"]))


@pytest.mark.parametrize(
    ("address", "ui"),
    [
        ("localhost:7233", "http://localhost:8233"),
        (":7233", "http://localhost:8233"),
        ("temporal:7233", "http://temporal:8233"),
        ("temporal", "http://temporal"),
    ],
)
def test_the_dev_server_ui_is_guessed_in_one_place(address: str, ui: str) -> None:
    assert dev_server_ui_url(address) == ui
    assert settings(temporal_address=address).effective_temporal_ui_url == ui
    configured = settings(temporal_address=address, temporal_ui_url="https://ui.example/")
    assert configured.effective_temporal_ui_url == "https://ui.example"


def test_the_worker_runs_on_uvloop_unless_told_otherwise() -> None:
    default = WorkerTuning(_env_file=None)  # type: ignore[call-arg]
    plain = WorkerTuning(_env_file=None, event_loop="asyncio")  # type: ignore[call-arg]
    assert event_loop_factory(default) is uvloop.new_event_loop
    assert event_loop_factory(plain) is asyncio.new_event_loop
