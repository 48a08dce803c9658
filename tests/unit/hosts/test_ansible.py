"""Reading Ansible inventories: ranges, host:port, children, YAML shapes, errors naming where."""

from __future__ import annotations

import pytest

from shipyard.hosts.ansible import InventoryError, expand_hosts, parse_inventory, text_value


def test_ranges_keep_width_take_steps_and_letters() -> None:
    assert expand_hosts("web[01:03].example.com", "x") == [
        "web01.example.com",
        "web02.example.com",
        "web03.example.com",
    ]
    assert expand_hosts("n[1:7:3]", "x") == ["n1", "n4", "n7"]
    assert expand_hosts("db-[a:c]", "x") == ["db-a", "db-b", "db-c"]
    assert expand_hosts("r[1:2]c[1:2]", "x") == ["r1c1", "r1c2", "r2c1", "r2c2"]
    for bad in ("web[3:1]", "web[1:x]", "web[1:2", "web[1:2:0]", "web[0:99999]"):
        with pytest.raises(InventoryError):
            expand_hosts(bad, "line 4")


def test_ini_host_port_children_and_vars() -> None:
    inventory = parse_inventory(
        "top:2200\n"
        "[web]\n"
        "web[1:2]:2222 role='front end'  # a comment\n"
        "::1\n"
        "[all:vars]\nA = 1\n"
        "[eu:children]\nweb\n",
        "ini",
    )
    assert inventory.hosts["top"].vars == {"ansible_port": "2200"}
    assert inventory.hosts["web2"].vars == {"ansible_port": "2222", "role": "front end"}
    assert inventory.groups["ungrouped"].hosts == ["top"]
    assert inventory.groups["all"].vars == {"A": "1"}
    assert inventory.members("eu") == ["web1", "web2", "::1"]


def test_yaml_values_become_strings() -> None:
    inventory = parse_inventory(
        "all:\n  hosts:\n    h:\n      n: 3\n      b: true\n      l: [1, 2]\n      m: {k: v}\n",
        "yaml",
    )
    assert inventory.hosts["h"].vars == {"n": "3", "b": "true", "l": "[1, 2]", "m": '{"k": "v"}'}
    assert text_value(None) == ""


@pytest.mark.parametrize(
    ("fmt", "content", "where"),
    [
        ("ini", "[web\n", "line 1"),
        ("ini", "[a]\nh x\n", "line 2"),
        ("ini", "[a:vars]\nnovalue\n", "line 2"),
        ("ini", '[a]\nh k="unclosed\n', "line 2"),
        ("yaml", "all:\n  hosts:\n    h: [1]\n", "all.hosts.h"),
        ("yaml", "all:\n  children:\n    all: {}\n", "all.children"),
        ("yaml", "all: {hosts: {a: 1}", "line 1"),
    ],
)
def test_errors_name_where(fmt: str, content: str, where: str) -> None:
    with pytest.raises(InventoryError) as raised:
        parse_inventory(content, fmt)  # type: ignore[arg-type]
    assert raised.value.where.startswith(where), str(raised.value)
