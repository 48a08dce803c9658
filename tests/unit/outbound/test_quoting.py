"""Every provider client quotes the path segments it builds from names."""

from __future__ import annotations

import httpx

from shipyard.cicd.providers.circleci import CircleCIClient
from shipyard.cicd.providers.github_actions import GithubActionsClient
from shipyard.cicd.providers.jenkins import JenkinsClient
from shipyard.config import Settings
from shipyard.git.providers import provider_client
from shipyard.git.providers.auth import StaticToken
from shipyard.git.providers.base import RepoRef


def _recording(body: object = ()) -> tuple[httpx.AsyncClient, list[str]]:
    paths: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.raw_path.decode().split("?", 1)[0])
        return httpx.Response(200, json=body if body != () else [])

    return httpx.AsyncClient(transport=httpx.MockTransport(handler)), paths


async def test_git_providers_quote_owner_repository_and_ref() -> None:
    repo = RepoRef(external_id="group/sub project", owner="acme", name="my repo")
    for kind, expected in [
        ("github", "/repos/acme/my%20repo/branches"),
        ("gitea", "/api/v1/repos/acme/my%20repo/branches"),
        ("gitlab", "/api/v4/projects/group%2Fsub%20project/repository/branches"),
    ]:
        http, paths = _recording()
        client = provider_client(
            kind,
            http=http,
            settings=Settings(),
            server_url=None if kind == "github" else "http://forge.example",
            token=StaticToken("t0ken"),
        )
        await client.branches(repo)
        assert paths[0] == expected, kind


async def test_cicd_providers_quote_repository_and_job_names() -> None:
    http, paths = _recording({})
    github = GithubActionsClient(
        http,
        api_url="http://gh.example",
        repository="acme/my repo",
        token="t",
        ref="main",
        retry_seconds=0,
    )
    await github.check()
    jenkins = JenkinsClient(
        http, base_url="http://ci.example", username="u", api_token="t", retry_seconds=0
    )
    await jenkins._build({"job_path": "team/deploy #1", "number": 3})
    circle = CircleCIClient(
        http,
        api_url="http://cc.example/api/v2",
        app_url=None,
        project_slugs=["gh/acme/my repo"],
        token="t",
        branch=None,
        retry_seconds=0,
    )
    await circle._branch("gh/acme/my repo")
    assert paths == [
        "/repos/acme/my%20repo",
        "/job/team/job/deploy%20%231/3/api/json",
        "/api/v2/project/gh/acme/my%20repo",
    ]
