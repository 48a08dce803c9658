"""LDAP sign-in, the user action: the web form and ``POST /auth/ldap`` both call :func:`ldap_login`.

Three steps, the directory in the middle with no transaction open: read the provider and the
throttle (one short system transaction), ask the directory (ldap3 on a thread), then record the
outcome (a second transaction: provisioning and its session, or the failure with its throttle
row and audit entry) and only then raise, so the refusal's or failure's writes are committed.

Throttled like password log-in (:mod:`shipyard.accounts.throttle`), counting failures per
(provider, user name) and per client address, so the form is no password-guessing oracle for
the directory behind it: the delay is slept before the directory is asked, and a caller clearly
hammering is refused (429) without it being asked at all.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING
from uuid import UUID

from shipyard.accounts import throttle
from shipyard.accounts.flows import UNKNOWN_ADDRESS
from shipyard.accounts.principal import RequestContext
from shipyard.accounts.service import OpenedSession
from shipyard.errors import NotFound
from shipyard.sso import admin, ldap, service
from shipyard.sso.identity import ExternalIdentity, SsoFailed, SsoRefused

if TYPE_CHECKING:
    from shipyard.runtime import Runtime

# User names shown in audit entries are cut here: a long one is more likely a pasted password.
AUDIT_USERNAME_LENGTH = 64


def throttle_key(provider_id: UUID, username: str) -> str:
    """The "account" LDAP failures are counted against (beside the client address)."""
    return f"ldap:{provider_id}:{username.strip().casefold()}"


def _audit_username(username: str) -> str:
    name = username.strip()
    return name if len(name) <= AUDIT_USERNAME_LENGTH else name[:AUDIT_USERNAME_LENGTH] + "…"


async def ldap_login(
    *,
    runtime: Runtime,
    provider_id: UUID,
    username: str,
    password: str,
    context: RequestContext,
) -> OpenedSession:
    """Check ``username``/``password`` against the provider's directory and sign them in to the
    provider's tenant (role from the group mapping, account made on first sign-in).

    Raises :class:`SsoFailed` (401) for a wrong user name or password (one answer for both) or a
    directory that cannot be used, :class:`SsoRefused` (403) when the directory vouched for the
    person but Shipyard will not sign them in, ``RateLimited`` (429) past the throttle's limits
    and ``NotFound`` (404) for a provider that does not exist, is off, or is not LDAP.
    """
    ip_address = context.ip_address or UNKNOWN_ADDRESS
    key = throttle_key(provider_id, username)
    async with runtime.db.session(system=True) as session:
        provider = await service.login_provider(session=session, provider_id=provider_id)
        if provider.kind != "ldap":
            raise NotFound("this sign-in provider does not exist or is turned off")
        wait = await throttle.login_wait(
            session=session,
            email=key,
            ip_address=ip_address,
            settings=runtime.settings,
            now=runtime.clock.now(),
        )
    if wait > 0:
        await asyncio.sleep(wait)

    identity: ExternalIdentity | None = None
    failure: SsoFailed | None = None
    try:
        config = ldap.LdapConfig.from_config(provider.config)
    except ValueError as exc:
        failure = SsoFailed(f"could not sign in: {provider.name} is not set up correctly ({exc})")
    else:
        try:
            identity = await ldap.authenticate(
                config,
                bind_password=provider.secret,
                username=username,
                password=password,
                policy=runtime.outbound,
            )
        except SsoFailed as exc:
            failure = exc

    outcome: OpenedSession | SsoRefused | None = None
    async with runtime.db.session(system=True) as session:
        if identity is None:
            assert failure is not None
            wrong_credentials = failure.message == ldap.WRONG_CREDENTIALS
            if wrong_credentials:
                await throttle.record_login_failure(
                    session=session, email=key, ip_address=ip_address
                )
            await service.record_failure(
                session=session,
                provider=provider,
                reason=f"{failure.message} (user name {_audit_username(username)!r})",
                context=context,
            )
        else:
            await throttle.forget_login_failures(session=session, email=key)
            outcome = await service.provision(
                session=session,
                provider=provider,
                identity=identity,
                context=context,
                settings=runtime.settings,
            )
    if failure is not None:
        raise failure
    if isinstance(outcome, SsoRefused):
        raise outcome
    assert outcome is not None
    return outcome


async def login_page(*, runtime: Runtime, provider_id: UUID) -> admin.TenantLogin | None:
    """The log-in page of the provider's team, to show again after a failed attempt (None when
    the provider is gone or off: the caller shows the reason alone)."""
    async with runtime.db.session(system=True) as session:
        try:
            provider = await service.login_provider(session=session, provider_id=provider_id)
            return await admin.tenant_login(session=session, tenant_id=provider.tenant_id)
        except NotFound:
            return None


async def team_login(
    *, runtime: Runtime, slug: str | None = None, tenant_id: UUID | None = None
) -> admin.TenantLogin:
    """A team's log-in page by its slug or id: its name and enabled providers (public: nobody is
    signed in yet; the web page and ``GET /auth/teams/{slug}`` show the same). NotFound if no
    team has it."""
    async with runtime.db.session(system=True) as session:
        return await admin.tenant_login(session=session, slug=slug, tenant_id=tenant_id)
