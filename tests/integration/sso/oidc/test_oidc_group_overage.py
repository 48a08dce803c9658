"""Entra ID's group overage: past 200 groups the ID token carries a claim source instead of the
groups, and the sign-in reads them from Microsoft Graph (a fake, on loopback) with the access
token, page by page, only from the provider's ``graph_url``."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import select

from shipyard.accounts.models import User
from shipyard.config import Settings
from shipyard.db import Database
from tests.fakes.microsoft_graph import FakeGraph
from tests.integration.sso.oidc.test_oidc_sign_in import (
    Browser,
    add_oidc_provider,
    add_rule,
    browser,
    me,
    sign_in,
)
from tests.support.api import Account, unique_email
from tests.support.oidc_provider import OidcAccount, OidcProvider

__all__ = ["browser"]  # the fixture, shared with the sign-in tests

# More than fit in an Entra ID token; the one the role rule names is on the third page.
GROUPS = [f"5f0c{index:04d}-0000-4000-8000-00000000000{index % 10}" for index in range(250)]


@pytest.fixture
def graph(idp: OidcProvider) -> Iterator[FakeGraph]:
    discovery = httpx.get(f"{idp.issuer}/.well-known/openid-configuration", timeout=10).json()
    fake = FakeGraph(userinfo_url=str(discovery["userinfo_endpoint"])).start()
    try:
        yield fake
    finally:
        fake.stop()


async def signing_in_with_overage(
    client: httpx.AsyncClient,
    admin: Account,
    idp: OidcProvider,
    graph: FakeGraph,
    *,
    login: str,
    rule: tuple[str, str],
) -> tuple[str, str]:
    """An Entra-like provider reading Graph at the fake, a role rule, and a person past the
    token's group limit: (the provider's id, the person's e-mail)."""
    provider_id = await add_oidc_provider(
        client, admin, idp, name="Entra", settings={"graph_url": graph.url}
    )
    stored = await client.get(f"/api/v1/sso/providers/{provider_id}", headers=admin.headers)
    assert stored.json()["config"]["graph_url"] == graph.url
    await add_rule(client, admin, *rule)
    email = unique_email(login)
    idp.set_account(login, OidcAccount(email, login.title(), group_overage=True))
    graph.groups[login] = GROUPS
    return provider_id, email


async def test_groups_past_the_tokens_limit_are_read_from_graph_page_by_page(
    client: httpx.AsyncClient,
    admin: Account,
    idp: OidcProvider,
    graph: FakeGraph,
    browser: Browser,
    settings: Settings,
) -> None:
    provider_id, email = await signing_in_with_overage(
        client, admin, idp, graph, login="ovi", rule=(GROUPS[240], "admin")
    )
    async with browser() as web:
        landed = await sign_in(web, provider_id, settings, login="ovi")
        assert landed.status_code == 303, landed.text
        who = await me(web)
        assert (who["email"], who["role"]) == (email, "admin")
    # Three pages of 100, the token accepted by the fake (it asks the provider who it is).
    assert len(graph.requests) == 3
    assert all("transitiveMemberOf" in url for url in graph.requests)


async def test_a_graph_that_refuses_or_links_elsewhere_stops_the_sign_in_with_the_reason(
    client: httpx.AsyncClient,
    admin: Account,
    idp: OidcProvider,
    graph: FakeGraph,
    browser: Browser,
    settings: Settings,
    db: Database,
) -> None:
    provider_id, email = await signing_in_with_overage(
        client, admin, idp, graph, login="rex", rule=(GROUPS[0], "developer")
    )

    graph.refuse = True
    async with browser() as web:
        refused = await sign_in(web, provider_id, settings, login="rex")
        assert refused.status_code in (401, 403), refused.text
        assert "GroupMember.Read.All" in refused.text
        assert (await web.get("/api/v1/me")).status_code == 401

    # The next page's link points at another host: the access token is not sent there.
    graph.refuse = False
    graph.next_link_base = "http://127.0.0.2:9"
    graph.requests.clear()
    async with browser() as web:
        refused = await sign_in(web, provider_id, settings, login="rex")
        assert refused.status_code in (401, 403), refused.text
        assert "another host" in refused.text
    assert len(graph.requests) == 1
    async with db.session(system=True) as session:
        assert await session.scalar(select(User).where(User.email == email)) is None
