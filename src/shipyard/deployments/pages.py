"""What the web pages about deployments show: one read per page, in the tenant's session.

The web routes render what these return and query nothing themselves. A page that a flow's
route renders (the wizard's review after a refused submit) reads through the database in its own
short session, since that route holds none.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID

from pydantic import ValidationError
from sqlalchemy import Text, column, func, select, table
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.ext.asyncio import AsyncSession

from shipyard.accounts.models import User
from shipyard.accounts.principal import Principal
from shipyard.cicd.models import CicdJob
from shipyard.cicd.schemas import MappingRead
from shipyard.cicd.service import list_jobs, list_mappings
from shipyard.deployments import service
from shipyard.deployments.models import (
    DEPLOYMENT_STATUSES,
    FINAL_DEPLOYMENT_STATUSES,
    SCRIPT_STATUSES,
    Deployment,
    DeploymentScript,
)
from shipyard.errors import ShipyardError
from shipyard.git.flows import open_browser
from shipyard.git.models import ProfileRepositoryPin, Repository
from shipyard.git.repositories import read_repository
from shipyard.git.schemas import RepositoryRead
from shipyard.hosts.inventory import resolve_target
from shipyard.hosts.models import HOST_STATUSES, Host, HostGroup, HostGroupMember, HostTag
from shipyard.hosts.schemas import Target
from shipyard.hosts.service import list_hosts

if TYPE_CHECKING:
    from shipyard.runtime import Runtime

LIST_PAGE_SIZE = 25
DASHBOARD_RECENT = 10
DASHBOARD_LIST_LIMIT = 50
FAILED_STATUSES = ("failed", "partial")
RUNNING_STATUSES = ("in_progress",)
# The list refreshes itself while a run on it waits to start or runs (not for a scheduled one).
LIVE_STATUSES = ("pending", "in_progress")
# A host has finished when none of its scripts is still waiting or running.
FINAL_SCRIPT_STATUSES = tuple(s for s in SCRIPT_STATUSES if s not in ("pending", "running"))


class PageView:
    """A dataclass whose fields are a template's context."""

    def context(self) -> dict[str, Any]:
        # Shallow on purpose: dataclasses.asdict would deep-copy the ORM rows.
        return {item.name: getattr(self, item.name) for item in fields(self)}  # type: ignore[arg-type]


async def host_names(session: AsyncSession, host_ids: set[UUID]) -> dict[UUID, str]:
    if not host_ids:
        return {}
    rows = await session.execute(select(Host.id, Host.name).where(Host.id.in_(host_ids)))
    return {host_id: name for host_id, name in rows.all()}


# The deployments list ------------------------------------------------------------------------


@dataclass
class Launcher:
    """Who or what launched a run, as the list and the page show it."""

    name: str
    kind: str = "user"


@dataclass
class Progress:
    """Hosts whose scripts have all finished, of the run's hosts."""

    done: int
    total: int


@dataclass
class DeploymentList(PageView):
    deployments: list[Deployment]
    next_cursor: str | None
    # (id, owner, name) of the tenant's repositories, for the filter.
    repositories: list[tuple[UUID, str | None, str]]
    template_names: dict[UUID, str] = field(default_factory=dict)
    launchers: dict[UUID, Launcher] = field(default_factory=dict)
    # Only for runs that have not finished.
    progress: dict[UUID, Progress] = field(default_factory=dict)

    @property
    def live(self) -> bool:
        """Some run on the page may still change: the page refreshes its rows."""
        return any(d.status in LIVE_STATUSES for d in self.deployments)


# The templates table read by name: deployments may not import the templates package (the
# layers contract), and models.py already names "templates.id" in its foreign key.
_templates = table("templates", column("id", PG_UUID(as_uuid=True)), column("name", Text))


async def template_names(session: AsyncSession, template_ids: set[UUID]) -> dict[UUID, str]:
    if not template_ids:
        return {}
    rows = await session.execute(
        select(_templates.c.id, _templates.c.name).where(_templates.c.id.in_(template_ids))
    )
    return {template_id: name for template_id, name in rows.all()}


async def launchers(session: AsyncSession, deployments: list[Deployment]) -> dict[UUID, Launcher]:
    """``launched_by`` as recorded; for runs from before it, the creator's e-mail (one query)."""
    found: dict[UUID, Launcher] = {}
    creators: dict[UUID, list[UUID]] = {}
    for deployment in deployments:
        launched = deployment.launched_by or {}
        if launched.get("name"):
            found[deployment.id] = Launcher(
                name=str(launched["name"]), kind=str(launched.get("kind") or "user")
            )
        elif deployment.created_by is not None:
            creators.setdefault(deployment.created_by, []).append(deployment.id)
    if creators:
        rows = await session.execute(select(User.id, User.email).where(User.id.in_(creators)))
        for user_id, email in rows.all():
            for deployment_id in creators[user_id]:
                found[deployment_id] = Launcher(name=email)
    return found


async def progress(session: AsyncSession, deployments: list[Deployment]) -> dict[UUID, Progress]:
    """Finished hosts of each unfinished run, in one grouped query whatever the page's size."""
    running = {d.id: d for d in deployments if d.status not in FINAL_DEPLOYMENT_STATUSES}
    if not running:
        return {}
    finished_host = (
        select(DeploymentScript.deployment_id)
        .where(DeploymentScript.deployment_id.in_(running), DeploymentScript.host_id.is_not(None))
        .group_by(DeploymentScript.deployment_id, DeploymentScript.host_id)
        .having(func.bool_and(DeploymentScript.status.in_(FINAL_SCRIPT_STATUSES)))
        .subquery()
    )
    rows = await session.execute(
        select(finished_host.c.deployment_id, func.count()).group_by(finished_host.c.deployment_id)
    )
    done = {deployment_id: int(count) for deployment_id, count in rows.all()}
    return {
        deployment_id: Progress(done=done.get(deployment_id, 0), total=len(d.host_ids))
        for deployment_id, d in running.items()
    }


async def deployment_list(
    *,
    session: AsyncSession,
    cursor: str | None,
    status: str | None,
    repository_id: UUID | None,
    search: str | None,
) -> DeploymentList:
    """One page of the list, newest first; an unknown status filter is ignored.

    A fixed number of queries whatever the page holds: the page, then templates, launchers
    and progress each in one.
    """
    repositories = await session.execute(
        select(Repository.id, Repository.owner, Repository.name).order_by(Repository.name)
    )
    rows, next_cursor = await service.list_deployments(
        session=session,
        limit=LIST_PAGE_SIZE,
        cursor=cursor,
        status=status if status in DEPLOYMENT_STATUSES else None,
        repository_id=repository_id,
        search=search,
    )
    return DeploymentList(
        deployments=rows,
        next_cursor=next_cursor,
        repositories=[(row.id, row.owner, row.name) for row in repositories.all()],
        template_names=await template_names(
            session, {d.template_id for d in rows if d.template_id}
        ),
        launchers=await launchers(session, rows),
        progress=await progress(session, rows),
    )


# A deployment's page -------------------------------------------------------------------------


@dataclass
class DeploymentLive(PageView):
    """The status, controls and results: the part of the page polled while it runs."""

    deployment: Deployment
    final: bool
    host_names: dict[UUID, str]
    steps: list[MappingRead]


@dataclass
class TargetView:
    """A run's target rule in names: the hosts listed, the groups and the tags."""

    host_names: list[str]
    group_names: list[str]
    tags: list[str]

    def describe(self) -> str:
        """The rule in words ("group prod and tag web, plus hosts db-1"): groups and tags intersect."""
        rule = []
        if self.group_names:
            rule.append("group " + " or ".join(self.group_names))
        if self.tags:
            rule.append("tag " + " and ".join(self.tags))
        parts = [" and ".join(rule)] if rule else []
        if self.host_names:
            parts.append("hosts " + ", ".join(self.host_names))
        return ", plus ".join(parts) or "no hosts"


@dataclass
class DeploymentDetail(DeploymentLive):
    repository: Repository | None = None
    secret_names: list[str] = field(default_factory=list)
    template_name: str | None = None
    launcher: Launcher | None = None
    target: TargetView | None = None


def _uuids(values: Any) -> list[UUID]:
    """The ids of a stored JSON list, skipping anything that is not one."""
    found = []
    for value in values if isinstance(values, list) else []:
        try:
            found.append(UUID(str(value)))
        except ValueError:
            continue
    return found


async def _target_view(session: AsyncSession, rule: dict[str, Any] | None) -> TargetView | None:
    if not rule:
        return None
    host_ids = _uuids(rule.get("host_ids"))
    group_ids = _uuids(rule.get("group_ids"))
    names = await host_names(session, set(host_ids))
    groups: dict[UUID, str] = {}
    if group_ids:
        rows = await session.execute(
            select(HostGroup.id, HostGroup.name).where(HostGroup.id.in_(group_ids))
        )
        groups = {group_id: name for group_id, name in rows.all()}
    tags = rule.get("tags")
    return TargetView(
        host_names=sorted(names.get(host_id, "deleted host") for host_id in host_ids),
        group_names=sorted(groups.get(group_id, "deleted group") for group_id in group_ids),
        tags=[str(tag) for tag in tags] if isinstance(tags, list) else [],
    )


async def deployment_live(
    *, session: AsyncSession, principal: Principal, deployment_id: UUID
) -> DeploymentLive:
    deployment = await service.get_deployment(session=session, deployment_id=deployment_id)
    # Polled every 2 s while the run goes: the grid shows the script rows, so only their hosts'
    # ids are read here (not a thousand script rows at a thousand hosts).
    script_hosts = await session.scalars(
        select(DeploymentScript.host_id)
        .where(DeploymentScript.deployment_id == deployment.id)
        .where(DeploymentScript.host_id.is_not(None))
        .distinct()
    )
    host_ids = set(deployment.host_ids) | {host_id for host_id in script_hosts if host_id}
    return DeploymentLive(
        deployment=deployment,
        final=deployment.status in FINAL_DEPLOYMENT_STATUSES,
        host_names=await host_names(session, host_ids),
        steps=await list_mappings(
            session=session, principal=principal, deployment_id=deployment.id
        ),
    )


async def deployment_detail(
    *, session: AsyncSession, principal: Principal, deployment_id: UUID
) -> DeploymentDetail:
    live = await deployment_live(session=session, principal=principal, deployment_id=deployment_id)
    deployment = live.deployment
    repository = (
        await session.get(Repository, deployment.repository_id)
        if deployment.repository_id
        else None
    )
    names = (
        await template_names(session, {deployment.template_id}) if deployment.template_id else {}
    )
    launched = await launchers(session, [deployment])
    return DeploymentDetail(
        **live.context(),
        repository=repository,
        secret_names=sorted(service.secret_environment(deployment)),
        template_name=names.get(deployment.template_id) if deployment.template_id else None,
        launcher=launched.get(deployment.id),
        target=await _target_view(session, deployment.target),
    )


# The wizard's review -------------------------------------------------------------------------


@dataclass
class ScriptChosen:
    """A chosen script in run order: its path in the catalogue (None when it is not there)."""

    script_id: UUID
    path: str | None
    arguments: str = ""


@dataclass
class WizardReview(PageView):
    """The names behind the ids the wizard carries: repository, scripts, hosts, CI/CD jobs."""

    repository: RepositoryRead | None
    chosen_hosts: list[Host]
    jobs: dict[str, CicdJob]
    # The chosen repository is not the tenant's (or not a repository id at all).
    repository_unknown: bool = False
    scripts: list[ScriptChosen] = field(default_factory=list)
    # The names of the groups a target rule names, by name.
    group_names: list[str] = field(default_factory=list)
    # Why the hosts could not be resolved (an unknown group, a bad tag).
    target_problem: str | None = None
    # The catalogue could be read (else a script without a path is not known to be missing).
    catalogue_read: bool = True


def _uuid(value: str) -> UUID | None:
    try:
        return UUID(value)
    except ValueError:
        return None


async def _script_paths(
    runtime: Runtime, principal: Principal, repository_id: UUID | None, ref: str | None
) -> dict[UUID, str] | None:
    """The catalogue's paths by id (briefly cached); None when it cannot be read now."""
    if repository_id is None:
        return None
    try:
        browser = await open_browser(
            runtime=runtime, principal=principal, repository_id=repository_id
        )
        catalogue = await browser.scripts(ref)
    except ShipyardError:
        return None
    return {script.id: script.path for script in catalogue.scripts}


async def wizard_review(
    *,
    runtime: Runtime,
    principal: Principal,
    repository_id: str,
    ref: str | None,
    scripts: list[tuple[UUID, str]],
    target: dict[str, Any],
    cicd_job_ids: list[str],
) -> WizardReview:
    """The review in names: the catalogue read (cached) first, then one short session.

    ``scripts`` are (id, arguments) in run order; ``target`` is the wizard's host_ids,
    group_ids and tags. The hosts are listed as the rule resolves now, by name.
    """
    chosen = _uuid(repository_id) if repository_id else None
    paths = await _script_paths(runtime, principal, chosen, ref)
    async with runtime.db.session(
        tenant_id=principal.tenant_id, user_id=principal.user_id
    ) as session:
        view = WizardReview(
            repository=None,
            chosen_hosts=[],
            jobs={},
            scripts=[
                ScriptChosen(
                    script_id=script_id, path=(paths or {}).get(script_id), arguments=arguments
                )
                for script_id, arguments in scripts
            ],
            catalogue_read=paths is not None,
        )
        if repository_id:
            try:
                if chosen is None:
                    raise ValueError(repository_id)
                view.repository = await read_repository(
                    session=session, principal=principal, repository_id=chosen
                )
            except (ShipyardError, ValueError):
                view.repository_unknown = True
        await _review_hosts(session, principal, target, view)
        job_uuids = [job_id for value in cicd_job_ids if (job_id := _uuid(value))]
        view.jobs = {
            str(job.id): job
            for job in (
                await session.scalars(
                    select(CicdJob).where(
                        CicdJob.id.in_(job_uuids), CicdJob.tenant_id == principal.tenant_id
                    )
                )
            ).all()
        }
    return view


async def _review_hosts(
    session: AsyncSession, principal: Principal, target: dict[str, Any], view: WizardReview
) -> None:
    try:
        rule = Target.model_validate(target)
        host_ids = await resolve_target(session=session, tenant_id=principal.tenant_id, target=rule)
    except ValidationError as exc:
        view.target_problem = "; ".join(str(error["msg"]) for error in exc.errors())
        return
    except ShipyardError as exc:
        view.target_problem = exc.message
        return
    if rule.group_ids:
        view.group_names = list(
            await session.scalars(
                select(HostGroup.name)
                .where(HostGroup.id.in_(rule.group_ids))
                .order_by(HostGroup.name)
            )
        )
    if host_ids:
        hosts = {
            host.id: host
            for host in await session.scalars(select(Host).where(Host.id.in_(host_ids)))
        }
        view.chosen_hosts = [hosts[host_id] for host_id in host_ids if host_id in hosts]


# The dashboard -------------------------------------------------------------------------------


@dataclass
class Dashboard:
    recent: list[Deployment] = field(default_factory=list)
    running: list[Deployment] = field(default_factory=list)
    failed: list[Deployment] = field(default_factory=list)
    hosts_by_status: dict[str, int] = field(default_factory=dict)
    pinned: list[Repository] = field(default_factory=list)
    # The getting-started checklist: whether the tenant has a repository and has run anything.
    has_repository: bool = False
    has_deployment: bool = False

    @property
    def host_count(self) -> int:
        return sum(self.hosts_by_status.values())

    @property
    def getting_started(self) -> bool:
        """Whether the checklist shows: until a repository, a host and a first run exist."""
        return not (self.has_repository and self.host_count and self.has_deployment)


async def dashboard(*, session: AsyncSession, principal: Principal, now: datetime) -> Dashboard:
    """What is running, what failed this week, hosts by status, the caller's pinned repositories."""
    tenant = Deployment.tenant_id == principal.tenant_id
    recent = await session.scalars(
        select(Deployment)
        .where(tenant)
        .order_by(Deployment.created_at.desc())
        .limit(DASHBOARD_RECENT)
    )
    running = await session.scalars(
        select(Deployment)
        .where(tenant, Deployment.status.in_(RUNNING_STATUSES))
        .order_by(Deployment.started_at.desc().nulls_last(), Deployment.created_at.desc())
        .limit(DASHBOARD_LIST_LIMIT)
    )
    finished_at = func.coalesce(Deployment.completed_at, Deployment.created_at)
    failed = await session.scalars(
        select(Deployment)
        .where(
            tenant,
            Deployment.status.in_(FAILED_STATUSES),
            finished_at >= now - timedelta(days=7),
        )
        .order_by(finished_at.desc())
        .limit(DASHBOARD_LIST_LIMIT)
    )
    host_rows = await session.execute(
        select(Host.status, func.count())
        .where(Host.tenant_id == principal.tenant_id)
        .group_by(Host.status)
    )
    counts = {status: int(count) for status, count in host_rows.all()}
    pinned = await session.scalars(
        select(Repository)
        .join(ProfileRepositoryPin, ProfileRepositoryPin.repository_id == Repository.id)
        .where(ProfileRepositoryPin.profile_id == principal.user_id)
        .order_by(func.lower(Repository.name))
    )
    a_repository = await session.scalar(
        select(Repository.id).where(Repository.tenant_id == principal.tenant_id).limit(1)
    )
    recent_list = list(recent.all())
    return Dashboard(
        recent=recent_list,
        running=list(running.all()),
        failed=list(failed.all()),
        hosts_by_status={status: counts[status] for status in HOST_STATUSES if counts.get(status)},
        pinned=list(pinned.all()),
        has_repository=a_repository is not None,
        has_deployment=bool(recent_list),
    )


# The wizard shows at most this many hosts and CI/CD jobs to pick from (it filters by search).
WIZARD_LIST_LIMIT = 200


@dataclass
class WizardHosts(PageView):
    """What the hosts step offers: hosts by name, groups (id, name, members) and every tag."""

    hosts: list[Host]
    groups: list[tuple[UUID, str, int]]
    tags: list[str]


async def wizard_hosts(
    *, session: AsyncSession, principal: Principal, status: str | None, search: str | None
) -> WizardHosts:
    """The hosts, groups and tags the wizard offers, by name."""
    shown, _ = await list_hosts(
        session=session,
        tenant_id=principal.tenant_id,
        status=status,
        host_type=None,
        search=search,
        limit=WIZARD_LIST_LIMIT,
        cursor=None,
    )
    groups = await session.execute(
        select(HostGroup.id, HostGroup.name, func.count(HostGroupMember.host_id))
        .outerjoin(HostGroupMember, HostGroupMember.group_id == HostGroup.id)
        .where(HostGroup.tenant_id == principal.tenant_id)
        .group_by(HostGroup.id, HostGroup.name)
        .order_by(HostGroup.name)
        .limit(WIZARD_LIST_LIMIT)
    )
    tags = await session.scalars(
        select(HostTag.tag)
        .where(HostTag.tenant_id == principal.tenant_id)
        .distinct()
        .order_by(HostTag.tag)
        .limit(WIZARD_LIST_LIMIT)
    )
    return WizardHosts(
        hosts=sorted(shown, key=lambda host: host.name.lower()),
        groups=[(group_id, name, int(count)) for group_id, name, count in groups.all()],
        tags=list(tags.all()),
    )


async def wizard_jobs(*, session: AsyncSession, principal: Principal) -> list[CicdJob]:
    """The CI/CD jobs the wizard offers as steps, by name."""
    jobs, _ = await list_jobs(
        session=session,
        principal=principal,
        provider_id=None,
        search=None,
        limit=WIZARD_LIST_LIMIT,
        cursor=None,
    )
    return sorted(jobs, key=lambda job: job.name.lower())
