"""Finish deployments whose worker was lost (killed, machine gone): heartbeats went stale.

The sweep first takes each stale deployment over under its row lock and finishes it (unfinished
scripts ``failed``); then, outside any transaction, it connects to each of its hosts through the
runtime's executor, stops the scripts that were still running (by the process group recorded on
their ``deployment_scripts`` row) and removes the run's temporary directory, and says on the
deployment's log what it did. A lost deployment is never resumed (see docs/decisions.md).
"""

from __future__ import annotations

import logging
import shlex
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from uuid import UUID

from sqlalchemy import and_, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from shipyard.deployments.logs import notify_deployment
from shipyard.deployments.models import (
    Deployment,
    DeploymentHeartbeat,
    DeploymentLog,
    DeploymentScript,
)
from shipyard.errors import HostError
from shipyard.hosts.executor import HostConnection, OutputLine
from shipyard.hosts.executor.commands import posix_kill, powershell_quote
from shipyard.hosts.models import Host
from shipyard.hosts.service import build_target

if TYPE_CHECKING:
    from shipyard.runtime import Runtime

logger = logging.getLogger(__name__)

CLEANUP_TIMEOUT_SECONDS = 60.0
# Only directories made by the executor (``mktemp -d .../shipyard.XXXXXXXXXX``) are removed.
TEMP_DIR_MARK = "shipyard."
# A Windows PID is trusted to be ours when its process started this close to the script.
WINDOWS_START_SLACK_SECONDS = 300


@dataclass(frozen=True)
class RemoteProcess:
    """A script that was running when its worker was lost."""

    pid: int
    pgid: int | None
    temp_dir: str | None
    started_at: datetime | None


@dataclass
class HostLeftovers:
    """What a lost worker left on one host: running scripts and temporary directories."""

    host_id: UUID
    processes: list[RemoteProcess] = field(default_factory=list)
    temp_dirs: set[str] = field(default_factory=set)


@dataclass
class LostDeployment:
    deployment_id: UUID
    tenant_id: UUID
    hosts: list[HostLeftovers]


async def recover_lost_deployments(*, runtime: Runtime) -> list[UUID]:
    """Finish stale in-progress deployments, then stop what they left running on their hosts."""
    cutoff = datetime.now(UTC) - timedelta(seconds=runtime.settings.worker_lost_after_seconds)
    lost: list[LostDeployment] = []
    # System scope: the sweep looks across tenants; each row is then written for its own tenant.
    async with runtime.db.session(system=True) as session:
        # A run's last sign of life: its claim, or its owner's latest beat (0017).
        last_beat = func.greatest(Deployment.heartbeat_at, DeploymentHeartbeat.beat_at)
        stale = (
            await session.execute(
                select(Deployment.id, Deployment.tenant_id)
                .outerjoin(
                    DeploymentHeartbeat,
                    and_(
                        DeploymentHeartbeat.deployment_id == Deployment.id,
                        DeploymentHeartbeat.worker_id == Deployment.worker_id,
                    ),
                )
                .where(Deployment.status == "in_progress", last_beat < cutoff)
                .with_for_update(of=Deployment, skip_locked=True)
                .limit(100)
            )
        ).all()
        for deployment_id, tenant_id in stale:
            hosts = await _leftovers(session, deployment_id)
            await _finish_lost(
                session, deployment_id=deployment_id, tenant_id=tenant_id, hosts=hosts
            )
            lost.append(LostDeployment(deployment_id, tenant_id, hosts))
    for item in lost:
        logger.warning("deployment %s: worker lost, finished by the sweep", item.deployment_id)
        for host in item.hosts:
            await _clean_host(runtime, item, host)
    return [item.deployment_id for item in lost]


async def _leftovers(session: AsyncSession, deployment_id: UUID) -> list[HostLeftovers]:
    rows = (
        await session.execute(
            select(
                DeploymentScript.host_id,
                DeploymentScript.status,
                DeploymentScript.remote_pid,
                DeploymentScript.remote_pgid,
                DeploymentScript.remote_temp_dir,
                DeploymentScript.started_at,
            ).where(
                DeploymentScript.deployment_id == deployment_id,
                DeploymentScript.remote_temp_dir.is_not(None),
            )
        )
    ).all()
    by_host: dict[UUID, HostLeftovers] = {}
    for host_id, status, pid, pgid, temp_dir, started_at in rows:
        if host_id is None:
            continue
        leftovers = by_host.setdefault(host_id, HostLeftovers(host_id))
        if temp_dir:
            leftovers.temp_dirs.add(temp_dir)
        if status == "running" and pid is not None:
            leftovers.processes.append(RemoteProcess(pid, pgid, temp_dir, started_at))
    return list(by_host.values())


async def _finish_lost(
    session: AsyncSession, *, deployment_id: UUID, tenant_id: UUID, hosts: list[HostLeftovers]
) -> None:
    deployment = await session.get(Deployment, deployment_id)
    assert deployment is not None
    # The run keeps its last beat on its own row; its beat row goes with its worker.
    beaten = await session.scalar(
        delete(DeploymentHeartbeat)
        .where(
            DeploymentHeartbeat.deployment_id == deployment_id,
            DeploymentHeartbeat.worker_id == deployment.worker_id,
        )
        .returning(DeploymentHeartbeat.beat_at)
    )
    if beaten is not None and (deployment.heartbeat_at is None or beaten > deployment.heartbeat_at):
        deployment.heartbeat_at = beaten
    now = datetime.now(UTC)
    message = (
        f"Worker {deployment.worker_id or 'unknown'} was lost (no heartbeat since "
        f"{deployment.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC); its unfinished scripts are marked failed."
    )
    await session.execute(
        update(DeploymentScript)
        .where(
            DeploymentScript.deployment_id == deployment_id,
            DeploymentScript.status.in_(("pending", "running")),
        )
        .values(status="failed", error="worker lost", completed_at=now)
    )
    hosts_total = len(deployment.host_ids)
    succeeded = await _hosts_succeeded(session, deployment_id)
    status = (
        "partial"
        if 0 < succeeded < hosts_total
        else ("success" if hosts_total and succeeded == hosts_total else "failed")
    )
    if status == "success":
        # Every script had finished; only the final bookkeeping was lost.
        message = (
            f"Worker {deployment.worker_id or 'unknown'} was lost after every script finished."
        )
    running = sum(len(host.processes) for host in hosts)
    if hosts:
        message += (
            f" Stopping {running} script{'s' if running != 1 else ''} still running and removing "
            f"temporary files on {len(hosts)} host{'s' if len(hosts) != 1 else ''}."
        )
    session.add(
        DeploymentLog(
            deployment_id=deployment_id, tenant_id=tenant_id, level="ERROR", message=message
        )
    )
    deployment.status = status
    deployment.completed_at = now
    deployment.error = "worker lost"
    await notify_deployment(session, deployment_id)


async def _hosts_succeeded(session: AsyncSession, deployment_id: UUID) -> int:
    per_host = (
        select(DeploymentScript.host_id)
        .where(DeploymentScript.deployment_id == deployment_id)
        .group_by(DeploymentScript.host_id)
        .having(func.bool_and(DeploymentScript.status == "success"))
    ).subquery()
    return int(await session.scalar(select(func.count()).select_from(per_host)) or 0)


# Cleaning up on the hosts ------------------------------------------------------------------


async def _clean_host(runtime: Runtime, lost: LostDeployment, leftovers: HostLeftovers) -> None:
    """Stop the lost worker's scripts on one host and remove its temporary directories."""
    async with runtime.db.session(tenant_id=lost.tenant_id) as session:
        host = await session.get(Host, leftovers.host_id)
    if host is None:
        await _log(runtime, lost, "WARNING", f"Host {leftovers.host_id} is gone: nothing to clean.")
        return
    target = build_target(host, settings=runtime.settings)
    try:
        async with runtime.executor.connect(target) as conn:
            lines = await _run_cleanup(conn, leftovers, kill_grace=runtime.executor.kill_grace)
    except HostError as exc:
        await _log(
            runtime,
            lost,
            "ERROR",
            f"[{target.label}] could not stop the lost worker's scripts: {exc.message}",
            host_id=host.id,
        )
        return
    for line in lines:
        await _log(runtime, lost, "WARNING", f"[{target.label}] {line}", host_id=host.id)


async def _run_cleanup(
    conn: HostConnection, leftovers: HostLeftovers, *, kill_grace: float
) -> list[str]:
    collected: list[str] = []

    async def collect(line: OutputLine) -> None:
        if line.stream == "stdout" and line.text.strip():
            collected.append(line.text.strip())

    if conn.platform == "windows":
        code = windows_cleanup(leftovers)
    else:
        code = posix_cleanup(leftovers, kill_grace=kill_grace)
    result = await conn.run(code, timeout=CLEANUP_TIMEOUT_SECONDS, on_output=collect)
    if result.timed_out:
        collected.append(f"cleanup timed out after {CLEANUP_TIMEOUT_SECONDS:g} s")
    return [_describe(line) for line in collected]


def _describe(line: str) -> str:
    verb, _, rest = line.partition(" ")
    if verb == "stopped":
        return f"stopped the lost worker's script (process group {rest})"
    if verb == "gone":
        return f"the lost worker's script (process group {rest}) had already ended"
    if verb == "removed":
        return f"removed temporary directory {rest}"
    return line


def posix_cleanup(leftovers: HostLeftovers, *, kill_grace: float) -> str:
    """Shell code that stops each recorded process group and removes the temporary directories.

    A group is only signalled while one of its processes still names the run's temporary
    directory (the script's path, or the shell's ``cd``), so a PID reused since by another
    program is never touched.
    """
    lines = [
        "still_ours() {",
        "  if command -v ps >/dev/null 2>&1; then",
        "    ps -A -o pgid= -o args= 2>/dev/null"
        ' | awk -v g="$1" -v d="$2" \'$1 == g && index($0, d) { f = 1 } END { exit !f }\'',
        "  else",
        '    kill -0 -"$1" 2>/dev/null && grep -qsF -- "$2" /proc/[0-9]*/cmdline',
        "  fi",
        "}",
    ]
    for process in leftovers.processes:
        group = int(process.pgid if process.pgid is not None else process.pid)
        mark = shlex.quote(process.temp_dir or f"/{TEMP_DIR_MARK}")
        lines += [
            f"if still_ours {group} {mark}; then",
            # In a subshell: the kill code ends with ``exit``.
            "(",
            posix_kill(group, grace_seconds=kill_grace),
            ")",
            f"echo 'stopped {group}'",
            "else",
            f"echo 'gone {group}'",
            "fi",
        ]
    for directory in sorted(leftovers.temp_dirs):
        if TEMP_DIR_MARK not in directory.rsplit("/", 1)[-1]:
            continue
        quoted = shlex.quote(directory)
        said = shlex.quote("removed " + directory)
        lines.append(f"if [ -d {quoted} ]; then rm -rf -- {quoted} && echo {said}; fi")
    lines.append("exit 0")
    return "\n".join(lines)


def windows_cleanup(leftovers: HostLeftovers) -> str:
    """PowerShell that ends each recorded process tree and removes the temporary directories.

    A PID is only acted on while its process started within minutes of the script's start, so
    a PID reused since is left alone.
    """
    lines = []
    for process in leftovers.processes:
        pid = int(process.pid)
        started = int((process.started_at or datetime.now(UTC)).timestamp())
        lines.append(
            f"$p = Get-Process -Id {pid} -ErrorAction SilentlyContinue; "
            f"$t = [DateTimeOffset]::FromUnixTimeSeconds({started}).UtcDateTime; "
            f"if ($p -and [Math]::Abs(($p.StartTime.ToUniversalTime() - $t).TotalSeconds) -lt "
            f"{WINDOWS_START_SLACK_SECONDS}) {{ taskkill /F /T /PID {pid} | Out-Null; "
            f"Write-Output 'stopped {pid}' }} else {{ Write-Output 'gone {pid}' }}"
        )
    for directory in sorted(leftovers.temp_dirs):
        if TEMP_DIR_MARK not in directory.replace("/", "\\").rsplit("\\", 1)[-1]:
            continue
        quoted = powershell_quote(directory)
        lines.append(
            f"if (Test-Path -LiteralPath {quoted}) {{ Remove-Item -LiteralPath {quoted} -Recurse "
            f"-Force -ErrorAction SilentlyContinue; Write-Output ('removed ' + {quoted}) }}"
        )
    return "\n".join(lines)


async def _log(
    runtime: Runtime,
    lost: LostDeployment,
    level: str,
    message: str,
    *,
    host_id: UUID | None = None,
) -> None:
    async with runtime.db.session(tenant_id=lost.tenant_id) as session:
        session.add(
            DeploymentLog(
                deployment_id=lost.deployment_id,
                tenant_id=lost.tenant_id,
                level=level,
                message=message,
                host_id=host_id,
            )
        )
        await notify_deployment(session, lost.deployment_id)
