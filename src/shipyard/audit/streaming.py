"""Sending new audit entries to each stream: syslog (RFC 5424 over UDP or TCP) or a webhook.

Each stream keeps a cursor, the (created_at, id) of the last entry sent. A round reads the
entries after it in order (a short transaction), sends them with no transaction open, then
moves the cursor past what the receiver took (compare and set). A failed send records
``last_error`` and leaves the cursor, so the next round sends the same entries again: delivery
is at least once, in order, never skipping an entry. Entries of transactions still open are
held back (``created_at`` is their transaction's start; see ``service.stream_horizon``).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from uuid import UUID

from shipyard.accounts.models import AuditEvent
from shipyard.audit import service
from shipyard.audit.schemas import AuditFilters

if TYPE_CHECKING:
    from shipyard.runtime import Runtime

logger = logging.getLogger(__name__)
SIGNATURE_HEADER = "X-Shipyard-Signature"
# RFC 5424: facility 13 (log audit); severities info, notice, warning.
FACILITY = 13
SEVERITY = {"success": 6, "failure": 5, "denied": 4}
# Structured data under the documentation enterprise number (RFC 5612).
SD_ID = "shipyard@32473"
WEBHOOK_BATCH = 100
SEND_TIMEOUT_SECONDS = 10.0


class SendFailed(Exception):
    """The receiver did not take the entries; the message says why (no secrets)."""


def entry_document(entry: AuditEvent) -> dict[str, Any]:
    """An entry as streamed: the API's shape plus its tenant."""
    document = service.entry_read(entry).model_dump(mode="json")
    document["tenant_id"] = str(entry.tenant_id)
    return document


def _sd_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def _printable(value: str, limit: int) -> str:
    cleaned = "".join(char if "!" <= char <= "~" else "_" for char in value)
    return cleaned[:limit] or "-"


def syslog_message(entry: AuditEvent, *, app_name: str, hostname: str) -> bytes:
    """One RFC 5424 message: the entry's fields as structured data, its JSON as the message."""
    pri = FACILITY * 8 + SEVERITY.get(entry.outcome, 5)
    timestamp = entry.created_at.isoformat().replace("+00:00", "Z")
    params = {
        "action": entry.action,
        "resource_type": entry.resource_type,
        "resource_id": str(entry.resource_id) if entry.resource_id else "",
        "outcome": entry.outcome,
        "actor": entry.actor_email or "",
        "tenant": str(entry.tenant_id),
    }
    data = " ".join(f'{key}="{_sd_value(value)}"' for key, value in params.items())
    header = (
        f"<{pri}>1 {timestamp} {_printable(hostname, 255)} {_printable(app_name, 48)} - "
        f"{_printable(entry.action, 32)} [{SD_ID} {data}] "
    )
    body = json.dumps(entry_document(entry), separators=(",", ":"), sort_keys=True)
    return header.encode() + b"\xef\xbb\xbf" + body.encode()


@dataclass
class Batch:
    entries: list[AuditEvent]

    @property
    def last(self) -> tuple[Any, UUID]:
        return self.entries[-1].created_at, self.entries[-1].id


async def send_syslog(
    runtime: Runtime, config: dict[str, Any], entries: Sequence[AuditEvent]
) -> int:
    """Send ``entries`` in order; the number the receiver took (all, or an exception)."""
    host, port = str(config["host"]), int(config.get("port", 514))
    try:
        addresses = await runtime.outbound.check_host(host, port)
    except Exception as exc:
        raise SendFailed(f"{host}: {getattr(exc, 'message', None) or exc}") from exc
    address = str(addresses[0])
    hostname = socket.gethostname() or "shipyard"
    app_name = str(config.get("app_name") or "shipyard")
    messages = [syslog_message(entry, app_name=app_name, hostname=hostname) for entry in entries]
    try:
        if config.get("protocol", "udp") == "tcp":
            await asyncio.wait_for(_send_tcp(address, port, messages), SEND_TIMEOUT_SECONDS)
        else:
            await asyncio.wait_for(_send_udp(address, port, messages), SEND_TIMEOUT_SECONDS)
    except (OSError, TimeoutError) as exc:
        raise SendFailed(f"syslog {host}:{port}: {type(exc).__name__}: {exc}") from exc
    return len(messages)


async def _send_tcp(address: str, port: int, messages: list[bytes]) -> None:
    _, writer = await asyncio.open_connection(address, port)
    try:
        for message in messages:  # octet counting (RFC 6587 3.4.1)
            writer.write(str(len(message)).encode() + b" " + message)
        await writer.drain()
    finally:
        writer.close()
        await writer.wait_closed()


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.error: Exception | None = None

    def error_received(self, exc: Exception) -> None:
        self.error = exc


async def _send_udp(address: str, port: int, messages: list[bytes]) -> None:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        _Datagrams, remote_addr=(address, port)
    )
    try:
        for message in messages:
            transport.sendto(message)
            await asyncio.sleep(0)
            if protocol.error is not None:
                raise protocol.error
    finally:
        transport.close()


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


async def send_webhook(
    runtime: Runtime, config: dict[str, Any], secret: str | None, entries: Sequence[AuditEvent]
) -> int:
    """POST ``entries`` in batches; the number the receiver took before any failure."""
    url = str(config["url"])
    sent = 0
    for start in range(0, len(entries), WEBHOOK_BATCH):
        chunk = entries[start : start + WEBHOOK_BATCH]
        body = json.dumps(
            {"entries": [entry_document(entry) for entry in chunk]}, separators=(",", ":")
        ).encode()
        headers = {"Content-Type": "application/json"}
        if secret:
            headers[SIGNATURE_HEADER] = signature(secret, body)
        try:
            await runtime.outbound.check_url(url)
            response = await runtime.http.post(
                url, content=body, headers=headers, timeout=SEND_TIMEOUT_SECONDS
            )
        except Exception as exc:
            if sent:
                return sent
            reason = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
            raise SendFailed(f"webhook: {reason}") from exc
        if response.status_code >= 300:
            if sent:
                return sent
            raise SendFailed(f"webhook answered {response.status_code}")
        sent += len(chunk)
    return sent


async def send_stream(runtime: Runtime, *, stream_id: UUID, tenant_id: UUID) -> int:
    """One round of one stream; the number of entries sent."""
    settings = runtime.settings
    async with runtime.db.session(tenant_id=tenant_id) as session:
        stream = await service.stream_for_sending(session=session, stream_id=stream_id)
        if stream is None:
            return 0
        since = (stream.cursor_at, stream.cursor_id)
        horizon = await service.stream_horizon(
            session=session, settle_seconds=settings.audit_stream_settle_seconds
        )
        after = None
        if stream.cursor_at is not None:
            after = (stream.cursor_at, stream.cursor_id or UUID(int=0))
        entries = await service.entries_after(
            session=session,
            filters=AuditFilters(),
            after=after,
            before=horizon,
            limit=settings.audit_stream_batch,
        )
        kind, config, secret = stream.type, dict(stream.config or {}), stream.secret
        had_error = stream.last_error is not None
    if not entries:
        if had_error:
            async with runtime.db.session(tenant_id=tenant_id) as session:
                await service.advance_stream(
                    session=session, stream_id=stream_id, since=since, to=None, error=None
                )
        return 0
    error: str | None = None
    try:
        if kind == "syslog":
            sent = await send_syslog(runtime, config, entries)
        else:
            sent = await send_webhook(runtime, config, secret, entries)
    except SendFailed as exc:
        sent, error = 0, str(exc)[:1000]
        logger.warning("audit stream %s: %s", stream_id, error)
    to = Batch(entries[:sent]).last if sent else None
    async with runtime.db.session(tenant_id=tenant_id) as session:
        await service.advance_stream(
            session=session, stream_id=stream_id, since=since, to=to, error=error
        )
    return sent


async def send_all(runtime: Runtime) -> int:
    """One round of every enabled stream (each alone: one's failure never stops another)."""
    async with runtime.db.session(system=True) as session:
        streams = await service.enabled_streams(session=session)
    total = 0
    for stream_id, tenant_id in streams:
        try:
            total += await send_stream(runtime, stream_id=stream_id, tenant_id=tenant_id)
        except Exception:
            logger.exception("audit stream %s: the round failed", stream_id)
    return total
