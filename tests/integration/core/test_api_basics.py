"""Health, readiness, OpenAPI, the error shape, and keyset pagination."""

from __future__ import annotations

from uuid import UUID

import httpx

from shipyard.db import Database
from shipyard.hosts.models import Host
from tests.support.api import Account


async def test_health_and_readiness(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    # No worker runs in this test: the database is fine, and readiness says what is missing.
    assert ready.status_code == 503
    assert ready.json()["database"] == "ok"
    assert ready.json()["migrations"]["current"] == ready.json()["migrations"]["head"]
    assert ready.json()["worker"]["last_heartbeat"] is None


async def test_openapi_and_docs_are_served(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    for path in (
        "/api/v1/auth/signup",
        "/api/v1/hosts",
        "/api/v1/deployments",
        "/api/v1/git-providers",
        "/api/v1/repositories",
        "/api/v1/cicd-providers",
        "/api/v1/cicd-jobs",
        "/api/v1/tenant/members",
    ):
        assert path in spec["paths"], path
    assert (await client.get("/docs")).status_code == 200


async def test_unknown_route_uses_the_error_shape(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert set(response.json()["error"]) == {"code", "message", "details"}


async def test_pagination_returns_every_row_exactly_once(
    client: httpx.AsyncClient, admin: Account, db: Database
) -> None:
    tenant = UUID(admin.tenant_id)
    # Several rows share one created_at (one transaction), so the id must break ties.
    async with db.session(tenant_id=tenant) as session:
        session.add_all(
            Host(tenant_id=tenant, name=f"h{i:02d}", type="ssh", ip="127.0.0.1") for i in range(23)
        )
    async with db.session(tenant_id=tenant) as session:
        session.add_all(
            Host(tenant_id=tenant, name=f"g{i:02d}", type="ssh", ip="127.0.0.1") for i in range(4)
        )
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        params = {"limit": 5, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/api/v1/hosts", headers=admin.headers, params=params)).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 27 and len(set(seen)) == 27
    # Newest first: the second transaction's hosts come first.
    names = [
        item["name"]
        for item in (await client.get("/api/v1/hosts?limit=4", headers=admin.headers)).json()[
            "items"
        ]
    ]
    assert all(name.startswith("g") for name in names)


async def test_bad_cursor_is_422_naming_cursor(client: httpx.AsyncClient, admin: Account) -> None:
    response = await client.get("/api/v1/deployments?cursor=!!!", headers=admin.headers)
    assert response.status_code == 422
    assert response.json()["error"]["details"]["errors"][0]["field"] == "cursor"
