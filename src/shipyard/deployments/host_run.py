"""Run a deployment's scripts on one host: upload, run in order, record each result."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

from shipyard import metrics
from shipyard.db import Database
from shipyard.deployments.heartbeats import Drain
from shipyard.deployments.logs import LogWriter, OutputTail
from shipyard.deployments.script_rows import ScriptRowWriter
from shipyard.errors import HostError
from shipyard.hosts.environment import RESERVED_PREFIX, first_refused
from shipyard.hosts.executor import Executor, HostConnection, HostTarget, OutputChunk, RunResult

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
    # Scripts were left unrun (or stopped) because the worker shut down.
    interrupted: bool = False


def utcnow() -> datetime:
    return datetime.now(UTC)


INTERRUPTED_BEFORE = "not started: the worker was shutting down"
INTERRUPTED_RUNNING = "stopped: the worker shut down and its grace period ran out"

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
        rows: ScriptRowWriter,
        on_fingerprint: FingerprintCallback | None,
        drain: Drain | None = None,
        worker_id: str | None = None,
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
        self.rows = rows
        self.on_fingerprint = on_fingerprint
        self.drain = drain or Drain()
        # Recorded on each script row this run touches (worker pools are checked through it).
        self.worker_id = worker_id
        self.finished: set[UUID] = set()

    def _finish_rest(self, scripts: list[PlannedScript], status: str, error: str | None) -> None:
        """Give every script of ``scripts`` not finished yet its final ``status``."""
        now = utcnow()
        for script in scripts:
            if script.row_id not in self.finished:
                self.rows.update(
                    script.row_id,
                    status=status,
                    error=error,
                    completed_at=now,
                    worker_id=self.worker_id,
                )
                self.finished.add(script.row_id)

    async def event(self, level: str, message: str, row_id: UUID | None = None) -> None:
        await self.logs.write(level, message, host_id=self.host_id, deployment_script_id=row_id)

    async def run(self) -> HostOutcome:
        """Run every script in order, stopping at the first failure; never raises for host errors."""
        pending = [script for script in self.scripts if not script.already_done]
        if not pending:
            return HostOutcome(self.host_id, succeeded=True)
        try:
            # A deployment stored before a name was refused must not run with it either
            # (SHIPYARD_* here are Shipyard's own, set by the deployment run).
            refused = first_refused(self.environment, ignore_prefix=RESERVED_PREFIX)
            if refused is not None:
                raise HostError(refused, code="environment_refused")
            async with self.executor.connect(self.target) as conn:
                if conn.host_key_fingerprint and self.on_fingerprint is not None:
                    await self.on_fingerprint(self.host_id, conn.host_key_fingerprint)
                workdir = await conn.make_temp_dir()
                for index, script in enumerate(pending):
                    if self.drain.draining:
                        # The worker is shutting down: nothing new starts on this host.
                        self._finish_rest(pending[index:], "interrupted", INTERRUPTED_BEFORE)
                        return HostOutcome(self.host_id, succeeded=False, interrupted=True)
                    ok = await self._run_one(conn, workdir, script)
                    if not ok:
                        self._finish_rest(
                            pending[index + 1 :], "skipped", "an earlier script failed"
                        )
                        return HostOutcome(self.host_id, succeeded=False)
            return HostOutcome(self.host_id, succeeded=True)
        except HostError as exc:
            await self.event("ERROR", f"[{self.target.label}] {exc.message}")
            self._finish_rest(pending, "failed", exc.message)
            return HostOutcome(self.host_id, succeeded=False)
        except asyncio.CancelledError:
            if self.drain.expired.is_set():
                # Cancelled by the end of the shutdown grace: the executor has stopped the
                # remote process before this runs.
                self._finish_rest(pending, "interrupted", INTERRUPTED_RUNNING)
            else:
                self._finish_rest(pending, "cancelled", "deployment cancelled")
            raise

    async def _run_one(self, conn: HostConnection, workdir: str, script: PlannedScript) -> bool:
        tail = OutputTail()

        async def on_chunk(chunk: OutputChunk) -> None:
            # One read of stdout or stderr at a time: both streams are stored at level INFO
            # with their stream named (stderr is mostly progress and warnings, not errors).
            stored = await self.logs.write_lines(
                chunk.stream,
                chunk.lines,
                timestamp=chunk.timestamp,
                host_id=self.host_id,
                deployment_script_id=script.row_id,
                cut=chunk.cut,
            )
            tail.extend(stored)

        self.rows.update(
            script.row_id,
            status="running",
            started_at=utcnow(),
            worker_id=self.worker_id,
            error=None,
            remote_temp_dir=workdir,
            remote_pid=None,
            remote_pgid=None,
        )
        posix = conn.platform == "posix"

        def on_pid(pid: int) -> None:
            # Recorded so that the process can be stopped even if this worker is lost (SSH
            # sessions run in their own process group led by this PID on POSIX hosts).
            self.rows.update(script.row_id, remote_pid=pid, remote_pgid=pid if posix else None)

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
                on_chunk=on_chunk,
                on_pid=on_pid,
            )
        else:
            result = await conn.run(
                interpreter,
                args=[remote_path, *script.arguments],
                env=self.environment,
                timeout=self.timeout,
                cwd=workdir,
                on_chunk=on_chunk,
                on_pid=on_pid,
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
        metrics.SCRIPT_DURATION.labels(status).observe(result.duration)
        self.finished.add(script.row_id)
        # A finished script's output and result outlive a crash of this worker.
        await self.logs.sync()
        await self.rows.commit(
            script.row_id,
            status=status,
            error=error,
            exit_code=result.exit_status,
            completed_at=utcnow(),
            output=tail.text(),
        )
        return status == "success"
