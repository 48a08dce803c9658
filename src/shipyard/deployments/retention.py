"""Log retention per tenant: the policy (keep N days, or N lines per run), the size of the
tenant's log, and the daily pruning of finished runs' lines.

Only finished runs are pruned (``FINAL_DEPLOYMENT_STATUSES``; never pending, scheduled, in
progress or pending approval), and every delete says so again in its own statement, so a run
cannot be touched even if its status changed after it was planned. A pruned run keeps its
deployment row, its script rows (results, exit codes, output tails) and gets ``log_pruned_at``.

Deleting is done in bounded batches, each its own short transaction (:func:`prune_logs` is
the job's boundary and commits per batch): a million-line log never holds one giant
transaction, its locks or its WAL at once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING
from uuid import UUID

from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from shipyard.accounts.audit import audit
from shipyard.accounts.models import Tenant
from shipyard.accounts.principal import Actor
from shipyard.deployments.models import FINAL_DEPLOYMENT_STATUSES, Deployment
from shipyard.deployments.retention_schemas import LogRetentionRead, LogRetentionUpdate, LogSize
from shipyard.errors import NotFound

if TYPE_CHECKING:
    from shipyard.config import Settings
    from shipyard.db import Database

logger = logging.getLogger(__name__)

# Lines deleted per transaction: ~10,000 rows is a few tens of milliseconds of locks and WAL.
PRUNE_BATCH_LINES = 10_000

# --- the policy and the size ------------------------------------------------------------------

# The tenant's lines, through the (deployment_id, seq) index one run at a time (the table has
# no tenant index: it is written at 100,000+ lines/s).
_TENANT_ROWS = text(
    "SELECT count(*) FROM deployment_logs l "
    "WHERE l.deployment_id IN (SELECT d.id FROM deployments d WHERE d.tenant_id = :tenant_id)"
)
# The log table's size on disk (heap, TOAST and indexes) and PostgreSQL's row estimate (-1 or 0
# before the first VACUUM/ANALYZE).
_TABLE_SIZE = text(
    "SELECT pg_total_relation_size(c.oid), c.reltuples FROM pg_class c "
    "WHERE c.oid = to_regclass('deployment_logs')"
)
# Before the first ANALYZE: the average row of a small sample (no index share).
_SAMPLE_ROW_BYTES = text(
    "SELECT avg(pg_column_size(s.*)) FROM (SELECT * FROM deployment_logs LIMIT 1000) s"
)


async def log_size(*, session: AsyncSession, tenant_id: UUID) -> LogSize:
    """How many log lines the tenant has, and an estimate of the bytes they take."""
    rows = int(await session.scalar(_TENANT_ROWS, {"tenant_id": tenant_id}) or 0)
    if rows == 0:
        return LogSize(rows=0, bytes=0)
    table = (await session.execute(_TABLE_SIZE)).one_or_none()
    if table is not None and table[1] is not None and float(table[1]) >= 1:
        per_row = float(table[0]) / float(table[1])
    else:
        per_row = float(await session.scalar(_SAMPLE_ROW_BYTES) or 0)
    return LogSize(rows=rows, bytes=round(rows * per_row))


@dataclass(frozen=True)
class RetentionDefaults:
    """The installation's policy for tenants that set none of their own (None: keep)."""

    days: int | None = None
    lines: int | None = None

    @classmethod
    def of(cls, settings: Settings) -> RetentionDefaults:
        return cls(days=settings.log_retention_days, lines=settings.log_retention_lines)


def _policy_read(
    days: int | None, lines: int | None, defaults: RetentionDefaults, size: LogSize
) -> LogRetentionRead:
    return LogRetentionRead(
        days=days,
        lines=lines,
        default_days=defaults.days,
        default_lines=defaults.lines,
        effective_days=days if days is not None else defaults.days,
        effective_lines=lines if lines is not None else defaults.lines,
        size=size,
    )


async def _tenant(session: AsyncSession, tenant_id: UUID, *, lock: bool = False) -> Tenant:
    query = select(Tenant).where(Tenant.id == tenant_id)
    tenant = await session.scalar(query.with_for_update() if lock else query)
    if tenant is None:
        raise NotFound("tenant not found")
    return tenant


async def read_policy(
    *, session: AsyncSession, tenant_id: UUID, defaults: RetentionDefaults
) -> LogRetentionRead:
    """The tenant's log retention policy, the one in force, and the size of its log."""
    tenant = await _tenant(session, tenant_id)
    return _policy_read(
        tenant.log_retention_days,
        tenant.log_retention_lines,
        defaults,
        await log_size(session=session, tenant_id=tenant_id),
    )


async def set_policy(
    *, session: AsyncSession, actor: Actor, data: LogRetentionUpdate, defaults: RetentionDefaults
) -> LogRetentionRead:
    """Replace the tenant's log retention policy (null: the installation's); audited."""
    tenant = await _tenant(session, actor.tenant_id, lock=True)
    tenant.log_retention_days = data.days
    tenant.log_retention_lines = data.lines
    await session.flush()
    await audit(
        session,
        actor=actor,
        action="log_retention.update",
        resource_type="tenant",
        resource_id=tenant.id,
        details={"days": data.days, "lines": data.lines},
    )
    return _policy_read(
        data.days, data.lines, defaults, await log_size(session=session, tenant_id=actor.tenant_id)
    )


# --- pruning ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PruneTarget:
    """One finished run to prune: all its lines (``up_to_seq`` None) or those up to a seq.

    ``up_to_line``: for a run numbered at write time (0016), the lines up to that number go,
    first ones first, so the lines kept are always one block ending at the last line (what
    log_reads.numbering relies on), even when a prune is interrupted between batches.
    """

    deployment_id: UUID
    up_to_seq: int | None
    numbered: bool = False
    up_to_line: int | None = None


@dataclass
class PruneReport:
    runs: int = 0
    lines: int = 0
    batches: int = 0


# Bound as :final in every statement below.
_FINAL = list(FINAL_DEPLOYMENT_STATUSES)

# A tenant's own policy, else the installation's (:default_days, :default_lines; NULL: keep):
# coalesce(t.log_retention_days, :default_days) and the same of lines, below.
# Finished runs of tenants keeping N days, ended more than N days ago, with lines left.
_EXPIRED_RUNS = text(
    "SELECT d.id FROM deployments d JOIN tenants t ON t.id = d.tenant_id "
    "WHERE coalesce(t.log_retention_days, CAST(:default_days AS integer)) IS NOT NULL "
    "AND d.status = ANY(CAST(:final AS text[])) "
    "AND coalesce(d.completed_at, d.created_at) "
    "    < :now - make_interval("
    "        days => coalesce(t.log_retention_days, CAST(:default_days AS integer))) "
    "AND EXISTS (SELECT 1 FROM deployment_logs l WHERE l.deployment_id = d.id) "
    "ORDER BY coalesce(d.completed_at, d.created_at)"
)
# Finished runs of tenants keeping N lines per run (each is probed below), but for numbered
# runs (0016) that wrote no more than N: they have nothing to lose.
_LINE_LIMITED_RUNS = text(
    "SELECT d.id, coalesce(t.log_retention_lines, CAST(:default_lines AS integer)), d.log_lines "
    "FROM deployments d JOIN tenants t ON t.id = d.tenant_id "
    "WHERE coalesce(t.log_retention_lines, CAST(:default_lines AS integer)) IS NOT NULL "
    "AND (d.log_lines IS NULL "
    "     OR d.log_lines > coalesce(t.log_retention_lines, CAST(:default_lines AS integer))) "
    "AND d.status = ANY(CAST(:final AS text[])) "
    "ORDER BY coalesce(d.completed_at, d.created_at)"
)
# The newest line a run must lose to keep its newest N: the (N+1)-th from the end, read
# backwards on the (deployment_id, seq) index (at most N+1 index entries; NULL: nothing to do).
_LINES_CUTOFF = text(
    "SELECT seq FROM deployment_logs WHERE deployment_id = :deployment_id "
    "ORDER BY seq DESC OFFSET :keep LIMIT 1"
)
# A numbered run (0016) keeping its last N lines loses those numbered up to log_lines - N: is
# any of them still stored? (one step into the (deployment_id, line_no) index)
_NUMBERED_CUTOFF_LEFT = text(
    "SELECT EXISTS (SELECT 1 FROM deployment_logs WHERE deployment_id = :deployment_id "
    "AND line_no IS NOT NULL AND line_no <= :up_to_line)"
)
# One batch of a numbered run's lines, first numbers first (see PruneTarget), while it is
# finished.
_DELETE_NUMBERED_BATCH = text(
    "DELETE FROM deployment_logs WHERE ctid = ANY(ARRAY("
    "  SELECT l.ctid FROM deployment_logs l WHERE l.deployment_id = :deployment_id"
    "  AND l.line_no IS NOT NULL"
    "  AND (CAST(:up_to_line AS bigint) IS NULL OR l.line_no <= CAST(:up_to_line AS bigint))"
    "  ORDER BY l.line_no LIMIT :batch)) "
    "AND EXISTS (SELECT 1 FROM deployments d"
    "  WHERE d.id = :deployment_id AND d.status = ANY(CAST(:final AS text[])))"
)
# One batch: a run's lines (all, or up to a seq) by their physical address, and only while the
# run is finished (checked again here: a plan is never trusted).
_DELETE_BATCH = text(
    "DELETE FROM deployment_logs WHERE ctid = ANY(ARRAY("
    "  SELECT l.ctid FROM deployment_logs l WHERE l.deployment_id = :deployment_id"
    "  AND (CAST(:up_to_seq AS bigint) IS NULL OR l.seq <= CAST(:up_to_seq AS bigint))"
    "  LIMIT :batch)) "
    "AND EXISTS (SELECT 1 FROM deployments d"
    "  WHERE d.id = :deployment_id AND d.status = ANY(CAST(:final AS text[])))"
)


async def plan_pruning(
    *, session: AsyncSession, now: datetime, defaults: RetentionDefaults
) -> list[PruneTarget]:
    """Every finished run whose lines the policies of their tenants want gone (system session)."""
    policy = {"default_days": defaults.days, "default_lines": defaults.lines, "final": _FINAL}
    expired = [row[0] for row in await session.execute(_EXPIRED_RUNS, {"now": now, **policy})]
    numbered_runs = set(
        (
            await session.scalars(
                select(Deployment.id).where(
                    Deployment.id.in_(expired), Deployment.log_lines.is_not(None)
                )
            )
        ).all()
        if expired
        else ()
    )
    targets = [
        PruneTarget(deployment_id, None, numbered=deployment_id in numbered_runs)
        for deployment_id in expired
    ]
    whole = set(expired)
    limited = (await session.execute(_LINE_LIMITED_RUNS, policy)).all()
    for deployment_id, keep, log_lines in limited:
        if deployment_id in whole:
            continue
        if log_lines is not None:
            up_to_line = int(log_lines) - int(keep)
            if up_to_line > 0 and await session.scalar(
                _NUMBERED_CUTOFF_LEFT, {"deployment_id": deployment_id, "up_to_line": up_to_line}
            ):
                targets.append(
                    PruneTarget(deployment_id, None, numbered=True, up_to_line=up_to_line)
                )
            continue
        cutoff = await session.scalar(
            _LINES_CUTOFF, {"deployment_id": deployment_id, "keep": int(keep)}
        )
        if cutoff is not None:
            targets.append(PruneTarget(deployment_id, int(cutoff)))
    return targets


async def delete_log_batch(
    *, session: AsyncSession, target: PruneTarget, now: datetime, batch: int
) -> int:
    """Delete up to ``batch`` of the target's lines and mark the run pruned; how many went."""
    deleted = 0
    if target.numbered:
        result = await session.execute(
            _DELETE_NUMBERED_BATCH,
            {
                "deployment_id": target.deployment_id,
                "up_to_line": target.up_to_line,
                "batch": batch,
                "final": _FINAL,
            },
        )
        deleted = int(getattr(result, "rowcount", 0) or 0)
    if not target.numbered or (deleted < batch and target.up_to_line is None):
        # All of a run's lines: after its numbered ones, any it holds without a number.
        result = await session.execute(
            _DELETE_BATCH,
            {
                "deployment_id": target.deployment_id,
                "up_to_seq": target.up_to_seq,
                "batch": batch - deleted,
                "final": _FINAL,
            },
        )
        deleted += int(getattr(result, "rowcount", 0) or 0)
    if deleted:
        # Marked in the transaction of each batch that deletes: an interrupted prune is
        # finished by the next run of the job, and the page already says the log was pruned.
        await session.execute(
            update(Deployment)
            .where(Deployment.id == target.deployment_id)
            .values(log_pruned_at=now)
            .execution_options(synchronize_session=False)
        )
    return deleted


async def prune_logs(
    *,
    db: Database,
    now: datetime,
    defaults: RetentionDefaults,
    batch: int = PRUNE_BATCH_LINES,
) -> PruneReport:
    """Apply every tenant's policy (or the installation's) to the finished runs; one short
    transaction per batch.

    The job's boundary: it opens (and commits) its own system sessions.
    """
    async with db.session(system=True) as session:
        targets = await plan_pruning(session=session, now=now, defaults=defaults)
    report = PruneReport()
    for target in targets:
        deleted_here = 0
        while True:
            async with db.session(system=True) as session:
                deleted = await delete_log_batch(
                    session=session, target=target, now=now, batch=batch
                )
            report.batches += 1
            deleted_here += deleted
            if deleted < batch:
                break
        if deleted_here:
            report.runs += 1
            report.lines += deleted_here
    logger.info(
        "log retention: %d lines of %d runs deleted in %d batches",
        report.lines,
        report.runs,
        report.batches,
    )
    return report
