"""The deployment wizard: repository and ref → scripts → hosts → schedule and options → review."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import Query, Request, Response
from fastapi.responses import RedirectResponse
from pydantic import ValidationError

from shipyard.accounts.permissions import Permission
from shipyard.accounts.principal import Actor
from shipyard.deployments import flows, pages
from shipyard.deployments.schemas import DeploymentCreate
from shipyard.deps import RuntimeDep, SessionDep, acting
from shipyard.errors import ShipyardError
from shipyard.git import repositories as repo_service
from shipyard.hosts.models import HOST_STATUSES
from shipyard.runtime import Runtime
from shipyard.web.errors import field_errors, sentence
from shipyard.web.freeze_form import freeze_override
from shipyard.web.routes import web_router
from shipyard.web.templating import render
from shipyard.web.wizard import STEPS, WizardState

router = web_router()
Runner = Annotated[Actor, acting(Permission.RUN_DEPLOYMENTS)]
LIST_LIMIT = 200
STEP_OF_FIELD = (
    ("scripts", "scripts"),
    ("script_ids", "scripts"),
    ("host_ids", "hosts"),
    ("target", "hosts"),
    ("group_ids", "hosts"),
    ("tags", "hosts"),
    ("schedule", "options"),
    ("scheduled_time", "options"),
    ("options", "options"),
    ("cicd_steps", "options"),
)


def step_of(field: str) -> str:
    for prefix, step in STEP_OF_FIELD:
        if field == prefix or field.startswith(prefix + "."):
            return step
    return "source"


def _page(request: Request, step: str, state: WizardState, **extra: Any) -> Response:
    context: dict[str, Any] = {
        "section": "deployments",
        "step": step,
        "steps": STEPS,
        "state": state,
    }
    status_code = int(extra.pop("status_code", 200))
    context.update(extra)
    return render(request, "deployments/wizard.html", context, status_code=status_code)


@router.get("/deployments/new")
async def source(request: Request, actor: Runner, session: SessionDep) -> Response:
    state = WizardState.parse(request.query_params)
    repositories, _ = await repo_service.list_repositories(
        session=session, principal=actor.principal, limit=LIST_LIMIT, cursor=None
    )
    return _page(request, "source", state, repositories=repositories)


@router.get("/deployments/new/scripts")
async def scripts(
    request: Request,
    actor: Runner,
    runtime: RuntimeDep,
    repository_id: UUID,
    move: Annotated[str, Query(max_length=60)] = "",
) -> Response:
    state = WizardState.parse(request.query_params)
    if move:
        state.move(move)
    # A flow (branches and catalogue come from the provider): no session is held across it.
    choices = await flows.script_choices(
        runtime=runtime,
        principal=actor.principal,
        repository_id=repository_id,
        ref=state.get("ref") or None,
    )
    known = {script.id: script for script in choices.catalogue.scripts} if choices.catalogue else {}
    return _page(
        request,
        "scripts",
        state,
        repository=choices.repository,
        catalogue=choices.catalogue,
        # The run order first (a script not at this ref shows as such), then the rest to add.
        chosen=[(script_id, known.get(script_id)) for script_id in state.script_ids],
        offered=[script for script in known.values() if script.id not in state.script_ids],
        branches=choices.branches,
        message=sentence(choices.problem.message) if choices.problem else None,
    )


@router.get("/deployments/new/hosts")
async def hosts(
    request: Request,
    actor: Runner,
    session: SessionDep,
    search: Annotated[str, Query(max_length=200)] = "",
    status: Annotated[str, Query(max_length=30)] = "",
) -> Response:
    state = WizardState.parse(request.query_params)
    view = await pages.wizard_hosts(
        session=session,
        principal=actor.principal,
        status=status if status in HOST_STATUSES else None,
        search=search.strip() or None,
    )
    shown_ids = {host.id for host in view.hosts}
    return _page(
        request,
        "hosts",
        state,
        **view.context(),
        hidden_selected=[host_id for host_id in state.host_ids if host_id not in shown_ids],
        search=search,
        status_filter=status,
        statuses=HOST_STATUSES,
    )


@router.get("/deployments/new/options")
async def options(request: Request, actor: Runner, session: SessionDep) -> Response:
    state = WizardState.parse(request.query_params)
    jobs = await pages.wizard_jobs(session=session, principal=actor.principal)
    return _page(request, "options", state, jobs=jobs)


async def _review(
    request: Request,
    actor: Actor,
    runtime: Runtime,
    state: WizardState,
    *,
    errors: dict[str, str] | None = None,
    message: str | None = None,
    status_code: int = 200,
) -> Response:
    if errors is None:
        errors = {}
        try:
            DeploymentCreate.model_validate(state.body())
        except ValidationError as exc:
            errors = field_errors(exc)
        except ValueError as exc:
            errors = {"cicd_steps": sentence(str(exc))}
    view = await pages.wizard_review(
        runtime=runtime,
        principal=actor.principal,
        repository_id=state.get("repository_id"),
        ref=state.get("ref") or None,
        scripts=[(sid, state.arguments.get(sid, "")) for sid in state.script_ids],
        target={
            "host_ids": state.host_ids,
            "group_ids": state.group_ids,
            "tags": state.tags,
        },
        cicd_job_ids=[state.get(f"cicd_{stage}") for stage in ("before", "after")],
    )
    if view.repository_unknown:
        errors.setdefault("repository_id", "Choose a repository of your team.")
    if view.target_problem:
        errors.setdefault("target", sentence(view.target_problem))
    by_step: dict[str, list[str]] = {}
    for field, text in errors.items():
        by_step.setdefault(step_of(field), []).append(f"{field}: {text}" if field else text)
    return _page(
        request,
        "review",
        state,
        **view.context(),
        errors_by_step=by_step,
        message=message,
        scheduled_time=_safe_time(state),
        status_code=status_code,
    )


def _safe_time(state: WizardState) -> Any:
    try:
        return state.scheduled_time()
    except ValueError:
        return None


@router.get("/deployments/new/review")
async def review(request: Request, actor: Runner, runtime: RuntimeDep) -> Response:
    # Reads the script catalogue (cached) to name the scripts: no session is held across it.
    return await _review(request, actor, runtime, WizardState.parse(request.query_params))


@router.post("/deployments/new")
async def create(request: Request, actor: Runner, runtime: RuntimeDep) -> Response:
    form = await request.form()
    state = WizardState.parse(form)
    try:
        data = DeploymentCreate.model_validate(state.body())
    except ValidationError as exc:
        return await _review(
            request, actor, runtime, state, errors=field_errors(exc), status_code=422
        )
    except ValueError as exc:
        return await _review(
            request,
            actor,
            runtime,
            state,
            errors={"cicd_steps": sentence(str(exc))},
            status_code=422,
        )
    try:
        # An admin's override of a freeze window in force, with its reason (review step).
        data = data.model_copy(update={"freeze_override": freeze_override(form)})
        # A flow (it reads the script catalogue): this route holds no session across it.
        deployment = await flows.create_deployment(
            runtime=runtime, actor=actor, data=data, trigger="manual"
        )
    except ShipyardError as exc:
        return await _review(
            request,
            actor,
            runtime,
            state,
            errors=field_errors(exc),
            message=sentence(exc.message),
            status_code=exc.status_code,
        )
    return RedirectResponse(f"/deployments/{deployment.id}", status_code=303)
