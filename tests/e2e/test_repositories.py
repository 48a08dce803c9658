"""Git providers and repositories in the browser: connect and sync, pin, browse, scripts."""

from __future__ import annotations

import re

import httpx
from playwright.async_api import BrowserContext, Page, expect

from tests.fakes.github import FakeGitHub
from tests.fixtures.git import MakeGitRepo
from tests.support.browser import LiveServer, api_add_member, api_signup, use_session
from tests.support.browser_git import github_account_with
from tests.support.git_server import GitFile, GitHttpServer

FILES = {
    "README.md": GitFile("# Service\n"),
    "scripts/deploy.sh": GitFile('#!/bin/sh\necho deploying "$1"\n', executable=True),
    "scripts/migrate.py": GitFile("print('migrating')\n"),
}


async def test_connect_a_provider_sync_and_browse(
    page: Page,
    context: BrowserContext,
    live_server: LiveServer,
    fake_github: FakeGitHub,
    git_server: GitHttpServer,
    make_git_repo: MakeGitRepo,
) -> None:
    hosted = make_git_repo(FILES, name="billing-api")
    token = github_account_with(fake_github, git_server, hosted, login="octo")
    admin = await api_signup(live_server.url)
    await use_session(context, live_server.url, admin)

    await page.goto("/repositories")
    await expect(page.get_by_text("No repositories yet")).to_be_visible()
    await page.get_by_role("link", name="connect a Git provider").click()
    await expect(page.get_by_text("No Git provider connected yet")).to_be_visible()

    # A wrong token is refused with the provider's reason, next to the field.
    await page.get_by_label("Provider", exact=True).first.select_option("github")
    await page.locator("#f-server_url").first.fill(fake_github.server_url)
    await page.locator("#f-access_token").fill("ghp_wrong")
    await page.get_by_role("button", name="Connect", exact=True).click()
    await expect(page.locator("#e-access_token")).to_contain_text("refused the token")
    await expect(page.locator("#f-server_url").first).to_have_value(fake_github.server_url)

    await page.locator("#f-access_token").fill(token)
    await page.get_by_role("button", name="Connect", exact=True).click()
    await expect(page.get_by_role("status").first).to_contain_text("Connected")
    row = page.locator("tr[data-name='octo']")
    await expect(row.get_by_text("connected", exact=True)).to_be_visible()
    # The first sync runs in the worker; the row follows it without a reload.
    await expect(row).to_have_attribute("data-sync", "synced", timeout=20_000)
    await expect(row.locator(".repo-count")).to_have_text("1")
    await expect(row.locator("time")).to_be_visible()

    await row.get_by_role("button", name="Sync now").click()
    await expect(row).to_have_attribute("data-sync", "synced", timeout=20_000)

    await page.get_by_role("link", name="All repositories").click()
    await page.get_by_role("link", name="octo/billing-api").click()
    await expect(page.get_by_role("heading", name="octo/billing-api")).to_be_visible()
    await expect(page.locator("#branches")).to_contain_text("main")
    await expect(page.locator("#scripts")).to_contain_text("scripts/deploy.sh")
    await expect(page.locator("#scripts")).to_contain_text("scripts/migrate.py")
    await expect(page.locator("#scripts")).not_to_contain_text("README.md")

    await page.goto(page.url + "?path=scripts")
    await expect(page.locator("#tree")).to_contain_text("deploy.sh")
    await page.locator("#tree").get_by_role("link", name="migrate.py").click()
    code = page.locator(".code-view")
    await expect(code).to_contain_text("print('migrating')")
    # Highlighted: the string is its own token.
    await expect(code.locator(".s1, .s2, .s").first).to_contain_text("migrating")


async def test_sync_errors_are_in_plain_words(
    page: Page,
    context: BrowserContext,
    live_server: LiveServer,
    fake_github: FakeGitHub,
    git_server: GitHttpServer,
    make_git_repo: MakeGitRepo,
) -> None:
    hosted = make_git_repo(FILES, name="ledger")
    token = github_account_with(fake_github, git_server, hosted, login="mona")
    admin = await api_signup(live_server.url)
    await use_session(context, live_server.url, admin)
    await page.goto("/repositories/providers")
    await page.locator("#f-server_url").first.fill(fake_github.server_url)
    await page.locator("#f-access_token").fill(token)
    await page.get_by_role("button", name="Connect", exact=True).click()
    row = page.locator("tr[data-name='mona']")
    await expect(row).to_have_attribute("data-sync", "synced", timeout=20_000)

    fake_github.forge.revoke(token)
    await row.get_by_role("button", name="Sync now").click()
    await expect(row).to_have_attribute("data-sync", "error", timeout=20_000)
    await expect(row.locator(".sync-error")).to_contain_text("refused the token")
    await expect(page.locator("body")).not_to_contain_text("Traceback")


async def test_pin_a_repository_in_place(
    page: Page,
    context: BrowserContext,
    live_server: LiveServer,
    git_server: GitHttpServer,
    make_git_repo: MakeGitRepo,
) -> None:
    admin = await api_signup(live_server.url)
    viewer = await api_add_member(live_server.url, admin, "viewer")
    await use_session(context, live_server.url, admin)
    # Public repositories can be added by URL, without a provider.
    for name in ("alpha", "zulu"):
        hosted = make_git_repo(FILES, public=True, name=f"{name}-{admin.user_id[:6]}")
        await page.goto("/repositories")
        await page.get_by_label("Clone URL").fill(hosted.clone_url)
        await page.get_by_role("button", name="Add repository").click()
        await expect(page.locator("#scripts")).to_contain_text("scripts/deploy.sh")
    # The file browser: a folder, then a file with its syntax highlighted.
    await page.goto(page.url + "?path=scripts")
    await expect(page.locator(".crumbs")).to_contain_text("scripts")
    await page.locator("#tree").get_by_role("link", name="deploy.sh").click()
    await expect(page.locator(".code-view")).to_contain_text('echo deploying "$1"')
    await expect(page.locator(".code-view .nb, .code-view .s2").first).to_be_visible()

    await context.clear_cookies()
    await use_session(context, live_server.url, viewer)
    await page.goto("/repositories")
    items = page.locator("#repositories > li")
    await expect(items).to_have_count(2)
    await expect(items.first).to_contain_text("alpha")
    zulu = page.locator("#repositories > li", has_text="zulu")
    await zulu.get_by_role("button", name="Pin").click()
    # Pinned in place: the button flips without leaving the page.
    await expect(zulu.get_by_role("button", name="Unpin")).to_have_attribute("aria-pressed", "true")
    await page.reload()
    await expect(items.first).to_contain_text("zulu")
    await page.get_by_label("Pinned only").check()
    await page.get_by_role("button", name="Search").click()
    await expect(items).to_have_count(1)
    await page.goto("/")
    await expect(page.locator("#pinned")).to_contain_text("zulu")
    await expect(page.locator("#pinned")).not_to_contain_text("alpha")
    # Viewers pin but do not add repositories.
    await page.goto("/repositories")
    await expect(page.get_by_role("button", name="Add repository")).to_have_count(0)
    await page.goto("/repositories/providers")
    await expect(page.get_by_role("button", name="Connect", exact=True)).to_have_count(0)


async def test_connect_a_provider_with_oauth(
    page: Page,
    context: BrowserContext,
    live_server: LiveServer,
    fake_github: FakeGitHub,
) -> None:
    fake_github.forge.add_user("linus", "Linus T")
    fake_github.forge.add_many(3, owner="linus")
    client_id, secret = fake_github.forge.add_oauth_client()
    admin = await api_signup(live_server.url)
    async with httpx.AsyncClient(base_url=live_server.url, headers=admin.headers) as http:
        registered = await http.post(
            "/api/v1/git-oauth-apps",
            json={
                "type": "github",
                "server_url": fake_github.server_url,
                "client_id": client_id,
                "client_secret": secret,
            },
        )
        assert registered.status_code == 201, registered.text
    await use_session(context, live_server.url, admin)
    # The fake's consent page approves for the user this header names.
    await context.set_extra_http_headers({"X-Fake-Login": "linus"})
    await page.goto("/repositories/providers")
    oauth = page.locator("form[action='/repositories/providers/oauth']")
    await oauth.get_by_label("Provider").select_option("github")
    await oauth.get_by_label("Server URL (self-hosted only)").fill(fake_github.server_url)
    await oauth.get_by_role("button", name="Continue to the provider").click()
    # Back on our page after the provider's consent, with the account connected.
    await expect(page).to_have_url(re.compile(r"/repositories/providers\?provider_id="))
    await expect(page.get_by_role("status").first).to_contain_text("Connected")
    row = page.locator("tr[data-name='linus']")
    await expect(row).to_contain_text("Linus T")
    await expect(row).to_have_attribute("data-sync", "synced", timeout=20_000)
    await expect(row.locator(".repo-count")).to_have_text("3")
