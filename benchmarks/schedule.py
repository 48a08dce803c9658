"""On time at scale: runs due in the same second, against bare procrastinate jobs on the same database.

Run with ``.venv/bin/python -m benchmarks.schedule`` (as root: it starts sshd with the test accounts
of ``tests/support/sshd.py``, an embedded PostgreSQL, a local git server and real worker processes;
see ``benchmarks.deploy``, whose stack it shares). For each size (10, 100, 1,000 by default):

- **bare queue**: ``size`` no-op procrastinate jobs on a queue of their own, all scheduled for one
  second, taken by two plain procrastinate worker processes (no Shipyard code in the job; same
  concurrency and poll interval as the Shipyard workers). Lag = the job's ``started`` event (the
  transaction that took it) - its ``scheduled_at``.
- **Shipyard**: ``size`` deployments of one no-op script on one sshd host each, created an hour
  ahead then all moved to the same second through the API, run by two ``shipyard worker``
  processes. Lag = ``started_at`` (the claim that makes the run ``in_progress`` and owned by a
  worker) - ``scheduled_time``.

Prints a Markdown table; nothing is written to docs/.
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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.deploy import Stack, build_stack, create_hosts
from benchmarks.fanout import machine_note

BARE_QUEUE = "bench-bare"
FINAL = ("success", "failed", "partial", "cancelled", "interrupted")
# A plain procrastinate worker: one no-op task, nothing of Shipyard's imported.
BARE_WORKER = """
import asyncio, sys
import procrastinate
conninfo, queue, concurrency, poll = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=conninfo))
@app.task(name="bench:noop")
async def noop(index: int) -> None:
    return None
async def main() -> None:
    async with app.open_async():
        await app.run_worker_async(
            queues=[queue], concurrency=concurrency, fetch_job_polling_interval=poll,
            install_signal_handlers=True,
        )
asyncio.run(main())
"""


# Where workers write their logs (set from --worker-logs): one file per arm and worker.
WORKER_LOGS: list[Path | None] = [None]


def libpq(stack: Stack) -> str:
    from shipyard.db import to_libpq_url

    return to_libpq_url(stack.database_url)


class Process:
    """A worker process started here, stopped by its PID (TERM, then KILL after a bound)."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path | None = None) -> None:
        # The worker's own log (its errors say why a run failed), kept when --worker-logs is set.
        self.log = log.open("ab") if log is not None else None
        output = self.log if self.log is not None else subprocess.DEVNULL
        self.process = subprocess.Popen(argv, env=env, stdout=output, stderr=output)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        if self.log is not None:
            self.log.close()


def registered_workers(stack: Stack) -> int:
    import psycopg

    with psycopg.connect(libpq(stack), autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM procrastinate_workers").fetchone()
    return int(row[0]) if row else 0


def start_workers(stack: Stack, arm: str, concurrency: int, poll: float) -> list[Process]:
    """Two workers of ``arm``, returned once both have registered with the queue."""
    env = {**stack.env, "SHIPYARD_WORKER_POLL_INTERVAL_SECONDS": str(poll)}
    before = registered_workers(stack)
    if arm == "bare":
        argv = [sys.executable, "-c", BARE_WORKER, libpq(stack), BARE_QUEUE, str(concurrency)]
        argv.append(str(poll))
    else:
        argv = [sys.executable, "-m", "shipyard", "worker", "--concurrency", str(concurrency)]
    logs = WORKER_LOGS[0]
    workers = [
        Process(argv, env, logs / f"{arm}-worker-{index}.log" if logs is not None else None)
        for index in (1, 2)
    ]
    # Interpreter start-up, imports and connections stay outside every measurement (on a loaded
    # machine they take far longer than any fixed pause).
    deadline = time.monotonic() + 180
    while registered_workers(stack) < before + 2 and time.monotonic() < deadline:
        time.sleep(0.25)
    time.sleep(1.0)
    return workers


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, int(len(ordered) * q + 0.999999) - 1))]


def summary(lags: list[float], count: int) -> dict[str, float]:
    return {
        "count": count,
        "ok": len(lags),
        "min": min(lags) if lags else float("nan"),
        "p50": statistics.median(lags) if lags else float("nan"),
        "p99": percentile(lags, 0.99) if lags else float("nan"),
        "max": max(lags) if lags else float("nan"),
    }


async def poll_rows(
    conninfo: str, query: str, args: tuple[Any, ...], want: int, bound: float
) -> list[Any]:
    import psycopg

    rows: list[Any] = []
    deadline = time.monotonic() + bound
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
        while time.monotonic() < deadline:
            rows = await (await conn.execute(query, args)).fetchall()
            if len(rows) >= want:
                break
            await asyncio.sleep(0.25)
    return rows


async def bare_arm(
    stack: Stack, count: int, *, concurrency: int, poll: float, lead: float
) -> dict[str, float]:
    import psycopg

    conninfo = libpq(stack)
    workers = start_workers(stack, "bare", concurrency, poll)
    try:
        when = (datetime.now(UTC) + timedelta(seconds=lead)).replace(microsecond=0)
        async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
            rows = await (
                await conn.execute(
                    "SELECT unnest(procrastinate_defer_jobs_v1(array_agg(ROW("
                    " %s, 'bench:noop', 0, NULL, NULL, jsonb_build_object('index', i), %s"
                    ")::procrastinate_job_to_defer_v1))) FROM generate_series(1, %s) AS i",
                    (BARE_QUEUE, when, count),
                )
            ).fetchall()
        ids = [int(row[0]) for row in rows]
        assert datetime.now(UTC) < when, "deferring took longer than the lead time"
        started = await poll_rows(
            conninfo,
            "SELECT j.scheduled_at, e.at FROM procrastinate_jobs j"
            " JOIN procrastinate_events e ON e.job_id = j.id AND e.type = 'started'"
            " WHERE j.id = ANY(%s)",
            (ids,),
            count,
            lead + 120,
        )
        await poll_rows(
            conninfo,
            "SELECT id FROM procrastinate_jobs WHERE id = ANY(%s) AND status = 'succeeded'",
            (ids,),
            count,
            120,
        )
    finally:
        for worker in workers:
            worker.stop()
    return summary([(at - scheduled).total_seconds() for scheduled, at in started], count)


async def shipyard_arm(
    stack: Stack,
    host_ids: list[str],
    count: int,
    *,
    concurrency: int,
    poll: float,
    lead: float,
    label: str,
) -> dict[str, float]:
    body = {
        "name": label,
        "repository_id": stack.repository_id,
        "scripts": [{"script_id": stack.scripts["noop.sh"]}],
        "schedule": "later",
    }
    far = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    semaphore = asyncio.Semaphore(16)

    async def create(index: int) -> str:
        async with semaphore:
            response = await stack.client.post(
                "/api/v1/deployments",
                headers=stack.headers,
                json={**body, "host_ids": [host_ids[index % len(host_ids)]], "scheduled_time": far},
            )
            assert response.status_code == 201, response.text
            return str(response.json()["id"])

    ids = await asyncio.gather(*(create(i) for i in range(count)))
    workers = start_workers(stack, "shipyard", concurrency, poll)
    conninfo = libpq(stack)
    try:
        # All moved to one second in one transaction, as the reschedule API moves each one (the
        # run's scheduled_time, its job's scheduled_at, and the notification that it moved);
        # a thousand API calls would take longer than the lead time on a loaded machine.
        import psycopg

        when = (datetime.now(UTC) + timedelta(seconds=lead)).replace(microsecond=0)
        async with await psycopg.AsyncConnection.connect(conninfo) as conn:
            await conn.execute(
                "UPDATE deployments SET scheduled_time = %s WHERE id = ANY(%s::uuid[])", (when, ids)
            )
            await conn.execute(
                "UPDATE procrastinate_jobs SET scheduled_at = %s WHERE status = 'todo' AND id IN"
                " (SELECT job_id FROM deployments WHERE id = ANY(%s::uuid[]))",
                (when, ids),
            )
            await conn.execute(
                "SELECT pg_notify('procrastinate_queue_v1#default', "
                '\'{"type": "job_inserted", "job_id": null}\')'
            )
            await conn.commit()
        assert datetime.now(UTC) < when, "rescheduling took longer than the lead time"
        wait = (when - datetime.now(UTC)).total_seconds()
        started = await poll_rows(
            conninfo,
            "SELECT scheduled_time, started_at, worker_id FROM deployments"
            " WHERE name = %s AND started_at IS NOT NULL",
            (label,),
            count,
            wait + 180,
        )
        finals = await poll_rows(
            conninfo,
            "SELECT status FROM deployments WHERE name = %s AND status = ANY(%s)",
            (label, list(FINAL)),
            count,
            300,
        )
        # Runs the lost-worker sweep ended while their workers were alive (it says so in the log).
        lost = await poll_rows(
            conninfo,
            "SELECT DISTINCT d.id FROM deployments d JOIN deployment_logs l"
            " ON l.deployment_id = d.id WHERE d.name = %s AND l.message LIKE 'Worker %% was lost%%'",
            (label,),
            0,
            1,
        )
        # The honest end of "started": when its script began on the host (not measured as lag,
        # shown beside it).
        scripts = await poll_rows(
            conninfo,
            "SELECT d.scheduled_time, min(s.started_at) FROM deployments d"
            " JOIN deployment_scripts s ON s.deployment_id = d.id"
            " WHERE d.name = %s AND s.started_at IS NOT NULL GROUP BY d.id",
            (label,),
            0,
            1,
        )
    finally:
        for worker in workers:
            worker.stop()
    result = summary([(at - scheduled).total_seconds() for scheduled, at, _ in started], count)
    # Per worker (printed, not tabled): a tail that one worker alone has points at that worker.
    for worker_id in sorted({str(worker).split("#")[0] for _, _, worker in started}):
        mine = [
            (at - when).total_seconds()
            for when, at, w in started
            if str(w).split("#")[0] == worker_id
        ]
        print(f"  worker {worker_id}: {summary(mine, len(mine))}", file=sys.stderr)
    result["succeeded"] = sum(1 for (status,) in finals if status == "success")
    result["lost"] = len(lost)
    first_script = sorted((at - scheduled).total_seconds() for scheduled, at in scripts)
    result["script_p50"] = statistics.median(first_script) if first_script else float("nan")
    result["script_p99"] = percentile(first_script, 0.99) if first_script else float("nan")
    return result


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def render(rows: list[dict[str, Any]], options: argparse.Namespace, loads: list[str]) -> str:
    lines = [
        f"### Scheduling: runs due in the same second, two workers (concurrency {options.concurrency} each)",
        "",
        f"Run on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {machine_note()}.",
        "",
        "| due runs | arm | started | min s | p50 s | p99 s | max s | p99 vs bare | first script p50 / p99 s |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        bare, ship = row["bare"], row["shipyard"]
        ratio = ship["p99"] / bare["p99"] if bare["p99"] > 0 else float("nan")
        for arm, data, shown in (
            ("bare procrastinate", bare, "1.00x"),
            ("Shipyard", ship, f"{ratio:.2f}x"),
        ):
            note = (
                f" ({int(data['succeeded'])} succeeded, {int(data['lost'])} ended as lost)"
                if "succeeded" in data
                else ""
            )
            script = (
                f"{data['script_p50']:.3f} / {data['script_p99']:.3f}"
                if "script_p99" in data
                else "-"
            )
            lines.append(
                f"| {row['count']:,} | {arm} | {int(data['ok'])}/{int(data['count'])}{note} | "
                f"{data['min']:.3f} | {data['p50']:.3f} | {data['p99']:.3f} | {data['max']:.3f} | {shown} | {script} |"
            )
    lines += ["", "Load (`uptime`) before each size:", ""]
    lines += [f"- {load}" for load in loads]
    return "\n".join(lines) + "\n"


async def main_async(options: argparse.Namespace) -> None:
    root = Path(tempfile.mkdtemp(prefix="sy-sched-", dir="/tmp"))
    os.chmod(root, 0o755)
    stack = await build_stack(root, options.hosts)
    rows: list[dict[str, Any]] = []
    loads: list[str] = []
    try:
        host_ids = await create_hosts(stack, options.hosts)
        for count in options.sizes:
            loads.append(f"{count}: {uptime()}")
            print("load", loads[-1], flush=True)
            bare = await bare_arm(
                stack, count, concurrency=options.concurrency, poll=options.poll, lead=options.lead
            )
            print("bare", count, bare, flush=True)
            ship = await shipyard_arm(
                stack,
                host_ids,
                count,
                concurrency=options.concurrency,
                poll=options.poll,
                lead=options.lead,
                label=f"scheduled-{count}",
            )
            print("shipyard", count, ship, flush=True)
            rows.append({"count": count, "bare": bare, "shipyard": ship})
        body = render(rows, options, loads)
        print(body)
        if options.json:
            Path(options.json).write_text(json.dumps({"rows": rows, "loads": loads}, indent=2))
    finally:
        await stack.client.aclose()
        stack.fleet.stop()
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=200)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--concurrency", type=int, default=500)
    parser.add_argument("--poll", type=float, default=0.5, help="Poll interval of both arms (s).")
    parser.add_argument("--lead", type=float, default=10.0, help="Seconds between setup and due.")
    parser.add_argument("--json", help="Also write the results to this file.")
    parser.add_argument(
        "--worker-logs", type=Path, help="Keep the workers' logs in this directory."
    )
    args = parser.parse_args()
    if args.worker_logs is not None:
        args.worker_logs.mkdir(parents=True, exist_ok=True)
        WORKER_LOGS[0] = args.worker_logs
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
