"""Host pages over HTTP: secrets never echoed, other tenants' hosts invisible, test-all by role."""

from __future__ import annotations

import httpx

from tests.support.api import Account, add_member
from tests.support.browser_http import browser_client, csrf_token

PRIVATE_KEY = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\nnot really a key\n-----END OPENSSH PRIVATE KEY-----"
)


async def _host(client: httpx.AsyncClient, admin: Account, name: str = "db-1") -> str:
    created = await client.post(
        "/api/v1/hosts",
        headers=admin.headers,
        json={
            "name": name,
            "ip": "127.0.0.1",
            "port": 2222,
            "user": "deploy",
            "password": "pw-secret-1",
        },
    )
    assert created.status_code == 201, created.text
    host_id: str = created.json()["id"]
    return host_id


async def test_forms_never_echo_secrets_and_name_the_bad_field(
    client: httpx.AsyncClient, admin: Account
) -> None:
    host_id = await _host(client, admin)
    async with browser_client(client, admin) as http:
        token = await csrf_token(http, "/hosts")
        edit = await http.get(f"/hosts/{host_id}/edit")
        assert edit.status_code == 200
        assert "pw-secret-1" not in edit.text
        assert "Leave blank to keep the stored one." in edit.text
        bad = await http.post(
            "/hosts/new",
            data={
                "name": "web-9",
                "ip": "127.0.0.1",
                "port": "70000",
                "user": "deploy",
                "auth": "key",
                "private_key": PRIVATE_KEY,
                "private_key_passphrase": "pass-secret-2",
                "csrf_token": token,
            },
        )
        assert bad.status_code == 422
        assert 'id="e-port"' in bad.text
        assert "pass-secret-2" not in bad.text and "not really a key" not in bad.text
        unusable = await http.post(
            "/hosts/new",
            data={
                "name": "web-9",
                "ip": "127.0.0.1",
                "port": "22",
                "user": "deploy",
                "auth": "key",
                "private_key": PRIVATE_KEY,
                "csrf_token": token,
            },
        )
        assert unusable.status_code == 422
        assert "not really a key" not in unusable.text
        assert 'class="alert error"' in unusable.text
        # Editing without a new password keeps the stored one.
        kept = await http.post(
            f"/hosts/{host_id}/edit",
            data={
                "name": "db-1",
                "ip": "127.0.0.1",
                "port": "2222",
                "user": "deploy",
                "auth": "password",
                "csrf_token": token,
            },
        )
        assert kept.status_code == 303
    host = (await client.get(f"/api/v1/hosts/{host_id}", headers=admin.headers)).json()
    assert host["has_password"] is True and host["auth_method"] == "password"


async def test_other_tenants_host_is_not_found(
    client: httpx.AsyncClient, admin: Account, other_admin: Account
) -> None:
    host_id = await _host(client, admin)
    async with browser_client(client, other_admin) as http:
        token = await csrf_token(http, "/hosts")
        assert "db-1" not in (await http.get("/hosts")).text
        for path in ("", "/edit"):
            assert (await http.get(f"/hosts/{host_id}{path}")).status_code == 404
        for path in ("/test", "/delete", "/generate-key", "/accept-key"):
            response = await http.post(f"/hosts/{host_id}{path}", data={"csrf_token": token})
            assert response.status_code == 404, path
    assert (await client.get(f"/api/v1/hosts/{host_id}", headers=admin.headers)).status_code == 200


async def test_test_all_is_for_developers_and_admins(
    client: httpx.AsyncClient, admin: Account
) -> None:
    await _host(client, admin, "a")
    await _host(client, admin, "b")
    developer = await add_member(client, admin, "developer")
    viewer = await add_member(client, admin, "viewer")
    async with browser_client(client, developer) as http:
        token = await csrf_token(http, "/hosts")
        queued = await http.post("/hosts/test-all", data={"csrf_token": token})
        assert queued.status_code == 303
        assert queued.headers["location"] == "/hosts?queued=2"
        assert "Testing 2 hosts in the background" in (await http.get("/hosts?queued=2")).text
    async with browser_client(client, viewer) as http:
        token = await csrf_token(http, "/hosts")
        page = (await http.get("/hosts")).text
        assert "Test all" not in page and ">Test</button>" not in page
        assert (await http.post("/hosts/test-all", data={"csrf_token": token})).status_code == 403
