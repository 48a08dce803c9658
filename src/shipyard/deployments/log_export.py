"""A deployment's log as a file: streamed page by page, filtered as the grid and the CLI filter.

The download (web ``/deployments/{id}/log.txt[.gz]``, API ``.../logs/download``) and
``shipyard deploy logs`` read through here: the same host, script, failed-only and grep filters,
resolved once when the export opens (an unknown host or script is a 422 naming it, another
tenant's run a 404, both before the first byte). Lines are read in short sessions, keyset by
sequence number, a page at a time, so a million-line log is never held in memory; messages are
as stored (secrets were masked before they were written).
"""

from __future__ import annotations

import json
import zlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from uuid import UUID

from sqlalchemy import ColumnElement, Text, and_, cast, false, func, literal, or_, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from shipyard.accounts.principal import Principal
from shipyard.db import Database, tenant_clause
from shipyard.deployments import service
from shipyard.deployments.grid import FAILED_CELL_STATUSES
from shipyard.deployments.models import DeploymentLog, DeploymentScript
from shipyard.errors import ValidationFailed
from shipyard.hosts.models import Host

EXPORT_PAGE = 5000
MAX_GREP = 500
# A regular expression over a whole log may not hold a connection longer than this per page.
GREP_TIMEOUT = "10s"
ExportFormat = Literal["text", "jsonl"]


@dataclass(frozen=True)
class LogFilter:
    """What to keep. ``host``/``script`` are selectors as a user types them: an id, or a name
    (a host's name; a script's name or path, or its catalogue id, matching it on every host)."""

    host: str | None = None
    script: str | None = None
    failed_only: bool = False
    grep: str | None = None
    regex: bool = False


@dataclass(frozen=True)
class _Resolved:
    host_ids: frozenset[UUID] | None
    row_ids: frozenset[UUID] | None
    failed_rows: frozenset[UUID]
    failed_hosts: frozenset[UUID]
    failed_only: bool
    grep: str | None
    regex: bool


@dataclass
class LogExport:
    filename: str
    chunks: AsyncIterator[str]


def _uuid(value: str) -> UUID | None:
    try:
        return UUID(value)
    except ValueError:
        return None


async def _resolve(
    session: AsyncSession, deployment_id: UUID, host_ids: Sequence[UUID], wanted: LogFilter
) -> _Resolved:
    rows_in_run = (
        DeploymentScript.deployment_id == deployment_id,
        tenant_clause(session, DeploymentScript.tenant_id),
    )
    host_set: frozenset[UUID] | None = None
    if wanted.host:
        selector = wanted.host.strip()
        as_id = _uuid(selector)
        run_hosts = set(host_ids) | set(
            h
            for h in await session.scalars(
                select(DeploymentScript.host_id).where(*rows_in_run).distinct()
            )
            if h is not None
        )
        if as_id is not None and as_id in run_hosts:
            host_set = frozenset({as_id})
        else:
            found = await session.scalars(
                select(Host.id).where(Host.id.in_(run_hosts), Host.name == selector)
            )
            host_set = frozenset(found.all())
        if not host_set:
            raise ValidationFailed(f"no host {selector!r} in this deployment", field="host")
    row_set: frozenset[UUID] | None = None
    if wanted.script:
        selector = wanted.script.strip()
        as_id = _uuid(selector)
        match: ColumnElement[bool] = (
            or_(DeploymentScript.id == as_id, DeploymentScript.script_id == as_id)
            if as_id is not None
            else or_(DeploymentScript.name == selector, DeploymentScript.path == selector)
        )
        found_rows = await session.scalars(select(DeploymentScript.id).where(*rows_in_run, match))
        row_set = frozenset(found_rows.all())
        if not row_set:
            raise ValidationFailed(f"no script {selector!r} in this deployment", field="script")
    failed_rows: frozenset[UUID] = frozenset()
    failed_hosts: frozenset[UUID] = frozenset()
    if wanted.failed_only:
        failed = await session.execute(
            select(DeploymentScript.id, DeploymentScript.host_id).where(
                *rows_in_run, DeploymentScript.status.in_(FAILED_CELL_STATUSES)
            )
        )
        pairs = failed.all()
        failed_rows = frozenset(row_id for row_id, _ in pairs)
        failed_hosts = frozenset(host_id for _, host_id in pairs if host_id is not None)
    grep = (wanted.grep or "").strip() or None
    if grep is not None:
        if len(grep) > MAX_GREP:
            raise ValidationFailed(f"grep is longer than {MAX_GREP} characters", field="grep")
        if wanted.regex:
            try:
                async with session.begin_nested():
                    await session.execute(select(literal("").regexp_match(grep, flags="i")))
            except DBAPIError as exc:
                raise ValidationFailed(
                    "grep is not a valid regular expression", field="grep"
                ) from exc
    return _Resolved(
        host_ids=host_set,
        row_ids=row_set,
        failed_rows=failed_rows,
        failed_hosts=failed_hosts,
        failed_only=wanted.failed_only,
        grep=grep,
        regex=wanted.regex,
    )


def _conditions(resolved: _Resolved) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if resolved.host_ids is not None:
        where.append(DeploymentLog.host_id.in_(resolved.host_ids))
    if resolved.row_ids is not None:
        where.append(DeploymentLog.deployment_script_id.in_(resolved.row_ids))
    if resolved.failed_only:
        if not resolved.failed_rows:
            where.append(false())
        else:
            # The failed scripts' lines, and their hosts' own lines that belong to no script
            # (could not connect, could not upload).
            where.append(
                or_(
                    DeploymentLog.deployment_script_id.in_(resolved.failed_rows),
                    and_(
                        DeploymentLog.deployment_script_id.is_(None),
                        DeploymentLog.host_id.in_(resolved.failed_hosts),
                    ),
                )
            )
    if resolved.grep is not None:
        if resolved.regex:
            where.append(DeploymentLog.message.regexp_match(resolved.grep, flags="i"))
        else:
            escaped = resolved.grep.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            where.append(DeploymentLog.message.ilike(f"%{escaped}%", escape="\\"))
    return where


async def open_log_export(
    *,
    db: Database,
    principal: Principal,
    deployment_id: UUID,
    wanted: LogFilter,
    fmt: ExportFormat = "text",
) -> LogExport:
    """Check access and the filter now; return the file's name and its text, page by page."""
    async with db.session(tenant_id=principal.tenant_id, user_id=principal.user_id) as session:
        deployment = await service.get_deployment(session=session, deployment_id=deployment_id)
        resolved = await _resolve(session, deployment.id, deployment.host_ids, wanted)
        # The run's hosts by id (as text, as the pages hand ids over); a deleted one shows its id.
        rows = await session.execute(
            select(Host.id, Host.name).where(Host.id.in_(set(deployment.host_ids)))
        )
        names = {str(host_id): name for host_id, name in rows.all()}
    suffix = "" if wanted == LogFilter() else "-filtered"
    extension = "jsonl" if fmt == "jsonl" else "log"
    return LogExport(
        filename=f"deployment-{deployment_id}{suffix}.{extension}",
        chunks=_pages(db, principal, deployment_id, resolved, names, fmt),
    )


# PostgreSQL formats each line (timestamp, stream, message) as the text the file holds, and
# hands the host id over as text: no datetime, UUID or row object is built in Python per line
# (that was most of the time per line). Host names come from a dict, not a join, so the read
# stays the plain (deployment_id, seq) index range scan whatever the planner knows.
_STAMP = func.to_char(
    func.timezone("UTC", DeploymentLog.timestamp), 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z" '
)
# `` [stream] message``: the level stands in for the stream on Shipyard's own events.
_TEXT_REST = func.concat(
    " [",
    func.coalesce(DeploymentLog.stream, DeploymentLog.level),
    "] ",
    DeploymentLog.message,
    "\n",
)
_JSON_OBJECT = cast(
    func.json_build_object(
        "seq",
        DeploymentLog.seq,
        "timestamp",
        DeploymentLog.timestamp,
        "host_id",
        DeploymentLog.host_id,
        "deployment_script_id",
        DeploymentLog.deployment_script_id,
        "stream",
        DeploymentLog.stream,
        "level",
        DeploymentLog.level,
        "message",
        DeploymentLog.message,
    ),
    Text,
)


def _text_lines(rows: Sequence[Sequence[Any]], names: dict[str, str]) -> str:
    """``timestamp host [stream] message`` lines; ``-`` for a line of no host."""
    return "".join(
        f"{stamp}{names.get(host, host) if host else '-'}{rest}" for _, host, stamp, rest in rows
    )


def _json_lines(rows: Sequence[Sequence[Any]], names: dict[str, str]) -> str:
    """One JSON object a line, the host's name added in front."""
    return "".join(
        f'{{"host": {json.dumps(names.get(host, host) if host else None)}, {body[1:]}\n'
        for _, host, body in rows
    )


async def _pages(
    db: Database,
    principal: Principal,
    deployment_id: UUID,
    resolved: _Resolved,
    names: dict[str, str],
    fmt: ExportFormat,
) -> AsyncIterator[str]:
    conditions = _conditions(resolved)
    columns = (_JSON_OBJECT,) if fmt == "jsonl" else (_STAMP, _TEXT_REST)
    after = 0
    while True:
        async with db.session(tenant_id=principal.tenant_id, user_id=principal.user_id) as session:
            if resolved.grep is not None:
                await session.execute(text(f"SET LOCAL statement_timeout = '{GREP_TIMEOUT}'"))
            connection = await session.connection()
            result = await connection.execute(
                select(DeploymentLog.seq, cast(DeploymentLog.host_id, Text), *columns)
                .where(
                    DeploymentLog.deployment_id == deployment_id,
                    tenant_clause(session, DeploymentLog.tenant_id),
                    DeploymentLog.seq > after,
                    *conditions,
                )
                .order_by(DeploymentLog.seq)
                .limit(EXPORT_PAGE)
            )
            page = result.all()
        if page:
            yield _json_lines(page, names) if fmt == "jsonl" else _text_lines(page, names)
        if len(page) < EXPORT_PAGE:
            return
        after = page[-1][0]


def accepts_gzip(accept_encoding: str | None) -> bool:
    """The client listed gzip in Accept-Encoding (without ``q=0``)."""
    for item in (accept_encoding or "").split(","):
        coding, _, params = item.strip().partition(";")
        if coding.strip().lower() in ("gzip", "x-gzip"):
            weight = params.replace(" ", "").lower().removeprefix("q=")
            try:
                return not params or float(weight) > 0
            except ValueError:
                return True
    return False


async def gzipped(chunks: AsyncIterator[str]) -> AsyncIterator[bytes]:
    """``chunks`` as one gzip member, compressed as they come (never the whole file at once)."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
    async for chunk in chunks:
        compressed = compressor.compress(chunk.encode())
        if compressed:
            yield compressed
    yield compressor.flush()


async def encoded(chunks: AsyncIterator[str]) -> AsyncIterator[bytes]:
    async for chunk in chunks:
        yield chunk.encode()
