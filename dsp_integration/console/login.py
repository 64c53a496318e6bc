"""The login page (a form for the token) and logout."""

from __future__ import annotations

from fastapi import APIRouter, Form, Request
from starlette.responses import RedirectResponse, Response

from dsp_integration.console.access import set_session_cookie
from dsp_integration.console.auth import CSRF_FIELD, SESSION_COOKIE, Guard, safe_next
from dsp_integration.console.templating import render

router = APIRouter(include_in_schema=False)


@router.get("/login")
async def login_page(request: Request, next: str = "/") -> Response:
    guard: Guard = request.app.state.guard
    if not guard.required:
        return RedirectResponse(safe_next(next), status_code=303)
    return render(request, "login.html", {"next": safe_next(next), "failed": False})


@router.post("/login")
async def log_in(request: Request, token: str = Form(""), next: str = Form("/")) -> Response:
    guard: Guard = request.app.state.guard
    if not guard.required:
        return RedirectResponse(safe_next(next), status_code=303)
    if not guard.token_matches(token):
        context = {"next": safe_next(next), "failed": True}
        return render(request, "login.html", context, status_code=401)
    response = RedirectResponse(safe_next(next), status_code=303)
    set_session_cookie(response, request, guard.new_session())
    return response


@router.post("/logout")
async def log_out(request: Request, csrf: str = Form("", alias=CSRF_FIELD)) -> Response:
    guard: Guard = request.app.state.guard
    if not guard.csrf_matches(request.state.session, csrf):
        return render(request, "error.html", {"status": 403, "message": "stale form"}, 403)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
