"""The mock DSP's state: entities, idempotency keys, the limiter, the seats' tokens and the
request log.

Entities, idempotency keys and windows belong to the seat whose token made the request
(its `account`): another seat neither finds those entities, nor replays those keys, nor
may refer to them (dsp-api-v2.md §1). With no `seats` configured, everything belongs to the
one seat `default`, whose account is its token's, as version 1 scoped them per token.

The app serves it from one event loop while tests read it from other threads, so every
access goes through `lock`."""

from __future__ import annotations

import json
import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from devkit.mock_dsp.config import DEFAULT_SEAT, MockDspConfig, MockSeat
from devkit.mock_dsp.credentials import TokenBook, TokenRequestRecord
from devkit.mock_dsp.entities import ID_PREFIXES, SUCCESS_STATUS, Entity
from devkit.mock_dsp.limiter import RollingWindowLimiter
from devkit.mock_dsp.replies import ApiError, Reply, validation_error
from devkit.mock_dsp.request_log import RequestLog, RequestRecord, token_id, window_key
from devkit.mock_dsp.streams import RandomStreams
from devkit.mock_dsp.validation import (
    EXTERNAL_ID,
    IDEMPOTENCY_KEY_HEADER,
    check_external_id,
    check_idempotency_key,
    parse_json,
    references,
    validate_payload,
)

RequestListener = Callable[[RequestRecord], None]
TokenRequestListener = Callable[[TokenRequestRecord], None]
REPLAYED_HEADER = "Idempotent-Replayed"


@dataclass(frozen=True)
class _IdempotentCreate:
    entity_type: str
    fingerprint: str
    reply: Reply


@dataclass(frozen=True)
class CreateResult:
    reply: Reply
    created_id: str | None
    replayed: bool


def _fingerprint(body: Any) -> str:
    return json.dumps(body, sort_keys=True, separators=(",", ":"))


class MockDsp:
    def __init__(
        self,
        config: MockDspConfig | None = None,
        *,
        on_request: RequestListener | None = None,
        on_token_request: TokenRequestListener | None = None,
    ) -> None:
        self.lock = threading.RLock()
        self.limiter = RollingWindowLimiter()
        self.log = RequestLog()
        self.tokens = TokenBook()
        self.entities: dict[str, Entity] = {}
        self.on_request = on_request
        self.on_token_request = on_token_request
        self._idempotent: dict[tuple[str, str], _IdempotentCreate] = {}
        self._held: dict[str, str | None] = {}
        self._config = config or MockDspConfig()
        self._seed()

    @property
    def config(self) -> MockDspConfig:
        return self._config

    @config.setter
    def config(self, config: MockDspConfig) -> None:
        """Replacing the config also re-seeds the random choices from `config.seed`."""
        with self.lock:
            self._config = config
            self._seed()

    def _seed(self) -> None:
        self.streams = RandomStreams(self._config.seed)

    def reset(self) -> None:
        """Forget every request, entity, idempotency key, limiter window and issued token."""
        with self.lock:
            self.log.clear()
            self.tokens.clear()
            self.entities.clear()
            self._idempotent.clear()
            self._held.clear()
            self.limiter.clear()
            self._seed()

    def hold(self, key: str) -> None:
        """The entity the service creates for `key` (its Idempotency-Key `<key>:v<n>`, or on
        version 2 its `external_id`, `<key>` or `<key>:v<n>`) stays in its first status
        (under review, pending) until `release(key)`: a test that must act while it is there
        does not race its processing time."""
        with self.lock:
            self._held[key] = None

    def release(self, key: str) -> None:
        """A held entity's processing ends now, with its outcome."""
        with self.lock:
            entity_id = self._held.pop(key)
            if entity_id is None:
                raise ValueError(f"nothing was created for the held key {key!r}")
            entity = self.entities[entity_id]
            entity.processing_seconds = time.monotonic() - entity.round_mono

    def account(self, seat: str) -> str:
        """What a seat's entities, keys and window are kept under: its name, or with no
        `seats` configured also the flat token's id, so a test that swaps the token meets
        a new account (version 1: keys and windows are per token)."""
        return seat if self._config.seats else f"{seat}#{token_id(self._config.token)}"

    def window_of(self, seat: str | None, token: str) -> str:
        """The limiter's key for a request: its seat's account, or an unknown token's id."""
        return window_key(None if seat is None else self.account(seat), token_id(token))

    def seat(self, name: str) -> MockSeat:
        """A configured seat (the flat settings' `default` when `seats` is empty)."""
        seats = self._config.seat_table()
        if name not in seats:
            raise ValueError(f"no seat {name!r} at the mock DSP; its seats: {', '.join(seats)}")
        return seats[name]

    def throttle(self, requests: int, token: str | None = None, seat: str | None = None) -> int:
        """Put `requests` phantom requests into a window, as another client of the seat
        would: `seat`'s, else the seat of `token` (an unknown token's own window), else the
        default seat's. Returns how many requests the window now holds."""
        with self.lock:
            now = time.monotonic()
            if seat is None and token is not None:
                seat = self.tokens.check(token, self._config.seat_table(), now).seat
                if seat is None:
                    key = self.window_of(None, token)
                    return self.limiter.add_phantoms(key, requests, now, self._config.rate_window)
            name = DEFAULT_SEAT if seat is None else seat
            return self.limiter.add_phantoms(
                self.window_of(name, ""), requests, now, self.seat(name).rate_window
            )

    def revoke_tokens(self, seat: str) -> int:
        """Every token issued to `seat` is now refused with `401 unauthorized` (its requests
        still count toward the seat's window); returns how many were revoked."""
        with self.lock:
            self.seat(seat)
            return self.tokens.revoke(seat)

    def expire_tokens(self, seat: str) -> int:
        """Every token issued to `seat` is now refused with `401 token_expired`, as if its
        lifetime had passed; returns how many."""
        with self.lock:
            self.seat(seat)
            return self.tokens.expire(seat)

    @property
    def request_log(self) -> list[RequestRecord]:
        with self.lock:
            return self.log.records

    @property
    def token_log(self) -> list[TokenRequestRecord]:
        """Every `POST /v1/oauth/token`; they are not in `request_log` (they count toward no
        seat's window)."""
        with self.lock:
            return list(self.tokens.log)

    def token_request_counts(self) -> dict[str, int]:
        """How many token requests each client_id made, refused ones included."""
        with self.lock:
            return self.tokens.requests_by_client()

    def max_in_window(
        self, window: float | None = None, seat: str | None = None, *, token: str | None = None
    ) -> int:
        """The most requests counted toward one window (a seat's, or an unknown token's) in
        any rolling `window` seconds, refused ones included: of `seat` only if given (its
        window by default), of `token` only if given (default window: the flat
        `rate_window`)."""
        with self.lock:
            if window is None:
                window = self._config.rate_window if seat is None else self.seat(seat).rate_window
            return self.log.max_in_window(window, token, seat)

    def rate_limited_count(self) -> int:
        with self.lock:
            return self.log.count_status(429)

    def stats(self) -> dict[str, Any]:
        """The flat fields as before (over every window), then `seats`: each seat's limit,
        window, requests in its window now and its counts; `token_requests` per client."""
        with self.lock:
            now = time.monotonic()
            seats = {
                name: {
                    **self.log.seat_stats(name, seat.rate_window),
                    "rate_limit": seat.rate_limit,
                    "rate_window": seat.rate_window,
                    "in_window": self.limiter.in_window(
                        self.window_of(name, ""), now, seat.rate_window
                    ),
                }
                for name, seat in self._config.seat_table().items()
            }
            return {
                **self.log.stats(self._config.rate_window),
                "rate_limit": self._config.rate_limit,
                "entities": len(self.entities),
                "seats": seats,
                "token_requests": self.tokens.requests_by_client(),
            }

    def entity_views(self) -> list[dict[str, Any]]:
        """Every entity as `GET` shows it, with the account (`account`) it belongs to, for
        tests: the API never shows the account."""
        with self.lock:
            now = time.monotonic()
            return [
                entity.full_view(now) | {"account": entity.account}
                for entity in self.entities.values()
            ]

    def status_of(self, entity_id: str) -> str | None:
        with self.lock:
            entity = self.entities.get(entity_id)
            return entity.status(time.monotonic()) if entity else None

    # The API operations below run under `lock`, held by the caller.

    def create(
        self, seat: str, entity_type: str, raw: bytes, idempotency_key: str | None, now: float
    ) -> CreateResult:
        """Version 2 ignores `idempotency_key`: no replay, every valid POST creates."""
        body = parse_json(raw)
        version_2 = self._config.api_version == 2
        if version_2:
            idempotency_key = None
        check_idempotency_key(idempotency_key)
        fingerprint = _fingerprint(body)
        account = self.account(seat)
        slot = (account, idempotency_key) if idempotency_key is not None else None
        earlier = self._idempotent.get(slot) if slot else None
        if earlier is not None:
            if earlier.fingerprint != fingerprint or earlier.entity_type != entity_type:
                raise ApiError(
                    422,
                    "idempotency_key_reused",
                    "this Idempotency-Key was already used with a different request",
                    IDEMPOTENCY_KEY_HEADER,
                )
            return CreateResult(earlier.reply.with_headers({REPLAYED_HEADER: "true"}), None, True)
        fields = validate_payload(entity_type, body, external_id=version_2)
        self._check_references(seat, entity_type, fields, now)
        identity = idempotency_key or fields.get(EXTERNAL_ID) or fingerprint
        entity = Entity.create(
            self._new_id(entity_type, identity),
            entity_type,
            fields,
            now,
            self._processing_seconds(entity_type, identity),
            account=account,
        )
        reference = idempotency_key or fields.get(EXTERNAL_ID)
        held = reference.rsplit(":v", 1)[0] if reference else None
        if held in self._held:
            self._held[held] = entity.id
            entity.processing_seconds = math.inf
        self.entities[entity.id] = entity
        reply = Reply(201, entity.created_view(now))
        if slot is not None:
            self._idempotent[slot] = _IdempotentCreate(entity_type, fingerprint, reply)
        return CreateResult(reply, entity.id, False)

    def status(self, seat: str, entity_type: str, entity_id: str, now: float) -> dict[str, Any]:
        return self._find(seat, entity_type, entity_id).status_view(now)

    def view(self, seat: str, entity_type: str, entity_id: str, now: float) -> dict[str, Any]:
        return self._find(seat, entity_type, entity_id).full_view(now)

    def replace(
        self, seat: str, entity_type: str, entity_id: str, raw: bytes, now: float
    ) -> dict[str, Any]:
        entity = self._find(seat, entity_type, entity_id)
        if entity.archived:
            raise validation_error(None, f"{entity_id} is archived and cannot be changed")
        body = parse_json(raw)
        version_2 = self._config.api_version == 2
        fields = validate_payload(entity_type, body, external_id=version_2)
        if version_2 and EXTERNAL_ID not in fields and EXTERNAL_ID in entity.fields:
            # A PUT that leaves the reference out does not unlink the entity from it.
            fields = {**fields, EXTERNAL_ID: entity.fields[EXTERNAL_ID]}
        self._check_references(seat, entity_type, fields, now)
        entity.restart(fields, now, self._processing_seconds(entity_type, _fingerprint(body)))
        return entity.status_view(now)

    def archive(self, seat: str, entity_type: str, entity_id: str, now: float) -> dict[str, Any]:
        entity = self._find(seat, entity_type, entity_id)
        entity.archive()
        return entity.status_view(now)

    def search(
        self, seat: str, entity_type: str, external_id: str | None, now: float
    ) -> dict[str, Any]:
        """Version 2's eventually consistent search: the seat's entities of `entity_type`
        with `external_id`, newest first, archived ones included, each shown only once
        `search_lag` seconds have passed since its creation."""
        if external_id is None:
            raise validation_error(EXTERNAL_ID, "is required (the query ?external_id=...)")
        check_external_id(EXTERNAL_ID, external_id)
        account = self.account(seat)
        visible_before = now - self._config.search_lag
        found = [
            entity
            for entity in self.entities.values()
            if entity.type == entity_type
            and entity.account == account
            and entity.fields.get(EXTERNAL_ID) == external_id
            and entity.created_mono <= visible_before
        ]
        found.sort(key=lambda entity: entity.created_mono, reverse=True)
        return {"items": [entity.full_view(now) for entity in found]}

    def _find(self, seat: str, entity_type: str, entity_id: str) -> Entity:
        """Another seat's entity is not found, as at a DSP that keeps accounts apart."""
        entity = self.entities.get(entity_id)
        if entity is None or entity.type != entity_type or entity.account != self.account(seat):
            raise ApiError(404, "not_found", f"no {entity_type} entity with id {entity_id!r}")
        return entity

    def _new_id(self, entity_type: str, identity: str) -> str:
        ids = self.streams.stream(identity, "ids")
        while True:
            entity_id = f"{ID_PREFIXES[entity_type]}_{ids.getrandbits(24):06x}"
            if entity_id not in self.entities:
                return entity_id

    def _processing_seconds(self, entity_type: str, identity: str) -> float:
        config = self._config
        if entity_type == "advertisers":
            return 0.0
        if config.review_model == "uniform":
            if entity_type == "creatives":
                jitter = self.streams.stream(identity, "review").random()
                return config.review_seconds * (1 + config.review_jitter * jitter)
            return config.pending_seconds
        rng = (
            self.streams.stream(identity, "review")
            if config.seed is None
            else random.Random(f"{config.seed}-{identity}")
        )
        if entity_type == "creatives":
            median, sigma = config.review_seconds, config.review_sigma
        else:
            median, sigma = config.pending_seconds, config.pending_sigma
        seconds = median * math.exp(rng.gauss(0.0, sigma))
        return (
            seconds
            if config.review_max_seconds is None
            else min(config.review_max_seconds, seconds)
        )

    def _check_references(
        self, seat: str, entity_type: str, fields: dict[str, Any], now: float
    ) -> None:
        """Ids that can never work (unknown, another seat's, dead) are reported before ids
        that are not ready yet, so a client is not told to retry a request that cannot
        succeed."""
        account = self.account(seat)
        parents: list[tuple[str, Entity]] = []
        for field, parent_type, parent_id in references(entity_type, fields):
            parent = self.entities.get(parent_id)
            if parent is None or parent.type != parent_type or parent.account != account:
                raise ApiError(
                    422,
                    "unknown_reference",
                    f"no {parent_type} entity with id {parent_id!r} in this seat",
                    field,
                )
            status = parent.status(now)
            if status in ("archived", "rejected", "failed"):
                raise ApiError(
                    422, "unknown_reference", f"{parent_id} is {status} and cannot be used", field
                )
            parents.append((field, parent))
        for field, parent in parents:
            if now - parent.created_mono < self._config.propagation_delay:
                raise ApiError(
                    409,
                    "reference_not_ready",
                    f"{parent.id} was created moments ago and has not propagated yet",
                    field,
                )
            if not parent.is_usable(now):
                raise ApiError(
                    409,
                    "reference_not_ready",
                    f"{parent.id} is {parent.status(now)}, not yet {SUCCESS_STATUS[parent.type]}",
                    field,
                )
