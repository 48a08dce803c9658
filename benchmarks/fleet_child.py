"""The fleet benchmark's child processes: the worker (optionally under cProfile) and the
executor-alone client. Each runs in its own interpreter so its memory and CPU are its own.

``python -m benchmarks.fleet_child worker --concurrency N [--profile PATH]``
``python -m benchmarks.fleet_child executor HOSTS_JSON SCRIPT PARALLELISM``
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import sys
import time
from pathlib import Path
from typing import Any

# The deployment's own environment names (deployment_run.py sets them on every host), so the
# executor-alone client hands over an environment file of the same shape.
RUN_ENVIRONMENT = ("SHIPYARD_DEPLOYMENT_ID", "SHIPYARD_COMMIT_SHA", "SHIPYARD_REF")
SCRIPT_TIMEOUT = 3600.0  # ExecutionOptions.script_timeout_seconds' default


def raise_open_file_limit() -> tuple[int, int]:
    """Raise RLIMIT_NOFILE's soft limit to the hard limit exactly as a worker does at start-up
    (children inherit it); returns (soft, hard)."""
    from shipyard.worker import raise_open_file_limit as raise_limit

    return raise_limit()


HANDSHAKE_LIMIT_ENV = "SHIPYARD_BENCH_HANDSHAKE_LIMIT"


def limit_handshakes() -> int | None:
    """An experiment, not Shipyard's behaviour: with ``SHIPYARD_BENCH_HANDSHAKE_LIMIT=N``, at
    most N SSH connections of this process are opening (TCP, key exchange, authentication) at
    once, and the connect timeout counts from when one may start. Open connections stay capped
    by ``SHIPYARD_SSH_MAX_CONNECTIONS`` as before. Applied to the worker and the executor-alone
    client alike."""
    import os

    limit = int(os.environ.get(HANDSHAKE_LIMIT_ENV, "0") or 0)
    if limit <= 0:
        return None
    from shipyard.hosts.executor import executor as module

    original = module.Executor._open_ssh
    gate: dict[int, asyncio.Semaphore] = {}

    async def gated(self: Any, target: Any) -> Any:
        semaphore = gate.setdefault(id(asyncio.get_running_loop()), asyncio.Semaphore(limit))
        async with semaphore:
            return await original(self, target)

    module.Executor._open_ssh = gated  # type: ignore[method-assign]
    return limit


def peak_rss_mib() -> float:
    """This process's resident-set high-water mark (VmHWM), in MiB."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def run_worker(concurrency: int, profile: str | None) -> None:
    """``shipyard worker`` in this process; with ``profile``, its cProfile stats on exit."""
    from shipyard.cli import main

    raise_open_file_limit()
    limit_handshakes()
    sys.argv = ["shipyard", "worker", "--concurrency", str(concurrency)]
    profiler = cProfile.Profile() if profile else None
    if profiler is not None:
        profiler.enable()
    try:
        main()
    finally:
        if profiler is not None and profile:
            profiler.disable()
            profiler.dump_stats(profile)


async def executor_alone(hosts_file: Path, script: Path, parallelism: int) -> dict[str, Any]:
    """What a deployment does on each host, through the worker's executor, without a database:
    connect (trusted host key), private temporary directory, SFTP upload, environment file,
    run with output streamed line by line, clean up on close."""
    from shipyard.config import get_settings
    from shipyard.errors import HostError
    from shipyard.hosts.executor import Executor, HostTarget, OutputLine

    hosts: list[dict[str, Any]] = json.loads(hosts_file.read_text())
    key = Path(hosts[0]["key_file"]).read_text()
    # The worker's executor exactly: the same settings (caps, connect timeout, outbound policy).
    executor = Executor.from_settings(get_settings())
    semaphore = asyncio.Semaphore(parallelism)
    environment = {name: "bench" for name in RUN_ENVIRONMENT}
    script_starts: list[float] = []

    async def one(host: dict[str, Any]) -> tuple[str, str | None]:
        target = HostTarget(
            address=host["address"],
            port=host["port"],
            user=host["user"],
            private_key=key,
            expected_fingerprint=host["fingerprint"],
            name=host["name"],
        )
        lines: list[str] = []

        async def collect(line: OutputLine) -> None:
            lines.append(line.text)

        async with semaphore:
            try:
                async with executor.connect(target) as conn:
                    workdir = await conn.make_temp_dir()
                    # Where a deployment marks its script row running: comparable offsets.
                    script_starts.append(time.perf_counter())
                    path = await conn.upload(script, workdir, f"000-{script.name}")
                    result = await conn.run_script(
                        path,
                        env={**environment, "SHIPYARD_HOST": host["name"]},
                        timeout=SCRIPT_TIMEOUT,
                        cwd=workdir,
                        on_output=collect,
                        on_pid=lambda pid: None,
                    )
            except HostError as exc:
                return host["name"], f"{exc.code}: {exc.message}"
        if not result.ok:
            reason = "timed out" if result.timed_out else f"exit {result.exit_status}"
            return host["name"], reason
        if lines[:1] != ["ok"]:
            return host["name"], f"unexpected output {lines[:2]!r}"
        return host["name"], None

    started = time.perf_counter()
    outcomes = await asyncio.gather(*(one(host) for host in hosts))
    seconds = time.perf_counter() - started
    failed = {name: error for name, error in outcomes if error is not None}
    return {
        "seconds": seconds,
        "ok": len(hosts) - len(failed),
        "failed": failed,
        "first_script_start": min(script_starts, default=started) - started,
        "peak_rss_mib": peak_rss_mib(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    worker = commands.add_parser("worker")
    worker.add_argument("--concurrency", type=int, required=True)
    worker.add_argument("--profile", default=None, help="Write cProfile stats here on exit.")
    client = commands.add_parser("executor")
    client.add_argument("hosts", type=Path)
    client.add_argument("script", type=Path)
    client.add_argument("parallelism", type=int)
    options = parser.parse_args()
    if options.command == "worker":
        run_worker(options.concurrency, options.profile)
        return
    raise_open_file_limit()
    limit_handshakes()
    result = asyncio.run(executor_alone(options.hosts, options.script, options.parallelism))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
