"""The audit trail: every action function writes its own entry, with the actor captured once."""

from __future__ import annotations

import ipaddress
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from shipyard.accounts.models import AuditEvent
from shipyard.accounts.principal import Actor


async def audit(
    session: AsyncSession,
    *,
    actor: Actor,
    action: str,
    resource_type: str,
    resource_id: UUID | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Append ``action`` by ``actor`` to the tenant's audit log, in the action's transaction.

    ``details`` never holds secret values: name the fields that changed, not what they hold.
    """
    session.add(
        AuditEvent(
            tenant_id=actor.tenant_id,
            actor_profile_id=actor.user_id,
            action=action,
            resource_type=resource_type,
            resource_id=resource_id,
            details=details or {},
            ip_address=_inet(actor.context.ip_address),
        )
    )


def _inet(address: str | None) -> str | None:
    """``address`` if the ``inet`` column can hold it (a request may come with none: "unknown")."""
    if address is None:
        return None
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return None
