"""Audit actions that consult the outside world first: a stream's address, checked against the
outbound policy (outside any transaction) before it is saved."""

from __future__ import annotations

from typing import TYPE_CHECKING
from uuid import UUID

from shipyard.accounts.principal import Actor
from shipyard.audit import service
from shipyard.audit.schemas import (
    StreamCreate,
    StreamCreated,
    StreamRead,
    StreamUpdate,
    SyslogConfig,
    WebhookConfig,
)

if TYPE_CHECKING:
    from shipyard.runtime import Runtime


async def _check(runtime: Runtime, config: SyslogConfig | WebhookConfig | None) -> None:
    if isinstance(config, WebhookConfig):
        await runtime.outbound.validate_url(config.url, field="config.url")
    elif isinstance(config, SyslogConfig):
        await runtime.outbound.validate_host(config.host, field="config.host")


async def create_stream(*, runtime: Runtime, actor: Actor, data: StreamCreate) -> StreamCreated:
    """Check the stream's address, then save it (the webhook's secret is answered once)."""
    await _check(runtime, data.config)
    async with runtime.db.session(tenant_id=actor.tenant_id, user_id=actor.user_id) as session:
        return await service.create_stream(
            session=session, actor=actor, data=data, now=runtime.clock.now()
        )


async def update_stream(
    *, runtime: Runtime, actor: Actor, stream_id: UUID, data: StreamUpdate
) -> StreamRead:
    await _check(runtime, data.config)
    async with runtime.db.session(tenant_id=actor.tenant_id, user_id=actor.user_id) as session:
        return await service.update_stream(
            session=session, actor=actor, stream_id=stream_id, data=data
        )
