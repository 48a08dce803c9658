"""Web pages: notification channels, rules and deliveries (admins).

/notifications lists channels and rules, with a create form per channel type (secret fields
write-only) and the rule form; a channel's page has "Send test" (showing what the receiver
answered) and its deliveries with every attempt. A channel's and a rule's edit pages are their
forms filled in (a channel's secret fields empty: kept unless retyped, or removed with their
"clear" box). Each action calls one function of :mod:`shipyard.notifications.flows` or
``service``, as the API's routes do.
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import Request, Response
from fastapi.responses import RedirectResponse
from pydantic import ValidationError

from shipyard.accounts.permissions import Permission
from shipyard.accounts.principal import Actor
from shipyard.deps import RuntimeDep, SessionDep, acting, attempt
from shipyard.errors import Conflict, NotFound, ShipyardError
from shipyard.notifications import flows, service
from shipyard.notifications.models import EVENTS
from shipyard.notifications.schemas import (
    SECRET_FIELDS,
    ChannelCreate,
    ChannelRead,
    ChannelUpdate,
    RuleCreate,
    RuleRead,
    RuleUpdate,
    TestResult,
)
from shipyard.web.errors import field_errors, sentence
from shipyard.web.routes import web_router
from shipyard.web.templating import render

router = web_router()
Admin = Annotated[Actor, acting(Permission.MANAGE_NOTIFICATIONS)]
TYPE_LABELS = {
    "email": "Email (SMTP)",
    "slack": "Slack",
    "teams": "Microsoft Teams",
    "discord": "Discord",
    "ntfy": "ntfy",
    "webhook": "Webhook",
}
FORM_KEYS = (
    "type",
    "name",
    "url",
    "host",
    "port",
    "security",
    "username",
    "password",
    "from",
    "to",
    "ca_certificate",
    "server",
    "topic",
    "token",
    "priority",
    "card",
    "body_template",
    "secret",
)


async def _page(
    request: Request, runtime: RuntimeDep, actor: Actor, *, status_code: int = 200, **extra: Any
) -> Response:
    channels, rules = await flows.overview(runtime=runtime, actor=actor)
    context: dict[str, Any] = {
        "section": "settings",
        "channels": channels,
        "channel_names": {channel.id: channel.name for channel in channels},
        "channel_options": [(str(channel.id), channel.name) for channel in channels],
        "rules": rules,
        "types": list(TYPE_LABELS.items()),
        "events": EVENTS,
        "values": {},
        "rule_values": {},
        "errors": {},
        "rule_errors": {},
        "open_type": None,
    }
    context.update(extra)
    return render(request, "notifications/list.html", context, status_code=status_code)


@router.get("/notifications")
async def notifications(request: Request, actor: Admin, runtime: RuntimeDep) -> Response:
    return await _page(request, runtime, actor)


# Each type's form fields (the config keys the forms carry).
TYPE_KEYS: dict[str, tuple[str, ...]] = {
    "email": ("host", "port", "security", "username", "password", "from", "to", "ca_certificate"),
    "slack": ("url",),
    "teams": ("url", "card"),
    "discord": ("url",),
    "ntfy": ("server", "topic", "token", "priority"),
    "webhook": ("url", "body_template", "secret"),
}
# Optional plain fields: emptied on the edit form, they are removed (sent null).
NULLABLE_KEYS = frozenset({"username", "ca_certificate", "body_template"})


def _addresses(value: str) -> list[str]:
    return [part for part in value.replace(",", " ").split() if part]


def channel_body(values: dict[str, str]) -> dict[str, Any]:
    """The API's ChannelCreate body from one type's form (empty fields left out)."""
    kind = values.get("type", "")
    config: dict[str, Any] = {}
    for key in TYPE_KEYS.get(kind, ()):
        value = values.get(key, "")
        if not value:
            continue
        config[key] = _addresses(value) if key == "to" else value
    return {"type": kind, "name": values.get("name", ""), "config": config}


def channel_update_body(
    kind: str, values: dict[str, str], *, enabled: bool, cleared: set[str]
) -> dict[str, Any]:
    """The API's ChannelUpdate body from the edit form: every field of the type as typed; a
    secret left empty is left out (kept), one whose "clear" box is ticked is sent null."""
    config: dict[str, Any] = {}
    for key in TYPE_KEYS[kind]:
        value = values.get(key, "")
        if key in SECRET_FIELDS[kind]:
            if key in cleared:
                config[key] = None
            elif value:
                config[key] = value
        elif key == "to":
            config[key] = _addresses(value)
        elif not value and key in NULLABLE_KEYS:
            config[key] = None
        else:
            config[key] = value
    return {"name": values.get("name", ""), "enabled": enabled, "config": config}


def form_values(channel: ChannelRead) -> dict[str, Any]:
    """The edit form's values from a channel as answered (no secret is in it)."""
    shown: dict[str, Any] = {"name": channel.name, "enabled": channel.enabled}
    for key in TYPE_KEYS[channel.type]:
        value = channel.config.get(key)
        if key in SECRET_FIELDS[channel.type] or value is None:
            continue
        shown[key] = ", ".join(value) if isinstance(value, list) else str(value)
    return shown


def _form_errors(exc: ValidationError | ShipyardError) -> dict[str, str]:
    """Field errors keyed by the form's field names (``config.port`` is ``port``)."""
    errors = {
        key.removeprefix("config.").split(".")[0]: value for key, value in field_errors(exc).items()
    }
    if isinstance(exc, Conflict):
        errors.setdefault("name", sentence(exc.message))
    return errors


@router.post("/notifications/channels")
async def add_channel(request: Request, actor: Admin, runtime: RuntimeDep) -> Response:
    form = await request.form()
    values = {key: str(form.get(key, "")).strip() for key in FORM_KEYS}
    try:
        data = ChannelCreate.model_validate(channel_body(values))
        created = await flows.create_channel(runtime=runtime, actor=actor, data=data)
    except (ValidationError, ShipyardError) as exc:
        status_code, message = 422, None
        if isinstance(exc, ShipyardError):
            status_code, message = exc.status_code, sentence(exc.message)
        errors = {
            key.removeprefix("config.").split(".")[0]: value
            for key, value in field_errors(exc).items()
        }
        shown = {key: value for key, value in values.items() if key not in _SECRET_KEYS}
        return await _page(
            request,
            runtime,
            actor,
            status_code=status_code,
            values=shown,
            errors=errors,
            message=message,
            open_type=values.get("type"),
        )
    if created.secret:
        # The generated signing secret is shown on this answer only.
        return await _channel_page(request, runtime, actor, created.id, secret=created.secret)
    return RedirectResponse(f"/notifications/channels/{created.id}", status_code=303)


# Write-only fields: never sent back into a re-rendered form.
_SECRET_KEYS = frozenset({"password", "token", "secret", "url_secret"})


async def _channel_page(
    request: Request,
    runtime: RuntimeDep,
    actor: Actor,
    channel_id: UUID,
    *,
    result: TestResult | None = None,
    secret: str | None = None,
) -> Response:
    channel, deliveries, rules = await flows.channel_view(
        runtime=runtime, actor=actor, channel_id=channel_id
    )
    return render(
        request,
        "notifications/channel.html",
        {
            "section": "settings",
            "channel": channel,
            "deliveries": deliveries,
            "rules": rules,
            "result": result,
            "secret": secret,
            "type_label": TYPE_LABELS[channel.type],
        },
    )


@router.get("/notifications/channels/{channel_id}")
async def channel_page(
    request: Request, channel_id: UUID, actor: Admin, runtime: RuntimeDep
) -> Response:
    return await _channel_page(request, runtime, actor, channel_id)


async def _channel_edit_page(
    request: Request,
    channel: ChannelRead,
    *,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    message: str | None = None,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "notifications/channel_edit.html",
        {
            "section": "settings",
            "channel": channel,
            "type_label": TYPE_LABELS[channel.type],
            "values": form_values(channel) if values is None else values,
            "errors": errors or {},
            "message": message,
        },
        status_code=status_code,
    )


@router.get("/notifications/channels/{channel_id}/edit")
async def channel_edit_page(
    request: Request, channel_id: UUID, actor: Admin, session: SessionDep
) -> Response:
    """The channel's settings in its form; secret fields empty (kept unless retyped)."""
    channel = await service.read_channel(session=session, channel_id=channel_id)
    return await _channel_edit_page(request, channel)


@router.post("/notifications/channels/{channel_id}/edit")
async def channel_edit(
    request: Request, channel_id: UUID, actor: Admin, runtime: RuntimeDep
) -> Response:
    """Save the edit form through the API's PATCH flow (a 422 names the field)."""
    async with runtime.db.session(tenant_id=actor.tenant_id, user_id=actor.user_id) as session:
        channel = await service.read_channel(session=session, channel_id=channel_id)
    form = await request.form()
    values = {key: str(form.get(key, "")).strip() for key in FORM_KEYS}
    enabled = form.get("enabled") == "on"
    cleared = {key for key in SECRET_FIELDS[channel.type] if form.get(f"clear_{key}") == "on"}
    try:
        data = ChannelUpdate.model_validate(
            channel_update_body(channel.type, values, enabled=enabled, cleared=cleared)
        )
        await flows.update_channel(runtime=runtime, actor=actor, channel_id=channel_id, data=data)
    except NotFound:
        raise
    except (ValidationError, ShipyardError) as exc:
        status_code, message = 422, None
        if isinstance(exc, ShipyardError):
            status_code, message = exc.status_code, sentence(exc.message)
        shown = {key: value for key, value in values.items() if key not in _SECRET_KEYS}
        return await _channel_edit_page(
            request,
            channel,
            values={**shown, "enabled": enabled},
            errors=_form_errors(exc),
            message=message,
            status_code=status_code,
        )
    return RedirectResponse(f"/notifications/channels/{channel_id}", status_code=303)


@router.post("/notifications/channels/{channel_id}/test")
async def test_channel(
    request: Request, channel_id: UUID, actor: Admin, runtime: RuntimeDep
) -> Response:
    """Send a test message now; the page shows what the receiver answered."""
    result = await flows.send_test(runtime=runtime, actor=actor, channel_id=channel_id)
    return await _channel_page(request, runtime, actor, channel_id, result=result)


@router.post("/notifications/channels/{channel_id}/delete")
async def delete_channel(channel_id: UUID, actor: Admin, session: SessionDep) -> Response:
    await service.delete_channel(session=session, actor=actor, channel_id=channel_id)
    return RedirectResponse("/notifications", status_code=303)


@router.post("/notifications/rules")
async def add_rule(
    request: Request, actor: Admin, runtime: RuntimeDep, session: SessionDep
) -> Response:
    form = await request.form()
    values = {
        key: str(form.get(key, "")).strip()
        for key in ("name", "channel_id", "scope_type", "scope_id")
    }
    events = [str(value) for value in form.getlist("events")]
    body: dict[str, Any] = {
        "name": values["name"] or None,
        "channel_id": values["channel_id"] or None,
        "events": events,
        "scope": {"type": values["scope_type"] or "tenant", "id": values["scope_id"] or None},
        "only_on_change": form.get("only_on_change") == "on",
    }
    try:
        data = RuleCreate.model_validate(body)
        async with attempt(session):
            await service.create_rule(session=session, actor=actor, data=data)
    except (ValidationError, ShipyardError) as exc:
        status_code, message = 422, None
        if isinstance(exc, ShipyardError):
            status_code, message = exc.status_code, sentence(exc.message)
        return await _page(
            request,
            runtime,
            actor,
            status_code=status_code,
            rule_values={**values, "events": events, "only_on_change": body["only_on_change"]},
            rule_errors={key.split(".")[0]: value for key, value in field_errors(exc).items()},
            message=message,
        )
    return RedirectResponse("/notifications", status_code=303)


@router.post("/notifications/rules/{rule_id}/delete")
async def delete_rule(rule_id: UUID, actor: Admin, session: SessionDep) -> Response:
    await service.delete_rule(session=session, actor=actor, rule_id=rule_id)
    return RedirectResponse("/notifications", status_code=303)


def _rule_form(form: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the values to show again, the API's body) from a rule form."""
    values: dict[str, Any] = {
        key: str(form.get(key, "")).strip()
        for key in ("name", "channel_id", "scope_type", "scope_id")
    }
    values["events"] = [str(value) for value in form.getlist("events")]
    values["only_on_change"] = form.get("only_on_change") == "on"
    values["enabled"] = form.get("enabled") == "on"
    body: dict[str, Any] = {
        "name": values["name"] or None,
        "channel_id": values["channel_id"] or None,
        "events": values["events"],
        "scope": {"type": values["scope_type"] or "tenant", "id": values["scope_id"] or None},
        "only_on_change": values["only_on_change"],
        "enabled": values["enabled"],
    }
    return values, body


async def _rule_edit_page(
    request: Request,
    session: SessionDep,
    rule: RuleRead,
    *,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    message: str | None = None,
    status_code: int = 200,
) -> Response:
    channels = await service.list_channels(session=session)
    if values is None:
        values = {
            "name": rule.name or "",
            "channel_id": str(rule.channel_id),
            "scope_type": rule.scope.type,
            "scope_id": str(rule.scope.id) if rule.scope.id else "",
            "events": rule.events,
            "only_on_change": rule.only_on_change,
            "enabled": rule.enabled,
        }
    return render(
        request,
        "notifications/rule_edit.html",
        {
            "section": "settings",
            "rule": rule,
            "values": values,
            "errors": errors or {},
            "message": message,
            "events": EVENTS,
            "channel_options": [(str(channel.id), channel.name) for channel in channels],
        },
        status_code=status_code,
    )


@router.get("/notifications/rules/{rule_id}/edit")
async def rule_edit_page(
    request: Request, rule_id: UUID, actor: Admin, session: SessionDep
) -> Response:
    rule = await service.read_rule(session=session, rule_id=rule_id)
    return await _rule_edit_page(request, session, rule)


@router.post("/notifications/rules/{rule_id}/edit")
async def rule_edit(request: Request, rule_id: UUID, actor: Admin, session: SessionDep) -> Response:
    """Save the rule form through the API's PATCH function (a 422 names the field)."""
    rule = await service.read_rule(session=session, rule_id=rule_id)
    values, body = _rule_form(await request.form())
    try:
        data = RuleUpdate.model_validate(body)
        async with attempt(session):
            await service.update_rule(session=session, actor=actor, rule_id=rule_id, data=data)
    except NotFound:
        raise
    except (ValidationError, ShipyardError) as exc:
        status_code, message = 422, None
        if isinstance(exc, ShipyardError):
            status_code, message = exc.status_code, sentence(exc.message)
        return await _rule_edit_page(
            request,
            session,
            rule,
            values=values,
            errors={key.split(".")[0]: value for key, value in field_errors(exc).items()},
            message=message,
            status_code=status_code,
        )
    return RedirectResponse("/notifications", status_code=303)
