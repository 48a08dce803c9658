"""The CI/CD providers API: CRUD, credentials never shown, test, roles, tenants, validation."""

from __future__ import annotations

import logging
import socket
from uuid import UUID

import httpx
import pytest
from sqlalchemy import select

from shipyard.accounts.models import AuditEvent
from shipyard.cicd.models import CicdProvider
from shipyard.crypto import is_sealed, unseal
from shipyard.db import Database
from shipyard.git.models import GitProvider
from tests.fakes.circleci import FakeCircleCI
from tests.fakes.github_actions import FakeGitHubActions
from tests.fakes.jenkins import FakeJenkins
from tests.fixtures.cicd import circleci_body, create_provider, github_body, jenkins_body
from tests.integration.git.helpers import one_audit_row
from tests.support.api import Account, add_member, error_fields


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_admin_creates_each_provider_type_and_credentials_are_never_returned(
    client: httpx.AsyncClient,
    db: Database,
    admin: Account,
    jenkins_fake: FakeJenkins,
    github_fake: FakeGitHubActions,
    circleci_fake: FakeCircleCI,
) -> None:
    jenkins = await create_provider(client, admin, jenkins_body(jenkins_fake))
    github = await create_provider(client, admin, github_body(github_fake))
    circle = await create_provider(client, admin, circleci_body(circleci_fake))

    assert jenkins["config"] == {"username": "admin", "has_api_token": True}
    assert jenkins["url"] == jenkins_fake.url
    assert github["config"] == {"repository": "acme/api", "has_token": True}
    assert circle["config"] == {
        "project_slugs": ["gh/acme/api"],
        "app_url": circleci_fake.url,
        "has_token": True,
    }
    listed = await client.get("/api/v1/cicd-providers", headers=admin.headers)
    assert listed.status_code == 200
    assert {p["name"] for p in listed.json()["items"]} == {"Jenkins", "GitHub Actions", "CircleCI"}
    for response in [
        listed,
        await client.get(f"/api/v1/cicd-providers/{jenkins['id']}", headers=admin.headers),
    ]:
        for secret in (jenkins_fake.token, github_fake.token, circleci_fake.token):
            assert secret not in response.text
    # Encrypted at rest, readable with the keyring.
    async with db.session(tenant_id=UUID(admin.tenant_id)) as session:
        row = await session.get(CicdProvider, UUID(jenkins["id"]))
        assert row is not None
        assert is_sealed(row.config["api_token"])
        assert jenkins_fake.token not in str(row.config)
        assert unseal(row.config["api_token"], db.keyring) == jenkins_fake.token
        audit = (
            await session.scalars(
                select(AuditEvent).where(AuditEvent.action == "cicd_provider.create")
            )
        ).all()
    assert len(audit) == 3
    assert all(jenkins_fake.token not in str(event.details) for event in audit)


async def test_default_api_urls_are_filled_in(client: httpx.AsyncClient, admin: Account) -> None:
    github = await create_provider(
        client,
        admin,
        {"type": "github_actions", "name": "gh", "config": {"repository": "a/b", "token": "t"}},
    )
    circle = await create_provider(
        client,
        admin,
        {"type": "circleci", "name": "cc", "config": {"project_slugs": ["gh/a/b"], "token": "t"}},
    )
    assert github["url"] == "https://api.github.com"
    assert circle["url"] == "https://circleci.com/api/v2"


BAD_INPUT = [
    ({"type": "jenkins", "name": "j", "config": {"username": "u", "api_token": "t"}}, "url"),
    (
        {
            "type": "jenkins",
            "name": "j",
            "url": "ftp://x",
            "config": {"username": "u", "api_token": "t"},
        },
        "url",
    ),
    (
        {"type": "jenkins", "name": "j", "url": "http://j", "config": {"username": "u"}},
        "config.api_token",
    ),
    (
        {
            "type": "jenkins",
            "name": "j",
            "url": "http://j",
            "config": {"username": "u", "api_token": "t", "extra": 1},
        },
        "config.extra",
    ),
    ({"type": "teamcity", "name": "t", "config": {}}, "type"),
    ({"type": "jenkins", "name": "", "url": "http://j", "config": {}}, "name"),
    (
        {
            "type": "github_actions",
            "name": "g",
            "config": {"repository": "not a repo", "token": "t"},
        },
        "config.repository",
    ),
    ({"type": "github_actions", "name": "g", "config": {"repository": "a/b"}}, "config"),
    (
        {
            "type": "github_actions",
            "name": "g",
            "config": {
                "repository": "a/b",
                "git_provider_id": "00000000-0000-0000-0000-000000000000",
            },
        },
        "config.git_provider_id",
    ),
    (
        {"type": "circleci", "name": "c", "config": {"project_slugs": [], "token": "t"}},
        "config.project_slugs",
    ),
    (
        {
            "type": "circleci",
            "name": "c",
            "config": {"project_slugs": ["acme/api"], "token": "t"},
        },
        "config.project_slugs.0",
    ),
]


async def test_bad_input_is_a_422_naming_the_field(
    client: httpx.AsyncClient, admin: Account
) -> None:
    for body, field in BAD_INPUT:
        response = await client.post("/api/v1/cicd-providers", headers=admin.headers, json=body)
        assert response.status_code == 422, (body, response.text)
        assert error_fields(response)[0] == field, (body, response.text)


async def test_linking_a_non_github_git_provider_is_refused(
    client: httpx.AsyncClient, db: Database, admin: Account
) -> None:
    async with db.session(tenant_id=UUID(admin.tenant_id)) as session:
        gitlab = GitProvider(
            tenant_id=UUID(admin.tenant_id), type="gitlab", name="GitLab", access_token="x"
        )
        session.add(gitlab)
        await session.flush()
        gitlab_id = gitlab.id
    response = await client.post(
        "/api/v1/cicd-providers",
        headers=admin.headers,
        json={
            "type": "github_actions",
            "name": "g",
            "config": {"repository": "a/b", "git_provider_id": str(gitlab_id)},
        },
    )
    assert response.status_code == 422
    assert error_fields(response) == ["config.git_provider_id"]
    assert "GitHub Actions needs a GitHub one" in response.json()["error"]["message"]


async def test_update_keeps_omitted_credentials_and_replaces_given_ones(
    client: httpx.AsyncClient, db: Database, admin: Account, jenkins_fake: FakeJenkins
) -> None:
    created = await create_provider(client, admin, jenkins_body(jenkins_fake))
    path = f"/api/v1/cicd-providers/{created['id']}"

    renamed = await client.patch(
        path, headers=admin.headers, json={"name": "CI", "config": {"username": "bot"}}
    )
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["name"] == "CI"
    assert renamed.json()["config"] == {"username": "bot", "has_api_token": True}
    async with db.session(tenant_id=UUID(admin.tenant_id)) as session:
        row = await session.get(CicdProvider, UUID(created["id"]))
        assert row is not None and unseal(row.config["api_token"], db.keyring) == jenkins_fake.token

    rotated = await client.patch(
        path, headers=admin.headers, json={"config": {"api_token": "new-token-123"}}
    )
    assert rotated.status_code == 200
    assert "new-token-123" not in rotated.text
    async with db.session(tenant_id=UUID(admin.tenant_id)) as session:
        row = await session.get(CicdProvider, UUID(created["id"]))
        assert row is not None and unseal(row.config["api_token"], db.keyring) == "new-token-123"

    removed = await client.patch(path, headers=admin.headers, json={"config": {"api_token": None}})
    assert removed.status_code == 422
    assert error_fields(removed) == ["config.api_token"]
    bad = await client.patch(path, headers=admin.headers, json={"url": "not a url"})
    assert bad.status_code == 422 and error_fields(bad) == ["url"]


async def test_delete_removes_the_provider_and_its_jobs(
    client: httpx.AsyncClient, admin: Account, jenkins_fake: FakeJenkins
) -> None:
    created = await create_provider(client, admin, jenkins_body(jenkins_fake))
    path = f"/api/v1/cicd-providers/{created['id']}"
    assert (await client.delete(path, headers=admin.headers)).status_code == 204
    assert (await client.get(path, headers=admin.headers)).status_code == 404
    assert (await client.delete(path, headers=admin.headers)).status_code == 404


async def test_test_endpoint_reports_who_we_are_connected_as(
    cicd_api: httpx.AsyncClient,
    admin: Account,
    jenkins_fake: FakeJenkins,
    github_fake: FakeGitHubActions,
    circleci_fake: FakeCircleCI,
) -> None:
    circleci_fake.add_project("gh/acme/api", config="version: 2.1\n")
    jenkins = await create_provider(cicd_api, admin, jenkins_body(jenkins_fake))
    github = await create_provider(cicd_api, admin, github_body(github_fake))
    circle = await create_provider(cicd_api, admin, circleci_body(circleci_fake))

    results = [
        (await cicd_api.post(f"/api/v1/cicd-providers/{p['id']}/test", headers=admin.headers))
        for p in (jenkins, github, circle)
    ]

    assert [r.status_code for r in results] == [200, 200, 200]
    assert results[0].json() == {
        "ok": True,
        "message": "authenticated as Ada Admin on Jenkins 2.462.3",
        "code": None,
    }
    assert results[1].json()["message"] == "repository acme/api is reachable"
    assert results[2].json()["message"] == "authenticated as ada; projects gh/acme/api reachable"


async def test_test_endpoint_names_the_providers_reason_for_bad_credentials(
    cicd_api: httpx.AsyncClient,
    admin: Account,
    jenkins_fake: FakeJenkins,
    github_fake: FakeGitHubActions,
    circleci_fake: FakeCircleCI,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    jenkins = await create_provider(cicd_api, admin, jenkins_body(jenkins_fake))
    github = await create_provider(cicd_api, admin, github_body(github_fake))
    circle = await create_provider(cicd_api, admin, circleci_body(circleci_fake))
    old_tokens = (jenkins_fake.token, github_fake.token, circleci_fake.token)
    jenkins_fake.revoke()
    github_fake.revoke()
    circleci_fake.revoke()

    results = [
        (await cicd_api.post(f"/api/v1/cicd-providers/{p['id']}/test", headers=admin.headers))
        for p in (jenkins, github, circle)
    ]

    # A refusal by the upstream is not an outage: the test answers, with ok false and why.
    assert [r.status_code for r in results] == [200, 200, 200]
    assert [r.json()["ok"] for r in results] == [False] * 3
    assert [r.json()["code"] for r in results] == ["provider_unauthorized"] * 3
    messages = [r.json()["message"] for r in results]
    assert (
        messages[0]
        == "Jenkins refused the token (HTTP 401): HTTP ERROR 401 Invalid password/token for user: admin"
    )
    assert messages[1] == "GitHub Actions refused the token (HTTP 401): Bad credentials"
    assert messages[2] == "CircleCI refused the token (HTTP 401): You must log in first."
    for token in old_tokens:
        assert all(token not in r.text for r in results)
        assert token not in caplog.text


async def test_test_endpoint_reports_an_unreachable_provider(
    cicd_api: httpx.AsyncClient, admin: Account
) -> None:
    port = _free_port()  # nothing listens there
    provider = await create_provider(
        cicd_api,
        admin,
        {
            "type": "jenkins",
            "name": "gone",
            "url": f"http://127.0.0.1:{port}",
            "config": {"username": "u", "api_token": "t"},
        },
    )

    response = await cicd_api.post(
        f"/api/v1/cicd-providers/{provider['id']}/test", headers=admin.headers
    )

    assert response.status_code == 200
    assert response.json() == {
        "ok": False,
        "code": "provider_unreachable",
        "message": f"cannot reach Jenkins at 127.0.0.1:{port}: the connection failed or timed out",
    }


async def test_test_endpoint_reports_a_missing_repository(
    cicd_api: httpx.AsyncClient, admin: Account, github_fake: FakeGitHubActions
) -> None:
    provider = await create_provider(
        cicd_api, admin, github_body(github_fake, repository="acme/nope")
    )
    response = await cicd_api.post(
        f"/api/v1/cicd-providers/{provider['id']}/test", headers=admin.headers
    )
    # The same mapping as the Git providers: an upstream 404 is "upstream_not_found".
    assert response.status_code == 200
    assert response.json()["ok"] is False
    assert response.json()["code"] == "upstream_not_found"
    assert "/repos/acme/nope" in response.json()["message"]


async def test_roles_everyone_reads_only_admins_manage(
    client: httpx.AsyncClient, admin: Account, jenkins_fake: FakeJenkins
) -> None:
    created = await create_provider(client, admin, jenkins_body(jenkins_fake))
    path = f"/api/v1/cicd-providers/{created['id']}"
    for role in ("viewer", "developer"):
        member = await add_member(client, admin, role)
        assert (
            await client.get("/api/v1/cicd-providers", headers=member.headers)
        ).status_code == 200
        shown = await client.get(path, headers=member.headers)
        assert shown.status_code == 200
        assert jenkins_fake.token not in shown.text
        forbidden = [
            await client.post(
                "/api/v1/cicd-providers", headers=member.headers, json=jenkins_body(jenkins_fake)
            ),
            await client.patch(path, headers=member.headers, json={"name": "x"}),
            await client.delete(path, headers=member.headers),
            await client.post(f"{path}/test", headers=member.headers),
            await client.post(f"{path}/sync", headers=member.headers),
        ]
        assert [r.status_code for r in forbidden] == [403] * 5, role
        assert all(r.json()["error"]["code"] == "forbidden" for r in forbidden)
    assert (await client.get("/api/v1/cicd-providers")).status_code == 401


async def test_other_tenants_providers_are_invisible(
    client: httpx.AsyncClient, admin: Account, other_admin: Account, jenkins_fake: FakeJenkins
) -> None:
    created = await create_provider(client, admin, jenkins_body(jenkins_fake))
    path = f"/api/v1/cicd-providers/{created['id']}"
    assert (await client.get("/api/v1/cicd-providers", headers=other_admin.headers)).json()[
        "items"
    ] == []
    responses = [
        await client.get(path, headers=other_admin.headers),
        await client.patch(path, headers=other_admin.headers, json={"name": "mine"}),
        await client.delete(path, headers=other_admin.headers),
        await client.post(f"{path}/test", headers=other_admin.headers),
        await client.post(f"{path}/sync", headers=other_admin.headers),
    ]
    assert [r.status_code for r in responses] == [404] * 5
    assert (await client.get(path, headers=admin.headers)).json()["name"] == "Jenkins"


async def test_provider_list_pages_with_a_cursor(
    client: httpx.AsyncClient, admin: Account, jenkins_fake: FakeJenkins
) -> None:
    for index in range(5):
        await create_provider(client, admin, jenkins_body(jenkins_fake, name=f"j{index}"))
    first = (
        await client.get("/api/v1/cicd-providers", headers=admin.headers, params={"limit": 3})
    ).json()
    second = (
        await client.get(
            "/api/v1/cicd-providers",
            headers=admin.headers,
            params={"limit": 3, "cursor": first["next_cursor"]},
        )
    ).json()
    names = [p["name"] for p in first["items"] + second["items"]]
    assert names == ["j4", "j3", "j2", "j1", "j0"]
    assert second["next_cursor"] is None
    bad = await client.get("/api/v1/cicd-providers", headers=admin.headers, params={"limit": 0})
    assert bad.status_code == 422 and error_fields(bad) == ["limit"]


async def test_every_provider_action_through_the_api_is_audited(
    client: httpx.AsyncClient, db: Database, admin: Account, jenkins_fake: FakeJenkins
) -> None:
    provider = await create_provider(client, admin, jenkins_body(jenkins_fake))
    provider_id = UUID(provider["id"])
    created = await one_audit_row(db, "cicd_provider.create", admin)
    assert created.resource_id == provider_id
    assert created.details == {"name": "Jenkins", "type": "jenkins", "url": jenkins_fake.url}
    base = f"/api/v1/cicd-providers/{provider['id']}"
    changed = await client.patch(
        base,
        headers=admin.headers,
        json={"name": "CI", "config": {"api_token": "rotated-secret-value"}},
    )
    assert changed.status_code == 200, changed.text
    updated = await one_audit_row(db, "cicd_provider.update", admin)
    assert updated.details == {"changed": ["name", "config.api_token"]}
    assert "rotated-secret-value" not in str(updated.details)
    assert (await client.post(f"{base}/sync", headers=admin.headers)).status_code == 202
    assert (await one_audit_row(db, "cicd_provider.sync", admin)).resource_id == provider_id
    assert (await client.delete(base, headers=admin.headers)).status_code == 204
    deleted = await one_audit_row(db, "cicd_provider.delete", admin)
    assert deleted.details == {"name": "CI", "type": "jenkins"}
