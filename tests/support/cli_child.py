"""``python -m shipyard`` as a child process: the entry point as a user runs it (exit codes,
one-line errors without a traceback, logging set-up). Most command tests run the commands in
this process instead (tests/support/cli_process.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from tests.support import canary


def shipyard(
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 120,
    stdin: str | None = None,
    unset: tuple[str, ...] = (),
) -> subprocess.CompletedProcess[str]:
    """``python -m shipyard ARGS`` with the test's environment, plus ``env``, minus ``unset``."""
    base = {key: value for key, value in os.environ.items() if key not in unset}
    result = subprocess.run(
        [sys.executable, "-m", "shipyard", *args],
        input=stdin,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    canary.save_output("shipyard", result.stdout, result.stderr)
    return result


def parsed(result: subprocess.CompletedProcess[str]) -> Any:
    """The child's stdout as one JSON document."""
    try:
        return json.loads(result.stdout)
    except ValueError as exc:
        raise AssertionError(f"not JSON: {result.stdout!r} (stderr {result.stderr!r})") from exc
