"""Hosts in the browser against real sshd: add, test inline, generated keys, changed host keys."""

from __future__ import annotations

import re

from playwright.async_api import BrowserContext, Page, expect

from tests.support.browser import LiveServer, api_add_member, api_signup, use_session
from tests.support.sshd import PrivateEndpoint, SSHEndpoint

# The host's own name field ("Name *"), not the variable rows' "Variable N name".
HOST_NAME_LABEL = re.compile(r"^Name")


async def _add_host(page: Page, name: str, endpoint: SSHEndpoint, *, auth: str) -> None:
    await page.goto("/hosts")
    await page.get_by_role("link", name="Add host").click()
    await page.get_by_label(HOST_NAME_LABEL).fill(name)
    await page.get_by_label("Address").fill(endpoint.host)
    await page.get_by_label("SSH port").fill(str(endpoint.port))
    await page.locator("#f-user").fill(endpoint.user)
    if auth == "password":
        await page.get_by_role("radio", name="Password").check()
        await page.locator("#f-password").fill(endpoint.password)
    elif auth == "key":
        await page.get_by_role("radio", name="Private key").check()
        await page.locator("#f-private_key").fill(endpoint.private_key)
    else:
        await page.get_by_role("radio", name="Generate a new key pair").check()
    await page.get_by_role("button", name="Add host").click()
    await expect(page.get_by_role("heading", name=name)).to_be_visible()


async def test_add_a_host_and_test_it_inline(
    page: Page, context: BrowserContext, live_server: LiveServer, ssh_endpoint: SSHEndpoint
) -> None:
    admin = await api_signup(live_server.url)
    await use_session(context, live_server.url, admin)
    await page.goto("/hosts")
    await expect(page.get_by_text("No hosts yet")).to_be_visible()
    await _add_host(page, "web-1", ssh_endpoint, auth="password")
    await expect(page.get_by_role("status").first).to_contain_text("Test the connection")
    await expect(page.locator("#host-status [data-status]")).to_have_text("unknown")

    await page.get_by_role("button", name="Test connection").click()
    result = page.locator("#test-result")
    await expect(result).to_contain_text("Connected")
    await expect(page.locator("#host-status [data-status]")).to_have_text("online")
    # The key seen on the first successful test is now the trusted one.
    await expect(page.locator("#fingerprint")).to_have_text(ssh_endpoint.host_key_fingerprint)
    await expect(page.locator("#host-status")).to_contain_text("Linux")

    # The list shows the badge, and testing from a row updates that row in place.
    await page.goto("/hosts")
    row = page.locator("tr[data-name='web-1']")
    await expect(row.locator("[data-status]")).to_have_text("online")
    await row.get_by_role("button", name="Test").click()
    await expect(row.locator(".test-message")).to_be_visible()
    await page.goto("/hosts?status=offline")
    await expect(page.get_by_text("No hosts match these filters")).to_be_visible()


async def test_wrong_password_and_name_clash_are_explained(
    page: Page, context: BrowserContext, live_server: LiveServer, ssh_endpoint: SSHEndpoint
) -> None:
    admin = await api_signup(live_server.url)
    await use_session(context, live_server.url, admin)
    wrong = SSHEndpoint(**{**ssh_endpoint.__dict__, "password": "not the password"})
    await _add_host(page, "db-1", wrong, auth="password")
    await page.get_by_role("button", name="Test connection").click()
    await expect(page.locator("#test-result")).to_contain_text("Test failed")
    await expect(page.locator("#host-status [data-status]")).to_have_text("auth failed")

    await page.goto("/hosts/new")
    await page.get_by_label(HOST_NAME_LABEL).fill("db-1")
    await page.get_by_label("Address").fill("not a host!")
    await page.get_by_role("button", name="Add host").click()
    await expect(page.locator("#e-ip")).to_contain_text("IP address or a host name")
    await page.get_by_label("Address").fill("127.0.0.1")
    await page.locator("#f-user").fill("deploy")
    await page.locator("#f-password").fill("whatever")
    await page.get_by_role("button", name="Add host").click()
    await expect(page.locator("#e-name")).to_contain_text("already exists")
    await expect(page.locator("body")).not_to_contain_text("Traceback")


async def test_generated_key_pair_shows_the_public_key(
    page: Page, context: BrowserContext, live_server: LiveServer, ssh_endpoint: SSHEndpoint
) -> None:
    admin = await api_signup(live_server.url)
    await use_session(context, live_server.url, admin)
    await _add_host(page, "fresh", ssh_endpoint, auth="generate")
    public_key = await page.locator("#public-key").input_value()
    assert public_key.startswith("ssh-ed25519 ") and "shipyard@fresh" in public_key
    await expect(page.locator("body")).not_to_contain_text("PRIVATE KEY")
    # The new key is not in the server's authorized_keys yet: the test says so.
    await page.get_by_role("button", name="Test connection").click()
    await expect(page.locator("#host-status [data-status]")).to_have_text("auth failed")

    # Switching to the endpoint's real key through the edit form makes it work.
    await page.get_by_role("link", name="Edit").click()
    await page.get_by_role("radio", name="Private key").check()
    await page.locator("#f-private_key").fill(ssh_endpoint.private_key)
    await page.get_by_role("button", name="Save").click()
    await page.get_by_role("button", name="Test connection").click()
    await expect(page.locator("#host-status [data-status]")).to_have_text("online")


async def test_changed_host_key_is_shown_and_can_be_accepted(
    page: Page, context: BrowserContext, live_server: LiveServer, private_sshd: PrivateEndpoint
) -> None:
    admin = await api_signup(live_server.url)
    await use_session(context, live_server.url, admin)
    endpoint = private_sshd.endpoint
    await _add_host(page, "rekeyed", endpoint, auth="password")
    await page.get_by_role("button", name="Test connection").click()
    await expect(page.locator("#fingerprint")).to_have_text(endpoint.host_key_fingerprint)

    changed = private_sshd.restart(new_host_key=True)
    assert changed.host_key_fingerprint != endpoint.host_key_fingerprint
    await page.get_by_role("button", name="Test connection").click()
    await expect(page.locator("#host-status [data-status]")).to_have_text("host key mismatch")
    await expect(page.locator("#pending-fingerprint")).to_have_text(changed.host_key_fingerprint)
    await expect(page.locator("#fingerprint")).to_have_text(endpoint.host_key_fingerprint)

    await page.get_by_role("button", name="Trust the new key").click()
    await expect(page.locator("#fingerprint")).to_have_text(changed.host_key_fingerprint)
    await expect(page.locator("#key-mismatch")).to_have_count(0)
    await page.get_by_role("button", name="Test connection").click()
    await expect(page.locator("#host-status [data-status]")).to_have_text("online")


async def test_developer_tests_but_cannot_manage_and_viewer_only_looks(
    page: Page, context: BrowserContext, live_server: LiveServer, ssh_endpoint: SSHEndpoint
) -> None:
    admin = await api_signup(live_server.url)
    await use_session(context, live_server.url, admin)
    await _add_host(page, "shared", ssh_endpoint, auth="password")
    host_url = page.url.split("?")[0]
    developer = await api_add_member(live_server.url, admin, "developer")
    viewer = await api_add_member(live_server.url, admin, "viewer")

    await context.clear_cookies()
    await use_session(context, live_server.url, developer)
    await page.goto(host_url)
    await expect(page.get_by_role("link", name="Edit")).to_have_count(0)
    await expect(page.get_by_role("button", name="Delete")).to_have_count(0)
    await page.get_by_role("button", name="Test connection").click()
    await expect(page.locator("#host-status [data-status]")).to_have_text("online")

    await context.clear_cookies()
    await use_session(context, live_server.url, viewer)
    await page.goto(host_url)
    await expect(page.get_by_role("button", name="Test connection")).to_have_count(0)
    await page.goto("/hosts")
    await expect(page.get_by_role("link", name="Add host")).to_have_count(0)
    token = await page.locator("input[name=csrf_token]").first.get_attribute("value")
    assert token
    for path in ("/test", "/delete", "/generate-key"):
        forged = await page.request.post(f"{host_url}{path}", form={"csrf_token": token})
        assert forged.status == 403, path
    forged = await page.request.post(
        f"{live_server.url}/hosts/new",
        form={"name": "x", "ip": "127.0.0.1", "user": "u", "password": "p", "csrf_token": token},
    )
    assert forged.status == 403
