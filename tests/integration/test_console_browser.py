"""The console in a real headless Chromium (Debian's `chromium`, driven by Playwright; no
browser is downloaded): log in, watch a batch run to the end live, open an entity and its
audit trail, cancel one, resubmit one, upload a broken file, and a hostile name stays text.
The README's screenshots are taken by test_console_browser_actions.py."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from devkit.mock_dsp.server import MockDspServer
from tests.integration.conftest import mock_config
from tests.integration.console_support import CONSOLE_TOKEN, running_console
from tests.integration.dag import ad_group, advertiser, campaign, creative
from tests.integration.harness import Stack

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
HOSTILE = "<img src=x onerror=alert(1)>"
LIVE_TIMEOUT_MS = 90_000


def _chromium_or_skip() -> str:
    found = CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium")
    if found:
        return found
    message = f"no Chromium at {CHROMIUM}: apt-get install chromium (make test does)"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message)
    pytest.skip(message)


@asynccontextmanager
async def chromium_page(**context_options: Any) -> AsyncIterator[Any]:
    """A page in a fresh headless Chromium; `page.dialogs` collects (and dismisses) every
    dialog the page opens, so a test sees that none did."""
    executable = _chromium_or_skip()
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(**context_options)
            page = await context.new_page()
            page.set_default_timeout(15_000)
            dialogs: list[str] = []
            page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
            page.dialogs = dialogs  # type: ignore[attr-defined]
            yield page
        finally:
            await browser.close()


@pytest_asyncio.fixture
async def browser_page() -> AsyncIterator[Any]:
    async with chromium_page(viewport={"width": 1280, "height": 900}) as page:
        yield page


def _write(path: Path, batch: str, entities: list[dict[str, Any]]) -> Path:
    path.write_text(json.dumps({"batch": batch, "entities": entities}, indent=1))
    return path


async def test_the_console_in_a_browser(
    stack: Stack, mock_dsp: MockDspServer, browser_page: Any, tmp_path: Path
) -> None:
    from playwright.async_api import expect

    page = browser_page
    hostile = creative("web-cr-hostile", "web-adv")
    hostile["payload"]["name"] = HOSTILE
    entities = [
        advertiser("web-adv"),
        campaign("web-cmp", "web-adv"),
        creative("web-cr", "web-adv"),
        hostile,
        creative("web-cr-bad", "web-adv", reject=True),
        ad_group("web-ag", "web-cmp", ["web-cr", "web-cr-hostile"]),
        ad_group("web-ag-bad", "web-cmp", ["web-cr-bad"]),
    ]
    good = _write(tmp_path / "web.json", "web", entities)
    broken_entities = [advertiser("web-x"), {"key": "web-y", "type": "campaigns", "payload": {}}]
    broken_entities[0]["payload"]["currency"] = "dollars"
    broken = _write(tmp_path / "broken.json", "web-broken", broken_entities)

    async with running_console(stack.settings, stack.service) as console:
        # Log in: a wrong token is refused, the right one opens the batches page.
        await page.goto(console.url + "/")
        await expect(page.locator("#token")).to_be_visible()
        await page.fill("#token", "not-the-token")
        await page.click("button[type=submit]")
        await expect(page.locator("#login-failed")).to_be_visible()
        await page.fill("#token", CONSOLE_TOKEN)
        await page.click("button[type=submit]")
        await expect(page.locator("h1")).to_have_text("Batches")
        await expect(page.locator("#budget-rows tr[data-seat=default] meter")).to_be_visible()

        # A broken file: refused whole, every problem listed per entity and field.
        await page.goto(console.url + "/submit")
        await page.set_input_files("#file", str(broken))
        await page.click("#submit-file")
        problems = page.locator("#problems .problem-row")
        await expect(problems.first).to_be_visible()
        table = await page.locator("#problems").inner_text()
        assert "web-x" in table and "web-y" in table and "currency" in table
        await expect(page.locator("#problems h2")).to_contain_text("nothing stored")

        # A good file: the batch page follows it live to the end, without a reload.
        await page.goto(console.url + "/submit")
        await page.set_input_files("#file", str(good))
        await page.click("#submit-file")
        await expect(page.locator("#batch-name")).to_have_text("web")
        await expect(page.locator("#batch-state")).to_have_text("running", timeout=LIVE_TIMEOUT_MS)
        await expect(page.locator("#batch-state")).to_contain_text(
            "finished", timeout=LIVE_TIMEOUT_MS
        )
        await expect(page.locator("#batch-ended")).to_have_text("7/7 ended")
        rows = page.locator("#entity-rows tr")
        await expect(rows).to_have_count(7)
        await expect(page.locator('tr[data-key="web-ag-bad"]')).to_contain_text("blocked")
        await expect(page.locator('tr[data-key="web-cr-bad"]')).to_contain_text("rejected")
        await page.goto(console.url + "/batches/web?status=rejected")
        await expect(rows).to_have_count(1)

        # An entity: its facts, links, the workflow in the Temporal UI and the audit trail.
        await page.goto(console.url + "/batches/web")
        await page.click('tr[data-key="web-cr"] a')
        await expect(page.locator("#entity-key")).to_have_text("web-cr")
        await expect(page.locator("#entity-status")).to_have_text("succeeded")
        await expect(page.locator("#dependencies a")).to_have_text("web-adv")
        await expect(page.locator("#dependants a")).to_have_text("web-ag")
        workflow = await page.locator("#workflow-link").get_attribute("href")
        assert workflow is not None and workflow.endswith("/workflows/dsp-entity-web-cr")
        audit_rows = page.locator("#audit .audit-row")
        assert await audit_rows.count() >= 2
        await audit_rows.first.locator("summary", has_text="request").click()
        await expect(audit_rows.first.locator("pre").first).to_contain_text("advertiser_id")

        # The hostile name is shown as text: no image element, no dialog.
        await page.goto(console.url + "/entities/web-cr-hostile")
        await expect(page.locator("#payload")).to_contain_text(HOSTILE)
        await expect(page.locator("details.version pre").first).to_contain_text(HOSTILE)
        await page.goto(console.url + "/batches/web")
        await page.wait_for_timeout(2_000)  # a live refresh or two
        assert await page.locator("img").count() == 0
        assert page.dialogs == []

        # Resubmit the rejected creative: a refused payload shows its problems next to it,
        # the fixed one runs and unblocks its ad group.
        await page.goto(console.url + "/entities/web-cr-bad")
        await page.fill("#payload", json.dumps({"name": "only a name"}))
        await page.click("#resubmit-button")
        await expect(page.locator("#problems .problem").first).to_be_visible()
        await expect(page.locator("#payload")).to_have_value(json.dumps({"name": "only a name"}))
        fixed = creative("web-cr-bad", "web-adv")["payload"]
        await page.fill("#payload", json.dumps(fixed))
        await page.click("#resubmit-button")
        await expect(page.locator("#message")).to_contain_text("Resubmitted")
        await expect(page.locator("#entity-status")).to_have_text(
            "succeeded", timeout=LIVE_TIMEOUT_MS
        )
        await page.goto(console.url + "/entities/web-ag-bad")
        await expect(page.locator("#entity-status")).to_have_text(
            "succeeded", timeout=LIVE_TIMEOUT_MS
        )

        # Cancel a creative under review: the page follows it to `cancelled`.
        mock_dsp.dsp.config = mock_config().model_copy(update={"review_seconds": 60.0})
        slow = _write(tmp_path / "slow.json", "web-slow", [creative("web-cr-slow", "web-adv")])
        await page.goto(console.url + "/submit")
        await page.set_input_files("#file", str(slow))
        await page.click("#submit-file")
        await expect(page.locator('tr[data-key="web-cr-slow"]')).to_contain_text(
            "polling", timeout=LIVE_TIMEOUT_MS
        )
        # Raise the batch and weight it while its creative is under review.
        await page.select_option("#batch-priority", "high")
        await page.fill("#batch-weight", "2.5")
        await page.click("#priority-button")
        await expect(page.locator("#batch-priority")).to_have_value("high")
        await expect(page.locator("#batch-weight")).to_have_value("2.5")
        await page.click('tr[data-key="web-cr-slow"] a')
        await expect(page.locator("#entity-priority")).to_have_text("high")
        await expect(page.locator("#entity-weight")).to_have_text("2.5")
        await page.click("#cancel-button")
        await expect(page.locator("#message")).to_contain_text("Cancel requested")
        await expect(page.locator("#entity-status")).to_have_text(
            "cancelled", timeout=LIVE_TIMEOUT_MS
        )
        await expect(page.locator("#cancel-button")).to_be_disabled()
        assert page.dialogs == []
