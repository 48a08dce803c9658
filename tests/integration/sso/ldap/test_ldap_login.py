"""LDAP sign-in through ``POST /api/v1/auth/ldap`` against a real slapd: passwords, groups to
roles (member search, memberOf, cn or DN), refusals, just-in-time accounts and their links."""

from __future__ import annotations

import contextlib
import uuid
from typing import Any
from uuid import UUID

import httpx
import pytest
from sqlalchemy import select

from shipyard.accounts.models import AuditEvent, Profile, User
from shipyard.accounts.principal import RequestContext
from shipyard.db import Database
from shipyard.runtime import Runtime
from shipyard.sso import ldap_flows
from shipyard.sso.identity import SsoFailed
from shipyard.sso.models import SsoIdentity
from tests.integration.sso.ldap import slapd
from tests.integration.sso.ldap.conftest import MakeProvider
from tests.support import canary
from tests.support.api import Account, signup


async def ldap_login(
    client: httpx.AsyncClient, provider_id: UUID, username: str, password: str
) -> httpx.Response:
    response = await client.post(
        "/api/v1/auth/ldap",
        json={"provider_id": str(provider_id), "username": username, "password": password},
    )
    if response.status_code == 200:
        canary.remember(response.json()["access_token"], "session token")
    return response


async def me(client: httpx.AsyncClient, token: str) -> dict[str, Any]:
    response = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def audit_rows(db: Database, action: str) -> list[AuditEvent]:
    async with db.session(system=True) as session:
        rows = await session.scalars(
            select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.created_at)
        )
        return list(rows.all())


async def test_right_password_creates_the_member_with_the_mapped_role(
    client: httpx.AsyncClient,
    admin: Account,
    ldap_provider: MakeProvider,
    slapd_server: slapd.Slapd,
    db: Database,
) -> None:
    provider_id = await ldap_provider(admin.tenant_id)

    first = await ldap_login(client, provider_id, "alice", slapd_server.passwords["alice"])

    assert first.status_code == 200, first.text
    body = first.json()
    assert body["token_type"] == "bearer"
    assert body["user"]["email"] == "alice@example.org"
    assert body["user"]["tenant_id"] == admin.tenant_id
    assert body["user"]["role"] == "admin"  # ops -> admin
    profile = await me(client, body["access_token"])
    assert profile["id"] == body["user"]["id"]
    # Signed in again: the same member, not a second one.
    again = await ldap_login(client, provider_id, "alice", slapd_server.passwords["alice"])
    assert again.status_code == 200, again.text
    assert again.json()["user"]["id"] == body["user"]["id"]
    async with db.session(system=True) as session:
        link = await session.scalar(
            select(SsoIdentity).where(SsoIdentity.provider_id == provider_id)
        )
        assert link is not None
        assert link.subject == slapd.Slapd.user_dn("alice")
        assert "ops" in link.groups and slapd.Slapd.group_dn("ops") in link.groups
        assert link.role_source == "rule"
    logins = [row for row in await audit_rows(db, "sso.login") if row.outcome == "success"]
    assert len(logins) == 2


async def test_wrong_password_and_unknown_user_get_the_same_answer(
    client: httpx.AsyncClient,
    admin: Account,
    ldap_provider: MakeProvider,
    slapd_server: slapd.Slapd,
    db: Database,
) -> None:
    provider_id = await ldap_provider(admin.tenant_id)
    wrong_password = canary.remember("not-alices-password-1", "a wrong LDAP password")

    wrong = await ldap_login(client, provider_id, "alice", wrong_password)
    unknown = await ldap_login(client, provider_id, "nobody-here", wrong_password)
    # Filter characters are escaped: "*" is no wildcard that finds somebody.
    wildcard = await ldap_login(client, provider_id, "*", slapd_server.passwords["alice"])
    injected = await ldap_login(
        client, provider_id, "alice)(uid=*", slapd_server.passwords["alice"]
    )

    for response in (wrong, unknown, wildcard, injected):
        assert response.status_code == 401, response.text
        assert response.json()["error"]["message"] == wrong.json()["error"]["message"]
    assert "wrong user name or password" in wrong.json()["error"]["message"]
    failures = [row for row in await audit_rows(db, "sso.login") if row.outcome == "failure"]
    assert len(failures) == 4
    assert "alice" in str(failures[0].details)
    for row in failures:
        assert wrong_password not in str(row.details)
        assert slapd_server.passwords["alice"] not in str(row.details)


async def test_an_empty_password_is_never_an_anonymous_bind(
    client: httpx.AsyncClient,
    runtime: Runtime,
    admin: Account,
    ldap_provider: MakeProvider,
) -> None:
    provider_id = await ldap_provider(admin.tenant_id)

    response = await client.post(
        "/api/v1/auth/ldap",
        json={"provider_id": str(provider_id), "username": "alice", "password": ""},
    )
    assert response.status_code == 422
    # Past the schema (the web form has none), the flow refuses it: slapd would take an empty
    # password as an unauthenticated bind and answer "success".
    with pytest.raises(SsoFailed, match="wrong user name or password"):
        await ldap_flows.ldap_login(
            runtime=runtime,
            provider_id=provider_id,
            username="alice",
            password="",
            context=RequestContext(ip_address="127.0.0.1"),
        )


async def test_groups_by_member_search_cn_dn_and_unique_member(
    client: httpx.AsyncClient,
    admin: Account,
    ldap_provider: MakeProvider,
    slapd_server: slapd.Slapd,
) -> None:
    provider_id = await ldap_provider(admin.tenant_id)

    bob = await ldap_login(client, provider_id, "bob", slapd_server.passwords["bob"])
    carol = await ldap_login(client, provider_id, "carol", slapd_server.passwords["carol"])

    # The developers rule names the group's full DN; auditors is a groupOfUniqueNames.
    assert bob.status_code == 200, bob.text
    assert bob.json()["user"]["role"] == "developer"
    assert carol.status_code == 200, carol.text
    assert carol.json()["user"]["role"] == "viewer"


async def test_groups_by_member_search_without_a_group_base(
    client: httpx.AsyncClient,
    admin: Account,
    ldap_provider: MakeProvider,
    slapd_server: slapd.Slapd,
) -> None:
    # No group_base: the groups are searched under the directory's suffix (dc=example,dc=org).
    provider_id = await ldap_provider(admin.tenant_id, group_base=None)

    carol = await ldap_login(client, provider_id, "carol", slapd_server.passwords["carol"])

    assert carol.status_code == 200, carol.text
    assert carol.json()["user"]["role"] == "viewer"


async def test_groups_by_member_of(
    client: httpx.AsyncClient,
    admin: Account,
    ldap_provider: MakeProvider,
    slapd_server: slapd.Slapd,
) -> None:
    provider_id = await ldap_provider(
        admin.tenant_id,
        group_search="memberOf",
        group_base=None,
        url=slapd_server.ldaps_url,
        ca_certificate=slapd_server.ca_pem,
    )

    alice = await ldap_login(client, provider_id, "alice", slapd_server.passwords["alice"])
    bob = await ldap_login(client, provider_id, "bob", slapd_server.passwords["bob"])

    assert alice.status_code == 200, alice.text
    assert alice.json()["user"]["role"] == "admin"
    assert bob.status_code == 200, bob.text
    assert bob.json()["user"]["role"] == "developer"


async def test_a_user_in_no_mapped_group_is_refused_with_the_reason(
    client: httpx.AsyncClient,
    admin: Account,
    ldap_provider: MakeProvider,
    slapd_server: slapd.Slapd,
    db: Database,
) -> None:
    provider_id = await ldap_provider(admin.tenant_id)

    response = await ldap_login(client, provider_id, "dave", slapd_server.passwords["dave"])

    assert response.status_code == 403, response.text
    error = response.json()["error"]
    assert error["code"] == "no_role"
    assert "marketing" in error["message"]
    async with db.session(system=True) as session:
        assert await session.scalar(select(User).where(User.email == "dave@example.org")) is None
    refusals = await audit_rows(db, "sso.refused")
    assert [row.outcome for row in refusals] == ["denied"]


async def test_the_tenant_default_role_admits_a_user_in_no_mapped_group(
    client: httpx.AsyncClient,
    admin: Account,
    ldap_provider: MakeProvider,
    slapd_server: slapd.Slapd,
) -> None:
    provider_id = await ldap_provider(admin.tenant_id, default_role="viewer")

    response = await ldap_login(client, provider_id, "dave", slapd_server.passwords["dave"])

    assert response.status_code == 200, response.text
    assert response.json()["user"]["role"] == "viewer"


async def test_the_role_follows_the_directory_at_every_log_in(
    client: httpx.AsyncClient,
    admin: Account,
    ldap_provider: MakeProvider,
    slapd_server: slapd.Slapd,
    db: Database,
) -> None:
    provider_id = await ldap_provider(admin.tenant_id)
    password = slapd_server.passwords["erin"]
    first = await ldap_login(client, provider_id, "erin", password)
    assert first.status_code == 200, first.text
    assert first.json()["user"]["role"] == "developer"
    try:
        slapd_server.add_member("ops", "erin")
        promoted = await ldap_login(client, provider_id, "erin", password)
        assert promoted.status_code == 200, promoted.text
        assert promoted.json()["user"]["role"] == "admin"
        changes = await audit_rows(db, "sso.role_change")
        assert [(row.details["from"], row.details["to"]) for row in changes] == [
            ("developer", "admin")
        ]

        slapd_server.remove_member("ops", "erin")
        slapd_server.remove_member("developers", "erin")
        refused = await ldap_login(client, provider_id, "erin", password)
        assert refused.status_code == 403, refused.text
        # Losing the last role disables the member; their sessions stop working.
        gone = await client.get(
            "/api/v1/me", headers={"Authorization": f"Bearer {promoted.json()['access_token']}"}
        )
        assert gone.status_code == 401
    finally:
        for group in ("ops", "developers"):
            with contextlib.suppress(RuntimeError):
                slapd_server.remove_member(group, "erin")
        slapd_server.add_member("developers", "erin")
    back = await ldap_login(client, provider_id, "erin", password)
    assert back.status_code == 200, back.text
    assert back.json()["user"]["role"] == "developer"


async def test_an_existing_member_with_the_same_email_is_linked(
    client: httpx.AsyncClient,
    admin: Account,
    ldap_provider: MakeProvider,
    slapd_server: slapd.Slapd,
) -> None:
    # The directory vouches for its mail attribute: the member made by invitation is linked.
    response = await client.post(
        "/api/v1/tenant/members",
        headers=admin.headers,
        json={
            "email": "bob@example.org",
            "password": canary.remember("bobs shipyard password", "member password"),
            "role": "viewer",
        },
    )
    assert response.status_code == 201, response.text
    provider_id = await ldap_provider(admin.tenant_id)

    bob = await ldap_login(client, provider_id, "bob", slapd_server.passwords["bob"])

    assert bob.status_code == 200, bob.text
    assert bob.json()["user"]["id"] == response.json()["id"]
    assert bob.json()["user"]["role"] == "developer"


async def test_a_provider_signs_nobody_into_another_tenant(
    client: httpx.AsyncClient,
    admin: Account,
    ldap_provider: MakeProvider,
    slapd_server: slapd.Slapd,
    db: Database,
) -> None:
    # bob@example.org already has an account in another team: Acme's directory cannot take it.
    other = await signup(client, tenant_name="Globex", email="bob@example.org")
    provider_id = await ldap_provider(admin.tenant_id)

    bob = await ldap_login(client, provider_id, "bob", slapd_server.passwords["bob"])
    alice = await ldap_login(client, provider_id, "alice", slapd_server.passwords["alice"])

    assert bob.status_code == 403, bob.text
    assert "another team" in bob.json()["error"]["message"]
    assert alice.status_code == 200
    assert alice.json()["user"]["tenant_id"] == admin.tenant_id != other.tenant_id
    async with db.session(system=True) as session:
        profiles = await session.scalars(
            select(Profile).where(Profile.tenant_id == UUID(other.tenant_id))
        )
        assert [profile.id for profile in profiles] == [UUID(other.user_id)]


async def test_unknown_disabled_or_non_ldap_providers_are_404(
    client: httpx.AsyncClient,
    admin: Account,
    ldap_provider: MakeProvider,
    slapd_server: slapd.Slapd,
) -> None:
    disabled = await ldap_provider(admin.tenant_id, enabled=False, name="Off")
    missing = UUID(int=7)

    for provider_id in (disabled, missing):
        response = await ldap_login(client, provider_id, "alice", slapd_server.passwords["alice"])
        assert response.status_code == 404, response.text


async def test_a_provider_set_up_through_the_api_signs_in(
    client: httpx.AsyncClient, admin: Account, slapd_server: slapd.Slapd
) -> None:
    # As an admin would: the provider (its stored settings completed by the API), a rule, a test.
    created = await client.post(
        "/api/v1/sso/providers",
        headers=admin.headers,
        json={
            "kind": "ldap",
            "name": "Directory",
            "config": {
                "url": slapd_server.ldap_url,
                "start_tls": True,
                "ca_certificate": slapd_server.ca_pem,
                "bind_dn": slapd.SERVICE_DN,
                "user_base": slapd.PEOPLE,
                "group_search": "memberOf",
            },
            "secret": slapd_server.service_password,
        },
    )
    assert created.status_code == 201, created.text
    assert slapd_server.service_password not in created.text
    provider_id = UUID(created.json()["id"])
    rule = await client.post(
        "/api/v1/sso/rules", headers=admin.headers, json={"group": "ops", "role": "admin"}
    )
    assert rule.status_code == 201, rule.text
    tested = await client.post(f"/api/v1/sso/providers/{provider_id}/test", headers=admin.headers)
    assert tested.status_code == 200, tested.text
    assert "StartTLS" in tested.json()["message"]

    alice = await ldap_login(client, provider_id, "alice", slapd_server.passwords["alice"])

    assert alice.status_code == 200, alice.text
    assert alice.json()["user"]["role"] == "admin"
    explained = await client.get(
        f"/api/v1/sso/members/{alice.json()['user']['id']}", headers=admin.headers
    )
    assert explained.status_code == 200, explained.text
    assert slapd_server.service_password not in explained.text


@pytest.mark.parametrize("group_search", ["member", "memberOf"])
async def test_nested_groups_are_followed_only_when_asked_and_a_cycle_ends(
    client: httpx.AsyncClient,
    admin: Account,
    ldap_provider: MakeProvider,
    slapd_server: slapd.Slapd,
    group_search: str,
) -> None:
    """bob is in developers; developers is in platform-X, platform-X in release-X, and release-X
    in platform-X again (a cycle). A rule on release-X makes bob an admin only with
    nested_groups."""
    suffix = uuid.uuid4().hex[:8]
    platform, release = f"platform-{suffix}", f"release-{suffix}"
    developers = slapd.Slapd.group_dn("developers")
    slapd_server.ldapmodify(
        f"dn: {slapd.Slapd.group_dn(platform)}\nchangetype: add\nobjectClass: groupOfNames\n"
        f"cn: {platform}\nmember: {developers}\n"
    )
    slapd_server.ldapmodify(
        f"dn: {slapd.Slapd.group_dn(release)}\nchangetype: add\nobjectClass: groupOfNames\n"
        f"cn: {release}\nmember: {slapd.Slapd.group_dn(platform)}\n"
    )
    slapd_server.ldapmodify(
        f"dn: {slapd.Slapd.group_dn(platform)}\nchangetype: modify\nadd: member\n"
        f"member: {slapd.Slapd.group_dn(release)}\n"
    )
    try:
        common: dict[str, Any] = {"group_search": group_search}
        if group_search == "memberOf":
            common["group_base"] = None
        # The tenant's rules come with the first provider; they apply to both.
        flat = await ldap_provider(
            admin.tenant_id, name="Flat", rules=((release, "admin"),), **common
        )
        nested = await ldap_provider(
            admin.tenant_id, name="Nested", rules=(), nested_groups=True, **common
        )

        refused = await ldap_login(client, flat, "bob", slapd_server.passwords["bob"])
        assert refused.status_code == 403, refused.text
        admitted = await ldap_login(client, nested, "bob", slapd_server.passwords["bob"])
        assert admitted.status_code == 200, admitted.text
        assert admitted.json()["user"]["role"] == "admin"
    finally:
        for group in (release, platform):
            slapd_server.ldapmodify(f"dn: {slapd.Slapd.group_dn(group)}\nchangetype: delete\n")
