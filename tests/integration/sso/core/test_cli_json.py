"""``shipyard sso ... -o json``: providers (by name), rules, the log-in policy and a member's
explanation as the API's own objects; a provider's secret is never in them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import pytest

from shipyard.config import Settings
from shipyard.db import Database
from tests.integration.sso.core.helpers import signed_in
from tests.support import canary
from tests.support.api import Account, unique_email
from tests.support.cli_process import run_shipyard_json
from tests.support.live_server import serve


@pytest.fixture
async def base_url(db: Database, settings: Settings) -> AsyncIterator[str]:
    async with serve(db, settings) as url:
        yield url


async def test_sso_commands_print_json(
    admin: Account, db: Database, settings: Settings, base_url: str
) -> None:
    secret = canary.remember("cli-json-bind-password-sso", "ldap bind password (cli json)")

    async def shipyard(*args: str, stdin: bytes | None = None) -> tuple[int, Any, str]:
        return await run_shipyard_json(
            base_url, admin.token, "sso", *args, label="sso-json", stdin=stdin
        )

    code, corp, err = await shipyard(
        "providers",
        "create",
        "oidc",
        "Corp",
        "--set",
        "issuer=https://idp.example.com",
        "--set",
        "client_id=shipyard",
    )
    assert code == 0, err
    assert corp["name"] == "Corp" and corp["kind"] == "oidc" and corp["has_secret"] is False
    code, directory, err = await shipyard(
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
        "--secret-stdin",
        stdin=secret.encode() + b"\n",
    )
    assert code == 0, err
    assert directory["has_secret"] is True and secret not in repr(directory)

    code, providers, err = await shipyard("providers", "list")
    assert code == 0, err
    assert sorted(item["name"] for item in providers) == ["Corp", "Directory"]
    code, shown, err = await shipyard("providers", "show", "Directory")
    assert code == 0 and shown["id"] == directory["id"], err
    assert shown["config"]["bind_dn"] == "cn=svc,dc=example,dc=com"
    code, updated, err = await shipyard(
        "providers", "update", "Directory", "--disable", "--set", "start_tls=true"
    )
    assert code == 0, err
    assert updated["enabled"] is False and updated["config"]["start_tls"] is True
    # Nothing answers on port 9: one error line, nothing on stdout.
    code, nothing, err = await shipyard("providers", "test", directory["id"])
    assert code == 1 and nothing is None, err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ")

    code, devs, err = await shipyard("rules", "add", "devs", "developer")
    assert code == 0, err
    assert devs["group"] == "devs" and devs["role"] == "developer" and devs["position"] == 0
    code, ops, err = await shipyard(
        "rules", "add", "ops", "admin", "--provider", "Corp", "--position", "1"
    )
    assert code == 0, err
    assert ops["provider_id"] == corp["id"] and ops["position"] == 0
    code, rules, err = await shipyard("rules", "list")
    assert code == 0 and [item["id"] for item in rules] == [ops["id"], devs["id"]], err
    code, moved, err = await shipyard("rules", "move", "2", "1")
    assert code == 0 and [item["id"] for item in moved] == [devs["id"], ops["id"]], err
    code, changed, err = await shipyard("rules", "update", "2", "--any-provider")
    assert code == 0 and changed["id"] == ops["id"] and changed["provider_id"] is None, err
    code, removed, err = await shipyard("rules", "remove", ops["id"])
    assert code == 0 and removed["id"] == ops["id"] and removed["deleted"] is True, err

    code, policy, err = await shipyard(
        "settings", "set", "--slug", "acme-json", "--default-role", "viewer"
    )
    assert code == 0, err
    assert policy["login_slug"] == "acme-json" and policy["default_role"] == "viewer"
    assert policy["login_url"].endswith("/login/t/acme-json")
    code, current, err = await shipyard("settings", "show")
    assert code == 0 and current == policy, err

    email = unique_email("cli-sso-json")
    await signed_in(db, settings, UUID(corp["id"]), subject="json-1", email=email, groups=("devs",))
    code, explained, err = await shipyard("explain", email)
    assert code == 0, err
    assert explained["email"] == email and explained["role"] == "developer"
    assert [identity["subject"] for identity in explained["identities"]] == ["json-1"]
    assert "devs" in explained["explanation"]

    code, deleted, err = await shipyard("providers", "delete", "Directory", "--yes")
    assert code == 0, err
    assert deleted == {"id": directory["id"], "name": "Directory", "deleted": True}
