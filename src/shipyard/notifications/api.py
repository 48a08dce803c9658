"""Routes: notification channels, rules and deliveries (admins only: MANAGE_NOTIFICATIONS)."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Response, status

from shipyard.accounts.permissions import Permission
from shipyard.accounts.principal import Actor
from shipyard.deps import RuntimeDep, SessionDep, acting
from shipyard.notifications import flows, service
from shipyard.notifications.schemas import (
    ChannelConfigs,
    ChannelCreate,
    ChannelCreated,
    ChannelRead,
    ChannelUpdate,
    DeliveryRead,
    RuleCreate,
    RuleRead,
    RuleUpdate,
    TestResult,
)

router = APIRouter(tags=["notifications"])
Admin = Annotated[Actor, acting(Permission.MANAGE_NOTIFICATIONS)]
CHANNELS = "/notification-channels"
RULES = "/notification-rules"


@router.get(f"{CHANNELS}/types", response_model=ChannelConfigs, include_in_schema=True)
async def channel_types(actor: Admin) -> ChannelConfigs:
    """Example configs of every channel type (their schemas are in this API's description)."""
    return ChannelConfigs.model_validate(
        {
            "email": {
                "host": "smtp.example.com",
                "port": 587,
                "security": "starttls",
                "username": "shipyard",
                "from": "shipyard@example.com",
                "to": ["ops@example.com"],
            },
            "slack": {"url": "https://hooks.slack.com/services/T000/B000/XXXX"},
            "teams": {
                "url": "https://example.webhook.office.com/webhookb2/...",
                "card": "adaptive",
            },
            "discord": {"url": "https://discord.com/api/webhooks/123/abc"},
            "ntfy": {"server": "https://ntfy.sh", "topic": "shipyard-deploys", "priority": 3},
            "webhook": {"url": "https://hooks.example.com/shipyard"},
        }
    )


@router.post(CHANNELS, response_model=ChannelCreated, status_code=status.HTTP_201_CREATED)
async def create_channel(data: ChannelCreate, actor: Admin, runtime: RuntimeDep) -> ChannelCreated:
    """Add a channel; its addresses must pass the outbound policy (a 422 names the field). A
    webhook's generated secret is in this answer only."""
    return await flows.create_channel(runtime=runtime, actor=actor, data=data)


@router.get(CHANNELS, response_model=list[ChannelRead])
async def list_channels(actor: Admin, session: SessionDep) -> list[ChannelRead]:
    return await service.list_channels(session=session)


@router.get(f"{CHANNELS}/{{channel_id}}", response_model=ChannelRead)
async def get_channel(channel_id: UUID, actor: Admin, session: SessionDep) -> ChannelRead:
    return await service.read_channel(session=session, channel_id=channel_id)


@router.patch(f"{CHANNELS}/{{channel_id}}", response_model=ChannelRead)
async def update_channel(
    channel_id: UUID, data: ChannelUpdate, actor: Admin, runtime: RuntimeDep
) -> ChannelRead:
    """Change the fields sent; a secret config field left out keeps its stored value."""
    return await flows.update_channel(
        runtime=runtime, actor=actor, channel_id=channel_id, data=data
    )


@router.delete(f"{CHANNELS}/{{channel_id}}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_channel(channel_id: UUID, actor: Admin, session: SessionDep) -> Response:
    """Delete the channel, its rules and its deliveries."""
    await service.delete_channel(session=session, actor=actor, channel_id=channel_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(f"{CHANNELS}/{{channel_id}}/test", response_model=TestResult)
async def test_channel(channel_id: UUID, actor: Admin, runtime: RuntimeDep) -> TestResult:
    """Send a test message now. The answer is what the receiver said: 200 with ``ok: false``
    and the error when it refused or could not be reached (the request itself worked)."""
    return await flows.send_test(runtime=runtime, actor=actor, channel_id=channel_id)


@router.get(f"{CHANNELS}/{{channel_id}}/deliveries", response_model=list[DeliveryRead])
async def list_deliveries(
    channel_id: UUID,
    actor: Admin,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = service.DELIVERIES_SHOWN,
) -> list[DeliveryRead]:
    """The channel's deliveries, newest first, each with every attempt."""
    return await service.list_deliveries(session=session, channel_id=channel_id, limit=limit)


@router.post(RULES, response_model=RuleRead, status_code=status.HTTP_201_CREATED)
async def create_rule(data: RuleCreate, actor: Admin, session: SessionDep) -> RuleRead:
    """Route events (in a scope) to a channel."""
    return await service.create_rule(session=session, actor=actor, data=data)


@router.get(RULES, response_model=list[RuleRead])
async def list_rules(
    actor: Admin, session: SessionDep, channel_id: UUID | None = None
) -> list[RuleRead]:
    return await service.list_rules(session=session, channel_id=channel_id)


@router.get(f"{RULES}/{{rule_id}}", response_model=RuleRead)
async def get_rule(rule_id: UUID, actor: Admin, session: SessionDep) -> RuleRead:
    return await service.read_rule(session=session, rule_id=rule_id)


@router.patch(f"{RULES}/{{rule_id}}", response_model=RuleRead)
async def update_rule(
    rule_id: UUID, data: RuleUpdate, actor: Admin, session: SessionDep
) -> RuleRead:
    return await service.update_rule(session=session, actor=actor, rule_id=rule_id, data=data)


@router.delete(f"{RULES}/{{rule_id}}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_rule(rule_id: UUID, actor: Admin, session: SessionDep) -> Response:
    await service.delete_rule(session=session, actor=actor, rule_id=rule_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
