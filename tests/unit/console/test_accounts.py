"""Accounts, sessions, API tokens and the login throttle against real PostgreSQL: hashes
instead of secrets, sessions that end (idle, lifetime, logout, a disabled account), the
throttle per account and per address, and the role each actor may act with."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select, text, update

from dsp_integration.client import accounts
from dsp_integration.client.accounts import AccountChange, AccountRefused, NotAllowed
from dsp_integration.client.actors import Actor, Role, cli_actor
from dsp_integration.client.logins import (
    ACCOUNT_FAILURE_LIMIT,
    ADDRESS_FAILURE_LIMIT,
    BOOTSTRAP_NAME,
    SessionPolicy,
    accounts_exist,
    end_session,
    log_in,
    log_in_with_console_token,
    session_identity,
    token_identity,
)
from dsp_integration.client.passwords import (
    hash_password,
    needs_rehash,
    password_matches,
    secret_digest,
)
from dsp_integration.database.accounts import ConsoleSession, LoginEvent
from dsp_integration.database.engine import SessionFactory

POLICY = SessionPolicy(idle=timedelta(minutes=60), lifetime=timedelta(hours=12))
PASSWORD = "correct horse battery"
ADMIN = Actor("root", Role.ADMIN, "console", address="10.0.0.1")


async def _add(sessions: SessionFactory, name: str, role: Role = Role.OPERATOR) -> AccountChange:
    return await accounts.add_account(sessions, cli_actor(), name, role, PASSWORD)


async def _login(sessions: SessionFactory, name: str, password: str = PASSWORD) -> str:
    outcome = await log_in(sessions, name, password, "10.0.0.9", POLICY)
    assert outcome.session_id, outcome.message
    return outcome.session_id


async def _outcomes(sessions: SessionFactory) -> list[tuple[str, str | None, str]]:
    async with sessions() as session:
        rows = await session.execute(
            select(LoginEvent.name, LoginEvent.address, LoginEvent.outcome).order_by(LoginEvent.id)
        )
        return [tuple(row) for row in rows.all()]  # type: ignore[misc]


def test_passwords_are_stored_as_salted_argon2id_hashes() -> None:
    first, second = hash_password(PASSWORD), hash_password(PASSWORD)
    assert first.startswith("$argon2id$") and PASSWORD not in first
    assert first != second  # salted
    assert password_matches(first, PASSWORD) and password_matches(second, PASSWORD)
    assert not password_matches(first, PASSWORD + "!")
    assert not password_matches(None, PASSWORD)  # no account: same work, still False
    assert not password_matches("not a hash", PASSWORD)
    assert not needs_rehash(first)
    # A session id or a token is found by its SHA-256: the same one always, never itself.
    assert secret_digest("abc") == secret_digest("abc") != "abc"
    assert len(secret_digest("abc")) == 64


async def test_account_changes_say_what_changed(clean_database: SessionFactory) -> None:
    sessions = clean_database
    assert not await accounts_exist(sessions)
    added = await accounts.add_account(sessions, ADMIN, "alice", Role.VIEWER, PASSWORD)
    assert added == AccountChange(ADMIN, "add", "alice", "role viewer")
    assert await accounts_exist(sessions)
    changed = await accounts.set_role(sessions, ADMIN, "alice", Role.OPERATOR)
    assert (changed.action, changed.detail) == ("set-role", "role viewer -> operator")
    disabled = await accounts.set_disabled(sessions, ADMIN, "alice", True)
    assert (disabled.action, disabled.detail) == ("disable", "enabled -> disabled")
    [alice] = await accounts.list_accounts(sessions)
    assert (alice.name, alice.role, alice.disabled) == ("alice", Role.OPERATOR, True)
    assert alice.updated_at >= alice.created_at
    enabled = await accounts.set_disabled(sessions, ADMIN, "alice", False)
    assert enabled.action == "enable"
    with pytest.raises(AccountRefused, match="already exists"):
        await _add(sessions, "alice")
    with pytest.raises(AccountRefused, match="at least 12"):
        await accounts.add_account(sessions, ADMIN, "bob", Role.VIEWER, "short")
    for bad, why in (("", "required"), (" bob", "space"), ("a\x00b", "control"),
                     ("x" * 65, "at most"), ("CONSOLE_TOKEN", "reserved"),
                     ("Anonymous", "reserved")):  # fmt: skip
        with pytest.raises(AccountRefused, match=why):
            await _add(sessions, bad)
    with pytest.raises(AccountRefused, match="unknown role"):
        accounts.role_of("superuser")
    with pytest.raises(accounts.UnknownAccount):
        await accounts.set_role(sessions, ADMIN, "nobody", Role.VIEWER)


async def test_only_admins_manage_accounts(clean_database: SessionFactory) -> None:
    sessions = clean_database
    await _add(sessions, "olga", Role.OPERATOR)
    operator = Actor("olga", Role.OPERATOR, "console")
    with pytest.raises(NotAllowed, match="only an admin"):
        await accounts.add_account(sessions, operator, "eve", Role.ADMIN, PASSWORD)
    with pytest.raises(NotAllowed):
        await accounts.set_role(sessions, operator, "olga", Role.ADMIN)
    with pytest.raises(NotAllowed):
        await accounts.set_disabled(sessions, operator, "olga", True)
    # Their own password and tokens are theirs to manage; another's are not.
    await accounts.set_password(sessions, operator, "olga", PASSWORD + "2")
    await _add(sessions, "vic", Role.VIEWER)
    with pytest.raises(NotAllowed):
        await accounts.set_password(sessions, operator, "vic", PASSWORD + "3")
    created = await accounts.create_token(sessions, operator, "olga", "mine")
    with pytest.raises(NotAllowed):
        await accounts.create_token(sessions, operator, "vic")
    viewer = Actor("vic", Role.VIEWER, "console")
    with pytest.raises(NotAllowed):
        await accounts.revoke_token(sessions, viewer, created.view.id)


async def test_the_last_enabled_admin_stays(clean_database: SessionFactory) -> None:
    sessions = clean_database
    await _add(sessions, "root", Role.ADMIN)
    with pytest.raises(AccountRefused, match="last enabled admin"):
        await accounts.set_disabled(sessions, ADMIN, "root", True)
    with pytest.raises(AccountRefused, match="last enabled admin"):
        await accounts.set_role(sessions, ADMIN, "root", Role.OPERATOR)
    await _add(sessions, "second", Role.ADMIN)
    await accounts.set_role(sessions, ADMIN, "root", Role.OPERATOR)
    with pytest.raises(AccountRefused, match="last enabled admin"):
        await accounts.set_disabled(sessions, ADMIN, "second", True)


async def test_sessions_end_idle_after_their_lifetime_on_logout_and_when_disabled(
    clean_database: SessionFactory,
) -> None:
    sessions = clean_database
    await _add(sessions, "olga", Role.OPERATOR)
    await _add(sessions, "root", Role.ADMIN)
    session_id = await _login(sessions, "olga")
    identity = await session_identity(sessions, session_id, POLICY, bootstrap=False)
    assert identity is not None and (identity.name, identity.role) == ("olga", Role.OPERATOR)
    async with sessions() as session:
        stored = await session.scalar(select(ConsoleSession.id_hash))
    assert stored == secret_digest(session_id) and stored != session_id
    assert await session_identity(sessions, session_id + "x", POLICY, bootstrap=False) is None

    # A new role is seen at the next request.
    await accounts.set_role(sessions, ADMIN, "olga", Role.VIEWER)
    identity = await session_identity(sessions, session_id, POLICY, bootstrap=False)
    assert identity is not None and identity.role is Role.VIEWER

    async def shift(**values: object) -> None:
        async with sessions.begin() as session:
            await session.execute(update(ConsoleSession).values(**values))

    # Idle longer than the policy allows: ended.
    await shift(last_seen_at=func.now() - timedelta(minutes=61))
    assert await session_identity(sessions, session_id, POLICY, bootstrap=False) is None
    # In use, but past its lifetime: ended.
    await shift(last_seen_at=func.now(), expires_at=func.now() - timedelta(seconds=1))
    assert await session_identity(sessions, session_id, POLICY, bootstrap=False) is None
    # Logout ends it.
    session_id = await _login(sessions, "olga")
    await end_session(sessions, session_id)
    assert await session_identity(sessions, session_id, POLICY, bootstrap=False) is None
    # Disabling the account ends it at once.
    session_id = await _login(sessions, "olga")
    await accounts.set_disabled(sessions, ADMIN, "olga", True)
    assert await session_identity(sessions, session_id, POLICY, bootstrap=False) is None
    refused = await log_in(sessions, "olga", PASSWORD, "10.0.0.9", POLICY)
    assert refused.session_id is None and refused.message and "disabled" in refused.message


async def test_a_one_time_password_must_be_replaced_and_a_change_ends_other_sessions(
    clean_database: SessionFactory,
) -> None:
    sessions = clean_database
    await accounts.add_account(sessions, ADMIN, "new", Role.VIEWER, PASSWORD, one_time=True)
    first = await _login(sessions, "new")
    second = await _login(sessions, "new")
    identity = await session_identity(sessions, first, POLICY, bootstrap=False)
    assert identity is not None and identity.password_change_required
    me = Actor("new", Role.VIEWER, "console")
    await accounts.set_password(
        sessions, me, "new", "a brand new password", keep_session_hash=secret_digest(first)
    )
    identity = await session_identity(sessions, first, POLICY, bootstrap=False)
    assert identity is not None and not identity.password_change_required
    assert await session_identity(sessions, second, POLICY, bootstrap=False) is None
    assert (await log_in(sessions, "new", PASSWORD, None, POLICY)).session_id is None
    await _login(sessions, "new", "a brand new password")


async def test_console_token_is_the_admin_only_until_an_admin_account_exists(
    clean_database: SessionFactory,
) -> None:
    sessions = clean_database
    wrong = await log_in_with_console_token(sessions, False, "10.0.0.7", POLICY)
    assert wrong.session_id is None and wrong.message == "Wrong token."
    opened = await log_in_with_console_token(sessions, True, "10.0.0.7", POLICY)
    assert opened.session_id and opened.identity is not None
    assert (opened.identity.name, opened.identity.role) == (BOOTSTRAP_NAME, Role.ADMIN)
    bootstrap = await session_identity(sessions, opened.session_id, POLICY, bootstrap=True)
    assert bootstrap is not None and bootstrap.account_id is None
    # CONSOLE_TOKEN no longer set: its sessions end.
    assert await session_identity(sessions, opened.session_id, POLICY, bootstrap=False) is None
    await _add(sessions, "olga", Role.OPERATOR)  # not an admin: the token still works
    assert await session_identity(sessions, opened.session_id, POLICY, bootstrap=True)
    await _add(sessions, "root", Role.ADMIN)
    assert await session_identity(sessions, opened.session_id, POLICY, bootstrap=True) is None
    retired = await log_in_with_console_token(sessions, True, "10.0.0.7", POLICY)
    assert retired.session_id is None and retired.message
    assert "only while no admin account exists" in retired.message
    outcomes = await _outcomes(sessions)
    assert [o for _, _, o in outcomes] == ["failed", "ok", "retired-token"]
    assert {(name, address) for name, address, _ in outcomes} == {(BOOTSTRAP_NAME, "10.0.0.7")}


async def test_logins_are_throttled_per_account_and_recorded(
    clean_database: SessionFactory,
) -> None:
    sessions = clean_database
    await _add(sessions, "olga")
    for _ in range(ACCOUNT_FAILURE_LIMIT):
        failed = await log_in(sessions, "olga", "guess", "10.0.0.66", POLICY)
        assert failed.message == "Wrong account name or password." and not failed.throttled
    # The right password is refused too while locked, from any address.
    for address in ("10.0.0.66", "10.0.0.9"):
        locked = await log_in(sessions, "olga", PASSWORD, address, POLICY)
        assert locked.session_id is None and locked.throttled
        assert locked.message and locked.message.startswith(
            "Too many failed logins for this account. Try again after "
        )
        assert "(in 15 minutes)" in locked.message
    # Other accounts are not locked by it.
    await _add(sessions, "root", Role.ADMIN)
    await _login(sessions, "root")
    # The lock lifts once the failures are older than the window.
    async with sessions.begin() as session:
        await session.execute(update(LoginEvent).values(at=LoginEvent.at - timedelta(minutes=16)))
    await _login(sessions, "olga")
    outcomes = await _outcomes(sessions)
    assert outcomes[: ACCOUNT_FAILURE_LIMIT + 2] == (
        [("olga", "10.0.0.66", "failed")] * ACCOUNT_FAILURE_LIMIT
        + [("olga", "10.0.0.66", "throttled"), ("olga", "10.0.0.9", "throttled")]
    )
    assert outcomes[-1] == ("olga", "10.0.0.9", "ok")


async def test_failures_from_one_address_lock_that_address(
    clean_database: SessionFactory,
) -> None:
    sessions = clean_database
    await _add(sessions, "olga")
    for n in range(ADDRESS_FAILURE_LIMIT):  # a different name each time: no name is locked
        await log_in(sessions, f"guess-{n}", "guess", "10.6.6.6", POLICY)
    locked = await log_in(sessions, "olga", PASSWORD, "10.6.6.6", POLICY)
    assert locked.throttled and locked.message
    assert "from your address" in locked.message
    await _login(sessions, "olga")  # from elsewhere


async def test_api_tokens_are_stored_hashed_and_stop_when_revoked_or_disabled(
    clean_database: SessionFactory,
) -> None:
    sessions = clean_database
    await _add(sessions, "olga")
    await _add(sessions, "root", Role.ADMIN)
    created = await accounts.create_token(sessions, ADMIN, "olga", "reporting")
    assert created.token.startswith("dsp_") and len(created.token) > 40
    assert created.change == AccountChange(
        ADMIN, "token-create", "olga", f"token {created.view.id} (reporting)"
    )
    identity = await token_identity(sessions, created.token)
    assert identity is not None and (identity.name, identity.role) == ("olga", Role.OPERATOR)
    [listed] = await accounts.list_tokens(sessions, "olga")
    assert listed.last_used_at is not None and created.token.startswith(listed.prefix)
    async with sessions() as session:
        stored = (await session.execute(text("SELECT * FROM console_api_token"))).all()
    assert created.token not in repr(stored) and secret_digest(created.token) in repr(stored)
    assert await token_identity(sessions, created.token + "x") is None
    await accounts.set_disabled(sessions, ADMIN, "olga", True)
    assert await token_identity(sessions, created.token) is None
    await accounts.set_disabled(sessions, ADMIN, "olga", False)
    assert await token_identity(sessions, created.token) is not None
    revoked = await accounts.revoke_token(sessions, ADMIN, created.view.id)
    assert revoked.action == "token-revoke"
    assert await token_identity(sessions, created.token) is None
    [listed] = await accounts.list_tokens(sessions)
    assert listed.revoked_at is not None


async def test_no_secret_reaches_the_database(clean_database: SessionFactory) -> None:
    sessions = clean_database
    await _add(sessions, "olga")
    session_id = await _login(sessions, "olga")
    await log_in(sessions, "olga", "a wrong password typed", "10.0.0.9", POLICY)
    token = (await accounts.create_token(sessions, cli_actor(), "olga")).token
    async with sessions() as session:
        dump = ""
        for table in ("console_account", "console_session", "console_api_token",
                      "console_login_event"):  # fmt: skip
            rows = await session.execute(text(f"SELECT row_to_json(t)::text FROM {table} t"))
            dump += "\n".join(rows.scalars())
    assert "olga" in dump  # the dump is real
    for secret in (PASSWORD, session_id, token, "a wrong password typed"):
        assert secret not in dump
