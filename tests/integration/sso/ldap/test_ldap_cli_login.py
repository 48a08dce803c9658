"""``shipyard login URL --ldap PROVIDER``: a directory user's password checked by slapd, then a
personal token stored in the profile as for a password log-in. The provider by its id, or by
its name with the team's log-in slug (``--team``), which ``GET /auth/teams/{slug}`` resolves."""

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


async def test_login_through_ldap_by_the_providers_name_and_the_teams_slug(
    base_url: str,
    client: httpx.AsyncClient,
    admin: Account,
    ldap_provider: MakeProvider,
    slapd_server: slapd.Slapd,
    tmp_path: Path,
) -> None:
    provider_id = await ldap_provider(admin.tenant_id, name="Corporate LDAP")
    await ldap_provider(admin.tenant_id, name="Old directory", enabled=False)
    slug = await client.patch(
        "/api/v1/sso/settings", headers=admin.headers, json={"login_slug": "acme-dir"}
    )
    assert slug.status_code == 200, slug.text

    # The team's log-in page, public: what a client shows before anyone signs in.
    page = await client.get("/api/v1/auth/teams/ACME-dir")
    assert page.status_code == 200, page.text
    assert page.json() == {
        "name": "Acme",
        "sso_required": False,
        "providers": [{"id": str(provider_id), "kind": "ldap", "name": "Corporate LDAP"}],
    }
    missing = await client.get("/api/v1/auth/teams/no-such-team")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"

    config = tmp_path / "config.toml"
    password = slapd_server.passwords["alice"]
    ran = await run_cli(
        config, "login", base_url, "--team", "acme-dir", "--ldap", "corporate ldap",
        "--email", "alice", "--password-stdin", "-o", "json", stdin=password + "\n",
        label="shipyard-ldap-login",
    )  # fmt: skip
    assert ran.code == 0, ran.stderr
    assert ran.json()["user"] == "alice@example.org"
    token = stored_profiles(config)["default"]["token"]
    me = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200 and me.json()["tenant_id"] == admin.tenant_id

    # A name the team's page does not list (a disabled provider is not listed): the names it
    # has, before any password is asked for; a name without --team is a usage error.
    ran = await run_cli(
        config, "login", base_url, "--team", "acme-dir", "--ldap", "Old directory",
        "--email", "alice", "--password-stdin", "--profile", "other", stdin=password + "\n",
        label="shipyard-ldap-login",
    )  # fmt: skip
    assert ran.code == 1
    assert "no LDAP provider named 'Old directory'" in ran.stderr
    assert "'Corporate LDAP'" in ran.stderr
    ran = await run_cli(
        config, "login", base_url, "--ldap", "Corporate LDAP", "--email", "alice",
        "--password-stdin", "--profile", "other", stdin=password + "\n",
        label="shipyard-ldap-login",
    )  # fmt: skip
    assert ran.code == 2 and "--team" in ran.stderr
    ran = await run_cli(
        config, "login", base_url, "--team", "nobody-here", "--ldap", "Corporate LDAP",
        "--email", "alice", "--password-stdin", "--profile", "other", stdin=password + "\n",
        label="shipyard-ldap-login",
    )  # fmt: skip
    assert ran.code == 1 and "(HTTP 404)" in ran.stderr
    assert sorted(stored_profiles(config)) == ["default"]
