"""Service configuration, read from the environment and an optional `.env` file."""

from __future__ import annotations

import json
import os
from collections import ChainMap
from collections.abc import Callable, Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any

from dotenv import dotenv_values
from pydantic import BaseModel, Field, PrivateAttr, SecretStr, model_validator
from pydantic_core import to_jsonable_python
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from dsp_integration.config.seat_config import (
    DEV_API_TOKEN,
    FlatDspSettings,
    SeatConfig,
    read_seat_configs,
    resolve_seats,
)
from dsp_integration.config.seats import SeatProblems, Seats
from dsp_integration.contracts.names import DEFAULT_SEAT, dsp_task_queue

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEV_DIR = PROJECT_ROOT / ".dev"

EMBEDDED_POSTGRES_PORT = 55432
EMBEDDED_POSTGRES_DATABASE = "dsp_service"
MOCK_DSP_PORT = 8765
# The Temporal CLI dev server serves its web UI on its gRPC port + 1000.
DEV_SERVER_UI_PORT_OFFSET = 1000
__all__ = ["DEV_API_TOKEN", "MissingDspToken", "SeatConfig", "SeatProblems", "Settings"]

# The name callers knew before seats for "a real DSP and no secret": every problem with the
# seats' configuration (a missing secret among them) now stops a process the same way.
MissingDspToken = SeatProblems


class Settings(BaseSettings):
    """Every knob of the service. Names match the environment variables exactly."""

    # An empty variable counts as unset (so `as_environment` can pass "no value" as "").
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", env_ignore_empty=True)

    temporal_address: str = Field(default="localhost:7233", description="Temporal frontend.")
    temporal_namespace: str = Field(default="default", description="Temporal namespace.")
    temporal_task_queue: str = Field(
        default="dsp-entities",
        description="The workflow task queue. The default seat's DSP calls run on "
        "`<queue>-dsp`, another seat's on `<queue>-dsp-<seat>`.",
    )

    database_url: str | None = Field(
        default=None,
        description="`postgresql+asyncpg://…`. Unset: the embedded PostgreSQL of the dev "
        "stack on 127.0.0.1:55432.",
    )
    dsp_base_url: str | None = Field(
        default=None, description="The DSP. Unset: the mock DSP on 127.0.0.1:8765."
    )
    # Required with DSP_BASE_URL; unset, the mock DSP's development token (see `dsp_token`).
    dsp_api_token: SecretStr | None = Field(
        default=None,
        description="The default seat's static bearer token: a secret, never logged, stored "
        "or put in a workflow. Required with `DSP_BASE_URL` (a worker refuses to start "
        "without it); unset, `dev-token` for the mock DSP.",
    )
    dsp_rate_limit: int = Field(
        default=40, ge=1, description="The default seat's requests per rolling window."
    )
    dsp_rate_window: float = Field(
        default=60.0, gt=0, description="The rolling window of the rate limit, in seconds."
    )
    dsp_timeout: float = Field(default=10.0, gt=0, description="Seconds per HTTP request.")
    dsp_poll_min_interval: float = Field(
        default=5.0,
        gt=0,
        description="Lower bound of every planned poll interval (s); before the planner has "
        "learned a type's decision times it backs off by a factor of 1.6 from it.",
    )
    dsp_poll_max_interval: float = Field(
        default=300.0, gt=0, description="Upper bound of every planned poll interval (s)."
    )
    # Which contract the DSP speaks (dsp-api.md is 1, dsp-api-v2.md is 2): at a version-2
    # DSP creates carry `external_id` = the entity's key and are never retried blindly, and a
    # create whose answer was lost is found through the search, waited out for its lag.
    dsp_api_version: int = Field(
        default=1,
        ge=1,
        le=2,
        description="The DSP's contract: 1 (idempotency keys) or 2 (no idempotency keys, "
        "`external_id` and a lagging search).",
    )
    dsp_search_lag: float = Field(
        default=10.0,
        ge=0,
        description="Version 2: seconds after a create within which the DSP's search may not "
        "show it yet.",
    )
    # Client credentials of the implicit default seat (dsp-api-v2.md §2), instead of
    # DSP_API_TOKEN; unset secret at the mock DSP: its development one.
    dsp_client_id: str | None = Field(
        default=None,
        description="With it the default seat logs in with client credentials "
        "(`POST /v1/oauth/token`) instead of using `DSP_API_TOKEN`.",
    )
    dsp_client_secret: SecretStr | None = Field(
        default=None, description="The default seat's client secret: a secret."
    )
    # More seats (JSON list of `SeatConfig`), and the seat of entities whose file names none.
    # Read leniently: `seats()` reports a malformed DSP_SEATS with every other problem.
    dsp_seats: Annotated[list[SeatConfig], NoDecode] = Field(
        default_factory=list,
        description="More DSP accounts: a JSON list of seats (fields below). Each seat's "
        "secret is in `DSP_SEAT_<NAME>_SECRET` (or the variable its `secret_env` names).",
    )
    dsp_default_seat: str = Field(
        default=DEFAULT_SEAT, description="The seat of entities whose file names none."
    )

    metrics_port: int | None = Field(
        default=None,
        description="The worker's Prometheus endpoint (`/metrics`). Unset: no endpoint.",
    )
    dsp_reconcile_interval: float = Field(
        default=60.0,
        ge=0,
        description="Seconds between sweeps that restart orphaned entities (0: no schedule).",
    )
    dsp_reconcile_grace: float = Field(
        default=60.0,
        ge=0,
        description="How long an open entity's row must be idle before a sweep looks at it (s).",
    )

    console_host: str = Field(default="127.0.0.1", description="Where `starter.py serve` listens.")
    console_port: int = Field(
        default=8000, ge=0, le=65535, description="The port `starter.py serve` listens on."
    )
    console_token: SecretStr | None = Field(
        default=None,
        description="A secret: the bootstrap admin's token, usable only while no enabled admin "
        "account exists (docs/guides/accounts.md). Unset and no accounts, the console listens "
        "only on loopback.",
    )
    # Settings, since a 24/7 operations room and a compliance policy differ.
    console_session_idle_minutes: float = Field(
        default=60.0, gt=0, description="A console session ends after this many idle minutes."
    )
    console_session_hours: float = Field(
        default=12.0,
        gt=0,
        description="A console session ends this many hours after login, however used.",
    )
    temporal_ui_url: str | None = Field(
        default=None,
        description="Where the console links workflows. Unset: `TEMPORAL_ADDRESS`'s host, "
        "port + 1000 (the dev server's web UI).",
    )

    _env_file: Any = PrivateAttr(default=None)
    _dsp_seats_problems: list[str] = PrivateAttr(default_factory=list)
    # `seats()` (True) and `seat_layout()` (False), resolved once each.
    _resolved_seats: dict[bool, Seats | SeatProblems] = PrivateAttr(default_factory=dict)

    def __init__(self, **values: Any) -> None:
        super().__init__(**values)
        # Which `.env` file(s) these settings read (`_env_file=None`: none), for the seats'
        # secrets, whose variable names are configuration too.
        self._env_file = values.get("_env_file", self.model_config.get("env_file"))

    def __eq__(self, other: object) -> bool:
        """Equal settings have equal fields (what was resolved from them is not compared)."""
        if not isinstance(other, Settings):
            return NotImplemented
        fields = type(self).model_fields
        return all(getattr(self, name) == getattr(other, name) for name in fields)

    __hash__ = None  # type: ignore[assignment]

    @model_validator(mode="wrap")
    @classmethod
    def _read_dsp_seats(cls, data: Any, handler: Callable[[Any], Settings]) -> Settings:
        """DSP_SEATS' well-formed seats; what is wrong with it waits for `seats()`, so it is
        reported with every other problem instead of as the first validation error."""
        raw = data.pop("dsp_seats", None) if isinstance(data, dict) else None
        settings = handler(data)
        settings.dsp_seats, settings._dsp_seats_problems = read_seat_configs(raw)
        return settings

    @model_validator(mode="after")
    def _poll_bounds(self) -> Settings:
        if self.dsp_poll_max_interval < self.dsp_poll_min_interval:
            raise ValueError("DSP_POLL_MAX_INTERVAL must be >= DSP_POLL_MIN_INTERVAL")
        return self

    @property
    def dsp_task_queue(self) -> str:
        """The rate-limited queue of the default seat's DSP calls (`dsp_task_queue` names
        every seat's), derived from the workflow queue."""
        return dsp_task_queue(self.temporal_task_queue, DEFAULT_SEAT)

    def seats(self) -> Seats:
        """Every configured seat, resolved: DSP_SEATS' seats, and the implicit `default`
        seat of the flat DSP_* settings unless DSP_SEATS has one or DSP_DEFAULT_SEAT names
        another. Secrets come from the environment, then the `.env` file these settings read.
        Raises `SeatProblems` with one line per problem, all of them. Resolved once."""
        return self._resolved(with_secrets=True)

    def seat_layout(self) -> Seats:
        """The seats as a client of the service needs them (the CLI, the console, a
        submission): names, connections and budgets, every problem but a missing secret, which
        only the workers need (a seat without its secret here has an empty one)."""
        return self._resolved(with_secrets=False)

    def _resolved(self, *, with_secrets: bool) -> Seats:
        cached = self._resolved_seats.get(with_secrets)
        if cached is None:
            try:
                cached = resolve_seats(
                    self.dsp_seats,
                    self._dsp_seats_problems,
                    self._flat_dsp(),
                    self._secrets() if with_secrets else None,
                )
            except SeatProblems as problems:
                cached = problems
            self._resolved_seats[with_secrets] = cached
        if isinstance(cached, SeatProblems):
            raise SeatProblems(cached.problems)
        return cached

    def _flat_dsp(self) -> FlatDspSettings:
        return FlatDspSettings(
            base_url=self.dsp_base_url,
            mock_base_url=f"http://127.0.0.1:{MOCK_DSP_PORT}",
            api_version=self.dsp_api_version,
            search_lag=self.dsp_search_lag,
            rate_limit=self.dsp_rate_limit,
            rate_window=self.dsp_rate_window,
            api_token=self.dsp_api_token,
            client_id=self.dsp_client_id,
            client_secret=self.dsp_client_secret,
            default_seat=self.dsp_default_seat,
        )

    def _secrets(self) -> Mapping[str, str]:
        from_file: dict[str, str] = {}
        for path in _env_files(self._env_file):
            if path.is_file():
                values = dotenv_values(path, encoding=self.model_config.get("env_file_encoding"))
                from_file |= {name: value for name, value in values.items() if value}
        return ChainMap({name: value for name, value in os.environ.items() if value}, from_file)

    @property
    def uses_embedded_postgres(self) -> bool:
        return not self.database_url

    @property
    def uses_mock_dsp(self) -> bool:
        return not self.dsp_base_url

    def dsp_token(self) -> SecretStr:
        """The default seat's secret: DSP_API_TOKEN unless configured otherwise; unset (or
        empty), the development token, but only for the mock DSP. A configuration with
        problems (a real DSP without its token among them) raises `SeatProblems`
        (`MissingDspToken`)."""
        seats = self.seats()
        return seats[seats.default].secret

    @cached_property
    def effective_database_url(self) -> str:
        return self.database_url or (
            f"postgresql+asyncpg://postgres@127.0.0.1:{EMBEDDED_POSTGRES_PORT}"
            f"/{EMBEDDED_POSTGRES_DATABASE}"
        )

    @cached_property
    def effective_dsp_base_url(self) -> str:
        return (self.dsp_base_url or f"http://127.0.0.1:{MOCK_DSP_PORT}").rstrip("/")

    @property
    def effective_temporal_ui_url(self) -> str:
        """TEMPORAL_UI_URL, else the dev server's UI at TEMPORAL_ADDRESS."""
        if self.temporal_ui_url:
            return self.temporal_ui_url.rstrip("/")
        return dev_server_ui_url(self.temporal_address)

    @property
    def dsp_requests_per_second(self) -> float:
        return self.dsp_rate_limit / self.dsp_rate_window


def dev_server_ui_url(temporal_address: str) -> str:
    """The web UI of a Temporal dev server at `temporal_address`: the gRPC port + 1000 on the
    same host (the one place that guess is made)."""
    host, _, port = temporal_address.rpartition(":")
    host = host.strip("[]") or "localhost"
    if not port.isdigit():
        return f"http://{temporal_address}"
    return f"http://{host}:{int(port) + DEV_SERVER_UI_PORT_OFFSET}"


def as_environment(settings: BaseSettings) -> dict[str, str]:
    """The environment variables that make a process read `settings` back: one per field of
    its model, derived from the fields (a new field cannot be forgotten). Secrets are written
    in clear, for a child process's environment only; None is written as "" (unset)."""
    prefix = str(settings.model_config.get("env_prefix") or "")
    return {
        f"{prefix}{name}".upper(): _env_value(getattr(settings, name))
        for name in type(settings).model_fields
    }


def _env_value(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, list) and all(isinstance(item, BaseModel) for item in value):
        # As pydantic-settings reads a list of models: JSON, unset fields left out.
        return json.dumps(to_jsonable_python(value, exclude_none=True), separators=(",", ":"))
    if isinstance(value, BaseModel | list | dict):
        raise TypeError(f"no environment form for {type(value).__name__}")
    return str(value)


def _env_files(env_file: Any) -> list[Path]:
    """pydantic-settings' `env_file`: None, one path, or several (later ones win)."""
    if env_file is None:
        return []
    if isinstance(env_file, str | os.PathLike):
        return [Path(env_file)]
    if isinstance(env_file, Sequence):
        return [Path(item) for item in env_file]
    return []
