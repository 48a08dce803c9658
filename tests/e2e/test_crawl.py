"""No page reachable from the navigation answers with a server error, for any role."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from playwright.async_api import BrowserContext

from shipyard.crypto import load_keyring
from shipyard.db import Database
from tests.fixtures.git import MakeGitRepo
from tests.support.browser import LiveServer, api_add_member, api_signup, use_session
from tests.support.browser_crawl import crawl
from tests.support.browser_seed import populate_tenant

NAVIGATION = ("/", "/repositories", "/hosts", "/deployments", "/templates", "/cicd", "/settings")


@pytest.fixture
async def server_db(live_server: LiveServer) -> AsyncIterator[Database]:
    database = Database(
        live_server.database_url, keyring=load_keyring(live_server.settings), pool_size=2
    )
    yield database
    await database.dispose()


async def test_every_linked_page_answers_without_server_error(
    context: BrowserContext,
    live_server: LiveServer,
    server_db: Database,
    make_git_repo: MakeGitRepo,
) -> None:
    admin = await api_signup(live_server.url, tenant_name="Crawl")
    await populate_tenant(live_server, admin, server_db, make_git_repo)
    viewer = await api_add_member(live_server.url, admin, "viewer")
    for account in (admin, viewer):
        await context.clear_cookies()
        await use_session(context, live_server.url, account)
        result = await crawl(context.request, live_server.url)
        assert set(NAVIGATION) <= set(result.statuses), result.statuses
        assert result.server_errors == {}, result.server_errors
        assert result.errors == {}
        # Detail pages were reached, not just the lists.
        visited = " ".join(result.statuses)
        for part in ("/deployments/", "/hosts/", "/repositories/", "/file?", "/log.txt"):
            assert part in visited, part
        broken = {path: status for path, status in result.statuses.items() if status >= 400}
        assert broken == {}, broken
