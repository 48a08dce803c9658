"""Webhooks: the form on a template, the one page that shows a new (or rotated) secret with the
provider's settings to enter, a hook's page with its delivery log, rotate, register at / remove
from the provider, delete; and a template's triggers (its schedules and hooks, with the latest
deliveries), loaded into the template's page.

The secret is rendered only in the answer to the POST that created or rotated it (with
``Cache-Control: no-store``); every other page names it without showing it. Register, remove
and delete reach the provider: their flow runs first, before this request's session opens a
transaction (as the template pages' launch does).
"""

from __future__ import annotations

import contextlib
from typing import Annotated, Any
from uuid import UUID

from fastapi import Request, Response
from fastapi.responses import RedirectResponse
from pydantic import ValidationError

from shipyard.accounts.permissions import Permission
from shipyard.accounts.principal import Actor, Principal
from shipyard.deps import CurrentUser, RuntimeDep, SessionDep, acting, attempt
from shipyard.errors import ShipyardError
from shipyard.git import repositories as repo_service
from shipyard.runtime import Runtime
from shipyard.schedules import service as schedules
from shipyard.templates import service as templates
from shipyard.templates.schemas import TemplateRead
from shipyard.web.errors import form_failure
from shipyard.web.routes import web_router
from shipyard.web.templating import is_htmx, render
from shipyard.web.webhook_form import EVENTS, GENERIC_AUTH, PROVIDERS, WebhookForm
from shipyard.webhooks import flows, service
from shipyard.webhooks.schemas import WebhookCreate, WebhookCreated, WebhookRead, WebhookUpdate

router = web_router()
Manager = Annotated[Actor, acting(Permission.MANAGE_TEMPLATES)]
DELIVERIES_LIMIT = 100
RECENT_DELIVERIES = 5
LIST_LIMIT = 100
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


async def _registrable(
    session: SessionDep, principal: Principal, template: TemplateRead
) -> str | None:
    """The provider type of the template's repository when it comes from a connected provider."""
    if template.repository_id is None:
        return None
    try:
        repository = await repo_service.read_repository(
            session=session, principal=principal, repository_id=template.repository_id
        )
    except ShipyardError:
        return None
    if repository.provider_id is None or repository.provider_type is None:
        return None
    return str(repository.provider_type)


# --- a template's triggers -------------------------------------------------------------------


@router.get("/templates/{template_id}/triggers")
async def triggers(
    request: Request,
    template_id: UUID,
    principal: CurrentUser,
    runtime: RuntimeDep,
    session: SessionDep,
) -> Response:
    """The template's schedules and hooks (HTMX: the section alone, for the template's page)."""
    template = await templates.read_template(session=session, template_id=template_id)
    found, _ = await schedules.list_schedules(
        session=session, limit=LIST_LIMIT, cursor=None, template_id=template_id
    )
    hooks, _ = await service.list_webhooks(
        session=session,
        settings=runtime.settings,
        limit=LIST_LIMIT,
        cursor=None,
        template_id=template_id,
    )
    recent = {}
    for hook in hooks:
        recent[hook.id], _ = await service.list_deliveries(
            session=session, webhook_id=hook.id, limit=RECENT_DELIVERIES, cursor=None
        )
    context = {
        "section": "templates",
        "template": template,
        "schedules": found,
        "hooks": hooks,
        "recent": recent,
        "providers": dict(PROVIDERS),
    }
    if is_htmx(request):
        return render(request, "webhooks/_triggers.html", context)
    return render(request, "webhooks/triggers.html", context)


# --- the form --------------------------------------------------------------------------------


def _form_page(
    request: Request,
    template: TemplateRead,
    form: WebhookForm,
    error: ValidationError | ShipyardError | None = None,
    *,
    hook: WebhookRead | None = None,
) -> Response:
    errors, message, status_code = form_failure(error)
    # Errors of list items (branches.0) and map entries (parameter_map.version) shown by their field.
    shown: dict[str, str] = {}
    for path, text in errors.items():
        head = path.split(".", 1)[0]
        shown.setdefault(head, text if head == path else f"{path.split('.', 1)[1]}: {text}")
    return render(
        request,
        "webhooks/form.html",
        {
            "section": "templates",
            "template": template,
            "form": form,
            "values": form.values,
            "errors": shown,
            "message": message if error is not None and not shown else None,
            "providers": PROVIDERS,
            "auths": GENERIC_AUTH,
            "events": EVENTS,
            "parameter_names": [p.name for p in template.parameters],
            "hook": hook,
            "providers_by_value": dict(PROVIDERS),
        },
        status_code=status_code,
    )


@router.get("/templates/{template_id}/webhooks/new")
async def new_webhook(
    request: Request, template_id: UUID, actor: Manager, session: SessionDep
) -> Response:
    template = await templates.read_template(session=session, template_id=template_id)
    return _form_page(request, template, WebhookForm.blank())


def _secret_page(
    request: Request, template: TemplateRead, created: WebhookCreated, *, rotated: bool
) -> Response:
    """The only page that shows the secret; never cached."""
    return render(
        request,
        "webhooks/created.html",
        {
            "section": "templates",
            "template": template,
            "hook": created.webhook,
            "secret": created.secret,
            "rotated": rotated,
            "providers": dict(PROVIDERS),
        },
        status_code=201 if not rotated else 200,
        headers=NO_STORE,
    )


@router.post("/templates/{template_id}/webhooks/new")
async def create_webhook(
    request: Request, template_id: UUID, actor: Manager, runtime: RuntimeDep, session: SessionDep
) -> Response:
    form = WebhookForm.from_form(await request.form())
    template = await templates.read_template(session=session, template_id=template_id)
    try:
        data = WebhookCreate.model_validate(form.payload())
        async with attempt(session):
            created = await service.create_webhook(
                session=session,
                actor=actor,
                template_id=template_id,
                data=data,
                settings=runtime.settings,
            )
    except (ValidationError, ShipyardError) as exc:
        return _form_page(request, template, form, exc)
    return _secret_page(request, template, created, rotated=False)


# --- a hook's page ---------------------------------------------------------------------------


async def _hook_page(
    request: Request,
    session: SessionDep,
    runtime: Runtime,
    principal: Principal,
    webhook_id: UUID,
    *,
    error: ShipyardError | None = None,
    notice: str | None = None,
) -> Response:
    hook = await service.read_webhook(
        session=session, webhook_id=webhook_id, settings=runtime.settings
    )
    template = await templates.read_template(session=session, template_id=hook.template_id)
    deliveries, _ = await service.list_deliveries(
        session=session, webhook_id=webhook_id, limit=DELIVERIES_LIMIT, cursor=None
    )
    _, message, status_code = form_failure(error)
    return render(
        request,
        "webhooks/detail.html",
        {
            "section": "templates",
            "hook": hook,
            "template": template,
            "deliveries": deliveries,
            "registrable": await _registrable(session, principal, template),
            "providers": dict(PROVIDERS),
            "message": message,
            "notice": notice,
            "secret": None,
        },
        status_code=status_code,
    )


@router.get("/webhooks/{webhook_id}")
async def webhook_page(
    request: Request,
    webhook_id: UUID,
    principal: CurrentUser,
    runtime: RuntimeDep,
    session: SessionDep,
) -> Response:
    return await _hook_page(request, session, runtime, principal, webhook_id)


@router.get("/webhooks/{webhook_id}/edit")
async def edit_webhook_page(
    request: Request, webhook_id: UUID, actor: Manager, runtime: RuntimeDep, session: SessionDep
) -> Response:
    hook = await service.read_webhook(
        session=session, webhook_id=webhook_id, settings=runtime.settings
    )
    template = await templates.read_template(session=session, template_id=hook.template_id)
    return _form_page(request, template, WebhookForm.from_hook(hook), hook=hook)


@router.post("/webhooks/{webhook_id}/edit")
async def edit_webhook(
    request: Request, webhook_id: UUID, actor: Manager, runtime: RuntimeDep, session: SessionDep
) -> Response:
    form = WebhookForm.from_form(await request.form())
    hook = await service.read_webhook(
        session=session, webhook_id=webhook_id, settings=runtime.settings
    )
    template = await templates.read_template(session=session, template_id=hook.template_id)
    try:
        data = WebhookUpdate.model_validate(form.update_payload(hook.provider))
        async with attempt(session):
            await service.update_webhook(
                session=session,
                actor=actor,
                webhook_id=webhook_id,
                data=data,
                settings=runtime.settings,
            )
    except (ValidationError, ShipyardError) as exc:
        return _form_page(request, template, form, exc, hook=hook)
    return RedirectResponse(f"/webhooks/{webhook_id}", status_code=303)


@router.post("/webhooks/{webhook_id}/rotate")
async def rotate(
    request: Request, webhook_id: UUID, actor: Manager, runtime: RuntimeDep, session: SessionDep
) -> Response:
    created = await service.rotate_secret(
        session=session, actor=actor, webhook_id=webhook_id, settings=runtime.settings
    )
    template = await templates.read_template(
        session=session, template_id=created.webhook.template_id
    )
    return _secret_page(request, template, created, rotated=True)


@router.post("/webhooks/{webhook_id}/enable")
async def enable(
    webhook_id: UUID, actor: Manager, runtime: RuntimeDep, session: SessionDep
) -> Response:
    await service.update_webhook(
        session=session,
        actor=actor,
        webhook_id=webhook_id,
        data=WebhookUpdate(enabled=True),
        settings=runtime.settings,
    )
    return RedirectResponse(f"/webhooks/{webhook_id}", status_code=303)


@router.post("/webhooks/{webhook_id}/disable")
async def disable(
    webhook_id: UUID, actor: Manager, runtime: RuntimeDep, session: SessionDep
) -> Response:
    """Deliveries are still verified and logged (filtered: the hook is disabled); none runs."""
    await service.update_webhook(
        session=session,
        actor=actor,
        webhook_id=webhook_id,
        data=WebhookUpdate(enabled=False),
        settings=runtime.settings,
    )
    return RedirectResponse(f"/webhooks/{webhook_id}", status_code=303)


async def _remote(
    request: Request, webhook_id: UUID, actor: Actor, runtime: Runtime, *, register: bool
) -> Response:
    action = flows.register_webhook if register else flows.unregister_webhook
    error: ShipyardError | None = None
    notice: str | None = None
    try:
        # A flow (the provider's API): no transaction of this request is open around it.
        done: WebhookRead = await action(runtime=runtime, actor=actor, webhook_id=webhook_id)
        notice = (
            f"Registered at the provider (hook id {done.remote_hook_id})."
            if register
            else "Removed from the provider."
        )
    except ShipyardError as exc:
        error = exc
    return await _fresh_hook_page(request, runtime, actor, webhook_id, error=error, notice=notice)


async def _fresh_hook_page(
    request: Request,
    runtime: Runtime,
    actor: Actor,
    webhook_id: UUID,
    *,
    error: ShipyardError | None = None,
    notice: str | None = None,
) -> Response:
    """The hook's page after a flow, read in a short transaction of its own."""
    async with runtime.db.session(tenant_id=actor.tenant_id, user_id=actor.user_id) as session:
        return await _hook_page(
            request, session, runtime, actor.principal, webhook_id, error=error, notice=notice
        )


@router.post("/webhooks/{webhook_id}/register")
async def register(
    request: Request, webhook_id: UUID, actor: Manager, runtime: RuntimeDep
) -> Response:
    return await _remote(request, webhook_id, actor, runtime, register=True)


@router.post("/webhooks/{webhook_id}/unregister")
async def unregister(
    request: Request, webhook_id: UUID, actor: Manager, runtime: RuntimeDep
) -> Response:
    return await _remote(request, webhook_id, actor, runtime, register=False)


@router.post("/webhooks/{webhook_id}/delete")
async def delete(
    request: Request, webhook_id: UUID, actor: Manager, runtime: RuntimeDep
) -> Response:
    form = await request.form()
    try:
        await flows.delete_webhook(runtime=runtime, actor=actor, webhook_id=webhook_id)
    except ShipyardError as exc:
        return await _fresh_hook_page(request, runtime, actor, webhook_id, error=exc)
    target = "/templates"
    raw: Any = form.get("template_id")
    if isinstance(raw, str):
        with contextlib.suppress(ValueError):
            target = f"/templates/{UUID(raw)}"
    return RedirectResponse(target, status_code=303)
