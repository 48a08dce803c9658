"""The least a Python server can do for the API benchmark's requests: the raw limit (issue 18).

Not Shipyard: a bare ASGI callable for ``uvicorn benchmarks.api_floor_app:app``. Each request
is one prepared statement on a pooled psycopg connection, which checks the bearer token's hash
and renders the page as JSON in PostgreSQL; the bytes go out as they come. No framework, no
ORM, no row-level security, no validation, no middleware, no access log. ``benchmarks/api.py
--floor`` drives it with the same ``wrk`` and the same data as ``shipyard serve``, so the two
rows are measured in the same run.

The database address comes from ``FLOOR_DATABASE_URL`` (libpq form).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

import psycopg

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

POOL_SIZE = 8
_TENANT = (
    "(SELECT p.tenant_id FROM api_tokens t JOIN profiles p ON p.id = t.profile_id "
    "WHERE t.token_hash = %(hash)s AND t.revoked_at IS NULL)"
)
_NEWEST = "page.created_at DESC, page.id DESC"


def _page(inner: str, order: str) -> str:
    return f"SELECT json_agg(page ORDER BY {order})::text FROM ({inner}) AS page"  # noqa: S608


LIST = _page(
    f"SELECT * FROM deployments WHERE tenant_id = {_TENANT} "  # noqa: S608 (constants)
    "ORDER BY created_at DESC, id DESC LIMIT 51",
    _NEWEST,
)
AFTER = _page(
    f"SELECT * FROM deployments WHERE tenant_id = {_TENANT} "  # noqa: S608 (constants)
    "AND (created_at, id) < (%(c_at)s::timestamptz, %(c_id)s::uuid) "
    "ORDER BY created_at DESC, id DESC LIMIT 51",
    _NEWEST,
)
STATUS = _page(
    f"SELECT * FROM deployments WHERE tenant_id = {_TENANT} AND status = %(status)s "  # noqa: S608
    "ORDER BY created_at DESC, id DESC LIMIT 51",
    _NEWEST,
)
LOGS = _page(
    f"SELECT * FROM deployment_logs WHERE tenant_id = {_TENANT} "  # noqa: S608 (constants)
    "AND deployment_id = %(run)s::uuid AND seq > %(seq)s::bigint ORDER BY seq LIMIT 201",
    "page.seq",
)


class Pool:
    """A fixed set of connections, opened at start-up (each statement is prepared on each)."""

    def __init__(self) -> None:
        self.idle: asyncio.Queue[psycopg.AsyncConnection[Any]] = asyncio.Queue()

    async def open(self, url: str) -> None:
        for _ in range(POOL_SIZE):
            conn = await psycopg.AsyncConnection.connect(url, autocommit=True, prepare_threshold=0)
            self.idle.put_nowait(conn)

    async def fetch_text(self, sql: str, params: dict[str, object]) -> str | None:
        conn = await self.idle.get()
        try:
            cursor = await conn.execute(sql, params, prepare=True)
            row = await cursor.fetchone()
        finally:
            self.idle.put_nowait(conn)
        return None if row is None else row[0]


pool = Pool()


def _decode_cursor(raw: str) -> tuple[str, str]:
    import base64

    padded = raw + "=" * (-len(raw) % 4)
    created_at, row_id = base64.urlsafe_b64decode(padded).decode().split("|", 1)
    return created_at, row_id


async def _answer(send: Send, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await pool.open(os.environ["FLOOR_DATABASE_URL"])
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    token = ""
    for name, value in scope["headers"]:
        if name == b"authorization" and value.startswith(b"Bearer "):
            token = value[7:].decode()
    params: dict[str, object] = {"hash": hashlib.sha256(token.encode()).hexdigest()}
    query = {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}
    path: str = scope["path"]
    if path == "/healthz":
        await _answer(send, 200, b'{"status":"ok"}')
        return
    if path == "/api/v1/deployments":
        if "cursor" in query:
            params["c_at"], params["c_id"] = _decode_cursor(query["cursor"])
            sql = AFTER
        elif "status" in query:
            params["status"] = query["status"]
            sql = STATUS
        else:
            sql = LIST
    elif path.startswith("/api/v1/deployments/") and path.endswith("/logs"):
        params["run"] = path.split("/")[4]
        params["seq"] = int(query.get("cursor", "0"))
        sql = LOGS
    else:
        await _answer(send, 404, b'{"error":"not found"}')
        return
    text = await pool.fetch_text(sql, params)
    await _answer(send, 200, (text or "[]").encode())
