"""The console's gate without a stack: tokens, cookies, CSRF, the loopback rule, escaping."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr
from starlette.testclient import TestClient

from dsp_integration.commands.starter import main
from dsp_integration.config import Settings
from dsp_integration.console import create_app
from dsp_integration.console.auth import Guard, safe_next
from dsp_integration.console.server import ConsoleRefused, check_bind, console_url, is_loopback

TOKEN = "unit-console-token"


def _settings(token: str | None = TOKEN) -> Settings:
    return Settings(_env_file=None, console_token=SecretStr(token) if token else None)  # type: ignore[call-arg]


def test_guard_checks_token_session_and_csrf() -> None:
    guard = Guard(TOKEN)
    assert guard.required
    assert guard.bearer_matches(f"Bearer {TOKEN}") and guard.bearer_matches(f"bearer {TOKEN}")
    assert not guard.bearer_matches(f"Basic {TOKEN}")
    assert not guard.bearer_matches("Bearer wrong") and not guard.bearer_matches(None)
    cookie = guard.new_session()
    assert TOKEN not in cookie
    nonce = guard.session_nonce(cookie)
    assert nonce is not None
    assert guard.session_nonce(cookie + "0") is None
    assert guard.session_nonce(f"other.{cookie.partition('.')[2]}") is None
    assert Guard("another-token").session_nonce(cookie) is None  # a new token logs out
    assert guard.csrf_matches(nonce, guard.csrf_token(nonce))
    assert not guard.csrf_matches(nonce, "forged") and not guard.csrf_matches(None, "x")
    assert not Guard(None).required and not Guard("").required


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


def test_unauthenticated_requests_learn_nothing() -> None:
    # No lifespan: the service is never opened, so nothing can leak from it.
    client = TestClient(create_app(_settings()))
    api = client.get("/api/entities/some-key")
    assert api.status_code == 401 and api.json()["detail"] == "authentication required"
    assert api.headers["content-type"] == "application/problem+json"
    assert api.headers["www-authenticate"] == "Bearer"
    assert client.post("/api/batches", content=b"{}").status_code == 401
    page = client.get("/batches/b")
    assert page.status_code == 401 and 'name="token"' in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert client.get("/static/console.js").status_code == 200
    wrong = client.post("/login", data={"token": "wrong"})
    assert wrong.status_code == 401 and "set-cookie" not in wrong.headers
    hostile = client.get("/login", params={"next": "/<script>alert(1)</script>"})
    assert "<script>alert" not in hostile.text and "&lt;script&gt;" in hostile.text


def test_login_sets_a_strict_http_only_cookie() -> None:
    client = TestClient(create_app(_settings()), follow_redirects=False)
    answer = client.post("/login", data={"token": TOKEN, "next": "//evil.example"})
    assert answer.status_code == 303 and answer.headers["location"] == "/"
    cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and TOKEN not in cookie


def test_cross_site_posts_are_refused() -> None:
    client = TestClient(create_app(_settings(None)))
    for headers in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
        answer = client.post("/api/entities/k/cancel", headers=headers)
        assert answer.status_code == 403


async def test_files_over_the_limit_are_refused_unread() -> None:
    from dsp_integration.console.actions import read_capped, submit_file
    from dsp_integration.entities import MAX_FILE_BYTES, SubmissionRefused

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(MAX_FILE_BYTES // 2**16 + 10):
            yield b" " * 2**16

    data = await read_capped(chunks())
    assert len(data) == MAX_FILE_BYTES + 1
    with pytest.raises(SubmissionRefused, match="over the limit"):
        await submit_file(None, data, filename="big.json")  # type: ignore[arg-type]
