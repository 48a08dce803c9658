"""Redocly's recommended rules find no error in the OpenAPI description Shipyard serves."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx

REDOCLY = (
    Path(__file__).resolve().parents[2] / "tools" / "redocly" / "node_modules" / ".bin" / "redocly"
)


async def test_redocly_recommended_rules_find_no_error(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    assert REDOCLY.exists(), "run `make pytest` (it installs tests/tools/redocly with npm ci)"
    served = await client.get("/openapi.json")
    assert served.status_code == 200
    description = tmp_path / "openapi.json"
    description.write_bytes(served.content)
    process = await asyncio.create_subprocess_exec(
        str(REDOCLY),
        "lint",
        str(description),
        "--extends",
        "recommended",
        "--format",
        "json",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={
            "PATH": "/usr/bin:/bin",
            "REDOCLY_TELEMETRY": "off",
            "REDOCLY_SUPPRESS_UPDATE_NOTICE": "true",
        },
    )
    output, errors = await asyncio.wait_for(process.communicate(), timeout=180)
    report = json.loads(output)
    problems = [
        f"{problem['ruleId']}: {problem['message']} at {problem['location'][0]['pointer']}"
        for problem in report["problems"]
        if problem["severity"] == "error"
    ]
    assert problems == [], errors.decode()[-500:]
    assert report["totals"]["errors"] == 0
