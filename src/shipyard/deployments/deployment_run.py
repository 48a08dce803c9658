"""One deployment's run, in the worker: claim, check out, run hosts in batches, CI/CD steps, finish."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

from pydantic import ValidationError
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from shipyard import metrics
from shipyard.cicd.models import DeploymentCicdMapping
from shipyard.cicd.steps import run_step
from shipyard.deployments.batches import plan_batches
from shipyard.deployments.checkout import PreparedScripts, prepared_scripts
from shipyard.deployments.claims import ClaimOutcome
from shipyard.deployments.events import emit_deployment_event, emit_finished
from shipyard.deployments.freeze_gate import frozen_at_start
from shipyard.deployments.heartbeats import Beat, DeploymentHeartbeats
from shipyard.deployments.host_run import HostOutcome, HostRun, PlannedScript
from shipyard.deployments.logs import LogWriter, notify_deployment
from shipyard.deployments.models import Deployment, DeploymentScript
from shipyard.deployments.pools import (
    PartFollower,
    end_unfinished,
    enqueue_parts,
    host_pools,
    outcomes_from_rows,
    split_by_pool,
)
from shipyard.deployments.redaction import Redactor
from shipyard.deployments.schemas import ExecutionOptions
from shipyard.deployments.script_rows import ScriptRowWriter
from shipyard.deployments.service import secret_environment
from shipyard.errors import ShipyardError, ValidationFailed
from shipyard.hosts.inventory import HostEnvironment, host_environments, resolve_target
from shipyard.hosts.models import Host, HostGroup
from shipyard.hosts.schemas import Target
from shipyard.hosts.service import build_target, record_fingerprint
from shipyard.logs import log_context

if TYPE_CHECKING:
    from shipyard.runtime import Runtime

logger = logging.getLogger(__name__)

# One row per host and script, in the run's order of scripts; a row already there (the run
# resumed after a restart) is kept as it is.
_INSERT_SCRIPT_ROWS = text(
    """
    INSERT INTO deployment_scripts
        (deployment_id, tenant_id, host_id, script_id, position, name, path, arguments, status)
    SELECT :deployment_id, :tenant_id, h.host_id, s.script_id, s.position, s.name, s.path,
           s.arguments, 'pending'
      FROM unnest(CAST(:host_ids AS uuid[])) AS h(host_id)
     CROSS JOIN unnest(CAST(:script_ids AS uuid[]), CAST(:positions AS integer[]),
                       CAST(:names AS text[]), CAST(:paths AS text[]),
                       CAST(:arguments AS jsonb[]))
           AS s(script_id, position, name, path, arguments)
    ON CONFLICT DO NOTHING
    """
)


def utcnow() -> datetime:
    return datetime.now(UTC)


LEFTOVER_ERRORS = {
    "cancelled": "deployment cancelled",
    "interrupted": "not run: the worker shut down",
}


class DeploymentAborted(Exception):
    """The deployment cannot go on (checkout failed, a CI/CD step failed, ...)."""


@dataclass
class RunState:
    """What the run has learned so far; the heartbeat flips ``stop`` on cancel or lost ownership."""

    deployment_id: UUID
    tenant_id: UUID
    worker_id: str
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    cancelled: bool = False
    lost_ownership: bool = False
    # Work was left undone (or stopped) because the worker shut down: ends ``interrupted``.
    interrupted: bool = False
    outcomes: dict[UUID, HostOutcome] = field(default_factory=dict)
    skipped_hosts: set[UUID] = field(default_factory=set)
    cicd_failed: bool = False


class DeploymentRun:
    """Runs one deployment on the worker's runtime: its database, settings, HTTP client and the
    process's one executor (whose per-host connection caps and key cache span every deployment)."""

    def __init__(
        self,
        *,
        runtime: Runtime,
        deployment_id: UUID,
        tenant_id: UUID,
        worker_id: str,
        heartbeats: DeploymentHeartbeats,
        pools: frozenset[str] = frozenset(),
    ) -> None:
        self.db = runtime.db
        self.settings = runtime.settings
        self.executor = runtime.executor
        self.http = runtime.http
        self.heartbeats = heartbeats
        self.drain = heartbeats.drain
        self.state = RunState(deployment_id=deployment_id, tenant_id=tenant_id, worker_id=worker_id)
        # Each host's inventory variables (its groups', then its own), read when the run starts.
        self.inventory: dict[UUID, HostEnvironment] = {}
        # The worker pools this worker serves: their hosts run here, other pools' in parts.
        self.pools = pools
        # What resolving the deployment's target rule said (logged once the log is open).
        self.target_note: str | None = None
        self.target_error: str | None = None
        # Why the run must not start: a freeze window in force when it was claimed.
        self.frozen: str | None = None

    async def run(self) -> None:
        # Every line written while it runs (ours and the libraries') names the deployment.
        with log_context(deployment_id=self.state.deployment_id, tenant_id=self.state.tenant_id):
            await self._run()

    async def _run(self) -> None:
        intake = self.heartbeats.intake
        with intake.claiming():
            outcome = await self.heartbeats.claims.claim(
                deployment_id=self.state.deployment_id,
                tenant_id=self.state.tenant_id,
                worker_id=self.state.worker_id,
            )
        if outcome is not ClaimOutcome.CLAIMED:
            return
        metrics.DEPLOYMENTS_STARTED.inc()
        started = time.monotonic()
        # Owned and heartbeated from the claim on; the heavy work (from reading the run on)
        # waits for the worker's other claims of the moment (Intake), then goes on without
        # queueing again.
        beat = self._register_beat()
        try:
            await intake.settled()
            try:
                deployment = await self._start()
            except Exception as exc:
                # Owned but unreadable (the database refused or timed out): end it with the
                # reason now rather than leave it to the lost-worker sweep as "worker lost".
                logger.exception("deployment %s could not start", self.state.deployment_id)
                with contextlib.suppress(Exception):
                    await self._finish("failed", f"internal error: {type(exc).__name__}")
                return
            if deployment is None:
                return
            if self.frozen is not None:
                await self._finish("cancelled", self.frozen)
                return
            await self._run_claimed(deployment, beat, started)
        finally:
            self._unregister_beat()

    async def _run_claimed(self, deployment: Deployment, beat: Beat, started: float) -> None:
        options = ExecutionOptions.model_validate(deployment.options)
        secrets = secret_environment(deployment)
        hosts = await self._load_hosts(deployment)
        self.inventory = await self._load_inventory(hosts)
        redactor = Redactor(
            [
                *secrets.values(),
                *(value for env in self.inventory.values() for value in env.secret.values()),
                *(h.password for h in hosts),
                *(h.private_key for h in hosts),
                *(h.private_key_passphrase for h in hosts),
            ]
        )
        async with (
            LogWriter(
                self.db,
                tenant_id=self.state.tenant_id,
                deployment_id=deployment.id,
                redactor=redactor,
            ) as logs,
            ScriptRowWriter(self.db, tenant_id=self.state.tenant_id) as self.rows,
            self._heartbeat(beat),
            self._announce_drain(logs),
        ):
            await logs.write("INFO", f"Deployment started on worker {self.state.worker_id}.")
            if self.target_note is not None:
                await logs.write("INFO", self.target_note)
            error: str | None = self.target_error
            if error is not None:
                await logs.write("ERROR", error)
            try:
                if error is None:
                    await self._run_cicd(deployment, "before", logs)
                    if deployment.script_ids:
                        await self._run_hosts(deployment, hosts, options, secrets, logs)
                    await self._run_cicd(deployment, "after", logs)
            except DeploymentAborted as exc:
                error = str(exc)
                await logs.write("ERROR", error)
            except ShipyardError as exc:
                error = exc.message
                await logs.write("ERROR", error)
            except Exception as exc:
                logger.exception("deployment %s crashed", deployment.id)
                error = f"internal error: {type(exc).__name__}"
                await logs.write(
                    "ERROR", f"Deployment stopped by an internal error ({type(exc).__name__})."
                )
            if self.state.lost_ownership:
                return
            status, summary = self._final_status(deployment, error)
            await logs.write("WARNING" if status != "success" else "INFO", summary)
        await self._finish(status, error)
        metrics.DEPLOYMENTS_FINISHED.labels(status).inc()
        metrics.DEPLOYMENT_DURATION.labels(status).observe(time.monotonic() - started)

    # Claiming and finishing -------------------------------------------------------------

    async def _start(self) -> Deployment | None:
        """Read the claimed run, resolving its target rule into hosts (recorded in ``host_ids``)."""
        async with self.db.session(tenant_id=self.state.tenant_id) as session:
            deployment = await session.scalar(
                select(Deployment).where(
                    Deployment.id == self.state.deployment_id,
                    Deployment.worker_id == self.state.worker_id,
                    Deployment.status == "in_progress",
                )
            )
            if deployment is None:
                # Taken over between the claim and now (the lost-worker sweep): not ours.
                return None
            if deployment.target is not None:
                await self._resolve_target(session, deployment)
                await notify_deployment(session, deployment.id)
            self.frozen = await frozen_at_start(session, deployment, now=utcnow())
            await session.flush()
            if self.frozen is None:
                await emit_deployment_event(session, deployment, "deployment.started")
            return deployment

    async def _resolve_target(self, session: AsyncSession, deployment: Deployment) -> None:
        """Turn the run's target rule into hosts now, recorded in ``host_ids``."""
        try:
            rule = Target.model_validate(deployment.target)
        except ValidationError:
            self.target_error = "The deployment's target rule is not valid: nothing to run on."
            return
        label = await describe_target(session, rule)
        try:
            host_ids = await resolve_target(
                session=session, tenant_id=self.state.tenant_id, target=rule
            )
        except ValidationFailed as exc:
            self.target_error = f"Target {label} cannot be resolved: {exc.message}."
            return
        deployment.host_ids = host_ids
        if not host_ids:
            self.target_error = f"Target {label} resolved to no host: nothing to run on."
            return
        count = len(host_ids)
        self.target_note = f"Target {label} resolved to {count} host{'s' if count != 1 else ''}."

    async def _finish(self, status: str, error: str | None) -> None:
        async with self.db.session(tenant_id=self.state.tenant_id) as session:
            await session.execute(
                update(Deployment)
                .where(
                    Deployment.id == self.state.deployment_id,
                    Deployment.worker_id == self.state.worker_id,
                )
                .values(status=status, completed_at=utcnow(), error=error)
            )
            await session.execute(
                update(DeploymentScript)
                .where(
                    DeploymentScript.deployment_id == self.state.deployment_id,
                    DeploymentScript.status.in_(("pending", "running")),
                )
                .values(
                    status=status if status in ("cancelled", "interrupted") else "skipped",
                    error=LEFTOVER_ERRORS.get(status, "not run"),
                    completed_at=utcnow(),
                )
            )
            await notify_deployment(session, self.state.deployment_id)
            await emit_finished(session, self.state.deployment_id)

    def _final_status(self, deployment: Deployment, error: str | None) -> tuple[str, str]:
        if self.state.cancelled:
            return "cancelled", "Deployment cancelled."
        total = len(deployment.host_ids) if deployment.script_ids else 0
        succeeded = sum(1 for outcome in self.state.outcomes.values() if outcome.succeeded)
        if self.state.interrupted or any(o.interrupted for o in self.state.outcomes.values()):
            # Shutting down left work undone: neither a success nor the scripts' failure.
            who = f"worker {self.state.worker_id}" if self.state.interrupted else "a worker"
            return "interrupted", (
                f"Deployment interrupted: {who} shut down "
                f"({succeeded} of {total} hosts had finished every script)."
            )
        if error is not None or self.state.cicd_failed:
            status = "partial" if 0 < succeeded < total else "failed"
            return status, f"Deployment {status}: {error or 'a CI/CD step failed'}."
        if succeeded == total:
            return (
                "success",
                f"Deployment succeeded on {total} host{'s' if total != 1 else ''}."
                if total
                else "Deployment succeeded.",
            )
        status = "failed" if succeeded == 0 else "partial"
        return status, f"Deployment {status}: {succeeded} of {total} hosts succeeded."

    def _register_beat(self) -> Beat:
        return self.heartbeats.register(self.state.deployment_id, self.state.worker_id)

    def _unregister_beat(self) -> None:
        self.heartbeats.unregister(self.state.deployment_id)

    @contextlib.asynccontextmanager
    async def _heartbeat(self, beat: Beat | None = None) -> AsyncIterator[None]:
        """Follow ``beat`` (cancel requests, lost ownership) for the block. A beat registered
        here ends with the block; a given one stays registered for its owner to end, so the
        run's last writes (log, script rows, status) still beat."""
        owned = beat is None
        beat = beat or self._register_beat()
        watcher = asyncio.create_task(self._follow(beat))
        try:
            yield
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            if owned:
                self._unregister_beat()

    @contextlib.asynccontextmanager
    async def _announce_drain(self, logs: LogWriter) -> AsyncIterator[None]:
        """Say on the deployment's log when its worker starts shutting down and when the grace
        period runs out."""

        async def announce() -> None:
            await self.drain.started.wait()
            if not self.drain.expired.is_set():
                await logs.write(
                    "WARNING",
                    f"Worker {self.state.worker_id} is shutting down: running scripts have "
                    f"{self.drain.grace or 0:g} s to finish; nothing new starts.",
                )
            await self.drain.expired.wait()
            await logs.write(
                "WARNING",
                "Shutdown grace period over: stopping the scripts still running.",
            )

        announcer = asyncio.create_task(announce())
        try:
            yield
        finally:
            announcer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await announcer

    async def _follow(self, beat: Beat) -> None:
        """Carry the shared heartbeat's news (cancel, lost ownership) and the end of the
        worker's shutdown grace into this run."""
        waits = {
            asyncio.ensure_future(beat.stop.wait()),
            asyncio.ensure_future(self.drain.expired.wait()),
        }
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()
        if beat.stop.is_set():
            self.state.cancelled = beat.cancelled
            self.state.lost_ownership = beat.lost_ownership
        else:
            self.state.interrupted = True
        self.state.stop.set()

    # Hosts ---------------------------------------------------------------------------------

    async def _load_hosts(self, deployment: Deployment) -> list[Host]:
        async with self.db.session(tenant_id=self.state.tenant_id) as session:
            rows = (
                await session.scalars(select(Host).where(Host.id.in_(deployment.host_ids)))
            ).all()
        by_id = {host.id: host for host in rows}
        return [by_id[host_id] for host_id in deployment.host_ids if host_id in by_id]

    async def _load_inventory(self, hosts: list[Host]) -> dict[UUID, HostEnvironment]:
        async with self.db.session(tenant_id=self.state.tenant_id) as session:
            return await host_environments(
                session=session,
                tenant_id=self.state.tenant_id,
                host_ids=[host.id for host in hosts],
            )

    def _host_environment(self, host: Host, run_environment: dict[str, str]) -> dict[str, str]:
        """Group variables < the host's own < the run's; Shipyard's own names last of all."""
        inventory = self.inventory.get(host.id) or HostEnvironment()
        return {
            **inventory.plain,
            **inventory.secret,
            **run_environment,
            "SHIPYARD_HOST": host.name,
        }

    async def _run_hosts(
        self,
        deployment: Deployment,
        hosts: list[Host],
        options: ExecutionOptions,
        secrets: dict[str, str],
        logs: LogWriter,
    ) -> None:
        missing = set(deployment.host_ids) - {host.id for host in hosts}
        for host_id in missing:
            await logs.write("ERROR", f"Host {host_id} was deleted before the deployment ran.")
            self.state.outcomes[host_id] = HostOutcome(host_id, succeeded=False)
        pools = await host_pools(
            self.db, tenant_id=self.state.tenant_id, host_ids=[host.id for host in hosts]
        )
        here, elsewhere = split_by_pool([host.id for host in hosts], pools, self.pools)
        async with prepared_scripts(
            db=self.db, settings=self.settings, deployment=deployment, logs=logs, http=self.http
        ) as prepared:
            if not elsewhere:
                await self._run_prepared(deployment, hosts, options, secrets, logs, prepared)
                return
            await self._run_split(
                deployment, hosts, here, elsewhere, pools, options, secrets, logs, prepared
            )

    async def _run_split(
        self,
        deployment: Deployment,
        hosts: list[Host],
        here: list[UUID],
        elsewhere: dict[str, list[UUID]],
        pools: dict[UUID, str | None],
        options: ExecutionOptions,
        secrets: dict[str, str],
        logs: LogWriter,
        prepared: PreparedScripts,
    ) -> None:
        """Run this worker's hosts while one part per other pool runs on that pool's workers."""
        # Every host's rows exist before any part starts: a part that never runs leaves them
        # to be ended here, and the run's page lists every host from the start.
        plans = await self._plan_rows(deployment, hosts, prepared.files)
        for pool in sorted({p for host_id in here if (p := pools.get(host_id)) is not None}):
            count = sum(1 for host_id in here if pools[host_id] == pool)
            await logs.write(
                "INFO",
                f"Pool {pool}: {count} host{'s' if count != 1 else ''} run here "
                f"(worker {self.state.worker_id} serves the pool).",
            )
        parts = await enqueue_parts(
            self.db,
            tenant_id=self.state.tenant_id,
            deployment_id=deployment.id,
            coordinator_id=self.state.worker_id,
            elsewhere=elsewhere,
        )
        for part in parts:
            count = len(part.host_ids)
            await logs.write(
                "INFO",
                f"Pool {part.pool}: {count} host{'s' if count != 1 else ''} sent to the "
                f"pool's workers (job {part.job_id}).",
            )

        async def log(level: str, message: str) -> None:
            await logs.write(level, message)

        follower = PartFollower(
            db=self.db,
            settings=self.settings,
            tenant_id=self.state.tenant_id,
            deployment_id=deployment.id,
            parts=parts,
            log=log,
            stop=self.state.stop,
            kill_grace=self.executor.kill_grace,
        )
        local_hosts = [host for host in hosts if host.id in set(here)]
        results = await asyncio.gather(
            self._run_prepared(
                deployment, local_hosts, options, secrets, logs, prepared, plans=plans
            ),
            # A worker shutting down does not wait for parts running on other workers.
            follower.follow(give_up_on_stop=lambda: self.state.interrupted),
            return_exceptions=True,
        )
        remote = [host_id for part in parts for host_id in part.host_ids]
        # Parts still running when this gives up (a cancel they did not honour in time).
        unfinished = [host_id for part in parts if not part.done for host_id in part.host_ids]
        if unfinished and self.state.cancelled:
            await end_unfinished(
                self.db,
                tenant_id=self.state.tenant_id,
                deployment_id=deployment.id,
                host_ids=unfinished,
                status="cancelled",
                error="deployment cancelled",
            )
        self.state.outcomes.update(
            await outcomes_from_rows(
                self.db,
                tenant_id=self.state.tenant_id,
                deployment_id=deployment.id,
                host_ids=remote,
            )
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def _run_prepared(
        self,
        deployment: Deployment,
        hosts: list[Host],
        options: ExecutionOptions,
        secrets: dict[str, str],
        logs: LogWriter,
        prepared: PreparedScripts,
        *,
        plans: dict[UUID, list[PlannedScript]] | None = None,
    ) -> None:
        if plans is None:
            plans = await self._plan_rows(deployment, hosts, prepared.files)
        environment = {
            **deployment.environment,
            **secrets,
            "SHIPYARD_DEPLOYMENT_ID": str(deployment.id),
            "SHIPYARD_COMMIT_SHA": prepared.commit_sha,
            "SHIPYARD_REF": prepared.ref,
        }
        timeout = float(options.script_timeout_seconds) if options.script_timeout_seconds else None
        by_id = {host.id: host for host in hosts}
        batches = plan_batches([h for h in deployment.host_ids if h in by_id], options)
        failure_seen = asyncio.Event()
        semaphore = asyncio.Semaphore(options.parallelism)

        async def one_host(host: Host) -> None:
            async with semaphore:
                if self.drain.draining:
                    # Shutting down: a host that has not started does not start.
                    self.state.interrupted = True
                    self.state.skipped_hosts.add(host.id)
                    return
                if self.state.stop.is_set() or (options.stop_on_failure and failure_seen.is_set()):
                    self.state.skipped_hosts.add(host.id)
                    return
                run = HostRun(
                    db=self.db,
                    tenant_id=self.state.tenant_id,
                    executor=self.executor,
                    target=build_target(host, settings=self.settings),
                    host_id=host.id,
                    worker_id=self.state.worker_id,
                    scripts=plans[host.id],
                    environment=self._host_environment(host, environment),
                    timeout=timeout,
                    logs=logs,
                    rows=self.rows,
                    drain=self.drain,
                    on_fingerprint=None
                    if host.host_key_fingerprint
                    else lambda host_id, fingerprint: record_fingerprint(
                        db=self.db,
                        tenant_id=self.state.tenant_id,
                        host_id=host_id,
                        fingerprint=fingerprint,
                    ),
                )
                outcome = await run.run()
                self.state.outcomes[host.id] = outcome
                if not outcome.succeeded:
                    failure_seen.set()

        for number, batch in enumerate(batches, start=1):
            if self.state.stop.is_set():
                break
            if self.drain.draining:
                self.state.interrupted = True
                await logs.write(
                    "WARNING",
                    f"Worker {self.state.worker_id} is shutting down: batches "
                    f"{number} to {len(batches)} do not start.",
                )
                break
            if len(batches) > 1:
                await logs.write("INFO", f"Batch {number} of {len(batches)}: {len(batch)} hosts.")
            await self._run_batch([by_id[host_id] for host_id in batch], one_host)
            if options.stop_on_failure and failure_seen.is_set():
                await logs.write(
                    "WARNING",
                    "A host failed and stop_on_failure is set: remaining hosts are skipped.",
                )
                break
            if (
                options.max_failure_percent is not None
                and self._failure_percent() > options.max_failure_percent
            ):
                if number < len(batches):
                    await logs.write(
                        "WARNING",
                        f"{self._failure_percent():.0f}% of hosts failed, above the {options.max_failure_percent}% "
                        "threshold: remaining batches are aborted.",
                    )
                break

    def _failure_percent(self) -> float:
        done = list(self.state.outcomes.values())
        if not done:
            return 0.0
        return 100.0 * sum(1 for outcome in done if not outcome.succeeded) / len(done)

    async def _run_batch(
        self, hosts: list[Host], one_host: Callable[[Host], Coroutine[Any, Any, None]]
    ) -> None:
        tasks = [asyncio.create_task(one_host(host)) for host in hosts]
        stop_wait = asyncio.create_task(self.state.stop.wait())
        try:
            pending: set[asyncio.Future[Any]] = set(tasks)
            while pending:
                done, pending = await asyncio.wait(
                    pending | {stop_wait}, return_when=asyncio.FIRST_COMPLETED
                )
                pending.discard(stop_wait)
                if stop_wait in done:
                    for task in pending:
                        task.cancel()
                    await asyncio.gather(*pending, return_exceptions=True)
                    break
            for task in tasks:
                error = task.exception() if task.done() and not task.cancelled() else None
                if error is not None:
                    raise error
        finally:
            stop_wait.cancel()

    async def _plan_rows(
        self, deployment: Deployment, hosts: list[Host], files: dict[UUID, tuple[str, Path]]
    ) -> dict[UUID, list[PlannedScript]]:
        """Create (or find, after a restart) one script row per host and script.

        Two statements whatever the fleet's size: the hosts-by-scripts product is made by the
        server from two arrays, and the rows come back as plain tuples (at 1,000 hosts a
        thousand-row VALUES list and as many ORM objects cost the worker about 0.4 s before
        its first connection; docs/benchmarks.md "A fleet of 1,000").
        """
        scripts = [
            (
                script_id,
                position,
                Path(files[script_id][0]).name,
                files[script_id][0],
                json.dumps(deployment.script_arguments.get(str(script_id), [])),
            )
            for position, script_id in enumerate(deployment.script_ids)
        ]
        async with self.db.session(tenant_id=self.state.tenant_id) as session:
            if hosts and scripts:
                await session.execute(
                    _INSERT_SCRIPT_ROWS,
                    {
                        "deployment_id": deployment.id,
                        "tenant_id": deployment.tenant_id,
                        "host_ids": [host.id for host in hosts],
                        "script_ids": [script[0] for script in scripts],
                        "positions": [script[1] for script in scripts],
                        "names": [script[2] for script in scripts],
                        "paths": [script[3] for script in scripts],
                        "arguments": [script[4] for script in scripts],
                    },
                )
            existing = (
                await session.execute(
                    select(
                        DeploymentScript.id,
                        DeploymentScript.host_id,
                        DeploymentScript.script_id,
                        DeploymentScript.position,
                        DeploymentScript.name,
                        DeploymentScript.arguments,
                        DeploymentScript.status,
                    )
                    .where(DeploymentScript.deployment_id == deployment.id)
                    .order_by(DeploymentScript.position)
                )
            ).all()
        plans: dict[UUID, list[PlannedScript]] = {host.id: [] for host in hosts}
        for row in existing:
            if row.host_id not in plans or row.script_id is None:
                continue
            plans[row.host_id].append(
                PlannedScript(
                    row_id=row.id,
                    position=row.position,
                    name=row.name or "script",
                    local_path=files[row.script_id][1],
                    arguments=list(row.arguments),
                    already_done=row.status in ("success", "failed", "skipped", "cancelled"),
                )
            )
        return plans

    # CI/CD -------------------------------------------------------------------------------

    async def _run_cicd(self, deployment: Deployment, stage: str, logs: LogWriter) -> None:
        if self.state.stop.is_set() or self.state.cicd_failed:
            return
        if stage == "after" and any(not o.succeeded for o in self.state.outcomes.values()):
            return
        async with self.db.session(tenant_id=self.state.tenant_id) as session:
            mappings = (
                await session.scalars(
                    select(DeploymentCicdMapping)
                    .where(
                        DeploymentCicdMapping.deployment_id == deployment.id,
                        DeploymentCicdMapping.stage == stage,
                    )
                    .order_by(DeploymentCicdMapping.position)
                )
            ).all()
        for mapping in mappings:
            if mapping.status in ("success",):
                continue
            if self.state.stop.is_set():
                return
            if self.drain.draining:
                self.state.interrupted = True
                await logs.write(
                    "WARNING",
                    f"Worker {self.state.worker_id} is shutting down: the {stage} CI/CD steps "
                    "do not start.",
                )
                return

            async def emit(level: str, line: str) -> None:
                await logs.write(level, line)

            result = await run_step(
                db=self.db,
                settings=self.settings,
                http=self.http,
                mapping_id=mapping.id,
                tenant_id=self.state.tenant_id,
                emit=emit,
                should_cancel=self.state.stop.is_set,
            )
            if result == "cancelled":
                return
            if result != "success":
                self.state.cicd_failed = True
                summary = getattr(result, "summary", "A CI/CD step failed")
                raise DeploymentAborted(f"{summary}; the deployment stops here.")


async def describe_target(session: AsyncSession, rule: Target) -> str:
    """The rule in words: "group prod + tag web", "2 listed hosts + groups a, b"."""
    words: list[str] = []
    if rule.host_ids:
        count = len(rule.host_ids)
        words.append(f"{count} listed host{'s' if count != 1 else ''}")
    if rule.group_ids:
        names: dict[UUID, str] = {
            group_id: name
            for group_id, name in await session.execute(
                select(HostGroup.id, HostGroup.name).where(HostGroup.id.in_(rule.group_ids))
            )
        }
        shown = [names.get(group_id, str(group_id)) for group_id in rule.group_ids]
        words.append(f"group{'s' if len(shown) != 1 else ''} {', '.join(shown)}")
    if rule.tags:
        words.append(f"tag{'s' if len(rule.tags) != 1 else ''} {', '.join(rule.tags)}")
    return " + ".join(words) or "(an empty rule)"


class DeploymentPart(DeploymentRun):
    """One pool's hosts of a deployment another worker coordinates (deployments.pools).

    It runs them as the coordinator runs its own (batches, parallelism and failure rules within
    the part), writing the same script rows and log lines, and follows the coordinator's run:
    a cancel request stops it, and so does the run ending or changing hands.
    """

    def __init__(
        self,
        *,
        runtime: Runtime,
        deployment_id: UUID,
        tenant_id: UUID,
        worker_id: str,
        heartbeats: DeploymentHeartbeats,
        pool: str,
        host_ids: list[UUID],
        coordinator_id: str,
    ) -> None:
        super().__init__(
            runtime=runtime,
            deployment_id=deployment_id,
            tenant_id=tenant_id,
            worker_id=worker_id,
            heartbeats=heartbeats,
        )
        self.pool = pool
        self.host_ids = host_ids
        self.coordinator_id = coordinator_id

    def _register_beat(self) -> Beat:
        return self.heartbeats.watch(self, self.state.deployment_id, self.coordinator_id)

    def _unregister_beat(self) -> None:
        self.heartbeats.unwatch(self)

    async def _load_part(self) -> Deployment | None:
        async with self.db.session(tenant_id=self.state.tenant_id) as session:
            deployment = await session.get(Deployment, self.state.deployment_id)
        if (
            deployment is None
            or deployment.status != "in_progress"
            or deployment.worker_id != self.coordinator_id
            or deployment.cancel_requested_at is not None
        ):
            return None
        # Only this part's hosts, in the run's order.
        chosen = set(self.host_ids)
        deployment.host_ids = [host_id for host_id in deployment.host_ids if host_id in chosen]
        return deployment

    async def _run(self) -> None:
        deployment = await self._load_part()
        if deployment is None:
            return
        options = ExecutionOptions.model_validate(deployment.options)
        secrets = secret_environment(deployment)
        hosts = await self._load_hosts(deployment)
        self.inventory = await self._load_inventory(hosts)
        redactor = Redactor(
            [
                *secrets.values(),
                *(value for env in self.inventory.values() for value in env.secret.values()),
                *(h.password for h in hosts),
                *(h.private_key for h in hosts),
                *(h.private_key_passphrase for h in hosts),
            ]
        )
        count = len(deployment.host_ids)
        async with (
            LogWriter(
                self.db,
                tenant_id=self.state.tenant_id,
                deployment_id=deployment.id,
                redactor=redactor,
            ) as logs,
            ScriptRowWriter(self.db, tenant_id=self.state.tenant_id) as self.rows,
            self._heartbeat(),
            self._announce_drain(logs),
        ):
            await logs.write(
                "INFO",
                f"Pool {self.pool}: worker {self.state.worker_id} runs "
                f"{count} host{'s' if count != 1 else ''}.",
            )
            error: str | None = None
            try:
                await self._run_hosts_here(deployment, hosts, options, secrets, logs)
            except ShipyardError as exc:
                error = exc.message
            except Exception as exc:
                logger.exception("part %s of deployment %s crashed", self.pool, deployment.id)
                error = f"internal error: {type(exc).__name__}"
            if self.state.lost_ownership:
                return
            if error is not None:
                await logs.write("ERROR", f"Pool {self.pool}: {error}")
            succeeded = sum(1 for outcome in self.state.outcomes.values() if outcome.succeeded)
            await logs.write(
                "INFO" if succeeded == count else "WARNING",
                f"Pool {self.pool}: {succeeded} of {count} host{'s' if count != 1 else ''} "
                "succeeded.",
            )
        if error is not None:
            # The coordinator reads the part's outcome from the rows.
            await end_unfinished(
                self.db,
                tenant_id=self.state.tenant_id,
                deployment_id=deployment.id,
                host_ids=deployment.host_ids,
                status="failed",
                error=error,
            )

    async def _run_hosts_here(
        self,
        deployment: Deployment,
        hosts: list[Host],
        options: ExecutionOptions,
        secrets: dict[str, str],
        logs: LogWriter,
    ) -> None:
        missing = set(deployment.host_ids) - {host.id for host in hosts}
        for host_id in missing:
            await logs.write("ERROR", f"Host {host_id} was deleted before the deployment ran.")
        async with prepared_scripts(
            db=self.db, settings=self.settings, deployment=deployment, logs=logs, http=self.http
        ) as prepared:
            await self._run_prepared(deployment, hosts, options, secrets, logs, prepared)
