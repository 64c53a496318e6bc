"""Who may use the console: credentials, CSRF tokens, the role each route needs, and the
refusal of cross-site state changes.

Sessions live in PostgreSQL (client/logins.py); the cookie holds the session id, the
database only its hash. A page's CSRF token is an HMAC keyed by the session id, so it proves
the session without revealing it and needs no storage. With neither CONSOLE_TOKEN nor any
account, the console is open on loopback: its anonymous cookies only bind CSRF tokens and
are signed with a random key of this process."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import urlsplit

from starlette.requests import Request

from dsp_integration.client.actors import Role
from dsp_integration.client.logins import SessionPolicy

SESSION_COOKIE = "console_session"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
ADMIN_PATH = "/admin"
# Where any signed-in person may post: their own login, logout, password and tokens.
PERSONAL_PATHS = ("/login", "/logout", "/account")


class Guard:
    """Checks credentials; never logs or echoes a token or a session id."""

    def __init__(self, token: str | None, policy: SessionPolicy) -> None:
        self.token = token or None
        self.policy = policy
        self._key = secrets.token_bytes(32)

    @property
    def bootstrap(self) -> bool:
        """CONSOLE_TOKEN is set (it works only while no enabled admin account exists)."""
        return self.token is not None

    def token_matches(self, candidate: str | None) -> bool:
        if self.token is None or candidate is None:
            return False
        return hmac.compare_digest(candidate.encode(), self.token.encode())

    @staticmethod
    def bearer(authorization: str | None) -> str | None:
        """The credentials of an `Authorization: Bearer ...` header."""
        scheme, _, credentials = (authorization or "").partition(" ")
        credentials = credentials.strip()
        return credentials if scheme.lower() == "bearer" and credentials else None

    def _sign(self, nonce: str) -> str:
        return hmac.new(self._key, f"anonymous:{nonce}".encode(), hashlib.sha256).hexdigest()

    def new_anonymous_session(self) -> str:
        nonce = secrets.token_urlsafe(18)
        return f"{nonce}.{self._sign(nonce)}"

    def is_anonymous_session(self, cookie: str | None) -> bool:
        nonce, _, signature = (cookie or "").partition(".")
        return bool(nonce) and hmac.compare_digest(signature, self._sign(nonce))

    @staticmethod
    def csrf_token(session: str) -> str:
        return hmac.new(session.encode(), b"dsp-console-csrf", hashlib.sha256).hexdigest()

    def csrf_matches(self, session: str | None, candidate: str | None) -> bool:
        if not session or not candidate:
            return False
        return hmac.compare_digest(candidate, self.csrf_token(session))


def role_needed(method: str, path: str) -> Role:
    """Viewers read; operators also change entities and batches; admins manage accounts."""
    if _under(path, ADMIN_PATH):
        return Role.ADMIN
    if method in SAFE_METHODS or any(_under(path, p) for p in PERSONAL_PATHS):
        return Role.VIEWER
    return Role.OPERATOR


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


def personal(path: str) -> bool:
    """A person's own pages: open to them even before they replace a one-time password."""
    return any(_under(path, p) for p in PERSONAL_PATHS)


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
