"""Audit streams: a local syslog listener (UDP and TCP) and a local webhook receiver."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from shipyard.audit.streaming import send_all
from shipyard.config import Settings
from shipyard.runtime import Runtime
from tests.fakes.common_http import ThreadedApp
from tests.support import canary
from tests.support.api import Account

RFC5424 = re.compile(
    rb"^<(\d{1,3})>1 (\S+) (\S+) (\S+) (\S+) (\S+) (\[shipyard@32473 [^\]]*\]) \xef\xbb\xbf(.*)$",
    re.S,
)


async def _hosts(client: httpx.AsyncClient, admin: Account, names: list[str]) -> None:
    for name in names:
        created = await client.post(
            "/api/v1/hosts",
            headers=admin.headers,
            json={
                "name": name,
                "ip": "127.0.0.1",
                "user": "deploy",
                "password": canary.remember("stream-host-password", "host password"),
            },
        )
        assert created.status_code == 201, created.text


def _parse(message: bytes) -> dict[str, Any]:
    match = RFC5424.match(message)
    assert match, message[:200]
    pri, _, _, app, _, msgid, data, body = match.groups()
    document: dict[str, Any] = json.loads(body)
    assert int(pri) // 8 == 13
    assert app == b"shipyard-test"
    assert msgid.decode() == document["action"]
    assert f'action="{document["action"]}"'.encode() in data
    assert f'outcome="{document["outcome"]}"'.encode() in data
    return document


def _runtime(runtime: Runtime, settings: Settings) -> Runtime:
    # Entries are sent once every transaction that could write them has closed: no wait here.
    runtime.settings = settings.model_copy(update={"audit_stream_settle_seconds": 0.0})
    return runtime


async def test_udp_and_tcp_syslog_receive_the_entries_in_order(
    client: httpx.AsyncClient, admin: Account, runtime: Runtime, settings: Settings
) -> None:
    runtime = _runtime(runtime, settings)
    datagrams: list[bytes] = []

    class Listener(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: Any) -> None:
            datagrams.append(data)

    loop = asyncio.get_running_loop()
    udp, _ = await loop.create_datagram_endpoint(Listener, local_addr=("127.0.0.1", 0))
    udp_port = udp.get_extra_info("sockname")[1]
    frames: list[bytes] = []

    async def on_tcp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                length = await reader.readuntil(b" ")
            except asyncio.IncompleteReadError:
                break
            frames.append(await reader.readexactly(int(length[:-1])))
        writer.close()

    tcp = await asyncio.start_server(on_tcp, "127.0.0.1", 0)
    tcp_port = tcp.sockets[0].getsockname()[1]
    try:
        for protocol, port in (("udp", udp_port), ("tcp", tcp_port)):
            created = await client.post(
                "/api/v1/audit/streams",
                headers=admin.headers,
                json={
                    "name": f"syslog-{protocol}",
                    "type": "syslog",
                    "config": {
                        "host": "127.0.0.1",
                        "port": port,
                        "protocol": protocol,
                        "app_name": "shipyard-test",
                    },
                },
            )
            assert created.status_code == 201, created.text
            assert created.json()["secret"] is None
        await _hosts(client, admin, ["one", "two", "three"])
        await send_all(runtime)
        await asyncio.sleep(0.3)
        for received in (datagrams, frames):
            documents = [_parse(message) for message in received]
            hosts = [doc for doc in documents if doc["action"] == "host.create"]
            assert [doc["changes"]["name"]["after"] for doc in hosts] == ["one", "two", "three"]
            assert [doc["at"] for doc in documents] == sorted(doc["at"] for doc in documents)
        # Nothing new: nothing sent again.
        count = len(frames)
        await send_all(runtime)
        assert len(frames) == count
        streams = (await client.get("/api/v1/audit/streams", headers=admin.headers)).json()
        assert all(stream["last_error"] is None for stream in streams)
    finally:
        udp.close()
        tcp.close()
        await tcp.wait_closed()


async def test_webhook_is_signed_and_resumes_without_loss(
    client: httpx.AsyncClient, admin: Account, runtime: Runtime, settings: Settings
) -> None:
    runtime = _runtime(runtime, settings)
    received: list[dict[str, Any]] = []
    state: dict[str, Any] = {"up": False, "secret": ""}

    async def receive(request: Request) -> Response:
        if not state["up"]:
            return Response(status_code=503)
        body = await request.body()
        expected = hmac.new(str(state["secret"]).encode(), body, hashlib.sha256).hexdigest()
        if request.headers.get("X-Shipyard-Signature") != f"sha256={expected}":
            return Response(status_code=401)
        received.extend(json.loads(body)["entries"])
        return Response(status_code=204)

    server = ThreadedApp(Starlette(routes=[Route("/audit", receive, methods=["POST"])])).start()
    port = server.port
    try:
        created = await client.post(
            "/api/v1/audit/streams",
            headers=admin.headers,
            json={
                "name": "siem",
                "type": "webhook",
                "config": {"url": f"http://127.0.0.1:{port}/audit"},
            },
        )
        assert created.status_code == 201, created.text
        state["secret"] = canary.remember(created.json()["secret"], "audit stream secret")
        stream_id = created.json()["id"]
        shown = await client.get(f"/api/v1/audit/streams/{stream_id}", headers=admin.headers)
        assert "secret" not in shown.json() and shown.json()["has_secret"] is True

        await _hosts(client, admin, ["one", "two"])
        await send_all(runtime)  # the receiver is down
        failed = await client.get(f"/api/v1/audit/streams/{stream_id}", headers=admin.headers)
        assert "503" in failed.json()["last_error"]
        assert received == []

        await _hosts(client, admin, ["three"])
        state["up"] = True
        await send_all(runtime)
        hosts = [entry for entry in received if entry["action"] == "host.create"]
        assert [entry["changes"]["name"]["after"] for entry in hosts] == ["one", "two", "three"]
        assert len({entry["id"] for entry in received}) == len(received)
        healed = await client.get(f"/api/v1/audit/streams/{stream_id}", headers=admin.headers)
        assert healed.json()["last_error"] is None
    finally:
        server.stop()


async def test_stream_addresses_obey_the_outbound_policy(
    client: httpx.AsyncClient, admin: Account
) -> None:
    refused = await client.post(
        "/api/v1/audit/streams",
        headers=admin.headers,
        json={"name": "meta", "type": "webhook", "config": {"url": "http://169.254.169.254/x"}},
    )
    assert refused.status_code == 422
    assert refused.json()["error"]["details"]["errors"][0]["field"] == "config.url"
    mismatched = await client.post(
        "/api/v1/audit/streams",
        headers=admin.headers,
        json={"name": "odd", "type": "syslog", "config": {"url": "http://127.0.0.1/"}},
    )
    assert mismatched.status_code == 422
    denied = [
        entry
        for entry in (await client.get("/api/v1/audit", headers=admin.headers)).json()["items"]
        if entry["action"] == "audit_stream.create"
    ]
    assert {entry["outcome"] for entry in denied} == {"failure"}
