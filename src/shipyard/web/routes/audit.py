"""Web pages: the audit trail (filterable table, entry detail with its changes, export links),
its streams (added, enabled, disabled, deleted) and the retention period (admins)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from urllib.parse import urlencode
from uuid import UUID

from fastapi import Request, Response
from fastapi.responses import RedirectResponse
from pydantic import ValidationError

from shipyard.accounts.permissions import Permission
from shipyard.accounts.principal import Actor
from shipyard.audit import flows, service
from shipyard.audit.schemas import (
    AuditFilters,
    RetentionUpdate,
    StreamCreate,
    StreamCreated,
    StreamUpdate,
)
from shipyard.config import MAX_RETENTION_DAYS
from shipyard.deps import RuntimeDep, SessionDep, SettingsDep, acting, attempt
from shipyard.errors import ShipyardError, ValidationFailed
from shipyard.web.errors import sentence
from shipyard.web.routes import web_router
from shipyard.web.templating import render

router = web_router()
Auditor = Annotated[Actor, acting(Permission.MANAGE_AUDIT)]
PAGE = 100
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _time(value: str | None, field: str) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError as exc:
        raise ValidationFailed(f"{field} is not a date and time", field=field) from exc


def _uuid(value: str | None, field: str) -> UUID | None:
    if not value:
        return None
    try:
        return UUID(value)
    except ValueError as exc:
        raise ValidationFailed(f"{field} is not an id", field=field) from exc


@router.get("/audit")
async def audit_page(request: Request, actor: Auditor, session: SessionDep) -> Response:
    query = request.query_params
    shown = {
        key: query.get(key, "")
        for key in (
            "actor_id",
            "action",
            "resource_type",
            "resource_id",
            "outcome",
            "since",
            "until",
        )
    }
    filters = AuditFilters(
        actor_id=_uuid(shown["actor_id"], "actor_id"),
        action=shown["action"] or None,
        resource_type=shown["resource_type"] or None,
        resource_id=_uuid(shown["resource_id"], "resource_id"),
        outcome=shown["outcome"] or None,
        since=_time(shown["since"], "since"),
        until=_time(shown["until"], "until"),
    )
    entries, next_cursor = await service.list_entries(
        session=session, filters=filters, limit=PAGE, cursor=query.get("cursor") or None
    )
    given = {key: value for key, value in shown.items() if value}
    return render(
        request,
        "audit/list.html",
        {
            "section": "audit",
            "entries": entries,
            "filters": shown,
            "next_query": urlencode({**given, "cursor": next_cursor}) if next_cursor else None,
            "export_csv": "/api/v1/audit/export?" + urlencode({**given, "format": "csv"}),
            "export_jsonl": "/api/v1/audit/export?" + urlencode({**given, "format": "jsonl"}),
        },
    )


@router.get("/audit/entries/{entry_id}")
async def audit_entry_page(
    request: Request, entry_id: UUID, actor: Auditor, session: SessionDep
) -> Response:
    entry = await service.read_entry(session=session, entry_id=entry_id)
    return render(request, "audit/entry.html", {"section": "audit", "entry": entry})


async def _settings_page(
    request: Request,
    actor: Actor,
    session: SessionDep,
    default_days: int,
    *,
    error: str | None = None,
    stream_error: str | None = None,
    stream_form: dict[str, str] | None = None,
    created: StreamCreated | None = None,
    status_code: int = 200,
) -> Response:
    retention = await service.read_retention(
        session=session, actor=actor, default_days=default_days
    )
    streams = await service.list_streams(session=session)
    return render(
        request,
        "audit/settings.html",
        {
            "section": "audit",
            "retention": retention,
            "streams": streams,
            "error": error,
            "stream_error": stream_error,
            "stream_form": stream_form or {"type": "syslog", "port": "514", "protocol": "udp"},
            "created": created,
        },
        status_code=status_code,
        # A webhook stream's secret is on this page once: never cached.
        headers=NO_STORE if created is not None else None,
    )


@router.get("/audit/settings")
async def audit_settings_page(
    request: Request, actor: Auditor, session: SessionDep, settings: SettingsDep
) -> Response:
    return await _settings_page(request, actor, session, settings.audit_retention_days)


@router.post("/audit/settings")
async def audit_settings_save(
    request: Request, actor: Auditor, session: SessionDep, settings: SettingsDep
) -> Response:
    raw = str((await request.form()).get("retention_days", "")).strip()
    try:
        data = RetentionUpdate(retention_days=int(raw) if raw else None)
    except (ValueError, ValidationError):
        return await _settings_page(
            request,
            actor,
            session,
            settings.audit_retention_days,
            error=sentence(
                f"retention days must be a whole number from 1 to {MAX_RETENTION_DAYS}, or empty"
            ),
            status_code=422,
        )
    async with attempt(session):
        await service.set_retention(
            session=session, actor=actor, data=data, default_days=settings.audit_retention_days
        )
    return RedirectResponse("/audit/settings", status_code=303)


STREAM_FIELDS = ("name", "type", "host", "port", "protocol", "app_name", "url")
CONFIG_MODELS = ("SyslogConfig", "WebhookConfig")


def _stream_body(form: dict[str, str]) -> dict[str, object]:
    """The API's body from the stream form (the fields of the other type are ignored)."""
    if form.get("type") == "webhook":
        config: dict[str, object] = {"url": form.get("url", "")}
    else:
        config = {
            "host": form.get("host", ""),
            "port": form.get("port") or 514,
            "protocol": form.get("protocol") or "udp",
            "app_name": form.get("app_name") or "shipyard",
        }
    return {"name": form.get("name", ""), "type": form.get("type") or "syslog", "config": config}


@router.post("/audit/streams")
async def audit_stream_create(request: Request, actor: Auditor, runtime: RuntimeDep) -> Response:
    raw = await request.form()
    form = {name: str(raw.get(name) or "").strip() for name in STREAM_FIELDS}
    created: StreamCreated | None = None
    error: str | None = None
    try:
        data = StreamCreate.model_validate(_stream_body(form))
        # A flow: the outbound check runs before its own short transaction.
        created = await flows.create_stream(runtime=runtime, actor=actor, data=data)
    except ValidationError as exc:
        # config is a union: keep the errors of the chosen type's model, named without it.
        chosen = "WebhookConfig" if form.get("type") == "webhook" else "SyslogConfig"
        mine = [e for e in exc.errors() if e["loc"][:1] != ("config",) or chosen in e["loc"]]
        first = (mine or exc.errors())[0]
        where = ".".join(str(part) for part in first["loc"] if part not in CONFIG_MODELS)
        error = f"{where}: {sentence(first['msg'])}"
    except ShipyardError as exc:
        error = sentence(exc.message)
    async with runtime.db.session(tenant_id=actor.tenant_id, user_id=actor.user_id) as session:
        return await _settings_page(
            request,
            actor,
            session,
            runtime.settings.audit_retention_days,
            stream_error=error,
            stream_form=form if error else None,
            created=created,
            status_code=422 if error else 201,
        )


@router.post("/audit/streams/{stream_id}/delete")
async def audit_stream_delete(stream_id: UUID, actor: Auditor, session: SessionDep) -> Response:
    async with attempt(session):
        await service.delete_stream(session=session, actor=actor, stream_id=stream_id)
    return RedirectResponse("/audit/settings", status_code=303)


@router.post("/audit/streams/{stream_id}/enable")
async def audit_stream_enable(stream_id: UUID, actor: Auditor, runtime: RuntimeDep) -> Response:
    """Resume sending (the API's PATCH with ``enabled: true``)."""
    data = StreamUpdate(enabled=True)
    await flows.update_stream(runtime=runtime, actor=actor, stream_id=stream_id, data=data)
    return RedirectResponse("/audit/settings", status_code=303)


@router.post("/audit/streams/{stream_id}/disable")
async def audit_stream_disable(stream_id: UUID, actor: Auditor, runtime: RuntimeDep) -> Response:
    """Stop sending (the API's PATCH with ``enabled: false``)."""
    data = StreamUpdate(enabled=False)
    await flows.update_stream(runtime=runtime, actor=actor, stream_id=stream_id, data=data)
    return RedirectResponse("/audit/settings", status_code=303)
