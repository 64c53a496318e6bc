"""Logging in, and who a request is: password logins (throttled and recorded), browser
sessions kept server-side, per-person API tokens, and CONSOLE_TOKEN as the bootstrap admin.

Every check reads PostgreSQL, so it holds across console processes: a session or token
stops working at the next request after its account is disabled, and the login throttle
counts the failures every process recorded."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, exists, func, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.expression import Exists

from dsp_integration.client.actors import Role
from dsp_integration.client.passwords import (
    hash_password_async,
    needs_rehash,
    new_secret,
    password_matches_async,
    secret_digest,
)
from dsp_integration.database.accounts import Account, ApiToken, ConsoleSession, LoginEvent
from dsp_integration.database.engine import SessionFactory, autocommit_session

# The throttle: a slow hash alone still lets a botnet try a few passwords a second. Five
# failures in a quarter of an hour lock the name (a person who mistypes has three more
# tries than they need; a guesser gets 480 a day), twenty lock the address (one address
# trying many names). Fixed, not settings: weakening them should take a code review.
ACCOUNT_FAILURE_LIMIT = 5
ADDRESS_FAILURE_LIMIT = 20
FAILURE_WINDOW = timedelta(minutes=15)
# A session's last use is written at most this often (not at every live-page refresh).
TOUCH_EVERY = timedelta(seconds=60)
# Who CONSOLE_TOKEN acts as, in login records and the action log; no account may take it.
BOOTSTRAP_NAME = "CONSOLE_TOKEN"
WRONG_CREDENTIALS = "Wrong account name or password."
BOOTSTRAP_RETIRED = (
    "CONSOLE_TOKEN opens the console only while no admin account exists; "
    "log in with your own account."
)


@dataclass(frozen=True)
class SessionPolicy:
    """`idle`: a session unused this long ends; `lifetime`: every session ends this long
    after its login, used or not."""

    idle: timedelta
    lifetime: timedelta


@dataclass(frozen=True)
class Identity:
    """Who a session or a token is. `account_id` None: the CONSOLE_TOKEN bootstrap admin."""

    name: str
    role: Role
    account_id: int | None
    password_change_required: bool = False


@dataclass(frozen=True)
class LoginOutcome:
    """`session_id` (for the cookie, never stored) on success ("" when only the password was
    checked); else None, and `message` says why."""

    identity: Identity | None
    session_id: str | None = None
    message: str | None = None
    throttled: bool = False


def _retry_message(retry_at: datetime, what: str) -> str:
    minutes = max(1, round((retry_at - datetime.now(UTC)).total_seconds() / 60 + 0.49))
    return (
        f"Too many failed logins {what}. Try again after {retry_at:%H:%M} UTC "
        f"(in {minutes} minute{'s' if minutes != 1 else ''})."
    )


async def _nth_failure(session: AsyncSession, *conditions: object, limit: int) -> datetime | None:
    """The time of the `limit`-th latest counted failure, when there are that many."""
    query = (
        select(LoginEvent.at)
        .where(
            LoginEvent.outcome == "failed",
            LoginEvent.at > func.now() - FAILURE_WINDOW,
            *conditions,  # type: ignore[arg-type]
        )
        .order_by(LoginEvent.at.desc())
        .offset(limit - 1)
        .limit(1)
    )
    return await session.scalar(query)


async def throttled(session: AsyncSession, name: str, address: str | None) -> str | None:
    """The refusal message while `name` or `address` has too many recent failures. A
    name's failures count from its last successful login, an address's do not."""
    last_ok = (
        select(func.max(LoginEvent.at))
        .where(LoginEvent.name == name, LoginEvent.outcome == "ok")
        .scalar_subquery()
    )
    by_name = await _nth_failure(
        session,
        LoginEvent.name == name,
        LoginEvent.at > func.coalesce(last_ok, literal(datetime.min.replace(tzinfo=UTC))),
        limit=ACCOUNT_FAILURE_LIMIT,
    )
    if by_name is not None:
        return _retry_message(by_name + FAILURE_WINDOW, "for this account")
    if address is not None:
        by_address = await _nth_failure(
            session, LoginEvent.address == address, limit=ADDRESS_FAILURE_LIMIT
        )
        if by_address is not None:
            return _retry_message(by_address + FAILURE_WINDOW, "from your address")
    return None


def _record(
    session: AsyncSession,
    name: str,
    address: str | None,
    outcome: str,
    account_id: int | None = None,
    detail: str | None = None,
) -> None:
    session.add(
        LoginEvent(
            name=name, address=address, outcome=outcome, account_id=account_id, detail=detail
        )
    )


async def _lock_name(session: AsyncSession, name: str) -> None:
    """One login attempt per name at a time across processes: the throttle's count and the
    attempt's record cannot race."""
    await session.execute(select(func.pg_advisory_xact_lock(func.hashtext("login:" + name))))


async def _open_session(
    session: AsyncSession, account_id: int | None, address: str | None, policy: SessionPolicy
) -> str:
    await session.execute(
        delete(ConsoleSession).where(
            (ConsoleSession.expires_at < func.now())
            | (ConsoleSession.last_seen_at < func.now() - policy.idle)
        )
    )
    session_id = new_secret()
    session.add(
        ConsoleSession(
            id_hash=secret_digest(session_id),
            account_id=account_id,
            address=address,
            expires_at=func.now() + policy.lifetime,
        )
    )
    return session_id


def _stored_name(name: str) -> str:
    return name[:64]


async def log_in(
    sessions: SessionFactory,
    name: str,
    password: str,
    address: str | None,
    policy: SessionPolicy | None,
) -> LoginOutcome:
    """A password login: refused while throttled (even with the right password), else the
    password is checked; every attempt is recorded. `policy` None: only check the password
    (a person confirming theirs before changing it), opening no session."""
    name = _stored_name(name)
    async with sessions.begin() as session:
        await _lock_name(session, name)
        if (message := await throttled(session, name, address)) is not None:
            _record(session, name, address, "throttled")
            return LoginOutcome(None, message=message, throttled=True)
        account = await session.scalar(select(Account).where(Account.name == name))
        stored = account.password_hash if account is not None else None
        if account is None or not await password_matches_async(stored, password):
            _record(session, name, address, "failed", account.id if account else None)
            return LoginOutcome(None, message=WRONG_CREDENTIALS)
        if account.disabled:
            _record(session, name, address, "disabled", account.id)
            return LoginOutcome(None, message="This account is disabled: ask an admin.")
        if needs_rehash(account.password_hash):
            account.password_hash = await hash_password_async(password)
        session_id = (
            "" if policy is None else await _open_session(session, account.id, address, policy)
        )
        _record(session, name, address, "ok" if policy else "confirmed", account.id)
        identity = Identity(
            account.name, Role(account.role), account.id, account.password_change_required
        )
    return LoginOutcome(identity, session_id=session_id)


async def log_in_with_console_token(
    sessions: SessionFactory, token_matches: bool, address: str | None, policy: SessionPolicy
) -> LoginOutcome:
    """A login with CONSOLE_TOKEN: throttled and recorded as the name `CONSOLE_TOKEN`, and
    accepted only while no enabled admin account exists."""
    async with sessions.begin() as session:
        await _lock_name(session, BOOTSTRAP_NAME)
        if (message := await throttled(session, BOOTSTRAP_NAME, address)) is not None:
            _record(session, BOOTSTRAP_NAME, address, "throttled")
            return LoginOutcome(None, message=message, throttled=True)
        if not token_matches:
            _record(session, BOOTSTRAP_NAME, address, "failed")
            return LoginOutcome(None, message="Wrong token.")
        if await session.scalar(select(_enabled_admin_exists())):
            _record(session, BOOTSTRAP_NAME, address, "retired-token")
            return LoginOutcome(None, message=BOOTSTRAP_RETIRED)
        session_id = await _open_session(session, None, address, policy)
        _record(session, BOOTSTRAP_NAME, address, "ok")
    return LoginOutcome(bootstrap_identity(), session_id=session_id)


def bootstrap_identity() -> Identity:
    return Identity(BOOTSTRAP_NAME, Role.ADMIN, None)


def _enabled_admin_exists() -> Exists:
    return exists().where(Account.role == Role.ADMIN.value, Account.disabled.is_(False))


async def enabled_admin_exists(sessions: SessionFactory) -> bool:
    async with autocommit_session(sessions) as session:
        return bool(await session.scalar(select(_enabled_admin_exists())))


async def accounts_exist(sessions: SessionFactory) -> bool:
    """Any account, even disabled: from the first one on, the console asks everyone who
    they are."""
    async with autocommit_session(sessions) as session:
        return bool(await session.scalar(select(exists().where(Account.id.isnot(None)))))


async def session_identity(
    sessions: SessionFactory, session_id: str, policy: SessionPolicy, *, bootstrap: bool
) -> Identity | None:
    """Who the session is, or None when it ended (logged out, idle or past its lifetime,
    its account disabled; a bootstrap session once an enabled admin exists or when
    `bootstrap` is False, i.e. CONSOLE_TOKEN is no longer set)."""
    digest = secret_digest(session_id)
    query = (
        select(
            ConsoleSession.account_id,
            ConsoleSession.last_seen_at,
            Account.name,
            Account.role,
            Account.disabled,
            Account.password_change_required,
            _enabled_admin_exists(),
        )
        .outerjoin(Account, Account.id == ConsoleSession.account_id)
        .where(
            ConsoleSession.id_hash == digest,
            ConsoleSession.expires_at > func.now(),
            ConsoleSession.last_seen_at > func.now() - policy.idle,
        )
    )
    async with autocommit_session(sessions) as session:
        row = (await session.execute(query)).first()
        if row is None:
            return None
        account_id, last_seen, name, role, disabled, change_password, admin_exists = row
        if account_id is None:
            if not bootstrap or admin_exists:
                return None
            identity = bootstrap_identity()
        elif disabled:
            return None
        else:
            identity = Identity(name, Role(role), account_id, change_password)
        if datetime.now(UTC) - last_seen > TOUCH_EVERY:
            await session.execute(
                update(ConsoleSession)
                .where(ConsoleSession.id_hash == digest)
                .values(last_seen_at=func.now())
            )
    return identity


async def end_session(sessions: SessionFactory, session_id: str) -> None:
    async with autocommit_session(sessions) as session:
        await session.execute(
            delete(ConsoleSession).where(ConsoleSession.id_hash == secret_digest(session_id))
        )


async def token_identity(sessions: SessionFactory, token: str) -> Identity | None:
    """Who an API token is, or None (unknown, revoked, or its account disabled)."""
    query = (
        select(ApiToken.id, ApiToken.last_used_at, Account.id, Account.name, Account.role)
        .join(Account, Account.id == ApiToken.account_id)
        .where(
            ApiToken.token_hash == secret_digest(token),
            ApiToken.revoked_at.is_(None),
            Account.disabled.is_(False),
        )
    )
    async with autocommit_session(sessions) as session:
        row = (await session.execute(query)).first()
        if row is None:
            return None
        token_id, last_used, account_id, name, role = row
        if last_used is None or datetime.now(UTC) - last_used > TOUCH_EVERY:
            await session.execute(
                update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=func.now())
            )
    return Identity(name, Role(role), account_id)


@dataclass(frozen=True)
class LoginRecord:
    at: datetime
    name: str
    address: str | None
    outcome: str


async def recent_logins(sessions: SessionFactory, limit: int = 50) -> list[LoginRecord]:
    """The latest login attempts, newest first (the admin page shows them)."""
    async with autocommit_session(sessions) as session:
        rows = (
            await session.execute(
                select(LoginEvent.at, LoginEvent.name, LoginEvent.address, LoginEvent.outcome)
                .order_by(LoginEvent.id.desc())
                .limit(limit)
            )
        ).all()
    return [LoginRecord(*row) for row in rows]
