"""Reads of a deployment's log by line number: ranges by offset, search, landmarks (issue 17).

A *view* is the deployment's log narrowed by optional filters (host, script row, level, stream,
failed scripts only); line numbers are 1-based positions in that view, in ``seq`` order, except
in the whole log of a numbered run, where each line keeps its own number (below).

The whole log of a run numbered at write time (0016: ``deployments.log_lines``,
``deployment_logs.line_no``) is read by number: its size is ``log_lines`` less the lines
retention pruned (always a prefix: the lines kept are ``first .. log_lines``), and a range is
``line_no BETWEEN`` on the ``(deployment_id, line_no)`` index, constant time at any depth. Its
lines are numbered by ``line_no`` (``first_line`` is 1 unless retention pruned the run's first
lines), so a permalink ``#L1234`` names the same line before and after pruning; position ``p``
(``offset``) is ``line_no = first + p``.
A filtered view, or a run logged before 0016, is counted and offset on the ``(deployment_id,
seq)`` index; see docs/benchmarks.md, "Log viewer", for what that costs deep in a million lines.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from sqlalchemy import ColumnElement, func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from shipyard.db import tenant_clause
from shipyard.deployments.models import Deployment, DeploymentLog, DeploymentScript
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

    @property
    def whole(self) -> bool:
        """No filter: every line of the log."""
        return (
            self.host_id is None
            and self.script_id is None
            and self.level is None
            and self.stream is None
            and not self.failed_only
        )


@dataclass(frozen=True)
class Numbering:
    """The stored lines of a numbered run's whole log: ``line_no`` ``first`` .. ``last``."""

    first: int
    last: int

    @property
    def total(self) -> int:
        return max(0, self.last - self.first + 1)


async def numbering(session: AsyncSession, deployment_id: UUID, view: LogView) -> Numbering | None:
    """How the view's lines are numbered in the database, or None: count them (a filtered view,
    or a run logged before 0016)."""
    if not view.whole:
        return None
    row = (
        await session.execute(
            select(Deployment.log_lines, Deployment.log_pruned_at).where(
                Deployment.id == deployment_id, tenant_clause(session, Deployment.tenant_id)
            )
        )
    ).one_or_none()
    if row is None or row.log_lines is None:
        return None
    last = int(row.log_lines)
    if row.log_pruned_at is None:
        return Numbering(first=1, last=last)
    # Retention deletes a run's lines from its first one on (retention.py), so what is left is
    # one block ending at the last line: where it starts is one step into the index.
    first = await session.scalar(
        select(DeploymentLog.line_no)
        .where(
            DeploymentLog.deployment_id == deployment_id,
            tenant_clause(session, DeploymentLog.tenant_id),
            DeploymentLog.line_no.is_not(None),
        )
        .order_by(DeploymentLog.line_no)
        .limit(1)
    )
    return Numbering(first=last + 1 if first is None else int(first), last=last)


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
    numbered = await numbering(session, deployment_id, view)
    if numbered is not None:
        return await _read_numbered(session, clauses, numbered, offset, limit, tail=tail)
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
    lines = [_line_read(row, offset + index + 1) for index, row in enumerate(rows)]
    return LogRange(total=total, offset=offset, last_seq=last_seq, lines=lines)


def _line_read(row: DeploymentLog, line: int) -> LogLineRead:
    return LogLineRead(
        line=line,
        seq=row.seq,
        timestamp=row.timestamp,
        host_id=row.host_id,
        script_id=row.deployment_script_id,
        level=row.level,
        stream=row.stream,
        message=row.message,
    )


async def _read_numbered(
    session: AsyncSession,
    clauses: list[ColumnElement[bool]],
    numbered: Numbering,
    offset: int,
    limit: int,
    *,
    tail: bool,
) -> LogRange:
    """A range of a numbered run's whole log: ``line_no BETWEEN``, no count, no offset walk."""
    total = numbered.total
    if total == 0:
        return LogRange(total=0, offset=offset, last_seq=None, lines=[], first_line=numbered.first)
    if tail:
        offset = max(0, total - limit)
    low = numbered.first + offset
    high = min(numbered.last, low + limit - 1)
    rows: list[DeploymentLog] = []
    if low <= high:
        found = await session.scalars(
            select(DeploymentLog)
            .where(*clauses, DeploymentLog.line_no.between(low, high))
            .order_by(DeploymentLog.line_no)
        )
        rows = list(found.all())
    # The live stream resumes after the last line's seq (a run's seq order is its line order).
    last_seq = next((row.seq for row in rows if row.line_no == numbered.last), None)
    if last_seq is None:
        last_seq = await session.scalar(
            select(DeploymentLog.seq).where(*clauses, DeploymentLog.line_no == numbered.last)
        )
    lines = [_line_read(row, int(row.line_no)) for row in rows if row.line_no is not None]
    return LogRange(
        total=total, offset=offset, last_seq=last_seq, lines=lines, first_line=numbered.first
    )


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
    numbers = await numbering(session, deployment_id, view)
    if numbers is not None:
        # Numbered at write time: no window over the whole log to number the hits.
        line = DeploymentLog.line_no.label("line")
        clauses.append(DeploymentLog.line_no.between(numbers.first, numbers.last))
    else:
        line = func.row_number().over(order_by=DeploymentLog.seq).label("line")
    numbered = select(line, DeploymentLog.message).where(*clauses).subquery()
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
    numbers = await numbering(session, deployment_id, view)

    async def line_of(seq: int | None) -> int | None:
        if seq is None:
            return None
        if numbers is None:
            return await _line_of(session, clauses, seq)
        line_no = await session.scalar(
            select(DeploymentLog.line_no).where(*clauses, DeploymentLog.seq == seq)
        )
        return None if line_no is None else int(line_no)

    first_error_line = await line_of(
        await session.scalar(
            select(DeploymentLog.seq)
            .where(*clauses, DeploymentLog.level == "ERROR")
            .order_by(DeploymentLog.seq)
            .limit(1)
        )
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
            script_id=failed.id, host_id=failed.host_id, line=await line_of(first_seq)
        )
    return LogLandmarks(first_error_line=first_error_line, first_failed_script=landmark)
