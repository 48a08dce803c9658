"""Prometheus metrics of this process: one registry, the metric objects, the HTTP middleware.

The registry is the process's own (not prometheus-client's global default, which libraries may
also fill): domains import the objects below and count where things happen; ``/metrics`` on
``serve`` and on a worker's metrics port expose it. Counters are process-wide, as a scrape
target is a process; tests that build several runtimes in one process read differences.

The queue gauges (runs due, the oldest one's age, live workers, running jobs) are not counted
here but read from the database at scrape time (``shipyard.jobs.queue_snapshot``) and set just
before the registry is rendered.

Labels take bounded values only: statuses, error codes, provider types, route templates. Never
an id, a host name or a raw path.
"""

from __future__ import annotations

import hmac
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from shipyard.logs import request_id as request_id_var
from shipyard.logs import tenant_id as tenant_id_var

# No "<name>_created" timestamp series next to every counter and histogram: they double the
# series a scrape stores and tell an operator nothing the process start time does not.
disable_created_metrics()  # type: ignore[no-untyped-call]
REGISTRY = CollectorRegistry(auto_describe=True)
CONTENT_TYPE = CONTENT_TYPE_LATEST

LONG_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, float("inf"))
SHORT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, float("inf"))

# Deployments (shipyard.deployments.deployment_run, host_run).
DEPLOYMENTS_STARTED = Counter(
    "shipyard_deployments_started", "Deployments a worker started running.", registry=REGISTRY
)
DEPLOYMENTS_FINISHED = Counter(
    "shipyard_deployments_finished",
    "Deployments a worker finished, by final status.",
    ["status"],
    registry=REGISTRY,
)
DEPLOYMENT_DURATION = Histogram(
    "shipyard_deployment_duration_seconds",
    "Time from a worker starting a deployment to its final status.",
    ["status"],
    buckets=LONG_BUCKETS,
    registry=REGISTRY,
)
SCRIPT_DURATION = Histogram(
    "shipyard_script_duration_seconds",
    "Time a deployment script ran on one host, by its result.",
    ["status"],
    buckets=LONG_BUCKETS,
    registry=REGISTRY,
)
LOG_LINES_STORED = Counter(
    "shipyard_log_lines_stored", "Deployment log lines written to the database.", registry=REGISTRY
)

# Hosts (shipyard.hosts.executor): reasons are the executor's error codes.
SSH_CONNECT_DURATION = Histogram(
    "shipyard_ssh_connect_seconds",
    "Time to open and authenticate an SSH connection (successful ones).",
    buckets=SHORT_BUCKETS,
    registry=REGISTRY,
)
SSH_CONNECT_FAILURES = Counter(
    "shipyard_ssh_connect_failures",
    "SSH connections that failed, by the executor's error code.",
    ["reason"],
    registry=REGISTRY,
)

# Provider APIs (shipyard.outbound.api), by provider type (github, gitlab, jenkins, ...).
PROVIDER_REQUESTS = Counter(
    "shipyard_provider_requests",
    "Requests sent to provider APIs (every attempt).",
    ["provider"],
    registry=REGISTRY,
)
PROVIDER_ERRORS = Counter(
    "shipyard_provider_errors",
    "Provider API calls that ended in an error, by our error code.",
    ["provider", "kind"],
    registry=REGISTRY,
)
PROVIDER_RATE_LIMIT_REMAINING = Gauge(
    "shipyard_provider_rate_limit_remaining",
    "Requests left in the provider's rate-limit window, as its last answer said.",
    ["provider"],
    registry=REGISTRY,
)

# HTTP (the middleware below), by route template.
HTTP_REQUESTS = Counter(
    "shipyard_http_requests",
    "HTTP requests answered, by method, route template and status.",
    ["method", "route", "status"],
    registry=REGISTRY,
)
HTTP_DURATION = Histogram(
    "shipyard_http_request_duration_seconds",
    "Time to answer an HTTP request (until the response starts), by method and route template.",
    ["method", "route"],
    buckets=SHORT_BUCKETS,
    registry=REGISTRY,
)

# Notifications do not exist yet: the counter is declared so dashboards can be built; it stays
# empty until deliveries are sent.
NOTIFICATION_DELIVERIES = Counter(
    "shipyard_notification_deliveries",
    "Notification deliveries, by channel and outcome (none are sent yet).",
    ["channel", "outcome"],
    registry=REGISTRY,
)

# Read from the database at scrape time (set_queue_gauges).
RUNS_DUE = Gauge(
    "shipyard_runs_due", "Jobs due to run that no worker has started yet.", registry=REGISTRY
)
OLDEST_DUE_AGE = Gauge(
    "shipyard_runs_due_oldest_age_seconds",
    "How long the oldest due job has waited for a worker (the scheduling lag; 0 when none).",
    registry=REGISTRY,
)
WORKERS_ALIVE = Gauge(
    "shipyard_workers_alive", "Workers that sent a heartbeat recently.", registry=REGISTRY
)
JOBS_RUNNING = Gauge(
    "shipyard_jobs_running", "Jobs the live workers are running.", registry=REGISTRY
)

# Provider types a metric may name; anything else is counted as "other".
PROVIDER_TYPES = frozenset(
    {"github", "gitlab", "gitea", "jenkins", "github_actions", "circleci", "other"}
)
_CICD_LABELS = {"Jenkins": "jenkins", "GitHub Actions": "github_actions", "CircleCI": "circleci"}


def provider_type(kind: str | None, label: str = "") -> str:
    """A bounded provider label: ``kind`` when known, else from a CI/CD label, else "other"."""
    if kind in PROVIDER_TYPES:
        return kind
    return _CICD_LABELS.get(label, "other")


def set_queue_gauges(
    *, due: int, oldest_due_seconds: float, workers_alive: int, jobs_running: int
) -> None:
    RUNS_DUE.set(due)
    OLDEST_DUE_AGE.set(max(oldest_due_seconds, 0.0))
    WORKERS_ALIVE.set(workers_alive)
    JOBS_RUNNING.set(jobs_running)


def exposition() -> bytes:
    """The registry in Prometheus' text format."""
    return generate_latest(REGISTRY)


def token_accepted(authorization: str | None, token: str | None) -> bool:
    """Whether a request may read /metrics: always without a token, else a matching bearer."""
    if not token:
        return True
    scheme, _, sent = (authorization or "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(sent.strip().encode(), token.encode())


# -- HTTP middleware ---------------------------------------------------------------------------

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

access_logger = logging.getLogger("shipyard.access")
MAX_REQUEST_ID_CHARS = 128
UNMATCHED_ROUTE = "unmatched"


def clean_request_id(value: str | None) -> str:
    """The client's X-Request-ID when it is short and plain (letters, digits, -_.:), else new."""
    if (
        value
        and len(value) <= MAX_REQUEST_ID_CHARS
        and all(ch.isascii() and (ch.isalnum() or ch in "-_.:") for ch in value)
    ):
        return value
    return uuid.uuid4().hex


def route_template(scope: Scope) -> str:
    """The matched route's path template (``/api/v1/hosts/{host_id}``), never the raw path.

    A route of an included router knows its path below that router's prefix only; the prefix
    (literal in this app) is taken from the request path, before the part the route matched.
    """
    route = scope.get("route")
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    if not isinstance(template, str) or not template:
        return UNMATCHED_ROUTE
    path = str(scope.get("path") or "")
    regex = getattr(route, "path_regex", None)
    if path == template or regex is None:
        return template
    for index, char in enumerate(path):
        if char == "/" and regex.fullmatch(path[index:]):
            prefix = path[:index]
            # Prefixes are literal here; should one ever carry an id, leave it out of the label.
            if any(_looks_like_id(segment) for segment in prefix.split("/")):
                return template
            return prefix + template
    return template


def _looks_like_id(segment: str) -> bool:
    if segment.isdigit():
        return True
    try:
        uuid.UUID(segment)
    except ValueError:
        return False
    return True


class ObservedRequests:
    """Outermost ASGI middleware: a request id (the client's ``X-Request-ID`` or a new one, in
    the log context and echoed in the response), request metrics by route template, and one
    access line per request (``shipyard.access``: no path, no query string)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        raw_id = headers.get(b"x-request-id")
        request_id = clean_request_id(raw_id.decode("latin-1") if raw_id else None)
        started = time.perf_counter()
        status = 500
        answered: float | None = None

        async def send_with_id(message: Message) -> None:
            nonlocal status, answered
            if message["type"] == "http.response.start":
                status = int(message["status"])
                answered = time.perf_counter() - started
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        token = request_id_var.set(request_id)
        tenant_token = tenant_id_var.set(None)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            method = scope.get("method", "GET")
            method = method if method in _METHODS else "other"
            route = route_template(scope)
            elapsed = answered if answered is not None else time.perf_counter() - started
            HTTP_REQUESTS.labels(method, route, str(status)).inc()
            HTTP_DURATION.labels(method, route).observe(elapsed)
            extra: dict[str, Any] = {}
            principal = (scope.get("state") or {}).get("principal")
            tenant = getattr(principal, "tenant_id", None)
            if tenant is not None and tenant_id_var.get() is None:
                extra["tenant_id"] = str(tenant)
            access_logger.info(
                "%s %s %d %.1f ms", method, route, status, elapsed * 1000, extra=extra
            )
            tenant_id_var.reset(tenant_token)
            request_id_var.reset(token)


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
