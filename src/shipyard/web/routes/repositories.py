"""Repositories: searchable list with pins first, pin in place; branches, files, scripts."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Annotated, Any
from uuid import UUID

from fastapi import Query, Request, Response
from fastapi.responses import RedirectResponse
from pydantic import ValidationError
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_for_filename
from pygments.lexers.special import TextLexer
from pygments.util import ClassNotFound

from shipyard.accounts.permissions import Permission
from shipyard.accounts.principal import Actor
from shipyard.deps import CurrentUser, RuntimeDep, SessionDep, acting
from shipyard.errors import ShipyardError
from shipyard.git import flows
from shipyard.git import repositories as service
from shipyard.git.api import BrowserDep
from shipyard.git.models import REPOSITORY_PROVIDER_TYPES
from shipyard.git.schemas import RepositoryCreate, RepositoryRead
from shipyard.web.errors import field_errors, sentence
from shipyard.web.routes import web_router
from shipyard.web.templating import is_htmx, render

router = web_router()
Manager = Annotated[Actor, acting(Permission.MANAGE_REPOSITORIES)]
Pinner = Annotated[Actor, acting(Permission.PIN_REPOSITORIES)]
PAGE_SIZE = 50
FORMATTER = HtmlFormatter(cssclass="highlight", linenos="inline", wrapcode=True)


def highlighted(path: str, content: str) -> str:
    """Pygments HTML for a file (it escapes the source); plain text when no lexer knows it."""
    try:
        lexer = get_lexer_for_filename(PurePosixPath(path).name, content)
    except ClassNotFound:
        lexer = TextLexer()
    return str(highlight(content, lexer, FORMATTER))


def _list_page(
    request: Request,
    items: list[RepositoryRead],
    next_cursor: str | None,
    *,
    filters: dict[str, str] | None = None,
    is_first_page: bool = True,
    status_code: int = 200,
    **extra: Any,
) -> Response:
    filters = filters or {"q": "", "provider_type": "", "pinned": ""}
    context: dict[str, Any] = {
        "section": "repositories",
        "repositories": items,
        "next_cursor": next_cursor,
        "is_first_page": is_first_page,
        "filters": filters,
        "filtered": any(filters.values()),
        "provider_types": REPOSITORY_PROVIDER_TYPES,
        "values": {},
        "errors": {},
    }
    context.update(extra)
    return render(request, "repositories/list.html", context, status_code=status_code)


@router.get("/repositories")
async def repositories(
    request: Request,
    principal: CurrentUser,
    session: SessionDep,
    q: Annotated[str, Query(max_length=200)] = "",
    provider_type: Annotated[str, Query(max_length=20)] = "",
    pinned: Annotated[str, Query(max_length=1)] = "",
    cursor: Annotated[str, Query(max_length=1000)] = "",
) -> Response:
    items, next_cursor = await service.list_repositories(
        session=session,
        principal=principal,
        q=q.strip() or None,
        provider_type=provider_type if provider_type in REPOSITORY_PROVIDER_TYPES else None,
        pinned=True if pinned == "1" else None,
        limit=PAGE_SIZE,
        cursor=cursor or None,
    )
    filters = {"q": q, "provider_type": provider_type, "pinned": pinned}
    return _list_page(request, items, next_cursor, filters=filters, is_first_page=not cursor)


@router.post("/repositories")
async def add_by_url(request: Request, actor: Manager, runtime: RuntimeDep) -> Response:
    form = await request.form()
    values = {key: str(form.get(key, "")).strip() for key in ("url", "name")}
    try:
        data = RepositoryCreate.model_validate(
            {"url": values["url"], "name": values["name"] or None}
        )
        repository = await flows.add_repository(runtime=runtime, actor=actor, data=data)
    except (ValidationError, ShipyardError) as exc:
        errors = field_errors(exc)
        status_code, message = 422, None
        if isinstance(exc, ShipyardError):
            status_code, message = exc.status_code, sentence(exc.message)
            if exc.code == "repository_exists":
                errors["url"] = message
        items, next_cursor = await flows.read_repositories(
            runtime=runtime, principal=actor.principal, limit=PAGE_SIZE
        )
        return _list_page(
            request,
            items,
            next_cursor,
            status_code=status_code,
            values=values,
            errors=errors,
            message=message,
        )
    return RedirectResponse(f"/repositories/{repository.id}", status_code=303)


def _pin_response(request: Request, repository: RepositoryRead) -> Response:
    if is_htmx(request):
        return render(request, "repositories/_pin.html", {"repository": repository})
    return RedirectResponse(request.headers.get("referer") or "/repositories", status_code=303)


@router.post("/repositories/{repository_id}/pin")
async def pin(
    request: Request, repository_id: UUID, actor: Pinner, session: SessionDep
) -> Response:
    repository = await service.pin(session=session, actor=actor, repository_id=repository_id)
    return _pin_response(request, repository)


@router.post("/repositories/{repository_id}/unpin")
async def unpin(
    request: Request, repository_id: UUID, actor: Pinner, session: SessionDep
) -> Response:
    repository = await service.unpin(session=session, actor=actor, repository_id=repository_id)
    return _pin_response(request, repository)


@router.get("/repositories/{repository_id}")
async def repository_page(
    request: Request,
    browse: BrowserDep,
    ref: Annotated[str, Query(max_length=255)] = "",
    path: Annotated[str, Query(max_length=4096)] = "",
) -> Response:
    context: dict[str, Any] = {"section": "repositories", "repository": browse.view}
    # Each panel stands alone: one failing provider call does not blank the others.
    problems: dict[str, str] = {}
    current = ref
    branches: list[Any] = []
    tree = catalogue = None
    try:
        current = ref or browse.default_ref(None)
        branches = await browse.branches()
    except ShipyardError as exc:
        problems["branches"] = sentence(exc.message)
    if current:
        try:
            tree = await browse.tree(current, path.strip("/"))
        except ShipyardError as exc:
            problems["tree"] = sentence(exc.message)
        try:
            catalogue = await browse.scripts(current)
        except ShipyardError as exc:
            problems["scripts"] = sentence(exc.message)
    context.update(
        {
            "branches": branches,
            "ref": current,
            "path": path.strip("/"),
            "tree": tree,
            "catalogue": catalogue,
            "problems": problems,
            "crumbs": _crumbs(path.strip("/")),
        }
    )
    return render(request, "repositories/detail.html", context)


def _crumbs(path: str) -> list[tuple[str, str]]:
    parts = [part for part in path.split("/") if part]
    return [(part, "/".join(parts[: index + 1])) for index, part in enumerate(parts)]


@router.get("/repositories/{repository_id}/file")
async def file_page(
    request: Request,
    browse: BrowserDep,
    path: Annotated[str, Query(min_length=1, max_length=4096)],
    ref: Annotated[str, Query(max_length=255)] = "",
) -> Response:
    current = ref or browse.default_ref(None)
    data = await browse.file(current, path)
    code = highlighted(path, data.content) if data.content is not None else None
    parent = "/".join(path.strip("/").split("/")[:-1])
    return render(
        request,
        "repositories/file.html",
        {
            "section": "repositories",
            "repository": browse.view,
            "file": data,
            "ref": current,
            "code": code,
            "parent": parent,
            "crumbs": _crumbs(path.strip("/")),
        },
    )
