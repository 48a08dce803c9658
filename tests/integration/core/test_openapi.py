"""The OpenAPI description as clients use it: names, tags, auth, errors, the log stream."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import httpx

from tests.integration.core.test_isolation import api_description, api_operations, undocumented

OPERATION_ID = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)+$")


def operations() -> list[tuple[str, str, dict[str, Any]]]:
    spec = api_description()
    return [
        (method.upper(), path, operation)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
    ]


def test_operation_ids_read_well_and_are_unique() -> None:
    ids = [operation["operationId"] for _, _, operation in operations()]
    assert len(ids) == len(set(ids)), [name for name, n in Counter(ids).items() if n > 1]
    assert [name for name in ids if not OPERATION_ID.match(name) or "api_v1" in name] == []
    by_route = {(method, path): op["operationId"] for method, path, op in operations()}
    assert by_route[("GET", "/api/v1/hosts")] == "hosts_list"
    assert by_route[("POST", "/api/v1/deployments/{deployment_id}/cancel")] == "deployments_cancel"
    assert by_route[("GET", "/api/v1/git-providers")] == "git_providers_list"


def test_one_tag_per_operation_each_described() -> None:
    spec = api_description()
    described = {tag["name"] for tag in spec["tags"]}
    for method, path, operation in operations():
        assert len(operation["tags"]) == 1 and operation["tags"][0] in described, (method, path)
    assert {"accounts", "hosts", "deployments", "templates", "sso"} <= described


def test_schema_titles_are_unique_and_match_their_names() -> None:
    schemas = api_description()["components"]["schemas"]
    titles = [schema.get("title", name) for name, schema in schemas.items()]
    assert len(titles) == len(set(titles)), [t for t, n in Counter(titles).items() if n > 1]
    assert [name for name in schemas if "__" in name] == []
    # The two SyncQueued answers (git and CI/CD) both survive, under their domain's name.
    assert {"GitSyncQueued", "CicdSyncQueued"} <= set(schemas)


def test_errors_use_the_real_error_body() -> None:
    spec = api_description()
    schemas = spec["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    error = schemas["ErrorResponse"]["properties"]["error"]
    assert set(error["required"]) == {"code", "message", "details"}
    for method, path, operation in operations():
        for code, response in operation["responses"].items():
            if code.startswith(("4", "5")):
                ref = response["content"]["application/json"]["schema"]["$ref"]
                assert ref == "#/components/schemas/ErrorResponse", (method, path, code)


def test_the_log_stream_is_declared_as_server_sent_events() -> None:
    stream = api_description()["paths"]["/api/v1/deployments/{deployment_id}/logs/stream"]
    content = stream["get"]["responses"]["200"]["content"]
    assert list(content) == ["text/event-stream"]
    assert "Last-Event-ID" in stream["get"]["responses"]["200"]["description"]


async def test_protected_operations_declare_bearer_and_answer_401_with_www_authenticate(
    client: httpx.AsyncClient,
) -> None:
    spec = api_description()
    assert spec["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": spec["components"]["securitySchemes"]["bearer"]["description"],
    }
    problems = []
    for method, path in api_operations():
        operation = spec["paths"][path][method.lower()]
        url = re.sub(r"\{\w+\}", "00000000-0000-4000-8000-000000000000", path)
        response = await client.request(method, url, json={} if method != "GET" else None)
        secured = operation.get("security") == [{"bearer": []}]
        if secured:
            if response.status_code != 401:
                problems.append(
                    f"{method} {path}: declares bearer but answered {response.status_code}"
                )
            elif response.headers.get("www-authenticate") != "Bearer":
                problems.append(f"{method} {path}: 401 without WWW-Authenticate: Bearer")
        elif response.status_code == 401 and not path.startswith("/api/v1/auth/"):
            # Only log-in forms answer 401 without a token: to wrong credentials.
            problems.append(f"{method} {path}: answers 401 but declares no security")
        if (problem := undocumented(method, path, response)) is not None:
            problems.append(problem)
    assert problems == []


async def test_a_refused_token_names_the_problem_in_www_authenticate(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/api/v1/hosts", headers={"Authorization": "Bearer nope"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert response.json()["error"]["code"] == "invalid_token"


def test_request_examples_are_valid_requests() -> None:
    from pydantic import BaseModel

    from shipyard.accounts.schemas import ApiTokenCreate, LoginRequest
    from shipyard.deployments.schemas import DeploymentCreate
    from shipyard.git.schemas import RepositoryCreate
    from shipyard.hosts.schemas import HostCreate
    from shipyard.templates.schemas import LaunchRequest, TemplateCreate

    models: dict[str, type[BaseModel]] = {
        "auth_login": LoginRequest,
        "auth_create_token": ApiTokenCreate,
        "hosts_create": HostCreate,
        "repositories_add": RepositoryCreate,
        "templates_create": TemplateCreate,
        "templates_launch": LaunchRequest,
        "deployments_create": DeploymentCreate,
    }
    examples = {
        operation["operationId"]: operation["requestBody"]["content"]["application/json"]
        for _, _, operation in operations()
        if "example"
        in operation.get("requestBody", {}).get("content", {}).get("application/json", {})
    }
    assert set(examples) == set(models)
    for operation_id, model in models.items():
        model.model_validate(examples[operation_id]["example"])
