"""``shipyard deploy`` and ``shipyard logs retention`` with ``-o json`` against a live server:
every command's output parsed (the API's field names), hosts/repositories/scripts by name, the
exit codes of a followed run, and a dropped log stream that resumes from Last-Event-ID."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from shipyard.client import exits
from shipyard.config import Settings
from shipyard.db import Database
from tests.fixtures.deployments import HostsFactory, ScriptRepoFactory, WorkerControl
from tests.integration.deployments.conftest import SCRIPTS
from tests.support.api import Account
from tests.support.cli_process import (
    run_shipyard_json,
    run_shipyard_ndjson,
    run_shipyard_yaml_stream,
)
from tests.support.live_server import serve


@pytest.fixture
async def base_url(db: Database, settings: Settings) -> AsyncIterator[str]:
    async with serve(db, settings) as url:
        yield url


def split_stream(events: list[Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """A followed run's NDJSON: its log lines, and the summary that ends it."""
    assert events, "no output"
    *lines, summary = events
    assert set(summary) == {"deployment", "results"}, summary
    assert all("seq" in line and "message" in line for line in lines), lines
    return lines, summary


async def test_deploy_commands_in_json_by_name_with_exit_codes(
    client: httpx.AsyncClient,
    admin: Account,
    script_repo: ScriptRepoFactory,
    deploy_hosts: HostsFactory,
    worker: WorkerControl,
    base_url: str,
) -> None:
    repo = await script_repo(admin, SCRIPTS)
    repository = (await client.get(f"/api/v1/repositories/{repo.id}", headers=admin.headers)).json()
    (good,) = await deploy_hosts(admin, 1)
    (bad,) = await deploy_hosts(admin, 1, name="bad-json-" + uuid.uuid4().hex[:6])
    twin = "twin-" + uuid.uuid4().hex[:6]
    twins = [
        *await deploy_hosts(admin, 1, name=twin),
        *await deploy_hosts(admin, 1, name=twin.upper()),
    ]
    token = admin.token

    async def json_of(*args: str) -> tuple[int, Any, str]:
        return await run_shipyard_json(base_url, token, *args, label="deploy-json")

    async def stream_of(*args: str) -> tuple[int, list[Any], str]:
        return await run_shipyard_ndjson(base_url, token, *args, label="deploy-json")

    # Names: a repository by its name, scripts by path, hosts by name.
    by_name = ("--repository", repository["name"], "--host", good["name"])

    # No worker yet: a run that waits, cancelled before it starts -> 4.
    code, created, err = await json_of(
        "deploy", "create", "--name", "json cancelled", *by_name, "--script", "deploy.sh"
    )
    assert code == 0, err
    assert created["status"] == "pending" and created["host_ids"] == [good["id"]]
    assert created["repository_id"] == repo.id
    assert created["script_ids"] == [repo.scripts["deploy.sh"]]
    code, cancelled, err = await json_of("deploy", "cancel", created["id"])
    assert code == 0, err
    assert cancelled["id"] == created["id"] and cancelled["status"] == "cancelled"
    code, events, err = await stream_of("deploy", "watch", created["id"])
    assert code == exits.CANCELLED == 4, err
    _, summary = split_stream(events)
    assert summary["deployment"]["status"] == "cancelled"

    worker.start()
    code, events, err = await stream_of(
        "deploy", "create", "--name", "json ok", *by_name,
        "--script", "deploy.sh:one,two", "--env", "REGION=north", "--wait",
    )  # fmt: skip
    assert code == exits.SUCCESS == 0, err
    assert "created deployment" in err  # the remark for people goes to stderr
    lines, summary = split_stream(events)
    succeeded = summary["deployment"]
    assert succeeded["status"] == "success" and succeeded["name"] == "json ok"
    assert summary["results"]["progress"]["text"].startswith("1/1 hosts done")
    messages = [line["message"] for line in lines]
    assert f"hello from {good['name']} args=one two" in messages
    assert "region=north" in messages
    seqs = [line["seq"] for line in lines]
    assert seqs == sorted(set(seqs))
    assert {line["deployment_id"] for line in lines} == {succeeded["id"]}
    assert {line["stream"] for line in lines} >= {"stdout", "stderr"}

    code, events, err = await stream_of(
        "deploy", "create", "--name", "json failed", "--repository", repo.id,
        "--script", "check.sh", "--host", bad["name"], "--wait",
    )  # fmt: skip
    assert code == exits.ERROR == 1, err
    assert split_stream(events)[1]["deployment"]["status"] == "failed"

    code, events, err = await stream_of(
        "deploy", "create", "--name", "json partial", "--repository", repo.id,
        "--script", "check.sh", "--host", good["name"], "--host", bad["id"], "--wait",
    )  # fmt: skip
    assert code == exits.PARTIAL == 3, err
    lines, summary = split_stream(events)
    partial = summary["deployment"]
    assert partial["status"] == "partial"
    assert f"check failed on {bad['name']}" in [line["message"] for line in lines]
    cells = {row["name"]: row["cells"][0]["status"] for row in summary["results"]["hosts"]}
    assert cells == {good["name"]: "success", bad["name"]: "failed"}

    # watch again: the stored lines, the same outcome; --failed narrows to the failed lines.
    code, events, err = await stream_of("deploy", "watch", partial["id"], "--failed")
    assert code == 3, err
    failed_lines, _ = split_stream(events)
    assert [line["message"] for line in failed_lines if line.get("stream") == "stdout"] == [
        f"check failed on {bad['name']}"
    ]

    code, listed, err = await json_of("deploy", "list", "--host", bad["name"])
    assert code == 0, err
    assert [item["name"] for item in listed] == ["json partial", "json failed"]
    code, listed, err = await json_of("deploy", "list", "--status", "success", "--limit", "5")
    assert code == 0 and [item["id"] for item in listed] == [succeeded["id"]], err

    code, shown, err = await json_of("deploy", "show", partial["id"])
    assert code == 0, err
    assert shown["deployment"]["id"] == partial["id"]
    assert [s["path"] for s in shown["results"]["scripts"]] == ["check.sh"]

    code, stored, err = await stream_of("deploy", "logs", partial["id"], "--host", bad["name"])
    assert code == 0, err
    assert f"check failed on {bad['name']}" in [line["message"] for line in stored]
    assert {line.get("host") for line in stored if line.get("stream")} == {bad["name"]}
    # -o yaml on a stream: one YAML document per line, the same fields as the JSON lines.
    code, documents, err = await run_shipyard_yaml_stream(
        base_url, token, "deploy", "logs", partial["id"], "--host", bad["name"], label="deploy-yaml"
    )
    assert code == 0, err
    assert documents == stored

    code, rerun, err = await json_of("deploy", "rerun", succeeded["id"])
    assert code == 0, err
    assert rerun["id"] != succeeded["id"] and rerun["name"] == "json ok"
    code, events, err = await stream_of("deploy", "rerun", partial["id"], "--wait")
    assert code == 3, err
    assert split_stream(events)[1]["deployment"]["id"] not in (partial["id"], rerun["id"])

    # A name that matches two hosts (case aside): a usage error naming both ids; none: an error.
    code, output, err = await json_of(
        "deploy", "create", "--name", "x", *by_name[:2], "--script", "deploy.sh",
        "--host", twin.capitalize(),
    )  # fmt: skip
    assert code == exits.USAGE == 2 and output is None, err
    assert all(host["id"] in err for host in twins) and len(err.strip().splitlines()) == 1
    code, output, err = await json_of(
        "deploy", "create", "--name", "x", *by_name, "--script", "no/such.sh"
    )
    assert code == 1 and output is None and "no script 'no/such.sh'" in err, err
    code, output, err = await json_of("deploy", "list", "--host", "no-such-host")
    assert code == 1 and "no host named 'no-such-host'" in err, err


async def test_logs_retention_in_json(admin: Account, base_url: str) -> None:
    code, policy, err = await run_shipyard_json(
        base_url, admin.token, "logs", "retention", "show", label="retention-json"
    )
    assert code == 0, err
    assert (policy["days"], policy["lines"]) == (None, None) and "rows" in policy["size"]
    code, policy, err = await run_shipyard_json(
        base_url, admin.token, "logs", "retention", "set", "--days", "30", label="retention-json"
    )
    assert code == 0, err
    assert (policy["days"], policy["lines"]) == (30, None)


# A dropped stream ---------------------------------------------------------------------------


@dataclass
class CuttingProxy:
    """A TCP proxy to the live server that cuts the client's connection once, after it has
    forwarded ``cut_after`` log events of a stream (in the middle of the next chunk), then answers
    the first request to resume with a 502, as a proxy before a restarting server would."""

    upstream_port: int
    cut_after: int
    port: int = 0
    forwarded_events: int = 0
    cut: bool = False
    refused: bool = False
    requests: list[bytes] = field(default_factory=list)

    async def _upstream(
        self,
        client_r: asyncio.StreamReader,
        client_w: asyncio.StreamWriter,
        server_w: asyncio.StreamWriter,
    ) -> None:
        with contextlib.suppress(ConnectionError):
            while chunk := await client_r.read(4096):
                self.requests.append(chunk)
                if self.cut and not self.refused and b"/logs/stream" in chunk:
                    self.refused = True
                    body = b'{"error": {"code": "bad_gateway", "message": "restarting"}}'
                    client_w.write(
                        b"HTTP/1.1 502 Bad Gateway\r\ncontent-type: application/json\r\n"
                        b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body)
                    )
                    await client_w.drain()
                    client_w.close()
                    break
                server_w.write(chunk)
                await server_w.drain()
        server_w.close()

    async def _downstream(
        self, server_r: asyncio.StreamReader, client_w: asyncio.StreamWriter
    ) -> None:
        with contextlib.suppress(ConnectionError):
            while chunk := await server_r.read(4096):
                if not self.cut and b"event: log" in chunk:
                    self.forwarded_events += chunk.count(b"event: log")
                    if self.forwarded_events >= self.cut_after:
                        self.cut = True
                        # Half of this chunk: the last event arrives cut in two.
                        client_w.write(chunk[: len(chunk) // 2])
                        await client_w.drain()
                        client_w.transport.abort()
                        return
                client_w.write(chunk)
                await client_w.drain()
        client_w.close()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        up = asyncio.create_task(self._upstream(client_r, client_w, server_w))
        await self._downstream(server_r, client_w)
        server_w.close()
        up.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await up

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[str]:
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        try:
            yield f"http://127.0.0.1:{self.port}"
        finally:
            server.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(server.wait_closed(), timeout=5)


async def test_watch_resumes_a_dropped_stream_without_losing_or_repeating_lines(
    client: httpx.AsyncClient,
    admin: Account,
    script_repo: ScriptRepoFactory,
    deploy_hosts: HostsFactory,
    worker: WorkerControl,
    base_url: str,
) -> None:
    repo = await script_repo(admin, SCRIPTS)
    hosts = await deploy_hosts(admin, 1)
    worker.start()
    created = await client.post(
        "/api/v1/deployments",
        headers=admin.headers,
        json={
            "name": "chatty",
            "repository_id": repo.id,
            "scripts": [{"script_id": repo.scripts["chatty.py"], "arguments": ["3000"]}],
            "host_ids": [hosts[0]["id"]],
        },
    )
    assert created.status_code == 201, created.text
    deployment_id = created.json()["id"]

    proxy = CuttingProxy(upstream_port=httpx.URL(base_url).port or 80, cut_after=300)
    async with proxy.running() as proxied:
        code, events, err = await run_shipyard_ndjson(
            proxied, admin.token, "deploy", "watch", deployment_id, label="deploy-resume"
        )
    assert proxy.cut, "the proxy never cut the stream"
    assert code == 0, err
    lines, summary = split_stream(events)
    assert summary["deployment"]["status"] == "success"
    assert proxy.refused, "the stream was never opened again"
    # The first stream, the one refused with a 502, the one that resumed after the last line.
    streams = [r for r in proxy.requests if b"/logs/stream" in r]
    assert len(streams) == 3, streams
    assert b"last-event-id: " not in streams[0].lower()
    assert b"last-event-id: " in streams[1].lower() and b"last-event-id: " in streams[2].lower()

    seqs = [line["seq"] for line in lines]
    assert len(seqs) == len(set(seqs)) and seqs == sorted(seqs)
    printed = [line["message"][:11] for line in lines if line["message"].startswith("line ")]
    assert printed == [f"line {i:06d}" for i in range(3000)]
    # Every stored line, each once: the same sequence numbers as the API's log.
    stored: list[int] = []
    cursor: str | None = None
    while True:
        page = await client.get(
            f"/api/v1/deployments/{deployment_id}/logs",
            headers=admin.headers,
            params={"limit": 5000, **({"cursor": cursor} if cursor else {})},
        )
        assert page.status_code == 200, page.text
        stored.extend(item["seq"] for item in page.json()["items"])
        cursor = page.json()["next_cursor"]
        if not cursor:
            break
    assert seqs == stored
