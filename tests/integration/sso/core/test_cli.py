"""``shipyard sso providers|rules|settings|explain`` against a running server (in-process)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from uuid import UUID

import httpx
import pytest
from sqlalchemy import select

from shipyard.config import Settings
from shipyard.db import Database
from shipyard.sso.models import SsoProvider
from tests.integration.sso.core.helpers import signed_in
from tests.support import canary
from tests.support.api import Account, unique_email
from tests.support.cli_process import run_shipyard
from tests.support.live_server import serve


@pytest.fixture
async def base_url(db: Database, settings: Settings) -> AsyncIterator[str]:
    async with serve(db, settings) as url:
        yield url


async def test_sso_commands(
    client: httpx.AsyncClient, admin: Account, db: Database, settings: Settings, base_url: str
) -> None:
    secret = canary.remember("cli-bind-password-plaintext-sso", "ldap bind password (cli)")

    async def shipyard(*args: str, stdin: bytes | None = None) -> tuple[int, str]:
        return await run_shipyard(base_url, admin.token, *args, label="shipyard-sso", stdin=stdin)

    code, out = await shipyard(
        "sso",
        "providers",
        "create",
        "oidc",
        "Corp",
        "--set",
        "issuer=https://idp.example.com",
        "--set",
        "client_id=shipyard",
        "--set",
        "scopes=openid email groups",
    )
    assert code == 0, out
    assert "created identity provider" in out
    code, out = await shipyard(
        "sso",
        "providers",
        "create",
        "ldap",
        "Directory",
        "--set",
        "url=ldap://127.0.0.1:9",
        "--set",
        "bind_dn=cn=svc,dc=example,dc=com",
        "--set",
        "user_base=dc=example,dc=com",
        "--set",
        "start_tls=true",
        "--secret-stdin",
        stdin=secret.encode() + b"\n",
    )
    assert code == 0, out
    async with db.session(system=True) as session:
        directory = await session.scalar(select(SsoProvider).where(SsoProvider.name == "Directory"))
        assert directory is not None and directory.secret == secret
        assert directory.config["start_tls"] is True
    code, out = await shipyard(
        "sso", "providers", "create", "oidc", "Bad", "--set", "issuer=ftp://x"
    )
    assert code == 1 and "config.issuer" in out, out

    code, out = await shipyard("sso", "providers", "list")
    assert code == 0 and "Corp" in out and "Directory" in out and secret not in out
    code, out = await shipyard("sso", "providers", "show", "Directory")
    assert code == 0 and "secret: set" in out and "bind_dn: cn=svc" in out
    code, out = await shipyard(
        "sso", "providers", "update", "Directory", "--disable", "--set", "start_tls=false"
    )
    assert code == 0, out
    code, out = await shipyard("sso", "providers", "show", "Directory")
    assert "enabled: no" in out and "start_tls: false" in out and "secret: set" in out
    code, out = await shipyard("sso", "providers", "test", "Corp")
    assert code == 1, out
    code, out = await shipyard("sso", "providers", "delete", "Directory", "--yes")
    assert code == 0, out

    for group, role in (("staff", "viewer"), ("devs", "developer")):
        code, out = await shipyard("sso", "rules", "add", group, role)
        assert code == 0, out
    code, out = await shipyard(
        "sso", "rules", "add", "ops", "admin", "--provider", "Corp", "--position", "1"
    )
    assert code == 0 and "rule #1" in out, out
    code, out = await shipyard("sso", "rules", "move", "3", "1")
    assert code == 0, out
    code, out = await shipyard("sso", "rules", "list")
    lines = [
        line
        for line in out.splitlines()
        if "│" in line and ("staff" in line or "devs" in line or "ops" in line)
    ]
    assert ["devs" in lines[0], "ops" in lines[1], "staff" in lines[2]] == [True, True, True], out
    code, out = await shipyard("sso", "rules", "update", "1", "--role", "admin", "--any-provider")
    assert code == 0, out
    code, out = await shipyard("sso", "rules", "remove", "3")
    assert code == 0 and "staff" in out, out
    code, out = await shipyard("sso", "rules", "remove", "9")
    assert code == 1, out

    code, out = await shipyard(
        "sso",
        "settings",
        "set",
        "--slug",
        "acme-cli",
        "--default-role",
        "viewer",
        "--break-glass",
        admin.email,
        "--require-sso",
    )
    assert code == 0, out
    assert "/login/t/acme-cli" in out and "SSO required: yes" in out
    assert "/login/oidc/callback" in out
    code, out = await shipyard("sso", "settings", "set", "--default-role", "refuse")
    assert code == 0 and "default role: refuse" in out

    provider_id = (await client.get("/api/v1/sso/providers", headers=admin.headers)).json()[0]["id"]
    email = unique_email("cli-sso")

    await signed_in(db, settings, UUID(provider_id), subject="cli-1", email=email, groups=("devs",))
    code, out = await shipyard("sso", "explain", email)
    assert code == 0, out
    assert "rule #1" in out and "devs" in out and "cli-1" in out
