"""The outbound policy against real parts: loopback listeners stand in for internal services.

With private addresses allowed (the default) a request reaches the listener; with
``outbound_allow_private=false`` the address is refused by the policy, with a 422 naming the
field and the setting, and the listener sees no connection; an allow-list entry lets it through.
Metadata addresses are refused in every spelling whatever the settings say.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest

from shipyard.config import Settings, get_settings
from shipyard.db import Database
from shipyard.errors import HostError
from shipyard.git.clone import checkout_url
from shipyard.git.gitcmd import GitCommandFailed
from shipyard.git.models import GitProvider
from shipyard.hosts.executor import Executor, HostTarget
from shipyard.outbound.errors import OutboundRefused
from shipyard.outbound.policy import OutboundPolicy
from tests.fakes.gitlab import FakeGitLab
from tests.integration.git.helpers import connect
from tests.support.api import Account, error_fields
from tests.support.sshd import free_port

OK_JSON = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"
    b"Connection: close\r\n\r\n{}"
)
METADATA_SPELLINGS = [
    "169.254.169.254",
    "2852039166",
    "0xa9fea9fe",
    "0251.0376.0251.0376",
    "169.254.43518",
    "[::ffff:169.254.169.254]",
    "[::ffff:a9fe:a9fe]",
    "[fe80::1]",
    "[fd00:ec2::254]",
    "100.100.100.200",
    "metadata.google.internal",
    "metadata.goog",
    "METADATA.google.internal.",
    "metadata",
]
STRICT = {"outbound_allow_private": False}
POLICY_SETTING = "SHIPYARD_OUTBOUND_ALLOW_PRIVATE"


class Listener:
    """A loopback TCP service that counts connections and answers each with ``response``."""

    def __init__(self, response: bytes = OK_JSON) -> None:
        self.response = response
        self.connections = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            writer.write(self.response)
            await writer.drain()
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
def settings(test_settings: Settings, request: pytest.FixtureRequest) -> Settings:
    """The session's settings, with the overrides a test passes by indirect parametrisation."""
    overrides: dict[str, Any] = getattr(request, "param", {})
    return get_settings().model_copy(update={"http_timeout": 5.0, **overrides})


@pytest.fixture
async def listener() -> AsyncIterator[Listener]:
    served = Listener()
    await served.start()
    yield served
    await served.stop()


def jenkins(url: str, *, token: str = "jenkins-token-1") -> dict[str, Any]:
    return {
        "type": "jenkins",
        "name": "ci",
        "url": url,
        "config": {"username": "u", "api_token": token},
    }


def refused_by_policy(response: httpx.Response, field: str) -> str:
    assert response.status_code == 422, response.text
    assert error_fields(response) == [field]
    message: str = response.json()["error"]["message"]
    assert "refused by the outbound policy" in message
    return message


# --- policy on and off, with loopback listeners ------------------------------------------------


async def test_private_addresses_are_reached_by_default(
    client: httpx.AsyncClient, admin: Account, listener: Listener
) -> None:
    created = await client.post(
        "/api/v1/cicd-providers", headers=admin.headers, json=jenkins(listener.url)
    )
    assert created.status_code == 201, created.text
    check = await client.post(
        f"/api/v1/cicd-providers/{created.json()['id']}/test", headers=admin.headers
    )
    assert check.status_code == 200
    assert listener.connections >= 1


@pytest.mark.parametrize("settings", [STRICT], indirect=True)
async def test_with_private_refused_the_listener_sees_no_connection(
    client: httpx.AsyncClient, admin: Account, listener: Listener
) -> None:
    for url in (listener.url, f"http://localhost:{listener.port}", f"http://127.1:{listener.port}"):
        response = await client.post(
            "/api/v1/cicd-providers", headers=admin.headers, json=jenkins(url)
        )
        assert POLICY_SETTING in refused_by_policy(response, "url")
    host = await client.post(
        "/api/v1/hosts",
        headers=admin.headers,
        json={
            "name": "db",
            "ip": "127.0.0.1",
            "port": listener.port,
            "user": "u",
            "password": "pw",
        },
    )
    assert POLICY_SETTING in refused_by_policy(host, "ip")
    repository = await client.post(
        "/api/v1/repositories", headers=admin.headers, json={"url": f"{listener.url}/app.git"}
    )
    refused_by_policy(repository, "url")
    provider = await client.post(
        "/api/v1/git-providers",
        headers=admin.headers,
        json={"type": "gitea", "server_url": listener.url, "access_token": "gitea-token"},
    )
    refused_by_policy(provider, "server_url")
    assert listener.connections == 0


@pytest.mark.parametrize(
    "settings", [{**STRICT, "outbound_allow": "10.0.0.0/8, 127.0.0.1/32"}], indirect=True
)
async def test_an_allow_list_entry_lets_an_internal_service_through(
    client: httpx.AsyncClient, admin: Account, listener: Listener
) -> None:
    created = await client.post(
        "/api/v1/cicd-providers", headers=admin.headers, json=jenkins(listener.url)
    )
    assert created.status_code == 201, created.text
    await client.post(f"/api/v1/cicd-providers/{created.json()['id']}/test", headers=admin.headers)
    assert listener.connections >= 1
    # The exception is the listed network only: ::1 is loopback too, and still refused.
    other = await client.post(
        "/api/v1/cicd-providers", headers=admin.headers, json=jenkins("http://[::1]:8080")
    )
    refused_by_policy(other, "url")


@pytest.mark.parametrize("settings", [{**STRICT, "outbound_allow": "localhost"}], indirect=True)
async def test_a_redirect_to_a_refused_address_is_refused(
    client: httpx.AsyncClient, admin: Account, listener: Listener
) -> None:
    # localhost is allowed by name; it redirects to 127.0.0.1, which is not.
    redirector = Listener(
        b"HTTP/1.1 302 Found\r\nLocation: " + listener.url.encode() + b"/api/v1/user\r\n"
        b"Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    await redirector.start()
    try:
        response = await client.post(
            "/api/v1/git-providers",
            headers=admin.headers,
            json={
                "type": "gitea",
                "server_url": f"http://localhost:{redirector.port}",
                "access_token": "gitea-token",
            },
        )
    finally:
        await redirector.stop()
    assert redirector.connections >= 1
    refused_by_policy(response, "server_url")
    assert listener.connections == 0


async def test_a_redirect_to_the_metadata_service_is_refused_by_default(
    client: httpx.AsyncClient, admin: Account
) -> None:
    redirector = Listener(
        b"HTTP/1.1 301 Moved\r\nLocation: http://169.254.169.254/latest/meta-data/\r\n"
        b"Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    await redirector.start()
    try:
        response = await client.post(
            "/api/v1/git-providers",
            headers=admin.headers,
            json={"type": "gitea", "server_url": redirector.url, "access_token": "gitea-token"},
        )
    finally:
        await redirector.stop()
    assert redirector.connections >= 1
    message = refused_by_policy(response, "server_url")
    assert "169.254.169.254" in message and "never allowed" in message


# --- metadata, in every spelling, whatever the settings ----------------------------------------


@pytest.mark.parametrize("host", METADATA_SPELLINGS)
async def test_metadata_addresses_are_always_refused(
    client: httpx.AsyncClient, admin: Account, host: str
) -> None:
    url = f"http://{host}/computeMetadata/v1"
    cicd = await client.post("/api/v1/cicd-providers", headers=admin.headers, json=jenkins(url))
    assert "never allowed" in refused_by_policy(cicd, "url")
    git = await client.post(
        "/api/v1/git-providers",
        headers=admin.headers,
        json={"type": "gitea", "server_url": f"http://{host}", "access_token": "gitea-token"},
    )
    refused_by_policy(git, "server_url")
    repository = await client.post(
        "/api/v1/repositories", headers=admin.headers, json={"url": f"http://{host}/a/b.git"}
    )
    refused_by_policy(repository, "url")


@pytest.mark.parametrize("address", ["169.254.169.254", "2852039166", "::ffff:169.254.169.254"])
async def test_an_ssh_host_at_the_metadata_address_is_a_422_on_ip(
    client: httpx.AsyncClient, admin: Account, address: str
) -> None:
    body = {"name": "meta", "ip": address, "user": "root", "password": "pw"}
    created = await client.post("/api/v1/hosts", headers=admin.headers, json=body)
    refused_by_policy(created, "ip")
    fine = await client.post(
        "/api/v1/hosts", headers=admin.headers, json={**body, "ip": "127.0.0.1"}
    )
    assert fine.status_code == 201
    moved = await client.patch(
        f"/api/v1/hosts/{fine.json()['id']}", headers=admin.headers, json={"ip": address}
    )
    refused_by_policy(moved, "ip")


async def test_no_git_process_runs_for_a_refused_repository_url(
    client: httpx.AsyncClient, admin: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[tuple[Any, ...]] = []
    real_exec = asyncio.create_subprocess_exec

    async def recording_exec(*args: Any, **kwargs: Any) -> asyncio.subprocess.Process:
        started.append(args)
        return await real_exec(*args, **kwargs)

    monkeypatch.setattr(asyncio, "create_subprocess_exec", recording_exec)
    for url in ("http://169.254.169.254/repo.git", "http://metadata.google.internal/r.git"):
        response = await client.post(
            "/api/v1/repositories", headers=admin.headers, json={"url": url}
        )
        refused_by_policy(response, "url")
    assert not [args for args in started if args and args[0] == "git"]


# --- credentials follow the address ------------------------------------------------------------


async def test_moving_a_git_provider_needs_its_token_again(
    client: httpx.AsyncClient, admin: Account, db: Database, fake_gitlab: FakeGitLab
) -> None:
    token = fake_gitlab.forge.add_user("tanuki")
    provider = await connect(client, admin, "gitlab", fake_gitlab, token)
    url = f"/api/v1/git-providers/{provider['id']}"
    # The same server, spelt another way, is another address.
    elsewhere = fake_gitlab.server_url.replace("127.0.0.1", "localhost")
    moved = await client.patch(url, headers=admin.headers, json={"server_url": elsewhere})
    assert moved.status_code == 422
    assert error_fields(moved) == ["access_token"]
    same = await client.patch(
        url, headers=admin.headers, json={"server_url": fake_gitlab.server_url + "/"}
    )
    assert same.status_code == 200  # not a move: nothing to re-enter
    fresh = fake_gitlab.forge.issue_pat("tanuki")
    with_token = await client.patch(
        url, headers=admin.headers, json={"server_url": elsewhere, "access_token": fresh}
    )
    assert with_token.status_code == 200, with_token.text
    assert with_token.json()["server_url"] == elsewhere
    async with db.session(tenant_id=UUID(admin.tenant_id)) as session:
        row = await session.get(GitProvider, UUID(provider["id"]))
        assert row is not None and row.access_token == fresh


async def test_moving_a_cicd_provider_needs_its_credentials_again(
    client: httpx.AsyncClient, admin: Account, listener: Listener
) -> None:
    created = await client.post(
        "/api/v1/cicd-providers", headers=admin.headers, json=jenkins(listener.url)
    )
    assert created.status_code == 201
    url = f"/api/v1/cicd-providers/{created.json()['id']}"
    elsewhere = f"http://localhost:{listener.port}"
    moved = await client.patch(url, headers=admin.headers, json={"url": elsewhere})
    assert moved.status_code == 422
    assert error_fields(moved) == ["config.api_token"]
    renamed = await client.patch(url, headers=admin.headers, json={"name": "renamed"})
    assert renamed.status_code == 200  # no move, no credentials needed
    with_token = await client.patch(
        url,
        headers=admin.headers,
        json={"url": elsewhere, "config": {"api_token": "jenkins-token-2"}},
    )
    assert with_token.status_code == 200, with_token.text
    assert with_token.json()["url"] == elsewhere
    refused = await client.patch(
        url,
        headers=admin.headers,
        json={"url": "http://169.254.169.254", "config": {"api_token": "jenkins-token-3"}},
    )
    refused_by_policy(refused, "url")


async def github_provider(db: Database, account: Account, server_url: str | None) -> str:
    async with db.session(tenant_id=UUID(account.tenant_id)) as session:
        provider = GitProvider(
            tenant_id=UUID(account.tenant_id),
            type="github",
            server_url=server_url,
            name="octocat",
            access_token="ghp-borrowed-token-123",
            is_configured=True,
        )
        session.add(provider)
        await session.flush()
        return str(provider.id)


async def test_a_borrowed_github_token_only_goes_to_its_own_api(
    client: httpx.AsyncClient, admin: Account, db: Database, listener: Listener
) -> None:
    git_provider_id = await github_provider(db, admin, listener.url)
    config = {"repository": "acme/app", "git_provider_id": git_provider_id}
    body = {"type": "github_actions", "name": "gha", "config": config}
    for url in ("http://127.0.0.1:9/api/v3", "https://api.github.com", listener.url):
        response = await client.post(
            "/api/v1/cicd-providers", headers=admin.headers, json={**body, "url": url}
        )
        assert response.status_code == 422, url
        assert error_fields(response) == ["url"]
        assert f"{listener.url}/api/v3" in response.json()["error"]["message"]
    own = await client.post(
        "/api/v1/cicd-providers",
        headers=admin.headers,
        json={**body, "url": f"{listener.url}/api/v3/"},
    )
    assert own.status_code == 201, own.text
    provider_url = f"/api/v1/cicd-providers/{own.json()['id']}"
    moved = await client.patch(
        provider_url, headers=admin.headers, json={"url": "http://127.0.0.1:9/api/v3"}
    )
    assert moved.status_code == 422 and error_fields(moved) == ["url"]
    # The git provider moves later: the borrowed token is not sent to the old address.
    async with db.session(tenant_id=UUID(admin.tenant_id)) as session:
        row = await session.get(GitProvider, UUID(git_provider_id))
        assert row is not None
        row.server_url = "http://127.0.0.1:9"
    before = listener.connections
    check = await client.post(f"{provider_url}/test", headers=admin.headers)
    assert check.status_code == 409, check.text
    assert "never sent elsewhere" in check.json()["error"]["message"]
    assert listener.connections == before


# --- at connect time: SSH and git check again ----------------------------------------------------


async def test_the_executor_checks_the_address_when_it_connects(listener: Listener) -> None:
    target = HostTarget(address="localhost", port=listener.port, user="u", password="pw", name="db")
    strict = Executor(connect_timeout=2, outbound=OutboundPolicy(allow_private=False))
    with pytest.raises(HostError) as refused:
        async with strict.connect(target):
            pass
    assert refused.value.code == "outbound_refused"
    assert "refused by the outbound policy" in refused.value.message
    assert listener.connections == 0
    metadata = HostTarget(address="0xa9fea9fe", port=22, user="u", password="pw", name="meta")
    with pytest.raises(HostError) as always:
        async with Executor(connect_timeout=2).connect(metadata):
            pass
    assert always.value.code == "outbound_refused"


async def test_an_open_port_that_is_not_ssh_reads_like_a_closed_one(listener: Listener) -> None:
    executor = Executor(connect_timeout=2)
    messages = []
    for port in (listener.port, free_port()):
        target = HostTarget(address="127.0.0.1", port=port, user="u", password="pw", name="h")
        with pytest.raises(HostError) as failed:
            async with executor.connect(target):
                pass
        assert failed.value.code == "connection_failed"
        messages.append(failed.value.message.replace(str(port), "PORT"))
    assert listener.connections == 1
    assert messages[0] == messages[1]


async def test_git_checks_the_remote_before_it_runs(listener: Listener, tmp_path: Path) -> None:
    with pytest.raises(OutboundRefused):
        await checkout_url(
            f"http://localhost:{listener.port}/app.git",
            cache_dir=tmp_path,
            policy=OutboundPolicy(allow_private=False),
        )
    assert listener.connections == 0
    with pytest.raises(GitCommandFailed) as failed:
        await checkout_url(f"http://127.0.0.1:{free_port()}/app.git", cache_dir=tmp_path)
    assert failed.value.code == "git_unreachable"
    assert "the connection failed or it did not answer within" in failed.value.message
