"""The gate in front of every route: who is asking (an API token, a session cookie, the
bootstrap CONSOLE_TOKEN, or nobody on an open loopback console), whether their role allows
the request, the CSRF token of the session, and the refusal of cross-site state changes.
Unauthenticated callers learn nothing about entities: the API answers 401, a browser gets
the login page. Every request let through carries `request.state.actor`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from dsp_integration.client.actors import Actor, Role
from dsp_integration.client.logins import (
    BOOTSTRAP_RETIRED,
    Identity,
    accounts_exist,
    bootstrap_identity,
    enabled_admin_exists,
    session_identity,
    token_identity,
)
from dsp_integration.console.auth import (
    CSRF_HEADER,
    SAFE_METHODS,
    SESSION_COOKIE,
    Guard,
    cross_site,
    personal,
    role_needed,
    safe_next,
)
from dsp_integration.console.errors import problem_response
from dsp_integration.console.templating import render
from dsp_integration.database.engine import SessionFactory

PUBLIC_PATHS = frozenset({"/login", "/healthz"})
NEEDS_JSON_401 = ("/api/", "/openapi.json")
# Who acts on a console open on loopback (no CONSOLE_TOKEN, no account): whoever can reach
# it could run `starter.py` on that machine too, so it may do anything, as before accounts.
ANONYMOUS = Identity("anonymous", Role.ADMIN, None)

Handler = Callable[[Request], Awaitable[Response]]


def set_session_cookie(response: Response, request: Request, value: str) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        value,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )


def database_of(request: Request) -> SessionFactory:
    return request.app.state.service.sessions  # type: ignore[no-any-return]


def client_address(request: Request) -> str | None:
    return request.client.host if request.client else None


async def login_context(
    request: Request, next: str, *, failed: str | None = None, name: str = ""
) -> dict[str, Any]:
    """The login page's values; the token form only while CONSOLE_TOKEN still opens it."""
    guard: Guard = request.app.state.guard
    token_login = guard.bootstrap and not await enabled_admin_exists(database_of(request))
    return {"next": safe_next(next), "failed": failed, "name": name, "token_login": token_login}


def _refuse(request: Request, status: int, message: str, **headers: str) -> Response:
    if request.url.path.startswith(NEEDS_JSON_401):
        return problem_response(status, None, message, headers=headers)
    return render(request, "error.html", {"status": status, "message": message}, status)


async def _unauthenticated(request: Request, message: str) -> Response:
    if request.url.path.startswith(NEEDS_JSON_401):
        return problem_response(401, None, message, headers={"WWW-Authenticate": "Bearer"})
    return render(request, "login.html", await login_context(request, request.url.path), 401)


async def _bearer_identity(request: Request, guard: Guard, token: str) -> Identity | str:
    """The identity of an API token or of CONSOLE_TOKEN, else why it is refused."""
    if guard.token_matches(token):
        if await enabled_admin_exists(database_of(request)):
            return BOOTSTRAP_RETIRED
        return bootstrap_identity()
    found = await token_identity(database_of(request), token)
    return found if found is not None else "authentication required"


async def gate(request: Request, call_next: Handler) -> Response:
    guard: Guard = request.app.state.guard
    path = request.url.path
    unsafe = request.method not in SAFE_METHODS
    if unsafe and cross_site(request):
        return problem_response(403, None, "cross-site request refused")
    public = path in PUBLIC_PATHS or path.startswith("/static/")
    token = guard.bearer(request.headers.get("authorization"))
    cookie = request.cookies.get(SESSION_COOKIE) or None
    identity: Identity | None = None
    refusal = "authentication required"
    session: str | None = None
    new_cookie: str | None = None
    if token is not None:
        found = await _bearer_identity(request, guard, token)
        identity, refusal = (found, refusal) if isinstance(found, Identity) else (None, found)
    elif cookie is not None and not guard.is_anonymous_session(cookie):
        identity = await session_identity(
            database_of(request), cookie, guard.policy, bootstrap=guard.bootstrap
        )
        session = cookie if identity is not None else None
    request.state.logged_in = session is not None
    if identity is None and not public:
        if guard.bootstrap or await accounts_exist(database_of(request)):
            return await _unauthenticated(request, refusal)
        # Open on loopback: an anonymous session, only to bind CSRF tokens to.
        identity = ANONYMOUS
        if guard.is_anonymous_session(cookie):
            session = cookie
        else:
            session = new_cookie = guard.new_anonymous_session()
    bearer = token is not None and identity is not None
    request.state.bearer = bearer
    request.state.session = session
    request.state.csrf = guard.csrf_token(session) if session else ""
    request.state.actor = (
        None
        if identity is None
        else Actor(
            identity.name,
            identity.role,
            "api" if bearer else "console",
            address=client_address(request),
        )
    )
    if identity is not None and not public:
        if (
            unsafe
            and path.startswith("/api/")
            and not bearer
            and cookie is not None
            and not guard.csrf_matches(session, request.headers.get(CSRF_HEADER))
        ):
            # A browser's session cookie alone never changes anything through the API.
            return problem_response(403, None, "missing or wrong X-CSRF-Token")
        if identity.password_change_required and not personal(path):
            if path.startswith(NEEDS_JSON_401):
                return _refuse(request, 403, "choose your own password first, at /account")
            return RedirectResponse("/account", status_code=303)
        needed = role_needed(request.method, path)
        if not identity.role.may(needed):
            return _refuse(
                request,
                403,
                f"{identity.name} is a {identity.role.value}: this needs the {needed.value} role",
            )
    response = await call_next(request)
    if new_cookie is not None and not path.startswith("/api/"):
        set_session_cookie(response, request, new_cookie)
    return response
