"""Host flows: saving a host (its address is looked up in DNS) and connection tests (SSH),
each talking to the network outside any database transaction.

A test reads what to connect to in one short transaction, probes the host with the process's
executor while holding no database connection (a silent host takes the whole connect timeout,
a slow one up to the probe timeout), then stores the outcome in another short transaction.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING
from uuid import UUID

from shipyard.accounts.principal import Actor
from shipyard.hosts import service
from shipyard.hosts.executor import HostTarget
from shipyard.hosts.keys import public_key_of
from shipyard.hosts.schemas import HostCreate, HostRead, HostTestRead, HostUpdate

if TYPE_CHECKING:
    from shipyard.runtime import Runtime

logger = logging.getLogger(__name__)


async def _check_address(runtime: Runtime, data: HostCreate | HostUpdate) -> None:
    """The outbound policy on the address being saved: a bounded DNS lookup, no connection."""
    if "ip" in data.model_fields_set and data.ip and getattr(data, "type", None) != "local":
        await runtime.outbound.validate_host(data.ip, field="ip")


async def _derive_key(
    data: HostCreate | HostUpdate, *, creating: bool
) -> service.DerivedKey | None:
    """The public key of a sent private key, derived before any transaction (a passphrase KDF
    costs up to a second); None when the key's passphrase is the stored one."""
    sent = data.model_fields_set
    if "private_key" not in sent or not data.private_key:
        return None
    if not creating and "private_key_passphrase" not in sent:
        return None
    passphrase = data.private_key_passphrase
    return data.private_key, passphrase, await public_key_of(data.private_key, passphrase)


async def read_host(*, runtime: Runtime, actor: Actor, host_id: UUID) -> HostRead:
    """One host, read in its own short transaction (for routes that then run a flow)."""
    async with runtime.db.session(tenant_id=actor.tenant_id, user_id=actor.user_id) as session:
        return await service.read_host(session=session, tenant_id=actor.tenant_id, host_id=host_id)


async def create_host(
    *, runtime: Runtime, actor: Actor, data: HostCreate, generate_key: bool = False
) -> HostRead:
    """Add a host (and, with ``generate_key``, a key pair); the address is checked first."""
    await _check_address(runtime, data)
    derived_key = await _derive_key(data, creating=True)
    async with runtime.db.session(tenant_id=actor.tenant_id, user_id=actor.user_id) as session:
        return await service.create_host(
            session=session,
            actor=actor,
            data=data,
            settings=runtime.settings,
            generate_key=generate_key,
            derived_key=derived_key,
        )


async def update_host(
    *,
    runtime: Runtime,
    actor: Actor,
    host_id: UUID,
    data: HostUpdate,
    generate_key: bool = False,
) -> HostRead:
    """Change the sent fields; a new address is checked before the transaction opens."""
    await _check_address(runtime, data)
    derived_key = await _derive_key(data, creating=False)
    async with runtime.db.session(tenant_id=actor.tenant_id, user_id=actor.user_id) as session:
        return await service.update_host(
            session=session,
            actor=actor,
            host_id=host_id,
            data=data,
            settings=runtime.settings,
            generate_key=generate_key,
            derived_key=derived_key,
        )


async def test_host(*, runtime: Runtime, actor: Actor, host_id: UUID) -> HostTestRead:
    """Connect, authenticate and run ``uname -srm`` (PowerShell on Windows); store the status."""
    async with runtime.db.session(tenant_id=actor.tenant_id, user_id=actor.user_id) as session:
        target = await service.host_target(
            session=session, tenant_id=actor.tenant_id, host_id=host_id
        )
    probe = await runtime.executor.probe(target)
    async with runtime.db.session(tenant_id=actor.tenant_id, user_id=actor.user_id) as session:
        return await service.record_host_test(
            session=session, actor=actor, target=target, probe=probe
        )


async def check_all_hosts(*, runtime: Runtime, tenant_id: UUID) -> dict[str, int]:
    """Test every host of ``tenant_id``, at most ``host_test_concurrency`` at once.

    Each result is stored as soon as it is known, so a slow host delays only itself.
    Returns how many hosts ended in each status.
    """
    async with runtime.db.session(tenant_id=tenant_id) as session:
        targets = await service.tenant_targets(session=session, tenant_id=tenant_id)
    limit = asyncio.Semaphore(runtime.settings.host_test_concurrency)
    counts: dict[str, int] = {}

    async def one(target: HostTarget) -> None:
        async with limit:
            probe = await runtime.executor.probe(target)
        counts[probe.status] = counts.get(probe.status, 0) + 1
        async with runtime.db.session(tenant_id=tenant_id) as session:
            await service.store_probe(
                session=session, tenant_id=tenant_id, target=target, probe=probe
            )

    await asyncio.gather(*(one(target) for target in targets))
    logger.info("tested %d hosts of tenant %s: %s", len(targets), tenant_id, counts)
    return counts
