"""Benchmark (not collected by the suite: run it by name): one tick firing N schedules due in
the same second, for N in 10, 100, 1,000 (``FIRE_SIZES=10,100,1000``).

    .venv/bin/pytest -q -s -p no:cacheprovider -o addopts="" tests/integration/schedules/bench_fire.py

Each size on a fresh database: one template (a real repository and host), N schedules of it due
at one instant (overlap policy allow, a plain and a secret parameter), then two ticks at once on
two runtimes in this process (helper jobs off: the time is the fire side's own). Prints the
wall time of the two ticks together, per fire, this process's CPU time (the Python side; the
rest is PostgreSQL), the load average, and checks the fires and runs made (runs are not
executed: no worker). ``FIRE_PROFILE=path`` dumps a cProfile of the ticks there.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest
from sqlalchemy import func, select

from shipyard.config import Settings
from shipyard.db import Database
from shipyard.deployments.models import Deployment
from shipyard.schedules.models import Schedule
from shipyard.schedules.tasks import tick
from tests.builders.deployments import DeployBuilder
from tests.integration.schedules.test_scheduler import MovableClock, api, runtimes
from tests.support.git_server import GitFile

SIZES = [int(size) for size in os.environ.get("FIRE_SIZES", "10,100,1000").split(",")]


@pytest.mark.parametrize("size", SIZES)
async def test_fire_burst(
    deploy: DeployBuilder, db: Database, settings: Settings, size: int
) -> None:
    repo = await deploy.repo({"job.sh": GitFile('#!/bin/sh\necho "$1"\n')})
    (host,) = await deploy.hosts(1)
    template = await api(
        deploy,
        "POST",
        "/templates",
        {
            "name": "bench",
            "repository_id": repo.id,
            "ref": repo.hosted.default_branch,
            "scripts": [{"script_id": repo.scripts["job.sh"], "arguments": ["v{{ version }}"]}],
            "target": {"host_ids": [host["id"]]},
            "parameters": [
                {"name": "version", "type": "string", "required": True},
                {"name": "TOKEN", "type": "secret", "required": True},
            ],
        },
    )
    template_id = UUID(template["id"])
    due = (datetime.now(UTC) + timedelta(days=40)).replace(second=0, microsecond=0)
    async with db.session(system=True) as session:
        session.add_all(
            Schedule(
                tenant_id=UUID(deploy.admin.tenant_id),
                template_id=template_id,
                cron="0 0 1 * *",
                parameters={"version": f"1.{index}"},
                secret_parameters=json.dumps({"TOKEN": "bench-token-value"}),
                overlap_policy="allow",
                next_fire_at=due,
            )
            for index in range(size)
        )
    clock = MovableClock(due + timedelta(seconds=1))
    async with runtimes(settings, db, clock, 2) as (one, two):
        began, cpu = time.monotonic(), time.process_time()
        if os.environ.get("FIRE_PROFILE"):
            import cProfile

            profile = cProfile.Profile()
            profile.enable()
        results = await asyncio.gather(tick(one, helpers=False), tick(two, helpers=False))
        took, cpu = time.monotonic() - began, time.process_time() - cpu
        if os.environ.get("FIRE_PROFILE"):
            profile.disable()
            profile.dump_stats(os.environ["FIRE_PROFILE"])
    async with db.session(system=True) as session:
        runs = await session.scalar(
            select(func.count())
            .select_from(Deployment)
            .where(Deployment.template_id == template_id)
        )
    fired = sum(result.fired for result in results)
    load = os.getloadavg()[0]
    print(
        f"\nFIRE size={size} fired={fired} runs={runs} took={took:.3f}s "
        f"per_fire={1000 * took / max(fired, 1):.2f}ms python_cpu={cpu:.3f}s load1={load:.1f}"
    )
    assert fired == runs == size
