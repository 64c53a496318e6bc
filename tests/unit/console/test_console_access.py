"""The console's gate without Temporal: tokens, cookies, CSRF, roles, the loopback rule,
escaping."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import httpx
import pytest
from pydantic import SecretStr
from starlette.testclient import TestClient

from dsp_integration.client import accounts
from dsp_integration.client.actors import Actor, Role, cli_actor
from dsp_integration.client.context import ServiceContext
from dsp_integration.client.logins import SessionPolicy
from dsp_integration.commands.starter import main
from dsp_integration.config import Settings
from dsp_integration.console import create_app
from dsp_integration.console.auth import Guard, role_needed, safe_next
from dsp_integration.console.server import ConsoleRefused, check_bind, console_url, is_loopback
from dsp_integration.database.engine import SessionFactory

TOKEN = "unit-console-token"
POLICY = SessionPolicy(idle=timedelta(minutes=60), lifetime=timedelta(hours=12))


def _settings(token: str | None = TOKEN) -> Settings:
    return Settings(_env_file=None, console_token=SecretStr(token) if token else None)  # type: ignore[call-arg]


def test_guard_checks_token_anonymous_sessions_and_csrf() -> None:
    guard = Guard(TOKEN, POLICY)
    assert guard.bootstrap and not Guard(None, POLICY).bootstrap
    assert not Guard("", POLICY).bootstrap
    assert guard.bearer(f"Bearer {TOKEN}") == guard.bearer(f"bearer {TOKEN}") == TOKEN
    assert guard.bearer(f"Basic {TOKEN}") is None and guard.bearer(None) is None
    assert guard.bearer("Bearer ") is None
    assert guard.token_matches(TOKEN) and not guard.token_matches("wrong")
    assert not Guard(None, POLICY).token_matches("")
    cookie = guard.new_anonymous_session()
    assert guard.is_anonymous_session(cookie)
    assert not guard.is_anonymous_session(cookie + "0")
    assert not guard.is_anonymous_session(f"other.{cookie.partition('.')[2]}")
    assert not Guard(TOKEN, POLICY).is_anonymous_session(cookie)  # a restart forgets them
    csrf = guard.csrf_token(cookie)
    assert cookie not in csrf and guard.csrf_matches(cookie, csrf)
    assert not guard.csrf_matches(cookie, "forged") and not guard.csrf_matches(None, csrf)
    assert not guard.csrf_matches("another-session", csrf)


def test_each_route_needs_its_role() -> None:
    assert role_needed("GET", "/api/entities") is Role.VIEWER
    assert role_needed("GET", "/batches/b") is Role.VIEWER
    for path in ("/api/batches", "/api/entities/k/cancel", "/entities/k/resubmit", "/submit"):
        assert role_needed("POST", path) is Role.OPERATOR, path
    assert role_needed("DELETE", "/api/anything") is Role.OPERATOR
    for path in ("/login", "/logout", "/account/password", "/account/tokens"):
        assert role_needed("POST", path) is Role.VIEWER, path
    assert role_needed("POST", "/accounts") is Role.OPERATOR  # not a personal page
    for method in ("GET", "POST"):
        assert role_needed(method, "/admin/accounts") is Role.ADMIN
    assert role_needed("GET", "/administrator") is Role.VIEWER


def test_safe_next_stays_on_this_site() -> None:
    assert safe_next("/batches/x") == "/batches/x"
    for target in ("https://evil.example/", "//evil.example", "/\\evil", "", None):
        assert safe_next(target) == "/"


def test_without_a_token_only_loopback_is_served() -> None:
    for host in ("127.0.0.1", "::1", "[::1]", "localhost", "127.0.0.2"):
        assert is_loopback(host)
        check_bind(_settings(None), host)
    for host in ("0.0.0.0", "::", "192.168.1.10", "example.com"):
        assert not is_loopback(host)
        with pytest.raises(ConsoleRefused, match="CONSOLE_TOKEN"):
            check_bind(_settings(None), host)
        with pytest.raises(ConsoleRefused):
            check_bind(_settings(""), host)
        check_bind(_settings(), host)
        check_bind(_settings(None), host, has_accounts=True)
    assert console_url("0.0.0.0", 8000) == "http://127.0.0.1:8000"
    assert console_url("::1", 8000) == "http://[::1]:8000"


def test_serve_refuses_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("CONSOLE_TOKEN", raising=False)
    monkeypatch.chdir("/")  # no .env
    assert main(["serve", "--host", "0.0.0.0", "--port", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: refusing to serve the console on 0.0.0.0 without CONSOLE_TOKEN")
    assert "\n" not in err


def test_settings_read_the_console_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONSOLE_HOST", "0.0.0.0")
    monkeypatch.setenv("CONSOLE_PORT", "9000")
    monkeypatch.setenv("CONSOLE_TOKEN", "s3cret")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert (settings.console_host, settings.console_port) == ("0.0.0.0", 9000)
    assert settings.console_token is not None and "s3cret" not in repr(settings)
    defaults = Settings(_env_file=None, temporal_address="temporal:7233")  # type: ignore[call-arg]
    assert defaults.effective_temporal_ui_url == "http://temporal:8233"


@asynccontextmanager
async def _console(
    sessions: SessionFactory, token: str | None = TOKEN
) -> AsyncIterator[httpx.AsyncClient]:
    """The console app in this event loop, over the test's database (no Temporal)."""
    settings = _settings(token)
    app = create_app(settings)
    app.state.service = ServiceContext(settings, sessions)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def test_unauthenticated_requests_learn_nothing(clean_database: SessionFactory) -> None:
    async with _console(clean_database) as client:
        api = await client.get("/api/entities/some-key")
        assert api.status_code == 401 and api.json()["detail"] == "authentication required"
        assert api.headers["content-type"] == "application/problem+json"
        assert api.headers["www-authenticate"] == "Bearer"
        assert (await client.post("/api/batches", content=b"{}")).status_code == 401
        page = await client.get("/batches/b")
        assert page.status_code == 401 and 'name="token"' in page.text
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assert (await client.get("/static/console.js")).status_code == 200
        wrong = await client.post("/login", data={"token": "wrong"})
        assert wrong.status_code == 401 and "set-cookie" not in wrong.headers
        hostile = await client.get("/login", params={"next": "/<script>alert(1)</script>"})
        assert "<script>alert" not in hostile.text and "&lt;script&gt;" in hostile.text


async def test_login_sets_a_strict_http_only_cookie(clean_database: SessionFactory) -> None:
    async with _console(clean_database) as client:
        answer = await client.post("/login", data={"token": TOKEN, "next": "//evil.example"})
    assert answer.status_code == 303 and answer.headers["location"] == "/"
    cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and TOKEN not in cookie


def test_cross_site_posts_are_refused() -> None:
    client = TestClient(create_app(_settings(None)))
    for headers in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
        answer = client.post("/api/entities/k/cancel", headers=headers)
        assert answer.status_code == 403


async def test_files_over_the_limit_are_refused_unread(clean_database: SessionFactory) -> None:
    from dsp_integration.console.actions import read_capped, submit_file
    from dsp_integration.entities import MAX_FILE_BYTES, SubmissionRefused

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(MAX_FILE_BYTES // 2**16 + 10):
            yield b" " * 2**16

    data = await read_capped(chunks())
    assert len(data) == MAX_FILE_BYTES + 1
    with pytest.raises(SubmissionRefused, match="over the limit"):
        service = ServiceContext(_settings(), clean_database)
        await submit_file(service, data, filename="big.json", actor=cli_actor())


PASSWORD = "correct horse battery"


async def test_api_tokens_act_as_their_person_with_their_role(
    clean_database: SessionFactory,
) -> None:
    sessions = clean_database
    admin = Actor("root", Role.ADMIN, "cli")
    for name, role in (("root", Role.ADMIN), ("vic", Role.VIEWER), ("olga", Role.OPERATOR)):
        await accounts.add_account(sessions, admin, name, role, PASSWORD)
    viewer = (await accounts.create_token(sessions, admin, "vic")).token
    operator = (await accounts.create_token(sessions, admin, "olga")).token
    async with _console(sessions, token=None) as client:
        # Accounts exist: nobody is anonymous any more, even without CONSOLE_TOKEN.
        assert (await client.get("/api/batches")).status_code == 401
        as_viewer = {"Authorization": f"Bearer {viewer}"}
        assert (await client.get("/api/batches", headers=as_viewer)).status_code == 200
        for path in ("/api/entities/k/cancel", "/api/batches", "/api/batches/b/priority"):
            refused = await client.post(path, headers=as_viewer, json={})
            assert refused.status_code == 403, path
            assert refused.json()["detail"] == ("vic is a viewer: this needs the operator role")
        assert (await client.get("/admin/accounts", headers=as_viewer)).status_code == 403
        as_operator = {"Authorization": f"Bearer {operator}"}
        # Past the gate: the entity is unknown (404), not forbidden.
        answer = await client.post("/api/entities/k/cancel", headers=as_operator)
        assert answer.status_code == 404
        page = await client.get("/account", headers=as_operator)
        assert page.status_code == 200 and "olga (operator)" in page.text
        assert (await client.get("/admin/accounts", headers=as_operator)).status_code == 403


async def test_console_token_bearer_is_refused_once_an_admin_exists(
    clean_database: SessionFactory,
) -> None:
    async with _console(clean_database) as client:
        as_bootstrap = {"Authorization": f"Bearer {TOKEN}"}
        page = await client.get("/admin/accounts", headers=as_bootstrap)
        assert page.status_code == 200 and "No accounts yet" in page.text
        await accounts.add_account(
            clean_database, Actor("x", Role.ADMIN, "cli"), "root", Role.ADMIN, PASSWORD
        )
        refused = await client.get("/api/batches", headers=as_bootstrap)
        assert refused.status_code == 401
        assert "only while no admin account exists" in refused.json()["detail"]
        login_page = await client.get("/login")
        assert 'name="token"' not in login_page.text and 'name="password"' in login_page.text


async def test_a_one_time_password_leads_to_the_account_page_first(
    clean_database: SessionFactory,
) -> None:
    sessions = clean_database
    await accounts.add_account(
        sessions, Actor("x", Role.ADMIN, "cli"), "new", Role.OPERATOR, PASSWORD, one_time=True
    )
    async with _console(sessions, token=None) as client:
        login = await client.post("/login", data={"name": "new", "password": PASSWORD})
        assert login.status_code == 303 and login.headers["location"] == "/account"
        assert (await client.get("/")).headers["location"] == "/account"
        assert (await client.get("/api/batches")).status_code == 403
        page = await client.get("/account")
        csrf = page.text.split('name="csrf" value="')[1].split('"')[0]
        new = "my own password now"
        changed = await client.post(
            "/account/password",
            data={"current": PASSWORD, "password": new, "again": new, "csrf": csrf},
        )
        assert changed.status_code == 200 and "Password changed" in changed.text
        assert (await client.get("/api/batches")).status_code == 200


async def test_admin_forms_need_the_csrf_token_and_names_stay_text(
    clean_database: SessionFactory,
) -> None:
    hostile = "<script>alert(1)</script>"
    async with _console(clean_database) as client:
        as_bootstrap = {"Authorization": f"Bearer {TOKEN}"}
        login = await client.post("/login", data={"token": TOKEN})
        assert login.status_code == 303
        form = {"name": hostile, "role": "viewer", "password": ""}
        stale = await client.post("/admin/accounts", data={**form, "csrf": "forged"})
        assert stale.status_code == 403 and "stale" in stale.text
        assert await accounts.list_accounts(clean_database) == []
        page = await client.get("/admin/accounts")
        csrf = page.text.split('name="csrf" value="')[1].split('"')[0]
        added = await client.post("/admin/accounts", data={**form, "csrf": csrf})
        assert added.status_code == 200, added.text
        assert hostile not in added.text and "&lt;script&gt;" in added.text
        secret = added.text.split('id="new-secret">')[1].split("<")[0]
        assert len(secret) == 20
        # A bearer header is never sent by a forged form: no CSRF token needed with it.
        headers = as_bootstrap
        role = await client.post(
            "/admin/accounts/role", data={"name": hostile, "role": "operator"}, headers=headers
        )
        assert role.status_code == 200 and "role viewer -&gt; operator" in role.text
