"""A deployment's results grid (HTMX fragment) and its log as a download (streamed, gzip)."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import Query, Request, Response
from fastapi.responses import StreamingResponse

from shipyard.deployments.grid import GRID_PAGE_SIZE, results_grid
from shipyard.deployments.log_export import (
    LogFilter,
    accepts_gzip,
    encoded,
    gzipped,
    open_log_export,
)
from shipyard.deps import CurrentUser, DatabaseDep, SessionDep
from shipyard.web.routes import web_router
from shipyard.web.templating import render

router = web_router()


@router.get("/deployments/{deployment_id}/grid")
async def deployment_grid(
    request: Request,
    deployment_id: UUID,
    principal: CurrentUser,
    session: SessionDep,
    failed: Annotated[bool, Query()] = False,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> Response:
    """The grid, one page of hosts; it polls itself every 2 s until the run is final."""
    grid = await results_grid(
        session=session,
        deployment_id=deployment_id,
        failed_only=failed,
        offset=offset,
        limit=GRID_PAGE_SIZE,
    )
    return render(request, "deployments/_grid_table.html", {"grid": grid})


async def _download(
    request: Request,
    deployment_id: UUID,
    principal: CurrentUser,
    db: DatabaseDep,
    wanted: LogFilter,
    *,
    as_file: bool,
) -> Response:
    export = await open_log_export(
        db=db, principal=principal, deployment_id=deployment_id, wanted=wanted
    )
    if as_file:
        return StreamingResponse(
            gzipped(export.chunks),
            media_type="application/gzip",
            headers={"Content-Disposition": f'attachment; filename="{export.filename}.gz"'},
        )
    headers = {"Content-Disposition": f'attachment; filename="{export.filename}"'}
    headers["Vary"] = "Accept-Encoding"
    if accepts_gzip(request.headers.get("accept-encoding")):
        headers["Content-Encoding"] = "gzip"
        body = gzipped(export.chunks)
    else:
        body = encoded(export.chunks)
    return StreamingResponse(body, media_type="text/plain; charset=utf-8", headers=headers)


Selector = Annotated[str | None, Query(max_length=200)]
Grep = Annotated[str | None, Query(max_length=500)]


@router.get("/deployments/{deployment_id}/log.txt")
async def download_log(
    request: Request,
    deployment_id: UUID,
    principal: CurrentUser,
    db: DatabaseDep,
    host: Selector = None,
    script: Selector = None,
    failed: bool = False,
    grep: Grep = None,
    regex: bool = False,
) -> Response:
    """The log as text, streamed; gzip-encoded when the browser accepts it."""
    wanted = LogFilter(host=host, script=script, failed_only=failed, grep=grep, regex=regex)
    return await _download(request, deployment_id, principal, db, wanted, as_file=False)


@router.get("/deployments/{deployment_id}/log.txt.gz")
async def download_log_gz(
    request: Request,
    deployment_id: UUID,
    principal: CurrentUser,
    db: DatabaseDep,
    host: Selector = None,
    script: Selector = None,
    failed: bool = False,
    grep: Grep = None,
    regex: bool = False,
) -> Response:
    """The log as a .gz file, compressed as it streams."""
    wanted = LogFilter(host=host, script=script, failed_only=failed, grep=grep, regex=regex)
    return await _download(request, deployment_id, principal, db, wanted, as_file=True)
