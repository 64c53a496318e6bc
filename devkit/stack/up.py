"""`python dev.py up`: the whole local stack in the foreground until Ctrl-C.

Starts only what is not already there (Temporal at TEMPORAL_ADDRESS, embedded PostgreSQL
when DATABASE_URL is unset, the mock DSP when DSP_BASE_URL is unset), migrates the
database, runs N workers, and on Ctrl-C/SIGTERM stops what it started in reverse order.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from devkit.stack.aio import run_sync
from devkit.stack.console import ConsoleProcess
from devkit.stack.mock import MockDspProcess
from devkit.stack.ports import is_local_host, port_open, split_address
from devkit.stack.postgres import EmbeddedPostgres, create_database, without_password
from devkit.stack.temporal_server import TemporalDevServer
from devkit.stack.workers import WorkerProcesses, worker_env
from dsp_integration.config.settings import (
    DEV_DIR,
    EMBEDDED_POSTGRES_PORT,
    MOCK_DSP_PORT,
    MissingDspToken,
    Settings,
    dev_server_ui_url,
)
from dsp_integration.database.migrate import upgrade

STACK_FILE = DEV_DIR / "stack.json"


class StackError(RuntimeError):
    """A part of the stack cannot be started; printed as one message."""


class MockTimings(BaseSettings):
    """The timings of the mock DSP that `dev.py up` starts (docker-compose reads the same
    variables): MOCK_REVIEW_SECONDS a creative stays in review, MOCK_PENDING_SECONDS other
    entities pending. From the environment or `.env`, as Settings reads them."""

    model_config = SettingsConfigDict(
        env_prefix="MOCK_", env_file=".env", extra="ignore", env_ignore_empty=True
    )

    review_seconds: float = Field(default=20.0, ge=0)
    pending_seconds: float = Field(default=3.0, ge=0)


@dataclass
class UpOptions:
    workers: int = 1
    state_dir: Path = DEV_DIR
    stack_file: Path = STACK_FILE
    mock: MockTimings = field(default_factory=MockTimings)


@dataclass
class Part:
    """One piece of the stack: where it listens and whether this process started it."""

    name: str
    address: str
    started: bool
    pid: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class DevStack:
    def __init__(
        self, settings: Settings, options: UpOptions, out: Callable[[str], None] = print
    ) -> None:
        self.settings = settings
        self.options = options
        self.out = out
        self.parts: dict[str, Part] = {}
        self.temporal: TemporalDevServer | None = None
        self.postgres: EmbeddedPostgres | None = None
        self.mock: MockDspProcess | None = None
        self.workers: WorkerProcesses | None = None
        self.console: ConsoleProcess | None = None
        self.temporal_address = settings.temporal_address
        self._reported_exits: set[int] = set()

    def start(self) -> None:
        self._check_console()
        if self.options.workers:
            try:
                self.settings.dsp_token()  # what the workers would refuse to start without
            except MissingDspToken as error:
                raise StackError(str(error)) from error
        self.options.state_dir.mkdir(parents=True, exist_ok=True)
        self._start_temporal()
        self._start_postgres()
        self._start_mock()
        self.out("migrating the database ...")
        run_sync(upgrade(self.settings.effective_database_url))
        self._start_workers()
        self._start_console()

    def stop(self) -> None:
        """Stop, in reverse order, what this process started."""
        if self.console is not None:
            self.out("stopping the console ...")
            self.console.stop()
        if self.workers is not None and len(self.workers):
            self.out(f"stopping {len(self.workers)} worker(s) ...")
            self.workers.stop_all()
        if self.mock is not None:
            self.out("stopping the mock DSP ...")
            self.mock.stop()
        if self.postgres is not None:
            self.out("stopping PostgreSQL ...")
            self.postgres.stop()
        if self.temporal is not None:
            self.out("stopping the Temporal dev server ...")
            self.temporal.stop()

    def worker_env(self) -> dict[str, str]:
        """Every setting, with the Temporal address of the server found or started."""
        return worker_env(
            self.settings.model_copy(update={"temporal_address": self.temporal_address})
        )

    def _start_temporal(self) -> None:
        host, port = split_address(self.settings.temporal_address)
        ui_url = dev_server_ui_url(f"{_display_host(host)}:{port}")
        if port_open(host, port):
            self.parts["temporal"] = Part("temporal", self.settings.temporal_address, False)
            self.parts["temporal"].extra["ui_url"] = ui_url
            return
        if not is_local_host(host):
            raise StackError(
                f"Temporal at TEMPORAL_ADDRESS={self.settings.temporal_address} does not answer, "
                "and it is not a local address where a dev server could be started"
            )
        self.out(f"starting the Temporal dev server on 127.0.0.1:{port} ...")
        self.temporal = TemporalDevServer(
            port=port,
            namespace=self.settings.temporal_namespace,
            db_filename=self.options.state_dir / "temporal.db",
            log_file=self.options.state_dir / "temporal.log",
        )
        self.temporal.start()
        self.temporal_address = self.temporal.address
        self.parts["temporal"] = Part(
            "temporal", self.temporal.address, True, self.temporal.pid, {"ui_url": ui_url}
        )

    def _start_postgres(self) -> None:
        url = self.settings.effective_database_url
        if not self.settings.uses_embedded_postgres:
            self.parts["postgres"] = Part("postgres", without_password(url), False)
            return
        server = EmbeddedPostgres(self.options.state_dir / "postgres", EMBEDDED_POSTGRES_PORT)
        if server.running:
            self.parts["postgres"] = Part("postgres", server.url, False, server.pid)
            server.start()  # only makes sure the database exists
            return
        if port_open(server.host, server.port):
            # Another embedded server (another state dir) already serves this port: use it.
            run_sync(create_database(server.server_url, server.database))
            self.parts["postgres"] = Part("postgres", server.url, False)
            return
        self.out(f"starting PostgreSQL on {server.host}:{server.port} ({server.data_dir}) ...")
        self.postgres = server
        server.start()
        self.parts["postgres"] = Part("postgres", server.url, True, server.pid)

    def _start_mock(self) -> None:
        if not self.settings.uses_mock_dsp:
            self.parts["mock_dsp"] = Part("mock_dsp", self.settings.effective_dsp_base_url, False)
            return
        if port_open("127.0.0.1", MOCK_DSP_PORT):
            self.parts["mock_dsp"] = Part("mock_dsp", f"http://127.0.0.1:{MOCK_DSP_PORT}", False)
            return
        options, settings = self.options, self.settings
        self.out(
            f"starting the mock DSP on 127.0.0.1:{MOCK_DSP_PORT} "
            f"(review {options.mock.review_seconds:g} s, "
            f"pending {options.mock.pending_seconds:g} s, "
            f"{settings.dsp_rate_limit} requests / {settings.dsp_rate_window:g} s) ..."
        )
        self.mock = MockDspProcess.from_settings(
            self.settings,
            port=MOCK_DSP_PORT,
            review_seconds=options.mock.review_seconds,
            pending_seconds=options.mock.pending_seconds,
            log_file=self.options.state_dir / "mock_dsp.log",
        )
        self.mock.start()
        self.parts["mock_dsp"] = Part("mock_dsp", self.mock.url, True, self.mock.pid)

    def _start_workers(self) -> None:
        self.workers = WorkerProcesses(self.options.workers, self.worker_env())
        if self.options.workers:
            self.out(f"starting {self.options.workers} worker(s) ...")
        self.workers.start()

    def _check_console(self) -> None:
        """Before anything starts: the console would refuse to listen as configured."""
        from dsp_integration.console.server import ConsoleRefused, check_bind

        try:
            check_bind(self.settings, self.settings.console_host)
        except ConsoleRefused as error:
            raise StackError(str(error)) from error

    def _start_console(self) -> None:
        from dsp_integration.console.server import console_url

        settings = self.settings
        url = console_url(settings.console_host, settings.console_port)
        connect_host = "127.0.0.1" if settings.console_host in ("0.0.0.0", "") else None
        if port_open(connect_host or settings.console_host, settings.console_port):
            self.parts["console"] = Part("console", url, False)
            return
        self.out(f"starting the console on {url} ...")
        env = {
            **self.worker_env(),
            "DATABASE_URL": settings.effective_database_url,
            "TEMPORAL_UI_URL": self.parts["temporal"].extra["ui_url"],
        }
        self.console = ConsoleProcess.from_settings(
            settings, env, log_file=self.options.state_dir / "console.log"
        )
        try:
            self.console.start()
        except RuntimeError as error:
            raise StackError(str(error)) from error
        self.parts["console"] = Part("console", self.console.url, True, self.console.pid)

    def check(self) -> str | None:
        """Report workers that exited; return a message if a server we started is gone."""
        if self.workers is not None:
            for index in range(len(self.workers)):
                code = self.workers.returncode(index)
                if code is not None and index not in self._reported_exits:
                    self._reported_exits.add(index)
                    self.out(f"worker {index} exited with code {code}")
        for name, server in (
            ("Temporal dev server", self.temporal),
            ("mock DSP", self.mock),
            ("console", self.console),
        ):
            if server is not None and not server.running:
                return f"the {name} exited unexpectedly (log: {server.log_path})"
        if self.postgres is not None and not _pid_alive(self.parts["postgres"].pid):
            return f"PostgreSQL exited unexpectedly (log: {self.postgres.log_path})"
        return None

    def describe(self) -> dict[str, Any]:
        parts = {
            name: {"address": part.address, "started": part.started, "pid": part.pid, **part.extra}
            for name, part in self.parts.items()
        }
        return {
            "pid": os.getpid(),
            "ready": True,
            "started_at": datetime.now(UTC).isoformat(),
            "state_dir": str(self.options.state_dir),
            "temporal_address": self.temporal_address,
            "temporal_namespace": self.settings.temporal_namespace,
            "ui_url": parts["temporal"]["ui_url"],
            **parts,
            "workers": self.workers.pids if self.workers is not None else [],
        }

    def summary(self) -> str:
        ui_url = self.parts["temporal"].extra["ui_url"]
        lines = ["", "dev stack ready:"]
        rows = [
            ("Temporal gRPC", self.temporal_address, self.parts["temporal"].started),
            ("Temporal web UI", ui_url, self.parts["temporal"].started),
            ("PostgreSQL", self.parts["postgres"].address, self.parts["postgres"].started),
            ("DSP", self.parts["mock_dsp"].address, self.parts["mock_dsp"].started),
        ]
        if "console" in self.parts:
            console = self.parts["console"]
            rows.append(("console and API", console.address, console.started))
        for label, address, started in rows:
            lines.append(f"  {label:<16} {address}{'' if started else '  (already running)'}")
        count = len(self.workers) if self.workers is not None else 0
        lines.append(f"  {'workers':<16} {count} ({self.settings.temporal_task_queue})")
        lines.append("press Ctrl-C to stop what was started here")
        return "\n".join(lines)


def read_stack_file(path: Path = STACK_FILE) -> dict[str, Any] | None:
    """The running stack's description, or None when no live `dev.py up` wrote one."""
    try:
        stack = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(stack, dict) or not _pid_alive(stack.get("pid")):
        return None
    return stack


def write_stack_file(path: Path, stack: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(stack, indent=2) + "\n")
    temporary.replace(path)


def run_up(options: UpOptions, out: Callable[[str], None] = print) -> int:
    running = read_stack_file(options.stack_file)
    if running is not None:
        out(f"error: another `dev.py up` (pid {running['pid']}) already runs this stack")
        return 1
    settings = Settings()
    stack = DevStack(settings, options, out)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    code = 0
    try:
        stack.start()
        write_stack_file(options.stack_file, stack.describe())
        out(stack.summary())
        while (problem := stack.check()) is None:
            time.sleep(0.5)
        out(f"error: {problem}")
        code = 1
    except KeyboardInterrupt:
        out("\ninterrupted")
    except Exception as error:
        out(f"error: {error}")
        code = 1
    finally:
        # A second Ctrl-C must not cut the shutdown short (each stop has its own timeout).
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            stack.stop()
            stack_file_owner = read_stack_file(options.stack_file)
            if stack_file_owner is not None and stack_file_owner["pid"] == os.getpid():
                options.stack_file.unlink(missing_ok=True)
        finally:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            signal.signal(signal.SIGTERM, previous)
    out("stopped")
    return code


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _pid_alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _display_host(host: str) -> str:
    return "127.0.0.1" if host in {"localhost", "0.0.0.0", ""} else host
