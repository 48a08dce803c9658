"""Deployment log lines: batched writes, redaction, and notifications for live streams."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from shipyard.db import Database
from shipyard.deployments.redaction import Redactor

logger = logging.getLogger(__name__)

NOTIFY_CHANNEL = "shipyard_deployment_logs"
MAX_MESSAGE_CHARS = 16384

_INSERT_BATCH = text(
    "INSERT INTO deployment_logs "
    "(deployment_id, tenant_id, level, message, timestamp, host_id, deployment_script_id) "
    "SELECT :deployment_id, :tenant_id, b.level, b.message, b.ts, b.host_id, b.script_id "
    "FROM unnest(CAST(:levels AS text[]), CAST(:messages AS text[]), CAST(:timestamps AS timestamptz[]), "
    "CAST(:host_ids AS uuid[]), CAST(:script_ids AS uuid[])) AS b(level, message, ts, host_id, script_id)"
)


async def notify_deployment(session: AsyncSession, deployment_id: UUID) -> None:
    """Wake live streams of ``deployment_id`` once the current transaction commits."""
    await session.execute(
        text("SELECT pg_notify(:channel, :payload)"),
        {"channel": NOTIFY_CHANNEL, "payload": str(deployment_id)},
    )


@dataclass(frozen=True)
class LogLine:
    level: str
    message: str
    timestamp: datetime
    host_id: UUID | None
    deployment_script_id: UUID | None


class LogWriter:
    """Collects lines from many hosts and writes them in batches, so chatty scripts stay fast."""

    def __init__(
        self,
        db: Database,
        *,
        tenant_id: UUID,
        deployment_id: UUID,
        redactor: Redactor,
        flush_interval: float = 0.1,
        batch_size: int = 5000,
        max_pending: int = 50000,
    ) -> None:
        self._db = db
        self._tenant_id = tenant_id
        self._deployment_id = deployment_id
        self._redact = redactor
        self._flush_interval = flush_interval
        self._batch_size = batch_size
        self._max_pending = max_pending
        self._pending: deque[LogLine] = deque()
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._closed = False
        self._task: asyncio.Task[None] | None = None
        self.lines_written = 0

    async def __aenter__(self) -> LogWriter:
        self._task = asyncio.create_task(self._run(), name=f"log-writer-{self._deployment_id}")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def redact(self, message: str) -> str:
        return self._redact(message)

    async def write(
        self,
        level: str,
        message: str,
        *,
        host_id: UUID | None = None,
        deployment_script_id: UUID | None = None,
        timestamp: datetime | None = None,
    ) -> None:
        """Queue one line (redacted, NUL-free, size-capped); waits when too much is queued."""
        if len(self._pending) >= self._max_pending:
            self._room.clear()
            self._wake.set()
            await self._room.wait()
        clean = self._redact(message.replace("\x00", "\ufffd"))
        if len(clean) > MAX_MESSAGE_CHARS:
            clean = clean[:MAX_MESSAGE_CHARS] + " [line truncated]"
        self._pending.append(
            LogLine(level, clean, timestamp or datetime.now(UTC), host_id, deployment_script_id)
        )
        if len(self._pending) >= self._batch_size:
            self._wake.set()

    async def flush(self) -> None:
        while self._pending:
            batch = [
                self._pending.popleft() for _ in range(min(self._batch_size, len(self._pending)))
            ]
            await self._insert(batch)
        self._room.set()

    async def _insert(self, batch: list[LogLine]) -> None:
        async with self._db.session(tenant_id=self._tenant_id) as session:
            await session.execute(
                _INSERT_BATCH,
                {
                    "deployment_id": self._deployment_id,
                    "tenant_id": self._tenant_id,
                    "levels": [line.level for line in batch],
                    "messages": [line.message for line in batch],
                    "timestamps": [line.timestamp for line in batch],
                    "host_ids": [line.host_id for line in batch],
                    "script_ids": [line.deployment_script_id for line in batch],
                },
            )
            await notify_deployment(session, self._deployment_id)
        self.lines_written += len(batch)

    async def _run(self) -> None:
        while not self._closed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._flush_interval)
            self._wake.clear()
            try:
                await self.flush()
            except Exception:
                # Keep the lines and retry on the next tick rather than lose them.
                logger.exception("writing deployment logs failed; retrying")
                await asyncio.sleep(self._flush_interval)

    async def close(self) -> None:
        self._closed = True
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None
        await self.flush()


class OutputTail:
    """The last ``limit`` characters of a script's output, kept for ``deployment_scripts.output``."""

    def __init__(self, limit: int = 65536) -> None:
        self._limit = limit
        self._chunks: deque[str] = deque()
        self._size = 0
        self.truncated = False

    def add(self, line: str) -> None:
        self._chunks.append(line)
        self._size += len(line) + 1
        while self._size > self._limit and len(self._chunks) > 1:
            dropped = self._chunks.popleft()
            self._size -= len(dropped) + 1
            self.truncated = True

    def text(self) -> str:
        body = "\n".join(self._chunks)
        if len(body) > self._limit:
            body = body[-self._limit :]
            self.truncated = True
        return ("[earlier output omitted; see the logs]\n" if self.truncated else "") + body
