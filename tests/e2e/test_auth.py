"""Sign-up, log-in and log-out in a real browser."""

from __future__ import annotations

import re

from playwright.async_api import Locator, Page, expect

from tests.support.api import unique_email
from tests.support.browser import LiveServer, api_signup

PASSWORD = "correct horse battery"


def password_form(page: Page) -> Locator:
    """The log-in page's password form (the page also has a single sign-on form)."""
    return page.locator("form").filter(has=page.get_by_role("button", name="Log in"))


async def test_sign_up_lands_on_the_dashboard_as_admin(page: Page) -> None:
    email = unique_email("signup")
    await page.goto("/signup")
    await page.get_by_label("Your name").fill("Grace Hopper")
    await page.get_by_label("E-mail").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_label("Team name").fill("Harbour")
    await page.get_by_role("button", name="Sign up").click()
    await expect(page).to_have_url("/")
    await expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    await expect(page.locator(".who")).to_contain_text(email)
    await expect(page.locator("[data-role]")).to_have_text("admin")
    # A new team has nothing yet, and says so.
    await expect(page.locator("#recent")).to_contain_text("No deployments yet")
    await expect(page.locator("#hosts")).to_contain_text("No hosts yet")


async def test_sign_up_shows_field_errors_inline(page: Page, live_server: LiveServer) -> None:
    taken = await api_signup(live_server.url)
    await page.goto("/signup")
    await page.get_by_label("E-mail").fill("not-an-address")
    await page.get_by_label("Password").fill("short")
    await page.get_by_role("button", name="Sign up").click()
    await expect(page.locator("#e-email")).to_be_visible()
    await expect(page.locator("#e-password")).to_contain_text("8 characters")
    await expect(page.locator("#e-tenant_name")).to_be_visible()
    # What was typed is kept, except the password.
    await expect(page.get_by_label("E-mail")).to_have_value("not-an-address")
    await page.get_by_label("E-mail").fill(taken.email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_label("Team name").fill("Again")
    await page.get_by_role("button", name="Sign up").click()
    # A taken e-mail is not revealed: the page goes on as for a new account, whose session
    # opens nothing, so its owner lands on the log-in page.
    await expect(page).to_have_url(re.compile(r"/login"))
    await expect(page.locator("body")).not_to_contain_text("already exists")
    await expect(page.locator("body")).not_to_contain_text("Traceback")


async def test_log_in_and_out(page: Page, live_server: LiveServer) -> None:
    account = await api_signup(live_server.url)
    await page.goto("/settings/members")
    # Not logged in: sent to the log-in page, and back where we wanted to go afterwards.
    await expect(page).to_have_url("/login?next=%2Fsettings%2Fmembers")
    await password_form(page).get_by_label("E-mail").fill(account.email)
    await page.get_by_label("Password").fill("wrong password")
    await page.get_by_role("button", name="Log in").click()
    await expect(page.get_by_role("alert")).to_have_text("E-mail or password is wrong.")
    await page.get_by_label("Password").fill(account.password)
    await page.get_by_role("button", name="Log in").click()
    await expect(page).to_have_url("/settings/members")
    await expect(page.get_by_role("cell", name=account.email, exact=True)).to_be_visible()

    cookies = {c["name"]: c for c in await page.context.cookies()}
    session = cookies["shipyard_session"]
    assert session["httpOnly"] is True
    assert session["sameSite"] == "Lax"

    await page.get_by_role("button", name="Log out").click()
    await expect(page).to_have_url("/login")
    names = {c["name"] for c in await page.context.cookies()}
    assert "shipyard_session" not in names
    # The old session token is revoked on the server, not just forgotten by the browser.
    await page.context.add_cookies(
        [{"name": "shipyard_session", "value": session["value"], "url": live_server.url}]
    )
    await page.goto("/")
    await expect(page).to_have_url("/login")


async def test_next_parameter_never_leaves_the_site(page: Page, live_server: LiveServer) -> None:
    account = await api_signup(live_server.url)
    await page.goto("/login?next=//evil.example/steal")
    await password_form(page).get_by_label("E-mail").fill(account.email)
    await page.get_by_label("Password").fill(account.password)
    await page.get_by_role("button", name="Log in").click()
    await expect(page).to_have_url("/")
