"""The scheduler against one database: at most once per fire time with two workers, a
``serve``-style worker and concurrent ticks; downtime (run_once: one catch-up run; skip:
missed rows); overlap policies against a run that is still going on a real sshd host.

Time is moved on an injectable clock, never waited for. Where a worker runs on the machine's
clock, the schedules fire on the first of a month, which that clock never reaches in a test.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import func, select

from shipyard.config import Settings
from shipyard.db import Database
from shipyard.deployments.heartbeats import Drain
from shipyard.deployments.models import Deployment
from shipyard.runtime import Runtime, build_runtime, close_runtime
from shipyard.schedules.models import ScheduleFire
from shipyard.schedules.tasks import tick
from shipyard.worker import run_worker, stop_worker, supervise_worker
from tests.builders.deployments import DeployBuilder
from tests.support.git_server import GitFile

MONTHLY = "0 0 1 * *"
BURST = 12


class MovableClock:
    """A clock the test sets; monotonic time is the machine's (procrastinate needs it)."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at

    def monotonic(self) -> float:
        return time.monotonic()


@contextlib.asynccontextmanager
async def runtimes(
    settings: Settings, db: Database, clock: MovableClock, count: int
) -> AsyncIterator[list[Runtime]]:
    built = [build_runtime(settings, db=db, clock=clock) for _ in range(count)]
    try:
        yield built
    finally:
        for runtime in built:
            await close_runtime(runtime)


async def api(deploy: DeployBuilder, method: str, path: str, json: Any = None) -> Any:
    response = await deploy.client.request(
        method, f"/api/v1{path}", headers=deploy.admin.headers, json=json
    )
    assert response.status_code < 300, (method, path, response.text)
    return response.json()


async def make_template(deploy: DeployBuilder, script: str) -> str:
    repo = await deploy.repo({"job.sh": GitFile(script)})
    (host,) = await deploy.hosts(1)
    template = await api(
        deploy,
        "POST",
        "/templates",
        {
            "name": "scheduled",
            "repository_id": repo.id,
            "ref": repo.hosted.default_branch,
            "scripts": [{"script_id": repo.scripts["job.sh"]}],
            "target": {"host_ids": [host["id"]]},
        },
    )
    template_id: str = template["id"]
    return template_id


async def make_schedule(deploy: DeployBuilder, template_id: str, **fields: Any) -> dict[str, Any]:
    body = {"cron": MONTHLY, "timezone": "UTC", **fields}
    schedule: dict[str, Any] = await api(
        deploy, "POST", f"/templates/{template_id}/schedules", body
    )
    return schedule


async def fires(db: Database, schedule_id: str) -> list[ScheduleFire]:
    async with db.session(system=True) as session:
        rows = await session.scalars(
            select(ScheduleFire)
            .where(ScheduleFire.schedule_id == UUID(schedule_id))
            .order_by(ScheduleFire.fire_time)
        )
        return list(rows)


async def runs_of(db: Database, schedule_id: str) -> list[Deployment]:
    async with db.session(system=True) as session:
        rows = await session.scalars(
            select(Deployment)
            .where(Deployment.schedule_id == UUID(schedule_id))
            .order_by(Deployment.created_at)
        )
        return list(rows)


def first_of_months(start: datetime, count: int) -> list[datetime]:
    times = [start]
    while len(times) < count:
        last = times[-1]
        times.append(last.replace(year=last.year + last.month // 12, month=last.month % 12 + 1))
    return times


async def test_each_fire_time_fires_once_with_two_workers_a_serve_worker_and_racing_ticks(
    deploy: DeployBuilder, db: Database, settings: Settings
) -> None:
    template_id = await make_template(deploy, "#!/bin/sh\necho scheduled-run\n")
    # Every minute: the workers run every periodic task on the moved clock (the accounts
    # purge too), so it stays within minutes of the machine's (log-in sessions stay valid).
    # All start at one minute two minutes ahead, however long creating them takes.
    begin = (datetime.now(UTC) + timedelta(minutes=2)).replace(second=0, microsecond=0)
    schedule = await make_schedule(
        deploy,
        template_id,
        overlap_policy="allow",
        cron="* * * * *",
        starts_at=begin.isoformat(),
    )
    start = datetime.fromisoformat(schedule["next_fire_at"])
    assert start == begin
    expected = [start + timedelta(minutes=index) for index in range(3)]
    # A burst at the first time: more schedules due at once than one transaction takes, so
    # ticks drain in parallel and call other workers in (schedules:drain).
    burst = [
        await make_schedule(
            deploy,
            template_id,
            overlap_policy="allow",
            cron="* * * * *",
            starts_at=begin.isoformat(),
            ends_at=(begin + timedelta(seconds=1)).isoformat(),
        )
        for _ in range(BURST)
    ]
    clock = MovableClock(start - timedelta(seconds=5))
    fast = settings.model_copy(
        update={"worker_poll_interval_seconds": 0.2, "worker_heartbeat_seconds": 0.3}
    )
    async with runtimes(fast, db, clock, 5) as (one, two, served, racer_a, racer_b):
        workers = [
            asyncio.create_task(run_worker(runtime=one, concurrency=4, name="scheduler-one")),
            asyncio.create_task(run_worker(runtime=two, concurrency=4, name="scheduler-two")),
        ]
        drain = Drain()
        serve_worker = asyncio.create_task(
            supervise_worker(runtime=served, concurrency=4, give_up_after=None, drain=drain)
        )
        try:
            for fire_time in expected:
                clock.at = fire_time + timedelta(seconds=1)
                # Ticks race each other and the workers' own periodic ticks.
                await asyncio.gather(*(tick(rt) for rt in (racer_a, racer_b, one, two, served)))
                await asyncio.gather(*(tick(rt) for rt in (racer_a, racer_b)))
            rows = await fires(db, schedule["id"])
            runs = await runs_of(db, schedule["id"])
            burst_fires = [await fires(db, item["id"]) for item in burst]
            burst_runs = [await runs_of(db, item["id"]) for item in burst]
            for run in [*runs, *(run for group in burst_runs for run in group)]:
                done = await deploy.wait(str(run.id))
                assert done["status"] == "success", done
        finally:
            for task in workers:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await stop_worker(serve_worker, drain, grace=1.0)
    assert [row.fire_time for row in rows] == expected
    assert [row.verdict for row in rows] == ["ran", "ran", "ran"]
    assert len(runs) == 3
    assert sorted(str(row.deployment_id) for row in rows) == sorted(str(run.id) for run in runs)
    assert {run.trigger for run in runs} == {"schedule"}
    for item, item_fires, item_runs in zip(burst, burst_fires, burst_runs, strict=True):
        assert [(row.fire_time, row.verdict) for row in item_fires] == [(start, "ran")], item
        assert [run.id for run in item_runs] == [item_fires[0].deployment_id]
    assert {run.launched_by["kind"] for run in runs if run.launched_by} == {"schedule"}
    after = await api(deploy, "GET", f"/schedules/{schedule['id']}")
    assert after["last_fire_at"] is not None
    assert datetime.fromisoformat(after["next_fire_at"]) == start + timedelta(minutes=3)


@pytest.mark.parametrize("policy", ["run_once", "skip"])
async def test_downtime_spanning_three_fires(
    deploy: DeployBuilder, db: Database, settings: Settings, policy: str
) -> None:
    template_id = await make_template(deploy, "#!/bin/sh\necho caught-up\n")
    schedule = await make_schedule(deploy, template_id, missed_policy=policy)
    start = datetime.fromisoformat(schedule["next_fire_at"])
    missed = first_of_months(start, 3)
    # Down from before the first until a day after the third fire time.
    clock = MovableClock(missed[-1] + timedelta(days=1))
    async with runtimes(settings, db, clock, 2) as (one, two):
        await asyncio.gather(tick(one), tick(two))
        await tick(one)
    rows = await fires(db, schedule["id"])
    runs = await runs_of(db, schedule["id"])
    assert [row.fire_time for row in rows] == missed
    if policy == "run_once":
        assert [row.verdict for row in rows] == ["missed", "missed", "ran"]
        assert len(runs) == 1
        assert rows[-1].deployment_id == runs[0].id
        assert "catch-up run for 3 missed fire(s)" in (rows[-1].reason or "")
        assert "caught up by one run" in (rows[0].reason or "")
    else:
        assert [row.verdict for row in rows] == ["missed", "missed", "missed"]
        assert runs == []
        assert all("missed policy skip" in (row.reason or "") for row in rows)
    listed = await api(deploy, "GET", f"/schedules/{schedule['id']}/fires")
    assert sorted(item["verdict"] for item in listed["items"]) == sorted(r.verdict for r in rows)
    after = await api(deploy, "GET", f"/schedules/{schedule['id']}")
    assert datetime.fromisoformat(after["next_fire_at"]) == first_of_months(start, 4)[-1]


async def test_overlap_policies_against_a_run_still_going(
    deploy: DeployBuilder, db: Database, settings: Settings
) -> None:
    template_id = await make_template(deploy, "#!/bin/sh\nsleep 3\necho slept\n")
    deploy.worker.start()
    skip = await make_schedule(deploy, template_id, overlap_policy="skip")
    queue = await make_schedule(deploy, template_id, overlap_policy="queue")
    allow = await make_schedule(deploy, template_id, overlap_policy="allow")
    running = await api(deploy, "POST", f"/templates/{template_id}/launch", {"parameters": {}})
    await deploy.wait(running["id"], {"in_progress"})
    clock = MovableClock(datetime.fromisoformat(skip["next_fire_at"]) + timedelta(seconds=1))
    async with runtimes(settings, db, clock, 1) as (runtime,):
        await tick(runtime)
        (skipped,) = await fires(db, skip["id"])
        (queued,) = await fires(db, queue["id"])
        (allowed,) = await fires(db, allow["id"])
        assert skipped.verdict == "skipped"
        assert skipped.deployment_id is None
        assert running["id"] in (skipped.reason or "")
        assert queued.verdict == "queued"
        assert allowed.verdict == "ran"
        assert running["id"] in (allowed.reason or "")
        held = await deploy.wait(str(queued.deployment_id), {"scheduled"})
        assert held["status"] == "scheduled"
        alongside = await deploy.wait(str(allowed.deployment_id), {"in_progress", "success"})
        assert alongside["status"] in ("in_progress", "success")
        # The queued run starts only after both earlier runs have ended.
        first = await deploy.wait(running["id"])
        second = await deploy.wait(str(allowed.deployment_id))
        assert first["status"] == second["status"] == "success"
        for _ in range(100):
            await tick(runtime)
            state = await api(deploy, "GET", f"/deployments/{queued.deployment_id}")
            if state["status"] != "scheduled":
                break
            await asyncio.sleep(0.1)
        released = await deploy.wait(str(queued.deployment_id))
    assert released["status"] == "success", released
    ended = max(
        datetime.fromisoformat(first["completed_at"]),
        datetime.fromisoformat(second["completed_at"]),
    )
    assert datetime.fromisoformat(released["started_at"]) >= ended
    async with db.session(system=True) as session:
        count = await session.scalar(
            select(func.count())
            .select_from(Deployment)
            .where(Deployment.template_id == UUID(template_id))
        )
    assert count == 3  # the manual run, the allowed and the queued one; nothing for skip


async def test_a_fire_the_changed_template_refuses_is_recorded_failed(
    deploy: DeployBuilder, db: Database, settings: Settings
) -> None:
    template_id = await make_template(deploy, "#!/bin/sh\necho never\n")
    await api(
        deploy,
        "PATCH",
        f"/templates/{template_id}",
        {"parameters": [{"name": "version", "type": "string", "pattern": "[0-9.]+"}]},
    )
    schedule = await make_schedule(deploy, template_id, parameters={"version": "1.0"})
    # The template changes after the schedule was saved: its value is no longer accepted.
    await api(
        deploy,
        "PATCH",
        f"/templates/{template_id}",
        {"parameters": [{"name": "version", "type": "string", "pattern": "[a-z]+"}]},
    )
    fire_time = datetime.fromisoformat(schedule["next_fire_at"])
    async with runtimes(settings, db, MovableClock(fire_time + timedelta(seconds=2)), 1) as (rt,):
        await tick(rt)
    (row,) = await fires(db, schedule["id"])
    assert row.verdict == "failed"
    assert row.deployment_id is None
    assert (row.reason or "").startswith("parameters.version:"), row.reason
    assert await runs_of(db, schedule["id"]) == []
    after = await api(deploy, "GET", f"/schedules/{schedule['id']}")
    assert after["last_fire"]["verdict"] == "failed"
    assert datetime.fromisoformat(after["next_fire_at"]) > fire_time
