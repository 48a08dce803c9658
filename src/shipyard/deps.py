"""FastAPI dependencies: the database, the caller and a tenant-scoped session."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from shipyard.accounts.permissions import Permission
from shipyard.accounts.principal import Principal
from shipyard.accounts.service import authenticate, use_principal
from shipyard.config import Settings
from shipyard.db import Database
from shipyard.errors import Unauthorized


def get_db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


DatabaseDep = Annotated[Database, Depends(get_db)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


async def get_principal(request: Request, db: DatabaseDep) -> Principal:
    token = bearer_token(request) or getattr(request.state, "session_token", None)
    if not token:
        raise Unauthorized(
            "authentication required: send 'Authorization: Bearer <token>'", code="missing_token"
        )
    principal = await authenticate(db=db, token=token)
    request.state.principal = principal
    return principal


CurrentUser = Annotated[Principal, Depends(get_principal)]


async def get_tenant_session(
    db: DatabaseDep, principal: CurrentUser
) -> AsyncIterator[AsyncSession]:
    """A session bound to the caller's tenant; commits when the endpoint returns."""
    async with db.sessionmaker() as session:
        use_principal(session, principal)
        async with session.begin():
            yield session


# scope="function": commit before the response is sent, so a failed commit is an error response.
SessionDep = Annotated[AsyncSession, Depends(get_tenant_session, scope="function")]


def require(permission: Permission) -> Any:
    """Use as ``Annotated[Principal, require(Permission.X)]``: the caller, checked for ``permission``."""

    async def checker(principal: CurrentUser) -> Principal:
        principal.require(permission)
        return principal

    return Depends(checker)


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"
