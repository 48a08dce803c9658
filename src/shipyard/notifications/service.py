"""Notification channels, rules and deliveries in the database: one function per user action
(with its audit entry), the reads, and the delivery bookkeeping the job uses.

A session, never the network (see :mod:`shipyard.notifications.flows` for the outbound checks
and the sending). Secrets live only in the encrypted ``secret_config``; answers carry
``has_<field>`` booleans instead.
"""

from __future__ import annotations

import json
import secrets as secrets_module
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ValidationError
from sqlalchemy import column, exists, select, table
from sqlalchemy.ext.asyncio import AsyncSession

from shipyard.accounts.audit import audit
from shipyard.accounts.principal import Actor
from shipyard.db import tenant_clause
from shipyard.errors import Conflict, NotFound, ValidationFailed
from shipyard.jobs import enqueue
from shipyard.notifications import messages
from shipyard.notifications.models import (
    NotificationAttempt,
    NotificationChannel,
    NotificationDelivery,
    NotificationRule,
)
from shipyard.notifications.schemas import (
    CONFIG_MODELS,
    SECRET_FIELDS,
    AttemptRead,
    ChannelCreate,
    ChannelRead,
    ChannelUpdate,
    DeliveryRead,
    RuleCreate,
    RuleRead,
    RuleUpdate,
    Scope,
)
from shipyard.notifications.senders import SendResult, Target

DELIVER_TASK = "notifications:deliver"
GENERATED_SECRET_BYTES = 32
DELIVERIES_SHOWN = 100
# Scoped rules name a template or a repository; notifications sits below those domains, so
# their tables are named here as bare tables (no import of their models).
_SCOPE_TABLES = {
    "template": table("templates", column("id"), column("tenant_id")),
    "repository": table("repositories", column("id"), column("tenant_id")),
}


# --- channel configs -----------------------------------------------------------------------------


def _config_error(exc: ValidationError) -> ValidationFailed:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first.get("loc", ()))
    field = f"config.{where}" if where else "config"
    return ValidationFailed(str(first.get("msg", "invalid value")), field=field)


def checked_config(channel_type: str, config: dict[str, Any]) -> dict[str, Any]:
    """``config`` validated against the type's model (a 422 names ``config.<field>``); the
    result is keyed as sent (``from``, not ``from_address``), secrets included."""
    model: type[BaseModel] = CONFIG_MODELS[channel_type]
    try:
        parsed = model.model_validate(config)
    except ValidationError as exc:
        raise _config_error(exc) from exc
    values = parsed.model_dump(mode="json", by_alias=True)
    if channel_type == "webhook" and values.get("body_template"):
        try:
            messages.check_template(values["body_template"])
        except messages.TemplateFailed as exc:
            raise ValidationFailed(str(exc), field="config.body_template") from exc
    return dict(values)


def split_config(
    channel_type: str, values: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, str]]:
    """(plain, secret) parts of a checked config; empty secrets are dropped."""
    names = SECRET_FIELDS[channel_type]
    plain = {key: value for key, value in values.items() if key not in names}
    hidden = {key: str(values[key]) for key in names if values.get(key)}
    return plain, hidden


def channel_secrets(channel: NotificationChannel) -> dict[str, str]:
    if not channel.secret_config:
        return {}
    values: dict[str, str] = json.loads(channel.secret_config)
    return values


def target_of(channel: NotificationChannel) -> Target:
    return Target(type=channel.type, config=dict(channel.config), secrets=channel_secrets(channel))


def addresses(channel_type: str, values: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Every outbound address of a config: (kind ``url``/``host``, value, field name)."""
    if channel_type == "email":
        return [("host", str(values["host"]), "config.host")]
    if channel_type == "ntfy":
        return [("url", str(values["server"]), "config.server")]
    return [("url", str(values["url"]), "config.url")]


def to_read(channel: NotificationChannel) -> ChannelRead:
    shown = dict(channel.config)
    stored = channel_secrets(channel)
    for name in SECRET_FIELDS[channel.type]:
        shown[f"has_{name}"] = bool(stored.get(name))
    return ChannelRead(
        id=channel.id,
        type=channel.type,
        name=channel.name,
        enabled=channel.enabled,
        config=shown,
        created_by=channel.created_by,
        created_at=channel.created_at,
        updated_at=channel.updated_at,
    )


async def get_channel(
    *, session: AsyncSession, channel_id: UUID, for_update: bool = False
) -> NotificationChannel:
    statement = select(NotificationChannel).where(
        NotificationChannel.id == channel_id, tenant_clause(session, NotificationChannel.tenant_id)
    )
    if for_update:
        statement = statement.with_for_update()
    channel = await session.scalar(statement)
    if channel is None:
        raise NotFound("notification channel not found", code="notification_channel_not_found")
    return channel


async def _check_name(session: AsyncSession, name: str, *, except_id: UUID | None = None) -> None:
    statement = select(NotificationChannel.id).where(
        NotificationChannel.name == name, tenant_clause(session, NotificationChannel.tenant_id)
    )
    if except_id is not None:
        statement = statement.where(NotificationChannel.id != except_id)
    if await session.scalar(statement) is not None:
        raise Conflict(f"a channel named {name!r} exists", code="notification_channel_exists")


def prepare_create(data: ChannelCreate) -> tuple[dict[str, Any], str | None]:
    """The checked config of a new channel, with a generated webhook secret when none was
    given (returned too: the create answer shows it once)."""
    values = checked_config(data.type, data.config)
    generated = None
    if data.type == "webhook" and not values.get("secret"):
        generated = secrets_module.token_urlsafe(GENERATED_SECRET_BYTES)
        values["secret"] = generated
    return values, generated


async def create_channel(
    *, session: AsyncSession, actor: Actor, data: ChannelCreate, values: dict[str, Any]
) -> ChannelRead:
    """Save a channel whose config ``values`` were checked (:func:`prepare_create`) and whose
    addresses passed the outbound policy."""
    await _check_name(session, data.name)
    plain, hidden = split_config(data.type, values)
    channel = NotificationChannel(
        tenant_id=actor.tenant_id,
        name=data.name,
        type=data.type,
        config=plain,
        secret_config=json.dumps(hidden) if hidden else None,
        enabled=data.enabled,
        created_by=actor.user_id,
    )
    session.add(channel)
    await session.flush()
    await session.refresh(channel)
    await audit(
        session,
        actor=actor,
        action="notification_channel.create",
        resource_type="notification_channel",
        resource_id=channel.id,
        details={"name": channel.name, "type": channel.type},
    )
    return to_read(channel)


def merged_config(channel: NotificationChannel, change: dict[str, Any]) -> dict[str, Any]:
    """The stored config (secrets included) with ``change`` over it, checked again; a secret
    left out (or sent empty) keeps its stored value, one sent ``null`` is removed (as a plain
    field sent ``null`` is), where the type allows it (an SMTP password, an ntfy token)."""
    current = {**channel.config, **channel_secrets(channel)}
    for name in SECRET_FIELDS[channel.type]:
        if name not in change:
            continue
        if change[name] is None and channel.type == "webhook":
            # Every webhook message is signed: a secret can be replaced, never removed.
            raise ValidationFailed(
                "a webhook channel keeps a signing secret: send a new one to replace it",
                field=f"config.{name}",
            )
        if change[name] is not None and not change[name]:
            change = {key: value for key, value in change.items() if key != name}
    return checked_config(channel.type, {**current, **change})


async def update_channel(
    *,
    session: AsyncSession,
    actor: Actor,
    channel_id: UUID,
    data: ChannelUpdate,
    values: dict[str, Any] | None,
) -> ChannelRead:
    """Change the fields sent; ``values`` is the checked merged config when ``config`` was sent."""
    channel = await get_channel(session=session, channel_id=channel_id, for_update=True)
    changed: list[str] = []
    if data.name is not None and data.name != channel.name:
        await _check_name(session, data.name, except_id=channel.id)
        channel.name = data.name
        changed.append("name")
    if data.enabled is not None and data.enabled != channel.enabled:
        channel.enabled = data.enabled
        changed.append("enabled")
    if values is not None:
        plain, hidden = split_config(channel.type, values)
        before = {**channel.config, **channel_secrets(channel)}
        changed.extend(
            sorted(key for key in set(before) | set(values) if before.get(key) != values.get(key))
        )
        channel.config = plain
        channel.secret_config = json.dumps(hidden) if hidden else None
    await session.flush()
    await session.refresh(channel)
    await audit(
        session,
        actor=actor,
        action="notification_channel.update",
        resource_type="notification_channel",
        resource_id=channel.id,
        details={
            "changed": [
                f"config.{key}" if key not in ("name", "enabled") else key for key in changed
            ]
        },
    )
    return to_read(channel)


async def delete_channel(*, session: AsyncSession, actor: Actor, channel_id: UUID) -> None:
    """Delete the channel with its rules and deliveries."""
    channel = await get_channel(session=session, channel_id=channel_id, for_update=True)
    await session.delete(channel)
    await audit(
        session,
        actor=actor,
        action="notification_channel.delete",
        resource_type="notification_channel",
        resource_id=channel_id,
        details={"name": channel.name, "type": channel.type},
    )


async def read_channel(*, session: AsyncSession, channel_id: UUID) -> ChannelRead:
    return to_read(await get_channel(session=session, channel_id=channel_id))


async def list_channels(*, session: AsyncSession) -> list[ChannelRead]:
    rows = await session.scalars(
        select(NotificationChannel)
        .where(tenant_clause(session, NotificationChannel.tenant_id))
        .order_by(NotificationChannel.name)
    )
    return [to_read(row) for row in rows]


# --- rules ---------------------------------------------------------------------------------------


def rule_read(rule: NotificationRule) -> RuleRead:
    return RuleRead(
        id=rule.id,
        name=rule.name,
        events=list(rule.events),
        scope=Scope(type=rule.scope_type, id=rule.scope_id),
        channel_id=rule.channel_id,
        only_on_change=rule.only_on_change,
        enabled=rule.enabled,
        created_by=rule.created_by,
        created_at=rule.created_at,
        updated_at=rule.updated_at,
    )


async def _check_scope(session: AsyncSession, tenant_id: UUID, scope: Scope) -> None:
    if scope.type == "tenant":
        if scope.id is not None:
            raise ValidationFailed("a tenant-wide rule names no id", field="scope.id")
        return
    if scope.id is None:
        raise ValidationFailed(f"a {scope.type} rule needs the {scope.type}'s id", field="scope.id")
    found = _SCOPE_TABLES[scope.type]
    present = await session.scalar(
        select(exists().where(found.c.id == scope.id, found.c.tenant_id == tenant_id))
    )
    if not present:
        raise ValidationFailed(f"no such {scope.type} in this tenant", field="scope.id")


async def _check_channel(session: AsyncSession, channel_id: UUID) -> None:
    try:
        await get_channel(session=session, channel_id=channel_id)
    except NotFound as exc:
        raise ValidationFailed("no such notification channel", field="channel_id") from exc


async def get_rule(
    *, session: AsyncSession, rule_id: UUID, for_update: bool = False
) -> NotificationRule:
    statement = select(NotificationRule).where(
        NotificationRule.id == rule_id, tenant_clause(session, NotificationRule.tenant_id)
    )
    if for_update:
        statement = statement.with_for_update()
    rule = await session.scalar(statement)
    if rule is None:
        raise NotFound("notification rule not found", code="notification_rule_not_found")
    return rule


async def create_rule(*, session: AsyncSession, actor: Actor, data: RuleCreate) -> RuleRead:
    await _check_channel(session, data.channel_id)
    await _check_scope(session, actor.tenant_id, data.scope)
    rule = NotificationRule(
        tenant_id=actor.tenant_id,
        name=data.name,
        channel_id=data.channel_id,
        events=list(data.events),
        scope_type=data.scope.type,
        scope_id=data.scope.id,
        only_on_change=data.only_on_change,
        enabled=data.enabled,
        created_by=actor.user_id,
    )
    session.add(rule)
    await session.flush()
    await session.refresh(rule)
    await audit(
        session,
        actor=actor,
        action="notification_rule.create",
        resource_type="notification_rule",
        resource_id=rule.id,
        details={
            "events": rule.events,
            "scope": rule.scope_type,
            "channel_id": str(rule.channel_id),
        },
    )
    return rule_read(rule)


async def update_rule(
    *, session: AsyncSession, actor: Actor, rule_id: UUID, data: RuleUpdate
) -> RuleRead:
    rule = await get_rule(session=session, rule_id=rule_id, for_update=True)
    sent = data.model_fields_set
    changed: list[str] = []
    if data.channel_id is not None and data.channel_id != rule.channel_id:
        await _check_channel(session, data.channel_id)
        rule.channel_id = data.channel_id
        changed.append("channel_id")
    if data.scope is not None:
        await _check_scope(session, actor.tenant_id, data.scope)
        if (data.scope.type, data.scope.id) != (rule.scope_type, rule.scope_id):
            rule.scope_type, rule.scope_id = data.scope.type, data.scope.id
            changed.append("scope")
    if data.events is not None and data.events != rule.events:
        rule.events = list(data.events)
        changed.append("events")
    if "name" in sent and data.name != rule.name:
        rule.name = data.name
        changed.append("name")
    for name in ("only_on_change", "enabled"):
        value = getattr(data, name)
        if value is not None and value != getattr(rule, name):
            setattr(rule, name, value)
            changed.append(name)
    await session.flush()
    await session.refresh(rule)
    await audit(
        session,
        actor=actor,
        action="notification_rule.update",
        resource_type="notification_rule",
        resource_id=rule.id,
        details={"changed": changed},
    )
    return rule_read(rule)


async def delete_rule(*, session: AsyncSession, actor: Actor, rule_id: UUID) -> None:
    rule = await get_rule(session=session, rule_id=rule_id, for_update=True)
    await session.delete(rule)
    await audit(
        session,
        actor=actor,
        action="notification_rule.delete",
        resource_type="notification_rule",
        resource_id=rule_id,
        details={},
    )


async def read_rule(*, session: AsyncSession, rule_id: UUID) -> RuleRead:
    return rule_read(await get_rule(session=session, rule_id=rule_id))


async def list_rules(*, session: AsyncSession, channel_id: UUID | None = None) -> list[RuleRead]:
    statement = select(NotificationRule).where(tenant_clause(session, NotificationRule.tenant_id))
    if channel_id is not None:
        statement = statement.where(NotificationRule.channel_id == channel_id)
    rows = await session.scalars(statement.order_by(NotificationRule.created_at))
    return [rule_read(row) for row in rows]


# --- deliveries ----------------------------------------------------------------------------------


async def list_deliveries(
    *, session: AsyncSession, channel_id: UUID, limit: int = DELIVERIES_SHOWN
) -> list[DeliveryRead]:
    """The channel's deliveries, newest first, each with every attempt."""
    await get_channel(session=session, channel_id=channel_id)
    rows = list(
        await session.scalars(
            select(NotificationDelivery)
            .where(
                NotificationDelivery.channel_id == channel_id,
                tenant_clause(session, NotificationDelivery.tenant_id),
            )
            .order_by(NotificationDelivery.created_at.desc(), NotificationDelivery.id)
            .limit(limit)
        )
    )
    attempts: dict[UUID, list[AttemptRead]] = {row.id: [] for row in rows}
    if rows:
        found = await session.scalars(
            select(NotificationAttempt)
            .where(NotificationAttempt.delivery_id.in_(list(attempts)))
            .order_by(NotificationAttempt.delivery_id, NotificationAttempt.attempt)
        )
        for attempt in found:
            attempts[attempt.delivery_id].append(AttemptRead.model_validate(attempt))
    return [
        DeliveryRead(
            id=row.id,
            channel_id=row.channel_id,
            rule_id=row.rule_id,
            event=row.event,
            subject_type=row.subject_type,
            subject_id=row.subject_id,
            title=row.message.get("title"),
            status=row.status,
            attempts=row.attempts,
            next_attempt_at=row.next_attempt_at,
            last_error=row.last_error,
            created_at=row.created_at,
            delivered_at=row.delivered_at,
            attempt_log=attempts[row.id],
        )
        for row in rows
    ]


async def queue_delivery(
    session: AsyncSession,
    *,
    tenant_id: UUID,
    channel_id: UUID,
    rule_id: UUID | None,
    event: str,
    subject_type: str | None,
    subject_id: UUID | None,
    message: dict[str, Any],
) -> NotificationDelivery:
    """A delivery row and its sending job, in the session's transaction."""
    delivery = NotificationDelivery(
        tenant_id=tenant_id,
        channel_id=channel_id,
        rule_id=rule_id,
        event=event,
        subject_type=subject_type,
        subject_id=subject_id,
        message=message,
        status="pending",
    )
    session.add(delivery)
    await session.flush()
    await enqueue(
        session,
        task=DELIVER_TASK,
        args={"tenant_id": str(tenant_id), "delivery_id": str(delivery.id)},
    )
    return delivery


def retry_delay(attempt: int, *, base_seconds: float) -> timedelta:
    """How long after failed attempt ``attempt`` (1-based) the next one waits: base * 2^(n-1)."""
    return timedelta(seconds=base_seconds * 2 ** (attempt - 1))


async def record_attempt(
    session: AsyncSession,
    *,
    delivery: NotificationDelivery,
    result: SendResult,
    started_at: datetime,
    now: datetime,
    max_attempts: int,
    retry_base_seconds: float,
    retry: bool = True,
) -> None:
    """Record one attempt; on failure, queue the next one after the backoff (or give up:
    ``failed`` after ``max_attempts``)."""
    number = delivery.attempts + 1
    session.add(
        NotificationAttempt(
            tenant_id=delivery.tenant_id,
            delivery_id=delivery.id,
            attempt=number,
            started_at=started_at,
            duration_ms=result.duration_ms,
            succeeded=result.ok,
            status_code=result.status_code,
            reply=result.reply,
            error=result.error,
        )
    )
    delivery.attempts = number
    if result.ok:
        delivery.status = "delivered"
        delivery.delivered_at = now
        delivery.next_attempt_at = None
        delivery.last_error = None
        return
    delivery.last_error = result.error
    if not retry or number >= max_attempts:
        delivery.status = "failed"
        delivery.next_attempt_at = None
        return
    delivery.status = "retrying"
    delivery.next_attempt_at = now + retry_delay(number, base_seconds=retry_base_seconds)
    await enqueue(
        session,
        task=DELIVER_TASK,
        args={"tenant_id": str(delivery.tenant_id), "delivery_id": str(delivery.id)},
        scheduled_at=delivery.next_attempt_at,
    )
