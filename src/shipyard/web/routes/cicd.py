"""CI/CD: providers (add, test inline, sync, remove) and the job catalogue with parameters."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import Query, Request, Response
from fastapi.responses import RedirectResponse
from pydantic import ValidationError

from shipyard.accounts.permissions import Permission
from shipyard.accounts.principal import Actor, Principal
from shipyard.cicd import actions, flows, service
from shipyard.cicd.models import CICD_PROVIDER_TYPES
from shipyard.cicd.schemas import ProviderCreate, ProviderRead
from shipyard.deps import CurrentUser, RuntimeDep, SessionDep, acting
from shipyard.errors import ShipyardError
from shipyard.web.errors import field_errors, sentence
from shipyard.web.routes import web_router
from shipyard.web.templating import is_htmx, render

router = web_router()
Manager = Annotated[Actor, acting(Permission.MANAGE_CICD)]
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


async def _listed(session: SessionDep, principal: Principal) -> list[ProviderRead]:
    providers, _ = await service.list_providers(
        session=session, principal=principal, limit=flows.PAGE_LIMIT, cursor=None
    )
    return await service.read_providers(session=session, providers=providers)


def _page(
    request: Request,
    providers: list[ProviderRead],
    *,
    status_code: int = 200,
    **extra: Any,
) -> Response:
    context: dict[str, Any] = {
        "section": "cicd",
        "providers": providers,
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
    return _page(request, await _listed(session, principal), notice=notice)


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
async def add_provider(request: Request, actor: Manager, runtime: RuntimeDep) -> Response:
    form = await request.form()
    values = {key: str(form.get(key, "")).strip() for key in FORM_KEYS}
    try:
        data = ProviderCreate.model_validate(_body(values))
        await flows.create_provider(runtime=runtime, actor=actor, data=data)
    except (ValidationError, ShipyardError) as exc:
        status_code, message = 422, None
        if isinstance(exc, ShipyardError):
            status_code, message = exc.status_code, sentence(exc.message)
        return _page(
            request,
            await flows.read_providers(runtime=runtime, principal=actor.principal),
            status_code=status_code,
            values=values,
            errors=_form_errors(field_errors(exc), values["type"]),
            message=message,
        )
    return RedirectResponse("/cicd", status_code=303)


@router.post("/cicd/providers/{provider_id}/test")
async def test_provider(
    request: Request, provider_id: UUID, actor: Manager, runtime: RuntimeDep
) -> Response:
    """The connection test, shown in place (htmx) or as the page's notice or alert."""
    try:
        check = await flows.check_provider(runtime=runtime, actor=actor, provider_id=provider_id)
        ok, message = check.ok, check.message if check.ok else sentence(check.message)
    except ShipyardError as exc:
        if exc.status_code == 404:
            raise
        ok, message = False, sentence(exc.message)
    if is_htmx(request):
        context = {"ok": ok, "message": message, "provider_id": provider_id}
        return render(request, "cicd/_check.html", context)
    # Not htmx: the whole page again, read after the check in a transaction of its own.
    providers = await flows.read_providers(runtime=runtime, principal=actor.principal)
    if ok:
        return _page(request, providers, notice=message)
    return _page(request, providers, message=message)


@router.post("/cicd/providers/{provider_id}/sync")
async def sync_provider(provider_id: UUID, actor: Manager, session: SessionDep) -> Response:
    await actions.request_sync(session=session, actor=actor, provider_id=provider_id)
    return RedirectResponse("/cicd?queued=1", status_code=303)


@router.post("/cicd/providers/{provider_id}/delete")
async def delete_provider(provider_id: UUID, actor: Manager, session: SessionDep) -> Response:
    await actions.delete_provider(session=session, actor=actor, provider_id=provider_id)
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
