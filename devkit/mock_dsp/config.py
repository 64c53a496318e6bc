"""The mock DSP's knobs. Every field has a default and can be changed while it runs."""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from dsp_integration.config.settings import DEV_API_TOKEN

ReviewModel = Literal["uniform", "lognormal"]
REVIEW_MODELS: tuple[ReviewModel, ...] = get_args(ReviewModel)
ApiVersion = Literal[1, 2]
FaultKind = Literal["503_before", "503_after", "truncated", "slow", "empty", "html", "drop"]
ALL_FAULT_KINDS: tuple[FaultKind, ...] = get_args(FaultKind)
# `drop` is drawn only when asked for: the version-1 fault tests expect an answer every time.
FAULT_KINDS: tuple[FaultKind, ...] = tuple(kind for kind in ALL_FAULT_KINDS if kind != "drop")


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
