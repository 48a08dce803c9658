"""Third-party loggers stay at WARNING unless SHIPYARD_LOG_LEVEL=debug."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from shipyard.logs import QUIET_LOGGERS, access_log_enabled, configure_logging


@pytest.fixture(autouse=True)
def restore_levels() -> Iterator[None]:
    names = ["", *QUIET_LOGGERS, "asyncssh.sftp"]
    saved = {name: logging.getLogger(name).level for name in names}
    yield
    for name, level in saved.items():
        logging.getLogger(name).setLevel(level)
    logging.captureWarnings(False)


def test_libraries_log_warnings_only_unless_debugging() -> None:
    configure_logging("info")
    for name in ("asyncssh", "httpx", "httpcore", "procrastinate", "alembic", "uvicorn.access"):
        assert logging.getLogger(name).getEffectiveLevel() == logging.WARNING, name
    # asyncssh's INFO line for every command it runs is not written.
    assert not logging.getLogger("asyncssh.sftp").isEnabledFor(logging.INFO)
    assert logging.getLogger("shipyard.deployments").isEnabledFor(logging.INFO)
    assert not access_log_enabled("INFO")

    configure_logging("debug")
    assert logging.getLogger("asyncssh").isEnabledFor(logging.DEBUG)
    assert access_log_enabled("DEBUG") and access_log_enabled("debug")
