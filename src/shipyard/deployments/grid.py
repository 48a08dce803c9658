"""The results grid of a deployment: hosts x scripts, one cell per ``deployment_scripts`` row.

Read in a fixed number of queries whatever the run's size (the deployment, the script columns,
the per-host summary, the hosts' names, one page of cells), so a 1,000-host run's page or API
answer costs the same five statements as a two-host one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from shipyard.db import tenant_clause
from shipyard.deployments import service
from shipyard.deployments.models import (
    FINAL_DEPLOYMENT_STATUSES,
    SCRIPT_STATUSES,
    Deployment,
    DeploymentScript,
)
from shipyard.hosts.models import Host

# A cell that counts as failed (the grid's "failed only" filter, the "2 failed" of the progress,
# `--failed` of the CLI and the download): the script failed, or its worker was stopped.
FAILED_CELL_STATUSES = ("failed", "interrupted")
# A host is done when none of its scripts waits or runs.
FINAL_CELL_STATUSES = tuple(s for s in SCRIPT_STATUSES if s not in ("pending", "running"))
GRID_PAGE_SIZE = 100
MAX_PAGE_SIZE = 5000


@dataclass
class ScriptColumn:
    """One script of the run (a position in its run order), as its rows name it."""

    position: int
    name: str | None
    path: str | None

    @property
    def label(self) -> str:
        return self.name or self.path or f"script {self.position + 1}"


@dataclass
class Cell:
    """One ``deployment_scripts`` row."""

    id: UUID
    position: int
    script_id: UUID | None
    status: str
    exit_code: int | None
    started_at: datetime | None
    completed_at: datetime | None
    error: str | None

    @property
    def failed(self) -> bool:
        return self.status in FAILED_CELL_STATUSES


@dataclass
class HostRow:
    """A host of the run and its cells by position (a position it has no row for is absent)."""

    host_id: UUID | None
    name: str
    deleted: bool
    failed: bool
    done: bool
    cells: dict[int, Cell] = field(default_factory=dict)


@dataclass
class GridProgress:
    """Progress as "37/200 hosts done, 2 failed": hosts whose scripts all ended, hosts with a failed cell."""

    hosts_total: int
    hosts_done: int
    hosts_failed: int
    # Cells by status over the whole run, every status present (0 when none).
    cells: dict[str, int]

    @property
    def text(self) -> str:
        return f"{self.hosts_done}/{self.hosts_total} hosts done, {self.hosts_failed} failed"


@dataclass
class ResultsGrid:
    deployment: Deployment
    final: bool
    scripts: list[ScriptColumn]
    hosts: list[HostRow]
    progress: GridProgress
    failed_only: bool
    offset: int
    limit: int
    # Hosts that match the filter (the rows over every page).
    matching: int

    @property
    def next_offset(self) -> int | None:
        following = self.offset + self.limit
        return following if following < self.matching else None

    @property
    def previous_offset(self) -> int | None:
        return max(0, self.offset - self.limit) if self.offset > 0 else None


@dataclass
class _HostSummary:
    done: bool = False
    failed: bool = False


async def results_grid(
    *,
    session: AsyncSession,
    deployment_id: UUID,
    failed_only: bool = False,
    offset: int = 0,
    limit: int = GRID_PAGE_SIZE,
) -> ResultsGrid:
    """The grid of a deployment the session's tenant owns: one page of hosts, by name.

    Raises ``NotFound`` for another tenant's (or no) deployment.
    """
    deployment = await service.get_deployment(session=session, deployment_id=deployment_id)
    in_run = (
        DeploymentScript.deployment_id == deployment.id,
        tenant_clause(session, DeploymentScript.tenant_id),
    )
    columns = await session.execute(
        select(
            DeploymentScript.position,
            func.min(DeploymentScript.name),
            func.min(DeploymentScript.path),
        )
        .where(*in_run)
        .group_by(DeploymentScript.position)
        .order_by(DeploymentScript.position)
    )
    scripts = [ScriptColumn(position=p, name=n, path=pa) for p, n, pa in columns.all()]

    # Per host: done (no cell waiting or running), failed (a failed cell); cells by status.
    summary_rows = await session.execute(
        select(
            DeploymentScript.host_id,
            DeploymentScript.status,
            func.count(),
        )
        .where(*in_run)
        .group_by(DeploymentScript.host_id, DeploymentScript.status)
    )
    summaries: dict[UUID | None, _HostSummary] = {}
    unfinished: set[UUID | None] = set()
    cell_counts = dict.fromkeys(SCRIPT_STATUSES, 0)
    for host_id, status, count in summary_rows.all():
        summary = summaries.setdefault(host_id, _HostSummary())
        cell_counts[status] = cell_counts.get(status, 0) + int(count)
        if status in FAILED_CELL_STATUSES:
            summary.failed = True
        if status not in FINAL_CELL_STATUSES:
            unfinished.add(host_id)
    for host_id, summary in summaries.items():
        summary.done = host_id not in unfinished

    # The run's hosts: those it targeted (in order) and any a row names; names in one query.
    host_ids: list[UUID | None] = list(dict.fromkeys([*deployment.host_ids, *summaries]))
    known = [host_id for host_id in host_ids if host_id is not None]
    names: dict[UUID, str] = {}
    if known:
        rows = await session.execute(select(Host.id, Host.name).where(Host.id.in_(known)))
        names = {host_id: name for host_id, name in rows.all()}

    def sort_key(host_id: UUID | None) -> tuple[int, str, str]:
        name = names.get(host_id) if host_id is not None else None
        return (0 if name is not None else 1, (name or "").lower(), str(host_id or ""))

    ordered = sorted(host_ids, key=sort_key)
    if failed_only:
        ordered = [h for h in ordered if summaries.get(h, _HostSummary()).failed]
    limit = max(1, min(limit, MAX_PAGE_SIZE))
    offset = max(0, offset)
    page = ordered[offset : offset + limit]

    rows_by_host: dict[UUID | None, HostRow] = {}
    for host_id in page:
        summary = summaries.get(host_id, _HostSummary())
        rows_by_host[host_id] = HostRow(
            host_id=host_id,
            name=(names.get(host_id) or "deleted host") if host_id else "no host",
            deleted=host_id is not None and host_id not in names,
            failed=summary.failed,
            done=summary.done,
        )
    page_hosts = [h for h in page if h is not None]
    if page:
        cell_filter = (
            DeploymentScript.host_id.in_(page_hosts)
            if None not in rows_by_host
            else (DeploymentScript.host_id.in_(page_hosts) | DeploymentScript.host_id.is_(None))
        )
        cells = await session.execute(
            select(
                DeploymentScript.id,
                DeploymentScript.host_id,
                DeploymentScript.position,
                DeploymentScript.script_id,
                DeploymentScript.status,
                DeploymentScript.exit_code,
                DeploymentScript.started_at,
                DeploymentScript.completed_at,
                DeploymentScript.error,
            ).where(*in_run, cell_filter)
        )
        for row in cells.all():
            rows_by_host[row.host_id].cells[row.position] = Cell(
                id=row.id,
                position=row.position,
                script_id=row.script_id,
                status=row.status,
                exit_code=row.exit_code,
                started_at=row.started_at,
                completed_at=row.completed_at,
                error=row.error,
            )

    hosts_total = len([h for h in host_ids if h is not None]) or len(host_ids)
    return ResultsGrid(
        deployment=deployment,
        final=deployment.status in FINAL_DEPLOYMENT_STATUSES,
        scripts=scripts,
        hosts=[rows_by_host[h] for h in page],
        progress=GridProgress(
            hosts_total=hosts_total,
            hosts_done=sum(1 for h, s in summaries.items() if h is not None and s.done),
            hosts_failed=sum(1 for h, s in summaries.items() if h is not None and s.failed),
            cells=cell_counts,
        ),
        failed_only=failed_only,
        offset=offset,
        limit=limit,
        matching=len(ordered),
    )
