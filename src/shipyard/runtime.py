"""The composition root: every long-lived object of one Shipyard process, built in one place.

``serve`` builds a runtime in the application lifespan, ``worker`` (and the worker inside
``serve``) when it starts, and CLI commands that touch the database around their work. Routes get
its parts through the ``deps.py`` aliases, jobs through the worker's context
(``shipyard.jobs.context_runtime``). Nothing here is created lazily by a request, and nothing
below it reads settings from a global: what a part needs is handed to it from here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httpx

from shipyard.accounts.passwords import Passwords
from shipyard.clock import Clock, SystemClock
from shipyard.config import Settings
from shipyard.crypto import Keyring, load_keyring
from shipyard.db import DEFAULT_POOL_TIMEOUT, Database, require_row_level_security
from shipyard.deployments.stream import LogBroadcaster
from shipyard.git.browse import TTLCache
from shipyard.hosts.executor import Executor
from shipyard.models import configure as configure_models
from shipyard.outbound.client import build_http_client
from shipyard.outbound.policy import OutboundPolicy
from shipyard.webhooks.ratelimit import HookRateLimiter

DEFAULT_POOL_SIZE = 10


@dataclass(eq=False)
class Runtime:
    """The process's shared parts. One per process (tests may build several, one per app)."""

    settings: Settings
    db: Database
    keyring: Keyring
    passwords: Passwords
    # One executor per process: its connection caps and decrypted-key cache hold across every
    # deployment and host test this process runs.
    executor: Executor
    # One pooled HTTP client for every outbound call (provider APIs, CI/CD servers).
    http: httpx.AsyncClient
    # Which addresses outbound connections may reach (HTTP, git, SSH, later webhooks): the one
    # policy ``http`` and ``executor`` obey, for flows that check an address before storing it.
    outbound: OutboundPolicy
    # Short-lived answers of repository browsing, shared by this process's requests.
    browse_cache: TTLCache
    # One LISTEN connection that wakes every live-log stream this process serves.
    broadcaster: LogBroadcaster
    clock: Clock
    # Inbound webhook deliveries per hook, counted in this process before any query.
    webhook_limiter: HookRateLimiter = field(
        default_factory=lambda: HookRateLimiter(per_minute=60, burst=20)
    )


def build_runtime(settings: Settings, *, db: Database, clock: Clock | None = None) -> Runtime:
    """Assemble the parts around an open ``db``; :func:`close_runtime` releases them."""
    # Every model known before the first flush: a worker that touches one table knows them all.
    configure_models()
    outbound = OutboundPolicy.from_settings(settings)
    return Runtime(
        settings=settings,
        db=db,
        keyring=db.keyring,
        passwords=Passwords(
            memory_kib=settings.password_hash_memory_kib,
            max_concurrent=settings.password_hash_concurrency,
        ),
        executor=Executor.from_settings(settings, outbound=outbound),
        http=build_http_client(settings, policy=outbound),
        outbound=outbound,
        browse_cache=TTLCache(settings.git_browse_cache_ttl_seconds),
        broadcaster=LogBroadcaster(db.url),
        clock=clock or SystemClock(),
        webhook_limiter=HookRateLimiter(
            per_minute=settings.webhook_rate_per_minute, burst=settings.webhook_rate_burst
        ),
    )


async def close_runtime(runtime: Runtime) -> None:
    """Stop what the runtime started (not the database: its opener disposes of it)."""
    await runtime.broadcaster.stop()
    await runtime.http.aclose()


@asynccontextmanager
async def open_runtime(
    settings: Settings,
    *,
    database_url: str | None = None,
    system_database_url: str | None = None,
    db: Database | None = None,
    pool_size: int = DEFAULT_POOL_SIZE,
    pool_timeout: float = DEFAULT_POOL_TIMEOUT,
    warm_connections: int = 0,
    verify_row_level_security: bool = False,
) -> AsyncIterator[Runtime]:
    """A runtime for this process; opens the database at ``database_url`` unless given ``db``.

    ``database_url`` is the serving login, ``system_database_url`` the owner's (when they
    differ). ``verify_row_level_security`` (serve, worker) refuses to go on unless tenant
    transactions are bound by row-level security.
    """
    owned: Database | None = None
    if db is None:
        if database_url is None:
            raise ValueError("open_runtime needs a database_url or a db")
        owned = db = Database(
            database_url,
            keyring=load_keyring(settings),
            pool_size=pool_size,
            pool_timeout=pool_timeout,
            system_url=system_database_url,
            prepared_statements=settings.database_prepared_statements,
        )
    try:
        if verify_row_level_security:
            await require_row_level_security(db)
        if owned is not None and warm_connections:
            await db.warm_up(warm_connections)
    except BaseException:
        if owned is not None:
            await owned.dispose()
        raise
    runtime = build_runtime(settings, db=db)
    try:
        yield runtime
    finally:
        await close_runtime(runtime)
        if owned is not None:
            await owned.dispose()
