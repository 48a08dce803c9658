"""A trigger's launch (schedule fire, webhook delivery): DB only, checked like a launch, the run
records what fired it, the commit is resolved by the worker at checkout."""

from __future__ import annotations

import uuid
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import select

from shipyard.accounts.models import AuditEvent
from shipyard.errors import ValidationFailed
from shipyard.runtime import Runtime
from shipyard.schedules.models import Schedule
from shipyard.templates.triggered import launch_from_trigger
from tests.builders.deployments import DeployBuilder
from tests.support import canary
from tests.support.git_server import GitFile

SHOW = GitFile('#!/bin/sh\necho "version=$version password=$DB_PASSWORD"\n')


async def test_launch_from_trigger_runs_the_template_and_records_the_schedule(
    deploy: DeployBuilder, runtime: Runtime
) -> None:
    secret = canary.remember("trigger-secret-" + uuid.uuid4().hex, "triggered secret parameter")
    repo = await deploy.repo({"show.sh": SHOW})
    (host,) = await deploy.hosts(1)
    created = await deploy.client.post(
        "/api/v1/templates",
        headers=deploy.admin.headers,
        json={
            "name": "nightly",
            "repository_id": repo.id,
            "ref": repo.hosted.default_branch,
            "scripts": [{"script_id": repo.scripts["show.sh"]}],
            "target": {"host_ids": [host["id"]]},
            "parameters": [
                {"name": "version", "type": "string", "required": True, "pattern": r"[0-9.]+"},
                {"name": "DB_PASSWORD", "type": "secret", "required": True},
            ],
        },
    )
    assert created.status_code == 201, created.text
    template_id = UUID(created.json()["id"])
    tenant_id = UUID(deploy.admin.tenant_id)
    async with runtime.db.session(system=True) as session:
        schedule = Schedule(tenant_id=tenant_id, template_id=template_id, cron="0 3 * * *")
        session.add(schedule)
        await session.flush()
        schedule_id = schedule.id
    launched_by: dict[str, Any] = {"kind": "schedule", "id": str(schedule_id), "name": "0 3 * * *"}

    # A value the template refuses is refused here too, naming the parameter; nothing is stored.
    with pytest.raises(ValidationFailed) as refused:
        async with runtime.db.session(system=True) as session:
            await launch_from_trigger(
                session=session,
                tenant_id=tenant_id,
                template_id=template_id,
                values={"version": "x y", "DB_PASSWORD": secret},
                trigger="schedule",
                launched_by=launched_by,
                schedule_id=schedule_id,
            )
    assert refused.value.field == "parameters.version"

    async with runtime.db.session(system=True) as session:
        deployment = await launch_from_trigger(
            session=session,
            tenant_id=tenant_id,
            template_id=template_id,
            values={"version": "2.0", "DB_PASSWORD": secret},
            trigger="schedule",
            launched_by=launched_by,
            schedule_id=schedule_id,
        )
        run_id = str(deployment.id)
    deploy.worker.start()
    done = await deploy.wait(run_id)
    assert done["status"] == "success", done
    assert done["trigger"] == "schedule"
    assert done["schedule_id"] == str(schedule_id)
    assert done["webhook_id"] is None
    assert done["launched_by"] == launched_by
    assert done["parameters"] == {"version": "2.0", "DB_PASSWORD": "***"}
    # No commit was pinned: the worker resolved the ref at checkout and recorded it.
    assert done["commit_sha"] == repo.hosted.head()
    assert "version=2.0 password=***" in await deploy.messages(run_id)

    async with runtime.db.session(system=True) as session:
        entry = await session.scalar(
            select(AuditEvent).where(
                AuditEvent.resource_id == deployment.id, AuditEvent.action == "template.launch"
            )
        )
    assert entry is not None
    assert entry.actor_profile_id is None
    assert entry.details["launched_by"] == launched_by
    assert entry.details["schedule_id"] == str(schedule_id)

    # Another tenant's template is not found (a system session spans tenants).
    with pytest.raises(Exception, match="template not found"):
        async with runtime.db.session(system=True) as session:
            await launch_from_trigger(
                session=session,
                tenant_id=uuid.uuid4(),
                template_id=template_id,
                values={},
                trigger="schedule",
                launched_by=launched_by,
            )
