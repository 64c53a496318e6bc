"""The mock DSP's knobs. Every field has a default and can be changed while it runs."""

from __future__ import annotations

from typing import Literal, Self, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

from dsp_integration.config.settings import DEV_API_TOKEN

ReviewModel = Literal["uniform", "lognormal"]
REVIEW_MODELS: tuple[ReviewModel, ...] = get_args(ReviewModel)
ApiVersion = Literal[1, 2]
FaultKind = Literal["503_before", "503_after", "truncated", "slow", "empty", "html", "drop"]
ALL_FAULT_KINDS: tuple[FaultKind, ...] = get_args(FaultKind)
# `drop` is drawn only when asked for: the version-1 fault tests expect an answer every time.
FAULT_KINDS: tuple[FaultKind, ...] = tuple(kind for kind in ALL_FAULT_KINDS if kind != "drop")
DEFAULT_SEAT = "default"


class MockSeat(BaseModel):
    """One account at the DSP (dsp-api-v2.md §1-2): its credentials and its own rolling
    window. `token` is a static bearer token that never expires (version 1's kind);
    `client_id` with `client_secret` lets a client get expiring tokens from
    `POST /v1/oauth/token`. A seat may have both."""

    model_config = ConfigDict(extra="forbid")

    token: str | None = Field(default=None, min_length=1)
    client_id: str | None = Field(default=None, min_length=1)
    client_secret: str | None = Field(default=None, min_length=1)
    rate_limit: int = Field(default=40, ge=1)
    rate_window: float = Field(default=60.0, gt=0)

    @model_validator(mode="after")
    def _has_credentials(self) -> Self:
        if (self.client_id is None) != (self.client_secret is None):
            raise ValueError("client_id and client_secret go together")
        if self.token is None and self.client_id is None:
            raise ValueError("a seat needs a token or a client_id and client_secret")
        return self


def dev_seat(
    name: str, *, client_id: str | None = None, rate_limit: int = 40, rate_window: float = 60.0
) -> MockSeat:
    """A seat with the development secrets the service falls back to against the mock
    (seats-design.md): the static token `dev-token-<name>` (the default seat's is
    `DEV_API_TOKEN`), or with `client_id` the client secret `dev-secret-<name>`."""
    if client_id is not None:
        return MockSeat(
            client_id=client_id,
            client_secret=f"dev-secret-{name}",
            rate_limit=rate_limit,
            rate_window=rate_window,
        )
    token = DEV_API_TOKEN if name == DEFAULT_SEAT else f"dev-token-{name}"
    return MockSeat(token=token, rate_limit=rate_limit, rate_window=rate_window)


class MockDspConfig(BaseModel):
    """`propagation_delay`: seconds after creation during which a child referencing the new
    entity gets `409 reference_not_ready`.

    Processing times: advertisers are active at once (the contract). With `review_model`
    `uniform`, campaigns and ad groups stay `pending` for `pending_seconds` and creatives are
    reviewed for `review_seconds * (1 + review_jitter * U[0, 1))`. With `lognormal` both are
    log-normal with those medians and `pending_sigma` / `review_sigma`, capped at
    `review_max_seconds` (if set); with a `seed`, each entity's time is drawn from the seed
    and its Idempotency-Key (or its body without one), so every client that POSTs the same
    entities meets the same times, whatever its order.

    `fault_kinds` (default: every kind but `drop`): `503_before` refuses the request before
    doing anything; the others process it and then break the answer. `drop` processes it and
    sends no answer at all: the connection is reset, so the client sees a transport error
    with no status (in-process over `httpx.ASGITransport`, the call raises `AnswerDropped`).

    `api_version` (dsp-api-v2.md §3): with `2` the DSP ignores `Idempotency-Key` (every
    successful POST creates an entity, nothing is replayed), every entity type takes an
    optional `external_id` (1-255 printable ASCII), and `GET /v1/{type}?external_id=...`
    lists the token's entities with that reference, newest first, archived ones included,
    but only those created at least `search_lag` seconds ago (an eventually consistent
    search). With `1` (the default) `external_id` is an unknown field and there is no search.

    Seats (dsp-api-v2.md §1-2): `seats` maps each seat's name to its credentials and window.
    Empty (the default), the DSP has one seat, `default`, made of the flat `token`,
    `rate_limit` and `rate_window`; with seats, those flat fields only set the window of
    requests whose token is unknown. Tokens from `POST /v1/oauth/token` live
    `token_lifetime` seconds; each client may ask for `token_requests_per_hour` of them in
    any rolling hour. Entities, idempotency keys and the search belong to a seat.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    token: str = DEV_API_TOKEN
    api_version: ApiVersion = 1
    search_lag: float = Field(default=10.0, ge=0)
    rate_limit: int = Field(default=40, ge=1)
    rate_window: float = Field(default=60.0, gt=0)
    propagation_delay: float = Field(default=0.5, ge=0)
    pending_seconds: float = Field(default=2.0, ge=0)
    review_seconds: float = Field(default=10.0, ge=0)
    review_jitter: float = Field(default=0.0, ge=0)
    review_model: ReviewModel = "uniform"
    review_sigma: float = Field(default=1.0, ge=0)
    pending_sigma: float = Field(default=0.5, ge=0)
    review_max_seconds: float | None = Field(default=None, gt=0)
    fault_rate: float = Field(default=0.0, ge=0, le=1)
    fault_kinds: list[FaultKind] = Field(default_factory=lambda: list(FAULT_KINDS))
    slow_seconds: float = Field(default=15.0, ge=0)
    seed: int | None = None
    seats: dict[str, MockSeat] = Field(default_factory=dict)
    token_lifetime: float = Field(default=3600.0, gt=0)
    token_requests_per_hour: int = Field(default=60, ge=1)

    @model_validator(mode="after")
    def _seats_are_told_apart(self) -> Self:
        """A token or a client_id names exactly one seat."""
        for what in ("token", "client_id"):
            owners: dict[str, str] = {}
            for name, seat in self.seats.items():
                value = getattr(seat, what)
                if value is None:
                    continue
                if value in owners:
                    raise ValueError(f"seats {owners[value]!r} and {name!r} share a {what}")
                owners[value] = name
        if any(not name for name in self.seats):
            raise ValueError("a seat needs a name")
        return self

    def seat_table(self) -> dict[str, MockSeat]:
        """The DSP's seats: `seats`, or the one seat `default` made of the flat fields."""
        if self.seats:
            return self.seats
        return {
            DEFAULT_SEAT: MockSeat.model_construct(
                token=self.token,
                client_id=None,
                client_secret=None,
                rate_limit=self.rate_limit,
                rate_window=self.rate_window,
            )
        }
