"""The mock DSP (`python -m devkit.mock_dsp`) as a child process."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

from devkit.mock_dsp.config import MockSeat
from devkit.stack.ports import port_open, wait_for_port
from devkit.stack.process import ManagedProcess
from dsp_integration.config.seats import Seats
from dsp_integration.config.settings import (
    DEV_API_TOKEN,
    DEV_DIR,
    MOCK_DSP_PORT,
    PROJECT_ROOT,
    Settings,
)


class MockDspError(RuntimeError):
    pass


class MockDspProcess:
    """The mock DSP on `host:port`; `start()` returns once the port accepts connections."""

    def __init__(
        self,
        *,
        port: int = MOCK_DSP_PORT,
        host: str = "127.0.0.1",
        token: str = DEV_API_TOKEN,
        rate_limit: int = 40,
        rate_window: float = 60.0,
        review_seconds: float | None = None,
        pending_seconds: float | None = None,
        propagation_delay: float | None = None,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        log_file: Path | str | None = None,
        inherit_output: bool = False,
        startup_timeout: float = 30.0,
    ) -> None:
        self.host = host
        self.port = port
        self.token = token
        self.startup_timeout = startup_timeout
        self.startup_seconds: float | None = None
        args = [
            sys.executable,
            "-m",
            "devkit.mock_dsp",
            "--host",
            host,
            "--port",
            str(port),
            "--token",
            token,
            "--rate-limit",
            str(rate_limit),
            "--rate-window",
            _number(rate_window),
        ]
        for flag, value in (
            ("--review-seconds", review_seconds),
            ("--pending-seconds", pending_seconds),
            ("--propagation-delay", propagation_delay),
        ):
            if value is not None:
                args += [flag, _number(value)]
        args += list(extra_args)
        self._process = ManagedProcess(
            "mock-dsp",
            args,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            cwd=PROJECT_ROOT,
            log_file=log_file,
            inherit_output=inherit_output,
        )

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: object) -> MockDspProcess:
        """A mock matching the service's DSP settings: the default seat's token, rate limit
        and window, and, with DSP_SEATS, every seat with its credentials and window (passed
        in a file only this user reads, so no secret shows in the process list)."""
        seats = settings.seats()
        options: dict[str, object] = {
            "token": settings.dsp_token().get_secret_value(),
            "rate_limit": settings.dsp_rate_limit,
            "rate_window": settings.dsp_rate_window,
        }
        if settings.dsp_seats:
            options["extra_args"] = ["--seats", f"@{_seats_file(seats)}"]
        options.update(overrides)
        return cls(**options)  # type: ignore[arg-type]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid

    @property
    def running(self) -> bool:
        return self._process.running

    @property
    def log_path(self) -> Path | None:
        return self._process.log_path

    @property
    def args(self) -> list[str]:
        return list(self._process.args)

    def start(self) -> None:
        if self.running:
            return
        if port_open(self.host, self.port):
            raise MockDspError(f"something already listens on {self.host}:{self.port}")
        began = time.monotonic()
        self._process.start()
        try:
            wait_for_port(self.host, self.port, self.startup_timeout, process=self._process.popen)
        except (RuntimeError, TimeoutError) as error:
            self._process.stop(timeout=5.0)
            raise MockDspError(
                f"mock DSP did not start on {self.host}:{self.port}: {error}; "
                f"its log ends with:\n{self._process.log_tail()}"
            ) from error
        self.startup_seconds = time.monotonic() - began

    def stop(self, timeout: float = 10.0) -> None:
        self._process.stop(timeout)
        self._process.discard_log()

    def restart(self, timeout: float = 10.0) -> None:
        self._process.stop(timeout)
        self.start()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def _seats_file(seats: Seats) -> Path:
    """The seats as the mock takes them (`--seats @file`), in a file only this user reads."""
    table = {
        seat.name: (
            MockSeat(
                client_id=seat.client_id,
                client_secret=seat.secret.get_secret_value(),
                rate_limit=seat.rate_limit,
                rate_window=seat.rate_window,
            )
            if seat.client_id is not None
            else MockSeat(
                token=seat.secret.get_secret_value(),
                rate_limit=seat.rate_limit,
                rate_window=seat.rate_window,
            )
        ).model_dump(exclude_none=True)
        for seat in seats
    }
    DEV_DIR.mkdir(parents=True, exist_ok=True)
    path = DEV_DIR / "mock-seats.json"
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(json.dumps(table))
    return path


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
