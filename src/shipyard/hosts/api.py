"""Routes: hosts CRUD, key generation, host-key acceptance, connection tests; host groups."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Body, Query, Response, status

from shipyard.accounts.permissions import Permission
from shipyard.accounts.principal import Actor
from shipyard.deps import CurrentUser, RuntimeDep, SessionDep, acting
from shipyard.hosts import flows, inventory, inventory_import, service
from shipyard.hosts.executor.base import HostStatus
from shipyard.hosts.schemas import (
    AcceptHostKey,
    HostCreate,
    HostGroupCreate,
    HostGroupRead,
    HostGroupUpdate,
    HostRead,
    HostTestRead,
    HostTestsQueued,
    HostUpdate,
    InventoryImport,
    InventoryImportReport,
)
from shipyard.pagination import DEFAULT_LIMIT, MAX_LIMIT, Page

router = APIRouter(prefix="/hosts", tags=["hosts"])

Admin = Annotated[Actor, acting(Permission.MANAGE_HOSTS)]
Tester = Annotated[Actor, acting(Permission.TEST_HOSTS)]


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
    return await service.read_hosts(
        session=session,
        tenant_id=principal.tenant_id,
        status=status_filter,
        host_type=type_filter,
        search=search,
        limit=limit,
        cursor=cursor,
    )


@router.post("", response_model=HostRead, status_code=status.HTTP_201_CREATED)
async def create_host(data: HostCreate, actor: Admin, runtime: RuntimeDep) -> HostRead:
    """Add a host. Credentials are stored encrypted and never returned."""
    return await flows.create_host(runtime=runtime, actor=actor, data=data)


@router.post("/test-all", response_model=HostTestsQueued, status_code=status.HTTP_202_ACCEPTED)
async def test_all_hosts(actor: Tester, session: SessionDep) -> HostTestsQueued:
    """Test every host of the tenant in the background (bounded concurrency)."""
    return await service.queue_host_tests(session=session, actor=actor)


@router.get("/{host_id}", response_model=HostRead)
async def get_host(host_id: UUID, principal: CurrentUser, session: SessionDep) -> HostRead:
    return await service.read_host(session=session, tenant_id=principal.tenant_id, host_id=host_id)


@router.patch("/{host_id}", response_model=HostRead)
async def update_host(
    host_id: UUID, data: HostUpdate, actor: Admin, runtime: RuntimeDep
) -> HostRead:
    """Change fields; send ``null`` to clear a credential or forget the trusted host key."""
    return await flows.update_host(runtime=runtime, actor=actor, host_id=host_id, data=data)


@router.delete("/{host_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_host(host_id: UUID, actor: Admin, session: SessionDep) -> Response:
    await service.delete_host(session=session, actor=actor, host_id=host_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{host_id}/generate-key", response_model=HostRead)
async def generate_key(host_id: UUID, actor: Admin, session: SessionDep) -> HostRead:
    """Generate an ed25519 key pair for the host; only the public key is ever shown.

    Add ``public_key`` to the host's ``~/.ssh/authorized_keys``, then test the host.
    """
    return await service.generate_key(session=session, actor=actor, host_id=host_id)


@router.post("/{host_id}/accept-host-key", response_model=HostRead)
async def accept_host_key(
    host_id: UUID,
    actor: Admin,
    session: SessionDep,
    data: Annotated[AcceptHostKey | None, Body()] = None,
) -> HostRead:
    """Trust the new host key the host presented at its last test (after a mismatch)."""
    return await service.accept_host_key(
        session=session,
        actor=actor,
        host_id=host_id,
        fingerprint=data.fingerprint if data else None,
    )


# No SessionDep here: the probe may take the whole connect and probe timeout, and a pooled
# connection held meanwhile would starve every other request (the flow opens its own, briefly).
@router.post("/{host_id}/test", response_model=HostTestRead)
async def test_host(host_id: UUID, actor: Tester, runtime: RuntimeDep) -> HostTestRead:
    """Connect, authenticate and run ``uname -srm`` (PowerShell on Windows); store the status."""
    return await flows.test_host(runtime=runtime, actor=actor, host_id=host_id)


groups_router = APIRouter(prefix="/host-groups", tags=["host groups"])


@groups_router.get("", response_model=list[HostGroupRead])
async def list_host_groups(principal: CurrentUser, session: SessionDep) -> list[HostGroupRead]:
    """Every group of the tenant, by name; secret variables read back without values."""
    return await inventory.read_groups(session=session, tenant_id=principal.tenant_id)


@groups_router.post("", response_model=HostGroupRead, status_code=status.HTTP_201_CREATED)
async def create_host_group(
    data: HostGroupCreate, actor: Admin, session: SessionDep
) -> HostGroupRead:
    """Add a group; members through ``host_ids``, variables as ``[{name, value, secret}]``."""
    return await inventory.create_group(session=session, actor=actor, data=data)


@groups_router.get("/{group_id}", response_model=HostGroupRead)
async def get_host_group(
    group_id: UUID, principal: CurrentUser, session: SessionDep
) -> HostGroupRead:
    return await inventory.read_group(
        session=session, tenant_id=principal.tenant_id, group_id=group_id
    )


@groups_router.patch("/{group_id}", response_model=HostGroupRead)
async def update_host_group(
    group_id: UUID, data: HostGroupUpdate, actor: Admin, session: SessionDep
) -> HostGroupRead:
    """Change the sent fields; a secret variable sent without ``value`` keeps its value."""
    return await inventory.update_group(session=session, actor=actor, group_id=group_id, data=data)


@groups_router.delete("/{group_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_host_group(group_id: UUID, actor: Admin, session: SessionDep) -> Response:
    await inventory.delete_group(session=session, actor=actor, group_id=group_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


inventory_router = APIRouter(prefix="/inventory", tags=["host groups"])


# No SessionDep: the flow checks every address against the outbound policy (DNS) first, then
# writes everything in one transaction of its own.
@inventory_router.post("/import", response_model=InventoryImportReport)
async def import_inventory(
    data: InventoryImport, actor: Admin, runtime: RuntimeDep
) -> InventoryImportReport:
    """Import an Ansible inventory (INI or YAML): hosts and groups created or updated by name.

    ``children`` groups resolve recursively (a host of a child group joins every ancestor);
    ``ansible_host``/``ansible_port``/``ansible_user`` set the address, port and user,
    ``ansible_password``/``ansible_ssh_pass`` the (write-only) password, other vars become plain
    variables. ``credentials`` give created hosts a user and log-in the inventory lacks.
    Nothing is written unless the whole file can be; a 422 names the line or YAML path.
    """
    return await inventory_import.import_inventory(runtime=runtime, actor=actor, data=data)
