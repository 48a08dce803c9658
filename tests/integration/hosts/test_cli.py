"""``shipyard hosts list|test`` against a live server over HTTP, with an API token."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from shipyard.cli import app
from tests.fixtures.hosts import host_payload
from tests.support import canary
from tests.support.browser import LiveServer, api_signup
from tests.support.cli_process import run_shipyard_json
from tests.support.sshd import SSHEndpoint, SSHFleet, free_port

JSON_LABEL = "shipyard-hosts-json"


@pytest.fixture
async def cli_env(live_server: LiveServer) -> dict[str, str]:
    admin = await api_signup(live_server.url, tenant_name="CLI Corp")
    async with httpx.AsyncClient(base_url=live_server.url) as http:
        created = await http.post(
            "/api/v1/auth/tokens", headers=admin.headers, json={"name": "cli"}
        )
        assert created.status_code == 201, created.text
    return {
        "SHIPYARD_URL": live_server.url,
        "SHIPYARD_TOKEN": canary.remember(created.json()["token"], "API token"),
        "COLUMNS": "250",
    }


async def add_host(
    live_server: LiveServer, env: dict[str, str], payload: dict[str, Any]
) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=live_server.url) as http:
        response = await http.post(
            "/api/v1/hosts",
            headers={"Authorization": f"Bearer {env['SHIPYARD_TOKEN']}"},
            json=payload,
        )
    assert response.status_code == 201, response.text
    return dict(response.json())


def shipyard(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), env=env)
    canary.save_output("shipyard-hosts", result.stdout, result.stderr)
    return result.exit_code, result.stdout, result.stderr


async def test_list_and_test_one_host(
    live_server: LiveServer, cli_env: dict[str, str], ssh_endpoint: SSHEndpoint
) -> None:
    good = await add_host(live_server, cli_env, host_payload(ssh_endpoint, name="cli-good"))
    bad = await add_host(
        live_server, cli_env, host_payload(ssh_endpoint, name="cli-bad", password="wrong")
    )
    code, out, _ = shipyard(cli_env, "hosts", "list")
    assert code == 0 and "cli-good" in out and "cli-bad" in out and "unknown" in out

    code, out, _ = shipyard(cli_env, "hosts", "test", good["id"])
    assert code == 0, out
    assert "online" in out and "Linux" in out

    code, out, err = shipyard(cli_env, "hosts", "test", bad["id"])
    assert code == 1
    assert "auth_failed" in out
    assert err.strip().startswith("error:") and "refused the password" in err
    assert len(err.strip().splitlines()) == 1

    code, out, _ = shipyard(cli_env, "hosts", "list", "--status", "online")
    assert "cli-good" in out and "cli-bad" not in out
    code, out, _ = shipyard(cli_env, "hosts", "list", "--search", "BAD")
    assert "cli-bad" in out and "cli-good" not in out


async def test_test_all_waits_for_the_background_job(
    live_server: LiveServer, cli_env: dict[str, str], ssh_fleet: SSHFleet
) -> None:
    for index, endpoint in enumerate(ssh_fleet.ensure(3)):
        await add_host(live_server, cli_env, host_payload(endpoint, name=f"fleet-{index}"))
    code, out, err = shipyard(cli_env, "hosts", "test", "--all", "--timeout", "60")
    assert code == 0, out + err
    assert "testing 3 hosts" in out and out.count("online") == 3

    down = await add_host(
        live_server, cli_env, host_payload(ssh_fleet.endpoints[0], name="gone", port=free_port())
    )
    code, out, err = shipyard(cli_env, "hosts", "test", "--all", "--timeout", "60")
    assert code == 1 and "1 of 4 hosts are not online" in err
    assert down["name"] in out and "offline" in out


async def test_errors_are_one_line_with_an_exit_code(cli_env: dict[str, str]) -> None:
    code, _, err = shipyard(cli_env, "hosts", "test")
    assert code == 2 and "give a host (name or ID) or --all" in err
    code, _, err = shipyard(cli_env, "hosts", "test", "00000000-0000-0000-0000-000000000000")
    assert code == 1 and "host not found" in err and len(err.strip().splitlines()) == 1
    code, _, err = shipyard({**cli_env, "SHIPYARD_TOKEN": "not-a-token"}, "hosts", "list")
    assert code == 1 and err.startswith("error:")
    unreachable = {**cli_env, "SHIPYARD_URL": f"http://127.0.0.1:{free_port()}"}
    code, _, err = shipyard(unreachable, "hosts", "list")
    assert code == 1 and "cannot reach Shipyard" in err
    code, _, err = shipyard(
        {"SHIPYARD_URL": cli_env["SHIPYARD_URL"], "SHIPYARD_TOKEN": ""}, "hosts", "list"
    )
    assert code == 1 and "SHIPYARD_TOKEN" in err


CLI_INVENTORY = """
[web]
web[1:2] ansible_host=127.0.0.1 ansible_user=deploy

[prod:children]
web
"""


async def test_hosts_groups_and_inventory_import_end_to_end(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    password = canary.remember("cli-host-pass-7713", "host password")
    code, out, err = shipyard_in(
        cli_env,
        password + "\n",
        "hosts", "create", "api-1", "--ip", "127.0.0.1", "--user", "deploy",
        "--password-stdin", "--tag", "web", "--tag", "eu", "--pool", "dc-east",
    )  # fmt: skip
    assert code == 0, out + err
    assert "api-1" in out and "tags: eu, web" in out and "pool: dc-east" in out
    assert password not in out
    code, out, err = shipyard(cli_env, "hosts", "update", "api-1", "--tag", "api", "--no-pool")
    assert code == 0, out + err
    assert "tags: api" in out and "pool: -" in out

    inventory = tmp_path / "hosts.ini"
    inventory.write_text(CLI_INVENTORY)
    code, out, err = shipyard(cli_env, "inventory", "import", str(inventory))
    assert code == 0, out + err
    assert "created hosts (2): web1, web2" in out and "created groups (2): web, prod" in out
    code, out, err = shipyard(cli_env, "inventory", "import", str(inventory), "--format", "ini")
    assert code == 0 and "updated hosts (2): web1, web2" in out and "created hosts (0)" in out
    broken = tmp_path / "broken.yml"
    broken.write_text("all:\n  hosts: [1, 2]\n")
    code, _, err = shipyard(cli_env, "inventory", "import", str(broken))
    assert code == 1 and "all.hosts" in err and "HTTP 422" in err

    code, out, err = shipyard(
        cli_env, "groups", "create", "edge", "--host", "api-1", "--pool", "dc-west"
    )
    assert code == 0, out + err
    assert "edge" in out and "dc-west" in out and "api-1" in out
    code, out, _ = shipyard(cli_env, "groups", "add-hosts", "edge", "web1", "web2")
    assert code == 0 and all(name in out for name in ("api-1", "web1", "web2"))
    code, out, _ = shipyard(cli_env, "groups", "remove-hosts", "edge", "api-1")
    assert code == 0 and "api-1" not in out and "web1" in out
    code, out, _ = shipyard(cli_env, "groups", "update", "edge", "--name", "edge2", "--no-pool")
    assert code == 0 and "edge2" in out and "dc-west" not in out
    code, out, _ = shipyard(cli_env, "groups", "list")
    assert code == 0 and all(name in out for name in ("edge2", "prod", "web"))
    code, out, _ = shipyard(cli_env, "groups", "delete", "edge2")
    assert code == 0 and "deleted host group edge2" in out
    code, _, err = shipyard(cli_env, "groups", "delete", "edge2")
    assert code == 1 and "no group named 'edge2'" in err
    code, out, _ = shipyard(cli_env, "hosts", "delete", "api-1")
    assert code == 0 and "deleted host api-1" in out


def shipyard_in(env: dict[str, str], stdin: str, *args: str) -> tuple[int, str, str]:
    """``shipyard`` with ``stdin`` as its standard input."""
    result = CliRunner().invoke(app, list(args), env=env, input=stdin)
    canary.save_output("shipyard-hosts", result.stdout, result.stderr)
    return result.exit_code, result.stdout, result.stderr


async def test_every_command_prints_json_and_takes_names(
    live_server: LiveServer, cli_env: dict[str, str], ssh_fleet: SSHFleet, tmp_path: Path
) -> None:
    """hosts, groups and inventory with -o json (the API's objects), hosts and groups by name."""
    url, token = cli_env["SHIPYARD_URL"], cli_env["SHIPYARD_TOKEN"]
    first, second = ssh_fleet.ensure(2)

    async def run(*args: str, stdin: bytes | None = None) -> tuple[int, Any, str]:
        return await run_shipyard_json(url, token, *args, label=JSON_LABEL, stdin=stdin)

    password = canary.remember(first.password, "sshd password")
    code, host, err = await run(
        "hosts", "create", "json-web", "--ip", first.host, "--port", str(first.port),
        "--user", first.user, "--password-stdin", "--tag", "web",
        stdin=(password + "\n").encode(),
    )  # fmt: skip
    assert code == 0, err
    assert host["name"] == "json-web" and host["tags"] == ["web"] and host["has_password"]
    assert "password" not in host
    other = await add_host(live_server, cli_env, host_payload(second, name="json-db"))

    code, listed, _ = await run("hosts", "list")
    assert code == 0 and {h["name"] for h in listed} == {"json-web", "json-db"}
    code, shown, _ = await run("hosts", "show", "json-web")
    assert code == 0 and shown["id"] == host["id"] and shown["status"] == "unknown"
    code, shown, _ = await run("hosts", "show", other["id"])
    assert code == 0 and shown["name"] == "json-db"
    code, out, _ = shipyard(cli_env, "hosts", "show", "json-web")
    assert code == 0 and "json-web" in out and "tags: web" in out and "auth: password" in out
    code, tested, _ = await run("hosts", "test", "json-web")
    assert code == 0 and tested["status"] == "online"
    assert tested["host"]["id"] == host["id"] and tested["host"]["status"] == "online"
    code, updated, _ = await run("hosts", "update", "json-web", "--tag", "api", "--pool", "dc-1")
    assert code == 0 and updated["tags"] == ["api"] and updated["pool"] == "dc-1"
    code, tested_all, err = await run("hosts", "test", "--all", "--timeout", "60")
    assert code == 0, err
    assert tested_all["queued"]["hosts"] == 2 and isinstance(tested_all["queued"]["job_id"], int)
    assert sorted((h["name"], h["status"]) for h in tested_all["hosts"]) == [
        ("json-db", "online"),
        ("json-web", "online"),
    ]
    assert "testing 2 hosts" in err  # the remark goes to stderr: stdout stays one document

    # Names: not found is an error (1), a name two hosts answer to a usage error (2).
    await add_host(live_server, cli_env, host_payload(second, name="JSON-WEB"))
    code, nothing, err = await run("hosts", "show", "Json-Web")
    assert code == 2 and nothing is None
    assert "2 hosts are named 'Json-Web'" in err and host["id"] in err
    assert len(err.strip().splitlines()) == 1
    code, _, err = await run("hosts", "test", "no-such-host")
    assert code == 1 and "no host named 'no-such-host'" in err

    code, group, _ = await run("groups", "create", "json-g", "--host", "json-web")
    assert code == 0 and group["name"] == "json-g" and group["host_ids"] == [host["id"]]
    code, group, _ = await run("groups", "add-hosts", "json-g", "json-db")
    assert code == 0 and set(group["host_ids"]) == {host["id"], other["id"]}
    code, group, _ = await run("groups", "remove-hosts", "json-g", "json-web")
    assert code == 0 and group["host_ids"] == [other["id"]]
    code, group, _ = await run("groups", "update", "json-g", "--pool", "dc-2")
    assert code == 0 and group["pool"] == "dc-2"
    code, shown, _ = await run("groups", "show", "json-g")
    assert code == 0 and shown["id"] == group["id"] and shown["variables"] == []
    code, out, _ = shipyard(cli_env, "groups", "show", "json-g")
    assert code == 0 and "json-g" in out and "json-db" in out and "dc-2" in out
    code, groups, _ = await run("groups", "list")
    assert code == 0 and [g["name"] for g in groups] == ["json-g"]
    code, deleted, _ = await run("groups", "delete", group["id"])
    assert code == 0 and deleted == {"id": group["id"], "name": "json-g", "deleted": True}

    inventory = tmp_path / "hosts.ini"
    inventory.write_text(CLI_INVENTORY)
    code, report, _ = await run("inventory", "import", str(inventory))
    assert code == 0
    assert report["created"] == {"hosts": ["web1", "web2"], "groups": ["web", "prod"]}
    assert report["skipped"] == []

    code, deleted, _ = await run("hosts", "delete", "json-web")
    assert code == 0 and deleted == {"id": host["id"], "name": "json-web", "deleted": True}
