"""Run a deployment's scripts on one host: upload, run in order, record each result."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

from sqlalchemy import update

from shipyard.db import Database
from shipyard.deployments.logs import LogWriter, OutputTail
from shipyard.deployments.models import DeploymentScript
from shipyard.errors import HostError
from shipyard.hosts.executor import Executor, HostConnection, HostTarget, OutputLine, RunResult

FingerprintCallback = Callable[[UUID, str], Awaitable[object]]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PlannedScript:
    """One ``deployment_scripts`` row to run on this host, with its local file."""

    row_id: UUID
    position: int
    name: str
    local_path: Path
    arguments: list[str]
    already_done: bool


@dataclass(frozen=True)
class HostOutcome:
    host_id: UUID
    succeeded: bool
    cancelled: bool = False


def utcnow() -> datetime:
    return datetime.now(UTC)


# Scripts without a "#!" line run with the interpreter their extension names.
POSIX_INTERPRETERS = {".py": "python3", ".sh": "sh", ".bash": "bash"}


def posix_interpreter(path: Path) -> str | None:
    """The interpreter to run ``path`` with, or None when the file says itself (``#!``)."""
    with path.open("rb") as handle:
        if handle.read(2) == b"#!":
            return None
    return POSIX_INTERPRETERS.get(path.suffix.lower())


class HostRun:
    """Everything one host needs to run its part of a deployment."""

    def __init__(
        self,
        *,
        db: Database,
        tenant_id: UUID,
        executor: Executor,
        target: HostTarget,
        host_id: UUID,
        scripts: list[PlannedScript],
        environment: dict[str, str],
        timeout: float | None,
        logs: LogWriter,
        on_fingerprint: FingerprintCallback | None,
    ) -> None:
        self.db = db
        self.tenant_id = tenant_id
        self.executor = executor
        self.target = target
        self.host_id = host_id
        self.scripts = scripts
        self.environment = environment
        self.timeout = timeout
        self.logs = logs
        self.on_fingerprint = on_fingerprint

    async def _update_row(self, row_id: UUID, **values: object) -> None:
        async with self.db.session(tenant_id=self.tenant_id) as session:
            await session.execute(
                update(DeploymentScript).where(DeploymentScript.id == row_id).values(**values)
            )

    async def _mark_rest(
        self, scripts: list[PlannedScript], status: str, error: str | None
    ) -> None:
        for script in scripts:
            if not script.already_done:
                await self._update_row(
                    script.row_id, status=status, error=error, completed_at=utcnow()
                )

    async def event(self, level: str, message: str, row_id: UUID | None = None) -> None:
        await self.logs.write(level, message, host_id=self.host_id, deployment_script_id=row_id)

    async def run(self) -> HostOutcome:
        """Run every script in order, stopping at the first failure; never raises for host errors."""
        pending = [script for script in self.scripts if not script.already_done]
        if not pending:
            return HostOutcome(self.host_id, succeeded=True)
        try:
            async with self.executor.connect(self.target) as conn:
                if conn.host_key_fingerprint and self.on_fingerprint is not None:
                    await self.on_fingerprint(self.host_id, conn.host_key_fingerprint)
                workdir = await conn.make_temp_dir()
                for index, script in enumerate(pending):
                    ok = await self._run_one(conn, workdir, script)
                    if not ok:
                        await self._mark_rest(
                            pending[index + 1 :], "skipped", "an earlier script failed"
                        )
                        return HostOutcome(self.host_id, succeeded=False)
            return HostOutcome(self.host_id, succeeded=True)
        except HostError as exc:
            await self.event("ERROR", f"[{self.target.label}] {exc.message}")
            await self._fail_unfinished(pending, exc.message)
            return HostOutcome(self.host_id, succeeded=False)
        except asyncio.CancelledError:
            await asyncio.shield(self._cancel_unfinished(pending))
            raise

    async def _fail_unfinished(self, pending: list[PlannedScript], error: str) -> None:
        async with self.db.session(tenant_id=self.tenant_id) as session:
            await session.execute(
                update(DeploymentScript)
                .where(
                    DeploymentScript.id.in_([script.row_id for script in pending]),
                    DeploymentScript.status.in_(("pending", "running")),
                )
                .values(status="failed", error=error, completed_at=utcnow())
            )

    async def _cancel_unfinished(self, pending: list[PlannedScript]) -> None:
        async with self.db.session(tenant_id=self.tenant_id) as session:
            await session.execute(
                update(DeploymentScript)
                .where(
                    DeploymentScript.id.in_([script.row_id for script in pending]),
                    DeploymentScript.status.in_(("pending", "running")),
                )
                .values(status="cancelled", error="deployment cancelled", completed_at=utcnow())
            )

    async def _run_one(self, conn: HostConnection, workdir: str, script: PlannedScript) -> bool:
        tail = OutputTail()

        async def on_output(line: OutputLine) -> None:
            stored = await self.logs.write(
                "INFO" if line.stream == "stdout" else "ERROR",
                line.text,
                host_id=self.host_id,
                deployment_script_id=script.row_id,
                timestamp=line.timestamp,
            )
            tail.add(stored)

        await self._update_row(script.row_id, status="running", started_at=utcnow(), error=None)
        await self.event("INFO", f"[{self.target.label}] running {script.name}", script.row_id)
        remote_path = await conn.upload(
            script.local_path, workdir, f"{script.position:03d}-{script.name}"
        )
        interpreter = posix_interpreter(script.local_path) if conn.platform == "posix" else None
        if interpreter is None:
            result: RunResult = await conn.run_script(
                remote_path,
                args=script.arguments,
                env=self.environment,
                timeout=self.timeout,
                cwd=workdir,
                on_output=on_output,
            )
        else:
            result = await conn.run(
                interpreter,
                args=[remote_path, *script.arguments],
                env=self.environment,
                timeout=self.timeout,
                cwd=workdir,
                on_output=on_output,
            )
        return await self._record(script, result, tail)

    async def _record(self, script: PlannedScript, result: RunResult, tail: OutputTail) -> bool:
        if result.timed_out:
            status, error = (
                "failed",
                f"timed out after {self.timeout:g} s; the remote process was stopped",
            )
            await self.event("ERROR", f"[{self.target.label}] {script.name} {error}", script.row_id)
        elif result.cancelled:
            status, error = "cancelled", "deployment cancelled"
        elif result.exit_status == 0:
            status, error = "success", None
            await self.event(
                "INFO",
                f"[{self.target.label}] {script.name} succeeded in {result.duration:.1f} s",
                script.row_id,
            )
        else:
            status = "failed"
            error = (
                f"exited with code {result.exit_status}"
                if result.exit_status is not None
                else f"ended by signal {result.exit_signal or 'unknown'}"
            )
            await self.event("ERROR", f"[{self.target.label}] {script.name} {error}", script.row_id)
        await self._update_row(
            script.row_id,
            status=status,
            error=error,
            exit_code=result.exit_status,
            completed_at=utcnow(),
            output=tail.text(),
        )
        return status == "success"
