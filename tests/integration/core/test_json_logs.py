"""``SHIPYARD_LOG_FORMAT=json``: every line ``shipyard serve`` writes is one JSON object."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from tests.support import canary

METRICS_TOKEN = "metrics-token-json-logs-7f3a9c"
PASSWORD = "json logs password 4411"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def parse_lines(path: Path) -> list[dict[str, Any]]:
    records = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            raise AssertionError(f"{path.name}: not a JSON line: {line!r}") from None
        assert isinstance(record, dict), line
        records.append(record)
    return records


def test_serve_writes_json_lines_with_request_ids_and_protects_metrics() -> None:
    canary.remember(METRICS_TOKEN)
    canary.remember(PASSWORD)
    data_dir = Path(tempfile.mkdtemp(prefix="sy-json-", dir="/tmp"))
    os.chmod(data_dir, 0o755)
    port = free_port()
    env = {
        **os.environ,
        "SHIPYARD_DATA_DIR": str(data_dir),
        "SHIPYARD_LOG_FORMAT": "json",
        "SHIPYARD_METRICS_TOKEN": METRICS_TOKEN,
    }
    env.pop("SHIPYARD_DATABASE_URL", None)
    env.pop("SHIPYARD_SECRET_KEY", None)
    env.pop("SHIPYARD_LOG_LEVEL", None)
    out_path = canary.output_path("shipyard-serve-json-stdout")
    err_path = canary.output_path("shipyard-serve-json-stderr")
    with out_path.open("wb") as out, err_path.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "shipyard", "serve", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=err,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        signup = httpx.post(
            f"{base}/api/v1/auth/signup",
            json={"email": "json@example.com", "password": PASSWORD, "tenant_name": "Json"},
            headers={"X-Request-ID": "client-chosen-id-1"},
        )
        assert signup.status_code == 201, signup.text
        assert signup.headers["x-request-id"] == "client-chosen-id-1"
        token = canary.remember(signup.json()["access_token"], "session token")
        hosts = httpx.get(f"{base}/api/v1/hosts", headers={"Authorization": f"Bearer {token}"})
        assert hosts.status_code == 200
        # No X-Request-ID: the server makes one and says which.
        health = httpx.get(f"{base}/healthz")
        generated = health.headers["x-request-id"]
        assert len(generated) >= 16

        assert httpx.get(f"{base}/metrics").status_code == 401
        wrong = {"Authorization": "Bearer not-the-token"}
        assert httpx.get(f"{base}/metrics", headers=wrong).status_code == 401
        metrics = httpx.get(f"{base}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        assert metrics.status_code == 200
        requests = [line for line in metrics.text.splitlines() if "http_requests_total{" in line]
        assert any('route="/api/v1/auth/signup"' in line for line in requests), requests

        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        shutil.rmtree(data_dir, ignore_errors=True)

    records = parse_lines(out_path) + parse_lines(err_path)
    assert records, "serve wrote nothing"
    for record in records:
        assert {"time", "level", "logger", "message"} <= record.keys(), record
    loggers = {record["logger"] for record in records}
    assert any(name.startswith("uvicorn") for name in loggers), loggers  # uvicorn's own lines
    access = [record for record in records if record["logger"] == "shipyard.access"]
    signup_line = next(r for r in access if "/api/v1/auth/signup" in r["message"])
    assert signup_line["request_id"] == "client-chosen-id-1"
    hosts_line = next(r for r in access if "GET /api/v1/hosts " in r["message"])
    assert len(hosts_line["tenant_id"]) == 36 and hosts_line["request_id"], hosts_line
    assert any(r.get("request_id") == generated for r in access)
    text = out_path.read_text() + err_path.read_text()
    assert METRICS_TOKEN not in text
    assert PASSWORD not in text
    assert token not in text
