"""CI/CD: providers (add, test inline, sync, remove) and the job catalogue with parameters."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

import httpx
from fastapi import Query, Request, Response
from fastapi.responses import RedirectResponse
from pydantic import ValidationError

from shipyard.accounts.permissions import Permission
from shipyard.accounts.principal import Principal
from shipyard.cicd import service
from shipyard.cicd.models import CICD_PROVIDER_TYPES
from shipyard.cicd.schemas import ProviderCreate
from shipyard.deps import CurrentUser, SessionDep, SettingsDep, require
from shipyard.errors import ShipyardError
from shipyard.web.deps import attempt
from shipyard.web.errors import field_errors, sentence
from shipyard.web.routes import web_router
from shipyard.web.templating import is_htmx, render

router = web_router()
Manager = Annotated[Principal, require(Permission.MANAGE_CICD)]
TYPE_LABELS = {"jenkins": "Jenkins", "github_actions": "GitHub Actions", "circleci": "CircleCI"}
FORM_KEYS = (
    "type",
    "name",
    "url",
    "username",
    "api_token",
    "repository",
    "token",
    "project_slugs",
    "circleci_token",
    "branch",
)


async def _page(
    request: Request,
    principal: Principal,
    session: SessionDep,
    *,
    status_code: int = 200,
    **extra: Any,
) -> Response:
    providers, _ = await service.list_providers(
        session=session, principal=principal, limit=200, cursor=None
    )
    context: dict[str, Any] = {
        "section": "cicd",
        "providers": await service.read_providers(session, providers),
        "types": [(t, TYPE_LABELS[t]) for t in CICD_PROVIDER_TYPES],
        "values": {"type": "jenkins"},
        "errors": {},
    }
    context.update(extra)
    return render(request, "cicd/providers.html", context, status_code=status_code)


@router.get("/cicd")
async def providers(
    request: Request, principal: CurrentUser, session: SessionDep, queued: str = ""
) -> Response:
    notice = "Sync queued: the job catalogue refreshes in the background." if queued else None
    return await _page(request, principal, session, notice=notice)


def _body(values: dict[str, str]) -> dict[str, Any]:
    """The API's ProviderCreate body for the chosen type, from the form's fields."""
    kind = values.get("type", "")
    config: dict[str, Any]
    if kind == "jenkins":
        config = {"username": values.get("username"), "api_token": values.get("api_token")}
    elif kind == "github_actions":
        config = {"repository": values.get("repository"), "token": values.get("token")}
    elif kind == "circleci":
        slugs = [s.strip() for s in values.get("project_slugs", "").replace(",", "\n").split()]
        config = {"project_slugs": [s for s in slugs if s], "token": values.get("circleci_token")}
        if values.get("branch"):
            config["branch"] = values["branch"]
    else:
        config = {}
    return {
        "type": kind,
        "name": values.get("name", ""),
        "url": values.get("url") or None,
        "config": {key: value for key, value in config.items() if value},
    }


def _form_errors(errors: dict[str, str], kind: str) -> dict[str, str]:
    """``config.api_token`` → ``api_token``: the form names config fields without the prefix."""
    named: dict[str, str] = {}
    for key, value in errors.items():
        # "config.project_slugs.0" is shown at the project_slugs field.
        named.setdefault(key.removeprefix("config.").split(".")[0], value)
    if kind == "circleci" and "token" in named:
        named["circleci_token"] = named.pop("token")
    return named


@router.post("/cicd")
async def add_provider(request: Request, principal: Manager, session: SessionDep) -> Response:
    form = await request.form()
    values = {key: str(form.get(key, "")).strip() for key in FORM_KEYS}
    try:
        data = ProviderCreate.model_validate(_body(values))
        async with attempt(session):
            await service.create_provider(session=session, principal=principal, data=data)
    except ValidationError as exc:
        return await _page(
            request,
            principal,
            session,
            status_code=422,
            values=values,
            errors=_form_errors(field_errors(exc), values["type"]),
        )
    except ShipyardError as exc:
        return await _page(
            request,
            principal,
            session,
            status_code=exc.status_code,
            values=values,
            errors=_form_errors(field_errors(exc), values["type"]),
            message=sentence(exc.message),
        )
    return RedirectResponse("/cicd", status_code=303)


@router.post("/cicd/providers/{provider_id}/test")
async def test_provider(
    request: Request,
    provider_id: UUID,
    principal: Manager,
    session: SessionDep,
    settings: SettingsDep,
) -> Response:
    ok, message = True, ""
    try:
        async with httpx.AsyncClient(timeout=settings.http_timeout) as http:
            check = await service.check_provider(
                session=session,
                principal=principal,
                provider_id=provider_id,
                http=http,
                settings=settings,
            )
        ok, message = check.ok, sentence(check.message) if not check.ok else check.message
    except ShipyardError as exc:
        if exc.status_code == 404:
            raise
        ok, message = False, sentence(exc.message)
    context = {"ok": ok, "message": message, "provider_id": provider_id}
    if is_htmx(request):
        return render(request, "cicd/_check.html", context)
    if ok:
        return await _page(request, principal, session, notice=message)
    return await _page(request, principal, session, message=message)


@router.post("/cicd/providers/{provider_id}/sync")
async def sync_provider(provider_id: UUID, principal: Manager, session: SessionDep) -> Response:
    await service.request_sync(session=session, principal=principal, provider_id=provider_id)
    return RedirectResponse("/cicd?queued=1", status_code=303)


@router.post("/cicd/providers/{provider_id}/delete")
async def delete_provider(provider_id: UUID, principal: Manager, session: SessionDep) -> Response:
    await service.delete_provider(session=session, principal=principal, provider_id=provider_id)
    return RedirectResponse("/cicd", status_code=303)


@router.get("/cicd/jobs")
async def jobs(
    request: Request,
    principal: CurrentUser,
    session: SessionDep,
    search: Annotated[str, Query(max_length=200)] = "",
    provider_id: Annotated[str, Query(max_length=40)] = "",
    cursor: Annotated[str, Query(max_length=500)] = "",
) -> Response:
    try:
        provider = UUID(provider_id) if provider_id else None
    except ValueError:
        provider = None
    rows, next_cursor = await service.list_jobs(
        session=session,
        principal=principal,
        provider_id=provider,
        search=search.strip() or None,
        limit=50,
        cursor=cursor or None,
    )
    providers, _ = await service.list_providers(
        session=session, principal=principal, limit=200, cursor=None
    )
    names = {p.id: p.name for p in providers}
    filters = {"search": search, "provider_id": provider_id}
    return render(
        request,
        "cicd/jobs.html",
        {
            "section": "cicd",
            "jobs": rows,
            "provider_names": names,
            "providers": providers,
            "filters": filters,
            "filtered": any(filters.values()),
            "next_cursor": next_cursor,
            "is_first_page": not cursor,
        },
    )
