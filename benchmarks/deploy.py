"""Deployment benchmarks: fan-out end to end, log throughput, and scheduling precision.

Run with ``.venv/bin/python -m benchmarks.deploy`` (as root: it starts sshd with the test
accounts of ``tests/support/sshd.py``, an embedded PostgreSQL, a local git server and real
``shipyard worker`` processes). Results go to ``docs/benchmarks.md`` under "## Deployments".
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.fanout import ansible_env, machine_note, settle, write_section

SECTION = "## Deployments"
DEPLOY_SCRIPT = '#!/bin/sh\necho "deployed $(hostname) $1"\n'
LINES_SCRIPT = (
    "#!/bin/sh\n"
    'awk -v n="$1" \'BEGIN { pad = sprintf("%93s", ""); gsub(/ /, "x", pad);'
    ' for (i = 0; i < n; i++) printf "%06d %s\\n", i, pad }\'\n'
)
NOOP_SCRIPT = "#!/bin/sh\ntrue\n"


@dataclass
class Stack:
    """PostgreSQL, the API (in this process), a git server, sshd hosts and an admin token."""

    root: Path
    database_url: str
    client: Any
    headers: dict[str, str]
    repository_id: str
    scripts: dict[str, str]
    fleet: Any
    key_path: Path
    env: dict[str, str]


async def build_stack(root: Path, host_count: int) -> Stack:
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
    from tests.support.sshd import SSHFleet, ensure_test_users

    from shipyard.api import create_app
    from shipyard.config import get_settings
    from shipyard.crypto import load_keyring
    from shipyard.db import Database

    postgres = PostgresForTests(root)
    url = postgres.create_database()
    env["SHIPYARD_DATABASE_URL"] = url
    os.environ["SHIPYARD_DATABASE_URL"] = url
    get_settings.cache_clear()
    db = Database(url, keyring=load_keyring(get_settings()), pool_size=20)
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(get_settings(), db)),
        base_url="http://bench",
        timeout=120,
    )
    signup = await client.post(
        "/api/v1/auth/signup",
        json={"email": "bench@example.com", "password": "benchmark-pass", "tenant_name": "Bench"},
    )
    headers = {"Authorization": f"Bearer {signup.json()['access_token']}"}
    git = GitHttpServer(root=root / "git").start()
    repo = git.create_repo(
        "bench",
        {
            "deploy.sh": GitFile(DEPLOY_SCRIPT),
            "lines.sh": GitFile(LINES_SCRIPT),
            "noop.sh": GitFile(NOOP_SCRIPT),
        },
        public=True,
    )
    added = (
        await client.post("/api/v1/repositories", headers=headers, json={"url": repo.clone_url})
    ).json()
    catalogue = (
        await client.get(f"/api/v1/repositories/{added['id']}/scripts", headers=headers)
    ).json()
    scripts = {item["path"]: item["id"] for item in catalogue["scripts"]}
    users = ensure_test_users()
    fleet = SSHFleet(root / "sshd", users)
    fleet.ensure(host_count)
    key_path = root / "id_ed25519"
    key_path.write_text(users.ed25519.private_key)
    key_path.chmod(0o600)
    return Stack(
        root, url, client, headers, added["id"], scripts, fleet, key_path, {**os.environ, **env}
    )


async def create_hosts(stack: Stack, count: int) -> list[str]:
    ids = []
    for index, endpoint in enumerate(stack.fleet.ensure(count)):
        response = await stack.client.post(
            "/api/v1/hosts",
            headers=stack.headers,
            json={
                "name": f"bench-{index}",
                "ip": endpoint.host,
                "port": endpoint.port,
                "user": endpoint.user,
                "private_key": endpoint.private_key,
            },
        )
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    return ids


class Worker:
    """A real ``shipyard worker`` process; its peak RSS is read from /proc before it stops."""

    def __init__(self, stack: Stack, concurrency: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "shipyard", "worker", "--concurrency", str(concurrency)],
            env={**stack.env, "SHIPYARD_WORKER_POLL_INTERVAL_SECONDS": "0.2"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(3.0)  # interpreter start-up and imports, outside every measurement

    def peak_rss_mib(self) -> float:
        with open(f"/proc/{self.process.pid}/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


async def wait_final(stack: Stack, deployment_id: str, timeout: float = 600) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body: dict[str, Any] = (
            await stack.client.get(f"/api/v1/deployments/{deployment_id}", headers=stack.headers)
        ).json()
        if body["status"] in {"success", "failed", "partial", "cancelled", "interrupted"}:
            return body
        await asyncio.sleep(0.05)
    raise TimeoutError(deployment_id)


def seconds_between(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


# Fan-out ------------------------------------------------------------------------------------


async def deploy_fanout(stack: Stack, host_ids: list[str]) -> float:
    payload = {
        "name": "fan-out",
        "repository_id": stack.repository_id,
        "scripts": [{"script_id": stack.scripts["deploy.sh"], "arguments": ["v1"]}],
        "host_ids": host_ids,
        "options": {"parallelism": len(host_ids)},
    }
    created = (
        await stack.client.post("/api/v1/deployments", headers=stack.headers, json=payload)
    ).json()
    done = await wait_final(stack, created["id"])
    assert done["status"] == "success", done
    return seconds_between(done["created_at"], done["completed_at"])


EXECUTOR_CLIENT = """
import asyncio, json, sys, time
from pathlib import Path
from shipyard.hosts.executor import Executor, HostTarget
hosts = json.loads(Path(sys.argv[1]).read_text()); key = Path(sys.argv[2]).read_text(); script = Path(sys.argv[3])
async def main():
    executor = Executor(max_connections=len(hosts), max_connections_per_host=4)
    async def one(h):
        target = HostTarget(address=h[0], port=h[1], user=h[2], private_key=key)
        async with executor.connect(target) as conn:
            workdir = await conn.make_temp_dir()
            path = await conn.upload(script, workdir, "000-deploy.sh")
            lines = []
            async def collect(line): lines.append(line.text)
            result = await conn.run_script(path, args=["v1"], on_output=collect)
            return result.ok and len(lines) == 1
    started = time.perf_counter()
    ok = sum(await asyncio.gather(*(one(h) for h in hosts)))
    print(json.dumps({"seconds": time.perf_counter() - started, "ok": ok}))
asyncio.run(main())
"""


def executor_alone(stack: Stack, count: int) -> float:
    hosts_file = stack.root / "hosts.json"
    hosts_file.write_text(json.dumps([[e.host, e.port, e.user] for e in stack.fleet.ensure(count)]))
    script = stack.root / "deploy.sh"
    script.write_text(DEPLOY_SCRIPT)
    result = subprocess.run(
        [sys.executable, "-c", EXECUTOR_CLIENT, str(hosts_file), str(stack.key_path), str(script)],
        capture_output=True,
        text=True,
        check=True,
        env=stack.env,
    )
    data = json.loads(result.stdout.strip().splitlines()[-1])
    assert data["ok"] == count, data
    return float(data["seconds"])


def ansible_playbook(stack: Stack, count: int) -> float:
    workdir = stack.root / "ansible"
    workdir.mkdir(exist_ok=True)
    (workdir / "deploy.sh").write_text(DEPLOY_SCRIPT)
    inventory = workdir / "inventory.ini"
    inventory.write_text(
        "[fleet]\n"
        + "\n".join(
            f"h{i} ansible_host={e.host} ansible_port={e.port} ansible_user={e.user} "
            f"ansible_ssh_private_key_file={stack.key_path}"
            for i, e in enumerate(stack.fleet.ensure(count))
        )
        + "\n"
    )
    playbook = workdir / "deploy.yml"
    playbook.write_text(
        "- hosts: fleet\n  gather_facts: false\n  tasks:\n    - name: deploy\n"
        "      ansible.builtin.script: deploy.sh v1\n"
    )
    started = time.perf_counter()
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-playbook"),
            "-i",
            str(inventory),
            str(playbook),
            "--forks",
            str(count),
        ],
        capture_output=True,
        text=True,
        env={**ansible_env(), "ANSIBLE_PYTHON_INTERPRETER": "/usr/bin/python3"},
        cwd=workdir,
        check=False,
    )
    seconds = time.perf_counter() - started
    if f"ok={1}" not in result.stdout or "failed=1" in result.stdout or result.returncode != 0:
        raise RuntimeError(result.stdout[-2000:] + result.stderr[-2000:])
    return seconds


# Log throughput ---------------------------------------------------------------------------


async def log_throughput(stack: Stack, host_id: str, lines: int) -> dict[str, float]:
    worker = Worker(stack, concurrency=4)
    try:
        created = (
            await stack.client.post(
                "/api/v1/deployments",
                headers=stack.headers,
                json={
                    "name": "logs",
                    "repository_id": stack.repository_id,
                    "host_ids": [host_id],
                    "scripts": [
                        {"script_id": stack.scripts["lines.sh"], "arguments": [str(lines)]}
                    ],
                },
            )
        ).json()
        done = await wait_final(stack, created["id"], timeout=900)
        rss = worker.peak_rss_mib()
    finally:
        worker.stop()
    assert done["status"] == "success", done
    import psycopg

    from shipyard.db import to_libpq_url

    with psycopg.connect(to_libpq_url(stack.database_url)) as conn:
        (stored,) = conn.execute(
            "SELECT count(*) FROM deployment_logs WHERE deployment_id = %s AND level = 'INFO' AND length(message) = 100",
            (created["id"],),
        ).fetchone() or (0,)
    seconds = seconds_between(done["started_at"], done["completed_at"])
    return {"lines": float(stored), "seconds": seconds, "rate": stored / seconds, "rss": rss}


# Scheduling -------------------------------------------------------------------------------


async def scheduling(stack: Stack, host_ids: list[str], count: int) -> dict[str, float]:
    body = {
        "name": "scheduled",
        "repository_id": stack.repository_id,
        "scripts": [{"script_id": stack.scripts["noop.sh"]}],
        "schedule": "later",
    }
    # Create far enough ahead, then move them all to one second with the reschedule API.
    far = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    semaphore = asyncio.Semaphore(16)

    async def create(index: int) -> str:
        async with semaphore:
            response = await stack.client.post(
                "/api/v1/deployments",
                headers=stack.headers,
                json={
                    **body,
                    "host_ids": [host_ids[index % len(host_ids)]],
                    "scheduled_time": far,
                },
            )
            assert response.status_code == 201, response.text
            return str(response.json()["id"])

    ids = await asyncio.gather(*(create(i) for i in range(count)))
    workers = [Worker(stack, concurrency=500), Worker(stack, concurrency=500)]
    try:
        when = (datetime.now(UTC) + timedelta(seconds=20)).replace(microsecond=0)

        async def move(deployment_id: str) -> None:
            async with semaphore:
                response = await stack.client.patch(
                    f"/api/v1/deployments/{deployment_id}",
                    headers=stack.headers,
                    json={"scheduled_time": when.isoformat()},
                )
                assert response.status_code == 200, response.text

        await asyncio.gather(*(move(i) for i in ids))
        assert datetime.now(UTC) < when, "rescheduling took longer than the lead time"
        # The spread is decided when each deployment starts; wait for every start, not every end.
        import psycopg

        from shipyard.db import to_libpq_url

        rows: list[tuple[Any, Any]] = []
        deadline = time.monotonic() + 60 + (when - datetime.now(UTC)).total_seconds()
        with psycopg.connect(to_libpq_url(stack.database_url)) as conn:
            while time.monotonic() < deadline:
                rows = conn.execute(
                    "SELECT scheduled_time, started_at FROM deployments WHERE name = 'scheduled' "
                    "AND started_at IS NOT NULL"
                ).fetchall()
                conn.commit()
                if len(rows) == count:
                    break
                await asyncio.sleep(0.5)
    finally:
        for worker in workers:
            worker.stop()
    spreads = sorted((started - scheduled).total_seconds() for scheduled, started in rows)
    return {
        "p50": statistics.median(spreads),
        "p99": spreads[max(0, int(len(spreads) * 0.99) - 1)],
        "max": spreads[-1],
        "min": spreads[0],
        "ok": len(rows),
        "count": count,
    }


# Report -------------------------------------------------------------------------------------


def render(
    fanout: dict[str, list[float]],
    hosts: int,
    logs: list[dict[str, float]],
    sched: dict[str, float],
) -> str:
    med = {name: statistics.median(values) for name, values in fanout.items()}
    ratio = med["shipyard"] / med["executor"]
    lines = [
        SECTION,
        "",
        f"Run on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {machine_note()}.",
        "",
        f"### Fan-out deployment: one short script on {hosts} sshd hosts",
        "",
        "| client | wall s (median) | runs | vs executor alone |",
        "|---|---:|---|---:|",
        f"| Shipyard, POST to completed_at | {med['shipyard']:.2f} | {', '.join(f'{v:.2f}' for v in fanout['shipyard'])} | {ratio:.2f}x |",
        f"| Shipyard executor alone (connect, upload, run) | {med['executor']:.2f} | {', '.join(f'{v:.2f}' for v in fanout['executor'])} | 1.00x |",
        f"| ansible-playbook, script module, --forks {hosts} | {med['ansible']:.2f} | {', '.join(f'{v:.2f}' for v in fanout['ansible'])} | {med['ansible'] / med['executor']:.2f}x |",
        "",
        f"Targets: within 1.3x of the bare executor: {'met' if ratio <= 1.3 else 'missed'} ({ratio:.2f}x); "
        f"faster than ansible-core: {'met' if med['shipyard'] < med['ansible'] else 'missed'}.",
        "",
        "### Log throughput: one host printing 100-byte lines",
        "",
        "| lines | stored | seconds (started_at to completed_at) | lines/s stored | worker peak RSS MiB |",
        "|---:|---:|---:|---:|---:|",
    ]
    for item in logs:
        lines.append(
            f"| {int(item['lines']):,} | {int(item['lines']):,} | {item['seconds']:.2f} | {item['rate']:,.0f} | {item['rss']:.0f} |"
        )
    big = logs[-1]
    lines += [
        "",
        f"Target: at least 100,000 lines/s stored: {'met' if big['rate'] >= 100_000 else 'missed'} "
        f"({big['rate']:,.0f}); memory flat: peak RSS {logs[0]['rss']:.0f} MiB for {int(logs[0]['lines']):,} lines "
        f"and {big['rss']:.0f} MiB for {int(big['lines']):,}.",
        "",
        f"### Scheduling: {int(sched['count'])} deployments due in the same second, two workers",
        "",
        "| started_at - scheduled_time | seconds |",
        "|---|---:|",
        f"| min | {sched['min']:.3f} |",
        f"| p50 | {sched['p50']:.3f} |",
        f"| p99 | {sched['p99']:.3f} |",
        f"| max | {sched['max']:.3f} |",
        "",
        f"{int(sched['ok'])} of {int(sched['count'])} started. Target p99 under 2 s: "
        f"{'met' if sched['p99'] < 2 else 'missed'}.",
        "",
        "How: `.venv/bin/python -m benchmarks.deploy` starts an embedded PostgreSQL, the API in-process, a",
        "local git HTTP server and sshd endpoints on loopback; deployments run in real `shipyard worker`",
        "processes (peak RSS read from `/proc/<pid>/status` VmHWM). The executor-alone client does the same",
        "remote work as a deployment (connect, temporary directory, SFTP upload, run, clean up) without the",
        "database; ansible-playbook runs the same script with the `script` module at the same forks. Scheduled",
        "deployments are created an hour ahead and then all moved to one second twenty seconds out, so the",
        "creation time does not eat into the lead time; workers poll for due jobs every 0.2 s here",
        "(`SHIPYARD_WORKER_POLL_INTERVAL_SECONDS`, 0.5 s by default).",
    ]
    return "\n".join(lines) + "\n"


async def main_async(options: argparse.Namespace) -> None:
    root = Path(tempfile.mkdtemp(prefix="sy-bench-", dir="/tmp"))
    os.chmod(root, 0o755)
    stack = await build_stack(root, options.hosts)
    try:
        host_ids = await create_hosts(stack, options.hosts)
        fanout: dict[str, list[float]] = {"shipyard": [], "executor": [], "ansible": []}
        if options.only == "logs":
            print("logs", [await log_throughput(stack, host_ids[0], options.lines)], flush=True)
            return
        if options.only == "scheduling":
            print("scheduling", await scheduling(stack, host_ids, options.scheduled), flush=True)
            return
        worker = Worker(stack, concurrency=10)
        try:
            for run in range(options.runs):
                order = ["shipyard", "executor", "ansible"][run % 3 :] + [
                    "shipyard",
                    "executor",
                    "ansible",
                ][: run % 3]
                for name in order:
                    settle(stack.fleet)
                    if name == "shipyard":
                        fanout[name].append(await deploy_fanout(stack, host_ids))
                    elif name == "executor":
                        fanout[name].append(executor_alone(stack, options.hosts))
                    else:
                        fanout[name].append(ansible_playbook(stack, options.hosts))
                    print(name, f"{fanout[name][-1]:.2f}", flush=True)
        finally:
            worker.stop()
        logs = [
            await log_throughput(stack, host_ids[0], n)
            for n in (options.lines // 10, options.lines)
        ]
        print("logs", logs, flush=True)
        sched = await scheduling(stack, host_ids, options.scheduled)
        print("scheduling", sched, flush=True)
        body = render(fanout, options.hosts, logs, sched)
        print(body)
        if not options.no_write:
            write_section(body, SECTION)
    finally:
        await stack.client.aclose()
        stack.fleet.stop()
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--lines", type=int, default=500_000)
    parser.add_argument("--scheduled", type=int, default=1000)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument(
        "--only", choices=["logs", "scheduling"], help="Run one part and print it (no doc update)."
    )
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
