"""Who is making a request: the authenticated profile and its tenant."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

from shipyard.accounts.permissions import Permission, role_allows
from shipyard.errors import PermissionDenied


@dataclass(frozen=True)
class Principal:
    user_id: UUID
    tenant_id: UUID
    role: str
    email: str
    token_id: UUID | None = None

    @property
    def profile_id(self) -> UUID:
        return self.user_id

    def can(self, permission: Permission) -> bool:
        return role_allows(self.role, permission)

    def require(self, permission: Permission) -> None:
        if not self.can(permission):
            raise PermissionDenied(
                f"your role '{self.role}' does not allow this ({permission.value})",
                details={"permission": permission.value, "role": self.role},
            )


@dataclass(frozen=True)
class RequestContext:
    """Where a request came from, captured once per request (audit rows, throttles)."""

    ip_address: str | None = None
    user_agent: str | None = None
    request_id: str | None = None


@dataclass(frozen=True)
class Actor:
    """Who does an action and from where: passed to every action function, used by its audit."""

    principal: Principal
    context: RequestContext = RequestContext()

    @property
    def tenant_id(self) -> UUID:
        return self.principal.tenant_id

    @property
    def user_id(self) -> UUID:
        return self.principal.user_id

    @property
    def ip_address(self) -> str | None:
        return self.context.ip_address

    def require(self, permission: Permission) -> None:
        self.principal.require(permission)


Network = ipaddress.IPv4Network | ipaddress.IPv6Network
UNKNOWN_CLIENT = "unknown"


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def forwarded_client(
    peer: str | None, forwarded_for: Sequence[str], *, trusted: Sequence[Network]
) -> str:
    """The client address of a request from ``peer`` carrying ``X-Forwarded-For`` values.

    The header is believed only when the peer is a trusted proxy, and then read from the right
    (the hop our proxy saw) leftwards past further trusted proxies: the first address that is
    not a trusted proxy is the client. Anything left of it was written by the client and may
    be forged. A malformed hop stops the walk at the last address we could believe.
    """
    if peer is None:
        return UNKNOWN_CLIENT
    current = _address(peer)
    if current is None or not any(current in network for network in trusted):
        return peer
    hops = [hop for value in forwarded_for for hop in value.split(",") if hop.strip()]
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:
            break
        current = address
        if not any(address in network for network in trusted):
            break
    return str(current)
