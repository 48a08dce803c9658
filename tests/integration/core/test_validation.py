"""Bad input on every create and update endpoint: a 4xx naming the field, never a 500.

The cases are derived from the OpenAPI schema, so a new endpoint is covered without a new test.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx

from tests.support.api import Account, error_fields

BODY_METHODS = ("post", "put", "patch")


def resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = spec["components"]["schemas"][name]
    return schema


def variants(schema: dict[str, Any]) -> list[dict[str, Any]]:
    return [schema, *schema.get("anyOf", []), *schema.get("oneOf", [])]


def bad_values(spec: dict[str, Any], prop: dict[str, Any]) -> list[tuple[str, Any]]:
    """(what is wrong, a value) pairs that the property must refuse."""
    options = [resolve(spec, option) for option in variants(prop)]
    types = {option.get("type") for option in options}
    cases: list[tuple[str, Any]] = []
    for option in options:
        if "maxLength" in option:
            cases.append(("oversized string", "x" * (option["maxLength"] + 1)))
        if "enum" in option or "const" in option:
            cases.append(("unknown enum value", "no-such-value"))
        if option.get("format") == "uuid":
            cases.append(("malformed uuid", "not-a-uuid"))
        if option.get("type") == "integer" and "string" not in types:
            cases.append(("wrong type", "not-a-number"))
        if option.get("type") == "boolean" and "string" not in types:
            cases.append(("wrong type", "maybe"))
        if option.get("type") == "array" and "string" not in types:
            cases.append(("wrong type", 12345))
    return cases


def body_operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    operations = []
    for path, item in spec["paths"].items():
        if not path.startswith("/api/v1/") or path.startswith("/api/v1/auth/"):
            continue
        for method in BODY_METHODS:
            operation = item.get(method)
            if not operation:
                continue
            content = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if content:
                operations.append((method, path, resolve(spec, content["schema"])))
    return operations


def concrete(path: str) -> str:
    return re.sub(r"\{\w+\}", lambda _: str(uuid.uuid4()), path)


async def test_every_body_field_refuses_bad_values_by_name(
    client: httpx.AsyncClient, admin: Account
) -> None:
    spec = (await client.get("/openapi.json")).json()
    operations = body_operations(spec)
    assert len(operations) >= 10
    problems = []
    checked = 0
    for method, path, schema in operations:
        for name, prop in schema.get("properties", {}).items():
            for what, value in bad_values(spec, prop):
                response = await client.request(
                    method, concrete(path), headers=admin.headers, json={name: value}
                )
                checked += 1
                if response.status_code != 422 or name not in [
                    f.split(".")[0] for f in error_fields(response)
                ]:
                    problems.append(
                        f"{method.upper()} {path} {name} ({what}): {response.status_code} {response.text[:160]}"
                    )
    assert checked >= 40
    assert problems == []


async def test_invalid_json_and_unknown_fields_are_refused(
    client: httpx.AsyncClient, admin: Account
) -> None:
    spec = (await client.get("/openapi.json")).json()
    problems = []
    for method, path, _ in body_operations(spec):
        url = concrete(path)
        headers = {**admin.headers, "Content-Type": "application/json"}
        broken = await client.request(method, url, headers=headers, content=b'{"name": ')
        if broken.status_code != 422 or error_fields(broken) != ["body"]:
            problems.append(
                f"{method.upper()} {path} invalid JSON: {broken.status_code} {broken.text[:120]}"
            )
        unknown = await client.request(
            method, url, headers=admin.headers, json={"no_such_field_xyz": 1}
        )
        if unknown.status_code != 422 or "no_such_field_xyz" not in error_fields(unknown):
            problems.append(
                f"{method.upper()} {path} unknown field: {unknown.status_code} {unknown.text[:120]}"
            )
    assert problems == []


async def test_signup_names_the_bad_field(client: httpx.AsyncClient) -> None:
    cases = [
        ({"email": "not-an-email", "password": "long enough pw", "tenant_name": "T"}, "email"),
        ({"email": "a@example.com", "password": "short", "tenant_name": "T"}, "password"),
        (
            {"email": "a@example.com", "password": "long enough pw", "tenant_name": ""},
            "tenant_name",
        ),
        (
            {"email": "a@example.com", "password": "long enough pw", "tenant_name": "x" * 201},
            "tenant_name",
        ),
        ({"email": "a@example.com", "password": 12345678, "tenant_name": "T"}, "password"),
    ]
    for body, field in cases:
        response = await client.post("/api/v1/auth/signup", json=body)
        assert response.status_code == 422, body
        assert field in error_fields(response), (body, response.text)
        assert response.json()["error"]["message"].startswith(field)
