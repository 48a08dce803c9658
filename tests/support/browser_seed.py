"""Rows for browser tests that only need something to show (runs come from the real runner)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID

import httpx

from shipyard.db import Database
from shipyard.deployments.logs import notify_deployment
from shipyard.deployments.models import Deployment, DeploymentLog, DeploymentScript
from shipyard.hosts.models import Host
from tests.support.api import Account
from tests.support.git_server import GitFile, HostedRepo

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.support.browser import LiveServer


@dataclass
class SeededRun:
    deployment_id: UUID
    good_host: UUID
    bad_host: UUID


async def seed_running_deployment(
    db: Database, account: Account, *, name: str, host_prefix: str = ""
) -> SeededRun:
    """A deployment in progress on two hosts: one script done, one failed with exit code 3."""
    now = datetime.now(UTC)
    tenant_id, user_id = UUID(account.tenant_id), UUID(account.user_id)
    async with db.session(tenant_id=tenant_id, user_id=user_id) as session:
        good = Host(
            name=f"{host_prefix}web-1", ip="127.0.0.1", port=22, user="deploy", status="online"
        )
        bad = Host(
            name=f"{host_prefix}web-2", ip="127.0.0.1", port=22, user="deploy", status="online"
        )
        session.add_all([good, bad])
        await session.flush()
        deployment = Deployment(
            name=name,
            status="in_progress",
            host_ids=[good.id, bad.id],
            started_at=now - timedelta(seconds=5),
            options={"parallelism": 2, "stop_on_failure": False},
            created_by=user_id,
        )
        session.add(deployment)
        await session.flush()
        session.add_all(
            [
                DeploymentScript(
                    deployment_id=deployment.id,
                    host_id=good.id,
                    name="deploy.sh",
                    path="scripts/deploy.sh",
                    status="success",
                    exit_code=0,
                    started_at=now - timedelta(seconds=4),
                    completed_at=now - timedelta(seconds=2, milliseconds=500),
                ),
                DeploymentScript(
                    deployment_id=deployment.id,
                    host_id=bad.id,
                    name="deploy.sh",
                    path="scripts/deploy.sh",
                    status="failed",
                    exit_code=3,
                    started_at=now - timedelta(seconds=4),
                    completed_at=now - timedelta(seconds=1),
                ),
            ]
        )
        session.add_all(
            [
                DeploymentLog(
                    deployment_id=deployment.id, host_id=good.id, level="INFO", message="pulling"
                ),
                DeploymentLog(
                    deployment_id=deployment.id, host_id=bad.id, level="INFO", message="pulling"
                ),
                DeploymentLog(
                    deployment_id=deployment.id,
                    host_id=bad.id,
                    level="ERROR",
                    message="disk full on web-2",
                ),
            ]
        )
        return SeededRun(deployment_id=deployment.id, good_host=good.id, bad_host=bad.id)


async def append_log(
    db: Database, account: Account, deployment_id: UUID, *, message: str, level: str = "INFO"
) -> None:
    async with db.session(tenant_id=UUID(account.tenant_id)) as session:
        session.add(DeploymentLog(deployment_id=deployment_id, level=level, message=message))
        await notify_deployment(session, deployment_id)


async def finish(db: Database, account: Account, deployment_id: UUID, status: str) -> None:
    async with db.session(tenant_id=UUID(account.tenant_id)) as session:
        deployment = await session.get(Deployment, deployment_id)
        assert deployment is not None
        deployment.status = status
        deployment.completed_at = datetime.now(UTC)
        await notify_deployment(session, deployment_id)


async def populate_tenant(
    live_server: LiveServer,
    admin: Account,
    db: Database,
    make_git_repo: Callable[..., HostedRepo],
) -> dict[str, Any]:
    """Something of everything, so detail pages, files and filters have content."""
    hosted = make_git_repo(
        {
            "README.md": GitFile("# hello\n"),
            "deploy/run.sh": GitFile(
                '#!/bin/sh\nset -e\necho "deploying $1"\nsystemctl restart app\n',
                executable=True,
            ),
            "tools/check.py": GitFile("import sys\n\nprint('ok', sys.argv[1:])\n"),
        },
        public=True,
    )
    async with httpx.AsyncClient(base_url=live_server.url, headers=admin.headers) as http:
        added = await http.post("/api/v1/repositories", json={"url": hosted.clone_url})
        assert added.status_code == 201, added.text
        repository = added.json()
        await http.put(f"/api/v1/repositories/{repository['id']}/pin")
        await http.post("/api/v1/auth/tokens", json={"name": "ci"})
    finished = await seed_running_deployment(db, admin, name="Release 2.4 to production")
    await finish(db, admin, finished.deployment_id, "partial")
    running = await seed_running_deployment(
        db, admin, name="Nightly cache warm-up", host_prefix="batch-"
    )
    return {"repository": repository, "finished": finished, "running": running}
