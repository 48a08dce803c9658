"""Routes: webhooks on templates (CRUD, rotate, deliveries, registration) and inbound hooks."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.responses import JSONResponse

from shipyard.accounts.permissions import Permission
from shipyard.accounts.principal import Actor
from shipyard.deps import (
    CurrentUser,
    RuntimeDep,
    SessionDep,
    SettingsDep,
    acting,
    client_ip,
    max_request_bytes,
)
from shipyard.errors import Unauthorized
from shipyard.pagination import DEFAULT_LIMIT, MAX_LIMIT, Page
from shipyard.webhooks import flows, inbound, service
from shipyard.webhooks.schemas import (
    DeliveryRead,
    InboundAnswer,
    WebhookCreate,
    WebhookCreated,
    WebhookRead,
    WebhookUpdate,
)

router = APIRouter(tags=["webhooks"])
# Inbound deliveries: no authentication but the signature (see inbound.receive_delivery).
hooks_router = APIRouter(tags=["webhooks"])
Editor = Annotated[Actor, acting(Permission.MANAGE_TEMPLATES)]


@router.post(
    "/templates/{template_id}/webhooks",
    response_model=WebhookCreated,
    status_code=status.HTTP_201_CREATED,
)
async def create_webhook(
    template_id: UUID,
    data: WebhookCreate,
    actor: Editor,
    session: SessionDep,
    settings: SettingsDep,
) -> WebhookCreated:
    """Add a trigger URL; the answer holds the secret, shown this once."""
    return await service.create_webhook(
        session=session, actor=actor, template_id=template_id, data=data, settings=settings
    )


@router.get("/webhooks", response_model=Page[WebhookRead])
async def list_webhooks(
    principal: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: str | None = None,
    template_id: UUID | None = None,
) -> Page[WebhookRead]:
    items, next_cursor = await service.list_webhooks(
        session=session, settings=settings, limit=limit, cursor=cursor, template_id=template_id
    )
    return Page(items=items, next_cursor=next_cursor)


@router.get("/webhooks/{webhook_id}", response_model=WebhookRead)
async def get_webhook(
    webhook_id: UUID, principal: CurrentUser, session: SessionDep, settings: SettingsDep
) -> WebhookRead:
    return await service.read_webhook(session=session, webhook_id=webhook_id, settings=settings)


@router.patch("/webhooks/{webhook_id}", response_model=WebhookRead)
async def update_webhook(
    webhook_id: UUID,
    data: WebhookUpdate,
    actor: Editor,
    session: SessionDep,
    settings: SettingsDep,
) -> WebhookRead:
    return await service.update_webhook(
        session=session, actor=actor, webhook_id=webhook_id, data=data, settings=settings
    )


@router.delete("/webhooks/{webhook_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_webhook(webhook_id: UUID, actor: Editor, runtime: RuntimeDep) -> Response:
    """Delete the hook (and remove it at the provider when Shipyard registered it there)."""
    await flows.delete_webhook(runtime=runtime, actor=actor, webhook_id=webhook_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/webhooks/{webhook_id}/rotate", response_model=WebhookCreated)
async def rotate_secret(
    webhook_id: UUID, actor: Editor, session: SessionDep, settings: SettingsDep
) -> WebhookCreated:
    """A new secret, shown this once; the old one stops working now."""
    return await service.rotate_secret(
        session=session, actor=actor, webhook_id=webhook_id, settings=settings
    )


@router.get("/webhooks/{webhook_id}/deliveries", response_model=Page[DeliveryRead])
async def list_deliveries(
    webhook_id: UUID,
    principal: CurrentUser,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> Page[DeliveryRead]:
    items, next_cursor = await service.list_deliveries(
        session=session, webhook_id=webhook_id, limit=limit, cursor=cursor
    )
    return Page(items=items, next_cursor=next_cursor)


@router.post("/webhooks/{webhook_id}/register", response_model=WebhookRead)
async def register_webhook(webhook_id: UUID, actor: Editor, runtime: RuntimeDep) -> WebhookRead:
    """Create the hook at the template repository's provider (GitHub, GitLab, Gitea)."""
    return await flows.register_webhook(runtime=runtime, actor=actor, webhook_id=webhook_id)


@router.delete("/webhooks/{webhook_id}/register", response_model=WebhookRead)
async def unregister_webhook(webhook_id: UUID, actor: Editor, runtime: RuntimeDep) -> WebhookRead:
    """Remove the hook Shipyard registered at the provider."""
    return await flows.unregister_webhook(runtime=runtime, actor=actor, webhook_id=webhook_id)


@hooks_router.post(
    "/hooks/{webhook_id}",
    response_model=InboundAnswer,
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        200: {"model": InboundAnswer, "description": "filtered, duplicate or ping"},
        401: {"description": "unsigned or wrongly signed: nothing runs"},
        404: {"description": "no such hook"},
        413: {"description": "body over the cap (25 MiB, GitHub's own payload limit)"},
        429: {"description": "too many deliveries to this hook (Retry-After)"},
    },
)
@max_request_bytes(inbound.MAX_DELIVERY_BYTES)
async def deliver(webhook_id: str, request: Request, runtime: RuntimeDep) -> JSONResponse:
    """An inbound delivery: verified by its signature only, then deduplicated, filtered, run."""
    body = await request.body()
    try:
        outcome = await inbound.receive_delivery(
            runtime=runtime,
            webhook_id=webhook_id,
            headers=request.headers,
            body=body,
            remote=client_ip(request),
        )
    except inbound.DeliveryRefused as exc:
        raise Unauthorized(
            f"the delivery is refused: {exc.reason}", code="signature_refused"
        ) from None
    answer = InboundAnswer(
        verdict=outcome.verdict,
        reason=outcome.reason,
        deployment_id=outcome.deployment_id,
        delivery=outcome.delivery,
    )
    return JSONResponse(answer.model_dump(mode="json"), status_code=outcome.status)
