"""The ``shipyard`` command against a live server, as a user runs it, in this process.

Each call dispatches ARGS on the root command (``shipyard.cli.app``: every sub-command a user
types after ``shipyard``) through Typer's test runner, on a thread so the test's event loop keeps
serving the API the command talks to. A ``python -m shipyard`` child per call cost a Python
start-up and the whole import graph traced by coverage (2-2.5 s CPU each); the command as a
separate process (entry point, exit codes, one-line errors without a traceback, logging set-up)
is tests/integration/core/test_cli.py's subject.
"""

from __future__ import annotations

import asyncio
import functools
import json
from typing import Any

import typer
import yaml
from typer.testing import CliRunner, Result

from shipyard.cli import app
from tests.support import canary

# What the child got besides the test process's environment. COLUMNS: the rich tables are as
# wide as the terminal; a child's pipe had none, so its width came from here too.
_ENV = {"COLUMNS": "250"}


@functools.cache
def _root() -> typer.Typer:
    """The root command's sub-commands and groups, as ``shipyard`` has them, without its callback.

    The callback only configures the process's logging (root level, quiet third-party loggers,
    warnings into logging): in the test process that would turn the secret canary's DEBUG
    collection down for the rest of the test. Here the command's log records go to the test's
    handlers (and the canary) instead of into the output.
    """
    root = typer.Typer(help=app.info.help, no_args_is_help=True)
    root.registered_groups = list(app.registered_groups)
    root.registered_commands = list(app.registered_commands)
    return root


def _invoke(args: tuple[str, ...], env: dict[str, str], stdin: bytes) -> Result:
    # Typer's runner swaps sys.stdin/stdout/stderr and os.environ for the call and restores
    # them; the output is stdout and stderr interleaved, as the child's merged pipe was.
    return CliRunner().invoke(_root(), list(args), input=stdin, env=env, prog_name="shipyard")


async def run_shipyard(
    base_url: str,
    token: str,
    *args: str,
    label: str,
    stdin: bytes | None = None,
    keep: bool = True,
) -> tuple[int, str]:
    """Run ``shipyard ARGS`` with SHIPYARD_URL and SHIPYARD_TOKEN set; (exit code, stdout and
    stderr together). The output is handed to the secret canary under ``label`` unless ``keep``
    is False (the one output that shows a secret once, by design)."""
    env = {**_ENV, "SHIPYARD_URL": base_url, "SHIPYARD_TOKEN": token}
    result = await asyncio.wait_for(
        asyncio.to_thread(_invoke, args, env, stdin or b""), timeout=120
    )
    if keep:
        canary.save_output(label, result.output)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        # A child would have died with this traceback (exit code 1); fail with it here.
        raise result.exception
    return result.exit_code, result.output


async def run_shipyard_json(
    base_url: str, token: str, *args: str, label: str, stdin: bytes | None = None
) -> tuple[int, Any, str]:
    """``shipyard ARGS -o json``; (exit code, stdout parsed as JSON, stderr). Fails the test
    when stdout is not one JSON document."""
    env = {**_ENV, "SHIPYARD_URL": base_url, "SHIPYARD_TOKEN": token}
    result = await asyncio.wait_for(
        asyncio.to_thread(_invoke, (*args, "-o", "json"), env, stdin or b""), timeout=120
    )
    canary.save_output(label, result.output)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    try:
        parsed = json.loads(result.stdout) if result.stdout.strip() else None
    except ValueError as exc:
        raise AssertionError(
            f"stdout of shipyard {' '.join(args)} -o json: {result.stdout!r}"
        ) from exc
    return result.exit_code, parsed, result.stderr


async def run_shipyard_ndjson(
    base_url: str, token: str, *args: str, label: str, stdin: bytes | None = None
) -> tuple[int, list[Any], str]:
    """``shipyard ARGS -o json`` for a command that streams (``deploy watch``, ``logs``):
    (exit code, each stdout line parsed as JSON, stderr). Fails the test on a line that is not
    one JSON object."""
    env = {**_ENV, "SHIPYARD_URL": base_url, "SHIPYARD_TOKEN": token}
    result = await asyncio.wait_for(
        asyncio.to_thread(_invoke, (*args, "-o", "json"), env, stdin or b""), timeout=120
    )
    canary.save_output(label, result.output)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    parsed = []
    for line in result.stdout.splitlines():
        try:
            parsed.append(json.loads(line))
        except ValueError as exc:
            raise AssertionError(f"stdout of shipyard {' '.join(args)} -o json: {line!r}") from exc
    return result.exit_code, parsed, result.stderr


async def run_shipyard_yaml_stream(
    base_url: str, token: str, *args: str, label: str
) -> tuple[int, list[Any], str]:
    """``shipyard ARGS -o yaml`` for a command that streams: (exit code, each YAML document of
    stdout, stderr)."""
    env = {**_ENV, "SHIPYARD_URL": base_url, "SHIPYARD_TOKEN": token}
    result = await asyncio.wait_for(
        asyncio.to_thread(_invoke, (*args, "-o", "yaml"), env, b""), timeout=120
    )
    canary.save_output(label, result.output)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, list(yaml.safe_load_all(result.stdout)), result.stderr
