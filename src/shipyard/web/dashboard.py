"""What the dashboard shows, read straight from the models in the tenant's session."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from shipyard.accounts.principal import Principal
from shipyard.deployments.models import Deployment
from shipyard.git.models import ProfileRepositoryPin, Repository
from shipyard.hosts.models import HOST_STATUSES, Host

RECENT = 10
FAILED_STATUSES = ("failed", "partial")
RUNNING_STATUSES = ("in_progress",)


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


async def load_dashboard(
    session: AsyncSession, principal: Principal, *, now: datetime | None = None
) -> Dashboard:
    now = now or datetime.now(UTC)
    tenant = Deployment.tenant_id == principal.tenant_id
    recent = await session.scalars(
        select(Deployment).where(tenant).order_by(Deployment.created_at.desc()).limit(RECENT)
    )
    running = await session.scalars(
        select(Deployment)
        .where(tenant, Deployment.status.in_(RUNNING_STATUSES))
        .order_by(Deployment.started_at.desc().nulls_last(), Deployment.created_at.desc())
        .limit(50)
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
        .limit(50)
    )
    host_rows = await session.execute(
        select(Host.status, func.count())
        .where(Host.tenant_id == principal.tenant_id)
        .group_by(Host.status)
    )
    counts = {status: int(count) for status, count in host_rows.all()}
    hosts_by_status = {status: counts[status] for status in HOST_STATUSES if counts.get(status)}
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
        hosts_by_status=hosts_by_status,
        pinned=list(pinned.all()),
    )
