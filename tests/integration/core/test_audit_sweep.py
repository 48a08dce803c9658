"""Every write operation of the API leaves an audit entry under the route's own action name.

Data-driven: the operations come from the OpenAPI description, so routes added later are
swept without editing this file. Each one is called as an admin with a well-formed body (what
the isolation sweep sends); whatever it answers (success, a validation failure, a conflict, a
not found), an entry with the route's action (``shipyard.audit.actions.audit_action``) must
appear. The failure message names every operation without one.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import httpx
import pytest
from sqlalchemy import func, select

from shipyard.accounts.models import AuditEvent
from shipyard.audit.actions import audit_action
from shipyard.config import Settings, get_settings
from shipyard.db import Database
from tests.integration.core.test_isolation import (
    api_operations,
    body_for,
    concrete_url,
    undocumented,
)
from tests.support.api import Account
from tests.support.seed import SeededTenant, seed_tenant

UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
# Operations no tenant member performs, with the reason.
EXCLUDED_PREFIXES = {
    # Inbound webhook deliveries: signed by the provider, no member acts; each delivery is
    # recorded in the webhook's delivery log (and a run it starts is audited as template.launch).
    "/api/v1/hooks/": "inbound webhook deliveries (the delivery log records them)",
    # The OAuth callback is reached by the provider's redirect; the connection it makes is
    # audited by the git service (git_provider.create).
    "/api/v1/git-providers/oauth/": "the OAuth callback (the provider's redirect)",
}
EXCLUDED_PATHS = {
    # Unauthenticated: no tenant member yet. Successes are audited by accounts (signup, login,
    # invitation.accept); failed log-ins are kept by the log-in throttle (login_failures).
    "/api/v1/auth/signup": "unauthenticated (success audited as signup)",
    "/api/v1/auth/login": "unauthenticated (success audited as login)",
    "/api/v1/auth/accept-invitation": "unauthenticated (success audited as invitation.accept)",
    # LDAP sign-in (issue 16): unauthenticated; audited as sso.login (success or failure) or
    # sso.refused by the SSO provisioning step.
    "/api/v1/auth/ldap": "unauthenticated (audited as sso.login / sso.refused)",
}
# Ends the admin's own session: swept last.
LAST = ("POST", "/api/v1/auth/logout")


def swept_operations() -> list[tuple[str, str, str]]:
    """(method, path, action) of every write the sweep calls, deletions and log-out last."""
    found = []
    for method, path in api_operations():
        if method not in UNSAFE or path in EXCLUDED_PATHS:
            continue
        if any(path.startswith(prefix) for prefix in EXCLUDED_PREFIXES):
            continue
        action = audit_action(method, path)
        if action is None:  # a preview: it changes nothing
            continue
        found.append((method, path, action))
    found.sort(key=lambda item: ((item[0], item[1]) == LAST, item[0] == "DELETE"))
    return found


@pytest.fixture
def settings(test_settings: Settings) -> Settings:
    """The session's settings, CI/CD calls not retried.

    The seeded CI/CD provider's server (127.0.0.1:9) refuses connections; ``POST
    /cicd-providers/{id}/test`` retried that for its whole budget (~16 s, a third of the sweep).
    The entry is written whatever the check answers, so one attempt proves the same.
    """
    return get_settings().model_copy(update={"cicd_retry_seconds": 0.0})


@pytest.fixture
async def seeded(db: Database, admin: Account) -> SeededTenant:
    return await seed_tenant(db, tenant_id=admin.tenant_id, profile_id=admin.user_id)


def test_the_sweep_sees_every_domain() -> None:
    actions = {action for _, _, action in swept_operations()}
    for expected in ("host.create", "deployment.create", "template.launch", "audit_stream.create"):
        assert expected in actions
    assert len(actions) >= 50


async def _count(db: Database, admin: Account, action: str) -> int:
    async with db.session(tenant_id=UUID(admin.tenant_id), user_id=UUID(admin.user_id)) as session:
        found = await session.scalar(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.action == action)
        )
    return int(found or 0)


async def test_every_write_operation_leaves_an_audit_entry(
    client: httpx.AsyncClient, admin: Account, seeded: SeededTenant, db: Database
) -> None:
    missing = []
    for method, path, action in swept_operations():
        before = await _count(db, admin, action)
        kwargs: dict[str, Any] = {"headers": admin.headers}
        if method in ("POST", "PUT", "PATCH"):
            kwargs["json"] = body_for(path, seeded)
        try:
            url = concrete_url(path, seeded)
        except AssertionError as exc:  # a new path parameter not yet in id_for
            missing.append(f"{method} {path}: {exc}")
            continue
        response = await client.request(method, url, **kwargs)
        if await _count(db, admin, action) <= before:
            missing.append(f"{method} {path} -> {response.status_code}: no '{action}' entry")
        if (problem := undocumented(method, path, response)) is not None:
            missing.append(problem)
    assert missing == [], "write operations without an audit entry:\n" + "\n".join(missing)
