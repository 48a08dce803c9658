"""The schedule form in the browser: the next ten fire times follow the cron line and the zone as
they are typed (HTMX), in the zone and in UTC, before saving; a bad line is named at once."""

from __future__ import annotations

import httpx
from playwright.async_api import BrowserContext, Page, expect

from tests.support.browser import LiveServer, api_signup, use_session


async def test_schedule_form_previews_fire_times_live(
    page: Page, context: BrowserContext, live_server: LiveServer
) -> None:
    admin = await api_signup(live_server.url)
    async with httpx.AsyncClient(base_url=live_server.url, headers=admin.headers) as http:
        created = await http.post(
            "/api/v1/templates",
            json={"name": "nightly", "parameters": [{"name": "version", "type": "string"}]},
        )
    assert created.status_code == 201, created.text
    await use_session(context, live_server.url, admin)

    await page.goto(f"/templates/{created.json()['id']}")
    # The template's triggers section loads after the page.
    await page.get_by_role("link", name="Add a schedule").click()
    await expect(page.get_by_role("heading", name="Schedule nightly")).to_be_visible()
    preview = page.locator("#schedule-preview")
    await page.locator("#f-timezone").fill("America/New_York")
    await page.locator("#f-cron").fill("30 2 * * *")
    await expect(preview.locator("tr.fire-time")).to_have_count(10)
    await expect(preview).to_contain_text("At 02:30 (America/New_York)")
    local = await preview.locator("td.fire-local").all_inner_texts()
    utc = await preview.locator("td.fire-utc").all_inner_texts()
    assert all("02:30 E" in text for text in local), local  # EST or EDT
    assert all(text.endswith(("07:30 UTC", "06:30 UTC")) for text in utc), utc
    # A change of zone alone updates the times.
    await page.locator("#f-timezone").fill("Asia/Tokyo")
    await page.locator("#f-timezone").dispatch_event("change")
    await expect(preview.locator("td.fire-utc").first).to_contain_text("17:30 UTC")
    # A line that is not cron is named in the card, without saving.
    await page.locator("#f-cron").fill("30 2 * *")
    await expect(preview.locator('[data-field="cron"]')).to_contain_text("five fields")
    await expect(page).to_have_url(
        f"{live_server.url}/templates/{created.json()['id']}/schedules/new"
    )
    await page.locator("#f-cron").fill("@daily")
    await expect(preview.locator("tr.fire-time")).to_have_count(10)
    await page.get_by_role("button", name="Save schedule").click()
    await expect(page.locator("#schedule-state")).to_have_text("enabled")
    await expect(page.locator("#schedule-description")).to_contain_text("At 00:00")
