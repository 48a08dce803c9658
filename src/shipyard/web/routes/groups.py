"""Host groups: list, add and edit (members and variables), delete. Reached from the hosts page."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import Request, Response
from fastapi.responses import RedirectResponse
from pydantic import ValidationError

from shipyard.accounts.permissions import Permission
from shipyard.accounts.principal import Actor
from shipyard.deps import CurrentUser, SessionDep, acting, attempt
from shipyard.errors import ShipyardError
from shipyard.hosts import inventory
from shipyard.hosts.schemas import HostGroupCreate, HostGroupRead, HostGroupUpdate
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
    values = {"name": group.name, "description": group.description or ""}
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
