"""Routes: hosts CRUD, key generation, host-key acceptance, connection tests."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Body, Query, Request, Response, status

from shipyard.accounts.permissions import Permission
from shipyard.accounts.principal import Principal
from shipyard.config import Settings
from shipyard.deps import CurrentUser, SessionDep, SettingsDep, require
from shipyard.hosts import service
from shipyard.hosts.executor import Executor
from shipyard.hosts.executor.base import HostStatus
from shipyard.hosts.schemas import (
    AcceptHostKey,
    HostCreate,
    HostRead,
    HostTestRead,
    HostTestsQueued,
    HostUpdate,
)
from shipyard.hosts.tasks import enqueue_test_all
from shipyard.pagination import DEFAULT_LIMIT, MAX_LIMIT, Page

router = APIRouter(prefix="/hosts", tags=["hosts"])

Admin = Annotated[Principal, require(Permission.MANAGE_HOSTS)]
Tester = Annotated[Principal, require(Permission.TEST_HOSTS)]


def executor_for(request: Request, settings: Settings) -> Executor:
    """One executor per application, so its connection caps hold across requests."""
    executor: Executor | None = getattr(request.app.state, "host_executor", None)
    if executor is None:
        executor = Executor.from_settings(settings)
        request.app.state.host_executor = executor
    return executor


@router.get("", response_model=Page[HostRead])
async def list_hosts(
    principal: CurrentUser,
    session: SessionDep,
    status_filter: Annotated[HostStatus | None, Query(alias="status")] = None,
    type_filter: Annotated[Literal["ssh", "local"] | None, Query(alias="type")] = None,
    search: Annotated[str | None, Query(max_length=100, description="Part of the name.")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> Page[HostRead]:
    rows, next_cursor = await service.list_hosts(
        session,
        tenant_id=principal.tenant_id,
        status=status_filter,
        host_type=type_filter,
        search=search,
        limit=limit,
        cursor=cursor,
    )
    return Page[HostRead](items=[service.host_read(row) for row in rows], next_cursor=next_cursor)


@router.post("", response_model=HostRead, status_code=status.HTTP_201_CREATED)
async def create_host(
    data: HostCreate, principal: Admin, session: SessionDep, settings: SettingsDep
) -> HostRead:
    """Add a host. Credentials are stored encrypted and never returned."""
    host = await service.create_host(session, principal=principal, data=data, settings=settings)
    return service.host_read(host)


@router.post("/test-all", response_model=HostTestsQueued, status_code=status.HTTP_202_ACCEPTED)
async def test_all_hosts(principal: Tester, session: SessionDep) -> HostTestsQueued:
    """Test every host of the tenant in the background (bounded concurrency)."""
    job_id, count = await enqueue_test_all(session, tenant_id=principal.tenant_id)
    return HostTestsQueued(job_id=job_id, hosts=count)


@router.get("/{host_id}", response_model=HostRead)
async def get_host(host_id: UUID, principal: CurrentUser, session: SessionDep) -> HostRead:
    host = await service.get_host(session, tenant_id=principal.tenant_id, host_id=host_id)
    return service.host_read(host)


@router.patch("/{host_id}", response_model=HostRead)
async def update_host(
    host_id: UUID,
    data: HostUpdate,
    principal: Admin,
    session: SessionDep,
    settings: SettingsDep,
) -> HostRead:
    """Change fields; send ``null`` to clear a credential or forget the trusted host key."""
    host = await service.update_host(
        session, principal=principal, host_id=host_id, data=data, settings=settings
    )
    return service.host_read(host)


@router.delete("/{host_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_host(host_id: UUID, principal: Admin, session: SessionDep) -> Response:
    await service.delete_host(session, principal=principal, host_id=host_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{host_id}/generate-key", response_model=HostRead)
async def generate_key(host_id: UUID, principal: Admin, session: SessionDep) -> HostRead:
    """Generate an ed25519 key pair for the host; only the public key is ever shown.

    Add ``public_key`` to the host's ``~/.ssh/authorized_keys``, then test the host.
    """
    host = await service.generate_key(session, principal=principal, host_id=host_id)
    return service.host_read(host)


@router.post("/{host_id}/accept-host-key", response_model=HostRead)
async def accept_host_key(
    host_id: UUID,
    principal: Admin,
    session: SessionDep,
    data: Annotated[AcceptHostKey | None, Body()] = None,
) -> HostRead:
    """Trust the new host key the host presented at its last test (after a mismatch)."""
    host = await service.accept_host_key(
        session,
        principal=principal,
        host_id=host_id,
        fingerprint=data.fingerprint if data else None,
    )
    return service.host_read(host)


@router.post("/{host_id}/test", response_model=HostTestRead)
async def test_host(
    host_id: UUID,
    principal: Tester,
    session: SessionDep,
    request: Request,
    settings: SettingsDep,
) -> HostTestRead:
    """Connect, authenticate and run ``uname -srm`` (PowerShell on Windows); store the status."""
    host, probe = await service.check_host(
        session,
        tenant_id=principal.tenant_id,
        host_id=host_id,
        executor=executor_for(request, settings),
    )
    return HostTestRead(
        status=probe.status,
        message=probe.message,
        error_code=probe.error_code,
        round_trip_ms=probe.round_trip_ms,
        os_info=probe.os_info,
        presented_fingerprint=probe.fingerprint,
        checked_at=probe.checked_at,
        host=service.host_read(host),
    )
