"""``shipyard serve --workers 2``: the processes share the port, and SIGTERM stops them all."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.core.test_serve_shutdown import free_port, still_alive


@pytest.fixture
def data_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="sy-workers-", dir="/tmp"))
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if stat[stat.rfind(")") + 2 :].split()[1] == str(pid):
                found.append(int(entry.name))
    return found


def test_serve_with_two_processes_shares_the_port_and_stops_them_all(
    data_dir: Path, database_url: str
) -> None:
    # A test database rather than the embedded server (whose start and stop the test above
    # covers): the parent hands the children the URL it resolved.
    port = free_port()
    env = {**os.environ, "SHIPYARD_DATA_DIR": str(data_dir), "SHIPYARD_DATABASE_URL": database_url}
    env.pop("SHIPYARD_SECRET_KEY", None)
    parent = subprocess.Popen(
        [sys.executable, "-m", "shipyard", "serve", "--port", str(port), "--workers", "2"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    servers: list[int] = []
    try:
        ready = None
        for _ in range(300):
            with contextlib.suppress(httpx.TransportError):
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
                if ready.status_code == 200:
                    break
            assert parent.poll() is None, "serve --workers 2 exited"
            time.sleep(0.2)
        # Ready means the first process's job worker is alive too.
        assert ready is not None and ready.status_code == 200
        servers = [
            pid
            for pid in children_of(parent.pid)
            if "--listen-fd" in Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")
        ]
        assert len(servers) == 2
        # Many connections, each answered (whichever process accepts it).
        for _ in range(20):
            with httpx.Client(base_url=f"http://127.0.0.1:{port}") as http:
                assert http.get("/healthz").status_code == 200
        parent.send_signal(signal.SIGTERM)
        assert parent.wait(timeout=90) == 0
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(timeout=10)
    assert still_alive(servers) == [], "serve processes were left running"
