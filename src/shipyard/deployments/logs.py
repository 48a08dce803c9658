"""Deployment log lines: batched writes, redaction, and notifications for live streams."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections import deque
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple, cast
from uuid import UUID

import psycopg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from shipyard import metrics
from shipyard.db import Database
from shipyard.deployments.models import LOG_STREAMS
from shipyard.deployments.redaction import Redactor

logger = logging.getLogger(__name__)

NOTIFY_CHANNEL = "shipyard_deployment_logs"
MAX_MESSAGE_CHARS = 16384

# Binary COPY, built a read at a time: the fields a read's lines share are encoded once, and
# each row is a few byte concatenations (its id's last six bytes, its message and length).
# Binary, not text: PostgreSQL parses text uuids and timestamps at about half the rate
# (docs/benchmarks.md "Log throughput"); psycopg's write_row cost about 3 us a row in Python.
_COPY_LOGS = (
    "COPY deployment_logs (id, deployment_id, tenant_id, level, message, timestamp, host_id, "
    "deployment_script_id, stream, line_no) FROM STDIN (FORMAT BINARY)"
)
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
_COPY_TRAILER = b"\xff\xff"
_FIELD_COUNT = (10).to_bytes(2, "big")
_NULL_FIELD = b"\xff\xff\xff\xff"
_BIGINT_LENGTH = (8).to_bytes(4, "big")
# A block of line numbers for one batch (0016), in the COPY's transaction: the run's row stays
# locked until the commit, so two writers of one run (a pool's parts) never share numbers and a
# rolled-back batch gives its numbers back. No row (a run logged before 0016): lines unnumbered.
_TAKE_LINE_NUMBERS = text(
    "UPDATE deployments SET log_lines = log_lines + :count "
    "WHERE id = :deployment_id AND log_lines IS NOT NULL RETURNING log_lines"
)
_POSTGRES_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def _field(data: bytes | None) -> bytes:
    """One binary COPY field: its length, then its bytes (or the NULL marker)."""
    return _NULL_FIELD if data is None else len(data).to_bytes(4, "big") + data


def _timestamp(when: datetime) -> bytes:
    """A timestamptz as binary COPY wants it: microseconds since 2000-01-01 UTC."""
    delta = when - _POSTGRES_EPOCH
    micros = (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds
    return micros.to_bytes(8, "big", signed=True)


_LOW_48 = (1 << 48) - 1
_COUNTER_BITS = (1 << 62) - 1


class Uuid7Sequence:
    """Time-ordered UUIDs (RFC 9562 version 7, counter method): new log lines append to the
    primary-key index instead of landing at random places in it. Made here, not by the server,
    because the database is the busier side while a chatty script runs."""

    def __init__(self) -> None:
        self._counter = secrets.randbits(62)
        self._rand_a = secrets.randbits(12)

    def next(self, timestamp: datetime) -> UUID:
        self._counter = (self._counter + 1) & _COUNTER_BITS
        millis = int(timestamp.timestamp() * 1000)
        return UUID(
            int=(millis << 80) | (0x7 << 76) | (self._rand_a << 64) | (0b10 << 62) | self._counter
        )

    def block(self, timestamp: datetime, count: int) -> tuple[bytes, int]:
        """Reserve ``count`` ids stamped ``timestamp``: (their first 10 bytes, the first of
        their last 6 bytes as a number; the rest follow one by one).

        The reservation never wraps the low 48 bits, so every id of the block shares its head.
        """
        counter = (self._counter + 1) & _COUNTER_BITS
        if (counter & _LOW_48) + count > _LOW_48:
            counter = ((counter | _LOW_48) + 1) & _COUNTER_BITS
        self._counter = (counter + count - 1) & _COUNTER_BITS
        millis = int(timestamp.timestamp() * 1000)
        high = (millis << 16) | (0x7 << 12) | self._rand_a
        head = high.to_bytes(8, "big") + ((0b10 << 14) | (counter >> 48)).to_bytes(2, "big")
        return head, counter & _LOW_48


async def notify_deployment(session: AsyncSession, deployment_id: UUID) -> None:
    """Wake live streams of ``deployment_id`` once the current transaction commits."""
    await session.execute(
        text("SELECT pg_notify(:channel, :payload)"),
        {"channel": NOTIFY_CHANNEL, "payload": str(deployment_id)},
    )


class LogBlock(NamedTuple):
    """Lines stored together: one read of a script's stream, or one of Shipyard's events.

    ``messages`` are final (redacted, NUL-free, capped); every line shares the rest.
    """

    level: str
    messages: list[str]
    timestamp: datetime
    host_id: UUID | None
    deployment_script_id: UUID | None
    stream: str | None


def _cap(messages: list[str]) -> list[str]:
    """``messages`` with each line over the cap cut to it (and saying so)."""
    if not messages or max(map(len, messages)) <= MAX_MESSAGE_CHARS:
        return messages
    return [
        message[:MAX_MESSAGE_CHARS] + " [line truncated]"
        if len(message) > MAX_MESSAGE_CHARS
        else message
        for message in messages
    ]


def _copy_rows(
    block: LogBlock, ids: Uuid7Sequence, deployment: bytes, tenant: bytes, first_line: int | None
) -> bytes:
    """The rows of ``block`` as binary COPY tuples (without the header and trailer), numbered
    from ``first_line`` (None: unnumbered)."""
    messages = block.messages
    joined = "\n".join(messages)
    if joined.count("\n") == len(messages) - 1:
        # The lines of a read hold no line feed: encode them all at once, then split again.
        encoded = joined.encode().split(b"\n")
    else:
        encoded = [message.encode() for message in messages]
    head, first = ids.block(block.timestamp, len(messages))
    prefix = _FIELD_COUNT + b"\x00\x00\x00\x10" + head
    middle = _field(deployment) + _field(tenant) + _field(block.level.encode())
    host, script = block.host_id, block.deployment_script_id
    tail = (
        _field(_timestamp(block.timestamp))
        + _field(host.bytes if host is not None else None)
        + _field(script.bytes if script is not None else None)
        + _field(block.stream.encode() if block.stream is not None else None)
    )
    counters = range(first, first + len(encoded))
    if first_line is None:
        return b"".join(
            [
                prefix
                + counter.to_bytes(6, "big")
                + middle
                + len(message).to_bytes(4, "big")
                + message
                + tail
                + _NULL_FIELD
                for counter, message in zip(counters, encoded, strict=True)
            ]
        )
    tail += _BIGINT_LENGTH
    return b"".join(
        [
            prefix
            + counter.to_bytes(6, "big")
            + middle
            + len(message).to_bytes(4, "big")
            + message
            + tail
            + line.to_bytes(8, "big")
            for counter, message, line in zip(
                counters, encoded, range(first_line, first_line + len(encoded)), strict=True
            )
        ]
    )


CarryKey = tuple[UUID | None, UUID | None, str]


class LogWriter:
    """Collects lines from many hosts and writes them in batches, so chatty scripts stay fast.

    A script's output comes in whole reads (:meth:`write_lines`): redaction, the NUL and size
    rules and the COPY encoding then run once per read over all its lines, not once per line.
    """

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
        self._pending: deque[LogBlock] = deque()
        self._pending_lines = 0
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
        # The unsettled end of a cut line, per (host, script, stream or level): masked with its
        # next piece.
        self._carry: dict[CarryKey, tuple[str, datetime]] = {}

    async def __aenter__(self) -> LogWriter:
        self._task = asyncio.create_task(self._run(), name=f"log-writer-{self._deployment_id}")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def redact(self, message: str) -> str:
        return self._redact(message)

    async def _wait_for_room(self) -> None:
        """Wait when too much is queued, so a chatty script slows down instead of filling memory."""
        if self._pending_lines >= self._max_pending:
            self._room.clear()
            self._wake.set()
            await self._room.wait()

    async def write(
        self,
        level: str,
        message: str,
        *,
        host_id: UUID | None = None,
        deployment_script_id: UUID | None = None,
        timestamp: datetime | None = None,
        continues: bool = False,
        stream: str | None = None,
    ) -> str:
        """Queue one line (redacted, NUL-free, size-capped) and return it as stored.

        ``continues`` marks a piece of an over-long line cut by the executor: its unsettled end
        (where a secret may begin that the next piece completes) is held back and masked
        together with the next piece of the same host, script and stream (or level), so a
        secret across the cut is masked whole. Such a piece may store less than it was given,
        or nothing (then "" is returned and no line is queued).

        Waits when too much is queued, so a chatty script slows down instead of filling memory.
        """
        await self._wait_for_room()
        key = (host_id, deployment_script_id, stream or level)
        clean = self._settle(key, message, timestamp or datetime.now(UTC), continues)
        if clean is None:
            return ""
        stored, when = clean
        block = LogBlock(level, _cap([stored]), when, host_id, deployment_script_id, stream)
        self._queue(block)
        return block.messages[0]

    async def write_lines(
        self,
        stream: str,
        lines: Sequence[str],
        *,
        timestamp: datetime,
        host_id: UUID | None,
        deployment_script_id: UUID | None,
        cut: tuple[int, ...] = (),
    ) -> list[str]:
        """Queue the lines of one read of a script's ``stream`` (level INFO) and return them as
        stored (a cut piece may store nothing, see :meth:`write`).

        Lines hold no line feed (the executor split on them), so the whole read is masked and
        checked in one pass; a read that continues a cut line goes line by line.
        """
        await self._wait_for_room()
        key = (host_id, deployment_script_id, stream)
        if cut or key in self._carry:
            return self._write_one_by_one(
                stream, lines, timestamp, host_id, deployment_script_id, cut
            )
        messages = list(lines)
        joined = "\n".join(messages)
        clean = joined.replace("\x00", "\ufffd") if "\x00" in joined else joined
        clean = self._redact.mask_lines(clean)
        if clean is not joined and clean != joined:
            messages = clean.split("\n")
        block = LogBlock("INFO", _cap(messages), timestamp, host_id, deployment_script_id, stream)
        if block.messages:
            self._queue(block)
        return block.messages

    def _write_one_by_one(
        self,
        stream: str,
        lines: Sequence[str],
        timestamp: datetime,
        host_id: UUID | None,
        deployment_script_id: UUID | None,
        cut: tuple[int, ...],
    ) -> list[str]:
        key = (host_id, deployment_script_id, stream)
        stored: list[str] = []
        for index, line in enumerate(lines):
            clean = self._settle(key, line, timestamp, index in cut)
            if clean is None:
                continue
            message, when = clean
            block = LogBlock("INFO", _cap([message]), when, host_id, deployment_script_id, stream)
            self._queue(block)
            stored.append(block.messages[0])
        return stored

    def _settle(
        self, key: CarryKey, message: str, when: datetime, continues: bool
    ) -> tuple[str, datetime] | None:
        """Redact one line (with what a cut held back); None when all of it is held back."""
        text = message.replace("\x00", "\ufffd")
        held = self._carry.pop(key, None)
        if held is not None:
            text, when = held[0] + text, held[1]
        if not continues:
            return self._redact(text), when
        clean, rest = self._redact.mask_prefix(text)
        if rest:
            self._carry[key] = (rest, when)
        return (clean, when) if clean else None

    def _queue(self, block: LogBlock) -> None:
        self._pending.append(block)
        self._pending_lines += len(block.messages)
        if self._pending_lines >= self._batch_size:
            self._wake.set()

    def _release_carry(self) -> None:
        """Queue what is still held back from cut lines (their output ended mid-line)."""
        for (host_id, script_id, stream_or_level), (rest, when) in self._carry.items():
            stream = stream_or_level if stream_or_level in LOG_STREAMS else None
            level = "INFO" if stream is not None else stream_or_level
            message = _cap([self._redact(rest)])
            self._queue(LogBlock(level, message, when, host_id, script_id, stream))
        self._carry.clear()

    def _take_batch(self) -> list[LogBlock]:
        """Whole blocks from the front of the queue, about ``batch_size`` lines."""
        batch: list[LogBlock] = []
        lines = 0
        while self._pending and lines < self._batch_size:
            block = self._pending.popleft()
            batch.append(block)
            lines += len(block.messages)
        self._pending_lines -= lines
        return batch

    async def flush(self) -> None:
        async with self._flush_lock:
            while self._pending:
                batch = self._take_batch()
                try:
                    await self._insert(batch)
                except BaseException:
                    # Keep the lines for the next attempt rather than lose them.
                    self._pending.extendleft(reversed(batch))
                    self._pending_lines += sum(len(block.messages) for block in batch)
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

    def encode(self, batch: list[LogBlock], first_line: int | None = None) -> bytes:
        """``batch`` as binary COPY data, its lines numbered from ``first_line`` (None:
        unnumbered); ids are drawn here, in the order rows are stored."""
        deployment, tenant = self._deployment_id.bytes, self._tenant_id.bytes
        rows = []
        for block in batch:
            rows.append(_copy_rows(block, self._ids, deployment, tenant, first_line))
            if first_line is not None:
                first_line += len(block.messages)
        return b"".join([_COPY_HEADER, *rows, _COPY_TRAILER])

    async def _insert(self, batch: list[LogBlock]) -> None:
        # COPY is an order of magnitude faster than INSERT for thousands of lines. PostgreSQL
        # refuses COPY FROM under row-level security, so this one statement runs as the login
        # role; every row carries this deployment's own tenant id, set by the runner.
        count = sum(len(block.messages) for block in batch)
        async with self._db.session(system=True) as session:
            # A crash of the database server may lose the last fraction of a second of log
            # lines, never a deployment's state; not waiting for the WAL flush doubles the rate.
            await session.execute(text("SET LOCAL synchronous_commit = off"))
            last = await session.scalar(
                _TAKE_LINE_NUMBERS, {"count": count, "deployment_id": self._deployment_id}
            )
            # Encoded once the numbers are known (a few ms per 5,000 lines under the lock).
            data = self.encode(batch, None if last is None else int(last) - count + 1)
            connection = await session.connection()
            raw = await connection.get_raw_connection()
            driver = cast("psycopg.AsyncConnection[Any]", raw.driver_connection)
            async with driver.cursor() as cursor, cursor.copy(_COPY_LOGS) as copy:
                await copy.write(data)
            await notify_deployment(session, self._deployment_id)
        self.lines_written += count
        metrics.LOG_LINES_STORED.inc(count)

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

    def extend(self, lines: list[str]) -> None:
        self._lines.extend(lines)
        self._seen += len(lines)

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
