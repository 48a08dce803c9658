"""Notifications work that talks to the outside: the outbound check of a channel's addresses
before it is saved, "send test", and the delivery job's attempt.

The network is called outside any transaction; each database step is its own short one.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any
from uuid import UUID

from sqlalchemy import select

from shipyard.accounts.audit import audit
from shipyard.accounts.principal import Actor
from shipyard.notifications import service
from shipyard.notifications.models import NotificationDelivery
from shipyard.notifications.schemas import (
    ChannelCreate,
    ChannelCreated,
    ChannelRead,
    ChannelUpdate,
    DeliveryRead,
    RuleRead,
    TestResult,
)
from shipyard.notifications.senders import SendResult, Target, send

if TYPE_CHECKING:
    from shipyard.runtime import Runtime

logger = logging.getLogger(__name__)
TEST_EVENT = "test"


async def check_addresses(runtime: Runtime, channel_type: str, values: dict[str, Any]) -> None:
    """A 422 naming the field when an address of the config is refused by the outbound policy."""
    for kind, value, field in service.addresses(channel_type, values):
        if kind == "host":
            await runtime.outbound.validate_host(value, field=field)
        else:
            await runtime.outbound.validate_url(value, field=field)


async def create_channel(*, runtime: Runtime, actor: Actor, data: ChannelCreate) -> ChannelCreated:
    """Check the config and its addresses, then save; a generated webhook secret is in the
    answer (only there)."""
    values, generated = service.prepare_create(data)
    await check_addresses(runtime, data.type, values)
    async with runtime.db.session(tenant_id=actor.tenant_id, user_id=actor.user_id) as session:
        created = await service.create_channel(
            session=session, actor=actor, data=data, values=values
        )
    return ChannelCreated(**created.model_dump(), secret=generated)


async def update_channel(
    *, runtime: Runtime, actor: Actor, channel_id: UUID, data: ChannelUpdate
) -> ChannelRead:
    """Change the fields sent; a changed config is checked (addresses included) first."""
    values = None
    if data.config is not None:
        async with runtime.db.session(tenant_id=actor.tenant_id, user_id=actor.user_id) as session:
            channel = await service.get_channel(session=session, channel_id=channel_id)
            values = service.merged_config(channel, dict(data.config))
            channel_type = channel.type
        await check_addresses(runtime, channel_type, values)
    async with runtime.db.session(tenant_id=actor.tenant_id, user_id=actor.user_id) as session:
        return await service.update_channel(
            session=session, actor=actor, channel_id=channel_id, data=data, values=values
        )


async def attempt(runtime: Runtime, target: Target, message: dict[str, Any]) -> SendResult:
    """One send. The policy is checked again at send time: HTTP by the runtime's client (every
    connection it opens), SMTP by the sender before it connects."""
    return await send(
        target,
        message,
        http=runtime.http,
        policy=runtime.outbound,
        base_url=runtime.settings.base_url,
        timeout_seconds=runtime.settings.notification_timeout_seconds,
    )


def test_message(channel_name: str, actor_email: str | None) -> dict[str, Any]:
    return {
        "event": TEST_EVENT,
        "title": f"Test message for channel {channel_name}",
        "status": "test",
        "triggered_by": actor_email,
        "detail": "Sent from Shipyard's 'Send test': if you read this, the channel works.",
        "path": "/notifications",
        "failed_hosts": [],
    }


async def send_test(*, runtime: Runtime, actor: Actor, channel_id: UUID) -> TestResult:
    """Send a test message now and answer with what the receiver said (recorded as a delivery
    with its one attempt; not retried)."""
    async with runtime.db.session(tenant_id=actor.tenant_id, user_id=actor.user_id) as session:
        channel = await service.get_channel(session=session, channel_id=channel_id)
        target = service.target_of(channel)
        message = test_message(channel.name, actor.principal.email)
    started_at = runtime.clock.now()
    result = await attempt(runtime, target, message)
    async with runtime.db.session(tenant_id=actor.tenant_id, user_id=actor.user_id) as session:
        delivery = NotificationDelivery(
            tenant_id=actor.tenant_id,
            channel_id=channel_id,
            rule_id=None,
            event=TEST_EVENT,
            subject_type="notification_channel",
            subject_id=channel_id,
            message=message,
            status="pending",
        )
        session.add(delivery)
        await session.flush()
        await service.record_attempt(
            session,
            delivery=delivery,
            result=result,
            started_at=started_at,
            now=runtime.clock.now(),
            max_attempts=1,
            retry_base_seconds=runtime.settings.notification_retry_base_seconds,
            retry=False,
        )
        await audit(
            session,
            actor=actor,
            action="notification_channel.test",
            resource_type="notification_channel",
            resource_id=channel_id,
            details={"ok": result.ok, "status_code": result.status_code},
        )
    return TestResult(
        ok=result.ok,
        status_code=result.status_code,
        reply=result.reply,
        error=result.error,
        duration_ms=result.duration_ms,
        delivery_id=delivery.id,
    )


async def deliver(runtime: Runtime, *, tenant_id: UUID, delivery_id: UUID) -> None:
    """The job: one attempt at a queued delivery, recorded; a failure queues the next one."""
    async with runtime.db.session(tenant_id=tenant_id) as session:
        delivery = await session.scalar(
            select(NotificationDelivery).where(NotificationDelivery.id == delivery_id)
        )
        if delivery is None or delivery.status not in ("pending", "retrying"):
            return  # deleted with its channel, or already settled
        channel = await service.get_channel(session=session, channel_id=delivery.channel_id)
        attempts_seen = delivery.attempts
        message = dict(delivery.message)
        target = service.target_of(channel) if channel.enabled else None
    started_at = runtime.clock.now()
    if target is None:
        result = SendResult(ok=False, error="the channel is disabled")
    else:
        result = await attempt(runtime, target, message)
    async with runtime.db.session(tenant_id=tenant_id) as session:
        delivery = await session.scalar(
            select(NotificationDelivery)
            .where(NotificationDelivery.id == delivery_id)
            .with_for_update()
        )
        if delivery is None or delivery.attempts != attempts_seen:
            return  # deleted meanwhile, or another run of this job recorded this attempt
        await service.record_attempt(
            session,
            delivery=delivery,
            result=result,
            started_at=started_at,
            now=runtime.clock.now(),
            max_attempts=runtime.settings.notification_max_attempts,
            retry_base_seconds=runtime.settings.notification_retry_base_seconds,
            retry=target is not None,
        )
    if not result.ok:
        logger.info(
            "notification delivery %s attempt %d failed: %s",
            delivery_id,
            attempts_seen + 1,
            result.error,
        )


async def overview(*, runtime: Runtime, actor: Actor) -> tuple[list[ChannelRead], list[RuleRead]]:
    """The tenant's channels and rules (the notifications page)."""
    async with runtime.db.session(tenant_id=actor.tenant_id, user_id=actor.user_id) as session:
        return (
            await service.list_channels(session=session),
            await service.list_rules(session=session),
        )


async def channel_view(
    *, runtime: Runtime, actor: Actor, channel_id: UUID
) -> tuple[ChannelRead, list[DeliveryRead], list[RuleRead]]:
    """A channel with its deliveries (each with its attempts) and its rules."""
    async with runtime.db.session(tenant_id=actor.tenant_id, user_id=actor.user_id) as session:
        return (
            await service.read_channel(session=session, channel_id=channel_id),
            await service.list_deliveries(session=session, channel_id=channel_id),
            await service.list_rules(session=session, channel_id=channel_id),
        )
