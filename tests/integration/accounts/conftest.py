"""Accounts tests: apps built with tuned settings (sign-up mode, throttles, proxies)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from shipyard.accounts.models import AuditEvent
from shipyard.api import create_app
from shipyard.config import Settings
from shipyard.db import Database
from shipyard.runtime import build_runtime, close_runtime

AppClient = Callable[..., contextlib.AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def app_client(db: Database, settings: Settings) -> AppClient:
    """``async with app_client(peer="10.0.0.5", signup=None, ...) as http``: an API client on an
    app whose settings differ from the test defaults, seen as coming from ``peer``."""

    @contextlib.asynccontextmanager
    async def open_client(
        *, peer: str = "127.0.0.1", **overrides: Any
    ) -> AsyncIterator[httpx.AsyncClient]:
        runtime = build_runtime(settings.model_copy(update=overrides), db=db)
        transport = httpx.ASGITransport(app=create_app(runtime=runtime), client=(peer, 40000))
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
                yield http
        finally:
            await close_runtime(runtime)

    return open_client


async def audit_actions(db: Database, action: str) -> list[AuditEvent]:
    async with db.session(system=True) as session:
        rows = await session.scalars(
            select(AuditEvent)
            .where(AuditEvent.action == action, AuditEvent.outcome == "success")
            .order_by(AuditEvent.created_at)
        )
        return list(rows.all())
