"""Hosts: list with status filter, add/edit (password, key or generated pair), test, trust keys."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import Query, Request, Response
from fastapi.responses import RedirectResponse
from pydantic import ValidationError
from starlette.datastructures import FormData

from shipyard.accounts.permissions import Permission
from shipyard.accounts.principal import Actor
from shipyard.deps import CurrentUser, RuntimeDep, SessionDep, acting
from shipyard.errors import ShipyardError
from shipyard.hosts import flows, service
from shipyard.hosts.models import HOST_STATUSES
from shipyard.hosts.schemas import HostCreate, HostRead, HostTestRead, HostUpdate
from shipyard.web.errors import form_failure
from shipyard.web.inventory_form import form_tags, form_variables, variable_errors, variable_rows
from shipyard.web.routes import web_router
from shipyard.web.templating import is_htmx, render

router = web_router()
Admin = Annotated[Actor, acting(Permission.MANAGE_HOSTS)]
Tester = Annotated[Actor, acting(Permission.TEST_HOSTS)]
PAGE_SIZE = 50
AUTH_CHOICES = ("password", "key", "generate")
TEXT_FIELDS = ("name", "description", "ip", "user", "host_key_fingerprint")
SECRET_FIELDS = ("password", "private_key", "private_key_passphrase")
CREATED_NOTICES = {
    "1": "Host added. Test the connection to check it.",
    "key": "Host added with a new key pair: add its public key to the server's "
    "~/.ssh/authorized_keys, then test the connection.",
    "newkey": "New key pair generated: replace the old public key in the server's "
    "~/.ssh/authorized_keys, then test the connection.",
}


@router.get("/hosts")
async def hosts(
    request: Request,
    principal: CurrentUser,
    session: SessionDep,
    status: Annotated[str, Query(max_length=30)] = "",
    search: Annotated[str, Query(max_length=200)] = "",
    cursor: Annotated[str, Query(max_length=200)] = "",
    queued: Annotated[int, Query(ge=0)] = 0,
) -> Response:
    page = await service.read_hosts(
        session=session,
        tenant_id=principal.tenant_id,
        status=status if status in HOST_STATUSES else None,
        search=search.strip() or None,
        limit=PAGE_SIZE,
        cursor=cursor or None,
    )
    filters = {"status": status, "search": search}
    return render(
        request,
        "hosts/list.html",
        {
            "section": "hosts",
            "hosts": page.items,
            "next_cursor": page.next_cursor,
            "is_first_page": not cursor,
            "filters": filters,
            "filtered": any(filters.values()),
            "statuses": HOST_STATUSES,
            "notice": f"Testing {queued} hosts in the background; refresh to see their status."
            if queued
            else None,
        },
    )


@router.post("/hosts/test-all")
async def test_all(actor: Tester, session: SessionDep) -> Response:
    queued = await service.queue_host_tests(session=session, actor=actor)
    return RedirectResponse(f"/hosts?queued={queued.hosts}", status_code=303)


def _form_values(form: FormData) -> dict[str, str]:
    return {
        key: value.strip()
        if key not in SECRET_FIELDS and not key.startswith("var_value_")
        else value
        for key, value in form.items()
        if isinstance(value, str) and key != "csrf_token"
    }


def _payload(values: dict[str, str], *, editing: bool) -> dict[str, Any]:
    """What the form means, as a HostCreate/HostUpdate body: blank secrets keep the stored ones."""
    payload: dict[str, Any] = {}
    for field in TEXT_FIELDS:
        value = values.get(field, "")
        if value:
            payload[field] = value
        elif editing and field in ("description", "host_key_fingerprint") and field in values:
            payload[field] = None
    if values.get("port"):
        payload["port"] = values["port"]
    auth = values.get("auth", "password")
    if auth == "password":
        payload["auth_method"] = "password"
        if values.get("password"):
            payload["password"] = values["password"]
    elif auth == "key":
        payload["auth_method"] = "key"
        if values.get("private_key"):
            payload["private_key"] = values["private_key"].strip() + "\n"
            payload["private_key_passphrase"] = values.get("private_key_passphrase") or None
    if "pool" in values:
        payload["pool"] = values["pool"] or None
    if "tags" in values:
        payload["tags"] = form_tags(values["tags"])
    if "variables_form" in values:
        payload["variables"] = form_variables(values)
    return payload


def _form_page(
    request: Request,
    *,
    host: HostRead | None,
    values: dict[str, str],
    error: ValidationError | ShipyardError | None = None,
) -> Response:
    """The add/edit form; with ``error``, its fields marked and its status code."""
    errors, message, status_code = form_failure(error, name_taken="host_name_taken")
    return render(
        request,
        "hosts/form.html",
        {
            "section": "hosts",
            "host": host,
            "values": values,
            "errors": errors,
            "message": message,
            "auth_choices": AUTH_CHOICES,
            "variable_rows": variable_rows(host.variables if host else [], values),
            "variable_errors": variable_errors(errors),
        },
        status_code=status_code,
    )


@router.get("/hosts/new")
async def new_host(request: Request, actor: Admin) -> Response:
    return _form_page(request, host=None, values={"port": "22", "auth": "password"})


@router.post("/hosts/new")
async def create_host(request: Request, actor: Admin, runtime: RuntimeDep) -> Response:
    values = _form_values(await request.form())
    generate = values.get("auth") == "generate"
    try:
        data = HostCreate.model_validate(_payload(values, editing=False))
        host = await flows.create_host(
            runtime=runtime, actor=actor, data=data, generate_key=generate
        )
    except (ValidationError, ShipyardError) as exc:
        return _form_page(request, host=None, values=values, error=exc)
    suffix = "?created=key" if generate else "?created=1"
    return RedirectResponse(f"/hosts/{host.id}{suffix}", status_code=303)


def _host_page(
    request: Request, host: HostRead, *, test: HostTestRead | None = None, notice: str | None = None
) -> Response:
    return render(
        request,
        "hosts/detail.html",
        {"section": "hosts", "host": host, "test": test, "notice": notice},
    )


@router.get("/hosts/{host_id}")
async def host_page(
    request: Request,
    host_id: UUID,
    principal: CurrentUser,
    session: SessionDep,
    created: str = "",
) -> Response:
    host = await service.read_host(session=session, tenant_id=principal.tenant_id, host_id=host_id)
    return _host_page(request, host, notice=CREATED_NOTICES.get(created))


@router.get("/hosts/{host_id}/edit")
async def edit_host(request: Request, host_id: UUID, actor: Admin, session: SessionDep) -> Response:
    host = await service.read_host(session=session, tenant_id=actor.tenant_id, host_id=host_id)
    values = {
        "name": host.name,
        "description": host.description or "",
        "ip": host.ip or "",
        "port": str(host.port or ""),
        "user": host.user or "",
        "host_key_fingerprint": host.host_key_fingerprint or "",
        "auth": host.auth_method or "password",
        "tags": ", ".join(host.tags),
        "pool": host.pool or "",
    }
    return _form_page(request, host=host, values=values)


@router.post("/hosts/{host_id}/edit")
async def update_host(
    request: Request, host_id: UUID, actor: Admin, runtime: RuntimeDep
) -> Response:
    # Read first: another tenant's host is a 404 page, not a form. A refused change writes
    # nothing, so this is still the host as stored when the form comes back with its errors.
    host = await flows.read_host(runtime=runtime, actor=actor, host_id=host_id)
    values = _form_values(await request.form())
    try:
        data = HostUpdate.model_validate(_payload(values, editing=True))
        await flows.update_host(
            runtime=runtime,
            actor=actor,
            host_id=host_id,
            data=data,
            generate_key=values.get("auth") == "generate",
        )
    except (ValidationError, ShipyardError) as exc:
        return _form_page(request, host=host, values=values, error=exc)
    return RedirectResponse(f"/hosts/{host_id}", status_code=303)


# No SessionDep: the flow holds no database connection while it waits for the host.
@router.post("/hosts/{host_id}/test")
async def test_host(
    request: Request, host_id: UUID, actor: Tester, runtime: RuntimeDep
) -> Response:
    test = await flows.test_host(runtime=runtime, actor=actor, host_id=host_id)
    if is_htmx(request):
        in_list = request.headers.get("hx-target", "").startswith("hostrow-")
        template = "hosts/_row.html" if in_list else "hosts/_status.html"
        return render(request, template, {"host": test.host, "test": test})
    return _host_page(request, test.host, test=test)


@router.post("/hosts/{host_id}/accept-key")
async def accept_key(
    request: Request, host_id: UUID, actor: Admin, session: SessionDep
) -> Response:
    fingerprint = (await request.form()).get("fingerprint")
    await service.accept_host_key(
        session=session,
        actor=actor,
        host_id=host_id,
        fingerprint=fingerprint if isinstance(fingerprint, str) and fingerprint else None,
    )
    return RedirectResponse(f"/hosts/{host_id}", status_code=303)


@router.post("/hosts/{host_id}/generate-key")
async def generate_key(host_id: UUID, actor: Admin, session: SessionDep) -> Response:
    await service.generate_key(session=session, actor=actor, host_id=host_id)
    return RedirectResponse(f"/hosts/{host_id}?created=newkey", status_code=303)


@router.post("/hosts/{host_id}/delete")
async def delete_host(host_id: UUID, actor: Admin, session: SessionDep) -> Response:
    await service.delete_host(session=session, actor=actor, host_id=host_id)
    return RedirectResponse("/hosts", status_code=303)
