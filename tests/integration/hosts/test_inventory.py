"""Inventory: host groups, tags and variables through the API, and target resolution."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import httpx
import psycopg
from sqlalchemy import select

from shipyard.accounts.models import AuditEvent
from shipyard.db import Database, to_libpq_url
from shipyard.hosts.inventory import host_environments, resolve_target
from shipyard.hosts.schemas import Target
from tests.support.api import Account, add_member, error_fields

GROUP_SECRET = "group-secret-value-4711"
HOST_SECRET = "host-secret-value-0815"


async def add_host(
    client: httpx.AsyncClient, admin: Account, name: str, **fields: Any
) -> dict[str, Any]:
    payload = {
        "name": name,
        "ip": "127.0.0.1",
        "port": 22,
        "user": "deploy",
        "password": "pw-12345",
    }
    response = await client.post("/api/v1/hosts", headers=admin.headers, json={**payload, **fields})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def add_group(
    client: httpx.AsyncClient, admin: Account, name: str, **fields: Any
) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/host-groups", headers=admin.headers, json={"name": name, **fields}
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def resolve(db: Database, admin: Account, **target: Any) -> list[str]:
    async with db.session(tenant_id=UUID(admin.tenant_id), user_id=UUID(admin.user_id)) as session:
        ids = await resolve_target(
            session=session, tenant_id=UUID(admin.tenant_id), target=Target(**target)
        )
    return [str(host_id) for host_id in ids]


async def test_host_tags_and_variables_round_trip_with_write_only_secrets(
    client: httpx.AsyncClient, admin: Account, database_url: str, db: Database
) -> None:
    host = await add_host(
        client,
        admin,
        "web-1",
        tags=["web", " eu ", "web"],
        variables=[
            {"name": "REGION", "value": "eu-west"},
            {"name": "API_KEY", "value": HOST_SECRET, "secret": True},
        ],
    )
    assert host["tags"] == ["eu", "web"]
    assert host["variables"] == [
        {"name": "API_KEY", "secret": True, "value": None},
        {"name": "REGION", "secret": False, "value": "eu-west"},
    ]
    assert HOST_SECRET not in str(host)
    fetched = await client.get(f"/api/v1/hosts/{host['id']}", headers=admin.headers)
    assert fetched.json() == host
    listed = await client.get("/api/v1/hosts", headers=admin.headers)
    assert listed.json()["items"][0]["variables"] == host["variables"]
    assert HOST_SECRET not in listed.text

    # A secret sent back without its value keeps it; a plain one can change beside it.
    updated = await client.patch(
        f"/api/v1/hosts/{host['id']}",
        headers=admin.headers,
        json={
            "tags": ["db"],
            "variables": [{"name": "API_KEY", "secret": True}, {"name": "REGION", "value": "us"}],
        },
    )
    assert updated.status_code == 200, updated.text
    assert updated.json()["tags"] == ["db"]
    async with db.session(tenant_id=UUID(admin.tenant_id)) as session:
        environments = await host_environments(
            session=session, tenant_id=UUID(admin.tenant_id), host_ids=[UUID(host["id"])]
        )
    environment = environments[UUID(host["id"])]
    assert environment.secret == {"API_KEY": HOST_SECRET}
    assert environment.plain == {"REGION": "us"}
    with psycopg.connect(to_libpq_url(database_url)) as conn:
        rows = conn.execute("SELECT value, secret_value FROM inventory_variables").fetchall()
    assert all(HOST_SECRET not in str(row) for row in rows)

    async with db.session(system=True) as session:
        actions = list(
            await session.scalars(
                select(AuditEvent.details).where(AuditEvent.action == "host.update")
            )
        )
    assert actions and "variables" in actions[-1]["fields"] and HOST_SECRET not in str(actions)


async def test_variable_names_and_secret_lengths_are_checked(
    client: httpx.AsyncClient, admin: Account
) -> None:
    host = await add_host(client, admin, "web-1")
    for variables, fragment in (
        ([{"name": "LD_PRELOAD", "value": "x"}], "LD_PRELOAD"),
        ([{"name": "1BAD", "value": "x"}], "1BAD"),
        ([{"name": "TOKEN", "value": "abc", "secret": True}], "TOKEN"),
        ([{"name": "A", "value": "1"}, {"name": "A", "value": "2"}], "A"),
        ([{"name": "NEW", "secret": True}], "NEW"),
    ):
        response = await client.patch(
            f"/api/v1/hosts/{host['id']}", headers=admin.headers, json={"variables": variables}
        )
        assert response.status_code == 422, (variables, response.text)
        assert fragment in response.text
        assert any(field.startswith("variables") for field in error_fields(response))
    bad_group = await client.post(
        "/api/v1/host-groups",
        headers=admin.headers,
        json={"name": "g", "variables": [{"name": "BASH_ENV", "value": "x"}]},
    )
    assert bad_group.status_code == 422 and "BASH_ENV" in bad_group.text
    bad_tag = await client.patch(
        f"/api/v1/hosts/{host['id']}", headers=admin.headers, json={"tags": ["no spaces"]}
    )
    assert bad_tag.status_code == 422


async def test_groups_crud_membership_and_roles(
    client: httpx.AsyncClient, admin: Account, db: Database
) -> None:
    one = await add_host(client, admin, "a-1")
    two = await add_host(client, admin, "b-2")
    group = await add_group(
        client,
        admin,
        "prod",
        description="production",
        host_ids=[two["id"], one["id"], one["id"]],
        variables=[{"name": "DB_PASSWORD", "value": GROUP_SECRET, "secret": True}],
    )
    assert group["host_ids"] == [one["id"], two["id"]]
    assert group["variables"] == [{"name": "DB_PASSWORD", "secret": True, "value": None}]
    assert GROUP_SECRET not in str(group)
    taken = await client.post("/api/v1/host-groups", headers=admin.headers, json={"name": "prod"})
    assert taken.status_code == 409
    unknown = await client.post(
        "/api/v1/host-groups",
        headers=admin.headers,
        json={"name": "x", "host_ids": ["00000000-0000-0000-0000-000000000001"]},
    )
    assert unknown.status_code == 422 and error_fields(unknown) == ["host_ids.0"]

    viewer = await add_member(client, admin, "viewer")
    listed = await client.get("/api/v1/host-groups", headers=viewer.headers)
    assert listed.status_code == 200 and [g["name"] for g in listed.json()] == ["prod"]
    assert GROUP_SECRET not in listed.text
    denied = await client.patch(
        f"/api/v1/host-groups/{group['id']}", headers=viewer.headers, json={"name": "x"}
    )
    assert denied.status_code == 403

    renamed = await client.patch(
        f"/api/v1/host-groups/{group['id']}",
        headers=admin.headers,
        json={"name": "production", "host_ids": [one["id"]]},
    )
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["host_ids"] == [one["id"]]
    assert renamed.json()["variables"] == group["variables"]
    deleted = await client.delete(f"/api/v1/host-groups/{group['id']}", headers=admin.headers)
    assert deleted.status_code == 204
    gone = await client.get(f"/api/v1/host-groups/{group['id']}", headers=admin.headers)
    assert gone.status_code == 404
    assert (await client.get(f"/api/v1/hosts/{one['id']}", headers=admin.headers)).is_success

    async with db.session(system=True) as session:
        actions = list(
            await session.scalars(
                select(AuditEvent.action)
                .where(AuditEvent.resource_type == "host_group", AuditEvent.outcome == "success")
                .order_by(AuditEvent.created_at)
            )
        )
    assert actions == ["host_group.create", "host_group.update", "host_group.delete"]


async def test_target_resolution_is_the_intersection_and_follows_membership(
    client: httpx.AsyncClient, admin: Account, db: Database
) -> None:
    web_prod = await add_host(client, admin, "web-prod", tags=["web"])
    db_prod = await add_host(client, admin, "db-prod", tags=["db"])
    web_stage = await add_host(client, admin, "web-stage", tags=["web", "eu"])
    lone = await add_host(client, admin, "lone")
    prod = await add_group(client, admin, "prod", host_ids=[web_prod["id"], db_prod["id"]])
    stage = await add_group(client, admin, "stage", host_ids=[web_stage["id"]])

    assert await resolve(db, admin, group_ids=[prod["id"]], tags=["web"]) == [web_prod["id"]]
    assert await resolve(db, admin, group_ids=[prod["id"]]) == [db_prod["id"], web_prod["id"]]
    assert await resolve(db, admin, tags=["web"]) == [web_prod["id"], web_stage["id"]]
    assert await resolve(db, admin, tags=["web", "eu"]) == [web_stage["id"]]
    assert await resolve(
        db, admin, host_ids=[lone["id"]], group_ids=[prod["id"], stage["id"]], tags=["web"]
    ) == [lone["id"], web_prod["id"], web_stage["id"]]
    assert await resolve(db, admin) == []

    # A host added to the group later is part of the next resolution.
    late = await add_host(client, admin, "web-late", tags=["web"])
    await client.patch(
        f"/api/v1/host-groups/{prod['id']}",
        headers=admin.headers,
        json={"host_ids": [*prod["host_ids"], late["id"]]},
    )
    # By host name: web-late before web-prod.
    assert await resolve(db, admin, group_ids=[prod["id"]], tags=["web"]) == [
        late["id"],
        web_prod["id"],
    ]


async def test_run_time_variables_groups_then_host(
    client: httpx.AsyncClient, admin: Account, db: Database
) -> None:
    host = await add_host(client, admin, "web-1", variables=[{"name": "LEVEL", "value": "host"}])
    other = await add_host(client, admin, "web-2")
    await add_group(
        client,
        admin,
        "a-base",
        host_ids=[host["id"], other["id"]],
        variables=[
            {"name": "LEVEL", "value": "group-a"},
            {"name": "ONLY_GROUP", "value": "a"},
            {"name": "TOKEN", "value": GROUP_SECRET, "secret": True},
        ],
    )
    await add_group(
        client,
        admin,
        "b-later",
        host_ids=[other["id"]],
        variables=[{"name": "ONLY_GROUP", "value": "b"}],
    )
    async with db.session(tenant_id=UUID(admin.tenant_id)) as session:
        found = await host_environments(
            session=session,
            tenant_id=UUID(admin.tenant_id),
            host_ids=[UUID(host["id"]), UUID(other["id"])],
        )
    assert found[UUID(host["id"])].plain == {"LEVEL": "host", "ONLY_GROUP": "a"}
    assert found[UUID(host["id"])].secret == {"TOKEN": GROUP_SECRET}
    assert found[UUID(other["id"])].plain == {"LEVEL": "group-a", "ONLY_GROUP": "b"}


async def test_other_tenants_hosts_cannot_join_and_deleted_hosts_leave(
    client: httpx.AsyncClient, admin: Account, other_admin: Account, db: Database
) -> None:
    mine = await add_host(client, admin, "mine", tags=["web"])
    kept = await add_host(client, admin, "kept")
    theirs = await client.post(
        "/api/v1/host-groups",
        headers=other_admin.headers,
        json={"name": "steal", "host_ids": [mine["id"]]},
    )
    assert theirs.status_code == 422 and error_fields(theirs) == ["host_ids.0"]
    assert await resolve(db, other_admin, tags=["web"]) == []

    group = await add_group(client, admin, "prod", host_ids=[mine["id"], kept["id"]])
    deleted = await client.delete(f"/api/v1/hosts/{mine['id']}", headers=admin.headers)
    assert deleted.status_code == 204
    after = await client.get(f"/api/v1/host-groups/{group['id']}", headers=admin.headers)
    assert after.json()["host_ids"] == [kept["id"]]
    assert await resolve(db, admin, tags=["web"]) == []
