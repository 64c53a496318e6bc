"""The gate in front of every route: authentication, the CSRF token of the session, and the
refusal of cross-site state changes. Unauthenticated callers learn nothing about entities:
the API answers 401, a browser gets the login page."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from dsp_integration.console.auth import (
    CSRF_HEADER,
    SAFE_METHODS,
    SESSION_COOKIE,
    Guard,
    cross_site,
)
from dsp_integration.console.errors import problem_response
from dsp_integration.console.templating import render

PUBLIC_PATHS = frozenset({"/login", "/healthz"})
NEEDS_JSON_401 = ("/api/", "/openapi.json")

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


async def gate(request: Request, call_next: Handler) -> Response:
    guard: Guard = request.app.state.guard
    path = request.url.path
    if request.method not in SAFE_METHODS and cross_site(request):
        return problem_response(403, None, "cross-site request refused")
    bearer = guard.bearer_matches(request.headers.get("authorization"))
    nonce = guard.session_nonce(request.cookies.get(SESSION_COOKIE))
    public = path in PUBLIC_PATHS or path.startswith("/static/")
    if guard.required and not (bearer or nonce or public):
        if path.startswith(NEEDS_JSON_401):
            return problem_response(
                401,
                None,
                "authentication required",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return render(request, "login.html", {"next": path, "failed": False}, status_code=401)
    new_cookie = None
    if nonce is None and not guard.required:
        # No token to log in with: an anonymous session, only to bind CSRF tokens to.
        new_cookie = guard.new_session()
        nonce = guard.session_nonce(new_cookie)
    request.state.bearer = bearer
    request.state.session = nonce
    request.state.csrf = guard.csrf_token(nonce) if nonce else ""
    if (
        request.method not in SAFE_METHODS
        and path.startswith("/api/")
        and not bearer
        and request.cookies.get(SESSION_COOKIE)
        and not guard.csrf_matches(nonce, request.headers.get(CSRF_HEADER))
    ):
        # A browser's session cookie alone never changes anything through the API.
        return problem_response(403, None, "missing or wrong X-CSRF-Token")
    response = await call_next(request)
    if new_cookie is not None and not path.startswith("/api/"):
        set_session_cookie(response, request, new_cookie)
    return response
