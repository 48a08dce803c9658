"""Malformed input gets a 4xx naming the field, never a 500, and never reaches git.

NUL bytes in repository paths and refs, refspec-shaped refs, non-ASCII digits and out-of-range
numbers in log cursors, and request bodies over the cap.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from shipyard.api import create_app
from shipyard.db import Database
from shipyard.deps import max_request_bytes
from shipyard.runtime import Runtime, build_runtime, close_runtime
from tests.fixtures.cicd import new_deployment
from tests.fixtures.git import MakeGitRepo, RepositoryFactory
from tests.support.api import Account, error_fields

REFSPEC_LIKE = [
    "+refs/*:refs/*",
    "refs/heads/main:refs/heads/evil",
    "main..feature",
    "--upload-pack=touch /tmp/pwned",
    "-x",
    "HEAD@{1}",
    "main^",
    "main~1",
    "fea ture",
    "feature\x00",
    "feature\n",
    "feat\x7fure",
    "a/.hidden",
    "main.lock",
    "main.",
    "/main",
    "main/",
    "a//b",
    "@",
    "ma*n",
    "ma?n",
    "ma[n",
    "ma\\n",
]


def _field(response: httpx.Response) -> list[str]:
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    return error_fields(response)


@pytest.fixture
async def repository(
    admin: Account, make_git_repo: MakeGitRepo, url_repository: RepositoryFactory
) -> dict[str, Any]:
    hosted = make_git_repo({"deploy.sh": "echo hi\n"}, public=True)
    return await url_repository(admin, hosted)


async def test_refspec_shaped_and_control_character_refs_are_refused_before_any_fetch(
    client: httpx.AsyncClient, admin: Account, repository: dict[str, Any]
) -> None:
    base = f"/api/v1/repositories/{repository['id']}"
    good = await client.get(f"{base}/tree", params={"ref": "main"}, headers=admin.headers)
    assert good.status_code == 200, good.text
    for ref in REFSPEC_LIKE:
        for endpoint, extra in (("tree", {}), ("file", {"path": "deploy.sh"}), ("scripts", {})):
            response = await client.get(
                f"{base}/{endpoint}", params={"ref": ref, **extra}, headers=admin.headers
            )
            assert response.status_code == 422, (ref, endpoint, response.text)
            assert _field(response) == ["ref"], (ref, endpoint)
        created = await client.post(
            "/api/v1/deployments",
            headers=admin.headers,
            json={"name": "x", "repository_id": repository["id"], "ref": ref},
        )
        assert created.status_code == 422, (ref, created.text)
        assert _field(created) == ["ref"]
    # Ordinary names git accepts still work (tags, nested branches, commit ids, non-ASCII).
    for ref in ("v1.2.3", "release/2024-01", "feature/émoji", "a" * 40):
        response = await client.get(f"{base}/tree", params={"ref": ref}, headers=admin.headers)
        assert response.status_code in (200, 404), (ref, response.text)


async def test_nul_bytes_in_paths_are_refused_naming_the_path(
    client: httpx.AsyncClient, admin: Account, repository: dict[str, Any]
) -> None:
    base = f"/api/v1/repositories/{repository['id']}"
    for endpoint in ("tree", "file"):
        response = await client.get(
            f"{base}/{endpoint}", params={"path": "deploy.sh\x00.txt"}, headers=admin.headers
        )
        assert response.status_code == 422, response.text
        assert _field(response) == ["path"]
    # The browse pages say so too, as a page (not a 500).
    from tests.support.browser_http import browser_client

    async with browser_client(client, admin) as browser:
        page = await browser.get(
            f"/repositories/{repository['id']}", params={"ref": "+refs/*:refs/*"}
        )
        assert 400 <= page.status_code < 500 or "give a branch, tag or commit" in page.text
        page = await browser.get(
            f"/repositories/{repository['id']}/file", params={"path": "a\x00b"}
        )
        assert page.status_code < 500


@pytest.mark.parametrize(
    "cursor",
    ["²", "١٢", "1²", "12abc", "-1", "9223372036854775808", "99999999999999999999999", " 1"],
)
async def test_log_cursors_must_be_ascii_numbers_within_bigint(
    client: httpx.AsyncClient, admin: Account, db: Database, cursor: str
) -> None:
    deployment_id = await new_deployment(db, admin.tenant_id)
    logs = await client.get(
        f"/api/v1/deployments/{deployment_id}/logs",
        params={"cursor": cursor},
        headers=admin.headers,
    )
    assert logs.status_code == 422, logs.text
    assert _field(logs) == ["cursor"]
    stream = await client.get(
        f"/api/v1/deployments/{deployment_id}/logs/stream",
        params={"after": cursor},
        headers=admin.headers,
    )
    assert stream.status_code == 422
    assert _field(stream) == ["after"]


async def test_a_last_event_id_beyond_bigint_is_refused_naming_the_header(
    client: httpx.AsyncClient, admin: Account, db: Database
) -> None:
    deployment_id = await new_deployment(db, admin.tenant_id)
    for value in ("9223372036854775808", "²"):
        stream = await client.get(
            f"/api/v1/deployments/{deployment_id}/logs/stream",
            headers={
                **{name.encode(): text.encode() for name, text in admin.headers.items()},
                b"Last-Event-ID": value.encode(),  # raw UTF-8 bytes, as a client may send
            },
        )
        assert stream.status_code == 422, stream.text
        assert _field(stream) == ["Last-Event-ID"]
    # The largest bigint is a valid (if far-future) position.
    ok = await client.get(
        f"/api/v1/deployments/{deployment_id}/logs",
        params={"cursor": str(2**63 - 1)},
        headers=admin.headers,
    )
    assert ok.status_code == 200, ok.text


async def test_bodies_over_the_cap_get_413_in_the_json_shape(
    client: httpx.AsyncClient, settings: Any
) -> None:
    cap = settings.max_request_bytes
    huge = b'{"email": "a@example.com", "password": "' + b"x" * (cap + 10) + b'"}'
    declared = await client.post(
        "/api/v1/auth/login", content=huge, headers={"content-type": "application/json"}
    )
    assert declared.status_code == 413
    body = declared.json()
    assert body["error"]["code"] == "payload_too_large"
    assert str(cap) in body["error"]["message"]
    assert declared.headers["content-security-policy"]

    async def chunks() -> Any:  # no Content-Length: counted as it streams
        for _ in range(cap // 65536 + 2):
            yield b"x" * 65536

    streamed = await client.post(
        "/api/v1/auth/login", content=chunks(), headers={"content-type": "application/json"}
    )
    assert streamed.status_code == 413
    assert streamed.json()["error"]["code"] == "payload_too_large"
    # A page form is capped the same way.
    form = await client.post(
        "/login",
        content=b"email=a%40example.com&password=" + b"x" * (cap + 1),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert form.status_code == 413
    # Under the cap, the request is served as usual.
    small = await client.post(
        "/api/v1/auth/login",
        json={"email": "nobody@example.com", "password": "not the password " * 6},
    )
    assert small.status_code in (401, 422)


async def test_a_route_may_declare_a_larger_cap(db: Database, settings: Any) -> None:
    small = settings.model_copy(update={"max_request_bytes": 2048})
    runtime: Runtime = build_runtime(small, db=db)
    app = create_app(runtime=runtime)

    @app.post("/api/v1/test-import/{name}")
    @max_request_bytes(64 * 1024)
    async def import_things(name: str, payload: dict[str, Any]) -> dict[str, int]:
        return {"size": len(payload["data"])}

    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            big = {"data": "x" * 10_000}
            allowed = await http.post("/api/v1/test-import/a", json=big)
            assert allowed.status_code == 200, allowed.text
            assert allowed.json() == {"size": 10_000}
            over = await http.post("/api/v1/test-import/a", json={"data": "x" * 70_000})
            assert over.status_code == 413
            # Every other route keeps the default cap.
            elsewhere = await http.post("/api/v1/auth/login", json=big)
            assert elsewhere.status_code == 413
            assert "2048" in elsewhere.json()["error"]["message"]
    finally:
        await asyncio.shield(close_runtime(runtime))
