"""The hourly directory check (a flow): each LDAP provider's linked members looked up in the
directory, outside any transaction, then applied by :mod:`shipyard.sso.directory`."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING
from uuid import UUID

from shipyard.accounts.permissions import Permission
from shipyard.accounts.principal import Actor
from shipyard.errors import Conflict, ProviderError
from shipyard.sso import admin, directory, ldap
from shipyard.sso.identity import SsoFailed
from shipyard.sso.schemas import DirectoryCheckResult
from shipyard.sso.service import LoginProvider

if TYPE_CHECKING:
    from shipyard.runtime import Runtime

logger = logging.getLogger(__name__)


async def check_directories(*, runtime: Runtime) -> list[directory.DirectoryCheck]:
    """Check every enabled LDAP provider that has signed somebody in and has the check on."""
    async with runtime.db.session(system=True) as session:
        providers = await directory.providers_to_check(session=session)
    return [await check_provider(runtime=runtime, provider=provider) for provider in providers]


async def check_now(*, runtime: Runtime, actor: Actor, provider_id: UUID) -> DirectoryCheckResult:
    """An admin's "check now" of one of the team's LDAP providers, as the hourly check does it.

    404 for another team's or no provider; 409 for a provider that is not LDAP, is turned off,
    is not set up correctly or has the check turned off; 502 with the reason when the directory
    cannot be asked (nothing changed then).
    """
    actor.require(Permission.MANAGE_SSO)
    async with runtime.db.session(tenant_id=actor.tenant_id, user_id=actor.user_id) as session:
        provider = LoginProvider.of(
            await admin.provider_for_test(session=session, provider_id=provider_id)
        )
    if provider.kind != "ldap":
        raise Conflict("only an LDAP provider has a directory to check", code="not_a_directory")
    if not provider.enabled:
        raise Conflict("this provider is turned off", code="provider_disabled")
    try:
        config = ldap.LdapConfig.from_config(provider.config)
    except ValueError as exc:
        raise Conflict(
            f"this provider is not set up correctly ({exc})", code="bad_config"
        ) from None
    if not config.directory_check:
        raise Conflict(
            "the directory check is turned off for this provider (directory_check)",
            code="directory_check_off",
        )
    try:
        result = await _check(runtime, provider, config, actor_id=actor.user_id)
    except SsoFailed as exc:
        raise ProviderError(exc.message, code="sso_provider_failed") from None
    return DirectoryCheckResult(
        checked=result.checked,
        disabled=result.disabled,
        enabled=result.reenabled,
        role_changes=result.role_changes,
    )


async def check_provider(*, runtime: Runtime, provider: LoginProvider) -> directory.DirectoryCheck:
    """The hourly check of ``provider``: nothing for a provider that is not set up correctly or
    has the check off; a directory that cannot be asked changes nothing (an outage never
    disables anybody), and the failure is in the audit log."""
    try:
        config = ldap.LdapConfig.from_config(provider.config)
    except ValueError:
        return directory.DirectoryCheck()  # it cannot sign anyone in either
    if not config.directory_check:
        return directory.DirectoryCheck()
    try:
        return await _check(runtime, provider, config, actor_id=None)
    except SsoFailed:
        return directory.DirectoryCheck()


async def _check(
    runtime: Runtime, provider: LoginProvider, config: ldap.LdapConfig, *, actor_id: UUID | None
) -> directory.DirectoryCheck:
    """Look the provider's linked members up (no transaction open meanwhile), then apply what
    the directory says; SsoFailed, after it was recorded, when the directory cannot be asked."""
    async with runtime.db.session(system=True) as session:
        subjects = await directory.linked_subjects(session=session, provider_id=provider.id)
    if len(subjects) > ldap.MAX_RECHECKED:
        logger.warning(
            "directory check of provider %s: %d linked members, only the oldest %d are checked",
            provider.id,
            len(subjects),
            ldap.MAX_RECHECKED,
        )
    try:
        found = await ldap.recheck(
            config, bind_password=provider.secret, subjects=subjects, policy=runtime.outbound
        )
    except SsoFailed as exc:
        logger.warning("directory check of provider %s failed: %s", provider.id, exc.message)
        async with runtime.db.session(system=True) as session:
            await directory.record_check_failure(
                session=session, provider=provider, reason=exc.message, actor_id=actor_id
            )
        raise
    async with runtime.db.session(system=True) as session:
        result = await directory.apply_directory_check(
            session=session, provider=provider, found=found, actor_id=actor_id
        )
    if result.disabled or result.reenabled or result.role_changes:
        logger.info(
            "directory check of provider %s: %d checked, %d disabled, %d enabled, %d roles",
            provider.id,
            result.checked,
            result.disabled,
            result.reenabled,
            result.role_changes,
        )
    return result
