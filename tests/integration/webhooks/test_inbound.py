"""Inbound webhooks through the API: each provider's signature, filters, deduplication, the
delivery log, the rate limit and body cap, and the pushed commit run on a real sshd host."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from shipyard.runtime import Runtime
from shipyard.webhooks.ratelimit import HookRateLimiter
from tests.builders.deployments import DeployBuilder
from tests.fixtures.deployments import ScriptRepo
from tests.integration.webhooks.deliveries import (
    PROVIDERS,
    push_payload,
    signed,
    unsigned,
    with_wrong_signature,
)
from tests.support import canary
from tests.support.api import Account
from tests.support.git_server import GitFile

SHOW = GitFile('#!/bin/sh\necho "release=first message=$message"\n')


async def api(
    client: httpx.AsyncClient, account: Account, method: str, path: str, body: Any = None
) -> httpx.Response:
    return await client.request(method, f"/api/v1{path}", headers=account.headers, json=body)


async def make_template(deploy: DeployBuilder, repo: ScriptRepo, **extra: Any) -> str:
    (host,) = await deploy.hosts(1)
    created = await api(
        deploy.client,
        deploy.admin,
        "POST",
        "/templates",
        {
            "name": extra.pop("name", "on-push"),
            "repository_id": repo.id,
            "ref": repo.hosted.default_branch,
            "scripts": [{"script_id": repo.scripts["show.sh"]}],
            "target": {"host_ids": [host["id"]]},
            "parameters": [{"name": "message", "type": "string", "default": "none"}],
            **extra,
        },
    )
    assert created.status_code == 201, created.text
    template_id: str = created.json()["id"]
    return template_id


async def make_hook(deploy: DeployBuilder, template_id: str, **body: Any) -> tuple[str, str, str]:
    """(id, url path, secret) of a new hook; the secret is remembered by the canary."""
    created = await api(
        deploy.client, deploy.admin, "POST", f"/templates/{template_id}/webhooks", body
    )
    assert created.status_code == 201, created.text
    answer = created.json()
    secret = canary.remember(answer["secret"], "webhook secret")
    assert answer["url"].endswith(f"/api/v1/hooks/{answer['id']}")
    assert answer["url"].startswith("http")
    return answer["id"], f"/api/v1/hooks/{answer['id']}", secret


async def deliver(
    client: httpx.AsyncClient, path: str, headers: dict[str, str], body: bytes
) -> httpx.Response:
    return await client.post(path, headers=headers, content=body)


async def deliveries(deploy: DeployBuilder, hook_id: str) -> list[dict[str, Any]]:
    listed = await api(deploy.client, deploy.admin, "GET", f"/webhooks/{hook_id}/deliveries")
    assert listed.status_code == 200, listed.text
    items: list[dict[str, Any]] = listed.json()["items"]
    return items


async def runs(deploy: DeployBuilder, template_id: str) -> list[dict[str, Any]]:
    listed = await api(deploy.client, deploy.admin, "GET", f"/templates/{template_id}/runs")
    assert listed.status_code == 200, listed.text
    items: list[dict[str, Any]] = listed.json()["items"]
    return items


async def test_a_github_push_deploys_its_after_commit_even_when_the_branch_moved_on(
    deploy: DeployBuilder,
) -> None:
    repo = await deploy.repo({"show.sh": SHOW})
    template_id = await make_template(deploy, repo)
    hook_id, path, secret = await make_hook(
        deploy,
        template_id,
        provider="github",
        branches=["main"],
        parameter_map={"message": "head_commit.message"},
    )
    # Two pushes; the delivery of the first arrives after the second landed.
    first = repo.hosted.commit(
        {"show.sh": GitFile('#!/bin/sh\necho "release=one message=$message"\n')}
    )
    second = repo.hosted.commit({"show.sh": GitFile('#!/bin/sh\necho "release=two"\n')})
    assert repo.hosted.head() == second
    headers, body = signed(
        "github",
        "hmac",
        secret,
        push_payload("github", ref="refs/heads/main", after=first, message="first-push"),
    )
    ran = await deliver(deploy.client, path, headers, body)
    assert ran.status_code == 202, ran.text
    assert ran.json()["verdict"] == "ran"
    deployment_id = ran.json()["deployment_id"]

    # GitHub redelivers the same delivery (same X-GitHub-Delivery): nothing runs twice.
    again = await deliver(deploy.client, path, headers, body)
    assert again.status_code == 200, again.text
    assert again.json()["verdict"] == "duplicate"

    deploy.worker.start()
    done = await deploy.wait(deployment_id)
    assert done["status"] == "success", done
    assert done["commit_sha"] == first
    assert done["trigger"] == "webhook" and done["webhook_id"] == hook_id
    assert done["launched_by"]["kind"] == "webhook"
    assert done["parameters"] == {"message": "first-push"}
    messages = await deploy.messages(deployment_id)
    assert "release=one message=first-push" in messages
    assert not any("release=two" in line for line in messages)
    assert [run["id"] for run in await runs(deploy, template_id)] == [deployment_id]

    log = await deliveries(deploy, hook_id)
    assert [(d["verdict"], d["deployment_id"]) for d in log] == [
        ("duplicate", None),
        ("ran", deployment_id),
    ]
    assert log[1]["commit"] == first and log[1]["ref"] == "refs/heads/main"
    assert log[0]["delivery_id"] == log[1]["delivery_id"] == headers["x-github-delivery"]


async def test_each_provider_verifies_filters_and_deduplicates(
    deploy: DeployBuilder, runtime: Runtime
) -> None:
    repo = await deploy.repo({"show.sh": SHOW})
    template_id = await make_template(deploy, repo)
    sha = repo.hosted.head()
    for provider, auth in PROVIDERS:
        hook_id, path, secret = await make_hook(
            deploy,
            template_id,
            provider=provider,
            auth=auth,
            events=["push"],
            branches=["main", "release/*"],
        )
        label = f"{provider}/{auth}"
        payload = push_payload(provider, ref="refs/heads/main", after=sha)
        headers, body = signed(provider, auth, secret, payload)

        # Wrongly signed and unsigned: 401, nothing runs, each logged as refused.
        wrong = await deliver(
            deploy.client, path, with_wrong_signature(provider, auth, headers), body
        )
        assert wrong.status_code == 401, (label, wrong.text)
        bare = await deliver(deploy.client, path, unsigned(headers), body)
        assert bare.status_code == 401, (label, bare.text)
        assert "unsigned" in bare.json()["error"]["message"]

        # A branch the hook does not follow: 200, filtered, logged with the reason.
        other_headers, other_body = signed(
            provider, auth, secret, push_payload(provider, ref="refs/heads/feature/x", after=sha)
        )
        filtered = await deliver(deploy.client, path, other_headers, other_body)
        assert filtered.status_code == 200, (label, filtered.text)
        assert filtered.json()["verdict"] == "filtered"
        assert "feature/x" in filtered.json()["reason"]

        ran = await deliver(deploy.client, path, headers, body)
        assert ran.status_code == 202, (label, ran.text)
        duplicate = await deliver(deploy.client, path, headers, body)
        assert duplicate.status_code == 200 and duplicate.json()["verdict"] == "duplicate", label

        log = await deliveries(deploy, hook_id)
        verdicts = [entry["verdict"] for entry in reversed(log)]
        assert verdicts == ["refused", "refused", "filtered", "ran", "duplicate"], label
        assert all(entry["delivery_id"] is None for entry in log if entry["verdict"] == "refused")
        assert "feature/x" in next(e["reason"] for e in log if e["verdict"] == "filtered")

        # The secret is never shown again.
        for read in (
            await api(deploy.client, deploy.admin, "GET", f"/webhooks/{hook_id}"),
            await api(deploy.client, deploy.admin, "GET", "/webhooks"),
            await api(
                deploy.client, deploy.admin, "PATCH", f"/webhooks/{hook_id}", {"tags": ["v*"]}
            ),
            await api(deploy.client, deploy.admin, "GET", f"/webhooks/{hook_id}/deliveries"),
        ):
            assert read.status_code == 200, read.text
            assert secret not in read.text and "secret" not in read.json()
    # One run per provider, each pinned to the pushed commit, with the webhook's id.
    template_runs = await runs(deploy, template_id)
    assert len(template_runs) == len(PROVIDERS)

    # Rotation: the old secret stops working at once, the new one works.
    rotated = await api(deploy.client, deploy.admin, "POST", f"/webhooks/{hook_id}/rotate")
    assert rotated.status_code == 200, rotated.text
    new_secret = canary.remember(rotated.json()["secret"], "webhook secret")
    assert new_secret != secret
    old_headers, old_body = signed(
        provider, auth, secret, push_payload(provider, ref="refs/heads/main", after=sha)
    )
    assert (await deliver(deploy.client, path, old_headers, old_body)).status_code == 401
    new_headers, new_body = signed(
        provider, auth, new_secret, push_payload(provider, ref="refs/heads/release/1", after=sha)
    )
    assert (await deliver(deploy.client, path, new_headers, new_body)).status_code == 202

    # Copies of one delivery arriving together: the database lets exactly one run.
    copy_headers, copy_body = signed(
        provider, auth, new_secret, push_payload(provider, ref="refs/heads/main", after=sha)
    )
    statuses = await asyncio.gather(
        *(deliver(deploy.client, path, copy_headers, copy_body) for _ in range(4))
    )
    assert sorted(answer.status_code for answer in statuses) == [200, 200, 200, 202]


async def test_pings_unknown_hooks_rate_limit_and_body_cap(
    deploy: DeployBuilder, runtime: Runtime, client: httpx.AsyncClient
) -> None:
    repo = await deploy.repo({"show.sh": SHOW})
    template_id = await make_template(deploy, repo)
    hook_id, path, secret = await make_hook(deploy, template_id, provider="github")

    ping_headers, ping_body = signed(
        "github", "hmac", secret, {"zen": "Keep it logically awesome.", "hook_id": 1}, event="ping"
    )
    ping = await deliver(client, path, ping_headers, ping_body)
    assert ping.status_code == 200, ping.text
    assert ping.json()["verdict"] == "filtered" and "ping" in ping.json()["reason"]

    # A required parameter the payload lacks (no default): the launch's own check refuses it,
    # naming the parameter; an object mapped into a parameter is refused the same way.
    strict = await api(
        client,
        deploy.admin,
        "POST",
        "/templates",
        {
            "name": "strict",
            "repository_id": repo.id,
            "scripts": [{"script_id": repo.scripts["show.sh"]}],
            "target": (await api(client, deploy.admin, "GET", f"/templates/{template_id}")).json()[
                "target"
            ],
            "parameters": [
                {"name": "version", "type": "string", "required": True},
                {"name": "who", "type": "string"},
            ],
        },
    )
    assert strict.status_code == 201, strict.text
    _, strict_path, strict_secret = await make_hook(
        deploy,
        strict.json()["id"],
        provider="github",
        parameter_map={"version": "release.name"},
    )
    push = push_payload("github", ref="refs/heads/main", after=repo.hosted.head())
    h, b = signed("github", "hmac", strict_secret, push)
    missing = await deliver(client, strict_path, h, b)
    assert missing.status_code == 422, missing.text
    assert missing.json()["verdict"] == "refused"
    assert missing.json()["reason"].startswith("parameters.version")
    object_hook, object_path, object_secret = await make_hook(
        deploy,
        strict.json()["id"],
        provider="github",
        parameter_map={"version": "after", "who": "pusher"},
    )
    h, b = signed("github", "hmac", object_secret, push)
    refused = await deliver(client, object_path, h, b)
    assert refused.status_code == 422 and refused.json()["reason"].startswith("parameters.who")
    (entry,) = await deliveries(deploy, object_hook)
    assert entry["verdict"] == "refused" and entry["deployment_id"] is None

    # Unknown and malformed ids: the same 404, revealing nothing.
    unknown = await deliver(
        client, "/api/v1/hooks/00000000-0000-0000-0000-000000000001", ping_headers, ping_body
    )
    malformed = await deliver(client, "/api/v1/hooks/nope", ping_headers, ping_body)
    assert unknown.status_code == malformed.status_code == 404
    assert unknown.json() == malformed.json()

    # A body over the hook's cap (25 MiB, GitHub's own limit): 413 before it is read, nothing
    # logged. Bodies over the rest of the API's cap (1 MiB) are deliveries like any other.
    big_headers, big_body = signed("github", "hmac", secret, {"pad": "x" * (25 * 1024 * 1024)})
    too_big = await deliver(client, path, big_headers, big_body)
    assert too_big.status_code == 413

    # Wrong signatures are logged as refused at most 10 times a minute per hook.
    bad = with_wrong_signature("github", "hmac", ping_headers)
    for _ in range(12):
        assert (await deliver(client, path, bad, ping_body)).status_code == 401
    log = await deliveries(deploy, hook_id)
    assert [entry["verdict"] for entry in log].count("refused") == 10
    assert len(log) == 11  # the ping and ten refusals; the 413 never reached the hook
    large_headers, large_body = signed("github", "hmac", secret, {"pad": "x" * (2 * 1024 * 1024)})
    large = await deliver(client, path, large_headers, large_body)
    assert large.status_code == 200, large.text  # a 2 MiB ping, verified and logged
    assert len(await deliveries(deploy, hook_id)) == 12

    # The per-hook bucket: past the burst, 429 with Retry-After, before any lookup.
    runtime.webhook_limiter = HookRateLimiter(per_minute=1, burst=2)
    answers = [(await deliver(client, path, ping_headers, ping_body)).status_code for _ in range(2)]
    assert answers == [200, 200]  # a ping redelivered twice is logged each time
    limited = await deliver(client, path, ping_headers, ping_body)
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1
    _, other_path, other_secret = await make_hook(deploy, template_id, provider="gitea")
    h, b = signed(
        "gitea",
        "hmac",
        other_secret,
        push_payload("gitea", ref="refs/heads/main", after=repo.hosted.head()),
    )
    assert (await deliver(client, other_path, h, b)).status_code == 202  # another hook's bucket
