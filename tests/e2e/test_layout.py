"""The layout works at 1280 px and on a phone, and from the keyboard; screenshots of the pages."""

from __future__ import annotations

import os
from pathlib import Path

from playwright.async_api import Browser, BrowserContext, Page, expect

from shipyard.crypto import load_keyring
from shipyard.db import Database
from tests.fixtures.git import MakeGitRepo
from tests.fixtures.web import PHONE_VIEWPORT
from tests.support.browser import LiveServer, api_signup, use_session
from tests.support.browser_seed import populate_tenant

SCREENSHOT_DIR = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
NAVIGATION = ("/", "/repositories", "/hosts", "/deployments", "/templates", "/cicd", "/settings")
# Elements sticking out to the right of the screen, outside any scrolling box (for the message).
WIDER_THAN_SCREEN = """() => [...document.querySelectorAll('body *')]
  .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1 && !e.closest('.table-wrap, .mainnav, pre'))
  .map(e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + (e.className ? '.' + e.className : ''))
  .slice(0, 10)"""


async def test_skip_link_and_focus_from_the_keyboard(
    page: Page, context: BrowserContext, live_server: LiveServer
) -> None:
    admin = await api_signup(live_server.url)
    await use_session(context, live_server.url, admin)
    await page.goto("/")
    await page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    await expect(skip).to_be_focused()
    await expect(skip).to_be_in_viewport()
    await page.keyboard.press("Enter")
    await expect(page).to_have_url("/#main")
    # Tabbing on reaches the navigation, each link with a visible focus ring.
    await page.keyboard.press("Tab")
    focused_outline = await page.evaluate(
        "() => getComputedStyle(document.activeElement).outlineStyle"
    )
    assert focused_outline != "none"


async def test_times_are_shown_in_the_browsers_timezone(
    browser: Browser, live_server: LiveServer
) -> None:
    admin = await api_signup(live_server.url)
    context = await browser.new_context(
        base_url=live_server.url, timezone_id="Asia/Tokyo", locale="en-GB"
    )
    try:
        await use_session(context, live_server.url, admin)
        page = await context.new_page()
        await page.goto("/settings/members")
        time = page.locator("time[data-localised]").first
        await expect(time).to_be_visible()
        iso = await time.get_attribute("datetime")
        assert iso
        expected = await page.evaluate(
            """iso => new Intl.DateTimeFormat(undefined, {dateStyle: "medium", timeStyle: "short",
               timeZone: "Asia/Tokyo"}).format(new Date(iso))""",
            iso,
        )
        await expect(time).to_have_text(expected)
        assert "UTC" not in await time.inner_text()
    finally:
        await context.close()


async def test_usable_on_a_phone(browser: Browser, live_server: LiveServer) -> None:
    admin = await api_signup(live_server.url)
    context = await browser.new_context(base_url=live_server.url, viewport=PHONE_VIEWPORT)
    try:
        await use_session(context, live_server.url, admin)
        page = await context.new_page()
        for path in (*NAVIGATION, "/settings/members", "/settings/tokens"):
            await page.goto(path)
            overflow = await page.evaluate(
                "() => document.documentElement.scrollWidth - window.innerWidth"
            )
            wide = await page.evaluate(WIDER_THAN_SCREEN)
            assert overflow <= 0, f"{path} scrolls sideways on a phone by {overflow}px: {wide}"
        # Every navigation entry can be reached.
        await page.goto("/")
        nav = page.get_by_role("navigation", name="Main")
        for label in ("Dashboard", "Repositories", "Hosts", "Deployments", "CI/CD", "Settings"):
            link = nav.get_by_role("link", name=label, exact=True)
            await link.scroll_into_view_if_needed()
            await expect(link).to_be_in_viewport()
    finally:
        await context.close()


async def test_screenshots_of_the_main_pages(
    browser: Browser,
    live_server: LiveServer,
    tmp_path: Path,
    make_git_repo: MakeGitRepo,
) -> None:
    """Every main page renders with content; SHIPYARD_SCREENSHOTS=1 saves them to docs/."""
    target = SCREENSHOT_DIR if os.environ.get("SHIPYARD_SCREENSHOTS") == "1" else tmp_path
    target.mkdir(parents=True, exist_ok=True)
    admin = await api_signup(live_server.url, tenant_name="Harbour Ops")
    database = Database(
        live_server.database_url, keyring=load_keyring(live_server.settings), pool_size=2
    )
    try:
        seeded = await populate_tenant(live_server, admin, database, make_git_repo)
    finally:
        await database.dispose()
    repository = seeded["repository"]["id"]
    finished = seeded["finished"].deployment_id
    pages = {
        "dashboard": "/",
        "repositories": "/repositories",
        "repository": f"/repositories/{repository}?path=deploy",
        "file": f"/repositories/{repository}/file?path=deploy/run.sh",
        "providers": "/repositories/providers",
        "hosts": "/hosts",
        "host": f"/hosts/{seeded['finished'].bad_host}",
        "deployments": "/deployments",
        "deployment": f"/deployments/{finished}",
        "wizard": f"/deployments/new/scripts?name=Release&repository_id={repository}",
        "cicd": "/cicd",
        "settings-members": "/settings/members",
        "settings-tokens": "/settings/tokens",
    }
    context = await browser.new_context(
        base_url=live_server.url, viewport={"width": 1280, "height": 800}, color_scheme="light"
    )
    try:
        page = await context.new_page()
        response = await page.goto("/login")
        assert response is not None and response.status == 200
        await page.screenshot(path=str(target / "login.png"))
        await use_session(context, live_server.url, admin)
        for name, path in pages.items():
            response = await page.goto(path)
            assert response is not None and response.status == 200, path
            if name == "deployment":
                await expect(page.locator("#log-state")).to_have_text("Finished: partial.")
                # The grid and the log load after the page: the picture shows both.
                await expect(page.locator("#results-grid .grid-cell")).to_have_count(12)
                await expect(page.locator("#log .line").last).to_contain_text("finished: partial")
            await expect(page.locator("time[data-local]")).to_have_count(0)
            picture = target / f"{name}.png"
            await page.screenshot(path=str(picture), full_page=True)
            assert picture.stat().st_size > 5_000, name
        await page.set_viewport_size(PHONE_VIEWPORT)
        await page.goto(f"/deployments/{finished}")
        await page.screenshot(path=str(target / "phone-deployment.png"))
    finally:
        await context.close()
