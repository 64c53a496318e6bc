"""Account changes: add, set a role, disable and enable, set a password, create and revoke
API tokens. The CLI (`starter.py users ...`), the admin page and a person's own account
page all change accounts through these functions only. Each takes the `Actor` asking and
returns an `AccountChange` saying what changed; `record_account_change` is where the action
log takes it, in the same transaction as the change."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from dsp_integration.client.actors import Actor, Role
from dsp_integration.client.errors import ServiceError
from dsp_integration.client.passwords import (
    WeakPassword,
    check_password_rules,
    hash_password_async,
    new_api_token,
    secret_digest,
)
from dsp_integration.database import action_log
from dsp_integration.database.accounts import Account, ApiToken, ConsoleSession, LoginEvent
from dsp_integration.database.engine import SessionFactory

MAX_NAME_LENGTH = 64
MAX_LABEL_LENGTH = 64
TOKEN_PREFIX_SHOWN = 12
# Who the bootstrap token and the open loopback console act as (client/logins.py,
# console/access.py): no account may take these names.
BOOTSTRAP_AND_ANONYMOUS = frozenset({"CONSOLE_TOKEN", "anonymous"})
RESERVED_NAMES = frozenset(name.lower() for name in BOOTSTRAP_AND_ANONYMOUS)


class AccountRefused(ServiceError):
    """The change cannot be made; the message says why."""


class NotAllowed(AccountRefused):
    """The actor's role does not allow the change."""


class UnknownAccount(AccountRefused):
    def __init__(self, name: str) -> None:
        super().__init__(f"unknown account {name!r}")
        self.name = name


@dataclass(frozen=True)
class AccountChange:
    """What an account change did, for the action log. `action`: `add`, `set-role`,
    `disable`, `enable`, `set-password`, `token-create` or `token-revoke`; `detail` a
    line such as `role viewer -> operator` (never a secret)."""

    actor: Actor
    action: str
    account: str
    detail: str


@dataclass(frozen=True)
class AccountView:
    name: str
    role: Role
    disabled: bool
    password_change_required: bool
    created_at: datetime
    updated_at: datetime
    last_login_at: datetime | None


@dataclass(frozen=True)
class TokenView:
    id: int
    account: str
    label: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True)
class CreatedToken:
    """The token itself is shown once, here, and never again."""

    change: AccountChange
    token: str
    view: TokenView


async def record_account_change(session: AsyncSession, change: AccountChange) -> None:
    """The change's row in the action log (`account.<change>`), inside the transaction of
    the change, so the two stand or fall together."""
    await action_log.record_action(
        session,
        change.actor,
        f"account.{change.action}",
        account=change.account,
        detail={"change": change.detail},
    )


def account_name(text: str) -> str:
    """A valid account name: 1 to 64 printable characters without spaces at either end
    (any script: names are shown escaped everywhere)."""
    name = unicodedata.normalize("NFC", text)
    if not name.strip():
        raise AccountRefused("an account name is required")
    if name != name.strip():
        raise AccountRefused("an account name must not begin or end with a space")
    if len(name) > MAX_NAME_LENGTH:
        raise AccountRefused(f"an account name has at most {MAX_NAME_LENGTH} characters")
    if any(unicodedata.category(c).startswith("C") for c in name):
        raise AccountRefused("an account name must not hold control characters")
    if name.lower() in RESERVED_NAMES:
        raise AccountRefused(f"{name!r} is reserved: choose another account name")
    return name


def role_of(text: str) -> Role:
    try:
        return Role(text.strip().lower())
    except ValueError:
        raise AccountRefused(f"unknown role {text!r}: use viewer, operator or admin") from None


def _require_admin(actor: Actor, what: str) -> None:
    if not actor.role.may(Role.ADMIN):
        raise NotAllowed(f"only an admin may {what}; {actor.name} is {actor.role.value}")


def _require_self_or_admin(actor: Actor, name: str, what: str) -> None:
    if actor.name != name or actor.via == "cli":
        _require_admin(actor, what)


def _password(password: str) -> str:
    try:
        check_password_rules(password)
    except WeakPassword as weak:
        raise AccountRefused(str(weak)) from None
    return password


async def _account(session: AsyncSession, name: str, *, lock: bool = False) -> Account:
    query = select(Account).where(Account.name == name)
    found = await session.scalar(query.with_for_update() if lock else query)
    if found is None:
        raise UnknownAccount(name)
    return found


async def _keep_an_admin(session: AsyncSession, account: Account, what: str) -> None:
    """Refuse to leave no enabled admin: nobody could manage accounts from the console."""
    admins = (
        await session.scalars(
            select(Account.id)
            .where(Account.role == Role.ADMIN.value, Account.disabled.is_(False))
            .with_for_update()
        )
    ).all()
    if account.role == Role.ADMIN.value and not account.disabled and len(admins) <= 1:
        raise AccountRefused(
            f"{account.name} is the last enabled admin: make another admin before you {what}"
        )


async def add_account(
    sessions: SessionFactory,
    actor: Actor,
    name: str,
    role: Role,
    password: str,
    *,
    one_time: bool = False,
) -> AccountChange:
    """A new enabled account. `one_time`: the password was generated for the person, who
    must choose their own at first login."""
    _require_admin(actor, "add accounts")
    name = account_name(name)
    password_hash = await hash_password_async(_password(password))
    async with sessions.begin() as session:
        if await session.scalar(select(Account.id).where(Account.name == name)) is not None:
            raise AccountRefused(f"an account named {name!r} already exists")
        session.add(
            Account(
                name=name,
                role=role.value,
                password_hash=password_hash,
                password_change_required=one_time,
            )
        )
        await session.flush()
        detail = f"role {role.value}" + (", one-time password" if one_time else "")
        change = AccountChange(actor, "add", name, detail)
        await record_account_change(session, change)
    return change


async def set_role(sessions: SessionFactory, actor: Actor, name: str, role: Role) -> AccountChange:
    """Takes effect at the account's next request (sessions and tokens read the role)."""
    _require_admin(actor, "change roles")
    async with sessions.begin() as session:
        account = await _account(session, name, lock=True)
        old = Role(account.role)
        if old != role and old == Role.ADMIN:
            await _keep_an_admin(session, account, "take the admin role away")
        account.role = role.value
        account.updated_at = func.now()
        change = AccountChange(actor, "set-role", name, f"role {old.value} -> {role.value}")
        await record_account_change(session, change)
    return change


async def set_disabled(
    sessions: SessionFactory, actor: Actor, name: str, disabled: bool
) -> AccountChange:
    """Disabling ends the account's sessions and stops its tokens at once (both are
    checked against the account at every request; the sessions are also deleted)."""
    verb = "disable" if disabled else "enable"
    _require_admin(actor, f"{verb} accounts")
    async with sessions.begin() as session:
        account = await _account(session, name, lock=True)
        if disabled:
            await _keep_an_admin(session, account, "disable it")
            await session.execute(
                delete(ConsoleSession).where(ConsoleSession.account_id == account.id)
            )
        was = "disabled" if account.disabled else "enabled"
        account.disabled = disabled
        account.updated_at = func.now()
        change = AccountChange(actor, verb, name, f"{was} -> {verb}d")
        await record_account_change(session, change)
    return change


async def set_password(
    sessions: SessionFactory,
    actor: Actor,
    name: str,
    password: str,
    *,
    one_time: bool = False,
    keep_session_hash: str | None = None,
) -> AccountChange:
    """A new password (a person's own, or an admin's reset with `one_time`). Ends every
    session of the account but `keep_session_hash` (the one changing it)."""
    _require_self_or_admin(actor, name, "set another account's password")
    password_hash = await hash_password_async(_password(password))
    async with sessions.begin() as session:
        account = await _account(session, name, lock=True)
        account.password_hash = password_hash
        account.password_change_required = one_time
        account.updated_at = func.now()
        ended = delete(ConsoleSession).where(ConsoleSession.account_id == account.id)
        if keep_session_hash is not None:
            ended = ended.where(ConsoleSession.id_hash != keep_session_hash)
        await session.execute(ended)
        detail = "one-time password set" if one_time else "password changed"
        change = AccountChange(actor, "set-password", name, detail)
        await record_account_change(session, change)
    return change


async def list_accounts(sessions: SessionFactory) -> list[AccountView]:
    last_login = (
        select(func.max(LoginEvent.at))
        .where(LoginEvent.account_id == Account.id, LoginEvent.outcome == "ok")
        .scalar_subquery()
    )
    async with sessions() as session:
        rows = (await session.execute(select(Account, last_login).order_by(Account.name))).all()
    return [
        AccountView(
            name=account.name,
            role=Role(account.role),
            disabled=account.disabled,
            password_change_required=account.password_change_required,
            created_at=account.created_at,
            updated_at=account.updated_at,
            last_login_at=last,
        )
        for account, last in rows
    ]


def _token_view(token: ApiToken, account: str) -> TokenView:
    return TokenView(
        id=token.id,
        account=account,
        label=token.label,
        prefix=token.prefix,
        created_at=token.created_at,
        last_used_at=token.last_used_at,
        revoked_at=token.revoked_at,
    )


async def create_token(
    sessions: SessionFactory, actor: Actor, name: str, label: str = ""
) -> CreatedToken:
    """A new API token for `name` (their own, or any account's for an admin)."""
    _require_self_or_admin(actor, name, "create tokens for another account")
    label = label.strip() or "api"
    if len(label) > MAX_LABEL_LENGTH:
        raise AccountRefused(f"a token label has at most {MAX_LABEL_LENGTH} characters")
    secret = new_api_token()
    async with sessions.begin() as session:
        account = await _account(session, name)
        if account.disabled:
            raise AccountRefused(f"{name} is disabled: enable it first")
        token = ApiToken(
            account_id=account.id,
            label=label,
            prefix=secret[:TOKEN_PREFIX_SHOWN],
            token_hash=secret_digest(secret),
        )
        session.add(token)
        await session.flush()
        await session.refresh(token)
        change = AccountChange(actor, "token-create", name, f"token {token.id} ({label})")
        await record_account_change(session, change)
    return CreatedToken(change, secret, _token_view(token, name))


async def list_tokens(sessions: SessionFactory, name: str | None = None) -> list[TokenView]:
    """Every token (of `name` only, when given), revoked ones too, newest first."""
    query = (
        select(ApiToken, Account.name)
        .join(Account, Account.id == ApiToken.account_id)
        .order_by(ApiToken.id.desc())
    )
    if name is not None:
        query = query.where(Account.name == name)
    async with sessions() as session:
        rows = (await session.execute(query)).all()
    return [_token_view(token, account) for token, account in rows]


async def revoke_token(sessions: SessionFactory, actor: Actor, token_id: int) -> AccountChange:
    async with sessions.begin() as session:
        row = (
            await session.execute(
                select(ApiToken, Account.name)
                .join(Account, Account.id == ApiToken.account_id)
                .where(ApiToken.id == token_id)
                .with_for_update(of=ApiToken)
            )
        ).first()
        if row is None:
            raise AccountRefused(f"unknown token {token_id}")
        token, owner = row
        _require_self_or_admin(actor, owner, "revoke another account's tokens")
        if token.revoked_at is None:
            await session.execute(
                update(ApiToken).where(ApiToken.id == token_id).values(revoked_at=func.now())
            )
        change = AccountChange(actor, "token-revoke", owner, f"token {token_id} ({token.label})")
        await record_account_change(session, change)
    return change
