"""Each role's allowed and forbidden actions, swept over every state-changing endpoint."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from shipyard.db import Database
from tests.integration.core.test_isolation import (
    api_operations,
    body_for,
    concrete_url,
    undocumented,
)
from tests.support.api import Account, add_member
from tests.support.seed import SeededTenant, seed_tenant

UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
# What any member may do to their own account and preferences.
SELF_SERVICE = (
    re.compile(r"^/api/v1/auth/"),
    re.compile(r"^/api/v1/me$"),
    re.compile(r"^/api/v1/repositories/\{repository_id\}/pin$"),
    # Deciding on a run waiting for approval: the run's template names the least role
    # (approver_role may be viewer), so any member may ask and the decision answers 403 itself.
    re.compile(r"^/api/v1/deployments/\{deployment_id\}/(approve|reject)$"),
)
# What developers may do besides: run deployments, test hosts, edit and launch templates.
DEVELOPER_EXTRA = (
    re.compile(r"^/api/v1/deployments"),
    re.compile(r"^/api/v1/templates"),
    re.compile(r"^/api/v1/webhooks"),
    re.compile(r"^/api/v1/schedules"),
    re.compile(r"^/api/v1/hosts/\{host_id\}/test$"),
    re.compile(r"^/api/v1/hosts/test-all$"),
)


def unsafe_routes() -> list[tuple[str, str]]:
    routes = [
        (method, path)
        for method, path in api_operations()
        # The OAuth callback is reached by the provider's redirect, not by a member; inbound
        # webhook deliveries are authenticated by their signature alone.
        if method in UNSAFE
        and not path.startswith(("/api/v1/git-providers/oauth/", "/api/v1/hooks/"))
    ]
    assert len(routes) >= 25
    return routes


def allowed(role: str, path: str) -> bool:
    if role == "admin" or any(rule.match(path) for rule in SELF_SERVICE):
        return True
    return role == "developer" and any(rule.match(path) for rule in DEVELOPER_EXTRA)


@pytest.fixture
async def seeded(db: Database, admin: Account) -> SeededTenant:
    return await seed_tenant(db, tenant_id=admin.tenant_id, profile_id=admin.user_id)


@pytest.mark.parametrize("role", ["viewer", "developer"])
async def test_forbidden_actions_are_403_and_allowed_ones_are_not(
    client: httpx.AsyncClient, admin: Account, seeded: SeededTenant, role: str
) -> None:
    member = await add_member(client, admin, role)
    problems = []
    for method, path in unsafe_routes():
        if path in ("/api/v1/auth/signup", "/api/v1/auth/login", "/api/v1/auth/logout"):
            continue
        url = concrete_url(path, seeded)
        url = url.replace("{member_id}", admin.user_id)
        kwargs: dict[str, Any] = {"headers": member.headers}
        if method in ("POST", "PUT", "PATCH"):
            kwargs["json"] = body_for(path, seeded)
        response = await client.request(method, url, **kwargs)
        if allowed(role, path):
            if response.status_code == 403 or response.status_code >= 500:
                problems.append(
                    f"{role} {method} {path}: {response.status_code} {response.text[:150]}"
                )
        elif response.status_code != 403:
            problems.append(f"{role} {method} {path}: expected 403, got {response.status_code}")
        if (problem := undocumented(method, path, response)) is not None:
            problems.append(f"{role} {problem}")
    assert problems == []


async def test_viewer_reads_everything(
    client: httpx.AsyncClient, admin: Account, seeded: SeededTenant
) -> None:
    viewer = await add_member(client, admin, "viewer")
    for path in (
        "/api/v1/hosts",
        "/api/v1/repositories",
        "/api/v1/deployments",
        "/api/v1/git-providers",
        "/api/v1/cicd-providers",
        "/api/v1/cicd-jobs",
        "/api/v1/tenant/members",
        f"/api/v1/deployments/{seeded.deployment_id}/logs",
        f"/api/v1/hosts/{seeded.host_id}",
        "/api/v1/host-groups",
        f"/api/v1/host-groups/{seeded.host_group_id}",
        "/api/v1/templates",
        f"/api/v1/templates/{seeded.template_id}",
        f"/api/v1/templates/{seeded.template_id}/runs",
        "/api/v1/webhooks",
        f"/api/v1/webhooks/{seeded.webhook_id}/deliveries",
        "/api/v1/schedules",
        f"/api/v1/schedules/{seeded.schedule_id}",
        f"/api/v1/schedules/{seeded.schedule_id}/next",
        f"/api/v1/schedules/{seeded.schedule_id}/fires",
        "/api/v1/freeze-windows",
        "/api/v1/freeze-windows/active",
        f"/api/v1/freeze-windows/{seeded.freeze_window_id}",
    ):
        response = await client.get(path, headers=viewer.headers)
        assert response.status_code == 200, (path, response.text)


async def test_admin_changes_roles_and_keeps_one_admin(
    client: httpx.AsyncClient, admin: Account
) -> None:
    member = await add_member(client, admin, "viewer")
    promoted = await client.patch(
        f"/api/v1/tenant/members/{member.user_id}",
        headers=admin.headers,
        json={"role": "developer"},
    )
    assert promoted.status_code == 200 and promoted.json()["role"] == "developer"
    me = await client.get("/api/v1/me", headers=member.headers)
    assert me.json()["role"] == "developer"
    demote_self = await client.patch(
        f"/api/v1/tenant/members/{admin.user_id}", headers=admin.headers, json={"role": "viewer"}
    )
    assert demote_self.status_code == 409
    assert demote_self.json()["error"]["code"] == "last_admin"
    removed = await client.delete(f"/api/v1/tenant/members/{member.user_id}", headers=admin.headers)
    assert removed.status_code == 204
    assert (await client.get("/api/v1/me", headers=member.headers)).status_code == 401


async def test_members_of_another_tenant_are_invisible(
    client: httpx.AsyncClient, admin: Account, other_admin: Account
) -> None:
    response = await client.patch(
        f"/api/v1/tenant/members/{admin.user_id}",
        headers=other_admin.headers,
        json={"role": "viewer"},
    )
    assert response.status_code == 404
    assert (
        await client.get(f"/api/v1/tenant/members/{admin.user_id}", headers=other_admin.headers)
    ).status_code == 404
    assert (
        await client.delete(f"/api/v1/tenant/members/{admin.user_id}", headers=other_admin.headers)
    ).status_code == 404
