"""A passphrase-protected key's public half is derived while no database connection is held."""

from __future__ import annotations

import asyncssh
import httpx
import pytest

from shipyard.hosts import flows, service
from shipyard.hosts.keys import public_key_of
from shipyard.runtime import Runtime
from tests.support.api import Account

PASSPHRASE = "a passphrase for the key"


def protected_key() -> str:
    key = asyncssh.generate_private_key("ssh-ed25519", comment="derive-test")
    return bytes(key.export_private_key("openssh", passphrase=PASSPHRASE)).decode()


async def test_create_and_update_derive_the_key_before_any_transaction(
    client: httpx.AsyncClient,
    admin: Account,
    runtime: Runtime,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    held: list[int] = []

    async def watched(private_key: str, passphrase: str | None) -> str:
        # The KDF may take a second of CPU: the pool must have no connection out meanwhile.
        held.append(runtime.db.engine.pool.checkedout())  # type: ignore[attr-defined]
        return await public_key_of(private_key, passphrase)

    # Wherever it is derived: the flow before its transaction, or (wrongly) the service inside it.
    monkeypatch.setattr(flows, "public_key_of", watched)
    monkeypatch.setattr(service, "public_key_of", watched)
    body = {
        "name": "keyed",
        "ip": "127.0.0.1",
        "user": "deploy",
        "private_key": protected_key(),
        "private_key_passphrase": PASSPHRASE,
    }
    created = await client.post("/api/v1/hosts", headers=admin.headers, json=body)
    assert created.status_code == 201, created.text
    first_public = created.json()["public_key"]
    assert first_public.startswith("ssh-ed25519 ")

    changed = await client.patch(
        f"/api/v1/hosts/{created.json()['id']}",
        headers=admin.headers,
        json={"private_key": protected_key(), "private_key_passphrase": PASSPHRASE},
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["public_key"].startswith("ssh-ed25519 ")
    assert changed.json()["public_key"] != first_public
    assert held == [0, 0]
