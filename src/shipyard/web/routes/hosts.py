"""Hosts: list with status filter, add/edit (password, key or generated pair), test, trust keys."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import Query, Request, Response
from fastapi.responses import RedirectResponse
from pydantic import ValidationError
from starlette.datastructures import FormData

from shipyard.accounts.permissions import Permission
from shipyard.accounts.principal import Principal
from shipyard.deps import CurrentUser, SessionDep, SettingsDep, require
from shipyard.errors import ShipyardError
from shipyard.hosts import service
from shipyard.hosts.api import executor_for
from shipyard.hosts.models import HOST_STATUSES, Host
from shipyard.hosts.schemas import HostCreate, HostUpdate
from shipyard.hosts.tasks import enqueue_test_all
from shipyard.web.deps import attempt
from shipyard.web.errors import field_errors, sentence
from shipyard.web.routes import web_router
from shipyard.web.templating import is_htmx, render

router = web_router()
Admin = Annotated[Principal, require(Permission.MANAGE_HOSTS)]
Tester = Annotated[Principal, require(Permission.TEST_HOSTS)]
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
    rows, next_cursor = await service.list_hosts(
        session,
        tenant_id=principal.tenant_id,
        status=status if status in HOST_STATUSES else None,
        host_type=None,
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
            "hosts": rows,
            "next_cursor": next_cursor,
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
async def test_all(principal: Tester, session: SessionDep) -> Response:
    _, count = await enqueue_test_all(session, tenant_id=principal.tenant_id)
    return RedirectResponse(f"/hosts?queued={count}", status_code=303)


def _form_values(form: FormData) -> dict[str, str]:
    return {
        key: value.strip() if key not in SECRET_FIELDS else value
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
    return payload


def _form_page(
    request: Request,
    *,
    host: Host | None,
    values: dict[str, str],
    errors: dict[str, str] | None = None,
    message: str | None = None,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "hosts/form.html",
        {
            "section": "hosts",
            "host": host,
            "values": values,
            "errors": errors or {},
            "message": message,
            "auth_choices": AUTH_CHOICES,
        },
        status_code=status_code,
    )


@router.get("/hosts/new")
async def new_host(request: Request, principal: Admin) -> Response:
    return _form_page(request, host=None, values={"port": "22", "auth": "password"})


def _service_errors(exc: ShipyardError) -> dict[str, str]:
    errors = field_errors(exc)
    if exc.code == "host_name_taken":
        errors["name"] = sentence(exc.message)
    return errors


@router.post("/hosts/new")
async def create_host(
    request: Request, principal: Admin, session: SessionDep, settings: SettingsDep
) -> Response:
    values = _form_values(await request.form())
    payload = _payload(values, editing=False)
    generate = values.get("auth") == "generate"
    try:
        data = HostCreate.model_validate(payload)
    except ValidationError as exc:
        return _form_page(
            request, host=None, values=values, errors=field_errors(exc), status_code=422
        )
    try:
        async with attempt(session):
            host = await service.create_host(
                session, principal=principal, data=data, settings=settings
            )
            if generate:
                host = await service.generate_key(session, principal=principal, host_id=host.id)
    except ShipyardError as exc:
        return _form_page(
            request,
            host=None,
            values=values,
            errors=_service_errors(exc),
            message=sentence(exc.message),
            status_code=exc.status_code,
        )
    suffix = "?created=key" if generate else "?created=1"
    return RedirectResponse(f"/hosts/{host.id}{suffix}", status_code=303)


async def _host_page(
    request: Request,
    host: Host,
    *,
    test: dict[str, Any] | None = None,
    notice: str | None = None,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "hosts/detail.html",
        {"section": "hosts", "host": host, "test": test, "notice": notice},
        status_code=status_code,
    )


@router.get("/hosts/{host_id}")
async def host_page(
    request: Request,
    host_id: UUID,
    principal: CurrentUser,
    session: SessionDep,
    created: str = "",
) -> Response:
    host = await service.get_host(session, tenant_id=principal.tenant_id, host_id=host_id)
    notice = CREATED_NOTICES.get(created)
    return await _host_page(request, host, notice=notice)


@router.get("/hosts/{host_id}/edit")
async def edit_host(
    request: Request, host_id: UUID, principal: Admin, session: SessionDep
) -> Response:
    host = await service.get_host(session, tenant_id=principal.tenant_id, host_id=host_id)
    values = {
        "name": host.name,
        "description": host.description or "",
        "ip": host.ip or "",
        "port": str(host.port or ""),
        "user": host.user or "",
        "host_key_fingerprint": host.host_key_fingerprint or "",
        "auth": host.auth_method or "password",
    }
    return _form_page(request, host=host, values=values)


@router.post("/hosts/{host_id}/edit")
async def update_host(
    request: Request,
    host_id: UUID,
    principal: Admin,
    session: SessionDep,
    settings: SettingsDep,
) -> Response:
    host = await service.get_host(session, tenant_id=principal.tenant_id, host_id=host_id)
    values = _form_values(await request.form())
    generate = values.get("auth") == "generate"
    try:
        data = HostUpdate.model_validate(_payload(values, editing=True))
    except ValidationError as exc:
        return _form_page(
            request, host=host, values=values, errors=field_errors(exc), status_code=422
        )
    try:
        async with attempt(session):
            await service.update_host(
                session, principal=principal, host_id=host_id, data=data, settings=settings
            )
            if generate:
                await service.generate_key(session, principal=principal, host_id=host_id)
    except ShipyardError as exc:
        await session.refresh(host)
        return _form_page(
            request,
            host=host,
            values=values,
            errors=_service_errors(exc),
            message=sentence(exc.message),
            status_code=exc.status_code,
        )
    return RedirectResponse(f"/hosts/{host_id}", status_code=303)


@router.post("/hosts/{host_id}/test")
async def test_host(
    request: Request,
    host_id: UUID,
    principal: Tester,
    session: SessionDep,
    settings: SettingsDep,
) -> Response:
    host, probe = await service.check_host(
        session,
        tenant_id=principal.tenant_id,
        host_id=host_id,
        executor=executor_for(request, settings),
    )
    test = {
        "status": probe.status,
        "message": probe.message,
        "round_trip_ms": probe.round_trip_ms,
        "os_info": probe.os_info,
        "fingerprint": probe.fingerprint,
    }
    if is_htmx(request):
        in_list = request.headers.get("hx-target", "").startswith("hostrow-")
        template = "hosts/_row.html" if in_list else "hosts/_status.html"
        return render(request, template, {"host": host, "test": test})
    return await _host_page(request, host, test=test)


@router.post("/hosts/{host_id}/accept-key")
async def accept_key(
    request: Request, host_id: UUID, principal: Admin, session: SessionDep
) -> Response:
    form = await request.form()
    fingerprint = form.get("fingerprint")
    await service.accept_host_key(
        session,
        principal=principal,
        host_id=host_id,
        fingerprint=fingerprint if isinstance(fingerprint, str) and fingerprint else None,
    )
    return RedirectResponse(f"/hosts/{host_id}", status_code=303)


@router.post("/hosts/{host_id}/generate-key")
async def generate_key(
    request: Request, host_id: UUID, principal: Admin, session: SessionDep
) -> Response:
    await service.generate_key(session, principal=principal, host_id=host_id)
    return RedirectResponse(f"/hosts/{host_id}?created=newkey", status_code=303)


@router.post("/hosts/{host_id}/delete")
async def delete_host(
    request: Request, host_id: UUID, principal: Admin, session: SessionDep
) -> Response:
    await service.delete_host(session, principal=principal, host_id=host_id)
    return RedirectResponse("/hosts", status_code=303)
