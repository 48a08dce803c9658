"""Git providers: connect by token or OAuth, configured state, last sync, sync now with progress."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode
from uuid import UUID

import httpx
from fastapi import Depends, Request, Response
from fastapi.responses import RedirectResponse
from pydantic import ValidationError

from shipyard.accounts.permissions import Permission
from shipyard.accounts.principal import Principal
from shipyard.deps import CurrentUser, SessionDep, SettingsDep, require
from shipyard.errors import ShipyardError
from shipyard.git import service
from shipyard.git.api import provider_http
from shipyard.git.models import GIT_PROVIDER_TYPES
from shipyard.git.schemas import GitProviderCreate
from shipyard.web.deps import attempt
from shipyard.web.errors import field_errors, sentence
from shipyard.web.routes import web_router
from shipyard.web.templating import is_htmx, render

router = web_router()
Admin = Annotated[Principal, require(Permission.MANAGE_GIT_PROVIDERS)]
HttpDep = Annotated[httpx.AsyncClient, Depends(provider_http)]
PROVIDERS_PAGE = "/repositories/providers"
TYPE_LABELS = {"github": "GitHub", "gitlab": "GitLab", "gitea": "Gitea"}
SYNCING = ("pending", "syncing")


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
        "section": "repositories",
        "providers": providers,
        "types": [(t, TYPE_LABELS[t]) for t in GIT_PROVIDER_TYPES],
        "values": {"type": "github"},
        "errors": {},
        "oauth_return": PROVIDERS_PAGE,
    }
    context.update(extra)
    return render(request, "providers/list.html", context, status_code=status_code)


@router.get("/repositories/providers")
async def providers(
    request: Request,
    principal: CurrentUser,
    session: SessionDep,
    provider_id: UUID | None = None,
) -> Response:
    notice = "Connected. The first sync is under way." if provider_id else None
    return await _page(request, principal, session, notice=notice)


@router.post("/repositories/providers")
async def connect(
    request: Request,
    principal: Admin,
    session: SessionDep,
    settings: SettingsDep,
    http: HttpDep,
) -> Response:
    form = await request.form()
    values = {
        key: str(form.get(key, "")).strip()
        for key in ("type", "server_url", "access_token", "display_name")
    }
    try:
        data = GitProviderCreate.model_validate(
            {
                "type": values["type"],
                "server_url": values["server_url"] or None,
                "access_token": values["access_token"],
                "display_name": values["display_name"] or None,
            }
        )
    except ValidationError as exc:
        return await _page(
            request, principal, session, status_code=422, values=values, errors=field_errors(exc)
        )
    try:
        async with attempt(session):
            provider = await service.create_provider(
                session=session, principal=principal, data=data, settings=settings, http=http
            )
    except ShipyardError as exc:
        errors = field_errors(exc)
        if exc.code in ("provider_unauthorized", "provider_forbidden"):
            errors.setdefault("access_token", sentence(exc.message))
        return await _page(
            request,
            principal,
            session,
            status_code=exc.status_code,
            values=values,
            errors=errors,
            message=sentence(exc.message),
        )
    return RedirectResponse(f"{PROVIDERS_PAGE}?provider_id={provider.id}", status_code=303)


@router.get("/repositories/providers/oauth")
async def oauth(principal: Admin, provider_type: str = "github", server_url: str = "") -> Response:
    """Start the OAuth dance through the API, coming back to this page when done."""
    if provider_type not in GIT_PROVIDER_TYPES:
        provider_type = "github"
    query = {"redirect_to": PROVIDERS_PAGE}
    if server_url.strip():
        query["server_url"] = server_url.strip()
    return RedirectResponse(
        f"/api/v1/git-providers/oauth/{provider_type}/start?{urlencode(query)}", status_code=303
    )


@router.get("/repositories/providers/{provider_id}/row")
async def provider_row(
    request: Request, provider_id: UUID, principal: CurrentUser, session: SessionDep
) -> Response:
    """One provider's row; polled while a sync runs, so progress shows without a reload."""
    provider = await service.read_provider(
        session=session, principal=principal, provider_id=provider_id
    )
    return render(request, "providers/_row.html", {"provider": provider})


@router.post("/repositories/providers/{provider_id}/sync")
async def sync(
    request: Request, provider_id: UUID, principal: Admin, session: SessionDep
) -> Response:
    await service.request_sync(session=session, principal=principal, provider_id=provider_id)
    if is_htmx(request):
        provider = await service.read_provider(
            session=session, principal=principal, provider_id=provider_id
        )
        return render(request, "providers/_row.html", {"provider": provider})
    return RedirectResponse(PROVIDERS_PAGE, status_code=303)


@router.post("/repositories/providers/{provider_id}/delete")
async def disconnect(provider_id: UUID, principal: Admin, session: SessionDep) -> Response:
    await service.delete_provider(session=session, principal=principal, provider_id=provider_id)
    return RedirectResponse(PROVIDERS_PAGE, status_code=303)
