"""What a command prints: a Rich table for people, JSON or YAML for scripts (``-o``).

The format is ``-o/--output`` if given, else ``SHIPYARD_OUTPUT``, else ``table`` on a terminal and
``json`` into a pipe. JSON and YAML carry the API's own objects with the API's field names, so a
script written against the REST API reads the CLI's output the same way. Remarks meant for people
(``note``) go to stdout with a table and to stderr otherwise, so stdout stays parseable.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from enum import StrEnum
from typing import Any

import yaml
from rich.console import Console, RenderableType
from rich.table import Table

# Rich reads sys.stdout / sys.stderr when it prints, so these follow a test runner's swap.
console = Console()
err_console = Console(stderr=True)


class GlobalOptions:
    """The global options of the command running: its own, else those given to ``shipyard``."""

    def __init__(self) -> None:
        self.root: dict[str, Any] = {}
        self.command: dict[str, Any] = {}

    def get(self, name: str) -> Any:
        value = self.command.get(name)
        return value if value is not None else self.root.get(name)


options = GlobalOptions()


class OutputFormat(StrEnum):
    table = "table"
    json = "json"
    yaml = "yaml"


def current_format() -> OutputFormat:
    """The output format of the command that is running."""
    chosen = options.get("output") or os.environ.get("SHIPYARD_OUTPUT") or None
    if chosen:
        try:
            return OutputFormat(str(chosen).lower())
        except ValueError:
            # An unknown SHIPYARD_OUTPUT does not stop the command: people get their table.
            return OutputFormat.table if sys.stdout.isatty() else OutputFormat.json
    return OutputFormat.table if sys.stdout.isatty() else OutputFormat.json


def is_table() -> bool:
    return current_format() is OutputFormat.table


def to_json(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False, default=str)


def to_yaml(data: Any) -> str:
    # Through JSON first: the same field names and value shapes as -o json (UUIDs, datetimes as
    # strings), and no Python-specific YAML tags.
    plain = json.loads(json.dumps(data, default=str))
    return str(yaml.safe_dump(plain, sort_keys=False, allow_unicode=True, default_flow_style=False))


def emit(data: Any, *, table: Callable[[], RenderableType | str | None] | None = None) -> None:
    """Print a command's result: ``table()`` for people (a generic table if None), or ``data``."""
    fmt = current_format()
    if fmt is OutputFormat.json:
        sys.stdout.write(to_json(data) + "\n")
    elif fmt is OutputFormat.yaml:
        sys.stdout.write(to_yaml(data))
    else:
        rendered = table() if table is not None else generic_table(data)
        if rendered is not None:
            console.print(rendered, highlight=False, soft_wrap=isinstance(rendered, str))
    sys.stdout.flush()


def emit_event(data: Any) -> None:
    """One event of a stream: a compact JSON line (or one YAML document) per event."""
    if current_format() is OutputFormat.yaml:
        sys.stdout.write("---\n" + to_yaml(data))
    else:
        sys.stdout.write(json.dumps(data, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


def note(message: str) -> None:
    """A remark for people: beside a table on stdout, else on stderr (stdout stays parseable)."""
    target = console if is_table() else err_console
    target.print(message, highlight=False, soft_wrap=True)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=str)
    return str(value)


def generic_table(data: Any) -> RenderableType | str:
    """A plain rendering when a command has no table of its own: a list as rows, an object as
    field/value pairs."""
    if isinstance(data, Mapping) and isinstance(data.get("items"), list):
        data = data["items"]
    if isinstance(data, Mapping):
        table = Table(show_header=False, box=None)
        table.add_column(style="bold")
        table.add_column(overflow="fold")
        for key, value in data.items():
            table.add_row(str(key), _cell(value))
        return table
    if isinstance(data, Sequence) and not isinstance(data, str):
        rows = [row for row in data if isinstance(row, Mapping)]
        if not rows:
            return "(none)" if not data else "\n".join(_cell(item) for item in data)
        columns = list(dict.fromkeys(key for row in rows for key in row))
        table = Table()
        for column in columns:
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*(_cell(row.get(column)) for column in columns))
        return table
    return _cell(data)
