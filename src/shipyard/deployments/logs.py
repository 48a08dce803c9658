"""Deployment log lines: batched writes, redaction, and notifications for live streams."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections import deque
from datetime import UTC, datetime
from typing import Any, NamedTuple, cast
from uuid import UUID

import psycopg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from shipyard import metrics
from shipyard.db import Database
from shipyard.deployments.redaction import Redactor

logger = logging.getLogger(__name__)

NOTIFY_CHANNEL = "shipyard_deployment_logs"
MAX_MESSAGE_CHARS = 16384

_COPY_LOGS = (
    "COPY deployment_logs "
    "(id, deployment_id, tenant_id, level, message, timestamp, host_id, deployment_script_id) "
    "FROM STDIN (FORMAT BINARY)"
)
_COPY_TYPES = ["uuid", "uuid", "uuid", "text", "text", "timestamptz", "uuid", "uuid"]


class Uuid7Sequence:
    """Time-ordered UUIDs (RFC 9562 version 7, counter method): new log lines append to the
    primary-key index instead of landing at random places in it. Made here, not by the server,
    because the database is the busier side while a chatty script runs."""

    def __init__(self) -> None:
        self._counter = secrets.randbits(62)
        self._rand_a = secrets.randbits(12)

    def next(self, timestamp: datetime) -> UUID:
        self._counter = (self._counter + 1) & ((1 << 62) - 1)
        millis = int(timestamp.timestamp() * 1000)
        return UUID(
            int=(millis << 80) | (0x7 << 76) | (self._rand_a << 64) | (0b10 << 62) | self._counter
        )


async def notify_deployment(session: AsyncSession, deployment_id: UUID) -> None:
    """Wake live streams of ``deployment_id`` once the current transaction commits."""
    await session.execute(
        text("SELECT pg_notify(:channel, :payload)"),
        {"channel": NOTIFY_CHANNEL, "payload": str(deployment_id)},
    )


class LogLine(NamedTuple):
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
        self._ids = Uuid7Sequence()
        self._task: asyncio.Task[None] | None = None
        # Flushes run one at a time, so lines are stored (and numbered) in the order written.
        self._flush_lock = asyncio.Lock()
        self._stored = asyncio.Condition()
        self._generation = 0
        self.lines_written = 0
        # The unsettled end of a cut line, per (host, script, level): masked with its next piece.
        self._carry: dict[tuple[UUID | None, UUID | None, str], tuple[str, datetime]] = {}

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
        continues: bool = False,
    ) -> str:
        """Queue one line (redacted, NUL-free, size-capped) and return it as stored.

        ``continues`` marks a piece of an over-long line cut by the executor: its unsettled end
        (where a secret may begin that the next piece completes) is held back and masked
        together with the next piece of the same host, script and level, so a secret across
        the cut is masked whole. Such a piece may store less than it was given, or nothing
        (then "" is returned and no line is queued).

        Waits when too much is queued, so a chatty script slows down instead of filling memory.
        """
        if len(self._pending) >= self._max_pending:
            self._room.clear()
            self._wake.set()
            await self._room.wait()
        text = message.replace("\x00", "\ufffd")
        when = timestamp or datetime.now(UTC)
        key = (host_id, deployment_script_id, level)
        held = self._carry.pop(key, None)
        if held is not None:
            text, when = held[0] + text, held[1]
        if continues:
            clean, rest = self._redact.mask_prefix(text)
            if rest:
                self._carry[key] = (rest, when)
            if not clean:
                return ""
        else:
            clean = self._redact(text)
        self._queue(LogLine(level, clean, when, host_id, deployment_script_id))
        return self._pending[-1].message

    def _queue(self, line: LogLine) -> None:
        message = line.message
        if len(message) > MAX_MESSAGE_CHARS:
            line = line._replace(message=message[:MAX_MESSAGE_CHARS] + " [line truncated]")
        self._pending.append(line)
        if len(self._pending) >= self._batch_size:
            self._wake.set()

    def _release_carry(self) -> None:
        """Queue what is still held back from cut lines (their output ended mid-line)."""
        for (host_id, script_id, level), (rest, when) in self._carry.items():
            self._queue(LogLine(level, self._redact(rest), when, host_id, script_id))
        self._carry.clear()

    async def flush(self) -> None:
        async with self._flush_lock:
            while self._pending:
                batch = [
                    self._pending.popleft()
                    for _ in range(min(self._batch_size, len(self._pending)))
                ]
                try:
                    await self._insert(batch)
                except BaseException:
                    # Keep the lines for the next attempt rather than lose them.
                    self._pending.extendleft(reversed(batch))
                    raise
            self._room.set()

    async def sync(self) -> None:
        """Wait until every line written so far is stored; callers at the same time share a flush."""
        if self._task is None or self._task.done():
            await self.flush()
            return
        async with self._stored:
            target = self._generation + 1
            self._wake.set()
            await self._stored.wait_for(lambda: self._generation >= target)

    async def _insert(self, batch: list[LogLine]) -> None:
        # COPY is an order of magnitude faster than INSERT for thousands of lines. PostgreSQL
        # refuses COPY FROM under row-level security, so this one statement runs as the login
        # role; every row carries this deployment's own tenant id, set by the runner.
        async with self._db.session(system=True) as session:
            # A crash of the database server may lose the last fraction of a second of log
            # lines, never a deployment's state; not waiting for the WAL flush doubles the rate.
            await session.execute(text("SET LOCAL synchronous_commit = off"))
            connection = await session.connection()
            raw = await connection.get_raw_connection()
            driver = cast("psycopg.AsyncConnection[Any]", raw.driver_connection)
            async with driver.cursor() as cursor, cursor.copy(_COPY_LOGS) as copy:
                copy.set_types(_COPY_TYPES)
                deployment, tenant, next_id = self._deployment_id, self._tenant_id, self._ids.next
                for level, message, timestamp, host_id, script_id in batch:
                    await copy.write_row(
                        (
                            next_id(timestamp),
                            deployment,
                            tenant,
                            level,
                            message,
                            timestamp,
                            host_id,
                            script_id,
                        )
                    )
            await notify_deployment(session, self._deployment_id)
        self.lines_written += len(batch)
        metrics.LOG_LINES_STORED.inc(len(batch))

    async def _run(self) -> None:
        while not self._closed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._flush_interval)
            self._wake.clear()
            try:
                await self.flush()
            except Exception:
                logger.exception("writing deployment logs failed; retrying")
                await asyncio.sleep(self._flush_interval)
                continue
            async with self._stored:
                self._generation += 1
                self._stored.notify_all()

    async def close(self) -> None:
        self._release_carry()
        self._closed = True
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None
        await self.flush()


class OutputTail:
    """The end of a script's output, kept for ``deployment_scripts.output`` (the logs hold all)."""

    def __init__(self, limit: int = 65536, max_lines: int = 2000) -> None:
        self._limit = limit
        self._lines: deque[str] = deque(maxlen=max_lines)
        self._seen = 0

    def add(self, line: str) -> None:
        self._lines.append(line)
        self._seen += 1

    @property
    def truncated(self) -> bool:
        return (
            self._seen > len(self._lines)
            or sum(len(line) + 1 for line in self._lines) > self._limit
        )

    def text(self) -> str:
        body = "\n".join(self._lines)
        cut = self.truncated
        if len(body) > self._limit:
            body = body[-self._limit :]
        return ("[earlier output omitted; see the logs]\n" if cut else "") + body
