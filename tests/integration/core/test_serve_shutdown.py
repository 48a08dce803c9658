"""``shipyard serve`` on the embedded database: SIGTERM stops the PostgreSQL it started (even after
an earlier ``serve`` was killed outright), and the git cache is private to its user. (``serve
--workers 2`` is test_serve_processes.py's: a file's tests run on one xdist worker, and each of
these takes most of a minute.)"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def alive(pid: int) -> bool:
    """Running and not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return state[state.rfind(")") + 2 :].split()[0] != "Z"


def still_alive(pids: list[int], *, within: float = 20.0) -> list[int]:
    """Those of ``pids`` still running after up to ``within`` seconds of waiting for them."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline and any(alive(pid) for pid in pids):
        time.sleep(0.1)
    return [pid for pid in pids if alive(pid)]


def postgres_processes(data_dir: Path) -> list[int]:
    """The postmaster (from the data dir's postmaster.pid) and its children."""
    pid_file = data_dir / "postgres" / "postmaster.pid"
    postmaster = int(pid_file.read_text().splitlines()[0])
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if stat[stat.rfind(")") + 2 :].split()[1] == str(postmaster):
                children.append(int(entry.name))
    return [postmaster, *children]


@pytest.fixture
def data_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="sy-stop-", dir="/tmp"))
    os.chmod(path, 0o755)
    yield path
    pid_file = path / "postgres" / "postmaster.pid"
    if pid_file.exists():  # a failed test must not leave the server it started running
        with contextlib.suppress(OSError, ValueError, IndexError):
            os.kill(int(pid_file.read_text().split()[0]), signal.SIGTERM)
            time.sleep(1)
    shutil.rmtree(path, ignore_errors=True)


def start_serve(data_dir: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {**os.environ, "SHIPYARD_DATA_DIR": str(data_dir)}
    env.pop("SHIPYARD_DATABASE_URL", None)
    env.pop("SHIPYARD_SECRET_KEY", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "shipyard", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(300):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return process, port
        except httpx.TransportError:
            pass
        if process.poll() is not None:
            break
        time.sleep(0.2)
    process.kill()
    process.wait(timeout=10)
    raise AssertionError("serve never became ready")


def test_sigterm_stops_the_embedded_postgresql_even_after_a_killed_serve(data_dir: Path) -> None:
    cache = data_dir / "git-cache"
    cache.mkdir(mode=0o755)
    os.chmod(cache, 0o755)

    first, _ = start_serve(data_dir)
    try:
        # An existing cache directory is tightened before anything is written into it.
        assert cache.stat().st_mode & 0o777 == 0o700
        first.kill()  # kill -9: no clean-up at all; its server stays up
        first.wait(timeout=10)
        orphaned = postgres_processes(data_dir)
        assert alive(orphaned[0]), "the embedded PostgreSQL should outlive a kill -9 of serve"

        second, _ = start_serve(data_dir)
        try:
            processes = postgres_processes(data_dir)
            assert processes[0] == orphaned[0]  # it took the running server over
            second.send_signal(signal.SIGTERM)
            assert second.wait(timeout=90) == 0
        finally:
            if second.poll() is None:
                second.kill()
                second.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(timeout=10)
    assert still_alive(processes) == [], "PostgreSQL processes were left running"
    assert not (data_dir / "postgres" / "postmaster.pid").exists()
