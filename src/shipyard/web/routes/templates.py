"""Templates: list, add and edit (scripts, target, options, environment, CI/CD, parameters), a
template's page with its launch form, preview, runs and roll back, and "Save as template" from
the deployment wizard.

Routes that reach the network (the script catalogue, launch, preview, roll back) call their
flow first and read the page's data afterwards: the request's session opens its transaction
at its first query, so none is open while the flow waits on a Git provider.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any
from uuid import UUID

from fastapi import Query, Request, Response
from fastapi.responses import RedirectResponse
from pydantic import ValidationError
from starlette.datastructures import FormData

from shipyard.accounts.permissions import Permission
from shipyard.accounts.principal import Actor, Principal
from shipyard.deployments import flows as deployment_flows
from shipyard.deployments import pages
from shipyard.deployments import service as deployment_service
from shipyard.deps import ActorDep, CurrentUser, RuntimeDep, SessionDep, acting, attempt
from shipyard.errors import NotFound, ShipyardError
from shipyard.freeze import service as freeze
from shipyard.git import repositories as repo_service
from shipyard.hosts import inventory
from shipyard.hosts.schemas import VariableRead
from shipyard.runtime import Runtime
from shipyard.templates import flows, service
from shipyard.templates.schemas import Preview, TemplateCreate, TemplateRead, TemplateUpdate
from shipyard.web.errors import form_failure, sentence
from shipyard.web.freeze_form import freeze_override
from shipyard.web.inventory_form import variable_rows
from shipyard.web.routes import web_router
from shipyard.web.template_form import (
    PARAMETER_TYPES,
    FormTextError,
    TemplateForm,
    launch_values,
    shown_launch_values,
)
from shipyard.web.templating import render
from shipyard.web.wizard import WizardState

router = web_router()
Manager = Annotated[Actor, acting(Permission.MANAGE_TEMPLATES)]
LIST_LIMIT = 200
RUNS_LIMIT = 50
MORE_ROWS = 3
SECTIONS = ("scripts", "target", "options", "environment", "cicd_steps", "parameters")
# Errors of nested fields shown beside the field of the form that holds them.
FIELD_OF_ERROR = {
    "target.tags": "tags",
    "options.parallelism": "parallelism",
    "options.batch_size": "batch_size",
    "options.batch_percent": "batch_percent",
    "options.max_failure_percent": "max_failure_percent",
    "options.script_timeout_seconds": "script_timeout_seconds",
}


def _may_launch(principal: Principal, template: TemplateRead) -> bool:
    if not principal.can(Permission.RUN_DEPLOYMENTS):
        return False
    return not template.admin_only or principal.can(Permission.LAUNCH_ADMIN_ONLY_TEMPLATES)


# --- the list --------------------------------------------------------------------------------


@router.get("/templates")
async def templates(
    request: Request, principal: CurrentUser, session: SessionDep, runtime: RuntimeDep
) -> Response:
    found, _ = await service.list_templates(session=session, limit=LIST_LIMIT, cursor=None)
    last_runs = await service.last_runs(
        session=session, template_ids=[template.id for template in found]
    )
    repositories, _ = await repo_service.list_repositories(
        session=session, principal=principal, limit=LIST_LIMIT, cursor=None
    )
    groups = await inventory.read_groups(session=session, tenant_id=principal.tenant_id)
    return render(
        request,
        "templates/list.html",
        {
            "section": "templates",
            "templates": found,
            "last_runs": last_runs,
            "repository_names": {r.id: r.full_name for r in repositories},
            "group_names": {g.id: g.name for g in groups},
            # The banner while a freeze window is in force.
            "freeze_active": await freeze.active_windows(
                session=session, tenant_id=principal.tenant_id, at=runtime.clock.now(), count=1
            ),
        },
    )


# --- "Save as template" from the deployment wizard ------------------------------------------


def _from_wizard(state: WizardState, values: Mapping[str, str]) -> dict[str, Any]:
    """The TemplateCreate body of the wizard's choices (its schedule is not part of a template)."""
    body = state.body()
    target = body.get("target") or {"host_ids": body.get("host_ids", [])}
    return {
        "name": values.get("template_name", ""),
        "description": values.get("template_description") or None,
        "repository_id": body.get("repository_id"),
        "ref": body.get("ref"),
        "scripts": body.get("scripts", []),
        "target": target,
        "options": body.get("options", {}),
        "cicd_steps": body.get("cicd_steps", []),
    }


def _wizard_page(
    request: Request,
    state: WizardState,
    values: Mapping[str, str],
    error: ValidationError | ShipyardError | None = None,
    extra: Mapping[str, str] | None = None,
) -> Response:
    errors, message, status_code = form_failure(error, name_taken="template_name_taken")
    if extra:
        errors, status_code = {**errors, **extra}, 422
    if "name" in errors:
        errors["template_name"] = errors.pop("name")
    if "description" in errors:
        errors["template_description"] = errors.pop("description")
    shown = {"template_name", "template_description"}
    return render(
        request,
        "templates/from_wizard.html",
        {
            "section": "deployments",
            "state": state,
            "values": values,
            "errors": errors,
            "other_errors": [(k, v) for k, v in errors.items() if k not in shown],
            "message": message,
        },
        status_code=status_code,
    )


@router.get("/templates/from-wizard")
async def from_wizard_form(request: Request, actor: Manager) -> Response:
    state = WizardState.parse(request.query_params)
    return _wizard_page(request, state, {"template_name": state.get("name")})


@router.post("/templates/from-wizard")
async def from_wizard(request: Request, actor: Manager, session: SessionDep) -> Response:
    form = await request.form()
    state = WizardState.parse(form)
    values = {
        key: str(form.get(key, "")).strip() for key in ("template_name", "template_description")
    }
    try:
        data = TemplateCreate.model_validate(_from_wizard(state, values))
        async with attempt(session):
            created = await service.create_template(session=session, actor=actor, data=data)
    except (ValidationError, ShipyardError) as exc:
        return _wizard_page(request, state, values, exc)
    except ValueError as exc:  # the wizard's CI/CD parameters text
        return _wizard_page(request, state, values, extra={"cicd_steps": sentence(str(exc))})
    return RedirectResponse(f"/templates/{created.id}", status_code=303)


# --- add and edit ----------------------------------------------------------------------------


def _split_errors(errors: Mapping[str, str]) -> tuple[dict[str, str], dict[str, list[Any]]]:
    """Field errors for the form's own fields, and the rest grouped under their section."""
    flat = dict(errors)
    for nested, name in FIELD_OF_ERROR.items():
        if nested in errors:
            flat.setdefault(name, errors[nested])
    sections: dict[str, list[Any]] = {}
    for path, text in errors.items():
        head = path.split(".", 1)[0]
        if head in SECTIONS and path not in FIELD_OF_ERROR:
            sections.setdefault(head, []).append((path, text))
    return flat, sections


async def _form_page(
    request: Request,
    session: SessionDep,
    principal: Principal,
    *,
    template: TemplateRead | None,
    form: TemplateForm,
    error: ValidationError | ShipyardError | None = None,
    catalogue_problem: str | None = None,
    extra_errors: Mapping[str, str] | None = None,
) -> Response:
    errors, message, status_code = form_failure(error, name_taken="template_name_taken")
    if extra_errors:
        errors = {**errors, **extra_errors}
        status_code = 422
    flat, sections = _split_errors(errors)
    repositories, _ = await repo_service.list_repositories(
        session=session, principal=principal, limit=LIST_LIMIT, cursor=None
    )
    stored: Sequence[VariableRead] = template.environment if template else []
    return render(
        request,
        "templates/form.html",
        {
            "section": "templates",
            "template": template,
            "form": form,
            "values": form.values,
            "errors": flat,
            "section_errors": sections,
            "message": message,
            "catalogue_problem": catalogue_problem,
            "repositories": repositories,
            "hosts": await inventory.host_choices(session=session, tenant_id=principal.tenant_id),
            "groups": await inventory.read_groups(session=session, tenant_id=principal.tenant_id),
            "jobs": await pages.wizard_jobs(session=session, principal=principal),
            "parameter_types": PARAMETER_TYPES,
            "variable_rows": variable_rows(stored, form.variable_values),
        },
        status_code=status_code,
    )


async def _catalogue(
    runtime: Runtime, principal: Principal, form: TemplateForm
) -> tuple[TemplateForm, str | None]:
    """The form with the repository's scripts offered (a flow: call before any query)."""
    repository_id = form.values.get("repository_id")
    if not repository_id:
        return form, "Choose a repository first, then show its scripts."
    try:
        choices = await deployment_flows.script_choices(
            runtime=runtime,
            principal=principal,
            repository_id=UUID(repository_id),
            ref=form.values.get("ref") or None,
        )
    except ValueError:
        return form, "Choose a repository first, then show its scripts."
    except ShipyardError as exc:
        return form, "The script catalogue could not be read: " + sentence(exc.message)
    if choices.problem is not None:
        return form, "The script catalogue could not be read: " + sentence(choices.problem.message)
    if choices.catalogue is not None:
        form.with_catalogue(choices.catalogue.scripts)
    return form, None


@router.get("/templates/new")
async def new_template(request: Request, actor: Manager, session: SessionDep) -> Response:
    form = TemplateForm.from_form(FormData())
    return await _form_page(request, session, actor.principal, template=None, form=form)


@router.get("/templates/script-names")
async def script_names(
    request: Request,
    principal: CurrentUser,
    runtime: RuntimeDep,
    repository_id: UUID,
    ref: Annotated[str | None, Query(max_length=255)] = None,
) -> Response:
    """The paths of a repository's scripts, swapped by id into a page that names them by id."""
    # A flow (the catalogue comes from the provider): this route holds no session across it.
    choices = await deployment_flows.script_choices(
        runtime=runtime, principal=principal, repository_id=repository_id, ref=ref or None
    )
    scripts = choices.catalogue.scripts if choices.catalogue else []
    return render(request, "templates/_script_names.html", {"scripts": scripts})


async def _submitted(
    request: Request, runtime: Runtime, actor: Actor
) -> tuple[TemplateForm, str | None, bool]:
    """The form as sent; with "Show the scripts" or "More rows", re-shown (``False``) rather
    than saved."""
    form = TemplateForm.from_form(await request.form())
    action = (await request.form()).get("action")
    if action == "scripts":
        form, problem = await _catalogue(runtime, actor.principal, form)
        return form, problem, False
    if action == "rows":
        form.extra_rows += MORE_ROWS
        return form, None, False
    return form, None, True


@router.post("/templates/new")
async def create_template(
    request: Request, actor: Manager, runtime: RuntimeDep, session: SessionDep
) -> Response:
    form, problem, save = await _submitted(request, runtime, actor)
    if not save:
        return await _form_page(
            request, session, actor.principal, template=None, form=form, catalogue_problem=problem
        )
    try:
        data = TemplateCreate.model_validate(form.payload())
        async with attempt(session):
            created = await service.create_template(session=session, actor=actor, data=data)
    except FormTextError as exc:
        return await _form_page(
            request,
            session,
            actor.principal,
            template=None,
            form=form,
            extra_errors={exc.field: sentence(str(exc))},
        )
    except (ValidationError, ShipyardError) as exc:
        return await _form_page(
            request, session, actor.principal, template=None, form=form, error=exc
        )
    return RedirectResponse(f"/templates/{created.id}", status_code=303)


@router.get("/templates/{template_id}/edit")
async def edit_template(
    request: Request, template_id: UUID, actor: Manager, session: SessionDep
) -> Response:
    template = await service.read_template(session=session, template_id=template_id)
    form = TemplateForm.from_template(template)
    return await _form_page(request, session, actor.principal, template=template, form=form)


@router.post("/templates/{template_id}/edit")
async def update_template(
    request: Request, template_id: UUID, actor: Manager, runtime: RuntimeDep, session: SessionDep
) -> Response:
    form, problem, save = await _submitted(request, runtime, actor)
    template = await service.read_template(session=session, template_id=template_id)
    if not save:
        return await _form_page(
            request,
            session,
            actor.principal,
            template=template,
            form=form,
            catalogue_problem=problem,
        )
    try:
        data = TemplateUpdate.model_validate(form.payload())
        async with attempt(session):
            await service.update_template(
                session=session, actor=actor, template_id=template_id, data=data
            )
    except FormTextError as exc:
        return await _form_page(
            request,
            session,
            actor.principal,
            template=template,
            form=form,
            extra_errors={exc.field: sentence(str(exc))},
        )
    except (ValidationError, ShipyardError) as exc:
        return await _form_page(
            request, session, actor.principal, template=template, form=form, error=exc
        )
    return RedirectResponse(f"/templates/{template_id}", status_code=303)


@router.post("/templates/{template_id}/delete")
async def delete_template(template_id: UUID, actor: Manager, session: SessionDep) -> Response:
    await service.delete_template(session=session, actor=actor, template_id=template_id)
    return RedirectResponse("/templates", status_code=303)


# --- a template's page: definition, launch, preview, runs -----------------------------------


async def _template_page(
    request: Request,
    session: SessionDep,
    principal: Principal,
    template_id: UUID,
    *,
    script_paths: Mapping[str, str] | None = None,
    form: FormData | None = None,
    preview: Preview | None = None,
    error: ShipyardError | None = None,
) -> Response:
    template = await service.read_template(session=session, template_id=template_id)
    runs, _ = await service.list_runs(
        session=session, template_id=template_id, limit=RUNS_LIMIT, cursor=None
    )
    errors, message, status_code = form_failure(error)
    parameter_fields = {f"parameters.{p.name}" for p in template.parameters}
    other_errors = [(path, text) for path, text in errors.items() if path not in parameter_fields]
    if preview is not None:
        script_paths = {str(s.id): s.path for s in preview.scripts}
    last_success = next(
        (
            run
            for run in runs
            if template.last_success and run.id == template.last_success.deployment_id
        ),
        None,
    )
    # Names for the definition, read only for what the template refers to.
    tenant_id = principal.tenant_id
    repository = (
        await repo_service.read_repository(
            session=session, principal=principal, repository_id=template.repository_id
        )
        if template.repository_id
        else None
    )
    target = template.target
    groups = (
        await inventory.read_groups(session=session, tenant_id=tenant_id)
        if target.group_ids
        else []
    )
    hosts = (
        await inventory.host_choices(session=session, tenant_id=tenant_id)
        if target.host_ids
        else []
    )
    jobs = (
        await pages.wizard_jobs(session=session, principal=principal) if template.cicd_steps else []
    )
    return render(
        request,
        "templates/detail.html",
        {
            "section": "templates",
            "template": template,
            "runs": runs,
            "last_success": last_success,
            "may_launch": _may_launch(principal, template),
            "errors": errors,
            "other_errors": other_errors,
            "message": message,
            "launch_shown": shown_launch_values(template.parameters, form),
            "preview": preview,
            "script_paths": script_paths or {},
            "repository_name": repository.full_name if repository else None,
            "group_names": {g.id: g.name for g in groups},
            "host_names": dict(hosts),
            "job_names": {str(job.id): job.name for job in jobs},
        },
        status_code=status_code,
    )


@router.get("/templates/{template_id}")
async def template_page(
    request: Request, template_id: UUID, principal: CurrentUser, session: SessionDep
) -> Response:
    return await _template_page(request, session, principal, template_id)


@router.post("/templates/{template_id}/preview")
async def preview(
    request: Request, template_id: UUID, actor: ActorDep, runtime: RuntimeDep, session: SessionDep
) -> Response:
    form = await request.form()
    try:
        shown = await flows.preview_template(
            runtime=runtime, actor=actor, template_id=template_id, values=launch_values(form)
        )
    except ShipyardError as exc:
        return await _template_page(
            request, session, actor.principal, template_id, form=form, error=exc
        )
    return await _template_page(
        request, session, actor.principal, template_id, form=form, preview=shown
    )


@router.post("/templates/{template_id}/launch")
async def launch(
    request: Request, template_id: UUID, actor: ActorDep, runtime: RuntimeDep, session: SessionDep
) -> Response:
    form = await request.form()
    try:
        deployment = await flows.launch_template(
            runtime=runtime,
            actor=actor,
            template_id=template_id,
            values=launch_values(form),
            trigger="manual",
            freeze_override=freeze_override(form),
        )
    except ShipyardError as exc:
        return await _template_page(
            request, session, actor.principal, template_id, form=form, error=exc
        )
    return RedirectResponse(f"/deployments/{deployment.id}", status_code=303)


@router.get("/templates/{template_id}/rollback/{deployment_id}")
async def rollback_confirm(
    request: Request,
    template_id: UUID,
    deployment_id: UUID,
    principal: CurrentUser,
    session: SessionDep,
) -> Response:
    template = await service.read_template(session=session, template_id=template_id)
    found = await deployment_service.get_deployment(session=session, deployment_id=deployment_id)
    if found.template_id != template.id:
        raise NotFound("that run is not a run of this template", code="not_found")
    run = service.run_read(found)
    last = template.last_success
    return render(
        request,
        "templates/rollback.html",
        {
            "section": "templates",
            "template": template,
            "run": run,
            "last_success": last,
        },
    )


@router.post("/templates/{template_id}/rollback/{deployment_id}")
async def rollback(
    request: Request,
    template_id: UUID,
    deployment_id: UUID,
    actor: ActorDep,
    runtime: RuntimeDep,
    session: SessionDep,
) -> Response:
    try:
        deployment = await flows.rollback_template(
            runtime=runtime,
            actor=actor,
            template_id=template_id,
            deployment_id=deployment_id,
            trigger="manual",
        )
    except ShipyardError as exc:
        return await _template_page(request, session, actor.principal, template_id, error=exc)
    return RedirectResponse(f"/deployments/{deployment.id}", status_code=303)
