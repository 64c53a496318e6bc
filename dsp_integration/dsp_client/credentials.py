"""Where a seat's bearer token comes from (dsp-api-v2.md §2): a static token, or a login with
client credentials whose token expires.

A worker process holds one `TokenSource` per seat for all its concurrent calls. The login is
rationed: each client may ask for 60 tokens per rolling hour, so a token is reused until
shortly before it expires, one login serves every caller waiting at that moment, and refused
credentials are not tried again for a while. Neither the secret nor a token ever appears in a
log line or an exception message."""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
from pydantic import SecretStr

from dsp_integration.config.seats import Seat
from dsp_integration.dsp_client.client import describe_error
from dsp_integration.dsp_client.exchange import redact
from dsp_integration.dsp_client.headers import parse_retry_after

logger = logging.getLogger(__name__)

TOKEN_PATH = "/v1/oauth/token"
# Renew this long before `expires_in` runs out: the margin covers a request in flight and
# clock drift, and is a tenth of the lifetime for the test DSPs' tokens of a few seconds.
MAX_REFRESH_MARGIN = 60.0
REFRESH_MARGIN_SHARE = 0.1
# After `invalid_client` the login is not tried again for this long, doubling per refusal:
# an operator has to fix the secret, and each try would spend one of the 60 logins an hour.
REFUSED_BACKOFF_FIRST = 30.0
REFUSED_BACKOFF_MAX = 15 * 60.0
THROTTLED_WAIT_DEFAULT = 60.0  # a 429 from the token endpoint without Retry-After
INVALID_CLIENT = "invalid_client"


class LoginError(Exception):
    """No token: `retry_after` says when asking again makes sense (None: the caller's
    ordinary backoff)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class CredentialsRefused(LoginError):
    """401 `invalid_client`: the client id or secret is wrong; an operator must fix it."""


class LoginThrottled(LoginError):
    """429 from the token endpoint: this client asked for too many tokens this hour."""


class LoginFailed(LoginError):
    """The token endpoint did not answer usefully (transport error, 5xx, a malformed body)."""


class TokenSource(Protocol):
    async def token(self) -> SecretStr:
        """The token to send now; raises a `LoginError` when there is none."""
        ...

    def expired(self, token: SecretStr) -> None:
        """The DSP answered `401 token_expired` to a request that carried `token`."""
        ...


class StaticToken:
    """A token that never expires (version 1's, or a seat configured with a static token)."""

    def __init__(self, token: SecretStr) -> None:
        self._token = token

    def __repr__(self) -> str:
        return "StaticToken()"

    async def token(self) -> SecretStr:
        return self._token

    def expired(self, token: SecretStr) -> None:
        """Nothing to renew: the same token goes again, and a second refusal is an error."""


@dataclass(frozen=True)
class _Issued:
    token: SecretStr
    renew_at: float


class ClientCredentials:
    """Tokens from `POST /v1/oauth/token` for one seat, shared by every call of a worker.

    Logs in when first asked; reuses the token until `renew_at` (its lifetime less
    `refresh_margin`); one login at a time, whose result every caller waiting meanwhile
    gets. `clock` (monotonic seconds) is replaceable for tests."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        seat: Seat,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if seat.client_id is None:
            raise ValueError(f"seat {seat.name!r} has no client_id: it uses a static token")
        self._http = http
        self._seat = seat
        self._client_id = seat.client_id
        self._clock = clock
        self._issued: _Issued | None = None
        self._login: asyncio.Future[SecretStr] | None = None
        self._refused_backoff: float | None = None  # set while the credentials are refused
        self._blocked: LoginError | None = None  # refused or throttled: raised until ...
        self._blocked_until = 0.0
        self.logins = 0  # token requests sent (tests and diagnostics)

    def __repr__(self) -> str:
        return f"ClientCredentials(seat={self._seat.name!r}, client_id={self._client_id!r})"

    async def token(self) -> SecretStr:
        now = self._clock()
        if self._issued is not None and now < self._issued.renew_at:
            return self._issued.token
        if self._blocked is not None and now < self._blocked_until:
            raise type(self._blocked)(str(self._blocked), retry_after=self._blocked_until - now)
        if self._login is None:
            self._login = asyncio.ensure_future(self._log_in())
            self._login.add_done_callback(self._login_done)
        # Shielded: a caller that is cancelled stops waiting, the login goes on for the rest.
        return await asyncio.shield(self._login)

    def expired(self, token: SecretStr) -> None:
        """Drops the current token if it is `token`: N calls refused with the same old token
        cause one login, and a call that still carried an older one changes nothing."""
        issued = self._issued
        if issued is not None and hmac.compare_digest(
            issued.token.get_secret_value().encode(), token.get_secret_value().encode()
        ):
            self._issued = None

    def _login_done(self, login: asyncio.Future[SecretStr]) -> None:
        self._login = None
        if not login.cancelled():
            login.exception()  # retrieved: waiters that left early must not leave it unseen

    async def _log_in(self) -> SecretStr:
        sent_at = self._clock()
        self.logins += 1
        try:
            response = await self._http.post(
                TOKEN_PATH,
                json={
                    "client_id": self._client_id,
                    "client_secret": self._seat.secret.get_secret_value(),
                },
            )
        except (httpx.HTTPError, httpx.InvalidURL, OSError) as error:
            raise LoginFailed(
                f"seat {self._seat.name!r}: no token: {describe_error(error, self._http.timeout)}"
            ) from None
        body = _json(response)
        if response.status_code == 401 or _error_code(body) == INVALID_CLIENT:
            raise self._refused()
        if response.status_code == 429:
            raise self._throttled(response)
        if response.status_code != 200:
            raise LoginFailed(
                f"seat {self._seat.name!r}: the token endpoint answered HTTP "
                f"{response.status_code}"
                f"{redact(_code_note(body), (self._seat.secret.get_secret_value(),))}",
                retry_after=parse_retry_after(response.headers.get("retry-after")),
            )
        issued = self._parse(body, sent_at)
        self._issued = issued
        self._blocked = None
        if self._refused_backoff is not None:
            self._refused_backoff = None
            logger.info(
                "seat %r: the DSP accepts its client credentials again; its calls go on",
                self._seat.name,
            )
        return issued.token

    def _parse(self, body: Any, sent_at: float) -> _Issued:
        token = body.get("access_token") if isinstance(body, dict) else None
        lifetime = body.get("expires_in") if isinstance(body, dict) else None
        if (
            not isinstance(token, str)
            or not token
            or isinstance(lifetime, bool)
            or not isinstance(lifetime, int | float)
            or not lifetime > 0
        ):
            raise LoginFailed(
                f"seat {self._seat.name!r}: the token endpoint's answer has no access_token "
                "and positive expires_in"
            )
        margin = min(MAX_REFRESH_MARGIN, REFRESH_MARGIN_SHARE * float(lifetime))
        # Counted from when the request left: the DSP's clock started no earlier.
        return _Issued(SecretStr(token), renew_at=sent_at + float(lifetime) - margin)

    def _refused(self) -> CredentialsRefused:
        first = self._refused_backoff is None
        backoff = (
            REFUSED_BACKOFF_FIRST
            if self._refused_backoff is None
            else min(2 * self._refused_backoff, REFUSED_BACKOFF_MAX)
        )
        self._refused_backoff = backoff
        self._issued = None
        variable = self._seat.secret_env or "the seat's client secret"
        error = CredentialsRefused(
            f"seat {self._seat.name!r}: the DSP refused its client credentials "
            f"(401 invalid_client): check client_id {self._client_id!r} and {variable}",
            retry_after=backoff,
        )
        self._block(error, backoff)
        if first:
            logger.error(
                "seat %r: the DSP refused its client credentials (401 invalid_client): fix "
                "client_id %r or %s; the seat's calls wait (next login in %.0f s, then less "
                "often), other seats go on",
                self._seat.name,
                self._client_id,
                variable,
                backoff,
            )
        return error

    def _throttled(self, response: httpx.Response) -> LoginThrottled:
        wait = parse_retry_after(response.headers.get("retry-after"))
        wait = THROTTLED_WAIT_DEFAULT if wait is None else wait
        error = LoginThrottled(
            f"seat {self._seat.name!r}: too many token requests (429); next in {wait:.0f} s",
            retry_after=wait,
        )
        self._block(error, wait)
        logger.warning(
            "seat %r: the DSP's token endpoint throttles client %r (429): no login for %.0f s",
            self._seat.name,
            self._client_id,
            wait,
        )
        return error

    def _block(self, error: LoginError, seconds: float) -> None:
        self._blocked = error
        self._blocked_until = self._clock() + seconds


def token_source(seat: Seat, http: httpx.AsyncClient) -> TokenSource:
    """The seat's tokens: logged in with its client id and secret, or its static token."""
    if seat.uses_client_credentials:
        return ClientCredentials(http, seat)
    return StaticToken(seat.secret)


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _error_code(body: Any) -> str | None:
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and isinstance(error.get("code"), str):
        code: str = error["code"]
        return code
    if isinstance(error, str):  # RFC 6749's {"error": "invalid_client"}
        return error
    return None


def _code_note(body: Any) -> str:
    code = _error_code(body)
    return f" ({code})" if code else ""
