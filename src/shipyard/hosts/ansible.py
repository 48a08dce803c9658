"""Reading an Ansible inventory (INI or YAML) into hosts and groups, as Ansible means them.

Pure parsing, no database: :mod:`shipyard.hosts.inventory_import` decides what becomes of the
result. Every error says where it is (``line 12`` or a YAML path such as
``all.children.web.hosts.web1``), because the user fixes it in their file. Values are kept as
strings, the way they will reach scripts as environment variables.
"""

from __future__ import annotations

import json
import re
import shlex
import string
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

InventoryFormat = Literal["ini", "yaml"]

# Ansible's own implicit groups: every host is in ``all``; ``ungrouped`` holds the hosts that
# are in no other group.
ALL = "all"
UNGROUPED = "ungrouped"
# ``web[01:03]``, ``db-[a:c].example.com``, ``node[1:9:2]``: one range per bracket pair.
HOST_RANGE = re.compile(r"^(?P<head>[^\[\]]*)\[(?P<range>[^\[\]]+)\](?P<tail>.*)$")
# Far more hosts than one inventory of a sane team; a typo such as [1:100000000] stops here.
MAX_HOSTS = 10000
GROUP_KEYS = frozenset({"hosts", "vars", "children"})


class InventoryError(ValueError):
    """The inventory cannot be read; ``where`` names the line or the YAML path."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}")
        self.where = where
        self.message = message


@dataclass
class AnsibleHost:
    name: str
    where: str
    vars: dict[str, str] = field(default_factory=dict)


@dataclass
class AnsibleGroup:
    name: str
    where: str
    hosts: list[str] = field(default_factory=list)
    children: list[str] = field(default_factory=list)
    vars: dict[str, str] = field(default_factory=dict)


@dataclass
class AnsibleInventory:
    hosts: dict[str, AnsibleHost] = field(default_factory=dict)
    groups: dict[str, AnsibleGroup] = field(default_factory=dict)

    def host(self, name: str, where: str) -> AnsibleHost:
        if name not in self.hosts:
            if len(self.hosts) >= MAX_HOSTS:
                raise InventoryError(where, f"more than {MAX_HOSTS} hosts")
            self.hosts[name] = AnsibleHost(name=name, where=where)
        return self.hosts[name]

    def group(self, name: str, where: str) -> AnsibleGroup:
        if name not in self.groups:
            self.groups[name] = AnsibleGroup(name=name, where=where)
        return self.groups[name]

    def members(self, name: str) -> list[str]:
        """Every host of group ``name``: its own and, recursively, its children's."""
        found: dict[str, None] = {}
        self._collect(name, found, ())
        return list(found)

    def _collect(self, name: str, found: dict[str, None], path: tuple[str, ...]) -> None:
        group = self.groups.get(name)
        if group is None:
            return
        if name in path:
            cycle = " > ".join((*path, name))
            raise InventoryError(group.where, f"group {name} is its own child ({cycle})")
        for host in group.hosts:
            found.setdefault(host, None)
        for child in group.children:
            self._collect(child, found, (*path, name))

    def check_cycles(self) -> None:
        for name in self.groups:
            self.members(name)


def text_value(value: Any) -> str:
    """A variable's value as the string a script receives (lists and maps as JSON)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    try:
        return json.dumps(value, sort_keys=True, default=str)
    except (TypeError, ValueError):
        return str(value)


def _range_items(spec: str, where: str) -> list[str]:
    parts = spec.split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
        raise InventoryError(where, f"host range [{spec}] must be [start:end] or [start:end:step]")
    start, end = parts[0], parts[1]
    try:
        step = int(parts[2]) if len(parts) == 3 else 1
    except ValueError:
        raise InventoryError(where, f"the step of host range [{spec}] is not a number") from None
    if step < 1:
        raise InventoryError(where, f"the step of host range [{spec}] must be at least 1")
    if start.isdigit() and end.isdigit():
        first, last = int(start), int(end)
        if last < first:
            raise InventoryError(where, f"host range [{spec}] ends before it starts")
        if (last - first) // step >= MAX_HOSTS:
            raise InventoryError(where, f"host range [{spec}] means more than {MAX_HOSTS} hosts")
        # Ansible keeps the start's width: web[01:03] is web01, web02, web03.
        width = len(start) if start.startswith("0") else 0
        return [str(n).zfill(width) for n in range(first, last + 1, step)]
    letters = string.ascii_letters
    if len(start) == 1 and len(end) == 1 and start in letters and end in letters:
        first, last = letters.index(start), letters.index(end)
        if last < first:
            raise InventoryError(where, f"host range [{spec}] ends before it starts")
        return list(letters[first : last + 1 : step])
    raise InventoryError(where, f"host range [{spec}] must be numbers or single letters")


def expand_hosts(pattern: str, where: str) -> list[str]:
    """The host names a pattern means (``web[01:03]`` is three), in order."""
    match = HOST_RANGE.match(pattern)
    if match is None:
        if "[" in pattern or "]" in pattern:
            raise InventoryError(where, f"unbalanced brackets in host {pattern!r}")
        return [pattern]
    names: list[str] = []
    for item in _range_items(match["range"], where):
        for tail in expand_hosts(match["tail"], where):
            names.append(f"{match['head']}{item}{tail}")
            if len(names) > MAX_HOSTS:
                raise InventoryError(where, f"{pattern!r} means more than {MAX_HOSTS} hosts")
    return names


# --- INI -----------------------------------------------------------------------------------------

SECTION = re.compile(r"^\[(?P<name>[^\]:]+)(?::(?P<kind>[^\]]*))?\]\s*$")


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def _host_and_port(pattern: str, where: str) -> tuple[str, str | None]:
    """``name:port`` (Ansible's INI short form); a bare IPv6 address has more colons, and the
    colons of a range (``web[01:03]``) are not a port."""
    outside = re.sub(r"\[[^\]]*\]", "", pattern)
    if outside.count(":") == 1:
        name, port = pattern.rsplit(":", 1)
        if not port.isdigit():
            raise InventoryError(where, f"the port in {pattern!r} is not a number")
        return name, port
    return pattern, None


def _ini_lines(content: str) -> Iterator[tuple[int, str]]:
    for number, raw in enumerate(content.splitlines(), start=1):
        line = raw.strip()
        if line and not line.startswith(("#", ";")):
            yield number, line


def parse_ini(content: str) -> AnsibleInventory:
    inventory = AnsibleInventory()
    group_name, kind = UNGROUPED, "hosts"
    for number, line in _ini_lines(content):
        where = f"line {number}"
        section = SECTION.match(line)
        if section is not None:
            group_name = section["name"].strip()
            kind = (section["kind"] or "hosts").strip()
            if kind not in ("hosts", "vars", "children"):
                raise InventoryError(
                    where, f"unknown section kind :{kind} (use :vars or :children)"
                )
            inventory.group(group_name, where)
            continue
        if line.startswith("["):
            raise InventoryError(where, f"cannot read the section header {line!r}")
        group = inventory.group(group_name, where)
        if kind == "vars":
            name, equals, value = line.partition("=")
            if not equals or not name.strip():
                raise InventoryError(where, "a :vars line must be name=value")
            group.vars[name.strip()] = _unquote(value)
        elif kind == "children":
            child = line.split()[0]
            if child == group_name:
                raise InventoryError(where, f"group {child} is its own child")
            inventory.group(child, where)
            if child not in group.children:
                group.children.append(child)
        else:
            _ini_host_line(inventory, group, line, where)
    return inventory


def _ini_host_line(inventory: AnsibleInventory, group: AnsibleGroup, line: str, where: str) -> None:
    try:
        tokens = shlex.split(line, comments=True)
    except ValueError as exc:
        raise InventoryError(where, f"cannot split the line ({exc})") from None
    if not tokens:
        return
    pattern, port = _host_and_port(tokens[0], where)
    variables: dict[str, str] = {}
    for index, token in enumerate(tokens[1:], start=1):
        name, equals, value = token.partition("=")
        if not equals or not name:
            # Not echoed: a value split at a space may be part of a password.
            raise InventoryError(where, f"item {index} after the host name is not name=value")
        variables[name] = value
    if port is not None:
        variables.setdefault("ansible_port", port)
    for name in expand_hosts(pattern, where):
        inventory.host(name, where).vars.update(variables)
        if name not in group.hosts:
            group.hosts.append(name)


# --- YAML ----------------------------------------------------------------------------------------


def _mapping(value: Any, where: str, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InventoryError(where, f"{what} must be a mapping, not {type(value).__name__}")
    for key in value:
        if not isinstance(key, str):
            raise InventoryError(where, f"the key {key!r} of {what} is not a name")
    return value


def _yaml_group(inventory: AnsibleInventory, name: str, entry: Any, where: str) -> None:
    group = inventory.group(name, where)
    body = _mapping(entry, where, f"group {name}")
    for key in body:
        if key not in GROUP_KEYS:
            raise InventoryError(
                f"{where}.{key}", f"unknown key {key!r} in group {name} (hosts, vars, children)"
            )
    for key, value in _mapping(body.get("vars"), f"{where}.vars", "vars").items():
        group.vars[key] = text_value(value)
    hosts = _mapping(body.get("hosts"), f"{where}.hosts", "hosts")
    for pattern, host_vars in hosts.items():
        host_where = f"{where}.hosts.{pattern}"
        variables = {
            key: text_value(value)
            for key, value in _mapping(host_vars, host_where, f"host {pattern}").items()
        }
        for host_name in expand_hosts(pattern.strip(), host_where):
            inventory.host(host_name, host_where).vars.update(variables)
            if host_name not in group.hosts:
                group.hosts.append(host_name)
    children = _mapping(body.get("children"), f"{where}.children", "children")
    for child_name, child in children.items():
        if child_name == name:
            raise InventoryError(f"{where}.children", f"group {name} is its own child")
        if child_name not in group.children:
            group.children.append(child_name)
        _yaml_group(inventory, child_name, child, f"{where}.children.{child_name}")


def parse_yaml(content: str) -> AnsibleInventory:
    try:
        # safe_load only: an inventory is data, never a way to build Python objects.
        document = yaml.safe_load(content)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "content"
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise InventoryError(where, str(problem)) from None
    inventory = AnsibleInventory()
    for name, entry in _mapping(document, "content", "the inventory").items():
        _yaml_group(inventory, name, entry, name)
    return inventory


def parse_inventory(content: str, fmt: InventoryFormat) -> AnsibleInventory:
    """Read ``content``; raises :class:`InventoryError` naming the line or path."""
    inventory = parse_ini(content) if fmt == "ini" else parse_yaml(content)
    inventory.check_cycles()
    return inventory
