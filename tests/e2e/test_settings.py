"""Members, roles and API tokens in the browser; roles shown in the interface and enforced."""

from __future__ import annotations

from playwright.async_api import BrowserContext, Page, expect

from tests.support.api import unique_email
from tests.support.browser import LiveServer, api_add_member, api_signup, use_session


async def test_admin_manages_members_in_place(
    page: Page, context: BrowserContext, live_server: LiveServer
) -> None:
    admin = await api_signup(live_server.url)
    await use_session(context, live_server.url, admin)
    await page.goto("/settings/members")
    email = unique_email("teammate")
    form = page.locator("form[action='/settings/members']")
    await form.get_by_label("E-mail").fill(email)
    await form.get_by_label("Name").fill("Tea Mate")
    await form.get_by_label("Initial password").fill("a long first password")
    await form.get_by_label("Role").select_option("viewer")
    await form.get_by_role("button", name="Add member").click()
    await expect(page.get_by_role("status").first).to_have_text(f"{email} was added.")

    row = page.locator(f"tr[data-email='{email}']")
    await row.get_by_label(f"Role of {email}").select_option("developer")
    await row.get_by_role("button", name="Change").click()
    # Swapped in place by HTMX: the page did not reload, the row says what happened.
    await expect(row.get_by_role("status")).to_have_text(f"{email} is now developer.")
    await page.goto("/settings/members")
    await expect(row.get_by_label(f"Role of {email}")).to_have_value("developer")

    page.once("dialog", lambda dialog: dialog.accept())
    await row.get_by_role("button", name="Remove").click()
    await expect(row).to_have_count(0)
    await page.goto("/settings/members")
    await expect(page.locator(f"tr[data-email='{email}']")).to_have_count(0)


async def test_last_admin_error_is_shown_in_words(
    page: Page, context: BrowserContext, live_server: LiveServer
) -> None:
    admin = await api_signup(live_server.url)
    await use_session(context, live_server.url, admin)
    await page.goto("/settings/members")
    row = page.locator(f"tr[data-email='{admin.email}']")
    await row.get_by_label(f"Role of {admin.email}").select_option("viewer")
    await row.get_by_role("button", name="Change").click()
    await expect(page.locator("#alerts [role=alert]")).to_have_text(
        "A tenant needs at least one admin."
    )


async def test_api_token_is_shown_once_then_revoked(
    page: Page, context: BrowserContext, live_server: LiveServer
) -> None:
    admin = await api_signup(live_server.url)
    await use_session(context, live_server.url, admin)
    await page.goto("/settings/tokens")
    await expect(page.get_by_text("No API tokens yet")).to_be_visible()
    await page.get_by_label("Name").fill("deploy bot")
    await page.get_by_role("button", name="Create token").click()
    secret = await page.locator("#new-token").inner_text()
    assert secret.startswith("shy_")
    me = await page.request.get(
        f"{live_server.url}/api/v1/me", headers={"Authorization": f"Bearer {secret}"}
    )
    assert me.ok
    await page.goto("/settings/tokens")
    await expect(page.locator("#new-token")).to_have_count(0)
    await expect(page.locator("body")).not_to_contain_text(secret)
    row = page.locator("tr", has_text="deploy bot")
    page.once("dialog", lambda dialog: dialog.accept())
    await row.get_by_role("button", name="Revoke").click()
    await expect(row.get_by_text("revoked")).to_be_visible()
    me = await page.request.get(
        f"{live_server.url}/api/v1/me", headers={"Authorization": f"Bearer {secret}"}
    )
    assert me.status == 401


async def test_viewer_sees_no_controls_and_a_forged_request_is_refused(
    page: Page, context: BrowserContext, live_server: LiveServer
) -> None:
    admin = await api_signup(live_server.url)
    viewer = await api_add_member(live_server.url, admin, "viewer")
    await use_session(context, live_server.url, viewer)
    await page.goto("/settings/members")
    await expect(page.locator("[data-role]")).to_have_text("viewer")
    await expect(page.get_by_role("cell", name=admin.email, exact=True)).to_be_visible()
    await expect(page.get_by_role("button", name="Add member")).to_have_count(0)
    await expect(page.get_by_role("button", name="Change")).to_have_count(0)
    await expect(page.get_by_role("button", name="Remove")).to_have_count(0)
    await page.goto("/")
    await expect(page.locator("#hosts")).to_contain_text("No hosts yet")
    await expect(page.locator("#hosts a", has_text="add one")).to_have_count(0)

    # The viewer forges what an admin's form would send, with a valid CSRF token.
    token = await page.locator("input[name=csrf_token]").first.get_attribute("value")
    assert token
    forged = await page.request.post(
        f"{live_server.url}/settings/members",
        form={
            "email": unique_email("forged"),
            "password": "long enough password",
            "role": "admin",
            "csrf_token": token,
        },
    )
    assert forged.status == 403
    assert "does not allow this" in await forged.text()
    promote = await page.request.post(
        f"{live_server.url}/settings/members/{viewer.user_id}/role",
        form={"role": "admin", "csrf_token": token},
    )
    assert promote.status == 403
    await page.goto("/settings/members")
    await expect(page.locator("tbody tr")).to_have_count(2)
    await expect(page.locator("[data-role]")).to_have_text("viewer")


async def test_csrf_rejected_without_a_token(
    page: Page, context: BrowserContext, live_server: LiveServer
) -> None:
    admin = await api_signup(live_server.url)
    await use_session(context, live_server.url, admin)
    await page.goto("/settings/tokens")
    # Same cookies as the page, but no token: what a cross-site form post would look like.
    forged = await page.request.post(f"{live_server.url}/settings/tokens", form={"name": "planted"})
    assert forged.status == 403
    assert "came from another site" in await forged.text()
    # The form itself carries the token and works.
    await page.get_by_label("Name").fill("real")
    await page.get_by_role("button", name="Create token").click()
    await expect(page.locator("#new-token")).to_be_visible()
    await page.goto("/settings/tokens")
    await expect(page.locator("tbody tr")).to_have_count(1)
    await expect(page.locator("tbody")).not_to_contain_text("planted")
