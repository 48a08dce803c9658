"""The hosts REST API: CRUD, validation, roles, tenants, secrets, lists."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import httpx
import psycopg
from sqlalchemy import select

from shipyard.accounts.models import AuditEvent
from shipyard.db import Database, to_libpq_url
from tests.fixtures.hosts import HostFactory, host_payload
from tests.support.api import Account, add_member, error_fields
from tests.support.sshd import SSHEndpoint, SSHUsers

SECRET_KEYS = {"password", "private_key", "private_key_passphrase"}


def assert_no_secrets(body: Any, *secrets: str) -> None:
    text = str(body)
    assert "PRIVATE KEY" not in text
    public = str(body.get("public_key")) if isinstance(body, dict) else ""
    for secret in secrets:
        for line in secret.strip().splitlines():
            # An OpenSSH private key embeds its public half, which may be shown.
            if len(line) > 8 and line not in public:
                assert line not in text
    if isinstance(body, dict):
        assert not SECRET_KEYS & set(body)


async def test_create_with_password_stores_ciphertext_and_returns_no_secret(
    client: httpx.AsyncClient,
    admin: Account,
    ssh_endpoint: SSHEndpoint,
    database_url: str,
    db: Database,
) -> None:
    response = await client.post(
        "/api/v1/hosts",
        headers=admin.headers,
        json=host_payload(ssh_endpoint, description="web box"),
    )
    assert response.status_code == 201, response.text
    host = response.json()
    assert host["has_password"] is True and host["has_private_key"] is False
    assert host["auth_method"] == "password" and host["status"] == "unknown"
    assert host["type"] == "ssh" and host["port"] == ssh_endpoint.port
    assert host["description"] == "web box"
    assert_no_secrets(host, ssh_endpoint.password)
    fetched = await client.get(f"/api/v1/hosts/{host['id']}", headers=admin.headers)
    assert fetched.json() == host
    with psycopg.connect(to_libpq_url(database_url)) as conn:
        row = conn.execute("SELECT password FROM hosts WHERE id = %s", (host["id"],)).fetchone()
        assert row is not None
        (raw,) = row
    assert raw != ssh_endpoint.password and ssh_endpoint.password not in raw
    assert db.keyring.decrypt(raw) == ssh_endpoint.password


async def test_create_with_each_key_type_derives_the_public_key(
    client: httpx.AsyncClient,
    admin: Account,
    ssh_endpoint: SSHEndpoint,
    ssh_users: SSHUsers,
    database_url: str,
    db: Database,
) -> None:
    for key_name in ("ed25519", "rsa", "ecdsa", "encrypted"):
        await _create_with_key(client, admin, ssh_endpoint, ssh_users, database_url, db, key_name)


async def _create_with_key(
    client: httpx.AsyncClient,
    admin: Account,
    ssh_endpoint: SSHEndpoint,
    ssh_users: SSHUsers,
    database_url: str,
    db: Database,
    key_name: str,
) -> None:
    pair = getattr(ssh_users, key_name)
    payload = host_payload(ssh_endpoint, auth="key", private_key=pair.private_key)
    if pair.passphrase:
        payload["private_key_passphrase"] = pair.passphrase
    response = await client.post("/api/v1/hosts", headers=admin.headers, json=payload)
    assert response.status_code == 201, response.text
    host = response.json()
    assert host["auth_method"] == "key" and host["has_private_key"] is True
    assert host["has_private_key_passphrase"] is bool(pair.passphrase)
    assert host["public_key"].split()[:2] == pair.public_key.split()[:2]
    assert_no_secrets(host, pair.private_key, pair.passphrase or "")
    with psycopg.connect(to_libpq_url(database_url)) as conn:
        raw = conn.execute(
            "SELECT private_key, private_key_passphrase FROM hosts WHERE id = %s", (host["id"],)
        ).fetchone()
        assert raw is not None
    assert "PRIVATE KEY" not in raw[0]
    assert db.keyring.decrypt(raw[0]) == pair.private_key
    if pair.passphrase:
        assert raw[1] != pair.passphrase and db.keyring.decrypt(raw[1]) == pair.passphrase


BAD_INPUT: list[tuple[dict[str, Any], str]] = [
    ({"name": ""}, "name"),
    ({"name": "x" * 101}, "name"),
    ({"ip": "not a host!"}, "ip"),
    ({"ip": "a" * 64 + ".example"}, "ip"),
    ({"port": 0}, "port"),
    ({"port": 70000}, "port"),
    ({"user": "two words"}, "user"),
    ({"type": "docker"}, "type"),
    ({"type": "local"}, "type"),
    ({"auth_method": "magic"}, "auth_method"),
    ({"host_key_fingerprint": "MD5:aa:bb"}, "host_key_fingerprint"),
    ({"colour": "blue"}, "colour"),
    ({"ip": None}, "ip"),
    ({"user": None}, "user"),
    ({"password": None, "auth_method": "password"}, "password"),
    ({"auth_method": "key"}, "private_key"),
    ({"private_key": "-----BEGIN OPENSSH PRIVATE KEY-----\nbm9wZQ==\n"}, "private_key"),
]


async def test_bad_input_is_422_naming_the_field(
    client: httpx.AsyncClient, admin: Account, ssh_endpoint: SSHEndpoint
) -> None:
    for changes, field in BAD_INPUT:
        payload = {**host_payload(ssh_endpoint), **changes}
        payload = {key: value for key, value in payload.items() if value is not None}
        response = await client.post("/api/v1/hosts", headers=admin.headers, json=payload)
        assert response.status_code == 422, (changes, response.text)
        assert field in error_fields(response), (changes, response.text)
    listed = (await client.get("/api/v1/hosts", headers=admin.headers)).json()
    assert listed["items"] == []


async def test_key_passphrase_problems_name_the_passphrase(
    client: httpx.AsyncClient, admin: Account, ssh_endpoint: SSHEndpoint, ssh_users: SSHUsers
) -> None:
    key = ssh_users.encrypted.private_key
    for extra, words in (
        ({}, "give its passphrase"),
        ({"private_key_passphrase": "no"}, "does not"),
    ):
        payload = host_payload(ssh_endpoint, auth="key", private_key=key, **extra)
        response = await client.post("/api/v1/hosts", headers=admin.headers, json=payload)
        assert response.status_code == 422
        assert error_fields(response) == ["private_key_passphrase"]
        assert words in response.json()["error"]["message"]


async def test_names_are_unique_per_tenant(
    client: httpx.AsyncClient,
    admin: Account,
    other_admin: Account,
    ssh_endpoint: SSHEndpoint,
    host_factory: HostFactory,
) -> None:
    first = await host_factory(admin, ssh_endpoint, name="db-1")
    again = await client.post(
        "/api/v1/hosts", headers=admin.headers, json=host_payload(ssh_endpoint, name="db-1")
    )
    assert again.status_code == 409 and again.json()["error"]["code"] == "host_name_taken"
    await host_factory(other_admin, ssh_endpoint, name="db-1")  # another tenant may
    second = await host_factory(admin, ssh_endpoint, name="db-2")
    rename = await client.patch(
        f"/api/v1/hosts/{second['id']}", headers=admin.headers, json={"name": "db-1"}
    )
    assert rename.status_code == 409
    same = await client.patch(
        f"/api/v1/hosts/{first['id']}", headers=admin.headers, json={"name": "db-1"}
    )
    assert same.status_code == 200


async def test_update_changes_only_sent_fields_and_null_clears(
    client: httpx.AsyncClient,
    admin: Account,
    ssh_endpoint: SSHEndpoint,
    ssh_users: SSHUsers,
    host_factory: HostFactory,
) -> None:
    host = await host_factory(admin, ssh_endpoint)
    url = f"/api/v1/hosts/{host['id']}"
    renamed = (await client.patch(url, headers=admin.headers, json={"description": "x"})).json()
    assert renamed["description"] == "x" and renamed["has_password"] is True
    with_key = await client.patch(
        url, headers=admin.headers, json={"private_key": ssh_users.ed25519.private_key}
    )
    assert with_key.status_code == 200
    assert with_key.json()["auth_method"] == "key" and with_key.json()["has_password"] is True
    cleared = await client.patch(url, headers=admin.headers, json={"password": None})
    assert cleared.json()["has_password"] is False and cleared.json()["auth_method"] == "key"
    bad_method = await client.patch(url, headers=admin.headers, json={"auth_method": "password"})
    assert bad_method.status_code == 422 and error_fields(bad_method) == ["password"]
    no_key = (await client.patch(url, headers=admin.headers, json={"private_key": None})).json()
    assert no_key["has_private_key"] is False and no_key["auth_method"] is None
    assert no_key["public_key"] is None
    back = await client.patch(
        url,
        headers=admin.headers,
        json={"private_key": None, "password": "new-pass-1", "auth_method": "password"},
    )
    assert back.status_code == 200, back.text
    assert back.json()["has_private_key"] is False and back.json()["public_key"] is None
    null_name = await client.patch(url, headers=admin.headers, json={"name": None})
    assert null_name.status_code == 422 and error_fields(null_name) == ["name"]
    assert_no_secrets(back.json(), ssh_users.ed25519.private_key, "new-pass-1")


async def test_delete(
    client: httpx.AsyncClient, admin: Account, ssh_endpoint: SSHEndpoint, host_factory: HostFactory
) -> None:
    host = await host_factory(admin, ssh_endpoint)
    url = f"/api/v1/hosts/{host['id']}"
    assert (await client.delete(url, headers=admin.headers)).status_code == 204
    assert (await client.get(url, headers=admin.headers)).status_code == 404
    assert (await client.delete(url, headers=admin.headers)).status_code == 404


async def test_list_filters_search_and_pages(
    client: httpx.AsyncClient,
    admin: Account,
    ssh_endpoint: SSHEndpoint,
    host_factory: HostFactory,
    db: Database,
) -> None:
    for name in ("web-1", "web-2", "Web_3", "db-1", "100%-db"):
        await host_factory(admin, ssh_endpoint, name=name)
    async with db.session(tenant_id=UUID(admin.tenant_id)) as session:
        from shipyard.hosts.models import Host

        rows = (await session.scalars(select(Host).where(Host.name.in_(["db-1", "web-2"])))).all()
        for row in rows:
            row.status = "online"

    async def names(**params: Any) -> list[str]:
        response = await client.get("/api/v1/hosts", headers=admin.headers, params=params)
        assert response.status_code == 200, response.text
        return sorted(item["name"] for item in response.json()["items"])

    assert await names(search="WEB") == ["Web_3", "web-1", "web-2"]
    assert await names(search="%") == ["100%-db"]
    assert await names(search="_") == ["Web_3"]
    assert await names(status="online") == ["db-1", "web-2"]
    assert await names(type="ssh", status="unknown", search="db") == ["100%-db"]
    assert await names(type="local") == []
    seen: list[str] = []
    cursor = None
    for _ in range(5):
        page = (
            await client.get(
                "/api/v1/hosts",
                headers=admin.headers,
                params={"limit": 2, **({"cursor": cursor} if cursor else {})},
            )
        ).json()
        seen += [item["name"] for item in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted(["web-1", "web-2", "Web_3", "db-1", "100%-db"])
    for params, field in (
        ({"status": "sleeping"}, "status"),
        ({"type": "vm"}, "type"),
        ({"limit": 0}, "limit"),
        ({"cursor": "zz"}, "cursor"),
    ):
        bad = await client.get("/api/v1/hosts", headers=admin.headers, params=params)
        assert bad.status_code == 422 and field in error_fields(bad)


async def test_roles(
    client: httpx.AsyncClient, admin: Account, ssh_endpoint: SSHEndpoint, host_factory: HostFactory
) -> None:
    host = await host_factory(admin, ssh_endpoint)
    url = f"/api/v1/hosts/{host['id']}"
    viewer = await add_member(client, admin, "viewer")
    developer = await add_member(client, admin, "developer")
    create = host_payload(ssh_endpoint)
    admin_only = [
        ("POST", "/api/v1/hosts", create),
        ("PATCH", url, {"description": "x"}),
        ("POST", f"{url}/generate-key", None),
        ("POST", f"{url}/accept-host-key", None),
        ("DELETE", url, None),
    ]
    testers = [("POST", f"{url}/test", None), ("POST", "/api/v1/hosts/test-all", None)]
    for member in (viewer, developer):
        assert (await client.get("/api/v1/hosts", headers=member.headers)).status_code == 200
        assert (await client.get(url, headers=member.headers)).status_code == 200
        for method, path, body in admin_only:
            response = await client.request(method, path, headers=member.headers, json=body)
            assert response.status_code == 403, (member.role, method, path)
            assert response.json()["error"]["code"] == "forbidden"
    for method, path, body in testers:
        assert (
            await client.request(method, path, headers=viewer.headers, json=body)
        ).status_code == 403
        allowed = await client.request(method, path, headers=developer.headers, json=body)
        assert allowed.status_code in (200, 202), allowed.text


async def test_other_tenants_hosts_are_404(
    client: httpx.AsyncClient,
    admin: Account,
    other_admin: Account,
    ssh_endpoint: SSHEndpoint,
    host_factory: HostFactory,
) -> None:
    host = await host_factory(admin, ssh_endpoint)
    url = f"/api/v1/hosts/{host['id']}"
    for method, path, body in (
        ("GET", url, None),
        ("PATCH", url, {"description": "mine now"}),
        ("DELETE", url, None),
        ("POST", f"{url}/test", None),
        ("POST", f"{url}/generate-key", None),
        ("POST", f"{url}/accept-host-key", None),
    ):
        response = await client.request(method, path, headers=other_admin.headers, json=body)
        assert response.status_code == 404, (method, path, response.text)
    theirs = (await client.get("/api/v1/hosts", headers=other_admin.headers)).json()
    assert theirs["items"] == []
    assert (await client.get(url, headers=admin.headers)).json()["description"] is None


async def test_audit_log_names_changes_without_secret_values(
    client: httpx.AsyncClient,
    admin: Account,
    ssh_endpoint: SSHEndpoint,
    host_factory: HostFactory,
    db: Database,
) -> None:
    host = await host_factory(admin, ssh_endpoint)
    url = f"/api/v1/hosts/{host['id']}"
    await client.patch(url, headers=admin.headers, json={"password": "rotated-secret-9"})
    await client.post(f"{url}/generate-key", headers=admin.headers)
    await client.delete(url, headers=admin.headers)
    async with db.session(tenant_id=UUID(admin.tenant_id)) as session:
        events = (
            await session.scalars(
                select(AuditEvent)
                .where(AuditEvent.resource_id == UUID(host["id"]))
                .order_by(AuditEvent.created_at)
            )
        ).all()
    assert [event.action for event in events] == [
        "host.create",
        "host.update",
        "host.generate_key",
        "host.delete",
    ]
    assert events[1].details == {"fields": ["password"]}
    dumped = str([event.details for event in events])
    assert ssh_endpoint.password not in dumped and "rotated-secret-9" not in dumped
    assert "PRIVATE KEY" not in dumped
