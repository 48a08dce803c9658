"""Git providers: connect by token or OAuth, configured state, last sync, sync now with progress."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode
from uuid import UUID

from fastapi import Request, Response
from fastapi.responses import RedirectResponse
from pydantic import ValidationError

from shipyard.accounts.permissions import Permission
from shipyard.accounts.principal import Actor, Principal
from shipyard.deps import CurrentUser, RuntimeDep, SessionDep, acting
from shipyard.errors import ShipyardError
from shipyard.git import flows, service
from shipyard.git.models import GIT_PROVIDER_TYPES
from shipyard.git.schemas import GitProviderCreate
from shipyard.runtime import Runtime
from shipyard.web.errors import field_errors, sentence
from shipyard.web.routes import web_router
from shipyard.web.templating import is_htmx, render

router = web_router()
Admin = Annotated[Actor, acting(Permission.MANAGE_GIT_PROVIDERS)]
PROVIDERS_PAGE = "/repositories/providers"
TYPE_LABELS = {"github": "GitHub", "gitlab": "GitLab", "gitea": "Gitea"}
FORM_KEYS = ("type", "server_url", "access_token", "display_name")


async def _page(
    request: Request,
    runtime: Runtime,
    principal: Principal,
    *,
    status_code: int = 200,
    **extra: Any,
) -> Response:
    context: dict[str, Any] = {
        "section": "repositories",
        "providers": await flows.read_providers(runtime=runtime, principal=principal),
        "types": [(t, TYPE_LABELS[t]) for t in GIT_PROVIDER_TYPES],
        "values": {"type": "github"},
        "errors": {},
        "oauth_return": PROVIDERS_PAGE,
    }
    context.update(extra)
    return render(request, "providers/list.html", context, status_code=status_code)


@router.get("/repositories/providers")
async def providers(
    request: Request, principal: CurrentUser, runtime: RuntimeDep, provider_id: UUID | None = None
) -> Response:
    notice = "Connected. The first sync is under way." if provider_id else None
    return await _page(request, runtime, principal, notice=notice)


@router.post("/repositories/providers")
async def connect(request: Request, actor: Admin, runtime: RuntimeDep) -> Response:
    form = await request.form()
    values = {key: str(form.get(key, "")).strip() for key in FORM_KEYS}
    try:
        data = GitProviderCreate.model_validate(
            {
                "type": values["type"],
                "server_url": values["server_url"] or None,
                "access_token": values["access_token"],
                "display_name": values["display_name"] or None,
            }
        )
        provider = await flows.connect_provider(runtime=runtime, actor=actor, data=data)
    except ValidationError as exc:
        return await _page(
            request,
            runtime,
            actor.principal,
            status_code=422,
            values=values,
            errors=field_errors(exc),
        )
    except ShipyardError as exc:
        errors = field_errors(exc)
        if exc.code in ("provider_unauthorized", "provider_forbidden"):
            errors.setdefault("access_token", sentence(exc.message))
        return await _page(
            request,
            runtime,
            actor.principal,
            status_code=exc.status_code,
            values=values,
            errors=errors,
            message=sentence(exc.message),
        )
    return RedirectResponse(f"{PROVIDERS_PAGE}?provider_id={provider.id}", status_code=303)


@router.get("/repositories/providers/oauth")
async def oauth(actor: Admin, provider_type: str = "github", server_url: str = "") -> Response:
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
async def sync(request: Request, provider_id: UUID, actor: Admin, session: SessionDep) -> Response:
    await service.request_sync(session=session, actor=actor, provider_id=provider_id)
    if is_htmx(request):
        provider = await service.read_provider(
            session=session, principal=actor.principal, provider_id=provider_id
        )
        return render(request, "providers/_row.html", {"provider": provider})
    return RedirectResponse(PROVIDERS_PAGE, status_code=303)


@router.post("/repositories/providers/{provider_id}/delete")
async def disconnect(provider_id: UUID, actor: Admin, session: SessionDep) -> Response:
    await service.delete_provider(session=session, actor=actor, provider_id=provider_id)
    return RedirectResponse(PROVIDERS_PAGE, status_code=303)
