"""What the web pages about deployments show: one read per page, in the tenant's session.

The web routes render what these return and query nothing themselves. A page that a flow's
route renders (the wizard's review after a refused submit) reads through the database in its own
short session, since that route holds none.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from shipyard.accounts.principal import Principal
from shipyard.cicd.models import CicdJob
from shipyard.cicd.schemas import MappingRead
from shipyard.cicd.service import list_jobs, list_mappings
from shipyard.db import Database
from shipyard.deployments import service
from shipyard.deployments.models import (
    DEPLOYMENT_STATUSES,
    FINAL_DEPLOYMENT_STATUSES,
    Deployment,
    DeploymentScript,
)
from shipyard.errors import ShipyardError
from shipyard.git.models import ProfileRepositoryPin, Repository
from shipyard.git.repositories import read_repository
from shipyard.git.schemas import RepositoryRead
from shipyard.hosts.models import HOST_STATUSES, Host
from shipyard.hosts.service import list_hosts

LIST_PAGE_SIZE = 25
LOG_DOWNLOAD_PAGE = 5000
DASHBOARD_RECENT = 10
DASHBOARD_LIST_LIMIT = 50
FAILED_STATUSES = ("failed", "partial")
RUNNING_STATUSES = ("in_progress",)


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
class DeploymentList(PageView):
    deployments: list[Deployment]
    next_cursor: str | None
    # (id, owner, name) of the tenant's repositories, for the filter.
    repositories: list[tuple[UUID, str | None, str]]


async def deployment_list(
    *,
    session: AsyncSession,
    cursor: str | None,
    status: str | None,
    repository_id: UUID | None,
    search: str | None,
) -> DeploymentList:
    """One page of the list, newest first; an unknown status filter is ignored."""
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
    )


# A deployment's page -------------------------------------------------------------------------


@dataclass
class DeploymentLive(PageView):
    """The status, controls and results: the part of the page polled while it runs."""

    deployment: Deployment
    final: bool
    by_host: dict[UUID | None, list[DeploymentScript]]
    host_names: dict[UUID, str]
    steps: list[MappingRead]


@dataclass
class DeploymentDetail(DeploymentLive):
    repository: Repository | None = None
    secret_names: list[str] = field(default_factory=list)


async def deployment_live(
    *, session: AsyncSession, principal: Principal, deployment_id: UUID
) -> DeploymentLive:
    deployment = await service.get_deployment(session=session, deployment_id=deployment_id)
    scripts = await service.list_scripts(session=session, deployment_id=deployment.id)
    host_ids = set(deployment.host_ids) | {s.host_id for s in scripts if s.host_id}
    by_host: dict[UUID | None, list[DeploymentScript]] = {}
    for script in scripts:
        by_host.setdefault(script.host_id, []).append(script)
    return DeploymentLive(
        deployment=deployment,
        final=deployment.status in FINAL_DEPLOYMENT_STATUSES,
        by_host=by_host,
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
    return DeploymentDetail(
        **live.context(),
        repository=repository,
        secret_names=sorted(service.secret_environment(deployment)),
    )


async def log_text(
    *, db: Database, principal: Principal, deployment_id: UUID
) -> AsyncIterator[str]:
    """The deployment's whole log as text lines, read page by page in short sessions.

    Raises ``NotFound`` at once (before any line) when the deployment is not the tenant's.
    """
    async with db.session(tenant_id=principal.tenant_id, user_id=principal.user_id) as session:
        deployment = await service.get_deployment(session=session, deployment_id=deployment_id)
        names = await host_names(session, set(deployment.host_ids))
    return _log_lines(db, principal, deployment_id, names)


async def _log_lines(
    db: Database, principal: Principal, deployment_id: UUID, names: dict[UUID, str]
) -> AsyncIterator[str]:
    after: int | None = None
    while True:
        async with db.session(tenant_id=principal.tenant_id, user_id=principal.user_id) as session:
            page = await service.list_logs(
                session=session,
                deployment_id=deployment_id,
                after_seq=after,
                limit=LOG_DOWNLOAD_PAGE,
            )
        for line in page:
            host = names.get(line.host_id, "") if line.host_id else ""
            prefix = f"{line.timestamp.isoformat()} {line.level:<7}"
            yield f"{prefix} {host + ': ' if host else ''}{line.message}\n"
        if len(page) < LOG_DOWNLOAD_PAGE:
            return
        after = page[-1].seq


# The wizard's review -------------------------------------------------------------------------


@dataclass
class WizardReview(PageView):
    """The names behind the ids the wizard carries: repository, hosts and CI/CD jobs."""

    repository: RepositoryRead | None
    chosen_hosts: list[Host]
    jobs: dict[str, CicdJob]
    # The chosen repository is not the tenant's (or not a repository id at all).
    repository_unknown: bool = False


def _uuid(value: str) -> UUID | None:
    try:
        return UUID(value)
    except ValueError:
        return None


async def wizard_review(
    *,
    db: Database,
    principal: Principal,
    repository_id: str,
    host_ids: list[UUID],
    cicd_job_ids: list[str],
) -> WizardReview:
    """Read in a short session of its own: the submit route that shows it runs a flow."""
    async with db.session(tenant_id=principal.tenant_id, user_id=principal.user_id) as session:
        repository = None
        unknown = False
        if repository_id:
            chosen = _uuid(repository_id)
            try:
                if chosen is None:
                    raise ValueError(repository_id)
                repository = await read_repository(
                    session=session, principal=principal, repository_id=chosen
                )
            except (ShipyardError, ValueError):
                unknown = True
        hosts: list[Host] = []
        if host_ids:
            hosts = list(
                (
                    await session.scalars(
                        select(Host).where(
                            Host.id.in_(host_ids), Host.tenant_id == principal.tenant_id
                        )
                    )
                ).all()
            )
        job_uuids = [job_id for value in cicd_job_ids if (job_id := _uuid(value))]
        jobs = {
            str(job.id): job
            for job in (
                await session.scalars(
                    select(CicdJob).where(
                        CicdJob.id.in_(job_uuids), CicdJob.tenant_id == principal.tenant_id
                    )
                )
            ).all()
        }
    return WizardReview(
        repository=repository,
        chosen_hosts=sorted(hosts, key=lambda host: host.name.lower()),
        jobs=jobs,
        repository_unknown=unknown,
    )


# The dashboard -------------------------------------------------------------------------------


@dataclass
class Dashboard:
    recent: list[Deployment] = field(default_factory=list)
    running: list[Deployment] = field(default_factory=list)
    failed: list[Deployment] = field(default_factory=list)
    hosts_by_status: dict[str, int] = field(default_factory=dict)
    pinned: list[Repository] = field(default_factory=list)

    @property
    def host_count(self) -> int:
        return sum(self.hosts_by_status.values())


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
    return Dashboard(
        recent=list(recent.all()),
        running=list(running.all()),
        failed=list(failed.all()),
        hosts_by_status={status: counts[status] for status in HOST_STATUSES if counts.get(status)},
        pinned=list(pinned.all()),
    )


# The wizard shows at most this many hosts and CI/CD jobs to pick from (it filters by search).
WIZARD_LIST_LIMIT = 200


async def wizard_hosts(
    *, session: AsyncSession, principal: Principal, status: str | None, search: str | None
) -> list[Host]:
    """The hosts the wizard offers, by name."""
    shown, _ = await list_hosts(
        session=session,
        tenant_id=principal.tenant_id,
        status=status,
        host_type=None,
        search=search,
        limit=WIZARD_LIST_LIMIT,
        cursor=None,
    )
    return sorted(shown, key=lambda host: host.name.lower())


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
