"""Webhooks in the database: one function per user action (with its audit entry) and the reads.

A session, never the network. The secret is generated here (``secrets.token_urlsafe(32)``),
stored encrypted (``EncryptedText``) and returned only by :func:`create_webhook` and
:func:`rotate_secret`. Inbound deliveries are handled by :mod:`shipyard.webhooks.inbound`.
"""

from __future__ import annotations

import secrets
from typing import Any
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from shipyard.accounts.audit import audit
from shipyard.accounts.principal import Actor
from shipyard.config import Settings
from shipyard.db import tenant_clause
from shipyard.errors import NotFound, ValidationFailed
from shipyard.pagination import paginate
from shipyard.templates import service as templates
from shipyard.templates.models import Template
from shipyard.webhooks.models import Webhook, WebhookDelivery
from shipyard.webhooks.schemas import (
    DeliveryRead,
    WebhookCreate,
    WebhookCreated,
    WebhookRead,
    WebhookUpdate,
)

API_PREFIX = "/api/v1"
DEFAULT_EVENTS = ["push"]


def new_secret() -> str:
    """A fresh hook secret: 32 random bytes, URL-safe (GitLab sends it as a header value)."""
    return secrets.token_urlsafe(32)


def hook_url(settings: Settings, webhook_id: UUID) -> str:
    """Where the provider delivers: the public address (``SHIPYARD_BASE_URL``) + the hook path."""
    return f"{settings.base_url.rstrip('/')}{API_PREFIX}/hooks/{webhook_id}"


def to_read(webhook: Webhook, *, settings: Settings) -> WebhookRead:
    """The hook as the API shows it: never its secret."""
    return WebhookRead(
        id=webhook.id,
        template_id=webhook.template_id,
        provider=webhook.provider,
        auth=webhook.auth,
        url=hook_url(settings, webhook.id),
        events=list(webhook.events),
        branches=list(webhook.branches),
        tags=list(webhook.tags),
        paths=list(webhook.paths),
        parameter_map=dict(webhook.parameter_map),
        enabled=webhook.enabled,
        remote_hook_id=webhook.remote_hook_id,
        created_by=webhook.created_by,
        created_at=webhook.created_at,
        updated_at=webhook.updated_at,
    )


def delivery_read(row: WebhookDelivery) -> DeliveryRead:
    return DeliveryRead(
        id=row.id,
        webhook_id=row.webhook_id,
        delivery_id=row.delivery_id,
        event=row.event,
        verdict=row.verdict,
        reason=row.reason,
        deployment_id=row.deployment_id,
        ref=row.ref,
        commit=row.commit_sha,
        received_at=row.received_at,
    )


async def get_webhook(
    *, session: AsyncSession, webhook_id: UUID, for_update: bool = False
) -> Webhook:
    statement = select(Webhook).where(
        Webhook.id == webhook_id, tenant_clause(session, Webhook.tenant_id)
    )
    if for_update:
        statement = statement.with_for_update()
    webhook = await session.scalar(statement)
    if webhook is None:
        raise NotFound("webhook not found", code="webhook_not_found")
    return webhook


def _check_auth(provider: str, auth: str | None) -> None:
    if provider != "generic" and auth not in (None, "hmac"):
        raise ValidationFailed(
            f"{provider} hooks are verified as {provider} documents; auth is for generic hooks",
            field="auth",
        )


def _check_parameter_map(template: Template, parameter_map: dict[str, str]) -> None:
    names = {str(item.get("name")) for item in template.parameters}
    for name in parameter_map:
        if name not in names:
            raise ValidationFailed(
                f"the template has no parameter {name!r}", field=f"parameter_map.{name}"
            )


async def create_webhook(
    *,
    session: AsyncSession,
    actor: Actor,
    template_id: UUID,
    data: WebhookCreate,
    settings: Settings,
) -> WebhookCreated:
    """Add a trigger URL to a template; the answer is the only one that holds the secret."""
    template = await templates.get_template(session=session, template_id=template_id)
    _check_auth(data.provider, data.auth)
    _check_parameter_map(template, data.parameter_map or {})
    secret = new_secret()
    webhook = Webhook(
        tenant_id=actor.tenant_id,
        template_id=template.id,
        provider=data.provider,
        auth=data.auth if data.provider == "generic" else "hmac",
        secret=secret,
        events=list(data.events or DEFAULT_EVENTS),
        branches=list(data.branches or []),
        tags=list(data.tags or []),
        paths=list(data.paths or []),
        parameter_map=dict(data.parameter_map or {}),
        enabled=True if data.enabled is None else data.enabled,
        created_by=actor.user_id,
    )
    session.add(webhook)
    await session.flush()
    await session.refresh(webhook)
    await _audit(
        session,
        actor,
        "webhook.create",
        webhook,
        {"template_id": str(template.id), "provider": webhook.provider},
    )
    read = to_read(webhook, settings=settings)
    return WebhookCreated(id=webhook.id, url=read.url, secret=secret, webhook=read)


async def list_webhooks(
    *,
    session: AsyncSession,
    settings: Settings,
    limit: int,
    cursor: str | None,
    template_id: UUID | None = None,
) -> tuple[list[WebhookRead], str | None]:
    """The tenant's hooks, newest first (``template_id``: one template's)."""
    statement = select(Webhook).where(tenant_clause(session, Webhook.tenant_id))
    if template_id is not None:
        statement = statement.where(Webhook.template_id == template_id)
    rows, next_cursor = await paginate(
        session,
        statement,
        created_at=Webhook.created_at,
        row_id=Webhook.id,
        limit=limit,
        cursor=cursor,
    )
    return [to_read(row, settings=settings) for row in rows], next_cursor


async def read_webhook(
    *, session: AsyncSession, webhook_id: UUID, settings: Settings
) -> WebhookRead:
    return to_read(await get_webhook(session=session, webhook_id=webhook_id), settings=settings)


async def update_webhook(
    *,
    session: AsyncSession,
    actor: Actor,
    webhook_id: UUID,
    data: WebhookUpdate,
    settings: Settings,
) -> WebhookRead:
    """Change the fields sent (filters, parameter map, enabled, a generic hook's auth)."""
    webhook = await get_webhook(session=session, webhook_id=webhook_id, for_update=True)
    changed = sorted(data.model_fields_set)
    if data.auth is not None:
        _check_auth(webhook.provider, data.auth)
        webhook.auth = data.auth
    if data.events is not None:
        webhook.events = list(data.events)
    for name in ("branches", "tags", "paths"):
        value = getattr(data, name)
        if value is not None:
            setattr(webhook, name, list(value))
    if data.parameter_map is not None:
        template = await templates.get_template(session=session, template_id=webhook.template_id)
        _check_parameter_map(template, data.parameter_map)
        webhook.parameter_map = dict(data.parameter_map)
    if data.enabled is not None:
        webhook.enabled = data.enabled
    await session.flush()
    await session.refresh(webhook)
    await _audit(session, actor, "webhook.update", webhook, {"fields": changed})
    return to_read(webhook, settings=settings)


async def delete_webhook(*, session: AsyncSession, actor: Actor, webhook_id: UUID) -> None:
    """Delete a hook and its delivery log; the runs it started stay."""
    webhook = await get_webhook(session=session, webhook_id=webhook_id, for_update=True)
    await _audit(
        session, actor, "webhook.delete", webhook, {"template_id": str(webhook.template_id)}
    )
    await session.delete(webhook)
    await session.flush()


async def rotate_secret(
    *, session: AsyncSession, actor: Actor, webhook_id: UUID, settings: Settings
) -> WebhookCreated:
    """Replace the secret; deliveries signed with the old one are refused from now on."""
    webhook = await get_webhook(session=session, webhook_id=webhook_id, for_update=True)
    secret = new_secret()
    webhook.secret = secret
    await session.flush()
    await session.refresh(webhook)
    await _audit(session, actor, "webhook.rotate", webhook, {})
    read = to_read(webhook, settings=settings)
    return WebhookCreated(id=webhook.id, url=read.url, secret=secret, webhook=read)


async def set_remote_hook(
    *, session: AsyncSession, actor: Actor, webhook_id: UUID, remote_hook_id: str | None
) -> Webhook:
    """Record (or forget) the hook's id at the provider, after registering (removing) it there."""
    webhook = await get_webhook(session=session, webhook_id=webhook_id, for_update=True)
    webhook.remote_hook_id = remote_hook_id
    action = "webhook.register" if remote_hook_id else "webhook.unregister"
    await session.flush()
    await session.refresh(webhook)
    await _audit(session, actor, action, webhook, {"remote_hook_id": remote_hook_id})
    return webhook


async def list_deliveries(
    *, session: AsyncSession, webhook_id: UUID, limit: int, cursor: str | None
) -> tuple[list[DeliveryRead], str | None]:
    """The hook's deliveries, newest first, each with its verdict and reason."""
    await get_webhook(session=session, webhook_id=webhook_id)
    statement = select(WebhookDelivery).where(
        WebhookDelivery.webhook_id == webhook_id,
        tenant_clause(session, WebhookDelivery.tenant_id),
    )
    rows, next_cursor = await paginate(
        session,
        statement,
        created_at=WebhookDelivery.received_at,
        row_id=WebhookDelivery.id,
        limit=limit,
        cursor=cursor,
    )
    return [delivery_read(row) for row in rows], next_cursor


async def _audit(
    session: AsyncSession, actor: Actor, action: str, webhook: Webhook, details: dict[str, Any]
) -> None:
    await audit(
        session,
        actor=actor,
        action=action,
        resource_type="webhook",
        resource_id=webhook.id,
        details=details,
    )
