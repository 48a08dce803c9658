"""Database roles and poolers: requests stay bound by row-level security, behind a real PgBouncer
in transaction mode too, and Shipyard refuses to serve when they would not be."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

import httpx
import psycopg
import pytest
from sqlalchemy import text

from shipyard.accounts import service as accounts_service
from shipyard.api import create_app
from shipyard.config import Settings
from shipyard.crypto import load_keyring
from shipyard.db import (
    APP_ROLE,
    EMBEDDED_LOGIN,
    NO_TENANT,
    Database,
    EmbeddedPostgres,
    RowLevelSecurityNotEnforced,
    Scope,
    check_row_level_security,
    database_name,
    ensure_serving_login,
    set_scope,
    to_libpq_url,
)
from shipyard.deployments import service as deployments_service
from shipyard.errors import NotFound
from shipyard.runtime import Runtime, build_runtime, close_runtime, open_runtime
from shipyard.schema import upgrade
from tests.support.api import Account, signup
from tests.support.pgbouncer import PgBouncer, pgbouncer_binary
from tests.support.postgres import PostgresForTests

pytestmark = pytest.mark.skipif(
    pgbouncer_binary() is None, reason="pgbouncer is not installed: run `make system-deps`"
)

SERVING_LOGIN = "shipyard_test_serving"
SERVING_PASSWORD = "serving-login-password"
OWNER_PASSWORD = "owner-through-pgbouncer"
# A login that may bypass row-level security (as a careless operator might hand out).
BYPASS_LOGIN = "shipyard_test_bypass"
# A login that was never made a member of the application role.
STRANGER_LOGIN = "shipyard_test_stranger"
CLI_TIMEOUT_SECONDS = 60


@pytest.fixture(scope="session")
def pgbouncer(postgres: PostgresForTests, session_root: Path) -> Iterator[PgBouncer]:
    """PgBouncer in transaction mode in front of the test PostgreSQL, for the whole session."""
    bouncer = PgBouncer(
        session_root / "pgbouncer",
        postgres_url=postgres.admin_url,
        users=[
            ("postgres", OWNER_PASSWORD),
            (SERVING_LOGIN, SERVING_PASSWORD),
            (BYPASS_LOGIN, SERVING_PASSWORD),
            (STRANGER_LOGIN, SERVING_PASSWORD),
        ],
    )
    bouncer.start()
    try:
        yield bouncer
    finally:
        bouncer.stop()


@pytest.fixture
def serving_login(database_url: str) -> str:
    """The non-owner serving login, allowed to connect to this test's database."""
    ensure_serving_login(database_url, SERVING_LOGIN)
    return SERVING_LOGIN


def _settings(settings: Settings, **changes: Any) -> Settings:
    # Two tenants sign up here; no worker runs, so readiness does not wait for one.
    return settings.model_copy(
        update={"signup": "open", "readiness_worker_max_age_seconds": 0.0, **changes}
    )


@pytest.fixture
async def pooled_db(
    pgbouncer: PgBouncer, database_url: str, serving_login: str, settings: Settings
) -> AsyncIterator[Database]:
    """Both logins through PgBouncer: the serving login for tenants, the owner for system work."""
    name = database_name(database_url)
    database = Database(
        pgbouncer.url(user=serving_login, database=name),
        system_url=pgbouncer.url(user="postgres", database=name),
        keyring=load_keyring(settings),
        pool_size=3,
        prepared_statements=False,
    )
    yield database
    await database.dispose()


@pytest.fixture
async def pooled_runtime(pooled_db: Database, settings: Settings) -> AsyncIterator[Runtime]:
    built = build_runtime(_settings(settings), db=pooled_db)
    yield built
    await close_runtime(built)


@pytest.fixture
async def pooled_client(pooled_runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(runtime=pooled_runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


async def _add_host(client: httpx.AsyncClient, account: Account, name: str) -> str:
    created = await client.post(
        "/api/v1/hosts",
        headers=account.headers,
        json={"name": name, "ip": "192.0.2.10", "user": "deploy"},
    )
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def test_pgbouncer_refuses_the_old_startup_role(pgbouncer: PgBouncer, database_url: str) -> None:
    """Why the role is no longer set at connect: transaction pooling refuses `options`."""
    url = pgbouncer.url(user="postgres", database=database_name(database_url))
    with pytest.raises(psycopg.OperationalError, match="unsupported startup parameter: options"):
        psycopg.connect(url, options=f"-c role={APP_ROLE}").close()


async def test_api_behind_pgbouncer_keeps_tenants_apart(
    pooled_client: httpx.AsyncClient, pooled_db: Database
) -> None:
    acme = await signup(pooled_client, tenant_name="Acme")
    globex = await signup(pooled_client, tenant_name="Globex")
    acme_hosts = [await _add_host(pooled_client, acme, f"web-{n}") for n in range(3)]

    # Enough requests that psycopg would have prepared its statements (it does after five).
    for _ in range(8):
        mine = await pooled_client.get("/api/v1/hosts", headers=acme.headers)
        assert mine.status_code == 200, mine.text
        assert {host["id"] for host in mine.json()["items"]} == set(acme_hosts)
        theirs = await pooled_client.get("/api/v1/hosts", headers=globex.headers)
        assert theirs.status_code == 200, theirs.text
        assert theirs.json()["items"] == []
    for host_id in acme_hosts:
        peek = await pooled_client.get(f"/api/v1/hosts/{host_id}", headers=globex.headers)
        assert peek.status_code == 404, peek.text
        edit = await pooled_client.patch(
            f"/api/v1/hosts/{host_id}", headers=globex.headers, json={"description": "mine now"}
        )
        assert edit.status_code == 404, edit.text

    ready = await pooled_client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["row_level_security"] == {"status": "enforced", "separate_login": True}

    # Tenant transactions ran as the application role, system work as the owner: through
    # PgBouncer, where a role set at connect time would have been refused.
    async with pooled_db.session(tenant_id=UUID(acme.tenant_id)) as session:
        assert await session.scalar(text("SELECT current_user")) == APP_ROLE
    async with pooled_db.session(system=True) as session:
        assert await session.scalar(text("SELECT current_user")) == "postgres"


async def test_set_role_none_does_not_leave_row_level_security(
    pooled_client: httpx.AsyncClient, pooled_db: Database, serving_login: str
) -> None:
    acme = await signup(pooled_client, tenant_name="Acme")
    globex = await signup(pooled_client, tenant_name="Globex")
    await _add_host(pooled_client, acme, "acme-web")
    await _add_host(pooled_client, globex, "globex-web")

    # What an injected statement would try: drop the application role mid-transaction.
    async with pooled_db.session(tenant_id=UUID(acme.tenant_id)) as session:
        await session.execute(text("SET ROLE NONE"))
        assert await session.scalar(text("SELECT current_user")) == serving_login
        names = (await session.scalars(text("SELECT name FROM hosts"))).all()
        assert names == ["acme-web"]
        assert await session.scalar(text("SELECT count(*) FROM tenants")) == 1
        # Throttle rows are for system work only: no policy lets a tenant login read them.
        assert await session.scalar(text("SELECT count(*) FROM login_failures")) == 0
    async with pooled_db.session(tenant_id=NO_TENANT) as session:
        await session.execute(text("RESET ROLE"))
        assert await session.scalar(text("SELECT count(*) FROM hosts")) == 0
        assert await session.scalar(text("SELECT count(*) FROM api_tokens")) == 0

    # Nor does the role leak into the next transaction on the pooled connection.
    async with pooled_db.session(tenant_id=UUID(globex.tenant_id)) as session:
        assert await session.scalar(text("SELECT current_user")) == APP_ROLE
        assert (await session.scalars(text("SELECT name FROM hosts"))).all() == ["globex-web"]


async def test_one_owner_login_serves_with_a_warning(db: Database) -> None:
    """The owner serving alone still switches role per transaction, but could switch back."""
    async with db.session(tenant_id=NO_TENANT) as session:
        assert await session.scalar(text("SELECT current_user")) == APP_ROLE
        await session.execute(text("SET ROLE NONE"))
        assert await session.scalar(text("SELECT current_user")) == "postgres"
    status = await check_row_level_security(db)
    assert status.enforced and not status.separate_logins
    assert len(status.warnings) == 1
    assert "SET ROLE NONE" in status.warnings[0]
    assert "SHIPYARD_DATABASE_APP_URL" in status.warnings[0]


def _make_login(database_url: str, login: str, attributes: str, *, member: bool) -> None:
    with psycopg.connect(to_libpq_url(database_url), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (login,)).fetchone()
        conn.execute(f'{"ALTER" if exists else "CREATE"} ROLE "{login}" LOGIN {attributes}')
        if member:
            conn.execute(f'GRANT "{APP_ROLE}" TO "{login}"')
        else:
            conn.execute(f'REVOKE "{APP_ROLE}" FROM "{login}"')


@pytest.mark.parametrize(
    ("login", "attributes", "member", "expected"),
    [
        ("postgres", "", True, "which can SET ROLE to postgres"),
        (BYPASS_LOGIN, "BYPASSRLS", True, f"which can SET ROLE to {BYPASS_LOGIN}"),
        (STRANGER_LOGIN, "NOBYPASSRLS", False, f"GRANT {APP_ROLE} TO {STRANGER_LOGIN}"),
    ],
)
async def test_readyz_and_start_up_refuse_a_serving_login_that_escapes(
    pgbouncer: PgBouncer,
    database_url: str,
    settings: Settings,
    login: str,
    attributes: str,
    member: bool,
    expected: str,
) -> None:
    if login != "postgres":
        _make_login(database_url, login, attributes, member=member)
    name = database_name(database_url)
    serving_url = pgbouncer.url(user=login, database=name)
    database = Database(
        serving_url,
        system_url=database_url,
        keyring=load_keyring(settings),
        pool_size=2,
        prepared_statements=False,
    )
    runtime = build_runtime(_settings(settings), db=database)
    try:
        transport = httpx.ASGITransport(app=create_app(runtime=runtime))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            ready = await http.get("/readyz")
        assert ready.status_code == 503, ready.text
        body = ready.json()
        assert body["row_level_security"]["status"] == "not enforced"
        assert expected in body["reason"]
    finally:
        await close_runtime(runtime)
        await database.dispose()

    with pytest.raises(RowLevelSecurityNotEnforced, match="refusing to serve") as refused:
        async with open_runtime(
            _settings(settings, database_prepared_statements=False),
            database_url=serving_url,
            system_database_url=database_url,
            verify_row_level_security=True,
        ):
            pytest.fail("the runtime opened although requests could leave row-level security")
    assert expected in str(refused.value)


def test_worker_command_refuses_an_owner_serving_login(
    pgbouncer: PgBouncer, database_url: str, session_root: Path
) -> None:
    """The operator's view: `shipyard worker` exits non-zero and says what to change."""
    env = {
        **os.environ,
        "SHIPYARD_DATABASE_URL": database_url,
        "SHIPYARD_DATABASE_APP_URL": pgbouncer.url(
            user="postgres", database=database_name(database_url)
        ),
        "SHIPYARD_DATABASE_PREPARED_STATEMENTS": "false",
        "SHIPYARD_DATA_DIR": str(session_root / "data"),
    }
    result = subprocess.run(
        [sys.executable, "-m", "shipyard", "worker", "--concurrency", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_SECONDS,
        check=False,
    )
    assert result.returncode != 0
    message = " ".join(result.stderr.split())
    assert "refusing to serve" in message, result.stderr
    assert "SHIPYARD_DATABASE_APP_URL logs in as postgres" in message
    # The password of the serving URL is never printed.
    assert OWNER_PASSWORD not in result.stderr + result.stdout


async def test_embedded_database_serves_through_a_non_owner_login(
    session_root: Path, settings: Settings
) -> None:
    embedded = EmbeddedPostgres(settings.model_copy(update={"data_dir": session_root / "emb"}))
    urls = embedded.start()
    try:
        assert urls.app is not None
        assert urlsplit(urls.app).username == EMBEDDED_LOGIN
        upgrade(urls.owner)
        with psycopg.connect(to_libpq_url(urls.app)) as conn:
            conn.execute("SET ROLE NONE")
            row = conn.execute(
                "SELECT current_user, rolsuper, rolbypassrls, "
                "pg_has_role(current_user, (SELECT relowner FROM pg_class "
                "WHERE oid = 'tenants'::regclass), 'USAGE') "
                "FROM pg_roles WHERE rolname = current_user"
            ).fetchone()
            assert row == (EMBEDDED_LOGIN, False, False, False)
        database = Database(urls.serving, system_url=urls.owner, keyring=load_keyring(settings))
        try:
            status = await check_row_level_security(database)
        finally:
            await database.dispose()
        assert status.enforced, status.problems
        assert status.separate_logins and status.warnings == []
        # Starting again finds the login in place (and repairs it if someone changed it).
        embedded.stop()
        assert embedded.start() == urls
    finally:
        embedded.stop()


def test_app_url_needs_the_owner_url() -> None:
    with pytest.raises(ValueError, match="SHIPYARD_DATABASE_APP_URL needs SHIPYARD_DATABASE_URL"):
        Settings(database_app_url="postgresql://serving@127.0.0.1/shipyard")


async def test_services_filter_by_tenant_where_rls_does_not_bind(
    db: Database, settings: Settings
) -> None:
    """Two locks: with RLS out of the way (the owner, as a stray SET ROLE NONE would leave a
    one-login install), deployments and members still answer each tenant with its own rows."""
    runtime = build_runtime(_settings(settings), db=db)
    try:
        transport = httpx.ASGITransport(app=create_app(runtime=runtime))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            acme = await signup(http, tenant_name="Acme")
            globex = await signup(http, tenant_name="Globex")
    finally:
        await close_runtime(runtime)
    deployment_ids: dict[str, UUID] = {}
    async with db.session(system=True) as session:
        for account, name in ((acme, "acme-deploy"), (globex, "globex-deploy")):
            deployment_ids[name] = await session.scalar(
                text("INSERT INTO deployments (name, tenant_id) VALUES (:n, :t) RETURNING id"),
                {"n": name, "t": account.tenant_id},
            )

    async with db.sessionmaker() as session:
        set_scope(session, Scope(tenant_id=UUID(acme.tenant_id), user_id=UUID(acme.user_id)))
        async with session.begin():
            await session.execute(text("SET LOCAL ROLE NONE"))
            # Row-level security no longer hides anything from this transaction...
            assert await session.scalar(text("SELECT count(*) FROM deployments")) == 2
            # ...but the services' own tenant filters still do.
            listed, _ = await deployments_service.list_deployments(
                session=session, limit=50, cursor=None
            )
            assert [deployment.name for deployment in listed] == ["acme-deploy"]
            with pytest.raises(NotFound):
                await deployments_service.get_deployment(
                    session=session, deployment_id=deployment_ids["globex-deploy"]
                )
            mine = await deployments_service.get_deployment(
                session=session, deployment_id=deployment_ids["acme-deploy"]
            )
            assert mine.name == "acme-deploy"
            members = await accounts_service.list_members(session=session)
            assert [member.email for member in members] == [acme.email]
            with pytest.raises(NotFound):
                await accounts_service.get_member(session=session, member_id=UUID(globex.user_id))


@pytest.mark.parametrize(
    ("breakage", "expected"),
    [
        (
            f"ALTER TABLE tenants OWNER TO {APP_ROLE}",
            f"requests run as the database role {APP_ROLE}",
        ),
        ("ALTER TABLE hosts DISABLE ROW LEVEL SECURITY", "not enabled on the tenant tables hosts"),
        ("ALTER DATABASE {database} SET row_security = off", "row_security is off"),
    ],
)
async def test_readyz_refuses_when_the_application_role_escapes_rls(
    database_url: str, settings: Settings, breakage: str, expected: str
) -> None:
    """A careless operator's changes to one database: each is named in /readyz and at start-up."""
    with psycopg.connect(to_libpq_url(database_url), autocommit=True) as conn:
        conn.execute(breakage.format(database=f'"{database_name(database_url)}"'))
    database = Database(database_url, keyring=load_keyring(settings), pool_size=2)
    runtime = build_runtime(_settings(settings), db=database)
    try:
        transport = httpx.ASGITransport(app=create_app(runtime=runtime))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            ready = await http.get("/readyz")
        assert ready.status_code == 503, ready.text
        assert expected in ready.json()["reason"]
    finally:
        await close_runtime(runtime)
        await database.dispose()
    with pytest.raises(RowLevelSecurityNotEnforced, match=expected):
        async with open_runtime(
            settings, database_url=database_url, verify_row_level_security=True
        ):
            pytest.fail("the runtime opened although row-level security does not bind requests")
