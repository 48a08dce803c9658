"""Registering a template's hook at GitHub, GitLab and Gitea (the provider fakes), and removing it."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.builders.git import GitSyncBuilder
from tests.support import canary
from tests.support.api import Account


async def api(
    client: httpx.AsyncClient, account: Account, method: str, path: str, body: Any = None
) -> httpx.Response:
    return await client.request(method, f"/api/v1{path}", headers=account.headers, json=body)


@pytest.mark.parametrize("kind", ["github", "gitlab", "gitea"])
async def test_register_and_remove_at_the_provider(
    git_sync: GitSyncBuilder, client: httpx.AsyncClient, admin: Account, kind: str
) -> None:
    provider = await git_sync.connect(kind, user="ada", repositories=1)
    await git_sync.synced(provider)
    (upstream,) = provider.upstream
    listed = await api(client, admin, "GET", f"/repositories?provider_id={provider.id}")
    repository = listed.json()["items"][0]
    template = await api(
        client,
        admin,
        "POST",
        "/templates",
        {"name": f"from-{kind}", "repository_id": repository["id"], "ref": "main"},
    )
    assert template.status_code == 201, template.text
    template_id = template.json()["id"]

    # A hook of another provider's kind is refused before any request to the provider.
    other = "gitea" if kind != "gitea" else "github"
    mismatched = await api(
        client, admin, "POST", f"/templates/{template_id}/webhooks", {"provider": other}
    )
    refused = await api(client, admin, "POST", f"/webhooks/{mismatched.json()['id']}/register")
    assert refused.status_code == 422
    assert refused.json()["error"]["details"]["errors"][0]["field"] == "provider"

    created = await api(
        client,
        admin,
        "POST",
        f"/templates/{template_id}/webhooks",
        {"provider": kind, "events": ["push", "tag", "release"]},
    )
    assert created.status_code == 201, created.text
    hook_id, url = created.json()["id"], created.json()["url"]
    secret = canary.remember(created.json()["secret"], "webhook secret")

    registered = await api(client, admin, "POST", f"/webhooks/{hook_id}/register")
    assert registered.status_code == 200, registered.text
    remote_id = registered.json()["remote_hook_id"]
    assert secret not in registered.text
    (hook,) = provider.fake.forge.repo_hooks(upstream)
    assert str(hook["id"]) == remote_id
    assert hook["_secret"] == secret
    if kind == "gitlab":
        assert hook["url"] == url
        assert (hook["push_events"], hook["tag_push_events"], hook["releases_events"]) == (
            True,
            True,
            True,
        )
    else:
        assert hook["config"]["url"] == url and hook["config"]["content_type"] == "json"
        assert hook["events"] == ["push", "release"]
        assert hook["active"] is True

    again = await api(client, admin, "POST", f"/webhooks/{hook_id}/register")
    assert again.status_code == 409

    removed = await api(client, admin, "DELETE", f"/webhooks/{hook_id}/register")
    assert removed.status_code == 200, removed.text
    assert removed.json()["remote_hook_id"] is None
    assert provider.fake.forge.repo_hooks(upstream) == []

    # Deleting a registered hook removes it at the provider too.
    assert (await api(client, admin, "POST", f"/webhooks/{hook_id}/register")).status_code == 200
    assert len(provider.fake.forge.repo_hooks(upstream)) == 1
    deleted = await api(client, admin, "DELETE", f"/webhooks/{hook_id}")
    assert deleted.status_code == 204
    assert provider.fake.forge.repo_hooks(upstream) == []

    # A token the provider refuses: the connection needs attention (409), not our outage.
    later = await api(
        client, admin, "POST", f"/templates/{template_id}/webhooks", {"provider": kind}
    )
    provider.fake.forge.revoke(provider.token)
    refused_token = await api(client, admin, "POST", f"/webhooks/{later.json()['id']}/register")
    assert refused_token.status_code == 409, refused_token.text
    assert refused_token.json()["error"]["code"] == "provider_unauthorized"


async def test_a_repository_added_by_url_cannot_be_registered(
    client: httpx.AsyncClient, admin: Account
) -> None:
    template = await api(client, admin, "POST", "/templates", {"name": "no-repo"})
    assert template.status_code == 201, template.text
    created = await api(
        client,
        admin,
        "POST",
        f"/templates/{template.json()['id']}/webhooks",
        {"provider": "github"},
    )
    refused = await api(client, admin, "POST", f"/webhooks/{created.json()['id']}/register")
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "no_provider"
