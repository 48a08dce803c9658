"""The audit trail as a file (CSV or JSON lines), read in short keyset batches: constant
memory however many entries the filters cover, oldest first."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Literal
from uuid import UUID

from shipyard.accounts.principal import Principal
from shipyard.audit import service
from shipyard.audit.schemas import AuditEntryRead, AuditFilters
from shipyard.db import Database

ExportFormat = Literal["csv", "jsonl"]
BATCH = 1000
CSV_COLUMNS = (
    "id",
    "at",
    "actor_id",
    "actor_email",
    "action",
    "resource_type",
    "resource_id",
    "outcome",
    "ip_address",
    "changes",
    "details",
)
MEDIA_TYPES = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson"}


def _csv_line(row: list[str]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer).writerow(row)
    return buffer.getvalue().encode()


def _csv_row(entry: AuditEntryRead) -> list[str]:
    return [
        str(entry.id),
        entry.at.isoformat(),
        str(entry.actor.id) if entry.actor.id else "",
        entry.actor.email or "",
        entry.action,
        entry.resource_type,
        str(entry.resource_id) if entry.resource_id else "",
        entry.outcome,
        entry.ip_address or "",
        json.dumps(entry.changes, sort_keys=True),
        json.dumps(entry.details, sort_keys=True),
    ]


async def export_entries(
    *, db: Database, principal: Principal, filters: AuditFilters, fmt: ExportFormat
) -> AsyncIterator[bytes]:
    """The file's bytes, one batch of entries at a time (each batch its own transaction)."""
    if fmt == "csv":
        yield _csv_line(list(CSV_COLUMNS))
    after: tuple[datetime, UUID] | None = None
    while True:
        async with db.session(tenant_id=principal.tenant_id, user_id=principal.user_id) as session:
            rows = await service.entries_after(
                session=session, filters=filters, after=after, limit=BATCH
            )
            entries = [service.entry_read(row) for row in rows]
        if not entries:
            return
        chunk = bytearray()
        for entry in entries:
            if fmt == "csv":
                chunk += _csv_line(_csv_row(entry))
            else:
                chunk += entry.model_dump_json().encode() + b"\n"
        yield bytes(chunk)
        after = (rows[-1].created_at, rows[-1].id)
        if len(rows) < BATCH:
            return
