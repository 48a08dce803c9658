"""The deployments list (filters, pages) and a deployment's page over HTTP."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from uuid import UUID

import httpx

from shipyard.db import Database
from shipyard.deployments.models import Deployment
from tests.support.api import Account, add_member
from tests.support.browser_http import browser_client, csrf_token


async def _seed_many(db: Database, account: Account, count: int) -> None:
    base = datetime.now(UTC) - timedelta(hours=1)
    async with db.session(tenant_id=UUID(account.tenant_id)) as session:
        for index in range(count):
            session.add(
                Deployment(
                    name=f"release {index:02d}",
                    status="failed" if index % 10 == 0 else "success",
                    created_at=base + timedelta(seconds=index),
                )
            )


def _names(html: str) -> list[str]:
    return re.findall(r'<a href="/deployments/[0-9a-f-]{36}">([^<]+)</a>', html)


async def test_list_pages_filters_and_empty_states(
    client: httpx.AsyncClient, db: Database, admin: Account, other_admin: Account
) -> None:
    await _seed_many(db, admin, 30)
    async with browser_client(client, admin) as http:
        first = (await http.get("/deployments")).text
        names = _names(first)
        assert names[0] == "release 29" and len(names) == 25
        older = re.search(r'rel="next" href="([^"]+)"', first)
        assert older
        second = (await http.get(older.group(1).replace("&amp;", "&"))).text
        assert _names(second) == [f"release {i:02d}" for i in range(4, -1, -1)]
        assert 'rel="next"' not in second
        assert ">Newest</a>" in second

        failed = (await http.get("/deployments?status=failed")).text
        assert _names(failed) == ["release 20", "release 10", "release 00"]
        searched = (await http.get("/deployments?search=release+1")).text
        assert len(_names(searched)) == 10
        nothing = (await http.get("/deployments?search=nope")).text
        assert "No deployments match these filters" in nothing
        # Unknown filter values are ignored rather than an error page.
        odd = await http.get("/deployments?status=bogus&repository_id=xyz")
        assert odd.status_code == 200 and len(_names(odd.text)) == 25
        bad_cursor = await http.get("/deployments?cursor=garbage")
        assert bad_cursor.status_code == 422
        assert "Cursor is not valid" in bad_cursor.text

    async with browser_client(client, other_admin) as http:
        theirs = (await http.get("/deployments")).text
        assert _names(theirs) == []
        assert "No deployments yet" in theirs and 'href="/deployments/new"' in theirs


async def test_other_tenants_deployment_is_not_found(
    client: httpx.AsyncClient, db: Database, admin: Account, other_admin: Account
) -> None:
    async with db.session(tenant_id=UUID(admin.tenant_id)) as session:
        deployment = Deployment(name="secret plans", status="pending")
        session.add(deployment)
        await session.flush()
        deployment_id = deployment.id
    async with browser_client(client, other_admin) as http:
        for path in ("", "/live", "/log.txt"):
            response = await http.get(f"/deployments/{deployment_id}{path}")
            assert response.status_code == 404, path
            assert "secret plans" not in response.text
        token = await csrf_token(http)
        response = await http.post(
            f"/deployments/{deployment_id}/cancel", data={"csrf_token": token}
        )
        assert response.status_code == 404
    async with browser_client(client, admin) as http:
        page = await http.get(f"/deployments/{deployment_id}")
        assert page.status_code == 200 and "secret plans" in page.text


async def test_finished_deployment_cannot_be_cancelled_and_says_why(
    client: httpx.AsyncClient, db: Database, admin: Account
) -> None:
    developer = await add_member(client, admin, "developer")
    async with db.session(tenant_id=UUID(admin.tenant_id)) as session:
        deployment = Deployment(name="done", status="success")
        session.add(deployment)
        await session.flush()
        deployment_id = deployment.id
    async with browser_client(client, developer) as http:
        page = (await http.get(f"/deployments/{deployment_id}")).text
        assert "Cancel deployment" not in page and "Re-run" in page
        token = await csrf_token(http)
        response = await http.post(
            f"/deployments/{deployment_id}/cancel",
            headers={"HX-Request": "true", "X-CSRF-Token": token},
        )
        assert response.status_code == 409
        assert "The deployment has already finished (success)." in response.text
