"""Inbound deliveries built as each provider documents them (headers, body, signature)."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from typing import Any

PROVIDERS = (
    ("github", "hmac"),
    ("gitlab", "hmac"),
    ("gitea", "hmac"),
    ("generic", "hmac"),
    ("generic", "bearer"),
)


def hex_hmac(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def push_payload(
    provider: str,
    *,
    ref: str,
    after: str,
    before: str = "0" * 40,
    paths: list[str] | None = None,
    message: str = "Ship it",
) -> dict[str, Any]:
    """A push event's body: GitHub's and Gitea's shape, or GitLab's ``Push Hook``."""
    commit = {
        "id": after,
        "message": message,
        "timestamp": "2026-12-01T22:00:00+00:00",
        "url": f"https://example.test/commit/{after}",
        "author": {"name": "Ada", "email": "ada@example.com"},
        "added": [],
        "modified": paths if paths is not None else ["deploy.sh"],
        "removed": [],
    }
    if provider == "gitlab":
        return {
            "object_kind": "tag_push" if ref.startswith("refs/tags/") else "push",
            "event_name": "tag_push" if ref.startswith("refs/tags/") else "push",
            "before": before,
            "after": after,
            "ref": ref,
            "ref_protected": True,
            "checkout_sha": after,
            "user_id": 4,
            "user_name": "Ada",
            "user_username": "ada",
            "project_id": 15,
            "project": {
                "id": 15,
                "name": "app",
                "path_with_namespace": "group/app",
                "default_branch": "main",
                "web_url": "https://gitlab.example.test/group/app",
            },
            "commits": [commit],
            "total_commits_count": 1,
            "repository": {"name": "app", "homepage": "https://gitlab.example.test/group/app"},
        }
    body: dict[str, Any] = {
        "ref": ref,
        "before": before,
        "after": after,
        "repository": {"id": 1, "name": "app", "full_name": "octo/app", "private": True},
        "pusher": {"name": "ada", "email": "ada@example.com"},
        "sender": {"login": "ada", "id": 1},
        "created": False,
        "deleted": False,
        "forced": False,
        "commits": [commit],
        "head_commit": commit,
    }
    if provider == "gitea":
        body["compare_url"] = f"https://gitea.example.test/octo/app/compare/{before}...{after}"
        body["total_commits"] = 1
    return body


def signed(
    provider: str,
    auth: str,
    secret: str,
    payload: dict[str, Any],
    *,
    event: str = "push",
    delivery: str | None = None,
) -> tuple[dict[str, str], bytes]:
    """Headers and body of one delivery, signed as ``provider`` signs (``auth``: generic)."""
    body = json.dumps(payload).encode()
    delivery = delivery or str(uuid.uuid4())
    headers = {"content-type": "application/json"}
    if provider == "github":
        headers |= {
            "user-agent": "GitHub-Hookshot/044aadd",
            "x-github-event": event,
            "x-github-delivery": delivery,
            "x-github-hook-id": "292430182",
            "x-hub-signature": "sha1=" + hmac.new(secret.encode(), body, hashlib.sha1).hexdigest(),
            "x-hub-signature-256": "sha256=" + hex_hmac(secret, body),
        }
    elif provider == "gitlab":
        headers |= {
            "user-agent": "GitLab/17.6.0",
            "x-gitlab-event": {"push": "Push Hook", "tag": "Tag Push Hook"}.get(event, event),
            "x-gitlab-token": secret,
            "x-gitlab-instance": "https://gitlab.example.test",
            "x-gitlab-webhook-uuid": str(uuid.uuid4()),  # fresh for every request
            "x-gitlab-event-uuid": delivery,
            "idempotency-key": delivery,
        }
    elif provider == "gitea":
        headers |= {
            "x-gitea-event": event,
            "x-gitea-event-type": event,
            "x-gitea-delivery": delivery,
            "x-gitea-signature": hex_hmac(secret, body),
            "x-gogs-event": event,
            "x-gogs-delivery": delivery,
            "x-gogs-signature": hex_hmac(secret, body),
        }
    else:
        headers |= {"x-shipyard-event": event, "x-shipyard-delivery": delivery}
        if auth == "bearer":
            headers["authorization"] = f"Bearer {secret}"
        else:
            headers["x-shipyard-signature"] = "sha256=" + hex_hmac(secret, body)
    return headers, body


def with_wrong_signature(provider: str, auth: str, headers: dict[str, str]) -> dict[str, str]:
    """The same delivery signed with another secret."""
    wrong = dict(headers)
    for name in ("x-hub-signature-256", "x-gitea-signature", "x-shipyard-signature"):
        if name in wrong:
            prefix = "sha256=" if wrong[name].startswith("sha256=") else ""
            wrong[name] = prefix + hex_hmac("not-the-secret", b"{}")
    if "x-gitlab-token" in wrong:
        wrong["x-gitlab-token"] = "not-the-secret-token-at-all"
    if "authorization" in wrong:
        wrong["authorization"] = "Bearer not-the-secret-token-at-all"
    return wrong


def unsigned(headers: dict[str, str]) -> dict[str, str]:
    names = {
        "x-hub-signature-256",
        "x-hub-signature",
        "x-gitea-signature",
        "x-gogs-signature",
        "x-shipyard-signature",
        "x-gitlab-token",
        "authorization",
    }
    return {k: v for k, v in headers.items() if k not in names}
