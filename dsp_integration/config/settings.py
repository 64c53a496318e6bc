"""Service configuration, read from the environment and an optional `.env` file."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from dsp_integration.config.seats import Seat, Seats
from dsp_integration.contracts.names import DEFAULT_SEAT, dsp_task_queue

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEV_DIR = PROJECT_ROOT / ".dev"

EMBEDDED_POSTGRES_PORT = 55432
EMBEDDED_POSTGRES_DATABASE = "dsp_service"
MOCK_DSP_PORT = 8765
# The Temporal CLI dev server serves its web UI on its gRPC port + 1000.
DEV_SERVER_UI_PORT_OFFSET = 1000
DEV_API_TOKEN = "dev-token"


class MissingDspToken(ValueError):
    """A real DSP (DSP_BASE_URL set) and no DSP_API_TOKEN: the worker refuses to start."""


class Settings(BaseSettings):
    """Every knob of the service. Names match the environment variables exactly."""

    # An empty variable counts as unset (so `as_environment` can pass "no value" as "").
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", env_ignore_empty=True)

    temporal_address: str = "localhost:7233"
    temporal_namespace: str = "default"
    temporal_task_queue: str = "dsp-entities"

    database_url: str | None = None
    dsp_base_url: str | None = None
    # Required with DSP_BASE_URL; unset, the mock DSP's development token (see `dsp_token`).
    dsp_api_token: SecretStr | None = None
    dsp_rate_limit: int = Field(default=40, ge=1)
    dsp_rate_window: float = Field(default=60.0, gt=0)
    dsp_timeout: float = Field(default=10.0, gt=0)
    dsp_poll_min_interval: float = Field(default=5.0, gt=0)
    dsp_poll_max_interval: float = Field(default=300.0, gt=0)
    # Which contract the DSP speaks (dsp-api.md is 1, dsp-api-v2.md is 2): at a version-2
    # DSP creates carry `external_id` = the entity's key and are never retried blindly, and a
    # create whose answer was lost is found through the search, waited out for its lag.
    dsp_api_version: int = Field(default=1, ge=1, le=2)
    dsp_search_lag: float = Field(default=10.0, ge=0)

    metrics_port: int | None = None
    # Seconds between sweeps that restart orphaned entities (0: no schedule), and how long
    # an open entity's row must have been idle before a sweep looks at it.
    dsp_reconcile_interval: float = Field(default=60.0, ge=0)
    dsp_reconcile_grace: float = Field(default=60.0, ge=0)

    console_host: str = "127.0.0.1"
    console_port: int = Field(default=8000, ge=0, le=65535)
    console_token: SecretStr | None = None
    temporal_ui_url: str | None = None

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
        """Every configured seat, resolved (secrets read from the environment); raises
        `SeatProblems` listing every problem. Today only the default seat, from the flat
        DSP_* settings (issue 23 adds DSP_SEATS)."""
        default = Seat(
            name=DEFAULT_SEAT,
            base_url=self.effective_dsp_base_url,
            api_version=self.dsp_api_version,
            search_lag=self.dsp_search_lag,
            rate_limit=self.dsp_rate_limit,
            rate_window=self.dsp_rate_window,
            secret=self.dsp_token(),
        )
        return Seats({default.name: default}, DEFAULT_SEAT)

    @property
    def uses_embedded_postgres(self) -> bool:
        return not self.database_url

    @property
    def uses_mock_dsp(self) -> bool:
        return not self.dsp_base_url

    def dsp_token(self) -> SecretStr:
        """DSP_API_TOKEN; unset (or empty), the development token, but only for the mock DSP:
        a DSP at DSP_BASE_URL without DSP_API_TOKEN raises `MissingDspToken`."""
        if self.dsp_api_token is not None and self.dsp_api_token.get_secret_value():
            return self.dsp_api_token
        if self.uses_mock_dsp:
            return SecretStr(DEV_API_TOKEN)
        raise MissingDspToken(
            f"DSP_API_TOKEN is not set, and DSP_BASE_URL={self.dsp_base_url} is a real DSP "
            "(the development token is only for the mock DSP, DSP_BASE_URL unset)"
        )

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
    if isinstance(value, BaseModel | list | dict):
        raise TypeError(f"no environment form for {type(value).__name__}")
    return str(value)
