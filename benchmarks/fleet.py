"""Fleet benchmark: one run on a group of 1,000 loopback sshd hosts against the executor alone.

Run with ``.venv/bin/python -m benchmarks.fleet`` (as root: it starts 64 sshd processes of 16
ports with the test accounts of ``tests/support/sshd.py``, an embedded PostgreSQL, a local git
server and a real ``shipyard worker`` process). It prints the "## A fleet of 1,000" section of
``docs/benchmarks.md`` (``--output PATH`` writes it to a file, ``--write`` into the doc).

Each round runs, in an order rotated between rounds and after the previous client's sshd
sessions are gone: Shipyard (a template launched on the group through the API when the
templates API exists, else a deployment of the group's hosts; timed from the launch's
``created_at`` to its ``completed_at``) and the executor alone (``benchmarks.fleet_child``: the
worker's executor built from the same settings, the same script on the same hosts at the same
parallelism, no database; timed around the fan-out).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.fanout import write_section
from benchmarks.fleet_child import HANDSHAKE_LIMIT_ENV, raise_open_file_limit

SECTION = "## A fleet of 1,000"
SCRIPT_NAME = "fleet.sh"
SCRIPT = "#!/bin/sh\necho ok; hostname\n"
FINAL = {"success", "failed", "partial", "cancelled", "interrupted"}
# Every wait is bounded: a run that has not finished by then is a failure of the benchmark.
RUN_TIMEOUT = 300.0
WORKER_START_TIMEOUT = 60.0
CREATE_CONCURRENCY = 8
# The fleet: 64 sshd processes of 16 ports (1,024 endpoints), of which 1,000 are used.
SSHD_PROCESSES = 64
TARGETS = {"ratio": 1.3, "seconds": 25.0, "rss_mib": 600.0}


@dataclass
class Cleanup:
    """What to stop on the way out, last started first; run from plain (non-async) code so it
    also runs when the event loop was interrupted."""

    steps: list[tuple[str, Callable[[], object]]] = field(default_factory=list)

    def add(self, name: str, step: Callable[[], object]) -> None:
        self.steps.append((name, step))

    def run(self) -> None:
        while self.steps:
            name, step = self.steps.pop()
            try:
                step()
            except Exception as exc:  # keep stopping the rest
                print(f"cleanup of {name} failed: {exc}", file=sys.stderr, flush=True)


@dataclass
class Stack:
    root: Path
    database_url: str
    app: Any
    client: Any
    headers: dict[str, str]
    repository_id: str
    script_id: str
    endpoints: list[Any]
    fleet: Any
    env: dict[str, str]
    host_ids: list[str] = field(default_factory=list)
    group_id: str = ""


def sql(stack: Stack, query: str, *args: Any) -> list[tuple[Any, ...]]:
    """One read against the benchmark database (as its superuser: row security does not apply)."""
    import psycopg

    from shipyard.db import to_libpq_url

    with psycopg.connect(to_libpq_url(stack.database_url), autocommit=True) as conn:
        return list(conn.execute(query, args).fetchall())


async def build_stack(root: Path, count: int, cleanup: Cleanup) -> Stack:
    from cryptography.fernet import Fernet

    env = {
        "SHIPYARD_DATA_DIR": str(root / "data"),
        "SHIPYARD_SECRET_KEY": Fernet.generate_key().decode(),
        "SHIPYARD_LOG_LEVEL": "WARNING",
        "SHIPYARD_PASSWORD_HASH_MEMORY_KIB": "8192",
    }
    os.environ.update(env)
    (root / "data").mkdir(parents=True, exist_ok=True)
    import httpx
    from tests.support.git_server import GitFile, GitHttpServer
    from tests.support.postgres import PostgresForTests
    from tests.support.sshd import PORTS_PER_PROCESS, SSHFleet, ensure_test_users

    from shipyard.api import create_app
    from shipyard.config import get_settings
    from shipyard.crypto import load_keyring
    from shipyard.db import Database

    postgres = PostgresForTests(root)
    cleanup.add("postgres", postgres.stop)
    url = postgres.create_database()
    env["SHIPYARD_DATABASE_URL"] = url
    os.environ["SHIPYARD_DATABASE_URL"] = url
    get_settings.cache_clear()
    db = Database(url, keyring=load_keyring(get_settings()), pool_size=20)
    app = create_app(get_settings(), db)
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://bench",
        timeout=120,
    )
    signup = await client.post(
        "/api/v1/auth/signup",
        json={"email": "bench@example.com", "password": "benchmark-pass", "tenant_name": "Bench"},
    )
    headers = {"Authorization": f"Bearer {signup.json()['access_token']}"}
    git = GitHttpServer(root=root / "git").start()
    cleanup.add("git server", git.stop)
    repo = git.create_repo("fleet", {SCRIPT_NAME: GitFile(SCRIPT)}, public=True)
    added = (
        await client.post("/api/v1/repositories", headers=headers, json={"url": repo.clone_url})
    ).json()
    catalogue = (
        await client.get(f"/api/v1/repositories/{added['id']}/scripts", headers=headers)
    ).json()
    script_id = next(item["id"] for item in catalogue["scripts"] if item["path"] == SCRIPT_NAME)
    users = ensure_test_users()
    fleet = SSHFleet(root / "sshd", users)
    cleanup.add("sshd fleet", fleet.stop)
    # Whole sshd processes of 16 ports (64 for 1,000 hosts: 1,024 endpoints), the first
    # ``count`` used.
    processes = max(-(-count // PORTS_PER_PROCESS), SSHD_PROCESSES)
    endpoints = fleet.ensure(processes * PORTS_PER_PROCESS)[:count]
    return Stack(
        root=root,
        database_url=url,
        app=app,
        client=client,
        headers=headers,
        repository_id=added["id"],
        script_id=script_id,
        endpoints=endpoints,
        fleet=fleet,
        env={**os.environ, **env},
    )


def host_name(index: int) -> str:
    return f"fleet-{index:04d}"


async def create_inventory(stack: Stack) -> float:
    """Every endpoint as a host (key authentication, its host key already trusted, as a fleet
    in service would be), and one group holding them all. Returns the seconds it took."""
    started = time.perf_counter()
    semaphore = asyncio.Semaphore(CREATE_CONCURRENCY)

    async def create(index: int, endpoint: Any) -> str:
        async with semaphore:
            response = await stack.client.post(
                "/api/v1/hosts",
                headers=stack.headers,
                json={
                    "name": host_name(index),
                    "ip": endpoint.host,
                    "port": endpoint.port,
                    "user": endpoint.user,
                    "private_key": endpoint.private_key,
                    "host_key_fingerprint": endpoint.host_key_fingerprint,
                },
            )
            assert response.status_code == 201, response.text
            return str(response.json()["id"])

    stack.host_ids = list(
        await asyncio.gather(*(create(i, e) for i, e in enumerate(stack.endpoints)))
    )
    response = await stack.client.post(
        "/api/v1/host-groups",
        headers=stack.headers,
        json={"name": "fleet", "host_ids": stack.host_ids},
    )
    assert response.status_code == 201, response.text
    stack.group_id = str(response.json()["id"])
    return time.perf_counter() - started


def templates_available(stack: Stack) -> bool:
    """Whether this tree's API has templates with a launch endpoint (asked of its schema)."""
    paths = stack.app.openapi()["paths"]
    return "/api/v1/templates" in paths and any(
        path.startswith("/api/v1/templates/") and path.endswith("/launch") for path in paths
    )


class Launcher:
    """Starts one Shipyard run on the group: a template's launch, or (before the templates API
    existed) a deployment of the group's hosts. Both are one POST timed from ``created_at``."""

    def __init__(self, stack: Stack, parallelism: int) -> None:
        self.stack = stack
        self.options = {"parallelism": parallelism}
        self.template_id: str | None = None
        self.kind = "deployment of the group's host_ids"

    async def prepare(self) -> None:
        if not templates_available(self.stack):
            return
        response = await self.stack.client.post(
            "/api/v1/templates",
            headers=self.stack.headers,
            json={
                "name": "fleet",
                "repository_id": self.stack.repository_id,
                "ref": "main",
                "scripts": [{"script_id": self.stack.script_id, "arguments": []}],
                "target": {"group_ids": [self.stack.group_id]},
                "options": self.options,
            },
        )
        assert response.status_code == 201, response.text
        self.template_id = str(response.json()["id"])
        self.kind = "template launched on the group"

    async def launch(self, number: int) -> str:
        if self.template_id is not None:
            response = await self.stack.client.post(
                f"/api/v1/templates/{self.template_id}/launch",
                headers=self.stack.headers,
                json={"parameters": {}},
            )
        else:
            response = await self.stack.client.post(
                "/api/v1/deployments",
                headers=self.stack.headers,
                json={
                    "name": f"fleet {number}",
                    "repository_id": self.stack.repository_id,
                    "scripts": [{"script_id": self.stack.script_id}],
                    "host_ids": self.stack.host_ids,
                    "options": self.options,
                },
            )
        assert response.status_code in (200, 201, 202), response.text
        return str(response.json()["id"])


class WorkerProcess:
    """A real ``shipyard worker`` (through ``benchmarks.fleet_child``), stopped by its PID."""

    def __init__(self, stack: Stack, concurrency: int, profile: Path | None) -> None:
        self.log = stack.root / "worker.log"
        command = [sys.executable, "-m", "benchmarks.fleet_child", "worker"]
        command += ["--concurrency", str(concurrency)]
        if profile is not None:
            command += ["--profile", str(profile)]
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                command, env=stack.env, stdout=log, stderr=subprocess.STDOUT, cwd=Path.cwd()
            )
        self.stack = stack

    def wait_ready(self) -> None:
        """Until the worker has registered with the job engine (bounded)."""
        deadline = time.monotonic() + WORKER_START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited: {self.log.read_text()[-2000:]}")
            with contextlib.suppress(Exception):
                if sql(self.stack, "SELECT count(*) FROM procrastinate_workers")[0][0]:
                    return
            time.sleep(0.2)
        raise TimeoutError("the worker did not start")

    def status(self, field_name: str) -> float:
        """A ``/proc/<pid>/status`` memory field (VmHWM, VmRSS), in MiB."""
        with open(f"/proc/{self.process.pid}/status") as handle:
            for line in handle:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def load_averages() -> tuple[float, float, float]:
    one, five, fifteen = Path("/proc/loadavg").read_text().split()[:3]
    return float(one), float(five), float(fifteen)


TICK = os.sysconf("SC_CLK_TCK")


def tree_cpu(pid: int) -> float:
    """CPU seconds of ``pid`` and everything below it: its own time, its reaped children's
    (cutime/cstime: an sshd listener's finished sessions and their shells), and its live
    children's, recursively."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                children.setdefault(int(fields[1]), []).append(int(entry.name))

    def one(current: int, reaped: bool) -> float:
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        # Fields after the name: utime, stime, cutime, cstime are 12-15 (0-based 11-14).
        ticks = int(fields[11]) + int(fields[12])
        if reaped:
            ticks += int(fields[13]) + int(fields[14])
        return ticks / TICK + sum(one(child, reaped) for child in children.get(current, []))

    return one(pid, True)


@dataclass
class CpuMeter:
    """CPU seconds spent by each side of the benchmark between two readings."""

    stack: Stack
    worker_pid: int
    postgres_pid: int | None

    def read(self) -> dict[str, float]:
        import resource

        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        self_usage = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "sshd and the scripts": sum(
                tree_cpu(p.pid) for p in self.stack.fleet.processes if p.pid is not None
            ),
            "worker": tree_cpu(self.worker_pid),
            "PostgreSQL": tree_cpu(self.postgres_pid) if self.postgres_pid else float("nan"),
            "executor-alone client": children.ru_utime + children.ru_stime,
            "benchmark process (API, git server, polling)": self_usage.ru_utime
            + self_usage.ru_stime,
        }

    @staticmethod
    def delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
        return {name: round(after[name] - before[name], 2) for name in before}


def postgres_pid(root: Path) -> int | None:
    """The embedded PostgreSQL's postmaster (its data directory is under ``root``)."""
    pid_file = root / "pg" / "pgdata" / "postmaster.pid"
    for candidate in (pid_file, *root.glob("pg/**/postmaster.pid")):
        with contextlib.suppress(OSError, ValueError, IndexError):
            return int(candidate.read_text().split()[0])
    return None


async def shipyard_round(stack: Stack, launcher: Launcher, number: int) -> dict[str, Any]:
    before = time.perf_counter()
    deployment_id = await launcher.launch(number)
    deadline = time.monotonic() + RUN_TIMEOUT
    status = ""
    while time.monotonic() < deadline:
        status = sql(stack, "SELECT status FROM deployments WHERE id = %s", deployment_id)[0][0]
        if status in FINAL:
            break
        await asyncio.sleep(0.1)
    else:
        raise TimeoutError(f"deployment {deployment_id} still {status} after {RUN_TIMEOUT:.0f} s")
    observed = time.perf_counter() - before
    if status != "success":
        error = sql(stack, "SELECT error FROM deployments WHERE id = %s", deployment_id)[0][0]
        last = sql(
            stack,
            "SELECT level, message FROM deployment_logs WHERE deployment_id = %s"
            " AND level <> 'INFO' ORDER BY timestamp DESC LIMIT 5",
            deployment_id,
        )
        print(f"deployment {deployment_id} ended {status}: {error}; {last}", flush=True)
    (created, started, completed) = sql(
        stack,
        "SELECT created_at, started_at, completed_at FROM deployments WHERE id = %s",
        deployment_id,
    )[0]
    first_start, last_end = sql(
        stack,
        "SELECT min(started_at), max(completed_at) FROM deployment_scripts"
        " WHERE deployment_id = %s",
        deployment_id,
    )[0]
    failed = {
        name: error or status_
        for name, status_, error in sql(
            stack,
            "SELECT h.name, s.status, s.error FROM deployment_scripts s JOIN hosts h"
            " ON h.id = s.host_id WHERE s.deployment_id = %s AND s.status <> 'success'",
            deployment_id,
        )
    }
    hosts = sql(
        stack,
        "SELECT count(DISTINCT host_id) FROM deployment_scripts WHERE deployment_id = %s",
        deployment_id,
    )[0][0]
    # The run's own log lines (not a host's), as offsets from the launch: where the time went.
    timeline = [
        (round((at - created).total_seconds(), 3), message[:100])
        for at, message in sql(
            stack,
            "SELECT timestamp, message FROM deployment_logs WHERE deployment_id = %s"
            " AND host_id IS NULL ORDER BY seq",
            deployment_id,
        )
    ]
    return {
        "deployment_id": deployment_id,
        "status": status,
        "seconds": (completed - created).total_seconds(),
        "observed_seconds": observed,
        "stages": {
            "queued (created_at to started_at)": (started - created).total_seconds(),
            "claim, target, checkout, script rows, first connection (started_at to first script start)": (
                (first_start - started).total_seconds() if first_start else float("nan")
            ),
            "fan-out (first script start to last script end)": (
                (last_end - first_start).total_seconds() if first_start else float("nan")
            ),
            "finish (last script end to completed_at)": (
                (completed - last_end).total_seconds() if last_end else float("nan")
            ),
        },
        "timeline": timeline,
        "first_script_start": (first_start - created).total_seconds() if first_start else None,
        "hosts": hosts,
        "ok": hosts - len(failed),
        "failed": failed,
    }


def executor_round(stack: Stack, parallelism: int) -> dict[str, Any]:
    hosts_file = stack.root / "hosts.json"
    key_file = stack.root / "id_ed25519"
    if not key_file.exists():
        key_file.write_text(stack.endpoints[0].private_key)
        key_file.chmod(0o600)
    hosts_file.write_text(
        json.dumps(
            [
                {
                    "name": host_name(index),
                    "address": e.host,
                    "port": e.port,
                    "user": e.user,
                    "fingerprint": e.host_key_fingerprint,
                    "key_file": str(key_file),
                }
                for index, e in enumerate(stack.endpoints)
            ]
        )
    )
    script = stack.root / SCRIPT_NAME
    script.write_text(SCRIPT)
    script.chmod(0o755)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.fleet_child",
            "executor",
            str(hosts_file),
            str(script),
            str(parallelism),
        ],
        capture_output=True,
        text=True,
        env=stack.env,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"executor client failed: {result.stderr[-3000:]}")
    data: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    data["hosts"] = len(stack.endpoints)
    return data


def lost_to_timeouts(failed: dict[str, str]) -> set[str]:
    return {name for name, error in failed.items() if "time" in error.lower()}


def settle(stack: Stack, timeout: float = 30.0) -> None:
    """Until the previous client's sshd session processes are gone (one `ps` per look), then a
    moment more."""
    listeners = {p.pid for p in stack.fleet.processes if p.pid is not None}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        table = subprocess.run(
            ["ps", "-A", "-o", "ppid="], capture_output=True, text=True, check=False
        ).stdout.split()
        if not listeners.intersection(int(ppid) for ppid in table):
            break
        time.sleep(0.2)
    time.sleep(0.5)


# Report -------------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    cpu = "unknown CPU"
    with open("/proc/cpuinfo") as handle:
        for line in handle:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = subprocess.run(["free", "-m"], capture_output=True, text=True, check=False).stdout
    mem_line = next((line.split() for line in memory.splitlines() if line.startswith("Mem:")), [])
    sshd = subprocess.run(["/usr/sbin/sshd", "-V"], capture_output=True, text=True, check=False)
    return {
        "nproc": subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip(),
        "cpu": cpu,
        "memory": f"{mem_line[1]} MB total, {mem_line[6]} MB available at start"
        if len(mem_line) > 6
        else "unknown",
        "kernel": platform.release(),
        "python": platform.python_version(),
        "sshd": sshd.stderr.strip().split(",")[0],
    }


def fmt_runs(values: list[float]) -> str:
    return ", ".join(f"{value:.2f}" for value in values)


def render(results: dict[str, Any]) -> str:
    ship = results["shipyard"]
    alone = results["executor"]
    ship_s = [r["seconds"] for r in ship]
    alone_s = [r["seconds"] for r in alone]
    med_ship, med_alone = statistics.median(ship_s), statistics.median(alone_s)
    ratio = med_ship / med_alone
    rss = results["worker_peak_rss_mib"]
    # Time-outs are compared round by round: the two clients of a round ran back to back.
    lost_ship = [lost_to_timeouts(r["failed"]) for r in ship]
    lost_alone = [lost_to_timeouts(r["failed"]) for r in alone]
    only_ship = [len(s - a) for s, a in zip(lost_ship, lost_alone, strict=False)]
    # Ratio over the rounds where both clients reached every host (time-outs shorten a run).
    clean = [
        (s["seconds"], a["seconds"])
        for s, a in zip(ship, alone, strict=False)
        if s["ok"] == s["hosts"] and a["ok"] == a["hosts"]
    ]
    m = results["machine"]
    k = results["knobs"]
    count = results["hosts"]
    lines = [
        SECTION,
        "",
        f"Run on {results['date']} UTC: {m['nproc']} CPUs ({m['cpu']}), {m['memory']}, Linux "
        f"{m['kernel']}, Python {m['python']}, {m['sshd']}. Load average (1 min) "
        f"{results['load_before'][0]:.2f} before the rounds, {results['load_after'][0]:.2f} after "
        "(the machine is shared with other work, so absolute numbers move between runs).",
        "",
        f"### One script on {count:,} sshd hosts ({results['sshd_processes']} sshd processes of 16 ports)",
        "",
        "| client | wall s (median) | rounds | hosts ok (worst round) | lost to time-outs, per round | vs executor alone |",
        "|---|---:|---|---:|---:|---:|",
        f"| Shipyard, {results['launch_kind']}: POST to completed_at | {med_ship:.2f} | "
        f"{fmt_runs(ship_s)} | {min(r['ok'] for r in ship):,}/{count:,} | "
        f"{', '.join(str(len(x)) for x in lost_ship)} | {ratio:.2f}x |",
        f"| Shipyard executor alone (connect, upload, run) | {med_alone:.2f} | {fmt_runs(alone_s)} | "
        f"{min(r['ok'] for r in alone):,}/{count:,} | {', '.join(str(len(x)) for x in lost_alone)} | 1.00x |",
        "",
        f"Worker peak memory (VmHWM of the `shipyard worker` process over every Shipyard round): "
        f"{rss:.0f} MiB (idle after start-up: {results['worker_idle_rss_mib']:.0f} MiB); the "
        f"executor-alone client peaked at {max(r['peak_rss_mib'] for r in alone):.0f} MiB.",
        "",
        "Targets:",
        f"- POST to completed_at within {TARGETS['ratio']}x of the executor alone: "
        f"{'met' if ratio <= TARGETS['ratio'] else 'missed'} ({ratio:.2f}x);",
        f"- under {TARGETS['seconds']:.0f} s: {'met' if med_ship < TARGETS['seconds'] else 'missed'} "
        f"({med_ship:.2f} s);",
        f"- worker peak memory under {TARGETS['rss_mib']:.0f} MB: "
        f"{'met' if rss * 1.048576 < TARGETS['rss_mib'] else 'missed'} ({rss * 1.048576:.0f} MB);",
        "- no host lost to a time-out that the executor alone does not also lose: "
        + ("met" if not any(only_ship) else "missed")
        + " (hosts lost by Shipyard and not by the executor alone in the same round: "
        + ", ".join(str(n) for n in only_ship)
        + ").",
    ]
    if clean and len(clean) < len(ship):
        clean_ratio = statistics.median(s for s, _ in clean) / statistics.median(
            a for _, a in clean
        )
        lines.append(
            f"- ratio over the {len(clean)} round(s) where both clients reached every host: "
            f"{clean_ratio:.2f}x."
        )
    lines += [
        "",
        "Where the Shipyard time goes (median over the rounds, from the run's own timestamps):",
        "",
        "| stage | seconds |",
        "|---|---:|",
    ]
    for stage in ship[0]["stages"]:
        lines.append(f"| {stage} | {statistics.median(r['stages'][stage] for r in ship):.2f} |")
    lines += [
        "",
        "CPU seconds per round (median; sessions and scripts are counted in their sshd "
        "listener once reaped):",
        "",
        "| process | Shipyard round | executor-alone round |",
        "|---|---:|---:|",
    ]
    for part in ship[0]["cpu"]:
        lines.append(
            f"| {part} | {statistics.median(r['cpu'][part] for r in ship):.1f} | "
            f"{statistics.median(r['cpu'][part] for r in alone):.1f} |"
        )
    first_ship = statistics.median(r["first_script_start"] for r in ship)
    first_alone = statistics.median(r["first_script_start"] for r in alone)
    lines += [
        "",
        f"First script start after the launch (median): Shipyard {first_ship:.2f} s, the executor "
        f"alone {first_alone:.2f} s after its fan-out began.",
        "",
        "Settings (the worker's real knobs, defaults unless said): deployment option "
        f"`parallelism` {k['parallelism']} (ExecutionOptions' maximum); `SHIPYARD_SSH_MAX_CONNECTIONS` "
        f"{k['ssh_max_connections']}, `SHIPYARD_SSH_MAX_CONNECTIONS_PER_HOST` "
        f"{k['ssh_max_connections_per_host']} (every endpoint is its own host), "
        f"`SHIPYARD_SSH_CONNECT_TIMEOUT` {k['ssh_connect_timeout']:g} s, `shipyard worker "
        f"--concurrency` {k['worker_concurrency']} (one run is one job), "
        f"`SHIPYARD_WORKER_POLL_INTERVAL_SECONDS` {k['worker_poll_interval_seconds']:g}; "
        f"RLIMIT_NOFILE raised to {k['nofile']} in the benchmark and the worker."
        + (
            f" Experiment: at most {k['handshake_limit']} SSH handshakes at once "
            "(`--handshake-limit`), in both clients."
            if k.get("handshake_limit")
            else ""
        ),
    ]
    lines += ["", HOW]
    return "\n".join(lines) + "\n"


HOW = """\
How: `.venv/bin/python -m benchmarks.fleet` (as root; `--rounds 1` or `--hosts 100` for a quick
look, `--write` to update this section). It starts an embedded PostgreSQL, the API in-process, a
local git server with the script (`echo ok; hostname`) and 64 sshd processes of 16 loopback ports;
creates the hosts through the API (key authentication, host keys already trusted) and one group of
them all, and a template on that group. Runs execute in a real `shipyard worker` process; the
benchmark and the worker raise their open-file soft limit to the hard limit
(`shipyard.worker.raise_open_file_limit`). Each round runs both clients back to back in a rotated
order, after the previous client's sshd sessions are gone: Shipyard is timed from the launch's
`created_at` to its `completed_at`; the executor alone (a fresh interpreter, the worker's executor
built from the same settings) does the same per-host work at the same parallelism without a
database (connect, temporary directory, upload, environment file, run, clean up) and is timed around
its fan-out. Peak memory is the worker's VmHWM; CPU seconds come from `/proc/<pid>/stat`."""


# Main ---------------------------------------------------------------------------------------


async def main_async(options: argparse.Namespace, cleanup: Cleanup) -> dict[str, Any]:
    from shipyard.config import get_settings

    root = Path(tempfile.mkdtemp(prefix="sy-fleet-", dir="/tmp"))
    os.chmod(root, 0o755)
    cleanup.add("temporary directory", lambda: shutil.rmtree(root, ignore_errors=True))
    nofile = raise_open_file_limit()
    if options.handshake_limit:
        os.environ[HANDSHAKE_LIMIT_ENV] = str(options.handshake_limit)
    stack = await build_stack(root, options.hosts, cleanup)
    print(f"{len(stack.fleet.processes)} sshd processes, {len(stack.endpoints)} hosts", flush=True)
    seconds = await create_inventory(stack)
    print(f"created {len(stack.host_ids)} hosts and their group in {seconds:.1f} s", flush=True)
    launcher = Launcher(stack, options.parallelism)
    await launcher.prepare()
    print(f"Shipyard side: {launcher.kind}", flush=True)
    settings = get_settings()
    profile = root.parent / f"sy-fleet-worker-{os.getpid()}.prof" if options.profile else None
    worker = WorkerProcess(stack, options.worker_concurrency, profile)
    cleanup.add("worker", worker.stop)
    worker.wait_ready()
    idle_rss = worker.status("VmHWM")
    meter = CpuMeter(stack, worker.process.pid, postgres_pid(root))
    results: dict[str, Any] = {"shipyard": [], "executor": []}
    load_before = load_averages()
    for number in range(options.rounds):
        order = ["shipyard", "executor"] if number % 2 == 0 else ["executor", "shipyard"]
        order = [name for name in order if name in options.clients]
        for name in order:
            settle(stack)
            before = meter.read()
            if name == "shipyard":
                outcome = await shipyard_round(stack, launcher, number)
            else:
                outcome = executor_round(stack, options.parallelism)
            # Sessions end (and are reaped into their listener's time) shortly after the run.
            settle(stack)
            outcome["cpu"] = CpuMeter.delta(before, meter.read())
            results[name].append(outcome)
            print(
                f"round {number + 1} {name}: {outcome['seconds']:.2f} s, "
                f"{outcome['ok']}/{outcome['hosts']} ok, failed {dict(list(outcome['failed'].items())[:3])}"
                + (f", stages {outcome['stages']}" if "stages" in outcome else "")
                + f", first script start {outcome.get('first_script_start')}"
                + (f", timeline {outcome['timeline']}" if "timeline" in outcome else "")
                + f", cpu {outcome['cpu']}"
                + f", load {load_averages()}",
                flush=True,
            )
    load_after = load_averages()
    results.update(
        {
            "date": f"{datetime.now(UTC):%Y-%m-%d %H:%M}",
            "hosts": len(stack.endpoints),
            "sshd_processes": len(stack.fleet.processes),
            "launch_kind": launcher.kind,
            "worker_peak_rss_mib": worker.status("VmHWM"),
            "worker_idle_rss_mib": idle_rss,
            "load_before": load_before,
            "load_after": load_after,
            "machine": machine(),
            "knobs": {
                "parallelism": options.parallelism,
                "ssh_max_connections": settings.ssh_max_connections,
                "ssh_max_connections_per_host": settings.ssh_max_connections_per_host,
                "ssh_connect_timeout": settings.ssh_connect_timeout,
                "worker_concurrency": options.worker_concurrency,
                "worker_poll_interval_seconds": settings.worker_poll_interval_seconds,
                "nofile": nofile[0],
                "handshake_limit": options.handshake_limit,
            },
        }
    )
    worker.stop()
    if profile is not None:
        results["profile"] = str(profile)
    await stack.client.aclose()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--parallelism", type=int, default=1000)
    parser.add_argument("--worker-concurrency", type=int, default=50)
    parser.add_argument(
        "--clients",
        nargs="+",
        choices=["shipyard", "executor"],
        default=["shipyard", "executor"],
        help="Run only these (diagnosis; the comparison needs both).",
    )
    parser.add_argument(
        "--profile", action="store_true", help="Run the worker under cProfile (slower; diagnosis)."
    )
    parser.add_argument(
        "--handshake-limit",
        type=int,
        default=0,
        help="Experiment: at most N SSH handshakes at once in the worker and the executor-alone "
        "client (see benchmarks.fleet_child.limit_handshakes); 0 = Shipyard as it is.",
    )
    parser.add_argument("--output", type=Path, help="Write the section to this file.")
    parser.add_argument("--json", type=Path, help="Write the raw results to this file.")
    parser.add_argument("--write", action="store_true", help="Update docs/benchmarks.md.")
    options = parser.parse_args()
    cleanup = Cleanup()

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    try:
        results = asyncio.run(main_async(options, cleanup))
    finally:
        cleanup.run()
    if options.json:
        options.json.write_text(json.dumps(results, indent=2, default=str))
    if not (results["shipyard"] and results["executor"]):
        return  # a diagnosis run: the rounds were printed above
    body = render(results)
    print(body)
    if options.output:
        options.output.write_text(body)
    if options.write:
        write_section(body, SECTION)
    if "profile" in results:
        print(f"worker profile: {results['profile']}")


if __name__ == "__main__":
    main()
