"""FastAPI dependencies: the runtime's parts, the caller, the actor and a tenant-scoped session.

Routes take what they need through these aliases; every part comes from the one
:class:`~shipyard.runtime.Runtime` the application was built with.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any, TypeVar

import httpx
from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from shipyard.accounts.passwords import Passwords
from shipyard.accounts.permissions import Permission
from shipyard.accounts.principal import Actor, Principal, RequestContext, forwarded_client
from shipyard.accounts.service import authenticate, use_principal
from shipyard.clock import Clock
from shipyard.config import Settings
from shipyard.crypto import Keyring
from shipyard.db import Database
from shipyard.deployments.stream import LogBroadcaster
from shipyard.errors import Unauthorized
from shipyard.git.browse import TTLCache
from shipyard.hosts.executor import Executor
from shipyard.logs import bind_tenant
from shipyard.runtime import Runtime


# Every dependency here is ``async def``, even those that do no I/O: FastAPI runs a plain ``def``
# dependency in its thread pool, and a thread hand-off per dependency and request costs more
# than the token's query.
async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_db(runtime: RuntimeDep) -> Database:
    return runtime.db


async def get_app_settings(runtime: RuntimeDep) -> Settings:
    return runtime.settings


async def get_executor(runtime: RuntimeDep) -> Executor:
    return runtime.executor


async def get_http(runtime: RuntimeDep) -> httpx.AsyncClient:
    return runtime.http


async def get_keyring(runtime: RuntimeDep) -> Keyring:
    return runtime.keyring


async def get_passwords(runtime: RuntimeDep) -> Passwords:
    return runtime.passwords


async def get_browse_cache(runtime: RuntimeDep) -> TTLCache:
    return runtime.browse_cache


async def get_broadcaster(runtime: RuntimeDep) -> LogBroadcaster:
    return runtime.broadcaster


async def get_clock(runtime: RuntimeDep) -> Clock:
    return runtime.clock


DatabaseDep = Annotated[Database, Depends(get_db)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
ExecutorDep = Annotated[Executor, Depends(get_executor)]
HttpDep = Annotated[httpx.AsyncClient, Depends(get_http)]
KeyringDep = Annotated[Keyring, Depends(get_keyring)]
PasswordsDep = Annotated[Passwords, Depends(get_passwords)]
BrowseCacheDep = Annotated[TTLCache, Depends(get_browse_cache)]
BroadcasterDep = Annotated[LogBroadcaster, Depends(get_broadcaster)]
ClockDep = Annotated[Clock, Depends(get_clock)]


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
    bind_tenant(principal.tenant_id)  # the rest of the request's log lines name the tenant
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
    """The caller's address: the peer's, or what a trusted proxy says (``trusted_proxies``)."""
    peer = request.client.host if request.client else None
    settings: Settings = request.app.state.runtime.settings
    return forwarded_client(
        peer, request.headers.getlist("x-forwarded-for"), trusted=settings.trusted_proxies
    )


async def get_request_context(request: Request) -> RequestContext:
    """Where the request came from, read once (address, user agent, request id)."""
    return RequestContext(
        ip_address=client_ip(request),
        user_agent=request.headers.get("user-agent"),
        request_id=request.headers.get("x-request-id"),
    )


RequestContextDep = Annotated[RequestContext, Depends(get_request_context)]


async def get_actor(principal: CurrentUser, context: RequestContextDep) -> Actor:
    return Actor(principal=principal, context=context)


ActorDep = Annotated[Actor, Depends(get_actor)]


def acting(permission: Permission) -> Any:
    """Use as ``Annotated[Actor, acting(Permission.X)]``: the actor, checked for ``permission``."""

    async def checker(actor: ActorDep) -> Actor:
        actor.require(permission)
        return actor

    return Depends(checker)


@asynccontextmanager
async def attempt(session: AsyncSession) -> AsyncIterator[None]:
    """Run an action in a savepoint, so a failure a page reports (and commits past) leaves no
    half-write: web routes render errors instead of raising, so their session still commits."""
    async with session.begin_nested():
        yield


# A route's own cap on request bodies, read by shipyard.web.limits.RequestBodyLimit.
REQUEST_BYTES_ATTRIBUTE = "__shipyard_max_request_bytes__"
Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])


def max_request_bytes(limit: int) -> Callable[[Endpoint], Endpoint]:
    """Let requests to the decorated endpoint carry bodies of up to ``limit`` bytes (above
    ``SHIPYARD_MAX_REQUEST_BYTES``, which every other route keeps)."""
    if limit < 0:
        raise ValueError("a body cap cannot be negative")

    def mark(endpoint: Endpoint) -> Endpoint:
        setattr(endpoint, REQUEST_BYTES_ATTRIBUTE, limit)
        return endpoint

    return mark
