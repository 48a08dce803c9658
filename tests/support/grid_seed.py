"""Runs with many hosts and scripts, written straight to the database (for the results grid, the
download and ``deploy logs``); runs through the real runner are the deployment tests' subject."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import event, insert, update

from shipyard.db import Database
from shipyard.deployments.models import Deployment, DeploymentLog, DeploymentScript
from shipyard.hosts.models import Host
from tests.support.api import Account

START = datetime(2026, 12, 2, 4, 0, 0, tzinfo=UTC)
# (host name or None, script name or None, stream or None, level, message)
Line = tuple[str | None, str | None, str | None, str, str]


@dataclass
class GridRun:
    deployment_id: UUID
    hosts: dict[str, UUID]
    # (host name, script name) -> the deployment_scripts row
    cells: dict[tuple[str, str], UUID] = field(default_factory=dict)


async def seed_grid_run(
    db: Database,
    account: Account,
    *,
    name: str = "Grid run",
    hosts: Sequence[str] = ("web-1", "web-2"),
    scripts: Sequence[str] = ("deploy.sh", "check.sh"),
    outcomes: Mapping[tuple[str, str], tuple[str, int | None]] | None = None,
    status: str = "partial",
    lines: Sequence[Line] = (),
) -> GridRun:
    """A run on ``hosts`` x ``scripts``: every cell a success (exit 0) unless ``outcomes`` says
    otherwise; ``lines`` are its log, in order, one second apart."""
    tenant_id, user_id = UUID(account.tenant_id), UUID(account.user_id)
    outcomes = outcomes or {}
    host_ids = {host: uuid4() for host in hosts}
    final = status in ("success", "failed", "partial", "cancelled", "interrupted")
    async with db.session(tenant_id=tenant_id, user_id=user_id) as session:
        await session.execute(
            insert(Host),
            [
                {"id": host_id, "name": host, "ip": "127.0.0.1", "user": "deploy"}
                for host, host_id in host_ids.items()
            ],
        )
        deployment = Deployment(
            name=name,
            status=status,
            host_ids=list(host_ids.values()),
            started_at=START,
            completed_at=START + timedelta(minutes=5) if final else None,
            options={"parallelism": 20},
            created_by=user_id,
        )
        session.add(deployment)
        await session.flush()
        run = GridRun(deployment_id=deployment.id, hosts=host_ids)
        rows: list[dict[str, Any]] = []
        for host, host_id in host_ids.items():
            for position, script in enumerate(scripts):
                row_id = uuid4()
                run.cells[(host, script)] = row_id
                cell_status, exit_code = outcomes.get((host, script), ("success", 0))
                ended = cell_status not in ("pending", "running")
                rows.append(
                    {
                        "id": row_id,
                        "deployment_id": deployment.id,
                        "host_id": host_id,
                        "script_id": uuid4(),
                        "name": script,
                        "path": f"scripts/{script}",
                        "position": position,
                        "status": cell_status,
                        "exit_code": exit_code,
                        "started_at": START if cell_status != "pending" else None,
                        "completed_at": START + timedelta(seconds=2) if ended else None,
                    }
                )
        if rows:
            await session.execute(insert(DeploymentScript), rows)
        if lines:
            await session.execute(
                insert(DeploymentLog),
                [
                    {
                        "deployment_id": deployment.id,
                        "host_id": host_ids[host] if host else None,
                        "deployment_script_id": run.cells[(host, script)]
                        if host and script
                        else None,
                        "stream": stream,
                        "level": level,
                        "message": message,
                        "timestamp": START + timedelta(seconds=index),
                    }
                    for index, (host, script, stream, level, message) in enumerate(lines)
                ],
            )
        return run


async def set_cell(
    db: Database, account: Account, row_id: UUID, status: str, exit_code: int | None
) -> None:
    async with db.session(tenant_id=UUID(account.tenant_id)) as session:
        await session.execute(
            update(DeploymentScript)
            .where(DeploymentScript.id == row_id)
            .values(status=status, exit_code=exit_code)
        )


@contextmanager
def statements(db: Database) -> Iterator[list[str]]:
    """The SQL statements run on ``db`` while inside the block."""
    seen: list[str] = []

    def record(*args: Any) -> None:
        seen.append(str(args[2]))

    engine = db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)
