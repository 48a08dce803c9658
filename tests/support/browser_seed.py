"""Rows for browser tests that only need something to show (runs come from the real runner)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID

import httpx
from sqlalchemy import select, update

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
    await add_showcase(db, admin, finished)
    await finish(db, admin, finished.deployment_id, "partial")
    running = await seed_running_deployment(
        db, admin, name="Nightly cache warm-up", host_prefix="batch-"
    )
    return {"repository": repository, "finished": finished, "running": running}


# What the README's deployment screenshot shows: a grid of four hosts x three scripts with a failed
# cell, and a log with ANSI colours, a progress bar, stderr and Shipyard's own events.
_SHOWCASE_SCRIPTS = ("deploy.sh", "migrate.sh", "smoke-test.sh")
_SHOWCASE_OUTPUT: tuple[tuple[str, int, str, str], ...] = (
    # (host, script position, stream, message)
    (
        "web-1",
        0,
        "stdout",
        "\x1b[1mStep 1/3\x1b[0m pulling \x1b[36mregistry.local/shop:2.4.0\x1b[0m",
    ),
    (
        "web-1",
        0,
        "stdout",
        "Downloading  10%\rDownloading  55%\rDownloading 100% \x1b[32mdone\x1b[0m",
    ),
    ("web-1", 0, "stderr", "npm \x1b[33mWARN\x1b[0m deprecated inflight@1.0.6: not supported"),
    ("web-1", 0, "stdout", "\x1b[32m[ok]\x1b[0m container shop-web restarted (pid 4121)"),
    (
        "web-3",
        0,
        "stdout",
        "\x1b[1mStep 1/3\x1b[0m pulling \x1b[36mregistry.local/shop:2.4.0\x1b[0m",
    ),
    (
        "web-2",
        0,
        "stderr",
        "\x1b[1;31merror:\x1b[0m write /var/lib/docker/tmp: no space left on device",
    ),
    ("web-1", 1, "stdout", "\x1b[1mStep 2/3\x1b[0m applying migrations"),
    ("web-1", 1, "stdout", "  \x1b[32mAPPLY\x1b[0m 0042_orders_index \x1b[2m(118 ms)\x1b[0m"),
    ("web-1", 1, "stdout", "  \x1b[33mSKIP\x1b[0m  0043_backfill \x1b[2m(already applied)\x1b[0m"),
    (
        "web-3",
        1,
        "stdout",
        "  \x1b[33mSKIP\x1b[0m  0042_orders_index \x1b[2m(already applied)\x1b[0m",
    ),
    ("web-1", 2, "stdout", "\x1b[1mStep 3/3\x1b[0m GET /healthz \x1b[32m200 OK\x1b[0m in 12 ms"),
    ("web-3", 2, "stdout", "\x1b[1mStep 3/3\x1b[0m GET /healthz \x1b[32m200 OK\x1b[0m in 15 ms"),
    ("web-4", 2, "stderr", "curl: (28) \x1b[33mslow answer\x1b[0m, retrying in 1 s"),
    ("web-4", 2, "stdout", "\x1b[1mStep 3/3\x1b[0m GET /healthz \x1b[32m200 OK\x1b[0m in 1,204 ms"),
)


async def add_showcase(db: Database, account: Account, run: SeededRun) -> None:
    """Widen ``run`` for the screenshots: two more hosts, three scripts, coloured output."""
    now = datetime.now(UTC)
    tenant_id = UUID(account.tenant_id)
    async with db.session(tenant_id=tenant_id, user_id=UUID(account.user_id)) as session:
        deployment = await session.get(Deployment, run.deployment_id)
        assert deployment is not None
        extra = [
            Host(name=name, ip="127.0.0.1", port=22, user="deploy", status="online")
            for name in ("web-3", "web-4")
        ]
        session.add_all(extra)
        await session.flush()
        deployment.host_ids = [*deployment.host_ids, *(host.id for host in extra)]
        hosts = {"web-1": run.good_host, "web-2": run.bad_host}
        hosts.update({host.name: host.id for host in extra})
        rows: dict[tuple[str, int], DeploymentScript] = {}
        for name, host_id in hosts.items():
            for position, script in enumerate(_SHOWCASE_SCRIPTS):
                if name in ("web-1", "web-2") and position == 0:
                    continue  # seed_running_deployment's rows
                skipped = name == "web-2"
                start = now - timedelta(seconds=4 - position)
                row = DeploymentScript(
                    deployment_id=deployment.id,
                    host_id=host_id,
                    name=script,
                    path=f"scripts/{script}",
                    position=position,
                    status="skipped" if skipped else "success",
                    exit_code=None if skipped else 0,
                    started_at=None if skipped else start,
                    completed_at=None if skipped else start + timedelta(milliseconds=700),
                )
                session.add(row)
                rows[(name, position)] = row
        await session.flush()
        firsts = (
            await session.scalars(
                select(DeploymentScript).where(
                    DeploymentScript.deployment_id == deployment.id,
                    DeploymentScript.position == 0,
                    DeploymentScript.host_id.in_([run.good_host, run.bad_host]),
                )
            )
        ).all()
        for first in firsts:
            rows[("web-1" if first.host_id == run.good_host else "web-2", 0)] = first
        # seed_running_deployment's lines came first: dated before these.
        await session.execute(
            update(DeploymentLog)
            .where(DeploymentLog.deployment_id == deployment.id)
            .values(timestamp=now - timedelta(seconds=4))
        )
        for index, (name, position, stream, message) in enumerate(_SHOWCASE_OUTPUT):
            session.add(
                DeploymentLog(
                    deployment_id=deployment.id,
                    host_id=hosts[name],
                    deployment_script_id=rows[(name, position)].id,
                    level="INFO",
                    stream=stream,
                    message=message,
                    timestamp=now - timedelta(seconds=3) + timedelta(milliseconds=150 * index),
                )
            )
            await session.flush()  # one row at a time: stored in this order
        for index, (level, message) in enumerate(
            (
                ("ERROR", "[web-2] deploy.sh exited with code 3"),
                ("WARNING", "Deployment finished: partial (3 of 4 hosts succeeded)."),
            ),
            start=len(_SHOWCASE_OUTPUT),
        ):
            session.add(
                DeploymentLog(
                    deployment_id=deployment.id,
                    level=level,
                    message=message,
                    timestamp=now - timedelta(seconds=3) + timedelta(milliseconds=150 * index),
                )
            )
            await session.flush()
