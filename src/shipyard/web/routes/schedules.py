"""Schedules: the tenant's list, the schedule form on a template with its "next ten fire times"
preview (live with HTMX, a Preview button without JavaScript), and a schedule's page with
pause, resume, delete and its fire history.

Each user action calls one function of :mod:`shipyard.schedules.service`; times come from the
runtime's clock (``runtime.clock.now()``), as the API's do.
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import Request, Response
from fastapi.responses import RedirectResponse
from pydantic import ValidationError

from shipyard import cron as crons
from shipyard.accounts.permissions import Permission
from shipyard.accounts.principal import Actor
from shipyard.deps import CurrentUser, RuntimeDep, SessionDep, acting, attempt
from shipyard.errors import ShipyardError
from shipyard.schedules import service
from shipyard.schedules.schemas import (
    NextTimes,
    PreviewRequest,
    ScheduleCreate,
    ScheduleRead,
    ScheduleUpdate,
)
from shipyard.templates import service as templates
from shipyard.templates.schemas import TemplateRead
from shipyard.web.errors import form_failure, sentence
from shipyard.web.routes import web_router
from shipyard.web.schedule_form import (
    CRON_PRESETS,
    MISSED_POLICIES,
    OVERLAP_POLICIES,
    LocalTimeError,
    ScheduleForm,
    time_zones,
)
from shipyard.web.template_form import shown_launch_values
from shipyard.web.templating import render

router = web_router()
Manager = Annotated[Actor, acting(Permission.MANAGE_TEMPLATES)]
LIST_LIMIT = 200
FIRES_LIMIT = 100
PREVIEW_COUNT = 10


def _preview(form: ScheduleForm, now: Any) -> tuple[NextTimes | None, dict[str, str]]:
    """The next fire times of the typed cron line, or the errors naming its fields (nothing
    yet while the line is blank)."""
    if not form.values.get("cron"):
        return None, {}
    try:
        data = PreviewRequest.model_validate(form.preview_payload(PREVIEW_COUNT))
        return service.preview(data=data, now=now), {}
    except LocalTimeError as exc:
        return None, {exc.field: sentence(str(exc))}
    except (ValidationError, ShipyardError) as exc:
        errors, message, _ = form_failure(exc)
        return None, errors or {"cron": message or "This cron line cannot be previewed."}


# --- the list --------------------------------------------------------------------------------


@router.get("/schedules")
async def schedules(request: Request, principal: CurrentUser, session: SessionDep) -> Response:
    found, _ = await service.list_schedules(session=session, limit=LIST_LIMIT, cursor=None)
    names, _ = await templates.list_templates(session=session, limit=LIST_LIMIT, cursor=None)
    return render(
        request,
        "schedules/list.html",
        {
            "section": "schedules",
            "schedules": found,
            "template_names": {t.id: t.name for t in names},
        },
    )


@router.post("/schedules/preview")
async def preview(request: Request, actor: Manager, runtime: RuntimeDep) -> Response:
    """The preview card alone (HTMX, as the cron line or the zone changes); as the API's
    preview, for those who may save a schedule."""
    form = ScheduleForm.from_form(await request.form())
    shown, errors = _preview(form, runtime.clock.now())
    return render(
        request,
        "schedules/_preview.html",
        {"preview": shown, "preview_errors": errors},
        status_code=422 if errors else 200,
    )


# --- the form on a template ------------------------------------------------------------------


def _form_page(
    request: Request,
    template: TemplateRead,
    form: ScheduleForm,
    *,
    errors: dict[str, str] | None = None,
    message: str | None = None,
    status_code: int = 200,
    preview: NextTimes | None = None,
    preview_errors: dict[str, str] | None = None,
    schedule: ScheduleRead | None = None,
) -> Response:
    errors = errors or {}
    own = {"name", "cron", "timezone", "overlap_policy", "missed_policy", "starts_at", "ends_at"}
    parameter_fields = {f"parameters.{p.name}" for p in template.parameters}
    other = [(k, v) for k, v in errors.items() if k not in own | parameter_fields]
    return render(
        request,
        "schedules/form.html",
        {
            "section": "schedules",
            "template": template,
            "values": form.values,
            "enabled": form.enabled,
            "errors": errors,
            "other_errors": other,
            "message": message,
            "launch_shown": shown_launch_values(template.parameters, form.form),
            "presets": CRON_PRESETS,
            "zones": time_zones(),
            "overlap_policies": OVERLAP_POLICIES,
            "missed_policies": MISSED_POLICIES,
            "preview": preview,
            "preview_errors": preview_errors or {},
            "schedule": schedule,
            "stored_secrets": _stored_secrets(schedule),
            "form_action": f"/schedules/{schedule.id}/edit"
            if schedule
            else f"/templates/{template.id}/schedules/new",
        },
        status_code=status_code,
    )


def _stored_secrets(schedule: ScheduleRead | None) -> set[str]:
    """Names of the schedule's secret values (shown as ***; kept when left blank)."""
    if schedule is None:
        return set()
    return {name for name, value in schedule.parameters.items() if value == service.MASKED}


@router.get("/templates/{template_id}/schedules/new")
async def new_schedule(
    request: Request, template_id: UUID, actor: Manager, session: SessionDep
) -> Response:
    template = await templates.read_template(session=session, template_id=template_id)
    return _form_page(request, template, ScheduleForm.blank())


@router.post("/templates/{template_id}/schedules/new")
async def create_schedule(
    request: Request, template_id: UUID, actor: Manager, runtime: RuntimeDep, session: SessionDep
) -> Response:
    raw = await request.form()
    form = ScheduleForm.from_form(raw)
    template = await templates.read_template(session=session, template_id=template_id)
    now = runtime.clock.now()
    if raw.get("action") == "preview":
        shown, problems = _preview(form, now)
        return _form_page(
            request,
            template,
            form,
            errors=problems,
            status_code=422 if problems else 200,
            preview=shown,
            preview_errors=problems,
        )
    try:
        data = ScheduleCreate.model_validate(form.payload())
        async with attempt(session):
            created = await service.create_schedule(
                session=session, actor=actor, template_id=template_id, data=data, now=now
            )
    except LocalTimeError as exc:
        return _form_page(
            request, template, form, errors={exc.field: sentence(str(exc))}, status_code=422
        )
    except (ValidationError, ShipyardError) as exc:
        errors, message, status_code = form_failure(exc)
        return _form_page(
            request, template, form, errors=errors, message=message, status_code=status_code
        )
    return RedirectResponse(f"/schedules/{created.id}", status_code=303)


@router.get("/schedules/{schedule_id}/edit")
async def edit_schedule(
    request: Request, schedule_id: UUID, actor: Manager, session: SessionDep
) -> Response:
    schedule = await service.read_schedule(session=session, schedule_id=schedule_id)
    template = await templates.read_template(session=session, template_id=schedule.template_id)
    kinds = {p.name: p.type for p in template.parameters}
    form = ScheduleForm.from_schedule(schedule, kinds)
    return _form_page(request, template, form, schedule=schedule)


@router.post("/schedules/{schedule_id}/edit")
async def update_schedule(
    request: Request, schedule_id: UUID, actor: Manager, runtime: RuntimeDep, session: SessionDep
) -> Response:
    raw = await request.form()
    form = ScheduleForm.from_form(raw)
    schedule = await service.read_schedule(session=session, schedule_id=schedule_id)
    template = await templates.read_template(session=session, template_id=schedule.template_id)
    now = runtime.clock.now()
    if raw.get("action") == "preview":
        shown, problems = _preview(form, now)
        return _form_page(
            request,
            template,
            form,
            errors=problems,
            status_code=422 if problems else 200,
            preview=shown,
            preview_errors=problems,
            schedule=schedule,
        )
    try:
        data = ScheduleUpdate.model_validate(form.update_payload(_stored_secrets(schedule)))
        async with attempt(session):
            await service.update_schedule(
                session=session, actor=actor, schedule_id=schedule_id, data=data, now=now
            )
    except LocalTimeError as exc:
        return _form_page(
            request,
            template,
            form,
            errors={exc.field: sentence(str(exc))},
            status_code=422,
            schedule=schedule,
        )
    except (ValidationError, ShipyardError) as exc:
        errors, message, status_code = form_failure(exc)
        return _form_page(
            request,
            template,
            form,
            errors=errors,
            message=message,
            status_code=status_code,
            schedule=schedule,
        )
    return RedirectResponse(f"/schedules/{schedule_id}", status_code=303)


# --- a schedule's page -----------------------------------------------------------------------


async def _schedule_page(
    request: Request,
    session: SessionDep,
    runtime: RuntimeDep,
    schedule_id: UUID,
    *,
    notice: str | None = None,
) -> Response:
    schedule = await service.read_schedule(session=session, schedule_id=schedule_id)
    template = await templates.read_template(session=session, template_id=schedule.template_id)
    upcoming = (
        await service.next_fire_times(
            session=session, schedule_id=schedule_id, count=PREVIEW_COUNT, now=runtime.clock.now()
        )
        if schedule.enabled
        else None
    )
    fires, _ = await service.list_fires(
        session=session, schedule_id=schedule_id, limit=FIRES_LIMIT, cursor=None
    )
    try:
        fire_local = {f.id: crons.in_zone(f.fire_time, schedule.timezone) for f in fires}
    except ShipyardError:  # a zone gone from the system's tz database: UTC only
        fire_local = {}
    return render(
        request,
        "schedules/detail.html",
        {
            "section": "schedules",
            "schedule": schedule,
            "template": template,
            "preview": upcoming,
            "fires": fires,
            "fire_local": fire_local,
            "notice": notice,
            "overlap_policies": dict(OVERLAP_POLICIES),
            "missed_policies": dict(MISSED_POLICIES),
        },
    )


@router.get("/schedules/{schedule_id}")
async def schedule_page(
    request: Request,
    schedule_id: UUID,
    principal: CurrentUser,
    runtime: RuntimeDep,
    session: SessionDep,
) -> Response:
    return await _schedule_page(request, session, runtime, schedule_id)


@router.post("/schedules/{schedule_id}/pause")
async def pause(schedule_id: UUID, actor: Manager, session: SessionDep) -> Response:
    await service.pause_schedule(session=session, actor=actor, schedule_id=schedule_id)
    return RedirectResponse(f"/schedules/{schedule_id}", status_code=303)


@router.post("/schedules/{schedule_id}/resume")
async def resume(
    schedule_id: UUID, actor: Manager, runtime: RuntimeDep, session: SessionDep
) -> Response:
    await service.resume_schedule(
        session=session, actor=actor, schedule_id=schedule_id, now=runtime.clock.now()
    )
    return RedirectResponse(f"/schedules/{schedule_id}", status_code=303)


@router.post("/schedules/{schedule_id}/delete")
async def delete(schedule_id: UUID, actor: Manager, session: SessionDep) -> Response:
    await service.delete_schedule(session=session, actor=actor, schedule_id=schedule_id)
    return RedirectResponse("/schedules", status_code=303)
