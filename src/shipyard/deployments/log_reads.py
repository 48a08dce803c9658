"""Reads of a deployment's log by line number: ranges by offset, search, landmarks (issue 17).

A *view* is the deployment's log narrowed by optional filters (host, script row, level, stream,
failed scripts only); line numbers are 1-based positions in that view, in ``seq`` order. Every
query is led by the ``(deployment_id, seq)`` index; see docs/benchmarks.md, "Log viewer", for
what an offset deep into a million-line log costs.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from sqlalchemy import ColumnElement, func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from shipyard.db import tenant_clause
from shipyard.deployments.models import DeploymentLog, DeploymentScript
from shipyard.deployments.schemas import (
    FailedScriptLandmark,
    LogLandmarks,
    LogLineRead,
    LogRange,
    LogSearchResult,
)
from shipyard.deployments.service import get_deployment
from shipyard.errors import ValidationFailed

# A search scans the whole view; a pathological regular expression must not hold a connection.
SEARCH_TIMEOUT_MS = 10_000
_INVALID_REGEX = "2201B"
_QUERY_CANCELED = "57014"


@dataclass(frozen=True)
class LogView:
    """Which lines of a deployment's log are shown."""

    host_id: UUID | None = None
    script_id: UUID | None = None
    level: str | None = None
    stream: str | None = None
    failed_only: bool = False


def _view_clauses(
    session: AsyncSession, deployment_id: UUID, view: LogView
) -> list[ColumnElement[bool]]:
    clauses: list[ColumnElement[bool]] = [
        DeploymentLog.deployment_id == deployment_id,
        tenant_clause(session, DeploymentLog.tenant_id),
    ]
    if view.host_id is not None:
        clauses.append(DeploymentLog.host_id == view.host_id)
    if view.script_id is not None:
        clauses.append(DeploymentLog.deployment_script_id == view.script_id)
    if view.level is not None:
        clauses.append(DeploymentLog.level == view.level)
    if view.stream is not None:
        clauses.append(DeploymentLog.stream == view.stream)
    if view.failed_only:
        failed = select(DeploymentScript.id).where(
            DeploymentScript.deployment_id == deployment_id,
            DeploymentScript.status == "failed",
            tenant_clause(session, DeploymentScript.tenant_id),
        )
        clauses.append(DeploymentLog.deployment_script_id.in_(failed))
    return clauses


async def _line_of(session: AsyncSession, clauses: list[ColumnElement[bool]], seq: int) -> int:
    """The 1-based number in the view of the line ``seq`` (which the view holds)."""
    count = await session.scalar(
        select(func.count()).select_from(DeploymentLog).where(*clauses, DeploymentLog.seq <= seq)
    )
    return int(count or 0)


async def read_range(
    *,
    session: AsyncSession,
    deployment_id: UUID,
    view: LogView,
    offset: int,
    limit: int,
    tail: bool = False,
) -> LogRange:
    """Lines ``offset + 1`` .. ``offset + limit`` of the view (with ``tail``, its last ``limit``
    lines: a backward index scan, not an offset), with the view's size."""
    await get_deployment(session=session, deployment_id=deployment_id)
    clauses = _view_clauses(session, deployment_id, view)
    # The last line first, then the count up to it: a live run's new lines cannot make the
    # total and ``last_seq`` disagree.
    last_seq = await session.scalar(
        select(DeploymentLog.seq).where(*clauses).order_by(DeploymentLog.seq.desc()).limit(1)
    )
    if last_seq is None:
        return LogRange(total=0, offset=offset, last_seq=None, lines=[])
    total = await _line_of(session, clauses, last_seq)
    if tail:
        newest = await session.scalars(
            select(DeploymentLog)
            .where(*clauses, DeploymentLog.seq <= last_seq)
            .order_by(DeploymentLog.seq.desc())
            .limit(limit)
        )
        rows = list(reversed(newest.all()))
        offset = total - len(rows)
    else:
        ordered = await session.scalars(
            select(DeploymentLog)
            .where(*clauses, DeploymentLog.seq <= last_seq)
            .order_by(DeploymentLog.seq)
            .offset(offset)
            .limit(limit)
        )
        rows = list(ordered.all())
    lines = [
        LogLineRead(
            line=offset + index + 1,
            seq=row.seq,
            timestamp=row.timestamp,
            host_id=row.host_id,
            script_id=row.deployment_script_id,
            level=row.level,
            stream=row.stream,
            message=row.message,
        )
        for index, row in enumerate(rows)
    ]
    return LogRange(total=total, offset=offset, last_seq=last_seq, lines=lines)


def _sqlstate(exc: DBAPIError) -> str | None:
    state = getattr(exc.orig, "sqlstate", None)
    return state if isinstance(state, str) else None


async def search_log(
    *,
    session: AsyncSession,
    deployment_id: UUID,
    view: LogView,
    query: str,
    regex: bool,
    limit: int,
) -> LogSearchResult:
    """Line numbers (in the view) of the lines matching ``query``: ILIKE, or ``~*`` if ``regex``."""
    await get_deployment(session=session, deployment_id=deployment_id)
    if not query:
        raise ValidationFailed("enter something to search for", field="q")
    clauses = _view_clauses(session, deployment_id, view)
    numbered = (
        select(
            func.row_number().over(order_by=DeploymentLog.seq).label("line"),
            DeploymentLog.message,
        )
        .where(*clauses)
        .subquery()
    )
    if regex:
        match = numbered.c.message.regexp_match(query, flags="i")
    else:
        escaped = query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        match = numbered.c.message.ilike(f"%{escaped}%", escape="\\")
    statement = (
        select(numbered.c.line, func.count().over().label("count"))
        .where(match)
        .order_by(numbered.c.line)
        .limit(limit)
    )
    try:
        # A savepoint: a refused or cancelled search leaves the request's transaction usable,
        # and the statement timeout set inside it ends with it.
        async with session.begin_nested():
            await session.execute(
                text("SELECT set_config('statement_timeout', :timeout, true)"),
                {"timeout": str(SEARCH_TIMEOUT_MS)},
            )
            if regex:
                # Compile the expression once on an empty string: a bad one fails here.
                await session.execute(text("SELECT '' ~* :pattern"), {"pattern": query})
            rows = (await session.execute(statement)).all()
            await session.execute(text("SET LOCAL statement_timeout TO DEFAULT"))
    except DBAPIError as exc:
        state = _sqlstate(exc)
        if state == _INVALID_REGEX:
            raise ValidationFailed(
                f"not a valid regular expression: {exc.orig}".splitlines()[0], field="q"
            ) from None
        if state == _QUERY_CANCELED:
            raise ValidationFailed(
                f"the search took longer than {SEARCH_TIMEOUT_MS // 1000} s; make it more precise",
                field="q",
            ) from None
        raise
    count = int(rows[0][1]) if rows else 0
    return LogSearchResult(
        count=count, matches=[int(row[0]) for row in rows], truncated=count > len(rows)
    )


async def log_landmarks(
    *, session: AsyncSession, deployment_id: UUID, view: LogView
) -> LogLandmarks:
    """The view's first ERROR line, and the first failed script with its first line."""
    await get_deployment(session=session, deployment_id=deployment_id)
    clauses = _view_clauses(session, deployment_id, view)
    first_error_seq = await session.scalar(
        select(DeploymentLog.seq)
        .where(*clauses, DeploymentLog.level == "ERROR")
        .order_by(DeploymentLog.seq)
        .limit(1)
    )
    first_error_line = (
        await _line_of(session, clauses, first_error_seq) if first_error_seq is not None else None
    )
    failed = (
        await session.execute(
            select(DeploymentScript.id, DeploymentScript.host_id)
            .where(
                DeploymentScript.deployment_id == deployment_id,
                DeploymentScript.status == "failed",
                tenant_clause(session, DeploymentScript.tenant_id),
            )
            .order_by(
                DeploymentScript.completed_at.asc().nulls_last(),
                DeploymentScript.position,
                DeploymentScript.id,
            )
            .limit(1)
        )
    ).first()
    landmark: FailedScriptLandmark | None = None
    if failed is not None:
        first_seq = await session.scalar(
            select(DeploymentLog.seq)
            .where(*clauses, DeploymentLog.deployment_script_id == failed.id)
            .order_by(DeploymentLog.seq)
            .limit(1)
        )
        landmark = FailedScriptLandmark(
            script_id=failed.id,
            host_id=failed.host_id,
            line=await _line_of(session, clauses, first_seq) if first_seq is not None else None,
        )
    return LogLandmarks(first_error_line=first_error_line, first_failed_script=landmark)
