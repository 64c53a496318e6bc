"""The console's pages for a day's work, in a real headless Chromium (Debian's `chromium`,
driven by Playwright): an operator's cancel appears in the entity page's action log with
their name, filters survive a reload, search finds an entity by name across batches, a
hostile name stays text, times show in the viewer's time zone with the UTC time on hover,
the skip link works from the keyboard. Takes the README's screenshots of the index, batch
and entity pages: into the test's temporary folder, or into docs/ with
`UPDATE_SCREENSHOTS=1`."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest_asyncio

from devkit.mock_dsp.server import MockDspServer
from dsp_integration.client import accounts
from dsp_integration.client.actors import Role, cli_actor
from dsp_integration.config.settings import PROJECT_ROOT
from tests.integration.console_support import running_console
from tests.integration.dag import ad_group, advertiser, campaign, creative
from tests.integration.harness import Stack
from tests.integration.test_console_browser import chromium_page

HOSTILE = '<img src=x onerror="alert(1)">Spring & <b>co</b>'
DOCS = PROJECT_ROOT / "docs"
LIVE_TIMEOUT_MS = 90_000
# The operator the access gate would name; until it does, the console is told who is asking.
OLIVIA = "olivia"
PASSWORD = "olivia's long passphrase"
VIEWER_ZONE = "America/New_York"


@pytest_asyncio.fixture
async def browser_page() -> AsyncIterator[Any]:
    async with chromium_page(
        viewport={"width": 1400, "height": 900}, timezone_id=VIEWER_ZONE, locale="en-US"
    ) as page:
        yield page


async def test_who_did_what_and_the_pages_for_a_days_work(
    stack: Stack, mock_dsp: MockDspServer, browser_page: Any, tmp_path: Path
) -> None:
    from playwright.async_api import expect

    page = browser_page
    screenshots = DOCS if os.environ.get("UPDATE_SCREENSHOTS") == "1" else tmp_path
    hostile = creative("day-cr-hostile", "day-adv")
    hostile["payload"]["name"] = HOSTILE
    entities = [
        advertiser("day-adv"),
        campaign("day-cmp", "day-adv"),
        creative("day-cr", "day-adv"),
        hostile,
        creative("day-cr-bad", "day-adv", reject=True),
        ad_group("day-ag", "day-cmp", ["day-cr", "day-cr-hostile"]),
        creative("day-cr-held", "day-adv"),
    ]
    spring = {"batch": "day-spring", "entities": entities}
    autumn = {"batch": "day-autumn", "entities": [campaign("day-cmp-autumn", "day-adv")]}
    mock_dsp.dsp.hold("day-cr-held")

    # Olivia, an operator, submits with her API token and works in her browser session.
    await accounts.add_account(stack.service.sessions, cli_actor(), OLIVIA, Role.OPERATOR, PASSWORD)
    token = (await accounts.create_token(stack.service.sessions, cli_actor(), OLIVIA)).token
    async with (
        running_console(stack.settings, stack.service, token=None) as console,
        console.client(token=token) as api,
    ):
        for file in (spring, autumn):
            answer = await api.post("/api/batches", content=json.dumps(file))
            assert answer.status_code == 201, answer.text
        await page.goto(console.url + "/login")
        await page.fill("#name", OLIVIA)
        await page.fill("#password", PASSWORD)
        await page.click("#login-button")
        await expect(page.locator("h1")).to_have_text("Batches")

        # The skip link is the first stop of the keyboard, and takes it to the content.
        await page.keyboard.press("Tab")
        skip = page.locator(".skip-link")
        await expect(skip).to_be_focused()
        await page.keyboard.press("Enter")
        assert await page.evaluate("document.activeElement.id") == "main"

        # The batch runs to its end but for the held creative; the index shows it live.
        await page.goto(console.url + "/batches/day-spring")
        await expect(page.locator('tr[data-key="day-cr-held"]')).to_contain_text(
            "polling", timeout=LIVE_TIMEOUT_MS
        )
        await expect(page.locator('tr[data-key="day-ag"]')).to_contain_text(
            "succeeded", timeout=LIVE_TIMEOUT_MS
        )
        # Names beside keys; the hostile one as text.
        await expect(page.locator('tr[data-key="day-cmp"] td.name')).to_have_text(
            "Campaign day-cmp"
        )
        await expect(page.locator('tr[data-key="day-cr-hostile"] td.name')).to_have_text(HOSTILE)
        await page.screenshot(path=str(screenshots / "console-batch.png"), full_page=True)

        # Filters live in the URL: a reload keeps them, and the rows they select.
        await page.fill("#filter-q", "CREATIVE DAY-CR")
        await page.select_option("#filter-status", "succeeded")
        await page.click("#filter-button")
        await expect(page).to_have_url(
            console.url + "/batches/day-spring?q=CREATIVE+DAY-CR&status=succeeded&type="
        )
        rows = page.locator("#entity-rows tr")
        await expect(rows).to_have_count(1)
        await expect(rows.first).to_have_attribute("data-key", "day-cr")
        await page.reload()
        await expect(page.locator("#filter-q")).to_have_value("CREATIVE DAY-CR")
        await expect(page.locator("#filter-status")).to_have_value("succeeded")
        await page.wait_for_timeout(2_000)  # a live refresh keeps the filter too
        await expect(rows).to_have_count(1)
        await expect(rows.first).to_have_attribute("data-key", "day-cr")

        # Search by name across batches, from the header's box.
        await page.fill("#header-search", "campaign day-cmp")
        await page.keyboard.press("Enter")
        await expect(page.locator("#search-results tbody tr")).to_have_count(2)
        found = await page.locator("#search-results tbody tr").evaluate_all(
            "rows => rows.map(r => r.dataset.key)"
        )
        assert found == ["day-cmp", "day-cmp-autumn"]
        await page.fill("#search-q", "onerror")
        await page.click("#search-button")
        await expect(page.locator("#search-results td.name")).to_have_text(HOSTILE)

        # The operator cancels the held creative: the action log names them.
        await page.goto(console.url + "/entities/day-cr-held")
        await page.click("#cancel-button")
        await expect(page.locator("#message")).to_contain_text("Cancel requested")
        first = page.locator("#action-log .action-row").first
        await expect(first).to_have_attribute("data-action", "cancel")
        await expect(first.locator(".actor")).to_contain_text("olivia")
        await expect(first).to_contain_text("accepted")
        await expect(page.locator('#action-log .action-row[data-action="submit"]')).to_contain_text(
            "olivia"
        )
        await expect(page.locator("#entity-status")).to_have_text(
            "cancelled", timeout=LIVE_TIMEOUT_MS
        )
        # Times in the viewer's zone, the absolute UTC time on hover.
        when = first.locator("time")
        title = await when.get_attribute("title")
        shown = await when.inner_text()
        assert title is not None and title.endswith(" UTC"), title
        assert "UTC" not in shown and ("EST" in shown or "EDT" in shown), shown
        link = await page.locator("#workflow-link").get_attribute("href")
        assert link is not None and link.endswith("/workflows/dsp-entity-day-cr-held")
        await page.screenshot(path=str(screenshots / "console-entity.png"), full_page=True)

        # A second cancel of the ended entity: refused, and logged as refused.
        answer = await api.post("/api/entities/day-cr-held/cancel")
        assert answer.status_code == 409
        await page.reload()
        first = page.locator("#action-log .action-row").first
        await expect(first).to_have_attribute("data-outcome", "refused")
        await expect(first).to_contain_text("already ended cancelled")

        # The index: the live budget and the plots, drawn on the page (no CDN, no image).
        await page.goto(console.url + "/")
        await expect(page.locator("#budget-rows tr[data-seat=default] meter")).to_be_visible()
        await expect(page.locator("svg#requests-chart")).to_be_visible()
        description = await page.locator("#requests-chart-desc").text_content()
        assert description is not None and not description.startswith("0 DSP requests")
        await expect(page.locator("svg#review-chart")).to_be_visible()
        await page.screenshot(path=str(screenshots / "console-index.png"), full_page=True)

        assert await page.locator("img").count() == 0
        assert page.dialogs == []
