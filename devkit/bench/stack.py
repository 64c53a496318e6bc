"""The whole stack for one benchmark run: Temporal dev server, a fresh PostgreSQL database,
the mock DSP (in this process, so its request log is at hand) and N `python worker.py`, of
this checkout or of an earlier revision (`StackOptions.worker_code`, devkit/bench/revision.py)."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from temporalio.client import Client

from devkit.bench.revision import WorkerCode
from devkit.mock_dsp.config import ApiVersion, MockDspConfig, MockSeat, ReviewModel
from devkit.mock_dsp.server import MockDspServer
from devkit.stack.ports import free_port
from devkit.stack.postgres import EmbeddedPostgres, create_database, drop_database
from devkit.stack.temporal_server import TemporalDevServer
from devkit.stack.workers import WorkerProcesses, worker_env
from dsp_integration.client.context import ServiceContext, open_service
from dsp_integration.client.temporal_client import connect_temporal
from dsp_integration.config import Settings
from dsp_integration.config.seat_config import SeatConfig, default_secret_env
from dsp_integration.config.settings import as_environment
from dsp_integration.database.migrate import upgrade
from dsp_integration.worker.runtime import EventLoop, WorkerTuning

BENCH_TOKEN = "bench-token"


@dataclass(frozen=True)
class BenchSeat:
    """A seat of the run: at the mock DSP, an account with client credentials and its own
    window; in the service, a seat of DSP_SEATS whose secret the workers read from their
    environment."""

    name: str
    rate_limit: int
    rate_window: float

    @property
    def client_id(self) -> str:
        return f"bench-{self.name}"

    @property
    def client_secret(self) -> str:
        return f"bench-secret-{self.name}"


@dataclass(frozen=True)
class StackOptions:
    workers: int = 2
    rate_limit: int = 20
    rate_window: float = 5.0
    review_seconds: float = 2.0
    pending_seconds: float = 0.5
    propagation_delay: float = 0.3
    poll_min_interval: float = 1.0
    poll_max_interval: float = 30.0
    review_model: ReviewModel = "uniform"
    review_sigma: float = 1.0
    pending_sigma: float = 0.5
    review_max_seconds: float | None = None
    seed: int | None = None
    # The DSP contract, mock and service alike (dsp-api-v2.md: 2 has no idempotency keys).
    api_version: ApiVersion = 1
    search_lag: float = 10.0
    worker_code: WorkerCode = field(default_factory=WorkerCode)
    workflow_sandbox: bool = False
    event_loop: EventLoop = "uvloop"
    temporal_dynamic_config: tuple[str, ...] = ()
    log_dir: Path | None = None
    # Seats with client credentials (none: the default seat with a static token).
    seats: tuple[BenchSeat, ...] = ()
    token_lifetime: float = 3600.0
    token_requests_per_hour: int = 60


@dataclass
class BenchStack:
    options: StackOptions
    settings: Settings
    mock: MockDspServer
    workers: WorkerProcesses
    service: ServiceContext
    client: Client


@asynccontextmanager
async def _database(log_dir: Path) -> AsyncIterator[str]:
    configured = os.environ.get("DATABASE_URL")
    embedded: EmbeddedPostgres | None = None
    if configured:
        server_url = configured
    else:
        embedded = EmbeddedPostgres(data_dir=log_dir / "pg", port=free_port())
        embedded.start()
        server_url = embedded.url
    name = f"dsp_bench_{uuid.uuid4().hex[:10]}"
    url = await create_database(server_url, name)
    try:
        await upgrade(url)
        yield url
    finally:
        await drop_database(server_url, name)
        if embedded is not None:
            embedded.stop()


def bench_worker_env(settings: Settings, options: StackOptions) -> Mapping[str, str]:
    """The workers' environment: `settings`, the tuning of `options`, and the switches its
    worker code's revision is run with."""
    tuning = WorkerTuning(
        _env_file=None,  # type: ignore[call-arg]
        workflow_sandbox=options.workflow_sandbox,
        event_loop=options.event_loop,
    )
    return {**worker_env(settings), **as_environment(tuning), **dict(options.worker_code.env)}


@asynccontextmanager
async def open_bench_stack(options: StackOptions) -> AsyncIterator[BenchStack]:
    """Start everything, cold: fresh database, fresh Temporal, empty DSP windows."""
    log_dir = options.log_dir or Path(tempfile.mkdtemp(prefix="dsp-bench-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    async with AsyncExitStack() as stack:
        database_url = await stack.enter_async_context(_database(log_dir))
        temporal = stack.enter_context(
            TemporalDevServer(
                port=free_port(),
                headless=True,
                log_file=log_dir / "temporal.log",
                extra_args=[
                    arg
                    for value in options.temporal_dynamic_config
                    for arg in ("--dynamic-config-value", value)
                ],
            )
        )
        mock = stack.enter_context(
            MockDspServer(
                MockDspConfig(
                    token=BENCH_TOKEN,
                    rate_limit=options.rate_limit,
                    rate_window=options.rate_window,
                    review_seconds=options.review_seconds,
                    pending_seconds=options.pending_seconds,
                    propagation_delay=options.propagation_delay,
                    review_model=options.review_model,
                    review_sigma=options.review_sigma,
                    pending_sigma=options.pending_sigma,
                    review_max_seconds=options.review_max_seconds,
                    seed=options.seed,
                    api_version=options.api_version,
                    search_lag=options.search_lag,
                    seats={
                        seat.name: MockSeat(
                            client_id=seat.client_id,
                            client_secret=seat.client_secret,
                            rate_limit=seat.rate_limit,
                            rate_window=seat.rate_window,
                        )
                        for seat in options.seats
                    },
                    token_lifetime=options.token_lifetime,
                    token_requests_per_hour=options.token_requests_per_hour,
                )
            )
        )
        seat_settings: dict[str, object] = {}
        if options.seats:
            seat_settings = {
                "dsp_seats": [
                    SeatConfig(
                        name=seat.name,
                        client_id=seat.client_id,
                        rate_limit=seat.rate_limit,
                        rate_window=seat.rate_window,
                    )
                    for seat in options.seats
                ],
                "dsp_default_seat": options.seats[0].name,
            }
            for seat in options.seats:
                os.environ[default_secret_env(seat.name)] = seat.client_secret
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            temporal_address=temporal.address,
            temporal_task_queue=f"bench-{uuid.uuid4().hex[:8]}",
            database_url=database_url,
            dsp_base_url=mock.base_url,
            dsp_api_token=BENCH_TOKEN,
            dsp_rate_limit=options.rate_limit,
            dsp_rate_window=options.rate_window,
            dsp_poll_min_interval=options.poll_min_interval,
            dsp_poll_max_interval=options.poll_max_interval,
            dsp_api_version=options.api_version,
            dsp_search_lag=options.search_lag,
            **seat_settings,
        )
        code_root = options.worker_code.root()
        workers = stack.enter_context(
            WorkerProcesses(
                options.workers,
                bench_worker_env(settings, options),
                log_dir=log_dir,
                cwd=code_root,
                script=code_root / "worker.py",
            )
        )
        client = await connect_temporal(settings)
        service = await stack.enter_async_context(open_service(settings, client=client))
        yield BenchStack(options, settings, mock, workers, service, client)
