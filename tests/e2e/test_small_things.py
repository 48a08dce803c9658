"""Small things people see: the favicon, the navigation on a 375 px phone, long names that
wrap, no emoji icons, a fresh install opening on sign-up, the getting-started checklist."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from uuid import UUID

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Page, ViewportSize, expect

from shipyard.config import Settings
from shipyard.db import Database
from shipyard.deployments.models import Deployment
from shipyard.templates.models import Template
from shipyard.web.templating import NAVIGATION, STATIC_DIR, TEMPLATES_DIR
from tests.support import canary
from tests.support.browser import LiveServer, api_signup, use_session
from tests.support.postgres import PostgresForTests

PHONE: ViewportSize = {"width": 375, "height": 740}
DESKTOP: ViewportSize = {"width": 1280, "height": 860}
# A name as long as a template's may be (200 characters), without a space to break at.
LONG_NAME = "release-" + "n" * 183 + "-frontend"


def host_password() -> str:
    return canary.remember("small-things-host-password", "host password")


OVERFLOW = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"

# Characters a plain Debian Chromium (DejaVu fonts, no colour emoji font) draws as boxes: every
# pictograph outside the Basic Multilingual Plane, the variation selector that asks for emoji
# presentation, and the BMP characters whose default presentation is emoji (Unicode's
# Emoji_Presentation property).
EMOJI = re.compile(
    "[\U0001f000-\U0001faff\ufe0f"
    "\u231a\u231b\u23e9-\u23ec\u23f0\u23f3\u25fd\u25fe\u2614\u2615\u2648-\u2653\u267f\u2693"
    "\u26a1\u26aa\u26ab\u26bd\u26be\u26c4\u26c5\u26ce\u26d4\u26ea\u26f2\u26f3\u26f5\u26fa\u26fd"
    "\u2705\u270a\u270b\u2728\u274c\u274e\u2753-\u2755\u2757\u2795-\u2797\u27b0\u27bf"
    "\u2b1b\u2b1c\u2b50\u2b55]"
)


def test_no_emoji_in_templates_or_scripts() -> None:
    found = [
        f"{path.relative_to(TEMPLATES_DIR.parent)}:{number}: {match.group()!r}"
        for path in [*TEMPLATES_DIR.rglob("*.html"), *STATIC_DIR.glob("*.js")]
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        for match in EMOJI.finditer(line)
    ]
    assert found == []


async def test_favicon_is_an_svg_linked_from_every_page(
    page: Page, live_server: LiveServer
) -> None:
    async with httpx.AsyncClient(base_url=live_server.url) as http:
        icon = await http.get("/static/favicon.svg")
    assert icon.status_code == 200
    assert icon.headers["content-type"].startswith("image/svg+xml")
    assert icon.text.lstrip().startswith("<svg")
    await api_signup(live_server.url, tenant_name="Favicon")
    await page.goto("/login")
    link = page.locator('link[rel="icon"]')
    await expect(link).to_have_attribute("href", "/static/favicon.svg")
    await expect(link).to_have_attribute("type", "image/svg+xml")


async def test_phone_navigation_shows_every_section(
    browser: Browser, live_server: LiveServer
) -> None:
    admin = await api_signup(live_server.url, tenant_name="Phone")
    context = await browser.new_context(base_url=live_server.url, viewport=PHONE)
    try:
        await use_session(context, live_server.url, admin)
        page = await context.new_page()
        await page.goto("/")
        nav = page.get_by_role("navigation", name="Main")
        # An admin sees every section; each is on screen at once, without scrolling or a script.
        for _, label, href, _ in NAVIGATION:
            link = nav.get_by_role("link", name=label, exact=True)
            await expect(link).to_have_attribute("href", href)
            box = await link.bounding_box()
            assert box is not None, label
            assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], (label, box)
            assert box["y"] >= 0 and box["y"] + box["height"] <= PHONE["height"], (label, box)
        assert await page.evaluate(OVERFLOW) <= 0
    finally:
        await context.close()


async def _plant_long_names(live_server: LiveServer, tenant_id: str) -> tuple[str, str]:
    async def plant(db: Database) -> tuple[str, str]:
        async with db.session(tenant_id=UUID(tenant_id)) as session:
            template = Template(tenant_id=UUID(tenant_id), name=LONG_NAME)
            finished = datetime.now(UTC)
            deployment = Deployment(
                tenant_id=UUID(tenant_id),
                name=LONG_NAME,
                status="success",
                started_at=finished,
                completed_at=finished,
            )
            session.add_all([template, deployment])
            await session.flush()
            return str(template.id), str(deployment.id)

    planted: tuple[str, str] = await live_server.call(plant)
    return planted


async def test_long_names_wrap_instead_of_widening_the_page(
    browser: Browser, live_server: LiveServer
) -> None:
    admin = await api_signup(live_server.url, tenant_name="Long names")
    async with httpx.AsyncClient(base_url=live_server.url, headers=admin.headers) as http:
        host = await http.post(
            "/api/v1/hosts",
            json={
                "name": "h" * 100,
                "ip": "127.0.0.1",
                "user": "deploy",
                "password": host_password(),
            },
        )
        assert host.status_code == 201, host.text
    template_id, deployment_id = await _plant_long_names(live_server, admin.tenant_id)
    host_name = "h" * 100
    pages = (
        ("/", LONG_NAME),
        ("/templates", LONG_NAME),
        (f"/templates/{template_id}", LONG_NAME),
        ("/deployments", LONG_NAME),
        (f"/deployments/{deployment_id}", LONG_NAME),
        ("/hosts", host_name),
        (f"/hosts/{host.json()['id']}", host_name),
    )
    for viewport in (DESKTOP, PHONE):
        context = await browser.new_context(base_url=live_server.url, viewport=viewport)
        try:
            await use_session(context, live_server.url, admin)
            page = await context.new_page()
            for path, name in pages:
                response = await page.goto(path)
                assert response is not None and response.status == 200, path
                await expect(page.get_by_text(name[:40]).first).to_be_visible()
                sizes = await page.evaluate(
                    "() => [document.documentElement.scrollWidth,"
                    " document.documentElement.clientWidth]"
                )
                assert sizes[0] == sizes[1], (viewport["width"], path, sizes)
        finally:
            await context.close()


@pytest.fixture
def fresh_server(postgres: PostgresForTests, test_settings: Settings) -> Iterator[LiveServer]:
    """A server over an empty database of its own: nobody has signed up yet."""
    url = postgres.create_database()
    server = LiveServer(test_settings.model_copy(update={"signup": None}), url).start()
    try:
        yield server
    finally:
        server.stop()
        postgres.drop_database(url)


async def test_a_fresh_install_opens_on_sign_up(browser: Browser, fresh_server: LiveServer) -> None:
    context = await browser.new_context(base_url=fresh_server.url, viewport=DESKTOP)
    try:
        page = await context.new_page()
        await page.goto("/")
        await expect(page).to_have_url("/signup")
        await expect(page.get_by_role("button", name="Sign up")).to_be_visible()
        # Once somebody has an account, the log-in page is the log-in page again.
        await api_signup(fresh_server.url, tenant_name="First")
        await page.goto("/")
        await expect(page).to_have_url("/login")
        await expect(page.get_by_role("button", name="Log in")).to_be_visible()
    finally:
        await context.close()


async def test_empty_dashboard_shows_a_getting_started_checklist(
    page: Page, context: BrowserContext, live_server: LiveServer
) -> None:
    admin = await api_signup(live_server.url, tenant_name="Checklist")
    await use_session(context, live_server.url, admin)
    await page.goto("/")
    checklist = page.locator("#getting-started")
    await expect(checklist.get_by_role("heading", name="Getting started")).to_be_visible()
    steps = checklist.locator("li")
    await expect(steps).to_have_count(3)
    expected = (
        ("Connect a repository", "/repositories"),
        ("Add a host", "/hosts/new"),
        ("Run a first deployment", "/deployments/new"),
    )
    for index, (label, href) in enumerate(expected):
        step = steps.nth(index)
        await expect(step).to_have_attribute("data-done", "false")
        await expect(step.get_by_role("link", name=label)).to_have_attribute("href", href)
    # Adding a host ticks its item; the others stay to do.
    async with httpx.AsyncClient(base_url=live_server.url, headers=admin.headers) as http:
        created = await http.post(
            "/api/v1/hosts",
            json={
                "name": "first-host",
                "ip": "127.0.0.1",
                "user": "deploy",
                "password": host_password(),
            },
        )
        assert created.status_code == 201, created.text
    await page.reload()
    await expect(steps.nth(1)).to_have_attribute("data-done", "true")
    await expect(steps.nth(1)).to_contain_text("(done)")
    await expect(steps.nth(0)).to_have_attribute("data-done", "false")
    await expect(steps.nth(2)).to_have_attribute("data-done", "false")
    await steps.nth(1).get_by_role("link", name="Add a host").click()
    await expect(page).to_have_url("/hosts/new")
