"""The ``deploy`` builder: deployments set up, run and read back through the API.

``deploy`` composes ``client``, ``admin``, ``script_repo``, ``deploy_hosts``, ``worker`` and
``wait_for_status`` so a test states only what matters to it::

    repo = await deploy.repo(SCRIPTS)                # served by git, added by URL
    hosts = await deploy.hosts(2)                    # hosts on the shared sshd fleet
    done = await deploy.run(repo, hosts, ("check.sh", []))   # created, worker started, finished
    scripts = await deploy.scripts(done["id"])

Every method acts as ``admin`` unless given ``account=``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.fixtures.deployments import (
    HostsFactory,
    ScriptRepo,
    ScriptRepoFactory,
    WaitForStatus,
    WorkerControl,
)
from tests.support.api import Account

Script = tuple[str, list[str]]


@dataclass
class DeployBuilder:
    """Creates deployments through the API, runs them on the worker and reads them back."""

    client: httpx.AsyncClient
    admin: Account
    worker: WorkerControl
    script_repo: ScriptRepoFactory
    deploy_hosts: HostsFactory
    wait_for_status: WaitForStatus

    async def repo(
        self, files: Mapping[str, object], *, account: Account | None = None
    ) -> ScriptRepo:
        """``files`` served as a public repository, added by URL, with its script ids."""
        return await self.script_repo(account or self.admin, files)

    async def hosts(
        self, count: int, *, account: Account | None = None, **fields: Any
    ) -> list[dict[str, Any]]:
        return await self.deploy_hosts(account or self.admin, count, **fields)

    @staticmethod
    def body(
        repo: ScriptRepo, hosts: list[dict[str, Any]], *scripts: Script, **extra: Any
    ) -> dict[str, Any]:
        """The JSON of POST /deployments: ``scripts`` as (path, arguments), then any field."""
        return {
            "name": extra.pop("name", "ship it"),
            "repository_id": repo.id,
            "scripts": [
                {"script_id": repo.scripts[path], "arguments": args} for path, args in scripts
            ],
            "host_ids": [host["id"] for host in hosts],
            **extra,
        }

    async def create(
        self, payload: dict[str, Any], *, account: Account | None = None
    ) -> dict[str, Any]:
        """POST /deployments, checked to answer 201."""
        response = await self.client.post(
            "/api/v1/deployments", headers=(account or self.admin).headers, json=payload
        )
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    async def start(
        self, repo: ScriptRepo, hosts: list[dict[str, Any]], *scripts: Script, **extra: Any
    ) -> dict[str, Any]:
        """Start a worker (unless one runs) and create the deployment; returns it as created."""
        if not self.worker.tasks:
            self.worker.start()
        return await self.create(self.body(repo, hosts, *scripts, **extra))

    async def run(
        self,
        repo: ScriptRepo,
        hosts: list[dict[str, Any]],
        *scripts: Script,
        timeout: float = 60.0,
        **extra: Any,
    ) -> dict[str, Any]:
        """:meth:`start`, then wait for a final status; returns the finished deployment."""
        created = await self.start(repo, hosts, *scripts, **extra)
        return await self.wait(created["id"], timeout=timeout)

    async def wait(
        self,
        deployment_id: str,
        statuses: set[str] | None = None,
        *,
        timeout: float = 60.0,
        account: Account | None = None,
    ) -> dict[str, Any]:
        """Poll until a final status (or one of ``statuses``); returns the deployment."""
        return await self.wait_for_status(
            account or self.admin, deployment_id, statuses, timeout=timeout
        )

    async def get(self, deployment_id: str, *, account: Account | None = None) -> httpx.Response:
        return await self.client.get(
            f"/api/v1/deployments/{deployment_id}", headers=(account or self.admin).headers
        )

    async def cancel(self, deployment_id: str, *, account: Account | None = None) -> httpx.Response:
        return await self.client.post(
            f"/api/v1/deployments/{deployment_id}/cancel", headers=(account or self.admin).headers
        )

    async def scripts(self, deployment_id: str) -> list[dict[str, Any]]:
        """The deployment's scripts (one per host and script), by position."""
        response = await self.client.get(
            f"/api/v1/deployments/{deployment_id}/scripts", headers=self.admin.headers
        )
        assert response.status_code == 200, response.text
        return sorted(response.json(), key=lambda script: script["position"])

    async def statuses_by_host(self, deployment_id: str) -> dict[str, str]:
        """host id -> status of its (last) script."""
        return {s["host_id"]: s["status"] for s in await self.scripts(deployment_id)}

    async def logs(self, deployment_id: str, **params: Any) -> list[dict[str, Any]]:
        """Every log line of the deployment, following the pages."""
        lines: list[dict[str, Any]] = []
        cursor = None
        for _ in range(1000):
            query = {"limit": 5000, **params, **({"cursor": cursor} if cursor else {})}
            response = await self.client.get(
                f"/api/v1/deployments/{deployment_id}/logs",
                headers=self.admin.headers,
                params=query,
            )
            page = response.json()
            lines += page["items"]
            cursor = page["next_cursor"]
            if not cursor:
                return lines
        raise AssertionError("log pages never ended")

    async def messages(self, deployment_id: str, **params: Any) -> list[str]:
        return [line["message"] for line in await self.logs(deployment_id, **params)]


@pytest.fixture
def deploy(
    client: httpx.AsyncClient,
    admin: Account,
    worker: WorkerControl,
    script_repo: ScriptRepoFactory,
    deploy_hosts: HostsFactory,
    wait_for_status: WaitForStatus,
) -> DeployBuilder:
    return DeployBuilder(client, admin, worker, script_repo, deploy_hosts, wait_for_status)
