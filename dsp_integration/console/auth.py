"""Who may use the console: the bearer token, the session cookie, CSRF tokens and the
same-origin check on every state-changing request.

The session cookie and the CSRF tokens are HMACs keyed by the token (by a random key of
this process when no token is set), so nothing is stored server-side, a cookie proves the
token without carrying it, and changing CONSOLE_TOKEN logs every browser out."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import urlsplit

from starlette.requests import Request

SESSION_COOKIE = "console_session"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class Guard:
    """Checks credentials; never logs or echoes the token."""

    def __init__(self, token: str | None) -> None:
        self.token = token or None
        secret = self.token.encode() if self.token else secrets.token_bytes(32)
        self._key = hashlib.sha256(b"dsp-console-session\0" + secret).digest()

    @property
    def required(self) -> bool:
        return self.token is not None

    def token_matches(self, candidate: str | None) -> bool:
        if self.token is None or candidate is None:
            return False
        return hmac.compare_digest(candidate.encode(), self.token.encode())

    def bearer_matches(self, authorization: str | None) -> bool:
        scheme, _, credentials = (authorization or "").partition(" ")
        return scheme.lower() == "bearer" and self.token_matches(credentials.strip())

    def _sign(self, purpose: str, nonce: str) -> str:
        return hmac.new(self._key, f"{purpose}:{nonce}".encode(), hashlib.sha256).hexdigest()

    def new_session(self) -> str:
        nonce = secrets.token_urlsafe(18)
        return f"{nonce}.{self._sign('session', nonce)}"

    def session_nonce(self, cookie: str | None) -> str | None:
        """The session's nonce when the cookie is one this console signed, else None."""
        nonce, _, signature = (cookie or "").partition(".")
        if not nonce or not hmac.compare_digest(signature, self._sign("session", nonce)):
            return None
        return nonce

    def csrf_token(self, nonce: str) -> str:
        return self._sign("csrf", nonce)

    def csrf_matches(self, nonce: str | None, candidate: str | None) -> bool:
        if not nonce or not candidate:
            return False
        return hmac.compare_digest(candidate, self.csrf_token(nonce))


def cross_site(request: Request) -> bool:
    """A browser sent this from another site (Origin or Sec-Fetch-Site says so)."""
    if request.headers.get("sec-fetch-site") == "cross-site":
        return True
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return origin == "null"
    return urlsplit(origin).netloc != request.headers.get("host", "")


def safe_next(target: str | None) -> str:
    """A local path to go to after login (never another site)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target
