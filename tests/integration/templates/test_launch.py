"""Templates launched on real sshd hosts from a real git repository: targets by group and tag,
parameters in the environment and the arguments, secrets masked, preview, pinned commit and
roll back."""

from __future__ import annotations

import uuid
from typing import Any

from tests.builders.deployments import DeployBuilder
from tests.support import canary
from tests.support.git_server import GitFile

SHOW = GitFile(
    "#!/bin/sh\n"
    'echo "release=1 version=$version dry=$DRY_RUN args=$*"\n'
    'echo "password=$DB_PASSWORD"\n'
)


async def api(
    deploy: DeployBuilder, method: str, path: str, json: Any = None, **kwargs: Any
) -> Any:
    response = await deploy.client.request(
        method, f"/api/v1{path}", headers=deploy.admin.headers, json=json, **kwargs
    )
    return response


async def test_launch_targets_group_and_tag_with_parameters_and_masked_secret(
    deploy: DeployBuilder,
) -> None:
    secret = canary.remember("param-secret-" + uuid.uuid4().hex, "secret template parameter")
    repo = await deploy.repo({"show.sh": SHOW})
    web_a, db_host, web_b, web_other = await deploy.hosts(4)
    for host, tags in ((web_a, ["web"]), (db_host, ["db"]), (web_b, ["web"]), (web_other, ["web"])):
        tagged = await api(deploy, "PATCH", f"/hosts/{host['id']}", {"tags": tags})
        assert tagged.status_code == 200, tagged.text
    group = await api(
        deploy,
        "POST",
        "/host-groups",
        {"name": "prod", "host_ids": [web_a["id"], db_host["id"]]},
    )
    assert group.status_code == 201, group.text
    template = await api(
        deploy,
        "POST",
        "/templates",
        {
            "name": "release",
            "repository_id": repo.id,
            "ref": repo.hosted.default_branch,
            "scripts": [
                {"script_id": repo.scripts["show.sh"], "arguments": ["--version={{ version }}"]}
            ],
            "target": {"group_ids": [group.json()["id"]], "tags": ["web"]},
            "parameters": [
                {"name": "version", "type": "string", "required": True, "pattern": r"[0-9.]+"},
                {"name": "DRY_RUN", "type": "boolean", "default": False},
                {"name": "DB_PASSWORD", "type": "secret", "required": True},
            ],
        },
    )
    assert template.status_code == 201, template.text
    template_id = template.json()["id"]
    values = {"version": "1.2", "DB_PASSWORD": secret}

    preview = await api(deploy, "POST", f"/templates/{template_id}/preview", {"parameters": values})
    assert preview.status_code == 200, preview.text
    shown = preview.json()
    assert shown["commit_sha"] == repo.hosted.head()
    assert [s["path"] for s in shown["scripts"]] == ["show.sh"]
    assert shown["scripts"][0]["arguments"] == ["--version=1.2"]
    assert [h["id"] for h in shown["hosts"]] == [web_a["id"]]
    assert shown["batches"] == [shown["hosts"]]
    assert shown["parameters"]["DB_PASSWORD"] == "***"

    deploy.worker.start()
    launched = await api(deploy, "POST", f"/templates/{template_id}/launch", {"parameters": values})
    assert launched.status_code == 201, launched.text
    run = launched.json()
    assert run["template_id"] == template_id
    assert run["trigger"] == "api"
    assert run["launched_by"] == {
        "kind": "user",
        "id": deploy.admin.user_id,
        "name": deploy.admin.email,
    }
    assert run["parameters"] == {"version": "1.2", "DRY_RUN": False, "DB_PASSWORD": "***"}
    assert run["commit_sha"] == shown["commit_sha"]
    assert run["target"]["tags"] == ["web"]
    done = await deploy.wait(run["id"])
    assert done["status"] == "success", done
    # Preview equals what ran: the commit, the scripts with their arguments, the hosts.
    assert done["commit_sha"] == shown["commit_sha"]
    rows = await deploy.scripts(run["id"])
    assert [(r["host_id"], r["path"], r["arguments"]) for r in rows] == [
        (web_a["id"], "show.sh", ["--version=1.2"])
    ]
    messages = await deploy.messages(run["id"])
    assert "release=1 version=1.2 dry=false args=--version=1.2" in messages, messages
    assert "password=***" in messages

    # A host that joins the group (and carries the tag) is in the next run.
    joined = await api(
        deploy,
        "PATCH",
        f"/host-groups/{group.json()['id']}",
        {"host_ids": [web_a["id"], db_host["id"], web_b["id"]]},
    )
    assert joined.status_code == 200, joined.text
    again = await api(deploy, "POST", f"/templates/{template_id}/launch", {"parameters": values})
    assert again.status_code == 201, again.text
    second = await deploy.wait(again.json()["id"])
    assert second["status"] == "success", second
    assert sorted(second["host_ids"]) == sorted([web_a["id"], web_b["id"]])
    assert sorted(r["host_id"] for r in await deploy.scripts(second["id"])) == sorted(
        [web_a["id"], web_b["id"]]
    )

    # A re-run keeps the template, the values and the rule (the secret from its encrypted store).
    rerun = await api(deploy, "POST", f"/deployments/{second['id']}/rerun")
    assert rerun.status_code == 201, rerun.text
    assert rerun.json()["template_id"] == template_id
    assert rerun.json()["parameters"] == run["parameters"]
    assert rerun.json()["target"] == second["target"]
    rerun_done = await deploy.wait(rerun.json()["id"])
    assert rerun_done["status"] == "success", rerun_done
    assert "password=***" in await deploy.messages(rerun_done["id"])

    # The secret is in no API answer: the template, its runs, the runs and their logs.
    runs = await api(deploy, "GET", f"/templates/{template_id}/runs")
    assert runs.status_code == 200, runs.text
    assert [item["id"] for item in runs.json()["items"]] == [
        rerun_done["id"],
        second["id"],
        run["id"],
    ]
    assert runs.json()["items"][1]["duration_seconds"] is not None
    listed = await api(deploy, "GET", "/deployments", params={"template_id": template_id})
    assert len(listed.json()["items"]) == 3
    reads = [
        runs,
        listed,
        await api(deploy, "GET", f"/templates/{template_id}"),
        await api(deploy, "GET", f"/deployments/{run['id']}"),
        await api(deploy, "GET", f"/deployments/{run['id']}/logs"),
        await api(deploy, "GET", f"/deployments/{run['id']}/scripts"),
    ]
    for response in reads:
        assert response.status_code == 200, response.text
        assert secret not in response.text
    template_read = reads[2].json()
    assert template_read["last_success"]["deployment_id"] == rerun_done["id"]


async def test_launch_pins_the_commit_and_roll_back_runs_the_earlier_one(
    deploy: DeployBuilder,
) -> None:
    repo = await deploy.repo({"show.sh": GitFile('#!/bin/sh\necho "release=first"\n')})
    first_sha = repo.hosted.head()
    (host,) = await deploy.hosts(1)
    template = await api(
        deploy,
        "POST",
        "/templates",
        {
            "name": "pinned",
            "repository_id": repo.id,
            "scripts": [{"script_id": repo.scripts["show.sh"]}],
            "target": {"host_ids": [host["id"]]},
        },
    )
    assert template.status_code == 201, template.text
    template_id = template.json()["id"]

    # Launched with no worker running: the branch moves before the run starts, and the run
    # still checks out the commit the launch resolved.
    launched = await api(deploy, "POST", f"/templates/{template_id}/launch", {})
    assert launched.status_code == 201, launched.text
    assert launched.json()["commit_sha"] == first_sha
    second_sha = repo.hosted.commit({"show.sh": GitFile('#!/bin/sh\necho "release=second"\n')})
    deploy.worker.start()
    first = await deploy.wait(launched.json()["id"])
    assert first["status"] == "success", first
    assert first["commit_sha"] == first_sha
    assert "release=first" in await deploy.messages(first["id"])

    newer = await api(deploy, "POST", f"/templates/{template_id}/launch", {})
    assert newer.status_code == 201, newer.text
    second = await deploy.wait(newer.json()["id"])
    assert second["commit_sha"] == second_sha
    assert "release=second" in await deploy.messages(second["id"])
    read = await api(deploy, "GET", f"/templates/{template_id}")
    assert read.json()["last_success"]["commit_sha"] == second_sha

    rolled = await api(
        deploy, "POST", f"/templates/{template_id}/rollback", {"deployment_id": first["id"]}
    )
    assert rolled.status_code == 201, rolled.text
    assert rolled.json()["commit_sha"] == first_sha
    back = await deploy.wait(rolled.json()["id"])
    assert back["status"] == "success", back
    messages = await deploy.messages(back["id"])
    assert "release=first" in messages and "release=second" not in messages

    # Only a successful run of this very template can be rolled back to.
    failed_repo_run = await api(
        deploy, "POST", f"/templates/{template_id}/rollback", {"deployment_id": str(uuid.uuid4())}
    )
    assert failed_repo_run.status_code == 422
    assert failed_repo_run.json()["error"]["details"]["errors"][0]["field"] == "deployment_id"


async def test_a_launch_may_name_its_own_ref_for_that_run_only(deploy: DeployBuilder) -> None:
    repo = await deploy.repo({"show.sh": GitFile('#!/bin/sh\necho "release=built"\n')})
    built_sha = repo.hosted.head()
    repo.hosted.commit({"show.sh": GitFile('#!/bin/sh\necho "release=newer"\n')})
    (host,) = await deploy.hosts(1)
    template = await api(
        deploy,
        "POST",
        "/templates",
        {
            "name": "ci-deploys-its-commit",
            "repository_id": repo.id,
            "scripts": [{"script_id": repo.scripts["show.sh"]}],
            "target": {"host_ids": [host["id"]]},
        },
    )
    assert template.status_code == 201, template.text
    template_id = template.json()["id"]

    bad = await api(deploy, "POST", f"/templates/{template_id}/launch", {"ref": "main:evil"})
    assert bad.status_code == 422 and bad.json()["error"]["details"]["errors"][0]["field"] == "ref"
    preview = await api(deploy, "POST", f"/templates/{template_id}/preview", {"ref": built_sha})
    assert preview.status_code == 200 and preview.json()["commit_sha"] == built_sha, preview.text

    # A CI job deploys the commit it built, though the branch has moved on since.
    launched = await api(deploy, "POST", f"/templates/{template_id}/launch", {"ref": built_sha})
    assert launched.status_code == 201, launched.text
    assert launched.json()["commit_sha"] == built_sha
    deploy.worker.start()
    done = await deploy.wait(launched.json()["id"])
    assert done["status"] == "success", done
    assert "release=built" in await deploy.messages(done["id"])
    # The template itself still follows its branch.
    read = await api(deploy, "GET", f"/templates/{template_id}")
    assert read.json()["ref"] is None
    again = await api(deploy, "POST", f"/templates/{template_id}/preview", {})
    assert again.json()["commit_sha"] == repo.hosted.head() != built_sha
