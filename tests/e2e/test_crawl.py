"""No page reachable from the navigation answers with a server error, for any role."""

from __future__ import annotations

from playwright.async_api import BrowserContext, Page

from tests.support.browser import LiveServer, api_add_member, api_signup, use_session
from tests.support.browser_crawl import crawl

NAVIGATION = ("/", "/repositories", "/hosts", "/deployments", "/cicd", "/settings")


async def test_every_linked_page_answers_without_server_error(
    page: Page, context: BrowserContext, live_server: LiveServer
) -> None:
    admin = await api_signup(live_server.url, tenant_name="Crawl")
    viewer = await api_add_member(live_server.url, admin, "viewer")
    for account in (admin, viewer):
        await context.clear_cookies()
        await use_session(context, live_server.url, account)
        result = await crawl(page, live_server.url)
        assert set(NAVIGATION) <= set(result.statuses), result.statuses
        assert result.server_errors == {}, result.server_errors
        assert result.errors == {}
        assert all(status < 400 for status in result.statuses.values()), result.statuses
