"""The command line's user creation (``shipyard user create``) as a flow on the runtime."""

from __future__ import annotations

from uuid import UUID, uuid4

import httpx
import pytest

from shipyard.accounts.flows import create_user_cli
from shipyard.errors import Conflict, NotFound
from shipyard.runtime import Runtime
from tests.support.api import Account, unique_email


async def test_new_tenant_gets_an_admin_who_can_log_in(
    runtime: Runtime, client: httpx.AsyncClient
) -> None:
    email = unique_email("ops")
    profile = await create_user_cli(
        runtime=runtime,
        email=email.upper(),
        password="long password 1",
        full_name="Ops",
        tenant_name="Ops",
        tenant_id=None,
        role="viewer",
    )
    assert profile.role == "admin"
    assert profile.tenant_name == "Ops"
    login = await client.post(
        "/api/v1/auth/login", json={"email": email, "password": "long password 1"}
    )
    assert login.status_code == 200
    assert login.json()["user"]["tenant_id"] == str(profile.tenant_id)


async def test_existing_tenant_gets_a_member_with_the_role_and_its_name(
    runtime: Runtime, admin: Account
) -> None:
    profile = await create_user_cli(
        runtime=runtime,
        email=unique_email("dev"),
        password="long password 1",
        full_name=None,
        tenant_name="ignored",
        tenant_id=UUID(admin.tenant_id),
        role="developer",
    )
    assert (profile.role, profile.tenant_name) == ("developer", "Acme")


async def test_taken_email_and_unknown_tenant_are_refused(runtime: Runtime, admin: Account) -> None:
    with pytest.raises(Conflict):
        await create_user_cli(
            runtime=runtime,
            email=admin.email,
            password="long password 1",
            full_name=None,
            tenant_name=None,
            tenant_id=None,
            role="viewer",
        )
    with pytest.raises(NotFound):
        await create_user_cli(
            runtime=runtime,
            email=unique_email(),
            password="long password 1",
            full_name=None,
            tenant_name=None,
            tenant_id=uuid4(),
            role="viewer",
        )
