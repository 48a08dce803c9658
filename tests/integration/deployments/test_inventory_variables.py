"""Inventory variables at run time on real sshd hosts: group < host < run, secrets masked."""

from __future__ import annotations

import uuid

import psycopg

from shipyard.db import to_libpq_url
from tests.builders.deployments import DeployBuilder
from tests.support import canary
from tests.support.git_server import GitFile

SHOW = GitFile(
    "#!/bin/sh\n"
    'echo "level=$LEVEL group_only=$GROUP_ONLY host_only=$HOST_ONLY"\n'
    'echo "token=$GROUP_TOKEN"\n'
)


async def test_group_then_host_then_run_and_secrets_masked(
    deploy: DeployBuilder, database_url: str
) -> None:
    secret = canary.remember("inventory-secret-" + uuid.uuid4().hex, "inventory secret variable")
    repo = await deploy.repo({"show.sh": SHOW})
    plain, overridden = await deploy.hosts(
        2, variables=[{"name": "LEVEL", "value": "host"}, {"name": "HOST_ONLY", "value": "h"}]
    )
    group = await deploy.client.post(
        "/api/v1/host-groups",
        headers=deploy.admin.headers,
        json={
            "name": "prod",
            "host_ids": [plain["id"], overridden["id"]],
            "variables": [
                {"name": "LEVEL", "value": "group"},
                {"name": "GROUP_ONLY", "value": "g"},
                {"name": "GROUP_TOKEN", "value": secret, "secret": True},
            ],
        },
    )
    assert group.status_code == 201, group.text
    assert secret not in group.text

    # The host's own LEVEL beats the group's; the run's beats both, on the host it reaches.
    host_level = await deploy.run(repo, [plain], ("show.sh", []))
    assert host_level["status"] == "success", host_level
    messages = await deploy.messages(host_level["id"])
    assert "level=host group_only=g host_only=h" in messages, messages
    assert "token=***" in messages

    run_level = await deploy.run(
        repo, [overridden], ("show.sh", []), environment=[{"name": "LEVEL", "value": "run"}]
    )
    assert run_level["status"] == "success", run_level
    assert "level=run group_only=g host_only=h" in await deploy.messages(run_level["id"])

    for deployment_id in (host_level["id"], run_level["id"]):
        response = await deploy.get(deployment_id)
        assert secret not in response.text
        scripts = await deploy.scripts(deployment_id)
        assert secret not in str(scripts)
    with psycopg.connect(to_libpq_url(database_url)) as conn:
        stored = conn.execute(
            "SELECT string_agg(message, '\n') FROM deployment_logs UNION ALL "
            "SELECT string_agg(output, '\n') FROM deployment_scripts UNION ALL "
            "SELECT string_agg(coalesce(value, '') || coalesce(secret_value, ''), '\n') "
            "FROM inventory_variables"
        ).fetchall()
    assert secret not in str(stored)
