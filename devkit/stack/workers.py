"""N `python worker.py` processes, for the dev stack and for crash tests."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Self

from devkit.stack.process import ManagedProcess
from dsp_integration.config import Settings
from dsp_integration.config.settings import PROJECT_ROOT, as_environment

WORKER_SCRIPT = PROJECT_ROOT / "worker.py"


def worker_env(settings: Settings) -> dict[str, str]:
    """The environment that makes `python worker.py` run with `settings`: every field of
    Settings (`as_environment`), with the database and DSP the dev stack resolved (the
    embedded PostgreSQL, the mock DSP and then every seat's development secret)."""
    env = as_environment(settings)
    env["DATABASE_URL"] = settings.effective_database_url
    env["DSP_BASE_URL"] = settings.effective_dsp_base_url
    if settings.uses_mock_dsp:
        # DSP_BASE_URL now names the mock, so no seat falls back to its development secret
        # any more: each must be explicit too.
        for seat in settings.seats():
            env[seat.secret_env or "DSP_API_TOKEN"] = seat.secret.get_secret_value()
    return env


class WorkerProcesses:
    """`count` worker processes sharing one environment.

    `env` is laid over this process's environment. With `log_dir` each worker writes
    `worker-<i>.log` there (appended across restarts); without it they print to this
    process's stdout/stderr. `script` is another checkout's `worker.py` where a benchmark
    runs an earlier revision (devkit/bench/revision.py): its folder comes first on the path.
    """

    def __init__(
        self,
        count: int,
        env: Mapping[str, str] | None = None,
        *,
        log_dir: Path | str | None = None,
        cwd: Path | str = PROJECT_ROOT,
        python: str = sys.executable,
        script: Path = WORKER_SCRIPT,
    ) -> None:
        if count < 0:
            raise ValueError("count must be >= 0")
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.log_dir = Path(log_dir) if log_dir is not None else None
        self._processes = [
            ManagedProcess(
                f"worker-{index}",
                [python, str(script)],
                env=self.env,
                cwd=cwd,
                log_file=self.log_dir / f"worker-{index}.log" if self.log_dir else None,
                inherit_output=self.log_dir is None,
            )
            for index in range(count)
        ]

    def __len__(self) -> int:
        return len(self._processes)

    @property
    def pids(self) -> list[int | None]:
        return [process.pid for process in self._processes]

    def start(self) -> None:
        """Start every worker not already running."""
        for process in self._processes:
            process.start()

    def returncode(self, index: int) -> int | None:
        return self._processes[index].returncode

    def log_path(self, index: int) -> Path | None:
        return self._processes[index].log_path

    def log_tail(self, index: int, lines: int = 40) -> str:
        return self._processes[index].log_tail(lines)

    def kill(self, index: int) -> None:
        """SIGKILL worker `index`, as a crash would (no graceful shutdown)."""
        self._processes[index].kill()

    def stop(self, index: int, timeout: float = 15.0) -> int | None:
        """SIGTERM worker `index` (graceful shutdown), SIGKILL after `timeout` seconds."""
        return self._processes[index].stop(timeout)

    def restart(self, index: int, timeout: float = 15.0) -> None:
        """Start worker `index` again, stopping it first if it still runs."""
        self._processes[index].restart(timeout)

    def stop_all(self, timeout: float = 15.0) -> None:
        """SIGTERM every worker at once, then SIGKILL those still alive after `timeout`."""
        for process in self._processes:
            process.terminate()
        deadline = time.monotonic() + timeout
        for process in self._processes:
            process.stop(max(0.1, deadline - time.monotonic()))

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop_all()
