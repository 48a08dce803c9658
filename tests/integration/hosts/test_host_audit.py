"""Every audited host action writes its audit row, whether it came through the API or a page.

The same story runs through both front ends: add a host, test it (its key is trusted on first
use), pin a wrong key, test again (mismatch), accept the presented key, generate a key pair,
test every host, delete. Each step must leave one row naming the action, the actor and where the
request came from.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

import httpx
import pytest
from sqlalchemy import select

from shipyard.accounts.models import AuditEvent
from shipyard.db import Database
from tests.fixtures.hosts import host_payload
from tests.support.api import Account
from tests.support.browser_http import browser_client, csrf_token
from tests.support.sshd import SSHEndpoint

WRONG_FINGERPRINT = "SHA256:" + "W" * 43


class HostActions(Protocol):
    """One front end's way of doing each host action."""

    async def create(self, payload: dict[str, Any]) -> str: ...
    async def update(self, host_id: str, payload: dict[str, Any]) -> None: ...
    async def test(self, host_id: str) -> None: ...
    async def accept_key(self, host_id: str, fingerprint: str) -> None: ...
    async def generate_key(self, host_id: str) -> None: ...
    async def test_all(self) -> None: ...
    async def delete(self, host_id: str) -> None: ...


class ApiActions:
    def __init__(self, client: httpx.AsyncClient, account: Account) -> None:
        self.client = client
        self.headers = account.headers

    async def _call(self, method: str, path: str, json: Any = None) -> httpx.Response:
        response = await self.client.request(
            method, f"/api/v1/hosts{path}", headers=self.headers, json=json
        )
        assert response.status_code < 300, response.text
        return response

    async def create(self, payload: dict[str, Any]) -> str:
        host_id: str = (await self._call("POST", "", payload)).json()["id"]
        return host_id

    async def update(self, host_id: str, payload: dict[str, Any]) -> None:
        await self._call("PATCH", f"/{host_id}", payload)

    async def test(self, host_id: str) -> None:
        await self._call("POST", f"/{host_id}/test")

    async def accept_key(self, host_id: str, fingerprint: str) -> None:
        await self._call("POST", f"/{host_id}/accept-host-key", {"fingerprint": fingerprint})

    async def generate_key(self, host_id: str) -> None:
        await self._call("POST", f"/{host_id}/generate-key")

    async def test_all(self) -> None:
        await self._call("POST", "/test-all")

    async def delete(self, host_id: str) -> None:
        await self._call("DELETE", f"/{host_id}")


class WebActions:
    """The same actions through the pages' forms, as a browser posts them."""

    def __init__(self, http: httpx.AsyncClient, token: str) -> None:
        self.http = http
        self.token = token

    async def _post(self, path: str, data: dict[str, Any] | None = None) -> httpx.Response:
        response = await self.http.post(path, data={**(data or {}), "csrf_token": self.token})
        assert response.status_code in (200, 303), (path, response.text)
        return response

    @staticmethod
    def _form(payload: dict[str, Any]) -> dict[str, str]:
        form = {key: str(value) for key, value in payload.items()}
        form.setdefault("auth", "password")
        return form

    async def create(self, payload: dict[str, Any]) -> str:
        response = await self._post("/hosts/new", self._form(payload))
        return response.headers["location"].split("/")[2].split("?")[0]

    async def update(self, host_id: str, payload: dict[str, Any]) -> None:
        await self._post(f"/hosts/{host_id}/edit", self._form(payload))

    async def test(self, host_id: str) -> None:
        await self._post(f"/hosts/{host_id}/test")

    async def accept_key(self, host_id: str, fingerprint: str) -> None:
        await self._post(f"/hosts/{host_id}/accept-key", {"fingerprint": fingerprint})

    async def generate_key(self, host_id: str) -> None:
        await self._post(f"/hosts/{host_id}/generate-key")

    async def test_all(self) -> None:
        await self._post("/hosts/test-all")

    async def delete(self, host_id: str) -> None:
        await self._post(f"/hosts/{host_id}/delete")


@pytest.fixture(params=["api", "web"])
async def actions(
    request: pytest.FixtureRequest, client: httpx.AsyncClient, admin: Account
) -> AsyncIterator[HostActions]:
    if request.param == "api":
        yield ApiActions(client, admin)
        return
    async with browser_client(client, admin) as http:
        yield WebActions(http, await csrf_token(http, "/hosts"))


async def audit_rows(db: Database, account: Account) -> list[AuditEvent]:
    """The account's tenant's host audit rows, oldest first (read across tenants, as ops would)."""
    async with db.session(system=True) as session:
        rows = await session.scalars(
            select(AuditEvent)
            .where(
                AuditEvent.tenant_id == UUID(account.tenant_id),
                AuditEvent.action.startswith("host."),
                AuditEvent.outcome == "success",
            )
            .order_by(AuditEvent.created_at, AuditEvent.id)
        )
        return list(rows.all())


async def test_each_host_action_writes_its_audit_row(
    actions: HostActions, admin: Account, ssh_endpoint: SSHEndpoint, db: Database
) -> None:
    payload = host_payload(ssh_endpoint)
    host_id = await actions.create(payload)
    await actions.test(host_id)
    await actions.update(host_id, {**payload, "host_key_fingerprint": WRONG_FINGERPRINT})
    await actions.test(host_id)
    await actions.accept_key(host_id, ssh_endpoint.host_key_fingerprint)
    await actions.generate_key(host_id)
    await actions.test_all()
    await actions.delete(host_id)

    rows = await audit_rows(db, admin)
    assert [row.action for row in rows] == [
        "host.create",
        "host.test",
        "host.update",
        "host.test",
        "host.accept_host_key",
        "host.generate_key",
        "host.test_all",
        "host.delete",
    ]
    for row in rows:
        assert row.actor_profile_id == UUID(admin.user_id), row.action
        assert row.ip_address, row.action  # the request context captured by the actor
        expected_resource = None if row.action == "host.test_all" else UUID(host_id)
        assert row.resource_id == expected_resource, row.action
    create, first_test, pin, mismatch, accept, new_key, test_all, delete = rows
    assert create.details["name"] == payload["name"]
    assert "password" in create.details["fields"]
    assert first_test.details == {
        "status": "online",
        "error_code": None,
        "trusted_fingerprint": ssh_endpoint.host_key_fingerprint,
    }
    assert "host_key_fingerprint" in pin.details["fields"]
    assert mismatch.details["status"] == "host_key_mismatch"
    assert "trusted_fingerprint" not in mismatch.details
    assert accept.details == {
        "previous": WRONG_FINGERPRINT,
        "accepted": ssh_endpoint.host_key_fingerprint,
    }
    assert new_key.details["public_key"].startswith("ssh-ed25519 ")
    assert test_all.details["hosts"] == 1 and test_all.details["job_id"] > 0
    assert delete.details == {"name": payload["name"]}
    dumped = str([row.details for row in rows])
    assert ssh_endpoint.password not in dumped and "PRIVATE KEY" not in dumped


async def test_web_forms_with_a_generated_key_audit_both_steps(
    client: httpx.AsyncClient, admin: Account, ssh_endpoint: SSHEndpoint, db: Database
) -> None:
    payload = {**host_payload(ssh_endpoint), "auth": "generate"}
    async with browser_client(client, admin) as http:
        web = WebActions(http, await csrf_token(http, "/hosts"))
        host_id = await web.create(payload)
        await web.update(host_id, {**payload, "description": "rotated"})
    rows = await audit_rows(db, admin)
    # One form, one transaction: its rows share a timestamp, so compare each request's set.
    by_request: dict[datetime, list[str]] = {}
    for row in rows:
        by_request.setdefault(row.created_at, []).append(row.action)
    assert [sorted(actions) for actions in by_request.values()] == [
        ["host.create", "host.generate_key"],
        ["host.generate_key", "host.update"],
    ]
    assert {row.resource_id for row in rows} == {UUID(host_id)}
    keys = {row.details["public_key"] for row in rows if row.action == "host.generate_key"}
    assert len(keys) == 2


async def test_a_refused_change_writes_neither_the_change_nor_an_audit_row(
    client: httpx.AsyncClient, admin: Account, ssh_endpoint: SSHEndpoint, db: Database
) -> None:
    payload = host_payload(ssh_endpoint, description="as it was")
    async with browser_client(client, admin) as http:
        web = WebActions(http, await csrf_token(http, "/hosts"))
        host_id = await web.create(payload)
        refused = await http.post(
            f"/hosts/{host_id}/edit",
            data={
                **WebActions._form(payload),
                "description": "half-written?",
                "auth": "key",  # a key sign-in with no key: refused after the other fields apply
                "csrf_token": web.token,
            },
        )
        assert refused.status_code == 422 and 'id="e-private_key"' in refused.text
    stored = (await client.get(f"/api/v1/hosts/{host_id}", headers=admin.headers)).json()
    assert stored["description"] == "as it was" and stored["auth_method"] == "password"
    assert [row.action for row in await audit_rows(db, admin)] == ["host.create"]
