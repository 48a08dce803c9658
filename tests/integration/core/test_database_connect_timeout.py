"""A database server that takes the connection and never answers: Shipyard fails fast."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
from pydantic import SecretStr
from sqlalchemy import text

from shipyard.config import Settings
from shipyard.crypto import Keyring, generate_key
from shipyard.db import Database, resolve_database_urls

TIMEOUT = 2


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port whose kernel completes TCP handshakes, where nothing ever answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield int(listener.getsockname()[1])


def external(settings: Settings, url: str) -> Settings:
    return settings.model_copy(
        update={"database_url": SecretStr(url), "database_connect_timeout_seconds": TIMEOUT}
    )


async def test_a_database_that_never_answers_fails_within_the_connect_timeout(
    settings: Settings, silent_port: int
) -> None:
    configured = external(settings, f"postgresql://shipyard@127.0.0.1:{silent_port}/shipyard")
    urls, embedded = resolve_database_urls(configured)
    assert embedded is None
    db = Database(urls.owner, keyring=Keyring([generate_key()]))
    try:
        # A request's transaction, then the worker's claims connection (its own psycopg
        # connection): each gives up after the time-out instead of waiting on TCP.
        for attempt in ("session", "claims"):
            started = time.monotonic()
            with pytest.raises(Exception) as caught:
                async with asyncio.timeout(20):
                    if attempt == "session":
                        async with db.session(system=True) as session:
                            await session.execute(text("SELECT 1"))
                    else:
                        await db.claims.fetch("SELECT 1", {})
            waited = time.monotonic() - started
            assert not isinstance(caught.value, TimeoutError), f"{attempt}: still waiting at 20 s"
            assert "timeout" in str(caught.value).lower(), caught.value
            assert TIMEOUT - 0.5 < waited < TIMEOUT + 4, (attempt, waited)
    finally:
        await db.dispose()


def test_a_connect_timeout_named_in_the_url_is_kept(settings: Settings) -> None:
    configured = external(
        settings, "postgresql://shipyard@db.example.com/shipyard?connect_timeout=30"
    )
    urls, _ = resolve_database_urls(configured)
    assert parse_qs(urlsplit(urls.owner).query)["connect_timeout"] == ["30"]
    configured = external(settings, "postgresql://shipyard@db.example.com/shipyard?sslmode=require")
    urls, _ = resolve_database_urls(configured)
    query = parse_qs(urlsplit(urls.owner).query)
    assert query == {"sslmode": ["require"], "connect_timeout": [str(TIMEOUT)]}
