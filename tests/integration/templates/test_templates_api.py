"""Templates through the API without running anything: parameter rules (422 naming the
parameter), save-time checks, write-only secrets, permissions and audit."""

from __future__ import annotations

import uuid
from typing import Any
from uuid import UUID

import httpx
from sqlalchemy import select

from shipyard.accounts.models import AuditEvent
from shipyard.db import Database
from shipyard.templates.service import get_template
from tests.support import canary
from tests.support.api import Account, add_member, error_fields

PARAMETERS: list[dict[str, Any]] = [
    {"name": "version", "type": "string", "required": True, "pattern": r"[0-9]+\.[0-9]+"},
    {"name": "notes", "type": "text", "max": 10},
    {"name": "replicas", "type": "integer", "min": 1, "max": 5, "default": 2},
    {"name": "dry_run", "type": "boolean", "default": True},
    {"name": "region", "type": "choice", "choices": ["eu", "us"], "default": "eu"},
    {"name": "zones", "type": "multi_choice", "choices": ["a", "b", "c"], "max": 2},
    {"name": "api_key", "type": "secret", "min": 8},
]


async def make_template(
    client: httpx.AsyncClient, account: Account, **fields: Any
) -> httpx.Response:
    body = {"name": f"t-{uuid.uuid4().hex[:8]}", **fields}
    return await client.post("/api/v1/templates", headers=account.headers, json=body)


async def preview(
    client: httpx.AsyncClient, account: Account, template_id: str, values: dict[str, Any]
) -> httpx.Response:
    return await client.post(
        f"/api/v1/templates/{template_id}/preview",
        headers=account.headers,
        json={"parameters": values},
    )


BAD_VALUES: list[tuple[dict[str, Any], str]] = [
    ({}, "parameters.version"),  # required
    ({"version": "one"}, "parameters.version"),  # pattern
    ({"version": "1.2", "notes": "x" * 11}, "parameters.notes"),  # max length
    ({"version": "1.2", "replicas": "seven"}, "parameters.replicas"),  # not a number
    ({"version": "1.2", "replicas": 9}, "parameters.replicas"),  # max
    ({"version": "1.2", "replicas": 0}, "parameters.replicas"),  # min
    ({"version": "1.2", "dry_run": "maybe"}, "parameters.dry_run"),  # boolean
    ({"version": "1.2", "region": "mars"}, "parameters.region"),  # choices
    ({"version": "1.2", "zones": ["a", "d"]}, "parameters.zones"),  # choices
    ({"version": "1.2", "zones": ["a", "b", "c"]}, "parameters.zones"),  # max count
    ({"version": "1.2", "api_key": "short"}, "parameters.api_key"),  # min length
    ({"version": "1.2", "colour": "red"}, "parameters.colour"),  # no such parameter
]


async def test_launch_values_are_checked_with_422_naming_the_parameter_or_pass_typed(
    client: httpx.AsyncClient, admin: Account
) -> None:
    created = await make_template(client, admin, parameters=PARAMETERS)
    assert created.status_code == 201, created.text
    template_id = created.json()["id"]
    for values, field in BAD_VALUES:
        for path in ("preview", "launch"):
            response = await client.post(
                f"/api/v1/templates/{template_id}/{path}",
                headers=admin.headers,
                json={"parameters": values},
            )
            assert response.status_code == 422, (values, response.text)
            assert error_fields(response) == [field], (values, response.text)
    secret = canary.remember("api-key-" + uuid.uuid4().hex, "secret template parameter")
    # A template with no repository and no hosts: preview shows the values and nothing to run.
    response = await preview(
        client,
        admin,
        template_id,
        {"version": "1.2", "replicas": "3", "dry_run": "false", "zones": "b", "api_key": secret},
    )
    assert response.status_code == 200, response.text
    assert response.json()["parameters"] == {
        "version": "1.2",
        "replicas": 3,
        "dry_run": False,
        "region": "eu",
        "zones": ["b"],
        "api_key": "***",
    }
    assert secret not in response.text


BAD_DEFINITIONS: list[tuple[dict[str, Any], str]] = [
    (
        {"parameters": [{"name": "token", "type": "secret", "default": "a-default-secret"}]},
        "parameters.0",
    ),
    ({"parameters": [{"name": "LD_PRELOAD"}]}, "parameters.0.name"),
    ({"parameters": [{"name": "pick", "type": "choice"}]}, "parameters.0"),
    (
        {"parameters": [{"name": "n", "type": "integer", "default": 9, "max": 3}]},
        "parameters.0",
    ),
    ({"parameters": [{"name": "p", "pattern": "("}]}, "parameters.0.pattern"),
    ({"parameters": [{"name": "a"}, {"name": "a"}]}, "parameters.1.name"),
    (
        {
            "parameters": [{"name": "REGION"}],
            "environment": [{"name": "REGION", "value": "eu"}],
        },
        "parameters.0.name",
    ),
    ({"environment": [{"name": "PATH", "value": "/tmp"}]}, "environment.0.name"),
    ({"target": {"group_ids": [str(uuid.uuid4())]}}, "target.group_ids.0"),
    ({"repository_id": str(uuid.uuid4())}, "repository_id"),
]


async def test_save_refuses_bad_definitions_naming_the_field(
    client: httpx.AsyncClient, admin: Account, script_repo: Any
) -> None:
    for fields, field in BAD_DEFINITIONS:
        response = await make_template(client, admin, **fields)
        assert response.status_code == 422, (fields, response.text)
        assert error_fields(response) == [field], (fields, response.text)
    # In arguments, {{ name }} must name a parameter, and never a secret one.
    repo = await script_repo(admin, {"run.sh": "#!/bin/sh\necho hi\n"})
    script_id = repo.scripts["run.sh"]
    parameters = [{"name": "version"}, {"name": "token", "type": "secret"}]
    unknown = await make_template(
        client,
        admin,
        repository_id=repo.id,
        parameters=parameters,
        scripts=[{"script_id": script_id, "arguments": ["--v={{ versoin }}"]}],
    )
    assert unknown.status_code == 422
    assert error_fields(unknown) == ["scripts.0.arguments"]
    secret = await make_template(
        client,
        admin,
        repository_id=repo.id,
        parameters=parameters,
        scripts=[{"script_id": script_id, "arguments": ["--token={{token}}"]}],
    )
    assert secret.status_code == 422
    assert error_fields(secret) == ["scripts.0.arguments"]
    assert "environment variable token" in secret.json()["error"]["message"]
    # A value that makes an argument too long is a 422 too (never a 500).
    long_notes = await make_template(
        client,
        admin,
        repository_id=repo.id,
        parameters=[{"name": "notes", "type": "text"}],
        scripts=[{"script_id": script_id, "arguments": ["{{ notes }}"]}],
    )
    assert long_notes.status_code == 201, long_notes.text
    too_long = await preview(client, admin, long_notes.json()["id"], {"notes": "n" * 5000})
    assert too_long.status_code == 422, too_long.text
    assert error_fields(too_long) == ["scripts.0.arguments"]


async def test_secret_environment_is_write_only_and_kept_when_resent_without_value(
    client: httpx.AsyncClient, admin: Account, db: Database
) -> None:
    secret = canary.remember("template-env-" + uuid.uuid4().hex, "template secret variable")
    created = await make_template(
        client,
        admin,
        environment=[
            {"name": "REGION", "value": "eu"},
            {"name": "TOKEN", "value": secret, "secret": True},
        ],
    )
    assert created.status_code == 201, created.text
    assert secret not in created.text
    template_id = created.json()["id"]
    assert created.json()["environment"] == [
        {"name": "REGION", "secret": False, "value": "eu"},
        {"name": "TOKEN", "secret": True, "value": None},
    ]
    kept = await client.patch(
        f"/api/v1/templates/{template_id}",
        headers=admin.headers,
        json={"environment": [{"name": "TOKEN", "secret": True}, {"name": "X", "value": "1"}]},
    )
    assert kept.status_code == 200, kept.text
    async with db.session(tenant_id=UUID(admin.tenant_id)) as session:
        stored = await get_template(session=session, template_id=UUID(template_id))
        assert stored.secret_environment is not None and secret in stored.secret_environment
    missing = await client.patch(
        f"/api/v1/templates/{template_id}",
        headers=admin.headers,
        json={"environment": [{"name": "OTHER", "secret": True}]},
    )
    assert missing.status_code == 422
    assert error_fields(missing) == ["environment.0.value"]
    for response in (
        kept,
        await client.get(f"/api/v1/templates/{template_id}", headers=admin.headers),
    ):
        assert secret not in response.text


async def test_roles_viewers_read_developers_edit_admin_only_needs_an_admin(
    client: httpx.AsyncClient, admin: Account, db: Database
) -> None:
    viewer = await add_member(client, admin, "viewer")
    developer = await add_member(client, admin, "developer")
    refused = await make_template(client, viewer)
    assert refused.status_code == 403
    created = await make_template(client, developer, admin_only=True)
    assert created.status_code == 201, created.text
    template_id = created.json()["id"]
    assert (
        await client.get(f"/api/v1/templates/{template_id}", headers=viewer.headers)
    ).status_code == 200
    edit = await client.patch(
        f"/api/v1/templates/{template_id}", headers=viewer.headers, json={"description": "x"}
    )
    assert edit.status_code == 403
    for account in (viewer, developer):
        for path in ("launch", "preview"):
            response = await client.post(
                f"/api/v1/templates/{template_id}/{path}", headers=account.headers, json={}
            )
            assert response.status_code == 403, (account.role, path, response.text)
    # An admin may (it has nothing to run: the preview says so rather than refusing).
    by_admin = await preview(client, admin, template_id, {})
    assert by_admin.status_code == 200, by_admin.text
    renamed = await client.patch(
        f"/api/v1/templates/{template_id}", headers=developer.headers, json={"name": "renamed"}
    )
    assert renamed.status_code == 200, renamed.text
    duplicate = await make_template(client, developer, name="renamed")
    assert duplicate.status_code == 409
    found = await client.get(
        "/api/v1/templates", headers=viewer.headers, params={"name": "renamed"}
    )
    assert [item["id"] for item in found.json()["items"]] == [template_id]
    deleted = await client.delete(f"/api/v1/templates/{template_id}", headers=developer.headers)
    assert deleted.status_code == 204
    async with db.session(system=True) as session:
        actions = list(
            await session.scalars(
                select(AuditEvent.action)
                .where(AuditEvent.resource_id == UUID(template_id), AuditEvent.outcome == "success")
                .order_by(AuditEvent.created_at)
            )
        )
    assert actions == ["template.create", "template.update", "template.delete"]
