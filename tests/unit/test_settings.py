"""Settings: the DSP token a worker may use, and a worker that refuses a real DSP without one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

from config.settings import DEV_API_TOKEN, PROJECT_ROOT, MissingDspToken, Settings


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
