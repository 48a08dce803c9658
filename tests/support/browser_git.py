"""Git set-up for browser tests: a hosted repository that a fake GitHub account owns."""

from __future__ import annotations

from tests.fakes.github import FakeGitHub
from tests.support.git_server import GitHttpServer, HostedRepo


def github_account_with(
    fake_github: FakeGitHub, git_server: GitHttpServer, hosted: HostedRepo, *, login: str
) -> str:
    """Make ``login`` a fake GitHub user owning ``hosted`` (private); returns their token."""
    forge = fake_github.forge
    token = forge.issue_pat(login) if login in forge.users else forge.add_user(login)
    git_server.allow_token(token)
    forge.add_repo(
        hosted.name,
        owner=login,
        private=not hosted.public,
        bare=hosted.path,
        clone_url=hosted.clone_url,
        default_branch=hosted.default_branch,
    )
    return token
