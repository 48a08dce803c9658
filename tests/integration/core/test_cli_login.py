"""``shipyard login``, ``logout`` and ``profiles`` against a live server: a personal token made
through the API and kept owner-only in the config file, named profiles, where a command's address
and token come from (flag > environment > profile), and a token never sent to another address.

Each test has its own config file (``SHIPYARD_CONFIG``) and runs the commands with neither
``SHIPYARD_URL`` nor ``SHIPYARD_TOKEN`` set unless it says so.
"""

from __future__ import annotations

import asyncio
import json
import stat
import tomllib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from shipyard.accounts.models import ApiToken
from shipyard.config import Settings
from shipyard.db import Database
from tests.integration.notifications.receivers import http_receiver
from tests.support import canary
from tests.support.api import Account, add_member
from tests.support.cli_process import _root
from tests.support.live_server import serve


@dataclass(frozen=True)
class Ran:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        try:
            return json.loads(self.stdout)
        except ValueError as exc:
            raise AssertionError(f"stdout is not JSON: {self.stdout!r}") from exc


def _invoke(args: list[str], env: dict[str, str | None], stdin: str) -> Any:
    return CliRunner().invoke(_root(), args, input=stdin, env=env, prog_name="shipyard")


async def run_cli(
    config: Path,
    *args: str,
    stdin: str = "",
    env: dict[str, str | None] | None = None,
    label: str = "shipyard-login",
) -> Ran:
    """``shipyard ARGS`` in-process (on a thread: this loop serves the API) with ``config`` as
    the config file and no SHIPYARD_URL/SHIPYARD_TOKEN/SHIPYARD_PROFILE unless ``env`` sets
    them; the output goes to the secret canary."""
    environment: dict[str, str | None] = {
        "SHIPYARD_CONFIG": str(config),
        "SHIPYARD_URL": None,
        "SHIPYARD_TOKEN": None,
        "SHIPYARD_PROFILE": None,
        "COLUMNS": "250",
        **(env or {}),
    }
    result = await asyncio.wait_for(
        asyncio.to_thread(_invoke, list(args), environment, stdin), timeout=120
    )
    canary.save_output(label, result.output)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Ran(result.exit_code, result.stdout, result.stderr)


def stored_profiles(config: Path) -> dict[str, Any]:
    data = tomllib.loads(config.read_text())
    profiles: dict[str, Any] = data.get("profiles", {})
    for profile in profiles.values():
        canary.remember(profile["token"], "API token of a shipyard login profile")
    return profiles


@pytest.fixture
async def base_url(db: Database, settings: Settings) -> AsyncIterator[str]:
    async with serve(db, settings) as url:
        yield url


@pytest.fixture
def config(tmp_path: Path) -> Path:
    # A directory login creates: its mode is login's doing.
    return tmp_path / "shipyard-config" / "config.toml"


async def status_with(client: httpx.AsyncClient, token: str) -> int:
    return (
        await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    ).status_code


async def test_login_stores_a_personal_token_owner_only_and_ends_the_session(
    base_url: str, client: httpx.AsyncClient, admin: Account, db: Database, config: Path
) -> None:
    ran = await run_cli(
        config,
        "login",
        base_url,
        "--email",
        admin.email,
        "--password-stdin",
        "--name",
        "laptop",
        "-o",
        "json",
        stdin=admin.password + "\n",
    )
    assert ran.code == 0, ran.stderr
    stored = stored_profiles(config)["default"]
    token = stored["token"]
    assert token not in ran.stdout + ran.stderr
    assert ran.json() == {
        "name": "default",
        "url": base_url,
        "user": admin.email,
        "token_id": stored["token_id"],
        "current": True,
        "config_file": str(config),
    }
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert stat.S_IMODE(config.parent.stat().st_mode) == 0o700
    assert not [path.name for path in config.parent.iterdir() if path != config]

    # The token is a personal token of the user's, made through the API.
    tokens = (await client.get("/api/v1/auth/tokens", headers=admin.headers)).json()
    assert [(item["id"], item["name"], item["kind"]) for item in tokens] == [
        (stored["token_id"], "laptop", "personal")
    ]
    # The sign-in session it was made with is ended: of the user's sessions, only the sign-up's
    # is still open.
    async with db.session(system=True) as session:
        sessions = (
            await session.scalars(
                select(ApiToken).where(
                    ApiToken.profile_id == UUID(admin.user_id), ApiToken.kind == "session"
                )
            )
        ).all()
    assert sorted(row.revoked_at is None for row in sessions) == [False, True]

    # The next command needs no SHIPYARD_TOKEN.
    ran = await run_cli(config, "notifications", "channels", "list", "-o", "json")
    assert ran.code == 0 and ran.json() == [], ran.stderr
    ran = await run_cli(config, "profiles", "show", "-o", "json")
    assert ran.code == 0, ran.stderr
    assert ran.json() == {
        "url": base_url,
        "profile": "default",
        "token_source": "profile default",
        "config_file": str(config),
    }

    # Logging in again to the profile replaces its token and revokes the old one.
    ran = await run_cli(
        config, "login", base_url, "--email", admin.email, "--password-stdin",
        stdin=admin.password + "\n",
    )  # fmt: skip
    assert ran.code == 0, ran.stderr
    first, token = token, stored_profiles(config)["default"]["token"]
    assert token != first
    assert await status_with(client, first) == 401
    tokens = (await client.get("/api/v1/auth/tokens", headers=admin.headers)).json()
    assert [item["revoked_at"] is None for item in tokens] == [True, False]

    # Logging out revokes the token: the API answers 401 for it; the profile is gone.
    assert await status_with(client, token) == 200
    ran = await run_cli(config, "logout", "-o", "json")
    assert ran.code == 0, ran.stderr
    assert ran.json() == {"name": "default", "url": base_url, "token_revoked": True}
    assert await status_with(client, token) == 401
    ran = await run_cli(config, "profiles", "list", "-o", "json")
    assert ran.code == 0 and ran.json() == [], ran.stderr
    ran = await run_cli(config, "notifications", "channels", "list")
    assert ran.code == 1 and ran.stderr.count("\n") == 1
    assert ran.stderr.startswith(
        "error: no API token for http://127.0.0.1:8000: run `shipyard login"
    )


async def test_profiles_and_where_the_address_and_token_come_from(
    base_url: str, client: httpx.AsyncClient, admin: Account, config: Path
) -> None:
    member = await add_member(client, admin, "developer")
    for profile, account in (("acme", admin), ("dev", member)):
        ran = await run_cli(
            config,
            "login",
            base_url,
            "--email",
            account.email,
            "--password-stdin",
            "--profile",
            profile,
            stdin=account.password + "\n",
        )
        assert ran.code == 0, ran.stderr
        assert f"profile {profile!r} saved in {config}" in ran.stdout
    stored = stored_profiles(config)
    admin_token, member_token = stored["acme"]["token"], stored["dev"]["token"]

    # The last log-in is current; `profiles use` changes it; the list never shows a token.
    ran = await run_cli(config, "profiles", "list", "-o", "json")
    assert ran.code == 0, ran.stderr
    assert [(item["name"], item["user"], item["current"]) for item in ran.json()] == [
        ("acme", admin.email, False),
        ("dev", member.email, True),
    ]
    ran = await run_cli(config, "profiles", "use", "acme", "-o", "json")
    assert ran.code == 0 and ran.json()["current"] is True, ran.stderr
    for output_format in ("json", "yaml", "table"):
        ran = await run_cli(config, "profiles", "list", "-o", output_format)
        assert ran.code == 0 and "acme" in ran.stdout, ran.stderr
        assert admin_token not in ran.stdout and member_token not in ran.stdout
    ran = await run_cli(config, "profiles", "use", "nope")
    assert ran.code == 2 and "no profile named 'nope'" in ran.stderr

    async def who(*args: str, env: dict[str, str | None] | None = None) -> Ran:
        """The role the API sees for the command's token (a member may not list audit)."""
        return await run_cli(config, "audit", "list", "--limit", "1", "-o", "json", *args, env=env)

    assert (await who()).code == 0  # the current profile: the admin's
    ran = await who("--profile", "dev")
    assert ran.code == 1 and "HTTP 403" in ran.stderr
    ran = await who(env={"SHIPYARD_PROFILE": "dev"})
    assert ran.code == 1 and "HTTP 403" in ran.stderr

    # The environment wins over the profile, the flag over the environment.
    ran = await who(env={"SHIPYARD_TOKEN": member_token})
    assert ran.code == 1 and "HTTP 403" in ran.stderr
    assert (await who("--token", admin_token, env={"SHIPYARD_TOKEN": member_token})).code == 0
    # (--token on a command line is visible to others on the machine; it still wins.)
    elsewhere = "http://127.0.0.1:9"
    ran = await who(env={"SHIPYARD_URL": elsewhere, "SHIPYARD_TOKEN": admin_token})
    assert ran.code == 1 and "cannot reach Shipyard at http://127.0.0.1:9" in ran.stderr
    ran = await who("--url", base_url, env={"SHIPYARD_URL": elsewhere})
    assert ran.code == 0, ran.stderr

    # A profile's token never goes to another address.
    async with http_receiver() as receiver:
        ran = await run_cli(config, "profiles", "show", "--url", receiver.url, "-o", "json")
        assert ran.code == 0, ran.stderr
        assert ran.json()["token_source"] == "none" and ran.json()["profile"] == "acme"
        ran = await who("--url", receiver.url)
        assert ran.code == 1
        assert ran.stderr.strip().startswith(f"error: no API token for {receiver.url}")
        ran = await who(env={"SHIPYARD_URL": receiver.url})
        assert ran.code == 1 and "no API token" in ran.stderr
        assert receiver.requests == []

    # `logout --profile dev` revokes that profile's token only; the current one stays.
    ran = await run_cli(config, "logout", "--profile", "dev")
    assert ran.code == 0 and "token revoked" in ran.stdout, ran.stderr
    assert await status_with(client, member_token) == 401
    assert await status_with(client, admin_token) == 200
    assert sorted(stored_profiles(config)) == ["acme"]


async def test_login_with_a_token_from_stdin(
    base_url: str, client: httpx.AsyncClient, admin: Account, config: Path
) -> None:
    created = await client.post(
        "/api/v1/auth/tokens", headers=admin.headers, json={"name": "made on the web"}
    )
    assert created.status_code == 201, created.text
    token = canary.remember(created.json()["token"], "personal API token")
    # SHIPYARD_PROFILE names the profile as --profile does.
    ran = await run_cli(
        config,
        "login",
        base_url + "/",
        "--with-token",
        stdin=token + "\n",
        env={"SHIPYARD_PROFILE": "ci"},
    )
    assert ran.code == 0, ran.stderr
    assert token not in ran.stdout + ran.stderr
    assert stored_profiles(config)["ci"] == {"url": base_url, "token": token, "user": admin.email}
    ran = await run_cli(config, "notifications", "channels", "list", "-o", "json")
    assert ran.code == 0 and ran.json() == [], ran.stderr
    spare = await client.post("/api/v1/auth/tokens", headers=admin.headers, json={"name": "spare"})
    spare_token = canary.remember(spare.json()["token"], "personal API token")
    ran = await run_cli(
        config, "login", base_url, "--with-token", "--profile", "spare", stdin=spare_token + "\n"
    )
    assert ran.code == 0, ran.stderr
    ran = await run_cli(config, "profiles", "use", "ci")
    assert ran.code == 0 and "profile 'ci' is now current" in ran.stdout, ran.stderr

    # No token id stored: logout revokes the token through /auth/logout. The current profile
    # gone, none is current (not the other server's profile, silently).
    ran = await run_cli(config, "logout", "-o", "json")
    assert ran.code == 0 and ran.json()["token_revoked"] is True, ran.stderr
    assert "no profile is current now" in ran.stderr
    assert await status_with(client, token) == 401
    assert await status_with(client, spare_token) == 200
    ran = await run_cli(config, "profiles", "list", "-o", "json")
    assert [(item["name"], item["current"]) for item in ran.json()] == [("spare", False)]
    ran = await run_cli(config, "notifications", "channels", "list")
    assert ran.code == 1 and "no API token for http://127.0.0.1:8000" in ran.stderr
    ran = await run_cli(config, "logout", "--profile", "spare")
    assert ran.code == 0, ran.stderr

    # A token the API refuses is not stored.
    ran = await run_cli(config, "login", base_url, "--with-token", stdin=token + "\n")
    assert ran.code == 1 and ran.stderr.count("\n") == 1 and "HTTP 401" in ran.stderr
    assert not stored_profiles(config)


async def test_login_refusals_are_one_line(base_url: str, admin: Account, config: Path) -> None:
    wrong = canary.remember("not-the-password-at-all", "wrong password")
    ran = await run_cli(
        config, "login", base_url, "--email", admin.email, "--password-stdin", stdin=wrong + "\n"
    )
    assert ran.code == 1, ran.stdout
    assert ran.stdout == "" and ran.stderr.count("\n") == 1
    assert ran.stderr.startswith("error: ") and "(HTTP 401)" in ran.stderr
    assert not config.exists()

    ran = await run_cli(config, "login", base_url, "--email", admin.email, "--password-stdin")
    assert ran.code == 2 and "standard input held no password" in ran.stderr
    ran = await run_cli(config, "login", "shipyard.example.com", "--with-token", stdin="x\n")
    assert ran.code == 2 and "give the address with its scheme" in ran.stderr
    ran = await run_cli(config, "logout")
    assert ran.code == 2 and "no profile" in ran.stderr
    ran = await run_cli(config, "profiles", "list", "-o", "json")
    assert ran.code == 0 and ran.json() == []
    assert "no profiles yet" in ran.stderr
