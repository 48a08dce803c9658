"""The FastAPI application: mounts every domain's router and maps errors to HTTP once."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import psycopg
from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy import text
from sqlalchemy.exc import DataError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from shipyard import __version__
from shipyard.config import Settings, get_settings
from shipyard.db import Database, check_row_level_security, resolve_database_urls
from shipyard.errors import ShipyardError, Unauthorized
from shipyard.jobs import latest_worker_heartbeat, queue_snapshot
from shipyard.metrics import CONTENT_TYPE, ObservedRequests, exposition, set_queue_gauges
from shipyard.metrics import token_accepted as metrics_token_accepted
from shipyard.openapi import Description
from shipyard.openapi import install as install_description
from shipyard.runtime import Runtime, build_runtime, close_runtime, open_runtime
from shipyard.schema import head_revision

logger = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
}


# What reaches a request when the database restarts, is unreachable, or its pool stays full.
DATABASE_OUTAGE_ERRORS: tuple[type[Exception], ...] = (
    OperationalError,
    InterfaceError,
    PoolTimeout,
    psycopg.OperationalError,
    psycopg.InterfaceError,
)
DATABASE_RETRY_AFTER_SECONDS = 5


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def _field_name(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(part) for part in loc]
    if parts and parts[0] in {"body", "query", "path", "header", "cookie"} and len(parts) > 1:
        parts = parts[1:]
    return ".".join(parts) or "body"


def _validation_errors(exc: RequestValidationError) -> list[dict[str, str]]:
    errors = []
    for error in exc.errors():
        loc = error.get("loc", ())
        if error.get("type") == "json_invalid":
            field, message = "body", "request body is not valid JSON"
        else:
            field, message = _field_name(loc), str(error.get("msg", "invalid value"))
        errors.append({"field": field, "message": message, "type": str(error.get("type", ""))})
    return errors


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ShipyardError)
    async def shipyard_error(request: Request, exc: ShipyardError) -> JSONResponse:
        headers = {}
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            headers["Retry-After"] = str(retry_after)
        if isinstance(exc, Unauthorized):
            # RFC 6750: say which scheme, and why a token that was sent is refused.
            headers["WWW-Authenticate"] = (
                'Bearer error="invalid_token"' if exc.code != "missing_token" else "Bearer"
            )
        return JSONResponse(
            error_body(exc.code, exc.message, exc.details),
            status_code=exc.status_code,
            headers=headers,
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _validation_errors(exc)
        first = errors[0] if errors else {"field": "body", "message": "invalid request"}
        return JSONResponse(
            error_body(
                "validation_error", f"{first['field']}: {first['message']}", {"errors": errors}
            ),
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = HTTP_CODES.get(exc.status_code, "error")
        return JSONResponse(
            error_body(code, str(exc.detail)), status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(IntegrityError)
    async def integrity_error(request: Request, exc: IntegrityError) -> JSONResponse:
        # A safety net: services check references first, so this is a race or a missed check.
        sqlstate = getattr(exc.orig, "sqlstate", None)
        if sqlstate == "23505":
            return JSONResponse(
                error_body("conflict", "a resource with these values already exists"),
                status_code=409,
            )
        if sqlstate == "23503":
            return JSONResponse(
                error_body("invalid_reference", "a referenced resource does not exist"),
                status_code=422,
            )
        return JSONResponse(
            error_body("validation_error", "the values break a data rule"), status_code=422
        )

    @app.exception_handler(DataError)
    async def data_error(request: Request, exc: DataError) -> JSONResponse:
        return JSONResponse(
            error_body("validation_error", "a value is out of range or malformed"), status_code=422
        )

    async def database_unavailable(request: Request, exc: Exception) -> JSONResponse:
        # The database restarting or unreachable is an outage of ours: say so in the JSON shape,
        # with a hint to retry, rather than a plain-text 500.
        logger.warning("database unavailable: %s", type(exc).__name__)
        return JSONResponse(
            error_body(
                "database_unavailable", "the database is not answering; try again in a moment"
            ),
            status_code=503,
            headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
        )

    for error_type in DATABASE_OUTAGE_ERRORS:
        app.add_exception_handler(error_type, database_unavailable)


def build_api_router() -> APIRouter:
    from shipyard.accounts.api import router as accounts_router
    from shipyard.approvals.api import router as approvals_router
    from shipyard.audit.api import router as audit_router
    from shipyard.cicd.api import router as cicd_router
    from shipyard.deployments.api import router as deployments_router
    from shipyard.deployments.retention_api import router as log_retention_router
    from shipyard.freeze.api import router as freeze_router
    from shipyard.git.api import router as git_router
    from shipyard.hosts.api import groups_router as host_groups_router
    from shipyard.hosts.api import inventory_router
    from shipyard.hosts.api import router as hosts_router
    from shipyard.notifications.api import router as notifications_router
    from shipyard.schedules.api import router as schedules_router
    from shipyard.schedules.api import templates_router as template_schedules_router
    from shipyard.sso.api import router as sso_router
    from shipyard.sso.login_api import login_router as sso_login_router
    from shipyard.templates.api import router as templates_router
    from shipyard.webhooks.api import hooks_router
    from shipyard.webhooks.api import router as webhooks_router

    router = APIRouter(prefix=API_PREFIX)
    # A request is matched against the routes in this order, each domain's routes tried in
    # turn: the deployments' lists and logs, by far the most requested, come first.
    for domain_router in (
        deployments_router,
        accounts_router,
        git_router,
        hosts_router,
        host_groups_router,
        inventory_router,
        log_retention_router,
        templates_router,
        template_schedules_router,
        schedules_router,
        webhooks_router,
        hooks_router,
        cicd_router,
        notifications_router,
        approvals_router,
        freeze_router,
        audit_router,
        sso_router,
        sso_login_router,
    ):
        router.include_router(domain_router)
    return router


async def metrics_response(request: Request) -> Response:
    """This process's metrics; the queue gauges are read from the database first."""
    runtime: Runtime = request.app.state.runtime
    token = runtime.settings.metrics_token
    if not metrics_token_accepted(
        request.headers.get("authorization"), token.get_secret_value() if token else None
    ):
        return JSONResponse(
            error_body("unauthorized", "send 'Authorization: Bearer <SHIPYARD_METRICS_TOKEN>'"),
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
    try:
        async with runtime.db.session(system=True) as session:
            snapshot = await queue_snapshot(
                session, alive_within=runtime.settings.readiness_worker_max_age_seconds or 60.0
            )
    except Exception as exc:  # the process's own metrics are still worth answering with
        logger.warning("metrics: the queue query failed: %s", type(exc).__name__)
    else:
        set_queue_gauges(
            due=snapshot.due,
            oldest_due_seconds=snapshot.oldest_due_seconds,
            workers_alive=snapshot.workers_alive,
            jobs_running=snapshot.jobs_running,
        )
    return Response(exposition(), media_type=CONTENT_TYPE)


def install_metrics_route(app: FastAPI) -> None:
    app.add_api_route(
        "/metrics", metrics_response, methods=["GET"], include_in_schema=False, tags=["health"]
    )


def create_metrics_app(runtime: Runtime) -> FastAPI:
    """A worker's own metrics endpoint: ``/metrics`` only, on ``SHIPYARD_WORKER_METRICS_PORT``."""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    app.state.runtime = runtime
    install_metrics_route(app)
    return app


def create_app(
    settings: Settings | None = None,
    database: Database | None = None,
    *,
    runtime: Runtime | None = None,
) -> FastAPI:
    """Build the application around ``runtime``.

    With no runtime, the lifespan opens one: on ``database`` when given (tests), otherwise on the
    configured (or embedded) database, and closes it at shutdown.
    """
    if runtime is not None:
        settings = runtime.settings
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if runtime is not None:
            yield
            return
        if database is not None:
            try:
                yield
            finally:
                await close_runtime(app.state.runtime)
            return
        urls, embedded = resolve_database_urls(settings)
        try:
            async with open_runtime(
                settings,
                database_url=urls.serving,
                system_database_url=urls.owner,
                verify_row_level_security=True,
            ) as opened:
                app.state.runtime = opened
                yield
        finally:
            if embedded is not None:
                embedded.stop()

    description = Description()
    app = FastAPI(
        title="Shipyard",
        version=__version__,
        description="Self-hosted deployment control plane.",
        lifespan=lifespan,
        generate_unique_id_function=description.unique_id,
    )
    if runtime is not None:
        app.state.runtime = runtime
    elif database is not None:
        # Test clients (ASGI transports) may skip the lifespan: the runtime exists up front.
        app.state.runtime = build_runtime(settings, db=database)
    install_error_handlers(app)
    app.include_router(build_api_router())
    install_description(app, description)

    from shipyard.web import install as install_web
    from shipyard.web import install_guards

    install_web(app)
    install_guards(app, max_request_bytes=settings.max_request_bytes)
    # Failure, denial and fallback audit entries of write requests (API and web forms).
    from shipyard.audit.requests import AuditedRequests

    app.add_middleware(AuditedRequests)
    # Outermost: the request id and the access line cover every other middleware's answers.
    app.add_middleware(ObservedRequests)
    install_metrics_route(app)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    async def readyz(request: Request) -> JSONResponse:
        """200 when the database answers at the newest migration and a worker is alive, else 503."""
        runtime: Runtime = request.app.state.runtime
        try:
            async with runtime.db.session(system=True) as session:
                current = await session.scalar(text("SELECT version_num FROM alembic_version"))
                worker_seen = await latest_worker_heartbeat(session)
        except Exception as exc:  # any failure means not ready; say which
            logger.warning("readiness check failed: %s", type(exc).__name__)
            return JSONResponse(
                {
                    "status": "unavailable",
                    "database": "unreachable",
                    "reason": "the database does not answer",
                },
                status_code=503,
            )
        head = head_revision()
        body: dict[str, Any] = {
            "status": "ok",
            "database": "ok",
            "migrations": {"current": current, "head": head},
            "worker": {"last_heartbeat": worker_seen.isoformat() if worker_seen else None},
        }
        if current != head:
            body["status"] = "unavailable"
            body["reason"] = "the database schema is not at the newest migration"
            return JSONResponse(body, status_code=503)
        # Requests must be bound by row-level security; say why not, in the operator's terms.
        rls = await check_row_level_security(runtime.db)
        body["row_level_security"] = {
            "status": "enforced" if rls.enforced else "not enforced",
            "separate_login": rls.separate_logins,
        }
        if not rls.enforced:
            body["status"] = "unavailable"
            body["row_level_security"]["problems"] = rls.problems
            body["reason"] = rls.problems[0]
            return JSONResponse(body, status_code=503)
        max_age = runtime.settings.readiness_worker_max_age_seconds
        if max_age and (
            worker_seen is None or runtime.clock.now() - worker_seen > timedelta(seconds=max_age)
        ):
            body["status"] = "unavailable"
            body["worker"]["status"] = "none alive"
            body["reason"] = (
                f"no worker has sent a heartbeat in the last {max_age:.0f} s: "
                "deployments and scheduled work would not run"
            )
            return JSONResponse(body, status_code=503)
        body["worker"]["status"] = "alive"
        return JSONResponse(body)

    return app
