"""Who is making a request: the authenticated profile and its tenant."""

from __future__ import annotations

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
