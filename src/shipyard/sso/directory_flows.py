"""The hourly directory check (a flow): each LDAP provider's linked members looked up in the
directory, outside any transaction, then applied by :mod:`shipyard.sso.directory`."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from shipyard.sso import directory, ldap
from shipyard.sso.identity import SsoFailed
from shipyard.sso.service import LoginProvider

if TYPE_CHECKING:
    from shipyard.runtime import Runtime

logger = logging.getLogger(__name__)


async def check_directories(*, runtime: Runtime) -> list[directory.DirectoryCheck]:
    """Check every enabled LDAP provider that has signed somebody in and has the check on."""
    async with runtime.db.session(system=True) as session:
        providers = await directory.providers_to_check(session=session)
    return [await check_provider(runtime=runtime, provider=provider) for provider in providers]


async def check_provider(*, runtime: Runtime, provider: LoginProvider) -> directory.DirectoryCheck:
    """Look ``provider``'s linked members up and apply what the directory says. A directory
    that cannot be asked changes nothing (an outage never disables anybody)."""
    try:
        config = ldap.LdapConfig.from_config(provider.config)
    except ValueError:
        return directory.DirectoryCheck()  # a provider that cannot sign in is not checked
    if not config.directory_check:
        return directory.DirectoryCheck()
    async with runtime.db.session(system=True) as session:
        subjects = await directory.linked_subjects(session=session, provider_id=provider.id)
    try:
        found = await ldap.recheck(
            config, bind_password=provider.secret, subjects=subjects, policy=runtime.outbound
        )
    except SsoFailed as exc:
        logger.warning("directory check of provider %s skipped: %s", provider.id, exc.message)
        async with runtime.db.session(system=True) as session:
            await directory.record_check_failure(
                session=session, provider=provider, reason=exc.message
            )
        return directory.DirectoryCheck()
    async with runtime.db.session(system=True) as session:
        result = await directory.apply_directory_check(
            session=session, provider=provider, found=found
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
