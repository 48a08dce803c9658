"""Tenant isolation on every endpoint, and row-level security below the service layer."""

from __future__ import annotations

import functools
import re
import uuid
from typing import Any

import httpx
import psycopg
import pytest

from shipyard.api import create_app
from shipyard.db import APP_ROLE, Database, to_libpq_url
from tests.support.api import Account
from tests.support.seed import SeededTenant, seed_tenant

ID_PARAM = re.compile(r"\{(\w+)\}")


def id_for(path: str, param: str, seeded: SeededTenant) -> str:
    """The seeded id a path parameter names (provider ids depend on the path's domain)."""
    if param == "provider_id":
        if path.startswith("/api/v1/sso/"):
            return str(seeded.sso_provider_id)
        return str(seeded.cicd_provider_id if "cicd" in path else seeded.git_provider_id)
    if param == "rule_id" and path.startswith("/api/v1/sso/"):
        return str(seeded.sso_rule_id)
    if param == "slug" and seeded.login_slug is not None:
        return seeded.login_slug
    mapping = {
        "host_id": seeded.host_id,
        "repository_id": seeded.repository_id,
        "deployment_id": seeded.deployment_id,
        "job_id": seeded.cicd_job_id,
        "cicd_job_id": seeded.cicd_job_id,
        "mapping_id": seeded.cicd_mapping_id,
        "script_id": seeded.deployment_script_id,
        "app_id": seeded.git_oauth_app_id,
        "invitation_id": seeded.invitation_id,
        "group_id": seeded.host_group_id,
        "template_id": seeded.template_id,
        "webhook_id": seeded.webhook_id,
        "schedule_id": seeded.schedule_id,
        "entry_id": seeded.audit_entry_id,
        "stream_id": seeded.audit_stream_id,
        "freeze_window_id": seeded.freeze_window_id,
        "channel_id": seeded.notification_channel_id,
        "rule_id": seeded.notification_rule_id,
        # Account-level ids: a random one, which no tenant owns.
        "token_id": uuid.UUID(int=1),
        "member_id": uuid.UUID(int=2),
    }
    if param not in mapping:
        raise AssertionError(f"the sweep does not know path parameter {{{param}}} of {path}")
    return str(mapping[param])


def body_for(path: str, seeded: SeededTenant) -> dict[str, Any]:
    """A body the route accepts as well-formed, so that what it answers is about the resource."""
    if path == "/api/v1/templates/{template_id}/rollback":
        return {"deployment_id": str(seeded.deployment_id)}
    if path == "/api/v1/templates/{template_id}/webhooks":
        return {"provider": "generic"}
    if path == "/api/v1/templates/{template_id}/schedules":
        return {"cron": "0 3 * * *"}
    return {}


# Query parameters an operation requires, so the sweeps reach what it does with the ids.
REQUIRED_QUERY = {"/api/v1/deployments/{deployment_id}/logs/search": "q=error"}


def concrete_url(path: str, seeded: SeededTenant) -> str:
    url = ID_PARAM.sub(lambda match: id_for(path, match.group(1), seeded), path)
    query = REQUIRED_QUERY.get(path)
    return f"{url}?{query}" if query else url


def api_operations() -> list[tuple[str, str]]:
    """Every (METHOD, path) of the REST API, from the OpenAPI description (routers included)."""
    return list(_api_operations())


@functools.cache
def api_description() -> dict[str, Any]:
    """The served OpenAPI description. Built once per process: an app and its description cost
    ~2.5 s of CPU (more under coverage), and the sweeps of several files ask for it."""
    return create_app().openapi()


def documented_codes(method: str, path: str) -> set[int]:
    """The answers the description documents for ``method path`` (a path template)."""
    operation = api_description()["paths"][path][method.lower()]
    return {int(code) for code in operation["responses"]}


def undocumented(method: str, path: str, response: httpx.Response) -> str | None:
    """A line naming ``response``'s status when the description does not document it for the
    operation (the sweeps check every answer they get against the description)."""
    if response.status_code in documented_codes(method, path):
        return None
    return f"{method} {path}: {response.status_code} is not documented ({response.text[:120]})"


@functools.cache
def _api_operations() -> tuple[tuple[str, str], ...]:
    spec = api_description()
    return tuple(
        (method.upper(), path)
        for path, item in spec["paths"].items()
        if path.startswith("/api/v1/")
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    )


def tenant_routes() -> list[tuple[str, str]]:
    """Every (method, path) of the API that names a tenant-owned resource by id."""
    found = []
    for method, path in api_operations():
        params = ID_PARAM.findall(path)
        if not params or path.startswith(("/api/v1/auth/tokens", "/api/v1/tenant/members")):
            continue
        if path.startswith("/api/v1/git-providers/oauth/"):  # {provider_type}: not a resource id
            continue
        if path.startswith("/api/v1/hooks/"):  # inbound webhooks: public, the signature decides
            continue
        if path.startswith("/api/v1/auth/teams/"):  # a team's log-in page: public by design
            continue
        found.append((method, path))
    return found


@pytest.fixture
async def seeded(db: Database, admin: Account) -> SeededTenant:
    return await seed_tenant(db, tenant_id=admin.tenant_id, profile_id=admin.user_id)


def test_sweep_covers_every_domain() -> None:
    assert len(tenant_routes()) >= 30
    paths = {path for _, path in tenant_routes()}
    for prefix in (
        "/api/v1/hosts/",
        "/api/v1/git-providers/",
        "/api/v1/repositories/",
        "/api/v1/deployments/",
        "/api/v1/cicd-providers/",
        "/api/v1/host-groups/",
        "/api/v1/templates/",
        "/api/v1/schedules/",
    ):
        assert any(path.startswith(prefix) for path in paths), prefix


async def test_every_endpoint_hides_other_tenants_resources(
    client: httpx.AsyncClient, seeded: SeededTenant, other_admin: Account
) -> None:
    failures = []
    for method, path in tenant_routes():
        url = concrete_url(path, seeded)
        kwargs: dict[str, Any] = {"headers": other_admin.headers}
        if method in ("POST", "PUT", "PATCH"):
            kwargs["json"] = body_for(path, seeded)
        response = await client.request(method, url, **kwargs)
        if response.status_code != 404:
            failures.append(f"{method} {path} -> {response.status_code} {response.text[:200]}")
        failures.append(undocumented(method, path, response) or "")
    assert [failure for failure in failures if failure] == []


async def test_lists_never_show_other_tenants_rows(
    client: httpx.AsyncClient, seeded: SeededTenant, other_admin: Account, admin: Account
) -> None:
    seeded_ids = {str(value) for value in vars(seeded).values()} | {admin.user_id}
    for path in (
        "/api/v1/hosts",
        "/api/v1/host-groups",
        "/api/v1/templates",
        "/api/v1/webhooks",
        "/api/v1/git-providers",
        "/api/v1/repositories",
        "/api/v1/deployments",
        "/api/v1/cicd-providers",
        "/api/v1/cicd-jobs",
        "/api/v1/tenant/members",
        "/api/v1/freeze-windows",
        "/api/v1/notification-channels",
        "/api/v1/notification-rules",
        "/api/v1/sso/providers",
        "/api/v1/sso/rules",
    ):
        mine = await client.get(path, headers=admin.headers)
        theirs = await client.get(path, headers=other_admin.headers)
        assert mine.status_code == theirs.status_code == 200, path
        assert seeded_ids & set(re.findall(r"[0-9a-f-]{36}", mine.text)), (
            f"{path} shows the owner nothing"
        )
        assert not seeded_ids & set(re.findall(r"[0-9a-f-]{36}", theirs.text)), f"{path} leaks"


async def test_rls_blocks_raw_queries_without_the_tenant_setting(
    database_url: str, seeded: SeededTenant, other_admin: Account
) -> None:
    tables = [
        "hosts",
        "git_providers",
        "repositories",
        "deployments",
        "deployment_logs",
        "deployment_scripts",
        "cicd_providers",
        "cicd_jobs",
        "deployment_cicd_mappings",
        "templates",
        "profiles",
        "users",
        "tenants",
        "api_tokens",
    ]
    with psycopg.connect(to_libpq_url(database_url), options=f"-c role={APP_ROLE}") as conn:
        for table in tables:
            fetched = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
            assert fetched is not None
            (count,) = fetched
            assert count == 0, f"{table} visible without a tenant"
        conn.execute("SELECT set_config('shipyard.tenant_id', %s, true)", (other_admin.tenant_id,))
        fetched = conn.execute("SELECT count(*) FROM hosts").fetchone()
        assert fetched is not None
        (count,) = fetched
        assert count == 0
        # Writing into another tenant is refused too.
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(
                "INSERT INTO hosts (name, tenant_id) VALUES ('x', %s)", (str(seeded.tenant_id),)
            )
        conn.rollback()
        conn.execute("SELECT set_config('shipyard.tenant_id', %s, true)", (str(seeded.tenant_id),))
        fetched = conn.execute("SELECT count(*) FROM hosts").fetchone()
        assert fetched is not None
        (count,) = fetched
        assert count == 1


async def test_application_role_cannot_bypass_rls(database_url: str) -> None:
    with psycopg.connect(to_libpq_url(database_url)) as conn:
        row = conn.execute(
            "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = %s", (APP_ROLE,)
        ).fetchone()
    assert row == (False, False)
