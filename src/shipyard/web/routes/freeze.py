"""Web pages: freeze windows. The list (with what is in force now and next) and, for admins, the
form to add one, an edit page per window (the same form, filled in) and a delete button; each
action calls one function of :mod:`shipyard.freeze.service`, with times from the runtime's
clock."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import Request, Response
from fastapi.responses import RedirectResponse
from pydantic import ValidationError

from shipyard.accounts.permissions import Permission
from shipyard.accounts.principal import Actor
from shipyard.deps import CurrentUser, RuntimeDep, SessionDep, acting, attempt
from shipyard.errors import ShipyardError
from shipyard.freeze import service
from shipyard.freeze.schemas import FreezeWindowCreate, FreezeWindowUpdate
from shipyard.hosts import inventory
from shipyard.templates import service as templates
from shipyard.web.errors import form_failure, sentence
from shipyard.web.freeze_form import WindowForm
from shipyard.web.routes import web_router
from shipyard.web.schedule_form import LocalTimeError, time_zones
from shipyard.web.templating import render

router = web_router()
Admin = Annotated[Actor, acting(Permission.MANAGE_FREEZE_WINDOWS)]
LIST_LIMIT = 200


async def _page(
    request: Request,
    session: SessionDep,
    runtime: RuntimeDep,
    tenant_id: UUID,
    *,
    form: WindowForm | None = None,
    errors: dict[str, str] | None = None,
    message: str | None = None,
    status_code: int = 200,
    editing: UUID | None = None,
) -> Response:
    now = runtime.clock.now()
    windows, _ = await service.list_windows(session=session, limit=LIST_LIMIT, cursor=None, now=now)
    found, _ = await templates.list_templates(session=session, limit=LIST_LIMIT, cursor=None)
    groups = await inventory.read_groups(session=session, tenant_id=tenant_id)
    errors = errors or {}
    own = {"name", "description", "kind", "cron", "duration_minutes", "timezone"}
    own |= {"starts_at", "ends_at", "template_ids", "group_ids"}
    return render(
        request,
        "freeze/list.html",
        {
            "section": "settings",
            "windows": windows,
            "template_names": {t.id: t.name for t in found},
            "group_names": {g.id: g.name for g in groups},
            "form": form or WindowForm.blank(),
            "errors": errors,
            "other_errors": [
                (name, text)
                for name, text in errors.items()
                if name not in own and not name.startswith(("template_ids", "group_ids"))
            ],
            "message": message,
            "zones": time_zones(),
            "editing": editing,
        },
        status_code=status_code,
    )


@router.get("/freeze-windows")
async def windows(
    request: Request, principal: CurrentUser, session: SessionDep, runtime: RuntimeDep
) -> Response:
    return await _page(request, session, runtime, principal.tenant_id)


@router.post("/freeze-windows")
async def create(
    request: Request, actor: Admin, session: SessionDep, runtime: RuntimeDep
) -> Response:
    form = WindowForm.from_form(await request.form())
    try:
        data = FreezeWindowCreate.model_validate(form.payload())
        async with attempt(session):
            await service.create_window(
                session=session, actor=actor, data=data, now=runtime.clock.now()
            )
    except (LocalTimeError, ValidationError, ShipyardError) as exc:
        return await _refused(request, session, runtime, actor, form, exc)
    return RedirectResponse("/freeze-windows", status_code=303)


@router.get("/freeze-windows/{window_id}/edit")
async def edit_page(
    request: Request, window_id: UUID, actor: Admin, session: SessionDep, runtime: RuntimeDep
) -> Response:
    window = await service.read_window(
        session=session, window_id=window_id, now=runtime.clock.now()
    )
    return await _page(
        request,
        session,
        runtime,
        actor.tenant_id,
        form=WindowForm.from_window(window),
        editing=window_id,
    )


@router.post("/freeze-windows/{window_id}")
async def edit(
    request: Request, window_id: UUID, actor: Admin, session: SessionDep, runtime: RuntimeDep
) -> Response:
    form = WindowForm.from_form(await request.form())
    try:
        data = FreezeWindowUpdate.model_validate(form.payload())
        async with attempt(session):
            await service.update_window(
                session=session,
                actor=actor,
                window_id=window_id,
                data=data,
                now=runtime.clock.now(),
            )
    except (LocalTimeError, ValidationError, ShipyardError) as exc:
        return await _refused(request, session, runtime, actor, form, exc, editing=window_id)
    return RedirectResponse("/freeze-windows", status_code=303)


async def _refused(
    request: Request,
    session: SessionDep,
    runtime: RuntimeDep,
    actor: Actor,
    form: WindowForm,
    exc: LocalTimeError | ValidationError | ShipyardError,
    *,
    editing: UUID | None = None,
) -> Response:
    """The form again, as typed, with the errors by field."""
    if isinstance(exc, LocalTimeError):
        return await _page(
            request,
            session,
            runtime,
            actor.tenant_id,
            form=form,
            errors={exc.field: sentence(str(exc))},
            status_code=422,
            editing=editing,
        )
    errors, message, status_code = form_failure(exc, name_taken="name_taken")
    for name in list(errors):
        # template_ids.0 / group_ids.2: shown on the list they belong to.
        head = name.split(".", 1)[0]
        if head in ("template_ids", "group_ids"):
            errors.setdefault(head, errors[name])
    return await _page(
        request,
        session,
        runtime,
        actor.tenant_id,
        form=form,
        errors=errors,
        message=message,
        status_code=status_code,
        editing=editing,
    )


@router.post("/freeze-windows/{window_id}/delete")
async def delete(window_id: UUID, actor: Admin, session: SessionDep) -> Response:
    await service.delete_window(session=session, actor=actor, window_id=window_id)
    return RedirectResponse("/freeze-windows", status_code=303)
