"""Live log streams: one LISTEN connection per process fans notifications out to SSE clients."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import defaultdict
from collections.abc import AsyncIterator
from uuid import UUID

import psycopg

from shipyard.accounts.principal import Principal
from shipyard.accounts.service import principal_is_current
from shipyard.db import Database, to_libpq_url
from shipyard.deployments import service
from shipyard.deployments.logs import NOTIFY_CHANNEL
from shipyard.deployments.models import FINAL_DEPLOYMENT_STATUSES
from shipyard.deployments.schemas import DeploymentLogRead

logger = logging.getLogger(__name__)

PAGE = 2000
KEEPALIVE_SECONDS = 15.0
# An idle stream wakes this often to check its caller may still read (log-out, revoked token,
# removed member): a stream then ends within this time.
AUTH_RECHECK_SECONDS = 5.0


class LogBroadcaster:
    """Listens on the log channel and wakes the streams of the notified deployment."""

    def __init__(self, database_url: str) -> None:
        self._url = to_libpq_url(database_url)
        self._waiters: dict[UUID, set[asyncio.Event]] = defaultdict(set)
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def _listen(self) -> None:
        backoff = 0.5
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._url, autocommit=True
                ) as conn:
                    await conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    self._ready.set()
                    backoff = 0.5
                    # Anything missed while reconnecting: wake everyone to re-read.
                    self._wake_all()
                    async for notification in conn.notifies():
                        with contextlib.suppress(ValueError):
                            self._wake(UUID(notification.payload))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning(
                    "log stream listener lost its connection (%s); reconnecting", type(exc).__name__
                )
                self._ready.clear()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)

    def _wake(self, deployment_id: UUID) -> None:
        for event in self._waiters.get(deployment_id, ()):
            event.set()

    def _wake_all(self) -> None:
        for events in self._waiters.values():
            for event in events:
                event.set()

    async def ensure_started(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._listen(), name="log-broadcaster")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), timeout=5.0)

    def subscribe(self, deployment_id: UUID) -> asyncio.Event:
        event = asyncio.Event()
        self._waiters[deployment_id].add(event)
        return event

    def unsubscribe(self, deployment_id: UUID, event: asyncio.Event) -> None:
        waiters = self._waiters.get(deployment_id)
        if waiters is not None:
            waiters.discard(event)
            if not waiters:
                self._waiters.pop(deployment_id, None)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


def sse_event(event: str, data: str, event_id: str | None = None) -> str:
    lines = [f"event: {event}"]
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.extend(f"data: {part}" for part in data.split("\n"))
    return "\n".join(lines) + "\n\n"


async def open_log_stream(
    *,
    db: Database,
    broadcaster: LogBroadcaster,
    principal: Principal,
    deployment_id: UUID,
    after_seq: int,
) -> AsyncIterator[str]:
    """The SSE stream of a deployment's log; raises ``NotFound`` at once, before any event."""
    async with db.session(tenant_id=principal.tenant_id, user_id=principal.user_id) as session:
        await service.get_deployment(session=session, deployment_id=deployment_id)
    return stream_logs(
        db=db,
        broadcaster=broadcaster,
        principal=principal,
        deployment_id=deployment_id,
        after_seq=after_seq,
    )


async def stream_logs(
    *,
    db: Database,
    broadcaster: LogBroadcaster,
    principal: Principal,
    deployment_id: UUID,
    after_seq: int,
) -> AsyncIterator[str]:
    """Yield stored lines after ``after_seq``, then new ones as they land, then the final status."""
    # The process's one listener starts with its first stream; close_runtime stops it.
    await broadcaster.ensure_started()
    wake = broadcaster.subscribe(deployment_id)
    last_seq = after_seq
    idle = 0.0
    try:
        yield "retry: 2000\n\n"
        while True:
            # Subscribe before reading, so a notification between the read and the wait is not lost.
            wake.clear()
            async with db.session(
                tenant_id=principal.tenant_id, user_id=principal.user_id
            ) as session:
                if not await principal_is_current(session=session, principal=principal):
                    # Ends the stream; the browser's reconnect then gets 401 and stops.
                    return
                deployment = await service.get_deployment(
                    session=session, deployment_id=deployment_id
                )
                status = deployment.status
                lines = await service.list_logs(
                    session=session, deployment_id=deployment_id, after_seq=last_seq, limit=PAGE
                )
            for line in lines:
                last_seq = line.seq
                payload = DeploymentLogRead.model_validate(line).model_dump_json()
                yield sse_event("log", payload, event_id=str(line.seq))
            if len(lines) == PAGE:
                continue
            if status in FINAL_DEPLOYMENT_STATUSES:
                yield sse_event("end", json.dumps({"status": status}), event_id=str(last_seq))
                return
            try:
                await asyncio.wait_for(wake.wait(), timeout=AUTH_RECHECK_SECONDS)
            except TimeoutError:
                idle += AUTH_RECHECK_SECONDS
                if idle >= KEEPALIVE_SECONDS:
                    idle = 0.0
                    yield ": keep-alive\n\n"
            else:
                idle = 0.0
    finally:
        broadcaster.unsubscribe(deployment_id, wake)
