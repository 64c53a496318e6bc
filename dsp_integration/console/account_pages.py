"""A person's own account page (password, API tokens) and the admin page of accounts
(add, set a role, disable and enable, reset a password, revoke tokens). Every change goes
through client/accounts.py with `request.state.actor`; every form carries the CSRF token."""

from __future__ import annotations

from typing import Any, TypedDict, Unpack

from fastapi import APIRouter, Form, Request
from starlette.responses import Response

from dsp_integration.client import accounts
from dsp_integration.client.accounts import AccountRefused, NotAllowed
from dsp_integration.client.actors import Actor, Role
from dsp_integration.client.logins import log_in, recent_logins
from dsp_integration.client.passwords import generate_password, secret_digest
from dsp_integration.console.access import client_address, database_of
from dsp_integration.console.auth import CSRF_FIELD, Guard
from dsp_integration.console.templating import render

router = APIRouter(include_in_schema=False)
ROLES = [role.value for role in Role]


def _stale_form(request: Request, csrf: str) -> Response | None:
    guard: Guard = request.app.state.guard
    if request.state.bearer or guard.csrf_matches(request.state.session, csrf):
        return None
    message = "this form is stale or came from elsewhere; reload the page and try again"
    return render(request, "error.html", {"status": 403, "message": message}, 403)


def _actor(request: Request) -> Actor:
    actor: Actor = request.state.actor
    return actor


def _has_account(request: Request) -> bool:
    """The person is an account (not CONSOLE_TOKEN, not the open loopback console)."""
    return bool(request.state.logged_in or request.state.bearer) and _actor(request).name not in (
        accounts.BOOTSTRAP_AND_ANONYMOUS
    )


class Notice(TypedDict, total=False):
    """What a page says after a form: a message, a problem, or a secret shown once."""

    message: str | None
    problem: str | None
    secret: str | None
    status_code: int


def _render_with_notice(
    request: Request, template: str, context: dict[str, Any], notice: Notice
) -> Response:
    shown = {key: notice.get(key) for key in ("message", "problem", "secret")}
    return render(request, template, context | shown, notice.get("status_code", 200))


async def _account_page(request: Request, **notice: Unpack[Notice]) -> Response:
    actor = _actor(request)
    mine = _has_account(request)
    tokens = await accounts.list_tokens(database_of(request), actor.name) if mine else []
    context: dict[str, Any] = {"has_account": mine, "tokens": tokens}
    return _render_with_notice(request, "account.html", context, notice)


async def _account_refused(request: Request, refused: AccountRefused) -> Response:
    return await _account_page(request, problem=str(refused), status_code=400)


@router.get("/account")
async def account_page(request: Request) -> Response:
    return await _account_page(request)


@router.post("/account/password")
async def change_password(
    request: Request,
    current: str = Form(""),
    password: str = Form(""),
    again: str = Form(""),
    csrf: str = Form("", alias=CSRF_FIELD),
) -> Response:
    if (refusal := _stale_form(request, csrf)) is not None:
        return refusal
    actor = _actor(request)
    if not _has_account(request):
        return await _account_page(request, problem="you have no account", status_code=400)
    if password != again:
        return await _account_page(
            request, problem="the new passwords differ; type it twice", status_code=400
        )
    sessions = database_of(request)
    # The current password is checked as a login would (throttled, recorded), so this form
    # is no way around the login throttle.
    checked = await log_in(sessions, actor.name, current, client_address(request), None)
    if checked.session_id is None:
        problem = checked.message or "wrong password"
        if not checked.throttled:
            problem = "the current password is wrong"
        return await _account_page(request, problem=problem, status_code=400)
    keep = secret_digest(request.state.session) if request.state.logged_in else None
    try:
        await accounts.set_password(sessions, actor, actor.name, password, keep_session_hash=keep)
    except AccountRefused as refused:
        return await _account_refused(request, refused)
    return await _account_page(request, message="Password changed; your other sessions ended.")


@router.post("/account/tokens")
async def create_own_token(
    request: Request, label: str = Form(""), csrf: str = Form("", alias=CSRF_FIELD)
) -> Response:
    if (refusal := _stale_form(request, csrf)) is not None:
        return refusal
    actor = _actor(request)
    try:
        created = await accounts.create_token(database_of(request), actor, actor.name, label)
    except AccountRefused as refused:
        return await _account_refused(request, refused)
    return await _account_page(
        request, message=f"Token {created.view.label!r} created.", secret=created.token
    )


@router.post("/account/tokens/revoke")
async def revoke_own_token(
    request: Request, token_id: int = Form(...), csrf: str = Form("", alias=CSRF_FIELD)
) -> Response:
    if (refusal := _stale_form(request, csrf)) is not None:
        return refusal
    try:
        await accounts.revoke_token(database_of(request), _actor(request), token_id)
    except AccountRefused as refused:
        return await _account_refused(request, refused)
    return await _account_page(request, message=f"Token {token_id} revoked.")


async def _admin_page(request: Request, **notice: Unpack[Notice]) -> Response:
    sessions = database_of(request)
    context: dict[str, Any] = {
        "accounts": await accounts.list_accounts(sessions),
        "tokens": await accounts.list_tokens(sessions),
        "logins": await recent_logins(sessions),
        "roles": ROLES,
    }
    return _render_with_notice(request, "admin_accounts.html", context, notice)


@router.get("/admin/accounts")
async def admin_page(request: Request) -> Response:
    return await _admin_page(request)


async def _admin_refused(request: Request, refused: AccountRefused) -> Response:
    status = 403 if isinstance(refused, NotAllowed) else 400
    return await _admin_page(request, problem=str(refused), status_code=status)


@router.post("/admin/accounts")
async def add_account(
    request: Request,
    name: str = Form(""),
    role: str = Form("viewer"),
    password: str = Form(""),
    csrf: str = Form("", alias=CSRF_FIELD),
) -> Response:
    """A blank password: a one-time password is generated and shown once, to pass on."""
    if (refusal := _stale_form(request, csrf)) is not None:
        return refusal
    generated = generate_password() if not password else None
    try:
        change = await accounts.add_account(
            database_of(request),
            _actor(request),
            name,
            accounts.role_of(role),
            password or generated or "",
            one_time=generated is not None,
        )
    except AccountRefused as refused:
        return await _admin_refused(request, refused)
    message = f"Account {change.account!r} added ({change.detail})."
    if generated:
        message += " Its one-time password is below: it must be changed at first login."
    return await _admin_page(request, message=message, secret=generated)


@router.post("/admin/accounts/role")
async def set_role(
    request: Request,
    name: str = Form(""),
    role: str = Form(""),
    csrf: str = Form("", alias=CSRF_FIELD),
) -> Response:
    if (refusal := _stale_form(request, csrf)) is not None:
        return refusal
    try:
        change = await accounts.set_role(
            database_of(request), _actor(request), name, accounts.role_of(role)
        )
    except AccountRefused as refused:
        return await _admin_refused(request, refused)
    return await _admin_page(request, message=f"{change.account}: {change.detail}.")


@router.post("/admin/accounts/disable")
async def disable(
    request: Request, name: str = Form(""), csrf: str = Form("", alias=CSRF_FIELD)
) -> Response:
    return await _set_disabled(request, name, csrf, disabled=True)


@router.post("/admin/accounts/enable")
async def enable(
    request: Request, name: str = Form(""), csrf: str = Form("", alias=CSRF_FIELD)
) -> Response:
    return await _set_disabled(request, name, csrf, disabled=False)


async def _set_disabled(request: Request, name: str, csrf: str, *, disabled: bool) -> Response:
    if (refusal := _stale_form(request, csrf)) is not None:
        return refusal
    try:
        change = await accounts.set_disabled(database_of(request), _actor(request), name, disabled)
    except AccountRefused as refused:
        return await _admin_refused(request, refused)
    return await _admin_page(request, message=f"{change.account}: {change.detail}.")


@router.post("/admin/accounts/password")
async def reset_password(
    request: Request, name: str = Form(""), csrf: str = Form("", alias=CSRF_FIELD)
) -> Response:
    """A forgotten password: a new one-time password, shown once; the account's sessions
    end."""
    if (refusal := _stale_form(request, csrf)) is not None:
        return refusal
    generated = generate_password()
    try:
        change = await accounts.set_password(
            database_of(request), _actor(request), name, generated, one_time=True
        )
    except AccountRefused as refused:
        return await _admin_refused(request, refused)
    message = f"{change.account}: one-time password below; it must be changed at first login."
    return await _admin_page(request, message=message, secret=generated)


@router.post("/admin/tokens/revoke")
async def revoke_token(
    request: Request, token_id: int = Form(...), csrf: str = Form("", alias=CSRF_FIELD)
) -> Response:
    if (refusal := _stale_form(request, csrf)) is not None:
        return refusal
    try:
        change = await accounts.revoke_token(database_of(request), _actor(request), token_id)
    except AccountRefused as refused:
        return await _admin_refused(request, refused)
    return await _admin_page(request, message=f"{change.account}: {change.detail} revoked.")
