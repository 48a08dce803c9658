"""The ``shipyard`` command in a child process against a live server, as a user runs it."""

from __future__ import annotations

import asyncio
import os
import sys

from tests.support import canary


async def run_shipyard(
    base_url: str,
    token: str,
    *args: str,
    label: str,
    stdin: bytes | None = None,
    keep: bool = True,
) -> tuple[int, str]:
    """Run ``python -m shipyard ARGS`` with SHIPYARD_URL and SHIPYARD_TOKEN set; (exit code,
    stdout and stderr together). The output is handed to the secret canary under ``label``
    unless ``keep`` is False (the one output that shows a secret once, by design)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "shipyard",
        *args,
        env={**os.environ, "SHIPYARD_URL": base_url, "SHIPYARD_TOKEN": token, "COLUMNS": "250"},
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(stdin or b""), timeout=120)
    if keep:
        canary.save_output(label, output)
    assert process.returncode is not None
    return process.returncode, output.decode()
