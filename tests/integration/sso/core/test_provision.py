"""Provisioning, the step every SSO sign-in ends with: just-in-time members with the mapped role,
role changes at each sign-in (audited), refusals that say why, a member who lost every role
(tokens revoked, disabled, enabled again by a later mapped sign-in), and what is never allowed
(another team's e-mail, an admin-disabled account)."""

from __future__ import annotations

from uuid import UUID

import httpx
from sqlalchemy import select

from shipyard.accounts.models import ApiToken, Profile, User
from shipyard.accounts.principal import RequestContext
from shipyard.config import Settings
from shipyard.db import Database
from shipyard.errors import NotFound
from shipyard.sso import service
from shipyard.sso.models import SsoIdentity
from tests.integration.sso.core.helpers import (
    add_provider,
    add_rule,
    entries,
    refused,
    set_policy,
    signed_in,
)
from tests.support.api import Account, add_member, unique_email


async def me(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})


async def test_first_sign_in_creates_the_member_and_groups_change_the_role(
    client: httpx.AsyncClient, admin: Account, db: Database, settings: Settings
) -> None:
    provider_id = await add_provider(db, admin.tenant_id)
    await add_rule(db, admin.tenant_id, group="devs", role="developer", position=0)
    admins_rule = await add_rule(db, admin.tenant_id, group="Ops", role="admin", position=1)
    email = unique_email("sso")

    opened = await signed_in(
        db, settings, provider_id, subject="sub-1", email=email.upper(), groups=("devs",)
    )
    assert opened.me.role == "developer"
    assert opened.me.email == email
    assert str(opened.me.tenant_id) == admin.tenant_id
    answer = await me(client, opened.token)
    assert answer.status_code == 200, answer.text
    assert answer.json()["role"] == "developer"
    async with db.session(system=True) as session:
        user = await session.get(User, opened.me.id)
        assert user is not None and user.encrypted_password == service.SSO_PASSWORD_HASH
    # The unusable hash: no password opens it.
    login = await client.post("/api/v1/auth/login", json={"email": email, "password": "!sso"})
    assert login.status_code == 401

    # Next time the groups say admin (case-insensitively): the role follows, audited.
    again = await signed_in(
        db, settings, provider_id, subject="sub-1", email=email, groups=("devs", "ops")
    )
    assert again.me.id == opened.me.id
    assert again.me.role == "admin"
    changes = await entries(db, admin.tenant_id, "sso.role_change")
    assert len(changes) == 1
    assert changes[0].details["from"] == "developer"
    assert changes[0].details["to"] == "admin"
    assert changes[0].details["rule_id"] == str(admins_rule)
    assert changes[0].resource_id == opened.me.id
    logins = await entries(db, admin.tenant_id, "sso.login")
    assert [entry.outcome for entry in logins] == ["success", "success"]
    assert logins[0].details["created"] is True and logins[1].details["created"] is False
    assert logins[0].actor_email == email
    async with db.session(system=True) as session:
        link = await session.scalar(select(SsoIdentity).where(SsoIdentity.subject == "sub-1"))
        assert link is not None
        assert link.groups == ["devs", "ops"]
        assert link.role_rule_id == admins_rule and link.role_source == "rule"
        assert link.last_login_at is not None


async def test_no_rule_and_no_default_is_refused_with_the_reason(
    admin: Account, db: Database, settings: Settings
) -> None:
    provider_id = await add_provider(db, admin.tenant_id)
    await add_rule(db, admin.tenant_id, group="devs", role="developer", position=0)
    email = unique_email("nobody")
    reason = await refused(
        db, settings, provider_id, subject="sub-x", email=email, groups=("sales",)
    )
    assert "none of your groups gives you a role in Acme" in reason
    assert "sales" in reason
    async with db.session(system=True) as session:
        assert await session.scalar(select(User).where(User.email == email)) is None
    denied = await entries(db, admin.tenant_id, "sso.refused")
    assert len(denied) == 1 and denied[0].outcome == "denied"
    assert denied[0].details["reason"] == "no_role"
    assert denied[0].actor_email == email

    # With a default role the same person gets it.
    await set_policy(db, admin.tenant_id, sso_default_role="viewer")
    opened = await signed_in(
        db, settings, provider_id, subject="sub-x", email=email, groups=("sales",)
    )
    assert opened.me.role == "viewer"
    async with db.session(system=True) as session:
        link = await session.scalar(select(SsoIdentity).where(SsoIdentity.subject == "sub-x"))
        assert link is not None and link.role_source == "default" and link.role_rule_id is None


async def test_a_member_who_loses_every_role_is_disabled_until_mapped_again(
    client: httpx.AsyncClient, admin: Account, db: Database, settings: Settings
) -> None:
    provider_id = await add_provider(db, admin.tenant_id)
    await add_rule(db, admin.tenant_id, group="devs", role="developer", position=0)
    email = unique_email("leaver")
    opened = await signed_in(
        db, settings, provider_id, subject="sub-l", email=email, groups=("devs",)
    )
    personal = await client.post(
        "/api/v1/auth/tokens",
        headers={"Authorization": f"Bearer {opened.token}"},
        json={"name": "ci"},
    )
    assert personal.status_code == 201, personal.text
    personal_token = personal.json()["token"]
    assert (await me(client, personal_token)).status_code == 200

    reason = await refused(db, settings, provider_id, subject="sub-l", email=email, groups=())
    assert "none of your groups" in reason
    assert (await me(client, personal_token)).status_code == 401
    assert (await me(client, opened.token)).status_code == 401
    async with db.session(system=True) as session:
        user = await session.get(User, opened.me.id)
        assert user is not None and user.is_disabled and user.disabled_reason == "sso_no_role"
        tokens = list(await session.scalars(select(ApiToken).where(ApiToken.profile_id == user.id)))
        assert tokens and all(token.revoked_at is not None for token in tokens)
    denied = await entries(db, admin.tenant_id, "sso.refused")
    assert denied[-1].details["tokens_revoked"] == 2
    assert denied[-1].resource_id == provider_id

    # Mapped again: enabled again, with a fresh session (the revoked tokens stay revoked).
    back = await signed_in(
        db, settings, provider_id, subject="sub-l", email=email, groups=("devs",)
    )
    assert (await me(client, back.token)).status_code == 200
    assert (await me(client, personal_token)).status_code == 401
    async with db.session(system=True) as session:
        user = await session.get(User, opened.me.id)
        assert user is not None and not user.is_disabled and user.disabled_reason is None
    assert (await entries(db, admin.tenant_id, "sso.login"))[-1].details["reenabled"] is True


async def test_an_e_mail_of_another_team_is_refused(
    admin: Account, other_admin: Account, db: Database, settings: Settings
) -> None:
    provider_id = await add_provider(db, admin.tenant_id)
    await set_policy(db, admin.tenant_id, sso_default_role="admin")
    reason = await refused(
        db, settings, provider_id, subject="sub-o", email=other_admin.email, groups=()
    )
    assert "belongs to an account of another team" in reason
    async with db.session(system=True) as session:
        profile = await session.get(Profile, UUID(other_admin.user_id))
        assert profile is not None and str(profile.tenant_id) == other_admin.tenant_id
        assert profile.role == "admin"
        assert await session.scalar(select(SsoIdentity)) is None
    assert (await entries(db, admin.tenant_id, "sso.refused"))[0].details["reason"] == (
        "email_of_another_team"
    )
    assert await entries(db, other_admin.tenant_id, "sso.refused") == []


async def test_an_existing_member_is_linked_and_an_admin_disabled_one_refused(
    client: httpx.AsyncClient, admin: Account, db: Database, settings: Settings
) -> None:
    provider_id = await add_provider(db, admin.tenant_id, kind="ldap", name="Directory")
    await add_rule(db, admin.tenant_id, group="devs", role="developer", position=0)
    member = await add_member(client, admin, "viewer")
    opened = await signed_in(
        db, settings, provider_id, subject="uid=m,dc=example", email=member.email, groups=("devs",)
    )
    assert str(opened.me.id) == member.user_id
    assert opened.me.role == "developer"

    async with db.session(system=True) as session:
        user = await session.get(User, UUID(member.user_id))
        assert user is not None
        user.is_disabled = True
        user.disabled_reason = "admin"
    reason = await refused(
        db, settings, provider_id, subject="uid=m,dc=example", email=member.email, groups=("devs",)
    )
    assert "deactivated by an admin" in reason
    async with db.session(system=True) as session:
        user = await session.get(User, UUID(member.user_id))
        assert user is not None and user.is_disabled and user.disabled_reason == "admin"


async def test_login_provider_is_not_found_when_missing_or_disabled(
    admin: Account, db: Database
) -> None:
    off = await add_provider(db, admin.tenant_id, enabled=False)
    on = await add_provider(db, admin.tenant_id, name="On")
    async with db.session(system=True) as session:
        for missing in (off, UUID(int=7)):
            try:
                await service.login_provider(session=session, provider_id=missing)
            except NotFound:
                pass
            else:
                raise AssertionError("expected NotFound")
        provider = await service.login_provider(session=session, provider_id=on)
        assert provider.tenant_id == UUID(admin.tenant_id) and provider.kind == "oidc"


async def test_record_failure_audits_without_secrets(admin: Account, db: Database) -> None:
    provider_id = await add_provider(db, admin.tenant_id)
    async with db.session(system=True) as session:
        provider = await service.login_provider(session=session, provider_id=provider_id)
        await service.record_failure(
            session=session,
            provider=provider,
            reason="the ID token's signature is not valid",
            context=RequestContext(ip_address="127.0.0.1"),
        )
    failed = await entries(db, admin.tenant_id, "sso.login")
    assert len(failed) == 1 and failed[0].outcome == "failure"
    assert failed[0].details["reason"] == "the ID token's signature is not valid"
