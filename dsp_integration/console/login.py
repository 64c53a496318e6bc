"""The login page (an account's name and password, or CONSOLE_TOKEN while it is the
bootstrap admin) and logout."""

from __future__ import annotations

from fastapi import APIRouter, Form, Request
from starlette.responses import RedirectResponse, Response

from dsp_integration.client.logins import (
    LoginOutcome,
    accounts_exist,
    end_session,
    log_in,
    log_in_with_console_token,
)
from dsp_integration.console.access import (
    client_address,
    database_of,
    login_context,
    set_session_cookie,
)
from dsp_integration.console.auth import CSRF_FIELD, SESSION_COOKIE, Guard, safe_next
from dsp_integration.console.templating import render

router = APIRouter(include_in_schema=False)


async def _open(request: Request) -> bool:
    """Nobody needs to log in: no CONSOLE_TOKEN and no account (loopback only)."""
    guard: Guard = request.app.state.guard
    return not guard.bootstrap and not await accounts_exist(database_of(request))


@router.get("/login")
async def login_page(request: Request, next: str = "/") -> Response:
    if await _open(request):
        return RedirectResponse(safe_next(next), status_code=303)
    return render(request, "login.html", await login_context(request, next))


@router.post("/login")
async def log_in_form(
    request: Request,
    name: str = Form(""),
    password: str = Form(""),
    token: str = Form(""),
    next: str = Form("/"),
) -> Response:
    guard: Guard = request.app.state.guard
    if await _open(request):
        return RedirectResponse(safe_next(next), status_code=303)
    sessions, address = database_of(request), client_address(request)
    outcome: LoginOutcome
    if token:
        matches = guard.token_matches(token)
        outcome = await log_in_with_console_token(sessions, matches, address, guard.policy)
    else:
        outcome = await log_in(sessions, name, password, address, guard.policy)
    if outcome.session_id is None:
        context = await login_context(request, next, failed=outcome.message, name=name)
        return render(request, "login.html", context, 429 if outcome.throttled else 401)
    change_first = outcome.identity is not None and outcome.identity.password_change_required
    response = RedirectResponse("/account" if change_first else safe_next(next), status_code=303)
    set_session_cookie(response, request, outcome.session_id)
    return response


@router.post("/logout")
async def log_out(request: Request, csrf: str = Form("", alias=CSRF_FIELD)) -> Response:
    guard: Guard = request.app.state.guard
    if not guard.csrf_matches(request.state.session, csrf):
        return render(request, "error.html", {"status": 403, "message": "stale form"}, 403)
    if request.state.logged_in:
        await end_session(database_of(request), request.state.session)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
