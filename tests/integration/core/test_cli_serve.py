"""``shipyard serve`` on the embedded database: it starts PostgreSQL, creates the key file, and
stops both cleanly on SIGINT."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from tests.support import canary


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_on_the_embedded_database_and_stop_cleanly() -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="sy-serve-", dir="/tmp"))
    os.chmod(data_dir, 0o755)
    port = free_port()
    env = {**os.environ, "SHIPYARD_DATA_DIR": str(data_dir)}
    env.pop("SHIPYARD_DATABASE_URL", None)
    env.pop("SHIPYARD_SECRET_KEY", None)
    # Its log (uvicorn's access log and the worker's lines) is searched by the secret canary.
    with canary.output_path("shipyard-serve").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "shipyard", "serve", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        ready = None
        for _ in range(300):
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
                if ready.status_code == 200:  # the in-process worker has said it is alive
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        assert ready is not None and ready.status_code == 200, "serve never became ready"
        signup = httpx.post(
            f"http://127.0.0.1:{port}/api/v1/auth/signup",
            json={
                "email": "first@example.com",
                "password": "first password",
                "tenant_name": "First",
            },
        )
        assert signup.status_code == 201
        key_file = data_dir / "secret.keys"
        assert key_file.exists() and (key_file.stat().st_mode & 0o777) == 0o600
        pid_file = data_dir / "postgres" / "postmaster.pid"
        assert pid_file.exists()
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0
        for _ in range(100):
            if not pid_file.exists():
                break
            time.sleep(0.1)
        assert not pid_file.exists(), "the embedded PostgreSQL was left running"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    shutil.rmtree(data_dir, ignore_errors=True)
