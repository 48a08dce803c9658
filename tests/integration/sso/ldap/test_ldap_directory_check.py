"""The hourly directory check against a real slapd: members gone from the directory or left with
no role are disabled (their tokens stop working), changed groups change the role, a member who
is given a role again is enabled again, and a directory that cannot be asked changes nothing."""

from __future__ import annotations

import json
import secrets
import uuid
from uuid import UUID

import httpx
from sqlalchemy import select, update

from shipyard.accounts.models import AuditEvent, User
from shipyard.config import Settings
from shipyard.db import Database
from shipyard.runtime import Runtime
from shipyard.sso import directory_flows
from shipyard.sso.models import SsoProvider
from tests.integration.sso.ldap import slapd
from tests.integration.sso.ldap.conftest import MakeProvider
from tests.integration.sso.ldap.test_ldap_login import ldap_login
from tests.support import canary
from tests.support.api import Account, add_member, signup
from tests.support.browser_http import browser_client, csrf_token
from tests.support.cli_process import run_shipyard
from tests.support.live_server import serve


def add_person(server: slapd.Slapd, uid: str, password: str) -> None:
    server.ldapmodify(
        f"dn: {server.user_dn(uid)}\nchangetype: add\nobjectClass: inetOrgPerson\n"
        f"uid: {uid}\ncn: {uid.title()}\nsn: {uid.title()}\nmail: {uid}@example.org\n"
        f"userPassword: {slapd.ssha(password)}\n"
    )


def remove_person(server: slapd.Slapd, uid: str) -> None:
    server.ldapmodify(f"dn: {server.user_dn(uid)}\nchangetype: delete\n")


async def status_of(client: httpx.AsyncClient, token: str) -> int:
    answer = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    return answer.status_code


async def signed_in(
    client: httpx.AsyncClient, provider_id: UUID, uid: str, password: str
) -> tuple[str, str]:
    """(token, role) of a sign-in that must succeed."""
    answer = await ldap_login(client, provider_id, uid, password)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    return str(body["access_token"]), str(body["user"]["role"])


async def checks_of(db: Database, tenant_id: str) -> list[AuditEvent]:
    async with db.session(system=True) as session:
        rows = await session.scalars(
            select(AuditEvent)
            .where(
                AuditEvent.tenant_id == UUID(tenant_id),
                AuditEvent.action.in_(("sso.directory_check", "sso.role_change")),
            )
            .order_by(AuditEvent.created_at)
        )
        return list(rows)


async def test_gone_and_roleless_members_are_disabled_and_roles_follow_the_directory(
    client: httpx.AsyncClient,
    runtime: Runtime,
    admin: Account,
    ldap_provider: MakeProvider,
    slapd_server: slapd.Slapd,
    db: Database,
) -> None:
    provider_id = await ldap_provider(admin.tenant_id)
    leaver = f"leaver{uuid.uuid4().hex[:8]}"
    leaver_password = canary.remember(secrets.token_urlsafe(12), "an LDAP password")
    add_person(slapd_server, leaver, leaver_password)
    slapd_server.add_member("developers", leaver)
    alice_token, alice_role = await signed_in(
        client, provider_id, "alice", slapd_server.passwords["alice"]
    )
    bob_token, _ = await signed_in(client, provider_id, "bob", slapd_server.passwords["bob"])
    carol_token, carol_role = await signed_in(
        client, provider_id, "carol", slapd_server.passwords["carol"]
    )
    leaver_token, _ = await signed_in(client, provider_id, leaver, leaver_password)
    assert (alice_role, carol_role) == ("admin", "viewer")

    # In the directory: the leaver's entry is deleted, bob leaves developers (no group of his
    # maps to a role any more), carol joins developers (ranked above auditors).
    remove_person(slapd_server, leaver)
    slapd_server.remove_member("developers", "bob")
    slapd_server.add_member("developers", "carol")
    bob_is_back = False
    try:
        [result] = await directory_flows.check_directories(runtime=runtime)
        assert (result.checked, result.disabled, result.role_changes) == (4, 2, 1)

        # The leaver and bob can no longer use what they hold; alice and carol still can.
        assert await status_of(client, leaver_token) == 401
        assert await status_of(client, bob_token) == 401
        assert await status_of(client, alice_token) == 200
        me = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {carol_token}"})
        assert me.status_code == 200 and me.json()["role"] == "developer"
        entries = await checks_of(db, admin.tenant_id)
        reasons = sorted(
            str(entry.details.get("reason"))
            for entry in entries
            if entry.details.get("result") == "disabled"
        )
        assert reasons == ["gone from the directory", "their groups map to no role"]
        assert [entry.details["to"] for entry in entries if entry.action == "sso.role_change"] == [
            "developer"
        ]
        # A second check finds nothing more to do.
        [again] = await directory_flows.check_directories(runtime=runtime)
        assert (again.disabled, again.reenabled, again.role_changes) == (0, 0, 0)

        # Bob back in developers: the next check enables him; his old token stays revoked.
        slapd_server.add_member("developers", "bob")
        bob_is_back = True
        [back] = await directory_flows.check_directories(runtime=runtime)
        assert back.reenabled == 1
        async with db.session(system=True) as session:
            bob = await session.scalar(select(User).where(User.email == "bob@example.org"))
            assert bob is not None and not bob.is_disabled
        assert await status_of(client, bob_token) == 401
        await signed_in(client, provider_id, "bob", slapd_server.passwords["bob"])
    finally:
        # The directory as the other tests expect it.
        slapd_server.remove_member("developers", "carol")
        if not bob_is_back:
            slapd_server.add_member("developers", "bob")


async def test_a_directory_that_cannot_be_asked_or_a_check_turned_off_changes_nothing(
    client: httpx.AsyncClient,
    runtime: Runtime,
    admin: Account,
    ldap_provider: MakeProvider,
    slapd_server: slapd.Slapd,
    db: Database,
) -> None:
    provider_id = await ldap_provider(admin.tenant_id)
    bob_token, _ = await signed_in(client, provider_id, "bob", slapd_server.passwords["bob"])
    slapd_server.remove_member("developers", "bob")
    try:
        # The service account's password is wrong: nobody is disabled, the admins see why.
        wrong = canary.remember("not-the-service-password-7", "a wrong LDAP service password")
        async with db.session(system=True) as session:
            await session.execute(
                update(SsoProvider).where(SsoProvider.id == provider_id).values(secret=wrong)
            )
        [result] = await directory_flows.check_directories(runtime=runtime)
        assert result.checked == 0
        assert await status_of(client, bob_token) == 200
        [failure] = await checks_of(db, admin.tenant_id)
        assert failure.details["result"] == "failed"
        assert "service account" in failure.details["reason"]

        # The right password, but the check turned off for this provider.
        async with db.session(system=True) as session:
            provider = await session.get(SsoProvider, provider_id)
            assert provider is not None
            provider.secret = slapd_server.service_password
            provider.config = {**provider.config, "directory_check": False}
        [off] = await directory_flows.check_directories(runtime=runtime)
        assert off.checked == 0
        assert await status_of(client, bob_token) == 200
    finally:
        slapd_server.add_member("developers", "bob")


async def test_an_admin_runs_the_check_now_through_the_api_and_the_cli(
    client: httpx.AsyncClient,
    admin: Account,
    ldap_provider: MakeProvider,
    slapd_server: slapd.Slapd,
    db: Database,
    settings: Settings,
) -> None:
    provider_id = await ldap_provider(admin.tenant_id)
    bob_token, _ = await signed_in(client, provider_id, "bob", slapd_server.passwords["bob"])
    path = f"/api/v1/sso/providers/{provider_id}/directory-check"
    slapd_server.remove_member("developers", "bob")
    try:
        # Not for a member who is not an admin, nor for another team's admin.
        developer = await add_member(client, admin, "developer")
        denied = await client.post(path, headers=developer.headers)
        assert denied.status_code == 403, denied.text
        outsider = await signup(client, tenant_name="Other team")
        hidden = await client.post(path, headers=outsider.headers)
        assert hidden.status_code == 404, hidden.text

        async with serve(db, settings) as base_url:
            code, out = await run_shipyard(
                base_url,
                admin.token,
                *("sso", "providers", "check-directory", "Corporate LDAP", "-o", "json"),
                label="shipyard-directory-check",
            )
        assert code == 0, out
        assert json.loads(out) == {"checked": 1, "disabled": 1, "enabled": 0, "role_changes": 0}
        assert await status_of(client, bob_token) == 401
        [entry] = [e for e in await checks_of(db, admin.tenant_id) if e.details.get("result")]
        assert str(entry.actor_profile_id) == admin.user_id

        # A directory that cannot be asked: 502 with the reason, nothing changed.
        async with db.session(system=True) as session:
            await session.execute(
                update(SsoProvider)
                .where(SsoProvider.id == provider_id)
                .values(secret=canary.remember("wrong-service-secret-3", "an LDAP password"))
            )
        failed = await client.post(path, headers=admin.headers)
        assert failed.status_code == 502, failed.text
        assert "service account" in failed.json()["error"]["message"]

        # The provider turned off, its check turned off, or not a directory: 409 saying so.
        async with db.session(system=True) as session:
            provider = await session.get(SsoProvider, provider_id)
            assert provider is not None
            provider.enabled = False
        disabled = await client.post(path, headers=admin.headers)
        assert disabled.status_code == 409, disabled.text
        assert disabled.json()["error"]["code"] == "provider_disabled"
        async with db.session(system=True) as session:
            provider = await session.get(SsoProvider, provider_id)
            assert provider is not None
            provider.enabled = True
            provider.config = {**provider.config, "directory_check": False}
        off = await client.post(path, headers=admin.headers)
        assert off.status_code == 409 and "turned off" in off.text, off.text
        assert off.json()["error"]["code"] == "directory_check_off"
        oidc = await client.post(
            "/api/v1/sso/providers",
            headers=admin.headers,
            json={
                "kind": "oidc",
                "name": "Some OIDC",
                "config": {"issuer": "https://idp.example.com", "client_id": "x"},
            },
        )
        assert oidc.status_code == 201, oidc.text
        not_ldap = await client.post(
            f"/api/v1/sso/providers/{oidc.json()['id']}/directory-check", headers=admin.headers
        )
        assert not_ldap.status_code == 409 and "LDAP" in not_ldap.text, not_ldap.text
    finally:
        slapd_server.add_member("developers", "bob")


async def test_the_settings_page_runs_the_check_and_shows_what_it_did(
    client: httpx.AsyncClient,
    admin: Account,
    ldap_provider: MakeProvider,
    slapd_server: slapd.Slapd,
) -> None:
    provider_id = await ldap_provider(admin.tenant_id)
    bob_token, _ = await signed_in(client, provider_id, "bob", slapd_server.passwords["bob"])
    slapd_server.remove_member("developers", "bob")
    try:
        async with browser_client(client, admin) as http:
            token = await csrf_token(http, "/settings/sso")
            page = await http.get("/settings/sso")
            action = f"/settings/sso/providers/{provider_id}/directory-check"
            assert f'action="{action}"' in page.text
            checked = await http.post(action, data={"csrf_token": token})
            assert checked.status_code == 200, checked.text
            assert 'id="test-result"' in checked.text
            assert "Members looked up: 1; disabled: 1;" in checked.text
        assert await status_of(client, bob_token) == 401
    finally:
        slapd_server.add_member("developers", "bob")
