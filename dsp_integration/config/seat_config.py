"""`DSP_SEATS` as configured, and resolving it (with the flat `DSP_*` settings) into `Seats`.

Every problem becomes one line naming the setting or the seat, never a value that could be a
secret; all of them are collected before anything is refused, so an operator fixes the
configuration in one go."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from dsp_integration.config.seats import Seat, SeatProblems, Seats
from dsp_integration.contracts.names import DEFAULT_SEAT, SEAT_NAME_PATTERN

MAX_SEAT_RATE_LIMIT = 100_000
MAX_SEAT_RATE_WINDOW = 86_400.0
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
# Keys someone might try to put a secret under: refused with a pointer to `secret_env`.
SECRET_KEYS = frozenset({"secret", "token", "client_secret", "api_token", "password"})
# Against the mock DSP a seat without its secret gets the development one (devkit/mock_dsp).
DEV_API_TOKEN = "dev-token"


def dev_token(seat: str) -> str:
    """The mock DSP's static token of `seat` (the default seat's is `dev-token`)."""
    return DEV_API_TOKEN if seat == DEFAULT_SEAT else f"{DEV_API_TOKEN}-{seat}"


def dev_client_secret(seat: str) -> str:
    """The mock DSP's client secret of `seat`."""
    return f"dev-secret-{seat}"


def default_secret_env(seat: str) -> str:
    """`DSP_SEAT_<NAME>_SECRET`: the variable holding a seat's token or client secret unless
    its `secret_env` names another."""
    return f"DSP_SEAT_{seat.upper().replace('-', '_')}_SECRET"


class SeatConfig(BaseModel):
    """One entry of `DSP_SEATS`. Unset fields take the flat `DSP_*` setting of the same
    meaning. No secret goes in here: `secret_env` names the variable that holds it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(
        description="1-32 of `a-z0-9_-`, starting with a letter or a digit: it names a task "
        "queue and a metric label."
    )
    base_url: str | None = Field(default=None, description="Default: `DSP_BASE_URL`.")
    api_version: int | None = Field(
        default=None, ge=1, le=2, description="1 or 2. Default: `DSP_API_VERSION`."
    )
    search_lag: float | None = Field(
        default=None, ge=0, description="Version 2 (s). Default: `DSP_SEARCH_LAG`."
    )
    client_id: str | None = Field(
        default=None,
        min_length=1,
        description="With it the seat logs in (client credentials); without, its secret is "
        "a static bearer token.",
    )
    secret_env: str | None = Field(
        default=None,
        pattern=ENV_NAME_PATTERN,
        description="The variable that holds the seat's token or client secret. Default: "
        "`DSP_SEAT_<NAME>_SECRET`.",
    )
    rate_limit: int | None = Field(
        default=None,
        ge=1,
        le=MAX_SEAT_RATE_LIMIT,
        description="Requests per rolling window, 1-100,000. Default: `DSP_RATE_LIMIT`.",
    )
    rate_window: float | None = Field(
        default=None,
        gt=0,
        le=MAX_SEAT_RATE_WINDOW,
        description="Seconds, at most a day. Default: `DSP_RATE_WINDOW`.",
    )

    @field_validator("name")
    @classmethod
    def _plain_name(cls, name: str) -> str:
        if not re.match(SEAT_NAME_PATTERN, name):
            raise ValueError(
                f"seat name {name!r} must be 1-32 characters of a-z, 0-9, '_' and '-', "
                "starting with a letter or a digit"
            )
        return name


def read_seat_configs(raw: object) -> tuple[list[SeatConfig], list[str]]:
    """`DSP_SEATS` (JSON text, or already a list) as the seats that are well formed, and one
    problem line per thing that is not (bad JSON, a bad entry, a bad field)."""
    if raw is None:
        return [], []
    if isinstance(raw, str | bytes):
        if not raw.strip():
            return [], []
        try:
            raw = json.loads(raw)
        except ValueError as error:
            # The message says where, never what: the text could hold a pasted secret.
            where = (
                f" ({error.msg}, char {error.pos})"
                if isinstance(error, json.JSONDecodeError)
                else ""
            )
            return [], [f"DSP_SEATS is not valid JSON{where}"]
    if not isinstance(raw, list | tuple):
        return [], [f"DSP_SEATS must be a JSON list of seats, not a {type(raw).__name__}"]
    configs: list[SeatConfig] = []
    problems: list[str] = []
    for index, entry in enumerate(raw):
        try:
            configs.append(SeatConfig.model_validate(entry))
        except ValidationError as error:
            problems.extend(_entry_problems(index, entry, error))
    return configs, problems


def _entry_problems(index: int, entry: object, error: ValidationError) -> list[str]:
    label = f"DSP_SEATS[{index}]"
    if isinstance(entry, dict) and isinstance(entry.get("name"), str):
        label += f" (seat {entry['name']!r})"
    lines = []
    for detail in error.errors(include_input=False, include_url=False):
        where = ".".join(str(part) for part in detail["loc"])
        message = str(detail["msg"]).removeprefix("Value error, ")
        if detail["type"] == "extra_forbidden" and where in SECRET_KEYS:
            message = (
                "secrets do not belong in DSP_SEATS: put it in the environment variable "
                "that secret_env names (default DSP_SEAT_<NAME>_SECRET)"
            )
        lines.append(f"{label}: {where}: {message}" if where else f"{label}: {message}")
    return lines


@dataclass(frozen=True)
class FlatDspSettings:
    """What the flat `DSP_*` settings say: the implicit default seat, and every other seat's
    defaults."""

    base_url: str | None  # DSP_BASE_URL; None: the mock DSP
    mock_base_url: str
    api_version: int
    search_lag: float
    rate_limit: int
    rate_window: float
    api_token: SecretStr | None
    client_id: str | None
    client_secret: SecretStr | None
    default_seat: str


def resolve_seats(
    configs: list[SeatConfig],
    config_problems: list[str],
    flat: FlatDspSettings,
    secrets: Mapping[str, str] | None,
) -> Seats:
    """Every seat, resolved; raises `SeatProblems` with every problem (`config_problems`
    first). `secrets` maps environment variable names to values (the environment, then the
    `.env` file); None: the secrets are not needed (a client of the service, which never
    calls the DSP), and a seat whose secret is missing gets an empty one."""
    problems = list(config_problems)
    seats: dict[str, Seat] = {}
    named: set[str] = set()
    flat_url_ok = _check_url("DSP_BASE_URL", flat.base_url, problems)
    for config in configs:
        if config.name in named:
            problems.append(f"DSP_SEATS: seat {config.name!r} is configured more than once")
            continue
        named.add(config.name)
        seat = _resolve_configured(config, flat, secrets, problems, flat_url_ok=flat_url_ok)
        if seat is not None:
            seats[seat.name] = seat
    if DEFAULT_SEAT not in named and flat.default_seat == DEFAULT_SEAT:
        named.add(DEFAULT_SEAT)
        seat = _resolve_implicit(flat, problems, flat_url_ok=flat_url_ok, need=secrets is not None)
        if seat is not None:
            seats[seat.name] = seat
    if flat.default_seat not in named:
        configured = ", ".join(sorted(named)) or "none"
        problems.append(
            f"DSP_DEFAULT_SEAT {flat.default_seat!r} is not a configured seat "
            f"(configured: {configured})"
        )
    if problems:
        raise SeatProblems(problems)
    return Seats(seats, flat.default_seat)


def _resolve_configured(
    config: SeatConfig,
    flat: FlatDspSettings,
    secrets: Mapping[str, str] | None,
    problems: list[str],
    *,
    flat_url_ok: bool,
) -> Seat | None:
    label = f"seat {config.name!r}"
    url_ok = (
        _check_url(f"{label}: base_url", config.base_url, problems)
        if config.base_url is not None
        else flat_url_ok
    )
    uses_mock = config.base_url is None and flat.base_url is None
    base_url = _base_url(config.base_url or flat.base_url, flat)
    rate_limit = config.rate_limit if config.rate_limit is not None else flat.rate_limit
    rate_window = config.rate_window if config.rate_window is not None else flat.rate_window
    budget_ok = _check_budget(label, rate_limit, rate_window, problems)
    secret_env = config.secret_env or default_secret_env(config.name)
    if secrets is None:
        secret: str | None = ""
    else:
        secret = secrets.get(secret_env) or None
    if secret is None and uses_mock:
        client = config.client_id is not None
        secret = dev_client_secret(config.name) if client else dev_token(config.name)
    if secret is None:
        what = "client secret" if config.client_id is not None else "token"
        problems.append(
            f"{label}: {secret_env} is not set (the seat's {what} for the DSP at {base_url}; "
            "development secrets are only for the mock DSP, no base_url and DSP_BASE_URL unset)"
        )
        return None
    if not (url_ok and budget_ok):
        return None
    return Seat(
        name=config.name,
        base_url=base_url,
        api_version=config.api_version if config.api_version is not None else flat.api_version,
        search_lag=config.search_lag if config.search_lag is not None else flat.search_lag,
        rate_limit=rate_limit,
        rate_window=rate_window,
        secret=SecretStr(secret),
        client_id=config.client_id,
        secret_env=secret_env,
    )


def _resolve_implicit(
    flat: FlatDspSettings, problems: list[str], *, flat_url_ok: bool, need: bool
) -> Seat | None:
    """The `default` seat of the flat settings: DSP_API_TOKEN, or DSP_CLIENT_ID with
    DSP_CLIENT_SECRET (the configuration from before seats)."""
    budget_ok = _check_budget(
        f"seat {DEFAULT_SEAT!r} (DSP_RATE_LIMIT, DSP_RATE_WINDOW)",
        flat.rate_limit,
        flat.rate_window,
        problems,
    )
    uses_mock = flat.base_url is None
    if flat.client_id is not None:
        secret = _value(flat.client_secret)
        secret_env = "DSP_CLIENT_SECRET"
        if secret is None and uses_mock:
            secret = dev_client_secret(DEFAULT_SEAT)
        if secret is None and not need:
            secret = ""
        if secret is None:
            problems.append(
                f"DSP_CLIENT_SECRET is not set, and DSP_BASE_URL={flat.base_url} is a real DSP "
                "(DSP_CLIENT_ID logs the default seat in with it; development secrets are only "
                "for the mock DSP, DSP_BASE_URL unset)"
            )
    else:
        secret = _value(flat.api_token)
        secret_env = "DSP_API_TOKEN"
        if secret is None and uses_mock:
            secret = dev_token(DEFAULT_SEAT)
        if secret is None and not need:
            secret = ""
        if secret is None:
            problems.append(
                f"DSP_API_TOKEN is not set, and DSP_BASE_URL={flat.base_url} is a real DSP "
                "(the development token is only for the mock DSP, DSP_BASE_URL unset)"
            )
    if secret is None or not (flat_url_ok and budget_ok):
        return None
    return Seat(
        name=DEFAULT_SEAT,
        base_url=_base_url(flat.base_url, flat),
        api_version=flat.api_version,
        search_lag=flat.search_lag,
        rate_limit=flat.rate_limit,
        rate_window=flat.rate_window,
        secret=SecretStr(secret),
        client_id=flat.client_id,
        secret_env=secret_env,
    )


def _value(secret: SecretStr | None) -> str | None:
    return (secret.get_secret_value() or None) if secret is not None else None


def _base_url(url: str | None, flat: FlatDspSettings) -> str:
    return (url or flat.mock_base_url).rstrip("/")


def _check_url(label: str, url: str | None, problems: list[str]) -> bool:
    if url is None:
        return True
    try:
        parsed: Any = httpx.URL(url)
        ok = parsed.scheme in {"http", "https"} and bool(parsed.host)
    except (httpx.InvalidURL, TypeError, ValueError):
        ok = False
    if not ok:
        problems.append(f"{label} {url!r} is not an http(s) URL with a host")
    return ok


def _check_budget(label: str, limit: int, window: float, problems: list[str]) -> bool:
    ok = True
    if not 1 <= limit <= MAX_SEAT_RATE_LIMIT:
        problems.append(f"{label}: rate limit {limit} is out of range (1..{MAX_SEAT_RATE_LIMIT})")
        ok = False
    if not 0 < window <= MAX_SEAT_RATE_WINDOW:
        problems.append(
            f"{label}: rate window {window} s is out of range (> 0, <= {MAX_SEAT_RATE_WINDOW:g})"
        )
        ok = False
    return ok
