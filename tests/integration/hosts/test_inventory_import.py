"""Ansible inventory import through the API: INI and YAML, children, vars, ranges, re-import."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import httpx
import yaml
from sqlalchemy import select

from shipyard.accounts.models import AuditEvent
from shipyard.db import Database
from shipyard.hosts.inventory import host_environments
from tests.support import canary
from tests.support.api import Account, add_member, error_fields
from tests.support.sshd import SSHEndpoint

INVENTORY_PASSWORD = canary.remember("inventory-ssh-pass-9931", "inventory password")
DEFAULT_PASSWORD = canary.remember("import-default-pw-5520", "import default password")

INI = f"""
# top-level hosts are Ansible's 'ungrouped'
bastion ansible_host=10.0.0.1 ansible_user=ops

[web]
web[01:03].example.com http_port=8080

[db]
db1 ansible_host=10.0.1.5 ansible_port=2222 ansible_password={INVENTORY_PASSWORD}

[eu:children]
web
db

[eu:vars]
REGION=eu-west
ansible_user=deploy

[web:vars]
ansible_connection=ssh
"""

BECOME = canary.remember("never-shown-secret", "become password")

YAML = """
all:
  vars:
    COMPANY: acme
  hosts:
    bastion:
      ansible_host: 10.0.0.1
      ansible_user: ops
  children:
    prod:
      vars:
        TIER: prod
        ansible_user: deploy
      children:
        app:
          hosts:
            app[1:2]:
              ansible_host: 10.0.2.1
              replicas: 3
              flags: [a, b]
          vars:
            ansible_become_password: never-shown-secret
"""


async def import_inventory(
    client: httpx.AsyncClient, admin: Account, content: str, fmt: str, **extra: Any
) -> httpx.Response:
    return await client.post(
        "/api/v1/inventory/import",
        headers=admin.headers,
        json={"format": fmt, "content": content, **extra},
    )


async def hosts_by_name(client: httpx.AsyncClient, admin: Account) -> dict[str, dict[str, Any]]:
    response = await client.get("/api/v1/hosts?limit=200", headers=admin.headers)
    assert response.status_code == 200
    return {host["name"]: host for host in response.json()["items"]}


async def groups_by_name(client: httpx.AsyncClient, admin: Account) -> dict[str, dict[str, Any]]:
    response = await client.get("/api/v1/host-groups", headers=admin.headers)
    return {group["name"]: group for group in response.json()}


async def test_ini_import_with_children_vars_ranges_then_reimport_updates(
    client: httpx.AsyncClient, admin: Account, db: Database
) -> None:
    response = await import_inventory(
        client,
        admin,
        INI,
        "ini",
        credentials={"user": "fallback", "password": DEFAULT_PASSWORD},
    )
    assert response.status_code == 200, response.text
    report = response.json()
    web = ["web01.example.com", "web02.example.com", "web03.example.com"]
    assert sorted(report["created"]["hosts"]) == sorted(["bastion", *web, "db1"])
    assert sorted(report["created"]["groups"]) == ["db", "eu", "web"]
    assert report["updated"] == {"hosts": [], "groups": []}
    assert report["skipped"] == [
        {
            "kind": "variable",
            "name": "ansible_connection",
            "reason": "Shipyard connects over SSH",
            "owners": ["group web"],
        }
    ]
    assert INVENTORY_PASSWORD not in response.text and DEFAULT_PASSWORD not in response.text

    hosts = await hosts_by_name(client, admin)
    assert (hosts["bastion"]["ip"], hosts["bastion"]["user"]) == ("10.0.0.1", "ops")
    # A child group's user (eu:vars) reaches the hosts of web, as Ansible resolves it.
    assert (hosts["web02.example.com"]["ip"], hosts["web02.example.com"]["user"]) == (
        "web02.example.com",
        "deploy",
    )
    assert hosts["web02.example.com"]["variables"] == [
        {"name": "http_port", "secret": False, "value": "8080"}
    ]
    assert (hosts["db1"]["ip"], hosts["db1"]["port"], hosts["db1"]["user"]) == (
        "10.0.1.5",
        2222,
        "deploy",
    )
    assert hosts["db1"]["has_password"] and hosts["db1"]["auth_method"] == "password"
    assert hosts["bastion"]["has_password"]  # the request's default credentials
    listed = await client.get("/api/v1/hosts?limit=200", headers=admin.headers)
    assert INVENTORY_PASSWORD not in listed.text and DEFAULT_PASSWORD not in listed.text

    groups = await groups_by_name(client, admin)
    ids = {name: host["id"] for name, host in hosts.items()}
    assert set(groups["web"]["host_ids"]) == {ids[name] for name in web}
    # eu's children are flattened into eu's own members.
    assert set(groups["eu"]["host_ids"]) == {ids[name] for name in [*web, "db1"]}
    assert groups["eu"]["variables"] == [{"name": "REGION", "secret": False, "value": "eu-west"}]
    tenant = UUID(admin.tenant_id)
    async with db.session(tenant_id=tenant) as session:
        environments = await host_environments(
            session=session, tenant_id=tenant, host_ids=[UUID(ids["db1"])]
        )
    assert environments[UUID(ids["db1"])].plain == {"REGION": "eu-west"}
    # The password reached the row (decrypted only here), under the host, not as a variable.
    assert INVENTORY_PASSWORD not in str(environments)

    # Second import of a changed file: matched by name, updated, not duplicated.
    changed = INI.replace("REGION=eu-west", "REGION=eu-central").replace("2222", "2200")
    again = await import_inventory(client, admin, changed, "ini")
    assert again.status_code == 200, again.text
    second = again.json()
    assert second["created"] == {"hosts": [], "groups": []}
    assert sorted(second["updated"]["hosts"]) == sorted(["bastion", *web, "db1"])
    assert sorted(second["updated"]["groups"]) == ["db", "eu", "web"]
    hosts = await hosts_by_name(client, admin)
    assert len(hosts) == 5 and hosts["db1"]["port"] == 2200
    groups = await groups_by_name(client, admin)
    assert len(groups) == 3
    assert groups["eu"]["variables"][0]["value"] == "eu-central"

    async with db.session(system=True) as session:
        details = list(
            await session.scalars(
                select(AuditEvent.details)
                .where(AuditEvent.action == "inventory.import")
                .order_by(AuditEvent.created_at)
            )
        )
    assert details[0]["created"] == {"hosts": 5, "groups": 3}
    assert details[1]["updated"] == {"hosts": 5, "groups": 3}
    assert INVENTORY_PASSWORD not in str(details)


async def test_yaml_import_nested_children_all_vars_and_skips(
    client: httpx.AsyncClient, admin: Account
) -> None:
    response = await import_inventory(client, admin, YAML, "yaml")
    assert response.status_code == 200, response.text
    report = response.json()
    assert sorted(report["created"]["hosts"]) == ["app1", "app2", "bastion"]
    # 'all' holds vars, so it becomes a group of every host; prod holds app's hosts too.
    assert sorted(report["created"]["groups"]) == ["all", "app", "prod"]
    assert report["skipped"] == [
        {
            "kind": "variable",
            "name": "ansible_become_password",
            "reason": "an Ansible setting with no Shipyard equivalent",
            "owners": ["group app"],
        }
    ]
    assert "never-shown-secret" not in response.text
    hosts = await hosts_by_name(client, admin)
    assert hosts["app1"]["user"] == "deploy" and hosts["app1"]["ip"] == "10.0.2.1"
    assert hosts["app1"]["variables"] == [
        {"name": "flags", "secret": False, "value": '["a", "b"]'},
        {"name": "replicas", "secret": False, "value": "3"},
    ]
    groups = await groups_by_name(client, admin)
    assert set(groups["prod"]["host_ids"]) == {hosts["app1"]["id"], hosts["app2"]["id"]}
    assert len(groups["all"]["host_ids"]) == 3
    assert groups["all"]["variables"] == [{"name": "COMPANY", "secret": False, "value": "acme"}]


async def test_broken_inventories_are_422_naming_where_and_write_nothing(
    client: httpx.AsyncClient, admin: Account
) -> None:
    cases = {
        ("ini", "[web]\nweb1 ansible_user=u\n[web:nonsense]\nx\n"): "line 3",
        ("ini", "[web]\nweb[05:01] ansible_user=u\n"): "line 2",
        ("ini", "[a:children]\nb\n[b:children]\na\n"): "is its own child",
        ("ini", "[web]\nok ansible_user=u\nbad ansible_host=not_an_address ansible_user=u\n"): (
            "line 3: host bad"
        ),
        ("ini", "[web]\nnouser\n"): "line 2: host nouser: no ansible_user",
        ("ini", "[web]\nweb_1 ansible_user=u\n"): "host web_1: no ansible_host, and the name",
        # The outbound policy, as for the hosts API: the metadata address is always refused.
        ("ini", "[web]\nmeta ansible_host=169.254.169.254 ansible_user=u\n"): "line 2: host meta",
        ("ini", "[web]\nh1 ansible_user=u ansible_port=99999\n"): "line 2: host h1",
        ("yaml", "all:\n  hosts:\n    h1: {ansible_user: u\n"): "line",
        ("yaml", "all:\n  childs: {}\n"): "all.childs",
        ("yaml", "- just\n- a list\n"): "must be a mapping",
    }
    for (fmt, content), where in cases.items():
        response = await import_inventory(client, admin, content, fmt)
        assert response.status_code == 422, (content, response.text)
        assert error_fields(response) == ["content"], response.text
        assert where in response.json()["error"]["message"], (where, response.text)
    # Refused as a whole: the good host before the bad one was not written.
    assert await hosts_by_name(client, admin) == {}
    assert await groups_by_name(client, admin) == {}
    bad_format = await import_inventory(client, admin, "x", "toml")
    assert bad_format.status_code == 422 and error_fields(bad_format) == ["format"]


async def test_import_needs_manage_hosts(client: httpx.AsyncClient, admin: Account) -> None:
    viewer = await add_member(client, admin, "viewer")
    response = await import_inventory(client, viewer, "h1 ansible_user=u\n", "ini")
    assert response.status_code == 403


async def test_imported_hosts_log_in_with_the_inventory_password_or_the_sent_key(
    client: httpx.AsyncClient, admin: Account, ssh_endpoint: SSHEndpoint
) -> None:
    content = yaml.safe_dump(
        {
            "all": {
                "vars": {"ansible_port": ssh_endpoint.port},
                "children": {
                    "by_password": {
                        "hosts": {
                            "pw-host": {
                                "ansible_host": ssh_endpoint.host,
                                "ansible_user": ssh_endpoint.user,
                                "ansible_ssh_pass": ssh_endpoint.password,
                            }
                        }
                    },
                    "by_key": {"hosts": {"key-host": {"ansible_host": ssh_endpoint.host}}},
                },
            }
        }
    )
    response = await import_inventory(
        client,
        admin,
        content,
        "yaml",
        credentials={"user": ssh_endpoint.user, "private_key": ssh_endpoint.private_key},
    )
    assert response.status_code == 200, response.text
    assert ssh_endpoint.password not in response.text
    hosts = await hosts_by_name(client, admin)
    assert hosts["pw-host"]["auth_method"] == "password"
    assert hosts["key-host"]["auth_method"] == "key" and hosts["key-host"]["public_key"]
    for name in ("pw-host", "key-host"):
        tested = await client.post(f"/api/v1/hosts/{hosts[name]['id']}/test", headers=admin.headers)
        assert tested.json()["status"] == "online", (name, tested.text)
