"""Plain helpers for tests that drive deployments through the API (the ``deploy`` builder wraps them)."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support.api import Account


def body(
    repo: Any, hosts: list[dict[str, Any]], *scripts: tuple[str, list[str]], **extra: Any
) -> dict[str, Any]:
    """The JSON of POST /deployments: ``scripts`` as (path, arguments), then any field."""
    return {
        "name": extra.pop("name", "ship it"),
        "repository_id": repo.id,
        "scripts": [{"script_id": repo.scripts[path], "arguments": args} for path, args in scripts],
        "host_ids": [host["id"] for host in hosts],
        **extra,
    }


async def create(
    client: httpx.AsyncClient, account: Account, payload: dict[str, Any]
) -> dict[str, Any]:
    """POST /deployments, checked to answer 201."""
    response = await client.post("/api/v1/deployments", headers=account.headers, json=payload)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def all_logs(
    client: httpx.AsyncClient, account: Account, deployment_id: str, **params: Any
) -> list[dict[str, Any]]:
    """Every log line of the deployment, following the pages."""
    lines: list[dict[str, Any]] = []
    cursor = None
    for _ in range(1000):
        query = {"limit": 5000, **params, **({"cursor": cursor} if cursor else {})}
        page = (
            await client.get(
                f"/api/v1/deployments/{deployment_id}/logs", headers=account.headers, params=query
            )
        ).json()
        lines += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            return lines
    raise AssertionError("log pages never ended")
