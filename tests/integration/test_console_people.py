"""The console's people in a real headless Chromium, as a person would meet them: a viewer
sees no action and the API refuses them with 403, a disabled account's session stops at
once, a brute-force login is slowed (the right password too, while locked), a form without
its CSRF token is refused, and a hostile account name stays text."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio

from dsp_integration.client import accounts
from dsp_integration.client.actors import Actor, Role
from dsp_integration.client.logins import ACCOUNT_FAILURE_LIMIT
from tests.integration.console_support import running_console
from tests.integration.dag import advertiser
from tests.integration.harness import Stack
from tests.integration.test_console_browser import CHROMIUM_ARGS, _chromium_or_skip

PASSWORD = "correct horse battery"
HOSTILE = "<img src=x onerror=alert(1)>"
SETUP = Actor("test-setup", Role.ADMIN, "cli")


@pytest_asyncio.fixture
async def browser() -> AsyncIterator[Any]:
    executable = _chromium_or_skip()
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


async def _person(browser: Any) -> Any:
    """A page of its own browser context (its own cookies), recording every dialog."""
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    page.set_default_timeout(15_000)
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.dialogs = dialogs
    return page


async def _log_in(page: Any, url: str, name: str, password: str = PASSWORD) -> None:
    await page.goto(url + "/login")
    await page.fill("#name", name)
    await page.fill("#password", password)
    await page.click("#login-button")


async def _add(stack: Stack, name: str, role: Role) -> None:
    await accounts.add_account(stack.service.sessions, SETUP, name, role, PASSWORD)


async def test_a_viewer_sees_no_action_and_the_api_refuses_them(stack: Stack, browser: Any) -> None:
    from playwright.async_api import expect

    await _add(stack, "root", Role.ADMIN)
    await _add(stack, "olga", Role.OPERATOR)
    await _add(stack, "vic", Role.VIEWER)
    operator_token = (await accounts.create_token(stack.service.sessions, SETUP, "olga")).token
    viewer_token = (await accounts.create_token(stack.service.sessions, SETUP, "vic")).token
    body = json.dumps({"batch": "people", "entities": [advertiser("people-adv")]})
    async with running_console(stack.settings, stack.service, token=None) as console:
        async with console.client(token=operator_token) as api:
            assert (await api.post("/api/batches", content=body)).status_code == 201
        page = await _person(browser)
        await _log_in(page, console.url, "vic")
        await expect(page.locator("h1")).to_have_text("Batches")
        await expect(page.locator("#who")).to_have_text("vic (viewer)")
        await page.goto(console.url + "/batches/people")
        await expect(page.locator('tr[data-key="people-adv"]')).to_be_visible()
        await page.goto(console.url + "/entities/people-adv")
        await expect(page.locator("#entity-key")).to_have_text("people-adv")
        for absent in ("#cancel-button", "#resubmit-button", "a[href='/submit']",
                       "#nav-accounts"):  # fmt: skip
            await expect(page.locator(absent)).to_have_count(0)
        await page.goto(console.url + "/batches/people")
        await expect(page.locator("#priority-button")).to_have_count(0)
        # The viewer's browser, with the page's own CSRF token, is refused by the API.
        answer = await page.evaluate(
            """async () => {
                const csrf = document.querySelector("input[name=csrf]").value;
                const r = await fetch("/api/entities/people-adv/cancel",
                                      {method: "POST", headers: {"X-CSRF-Token": csrf}});
                return [r.status, (await r.json()).detail];
            }"""
        )
        assert answer == [403, "vic is a viewer: this needs the operator role"]
        async with console.client(token=viewer_token) as api:
            refused = await api.post("/api/entities/people-adv/cancel")
            assert refused.status_code == 403
            assert (await api.get("/api/entities/people-adv")).status_code == 200
        # The operator's page has the actions.
        operator = await _person(browser)
        await _log_in(operator, console.url, "olga")
        await operator.goto(console.url + "/entities/people-adv")
        await expect(operator.locator("#resubmit-button")).to_be_visible()


async def test_a_disabled_account_is_out_at_once(stack: Stack, browser: Any) -> None:
    from playwright.async_api import expect

    await _add(stack, "root", Role.ADMIN)
    await _add(stack, "olga", Role.OPERATOR)
    async with running_console(stack.settings, stack.service, token=None) as console:
        operator = await _person(browser)
        await _log_in(operator, console.url, "olga")
        await expect(operator.locator("#who")).to_have_text("olga (operator)")
        admin = await _person(browser)
        await _log_in(admin, console.url, "root")
        await admin.goto(console.url + "/admin/accounts")
        row = admin.locator('tr[data-account="olga"]')
        await row.locator("button.disable").click()
        await expect(admin.locator("#message")).to_contain_text("olga: enabled -> disabled")
        await expect(row.locator(".account-state")).to_have_text("disabled")
        # Olga's very next request: the login page, and nothing of the batches.
        await operator.goto(console.url + "/")
        await expect(operator.locator("#login-button")).to_be_visible()
        await expect(operator.locator("h1")).to_have_text("Log in")
        await _log_in(operator, console.url, "olga")
        await expect(operator.locator("#login-failed")).to_contain_text("disabled")


async def test_a_brute_force_login_is_slowed(stack: Stack, browser: Any) -> None:
    from playwright.async_api import expect

    await _add(stack, "olga", Role.OPERATOR)
    async with running_console(stack.settings, stack.service, token=None) as console:
        page = await _person(browser)
        for attempt in range(ACCOUNT_FAILURE_LIMIT):
            await _log_in(page, console.url, "olga", f"guess number {attempt}")
            await expect(page.locator("#login-failed")).to_have_text(
                "Wrong account name or password."
            )
        await _log_in(page, console.url, "olga", "guess again")
        await expect(page.locator("#login-failed")).to_contain_text(
            "Too many failed logins for this account. Try again after"
        )
        # The right password is refused too while the lock holds.
        await _log_in(page, console.url, "olga")
        await expect(page.locator("#login-failed")).to_contain_text("Too many failed logins")
        await expect(page.locator("#who")).to_have_count(0)


async def test_csrf_is_required_and_a_hostile_name_stays_text(stack: Stack, browser: Any) -> None:
    from playwright.async_api import expect

    await _add(stack, "root", Role.ADMIN)
    async with running_console(stack.settings, stack.service, token=None) as console:
        page = await _person(browser)
        await _log_in(page, console.url, "root")
        await page.goto(console.url + "/admin/accounts")
        # A form without its CSRF token (as a forged one would be) changes nothing.
        await page.fill("#new-name", "mallory")
        await page.evaluate("document.querySelector('#add-account input[name=csrf]').remove()")
        await page.click("#add-button")
        await expect(page.locator("h1")).to_have_text("403")
        await expect(page.locator(".problem")).to_contain_text("stale")
        assert [a.name for a in await accounts.list_accounts(stack.service.sessions)] == ["root"]
        # A hostile name is added, and shown as text: no image element, no dialog.
        await page.goto(console.url + "/admin/accounts")
        await page.fill("#new-name", HOSTILE)
        await page.select_option("#new-role", "viewer")
        await page.click("#add-button")
        await expect(page.locator("#message")).to_contain_text(HOSTILE)
        await expect(page.locator("#new-secret")).to_be_visible()
        await expect(page.locator(f'tr[data-account="{HOSTILE}"] .account-name')).to_have_text(
            HOSTILE
        )
        assert await page.locator("img").count() == 0
        await page.goto(console.url + "/admin/accounts")
        assert await page.locator("img").count() == 0
        assert page.dialogs == []
