"""CI/CD provider forms over HTTP: per-type fields, errors by field, secrets never shown."""

from __future__ import annotations

from uuid import UUID

import httpx

from shipyard.db import Database
from tests.fakes.jenkins import FakeJenkins
from tests.integration.git.helpers import one_audit_row
from tests.support.api import Account, add_member
from tests.support.browser_http import browser_client, csrf_token


async def test_circleci_form_names_its_fields_and_never_echoes_the_token(
    client: httpx.AsyncClient, admin: Account
) -> None:
    async with browser_client(client, admin) as http:
        token = await csrf_token(http, "/cicd")
        bad = await http.post(
            "/cicd",
            data={
                "type": "circleci",
                "name": "Circle",
                "project_slugs": "not-a-slug",
                "circleci_token": "circle-secret-value",
                "csrf_token": token,
            },
        )
        assert bad.status_code == 422
        assert 'id="e-project_slugs"' in bad.text
        assert "circle-secret-value" not in bad.text
        missing = await http.post(
            "/cicd",
            data={
                "type": "circleci",
                "name": "Circle",
                "project_slugs": "gh/acme/api, gh/acme/web",
                "csrf_token": token,
            },
        )
        assert missing.status_code == 422
        assert 'id="e-circleci_token"' in missing.text
        created = await http.post(
            "/cicd",
            data={
                "type": "circleci",
                "name": "Circle",
                "project_slugs": "gh/acme/api, gh/acme/web",
                "circleci_token": "circle-secret-value",
                "csrf_token": token,
            },
        )
        assert created.status_code == 303
        page = (await http.get("/cicd")).text
        assert 'data-name="Circle"' in page
        assert "circle-secret-value" not in page
    listed = (await client.get("/api/v1/cicd-providers", headers=admin.headers)).json()["items"]
    assert listed[0]["config"]["project_slugs"] == ["gh/acme/api", "gh/acme/web"]
    assert listed[0]["config"]["has_token"] is True


async def test_jenkins_needs_a_url_and_developers_cannot_add(
    client: httpx.AsyncClient, admin: Account
) -> None:
    async with browser_client(client, admin) as http:
        token = await csrf_token(http, "/cicd")
        response = await http.post(
            "/cicd",
            data={
                "type": "jenkins",
                "name": "J",
                "username": "admin",
                "api_token": "t0ken",
                "csrf_token": token,
            },
        )
        assert response.status_code == 422
        assert "url" in response.text.lower()
    developer = await add_member(client, admin, "developer")
    async with browser_client(client, developer) as http:
        token = await csrf_token(http, "/cicd")
        page = (await http.get("/cicd")).text
        assert "Add provider" not in page
        forged = await http.post(
            "/cicd",
            data={
                "type": "jenkins",
                "name": "J",
                "url": "http://127.0.0.1:9",
                "username": "a",
                "api_token": "b",
                "csrf_token": token,
            },
        )
        assert forged.status_code == 403
    assert (await client.get("/api/v1/cicd-providers", headers=admin.headers)).json()["items"] == []


async def test_provider_actions_on_the_page_are_audited(
    client: httpx.AsyncClient, db: Database, admin: Account, jenkins_fake: FakeJenkins
) -> None:
    async with browser_client(client, admin) as http:
        token = await csrf_token(http, "/cicd")
        created = await http.post(
            "/cicd",
            data={
                "type": "jenkins",
                "name": "Jenkins",
                "url": jenkins_fake.url,
                "username": jenkins_fake.username,
                "api_token": jenkins_fake.token,
                "csrf_token": token,
            },
        )
        assert created.status_code == 303, created.text
        row = await one_audit_row(db, "cicd_provider.create", admin)
        assert row.details == {"name": "Jenkins", "type": "jenkins", "url": jenkins_fake.url}
        provider_id = row.resource_id
        assert isinstance(provider_id, UUID)
        checked = await http.post(
            f"/cicd/providers/{provider_id}/test",
            data={"csrf_token": token},
            headers={"HX-Request": "true"},
        )
        assert checked.status_code == 200
        synced = await http.post(f"/cicd/providers/{provider_id}/sync", data={"csrf_token": token})
        assert synced.status_code == 303
        assert (await one_audit_row(db, "cicd_provider.sync", admin)).resource_id == provider_id
        removed = await http.post(
            f"/cicd/providers/{provider_id}/delete", data={"csrf_token": token}
        )
        assert removed.status_code == 303
        assert (await one_audit_row(db, "cicd_provider.delete", admin)).resource_id == provider_id
