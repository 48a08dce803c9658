"""Deployments in the database: one function per user action (with its audit entry) and reads.

Every function here takes a session and never calls the network. Creating a deployment needs
the repository's script catalogue, which is read over the network: :mod:`shipyard.deployments.flows`
reads it outside any transaction and hands the ids it found to :func:`create_deployment`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from pydantic import Field, TypeAdapter
from sqlalchemy import (
    DateTime,
    Select,
    Text,
    Uuid,
    cast,
    delete,
    func,
    insert,
    literal_column,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnClause

from shipyard.accounts.audit import audit
from shipyard.accounts.models import ApiToken
from shipyard.accounts.permissions import Permission
from shipyard.accounts.principal import Actor, Principal
from shipyard.cicd.models import DeploymentCicdMapping
from shipyard.cicd.schemas import CicdStepRequest, MappingRead
from shipyard.cicd.service import list_mappings
from shipyard.cicd.steps import prepare_steps
from shipyard.config import Settings
from shipyard.db import session_keyring, tenant_clause
from shipyard.deployments.events import emit_deployment_event
from shipyard.deployments.logs import notify_deployment
from shipyard.deployments.models import (
    FINAL_DEPLOYMENT_STATUSES,
    Deployment,
    DeploymentLog,
    DeploymentScript,
)
from shipyard.deployments.schemas import (
    ApprovalDecision,
    DeploymentCreate,
    DeploymentLogRead,
    DeploymentRead,
    DeploymentUpdate,
    ExecutionOptions,
    ScriptChoice,
    stored_environment,
)
from shipyard.errors import Conflict, NotFound, ValidationFailed
from shipyard.freeze import service as freeze
from shipyard.git.models import Repository
from shipyard.hosts.inventory import resolve_target
from shipyard.hosts.models import Host
from shipyard.hosts.schemas import Target
from shipyard.jobs import cancel_job, enqueue, enqueue_many, reschedule_waiting_job
from shipyard.notifications.events import Event, emit
from shipyard.pagination import cut_page, decode_cursor, page_of, paginate

RUN_TASK = "deployments:run_deployment"
MASKED = "***"
# A run not started yet: its job waits in the queue (cancel or delete takes it off).
WAITING_STATUSES = ("pending", "scheduled", "pending_approval")


@dataclass(frozen=True)
class ApprovalPolicy:
    """What a run of a template that requires approval waits for (the template's settings at
    launch): who may decide is read from the template when each decision is made."""

    approvals_needed: int
    timeout_minutes: int


@dataclass(frozen=True)
class Launch:
    """What a template launch records on its deployment besides the request itself."""

    template_id: UUID | None = None
    # The launch's values with every secret one as MASKED (its value travels in the
    # request's secret environment, encrypted).
    parameters: dict[str, Any] = field(default_factory=dict)
    # The commit the ref resolved to at launch: the run checks out exactly this commit.
    commit_sha: str | None = None
    # The audit action (``template.launch``, ``template.rollback``); default deployment.create.
    audit_action: str | None = None
    # What fired a run with trigger ``schedule`` / ``webhook`` (issue 14).
    schedule_id: UUID | None = None
    webhook_id: UUID | None = None
    # ``launched_by`` of a triggered run ({kind: schedule|webhook, id, name}); else the actor.
    launched_by: dict[str, Any] | None = None
    # Held: stored 'scheduled' with its job parked at HELD_UNTIL, started by whoever releases it
    # (a schedule's overlap policy 'queue': the run waits for the template's running one).
    held: bool = False
    # The template requires approval: stored 'pending_approval' with its job parked at
    # HELD_UNTIL until its approvers release it (shipyard.approvals) or it is cancelled.
    approval: ApprovalPolicy | None = None


# Where a held run's job waits until it is released (moved to now): never reached.
HELD_UNTIL = datetime(9999, 1, 1, tzinfo=UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def secret_environment(deployment: Deployment) -> dict[str, str]:
    if not deployment.secret_environment:
        return {}
    values: dict[str, str] = json.loads(deployment.secret_environment)
    return values


# The fields of DeploymentRead a deployment row holds as they are (the others are derived).
_READ_FIELDS = tuple(
    name
    for name in DeploymentRead.model_fields
    if name in Deployment.__mapper__.columns and name != "approvals"
)
_DEPLOYMENTS = Deployment.__table__
# A list's columns, from the table: those fields and the sealed secrets (only their names are
# shown). The list renders them as JSON in PostgreSQL (list_deployment_reads).
_READ_COLUMNS = tuple(_DEPLOYMENTS.c[name] for name in (*_READ_FIELDS, "secret_environment"))


def to_read(deployment: Deployment) -> DeploymentRead:
    data = {name: getattr(deployment, name) for name in _READ_FIELDS}
    data["secret_environment_names"] = sorted(secret_environment(deployment))
    return DeploymentRead.model_validate(data)


class _ListedDeployment(DeploymentRead):
    """A row of ``_READ_COLUMNS`` as PostgreSQL renders it in JSON: the fields, and the sealed
    secrets, read here for their names only (never shown: not a field of DeploymentRead)."""

    secret_environment_names: list[str] = Field(default_factory=list)
    secret_environment: str | None = Field(default=None, exclude=True, repr=False)


_LISTED = TypeAdapter(list[_ListedDeployment])
# Built once: a select of 35 columns costs a coercion of each whenever it is made.
_READ_SELECT = select(*_READ_COLUMNS)
_PAGE_ROW: ColumnClause[Any] = literal_column("page")
_PAGE_CREATED_AT: ColumnClause[Any] = literal_column("page.created_at")
_PAGE_ID: ColumnClause[Any] = literal_column("page.id")


# deployment_approvals belongs to shipyard.approvals (a layer above this one): its rows are read
# here by name only, so that every read of a single deployment shows its decisions.
_DECISIONS = text(
    "SELECT decided_by, decider_email, decision, comment, created_at FROM deployment_approvals "
    "WHERE deployment_id = :deployment_id ORDER BY created_at, id"
)


async def approval_decisions(session: AsyncSession, deployment_id: UUID) -> list[ApprovalDecision]:
    """The approvers' decisions on a run, oldest first (the caller has read the run: tenant)."""
    rows = await session.execute(_DECISIONS, {"deployment_id": deployment_id})
    return [
        ApprovalDecision.model_validate(
            {
                "decided_by": {"id": decided_by, "email": email},
                "decision": decision,
                "comment": comment,
                "at": at,
            }
        )
        for decided_by, email, decision, comment, at in rows
    ]


async def read_deployment(*, session: AsyncSession, deployment_id: UUID) -> DeploymentRead:
    """One deployment as the API shows it, with its approvers' decisions."""
    deployment = await get_deployment(session=session, deployment_id=deployment_id)
    read = to_read(deployment)
    if deployment.approvals_needed is not None:
        read.approvals = await approval_decisions(session, deployment.id)
    return read


async def _check_repository(session: AsyncSession, repository_id: UUID | None) -> Repository | None:
    if repository_id is None:
        return None
    repository = await session.scalar(
        select(Repository).where(
            Repository.id == repository_id, tenant_clause(session, Repository.tenant_id)
        )
    )
    if repository is None:
        raise unknown_repository()
    return repository


def unknown_repository() -> ValidationFailed:
    return ValidationFailed(
        "no such repository in your tenant", field="repository_id", code="unknown_reference"
    )


async def _check_hosts(
    session: AsyncSession, host_ids: list[UUID], settings: Settings
) -> list[Host]:
    if len(set(host_ids)) != len(host_ids):
        raise ValidationFailed("a host is listed twice", field="host_ids")
    if not host_ids:
        return []
    found = {
        host.id: host
        for host in (
            await session.scalars(
                select(Host).where(Host.id.in_(host_ids), tenant_clause(session, Host.tenant_id))
            )
        ).all()
    }
    for index, host_id in enumerate(host_ids):
        host = found.get(host_id)
        if host is None:
            raise ValidationFailed(
                f"no host {host_id} in your tenant",
                field=f"host_ids.{index}",
                code="unknown_reference",
            )
        if host.type == "local" and not settings.allow_local_hosts:
            raise ValidationFailed(
                f"host '{host.name}' is a local host and local hosts are disabled on this server",
                field=f"host_ids.{index}",
                code="local_host_disabled",
            )
    return [found[host_id] for host_id in host_ids]


def _check_schedule(data: DeploymentCreate) -> datetime | None:
    if data.schedule == "now":
        if data.scheduled_time is not None:
            raise ValidationFailed(
                "scheduled_time is only for schedule 'later'", field="scheduled_time"
            )
        return None
    assert data.scheduled_time is not None
    if data.scheduled_time <= utcnow():
        raise ValidationFailed(
            "scheduled_time is in the past", field="scheduled_time", code="time_in_past"
        )
    return data.scheduled_time


def check_request(data: DeploymentCreate) -> datetime | None:
    """The checks that need neither the database nor the network; the scheduled start or None.

    The creation flow runs them before it reads the script catalogue, so a request that is wrong
    on its face is refused at once and with the same error as before that read.
    """
    scheduled_at = _check_schedule(data)
    choices = data.script_choices()
    if choices and data.repository_id is None:
        raise ValidationFailed(
            "scripts come from a repository: give repository_id", field="repository_id"
        )
    script_ids = [choice.script_id for choice in choices]
    if len(set(script_ids)) != len(script_ids):
        raise ValidationFailed("a script is listed twice", field="scripts")
    return scheduled_at


def _check_script_ids(script_ids: list[UUID], known_scripts: frozenset[UUID] | None) -> None:
    """Every script id must be in the repository's catalogue (ids are stable per path).

    ``None`` means the catalogue could not be read just now (the provider is down, the clone
    cache busy): the deployment is still accepted, and the worker checks the ids against its
    checkout and fails the deployment with a clear message if one is missing.
    """
    if known_scripts is None:
        return
    for index, script_id in enumerate(script_ids):
        if script_id not in known_scripts:
            raise ValidationFailed(
                f"script {script_id} is not in the repository's script catalogue",
                field=f"scripts.{index}.script_id",
                code="unknown_reference",
            )


async def launcher(*, session: AsyncSession, actor: Actor) -> dict[str, Any]:
    """``launched_by`` of a run started by ``actor``: a personal API token, or a person.

    A log-in session (web or ``shipyard login``) is a token too, but the person is who
    launched: only a personal token (automation) is recorded as a token, by its name.
    """
    principal = actor.principal
    if principal.token_id is not None:
        token = await session.scalar(
            select(ApiToken).where(ApiToken.id == principal.token_id, ApiToken.kind == "personal")
        )
        if token is not None:
            return {"kind": "token", "id": str(token.id), "name": token.name}
    return {"kind": "user", "id": str(principal.user_id), "name": principal.email}


async def _target_hosts(
    session: AsyncSession, tenant_id: UUID, data: DeploymentCreate
) -> tuple[list[UUID], Target | None]:
    """The hosts to store now and the rule to store (host_ids beside a target join it).

    The run resolves the rule again when it starts; the hosts it means now are stored too,
    so a run that starts before that resolution still has them.
    """
    if data.target is None:
        return list(data.host_ids), None
    rule = data.target.model_copy(
        update={"host_ids": list(dict.fromkeys([*data.host_ids, *data.target.host_ids]))}
    )
    try:
        hosts = await resolve_target(session=session, tenant_id=tenant_id, target=rule)
    except ValidationFailed as exc:
        raise ValidationFailed(exc.message, field=f"target.{exc.field}", code=exc.code) from exc
    return hosts, rule


async def create_deployment(
    *,
    session: AsyncSession,
    actor: Actor,
    data: DeploymentCreate,
    settings: Settings,
    known_scripts: frozenset[UUID] | None,
    rerun_of: UUID | None = None,
    trigger: str = "api",
    launch: Launch | None = None,
) -> Deployment:
    """Validate, store, enqueue and audit a deployment, all in the caller's transaction.

    ``known_scripts`` are the ids of the repository's script catalogue at the deployment's ref,
    read beforehand by the creation flow (``None`` when it could not be read). ``trigger`` is
    ``api`` from the REST API and ``manual`` from the web pages; ``launch`` carries what a
    template launch records (template, parameter values, the commit pinned at launch). A
    ``freeze_override`` in the request is for admins only (403 for anyone else), and when it
    let the run through a window it is audited as ``deployment.freeze_override``.
    """
    if data.freeze_override is not None:
        actor.require(Permission.OVERRIDE_FREEZE)
    deployment = await store_deployment(
        session=session,
        tenant_id=actor.tenant_id,
        created_by=actor.user_id,
        launched_by=(
            launch.launched_by
            if launch is not None and launch.launched_by is not None
            else await launcher(session=session, actor=actor)
        ),
        data=data,
        settings=settings,
        known_scripts=known_scripts,
        rerun_of=rerun_of,
        trigger=trigger,
        launch=launch,
    )
    action = "deployment.rerun" if rerun_of else "deployment.create"
    await audit(
        session,
        actor=actor,
        action=launch.audit_action if launch and launch.audit_action else action,
        resource_type="deployment",
        resource_id=deployment.id,
        details=audit_details(deployment, rerun_of=rerun_of, launch=launch),
    )
    if deployment.freeze_window_id is not None:
        await audit(
            session,
            actor=actor,
            action="deployment.freeze_override",
            resource_type="deployment",
            resource_id=deployment.id,
            details={
                "freeze_window_id": str(deployment.freeze_window_id),
                "freeze_window": await freeze.window_name(
                    session=session, window_id=deployment.freeze_window_id
                ),
                "reason": deployment.freeze_override_reason,
            },
        )
    return deployment


def audit_details(
    deployment: Deployment | Mapping[str, Any],
    *,
    rerun_of: UUID | None = None,
    launch: Launch | None = None,
) -> dict[str, Any]:
    """What the audit entry of a new deployment (or its stored columns) says (never a secret
    value)."""
    row: Mapping[str, Any] = (
        deployment
        if isinstance(deployment, Mapping)
        else {
            "name": deployment.name,
            "host_ids": deployment.host_ids,
            "schedule": deployment.schedule,
            "trigger": deployment.trigger,
        }
    )
    return {
        "name": row["name"],
        "hosts": len(row["host_ids"]),
        "schedule": row["schedule"],
        "trigger": row["trigger"],
        **({"rerun_of": str(rerun_of)} if rerun_of else {}),
        **({"template_id": str(launch.template_id)} if launch and launch.template_id else {}),
        **({"commit_sha": launch.commit_sha} if launch and launch.commit_sha else {}),
        **({"schedule_id": str(launch.schedule_id)} if launch and launch.schedule_id else {}),
        **({"webhook_id": str(launch.webhook_id)} if launch and launch.webhook_id else {}),
        **({"held": True} if launch and launch.held else {}),
        **(
            {"approvals_needed": launch.approval.approvals_needed}
            if launch and launch.approval
            else {}
        ),
    }


@dataclass(frozen=True)
class Placement:
    """What a request's checks against the database found: the same for every request of one
    template (its repository, scripts and target), so a trigger's batch checks it once."""

    scheduled_at: datetime | None
    script_ids: list[UUID]
    host_ids: list[UUID]
    target: Target | None
    # A freeze window in force at the run's start that an admin's override let it through.
    freeze_override: freeze.Overridden | None = None


async def check_placement(
    *,
    session: AsyncSession,
    tenant_id: UUID,
    data: DeploymentCreate,
    settings: Settings,
    known_scripts: frozenset[UUID] | None,
    template_id: UUID | None = None,
    at: datetime | None = None,
) -> Placement:
    """The request's checks: schedule, repository, script ids, target and hosts (ValidationFailed
    naming the field), then the freeze windows at the run's start (``scheduled_time``, else
    ``at``, else now): :class:`shipyard.freeze.service.Frozen` (409) unless the request carries
    an override (whose permission the caller checked)."""
    scheduled_at = check_request(data)
    repository = await _check_repository(session, data.repository_id)
    choices = data.script_choices()
    script_ids = [choice.script_id for choice in choices]
    if repository is not None and choices:
        _check_script_ids(script_ids, known_scripts)
    host_ids, target = await _target_hosts(session, tenant_id, data)
    await _check_hosts(session, host_ids, settings)
    if choices and not host_ids:
        raise ValidationFailed(
            "scripts need at least one host"
            + (": the target matches no host now" if target is not None else ""),
            field="target" if target is not None else "host_ids",
        )
    if host_ids and not choices:
        raise ValidationFailed("hosts are given but no script to run on them", field="scripts")
    if not choices and not data.cicd_steps:
        raise ValidationFailed("a deployment needs scripts to run or CI/CD steps", field="scripts")
    overridden = await freeze.check_run(
        session=session,
        tenant_id=tenant_id,
        at=scheduled_at or at or utcnow(),
        template_id=template_id,
        host_ids=host_ids,
        target_group_ids=target.group_ids if target is not None else (),
        override=data.freeze_override,
    )
    return Placement(
        scheduled_at=scheduled_at,
        script_ids=script_ids,
        host_ids=host_ids,
        target=target,
        freeze_override=overridden,
    )


def deployment_fields(
    *,
    tenant_id: UUID,
    created_by: UUID | None,
    launched_by: dict[str, Any],
    data: DeploymentCreate,
    placement: Placement,
    rerun_of: UUID | None = None,
    trigger: str = "api",
    launch: Launch | None = None,
) -> dict[str, Any]:
    """The columns of a new deployment (its job_id is set once its job is deferred)."""
    choices = data.script_choices()
    secrets = {variable.name: variable.value for variable in data.environment if variable.secret}
    held = launch is not None and launch.held
    approval = launch.approval if launch is not None else None
    target = placement.target
    status = "scheduled" if placement.scheduled_at or held else "pending"
    return {
        "tenant_id": tenant_id,
        "name": data.name,
        "description": data.description,
        "repository_id": data.repository_id,
        "ref": data.ref,
        "status": "pending_approval" if approval is not None else status,
        "schedule": data.schedule,
        "scheduled_time": placement.scheduled_at,
        "script_ids": list(placement.script_ids),
        "host_ids": list(placement.host_ids),
        "target": target.model_dump(mode="json") if target is not None else None,
        "script_arguments": {
            str(choice.script_id): choice.arguments for choice in choices if choice.arguments
        },
        "environment": {
            variable.name: variable.value for variable in data.environment if not variable.secret
        },
        "secret_environment": json.dumps(secrets) if secrets else None,
        "options": data.options.model_dump(),
        "created_by": created_by,
        "rerun_of": rerun_of,
        "trigger": trigger,
        "launched_by": launched_by,
        "template_id": launch.template_id if launch else None,
        "parameters": dict(launch.parameters) if launch else {},
        "commit_sha": launch.commit_sha if launch else None,
        "schedule_id": launch.schedule_id if launch else None,
        "webhook_id": launch.webhook_id if launch else None,
        "freeze_window_id": (
            placement.freeze_override.window_id if placement.freeze_override else None
        ),
        "freeze_override_reason": (
            placement.freeze_override.reason if placement.freeze_override else None
        ),
        "approvals_needed": approval.approvals_needed if approval is not None else None,
        "approval_expires_at": (
            utcnow() + timedelta(minutes=approval.timeout_minutes) if approval is not None else None
        ),
    }


def _parked(launch: Launch | None) -> bool:
    """Whether the run's job waits at HELD_UNTIL (queued behind a run, or for its approvals)."""
    return launch is not None and (launch.held or launch.approval is not None)


_EVENT_COLUMNS = (
    "id",
    "tenant_id",
    "name",
    "launched_by",
    "commit_sha",
    "ref",
    "template_id",
    "repository_id",
    "approvals_needed",
    "approval_expires_at",
)


def approval_requested(row: Deployment | Mapping[str, Any]) -> Event:
    """The ``approval.requested`` event of a run stored pending_approval (approvers hear of it
    through the tenant's rules on that event)."""
    values: Mapping[str, Any] = (
        row
        if isinstance(row, Mapping)
        else {column: getattr(row, column) for column in _EVENT_COLUMNS}
    )
    get = values.get
    launched_by = get("launched_by") or {}
    expires = get("approval_expires_at")
    return Event(
        name="approval.requested",
        tenant_id=values["tenant_id"],
        subject_type="deployment",
        subject_id=values["id"],
        title=values["name"],
        status="pending_approval",
        triggered_by=launched_by.get("name"),
        commit_sha=get("commit_sha"),
        ref=get("ref"),
        template_id=get("template_id"),
        repository_id=get("repository_id"),
        path=f"/deployments/{get('id')}",
        detail=(
            f"waits for {get('approvals_needed')} approval(s)"
            + (f" until {expires:%Y-%m-%d %H:%M} UTC" if expires is not None else "")
        ),
        extra={"approvals_needed": get("approvals_needed")},
    )


async def store_deployment(
    *,
    session: AsyncSession,
    tenant_id: UUID,
    created_by: UUID | None,
    launched_by: dict[str, Any],
    data: DeploymentCreate,
    settings: Settings,
    known_scripts: frozenset[UUID] | None,
    rerun_of: UUID | None = None,
    trigger: str = "api",
    launch: Launch | None = None,
) -> Deployment:
    """Validate, store and enqueue a deployment in the caller's transaction (no audit entry:
    :func:`create_deployment` writes a person's, a trigger writes its own)."""
    placement = await check_placement(
        session=session,
        tenant_id=tenant_id,
        data=data,
        settings=settings,
        known_scripts=known_scripts,
        template_id=launch.template_id if launch is not None else None,
    )
    deployment = Deployment(
        **deployment_fields(
            tenant_id=tenant_id,
            created_by=created_by,
            launched_by=launched_by,
            data=data,
            placement=placement,
            rerun_of=rerun_of,
            trigger=trigger,
            launch=launch,
        )
    )
    session.add(deployment)
    await session.flush()
    if data.cicd_steps:
        await prepare_steps(
            session=session,
            tenant_id=tenant_id,
            deployment_id=deployment.id,
            steps=data.cicd_steps,
        )
    deployment.job_id = await enqueue(
        session,
        task=RUN_TASK,
        args={"deployment_id": str(deployment.id), "tenant_id": str(tenant_id)},
        scheduled_at=HELD_UNTIL if _parked(launch) else placement.scheduled_at,
    )
    await session.flush()
    await session.refresh(deployment)
    if deployment.status == "pending_approval":
        await emit(session, approval_requested(deployment))
    return deployment


@dataclass(frozen=True)
class NewDeployment:
    """One deployment of :func:`insert_deployments`: checked already (its placement)."""

    data: DeploymentCreate
    placement: Placement
    launch: Launch
    launched_by: dict[str, Any]


async def insert_deployments(
    *,
    session: AsyncSession,
    tenant_id: UUID,
    items: Sequence[NewDeployment],
    trigger: str,
) -> list[dict[str, Any]]:
    """Store and enqueue many checked deployments in the caller's transaction: one insert, one
    defer of all their jobs, one update of their job ids (no audit entry: the caller writes
    them). The stored columns of each (with its ``id``), in order."""
    rows = [
        {
            "id": uuid4(),
            **deployment_fields(
                tenant_id=tenant_id,
                created_by=None,
                launched_by=item.launched_by,
                data=item.data,
                placement=item.placement,
                trigger=trigger,
                launch=item.launch,
            ),
        }
        for item in items
    ]
    if not rows:
        return rows
    await session.execute(insert(Deployment), rows)
    for item, row in zip(items, rows, strict=True):
        if item.data.cicd_steps:
            await prepare_steps(
                session=session,
                tenant_id=tenant_id,
                deployment_id=row["id"],
                steps=item.data.cicd_steps,
            )
    job_ids = await enqueue_many(
        session,
        task=RUN_TASK,
        jobs=[
            (
                {"deployment_id": str(row["id"]), "tenant_id": str(tenant_id)},
                HELD_UNTIL if _parked(item.launch) else item.placement.scheduled_at,
            )
            for item, row in zip(items, rows, strict=True)
        ],
    )
    # Matched by the job's args (the defer function's result order is not a promise).
    await session.execute(
        text(
            "UPDATE deployments AS d SET job_id = j.id FROM procrastinate_jobs AS j "
            "WHERE j.id = ANY(:job_ids) AND d.id = CAST(j.args->>'deployment_id' AS uuid)"
        ),
        {"job_ids": job_ids},
    )
    for row in rows:
        if row["status"] == "pending_approval":
            await emit(session, approval_requested(row))
    return rows


async def release_held(session: AsyncSession, deployment: Deployment) -> bool:
    """Start a held run now (its job moved from HELD_UNTIL to the machine's now, which the job
    queue runs by); False when it is no longer waiting."""
    if deployment.status != "scheduled" or deployment.job_id is None:
        return False
    if not await reschedule_waiting_job(session, job_id=deployment.job_id, when=utcnow()):
        return False
    deployment.status = "pending"
    await notify_deployment(session, deployment.id)
    return True


async def get_deployment(
    *, session: AsyncSession, deployment_id: UUID, for_update: bool = False
) -> Deployment:
    statement = select(Deployment).where(
        Deployment.id == deployment_id, tenant_clause(session, Deployment.tenant_id)
    )
    if for_update:
        statement = statement.with_for_update()
    deployment = await session.scalar(statement)
    if deployment is None:
        raise NotFound("deployment not found")
    return deployment


async def list_cicd_steps(
    *, session: AsyncSession, principal: Principal, deployment_id: UUID
) -> list[MappingRead]:
    """The CI/CD steps of a deployment the caller can see (404 for any other)."""
    deployment = await get_deployment(session=session, deployment_id=deployment_id)
    return await list_mappings(session=session, principal=principal, deployment_id=deployment.id)


async def list_deployments(
    *,
    session: AsyncSession,
    limit: int,
    cursor: str | None,
    status: str | None = None,
    repository_id: UUID | None = None,
    host_id: UUID | None = None,
    created_by: UUID | None = None,
    search: str | None = None,
    template_id: UUID | None = None,
) -> tuple[list[Deployment], str | None]:
    statement = _filtered_deployments(
        select(Deployment),
        session,
        status=status,
        repository_id=repository_id,
        host_id=host_id,
        created_by=created_by,
        search=search,
        template_id=template_id,
        limit=limit,
        cursor=cursor,
    )
    return await paginate(
        session,
        statement,
        created_at=Deployment.created_at,
        row_id=Deployment.id,
        limit=limit,
        cursor=cursor,
    )


async def list_deployment_reads(
    *,
    session: AsyncSession,
    limit: int,
    cursor: str | None,
    status: str | None = None,
    repository_id: UUID | None = None,
    host_id: UUID | None = None,
    created_by: UUID | None = None,
    search: str | None = None,
    template_id: UUID | None = None,
) -> tuple[list[DeploymentRead], str | None]:
    """The API's list: :func:`list_deployments`'s page, which PostgreSQL renders as one JSON
    array, validated into the API's models in one pass (no driver values, rows or entities to
    build: this is the most requested page)."""
    statement = _filtered_deployments(
        _READ_SELECT,
        session,
        status=status,
        repository_id=repository_id,
        host_id=host_id,
        created_by=created_by,
        search=search,
        template_id=template_id,
        limit=limit,
        cursor=cursor,
    )
    page = page_of(
        statement,
        created_at=_DEPLOYMENTS.c.created_at,
        row_id=_DEPLOYMENTS.c.id,
        limit=limit,
        cursor=cursor,
    ).subquery("page")
    # The subquery's columns named as text: its column collection (`page.c`), built anew for
    # each statement, cost more than the rest of the request's SQL.
    ordered = aggregate_order_by(_PAGE_ROW, _PAGE_CREATED_AT.desc(), _PAGE_ID.desc())
    rendered = await session.scalar(select(cast(func.json_agg(ordered), Text)).select_from(page))
    rows = _LISTED.validate_json(rendered) if rendered else []
    keyring = session_keyring(session)
    for row in rows:
        if row.secret_environment:
            names = json.loads(keyring.decrypt(row.secret_environment))
            row.secret_environment_names = sorted(names)
            row.secret_environment = None
    items: list[DeploymentRead] = list(rows)
    return cut_page(items, limit=limit, created_at="created_at", row_id="id")


def _filtered_deployments(
    statement: Select[Any],
    session: AsyncSession,
    *,
    status: str | None,
    repository_id: UUID | None,
    host_id: UUID | None,
    created_by: UUID | None,
    search: str | None,
    template_id: UUID | None,
    limit: int,
    cursor: str | None,
) -> Select[Any]:
    # Table columns (the same SQL as the entity's attributes): a statement of columns stays a
    # core one, which SQLAlchemy runs without its ORM layer.
    columns = _DEPLOYMENTS.c
    statement = statement.where(tenant_clause(session, columns.tenant_id))
    if template_id:
        statement = statement.where(columns.template_id == template_id)
    if status:
        statement = statement.where(columns.status == status)
    if repository_id:
        statement = statement.where(columns.repository_id == repository_id)
    if host_id:
        statement = statement.where(columns.host_ids.contains([host_id]))
    if created_by:
        statement = statement.where(columns.created_by == created_by)
    if search:
        # Matched by deployment_ids_named_like (migrations 0018, 0019), which can use a trigram
        # index: an ILIKE here, under row-level security, reads the tenant's whole table. It
        # returns this page's matches only (the same filters, cursor and size), newest first, so
        # a word most names contain stops after a page too.
        before_created_at, before_id = decode_cursor(cursor) if cursor else (None, None)
        page_ids = func.deployment_ids_named_like(
            f"%{_escape_like(search)}%",
            limit + 1,
            cast(before_created_at, DateTime(timezone=True)),
            cast(before_id, Uuid),
            cast(status, Text),
            cast(repository_id, Uuid),
            cast(host_id, Uuid),
            cast(created_by, Uuid),
            cast(template_id, Uuid),
        )
        matching = func.array(select(page_ids).scalar_subquery())
        statement = statement.where(columns.id == func.any(matching))
    return statement


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def update_deployment(
    *, session: AsyncSession, actor: Actor, deployment_id: UUID, data: DeploymentUpdate
) -> Deployment:
    """Rename, describe, or reschedule (move its start) a deployment that has not started."""
    deployment = await get_deployment(session=session, deployment_id=deployment_id, for_update=True)
    fields = data.model_fields_set
    if "name" in fields and data.name is not None:
        deployment.name = data.name
    if "description" in fields:
        deployment.description = data.description
    if "scheduled_time" in fields:
        await _reschedule(session, deployment, data.scheduled_time)
    await _audit(session, actor, "deployment.update", deployment_id, {"fields": sorted(fields)})
    await session.flush()
    await session.refresh(deployment)
    return deployment


async def _reschedule(session: AsyncSession, deployment: Deployment, when: datetime | None) -> None:
    if deployment.status != "scheduled":
        raise Conflict(
            f"only a scheduled deployment can be rescheduled (it is {deployment.status})",
            code="not_scheduled",
        )
    if when is None or when <= utcnow():
        raise ValidationFailed(
            "scheduled_time must be in the future", field="scheduled_time", code="time_in_past"
        )
    moved = deployment.job_id is not None and await reschedule_waiting_job(
        session, job_id=deployment.job_id, when=when
    )
    if not moved:
        raise Conflict("the deployment has already started", code="already_started")
    deployment.scheduled_time = when


async def cancel_deployment(
    *, session: AsyncSession, actor: Actor, deployment_id: UUID
) -> Deployment:
    """Cancel: a waiting deployment never starts; a running one is stopped by its worker."""
    deployment = await get_deployment(session=session, deployment_id=deployment_id, for_update=True)
    if deployment.status in FINAL_DEPLOYMENT_STATUSES:
        raise Conflict(
            f"the deployment has already finished ({deployment.status})", code="already_finished"
        )
    now = utcnow()
    deployment.cancel_requested_at = now
    waiting = deployment.status in WAITING_STATUSES and deployment.job_id is not None
    if waiting and deployment.job_id is not None and await cancel_job(session, deployment.job_id):
        deployment.status = "cancelled"
        deployment.completed_at = now
        await session.execute(
            update(DeploymentScript)
            .where(
                DeploymentScript.deployment_id == deployment.id,
                DeploymentScript.status == "pending",
            )
            .values(status="cancelled")
        )
        session.add(
            DeploymentLog(
                deployment_id=deployment.id,
                tenant_id=deployment.tenant_id,
                level="WARNING",
                message="Deployment cancelled before it started.",
            )
        )
        await session.flush()
        await emit_deployment_event(session, deployment, "deployment.cancelled")
    await notify_deployment(session, deployment.id)
    await _audit(session, actor, "deployment.cancel", deployment.id, {})
    await session.flush()
    await session.refresh(deployment)
    return deployment


async def rerun_launch(*, session: AsyncSession, deployment_id: UUID) -> Launch | None:
    """What a re-run keeps of a template launch: its template and parameter values.

    The ref is resolved again (as for every re-run), so the commit is not kept.
    """
    source = await get_deployment(session=session, deployment_id=deployment_id)
    approval = None
    if source.approvals_needed is not None and source.approval_expires_at is not None:
        # A run that needed approval needs it again when re-run (with the same wait).
        waited = source.approval_expires_at - source.created_at
        approval = ApprovalPolicy(
            approvals_needed=source.approvals_needed,
            timeout_minutes=max(1, round(waited.total_seconds() / 60)),
        )
    if source.template_id is None and not source.parameters and approval is None:
        return None
    return Launch(
        template_id=source.template_id, parameters=dict(source.parameters), approval=approval
    )


async def rerun_request(*, session: AsyncSession, deployment_id: UUID) -> DeploymentCreate:
    """The request that creates a new deployment with ``deployment_id``'s inputs, to run now."""
    source = await get_deployment(session=session, deployment_id=deployment_id)
    mappings = (
        await session.scalars(
            select(DeploymentCicdMapping)
            .where(DeploymentCicdMapping.deployment_id == source.id)
            .order_by(DeploymentCicdMapping.position)
        )
    ).all()
    # Checked against today's rules: a refused name or too-short secret is a 422 naming it.
    environment = stored_environment(source.environment, secret_environment(source))
    return DeploymentCreate(
        name=source.name,
        description=source.description,
        repository_id=source.repository_id,
        ref=source.ref,
        scripts=[
            ScriptChoice(
                script_id=script_id, arguments=source.script_arguments.get(str(script_id), [])
            )
            for script_id in source.script_ids
        ],
        # A run by rule is run by its rule again (it may mean other hosts now).
        host_ids=[] if source.target is not None else list(source.host_ids),
        target=Target.model_validate(source.target) if source.target is not None else None,
        environment=environment,
        options=ExecutionOptions.model_validate(source.options),
        cicd_steps=[
            CicdStepRequest.model_validate(
                {
                    "cicd_job_id": mapping.cicd_job_id,
                    "parameters": mapping.parameters,
                    "stage": mapping.stage,
                }
            )
            for mapping in mappings
            if mapping.cicd_job_id is not None
        ],
    )


async def delete_deployment(*, session: AsyncSession, actor: Actor, deployment_id: UUID) -> None:
    """Delete a deployment that is not running (a waiting one is taken off the queue)."""
    deployment = await get_deployment(session=session, deployment_id=deployment_id, for_update=True)
    if deployment.status == "in_progress":
        raise Conflict(
            "a running deployment cannot be deleted; cancel it first", code="deployment_running"
        )
    waiting = deployment.status in WAITING_STATUSES and deployment.job_id is not None
    if (
        waiting
        and deployment.job_id is not None
        and not await cancel_job(session, deployment.job_id)
    ):
        raise Conflict("the deployment is starting; cancel it first", code="deployment_running")
    await session.execute(delete(Deployment).where(Deployment.id == deployment.id))
    await _audit(session, actor, "deployment.delete", deployment.id, {"name": deployment.name})


async def _audit(
    session: AsyncSession,
    actor: Actor,
    action: str,
    deployment_id: UUID,
    details: dict[str, Any],
) -> None:
    await audit(
        session,
        actor=actor,
        action=action,
        resource_type="deployment",
        resource_id=deployment_id,
        details=details,
    )


async def list_scripts(*, session: AsyncSession, deployment_id: UUID) -> list[DeploymentScript]:
    await get_deployment(session=session, deployment_id=deployment_id)
    result = await session.scalars(
        select(DeploymentScript)
        .where(
            DeploymentScript.deployment_id == deployment_id,
            tenant_clause(session, DeploymentScript.tenant_id),
        )
        .order_by(DeploymentScript.host_id, DeploymentScript.position)
    )
    return list(result.all())


async def list_logs(
    *,
    session: AsyncSession,
    deployment_id: UUID,
    after_seq: int | None,
    limit: int,
    host_id: UUID | None = None,
    deployment_script_id: UUID | None = None,
    level: str | None = None,
    search: str | None = None,
) -> list[DeploymentLog]:
    """Stored lines in order, after ``after_seq``, optionally filtered."""
    await get_deployment(session=session, deployment_id=deployment_id)
    statement = _log_lines(
        select(DeploymentLog),
        session,
        deployment_id=deployment_id,
        after_seq=after_seq,
        host_id=host_id,
        deployment_script_id=deployment_script_id,
        level=level,
        search=search,
    )
    result = await session.scalars(statement.limit(limit))
    return list(result.all())


_LOGS = DeploymentLog.__table__
_LOG_READ_KEYS = tuple(DeploymentLogRead.model_fields)
_LOG_READ_SELECT = select(*(_LOGS.c[name] for name in _LOG_READ_KEYS))
_LOG_PAGE = TypeAdapter(list[DeploymentLogRead])
_PAGE_SEQ: ColumnClause[Any] = literal_column("page.seq")


async def list_log_reads(
    *,
    session: AsyncSession,
    deployment_id: UUID,
    after_seq: int | None,
    limit: int,
    host_id: UUID | None = None,
    deployment_script_id: UUID | None = None,
    level: str | None = None,
    search: str | None = None,
) -> list[DeploymentLogRead]:
    """:func:`list_logs` as the API shows it, rendered as one JSON array by PostgreSQL and
    validated in one pass (as :func:`list_deployment_reads`). The deployment is looked up only
    when no line matches: a line is its deployment's (cascade), in its tenant."""
    statement = _log_lines(
        _LOG_READ_SELECT,
        session,
        deployment_id=deployment_id,
        after_seq=after_seq,
        host_id=host_id,
        deployment_script_id=deployment_script_id,
        level=level,
        search=search,
    )
    page = statement.limit(limit).subquery("page")
    rendered = await session.scalar(
        select(cast(func.json_agg(aggregate_order_by(_PAGE_ROW, _PAGE_SEQ)), Text)).select_from(
            page
        )
    )
    if not rendered:
        await _require_deployment(session, deployment_id)
        return []
    return _LOG_PAGE.validate_json(rendered)


async def _require_deployment(session: AsyncSession, deployment_id: UUID) -> None:
    found = await session.scalar(
        select(_DEPLOYMENTS.c.id).where(
            _DEPLOYMENTS.c.id == deployment_id, tenant_clause(session, _DEPLOYMENTS.c.tenant_id)
        )
    )
    if found is None:
        raise NotFound("deployment not found")


def _log_lines(
    statement: Select[Any],
    session: AsyncSession,
    *,
    deployment_id: UUID,
    after_seq: int | None,
    host_id: UUID | None,
    deployment_script_id: UUID | None,
    level: str | None,
    search: str | None,
) -> Select[Any]:
    columns = _LOGS.c  # table columns: a statement of columns stays a core one
    statement = statement.where(
        columns.deployment_id == deployment_id, tenant_clause(session, columns.tenant_id)
    )
    if after_seq is not None:
        statement = statement.where(columns.seq > after_seq)
    if host_id:
        statement = statement.where(columns.host_id == host_id)
    if deployment_script_id:
        statement = statement.where(columns.deployment_script_id == deployment_script_id)
    if level:
        statement = statement.where(columns.level == level)
    if search:
        statement = statement.where(columns.message.ilike(f"%{_escape_like(search)}%", escape="\\"))
    return statement.order_by(columns.seq)
