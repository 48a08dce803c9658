"""Host groups: list, add and edit (members, pool, variables), delete; Ansible inventory import.
Both reached from the hosts page."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import Request, Response
from fastapi.responses import RedirectResponse
from pydantic import ValidationError
from starlette.datastructures import UploadFile as StarletteUpload

from shipyard.accounts.permissions import Permission
from shipyard.accounts.principal import Actor
from shipyard.deps import CurrentUser, RuntimeDep, SessionDep, acting, attempt
from shipyard.errors import ShipyardError, ValidationFailed
from shipyard.hosts import inventory, inventory_import
from shipyard.hosts.schemas import (
    HostGroupCreate,
    HostGroupRead,
    HostGroupUpdate,
    InventoryImport,
    InventoryImportReport,
)
from shipyard.web.errors import form_failure
from shipyard.web.inventory_form import form_variables, variable_errors, variable_rows
from shipyard.web.routes import web_router
from shipyard.web.templating import render

router = web_router()
Admin = Annotated[Actor, acting(Permission.MANAGE_HOSTS)]


@router.get("/host-groups")
async def groups(request: Request, principal: CurrentUser, session: SessionDep) -> Response:
    found = await inventory.read_groups(session=session, tenant_id=principal.tenant_id)
    names = dict(await inventory.host_choices(session=session, tenant_id=principal.tenant_id))
    return render(
        request,
        "hosts/groups.html",
        {"section": "hosts", "groups": found, "host_names": names},
    )


def _payload(values: dict[str, str], member_ids: list[str]) -> dict[str, Any]:
    return {
        "name": values.get("name", ""),
        "description": values.get("description") or None,
        "pool": values.get("pool") or None,
        "host_ids": member_ids,
        "variables": form_variables(values),
    }


async def _form_page(
    request: Request,
    session: SessionDep,
    actor: Actor,
    *,
    group: HostGroupRead | None,
    values: dict[str, str],
    members: list[str],
    error: ValidationError | ShipyardError | None = None,
) -> Response:
    errors, message, status_code = form_failure(error, name_taken="host_group_name_taken")
    hosts = await inventory.host_choices(session=session, tenant_id=actor.tenant_id)
    return render(
        request,
        "hosts/group_form.html",
        {
            "section": "hosts",
            "group": group,
            "values": values,
            "errors": errors,
            "message": message,
            "hosts": hosts,
            "members": set(members),
            "variable_rows": variable_rows(group.variables if group else [], values),
            "variable_errors": variable_errors(errors),
        },
        status_code=status_code,
    )


async def _submitted(request: Request) -> tuple[dict[str, str], list[str]]:
    form = await request.form()
    values = {
        key: value if key.startswith("var_value_") else value.strip()
        for key, value in form.items()
        if isinstance(value, str) and key not in ("csrf_token", "host_ids")
    }
    members = [value for value in form.getlist("host_ids") if isinstance(value, str)]
    return values, members


@router.get("/host-groups/new")
async def new_group(request: Request, actor: Admin, session: SessionDep) -> Response:
    return await _form_page(request, session, actor, group=None, values={}, members=[])


@router.post("/host-groups/new")
async def create_group(request: Request, actor: Admin, session: SessionDep) -> Response:
    values, members = await _submitted(request)
    try:
        data = HostGroupCreate.model_validate(_payload(values, members))
        async with attempt(session):
            await inventory.create_group(session=session, actor=actor, data=data)
    except (ValidationError, ShipyardError) as exc:
        return await _form_page(
            request, session, actor, group=None, values=values, members=members, error=exc
        )
    return RedirectResponse("/host-groups", status_code=303)


@router.get("/host-groups/{group_id}/edit")
async def edit_group(
    request: Request, group_id: UUID, actor: Admin, session: SessionDep
) -> Response:
    group = await inventory.read_group(
        session=session, tenant_id=actor.tenant_id, group_id=group_id
    )
    values = {
        "name": group.name,
        "description": group.description or "",
        "pool": group.pool or "",
    }
    members = [str(host_id) for host_id in group.host_ids]
    return await _form_page(request, session, actor, group=group, values=values, members=members)


@router.post("/host-groups/{group_id}/edit")
async def update_group(
    request: Request, group_id: UUID, actor: Admin, session: SessionDep
) -> Response:
    group = await inventory.read_group(
        session=session, tenant_id=actor.tenant_id, group_id=group_id
    )
    values, members = await _submitted(request)
    try:
        data = HostGroupUpdate.model_validate(_payload(values, members))
        async with attempt(session):
            await inventory.update_group(session=session, actor=actor, group_id=group_id, data=data)
    except (ValidationError, ShipyardError) as exc:
        return await _form_page(
            request, session, actor, group=group, values=values, members=members, error=exc
        )
    return RedirectResponse("/host-groups", status_code=303)


@router.post("/host-groups/{group_id}/delete")
async def delete_group(group_id: UUID, actor: Admin, session: SessionDep) -> Response:
    await inventory.delete_group(session=session, actor=actor, group_id=group_id)
    return RedirectResponse("/host-groups", status_code=303)


# --- Ansible inventory import ------------------------------------------------------------------

IMPORT_FORMATS = ("ini", "yaml")
# As the API's limit on ``content``; a bigger upload is refused before it is decoded.
MAX_UPLOAD_BYTES = 1_000_000
# Content naming any of these is not put back into the form after a refusal.
SECRET_HINTS = ("password", "_pass", "secret", "token")


def _import_page(
    request: Request,
    *,
    values: dict[str, str],
    report: InventoryImportReport | None = None,
    error: ValidationError | ShipyardError | None = None,
) -> Response:
    errors, message, status_code = form_failure(error)
    return render(
        request,
        "hosts/import.html",
        {
            "section": "hosts",
            "values": values,
            "errors": errors,
            "message": message,
            "formats": IMPORT_FORMATS,
            "report": report,
        },
        status_code=status_code,
    )


@router.get("/inventory/import")
async def import_form(request: Request, actor: Admin) -> Response:
    return _import_page(request, values={"format": "ini"})


async def _import_payload(request: Request) -> tuple[dict[str, str], dict[str, Any]]:
    """The form's visible values (never a secret) and the import body it means."""
    form = await request.form()
    text = {key: value for key, value in form.items() if isinstance(value, str)}
    content = text.get("content", "")
    upload = form.get("file")
    raw = b""
    if isinstance(upload, StarletteUpload):
        try:
            if upload.filename:
                raw = await upload.read(MAX_UPLOAD_BYTES + 1)
        finally:
            await upload.close()
    if raw:
        if len(raw) > MAX_UPLOAD_BYTES:
            raise ValidationFailed("the file is larger than 1 MB", field="file")
        try:
            content = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ValidationFailed("the file is not UTF-8 text", field="file") from None
    values = {
        "format": text.get("format", "ini"),
        "content": content,
        "user": text.get("user", "").strip(),
    }
    credentials: dict[str, Any] = {}
    if values["user"]:
        credentials["user"] = values["user"]
    if text.get("password"):
        credentials["password"] = text["password"]
    if text.get("private_key", "").strip():
        credentials["private_key"] = text["private_key"].strip() + "\n"
        if text.get("private_key_passphrase"):
            credentials["private_key_passphrase"] = text["private_key_passphrase"]
    payload: dict[str, Any] = {"format": values["format"], "content": content}
    if credentials:
        payload["credentials"] = credentials
    return values, payload


# No SessionDep: the flow looks addresses up (DNS) before its one transaction.
@router.post("/inventory/import")
async def import_inventory(request: Request, actor: Admin, runtime: RuntimeDep) -> Response:
    values: dict[str, str] = {"format": "ini"}
    try:
        values, payload = await _import_payload(request)
        data = InventoryImport.model_validate(payload)
        report = await inventory_import.import_inventory(runtime=runtime, actor=actor, data=data)
    except (ValidationError, ShipyardError) as exc:
        if any(name in values.get("content", "") for name in SECRET_HINTS):
            # The file holds passwords: the page does not carry them back (paste it again).
            values = {**values, "content": ""}
        return _import_page(request, values=values, error=exc)
    return _import_page(request, values={"format": values["format"]}, report=report)
