"""LDAP sign-in tests: one real slapd per test session (per xdist worker), providers and rules of
a tenant written as an admin's set-up would leave them.

Shareable: ``slapd_server`` and ``ldap_provider`` serve any test under tests/integration/sso.
Tests that change the directory (group membership) undo it before they end.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from shipyard.db import Database
from shipyard.sso.models import SsoProvider, SsoRoleRule
from tests.integration.sso.ldap import slapd

MakeProvider = Callable[..., Awaitable[UUID]]

# The tenant's rules in every test unless it says otherwise: by cn, and one by full DN.
DEFAULT_RULES: tuple[tuple[str, str], ...] = (
    ("ops", "admin"),
    (slapd.Slapd.group_dn("developers"), "developer"),
    ("auditors", "viewer"),
)


@pytest.fixture(scope="session")
def slapd_server(session_root: Path) -> Iterator[slapd.Slapd]:
    server = slapd.start(session_root / f"slapd-{uuid.uuid4().hex[:8]}")
    try:
        yield server
    finally:
        server.stop()
        slapd.remove(server.run_dir)


def ldap_config(server: slapd.Slapd, **overrides: Any) -> dict[str, Any]:
    """A provider's settings for ``server``: plain ldap:// with member search, unless told."""
    config: dict[str, Any] = {
        "url": server.ldap_url,
        "bind_dn": slapd.SERVICE_DN,
        "user_base": slapd.PEOPLE,
        "user_filter": "(&(objectClass=inetOrgPerson)(uid={username}))",
        "group_search": "member",
        "group_base": slapd.GROUPS,
        "timeout_seconds": 5,
    }
    config.update(overrides)
    return {key: value for key, value in config.items() if value is not None}


@pytest.fixture
def ldap_provider(db: Database, slapd_server: slapd.Slapd) -> MakeProvider:
    """``await ldap_provider(tenant_id, rules=..., secret=..., **config)``: an LDAP provider
    of the tenant (and its role rules), as the admin's set-up stores it; returns its id."""

    async def make(
        tenant_id: str | UUID,
        *,
        name: str = "Corporate LDAP",
        rules: tuple[tuple[str, str], ...] = DEFAULT_RULES,
        secret: str | None = None,
        enabled: bool = True,
        default_role: str | None = None,
        **overrides: Any,
    ) -> UUID:
        from shipyard.accounts.models import Tenant

        tenant = UUID(str(tenant_id))
        provider_id = uuid.uuid4()
        async with db.session(system=True) as session:
            session.add(
                SsoProvider(
                    id=provider_id,
                    tenant_id=tenant,
                    kind="ldap",
                    name=name,
                    enabled=enabled,
                    config=ldap_config(slapd_server, **overrides),
                    secret=slapd_server.service_password if secret is None else secret,
                )
            )
            await session.flush()
            for position, (group, role) in enumerate(rules):
                session.add(
                    SsoRoleRule(tenant_id=tenant, position=position, group=group, role=role)
                )
            if default_role is not None:
                row = await session.get(Tenant, tenant)
                assert row is not None
                row.sso_default_role = default_role
        return provider_id

    return make
