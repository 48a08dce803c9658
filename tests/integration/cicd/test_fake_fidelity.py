"""The fakes satisfy independent clients: python-jenkins for Jenkins, PyGithub for GitHub Actions."""

from __future__ import annotations

import github
import jenkins
import pytest
import requests
from github import Auth, Github

from tests.fakes.github_actions import FakeGitHubActions
from tests.fakes.jenkins import FakeJenkins, Param, Script
from tests.fixtures.cicd import DEPLOY_WORKFLOW


def test_python_jenkins_walks_folders_and_reads_job_parameters(jenkins_fake: FakeJenkins) -> None:
    jenkins_fake.add_job(
        "team/app/deploy",
        params=[
            Param("VERSION", "string", default="1.0"),
            Param("DRY_RUN", "boolean", default=True),
            Param("REGION", "choice", choices=["eu", "us"]),
            Param("SECRET", "password", default="hidden"),
        ],
    )
    jenkins_fake.add_job("team/lint")
    jenkins_fake.add_job("nightly")
    server = jenkins.Jenkins(jenkins_fake.url, username="admin", password=jenkins_fake.token)

    names = sorted(job["fullname"] for job in server.get_jobs(folder_depth=None))
    info = server.get_job_info("team/app/deploy")

    assert names == ["nightly", "team", "team/app", "team/app/deploy", "team/lint"]
    definitions = info["property"][0]["parameterDefinitions"]
    assert [(d["name"], d["type"]) for d in definitions] == [
        ("VERSION", "StringParameterDefinition"),
        ("DRY_RUN", "BooleanParameterDefinition"),
        ("REGION", "ChoiceParameterDefinition"),
        ("SECRET", "PasswordParameterDefinition"),
    ]
    assert definitions[2]["choices"] == ["eu", "us"]
    assert "value" not in definitions[3]["defaultParameterValue"]
    assert info["nextBuildNumber"] == 1
    # Folders deeper than one request's tree are fetched level by level, as with real Jenkins.
    deep = server.get_all_jobs(folder_depth_per_request=1)
    assert sorted(job["fullname"] for job in deep) == names


def test_python_jenkins_triggers_follows_the_queue_and_reads_the_build(
    jenkins_fake: FakeJenkins,
) -> None:
    jenkins_fake.require_crumb = True
    jenkins_fake.add_job(
        "team/app/deploy",
        params=[Param("REGION", "choice", choices=["eu", "us"])],
        script=lambda params: Script(chunks=[f"deploying to {params['REGION']}\n", "done\n"]),
        queue_polls=2,
    )
    server = jenkins.Jenkins(jenkins_fake.url, username="admin", password=jenkins_fake.token)

    queue_id = server.build_job("team/app/deploy", {"REGION": "us"})
    waiting = server.get_queue_item(queue_id)
    left = server.get_queue_item(queue_id)

    assert waiting["why"] == "Waiting for next available executor"
    assert waiting.get("executable") is None
    assert left["_class"] == "hudson.model.Queue$LeftItem"
    number = left["executable"]["number"]
    assert server.get_build_info("team/app/deploy", number)["building"] is True
    jenkins_fake.complete("team/app/deploy", number)
    build = server.get_build_info("team/app/deploy", number)
    assert (build["result"], build["building"]) == ("SUCCESS", False)
    assert server.get_build_console_output("team/app/deploy", number) == "deploying to us\ndone\n"
    assert jenkins_fake.seen("GET", "/crumbIssuer/api/json")


def test_python_jenkins_sees_jenkins_errors(jenkins_fake: FakeJenkins) -> None:
    jenkins_fake.add_job("solo")
    wrong = jenkins.Jenkins(jenkins_fake.url, username="admin", password="wrong")
    with pytest.raises(jenkins.JenkinsException, match="Invalid password/token for user: admin"):
        wrong.get_job_info("solo")
    server = jenkins.Jenkins(jenkins_fake.url, username="admin", password=jenkins_fake.token)
    with pytest.raises(jenkins.JenkinsException, match=r"job\[solo\] number\[99\] does not exist"):
        server.get_build_info("solo", 99)
    with pytest.raises(requests.HTTPError) as refused:
        server.build_job("solo", {"NOT": "a parameter"})  # buildWithParameters on a plain job
    assert refused.value.response is not None
    assert refused.value.response.status_code == 400
    assert "solo is not parameterized" in refused.value.response.text


def test_pygithub_lists_workflows_dispatches_and_finds_the_run(
    github_fake: FakeGitHubActions,
) -> None:
    github_fake.add_workflow(
        "acme/api", ".github/workflows/deploy.yml", DEPLOY_WORKFLOW, name="Deploy"
    )
    github_fake.add_workflow("acme/api", ".github/workflows/ci.yml", "on: [push]\n", name="CI")
    client = Github(base_url=github_fake.url, auth=Auth.Token(github_fake.token))
    try:
        repo = client.get_repo("acme/api")
        workflows = {w.name: w for w in repo.get_workflows()}
        deploy = workflows["Deploy"]

        assert sorted(workflows) == ["CI", "Deploy"]
        assert deploy.path == ".github/workflows/deploy.yml"
        assert deploy.create_dispatch("main", {"environment": "production"}) is True
        assert deploy.create_dispatch("nope", {"environment": "production"}) is False
        runs = list(deploy.get_runs(event="workflow_dispatch", branch="main"))
        assert [(r.run_number, r.status, r.event) for r in runs] == [
            (1, "queued", "workflow_dispatch")
        ]
        assert list(deploy.get_runs(branch="other")) == []
        assert list(deploy.get_runs(created=">=2999-01-01T00:00:00Z")) == []
        assert runs[0].html_url.endswith(f"/acme/api/actions/runs/{runs[0].id}")
        assert repo.get_workflow_run(runs[0].id).cancel() is True
        assert workflows["CI"].create_dispatch("main") is False  # no workflow_dispatch trigger
    finally:
        client.close()


def test_pygithub_pages_through_workflows_and_sees_bad_credentials(
    github_fake: FakeGitHubActions,
) -> None:
    for index in range(7):
        github_fake.add_workflow(
            "acme/api", f".github/workflows/w{index}.yml", "on: workflow_dispatch\n"
        )
    client = Github(base_url=github_fake.url, auth=Auth.Token(github_fake.token), per_page=3)
    try:
        workflows = list(client.get_repo("acme/api").get_workflows())
        assert len(workflows) == 7
        assert [r.arg("page") for r in github_fake.seen("GET", "/actions/workflows")] == [
            None,
            "2",
            "3",
        ]
    finally:
        client.close()
    bad = Github(base_url=github_fake.url, auth=Auth.Token("ghp_wrong"))
    try:
        with pytest.raises(github.BadCredentialsException):
            bad.get_repo("acme/api")
    finally:
        bad.close()
