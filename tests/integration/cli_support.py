"""Running the real `starter.py` as a subprocess against the test stack."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from dsp_integration.config import Settings
from dsp_integration.config.settings import PROJECT_ROOT

STARTER = PROJECT_ROOT / "starter.py"


@dataclass(frozen=True)
class CliResult:
    args: tuple[str, ...]
    code: int
    stdout: str
    stderr: str

    def __str__(self) -> str:
        return (
            f"starter.py {' '.join(self.args)} -> exit {self.code}\n"
            f"--- stdout ---\n{self.stdout}--- stderr ---\n{self.stderr}"
        )


def cli_env(settings: Settings, **overrides: str) -> dict[str, str]:
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": settings.temporal_address,
        "TEMPORAL_TASK_QUEUE": settings.temporal_task_queue,
        "DATABASE_URL": settings.effective_database_url,
        "DSP_BASE_URL": settings.effective_dsp_base_url,
        "DSP_API_TOKEN": settings.dsp_token().get_secret_value(),
    }
    env.update(overrides)
    return env


async def run_cli(
    args: Sequence[str | Path], env: Mapping[str, str], *, within: float = 60
) -> CliResult:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(STARTER),
        *(str(arg) for arg in args),
        env=dict(env),
        cwd=PROJECT_ROOT,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), within)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return CliResult(
        tuple(str(arg) for arg in args),
        process.returncode,
        out.decode(errors="replace"),
        err.decode(errors="replace"),
    )
