"""Templates in the database: one function per user action (with its audit entry), the reads,
and the plan of a launch. A session, never the network: :mod:`shipyard.templates.flows`
resolves the ref and reads the script catalogue outside any transaction.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from pydantic import ValidationError as PydanticValidationError
from sqlalchemy import Select, select
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.ext.asyncio import AsyncSession

from shipyard.accounts.audit import audit
from shipyard.accounts.permissions import Permission
from shipyard.accounts.principal import Actor
from shipyard.cicd.models import CicdJob
from shipyard.cicd.schemas import CicdStepRequest
from shipyard.db import tenant_clause
from shipyard.deployments import service as deployments
from shipyard.deployments.models import Deployment
from shipyard.deployments.schemas import (
    DeploymentCreate,
    ExecutionOptions,
    ScriptChoice,
)
from shipyard.errors import Conflict, NotFound, ValidationFailed
from shipyard.git.models import Repository
from shipyard.hosts.inventory import resolve_target
from shipyard.hosts.models import Host
from shipyard.hosts.schemas import Target, Variable, VariableRead
from shipyard.pagination import paginate
from shipyard.templates import parameters as params
from shipyard.templates.models import Template
from shipyard.templates.schemas import (
    ApprovalSettings,
    LastSuccess,
    TemplateCreate,
    TemplateRead,
    TemplateRun,
    TemplateUpdate,
)


def _secret_environment(template: Template) -> dict[str, str]:
    if not template.secret_environment:
        return {}
    values: dict[str, str] = json.loads(template.secret_environment)
    return values


def to_read(template: Template, *, last_success: Deployment | None = None) -> TemplateRead:
    """The template as the API shows it: secret environment values never leave."""
    environment = [
        VariableRead(name=name, secret=False, value=value)
        for name, value in template.environment.items()
    ] + [VariableRead(name=name, secret=True, value=None) for name in _secret_environment(template)]
    return TemplateRead(
        id=template.id,
        name=template.name,
        description=template.description,
        repository_id=template.repository_id,
        ref=template.ref,
        scripts=[ScriptChoice.model_validate(item) for item in template.scripts],
        target=Target.model_validate(template.target),
        options=ExecutionOptions.model_validate(template.options),
        environment=sorted(environment, key=lambda variable: variable.name),
        cicd_steps=list(template.cicd_steps),
        parameters=[params.Parameter.model_validate(item) for item in template.parameters],
        admin_only=template.admin_only,
        approval=approval_settings(template),
        created_by=template.created_by,
        created_at=template.created_at,
        updated_at=template.updated_at,
        last_success=(
            LastSuccess(
                deployment_id=last_success.id,
                commit_sha=last_success.commit_sha,
                completed_at=last_success.completed_at,
            )
            if last_success is not None
            else None
        ),
    )


def approval_settings(template: Template) -> ApprovalSettings:
    return ApprovalSettings(
        required=template.approval_required,
        approvals_needed=template.approvals_needed,
        approver_role=template.approver_role,
        allow_self_approval=template.allow_self_approval,
        timeout_minutes=template.approval_timeout_minutes,
    )


def _store_approval(template: Template, approval: ApprovalSettings) -> None:
    template.approval_required = approval.required
    template.approvals_needed = approval.approvals_needed
    template.approver_role = approval.approver_role
    template.allow_self_approval = approval.allow_self_approval
    template.approval_timeout_minutes = approval.timeout_minutes


def approval_policy(template: Template) -> deployments.ApprovalPolicy | None:
    """What a run launched now waits for (None: the template requires no approval)."""
    if not template.approval_required:
        return None
    return deployments.ApprovalPolicy(
        approvals_needed=template.approvals_needed,
        timeout_minutes=template.approval_timeout_minutes,
    )


async def get_template(
    *, session: AsyncSession, template_id: UUID, for_update: bool = False
) -> Template:
    statement = select(Template).where(
        Template.id == template_id, tenant_clause(session, Template.tenant_id)
    )
    if for_update:
        statement = statement.with_for_update()
    template = await session.scalar(statement)
    if template is None:
        raise NotFound("template not found", code="template_not_found")
    return template


async def last_successes(
    *, session: AsyncSession, template_ids: Sequence[UUID]
) -> dict[UUID, Deployment]:
    """The newest successful run of each template (one query for a whole list)."""
    if not template_ids:
        return {}
    rows = await session.scalars(
        select(Deployment)
        .where(
            Deployment.template_id.in_(template_ids),
            Deployment.status == "success",
            tenant_clause(session, Deployment.tenant_id),
        )
        .order_by(Deployment.template_id, Deployment.completed_at.desc().nulls_last())
        .ext(distinct_on(Deployment.template_id))
    )
    return {row.template_id: row for row in rows if row.template_id is not None}


async def last_runs(
    *, session: AsyncSession, template_ids: Sequence[UUID]
) -> dict[UUID, TemplateRun]:
    """The newest run of each template, whatever its status (one query for a whole list)."""
    if not template_ids:
        return {}
    rows = await session.scalars(
        select(Deployment)
        .where(
            Deployment.template_id.in_(template_ids),
            tenant_clause(session, Deployment.tenant_id),
        )
        .order_by(Deployment.template_id, Deployment.created_at.desc(), Deployment.id.desc())
        .ext(distinct_on(Deployment.template_id))
    )
    return {row.template_id: run_read(row) for row in rows if row.template_id is not None}


async def read_template(*, session: AsyncSession, template_id: UUID) -> TemplateRead:
    """One template with its last successful run."""
    template = await get_template(session=session, template_id=template_id)
    found = await last_successes(session=session, template_ids=[template.id])
    return to_read(template, last_success=found.get(template.id))


async def find_template(*, session: AsyncSession, name_or_id: str) -> TemplateRead:
    """A template by id or, failing that, by its name (what ``shipyard run NAME`` sends)."""
    try:
        return await read_template(session=session, template_id=UUID(name_or_id))
    except (ValueError, NotFound):
        pass
    template = await session.scalar(
        select(Template).where(
            Template.name == name_or_id, tenant_clause(session, Template.tenant_id)
        )
    )
    if template is None:
        raise NotFound(f"no template named {name_or_id!r}", code="template_not_found")
    found = await last_successes(session=session, template_ids=[template.id])
    return to_read(template, last_success=found.get(template.id))


async def list_templates(
    *,
    session: AsyncSession,
    limit: int,
    cursor: str | None,
    name: str | None = None,
    repository_id: UUID | None = None,
) -> tuple[list[TemplateRead], str | None]:
    """A page of templates, newest first; ``name`` finds one by its exact name."""
    statement: Select[Any] = select(Template).where(tenant_clause(session, Template.tenant_id))
    if name is not None:
        statement = statement.where(Template.name == name)
    if repository_id is not None:
        statement = statement.where(Template.repository_id == repository_id)
    rows, next_cursor = await paginate(
        session,
        statement,
        created_at=Template.created_at,
        row_id=Template.id,
        limit=limit,
        cursor=cursor,
    )
    found = await last_successes(session=session, template_ids=[row.id for row in rows])
    return [to_read(row, last_success=found.get(row.id)) for row in rows], next_cursor


# --- checks on save ----------------------------------------------------------------------------


async def _check_name_free(
    session: AsyncSession, tenant_id: UUID, name: str, except_id: UUID | None = None
) -> None:
    statement = select(Template.id).where(Template.tenant_id == tenant_id, Template.name == name)
    if except_id is not None:
        statement = statement.where(Template.id != except_id)
    if await session.scalar(statement) is not None:
        raise Conflict(f"a template named {name!r} already exists", code="template_name_taken")


async def _check_repository(session: AsyncSession, repository_id: UUID | None) -> None:
    if repository_id is None:
        return
    found = await session.scalar(
        select(Repository.id).where(
            Repository.id == repository_id, tenant_clause(session, Repository.tenant_id)
        )
    )
    if found is None:
        raise deployments.unknown_repository()


async def _check_target(session: AsyncSession, tenant_id: UUID, target: Target) -> None:
    try:
        await resolve_target(session=session, tenant_id=tenant_id, target=target)
    except ValidationFailed as exc:
        raise ValidationFailed(exc.message, field=f"target.{exc.field}", code=exc.code) from exc


async def _check_cicd_steps(
    session: AsyncSession, tenant_id: UUID, steps: Sequence[CicdStepRequest]
) -> None:
    wanted = [step.cicd_job_id for step in steps]
    if not wanted:
        return
    known = set(
        await session.scalars(
            select(CicdJob.id).where(CicdJob.tenant_id == tenant_id, CicdJob.id.in_(wanted))
        )
    )
    for index, job_id in enumerate(wanted):
        if job_id not in known:
            raise ValidationFailed(
                f"no CI/CD job {job_id} in your tenant",
                field=f"cicd_steps.{index}.cicd_job_id",
                code="unknown_reference",
            )


def _check_scripts(template: Template) -> None:
    script_ids = [item["script_id"] for item in template.scripts]
    if script_ids and template.repository_id is None:
        raise ValidationFailed(
            "scripts come from a repository: give repository_id", field="repository_id"
        )
    if len(set(script_ids)) != len(script_ids):
        raise ValidationFailed("a script is listed twice", field="scripts")
    parameters = [params.Parameter.model_validate(item) for item in template.parameters]
    params.check_definitions(
        parameters,
        environment_names=[*template.environment, *_secret_environment(template)],
    )
    params.check_arguments([item.get("arguments", []) for item in template.scripts], parameters)


def _store_environment(template: Template, variables: Sequence[Variable]) -> None:
    """Store exactly ``variables``; a secret sent without a value keeps the stored one (the
    keep rule of inventory variables: write-only values are never sent back to be re-sent)."""
    stored = _secret_environment(template)
    plain: dict[str, str] = {}
    secret: dict[str, str] = {}
    for index, variable in enumerate(variables):
        value = variable.value
        if value is None:
            if not variable.secret or variable.name not in stored:
                raise ValidationFailed(
                    f"variable {variable.name} needs a value", field=f"environment.{index}.value"
                )
            value = stored[variable.name]
        (secret if variable.secret else plain)[variable.name] = value
    template.environment = plain
    template.secret_environment = json.dumps(secret) if secret else None


def _dump(items: Sequence[Any]) -> list[dict[str, Any]]:
    return [item.model_dump(mode="json") for item in items]


# --- actions -----------------------------------------------------------------------------------


async def create_template(
    *, session: AsyncSession, actor: Actor, data: TemplateCreate
) -> TemplateRead:
    """Check and store a template (script ids are checked against the catalogue at launch)."""
    tenant_id = actor.tenant_id
    await _check_name_free(session, tenant_id, data.name)
    await _check_repository(session, data.repository_id)
    await _check_target(session, tenant_id, data.target)
    await _check_cicd_steps(session, tenant_id, data.cicd_steps)
    template = Template(
        tenant_id=tenant_id,
        name=data.name,
        description=data.description,
        repository_id=data.repository_id,
        ref=data.ref,
        scripts=_dump(data.scripts),
        target=data.target.model_dump(mode="json"),
        options=data.options.model_dump(mode="json"),
        cicd_steps=_dump(data.cicd_steps),
        parameters=_dump(data.parameters),
        admin_only=data.admin_only,
        created_by=actor.user_id,
        environment={},
    )
    _store_environment(template, data.environment)
    _store_approval(template, data.approval)
    _check_scripts(template)
    session.add(template)
    await session.flush()
    await session.refresh(template)
    await _audit(session, actor, "template.create", template, {"name": template.name})
    return to_read(template)


async def update_template(
    *, session: AsyncSession, actor: Actor, template_id: UUID, data: TemplateUpdate
) -> TemplateRead:
    """Change the fields sent; lists replace the stored ones."""
    template = await get_template(session=session, template_id=template_id, for_update=True)
    tenant_id = actor.tenant_id
    fields = data.model_fields_set
    if data.name is not None and data.name != template.name:
        await _check_name_free(session, tenant_id, data.name, except_id=template.id)
        template.name = data.name
    if "description" in fields:
        template.description = data.description
    if "repository_id" in fields:
        await _check_repository(session, data.repository_id)
        template.repository_id = data.repository_id
    if "ref" in fields:
        template.ref = data.ref
    if data.scripts is not None:
        template.scripts = _dump(data.scripts)
    if data.target is not None:
        await _check_target(session, tenant_id, data.target)
        template.target = data.target.model_dump(mode="json")
    if data.options is not None:
        template.options = data.options.model_dump(mode="json")
    if data.environment is not None:
        _store_environment(template, data.environment)
    if data.cicd_steps is not None:
        await _check_cicd_steps(session, tenant_id, data.cicd_steps)
        template.cicd_steps = _dump(data.cicd_steps)
    if data.parameters is not None:
        template.parameters = _dump(data.parameters)
    if data.admin_only is not None:
        template.admin_only = data.admin_only
    if data.approval is not None:
        _store_approval(template, data.approval)
    _check_scripts(template)
    await session.flush()
    await session.refresh(template)
    await _audit(session, actor, "template.update", template, {"fields": sorted(fields)})
    found = await last_successes(session=session, template_ids=[template.id])
    return to_read(template, last_success=found.get(template.id))


async def delete_template(*, session: AsyncSession, actor: Actor, template_id: UUID) -> None:
    """Delete a template; its runs stay (their template_id becomes null)."""
    template = await get_template(session=session, template_id=template_id, for_update=True)
    await session.delete(template)
    await session.flush()
    await _audit(session, actor, "template.delete", template, {"name": template.name})


async def _audit(
    session: AsyncSession, actor: Actor, action: str, template: Template, details: dict[str, Any]
) -> None:
    await audit(
        session,
        actor=actor,
        action=action,
        resource_type="template",
        resource_id=template.id,
        details=details,
    )


# --- runs --------------------------------------------------------------------------------------


def run_read(deployment: Deployment) -> TemplateRun:
    duration = (
        (deployment.completed_at - deployment.started_at).total_seconds()
        if deployment.completed_at and deployment.started_at
        else None
    )
    return TemplateRun.model_validate(
        {
            "id": deployment.id,
            "name": deployment.name,
            "status": deployment.status,
            "ref": deployment.ref,
            "commit_sha": deployment.commit_sha,
            "trigger": deployment.trigger,
            "launched_by": deployment.launched_by,
            "parameters": deployment.parameters,
            "rerun_of": deployment.rerun_of,
            "created_at": deployment.created_at,
            "started_at": deployment.started_at,
            "completed_at": deployment.completed_at,
            "duration_seconds": duration,
        }
    )


async def list_runs(
    *, session: AsyncSession, template_id: UUID, limit: int, cursor: str | None
) -> tuple[list[TemplateRun], str | None]:
    """The template's runs, newest first."""
    await get_template(session=session, template_id=template_id)
    rows, next_cursor = await deployments.list_deployments(
        session=session, limit=limit, cursor=cursor, template_id=template_id
    )
    return [run_read(row) for row in rows], next_cursor


# --- launching ---------------------------------------------------------------------------------


@dataclass
class LaunchPlan:
    """What a launch of a template will create, before its ref is resolved."""

    template_id: UUID
    repository_id: UUID | None
    ref: str | None
    request: DeploymentCreate
    values: params.LaunchValues
    # (id, name) of the hosts the target means now, in run order.
    hosts: list[tuple[UUID, str]]
    # Set by a roll back: the earlier run's commit; else resolved from ``ref`` at launch.
    commit_sha: str | None = None
    audit_action: str = "template.launch"
    # The template requires approval: its runs wait in pending_approval.
    approval: deployments.ApprovalPolicy | None = None

    def launch(self, commit_sha: str | None) -> deployments.Launch:
        return deployments.Launch(
            template_id=self.template_id,
            parameters=self.values.shown,
            commit_sha=commit_sha,
            audit_action=self.audit_action,
            approval=self.approval,
        )


def _request(**fields: Any) -> DeploymentCreate:
    """The deployment request of a launch; what the deployment rules refuse is a 422 naming it.

    Rendered arguments can outgrow the argument limit (a long text parameter in ``{{ }}``), and
    a stored definition can predate today's rules: never a 500.
    """
    try:
        return DeploymentCreate(**fields)
    except PydanticValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"]) or "parameters"
        message = str(error["msg"]).removeprefix("Value error, ")
        raise ValidationFailed(f"{where}: {message}", field=where) from exc


def _check_launcher(actor: Actor, template: Template) -> None:
    actor.require(Permission.RUN_DEPLOYMENTS)
    if template.admin_only:
        actor.require(Permission.LAUNCH_ADMIN_ONLY_TEMPLATES)


async def _host_names(
    session: AsyncSession, tenant_id: UUID, target: Target
) -> list[tuple[UUID, str]]:
    host_ids = await resolve_target(session=session, tenant_id=tenant_id, target=target)
    rows = await session.execute(
        select(Host.id, Host.name).where(Host.tenant_id == tenant_id, Host.id.in_(host_ids))
    )
    names = {host_id: name for host_id, name in rows}
    return [(host_id, names[host_id]) for host_id in host_ids if host_id in names]


@dataclass(frozen=True)
class PreparedLaunch:
    """A template's part of every launch of it (read and validated once): a trigger's batch
    plans all its fires of one template from one of these."""

    template_id: UUID
    name: str
    description: str | None
    repository_id: UUID | None
    ref: str | None
    scripts: list[dict[str, Any]]
    parameters: list[params.Parameter]
    # The template's own environment: name -> secret, and the values.
    environment: dict[str, bool]
    env_values: dict[str, str]
    target: Target
    options: ExecutionOptions
    cicd_steps: list[CicdStepRequest]
    approval: deployments.ApprovalPolicy | None = None


def prepare_launch(template: Template) -> PreparedLaunch:
    secret_environment = _secret_environment(template)
    return PreparedLaunch(
        template_id=template.id,
        name=template.name,
        description=template.description,
        repository_id=template.repository_id,
        ref=template.ref,
        scripts=list(template.scripts),
        parameters=[params.Parameter.model_validate(item) for item in template.parameters],
        environment=dict.fromkeys(template.environment, False)
        | dict.fromkeys(secret_environment, True),
        env_values={**template.environment, **secret_environment},
        target=Target.model_validate(template.target),
        options=ExecutionOptions.model_validate(template.options),
        cicd_steps=[CicdStepRequest.model_validate(step) for step in template.cicd_steps],
        approval=approval_policy(template),
    )


def plan_request(
    prepared: PreparedLaunch, values: Mapping[str, Any]
) -> tuple[DeploymentCreate, params.LaunchValues]:
    """The deployment request of a launch with ``values`` (checked: ValidationFailed naming
    ``parameters.<name>`` or the request's field)."""
    checked = params.check_launch(prepared.parameters, values, masked=deployments.MASKED)
    environment = dict(prepared.environment)
    env_values = dict(prepared.env_values)
    for name, value in checked.plain.items():
        environment[name], env_values[name] = False, value
    for name, value in checked.secret.items():
        environment[name], env_values[name] = True, value
    request = _request(
        name=prepared.name,
        description=prepared.description,
        repository_id=prepared.repository_id,
        ref=prepared.ref,
        # Plain data, so the deployment rules check it all and name what they refuse.
        scripts=[
            {
                "script_id": item["script_id"],
                "arguments": params.render(item.get("arguments", []), checked.plain),
            }
            for item in prepared.scripts
        ],
        target=prepared.target,
        environment=[
            {"name": name, "value": env_values[name], "secret": secret}
            for name, secret in environment.items()
        ],
        options=prepared.options,
        cicd_steps=prepared.cicd_steps,
    )
    return request, checked


async def launch_plan(
    *, session: AsyncSession, actor: Actor, template_id: UUID, values: Mapping[str, Any]
) -> LaunchPlan:
    """Check the caller may launch it and the values; the deployment request it makes."""
    template = await get_template(session=session, template_id=template_id)
    _check_launcher(actor, template)
    prepared = prepare_launch(template)
    request, checked = plan_request(prepared, values)
    return LaunchPlan(
        template_id=template.id,
        repository_id=template.repository_id,
        ref=template.ref,
        request=request,
        values=checked,
        hosts=await _host_names(session, actor.tenant_id, prepared.target),
        approval=prepared.approval,
    )


async def rollback_plan(
    *, session: AsyncSession, actor: Actor, template_id: UUID, deployment_id: UUID
) -> LaunchPlan:
    """A launch with the commit and parameter values of an earlier successful run.

    A secret value comes from that run's encrypted environment (the run recorded it as
    ``***``); a parameter removed from the template since is left out.
    """
    template = await get_template(session=session, template_id=template_id)
    _check_launcher(actor, template)
    try:
        source = await deployments.get_deployment(session=session, deployment_id=deployment_id)
    except NotFound as exc:
        raise ValidationFailed("no such run", field="deployment_id") from exc
    if source.template_id != template.id:
        raise ValidationFailed("that run is not a run of this template", field="deployment_id")
    if source.status != "success" or not source.commit_sha:
        raise ValidationFailed(
            f"only a successful run can be rolled back to (that run is {source.status})",
            field="deployment_id",
            code="not_successful",
        )
    current = {item["name"]: item["type"] for item in template.parameters}
    stored_secrets = deployments.secret_environment(source)
    values: dict[str, Any] = {}
    for name, value in source.parameters.items():
        if name not in current:
            continue
        if current[name] == "secret":
            if value == deployments.MASKED and name in stored_secrets:
                values[name] = stored_secrets[name]
            continue
        values[name] = value
    plan = await launch_plan(session=session, actor=actor, template_id=template_id, values=values)
    plan.commit_sha = source.commit_sha
    plan.audit_action = "template.rollback"
    return plan
