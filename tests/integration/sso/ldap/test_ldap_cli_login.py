"""``shipyard login URL --ldap PROVIDER_ID``: a directory user's password checked by slapd, then a
personal token stored in the profile as for a password log-in."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from shipyard.config import Settings
from shipyard.db import Database
from tests.integration.core.test_cli_login import run_cli, stored_profiles
from tests.integration.sso.ldap import slapd
from tests.integration.sso.ldap.conftest import MakeProvider
from tests.support.api import Account
from tests.support.live_server import serve


@pytest.fixture
async def base_url(db: Database, settings: Settings) -> AsyncIterator[str]:
    async with serve(db, settings) as url:
        yield url


async def test_login_through_ldap(
    base_url: str,
    client: httpx.AsyncClient,
    admin: Account,
    ldap_provider: MakeProvider,
    slapd_server: slapd.Slapd,
    tmp_path: Path,
) -> None:
    provider_id = await ldap_provider(admin.tenant_id)
    config = tmp_path / "config.toml"
    password = slapd_server.passwords["alice"]

    ran = await run_cli(
        config, "login", base_url, "--ldap", str(provider_id), "--email", "alice",
        "--password-stdin", "-o", "json", stdin=password + "\n", label="shipyard-ldap-login",
    )  # fmt: skip
    assert ran.code == 0, ran.stderr
    assert ran.json()["user"] == "alice@example.org" and ran.json()["name"] == "default"
    token = stored_profiles(config)["default"]["token"]
    me = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200 and me.json()["email"] == "alice@example.org"
    assert me.json()["tenant_id"] == admin.tenant_id

    ran = await run_cli(
        config, "login", base_url, "--ldap", str(provider_id), "--email", "alice",
        "--password-stdin", "--profile", "wrong", stdin="not-alices-password\n",
        label="shipyard-ldap-login",
    )  # fmt: skip
    assert ran.code == 1 and ran.stderr.count("\n") == 1 and "(HTTP 401)" in ran.stderr
    assert sorted(stored_profiles(config)) == ["default"]
