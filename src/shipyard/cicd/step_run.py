"""Following one CI/CD step from trigger to result, persisting progress as it goes."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import httpx
from sqlalchemy import select, text

from shipyard.cicd.connection import open_client
from shipyard.cicd.models import CicdJob, CicdProvider, DeploymentCicdMapping
from shipyard.cicd.providers.base import BuildState, CicdClient, JobRef
from shipyard.config import Settings
from shipyard.crypto import Keyring, SecretDecryptionError, is_sealed, unseal
from shipyard.db import Database, session_keyring
from shipyard.errors import ShipyardError
from shipyard.outbound.links import link_under
from shipyard.outbound.masking import Masker

logger = logging.getLogger(__name__)

FINAL = ("success", "failed", "cancelled")
# Slices of the poll interval, so a cancel request is noticed quickly.
_CANCEL_CHECK_SECONDS = 0.2
_MAX_DRAIN_READS = 100
# Password parameters can be short; three characters is the shortest value worth masking
# (replacing every "a" would garble the console).
MIN_MASKED_LENGTH = 3
# How long aborting a build we stop following may take before we give up on it.
_ABORT_SECONDS = 10.0


class StepOutcome(str):
    """How a step ended ('success', 'failed' or 'cancelled'), with the job and the reason.

    Compares equal to its status, so callers may test ``outcome == "success"``; ``summary``
    names the job and why it failed, for the deployment's own error.
    """

    job: str
    reason: str | None

    def __new__(cls, status: str, *, job: str, reason: str | None = None) -> StepOutcome:
        outcome = super().__new__(cls, status)
        outcome.job = job
        outcome.reason = reason
        return outcome

    @property
    def status(self) -> str:
        return str.__str__(self)

    @property
    def summary(self) -> str:
        why = f": {self.reason}" if self.reason else ""
        return f"CI/CD step {self.job} {self.status}{why}"


class StepFailed(Exception):
    """Ends the step as failed with ``message`` as the user-facing reason."""


class StepGone(Exception):
    """The mapping itself no longer exists (its deployment was deleted)."""


def _now() -> datetime:
    return datetime.now(UTC)


class StepRunner:
    def __init__(
        self,
        *,
        db: Database,
        settings: Settings,
        mapping_id: UUID,
        tenant_id: UUID,
        emit: Callable[[str, str], Awaitable[None]],
        should_cancel: Callable[[], bool],
    ) -> None:
        self.db = db
        self.settings = settings
        self.mapping_id = mapping_id
        self.tenant_id = tenant_id
        self._emit = emit
        self.should_cancel = should_cancel
        self.mask = Masker(())
        self.label = "CI/CD"
        self.partial = ""
        self.build_number: str | None = None
        self.provider_id: UUID | None = None
        self.parameters: dict[str, Any] = {}
        self._running = False

    async def say(self, level: str, message: str) -> None:
        await self._emit(level, self.mask(message))

    async def _update(self, **values: Any) -> None:
        async with self.db.session(tenant_id=self.tenant_id) as session:
            mapping = await session.get(DeploymentCicdMapping, self.mapping_id)
            if mapping is None:
                raise StepGone
            for key, value in values.items():
                setattr(mapping, key, value)

    def _outcome(self, status: str, reason: str | None = None) -> StepOutcome:
        return StepOutcome(
            status, job=self.label, reason=self.mask(reason) if reason is not None else None
        )

    async def _finish(self, status: str, error: str | None = None) -> StepOutcome:
        level = {"success": "INFO", "cancelled": "WARNING"}.get(status, "ERROR")
        if error:
            await self.say(level, f"{self.label}: {error}")
        try:
            await self._update(
                status=status,
                error=self.mask(error) if error else None,
                completed_at=_now(),
            )
        except StepGone:
            return self._outcome("cancelled", "the deployment was deleted")
        return self._outcome(status, error)

    async def run(self, http: httpx.AsyncClient) -> StepOutcome:
        try:
            loaded = await self._load(http)
        except StepGone:
            return self._outcome("cancelled", "the deployment was deleted")
        except StepFailed as exc:
            return await self._finish("failed", str(exc))
        if isinstance(loaded, StepOutcome):
            return loaded
        client, job, mapping = loaded
        try:
            return await self._follow(client, job, mapping)
        except StepGone:
            return self._outcome("cancelled", "the deployment was deleted")
        except StepFailed as exc:
            return await self._finish("failed", str(exc))
        except ShipyardError as exc:
            return await self._finish("failed", exc.message)

    async def _load(
        self, http: httpx.AsyncClient
    ) -> StepOutcome | tuple[CicdClient, CicdJob, DeploymentCicdMapping]:
        async with self.db.session(tenant_id=self.tenant_id) as session:
            mapping = await session.scalar(
                select(DeploymentCicdMapping).where(
                    DeploymentCicdMapping.id == self.mapping_id,
                    DeploymentCicdMapping.tenant_id == self.tenant_id,
                )
            )
            if mapping is None:
                raise StepGone
            job = await session.get(CicdJob, mapping.cicd_job_id) if mapping.cicd_job_id else None
            provider: CicdProvider | None = None
            if job is not None:
                provider = await session.get(CicdProvider, job.provider_id)
                if provider is not None:
                    self.label = f"{provider.name} ({job.path or job.name})"
            if mapping.status in FINAL:
                return self._outcome(mapping.status, mapping.error)
            if job is None:
                raise StepFailed("the CI/CD job of this step was deleted")
            if provider is None:
                raise StepFailed("the CI/CD provider of this step was deleted")
            self.provider_id = provider.id
            if not job.buildable and not mapping.tracking:
                raise StepFailed(
                    f"the job is disabled in {provider.name}; enable it there and sync the provider"
                )
            try:
                client = await open_client(session, provider, http=http, settings=self.settings)
            except ShipyardError as exc:
                raise StepFailed(exc.message) from exc
            keyring = session_keyring(session)
            self.parameters = self._plain_parameters(mapping.parameters, keyring)
            self.mask = Masker(
                (*client.secrets, *self._password_values(mapping.parameters, keyring)),
                min_length=MIN_MASKED_LENGTH,
            )
            return client, job, mapping

    @staticmethod
    def _plain_parameters(stored: dict[str, Any], keyring: Keyring) -> dict[str, Any]:
        try:
            return {k: unseal(v, keyring) if is_sealed(v) else v for k, v in stored.items()}
        except SecretDecryptionError as exc:
            raise StepFailed(
                "a password parameter cannot be decrypted with the current keys"
            ) from exc

    @staticmethod
    def _password_values(stored: dict[str, Any], keyring: Keyring) -> list[str]:
        values = []
        for value in stored.values():
            if is_sealed(value):
                try:
                    values.append(unseal(value, keyring))
                except SecretDecryptionError:
                    continue
        return values

    async def _poll(self, client: CicdClient, job: CicdJob, tracking: dict[str, Any]) -> BuildState:
        """Poll; a client that finds its build by listing claims it under a lock per job.

        Two steps of the same job triggered together would otherwise both pick the same run.
        """
        key = client.claim_key
        if key is None or key in tracking:
            return await client.poll(tracking)
        async with self.db.session(tenant_id=self.tenant_id) as session:
            await session.execute(
                text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
                {"key": f"cicd-claim:{job.id}"},
            )
            claimed = await session.scalars(
                select(DeploymentCicdMapping.tracking[key]).where(
                    DeploymentCicdMapping.cicd_job_id == job.id,
                    DeploymentCicdMapping.id != self.mapping_id,
                    DeploymentCicdMapping.created_at > _now() - timedelta(days=2),
                    DeploymentCicdMapping.tracking.has_key(key),
                )
            )
            tracking["claimed"] = list(claimed)
            state = await client.poll(tracking)
            tracking.pop("claimed", None)
            if key in tracking:
                mapping = await session.get(DeploymentCicdMapping, self.mapping_id)
                if mapping is None:
                    raise StepGone
                mapping.tracking = dict(tracking)
            return state

    async def _trigger(
        self, client: CicdClient, job: CicdJob, mapping: DeploymentCicdMapping
    ) -> dict[str, Any]:
        if self.should_cancel():
            raise _Cancelled
        ref = JobRef(
            external_id=job.external_id, name=job.name, path=job.path, parameters=job.parameters
        )
        tracking = await client.trigger(ref, self.parameters)
        await self._update(status="queued", started_at=_now(), tracking=tracking, error=None)
        await self.say("INFO", f"{self.label}: triggered on {client.label}")
        return tracking

    async def _follow(
        self, client: CicdClient, job: CicdJob, mapping: DeploymentCicdMapping
    ) -> StepOutcome:
        tracking = dict(mapping.tracking or {})
        self.build_number = mapping.build_number
        try:
            if not tracking:
                tracking = await self._trigger(client, job, mapping)
            else:
                where = (
                    f"build #{mapping.build_number}" if mapping.build_number else "its queued build"
                )
                await self.say("WARNING", f"{self.label}: resuming; following {where}")
                self.partial = str(tracking.pop("partial_line", ""))
        except _Cancelled:
            return await self._finish("cancelled", "cancelled before the job was triggered")
        try:
            return await self._loop(client, job, tracking)
        except (ShipyardError, StepFailed, asyncio.CancelledError):
            # We stop following a build that is still going: abort it upstream rather than
            # leave it running with nobody watching (a lost worker cannot, and is not asked to).
            await self._abort_abandoned(client, tracking)
            raise

    async def _abort_abandoned(self, client: CicdClient, tracking: dict[str, Any]) -> None:
        try:
            async with asyncio.timeout(_ABORT_SECONDS):
                aborted = await asyncio.shield(client.cancel(tracking))
        except (ShipyardError, TimeoutError) as exc:
            reason = exc.message if isinstance(exc, ShipyardError) else "no answer in time"
            logger.warning("%s: could not abort the abandoned build: %s", self.label, reason)
            return
        if aborted:
            await self.say("WARNING", f"{self.label}: stopped following the build; aborted it")

    async def _loop(
        self, client: CicdClient, job: CicdJob, tracking: dict[str, Any]
    ) -> StepOutcome:
        settings = self.settings
        queued_at = float(tracking.get("queued_at", time.time()))
        build_deadline = queued_at + settings.cicd_build_timeout_seconds
        cancel_deadline: float | None = None
        cancel_sent = False
        last_queue_detail: str | None = None
        last_saved: dict[str, Any] = dict(tracking)
        while True:
            await self._check_provider()
            if self.should_cancel() and cancel_deadline is None:
                cancel_deadline = time.monotonic() + settings.cicd_cancel_grace_seconds
                await self.say("WARNING", f"{self.label}: cancel requested; aborting the build")
            if cancel_deadline is not None and not cancel_sent:
                cancel_sent = await client.cancel(tracking)
            state = await self._poll(client, job, tracking)
            await self._record_build(state, link_base=client.link_base)
            if state.status != "waiting" and "approval_since" in tracking:
                del tracking["approval_since"]
                await self.say("INFO", f"{self.label}: approved; the build goes on")
            if state.status != "queued" or state.number:
                await self._stream(await client.console(tracking))
            if state.is_final:
                await self._drain(client, tracking)
                await self._save_tracking(tracking, last_saved)
                return await self._conclude(client, state, cancel_deadline is not None)
            if state.status == "waiting":
                waiting_since = await self._waiting(state, tracking)
                waited = time.time() - waiting_since
                if waited > settings.cicd_approval_timeout_seconds and cancel_deadline is None:
                    await self._try_cancel(client, tracking)
                    return await self._finish(
                        "failed",
                        f"the build waited for approval longer than "
                        f"{settings.cicd_approval_timeout_seconds:g} s ({state.detail}); "
                        "it was cancelled",
                    )
            if state.status == "queued":
                if state.detail != last_queue_detail:
                    await self.say("INFO", f"{self.label}: queued ({state.detail})")
                    last_queue_detail = state.detail
                waited = time.time() - queued_at
                if waited > settings.cicd_queue_timeout_seconds and cancel_deadline is None:
                    await self._try_cancel(client, tracking)
                    return await self._finish(
                        "failed",
                        f"the build did not leave the {client.label} queue within "
                        f"{settings.cicd_queue_timeout_seconds:g} s ({state.detail}); it was cancelled",
                    )
            if time.time() > build_deadline:
                await self._try_cancel(client, tracking)
                return await self._finish(
                    "failed",
                    f"the build ran longer than {settings.cicd_build_timeout_seconds:g} s; it was aborted",
                )
            if cancel_deadline is not None and time.monotonic() > cancel_deadline:
                return await self._finish(
                    "cancelled",
                    f"{client.label} did not confirm the abort within "
                    f"{settings.cicd_cancel_grace_seconds:g} s; the step is marked cancelled",
                )
            await self._save_tracking(tracking, last_saved)
            await self._sleep(wake_on_cancel=cancel_deadline is None)

    async def _waiting(self, state: BuildState, tracking: dict[str, Any]) -> float:
        """Note (once) that the build waits on an approval; return since when it has waited."""
        since = tracking.get("approval_since")
        if since is None:
            since = tracking["approval_since"] = time.time()
            await self._set_running()
            await self._update(tracking=dict(tracking))
            await self.say("WARNING", f"{self.label}: waiting for approval ({state.detail})")
        await self._set_running()
        return float(since)

    async def _try_cancel(self, client: CicdClient, tracking: dict[str, Any]) -> None:
        try:
            await client.cancel(tracking)
        except ShipyardError as exc:
            await self.say("WARNING", f"{self.label}: could not cancel the build: {exc.message}")

    async def _sleep(self, *, wake_on_cancel: bool) -> None:
        deadline = time.monotonic() + self.settings.cicd_poll_interval_seconds
        while (remaining := deadline - time.monotonic()) > 0:
            if wake_on_cancel and self.should_cancel():
                return
            await asyncio.sleep(min(_CANCEL_CHECK_SECONDS, remaining))

    async def _check_provider(self) -> None:
        async with self.db.session(tenant_id=self.tenant_id) as session:
            exists = await session.scalar(
                select(CicdProvider.id).where(CicdProvider.id == self.provider_id)
            )
            if exists is None:
                raise StepFailed("the CI/CD provider was deleted while the step was running")

    async def _record_build(self, state: BuildState, *, link_base: str) -> None:
        if state.number and state.number != self.build_number:
            self.build_number = state.number
            # Only an http(s) link under the provider's own address is stored and shown.
            url = link_under(state.url, link_base)
            await self._update(build_number=state.number, build_url=url)
            link = f" {url}" if url else ""
            await self.say("INFO", f"{self.label}: build #{state.number}{link}")
            if state.url and url is None:
                await self.say(
                    "WARNING",
                    f"{self.label}: the build link it reported is not an http(s) address under "
                    f"{link_base}; it is not shown",
                )
        if state.status == "running":
            await self._set_running()

    async def _set_running(self) -> None:
        if self._running:
            return
        self._running = True
        await self._update(status="running")

    async def _save_tracking(self, tracking: dict[str, Any], last_saved: dict[str, Any]) -> None:
        # The unfinished last line travels with the console offset, so a resume loses nothing.
        snapshot = {**tracking, "partial_line": self.partial} if self.partial else dict(tracking)
        if snapshot != last_saved:
            await self._update(tracking=snapshot)
            last_saved.clear()
            last_saved.update(snapshot)

    async def _stream(self, text: str) -> None:
        if not text:
            return
        text = self.partial + text
        lines = text.split("\n")
        self.partial = lines.pop()
        for line in lines:
            await self.say("INFO", line.rstrip("\r"))

    async def _drain(self, client: CicdClient, tracking: dict[str, Any]) -> None:
        for _ in range(_MAX_DRAIN_READS):
            text = await client.console(tracking)
            if not text:
                break
            await self._stream(text)
        if self.partial:
            await self.say("INFO", self.partial.rstrip("\r"))
            self.partial = ""

    async def _conclude(
        self, client: CicdClient, state: BuildState, cancel_requested: bool
    ) -> StepOutcome:
        build = f"build #{state.number}" if state.number else "the build"
        if state.status == "success":
            await self.say("INFO", f"{self.label}: {build} succeeded")
            return await self._finish("success")
        if state.status == "cancelled":
            if cancel_requested:
                return await self._finish("cancelled", f"{build} was aborted")
            return await self._finish(
                "failed", f"{build} was cancelled in {client.label} ({state.detail})"
            )
        return await self._finish("failed", f"{build} failed ({state.detail})")


class _Cancelled(Exception):
    """The deployment asked this step to stop."""
