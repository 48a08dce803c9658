"""Helpers for driving the REST API in tests."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from tests.support import canary


@dataclass
class Account:
    """A signed-up user with a bearer token."""

    email: str
    password: str
    token: str
    user_id: str
    tenant_id: str
    role: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def unique_email(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}@example.com"


async def signup(
    client: httpx.AsyncClient, *, tenant_name: str = "Acme", email: str | None = None
) -> Account:
    email = email or unique_email("admin")
    password = canary.remember("correct horse battery", "sign-up password")
    response = await client.post(
        "/api/v1/auth/signup",
        json={
            "email": email,
            "password": password,
            "tenant_name": tenant_name,
            "full_name": "Ada Admin",
        },
    )
    assert response.status_code == 201, response.text
    body = response.json()
    return Account(
        email=email,
        password=password,
        token=canary.remember(body["access_token"], "session token"),
        user_id=body["user"]["id"],
        tenant_id=body["user"]["tenant_id"],
        role="admin",
    )


async def add_member(client: httpx.AsyncClient, admin: Account, role: str) -> Account:
    email = unique_email(role)
    password = canary.remember("another long password", "member password")
    created = await client.post(
        "/api/v1/tenant/members",
        headers=admin.headers,
        json={"email": email, "password": password, "role": role},
    )
    assert created.status_code == 201, created.text
    login = await client.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert login.status_code == 200, login.text
    body = login.json()
    return Account(
        email=email,
        password=password,
        token=canary.remember(body["access_token"], "session token"),
        user_id=body["user"]["id"],
        tenant_id=body["user"]["tenant_id"],
        role=role,
    )


def error_fields(response: httpx.Response) -> list[str]:
    body: dict[str, Any] = response.json()
    return [error["field"] for error in body["error"]["details"].get("errors", [])]
