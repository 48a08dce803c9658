"""The provider fakes follow the public API documentation: independent clients accept them."""

from __future__ import annotations

import github
import gitlab
import httpx
import pytest

from tests.fakes.gitea import FakeGitea
from tests.fakes.github import FakeGitHub
from tests.fakes.gitlab import FakeGitLab


def test_pygithub_reads_user_and_every_repository_page(fake_github: FakeGitHub) -> None:
    token = fake_github.forge.add_user("octo", "Octo Cat")
    fake_github.forge.add_many(230, owner="octo")
    client = github.Github(
        base_url=fake_github.api_url, auth=github.Auth.Token(token), per_page=100
    )
    user = client.get_user()
    assert user.login == "octo"
    assert user.name == "Octo Cat"
    repos = list(user.get_repos())
    assert len(repos) == 230
    assert {repo.full_name for repo in repos} == {
        repo.full_name for repo in fake_github.forge.repos.values()
    }
    private = [repo for repo in repos if repo.private]
    assert len(private) == 77
    assert repos[0].owner.login in {"octo", "octo-org"}
    assert repos[0].default_branch == "main"
    # PyGithub followed the Link header: three pages of at most 100.
    pages = [r for r in fake_github.forge.requests if r.path == "/api/v3/user/repos"]
    assert len(pages) == 3
    client.close()


def test_pygithub_reports_bad_credentials_as_github_does(fake_github: FakeGitHub) -> None:
    fake_github.forge.add_user("octo")
    client = github.Github(
        base_url=fake_github.api_url, auth=github.Auth.Token("ghp_not-a-real-token")
    )
    with pytest.raises(github.BadCredentialsException) as caught:
        _ = client.get_user().login
    assert caught.value.status == 401
    assert caught.value.data["message"] == "Bad credentials"
    assert "documentation_url" in caught.value.data
    client.close()


def test_python_gitlab_authenticates_and_lists_every_project(fake_gitlab: FakeGitLab) -> None:
    token = fake_gitlab.forge.add_user("tanuki", "Tanuki")
    fake_gitlab.forge.add_many(130, owner="tanuki")
    client = gitlab.Gitlab(fake_gitlab.server_url, private_token=token)
    client.auth()
    assert client.user is not None
    assert client.user.username == "tanuki"
    projects = client.projects.list(membership=True, get_all=True, per_page=50)
    assert len(projects) == 130
    assert {p.path_with_namespace for p in projects} == {
        r.full_name for r in fake_gitlab.forge.repos.values()
    }
    lazy = client.projects.list(membership=True, iterator=True, per_page=50)
    assert lazy.total == 130
    assert lazy.total_pages == 3
    assert len(list(lazy)) == 130


def test_python_gitlab_refuses_a_wrong_token(fake_gitlab: FakeGitLab) -> None:
    client = gitlab.Gitlab(fake_gitlab.server_url, private_token="glpat-wrong")
    with pytest.raises(gitlab.GitlabAuthenticationError) as caught:
        client.auth()
    assert caught.value.response_code == 401
    assert "401 Unauthorized" in str(caught.value)


async def test_gitea_pages_by_limit_with_total_count_and_link(fake_gitea: FakeGitea) -> None:
    token = fake_gitea.forge.add_user("gitty")
    fake_gitea.forge.add_many(120, owner="gitty")
    async with httpx.AsyncClient(headers={"Authorization": f"token {token}"}) as http:
        first = await http.get(f"{fake_gitea.api_url}/user/repos", params={"limit": 100})
        assert first.status_code == 200
        # Gitea caps a page at MAX_RESPONSE_ITEMS (50) whatever the limit asked.
        assert len(first.json()) == 50
        assert first.headers["x-total-count"] == "120"
        seen = [repo["id"] for repo in first.json()]
        response = first
        for _ in range(10):
            if "next" not in response.links:
                break
            response = await http.get(response.links["next"]["url"])
            seen.extend(repo["id"] for repo in response.json())
        assert len(seen) == len(set(seen)) == 120
        refused = await http.get(
            f"{fake_gitea.api_url}/user", headers={"Authorization": "token nope"}
        )
        assert refused.status_code == 401
        assert set(refused.json()) == {"message", "url"}


async def test_github_fake_sends_rate_limit_headers_and_secondary_limits(
    fake_github: FakeGitHub,
) -> None:
    token = fake_github.forge.add_user("octo")
    fake_github.secondary_rate_limit(after=0, retry_after=7)
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as http:
        limited = await http.get(f"{fake_github.api_url}/user/repos")
        assert limited.status_code == 403
        assert limited.headers["retry-after"] == "7"
        assert "secondary rate limit" in limited.json()["message"]
        ok = await http.get(f"{fake_github.api_url}/user/repos")
        assert ok.status_code == 200
        assert int(ok.headers["x-ratelimit-remaining"]) < int(ok.headers["x-ratelimit-limit"])
        assert int(ok.headers["x-ratelimit-reset"]) > 0
