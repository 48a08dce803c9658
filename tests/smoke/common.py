"""What both install checks share: a ``shipyard serve`` on the embedded database, stopped by PID."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx


def cli(shipyard: Path, *args: str) -> str:
    """Run the installed ``shipyard`` command; its output, or exit showing what it printed."""
    result = subprocess.run(
        [str(shipyard), *args], capture_output=True, text=True, check=False, timeout=60
    )
    if result.returncode != 0:
        raise SystemExit(f"shipyard {' '.join(args)}: exit {result.returncode}\n{result.stderr}")
    return result.stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stop(process: subprocess.Popen[bytes], data_dir: Path) -> None:
    """SIGTERM to serve (it stops its PostgreSQL); the postmaster by its PID if it outlived it."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    pid_file = data_dir / "postgres" / "postmaster.pid"
    with contextlib.suppress(OSError, ValueError, IndexError):
        postmaster = int(pid_file.read_text().split()[0])
        os.kill(postmaster, signal.SIGTERM)
        for _ in range(100):
            os.kill(postmaster, 0)
            time.sleep(0.1)


@contextlib.contextmanager
def serve(shipyard: Path, **env: str) -> Iterator[str]:
    """``shipyard serve`` on a loopback port and a temporary data dir; yields its base URL."""
    data_dir = Path(tempfile.mkdtemp(prefix="sy-smoke-", dir="/tmp"))
    os.chmod(data_dir, 0o755)  # the embedded PostgreSQL may run as another user under root
    port = free_port()
    child_env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("SHIPYARD_") or key == "SHIPYARD_ALLOW_LOCAL_HOSTS"
    }
    child_env.update({"SHIPYARD_DATA_DIR": str(data_dir), **env})
    log = data_dir / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(shipyard), "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=child_env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=data_dir,  # not the checkout: the installed package must be what runs
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise SystemExit(f"serve exited with {process.returncode}:\n{log.read_text()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise SystemExit(f"serve not ready in 120 s:\n{log.read_text()}")
            time.sleep(0.2)
        yield base
    except BaseException:
        print(log.read_text()[-5000:])
        raise
    finally:
        _stop(process, data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)
