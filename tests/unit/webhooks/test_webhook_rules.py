"""Signatures, payloads, filters and the rate limit of inbound webhooks, as pure functions."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import pytest

from shipyard.webhooks.filters import (
    MappingRefused,
    compile_glob,
    filter_reason,
    lookup,
    map_parameters,
    matches,
)
from shipyard.webhooks.payloads import normalise
from shipyard.webhooks.ratelimit import HookRateLimiter
from shipyard.webhooks.verify import SignatureRefused, verify

SECRET = "s3cret-for-unit-tests-only"
BODY = b'{"ref": "refs/heads/main"}'
SHA1 = "a" * 40
SHA2 = "b" * 40


def digest(body: bytes = BODY, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@pytest.mark.parametrize(
    ("provider", "auth", "headers"),
    [
        (
            "github",
            "hmac",
            {
                "x-hub-signature-256": f"sha256={digest()}",
                "x-github-event": "push",
                "x-github-delivery": "d-1",
            },
        ),
        (
            "gitlab",
            "hmac",
            {"x-gitlab-token": SECRET, "x-gitlab-event": "Push Hook", "idempotency-key": "d-1"},
        ),
        (
            "gitea",
            "hmac",
            {"x-gitea-signature": digest(), "x-gitea-event": "push", "x-gitea-delivery": "d-1"},
        ),
        (
            "generic",
            "hmac",
            {"x-shipyard-signature": f"sha256={digest()}", "x-shipyard-delivery": "d-1"},
        ),
        ("generic", "bearer", {"authorization": f"Bearer {SECRET}", "x-shipyard-delivery": "d-1"}),
    ],
)
def test_each_provider_signature_as_documented(
    provider: str, auth: str, headers: dict[str, str]
) -> None:
    signed = verify(provider=provider, auth=auth, secret=SECRET, headers=headers, body=BODY)
    assert signed.delivery_id == "d-1"
    assert signed.event in {"push", "Push Hook"}
    # The same headers over another body, or with another secret, are refused.
    tampered = BODY + b" "
    if provider not in {"gitlab"} and auth != "bearer":
        with pytest.raises(SignatureRefused, match="wrong signature"):
            verify(provider=provider, auth=auth, secret=SECRET, headers=headers, body=tampered)
    with pytest.raises(SignatureRefused, match="wrong"):
        verify(provider=provider, auth=auth, secret=SECRET + "x", headers=headers, body=BODY)
    # No signature header at all: unsigned.
    bare = {k: v for k, v in headers.items() if "signature" not in k and "token" not in k}
    bare.pop("authorization", None)
    with pytest.raises(SignatureRefused, match="unsigned"):
        verify(provider=provider, auth=auth, secret=SECRET, headers=bare, body=BODY)


def test_gitlab_delivery_id_falls_back_to_the_event_uuid_never_the_per_request_uuid() -> None:
    headers = {
        "x-gitlab-token": SECRET,
        "x-gitlab-event": "Push Hook",
        "x-gitlab-event-uuid": "event-1",
        "x-gitlab-webhook-uuid": "request-1",
    }
    signed = verify(provider="gitlab", auth="hmac", secret=SECRET, headers=headers, body=BODY)
    assert signed.delivery_id == "event-1"
    without = {k: v for k, v in headers.items() if k != "x-gitlab-event-uuid"}
    assert (
        verify(
            provider="gitlab", auth="hmac", secret=SECRET, headers=without, body=BODY
        ).delivery_id
        is None
    )


def test_github_signature_needs_the_sha256_prefix() -> None:
    headers = {"x-hub-signature-256": digest(), "x-github-event": "push"}
    with pytest.raises(SignatureRefused, match="sha256="):
        verify(provider="github", auth="hmac", secret=SECRET, headers=headers, body=BODY)


def github_push(ref: str, after: str = SHA1, **extra: Any) -> dict[str, Any]:
    return {
        "ref": ref,
        "before": "0" * 40,
        "after": after,
        "deleted": False,
        "repository": {"full_name": "octo/app"},
        "head_commit": {"id": after, "message": "Fix it"},
        "commits": [
            {"id": after, "added": ["docs/a.md"], "modified": ["src/app.py"], "removed": []},
            {"id": after, "added": [], "modified": ["src/app.py"], "removed": ["old.txt"]},
        ],
        **extra,
    }


def test_payloads_per_provider() -> None:
    push = normalise("github", "push", github_push("refs/heads/main"))
    assert (push.kind, push.branch, push.commit, push.repository) == (
        "push",
        "main",
        SHA1,
        "octo/app",
    )
    assert push.paths == ("docs/a.md", "src/app.py", "old.txt")
    tag = normalise("github", "push", github_push("refs/tags/v1.2", after=SHA2))
    assert (tag.kind, tag.tag, tag.commit) == ("tag", "v1.2", SHA2)
    deleted = normalise("github", "push", github_push("refs/heads/x", after="0" * 40, deleted=True))
    assert deleted.commit is None and deleted.inert == "the push deleted refs/heads/x"
    assert normalise("github", "ping", {"zen": "hi"}).kind == "ping"
    published = normalise(
        "github", "release", {"action": "published", "release": {"tag_name": "v2"}}
    )
    assert (published.kind, published.tag, published.inert) == ("release", "v2", None)
    assert normalise("github", "release", {"action": "created", "release": {}}).inert

    # GitLab: a tag push runs checkout_sha (the commit), not an annotated tag's object.
    gitlab_tag = normalise(
        "gitlab",
        "Tag Push Hook",
        {
            "object_kind": "tag_push",
            "ref": "refs/tags/v3",
            "after": SHA2,
            "checkout_sha": SHA1,
            "project": {"path_with_namespace": "group/app"},
            "commits": [],
        },
    )
    assert (gitlab_tag.kind, gitlab_tag.tag, gitlab_tag.commit, gitlab_tag.repository) == (
        "tag",
        "v3",
        SHA1,
        "group/app",
    )
    gitlab_release = normalise(
        "gitlab", "Release Hook", {"action": "create", "tag": "v4", "commit": {"id": SHA1}}
    )
    assert (gitlab_release.tag, gitlab_release.commit, gitlab_release.inert) == ("v4", SHA1, None)
    assert normalise("gitlab", "Merge Request Hook", {}).kind == "other"
    gitea = normalise("gitea", "push", github_push("refs/heads/dev"))
    assert (gitea.kind, gitea.branch, gitea.commit) == ("push", "dev", SHA1)
    generic = normalise(
        "generic", "push", {"ref": "refs/heads/main", "after": SHA1, "paths": ["a"]}
    )
    assert (generic.branch, generic.commit, generic.paths) == ("main", SHA1, ("a",))


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        ("main", "main", True),
        ("main", "main2", False),
        ("release/*", "release/1.2", True),
        ("release/*", "release/1.2/hotfix", False),
        ("release/**", "release/1.2/hotfix", True),
        ("docs/**/*.md", "docs/a.md", True),
        ("docs/**/*.md", "docs/x/y/a.md", True),
        ("docs/**/*.md", "src/a.md", False),
        ("**", "any/thing", True),
        ("v[0-9]*", "v1.0", True),
        ("v[!0-9]*", "v1.0", False),
        ("feature-?", "feature-a", True),
        ("Main", "main", False),
    ],
)
def test_globs(pattern: str, value: str, expected: bool) -> None:
    assert bool(compile_glob(pattern).match(value)) is expected


def test_filters_name_why_nothing_runs() -> None:
    push = normalise("github", "push", github_push("refs/heads/feature/x"))
    rules: dict[str, Any] = {"events": ["push"], "branches": ["main"], "tags": [], "paths": []}
    assert filter_reason(push, **rules) == "branch 'feature/x' matches none of main"
    assert filter_reason(push, **{**rules, "branches": ["feature/*"]}) is None
    assert filter_reason(push, **{**rules, "events": ["tag"]}).startswith("event push")  # type: ignore[union-attr]
    assert (
        filter_reason(push, **{**rules, "branches": [], "paths": ["deploy/**"]})
        == "no changed path matches deploy/**"
    )
    assert filter_reason(push, **{**rules, "branches": [], "paths": ["src/*.py"]}) is None
    tag = normalise("github", "push", github_push("refs/tags/v1"))
    assert filter_reason(tag, **{**rules, "events": ["tag"], "tags": ["v2*"]}) == (
        "tag 'v1' matches none of v2*"
    )
    assert matches([], "anything")


def test_parameter_map_follows_dotted_paths() -> None:
    payload = github_push("refs/heads/main")
    assert lookup(payload, "commits.1.removed.0") == (True, "old.txt")
    assert lookup(payload, "head_commit.nope") == (False, None)
    values = map_parameters(
        {"message": "head_commit.message", "missing": "no.such.path", "paths": "commits.0.added"},
        payload,
    )
    assert values == {"message": "Fix it", "paths": ["docs/a.md"]}
    with pytest.raises(MappingRefused) as refused:
        map_parameters({"repo": "repository"}, payload)
    assert refused.value.field == "parameters.repo"


def test_rate_limit_bucket_refills_and_says_when() -> None:
    limiter = HookRateLimiter(per_minute=60, burst=3, max_hooks=2)
    assert [limiter.take("h", 0.0) for _ in range(3)] == [0, 0, 0]
    assert limiter.take("h", 0.0) == 1  # one token a second
    assert limiter.take("h", 1.0) == 0
    assert limiter.take("other", 1.0) == 0  # buckets are per hook
    limiter.take("third", 1.0)
    assert len(limiter._buckets) == 2  # the least recently seen id was dropped


def test_github_form_content_type_carries_the_payload_field() -> None:
    from urllib.parse import urlencode

    from shipyard.webhooks.inbound import _payload

    body = urlencode({"payload": '{"ref": "refs/heads/main"}'}).encode()
    assert _payload(body, "application/x-www-form-urlencoded") == {"ref": "refs/heads/main"}
    assert _payload(b'{"a": 1}', "application/json") == {"a": 1}
    with pytest.raises(ValueError):
        _payload(b"not json", "application/json")
