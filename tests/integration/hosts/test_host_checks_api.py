"""Connection tests through the API: status, trust on first use, changed keys, test-all."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import httpx
import pytest

from shipyard.api import create_app
from shipyard.config import Settings
from shipyard.db import Database
from shipyard.hosts.executor import Executor
from shipyard.hosts.models import Host
from shipyard.hosts.service import build_target, record_fingerprint
from shipyard.runtime import build_runtime, close_runtime
from tests.fixtures.hosts import HostFactory, host_payload
from tests.support.api import Account, error_fields
from tests.support.runtime import run_worker_until_idle
from tests.support.sshd import PrivateEndpoint, SSHEndpoint, SSHFleet, SSHUsers, free_port


async def check(client: httpx.AsyncClient, account: Account, host_id: str) -> dict[str, Any]:
    response = await client.post(f"/api/v1/hosts/{host_id}/test", headers=account.headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_password_host_goes_online_and_records_its_key(
    client: httpx.AsyncClient, admin: Account, ssh_endpoint: SSHEndpoint, host_factory: HostFactory
) -> None:
    host = await host_factory(admin, ssh_endpoint)
    assert host["host_key_fingerprint"] is None
    result = await check(client, admin, host["id"])
    assert result["status"] == "online" and result["error_code"] is None
    stored = result["host"]
    assert stored["status"] == "online"
    assert stored["host_key_fingerprint"] == ssh_endpoint.host_key_fingerprint
    assert stored["os_info"].startswith("Linux ")
    assert stored["round_trip_ms"] is not None and 0 <= stored["round_trip_ms"] < 5000
    assert stored["last_checked_at"] is not None
    assert stored["os_info"] in stored["status_message"]
    fetched = (await client.get(f"/api/v1/hosts/{host['id']}", headers=admin.headers)).json()
    assert fetched == stored


async def test_failures_set_their_status_and_message(
    client: httpx.AsyncClient,
    admin: Account,
    ssh_endpoint: SSHEndpoint,
    ssh_users: SSHUsers,
    host_factory: HostFactory,
) -> None:
    wrong = await host_factory(admin, ssh_endpoint, password="wrong-password")
    down = await host_factory(admin, ssh_endpoint, port=free_port())
    nologin = await host_factory(admin, ssh_endpoint, user=ssh_users.nologin_user)
    empty = await host_factory(admin, ssh_endpoint, auth="none")
    expected = {
        wrong["id"]: ("auth_failed", "wrong_password", "refused the password"),
        down["id"]: ("offline", "connection_failed", "the connection failed or timed out"),
        nologin["id"]: ("unknown", "shell_not_found", "not available"),
        empty["id"]: ("auth_failed", "no_credentials", "neither a password nor a private key"),
    }
    for host_id, (status, code, words) in expected.items():
        result = await check(client, admin, host_id)
        assert (result["status"], result["error_code"]) == (status, code)
        assert words in result["message"] and result["host"]["status_message"] == result["message"]
        assert result["host"]["host_key_fingerprint"] is None  # only a success is trusted
        assert result["host"]["last_checked_at"] is not None


async def test_changed_host_key_is_refused_until_an_admin_accepts_it(
    client: httpx.AsyncClient,
    admin: Account,
    private_sshd: PrivateEndpoint,
    host_factory: HostFactory,
    db: Database,
) -> None:
    endpoint = private_sshd.endpoint
    host = await host_factory(admin, endpoint)
    first = await check(client, admin, host["id"])
    old = endpoint.host_key_fingerprint
    assert first["host"]["host_key_fingerprint"] == old

    new = private_sshd.restart(new_host_key=True).host_key_fingerprint
    refused = await check(client, admin, host["id"])
    assert refused["status"] == "host_key_mismatch"
    assert old in refused["message"] and new in refused["message"]
    assert refused["presented_fingerprint"] == new
    assert refused["host"]["host_key_fingerprint"] == old  # not overwritten
    assert refused["host"]["pending_host_key_fingerprint"] == new

    # The deployment runner's helper must not overwrite a trusted key either.
    assert not await record_fingerprint(
        db=db, tenant_id=UUID(admin.tenant_id), host_id=UUID(host["id"]), fingerprint=new
    )
    url = f"/api/v1/hosts/{host['id']}/accept-host-key"
    stale = await client.post(
        url, headers=admin.headers, json={"fingerprint": "SHA256:" + "C" * 43}
    )
    assert stale.status_code == 409 and stale.json()["error"]["code"] == "host_key_changed"
    malformed = await client.post(url, headers=admin.headers, json={"fingerprint": "nope"})
    assert malformed.status_code == 422 and error_fields(malformed) == ["fingerprint"]
    accepted = await client.post(url, headers=admin.headers, json={"fingerprint": new})
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["host_key_fingerprint"] == new
    assert accepted.json()["pending_host_key_fingerprint"] is None
    again = await client.post(url, headers=admin.headers)
    assert again.status_code == 409 and again.json()["error"]["code"] == "no_pending_host_key"
    assert (await check(client, admin, host["id"]))["status"] == "online"


async def test_preset_fingerprint_is_enforced_from_the_first_connection(
    client: httpx.AsyncClient, admin: Account, ssh_endpoint: SSHEndpoint, host_factory: HostFactory
) -> None:
    wrong = "SHA256:" + "D" * 43
    host = await host_factory(admin, ssh_endpoint, host_key_fingerprint=wrong)
    refused = await check(client, admin, host["id"])
    assert refused["status"] == "host_key_mismatch"
    fixed = await client.patch(
        f"/api/v1/hosts/{host['id']}",
        headers=admin.headers,
        json={"host_key_fingerprint": ssh_endpoint.host_key_fingerprint},
    )
    assert fixed.json()["pending_host_key_fingerprint"] is None
    assert (await check(client, admin, host["id"]))["status"] == "online"
    # Moving the host to another address forgets the trusted key (it may be another machine).
    moved = await client.patch(
        f"/api/v1/hosts/{host['id']}", headers=admin.headers, json={"port": free_port()}
    )
    assert moved.json()["host_key_fingerprint"] is None


async def test_generated_key_pair_logs_in_once_installed(
    client: httpx.AsyncClient,
    admin: Account,
    ssh_endpoint: SSHEndpoint,
    ssh_fleet: SSHFleet,
    host_factory: HostFactory,
    db: Database,
) -> None:
    host = await host_factory(admin, ssh_endpoint, auth="none")
    response = await client.post(f"/api/v1/hosts/{host['id']}/generate-key", headers=admin.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["public_key"].startswith("ssh-ed25519 ") and body["auth_method"] == "key"
    assert body["has_private_key"] is True and "PRIVATE KEY" not in response.text
    not_yet = await check(client, admin, host["id"])
    assert (not_yet["status"], not_yet["error_code"]) == ("auth_failed", "wrong_key")
    keys = ssh_fleet.authorized_keys_dir / ssh_endpoint.user
    original = keys.read_text()
    keys.write_text(original + body["public_key"] + "\n")
    try:
        assert (await check(client, admin, host["id"]))["status"] == "online"
    finally:
        keys.write_text(original)
    async with db.session(tenant_id=UUID(admin.tenant_id)) as session:
        row = await session.get(Host, UUID(host["id"]))
        assert row is not None and row.private_key is not None
        assert "PRIVATE KEY" in row.private_key and build_target(row).private_key == row.private_key


async def test_test_all_runs_in_the_background(
    client: httpx.AsyncClient,
    admin: Account,
    ssh_fleet: SSHFleet,
    host_factory: HostFactory,
    db: Database,
    settings: Settings,
) -> None:
    good = [await host_factory(admin, endpoint) for endpoint in ssh_fleet.ensure(3)]
    bad = await host_factory(admin, ssh_fleet.endpoints[0], password="wrong-password")
    down = await host_factory(admin, ssh_fleet.endpoints[0], port=free_port())
    queued = await client.post("/api/v1/hosts/test-all", headers=admin.headers)
    assert queued.status_code == 202 and queued.json()["hosts"] == 5
    repeat = await client.post("/api/v1/hosts/test-all", headers=admin.headers)
    assert repeat.json()["job_id"] == queued.json()["job_id"]  # joins the waiting job
    await run_worker_until_idle(settings, db, concurrency=1)
    statuses = {
        item["id"]: item["status"]
        for item in (await client.get("/api/v1/hosts", headers=admin.headers)).json()["items"]
    }
    assert [statuses[h["id"]] for h in good] == ["online"] * 3
    assert statuses[bad["id"]] == "auth_failed" and statuses[down["id"]] == "offline"


@pytest.fixture
async def local_client(db: Database, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    # A second server process on the same database, with its own runtime.
    runtime = build_runtime(settings.model_copy(update={"allow_local_hosts": True}), db=db)
    transport = httpx.ASGITransport(app=create_app(runtime=runtime))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http
    finally:
        await close_runtime(runtime)


async def test_local_hosts_only_where_enabled(
    client: httpx.AsyncClient, local_client: httpx.AsyncClient, admin: Account
) -> None:
    payload = {"name": "this-box", "type": "local"}
    refused = await client.post("/api/v1/hosts", headers=admin.headers, json=payload)
    assert refused.status_code == 422 and error_fields(refused) == ["type"]
    created = await local_client.post("/api/v1/hosts", headers=admin.headers, json=payload)
    assert created.status_code == 201, created.text
    windows = await local_client.post(
        "/api/v1/hosts", headers=admin.headers, json={**payload, "name": "w", "is_windows": True}
    )
    assert windows.status_code == 422 and error_fields(windows) == ["is_windows"]
    result = await check(local_client, admin, created.json()["id"])
    assert result["status"] == "online" and result["host"]["os_info"].startswith("Linux")
    listed = await local_client.get("/api/v1/hosts?type=local", headers=admin.headers)
    assert [item["name"] for item in listed.json()["items"]] == ["this-box"]
    # The same host on a server where local hosts are off cannot run.
    off = await check(client, admin, created.json()["id"])
    assert (off["status"], off["error_code"]) == ("offline", "local_hosts_disabled")


async def test_build_target_uses_only_the_chosen_credentials(
    client: httpx.AsyncClient,
    admin: Account,
    ssh_endpoint: SSHEndpoint,
    ssh_users: SSHUsers,
    db: Database,
) -> None:
    payload = host_payload(
        ssh_endpoint, private_key=ssh_users.ed25519.private_key, auth_method="password"
    )
    created = (await client.post("/api/v1/hosts", headers=admin.headers, json=payload)).json()
    async with db.session(tenant_id=UUID(admin.tenant_id)) as session:
        row = await session.get(Host, UUID(created["id"]))
        assert row is not None
        target = build_target(row)
    assert target.password == ssh_endpoint.password and target.private_key is None
    assert (target.address, target.port, target.user) == (
        ssh_endpoint.host,
        ssh_endpoint.port,
        ssh_endpoint.user,
    )
    assert target.host_id == row.id and target.name == created["name"]
    assert ssh_endpoint.password not in repr(target)
    async with Executor().connect(target) as conn:
        assert (await conn.run("true")).ok
    assert await record_fingerprint(
        db=db,
        tenant_id=UUID(admin.tenant_id),
        host_id=row.id,
        fingerprint=ssh_endpoint.host_key_fingerprint,
    )
    stored = (await client.get(f"/api/v1/hosts/{created['id']}", headers=admin.headers)).json()
    assert stored["host_key_fingerprint"] == ssh_endpoint.host_key_fingerprint
