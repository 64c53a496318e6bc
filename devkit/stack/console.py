"""The web console (`python starter.py serve`) as a child process of `dev.py up`."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

from devkit.stack.ports import wait_for_port
from devkit.stack.process import ManagedProcess
from dsp_integration.config import Settings
from dsp_integration.config.settings import PROJECT_ROOT

STARTER_SCRIPT = PROJECT_ROOT / "starter.py"


class ConsoleProcess:
    """`starter.py serve` on `host:port`; `start()` returns once the port accepts."""

    def __init__(
        self,
        host: str,
        port: int,
        env: Mapping[str, str],
        *,
        log_file: Path | None = None,
        startup_timeout: float = 30.0,
    ) -> None:
        self.host, self.port = host, port
        self.startup_timeout = startup_timeout
        self._process = ManagedProcess(
            "console",
            [sys.executable, str(STARTER_SCRIPT), "serve", "--host", host, "--port", str(port)],
            env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
            cwd=PROJECT_ROOT,
            log_file=log_file,
        )

    @classmethod
    def from_settings(
        cls, settings: Settings, env: Mapping[str, str], *, log_file: Path | None = None
    ) -> ConsoleProcess:
        return cls(settings.console_host, settings.console_port, env, log_file=log_file)

    @property
    def url(self) -> str:
        from dsp_integration.console.server import console_url

        return console_url(self.host, self.port)

    @property
    def pid(self) -> int | None:
        return self._process.pid

    @property
    def running(self) -> bool:
        return self._process.running

    @property
    def log_path(self) -> Path | None:
        return self._process.log_path

    def start(self) -> None:
        self._process.start()
        connect_host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        try:
            wait_for_port(
                connect_host.strip("[]"),
                self.port,
                self.startup_timeout,
                process=self._process.popen,
            )
        except (RuntimeError, TimeoutError) as error:
            tail = self._process.log_tail(5)
            self._process.stop()
            raise RuntimeError(f"the console did not start: {error}\n{tail}") from error

    def stop(self) -> None:
        self._process.stop()
