"""Worker pools on hosts and groups: API round trip, validation, and the effective pool."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import httpx

from shipyard.db import Database
from shipyard.hosts.inventory import effective_pools
from tests.support.api import Account, error_fields

HOST = {"ip": "127.0.0.1", "port": 22, "user": "deploy", "password": "pw-12345"}


async def post(
    client: httpx.AsyncClient, admin: Account, path: str, body: dict[str, Any]
) -> dict[str, Any]:
    response = await client.post(path, headers=admin.headers, json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def test_pool_round_trips_is_validated_and_resolves_host_then_groups(
    client: httpx.AsyncClient, admin: Account, db: Database
) -> None:
    own = await post(client, admin, "/api/v1/hosts", {"name": "own", "pool": "dc-west", **HOST})
    assert own["pool"] == "dc-west"
    grouped = await post(client, admin, "/api/v1/hosts", {"name": "grouped", **HOST})
    twice = await post(client, admin, "/api/v1/hosts", {"name": "twice", **HOST})
    free = await post(client, admin, "/api/v1/hosts", {"name": "free", **HOST})
    assert grouped["pool"] is None
    east = await post(
        client,
        admin,
        "/api/v1/host-groups",
        {"name": "east", "pool": "dc-east", "host_ids": [own["id"], grouped["id"], twice["id"]]},
    )
    assert east["pool"] == "dc-east"
    await post(
        client,
        admin,
        "/api/v1/host-groups",
        {"name": "zulu", "pool": "dc-zulu", "host_ids": [twice["id"]]},
    )
    await post(client, admin, "/api/v1/host-groups", {"name": "nopool", "host_ids": [free["id"]]})

    for path, body in (
        ("/api/v1/hosts", {"name": "bad", "pool": "DC East", **HOST}),
        (f"/api/v1/hosts/{own['id']}", {"pool": "-edge"}),
        ("/api/v1/host-groups", {"name": "bad", "pool": "x" * 41}),
        (f"/api/v1/host-groups/{east['id']}", {"pool": "dc east"}),
    ):
        method = client.post if path.count("/") == 3 else client.patch
        response = await method(path, headers=admin.headers, json=body)
        assert response.status_code == 422, (path, response.text)
        assert error_fields(response) == ["pool"], response.text

    tenant = UUID(admin.tenant_id)
    ids = [UUID(h["id"]) for h in (own, grouped, twice, free)]
    unknown = UUID(int=7)
    async with db.session(tenant_id=tenant) as session:
        pools = await effective_pools(session=session, tenant_id=tenant, host_ids=[*ids, unknown])
    # Own pool first; else the groups' (by name, the last naming one wins); else any worker.
    assert pools == dict(
        zip([*ids, unknown], ["dc-west", "dc-east", "dc-zulu", None, None], strict=True)
    )

    cleared = await client.patch(
        f"/api/v1/hosts/{own['id']}", headers=admin.headers, json={"pool": None}
    )
    assert cleared.status_code == 200 and cleared.json()["pool"] is None
    group = await client.patch(
        f"/api/v1/host-groups/{east['id']}", headers=admin.headers, json={"pool": "dc-north"}
    )
    assert group.json()["pool"] == "dc-north"
    fetched = await client.get(f"/api/v1/host-groups/{east['id']}", headers=admin.headers)
    assert fetched.json()["pool"] == "dc-north"
    async with db.session(tenant_id=tenant) as session:
        pools = await effective_pools(session=session, tenant_id=tenant, host_ids=ids[:1])
    assert pools == {ids[0]: "dc-north"}
