"""Seats' credentials at the mock DSP (dsp-api-v2.md §2): which seat a bearer token belongs
to and whether it still works, the tokens `POST /v1/oauth/token` hands out, and each
client's token requests in the rolling hour that limits them.

Tokens are held only here, in memory, to recognise them; the logs keep a seat, a client_id
and a `token_id`, never a token or a client secret."""

from __future__ import annotations

import hmac
import secrets
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from devkit.mock_dsp.config import MockSeat
from devkit.mock_dsp.entities import iso
from devkit.mock_dsp.limiter import LimitDecision, RollingWindowLimiter

TokenState = Literal["valid", "expired", "revoked", "unknown"]
TOKEN_REQUEST_WINDOW = 3600.0
"""The rolling hour in which a client's token requests are limited."""


@dataclass(frozen=True)
class TokenCheck:
    state: TokenState
    seat: str | None
    """The token's seat, known for every state but `unknown`: a request with an expired or
    revoked token still counts toward its seat's window."""


@dataclass
class _IssuedToken:
    seat: str
    expires_at: float
    revoked: bool = False
    expired_early: bool = False
    """Set by `expire`: a flag, not a time, so it holds whatever clock a test fakes."""


@dataclass(frozen=True)
class TokenRequestRecord:
    """One `POST /v1/oauth/token`; `client_id` is None when the body named none."""

    at: float
    wall_time: datetime
    client_id: str | None
    seat: str | None
    """The client's seat, set only when the credentials were right and a token was issued."""
    status: int

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "wall_time": iso(self.wall_time),
            "client_id": self.client_id,
            "seat": self.seat,
            "status": self.status,
        }


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


class TokenBook:
    def __init__(self) -> None:
        self._issued: dict[str, _IssuedToken] = {}
        self._token_requests = RollingWindowLimiter()
        self.log: list[TokenRequestRecord] = []

    def check(self, token: str | None, seats: Mapping[str, MockSeat], now: float) -> TokenCheck:
        """A seat's static token is valid for as long as it is configured; an issued token
        until `now` reaches its expiry or its seat is revoked or no longer configured."""
        if token is None:
            return TokenCheck("unknown", None)
        for name, seat in seats.items():
            if seat.token is not None and _same(token, seat.token):
                return TokenCheck("valid", name)
        issued = self._issued.get(token)
        if issued is None or issued.seat not in seats:
            return TokenCheck("unknown", None)
        if issued.revoked:
            return TokenCheck("revoked", issued.seat)
        if issued.expired_early or now >= issued.expires_at:
            return TokenCheck("expired", issued.seat)
        return TokenCheck("valid", issued.seat)

    def seat_of_client(
        self, client_id: str, client_secret: str, seats: Mapping[str, MockSeat]
    ) -> str | None:
        """The seat whose credentials these are, or None (wrong id or wrong secret)."""
        for name, seat in seats.items():
            if (
                seat.client_id is not None
                and seat.client_secret is not None
                and _same(client_id, seat.client_id)
                and _same(client_secret, seat.client_secret)
            ):
                return name
        return None

    def count_token_request(self, client_id: str, now: float, limit: int) -> LimitDecision:
        """Every token request counts, refused ones too, as in the API's window."""
        return self._token_requests.hit(client_id, now, limit, TOKEN_REQUEST_WINDOW)

    def issue(self, seat: str, now: float, lifetime: float) -> str:
        """A new random token; the seat's earlier tokens stay valid."""
        token = secrets.token_urlsafe(32)
        self._issued[token] = _IssuedToken(seat, now + lifetime)
        return token

    def revoke(self, seat: str) -> int:
        """Revoke every token issued to `seat`; returns how many were still valid or expired
        (not yet revoked). Static tokens are configuration: change the seat to refuse one."""
        revoked = 0
        for issued in self._issued.values():
            if issued.seat == seat and not issued.revoked:
                issued.revoked = True
                revoked += 1
        return revoked

    def expire(self, seat: str) -> int:
        """Make every token issued to `seat` expired now; returns how many were not yet
        made so (static tokens never expire)."""
        expired = 0
        for issued in self._issued.values():
            if issued.seat == seat and not issued.expired_early:
                issued.expired_early = True
                expired += 1
        return expired

    def requests_by_client(self) -> dict[str, int]:
        """How many token requests each client made (refused ones included)."""
        return dict(Counter(r.client_id for r in self.log if r.client_id is not None))

    def clear(self) -> None:
        self._issued.clear()
        self._token_requests.clear()
        self.log.clear()
